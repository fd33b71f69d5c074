//! Property tests of the wire codec: every frame kind round-trips, decoding
//! arbitrary bytes never panics, partial frames wait for more bytes, frames
//! back to back decode in order, and payloads are zero-copy slices of the
//! read buffer.
#![allow(clippy::unwrap_used)]

mod codec_strategies;

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use codec_strategies::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use switchboard_core::frame::*;

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
            credential: big_name.clone(),
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

/// The worked example of PROTOCOL.md section 10 with and without the
/// optional credential: without it the bytes are those of a `Hello` from
/// before the field existed; with it the name follows the subscriptions.
#[test]
fn the_optional_credential_of_hello_has_the_documented_bytes() {
    let hello = |credential: &str| {
        Frame::Hello(Hello {
            cluster: "c".into(),
            instance: "i1".into(),
            process: "p".into(),
            incarnation: 0x0102_0304_0506_0708,
            capabilities: capabilities::CHUNKING | capabilities::OUTCOMES,
            client_nonce: [0xaa; NONCE_BYTES],
            services: vec!["svc".into()],
            load: 10,
            groups: vec!["g".into()],
            subscriptions: vec![SubscriptionSpec {
                sub_id: 1,
                filter: Filter {
                    kinds: 0x0021,
                    topic_prefix: "ca".into(),
                },
            }],
            credential: credential.into(),
        })
    };
    let mut plain = BytesMut::new();
    hello("").encode(&mut plain, &Limits::default()).unwrap();
    let mut want = vec![
        0, 0, 0, 0x44, 2, 1, 0, 1, b'c', 0, 2, b'i', b'1', 0, 1, b'p',
    ];
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3]);
    want.extend_from_slice(&[0xaa; 16]);
    want.extend_from_slice(&[0, 1, 0, 3, b's', b'v', b'c', 0, 0, 0, 10, 0, 1, 0, 1, b'g']);
    want.extend_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0x21, 0, 2, b'c', b'a']);
    assert_eq!(&plain[..], &want[..]);
    let mut named = BytesMut::new();
    hello("billing")
        .encode(&mut named, &Limits::default())
        .unwrap();
    want[3] = 0x4d;
    want.extend_from_slice(&[0, 7]);
    want.extend_from_slice(b"billing");
    assert_eq!(&named[..], &want[..]);
    assert_eq!(named.len(), 81);
    // A present but empty credential is refused: one encoding per value.
    let mut empty = plain.clone();
    empty[3] += 2;
    empty.extend_from_slice(&[0, 0]);
    assert!(matches!(
        decode(&mut empty, &Limits::default()),
        Err(DecodeError::InconsistentLength {
            field: "credential",
            ..
        })
    ));
}
