//! The access rules of the member port: which source addresses may
//! connect, in the spirit of SAP's `ms/acl_file_int`. Pure: text in,
//! decisions out; reading the file and acting on a decision are the
//! caller's.
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
//! ```

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

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

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    action: Action,
    source: String,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    rule: Vec<RuleText>,
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

/// The access rules: first match wins, no match denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
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
    /// Parses rules text; `Err` says what is wrong, naming the rule.
    pub fn parse(text: &str) -> Result<Acl, String> {
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
        Ok(Acl { rules })
    }

    /// Reads and parses a rules file.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
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
        Acl::parse(&text).map_err(|detail| AclError::Invalid {
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
}
