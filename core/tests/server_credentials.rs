//! Named credentials in the server state machine: a member proves a named
//! secret, registers only as the instances its credential permits, sends,
//! joins and publishes within its permissions, and cannot supersede (or
//! adopt the session of) a member registered with another credential. A
//! reload that removes a credential disconnects its members only.
#![allow(clippy::unwrap_used)]

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use harness::Cluster;
use switchboard_core::auth::Secret;
use switchboard_core::client::{ClientConfig, ClientEvent, SendOptions};
use switchboard_core::credentials::{Credentials, Patterns, Permissions, SecretCredential, Source};
use switchboard_core::frame::{self, Auth, Frame, Hello};
use switchboard_core::frame::{Address, EventBody, NackReason, RejectReason};
use switchboard_core::server::{DenialKind, ServerConfig};
use switchboard_core::testkit::RawDriver;

fn billing_secret() -> Secret {
    Secret::new(*b"billing-secret-billing-secret-12").unwrap()
}

fn other_secret() -> Secret {
    Secret::new(*b"other-secret-other-secret-other!").unwrap()
}

/// `billing` may register as `billing-*`, send to `billing-*` instances and
/// `billing*` groups (no broadcast), join `billing*`, publish `billing/*`.
/// `other` may register as anything, with every permission.
fn credentials() -> Credentials {
    let billing = Permissions {
        register: Patterns::parse(&["billing-*"]).unwrap(),
        send_instances: Patterns::parse(&["billing-*"]).unwrap(),
        send_groups: Patterns::parse(&["billing*"]).unwrap(),
        broadcast: false,
        join: Patterns::parse(&["billing*"]).unwrap(),
        publish: Patterns::parse(&["billing/*"]).unwrap(),
        sources: Vec::new(),
    };
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "billing".to_owned(),
        SecretCredential {
            secret: billing_secret(),
            permissions: Arc::new(billing),
        },
    );
    secrets.insert(
        "other".to_owned(),
        SecretCredential {
            secret: other_secret(),
            permissions: Arc::new(Permissions::all()),
        },
    );
    Credentials {
        secrets,
        ..Credentials::default()
    }
}

fn cluster(seed: u64) -> Cluster {
    let mut cfg: ServerConfig = harness::server_config();
    cfg.credentials = credentials();
    Cluster::with_config(seed, cfg)
}

fn member(credential: &str, secret: Secret, instance: &str, incarnation: u64) -> ClientConfig {
    let mut cfg = ClientConfig::new(harness::CLUSTER, secret, instance, "p1", incarnation);
    cfg.credential = credential.to_owned();
    cfg
}

