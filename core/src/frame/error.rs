//! Typed codec errors. Every way bytes can be invalid has its own variant,
//! so a peer that breaks the protocol gets a precise reason.

use thiserror::Error;

/// Why bytes could not be decoded into a frame. Fatal for the connection:
/// after an error the buffer's contents are unspecified.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The length field is smaller than the version and kind bytes.
    #[error("frame length {len} is shorter than the 2-byte version and kind")]
    FrameTooShort {
        /// The length field.
        len: u32,
    },
    /// The frame is larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Whole frame length, header included.
        len: u64,
        /// The configured `frame_bytes_max`.
        max: u32,
    },
    /// The version byte is not one this codec speaks.
    #[error("unsupported protocol version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The kind byte names no frame.
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The body ended before a field.
    #[error("frame body ends inside field `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The body has bytes left after the last field.
    #[error("{extra} trailing bytes after a {kind} frame")]
    TrailingBytes {
        /// Frame name.
        kind: &'static str,
        /// Bytes left over.
        extra: usize,
    },
    /// A string is longer than its limit.
    #[error("field `{field}` is {len} bytes long, limit {max}")]
    StringTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A list has more elements than its limit.
    #[error("field `{field}` has {count} elements, limit {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its element count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An enum tag (address kind, reason code, bool) has no meaning.
    #[error("field `{field}` has invalid tag {tag}")]
    InvalidTag {
        /// The field.
        field: &'static str,
        /// The tag byte.
        tag: u8,
    },
    /// A message's declared total length is over the message limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Declared length (or chunk end).
        len: u64,
        /// The limit.
        max: u32,
    },
    /// Lengths that must agree do not (payload longer than its total,
    /// `MORE` flag and lengths inconsistent).
    #[error("inconsistent lengths in `{field}`: {detail}")]
    InconsistentLength {
        /// The field.
        field: &'static str,
        /// What disagrees.
        detail: &'static str,
    },
    /// Undefined flag bits are set.
    #[error("undefined flag bits 0x{flags:02x}")]
    InvalidFlags {
        /// The flags byte.
        flags: u8,
    },
}

/// Why a frame could not be encoded. The destination buffer is left as it
/// was before the call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoded frame would be larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Whole frame length, header included.
        len: u64,
        /// The configured `frame_bytes_max`.
        max: u32,
    },
    /// A string is longer than its limit.
    #[error("field `{field}` is {len} bytes long, limit {max}")]
    StringTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list has more elements than its limit.
    #[error("field `{field}` has {count} elements, limit {max}")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its element count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A message's total length is over the message limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Declared length (or chunk end).
        len: u64,
        /// The limit.
        max: u32,
    },
    /// Lengths that must agree do not.
    #[error("inconsistent lengths in `{field}`: {detail}")]
    InconsistentLength {
        /// The field.
        field: &'static str,
        /// What disagrees.
        detail: &'static str,
    },
    /// Undefined flag bits are set.
    #[error("undefined flag bits 0x{flags:02x}")]
    InvalidFlags {
        /// The flags byte.
        flags: u8,
    },
}
