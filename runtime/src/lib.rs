//! # switchboard-runtime
//!
//! What the message server runtime (`switchboard-server`) and the client
//! library (`switchboard-client`) share on tokio, and nothing else:
//!
//! * [`clock`]: the mapping between tokio's clock and core
//!   [`Tick`](switchboard_core::time::Tick)s, and a sleep until a core
//!   deadline.
//! * [`io`]: the socket write loop (coalesced, vectored writes with a stall
//!   timeout) and the read buffer size.
//! * [`secret`]: the cluster secret file (hex, generated on first start with
//!   owner-only permissions).
//! * [`net`]: the network seam (listener, connector, randomness) with the
//!   tokio implementation; a simulation supplies its own.
//! * [`tls`]: TLS on that seam (rustls): a listener, a connector, and the
//!   configurations from PEM files.
#![deny(missing_docs)]

pub mod clock;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod io;
pub mod net;
pub mod secret;
pub mod tls;
