//! Client settings: identity and every limit, with defaults.

use crate::auth::Secret;
use crate::frame::Limits;

/// Settings of a member client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Cluster name.
    pub cluster: String,
    /// The secret the member proves: the cluster secret, or the named
    /// secret of [`credential`](ClientConfig::credential).
    pub secret: Secret,
    /// The name of the credential `secret` belongs to, sent in `Hello`
    /// and `Resume`; empty (the default) for the cluster secret.
    pub credential: String,
    /// Instance name.
    pub instance: String,
    /// Process name within the instance.
    pub process: String,
    /// Incarnation id; pick a fresh random one per process start.
    pub incarnation: u64,
    /// Services announced at registration.
    pub services: Vec<String>,
    /// Initial load figure.
    pub load: u32,
    /// Frame size limit.
    pub limits: Limits,
    /// Largest number of unconfirmed messages kept for resending.
    pub outbox_items_max: usize,
    /// Largest total payload of unconfirmed messages, bytes.
    pub outbox_bytes_max: usize,
    /// Largest message accepted from the server (all chunks), bytes.
    pub message_bytes_max: u32,
    /// Largest number of outstanding requests.
    pub requests_max: usize,
    /// Largest number of sender incarnations remembered for duplicate
    /// detection.
    pub dedup_senders_max: usize,
    /// A handshake that takes longer is abandoned and retried.
    pub handshake_timeout_ms: u64,
    /// First reconnect delay; doubles per failed attempt.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay.
    pub reconnect_max_ms: u64,
    /// Ping interval until the server's `Welcome` says otherwise.
    pub heartbeat_interval_ms: u32,
    /// Server silence after which the connection is abandoned, until the
    /// server's `Welcome` says otherwise.
    pub heartbeat_timeout_ms: u32,
    /// Largest transmit produced by one `poll_output`, bytes.
    pub transmit_batch_bytes: usize,
    /// Report what the application took from the stream
    /// ([`Client::taken`](super::Client::taken)), so that a sender's
    /// `Outcome` counts a message as delivered here only once taken. The
    /// driver must then call `taken` as the application takes messages,
    /// or outcomes of messages to this member never become final.
    pub report_taken: bool,
    /// A deliberate bug, for checker validation only (cargo feature
    /// `mutation`).
    #[cfg(feature = "mutation")]
    pub mutation: crate::mutation::Mutation,
}

impl ClientConfig {
    /// Defaults for an identity.
    pub fn new(
        cluster: impl Into<String>,
        secret: Secret,
        instance: impl Into<String>,
        process: impl Into<String>,
        incarnation: u64,
    ) -> Self {
        ClientConfig {
            cluster: cluster.into(),
            secret,
            credential: String::new(),
            instance: instance.into(),
            process: process.into(),
            incarnation,
            services: Vec::new(),
            load: 0,
            limits: Limits::default(),
            outbox_items_max: 4_096,
            outbox_bytes_max: 8 * 1024 * 1024,
            message_bytes_max: 16 * 1024 * 1024,
            requests_max: 4_096,
            dedup_senders_max: 16_384,
            handshake_timeout_ms: 5_000,
            reconnect_min_ms: 50,
            reconnect_max_ms: 2_000,
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 5_000,
            transmit_batch_bytes: 256 * 1024,
            report_taken: false,
            #[cfg(feature = "mutation")]
            mutation: crate::mutation::Mutation::None,
        }
    }
}
