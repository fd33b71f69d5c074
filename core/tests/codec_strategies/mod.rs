//! Proptest strategies for every frame kind (sizes up to the limits,
//! every variant of every enum), and the small codec helpers the round-trip
//! properties share.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchboard_core::frame::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A UTF-8 string of at most `max` bytes. Mostly short mixed-script
/// strings; sometimes ASCII up to exactly the limit.
pub fn string_upto(max: usize) -> BoxedStrategy<String> {
    let chars = prop::collection::vec(any::<char>(), 0..=max.min(24)).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    });
    let ascii = (0..=max).prop_map(|n| "x".repeat(n));
    prop_oneof![
        6 => chars,
        2 => ascii,
        1 => Just("m".repeat(max)),
    ]
    .boxed()
}

pub fn name() -> BoxedStrategy<String> {
    string_upto(NAME_BYTES_MAX)
}

pub fn topic() -> BoxedStrategy<String> {
    string_upto(TOPIC_BYTES_MAX)
}

pub fn text() -> BoxedStrategy<String> {
    string_upto(TEXT_BYTES_MAX)
}

pub fn names(max: usize) -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        8 => prop::collection::vec(name(), 0..=3),
        1 => Just(vec!["s".to_string(); max]),
    ]
    .boxed()
}

pub fn payload() -> BoxedStrategy<Bytes> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..4096),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

pub fn address() -> BoxedStrategy<Address> {
    prop_oneof![
        any::<u64>().prop_map(Address::MemberId),
        (name(), name()).prop_map(|(instance, process)| Address::Member { instance, process }),
        name().prop_map(Address::Instance),
        name().prop_map(Address::Group),
        name().prop_map(Address::Anycast),
        Just(Address::Broadcast),
    ]
    .boxed()
}

/// `(flags, total_len, payload)` obeying the MORE rule: `MORE` is set iff
/// the payload is shorter than `total_len`.
pub fn message_parts() -> BoxedStrategy<(u8, u32, Bytes)> {
    (any::<u8>(), any::<bool>(), payload(), any::<u32>())
        .prop_map(|(flags, chunked, payload, extra)| {
            let flags = flags & flags::ALL & !flags::MORE;
            let len = payload.len() as u32;
            if chunked {
                let room = MESSAGE_BYTES_MAX - len;
                let total = len + 1 + extra % room;
                (flags | flags::MORE, total, payload)
            } else {
                (flags, len, payload)
            }
        })
        .boxed()
}

pub fn member_info() -> BoxedStrategy<MemberInfo> {
    (
        any::<u64>(),
        any::<u64>(),
        name(),
        name(),
        names(SERVICES_MAX),
        any::<u32>(),
        names(GROUPS_PER_MEMBER_MAX),
    )
        .prop_map(
            |(member_id, incarnation, instance, process, services, load, groups)| MemberInfo {
                member_id,
                incarnation,
                instance,
                process,
                services,
                load,
                groups,
            },
        )
        .boxed()
}

pub fn filter() -> BoxedStrategy<Filter> {
    (any::<u16>(), topic())
        .prop_map(|(kinds, topic_prefix)| Filter {
            kinds,
            topic_prefix,
        })
        .boxed()
}

pub fn subscriptions() -> BoxedStrategy<Vec<SubscriptionSpec>> {
    let spec =
        (any::<u32>(), filter()).prop_map(|(sub_id, filter)| SubscriptionSpec { sub_id, filter });
    prop_oneof![
        8 => prop::collection::vec(spec, 0..=3),
        1 => Just(vec![SubscriptionSpec { sub_id: 1, filter: Filter::all() }; SUBSCRIPTIONS_MAX]),
    ]
    .boxed()
}

pub fn fail_reason() -> impl Strategy<Value = FailReason> {
    prop::sample::select(FailReason::ALL)
}

pub fn miss_reason() -> impl Strategy<Value = MissReason> {
    prop::sample::select(MissReason::ALL)
}

