//! # switchboard-prodsim
//!
//! The production path under seeded faults: the real server runtime
//! (`switchboard-server`: accept loop, reader and writer tasks, core task)
//! and the real client library (`switchboard-client`: `Member`, its
//! driver, event stream, subscriptions, tally) run on turmoil's simulated
//! TCP and clock through the network seam of `switchboard_runtime::net`.
//! A seeded workload drives the public `Member` API while the world
//! partitions, delays, holds and resets links, crashes and restarts
//! members and the server, and makes applications read slowly or stop
//! reading. The API-level history is converted into the core simulator's
//! history and checked with its checkers, plus the adapter's promises.
//!
//! * [`plan`]: settings and the faults drawn from a seed.
//! * [`net`]: turmoil behind the seam.
//! * [`member`]: a member host (workload, readers).
//! * [`world`]: one seed end to end.
//! * [`record`]: the API-level history; [`convert`]: into the core
//!   simulator's history and its checkers; [`promises`]: the adapter's.
//! * [`sweep`]: many seeds on several threads.
#![deny(missing_docs)]

pub mod convert;
pub mod member;
pub mod net;
pub mod plan;
pub mod promises;
pub mod record;
pub mod sweep;
pub mod world;

pub use plan::{FaultKind, ProdConfig};
pub use world::{run_seed, RunResult};
