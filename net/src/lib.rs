//! # switchboard-net
//!
//! The tokio adapter: the `switchboard` message server binary and the async
//! client library for work processes, both running the sans-IO state
//! machines of `switchboard-core` over real TCP.
//!
//! Not built yet: see the network adapter issue.
#![deny(missing_docs)]
