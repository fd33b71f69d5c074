//! Certificates generated for a test: a CA that signs leaf certificates
//! into a directory of PEM files.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// A self-signed CA whose certificate is written to `<name>-ca.pem`.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
}

/// What a leaf certificate carries besides its common name, 127.0.0.1 and
/// `localhost`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Leaf<'a> {
    /// A URI alternative name (such as a SPIFFE id).
    pub uri: Option<&'a str>,
    /// Valid only in 2020 (expired).
    pub expired: bool,
}

impl Ca {
    /// A new CA named `name`, its certificate written into `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        let ca = Ca {
            cert,
            key,
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        std::fs::write(ca.ca_file(), ca.cert.pem()).unwrap();
        ca
    }

    /// The CA certificate's file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A leaf certificate for `cn`, written as `<file>.pem` and
    /// `<file>.key`; returns both paths.
    pub fn issue(&self, file: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.issue_with(file, cn, Leaf::default())
    }

    /// [`issue`](Ca::issue) with the extras of `leaf`.
    pub fn issue_with(&self, file: &str, cn: &str, leaf: Leaf<'_>) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        if let Some(u) = leaf.uri {
            p.subject_alt_names
                .push(SanType::URI(u.try_into().unwrap()));
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        if leaf.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}
