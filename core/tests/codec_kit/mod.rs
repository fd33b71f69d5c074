//! Hand-built frame bodies (written field by field) and the encode/decode
//! helpers the codec limit tests share.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_core::frame::*;

// ---------------------------------------------------------------------------
// Hand-built frames
// ---------------------------------------------------------------------------

/// A frame body written field by field.
#[derive(Default, Clone)]
pub struct Body(pub Vec<u8>);

impl Body {
    pub fn new() -> Self {
        Body::default()
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.put_u8(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.put_u16(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.put_u32(v);
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.put_u64(v);
        self
    }
    pub fn raw(mut self, v: &[u8]) -> Self {
        self.0.put_slice(v);
        self
    }
    /// A string: `u16` length then the bytes.
    pub fn str(self, s: &str) -> Self {
        self.bytes16(s.as_bytes())
    }
    pub fn bytes16(self, b: &[u8]) -> Self {
        self.u16(b.len() as u16).raw(b)
    }
    /// A payload: `u32` length then the bytes.
    pub fn payload(self, b: &[u8]) -> Self {
        self.u32(b.len() as u32).raw(b)
    }
    /// A whole frame of `kind` with this body.
    pub fn frame(&self, kind: u8) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_u32((self.0.len() + 2) as u32);
        out.put_u8(PROTOCOL_VERSION);
        out.put_u8(kind);
        out.put_slice(&self.0);
        out
    }
}

pub fn dec(mut buf: BytesMut) -> Result<Option<Frame>, DecodeError> {
    decode(&mut buf, &Limits::default())
}

pub fn dec_err(buf: BytesMut) -> DecodeError {
    match dec(buf) {
        Err(e) => e,
        Ok(f) => panic!("expected an error, decoded {f:?}"),
    }
}

pub fn dec_ok(buf: BytesMut) -> Frame {
    match dec(buf) {
        Ok(Some(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Encodes `f` after some bytes already in the buffer; on error checks the
/// buffer is unchanged.
pub fn enc(f: &Frame, limits: &Limits) -> Result<BytesMut, EncodeError> {
    let prefix = b"previous frames";
    let mut buf = BytesMut::new();
    buf.put_slice(prefix);
    match f.encode(&mut buf, limits) {
        Ok(n) => {
            assert_eq!(buf.len(), prefix.len() + n);
            Ok(buf.split_off(prefix.len()))
        }
        Err(e) => {
            assert_eq!(&buf[..], &prefix[..], "encode error changed the buffer");
            Err(e)
        }
    }
}

pub fn enc_err(f: &Frame) -> EncodeError {
    enc(f, &Limits::default()).unwrap_err()
}

/// Encodes and decodes `f` with default limits.
pub fn round_trip(f: &Frame) {
    let bytes = enc(f, &Limits::default()).unwrap();
    let mut buf = bytes.clone();
    assert_eq!(
        decode(&mut buf, &Limits::default()).unwrap().as_ref(),
        Some(f)
    );
    assert!(buf.is_empty());
}

pub fn name(n: usize) -> String {
    "n".repeat(n)
}

pub fn hello() -> Hello {
    Hello {
        cluster: "c".into(),
        instance: "i".into(),
        process: "p".into(),
        incarnation: 1,
        capabilities: 0,
        client_nonce: [0; NONCE_BYTES],
        services: vec![],
        load: 0,
        groups: vec![],
        subscriptions: vec![],
        credential: String::new(),
    }
}

pub fn member() -> MemberInfo {
    MemberInfo {
        member_id: 1,
        incarnation: 2,
        instance: "i".into(),
        process: "p".into(),
        services: vec![],
        load: 0,
        groups: vec![],
    }
}

pub fn send(flags: u8, total_len: u32, payload: &'static [u8]) -> Frame {
    Frame::Send(Send {
        seq: 1,
        flags,
        to: Address::Broadcast,
        correlation: 0,
        timeout_ms: 0,
        total_len,
        payload: Bytes::from_static(payload),
    })
}

pub fn deliver(flags: u8, total_len: u32, payload: &'static [u8]) -> Frame {
    Frame::Deliver(Deliver {
        gseq: 1,
        from: 2,
        from_incarnation: 3,
        seq: 4,
        flags,
        to: Address::Broadcast,
        correlation: 0,
        total_len,
        payload: Bytes::from_static(payload),
    })
}

/// Body of a `Send` to `Broadcast`.
pub fn send_body(flags: u8, total_len: u32, payload: &[u8]) -> Body {
    Body::new()
        .u64(1)
        .u8(flags)
        .u8(5)
        .u64(0)
        .u32(0)
        .u32(total_len)
        .payload(payload)
}

/// Body of a `Deliver` to `Broadcast`.
pub fn deliver_body(flags: u8, total_len: u32, payload: &[u8]) -> Body {
    Body::new()
        .u64(1)
        .u64(2)
        .u64(3)
        .u64(4)
        .u8(flags)
        .u8(5)
        .u64(0)
        .u32(total_len)
        .payload(payload)
}

/// Body of a `Hello` up to (not including) its services.
pub fn hello_head() -> Body {
    Body::new()
        .str("c")
        .str("i")
        .str("p")
        .u64(1)
        .u32(0)
        .raw(&[0; NONCE_BYTES])
}

/// A snapshot member with the given groups count and no group bytes.
pub fn member_body_head() -> Body {
    Body::new().u64(1).u64(2).str("i").str("p").u16(0).u32(0)
}

pub fn is_truncated(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Truncated { .. })
}

pub trait WithTo {
    fn clone_with_to(&self, to: Address) -> Frame;
}

impl WithTo for Frame {
    fn clone_with_to(&self, to: Address) -> Frame {
        match self {
            Frame::Send(s) => Frame::Send(Send { to, ..s.clone() }),
            Frame::Deliver(d) => Frame::Deliver(Deliver { to, ..d.clone() }),
            other => panic!("{} has no address", other.name()),
        }
    }
}
