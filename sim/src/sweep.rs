//! Running many seeds (on several threads when asked) and summing up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::config::SimConfig;
use crate::coverage::Coverage;
use crate::history::Violation;
use crate::rng::mix;
use crate::run_seed;

/// One failing seed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Its violations (guarantee and detail).
    pub violations: Vec<(String, String)>,
}

/// The outcome of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with at least one violation.
    pub violations: u64,
    /// Events processed, all seeds.
    pub events: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Simulated seconds, all seeds.
    pub sim_s: f64,
    /// Events per wall-clock second.
    pub events_per_s: f64,
    /// Simulated time per wall-clock time.
    pub sim_to_wall: f64,
    /// Seeds per wall-clock minute.
    pub seeds_per_min: f64,
    /// Hash over every seed's trace hash, in seed order: equal for equal
    /// inputs, on every build.
    pub trace_hash: String,
    /// The first failing seeds (at most 20).
    pub failures: Vec<Failure>,
    /// Summed coverage.
    pub coverage: Coverage,
}

/// One seed's figures: seed, trace hash, events, simulated ms, coverage,
/// violations.
type SeedResult = (u64, u64, u64, u64, Coverage, Vec<Violation>);

/// Runs `seeds` with `jobs` threads; `progress` is called after each seed.
pub fn sweep(
    seeds: std::ops::Range<u64>,
    cfg: &SimConfig,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Summary {
    let start = Instant::now();
    let next = AtomicU64::new(seeds.start);
    let total = seeds.end.saturating_sub(seeds.start);
    let done = AtomicU64::new(0);
    // Per-seed results, kept in seed order for the combined hash.
    let results: Mutex<Vec<SeedResult>> = Mutex::new(Vec::with_capacity(total as usize));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let r = run_seed(seed, cfg);
                if let Ok(mut v) = results.lock() {
                    v.push((
                        seed,
                        r.trace_hash,
                        r.events,
                        r.sim_ms,
                        r.coverage,
                        r.violations,
                    ));
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|r| r.0);
    let wall_s = start.elapsed().as_secs_f64().max(1e-9);
    let mut hash = 0u64;
    let mut events = 0;
    let mut sim_ms = 0;
    let mut coverage = Coverage::default();
    let mut failures = Vec::new();
    let mut violations = 0;
    for (seed, h, ev, ms, cov, viol) in &results {
        hash = mix(hash ^ h);
        events += ev;
        sim_ms += ms;
        coverage.merge(cov);
        if !viol.is_empty() {
            violations += 1;
            if failures.len() < 20 {
                failures.push(Failure {
                    seed: *seed,
                    violations: viol
                        .iter()
                        .map(|v| (v.guarantee.to_string(), v.detail.clone()))
                        .collect(),
                });
            }
        }
    }
    let sim_s = sim_ms as f64 / 1000.0;
    Summary {
        seeds: results.len() as u64,
        violations,
        events,
        wall_s,
        sim_s,
        events_per_s: events as f64 / wall_s,
        sim_to_wall: sim_s / wall_s,
        seeds_per_min: results.len() as f64 / wall_s * 60.0,
        trace_hash: format!("{hash:016x}"),
        failures,
        coverage,
    }
}
