//! Sessions cannot be stolen: a `Resume` must prove the key of the session
//! it names. An attacker who knows the cluster secret and the member id,
//! incarnation and server incarnation (everything a `Resume` carries) but
//! was not party to the registration is refused like an unknown session,
//! and the victim keeps its connection and its session; a resume proof
//! captured from the owner's earlier resume cannot be replayed.
#![allow(clippy::unwrap_used)]

mod harness;

use rand::SeedableRng;
use switchboard_core::auth::SessionIds;
use switchboard_core::frame::{self, Auth, Frame, Hello, RejectReason, Resume};
use switchboard_core::testkit::RawDriver;

fn hello(incarnation: u64) -> Hello {
    Hello {
        cluster: harness::CLUSTER.into(),
        instance: "victim".into(),
        process: "p1".into(),
        incarnation,
        capabilities: frame::capabilities::CHUNKING | frame::capabilities::OUTCOMES,
        client_nonce: [1; frame::NONCE_BYTES],
        services: Vec::new(),
        load: 0,
        groups: Vec::new(),
        subscriptions: Vec::new(),
        credential: String::new(),
    }
}

fn resume(member_id: u64, server_incarnation: u64, nonce: [u8; frame::NONCE_BYTES]) -> Resume {
    Resume {
        cluster: harness::CLUSTER.into(),
        member_id,
        incarnation: 42,
        server_incarnation,
        delivered_through: 0,
        client_nonce: nonce,
        credential: String::new(),
    }
}

/// A driver with the victim registered on connection 0; returns its id.
fn with_victim() -> (RawDriver, u64) {
    let mut d = RawDriver::new(
        harness::server_config(),
        Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(9)),
    );
    let k = d.connect();
    let id = d
        .handshake(k, &Frame::Hello(hello(42)), [1; frame::NONCE_BYTES], true)
        .expect("the victim registers");
    (d, id)
}

