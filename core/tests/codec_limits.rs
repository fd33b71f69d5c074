//! Every codec limit is enforced, on decode (hand-built bytes) and on
//! encode, each with its own error variant.
#![allow(clippy::unwrap_used)]

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_core::frame::*;

// ---------------------------------------------------------------------------
// Hand-built frames
// ---------------------------------------------------------------------------

/// A frame body written field by field.
#[derive(Default, Clone)]
struct Body(Vec<u8>);

impl Body {
    fn new() -> Self {
        Body::default()
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.put_u8(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.put_u16(v);
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.put_u32(v);
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.put_u64(v);
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.put_slice(v);
        self
    }
    /// A string: `u16` length then the bytes.
    fn str(self, s: &str) -> Self {
        self.bytes16(s.as_bytes())
    }
    fn bytes16(self, b: &[u8]) -> Self {
        self.u16(b.len() as u16).raw(b)
    }
    /// A payload: `u32` length then the bytes.
    fn payload(self, b: &[u8]) -> Self {
        self.u32(b.len() as u32).raw(b)
    }
    /// A whole frame of `kind` with this body.
    fn frame(&self, kind: u8) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_u32((self.0.len() + 2) as u32);
        out.put_u8(PROTOCOL_VERSION);
        out.put_u8(kind);
        out.put_slice(&self.0);
        out
    }
}

fn dec(mut buf: BytesMut) -> Result<Option<Frame>, DecodeError> {
    decode(&mut buf, &Limits::default())
}

fn dec_err(buf: BytesMut) -> DecodeError {
    match dec(buf) {
        Err(e) => e,
        Ok(f) => panic!("expected an error, decoded {f:?}"),
    }
}