pub fn event_body() -> BoxedStrategy<EventBody> {
    prop_oneof![
        (name(), any::<bool>()).prop_map(|(service, up)| EventBody::ServiceState { service, up }),
        any::<u32>().prop_map(EventBody::Load),
        (topic(), payload()).prop_map(|(topic, payload)| EventBody::Custom { topic, payload }),
    ]
    .boxed()
}

pub fn cluster_event() -> BoxedStrategy<ClusterEvent> {
    prop_oneof![
        member_info().prop_map(ClusterEvent::MemberJoined),
        any::<u64>().prop_map(|member_id| ClusterEvent::MemberLeft { member_id }),
        (any::<u64>(), fail_reason())
            .prop_map(|(member_id, reason)| ClusterEvent::MemberFailed { member_id, reason }),
        name().prop_map(|instance| ClusterEvent::InstanceUp { instance }),
        name().prop_map(|instance| ClusterEvent::InstanceDown { instance }),
        (any::<u64>(), name())
            .prop_map(|(member_id, group)| ClusterEvent::GroupJoined { member_id, group }),
        (any::<u64>(), name())
            .prop_map(|(member_id, group)| ClusterEvent::GroupLeft { member_id, group }),
        (any::<u64>(), name(), any::<bool>()).prop_map(|(member_id, service, up)| {
            ClusterEvent::ServiceState {
                member_id,
                service,
                up,
            }
        }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(member_id, load)| ClusterEvent::Load { member_id, load }),
        (any::<u64>(), topic(), payload()).prop_map(|(member_id, topic, payload)| {
            ClusterEvent::Custom {
                member_id,
                topic,
                payload,
            }
        }),
    ]
    .boxed()
}

