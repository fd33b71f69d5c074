//! Determinism: the same seed and options always give the same trace hash
//! (whatever the thread count or whether the history is kept), and
//! different seeds give different ones.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use switchboard_core::mutation::Mutation;
use switchboard_sim::config::{FaultKind, FaultSelection, SimConfig};
use switchboard_sim::rng::mix;
use switchboard_sim::sweep::sweep;
use switchboard_sim::{plan, run_plan, run_seed};

/// A shorter run than the default, to keep the repeated runs cheap.
fn short() -> SimConfig {
    SimConfig {
        duration_ms: 6_000,
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_same_trace_hash() {
    let configs = [
        SimConfig::default(),
        SimConfig {
            members: 5,
            instances: 2,
            duration_ms: 5_000,
            faults: FaultSelection::Only(vec![FaultKind::ServerCrash, FaultKind::Partition]),
            mutation: Mutation::ClientSkipDedup,
            trace: false,
        },
    ];
    for cfg in &configs {
        for seed in [0, 1, 7, 42, 1_000_003] {
            let a = run_seed(seed, cfg);
            let b = run_seed(seed, cfg);
            assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} {cfg:?}");
            assert_eq!(a.events, b.events, "seed {seed}");
            assert_eq!(a.coverage, b.coverage, "seed {seed}");
            assert_eq!(a.violations, b.violations, "seed {seed}");
        }
    }
}

#[test]
fn keeping_the_history_does_not_change_the_run() {
    let cfg = short();
    for seed in [3, 11] {
        let a = run_seed(seed, &cfg);
        let b = run_plan(seed, &cfg, plan::generate(seed, &cfg), true);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.events, b.events);
        assert!(b.history.is_some_and(|h| !h.entries.is_empty()));
    }
}

#[test]
fn different_seeds_different_trace_hashes() {
    let cfg = short();
    let hashes: BTreeSet<u64> = (0..12).map(|s| run_seed(s, &cfg).trace_hash).collect();
    assert_eq!(hashes.len(), 12, "{hashes:x?}");
    // The same seed with other options is another run too.
    let seed = (0..)
        .find(|&s| !plan::generate(s, &cfg).faults.is_empty())
        .unwrap();
    let calm = SimConfig {
        faults: FaultSelection::None,
        ..cfg.clone()
    };
    assert_ne!(
        run_seed(seed, &cfg).trace_hash,
        run_seed(seed, &calm).trace_hash
    );
}

#[test]
fn sweep_hash_is_independent_of_threads_and_combined_in_seed_order() {
    let cfg = short();
    let seeds = 20..36;
    let one = sweep(seeds.clone(), &cfg, 1, &|_| {});
    let two = sweep(seeds.clone(), &cfg, 2, &|_| {});
    assert_eq!(one.trace_hash, two.trace_hash);
    assert_eq!(one.events, two.events);
    assert_eq!(one.coverage, two.coverage);
    assert_eq!(one.violations, two.violations);
    assert_eq!(one.seeds, 16);
    // The combined hash folds each seed's hash in seed order.
    let mut h = 0u64;
    for seed in seeds {
        h = mix(h ^ run_seed(seed, &cfg).trace_hash);
    }
    assert_eq!(one.trace_hash, format!("{h:016x}"));
    // Another range is another hash.
    let other = sweep(21..37, &cfg, 2, &|_| {});
    assert_ne!(one.trace_hash, other.trace_hash);
}
