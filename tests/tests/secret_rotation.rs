//! Secret rotation over real TCP: a server that accepts two secrets lets
//! members holding either register and talk to each other, and refuses a
//! member holding a third.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_client::{member, Event, Member, MemberConfig};
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_server::config::ServerOptions;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn members_with_either_accepted_secret_register_and_a_third_is_refused() {
    let old = Secret::new(vec![1u8; 32]).unwrap();
    let new = Secret::new(vec![2u8; 32]).unwrap();
    let other = Secret::new(vec![3u8; 32]).unwrap();
    let mut core = ServerConfig::new("t", new.clone());
    core.extra_secrets = vec![old.clone()];
    let srv = switchboard_server::run(ServerOptions::loopback_ephemeral(core))
        .await
        .unwrap();
    let addr = srv.internal_addr().to_string();
    let (a, _ea) = tokio::time::timeout(
        WAIT,
        Member::connect(MemberConfig::new(&addr, "t", old, "i1", "a")),
    )
    .await
    .unwrap()
    .unwrap();
    let (_b, mut eb) = tokio::time::timeout(
        WAIT,
        Member::connect(MemberConfig::new(&addr, "t", new, "i1", "b")),
    )
    .await
    .unwrap()
    .unwrap();
    // The two are members of one cluster: a message crosses.
    tokio::time::timeout(WAIT, a.send(member("i1", "b"), "hi"))
        .await
        .unwrap()
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        while let Some(ev) = eb.next().await {
            if let Event::Message(m) = ev {
                return Some(m.wire.payload);
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(got.as_deref(), Some(&b"hi"[..]));
    // A secret the server does not hold is refused.
    let mut cfg = MemberConfig::new(&addr, "t", other, "i1", "c");
    cfg.connect_timeout = Duration::from_secs(1);
    let r = tokio::time::timeout(WAIT, Member::connect(cfg))
        .await
        .unwrap();
    match r {
        Err(switchboard_client::Error::ConnectTimeout { last, .. }) => {
            assert!(last.contains("secret"), "{last}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    srv.shutdown().await;
}