/// One strategy per frame kind, in kind-code order. Exactly one entry per
/// variant of [`Frame`]; `every_kind_code_is_generated` checks that.
pub fn per_kind() -> Vec<(u8, BoxedStrategy<Frame>)> {
    vec![
        (
            kind::HELLO,
            (
                (name(), name(), name()),
                any::<u64>(),
                any::<u32>(),
                any::<[u8; NONCE_BYTES]>(),
                names(SERVICES_MAX),
                any::<u32>(),
                names(GROUPS_PER_MEMBER_MAX),
                subscriptions(),
                name(),
            )
                .prop_map(
                    |(
                        (cluster, instance, process),
                        incarnation,
                        capabilities,
                        client_nonce,
                        services,
                        load,
                        groups,
                        subscriptions,
                        credential,
                    )| {
                        Frame::Hello(Hello {
                            cluster,
                            instance,
                            process,
                            incarnation,
                            capabilities,
                            client_nonce,
                            services,
                            load,
                            groups,
                            subscriptions,
                            credential,
                        })
                    },
                )
                .boxed(),
        ),
        (
            kind::RESUME,
            (
                name(),
                any::<[u64; 4]>(),
                any::<[u8; NONCE_BYTES]>(),
                name(),
            )
                .prop_map(|(cluster, n, client_nonce, credential)| {
                    Frame::Resume(Resume {
                        cluster,
                        member_id: n[0],
                        incarnation: n[1],
                        server_incarnation: n[2],
                        delivered_through: n[3],
                        client_nonce,
                        credential,
                    })
                })
                .boxed(),
        ),
        (
            kind::CHALLENGE,
            (
                any::<u64>(),
                any::<[u8; NONCE_BYTES]>(),
                any::<[u8; PROOF_BYTES]>(),
                proptest::collection::vec(any::<[u8; PROOF_BYTES]>(), 0..=EXTRA_PROOFS_MAX),
            )
                .prop_map(
                    |(server_incarnation, server_nonce, server_proof, extra_proofs)| {
                        Frame::Challenge(Challenge {
                            server_incarnation,
                            server_nonce,
                            server_proof,
                            extra_proofs,
                        })
                    },
                )
                .boxed(),
        ),
        (
            kind::AUTH,
            any::<([u8; PROOF_BYTES], [u8; PROOF_BYTES])>()
                .prop_map(|(client_proof, session_proof)| {
                    Frame::Auth(Auth {
                        client_proof,
                        session_proof,
                    })
                })
                .boxed(),
        ),
        (
            kind::WELCOME,
            (any::<[u64; 4]>(), any::<[u32; 5]>())
                .prop_map(|(a, b)| {
                    Frame::Welcome(Welcome {
                        member_id: a[0],
                        server_incarnation: a[1],
                        epoch: a[2],
                        position: a[3],
                        heartbeat_interval_ms: b[0],
                        heartbeat_timeout_ms: b[1],
                        resume_window_ms: b[2],
                        frame_bytes_max: b[3],
                        snapshot_members: b[4],
                    })
                })
                .boxed(),
        ),
        (
            kind::SNAPSHOT,
            prop::collection::vec(member_info(), 0..=3)
                .prop_map(|members| Frame::Snapshot(Snapshot { members }))
                .boxed(),
        ),
        (
            kind::REJECT,
            (prop::sample::select(RejectReason::ALL), text())
                .prop_map(|(reason, text)| Frame::Reject(Reject { reason, text }))
                .boxed(),
        ),
        (
            kind::RESUMED,
            (any::<u64>(), any::<u64>())
                .prop_map(|(received_through, replay_from)| {
                    Frame::Resumed(Resumed {
                        received_through,
                        replay_from,
                    })
                })
                .boxed(),
        ),
        (
            kind::GAP,
            (any::<u64>(), any::<u64>())
                .prop_map(|(from, through)| Frame::Gap(Gap { from, through }))
                .boxed(),
        ),
        (
            kind::SEND,
            (
                any::<u64>(),
                address(),
                any::<u64>(),
                any::<u32>(),
                message_parts(),
            )
                .prop_map(
                    |(seq, to, correlation, timeout_ms, (flags, total_len, payload))| {
                        Frame::Send(Send {
                            seq,
                            flags,
                            to,
                            correlation,
                            timeout_ms,
                            total_len,
                            payload,
                        })
                    },
                )
                .boxed(),
        ),
        (
            kind::CHUNK,
            (any::<u64>(), payload(), any::<u32>())
                .prop_map(|(id, payload, off)| {
                    let offset = off % (MESSAGE_BYTES_MAX - payload.len() as u32 + 1);
                    Frame::Chunk(Chunk {
                        id,
                        offset,
                        payload,
                    })
                })
                .boxed(),
        ),
        (
            kind::ACK,
            (any::<u64>(), any::<u64>())
                .prop_map(|(through, stable_through)| {
                    Frame::Ack(Ack {
                        through,
                        stable_through,
                    })
                })
                .boxed(),
        ),
        (
            kind::NACK,
            (
                any::<u64>(),
                any::<u64>(),
                prop::sample::select(NackReason::ALL),
            )
                .prop_map(|(gseq, seq, reason)| Frame::Nack(Nack { gseq, seq, reason }))
                .boxed(),
        ),
        (
            kind::DELIVER,
            (any::<[u64; 5]>(), address(), message_parts())
                .prop_map(|(n, to, (flags, total_len, payload))| {
                    Frame::Deliver(Deliver {
                        gseq: n[0],
                        from: n[1],
                        from_incarnation: n[2],
                        seq: n[3],
                        flags,
                        to,
                        correlation: n[4],
                        total_len,
                        payload,
                    })
                })
                .boxed(),
        ),
        (
            kind::DELIVERY_ACK,
            any::<u64>()
                .prop_map(|through| Frame::DeliveryAck(DeliveryAck { through }))
                .boxed(),
        ),
        (
            kind::TAKEN,
            any::<u64>()
                .prop_map(|through| Frame::Taken(Taken { through }))
                .boxed(),
        ),
        (
            kind::OUTCOME,
            (
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                prop::collection::vec(
                    (any::<u64>(), miss_reason())
                        .prop_map(|(member_id, reason)| Missed { member_id, reason }),
                    0..=8,
                ),
            )
                .prop_map(|(gseq, seq, delivered, missed)| {
                    Frame::Outcome(Outcome {
                        gseq,
                        seq,
                        delivered,
                        missed,
                    })
                })
                .boxed(),
        ),
        (
            kind::PUBLISH,
            (any::<u64>(), event_body())
                .prop_map(|(seq, event)| Frame::Publish(Publish { seq, event }))
                .boxed(),
        ),
        (
            kind::NOTIFY,
            (any::<[u64; 4]>(), cluster_event())
                .prop_map(|(n, event)| {
                    Frame::Notify(Notify {
                        gseq: n[0],
                        epoch: n[1],
                        origin_incarnation: n[2],
                        origin_seq: n[3],
                        event,
                    })
                })
                .boxed(),
        ),
        (
            kind::SUBSCRIBE,
            (any::<u64>(), any::<u32>(), filter())
                .prop_map(|(seq, sub_id, filter)| {
                    Frame::Subscribe(Subscribe {
                        seq,
                        sub_id,
                        filter,
                    })
                })
                .boxed(),
        ),
        (
            kind::UNSUBSCRIBE,
            (any::<u64>(), any::<u32>())
                .prop_map(|(seq, sub_id)| Frame::Unsubscribe(Unsubscribe { seq, sub_id }))
                .boxed(),
        ),
        (
            kind::JOIN,
            (any::<u64>(), name())
                .prop_map(|(seq, group)| Frame::Join(GroupOp { seq, group }))
                .boxed(),
        ),
        (
            kind::LEAVE,
            (any::<u64>(), name())
                .prop_map(|(seq, group)| Frame::Leave(GroupOp { seq, group }))
                .boxed(),
        ),
        (kind::PING, any::<u64>().prop_map(Frame::Ping).boxed()),
        (kind::PONG, any::<u64>().prop_map(Frame::Pong).boxed()),
        (
            kind::GOODBYE,
            text()
                .prop_map(|text| Frame::Goodbye(Goodbye { text }))
                .boxed(),
        ),
        (
            kind::ERROR,
            (prop::sample::select(ErrorCode::ALL), text())
                .prop_map(|(code, text)| Frame::Error(ErrorFrame { code, text }))
                .boxed(),
        ),
    ]
}

