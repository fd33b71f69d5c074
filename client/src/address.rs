//! Addresses as people type them.

use switchboard_core::frame::{Address, NAME_BYTES_MAX};

/// An address string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {detail} (use instance/process, id:N, instance:NAME, group:NAME, anycast:NAME or all)")]
pub struct AddressError {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub detail: &'static str,
}

/// Parses `instance/process` (one member by name), `id:N` (one member
/// incarnation), `instance:NAME`, `group:NAME`, `anycast:NAME`, or `all`
/// (broadcast).
pub fn parse_address(s: &str) -> Result<Address, AddressError> {
    let err = |detail| AddressError {
        input: s.to_owned(),
        detail,
    };
    let name = |n: &str| -> Result<String, AddressError> {
        if n.is_empty() || n.len() > NAME_BYTES_MAX {
            Err(err("name must be 1 to 128 bytes"))
        } else {
            Ok(n.to_owned())
        }
    };
    if s == "all" || s == "broadcast" {
        return Ok(Address::Broadcast);
    }
    if let Some((kind, rest)) = s.split_once(':') {
        return match kind {
            "id" => rest
                .parse()
                .map(Address::MemberId)
                .map_err(|_| err("member id must be a number")),
            "instance" => Ok(Address::Instance(name(rest)?)),
            "group" => Ok(Address::Group(name(rest)?)),
            "anycast" => Ok(Address::Anycast(name(rest)?)),
            _ => Err(err("unknown address kind")),
        };
    }
    if let Some((instance, process)) = s.split_once('/') {
        return Ok(Address::Member {
            instance: name(instance)?,
            process: name(process)?,
        });
    }
    Err(err("no address kind"))
}

/// One member by name: whichever incarnation of `instance/process` is in
/// the view when the server sequences the message.
pub fn member(instance: impl Into<String>, process: impl Into<String>) -> Address {
    Address::Member {
        instance: instance.into(),
        process: process.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse_address("a/b"), Ok(member("a", "b")));
        assert_eq!(parse_address("id:7"), Ok(Address::MemberId(7)));
        assert_eq!(
            parse_address("instance:a"),
            Ok(Address::Instance("a".into()))
        );
        assert_eq!(parse_address("group:g"), Ok(Address::Group("g".into())));
        assert_eq!(parse_address("anycast:g"), Ok(Address::Anycast("g".into())));
        assert_eq!(parse_address("all"), Ok(Address::Broadcast));
        assert!(parse_address("id:x").is_err());
        assert!(parse_address("nope").is_err());
        assert!(parse_address("group:").is_err());
        assert!(parse_address("x:y").is_err());
    }
}
