//! Shrinking: delta debugging (ddmin) over a failing run's plan, keeping
//! the seed, until no single chunk of steps can be removed without the
//! same guarantee ceasing to fail. The result is a short, readable plan.

use crate::config::SimConfig;
use crate::plan::Plan;
use crate::run_plan;

/// Largest number of simulations one shrink may spend.
pub const SHRINK_RUNS_MAX: usize = 1_000;

/// A shrunk reproduction.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The minimized plan.
    pub plan: Plan,
    /// The guarantee it still violates.
    pub guarantee: &'static str,
    /// Simulations spent.
    pub runs: usize,
}

/// Minimizes `plan` (which violates `guarantee` under `seed`).
pub fn shrink(seed: u64, cfg: &SimConfig, plan: Plan, guarantee: &'static str) -> Shrunk {
    let mut runs = 0;
    let fails = |p: &Plan, runs: &mut usize| -> bool {
        *runs += 1;
        run_plan(seed, cfg, p.clone(), false)
            .violations
            .iter()
            .any(|v| v.guarantee == guarantee)
    };
    let mut best = plan;
    let mut chunks = 2usize;
    while best.steps.len() >= 2 && runs < SHRINK_RUNS_MAX {
        let len = best.steps.len();
        let size = len.div_ceil(chunks);
        let mut reduced = false;
        let mut start = 0;
        while start < len && runs < SHRINK_RUNS_MAX {
            let end = (start + size).min(len);
            let mut candidate = best.clone();
            candidate.steps.drain(start..end);
            if fails(&candidate, &mut runs) {
                best = candidate;
                chunks = (chunks - 1).max(2);
                reduced = true;
                break;
            }
            start = end;
        }
        if !reduced {
            if chunks >= len {
                break;
            }
            chunks = (chunks * 2).min(len);
        }
    }
    Shrunk {
        plan: best,
        guarantee,
        runs,
    }
}