/// Any valid frame, every kind equally likely.
pub fn frame() -> BoxedStrategy<Frame> {
    let arms: Vec<(u32, BoxedStrategy<Frame>)> =
        per_kind().into_iter().map(|(_, s)| (1, s)).collect();
    prop::strategy::Union::new_weighted(arms).boxed()
}

/// Every kind code, one per variant of [`Frame`]. The exhaustive match
/// makes this fail to compile when a variant is added without a test.
pub fn all_kind_codes() -> BTreeSet<u8> {
    fn code_of(f: &Frame) -> u8 {
        match f {
            Frame::Hello(_) => kind::HELLO,
            Frame::Resume(_) => kind::RESUME,
            Frame::Challenge(_) => kind::CHALLENGE,
            Frame::Auth(_) => kind::AUTH,
            Frame::Welcome(_) => kind::WELCOME,
            Frame::Snapshot(_) => kind::SNAPSHOT,
            Frame::Reject(_) => kind::REJECT,
            Frame::Resumed(_) => kind::RESUMED,
            Frame::Gap(_) => kind::GAP,
            Frame::Send(_) => kind::SEND,
            Frame::Chunk(_) => kind::CHUNK,
            Frame::Ack(_) => kind::ACK,
            Frame::Nack(_) => kind::NACK,
            Frame::Deliver(_) => kind::DELIVER,
            Frame::DeliveryAck(_) => kind::DELIVERY_ACK,
            Frame::Taken(_) => kind::TAKEN,
            Frame::Outcome(_) => kind::OUTCOME,
            Frame::Publish(_) => kind::PUBLISH,
            Frame::Notify(_) => kind::NOTIFY,
            Frame::Subscribe(_) => kind::SUBSCRIBE,
            Frame::Unsubscribe(_) => kind::UNSUBSCRIBE,
            Frame::Join(_) => kind::JOIN,
            Frame::Leave(_) => kind::LEAVE,
            Frame::Ping(_) => kind::PING,
            Frame::Pong(_) => kind::PONG,
            Frame::Goodbye(_) => kind::GOODBYE,
            Frame::Error(_) => kind::ERROR,
        }
    }
    let codes: BTreeSet<u8> = [
        kind::HELLO,
        kind::RESUME,
        kind::CHALLENGE,
        kind::AUTH,
        kind::WELCOME,
        kind::SNAPSHOT,
        kind::REJECT,
        kind::RESUMED,
        kind::GAP,
        kind::SEND,
        kind::CHUNK,
        kind::ACK,
        kind::NACK,
        kind::DELIVER,
        kind::DELIVERY_ACK,
        kind::OUTCOME,
        kind::TAKEN,
        kind::PUBLISH,
        kind::NOTIFY,
        kind::SUBSCRIBE,
        kind::UNSUBSCRIBE,
        kind::JOIN,
        kind::LEAVE,
        kind::PING,
        kind::PONG,
        kind::GOODBYE,
        kind::ERROR,
    ]
    .into_iter()
    .collect();
    assert_eq!(codes.len(), 27);
    // Tie `code_of` to `Frame::kind` on a sample so both stay in step.
    assert_eq!(code_of(&Frame::Ping(0)), Frame::Ping(0).kind());
    codes
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

pub fn encode(frame: &Frame, limits: &Limits) -> BytesMut {
    let mut buf = BytesMut::new();
    let n = frame
        .encode(&mut buf, limits)
        .unwrap_or_else(|e| panic!("encoding {} failed: {e}", frame.name()));
    assert_eq!(n, buf.len(), "encode reports the bytes it wrote");
    buf
}

/// Decodes exactly one frame from `bytes` and checks the buffer is empty.
pub fn decode_all(bytes: &[u8], limits: &Limits) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode(&mut buf, limits)
        .expect("valid frame decodes")
        .expect("whole frame present");
    assert!(buf.is_empty(), "{} bytes left after decode", buf.len());
    frame
}

