//! Named credentials and what each one permits.
//!
//! A member proves one credential in its handshake: the cluster secret
//! (the credential named [`CLUSTER`]), a named secret of its own (it names
//! it in its `Hello` or `Resume`), or a client certificate whose name the
//! server's adapter reads from the TLS handshake. Each credential carries
//! [`Permissions`]: which instances its holder may register as, where it may
//! send, which groups it may join, which event topics it may publish. The
//! server state machine checks them; reading files and certificates is the
//! adapter's.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::Secret;
use crate::frame::NAME_BYTES_MAX;

/// Name of the credential the cluster secret (and the secrets accepted
/// while it rolls) stands for.
pub const CLUSTER: &str = "cluster";

/// Patterns in one list at most.
pub const PATTERNS_MAX: usize = 256;

/// Credentials in one table at most.
pub const CREDENTIALS_MAX: usize = 4096;

/// A glob pattern over a name: `*` matches any run of characters (none
/// included); every other character matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern; refuses an empty one or one longer than a name.
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() || text.len() > NAME_BYTES_MAX {
            return Err(format!(
                "pattern {text:?} must be 1 to {NAME_BYTES_MAX} bytes"
            ));
        }
        Ok(Pattern(text.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `name` matches. Linear backtracking over bytes (one
    /// remembered star), no recursion: at most `|pattern| × |name|` steps.
    pub fn matches(&self, name: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), name.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if pi < p.len() && p[pi] == s[si] {
                pi += 1;
                si += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// A list of patterns: a name is in it when any pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    /// Every name (`["*"]`).
    pub fn any() -> Patterns {
        Patterns(vec![Pattern("*".to_owned())])
    }

    /// No name at all (`[]`).
    pub fn none() -> Patterns {
        Patterns(Vec::new())
    }

    /// Parses a list; refuses more than [`PATTERNS_MAX`] or a bad pattern.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Patterns, String> {
        if texts.len() > PATTERNS_MAX {
            return Err(format!(
                "{} patterns, at most {PATTERNS_MAX} are accepted",
                texts.len()
            ));
        }
        texts
            .iter()
            .map(|t| Pattern::new(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Patterns)
    }

    /// True when some pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }

    /// True when the list is `*` alone or contains it: every name matches.
    pub fn is_any(&self) -> bool {
        self.0.iter().any(|p| p.0 == "*")
    }

    /// The patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.0
    }
}

/// A source: one address, a network, or every address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Every address.
    Any,
    /// A network: its address and prefix length (an address is a /32 or
    /// /128).
    Net(IpAddr, u8),
}

impl Source {
    /// Parses `*`, `ADDRESS` or `ADDRESS/PREFIX`.
    pub fn parse(s: &str) -> Result<Source, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(Source::Any);
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address, a network (CIDR) or \"*\""))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Source::Net(addr, prefix))
    }

    /// True when `ip` is in this source. An IPv4 address mapped into IPv6
    /// (`::ffff:a.b.c.d`) is matched as the IPv4 address.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (Source::Any, _) => true,
            (Source::Net(IpAddr::V4(net), p), IpAddr::V4(a)) => {
                prefix_eq(u32::from(net).into(), u32::from(a).into(), p, 32)
            }
            (Source::Net(IpAddr::V6(net), p), IpAddr::V6(a)) => {
                prefix_eq(u128::from(net), u128::from(a), p, 128)
            }
            _ => false,
        }
    }
}

/// True when the first `prefix` of `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    debug_assert!(u32::from(prefix) <= bits);
    let shift = bits - u32::from(prefix);
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (b >> shift)
}

/// What the holder of a credential may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Instances it may register as.
    pub register: Patterns,
    /// Instances it may send to (`Member`, `MemberId` and `Instance`
    /// addresses).
    pub send_instances: Patterns,
    /// Groups it may send to (`Group` and `Anycast` addresses).
    pub send_groups: Patterns,
    /// Whether it may broadcast.
    pub broadcast: bool,
    /// Groups it may join (at registration or with `Join`).
    pub join: Patterns,
    /// Topics of the custom events it may publish.
    pub publish: Patterns,
    /// Source addresses it may be used from (a handshake from any other is
    /// refused); every address when empty.
    pub sources: Vec<Source>,
}

impl Permissions {
    /// Everything: what the cluster credential permits unless configured.
    pub fn all() -> Permissions {
        Permissions {
            register: Patterns::any(),
            send_instances: Patterns::any(),
            send_groups: Patterns::any(),
            broadcast: true,
            join: Patterns::any(),
            publish: Patterns::any(),
            sources: Vec::new(),
        }
    }

    /// True when a handshake from `peer` may use this credential (an
    /// unknown peer address, as in a test driver, may).
    pub fn permits_source(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => self.sources.is_empty() || self.sources.iter().any(|s| s.matches(ip)),
            None => true,
        }
    }
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions::all()
    }
}

