//! # switchboard-net
//!
//! The tokio adapter: the `switchboard` message server runtime and the async
//! client library for work processes, both driving the sans-IO state
//! machines of `switchboard-core` over real TCP. The adapter feeds bytes and
//! timers to the core and writes what it says, and nothing more: every
//! protocol decision lives in the core.
//!
//! ## Layout
//! * [`server`]: [`server::run`] binds the internal (binary protocol) and
//!   external (HTTP, read-only) listeners and starts one task that owns the
//!   [`Server`](switchboard_core::server::Server) state machine, with a
//!   reader and a writer task per connection and bounded channels between
//!   them.
//! * [`client`]: [`client::Member`], a work process's handle; a driver task
//!   owns the core [`Client`](switchboard_core::client::Client), opens the
//!   connections it asks for and turns its events into futures and streams.
//! * [`config`]: server settings from a TOML file, flags and environment.
//! * [`secret`]: the cluster secret file (generated on first start, owner-only
//!   permissions).
//! * [`clock`]: the mapping between tokio's clock and core [`Tick`](switchboard_core::time::Tick)s.
//! * `io`: the socket write loop shared by both sides (coalesced writes).
#![deny(missing_docs)]

pub mod bench;
pub mod client;
pub mod clock;
pub mod config;
mod io;
pub mod secret;
pub mod server;