/// The payloads a frame carries as `Bytes`.
pub fn payloads(f: &Frame) -> Vec<&Bytes> {
    match f {
        Frame::Send(s) => vec![&s.payload],
        Frame::Deliver(d) => vec![&d.payload],
        Frame::Chunk(c) => vec![&c.payload],
        Frame::Publish(Publish {
            event: EventBody::Custom { payload, .. },
            ..
        }) => vec![payload],
        Frame::Notify(Notify {
            event: ClusterEvent::Custom { payload, .. },
            ..
        }) => vec![payload],
        _ => vec![],
    }
}

pub fn with_payload() -> BoxedStrategy<Frame> {
    let wanted = [kind::SEND, kind::DELIVER, kind::CHUNK];
    let mut arms: Vec<(u32, BoxedStrategy<Frame>)> = per_kind()
        .into_iter()
        .filter(|(k, _)| wanted.contains(k))
        .map(|(_, s)| (1, s))
        .collect();
    arms.push((
        1,
        (any::<u64>(), topic(), payload())
            .prop_map(|(seq, topic, payload)| {
                Frame::Publish(Publish {
                    seq,
                    event: EventBody::Custom { topic, payload },
                })
            })
            .boxed(),
    ));
    arms.push((
        1,
        (any::<u64>(), any::<u64>(), topic(), payload())
            .prop_map(|(gseq, member_id, topic, payload)| {
                Frame::Notify(Notify {
                    gseq,
                    epoch: 1,
                    origin_incarnation: 2,
                    origin_seq: 3,
                    event: ClusterEvent::Custom {
                        member_id,
                        topic,
                        payload,
                    },
                })
            })
            .boxed(),
    ));
    prop::strategy::Union::new_weighted(arms).boxed()
}

/// Decodes frames off `buf` until `Ok(None)` or an error; must not panic.
pub fn drain(buf: &mut BytesMut, limits: &Limits) -> Vec<Frame> {
    let mut out = Vec::new();
    loop {
        let before = buf.len();
        match decode(buf, limits) {
            Ok(Some(f)) => {
                assert!(buf.len() < before, "a decoded frame consumes bytes");
                out.push(f);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                return out;
            }
            Err(_) => return out,
        }
    }
}

pub fn small_limits() -> Limits {
    Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR)
}
