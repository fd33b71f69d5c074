//! Scripted stories on the same simulator as the random sweeps: a small
//! builder for a specific plan (no random faults), run, then checked by
//! every guarantee checker plus the story's own assertions.
//!
//! ```
//! use switchboard_sim::scenario::Scenario;
//! use switchboard_sim::plan::{Action, Target};
//! let run = Scenario::new(3, 1)
//!     .at(500, Action::Send { slot: 0, to: Target::Broadcast, confirm: true, size: 32 })
//!     .at(600, Action::ServerCrash { down_ms: 300 })
//!     .run(1);
//! assert!(run.violations.is_empty(), "{:?}", run.violations);
//! ```

use crate::config::{FaultSelection, SimConfig};
use crate::history::{Act, History};
use crate::plan::{Action, Plan, Step};
use crate::{run_plan, RunResult};

/// A scripted story.
#[derive(Debug, Clone)]
pub struct Scenario {
    cfg: SimConfig,
    plan: Plan,
}

impl Scenario {
    /// A cluster of `members` spread over `instances`, no random faults.
    pub fn new(members: usize, instances: usize) -> Scenario {
        Scenario {
            cfg: SimConfig {
                members,
                instances,
                duration_ms: 10_000,
                faults: FaultSelection::None,
                ..SimConfig::default()
            },
            plan: Plan::default(),
        }
    }

    /// Length of the safety phase (the heal phase follows), ms.
    pub fn duration(mut self, ms: u64) -> Scenario {
        self.cfg.duration_ms = ms;
        self
    }

    /// Switches on a deliberate bug.
    pub fn mutation(mut self, m: switchboard_core::mutation::Mutation) -> Scenario {
        self.cfg.mutation = m;
        self
    }

    /// Adds a step at `ms`.
    pub fn at(mut self, ms: u64, action: Action) -> Scenario {
        self.plan.steps.push(Step { at: ms, action });
        self
    }

    /// Runs the story with network randomness from `seed`; the history is
    /// kept for the story's own assertions.
    pub fn run(mut self, seed: u64) -> RunResult {
        self.plan.steps.sort_by_key(|s| s.at);
        run_plan(seed, &self.cfg, self.plan, true)
    }
}

/// Helpers for a story's assertions.
pub trait HistoryExt {
    /// Number of acts matching `f`.
    fn count(&self, f: impl Fn(&Act) -> bool) -> usize;
}

impl HistoryExt for History {
    fn count(&self, f: impl Fn(&Act) -> bool) -> usize {
        self.iter().filter(|e| f(&e.act)).count()
    }
}