fn rejected(c: &Cluster, i: usize) -> Option<RejectReason> {
    c.nodes[i].events.iter().find_map(|e| match e {
        ClientEvent::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn nacked(c: &Cluster, i: usize, seq: u64) -> Option<NackReason> {
    c.nodes[i].events.iter().find_map(|e| match e {
        ClientEvent::Nacked { seq: s, reason } if *s == seq => Some(*reason),
        _ => None,
    })
}

fn acked(c: &Cluster, i: usize, seq: u64) -> bool {
    c.nodes[i]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Acked { seq: s } if *s == seq))
}

fn denials(c: &Cluster, kind: DenialKind) -> u64 {
    c.server.stats().permission_denials[kind.index()]
}

#[test]
fn a_named_secret_registers_within_its_patterns_only() {
    let mut c = cluster(1);
    let ok = c.add_with(member("billing", billing_secret(), "billing-eu", 11));
    let outside = c.add_with(member("billing", billing_secret(), "ledger", 12));
    // A wrong secret for a known name and an unknown name: both look like
    // a wrong secret (the server's proof fails at the client).
    let wrong = c.add_with(member("billing", other_secret(), "billing-x", 13));
    let unknown = c.add_with(member("nobody", billing_secret(), "billing-y", 14));
    c.run_for(200, 10);
    assert!(c.nodes[ok].client.is_ready());
    assert_eq!(rejected(&c, outside), Some(RejectReason::NotPermitted));
    assert!(!c.nodes[outside].client.is_ready());
    assert_eq!(rejected(&c, wrong), Some(RejectReason::BadSecret));
    assert_eq!(rejected(&c, unknown), Some(RejectReason::BadSecret));
    assert!(denials(&c, DenialKind::Register) >= 1);
    assert_eq!(c.server.view().count(), 1);
}

#[test]
fn send_join_and_publish_are_checked_against_the_credential() {
    let mut c = cluster(2);
    let b = c.add_with(member("billing", billing_secret(), "billing-eu", 21));
    let peer = c.add_with(member("billing", billing_secret(), "billing-us", 22));
    let outsider = c.add("ledger", "p1");
    c.start();
    let now = c.now;
    let to_peer = c.nodes[b]
        .client
        .send(
            now,
            Address::Instance("billing-us".into()),
            Bytes::from_static(b"ok"),
            SendOptions::default(),
        )
        .unwrap();
    let to_ledger = c.nodes[b]
        .client
        .send(
            now,
            Address::Instance("ledger".into()),
            Bytes::from_static(b"no"),
            SendOptions::default(),
        )
        .unwrap();
    let ledger_id = c.member_id(outsider);
    let by_id = c.nodes[b]
        .client
        .send(
            now,
            Address::MemberId(ledger_id),
            Bytes::from_static(b"no"),
            SendOptions::default(),
        )
        .unwrap();
    let broadcast = c.nodes[b]
        .client
        .send(
            now,
            Address::Broadcast,
            Bytes::from_static(b"no"),
            SendOptions::default(),
        )
        .unwrap();
    let ok_topic = c.nodes[b]
        .client
        .publish(
            now,
            EventBody::Custom {
                topic: "billing/paid".into(),
                payload: Bytes::new(),
            },
        )
        .unwrap();
    let bad_topic = c.nodes[b]
        .client
        .publish(
            now,
            EventBody::Custom {
                topic: "ledger/paid".into(),
                payload: Bytes::new(),
            },
        )
        .unwrap();
    c.nodes[b].client.join(now, "billing-workers").unwrap();
    c.nodes[b].client.join(now, "ledger-workers").unwrap();
    c.run_for(200, 10);
    assert!(acked(&c, b, to_peer), "{:?}", c.nodes[b].events);
    assert_eq!(nacked(&c, b, to_ledger), Some(NackReason::NotPermitted));
    assert_eq!(nacked(&c, b, by_id), Some(NackReason::NotPermitted));
    assert_eq!(nacked(&c, b, broadcast), Some(NackReason::NotPermitted));
    assert!(acked(&c, b, ok_topic));
    assert_eq!(nacked(&c, b, bad_topic), Some(NackReason::NotPermitted));
    // The join of billing-workers went through, ledger-workers did not.
    let groups = c
        .server
        .view()
        .find(|m| m.instance == "billing-eu")
        .map(|m| m.groups.clone())
        .unwrap();
    assert_eq!(groups, vec!["billing-workers".to_owned()]);
    assert_eq!(denials(&c, DenialKind::Send), 3);
    assert_eq!(denials(&c, DenialKind::Publish), 1);
    assert_eq!(denials(&c, DenialKind::Join), 1);
    // Only the permitted message arrived anywhere.
    let got_peer: Vec<_> = c.nodes[peer]
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Message(_)))
        .collect();
    assert_eq!(got_peer.len(), 1);
    assert!(!c.nodes[outsider]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(_))));
    // After a server restart the member registers again with a `Hello`
    // carrying its groups: the refused group is not among them.
    c.restart_server(99);
    c.run_for(300, 10);
    assert!(c.nodes[b].client.is_ready());
    assert_eq!(rejected(&c, b), None);
    let groups = c
        .server
        .view()
        .find(|m| m.instance == "billing-eu")
        .map(|m| m.groups.clone())
        .unwrap();
    assert_eq!(groups, vec!["billing-workers".to_owned()]);
}

#[test]
fn supersede_needs_the_credential_that_registered_the_member() {
    let mut c = cluster(3);
    let victim = c.add_with(member("other", other_secret(), "billing-eu", 31));
    c.start();
    let victim_id = c.member_id(victim);
    // Another credential permitted to register as billing-*: a new
    // incarnation of the victim's names is refused, the victim stays.
    let attacker = c.add_with(member("billing", billing_secret(), "billing-eu", 32));
    c.run_for(200, 10);
    assert_eq!(rejected(&c, attacker), Some(RejectReason::NotPermitted));
    assert!(c.nodes[victim].client.is_ready());
    assert!(c.server.is_attached(victim_id));
    // The client retries a NotPermitted refusal with backoff.
    assert!(denials(&c, DenialKind::Supersede) >= 1);
    // The cluster credential cannot take it over either.
    let cluster_holder = c.add("billing-eu", "p1");
    c.run_for(200, 10);
    assert_eq!(
        rejected(&c, cluster_holder),
        Some(RejectReason::NotPermitted)
    );
    assert!(c.server.is_attached(victim_id));
    // The same credential may supersede (a restarted process; the old
    // one is gone, else it would register again in its turn).
    c.crash(victim);
    let heir = c.add_with(member("other", other_secret(), "billing-eu", 33));
    c.run_for(200, 10);
    assert!(c.nodes[heir].client.is_ready());
    assert!(!c.server.view().any(|m| m.member_id == victim_id));
}

