//! What a workload run gets to work with.

use std::net::SocketAddr;

use switchboard_core::auth::Secret;

use super::proc::ServerProc;
use super::workload::{AddressKind, Params};

/// One run of one workload against one system.
#[derive(Debug, Clone, Copy)]
pub struct RunCtx<'a> {
    /// The server's client address.
    pub addr: SocketAddr,
    /// The shared parameters.
    pub params: &'a Params,
    /// The server process, when the bench started it (W5 reads its memory).
    pub server: Option<&'a ServerProc>,
    /// Switchboard only: the cluster name and secret members join with.
    pub cluster: Option<(&'a str, &'a Secret)>,
    /// Switchboard only: how senders address receivers (`None`: the
    /// workload's default).
    pub address: Option<AddressKind>,
}

impl RunCtx<'_> {
    /// The server's resident memory now, when the bench knows the process.
    pub fn server_rss(&self) -> Option<u64> {
        self.server.map(|s| s.usage().rss)
    }
}
