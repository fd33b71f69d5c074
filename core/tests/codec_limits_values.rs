//! Every codec limit is enforced, on decode (hand-built bytes) and on
//! encode, each with its own error variant: address, reason, bool and event
//! tags, and message sizes. The header, truncation, strings and counts are
//! in `codec_limits_framing.rs`.
#![allow(clippy::unwrap_used)]

mod codec_kit;

use bytes::{BufMut, Bytes, BytesMut};
use codec_kit::*;
use switchboard_core::frame::*;

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
