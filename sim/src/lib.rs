//! # switchboard-sim
//!
//! A seeded discrete-event simulator that runs the real `switchboard-core`
//! server and client state machines on a virtual clock, injects network and
//! process faults, records a history and checks every guarantee of
//! `docs/GUARANTEES.md` against it.
//!
//! Not built yet: see the simulator issue. This crate exists so that the
//! workspace has its final shape from the start.
#![deny(missing_docs)]
