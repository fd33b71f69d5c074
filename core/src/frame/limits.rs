//! Named limits that bound every length and count on the wire.
//!
//! The decoder checks each length and count against these limits *before*
//! it reads or allocates anything, so a hostile peer can never make it
//! allocate more than the validated frame length.

/// Bytes in the frame header: `len: u32`, `version: u8`, `kind: u8`.
pub const HEADER_BYTES: usize = 6;

/// Bytes covered by the `len` field that are part of the header
/// (`version` and `kind`).
pub const HEADER_AFTER_LEN_BYTES: usize = 2;

/// Smallest `frame_bytes_max` a peer may configure.
pub const FRAME_BYTES_MAX_FLOOR: u32 = 4 * 1024;

/// Largest `frame_bytes_max` a peer may configure.
pub const FRAME_BYTES_MAX_CEILING: u32 = 16 * 1024 * 1024;

/// Default largest frame, header included.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;

/// Largest message payload (all chunks together).
pub const MESSAGE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Largest cluster, instance, process, group or service name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;

/// Longest name the codec carries in the fields whose names the server
/// validates itself: `Hello` cluster, instance, process, services and
/// groups; the group of `Join` and `Leave`; the service of
/// `Publish{ServiceState}`. A name there over [`NAME_BYTES_MAX`] is a
/// recoverable refusal by the server (`Reject{Invalid}`, `Nack{Invalid}`),
/// not a codec error; the frame size bounds it in any case.
pub const CLAIMED_NAME_BYTES_MAX: usize = u16::MAX as usize;

/// Largest event topic or subscription topic prefix, in bytes.
pub const TOPIC_BYTES_MAX: usize = 256;

/// Largest human-readable text (reject, error and goodbye reasons), in bytes.
pub const TEXT_BYTES_MAX: usize = 1024;

/// Largest number of members in one `Snapshot` frame.
pub const SNAPSHOT_MEMBERS_MAX: usize = 1024;

/// Largest number of services one member may announce.
pub const SERVICES_MAX: usize = 32;

/// Largest number of groups one member may join.
pub const GROUPS_PER_MEMBER_MAX: usize = 64;

/// Largest number of subscriptions one member may hold.
pub const SUBSCRIPTIONS_MAX: usize = 64;

/// Largest number of addressees listed in one `Outcome` frame.
pub const OUTCOME_MISSED_MAX: usize = 4096;

/// A sender never keeps an unconfirmed message more than this many
/// sequences older than its newest one; receivers detect duplicates
/// exactly within this window (and treat anything older as one).
pub const SEQ_WINDOW: u64 = 16_384;

/// Largest frame accepted from a connection that has not authenticated
/// yet: the largest `Hello` (every name, service, group and subscription at
/// its limit) is under 30 KiB. A longer declared length before
/// authentication is refused as soon as its header arrives, so an attacker
/// without the secret cannot make the server buffer more than this per
/// connection.
pub const HANDSHAKE_FRAME_BYTES_MAX: u32 = 32 * 1024;

/// Length of the nonces used by the challenge-response handshake.
pub const NONCE_BYTES: usize = 16;

/// Length of an HMAC-SHA256 proof.
pub const PROOF_BYTES: usize = 32;

/// Most proofs a `Challenge` carries besides its first: one per further
/// secret a server accepts while a cluster rolls to a new secret.
pub const EXTRA_PROOFS_MAX: usize = 3;

/// Limits a decoder enforces; the frame size is the one tunable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted or produced, header included.
    pub frame_bytes_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
        }
    }
}

impl Limits {
    /// Limits with the given frame size, clamped into
    /// [`FRAME_BYTES_MAX_FLOOR`]..=[`FRAME_BYTES_MAX_CEILING`].
    pub fn with_frame_bytes_max(frame_bytes_max: u32) -> Self {
        Limits {
            frame_bytes_max: frame_bytes_max.clamp(FRAME_BYTES_MAX_FLOOR, FRAME_BYTES_MAX_CEILING),
        }
    }

    /// The limits for a connection still in its handshake: frames no
    /// larger than [`HANDSHAKE_FRAME_BYTES_MAX`] (or `frame_bytes_max`, if
    /// smaller).
    pub fn before_auth(&self) -> Limits {
        Limits {
            frame_bytes_max: self.frame_bytes_max.min(HANDSHAKE_FRAME_BYTES_MAX),
        }
    }

    /// Largest payload that fits in one `Send`, `Deliver` or `Chunk` frame
    /// with the largest possible fixed fields of those frames.
    pub fn chunk_bytes_max(&self) -> u32 {
        // Worst case fixed part: Deliver with a group address of a maximal
        // name; see `frame::encode`. 512 bytes is a generous round bound.
        self.frame_bytes_max.saturating_sub(512).max(1)
    }
}