/// Sends `first`, answers the challenge with a correct secret proof and
/// the given session proof (computed from the challenge's server nonce);
/// returns the frames the server answered the `Auth` with.
fn attempt(
    d: &mut RawDriver,
    first: Resume,
    session_proof: impl Fn(&[u8; frame::NONCE_BYTES]) -> [u8; frame::PROOF_BYTES],
) -> (usize, Vec<Frame>) {
    let k = d.connect();
    let nonce = first.client_nonce;
    d.send_frame(k, &Frame::Resume(first));
    let ch = d.conns[k]
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Challenge(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a challenge");
    let before = d.conns[k].frames.len();
    let auth = Auth {
        client_proof: harness::secret().client_proof(&ch.server_nonce, &nonce),
        session_proof: session_proof(&ch.server_nonce),
    };
    // The secret proof is correct: the driver may see a Resumed.
    d.conns[k].proved = true;
    d.send_frame(k, &Frame::Auth(auth));
    (k, d.conns[k].frames[before..].to_vec())
}

fn refused(frames: &[Frame]) -> bool {
    frames
        .iter()
        .any(|f| matches!(f, Frame::Reject(r) if r.reason == RejectReason::SessionUnknown))
        && !frames.iter().any(|f| matches!(f, Frame::Resumed(_)))
}

#[test]
fn a_resume_with_ids_and_secret_but_no_session_key_is_refused() {
    let (mut d, id) = with_victim();
    let server_incarnation = d.server_incarnation.unwrap();
    // The attacker holds the secret and every id; it guesses the key from
    // nonces it did not see (here: its own), which is all it can do.
    let guessed = harness::secret().session_key(
        &[1; frame::NONCE_BYTES],
        &[0; frame::NONCE_BYTES],
        SessionIds {
            member_id: id,
            incarnation: 42,
            server_incarnation,
        },
    );
    let client_nonce = [3; frame::NONCE_BYTES];
    let (k, answer) = attempt(&mut d, resume(id, server_incarnation, client_nonce), |sn| {
        guessed.resume_proof(sn, &client_nonce)
    });
    assert!(refused(&answer), "the attacker was not refused: {answer:?}");
    assert!(!d.conns[k].open, "the attacker's connection stays open");
    // A resume proof of all zeros (the value after a Hello) is refused too.
    let (k, answer) = attempt(&mut d, resume(id, server_incarnation, [4; 16]), |_| {
        [0; frame::PROOF_BYTES]
    });
    assert!(refused(&answer), "a zero proof was accepted: {answer:?}");
    assert!(!d.conns[k].open);
    // The victim keeps its connection and its session.
    assert!(d.conns[0].open, "the victim lost its connection");
    assert!(d.conns[0].registered);
    d.check();
    // The owner itself can still resume (its key is known to the driver).
    let k = d.connect();
    let first = Frame::Resume(resume(id, server_incarnation, [5; frame::NONCE_BYTES]));
    d.handshake(k, &first, [5; frame::NONCE_BYTES], true);
    assert!(
        d.conns[k]
            .frames
            .iter()
            .any(|f| matches!(f, Frame::Resumed(_))),
        "the owner's resume was refused: {:?}",
        d.conns[k].frames
    );
    assert!(
        !d.conns[0].open,
        "the resumed session keeps its old connection"
    );
}

/// The server nonce of the first challenge on connection `k`.
fn challenge_nonce(d: &RawDriver, k: usize) -> [u8; frame::NONCE_BYTES] {
    d.conns[k]
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Challenge(c) => Some(c.server_nonce),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_captured_resume_proof_cannot_be_replayed() {
    let (mut d, id) = with_victim();
    let server_incarnation = d.server_incarnation.unwrap();
    // The victim's key, as both ends derived it from the registration
    // (the test saw its nonces; an attacker on the wire without the secret
    // could not compute it, one with the secret who saw them could).
    let key = harness::secret().session_key(
        &[1; frame::NONCE_BYTES],
        &challenge_nonce(&d, 0),
        SessionIds {
            member_id: id,
            incarnation: 42,
            server_incarnation,
        },
    );
    // The owner resumes; the attacker records its Resume and Auth.
    let k = d.connect();
    let client_nonce = [6; frame::NONCE_BYTES];
    let first = Frame::Resume(resume(id, server_incarnation, client_nonce));
    d.handshake(k, &first, client_nonce, true);
    assert!(d.conns[k].registered, "the owner's resume was refused");
    let captured = key.resume_proof(&challenge_nonce(&d, k), &client_nonce);
    // The replay meets a fresh server nonce: refused, the owner unharmed.
    let (k2, answer) = attempt(&mut d, resume(id, server_incarnation, client_nonce), |_| {
        captured
    });
    assert!(
        refused(&answer),
        "a replayed resume was accepted: {answer:?}"
    );
    assert!(!d.conns[k2].open);
    assert!(d.conns[k].open, "the owner lost its connection");
    d.check();
    // The same key over the fresh nonce is accepted: the refusal above
    // was the nonce, not a wrong key.
    let (k3, answer) = attempt(&mut d, resume(id, server_incarnation, client_nonce), |sn| {
        key.resume_proof(sn, &client_nonce)
    });
    assert!(
        answer.iter().any(|f| matches!(f, Frame::Resumed(_))),
        "the key holder's resume was refused: {answer:?}"
    );
    assert!(d.conns[k3].open);
    d.check();
}

/// A server rolling to a new secret accepts members holding the old one
/// as well, and their sessions (keyed with the secret they proved)
/// resume after a dropped connection.
#[test]
fn a_member_with_the_old_secret_registers_and_resumes_during_a_rotation() {
    use switchboard_core::auth::Secret;
    use switchboard_core::client::{ClientConfig, ClientEvent};
    let old = Secret::new(*b"an-old-secret-an-old-secret-0123").unwrap();
    let mut cfg = harness::server_config();
    cfg.extra_secrets = vec![old.clone()];
    let mut c = harness::Cluster::with_config(3, cfg);
    let a = c.add_with(ClientConfig::new(harness::CLUSTER, old, "i", "old", 77));
    let b = c.add("i", "new");
    c.start();
    c.run_for(500, 50);
    for i in [a, b] {
        assert!(
            c.nodes[i]
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::Registered { .. })),
            "node {i} did not register: {:?}",
            c.nodes[i].events
        );
    }
    c.drop_connection(a);
    c.run_for(1_000, 50);
    assert!(
        c.nodes[a]
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Resumed { .. })),
        "the old-secret member did not resume: {:?}",
        c.nodes[a].events
    );
}
