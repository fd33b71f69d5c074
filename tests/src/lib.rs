//! # switchboard-tests
//!
//! End-to-end scenarios for Switchboard, simulated and over real TCP. The
//! scenarios live in `tests/` of this crate.
#![deny(missing_docs)]