/// How a credential is proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialKind {
    /// The cluster secret (or a secret accepted while it rolls), or a
    /// member certificate no certificate credential names.
    Cluster,
    /// A named secret of its own.
    Secret,
    /// A client certificate's name.
    Certificate,
}

/// Which credential a member proved: compared for equality when a
/// registration would supersede a live member.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId {
    /// How it was proved.
    pub kind: CredentialKind,
    /// Its configured name ([`CLUSTER`] for the cluster credential).
    pub name: String,
}

impl CredentialId {
    /// The cluster credential.
    pub fn cluster() -> CredentialId {
        CredentialId {
            kind: CredentialKind::Cluster,
            name: CLUSTER.to_owned(),
        }
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A named secret and its permissions.
#[derive(Debug, Clone)]
pub struct SecretCredential {
    /// The secret (never printed).
    pub secret: Secret,
    /// What its holder may do.
    pub permissions: Arc<Permissions>,
}

/// A certificate-name credential.
#[derive(Debug, Clone)]
pub struct CertificateCredential {
    /// The credential's name (for logs and the supersede rule).
    pub name: String,
    /// The certificate name it matches: the subject common name or a DNS
    /// or URI subject alternative name, compared exactly.
    pub certificate: String,
    /// What its holder may do.
    pub permissions: Arc<Permissions>,
}

/// Every credential the server accepts besides the cluster secrets.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// What the cluster credential permits.
    pub cluster: Arc<Permissions>,
    /// Named secrets by name.
    pub secrets: BTreeMap<String, SecretCredential>,
    /// Certificate credentials, in configured order (the first whose
    /// certificate name the member's certificate carries is the member's).
    pub certificates: Vec<CertificateCredential>,
}

impl Credentials {
    /// The certificate credential for a certificate carrying `names`, if
    /// any.
    pub fn for_certificate(&self, names: &[String]) -> Option<&CertificateCredential> {
        self.certificates
            .iter()
            .find(|c| names.contains(&c.certificate))
    }

    /// The permissions of a credential as currently configured, `None`
    /// when it is no longer configured (or, for a certificate credential,
    /// no longer the one the certificate `names` resolve to).
    pub fn permissions_of(&self, id: &CredentialId, names: &[String]) -> Option<Arc<Permissions>> {
        match id.kind {
            CredentialKind::Cluster => Some(self.cluster.clone()),
            CredentialKind::Secret => self.secrets.get(&id.name).map(|s| s.permissions.clone()),
            CredentialKind::Certificate => self
                .for_certificate(names)
                .filter(|c| c.name == id.name)
                .map(|c| c.permissions.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn globs_match_runs_and_literals() {
        assert!(p("*").matches("") && p("*").matches("anything"));
        assert!(p("app-*").matches("app-") && p("app-*").matches("app-7"));
        assert!(!p("app-*").matches("ap-7") && !p("app-*").matches("xapp-7"));
        assert!(p("*-eu").matches("db-eu") && !p("*-eu").matches("db-eu2"));
        assert!(p("a*b*c").matches("abc") && p("a*b*c").matches("axxbyyc"));
        assert!(!p("a*b*c").matches("axxbyy") && !p("a*b*c").matches("acb"));
        assert!(p("exact").matches("exact") && !p("exact").matches("exactly"));
        assert!(p("**x").matches("x") && p("a**").matches("a"));
        assert!(Pattern::new("").is_err());
        let long = "x".repeat(NAME_BYTES_MAX + 1);
        assert!(Pattern::new(&long).is_err());
    }

    #[test]
    fn pattern_lists_are_bounded_and_match_any() {
        let l = Patterns::parse(&["a-*", "b"]).unwrap_or_default();
        assert!(l.matches("a-1") && l.matches("b") && !l.matches("c"));
        assert!(!Patterns::none().matches("x") && Patterns::any().matches("x"));
        let many = vec!["x"; PATTERNS_MAX + 1];
        assert!(Patterns::parse(&many).is_err());
    }

    #[test]
    fn certificate_credentials_resolve_by_name() {
        let perms = Arc::new(Permissions::all());
        let c = Credentials {
            certificates: vec![CertificateCredential {
                name: "billing".into(),
                certificate: "billing.example".into(),
                permissions: perms,
            }],
            ..Credentials::default()
        };
        let names = vec!["other".to_owned(), "billing.example".to_owned()];
        assert_eq!(
            c.for_certificate(&names).map(|c| c.name.as_str()),
            Some("billing")
        );
        let id = CredentialId {
            kind: CredentialKind::Certificate,
            name: "billing".into(),
        };
        assert!(c.permissions_of(&id, &names).is_some());
        assert!(c.permissions_of(&id, &["other".to_owned()]).is_none());
        assert!(c.permissions_of(&CredentialId::cluster(), &[]).is_some());
    }
}