#[test]
fn a_detached_session_is_adopted_only_with_its_credential() {
    let mut c = cluster(4);
    let victim = c.add_with(member("other", other_secret(), "billing-eu", 41));
    c.start();
    let victim_id = c.member_id(victim);
    c.crash(victim);
    c.run_for(50, 10);
    assert!(!c.server.is_attached(victim_id));
    // Same names and incarnation, another credential: refused, the
    // detached session stays for its owner.
    let attacker = c.add_with(member("billing", billing_secret(), "billing-eu", 41));
    c.run_for(200, 10);
    assert_eq!(rejected(&c, attacker), Some(RejectReason::NotPermitted));
    assert!(c.server.view().any(|m| m.member_id == victim_id));
}

#[test]
fn a_reload_removes_the_members_of_a_removed_credential_only() {
    let mut c = cluster(5);
    let b = c.add_with(member("billing", billing_secret(), "billing-eu", 51));
    let o = c.add_with(member("other", other_secret(), "ledger", 52));
    c.start();
    let (b_id, o_id) = (c.member_id(b), c.member_id(o));
    let mut creds = credentials();
    creds.secrets.remove("billing");
    let now = c.now;
    assert_eq!(c.server.set_credentials(now, creds.clone()), 1);
    c.run_for(50, 10);
    assert!(!c.server.view().any(|m| m.member_id == b_id));
    assert!(c.server.is_attached(o_id));
    assert_eq!(denials(&c, DenialKind::Revoked), 1);
    // Narrowing a credential's patterns removes the members it no longer
    // permits.
    let mut narrowed = creds;
    if let Some(o) = narrowed.secrets.get_mut("other") {
        o.permissions = Arc::new(Permissions {
            register: Patterns::parse(&["app-*"]).unwrap(),
            ..Permissions::all()
        });
    }
    let now = c.now;
    assert_eq!(c.server.set_credentials(now, narrowed), 1);
    c.run_for(50, 10);
    assert!(!c.server.view().any(|m| m.member_id == o_id));
}

#[test]
fn a_reload_removes_a_member_holding_a_group_it_may_no_longer_join() {
    let mut c = cluster(6);
    let b = c.add_with(member("billing", billing_secret(), "billing-eu", 61));
    let b2 = c.add_with(member("billing", billing_secret(), "billing-us", 62));
    c.start();
    let now = c.now;
    c.nodes[b].client.join(now, "billing-batch").unwrap();
    c.nodes[b2].client.join(now, "billing-web").unwrap();
    c.run_for(50, 10);
    let (b_id, b2_id) = (c.member_id(b), c.member_id(b2));
    assert!(c
        .server
        .view()
        .any(|m| m.member_id == b_id && m.groups.iter().any(|g| g == "billing-batch")));
    // `billing` may now join only billing-web*: the holder of billing-batch
    // is told and removed, the other stays.
    let mut narrowed = credentials();
    if let Some(cred) = narrowed.secrets.get_mut("billing") {
        let mut p = (*cred.permissions).clone();
        p.join = Patterns::parse(&["billing-web*"]).unwrap();
        cred.permissions = Arc::new(p);
    }
    let now = c.now;
    assert_eq!(c.server.set_credentials(now, narrowed), 1);
    c.run_for(50, 10);
    assert!(!c.server.view().any(|m| m.member_id == b_id));
    assert!(c.server.is_attached(b2_id));
    assert_eq!(denials(&c, DenialKind::Revoked), 1);
}

