//! Many seeds on several threads (each seed runs on one thread: turmoil
//! and the armed adapter fault are per thread).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::plan::ProdConfig;
use crate::world::{run_seed, RunResult};

/// Runs seeds `from..to` on `jobs` threads; results in seed order.
pub fn sweep(from: u64, to: u64, jobs: usize, cfg: &ProdConfig) -> Vec<RunResult> {
    let next = AtomicU64::new(from);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= to {
                    return;
                }
                let r = run_seed(seed, cfg, false);
                out.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|e| e.into_inner());
    v.sort_by_key(|r| r.seed);
    v
}

/// The command that replays a seed.
pub fn replay_command(seed: u64, cfg: &ProdConfig) -> String {
    let mut c = format!("cargo run -p switchboard-prodsim --release -- --seed {seed} --trace");
    if let Some(bug) = cfg.bug {
        c.push_str(&format!(" --bug {}", crate::plan::bug_name(bug)));
    }
    if cfg.kinds.contains(&crate::plan::FaultKind::StopReading) {
        c.push_str(" --faults +stop-reading");
    }
    c
}
