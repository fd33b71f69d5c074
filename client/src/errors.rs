//! Sentences for the reasons the server gives, for error messages.

use switchboard_core::client::RequestError;
use switchboard_core::frame::{NackReason, RejectReason};

/// Why the server refused a message, as a clause.
pub fn nack_reason(r: NackReason) -> &'static str {
    match r {
        NackReason::UnknownDestination => "no member, instance or group by that name is known",
        NackReason::DestinationGone => {
            "the addressee is gone (it left, failed or restarted), or the group or instance \
             has no member other than the sender"
        }
        NackReason::TooLarge => "the message is larger than the server accepts",
        NackReason::OverQuota => "the sender has too many unconfirmed messages",
        NackReason::NotPermitted => {
            "this member's credential does not permit it (that address, group or topic)"
        }
        NackReason::Invalid => "the request was malformed (a name over 128 bytes, say)",
        NackReason::Incomplete => {
            "the server dropped the message before all its pieces arrived (too slow, or its \
             reassembly space was full); sending it again may succeed"
        }
    }
}

/// Why the server refused a handshake, as a clause.
pub fn reject_reason(r: RejectReason) -> &'static str {
    match r {
        RejectReason::BadSecret => "the secret does not match the server's",
        RejectReason::UnsupportedVersion => "the server speaks another protocol version",
        RejectReason::WrongCluster => "the cluster name does not match the server's",
        RejectReason::DuplicateIdentity => {
            "a live member with the same instance, process and incarnation exists"
        }
        RejectReason::ServerFull => "the server is at its member limit",
        RejectReason::HandshakeTimeout => "the handshake took too long",
        RejectReason::SessionUnknown => "the server does not know the session to resume",
        RejectReason::Invalid => "a handshake field is invalid (an empty or over-long name, say)",
        RejectReason::NotPermitted => {
            "not permitted: this address is not allowed to connect, or the credential may not \
             register under this name (or replace the member registered with it)"
        }
    }
}

/// Why a request ended without a reply, as a sentence.
pub fn request_error(e: RequestError) -> String {
    match e {
        RequestError::TimedOut => "no reply came before the request's deadline".to_owned(),
        RequestError::Nacked(r) => format!("the server refused the request: {}", nack_reason(r)),
        RequestError::PartnerGone => "the addressee left or failed before it replied".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences_not_debug_values() {
        let e = crate::Error::Nacked {
            seq: 3,
            reason: NackReason::UnknownDestination,
        };
        assert_eq!(
            e.to_string(),
            "the server refused message 3: no member, instance or group by that name is known"
        );
        let e = crate::Error::Request(RequestError::TimedOut);
        assert_eq!(e.to_string(), "no reply came before the request's deadline");
        let e = crate::Error::Rejected {
            reason: RejectReason::BadSecret,
            text: "bad proof".into(),
        };
        assert!(!e.to_string().contains("BadSecret"), "{e}");
    }
}