/// Sends a `Hello` naming `credential` on a raw connection, answers the
/// challenge with a proof made with `secret`; returns the server's proof
/// check (with `secret`) and the reject's reason and text.
fn raw_attempt(credential: &str, secret: &Secret) -> (bool, Option<(RejectReason, String)>) {
    use rand::SeedableRng;
    let mut cfg = harness::server_config();
    cfg.credentials = credentials();
    let mut d = RawDriver::new(cfg, Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(7)));
    let k = d.connect();
    let nonce = [9; frame::NONCE_BYTES];
    d.send_frame(
        k,
        &Frame::Hello(Hello {
            cluster: harness::CLUSTER.into(),
            instance: "billing-eu".into(),
            process: "p1".into(),
            incarnation: 5,
            capabilities: 0,
            client_nonce: nonce,
            services: Vec::new(),
            load: 0,
            groups: Vec::new(),
            subscriptions: Vec::new(),
            credential: credential.into(),
        }),
    );
    let ch = d.conns[k]
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Challenge(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    let server_proved = ch.server_proof == secret.server_proof(&nonce, &ch.server_nonce)
        && ch.extra_proofs.is_empty();
    // The driver checks that a Welcome follows a correct proof only.
    d.conns[k].proved = server_proved;
    d.send_frame(
        k,
        &Frame::Auth(Auth {
            client_proof: secret.client_proof(&ch.server_nonce, &nonce),
            session_proof: [0; frame::PROOF_BYTES],
        }),
    );
    let reject = d.conns[k].frames.iter().find_map(|f| match f {
        Frame::Reject(r) => Some((r.reason, r.text.clone())),
        _ => None,
    });
    (server_proved, reject)
}

#[test]
fn an_unknown_name_is_refused_exactly_like_a_wrong_secret() {
    // The right secret: the server proves it back and registers.
    let (proved, reject) = raw_attempt("billing", &billing_secret());
    assert!(proved);
    assert_eq!(reject, None);
    // The wrong secret for a known name, and a name nobody configured:
    // neither challenge verifies, and an `Auth` sent anyway gets the same
    // reason, and a text that differs only by the name the client chose.
    let (proved_wrong, wrong) = raw_attempt("billing", &other_secret());
    let (proved_unknown, unknown) = raw_attempt("nobodyy", &other_secret());
    assert!(!proved_wrong && !proved_unknown);
    let (wrong, unknown) = (wrong.unwrap(), unknown.unwrap());
    assert_eq!(wrong.0, RejectReason::BadSecret);
    assert_eq!(unknown.0, RejectReason::BadSecret);
    assert_eq!(wrong.1.replace("billing", "nobodyy"), unknown.1);
    // The cluster secret proves nothing for a named credential.
    let (proved, reject) = raw_attempt("billing", &harness::secret());
    assert!(!proved);
    assert_eq!(reject.map(|r| r.0), Some(RejectReason::BadSecret));
}

#[test]
fn a_credential_limited_to_source_addresses_is_refused_from_others() {
    let mut creds = credentials();
    if let Some(cred) = creds.secrets.get_mut("billing") {
        let mut p = (*cred.permissions).clone();
        p.sources = vec![Source::parse("10.1.0.0/16").unwrap()];
        cred.permissions = Arc::new(p);
    }
    let mut cfg = harness::server_config();
    cfg.credentials = creds;
    let mut c = Cluster::with_config(7, cfg);
    let inside = c.add_with(member("billing", billing_secret(), "billing-eu", 71));
    let outside = c.add_with(member("billing", billing_secret(), "billing-us", 72));
    c.nodes[inside].peer = Some("10.1.2.3".parse().unwrap());
    c.nodes[outside].peer = Some("10.2.0.1".parse().unwrap());
    c.run_for(100, 10);
    assert!(c.nodes[inside].client.is_ready());
    assert_eq!(rejected(&c, outside), Some(RejectReason::NotPermitted));
    assert!(!c.nodes[outside].client.is_ready());
    // Refused on every attempt (the client retries with backoff).
    assert!(denials(&c, DenialKind::Register) >= 1);
    // A reload that moves the credential to another network removes the
    // member using it from the old one.
    let mut moved = credentials();
    if let Some(cred) = moved.secrets.get_mut("billing") {
        let mut p = (*cred.permissions).clone();
        p.sources = vec![Source::parse("10.2.0.0/16").unwrap()];
        cred.permissions = Arc::new(p);
    }
    let inside_id = c.member_id(inside);
    let now = c.now;
    assert_eq!(c.server.set_credentials(now, moved), 1);
    c.run_for(50, 10);
    assert!(!c.server.view().any(|m| m.member_id == inside_id));
}
