//! Checker validation: each deliberate bug of `Mutation::ALL` must make the
//! default swarm sweep fail, caught by the guarantee that bug breaks.
//! Seeds run one by one and stop at the first catch.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use switchboard_core::mutation::Mutation;
use switchboard_sim::{run_seed, SimConfig};

/// Seeds a mutation gets to be caught in.
const LIMIT: u64 = 300;

/// The guarantee each mutation breaks first and foremost.
fn expected(m: Mutation) -> Option<&'static str> {
    match m {
        Mutation::None => None,
        // Duplicates reach the application.
        Mutation::ClientSkipDedup => Some("G2 no duplicates"),
        // Senders forget acked messages before they are delivered; a
        // server crash loses them.
        Mutation::ServerStableOnReceipt => Some("G5 ack means delivery"),
        // A resumed member misses what was queued for it. G6, G7 and G8
        // (and G9) fire on many of the same seeds.
        Mutation::ServerSkipReplay => Some("G5 ack means delivery"),
    }
}

fn cli_name(m: Mutation) -> &'static str {
    match m {
        Mutation::None => "none",
        Mutation::ClientSkipDedup => "client-skip-dedup",
        Mutation::ServerStableOnReceipt => "server-stable-on-receipt",
        Mutation::ServerSkipReplay => "server-skip-replay",
    }
}

/// Runs seeds `0..LIMIT` with `m` until one violates the expected
/// guarantee; prints the first failing seed and the catching seed.
#[track_caller]
fn caught(m: Mutation) {
    let want = expected(m).unwrap();
    let cfg = SimConfig {
        mutation: m,
        ..SimConfig::default()
    };
    let mut first_failing = None;
    let mut seen = BTreeSet::new();
    for seed in 0..LIMIT {
        let r = run_seed(seed, &cfg);
        if r.violations.is_empty() {
            continue;
        }
        let guarantees: BTreeSet<&str> = r.violations.iter().map(|v| v.guarantee).collect();
        let first = *first_failing.get_or_insert(seed);
        seen.extend(guarantees.iter().copied());
        if guarantees.contains(want) {
            eprintln!(
                "mutation {}: first failing seed={first}, caught by {want} at seed={seed} \
                 (guarantees violated there: {guarantees:?}); replay: cargo run --release \
                 -p switchboard-sim -- --seed {seed} --mutation {} --trace",
                cli_name(m),
                cli_name(m)
            );
            return;
        }
    }
    panic!(
        "mutation {} not caught by {want} within {LIMIT} seeds (first failing seed {first_failing:?}, \
         guarantees seen: {seen:?})",
        cli_name(m)
    );
}

#[test]
fn client_skip_dedup_is_caught_by_g2() {
    caught(Mutation::ClientSkipDedup);
}

#[test]
fn server_stable_on_receipt_is_caught_by_g5() {
    caught(Mutation::ServerStableOnReceipt);
}

#[test]
fn server_skip_replay_is_caught_by_g5() {
    caught(Mutation::ServerSkipReplay);
}

/// Every mutation but `None` has a test above (a new one needs a new test
/// and an entry in `expected`).
#[test]
fn every_mutation_is_covered() {
    let tested = [
        Mutation::ClientSkipDedup,
        Mutation::ServerStableOnReceipt,
        Mutation::ServerSkipReplay,
    ];
    for &m in Mutation::ALL {
        assert_eq!(
            m != Mutation::None,
            tested.contains(&m),
            "{m:?} has no mutation test"
        );
        assert_eq!(expected(m).is_some(), m != Mutation::None);
    }
}
