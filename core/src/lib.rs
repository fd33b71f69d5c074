//! # switchboard-core
//!
//! The wire protocol and the sans-IO state machines of Switchboard, a
//! cluster communication manager: one message server sequences messages
//! and events for many member processes.
//!
//! This crate does no IO: no sockets, no clock, no threads, no global RNG.
//! Time is passed in as `Tick`s and randomness comes from an
//! RNG the caller seeds, so the simulator (`switchboard-sim`) and the tokio
//! adapters (`switchboard-server`, `switchboard-client`) drive exactly the same code.
//!
//! ## Layout
//! * [`frame`]: frames, byte layout, limits, encode/decode.
//! * [`server`]: the message server state machine.
//! * [`client`]: the member (work process) state machine.
//! * [`auth`]: the challenge-response proofs.
//! * [`credentials`]: named credentials and their permissions.
//! * [`time`]: the virtual time type.
//! * `mutation` (cargo feature `mutation`): deliberate bugs for checker
//!   validation.
//! * `testkit` (cargo feature `testkit`): a raw-frame server driver for
//!   tests and fuzzing.
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod credentials;
pub mod frame;
#[cfg(feature = "mutation")]
pub mod mutation;
pub mod seq_queue;
pub mod server;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
