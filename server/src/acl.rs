//! The access rules of the member port: which source addresses may
//! connect, in the spirit of SAP's `ms/acl_file_int`, and the named
//! credentials members may prove with what each permits. Parsing is pure
//! (text in, decisions out); reading the file and the credentials' secret
//! files is [`Acl::load`]'s, acting on a decision the caller's.
//!
//! ```toml
//! # First match wins; an address no rule matches is denied.
//! [[rule]]
//! action = "deny"
//! source = "10.1.2.3"
//!
//! [[rule]]
//! action = "permit"
//! source = "10.1.0.0/16"     # an address, a network (CIDR) or "*"
//!
//! [[credential]]
//! name = "billing"
//! secret_file = "/etc/switchboard/billing.secret"  # or certificate = "billing.example"
//! register = ["billing-*"]    # instances its holder may register as
//! send_instances = ["billing-*", "ledger"]  # default ["*"]
//! send_groups = ["billing*"]  # default ["*"]
//! broadcast = false           # default true
//! join = ["billing*"]         # default ["*"]
//! publish = ["billing/*"]     # event topics; default ["*"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use switchboard_core::auth::Secret;
use switchboard_core::credentials::{
    CertificateCredential, Credentials, Patterns, Permissions, SecretCredential, CLUSTER,
    CREDENTIALS_MAX, PATTERNS_MAX,
};

/// Rules in a file at most.
pub const RULES_MAX: usize = 4096;

/// Largest rules file read, bytes.
const ACL_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// What a rule does to the addresses it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The address may connect.
    Permit,
    /// The address is refused (`Reject{NotPermitted}`).
    Deny,
}

pub use switchboard_core::credentials::Source;

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    action: Action,
    source: String,
}

/// One credential as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialText {
    name: String,
    secret_file: Option<PathBuf>,
    certificate: Option<String>,
    register: Vec<String>,
    send_instances: Option<Vec<String>>,
    send_groups: Option<Vec<String>>,
    broadcast: Option<bool>,
    join: Option<Vec<String>>,
    publish: Option<Vec<String>>,
    sources: Option<Vec<String>>,
}

impl CredentialText {
    fn permissions(&self) -> Result<Permissions, String> {
        let list = |field: &str, v: &Option<Vec<String>>| match v {
            None => Ok(Patterns::any()),
            Some(v) => Patterns::parse(v).map_err(|e| format!("{field}: {e}")),
        };
        Ok(Permissions {
            register: Patterns::parse(&self.register).map_err(|e| format!("register: {e}"))?,
            send_instances: list("send_instances", &self.send_instances)?,
            send_groups: list("send_groups", &self.send_groups)?,
            broadcast: self.broadcast.unwrap_or(true),
            join: list("join", &self.join)?,
            publish: list("publish", &self.publish)?,
            sources: match &self.sources {
                None => Vec::new(),
                Some(v) if v.len() > PATTERNS_MAX => {
                    return Err(format!("sources: more than {PATTERNS_MAX} entries"))
                }
                Some(v) => v
                    .iter()
                    .map(|s| Source::parse(s).map_err(|e| format!("sources: {e}")))
                    .collect::<Result<_, _>>()?,
            },
        })
    }
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    rule: Vec<RuleText>,
    #[serde(default)]
    credential: Vec<CredentialText>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it does.
    pub action: Action,
    /// Whom it matches.
    pub source: Source,
}

/// The decision for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Permitted or denied.
    pub action: Action,
    /// The rule that decided (1-based, in file order); `None` when no rule
    /// matched and the default (deny) applied.
    pub rule: Option<usize>,
}

impl Decision {
    /// True when the address may connect.
    pub fn permitted(&self) -> bool {
        self.action == Action::Permit
    }

    /// Why, in words, for a log line or a `Reject`.
    pub fn explain(&self) -> String {
        match (self.action, self.rule) {
            (Action::Permit, Some(n)) => format!("permitted by access rule {n}"),
            (Action::Deny, Some(n)) => format!("denied by access rule {n}"),
            (_, None) => "no access rule permits it".to_owned(),
        }
    }
}

/// The access rules: first match wins, no match denies; and the
/// credentials.
#[derive(Debug, Clone)]
pub struct Acl {
    rules: Vec<Rule>,
    credentials: Credentials,
}

