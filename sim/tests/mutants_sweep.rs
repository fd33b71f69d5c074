//! The sweep as a mutation-testing oracle (`sim/mutants.sh`): seeds
//! `0..SIM_MUTANT_SEEDS` (default 200) of the default swarm profile on two
//! threads, stopping at the first seed with a violation; then the coverage
//! floors (`Coverage::below_floors`). Ignored in an
//! ordinary `cargo test` (`sim/tests/sweep.rs` runs the full profiles);
//! run it with `cargo test --release -p switchboard-sim --test mutants_sweep
//! -- --ignored`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use switchboard_sim::{run_seed, SimConfig};

#[test]
#[ignore = "mutation-testing oracle; run by sim/mutants.sh"]
fn sweep_has_no_violation() {
    let seeds: u64 = std::env::var("SIM_MUTANT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let cfg = SimConfig::default();
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let covs: Mutex<Vec<switchboard_sim::coverage::Coverage>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds {
                    break;
                }
                let r = run_seed(seed, &cfg);
                if let Ok(mut c) = covs.lock() {
                    c.push(r.coverage);
                }
                if let Some(v) = r.violations.first() {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut f) = first.lock() {
                        if f.as_ref().is_none_or(|(s, _)| *s > seed) {
                            *f = Some((seed, format!("{}: {}", v.guarantee, v.detail)));
                        }
                    }
                }
            });
        }
    });
    let first = first.into_inner().unwrap_or_default();
    if let Some((seed, v)) = first {
        panic!("seed {seed} violates a guarantee: {v}");
    }
    let mut coverage = switchboard_sim::coverage::Coverage::default();
    for c in covs.into_inner().unwrap_or_default() {
        coverage.merge(&c);
    }
    let low = coverage.below_floors(seeds);
    assert!(low.is_empty(), "coverage collapsed: {low:#?}");
}
