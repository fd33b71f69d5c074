//! # switchboard-sim
//!
//! A seeded discrete-event simulator that runs the real `switchboard-core`
//! server and client state machines on a virtual clock, injects network and
//! process faults, records a history and checks every guarantee of
//! `docs/GUARANTEES.md` against it.
//!
//! ## Layout
//! * [`rng`]: one ChaCha stream per subsystem, derived from the seed.
//! * [`config`]: cluster shape, fault selection, simulated core settings,
//!   the liveness bound.
//! * [`plan`]: workload and faults drawn up front from the seed (swarm
//!   testing picks the fault mix), so that runs can be shrunk.
//! * [`world`]: the event loop, the network model, node driving, the
//!   workload and the faults, one file each.
//! * [`history`]: the recorded acts; [`checkers`]: one per guarantee.
//! * [`coverage`]: counters proving faults and protocol paths happened.
//! * [`shrink`]: delta debugging of a failing plan.
//! * [`scenario`]: scripted stories on the same simulator.
//! * [`sweep`]: many seeds, on several threads, and the summary.
#![deny(missing_docs)]

pub mod checkers;
pub mod config;
pub mod coverage;
pub mod history;
pub mod plan;
pub mod rng;
pub mod scenario;
pub mod shrink;
pub mod sweep;
pub mod world;

pub use config::SimConfig;
pub use world::RunResult;

/// Runs one seed: draws its plan, simulates, checks.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> RunResult {
    let plan = plan::generate(seed, cfg);
    run_plan(seed, cfg, plan, false)
}

/// Runs one seed with a given plan.
pub fn run_plan(seed: u64, cfg: &SimConfig, plan: plan::Plan, keep_history: bool) -> RunResult {
    world::World::new(seed, cfg.clone(), plan).run(keep_history)
}