/// Why a rules file is refused.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("cannot read access rules file {path}: {detail}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        detail: String,
    },
    /// The text is not valid.
    #[error("access rules file {path}: {detail}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (with the rule's number when it is one rule).
        detail: String,
    },
}

impl Acl {
    /// Parses rules text whose credentials name no secret file; `Err`
    /// says what is wrong, naming the rule or credential.
    pub fn parse(text: &str) -> Result<Acl, String> {
        Acl::parse_with(text, |p| {
            Err(format!("cannot read secret file {}", p.display()))
        })
    }

    /// Parses rules text, reading each named secret with `read_secret`;
    /// `Err` says what is wrong, naming the rule or credential (never a
    /// secret).
    pub fn parse_with(
        text: &str,
        read_secret: impl Fn(&Path) -> Result<Secret, String>,
    ) -> Result<Acl, String> {
        let f: FileText = toml::from_str(text).map_err(|e| e.to_string())?;
        if f.rule.len() > RULES_MAX {
            return Err(format!(
                "{} rules, at most {RULES_MAX} are accepted",
                f.rule.len()
            ));
        }
        let rules = f
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Source::parse(&r.source)
                    .map(|source| Rule {
                        action: r.action,
                        source,
                    })
                    .map_err(|e| format!("rule {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = credentials(&f.credential, read_secret)?;
        Ok(Acl { rules, credentials })
    }

    /// The credentials (the cluster's permissions, named secrets,
    /// certificate names).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Reads and parses a rules file and the secret files of its
    /// credentials (refused when others may read them, unless
    /// `allow_readable_secrets`).
    pub fn load(path: &Path, allow_readable_secrets: bool) -> Result<Acl, AclError> {
        let read = |e: std::io::Error| AclError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > ACL_FILE_BYTES_MAX {
            return Err(AclError::Invalid {
                path: path.to_owned(),
                detail: format!("larger than {ACL_FILE_BYTES_MAX} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let read_secret = |p: &Path| {
            switchboard_runtime::secret::load_with(p, allow_readable_secrets)
                .map_err(|e| e.to_string())
        };
        Acl::parse_with(&text, read_secret).map_err(|detail| AclError::Invalid {
            path: path.to_owned(),
            detail,
        })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The decision for `ip`: the first rule that matches, else deny.
    pub fn decide(&self, ip: IpAddr) -> Decision {
        for (i, r) in self.rules.iter().enumerate() {
            if r.source.matches(ip) {
                return Decision {
                    action: r.action,
                    rule: Some(i + 1),
                };
            }
        }
        Decision {
            action: Action::Deny,
            rule: None,
        }
    }
}

/// Builds the credentials table from the file's `[[credential]]` tables.
fn credentials(
    texts: &[CredentialText],
    read_secret: impl Fn(&Path) -> Result<Secret, String>,
) -> Result<Credentials, String> {
    if texts.len() > CREDENTIALS_MAX {
        return Err(format!(
            "{} credentials, at most {CREDENTIALS_MAX} are accepted",
            texts.len()
        ));
    }
    let mut out = Credentials::default();
    let mut names = BTreeSet::new();
    let mut secrets = BTreeMap::new();
    for (i, c) in texts.iter().enumerate() {
        let at = |e: String| format!("credential {} ({:?}): {e}", i + 1, c.name);
        let name_ok = !c.name.is_empty()
            && c.name.len() <= switchboard_core::frame::NAME_BYTES_MAX
            && !c.name.chars().any(char::is_control);
        if !name_ok {
            return Err(at(
                "the name must be 1 to 128 bytes without control characters".into(),
            ));
        }
        if !names.insert(c.name.clone()) {
            return Err(at("the name is used twice".into()));
        }
        let permissions = Arc::new(c.permissions().map_err(at)?);
        match (&c.secret_file, &c.certificate, c.name == CLUSTER) {
            (None, None, true) => out.cluster = permissions,
            (_, _, true) => {
                return Err(at(format!(
                    "{CLUSTER:?} stands for the cluster secret: it takes no secret_file or certificate"
                )))
            }
            (Some(path), None, false) => {
                let secret = read_secret(path).map_err(at)?;
                secrets.insert(
                    c.name.clone(),
                    SecretCredential {
                        secret,
                        permissions,
                    },
                );
            }
            (None, Some(cert), false) => {
                if cert.is_empty() {
                    return Err(at("certificate must not be empty".into()));
                }
                out.certificates.push(CertificateCredential {
                    name: c.name.clone(),
                    certificate: cert.clone(),
                    permissions,
                });
            }
            _ => {
                return Err(at(
                    "needs exactly one of secret_file (a named secret) or certificate (a client certificate's name)"
                        .into(),
                ))
            }
        }
    }
    out.secrets = secrets;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
    }

    fn acl(text: &str) -> Acl {
        Acl::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn first_match_wins_and_no_match_denies() {
        let a = acl("[[rule]]\naction = \"deny\"\nsource = \"10.1.2.3\"\n\
             [[rule]]\naction = \"permit\"\nsource = \"10.1.0.0/16\"\n\
             [[rule]]\naction = \"deny\"\nsource = \"10.0.0.0/8\"\n");
        let d = a.decide(ip("10.1.2.3"));
        assert_eq!((d.action, d.rule), (Action::Deny, Some(1)));
        let d = a.decide(ip("10.1.9.9"));
        assert_eq!((d.action, d.rule), (Action::Permit, Some(2)));
        assert!(d.permitted());
        let d = a.decide(ip("10.2.0.1"));
        assert_eq!((d.action, d.rule), (Action::Deny, Some(3)));
        // No rule matches: denied by default.
        let d = a.decide(ip("192.168.1.1"));
        assert_eq!((d.action, d.rule), (Action::Deny, None));
        assert_eq!(d.explain(), "no access rule permits it");
        // An empty file denies everyone.
        assert!(!acl("").decide(ip("127.0.0.1")).permitted());
    }

    #[test]
    fn networks_match_by_prefix_in_both_families() {
        let any = Source::parse("*").unwrap_or(Source::Any);
        assert!(any.matches(ip("::1")) && any.matches(ip("1.2.3.4")));
        let net = Source::parse("192.168.0.0/23").unwrap_or(Source::Any);
        assert!(net.matches(ip("192.168.1.255")));
        assert!(!net.matches(ip("192.168.2.0")));
        let all4 = Source::parse("0.0.0.0/0").unwrap_or(Source::Any);
        assert!(all4.matches(ip("8.8.8.8")) && !all4.matches(ip("::1")));
        let v6 = Source::parse("fd00::/8").unwrap_or(Source::Any);
        assert!(v6.matches(ip("fd12::1")) && !v6.matches(ip("fe80::1")));
        // A v4-mapped v6 peer is matched as its v4 address.
        let lo = Source::parse("127.0.0.0/8").unwrap_or(Source::Any);
        assert!(lo.matches(ip("::ffff:127.0.0.2")));
        let one = Source::parse("::1").unwrap_or(Source::Any);
        assert!(one.matches(ip("::1")) && !one.matches(ip("::2")));
    }

    #[test]
    fn bad_rules_are_refused_with_their_number() {
        let e = Acl::parse("[[rule]]\naction = \"permit\"\nsource = \"10.0.0.0/33\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("rule 1") && e.contains("prefix"), "{e}");
        let e = Acl::parse("[[rule]]\naction = \"permit\"\nsource = \"host.example\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("not an address"), "{e}");
        assert!(Acl::parse("[[rule]]\naction = \"allow\"\nsource = \"*\"\n").is_err());
        assert!(Acl::parse("[[rule]]\naction = \"permit\"\nsrc = \"*\"\n").is_err());
    }

    fn secret_of(p: &Path) -> Result<Secret, String> {
        match p.to_str() {
            Some("/ok") => {
                Secret::new(*b"billing-secret-billing-secret-12").map_err(|e| e.to_string())
            }
            _ => Err(format!("cannot read {}", p.display())),
        }
    }

    #[test]
    fn credentials_parse_with_defaults_and_the_cluster_entry() {
        let text = "[[rule]]\naction = \"permit\"\nsource = \"*\"\n\
            [[credential]]\nname = \"billing\"\nsecret_file = \"/ok\"\nregister = [\"billing-*\"]\n\
            broadcast = false\npublish = [\"billing/*\"]\nsources = [\"10.1.0.0/16\", \"192.0.2.7\"]\n\
            [[credential]]\nname = \"web\"\ncertificate = \"web.example\"\nregister = [\"web\"]\n\
            [[credential]]\nname = \"cluster\"\nregister = []\n";
        let a = Acl::parse_with(text, secret_of).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.decide(ip("10.0.0.1")).permitted());
        let c = a.credentials();
        let b = &c.secrets["billing"].permissions;
        assert!(b.register.matches("billing-eu") && !b.register.matches("web"));
        assert!(!b.broadcast && b.send_instances.matches("anything"));
        assert!(b.publish.matches("billing/x") && !b.publish.matches("other"));
        assert!(
            b.permits_source(Some(ip("10.1.200.3"))) && b.permits_source(Some(ip("192.0.2.7")))
        );
        assert!(!b.permits_source(Some(ip("10.2.0.1"))));
        // Without `sources`, every address.
        assert!(c.certificates[0]
            .permissions
            .permits_source(Some(ip("10.2.0.1"))));
        assert_eq!(c.certificates.len(), 1);
        assert_eq!(c.certificates[0].certificate, "web.example");
        // The cluster credential may register as nothing now.
        assert!(!c.cluster.register.matches("x"));
        // A file without credentials keeps the cluster's permitting all.
        let plain = acl("[[rule]]\naction = \"permit\"\nsource = \"*\"\n");
        assert!(plain.credentials().cluster.register.matches("x"));
        assert!(plain.credentials().secrets.is_empty());
    }

    #[test]
    fn bad_credentials_are_refused_naming_the_credential() {
        let cases = [
            // Neither a secret file nor a certificate.
            ("[[credential]]\nname = \"a\"\nregister = [\"*\"]\n", "exactly one"),
            // Both.
            (
                "[[credential]]\nname = \"a\"\nsecret_file = \"/ok\"\ncertificate = \"x\"\nregister = [\"*\"]\n",
                "exactly one",
            ),
            // A source that is not an address or a network.
            (
                "[[credential]]\nname = \"a\"\nsecret_file = \"/ok\"\nregister = [\"*\"]\nsources = [\"10.0.0.0/33\"]\n",
                "sources",
            ),
            // The same name twice.
            (
                "[[credential]]\nname = \"a\"\nsecret_file = \"/ok\"\nregister = [\"*\"]\n\
                 [[credential]]\nname = \"a\"\ncertificate = \"x\"\nregister = [\"*\"]\n",
                "twice",
            ),
            // The cluster credential with a secret of its own.
            (
                "[[credential]]\nname = \"cluster\"\nsecret_file = \"/ok\"\nregister = [\"*\"]\n",
                "cluster secret",
            ),
            // An unreadable secret file: the error names the file, never a secret.
            (
                "[[credential]]\nname = \"a\"\nsecret_file = \"/missing\"\nregister = [\"*\"]\n",
                "/missing",
            ),
            // An empty pattern.
            (
                "[[credential]]\nname = \"a\"\ncertificate = \"x\"\nregister = [\"\"]\n",
                "register",
            ),
            // No register list.
            ("[[credential]]\nname = \"a\"\ncertificate = \"x\"\n", "register"),
        ];
        for (text, want) in cases {
            let e = Acl::parse_with(text, secret_of).err().unwrap_or_default();
            assert!(e.contains(want), "{text}: {e}");
            if want != "register" || text.contains("[\"\"]") {
                assert!(
                    e.contains("credential 1") || e.contains("credential 2"),
                    "{e}"
                );
            }
            assert!(!e.contains("billing-secret"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_credential_secret_file_others_may_read_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("switchboard-acl-cred-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        let secret = d.join("billing.secret");
        let hex = switchboard_runtime::secret::to_hex(b"billing-secret-billing-secret-12");
        std::fs::write(&secret, hex).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let rules = d.join("acl.toml");
        let text = format!(
            "[[credential]]\nname = \"billing\"\nsecret_file = \"{}\"\nregister = [\"*\"]\n",
            secret.display()
        );
        std::fs::write(&rules, text).unwrap_or_else(|e| panic!("{e}"));
        let e = Acl::load(&rules, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("readable by other users") && e.contains("billing"),
            "{e}"
        );
        assert!(!e.contains("62696c6c"), "the secret leaked: {e}");
        let a = Acl::load(&rules, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.credentials().secrets.contains_key("billing"));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Acl::load(&rules, false).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