fn dec_ok(buf: BytesMut) -> Frame {
    match dec(buf) {
        Ok(Some(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Encodes `f` after some bytes already in the buffer; on error checks the
/// buffer is unchanged.
fn enc(f: &Frame, limits: &Limits) -> Result<BytesMut, EncodeError> {
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

fn enc_err(f: &Frame) -> EncodeError {
    enc(f, &Limits::default()).unwrap_err()
}

/// Encodes and decodes `f` with default limits.
fn round_trip(f: &Frame) {
    let bytes = enc(f, &Limits::default()).unwrap();
    let mut buf = bytes.clone();
    assert_eq!(
        decode(&mut buf, &Limits::default()).unwrap().as_ref(),
        Some(f)
    );
    assert!(buf.is_empty());
}

fn name(n: usize) -> String {
    "n".repeat(n)
}

fn hello() -> Hello {
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
    }
}

fn member() -> MemberInfo {
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

fn send(flags: u8, total_len: u32, payload: &'static [u8]) -> Frame {
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

fn deliver(flags: u8, total_len: u32, payload: &'static [u8]) -> Frame {
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
fn send_body(flags: u8, total_len: u32, payload: &[u8]) -> Body {
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
fn deliver_body(flags: u8, total_len: u32, payload: &[u8]) -> Body {
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
fn hello_head() -> Body {
    Body::new()
        .str("c")
        .str("i")
        .str("p")
        .u64(1)
        .u32(0)
        .raw(&[0; NONCE_BYTES])
}

/// A snapshot member with the given groups count and no group bytes.
fn member_body_head() -> Body {
    Body::new().u64(1).u64(2).str("i").str("p").u16(0).u32(0)
}

fn is_truncated(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Truncated { .. })
}

// ---------------------------------------------------------------------------
// Header: length, version, kind
// ---------------------------------------------------------------------------

#[test]
fn frame_too_short() {
    for len in [0u32, 1] {
        let mut buf = BytesMut::new();
        buf.put_u32(len);
        assert_eq!(dec_err(buf), DecodeError::FrameTooShort { len });
    }
    // Two bytes (version and kind) is long enough for the header; the body
    // of every kind is then missing.
    let e = Body::new().frame(kind::PING);
    assert!(is_truncated(&dec_err(e)));
}

#[test]
fn frame_too_large_refused_as_soon_as_length_arrives() {
    let max = FRAME_BYTES_MAX_DEFAULT;
    // Only the four length bytes are present: refused before the body.
    let mut buf = BytesMut::new();
    buf.put_u32(max - 4 + 1);
    assert_eq!(
        dec_err(buf),
        DecodeError::FrameTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    // Exactly at the limit: waits for the body.
    let mut buf = BytesMut::new();
    buf.put_u32(max - 4);
    assert_eq!(dec(buf), Ok(None));
    // The largest length does not overflow.
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    assert_eq!(
        dec_err(buf),
        DecodeError::FrameTooLarge {
            len: u64::from(u32::MAX) + 4,
            max
        }
    );
    // Fewer than four bytes: nothing to judge yet.
    assert_eq!(dec(BytesMut::from(&[0xFF, 0xFF, 0xFF][..])), Ok(None));
}

#[test]
fn frame_too_large_on_encode() {
    let limits = Limits::default();
    let max = limits.frame_bytes_max as usize;
    // Chunk: 6 header + 8 id + 4 offset + 4 payload length.
    let fixed = 6 + 8 + 4 + 4;
    let chunk = |n: usize| {
        Frame::Chunk(Chunk {
            id: 1,
            offset: 0,
            payload: Bytes::from(vec![0u8; n]),
        })
    };
    let at_limit = enc(&chunk(max - fixed), &limits).unwrap();
    assert_eq!(at_limit.len(), max);
    let mut buf = at_limit.clone();
    assert!(decode(&mut buf, &limits).unwrap().is_some());
    assert_eq!(
        enc(&chunk(max - fixed + 1), &limits).unwrap_err(),
        EncodeError::FrameTooLarge {
            len: max as u64 + 1,
            max: max as u32
        }
    );
}

#[test]
fn smaller_configured_limit() {
    assert_eq!(
        Limits::with_frame_bytes_max(1).frame_bytes_max,
        FRAME_BYTES_MAX_FLOOR
    );
    assert_eq!(
        Limits::with_frame_bytes_max(u32::MAX).frame_bytes_max,
        FRAME_BYTES_MAX_CEILING
    );
    let small = Limits::with_frame_bytes_max(8 * 1024);
    assert_eq!(small.frame_bytes_max, 8 * 1024);
    let max = small.frame_bytes_max;

    let chunk = |n: usize| {
        Frame::Chunk(Chunk {
            id: 1,
            offset: 0,
            payload: Bytes::from(vec![0u8; n]),
        })
    };
    let fixed = 6 + 8 + 4 + 4;
    // Encode: refused under the small limit, fine under the default.
    let big = chunk(max as usize - fixed + 1);
    assert_eq!(
        enc(&big, &small).unwrap_err(),
        EncodeError::FrameTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    let bytes = enc(&big, &Limits::default()).unwrap();
    // Decode: refused from the length alone under the small limit.
    let mut head = BytesMut::from(&bytes[..4]);
    assert_eq!(
        decode(&mut head, &small),
        Err(DecodeError::FrameTooLarge {
            len: u64::from(max) + 1,
            max
        })
    );
    let mut whole = bytes.clone();
    assert_eq!(
        decode(&mut whole, &small),
        Err(DecodeError::FrameTooLarge {
            len: u64::from(max) + 1,
            max
        })
    );
    // One byte less fits.
    let fits = enc(&chunk(max as usize - fixed), &small).unwrap();
    let mut buf = fits.clone();
    assert!(decode(&mut buf, &small).unwrap().is_some());
}

#[test]
fn unsupported_version_refused_before_body() {
    for version in [0u8, 2, 0xFF] {
        let mut buf = BytesMut::new();
        buf.put_u32(10);
        buf.put_u8(version);
        assert_eq!(
            dec_err(buf.clone()),
            DecodeError::UnsupportedVersion { version }
        );
        buf.put_u8(kind::PING);
        buf.put_u64(0);
        assert_eq!(dec_err(buf), DecodeError::UnsupportedVersion { version });
    }
}

#[test]
fn unknown_kind_refused_before_body() {
    for k in [0x00u8, 0x0A, 0x0F, 0x17, 0x26, 0x34, 0xFF] {
        let mut buf = BytesMut::new();
        buf.put_u32(10);
        buf.put_u8(PROTOCOL_VERSION);
        buf.put_u8(k);
        assert_eq!(dec_err(buf.clone()), DecodeError::UnknownKind { kind: k });
        buf.put_u64(0);
        assert_eq!(dec_err(buf), DecodeError::UnknownKind { kind: k });
    }
}

// ---------------------------------------------------------------------------
// Body length
// ---------------------------------------------------------------------------

#[test]
fn truncated() {
    assert_eq!(
        dec_err(Body::new().raw(&[0; 7]).frame(kind::PING)),
        DecodeError::Truncated { field: "nonce" }
    );
    assert_eq!(
        dec_err(Body::new().raw(&[0; PROOF_BYTES - 1]).frame(kind::AUTH)),
        DecodeError::Truncated {
            field: "client_proof"
        }
    );
    // A string whose bytes are missing.
    assert_eq!(
        dec_err(Body::new().u16(10).raw(b"abc").frame(kind::GOODBYE)),
        DecodeError::Truncated { field: "text" }
    );
    // A string length cut in half.
    assert_eq!(
        dec_err(Body::new().u8(0).frame(kind::GOODBYE)),
        DecodeError::Truncated { field: "text" }
    );
    // A payload whose bytes are missing.
    assert_eq!(
        dec_err(
            Body::new()
                .u64(1)
                .u32(0)
                .u32(100)
                .raw(&[0; 99])
                .frame(kind::CHUNK)
        ),
        DecodeError::Truncated { field: "payload" }
    );
    // Every proper prefix of a valid body is Truncated, never a panic or a
    // frame.
    let f = Frame::Hello(Hello {
        services: vec!["svc".into()],
        groups: vec!["g".into()],
        subscriptions: vec![SubscriptionSpec {
            sub_id: 1,
            filter: Filter::all(),
        }],
        ..hello()
    });
    let bytes = enc(&f, &Limits::default()).unwrap();
    let body = &bytes[6..];
    for cut in 0..body.len() {
        let e = dec_err(Body::new().raw(&body[..cut]).frame(kind::HELLO));
        assert!(is_truncated(&e), "cut at {cut}: {e:?}");
    }
}

#[test]
fn trailing_bytes() {
    assert_eq!(
        dec_err(Body::new().u64(7).u8(0).frame(kind::PING)),
        DecodeError::TrailingBytes {
            kind: "Ping",
            extra: 1
        }
    );
    assert_eq!(
        dec_err(Body::new().str("bye").raw(&[1, 2, 3]).frame(kind::GOODBYE)),
        DecodeError::TrailingBytes {
            kind: "Goodbye",
            extra: 3
        }
    );
    // The bytes after a frame's length belong to the next frame, not this
    // one.
    let mut buf = Body::new().u64(7).frame(kind::PING);
    buf.put_slice(&[0xAA; 3]);
    assert_eq!(
        decode(&mut buf, &Limits::default()),
        Ok(Some(Frame::Ping(7)))
    );
    assert_eq!(&buf[..], &[0xAA; 3]);
}

#[test]
fn count_beyond_remaining_bytes_is_truncated() {
    // Counts within their limit but far more than the body could hold.
    assert_eq!(
        dec_err(
            Body::new()
                .u64(5)
                .u64(1)
                .u32(0)
                .u16(OUTCOME_MISSED_MAX as u16)
                .frame(kind::OUTCOME)
        ),
        DecodeError::Truncated { field: "missed" }
    );
    assert_eq!(
        dec_err(
            Body::new()
                .u16(SNAPSHOT_MEMBERS_MAX as u16)
                .raw(&[0; 64])
                .frame(kind::SNAPSHOT)
        ),
        DecodeError::Truncated { field: "members" }
    );
    assert_eq!(
        dec_err(hello_head().u16(SERVICES_MAX as u16).frame(kind::HELLO)),
        DecodeError::Truncated { field: "services" }
    );
    assert_eq!(
        dec_err(
            hello_head()
                .u16(0)
                .u32(0)
                .u16(0)
                .u16(SUBSCRIPTIONS_MAX as u16)
                .raw(&[0; 8])
                .frame(kind::HELLO)
        ),
        DecodeError::Truncated {
            field: "subscriptions"
        }
    );
}

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

#[test]
fn string_too_long_name() {
    let max = NAME_BYTES_MAX;
    // Decode. In the frames whose names the server validates itself (a
    // `Join` or `Leave` group, `Hello` names, services and groups, a
    // `Publish{ServiceState}` service) an over-long name decodes: the server
    // refuses it with `Reject{Invalid}` or `Nack{Invalid}` and the member
    // lives on.
    assert_eq!(
        dec_ok(Body::new().u64(1).str(&name(max + 1)).frame(kind::JOIN)),
        Frame::Join(GroupOp {
            seq: 1,
            group: name(max + 1)
        })
    );
    assert!(matches!(
        dec_ok(hello_head().u16(1).str(&name(max + 1)).u32(0).u16(0).u16(0).frame(kind::HELLO)),
        Frame::Hello(h) if h.services == vec![name(max + 1)]
    ));
    assert!(matches!(
        dec_ok(Body::new().u64(1).u8(1).str(&name(max + 1)).u8(1).frame(kind::PUBLISH)),
        Frame::Publish(p) if matches!(&p.event, EventBody::ServiceState { service, .. } if service.len() == max + 1)
    ));
    // Such a name is still bounded by the frame: its length alone, without
    // the bytes, is a truncated frame.
    assert_eq!(
        dec_err(Body::new().u64(1).u16(u16::MAX).frame(kind::LEAVE)),
        DecodeError::Truncated { field: "group" }
    );
    // At the limit: fine.
    round_trip(&Frame::Join(GroupOp {
        seq: 1,
        group: name(max),
    }));

    // Encode: the same fields carry such names both ways (a decoded frame
    // re-encodes), the server refuses them.
    round_trip(&Frame::Join(GroupOp {
        seq: 1,
        group: name(max + 1),
    }));
    round_trip(&Frame::Hello(Hello {
        process: name(max + 1),
        groups: vec!["ok".into(), name(max + 1)],
        ..hello()
    }));
    // Elsewhere (addresses, views) names stay within the limit.
    assert_eq!(
        enc_err(&send(0, 0, b"").clone_with_to(Address::Instance(name(max + 1)))),
        EncodeError::StringTooLong {
            field: "instance",
            len: max + 1,
            max
        }
    );
}

trait WithTo {
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

#[test]
fn string_too_long_topic() {
    let max = TOPIC_BYTES_MAX;
    assert_eq!(
        dec_err(
            Body::new()
                .u64(1)
                .u32(2)
                .u16(EventKind::ALL)
                .str(&"t".repeat(max + 1))
                .frame(kind::SUBSCRIBE)
        ),
        DecodeError::StringTooLong {
            field: "topic_prefix",
            len: max + 1,
            max
        }
    );
    assert_eq!(
        dec_err(
            Body::new()
                .u64(1)
                .u8(3)
                .str(&"t".repeat(max + 1))
                .payload(b"")
                .frame(kind::PUBLISH)
        ),
        DecodeError::StringTooLong {
            field: "topic",
            len: max + 1,
            max
        }
    );
    // A topic may be longer than a name.
    round_trip(&Frame::Publish(Publish {
        seq: 1,
        event: EventBody::Custom {
            topic: "t".repeat(max),
            payload: Bytes::new(),
        },
    }));

    assert_eq!(
        enc_err(&Frame::Subscribe(Subscribe {
            seq: 1,
            sub_id: 2,
            filter: Filter {
                kinds: 1,
                topic_prefix: "t".repeat(max + 1)
            }
        })),
        EncodeError::StringTooLong {
            field: "topic_prefix",
            len: max + 1,
            max
        }
    );
    assert_eq!(
        enc_err(&Frame::Notify(Notify {
            gseq: 1,
            epoch: 1,
            origin_incarnation: 0,
            origin_seq: 0,
            event: ClusterEvent::Custom {
                member_id: 1,
                topic: "t".repeat(max + 1),
                payload: Bytes::new()
            }
        })),
        EncodeError::StringTooLong {
            field: "topic",
            len: max + 1,
            max
        }
    );
}

#[test]
fn string_too_long_text() {
    let max = TEXT_BYTES_MAX;
    assert_eq!(
        dec_err(Body::new().str(&"x".repeat(max + 1)).frame(kind::GOODBYE)),
        DecodeError::StringTooLong {
            field: "text",
            len: max + 1,
            max
        }
    );
    assert_eq!(
        dec_err(
            Body::new()
                .u8(1)
                .str(&"x".repeat(max + 1))
                .frame(kind::REJECT)
        ),
        DecodeError::StringTooLong {
            field: "text",
            len: max + 1,
            max
        }
    );
    round_trip(&Frame::Error(ErrorFrame {
        code: ErrorCode::Internal,
        text: "x".repeat(max),
    }));
    assert_eq!(
        enc_err(&Frame::Error(ErrorFrame {
            code: ErrorCode::Internal,
            text: "x".repeat(max + 1)
        })),
        EncodeError::StringTooLong {
            field: "text",
            len: max + 1,
            max
        }
    );
    // The limit is in bytes, not characters.
    let wide = "é".repeat(max / 2 + 1);
    assert_eq!(
        enc_err(&Frame::Goodbye(Goodbye { text: wide.clone() })),
        EncodeError::StringTooLong {
            field: "text",
            len: wide.len(),
            max
        }
    );
}

#[test]
fn invalid_utf8() {
    assert_eq!(
        dec_err(Body::new().bytes16(&[0xFF, 0xFE]).frame(kind::GOODBYE)),
        DecodeError::InvalidUtf8 { field: "text" }
    );
    assert_eq!(
        dec_err(Body::new().u64(1).bytes16(b"ab\xC3").frame(kind::JOIN)),
        DecodeError::InvalidUtf8 { field: "group" }
    );
    assert_eq!(
        dec_err(
            Body::new()
                .u64(1)
                .u8(3)
                .bytes16(&[0xED, 0xA0, 0x80]) // a surrogate
                .payload(b"")
                .frame(kind::PUBLISH)
        ),
        DecodeError::InvalidUtf8 { field: "topic" }
    );
}

// ---------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------

#[test]
fn too_many_services() {
    let max = SERVICES_MAX;
    assert_eq!(
        dec_err(hello_head().u16(max as u16 + 1).frame(kind::HELLO)),
        DecodeError::TooMany {
            field: "services",
            count: max + 1,
            max
        }
    );
    round_trip(&Frame::Hello(Hello {
        services: vec!["s".into(); max],
        ..hello()
    }));
    assert_eq!(
        enc_err(&Frame::Hello(Hello {
            services: vec!["s".into(); max + 1],
            ..hello()
        })),
        EncodeError::TooMany {
            field: "services",
            count: max + 1,
            max
        }
    );
    // In a snapshot member too.
    assert_eq!(
        enc_err(&Frame::Snapshot(Snapshot {
            members: vec![MemberInfo {
                services: vec![String::new(); max + 1],
                ..member()
            }]
        })),
        EncodeError::TooMany {
            field: "services",
            count: max + 1,
            max
        }
    );
}

#[test]
fn too_many_groups() {
    let max = GROUPS_PER_MEMBER_MAX;
    // A snapshot member with too many groups.
    assert_eq!(
        dec_err(
            Body::new()
                .u16(1)
                .raw(&member_body_head().u16(max as u16 + 1).0)
                .frame(kind::SNAPSHOT)
        ),
        DecodeError::TooMany {
            field: "groups",
            count: max + 1,
            max
        }
    );
    // A hello with too many groups.
    assert_eq!(
        dec_err(
            hello_head()
                .u16(0)
                .u32(0)
                .u16(max as u16 + 1)
                .frame(kind::HELLO)
        ),
        DecodeError::TooMany {
            field: "groups",
            count: max + 1,
            max
        }
    );
    round_trip(&Frame::Snapshot(Snapshot {
        members: vec![MemberInfo {
            groups: vec!["g".into(); max],
            ..member()
        }],
    }));
    assert_eq!(
        enc_err(&Frame::Notify(Notify {
            gseq: 1,
            epoch: 1,
            origin_incarnation: 0,
            origin_seq: 0,
            event: ClusterEvent::MemberJoined(MemberInfo {
                groups: vec!["g".into(); max + 1],
                ..member()
            })
        })),
        EncodeError::TooMany {
            field: "groups",
            count: max + 1,
            max
        }
    );
    assert_eq!(
        enc_err(&Frame::Hello(Hello {
            groups: vec!["g".into(); max + 1],
            ..hello()
        })),
        EncodeError::TooMany {
            field: "groups",
            count: max + 1,
            max
        }
    );
}

#[test]
fn too_many_subscriptions() {
    let max = SUBSCRIPTIONS_MAX;
    assert_eq!(
        dec_err(
            hello_head()
                .u16(0)
                .u32(0)
                .u16(0)
                .u16(max as u16 + 1)
                .frame(kind::HELLO)
        ),
        DecodeError::TooMany {
            field: "subscriptions",
            count: max + 1,
            max
        }
    );
    let sub = SubscriptionSpec {
        sub_id: 1,
        filter: Filter::all(),
    };
    round_trip(&Frame::Hello(Hello {
        subscriptions: vec![sub.clone(); max],
        ..hello()
    }));
    assert_eq!(
        enc_err(&Frame::Hello(Hello {
            subscriptions: vec![sub; max + 1],
            ..hello()
        })),
        EncodeError::TooMany {
            field: "subscriptions",
            count: max + 1,
            max
        }
    );
}

#[test]
fn too_many_snapshot_members() {
    let max = SNAPSHOT_MEMBERS_MAX;
    assert_eq!(
        dec_err(Body::new().u16(max as u16 + 1).frame(kind::SNAPSHOT)),
        DecodeError::TooMany {
            field: "members",
            count: max + 1,
            max
        }
    );
    round_trip(&Frame::Snapshot(Snapshot {
        members: vec![member(); max],
    }));
    assert_eq!(
        enc_err(&Frame::Snapshot(Snapshot {
            members: vec![member(); max + 1]
        })),
        EncodeError::TooMany {
            field: "members",
            count: max + 1,
            max
        }
    );
}

#[test]
fn too_many_outcome_missed() {
    let max = OUTCOME_MISSED_MAX;
    assert_eq!(
        dec_err(
            Body::new()
                .u64(5)
                .u64(1)
                .u32(0)
                .u16(max as u16 + 1)
                .frame(kind::OUTCOME)
        ),
        DecodeError::TooMany {
            field: "missed",
            count: max + 1,
            max
        }
    );
    let m = Missed {
        member_id: 1,
        reason: MissReason::Left,
    };
    round_trip(&Frame::Outcome(Outcome {
        gseq: 5,
        seq: 1,
        delivered: 0,
        missed: vec![m; max],
    }));
    assert_eq!(
        enc_err(&Frame::Outcome(Outcome {
            gseq: 5,
            seq: 1,
            delivered: 0,
            missed: vec![m; max + 1]
        })),
        EncodeError::TooMany {
            field: "missed",
            count: max + 1,
            max
        }
    );
}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

#[test]
fn invalid_address_tag() {
    for tag in [6u8, 0xFF] {
        let mut body = Body::new().u64(1).u8(0).u8(tag);
        body = body.u64(0).u32(0).u32(0).payload(b"");
        assert_eq!(
            dec_err(body.frame(kind::SEND)),
            DecodeError::InvalidTag {
                field: "address",
                tag
            }
        );
        let body = Body::new()
            .u64(1)
            .u64(2)
            .u64(3)
            .u64(4)
            .u8(0)
            .u8(tag)
            .u64(0)
            .u32(0)
            .payload(b"");
        assert_eq!(
            dec_err(body.frame(kind::DELIVER)),
            DecodeError::InvalidTag {
                field: "address",
                tag
            }
        );
    }
    // Every defined tag decodes.
    for to in [
        Address::MemberId(9),
        Address::Member {
            instance: "i".into(),
            process: "p".into(),
        },
        Address::Instance("i".into()),
        Address::Group("g".into()),
        Address::Anycast("g".into()),
        Address::Broadcast,
    ] {
        round_trip(&send(0, 0, b"").clone_with_to(to.clone()));
        round_trip(&deliver(0, 0, b"").clone_with_to(to));
    }
}

#[test]
fn invalid_reason_codes() {
    let text = |b: Body| b.str("why");
    // Reject reason.
    for tag in [0u8, RejectReason::ALL.len() as u8 + 1, 0xFF] {
        assert_eq!(
            dec_err(text(Body::new().u8(tag)).frame(kind::REJECT)),
            DecodeError::InvalidTag {
                field: "reason",
                tag
            }
        );
    }
    // Nack reason.
    for tag in [0u8, NackReason::ALL.len() as u8 + 1] {
        assert_eq!(
            dec_err(Body::new().u64(5).u64(1).u8(tag).frame(kind::NACK)),
            DecodeError::InvalidTag {
                field: "reason",
                tag
            }
        );
    }
    // Error code.
    for tag in [0u8, ErrorCode::ALL.len() as u8 + 1] {
        assert_eq!(
            dec_err(text(Body::new().u8(tag)).frame(kind::ERROR)),
            DecodeError::InvalidTag { field: "code", tag }
        );
    }
    // Outcome missed reason.
    for tag in [0u8, MissReason::ALL.len() as u8 + 1] {
        assert_eq!(
            dec_err(
                Body::new()
                    .u64(5)
                    .u64(1)
                    .u32(0)
                    .u16(1)
                    .u64(7)
                    .u8(tag)
                    .frame(kind::OUTCOME)
            ),
            DecodeError::InvalidTag {
                field: "missed.reason",
                tag
            }
        );
    }
    // Notify MemberFailed reason.
    for tag in [0u8, FailReason::ALL.len() as u8 + 1] {
        assert_eq!(
            dec_err(
                Body::new()
                    .u64(1)
                    .u64(1)
                    .u64(0)
                    .u64(0)
                    .u8(3)
                    .u64(7)
                    .u8(tag)
                    .frame(kind::NOTIFY)
            ),
            DecodeError::InvalidTag {
                field: "reason",
                tag
            }
        );
    }
    // Every defined code round-trips.
    for &reason in RejectReason::ALL {
        round_trip(&Frame::Reject(Reject {
            reason,
            text: String::new(),
        }));
    }
    for &reason in NackReason::ALL {
        round_trip(&Frame::Nack(Nack {
            gseq: 5,
            seq: 1,
            reason,
        }));
    }
    for &code in ErrorCode::ALL {
        round_trip(&Frame::Error(ErrorFrame {
            code,
            text: String::new(),
        }));
    }
    round_trip(&Frame::Outcome(Outcome {
        gseq: 5,
        seq: 1,
        delivered: 2,
        missed: MissReason::ALL
            .iter()
            .map(|&reason| Missed {
                member_id: 3,
                reason,
            })
            .collect(),
    }));
    for &reason in FailReason::ALL {
        round_trip(&Frame::Notify(Notify {
            gseq: 1,
            epoch: 1,
            origin_incarnation: 0,
            origin_seq: 0,
            event: ClusterEvent::MemberFailed {
                member_id: 1,
                reason,
            },
        }));
    }
}

#[test]
fn invalid_bool() {
    for tag in [2u8, 0xFF] {
        assert_eq!(
            dec_err(
                Body::new()
                    .u64(1)
                    .u8(1)
                    .str("svc")
                    .u8(tag)
                    .frame(kind::PUBLISH)
            ),
            DecodeError::InvalidTag { field: "up", tag }
        );
        assert_eq!(
            dec_err(
                Body::new()
                    .u64(1)
                    .u64(1)
                    .u64(0)
                    .u64(0)
                    .u8(8)
                    .u64(7)
                    .str("svc")
                    .u8(tag)
                    .frame(kind::NOTIFY)
            ),
            DecodeError::InvalidTag { field: "up", tag }
        );
    }
    for up in [false, true] {
        assert_eq!(
            dec_ok(
                Body::new()
                    .u64(1)
                    .u8(1)
                    .str("svc")
                    .u8(u8::from(up))
                    .frame(kind::PUBLISH)
            ),
            Frame::Publish(Publish {
                seq: 1,
                event: EventBody::ServiceState {
                    service: "svc".into(),
                    up
                }
            })
        );
    }
}

#[test]
fn invalid_event_tag() {
    for tag in [0u8, 4, 0xFF] {
        assert_eq!(
            dec_err(Body::new().u64(1).u8(tag).frame(kind::PUBLISH)),
            DecodeError::InvalidTag {
                field: "event",
                tag
            }
        );
    }
    for tag in [0u8, 11, 0xFF] {
        assert_eq!(
            dec_err(
                Body::new()
                    .u64(1)
                    .u64(1)
                    .u64(0)
                    .u64(0)
                    .u8(tag)
                    .frame(kind::NOTIFY)
            ),
            DecodeError::InvalidTag {
                field: "event",
                tag
            }
        );
    }
}

// ---------------------------------------------------------------------------
// Messages: sizes, MORE rule, flags
// ---------------------------------------------------------------------------

#[test]
fn message_too_large_total_len() {
    let max = MESSAGE_BYTES_MAX;
    let over = DecodeError::MessageTooLarge {
        len: u64::from(max) + 1,
        max,
    };
    assert_eq!(
        dec_err(send_body(flags::MORE, max + 1, b"x").frame(kind::SEND)),
        over
    );
    assert_eq!(
        dec_err(deliver_body(flags::MORE, max + 1, b"x").frame(kind::DELIVER)),
        over
    );
    assert_eq!(
        dec_err(send_body(flags::MORE, u32::MAX, b"").frame(kind::SEND)),
        DecodeError::MessageTooLarge {
            len: u64::from(u32::MAX),
            max
        }
    );
    // At the limit: fine.
    round_trip(&send(flags::MORE, max, b"x"));
    round_trip(&deliver(flags::MORE, max, b"x"));

    let over = EncodeError::MessageTooLarge {
        len: u64::from(max) + 1,
        max,
    };
    assert_eq!(enc_err(&send(flags::MORE, max + 1, b"x")), over);
    assert_eq!(enc_err(&deliver(flags::MORE, max + 1, b"x")), over);
}

#[test]
fn message_too_large_chunk_end() {
    let max = MESSAGE_BYTES_MAX;
    let chunk_body = |offset: u32, payload: &[u8]| {
        Body::new()
            .u64(1)
            .u32(offset)
            .payload(payload)
            .frame(kind::CHUNK)
    };
    assert_eq!(
        dec_err(chunk_body(max - 2, b"abc")),
        DecodeError::MessageTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    assert_eq!(
        dec_err(chunk_body(u32::MAX, b"a")),
        DecodeError::MessageTooLarge {
            len: u64::from(u32::MAX) + 1,
            max
        }
    );
    assert_eq!(
        dec_err(chunk_body(max + 1, b"")),
        DecodeError::MessageTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    // Ending exactly at the limit: fine.
    assert!(matches!(
        dec_ok(chunk_body(max - 3, b"abc")),
        Frame::Chunk(_)
    ));

    let chunk = |offset: u32, payload: &'static [u8]| {
        Frame::Chunk(Chunk {
            id: 1,
            offset,
            payload: Bytes::from_static(payload),
        })
    };
    round_trip(&chunk(max - 3, b"abc"));
    assert_eq!(
        enc_err(&chunk(max - 2, b"abc")),
        EncodeError::MessageTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    assert_eq!(
        enc_err(&chunk(u32::MAX, b"a")),
        EncodeError::MessageTooLarge {
            len: u64::from(u32::MAX) + 1,
            max
        }
    );
}

#[test]
fn inconsistent_length() {
    type Build = fn(u8, u32, &[u8]) -> Body;
    let cases: [(&str, u8, Build); 2] = [
        ("send", kind::SEND, send_body),
        ("deliver", kind::DELIVER, deliver_body),
    ];
    for (field, k, body) in cases {
        // MORE set but the payload is the whole message.
        let e = dec_err(body(flags::MORE, 3, b"abc").frame(k));
        assert!(
            matches!(e, DecodeError::InconsistentLength { field: f, .. } if f == field),
            "{e:?}"
        );
        let e = dec_err(body(flags::MORE, 0, b"").frame(k));
        assert!(matches!(e, DecodeError::InconsistentLength { .. }), "{e:?}");
        // MORE clear but the payload is only part of the message.
        let e = dec_err(body(0, 4, b"abc").frame(k));
        assert!(
            matches!(e, DecodeError::InconsistentLength { field: f, .. } if f == field),
            "{e:?}"
        );
        // Payload longer than the whole message, with or without MORE.
        for flags in [0, flags::MORE] {
            let e = dec_err(body(flags, 2, b"abc").frame(k));
            assert!(
                matches!(e, DecodeError::InconsistentLength { field: f, .. } if f == field),
                "{e:?}"
            );
        }
        // Consistent: fine.
        assert!(dec(body(flags::MORE, 4, b"abc").frame(k))
            .unwrap()
            .is_some());
        assert!(dec(body(0, 3, b"abc").frame(k)).unwrap().is_some());
        assert!(dec(body(0, 0, b"").frame(k)).unwrap().is_some());
    }

    type Make = fn(u8, u32, &'static [u8]) -> Frame;
    let makers: [(&str, Make); 2] = [("send", send), ("deliver", deliver)];
    for (field, make) in makers {
        for (flags, total, payload) in [
            (flags::MORE, 3, &b"abc"[..]),
            (flags::MORE, 0, b""),
            (0, 4, b"abc"),
            (0, 2, b"abc"),
            (flags::MORE, 2, b"abc"),
        ] {
            let e = enc_err(&make(flags, total, payload));
            assert!(
                matches!(e, EncodeError::InconsistentLength { field: f, .. } if f == field),
                "{flags} {total} {payload:?}: {e:?}"
            );
        }
        round_trip(&make(flags::MORE, 4, b"abc"));
        round_trip(&make(0, 3, b"abc"));
    }
}

#[test]
fn invalid_flags() {
    for bad in [0x10u8, 0x80, 0xFF, flags::ALL | 0x20] {
        assert_eq!(
            dec_err(send_body(bad, 0, b"").frame(kind::SEND)),
            DecodeError::InvalidFlags { flags: bad }
        );
        assert_eq!(
            dec_err(deliver_body(bad, 0, b"").frame(kind::DELIVER)),
            DecodeError::InvalidFlags { flags: bad }
        );
        assert_eq!(
            enc_err(&send(bad, 0, b"")),
            EncodeError::InvalidFlags { flags: bad }
        );
        assert_eq!(
            enc_err(&deliver(bad, 0, b"")),
            EncodeError::InvalidFlags { flags: bad }
        );
    }
    // Every combination of defined flags is accepted (MORE per the rule).
    for f in 0..=flags::ALL {
        if f & !flags::ALL != 0 {
            continue;
        }
        let total = if f & flags::MORE != 0 { 4 } else { 3 };
        round_trip(&send(f, total, b"abc"));
        round_trip(&deliver(f, total, b"abc"));
    }
}

// ---------------------------------------------------------------------------
// Encode errors leave the buffer unchanged
// ---------------------------------------------------------------------------

#[test]
fn encode_error_leaves_buffer_unchanged() {
    let long = name(NAME_BYTES_MAX + 1);
    let failing = vec![
        // Fails at the first field (longer than a u16 length can say).
        Frame::Hello(Hello {
            cluster: "c".repeat(usize::from(u16::MAX) + 1),
            ..hello()
        }),
        // Fails deep in the body, after much has been written.
        Frame::Snapshot(Snapshot {
            members: vec![
                member(),
                member(),
                MemberInfo {
                    groups: vec!["g".into(), long.clone()],
                    ..member()
                },
            ],
        }),
        Frame::Hello(Hello {
            subscriptions: vec![
                SubscriptionSpec {
                    sub_id: 1,
                    filter: Filter::all(),
                },
                SubscriptionSpec {
                    sub_id: 2,
                    filter: Filter {
                        kinds: 1,
                        topic_prefix: "t".repeat(TOPIC_BYTES_MAX + 1),
                    },
                },
            ],
            ..hello()
        }),
        // Fails after the whole body: frame too large.
        Frame::Chunk(Chunk {
            id: 1,
            offset: 0,
            payload: Bytes::from(vec![0u8; FRAME_BYTES_MAX_DEFAULT as usize]),
        }),
        Frame::Publish(Publish {
            seq: 1,
            event: EventBody::Custom {
                topic: "t".into(),
                payload: Bytes::from(vec![0u8; FRAME_BYTES_MAX_DEFAULT as usize]),
            },
        }),
        send(0x40, 0, b""),
        send(flags::MORE, 3, b"abc"),
        deliver(flags::MORE, MESSAGE_BYTES_MAX + 1, b"x"),
        Frame::Outcome(Outcome {
            gseq: 5,
            seq: 1,
            delivered: 0,
            missed: vec![
                Missed {
                    member_id: 1,
                    reason: MissReason::Left,
                };
                OUTCOME_MISSED_MAX + 1
            ],
        }),
    ];
    for f in &failing {
        // `enc` checks the prefix is intact and nothing follows it.
        assert!(enc(f, &Limits::default()).is_err(), "{} encoded", f.name());
        // Also into an empty buffer, and into one with spare capacity.
        let mut empty = BytesMut::new();
        assert!(f.encode(&mut empty, &Limits::default()).is_err());
        assert!(empty.is_empty());
        let mut roomy = BytesMut::with_capacity(64);
        roomy.put_slice(b"xyz");
        assert!(f.encode(&mut roomy, &Limits::default()).is_err());
        assert_eq!(&roomy[..], b"xyz");
    }
}
