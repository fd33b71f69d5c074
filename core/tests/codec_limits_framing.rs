//! Every codec limit is enforced, on decode (hand-built bytes) and on
//! encode, each with its own error variant: the header (length, version,
//! kind), truncation and trailing bytes, string lengths and UTF-8, and
//! counts. Tags, codes and message sizes are in `codec_limits_values.rs`.
#![allow(clippy::unwrap_used)]

mod codec_kit;

use bytes::{BufMut, Bytes, BytesMut};
use codec_kit::*;
use switchboard_core::frame::*;

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
    for version in [0u8, 1, 3, 0xFF] {
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
    for k in [0x00u8, 0x0A, 0x0F, 0x18, 0x26, 0x34, 0xFF] {
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

#[test]
fn bytes_missing_counts_what_completes_the_first_frame() {
    let mut wire = BytesMut::new();
    Frame::DeliveryAck(DeliveryAck { through: 7 })
        .encode(&mut wire, &Limits::default())
        .unwrap();
    Frame::Ping(1)
        .encode(&mut wire, &Limits::default())
        .unwrap();
    let first = u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize + 4;
    assert_eq!(bytes_missing(&[]), 4, "the length prefix first");
    assert_eq!(bytes_missing(&wire[..3]), 1);
    for cut in 4..first {
        assert_eq!(bytes_missing(&wire[..cut]), first - cut, "cut at {cut}");
    }
    // A whole first frame, with or without more behind it.
    assert_eq!(bytes_missing(&wire[..first]), 0);
    assert_eq!(bytes_missing(&wire), 0);
}
