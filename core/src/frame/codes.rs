//! One-byte wire codes of the reason enums. The codes are part of the
//! protocol (see `docs/PROTOCOL.md`): never renumber, only append.

use super::types::{ErrorCode, FailReason, MissReason, NackReason, RejectReason};

macro_rules! wire_codes {
    ($ty:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in code order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The one-byte wire code.
            pub fn code(self) -> u8 {
                match self { $($ty::$variant => $code),+ }
            }

            /// The variant for a wire code, if the code is defined.
            pub fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

wire_codes!(FailReason {
    HeartbeatTimeout = 1,
    ConnectionLost = 2,
    SlowConsumer = 3,
    ProtocolViolation = 4,
    Superseded = 5,
});

wire_codes!(MissReason {
    Left = 1,
    Failed = 2,
    Evicted = 3,
    ServerRestarted = 4,
});

wire_codes!(NackReason {
    UnknownDestination = 1,
    DestinationGone = 2,
    TooLarge = 3,
    OverQuota = 4,
    NotPermitted = 5,
    Invalid = 6,
    Incomplete = 7,
});

wire_codes!(RejectReason {
    BadSecret = 1,
    UnsupportedVersion = 2,
    WrongCluster = 3,
    DuplicateIdentity = 4,
    ServerFull = 5,
    HandshakeTimeout = 6,
    SessionUnknown = 7,
    Invalid = 8,
    NotPermitted = 9,
});

wire_codes!(ErrorCode {
    Malformed = 1,
    UnexpectedFrame = 2,
    LimitExceeded = 3,
    ShuttingDown = 4,
    Internal = 5,
    DeclaredFailed = 6,
    NotPermitted = 7,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_is_undefined() {
        for r in FailReason::ALL {
            assert_eq!(FailReason::from_code(r.code()), Some(*r));
        }
        for r in MissReason::ALL {
            assert_eq!(MissReason::from_code(r.code()), Some(*r));
        }
        for r in NackReason::ALL {
            assert_eq!(NackReason::from_code(r.code()), Some(*r));
        }
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.code()), Some(*r));
        }
        for r in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(r.code()), Some(*r));
        }
        assert_eq!(FailReason::from_code(0), None);
        assert_eq!(NackReason::from_code(200), None);
    }
}
