//! Property tests of the wire codec: every frame kind round-trips, decoding
//! arbitrary bytes never panics, partial frames wait for more bytes, frames
//! back to back decode in order, and payloads are zero-copy slices of the
//! read buffer.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use switchboard_core::frame::*;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A UTF-8 string of at most `max` bytes. Mostly short mixed-script
/// strings; sometimes ASCII up to exactly the limit.
fn string_upto(max: usize) -> BoxedStrategy<String> {
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

fn name() -> BoxedStrategy<String> {
    string_upto(NAME_BYTES_MAX)
}

fn topic() -> BoxedStrategy<String> {
    string_upto(TOPIC_BYTES_MAX)
}

fn text() -> BoxedStrategy<String> {
    string_upto(TEXT_BYTES_MAX)
}

fn names(max: usize) -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        8 => prop::collection::vec(name(), 0..=3),
        1 => Just(vec!["s".to_string(); max]),
    ]
    .boxed()
}

fn payload() -> BoxedStrategy<Bytes> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..4096),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

fn address() -> BoxedStrategy<Address> {
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
fn message_parts() -> BoxedStrategy<(u8, u32, Bytes)> {
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

fn member_info() -> BoxedStrategy<MemberInfo> {
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

fn filter() -> BoxedStrategy<Filter> {
    (any::<u16>(), topic())
        .prop_map(|(kinds, topic_prefix)| Filter {
            kinds,
            topic_prefix,
        })
        .boxed()
}

fn subscriptions() -> BoxedStrategy<Vec<SubscriptionSpec>> {
    let spec =
        (any::<u32>(), filter()).prop_map(|(sub_id, filter)| SubscriptionSpec { sub_id, filter });
    prop_oneof![
        8 => prop::collection::vec(spec, 0..=3),
        1 => Just(vec![SubscriptionSpec { sub_id: 1, filter: Filter::all() }; SUBSCRIPTIONS_MAX]),
    ]
    .boxed()
}

fn fail_reason() -> impl Strategy<Value = FailReason> {
    prop::sample::select(FailReason::ALL)
}

fn miss_reason() -> impl Strategy<Value = MissReason> {
    prop::sample::select(MissReason::ALL)
}

fn event_body() -> BoxedStrategy<EventBody> {
    prop_oneof![
        (name(), any::<bool>()).prop_map(|(service, up)| EventBody::ServiceState { service, up }),
        any::<u32>().prop_map(EventBody::Load),
        (topic(), payload()).prop_map(|(topic, payload)| EventBody::Custom { topic, payload }),
    ]
    .boxed()
}

fn cluster_event() -> BoxedStrategy<ClusterEvent> {
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
fn per_kind() -> Vec<(u8, BoxedStrategy<Frame>)> {
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
                        })
                    },
                )
                .boxed(),
        ),
        (
            kind::RESUME,
            (name(), any::<[u64; 4]>(), any::<[u8; NONCE_BYTES]>())
                .prop_map(|(cluster, n, client_nonce)| {
                    Frame::Resume(Resume {
                        cluster,
                        member_id: n[0],
                        incarnation: n[1],
                        server_incarnation: n[2],
                        delivered_through: n[3],
                        client_nonce,
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
            )
                .prop_map(|(server_incarnation, server_nonce, server_proof)| {
                    Frame::Challenge(Challenge {
                        server_incarnation,
                        server_nonce,
                        server_proof,
                    })
                })
                .boxed(),
        ),
        (
            kind::AUTH,
            any::<[u8; PROOF_BYTES]>()
                .prop_map(|client_proof| Frame::Auth(Auth { client_proof }))
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
fn frame() -> BoxedStrategy<Frame> {
    let arms: Vec<(u32, BoxedStrategy<Frame>)> =
        per_kind().into_iter().map(|(_, s)| (1, s)).collect();
    prop::strategy::Union::new_weighted(arms).boxed()
}

/// Every kind code, one per variant of [`Frame`]. The exhaustive match
/// makes this fail to compile when a variant is added without a test.
fn all_kind_codes() -> BTreeSet<u8> {
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
    assert_eq!(codes.len(), 26);
    // Tie `code_of` to `Frame::kind` on a sample so both stay in step.
    assert_eq!(code_of(&Frame::Ping(0)), Frame::Ping(0).kind());
    codes
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn encode(frame: &Frame, limits: &Limits) -> BytesMut {
    let mut buf = BytesMut::new();
    let n = frame
        .encode(&mut buf, limits)
        .unwrap_or_else(|e| panic!("encoding {} failed: {e}", frame.name()));
    assert_eq!(n, buf.len(), "encode reports the bytes it wrote");
    buf
}

/// Decodes exactly one frame from `bytes` and checks the buffer is empty.
fn decode_all(bytes: &[u8], limits: &Limits) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = decode(&mut buf, limits)
        .expect("valid frame decodes")
        .expect("whole frame present");
    assert!(buf.is_empty(), "{} bytes left after decode", buf.len());
    frame
}

/// The payloads a frame carries as `Bytes`.
fn payloads(f: &Frame) -> Vec<&Bytes> {
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

fn with_payload() -> BoxedStrategy<Frame> {
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
fn drain(buf: &mut BytesMut, limits: &Limits) -> Vec<Frame> {
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

fn small_limits() -> Limits {
    Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR)
}

// ---------------------------------------------------------------------------
// Coverage of the strategies
// ---------------------------------------------------------------------------

#[test]
fn per_kind_strategies_cover_every_variant_once() {
    let all = all_kind_codes();
    let strategies = per_kind();
    let listed: Vec<u8> = strategies.iter().map(|(k, _)| *k).collect();
    let listed_set: BTreeSet<u8> = listed.iter().copied().collect();
    assert_eq!(listed.len(), listed_set.len(), "a kind is listed twice");
    assert_eq!(listed_set, all);

    // Each per-kind strategy produces frames of its own kind, and they
    // round-trip.
    let mut runner = TestRunner::deterministic();
    for (code, strategy) in &strategies {
        for _ in 0..16 {
            let f = strategy.new_tree(&mut runner).unwrap().current();
            assert_eq!(
                f.kind(),
                *code,
                "strategy for 0x{code:02x} made {}",
                f.name()
            );
            let bytes = encode(&f, &Limits::default());
            assert_eq!(decode_all(&bytes, &Limits::default()), f);
        }
    }
}

#[test]
fn every_kind_code_is_generated() {
    let mut runner = TestRunner::deterministic();
    let strategy = frame();
    let mut seen = BTreeSet::new();
    for _ in 0..4000 {
        seen.insert(strategy.new_tree(&mut runner).unwrap().current().kind());
    }
    assert_eq!(seen, all_kind_codes());
}

// ---------------------------------------------------------------------------
// Deterministic round trips at the limits
// ---------------------------------------------------------------------------

#[test]
fn maximal_frames_round_trip() {
    let big_name = "n".repeat(NAME_BYTES_MAX);
    let member = MemberInfo {
        member_id: u64::MAX,
        incarnation: 7,
        instance: big_name.clone(),
        process: big_name.clone(),
        services: vec![big_name.clone(); SERVICES_MAX],
        load: u32::MAX,
        groups: vec![big_name.clone(); GROUPS_PER_MEMBER_MAX],
    };
    let small_member = MemberInfo {
        member_id: 1,
        incarnation: 2,
        instance: String::new(),
        process: String::new(),
        services: vec![],
        load: 0,
        groups: vec![],
    };
    let frames = vec![
        Frame::Hello(Hello {
            cluster: big_name.clone(),
            instance: big_name.clone(),
            process: big_name.clone(),
            incarnation: u64::MAX,
            capabilities: u32::MAX,
            client_nonce: [0xAB; NONCE_BYTES],
            services: vec![big_name.clone(); SERVICES_MAX],
            load: u32::MAX,
            groups: vec![big_name.clone(); GROUPS_PER_MEMBER_MAX],
            subscriptions: vec![
                SubscriptionSpec {
                    sub_id: u32::MAX,
                    filter: Filter {
                        kinds: EventKind::ALL,
                        topic_prefix: "p".repeat(TOPIC_BYTES_MAX),
                    },
                };
                SUBSCRIPTIONS_MAX
            ],
        }),
        Frame::Snapshot(Snapshot {
            members: vec![member.clone()],
        }),
        Frame::Snapshot(Snapshot {
            members: vec![small_member; SNAPSHOT_MEMBERS_MAX],
        }),
        Frame::Notify(Notify {
            gseq: 1,
            epoch: 2,
            origin_incarnation: u64::MAX,
            origin_seq: u64::MAX,
            event: ClusterEvent::MemberJoined(member),
        }),
        Frame::Outcome(Outcome {
            gseq: u64::MAX,
            seq: 1,
            delivered: 2,
            missed: vec![
                Missed {
                    member_id: 9,
                    reason: MissReason::ServerRestarted,
                };
                OUTCOME_MISSED_MAX
            ],
        }),
        Frame::Goodbye(Goodbye {
            text: "é".repeat(TEXT_BYTES_MAX / 2),
        }),
        Frame::Subscribe(Subscribe {
            seq: 3,
            sub_id: 4,
            filter: Filter {
                kinds: u16::MAX,
                topic_prefix: "t".repeat(TOPIC_BYTES_MAX),
            },
        }),
        Frame::Send(Send {
            seq: 1,
            flags: flags::ALL,
            to: Address::Member {
                instance: big_name.clone(),
                process: big_name.clone(),
            },
            correlation: 5,
            timeout_ms: 6,
            total_len: MESSAGE_BYTES_MAX,
            payload: Bytes::from(vec![1u8; 100]),
        }),
        Frame::Chunk(Chunk {
            id: 1,
            offset: MESSAGE_BYTES_MAX - 3,
            payload: Bytes::from_static(b"end"),
        }),
    ];
    for f in frames {
        let bytes = encode(&f, &Limits::default());
        assert_eq!(decode_all(&bytes, &Limits::default()), f, "{}", f.name());
    }
}

#[test]
fn chunk_bytes_max_payload_fits_the_largest_fixed_part() {
    let big_name = "n".repeat(NAME_BYTES_MAX);
    for limits in [
        small_limits(),
        Limits::default(),
        Limits::with_frame_bytes_max(FRAME_BYTES_MAX_CEILING),
    ] {
        let payload = Bytes::from(vec![7u8; limits.chunk_bytes_max() as usize]);
        let to = Address::Member {
            instance: big_name.clone(),
            process: big_name.clone(),
        };
        let frames = [
            Frame::Deliver(Deliver {
                gseq: 1,
                from: 2,
                from_incarnation: 3,
                seq: 4,
                flags: flags::ALL,
                to: to.clone(),
                correlation: 5,
                total_len: MESSAGE_BYTES_MAX,
                payload: payload.clone(),
            }),
            Frame::Send(Send {
                seq: 4,
                flags: flags::ALL,
                to,
                correlation: 5,
                timeout_ms: 6,
                total_len: MESSAGE_BYTES_MAX,
                payload: payload.clone(),
            }),
            Frame::Chunk(Chunk {
                id: 1,
                offset: 0,
                payload,
            }),
        ];
        for f in frames {
            let bytes = encode(&f, &limits);
            assert!(bytes.len() <= limits.frame_bytes_max as usize);
            assert_eq!(decode_all(&bytes, &limits), f);
        }
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Header for a frame whose body is `body_len` bytes.
fn header(kind: u8, body_len: usize) -> [u8; 6] {
    let len = (body_len + 2) as u32;
    let l = len.to_be_bytes();
    [l[0], l[1], l[2], l[3], PROTOCOL_VERSION, kind]
}

proptest! {
    /// (a) encode then decode gives the same frame and consumes exactly the
    /// encoded bytes.
    #[test]
    fn round_trip(f in frame()) {
        let limits = Limits::default();
        let mut buf = BytesMut::new();
        let n = f.encode(&mut buf, &limits).unwrap();
        prop_assert_eq!(n, buf.len());
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        prop_assert_eq!(len + 4, n);
        prop_assert_eq!(buf[4], PROTOCOL_VERSION);
        prop_assert_eq!(buf[5], f.kind());
        let decoded = decode(&mut buf, &limits).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&f));
        prop_assert!(buf.is_empty());
    }

    /// Encoding appends: bytes already in the buffer stay in front.
    #[test]
    fn encode_appends(prefix in prop::collection::vec(any::<u8>(), 0..32), f in frame()) {
        let limits = Limits::default();
        let alone = encode(&f, &limits);
        let mut buf = BytesMut::from(&prefix[..]);
        let n = f.encode(&mut buf, &limits).unwrap();
        prop_assert_eq!(n, alone.len());
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&buf[prefix.len()..], &alone[..]);
    }

    /// (b) decoding arbitrary bytes never panics, with default and small
    /// limits.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        for limits in [Limits::default(), small_limits()] {
            let mut buf = BytesMut::from(&bytes[..]);
            drain(&mut buf, &limits);
        }
    }

    /// (b) a valid header followed by random body bytes never panics; what
    /// decodes, re-encodes to exactly the same bytes (the encoding is
    /// canonical).
    #[test]
    fn valid_header_random_body_never_panics(
        k in prop::sample::select(all_kind_codes().into_iter().collect::<Vec<_>>()),
        body in prop::collection::vec(any::<u8>(), 0..512),
        extra in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = header(k, body.len()).to_vec();
        bytes.extend_from_slice(&body);
        let frame_len = bytes.len();
        bytes.extend_from_slice(&extra);
        for limits in [Limits::default(), small_limits()] {
            let mut buf = BytesMut::from(&bytes[..]);
            if let Ok(Some(f)) = decode(&mut buf, &limits) {
                prop_assert_eq!(buf.len(), extra.len());
                prop_assert_eq!(f.kind(), k);
                let again = encode(&f, &limits);
                prop_assert_eq!(&again[..], &bytes[..frame_len]);
            }
        }
    }

    /// (b) a valid frame with one byte changed never panics; if it still
    /// decodes, it re-encodes to the changed bytes.
    #[test]
    fn mutated_frame_never_panics(f in frame(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let limits = Limits::default();
        let mut bytes = encode(&f, &limits);
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        let mutated = bytes.clone();
        if let Ok(Some(g)) = decode(&mut bytes, &limits) {
            let again = encode(&g, &limits);
            prop_assert_eq!(&again[..], &mutated[..again.len()]);
        }
    }

    /// (c) a valid frame cut at every position is `Ok(None)` and consumes
    /// nothing.
    #[test]
    fn cut_frame_needs_more(f in frame()) {
        let limits = Limits::default();
        let bytes = encode(&f, &limits);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let r = decode(&mut buf, &limits);
            prop_assert!(matches!(r, Ok(None)), "cut at {} of {}: {:?}", cut, bytes.len(), r);
            prop_assert_eq!(&buf[..], &bytes[..cut]);
        }
    }

    /// (d) several frames back to back decode in order, then `Ok(None)`,
    /// also when a partial frame follows.
    #[test]
    fn back_to_back(frames in prop::collection::vec(frame(), 1..8), tail in frame(), cut in any::<prop::sample::Index>()) {
        let limits = Limits::default();
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf, &limits).unwrap();
        }
        let tail_bytes = encode(&tail, &limits);
        let partial = &tail_bytes[..cut.index(tail_bytes.len())];
        buf.put_slice(partial);
        for f in &frames {
            let got = decode(&mut buf, &limits).unwrap();
            prop_assert_eq!(got.as_ref(), Some(f));
        }
        prop_assert!(matches!(decode(&mut buf, &limits), Ok(None)));
        prop_assert_eq!(&buf[..], partial);
        // The rest of the tail arrives: it decodes too.
        buf.put_slice(&tail_bytes[partial.len()..]);
        prop_assert_eq!(decode(&mut buf, &limits).unwrap(), Some(tail));
        prop_assert!(buf.is_empty());
        prop_assert!(matches!(decode(&mut buf, &limits), Ok(None)));
    }

    /// (e) payloads are slices of the read buffer, not copies.
    #[test]
    fn payloads_are_zero_copy(before in prop::collection::vec(frame(), 0..3), f in with_payload()) {
        let limits = Limits::default();
        let mut buf = BytesMut::new();
        for b in &before {
            b.encode(&mut buf, &limits).unwrap();
        }
        f.encode(&mut buf, &limits).unwrap();
        let base = buf.as_ptr() as usize;
        let end = base + buf.len();
        for _ in &before {
            decode(&mut buf, &limits).unwrap().unwrap();
        }
        let decoded = decode(&mut buf, &limits).unwrap().unwrap();
        prop_assert_eq!(&decoded, &f);
        for p in payloads(&decoded) {
            if p.is_empty() {
                continue;
            }
            let start = p.as_ptr() as usize;
            prop_assert!(
                start >= base && start + p.len() <= end,
                "payload at {:#x}+{} outside the read buffer {:#x}..{:#x}",
                start, p.len(), base, end
            );
        }
    }
}
