//! Run settings: cluster shape, phases, which faults, and the core
//! settings the simulated cluster uses (short timeouts, small frames, so
//! that every protocol path is reached in seconds of virtual time).

use switchboard_core::auth::Secret;
use switchboard_core::client::ClientConfig;
use switchboard_core::frame::Limits;
use switchboard_core::mutation::Mutation;
use switchboard_core::server::ServerConfig;

use crate::history::Bounds;

/// Fault kinds the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Connection reset, losing the frames in flight.
    Reset,
    /// Latency spike / clogged link for one member.
    Clog,
    /// Partition of one member, one instance, one-way or symmetric.
    Partition,
    /// Member process crash, restart as a new incarnation.
    Crash,
    /// Message server crash and restart (all state lost).
    ServerCrash,
    /// A member process stops for a while (GC-like pause).
    Pause,
    /// A member stops reading its connection for a while.
    Slow,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Reset,
        FaultKind::Clog,
        FaultKind::Partition,
        FaultKind::Crash,
        FaultKind::ServerCrash,
        FaultKind::Pause,
        FaultKind::Slow,
    ];

    /// Short name, as used by `--faults`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Reset => "reset",
            FaultKind::Clog => "clog",
            FaultKind::Partition => "partition",
            FaultKind::Crash => "crash",
            FaultKind::ServerCrash => "server-crash",
            FaultKind::Pause => "pause",
            FaultKind::Slow => "slow",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Which faults a run may inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSelection {
    /// No faults.
    None,
    /// The seed picks a subset and rates (swarm testing).
    Swarm,
    /// Exactly these kinds, at rates the seed picks.
    Only(Vec<FaultKind>),
}

/// Settings of one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Member processes.
    pub members: usize,
    /// Instances they are spread over.
    pub instances: usize,
    /// Length of the safety phase (faults and workload), ms.
    pub duration_ms: u64,
    /// Which faults.
    pub faults: FaultSelection,
    /// A deliberate bug to switch on (checker validation).
    pub mutation: Mutation,
    /// Record every act into the trace text (for `--trace`).
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            members: 8,
            instances: 3,
            duration_ms: 20_000,
            faults: FaultSelection::Swarm,
            mutation: Mutation::None,
            trace: false,
        }
    }
}

/// Cluster name used in simulations.
pub const CLUSTER: &str = "sim";

/// The shared secret used in simulations.
pub fn secret() -> Secret {
    match Secret::new(*b"simulated-cluster-secret-0123456") {
        Ok(s) => s,
        Err(_) => unreachable!("the literal is long enough"),
    }
}

/// Frame limit in simulations: small, so that chunking happens often.
pub const SIM_FRAME_BYTES_MAX: u32 = 16 * 1024;

impl SimConfig {
    /// Server settings for this run.
    pub fn server_config(&self) -> ServerConfig {
        let mut c = ServerConfig::new(CLUSTER, secret());
        c.limits = Limits::with_frame_bytes_max(SIM_FRAME_BYTES_MAX);
        c.handshake_timeout_ms = 1_000;
        c.heartbeat_interval_ms = 200;
        c.heartbeat_timeout_ms = 1_000;
        c.resume_window_ms = 2_000;
        // Clients are back within reconnect_max + handshake (1.5 s).
        c.restart_grace_ms = 2_000;
        c.member_queue_items_max = 256;
        c.member_queue_bytes_max = 1024 * 1024;
        c.slow_consumer_grace_ms = 1_000;
        c.send_window_items = 64;
        c.send_window_bytes = 128 * 1024;
        c.sender_inflight_max = 1_024;
        c.message_bytes_max = 256 * 1024;
        // Tight enough that delays and concurrent large senders reach
        // them: messages are dropped in reassembly (NACKed `Incomplete`).
        c.reassembly_timeout_ms = 8;
        c.reassembly_bytes_max = 64 * 1024;
        c.member_inbox_bytes_max = 8 * 1024 * 1024;
        c.transmit_batch_bytes = 32 * 1024;
        c.mutation = self.mutation;
        c
    }

    /// Client settings for one member.
    pub fn client_config(&self, instance: &str, process: &str, incarnation: u64) -> ClientConfig {
        let mut c = ClientConfig::new(CLUSTER, secret(), instance, process, incarnation);
        c.limits = Limits::with_frame_bytes_max(SIM_FRAME_BYTES_MAX);
        c.outbox_items_max = 512;
        c.outbox_bytes_max = 4 * 1024 * 1024;
        c.message_bytes_max = 256 * 1024;
        c.handshake_timeout_ms = 1_000;
        c.reconnect_min_ms = 20;
        c.reconnect_max_ms = 500;
        c.heartbeat_interval_ms = 200;
        c.heartbeat_timeout_ms = 1_000;
        c.transmit_batch_bytes = 32 * 1024;
        c.mutation = self.mutation;
        c
    }

    /// What the checkers need to know of the settings.
    pub fn bounds(&self) -> Bounds {
        let s = self.server_config();
        Bounds {
            heartbeat_timeout_ms: u64::from(s.heartbeat_timeout_ms),
            resume_window_ms: u64::from(s.resume_window_ms),
            member_queue_items_max: s.member_queue_items_max,
            restart_grace_ms: s.restart_grace_ms,
            outbox_items_max: self.client_config("i", "p", 1).outbox_items_max,
            slow_consumer_grace_ms: s.slow_consumer_grace_ms,
            chunk_bytes_max: s.limits.chunk_bytes_max(),
            message_bytes_max: s.message_bytes_max,
        }
    }

    /// The liveness bound of `docs/GUARANTEES.md` (G9) for these settings:
    /// how long after the last fault ends the cluster must have converged.
    ///
    /// `reconnect_max + handshake_timeout` (a member is connected again)
    /// `+ heartbeat_timeout + resume_window` (a dead member is declared
    /// failed, which resolves everything addressed to it)
    /// `+ slow_consumer_grace` (a consumer over its limit is evicted)
    /// `+ restart_grace` (messages held after a server restart go out)
    /// `+ 2 × heartbeat_interval` (timer granularity)
    /// `+ 1 s` (draining queues).
    pub fn liveness_bound_ms(&self) -> u64 {
        let s = self.server_config();
        let c = self.client_config("i", "p", 1);
        c.reconnect_max_ms
            + c.handshake_timeout_ms
            + u64::from(s.heartbeat_timeout_ms)
            + u64::from(s.resume_window_ms)
            + s.slow_consumer_grace_ms
            + s.restart_grace_ms
            + 2 * u64::from(s.heartbeat_interval_ms)
            + 1_000
    }
}
