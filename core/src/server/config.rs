//! Server settings: every limit is named here with its default.

use crate::auth::Secret;
use crate::credentials::Credentials;
use crate::frame::Limits;

/// Settings of a message server. Every queue and table has a bound here.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Cluster name members must present.
    pub cluster: String,
    /// Cluster secret for the challenge-response handshake.
    pub secret: Secret,
    /// Further secrets members may prove, so that a cluster can roll to a
    /// new secret without downtime; only the first
    /// [`EXTRA_PROOFS_MAX`](crate::frame::EXTRA_PROOFS_MAX) are used.
    pub extra_secrets: Vec<Secret>,
    /// Named credentials (named secrets, certificate names) and what each
    /// credential, the cluster's included, permits. Replaced at run time
    /// by [`Server::set_credentials`](super::Server::set_credentials).
    pub credentials: Credentials,
    /// Frame size limit.
    pub limits: Limits,
    /// Largest number of registered members (SAP's `max_clients` is 600).
    pub members_max: usize,
    /// Largest number of connections still in their handshake. When full,
    /// a new connection makes the stalest pending handshake close (see
    /// `Server::handle_connected`).
    pub handshakes_max: usize,
    /// A handshake that takes longer is closed. An honest one takes two
    /// round trips; keep it short so that connections that never
    /// authenticate do not hold a slot for long.
    pub handshake_timeout_ms: u64,
    /// Idle interval after which either side pings.
    pub heartbeat_interval_ms: u32,
    /// Silence after which a member is declared failed.
    pub heartbeat_timeout_ms: u32,
    /// How long a member whose connection dropped may resume.
    pub resume_window_ms: u32,
    /// After the server starts, how long members have to re-register
    /// before messages to absent addressees are NACKed; multicasts wait for
    /// it to end so that they reach every member that came back. Keep it
    /// above the clients' `reconnect_max_ms + handshake_timeout_ms`.
    pub restart_grace_ms: u64,
    /// Soft limit of a member's unacknowledged stream, in items.
    pub member_queue_items_max: usize,
    /// Soft limit of a member's unacknowledged stream, in bytes.
    pub member_queue_bytes_max: usize,
    /// How long a member may stay over its soft limit before eviction.
    /// At twice the soft limit it is evicted at once.
    pub slow_consumer_grace_ms: u64,
    /// Stream items in flight (sent, not acknowledged) per connection.
    pub send_window_items: usize,
    /// Stream bytes in flight per connection.
    pub send_window_bytes: usize,
    /// Largest number of a sender's messages not yet final at every
    /// addressee; beyond it messages are NACKed `OverQuota`.
    pub sender_inflight_max: usize,
    /// Bytes of a throttled member's frames held unprocessed; beyond it the
    /// driver stops reading the connection (`Server::wants_read`). Keep it
    /// at least twice the clients' `outbox_bytes_max` (each deferred frame
    /// is counted with 64 bytes of overhead), so that a client within its
    /// outbox limit is never stopped and its heartbeats always get through.
    pub member_inbox_bytes_max: usize,
    /// Largest message accepted (all chunks), bytes. It is also each
    /// member's bound for a message in reassembly (a member has at most one
    /// at a time).
    pub message_bytes_max: u32,
    /// A chunked message must be complete this long after its first frame;
    /// else its pieces are dropped and it is NACKed `Incomplete`.
    pub reassembly_timeout_ms: u64,
    /// Bytes of chunked messages in reassembly, all members together; a
    /// piece that would pass it drops the oldest message in reassembly
    /// (NACKed `Incomplete`).
    pub reassembly_bytes_max: usize,
    /// Largest number of distinct groups.
    pub groups_max: usize,
    /// Largest transmit produced by one `poll_output`, bytes.
    pub transmit_batch_bytes: usize,
    /// A deliberate bug, for checker validation only (cargo feature
    /// `mutation`).
    #[cfg(feature = "mutation")]
    pub mutation: crate::mutation::Mutation,
}

impl ServerConfig {
    /// The `(through, stable_through)` pair an `Ack` carries: as the member
    /// state says, or, under the deliberate bug
    /// `Mutation::ServerStableOnReceipt`, stable as soon as received.
    #[inline]
    pub(crate) fn ack_to_send(&self, pair: (u64, u64)) -> (u64, u64) {
        #[cfg(feature = "mutation")]
        if self.mutation == crate::mutation::Mutation::ServerStableOnReceipt {
            return (pair.0, pair.0);
        }
        pair
    }

    /// Every secret the server accepts, its own first.
    pub fn accepted_secrets(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.secret).chain(
            self.extra_secrets
                .iter()
                .take(crate::frame::EXTRA_PROOFS_MAX),
        )
    }

    /// Defaults for a cluster name and secret.
    pub fn new(cluster: impl Into<String>, secret: Secret) -> Self {
        ServerConfig {
            cluster: cluster.into(),
            secret,
            extra_secrets: Vec::new(),
            credentials: Credentials::default(),
            limits: Limits::default(),
            members_max: 600,
            handshakes_max: 128,
            handshake_timeout_ms: 2_000,
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 5_000,
            resume_window_ms: 10_000,
            restart_grace_ms: 3_000,
            member_queue_items_max: 65_536,
            member_queue_bytes_max: 64 * 1024 * 1024,
            slow_consumer_grace_ms: 2_000,
            send_window_items: 8_192,
            send_window_bytes: 4 * 1024 * 1024,
            sender_inflight_max: 65_536,
            member_inbox_bytes_max: 16 * 1024 * 1024,
            message_bytes_max: 16 * 1024 * 1024,
            reassembly_timeout_ms: 60_000,
            reassembly_bytes_max: 256 * 1024 * 1024,
            groups_max: 4_096,
            transmit_batch_bytes: 256 * 1024,
            #[cfg(feature = "mutation")]
            mutation: crate::mutation::Mutation::None,
        }
    }
}
