//! The connection to the server as the client sees it: where the
//! handshake stands, the read and control buffers, heartbeats and the
//! reconnect backoff.

use bytes::BytesMut;
use rand::RngCore;

use crate::frame::{self, Frame, MemberInfo, Welcome};
use crate::time::Tick;

/// The nonces of the current handshake, kept until the session key is
/// derived from them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Nonces {
    pub(super) client: [u8; frame::NONCE_BYTES],
    pub(super) server: [u8; frame::NONCE_BYTES],
}

/// Where the connection stands.
#[derive(Debug)]
pub(super) enum Phase {
    /// No connection; reconnect at the given time.
    Idle { retry_at: Tick },
    /// `Connect` was emitted; waiting for `handle_connected`.
    Connecting { since: Tick },
    /// Hello/Resume sent; waiting for the server's challenge.
    AwaitChallenge {
        since: Tick,
        nonce: [u8; frame::NONCE_BYTES],
    },
    /// Authenticated; waiting for Welcome (+ snapshot) or Resumed.
    AwaitWelcome { since: Tick, nonces: Nonces },
    /// Welcome received; collecting snapshot members.
    Snapshot {
        since: Tick,
        welcome: Welcome,
        members: Vec<MemberInfo>,
        nonces: Nonces,
    },
    /// Registered and streaming.
    Ready,
    /// Goodbye sent or refused for good.
    Closed,
}

/// One connection's state (a new connection starts from `Idle`).
#[derive(Debug)]
pub(super) struct Link {
    pub(super) phase: Phase,
    /// Bytes received and not yet decoded.
    pub(super) read_buf: BytesMut,
    /// Encoded control frames waiting for the next transmit.
    pub(super) control: BytesMut,
    /// Last time anything arrived from the server.
    pub(super) last_heard: Tick,
    /// Last time anything was queued for the server.
    pub(super) last_sent: Tick,
    /// Heartbeat settings (the server's, once registered).
    pub(super) heartbeat_interval_ms: u64,
    pub(super) heartbeat_timeout_ms: u64,
    /// Failed attempts since the last registration or resume.
    attempts: u32,
}

impl Link {
    pub(super) fn new(now: Tick, heartbeat_interval_ms: u64, heartbeat_timeout_ms: u64) -> Link {
        Link {
            phase: Phase::Idle { retry_at: now },
            read_buf: BytesMut::new(),
            control: BytesMut::new(),
            last_heard: now,
            last_sent: now,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            attempts: 0,
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Encodes a control frame for the next transmit.
    pub(super) fn write_control(&mut self, f: &Frame, limits: &frame::Limits, now: Tick) {
        let ok = f.encode(&mut self.control, limits).is_ok();
        debug_assert!(ok, "client-built control frame must encode");
        self.last_sent = now;
    }

    /// Forgets what belonged to the previous connection.
    pub(super) fn clear_buffers(&mut self) {
        self.read_buf.clear();
        self.control.clear();
    }

    /// Registered or resumed: the backoff starts over.
    pub(super) fn established(&mut self) {
        self.attempts = 0;
    }

    /// The delay before the next attempt: exponential from `min_ms` up to
    /// `max_ms`, with full jitter between half and all of it.
    pub(super) fn backoff_ms(&mut self, min_ms: u64, max_ms: u64, rng: &mut dyn RngCore) -> u64 {
        self.attempts = self.attempts.saturating_add(1);
        let base = min_ms
            .saturating_mul(1u64 << self.attempts.min(16).saturating_sub(1))
            .min(max_ms);
        let jitter = if base > 1 {
            rng.next_u64() % (base / 2 + 1)
        } else {
            0
        };
        base - jitter
    }

    /// When the phase needs attention next.
    pub(super) fn deadline(&self, handshake_timeout_ms: u64) -> Option<Tick> {
        match &self.phase {
            Phase::Idle { retry_at } => Some(*retry_at),
            Phase::Connecting { since }
            | Phase::AwaitChallenge { since, .. }
            | Phase::AwaitWelcome { since, .. }
            | Phase::Snapshot { since, .. } => Some(since.plus_millis(handshake_timeout_ms)),
            Phase::Ready => Some(
                self.last_heard
                    .plus_millis(self.heartbeat_timeout_ms)
                    .min(self.last_sent.plus_millis(self.heartbeat_interval_ms)),
            ),
            Phase::Closed => None,
        }
    }
}
