//! The one task that owns the [`Server`] state machine.
//!
//! Loop: take one input (a connection accepted, bytes, a close, a timer, a
//! query), hand it to the server, drain `poll_output` (transmits to the
//! writers, closes, log events), update the read gates, re-arm the timer
//! from `poll_timeout`. No lock: nobody else touches the state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

// tokio's clock, not std's: under the production-path simulator time is
// turmoil's, and admission (cool-downs) and budget checks must replay.
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use switchboard_core::frame::{ErrorCode, ErrorFrame, FailReason, Frame, Reject, RejectReason};
use switchboard_core::server::{ConnId, Output, Server, ServerConfig, ServerEvent};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use super::acl::Acl;
use super::conn::Writer;
use super::event_log::{EventLog, Subscription};
use super::snapshot::AccessCounts;
use super::snapshot::{event_record, Snapshot, StartTime};
use super::view::{MemberView, MembersView};
use super::SHUTDOWN_FLUSH_TIMEOUT;
use switchboard_runtime::clock::{sleep_until, Clock};
use switchboard_runtime::secret::to_hex;

/// An input for the core task.
#[derive(Debug)]
pub(crate) enum CoreMsg {
    /// A connection was accepted; its tasks are running.
    Accepted {
        conn: ConnId,
        peer: SocketAddr,
        writer: Writer,
        gate: watch::Sender<bool>,
    },
    /// Bytes read from a connection, with their share of the input budget
    /// (released once the state machine has taken them).
    Bytes {
        conn: ConnId,
        data: Bytes,
        budget: OwnedSemaphorePermit,
    },
    /// The connection's TLS handshake verified a client certificate with
    /// these names (sent before its first bytes).
    Certificate { conn: ConnId, names: Vec<String> },
    /// The connection hit EOF or an error.
    Closed { conn: ConnId },
    /// A snapshot of the view for the external port.
    Query(oneshot::Sender<MembersView>),
    /// Everything the `/v1` API and `/metrics` show.
    Snapshot(oneshot::Sender<Snapshot>),
    /// A new `/v1/events` watcher from a stream position.
    Watch {
        from: u64,
        reply: oneshot::Sender<Subscription>,
    },
    /// What the server holds against its memory budget now.
    Memory(oneshot::Sender<MemoryUse>),
    /// New access rules (reloaded): applied to new connections, and every
    /// open connection they no longer permit is closed; the reply is how
    /// many were.
    Acl {
        acl: Acl,
        reply: oneshot::Sender<usize>,
    },
}

/// What the core task keeps per open connection.
#[derive(Debug)]
struct ConnEntry {
    peer: SocketAddr,
    writer: Writer,
    gate: watch::Sender<bool>,
}

/// Limits the core task enforces around the state machine.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// Pending handshakes per client IP address at most.
    pub handshakes_per_source_max: usize,
    /// Server-wide memory budget, bytes.
    pub memory_max_bytes: usize,
    /// The readers' budget for bytes read but not yet handed to the state
    /// machine (its permits are bytes).
    pub input: Arc<Semaphore>,
    /// Its size, bytes.
    pub input_bytes_max: usize,
    /// Bytes handed to the connections' writers and not yet written (or
    /// dropped with a failed connection): raised here before each transmit,
    /// lowered by the writers.
    pub queued: Arc<AtomicUsize>,
    /// The member port's access rules, if configured.
    pub acl: Option<Acl>,
}

/// How often refused connections are summarised in one log line.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// An address whose handshake was closed unfinished (timed out, or pushed
/// out of a full table) may not start another for this long: an attacker
/// churning handshakes from many addresses is slowed to one attempt per
/// address and interval, while an honest member, whose handshakes finish,
/// is never held back. Addresses with a registered member are exempt.
const SOURCE_COOLDOWN: Duration = Duration::from_secs(1);

/// Lines about refusals by credentials (permission denials, failed
/// proofs) logged per [`REFUSAL_LOG_INTERVAL`] at most; the rest are
/// counted and summarised.
const DENIAL_LINES_MAX: u32 = 10;

/// Rate limit of the lines about refusals by credentials.
#[derive(Debug)]
struct DenialLog {
    window: Instant,
    lines: u32,
    suppressed: u64,
}

impl DenialLog {
    fn new() -> DenialLog {
        DenialLog {
            window: Instant::now(),
            lines: 0,
            suppressed: 0,
        }
    }

    /// True when one more line may be written now.
    fn admit(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= REFUSAL_LOG_INTERVAL {
            self.window = now;
            self.lines = 0;
        }
        if self.lines < DENIAL_LINES_MAX {
            self.lines += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Addresses remembered in cool-down at most.
const COOLDOWN_ADDRESSES_MAX: usize = 65_536;

/// What the server holds against its memory budget
/// ([`ServerHandle::memory`](crate::ServerHandle::memory)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    /// Everything the budget counts: the three parts below.
    pub held_bytes: usize,
    /// The state machine's queues and buffers (`Server::memory_bytes`).
    pub state_bytes: usize,
    /// Reads handed to the state machine and not yet processed.
    pub input_bytes: usize,
    /// Transmits handed to the connections' writers, not yet written.
    pub write_queue_bytes: usize,
    /// The budget (`memory_max_bytes`).
    pub budget_bytes: usize,
    /// Members cut off for the budget since the start.
    pub budget_evictions: u64,
}

/// True when the deliberate bug "the budget is never enforced" is armed
/// (production-path simulator only).
#[cfg(feature = "fault-injection")]
fn budget_ignored() -> bool {
    switchboard_runtime::fault::armed(switchboard_runtime::fault::Fault::IgnoreMemoryBudget)
}

/// Without fault injection the budget is always enforced.
#[cfg(not(feature = "fault-injection"))]
fn budget_ignored() -> bool {
    false
}

/// How often the memory budget is checked at most.
const BUDGET_CHECK_INTERVAL: Duration = Duration::from_millis(20);

struct Core {
    server: Server,
    guard: Guard,
    /// Connections refused and closed by the access rules.
    access: AccessCounts,
    /// Refusals of unauthenticated connections since the last summary, by
    /// reason.
    refusals: BTreeMap<&'static str, u64>,
    /// Addresses in cool-down, until when.
    cooldown: HashMap<std::net::IpAddr, Instant>,
    /// Members cut off for the memory budget so far.
    budget_evictions: u64,
    /// Rate limit of the credential refusal lines.
    denial_log: DenialLog,
    /// When a client holding another secret was last logged with its
    /// address.
    wrong_secret_logged: Option<Instant>,
    last_budget_check: Instant,
    /// The detail of the last protocol error, for the member failure that
    /// follows it.
    last_protocol_error: Option<String>,
    clock: Clock,
    conns: HashMap<ConnId, ConnEntry>,
    /// Connections whose reader is paused (`wants_read` was false).
    gated: BTreeSet<ConnId>,
    /// `instance/process` per member id, for log lines that carry only ids.
    names: HashMap<u64, String>,
    /// The peer address and credential each member registered with, for
    /// the audit lines of supersedes and evictions.
    audit: HashMap<u64, (String, String)>,
    /// Recent cluster events for watchers.
    events: EventLog,
    /// When the clock's origin was, in wall-clock time.
    start: StartTime,
}

pub(crate) async fn run(
    config: ServerConfig,
    guard: Guard,
    mut rx: mpsc::Receiver<CoreMsg>,
    // Kept so that `rx` never reports closed while the server runs.
    _tx: mpsc::Sender<CoreMsg>,
    mut shutdown: watch::Receiver<bool>,
    mut writers_done: mpsc::Receiver<()>,
    rng: Box<dyn RngCore + Send>,
) {
    let clock = Clock::new();
    let start = StartTime::now();
    let server = Server::new(config, rng, clock.now());
    tracing::info!(
        incarnation = %to_hex(&server.incarnation().to_be_bytes()),
        "server state machine started"
    );
    let mut core = Core {
        server,
        guard,
        access: AccessCounts::default(),
        refusals: BTreeMap::new(),
        cooldown: HashMap::new(),
        budget_evictions: 0,
        wrong_secret_logged: None,
        denial_log: DenialLog::new(),
        last_budget_check: Instant::now(),
        last_protocol_error: None,
        clock,
        conns: HashMap::new(),
        gated: BTreeSet::new(),
        names: HashMap::new(),
        audit: HashMap::new(),
        events: EventLog::new(),
        start,
    };
    let mut batch = Vec::with_capacity(INPUT_BATCH_MAX);
    let mut summary = tokio::time::interval(REFUSAL_LOG_INTERVAL);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = core.server.poll_timeout();
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            _ = sleep_until(clock, deadline) => {
                core.server.handle_timeout(clock.now());
                core.after_input(None);
                core.check_budget();
            }
            n = rx.recv_many(&mut batch, INPUT_BATCH_MAX) => {
                if n == 0 {
                    break;
                }
                core.handle_batch(&mut batch);
                core.check_budget();
            }
            _ = summary.tick() => core.log_refusals(),
        }
    }
    core.log_refusals();
    // Graceful shutdown: every member is told, pending bytes are flushed.
    tracing::info!(connections = core.conns.len(), "shutting down");
    core.server.shutdown(clock.now());
    core.after_input(None);
    core.conns.clear();
    drop(rx);
    let flushed = tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, async {
        while writers_done.recv().await.is_some() {}
    })
    .await;
    if flushed.is_err() {
        tracing::warn!("some connections did not flush before the shutdown timeout");
    }
    tracing::info!("server stopped");
}

/// Inputs handed to the state machine per wake-up at most, before its
/// outputs are drained: many reads in, then one round of transmits out
/// (fewer, larger writes per connection).
const INPUT_BATCH_MAX: usize = 64;

impl Core {
    /// Feeds a batch of inputs, then drains the outputs once.
    fn handle_batch(&mut self, batch: &mut Vec<CoreMsg>) {
        let mut inputs: Vec<ConnId> = Vec::new();
        for msg in batch.drain(..) {
            if let Some(conn) = self.handle(msg) {
                if !inputs.contains(&conn) {
                    inputs.push(conn);
                }
            }
        }
        self.drain_outputs();
        for conn in inputs {
            self.update_gates(Some(conn));
        }
        self.update_gates(None);
    }

    /// Feeds one input without draining; returns the connection whose read
    /// gate must be looked at.
    fn handle(&mut self, msg: CoreMsg) -> Option<ConnId> {
        let now = self.clock.now();
        match msg {
            CoreMsg::Accepted {
                conn,
                peer,
                writer,
                gate,
            } => {
                tracing::debug!(conn = conn.0, %peer, "connection accepted");
                if let Some(d) = self.guard.acl.as_ref().map(|a| a.decide(peer.ip())) {
                    if !d.permitted() {
                        // Refused like the per-address limit below, with
                        // its own reason.
                        let reject = Frame::Reject(Reject {
                            reason: RejectReason::NotPermitted,
                            text: format!("{} is not permitted: {}", peer.ip(), d.explain()),
                        });
                        let mut b = BytesMut::new();
                        if reject.encode(&mut b, &self.server.config().limits).is_ok() {
                            let _ = writer.try_send(b.freeze());
                        }
                        tracing::debug!(%peer, rule = ?d.rule, "connection denied by the access rules");
                        self.access.denied += 1;
                        self.refused("acl_denied");
                        drop(gate);
                        return None;
                    }
                }
                let cooling = self
                    .cooldown
                    .get(&peer.ip())
                    .is_some_and(|until| *until > Instant::now());
                if cooling || self.pending_from(peer) >= self.guard.handshakes_per_source_max {
                    // Refused before the state machine sees it: dropping
                    // the gate stops the reader, dropping the writer's
                    // sender flushes the reject and closes the socket.
                    let reject = Frame::Reject(Reject {
                        reason: RejectReason::ServerFull,
                        text: if cooling {
                            format!("{} is cooling down after unfinished handshakes", peer.ip())
                        } else {
                            format!("too many handshakes in progress from {}", peer.ip())
                        },
                    });
                    let mut b = BytesMut::new();
                    if reject.encode(&mut b, &self.server.config().limits).is_ok() {
                        let _ = writer.try_send(b.freeze());
                    }
                    self.refused(if cooling {
                        "source_cooldown"
                    } else {
                        "per_source_limit"
                    });
                    drop(gate);
                    return None;
                }
                self.conns.insert(conn, ConnEntry { peer, writer, gate });
                self.server.handle_connected(now, conn);
                self.server.set_peer_address(conn, peer.ip());
                Some(conn)
            }
            CoreMsg::Bytes { conn, data, budget } => {
                let known = self.conns.contains_key(&conn);
                if known {
                    self.server.handle_read(now, conn, data);
                }
                drop(budget);
                known.then_some(conn)
            }
            CoreMsg::Certificate { conn, names } => {
                if self.conns.contains_key(&conn) {
                    tracing::debug!(conn = conn.0, ?names, "client certificate names");
                    self.server.set_certificate_names(conn, names);
                }
                None
            }
            CoreMsg::Closed { conn } => {
                // Only connections the server still knows: after a `Close`
                // output it has forgotten them.
                if let Some(e) = self.conns.remove(&conn) {
                    if self.server.awaits_auth(conn) {
                        // The client did not accept the server's proof: one
                        // line with the peer per interval, the rest counted
                        // in the refusal summary.
                        self.refused("client_holds_another_secret");
                        let now = Instant::now();
                        if self
                            .wrong_secret_logged
                            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_INTERVAL)
                        {
                            self.wrong_secret_logged = Some(now);
                            let credential = match self.server.claimed_credential(conn) {
                                Some("") | None => switchboard_core::credentials::CLUSTER,
                                Some(name) => name,
                            };
                            tracing::warn!(
                                conn = conn.0,
                                peer = %e.peer,
                                %credential,
                                "handshake abandoned by the client after the challenge: \
                                 it holds another secret for this credential, or names one \
                                 the server does not know (further ones within {}s \
                                 are counted in the refusal summary)",
                                REFUSAL_LOG_INTERVAL.as_secs()
                            );
                        }
                    } else {
                        tracing::debug!(conn = conn.0, peer = %e.peer, "connection closed by peer");
                    }
                    self.gated.remove(&conn);
                    self.server.handle_closed(now, conn);
                }
                None
            }
            CoreMsg::Query(reply) => {
                // Outputs of earlier inputs first, so the view is current.
                self.drain_outputs();
                let _ = reply.send(self.view());
                None
            }
            CoreMsg::Snapshot(reply) => {
                self.drain_outputs();
                let mut snap = super::snapshot::build(
                    &self.server,
                    now,
                    self.start,
                    self.guard.queued.load(Ordering::Relaxed),
                );
                snap.access = self.access;
                let _ = reply.send(snap);
                None
            }
            CoreMsg::Memory(reply) => {
                let _ = reply.send(self.memory_use());
                None
            }
            CoreMsg::Acl { acl, reply } => {
                let closed = self.apply_acl(acl);
                let _ = reply.send(closed);
                None
            }
            CoreMsg::Watch { from, reply } => {
                // Events of earlier inputs first, so that none is skipped.
                self.drain_outputs();
                let _ = reply.send(self.events.subscribe(from));
                None
            }
        }
    }

    /// Takes new access rules and closes every open connection they no
    /// longer permit: a registered member is told why (`Error{NotPermitted}`
    /// naming the rule) before its connection closes; its session then
    /// ends like any lost connection (its resumes are refused by the same
    /// rules). Returns how many connections were closed.
    fn apply_acl(&mut self, acl: Acl) -> usize {
        self.drain_outputs();
        let now = self.clock.now();
        let mut revoked: Vec<(ConnId, String)> = self
            .conns
            .iter()
            .filter_map(|(conn, e)| {
                let d = acl.decide(e.peer.ip());
                (!d.permitted()).then(|| (*conn, d.explain()))
            })
            .collect();
        revoked.sort_by_key(|(c, _)| *c);
        for (conn, why) in &revoked {
            let Some(e) = self.conns.remove(conn) else {
                continue;
            };
            let member = self.server.is_authenticated(*conn);
            let text = format!(
                "{} is no longer permitted by the reloaded access rules: {why}",
                e.peer.ip()
            );
            let frame = Frame::Error(ErrorFrame {
                code: ErrorCode::NotPermitted,
                text: text.clone(),
            });
            let mut b = BytesMut::new();
            if frame.encode(&mut b, &self.server.config().limits).is_ok() {
                let _ = e.writer.try_send(b.freeze());
            }
            tracing::warn!(conn = conn.0, peer = %e.peer, member, "{text}; disconnected");
            self.access.revoked += 1;
            self.gated.remove(conn);
            // Dropping the entry closes the socket once the writer has
            // flushed the error; the state machine sees a lost connection.
            drop(e);
            self.server.handle_closed(now, *conn);
        }
        // The credentials: members whose credential is gone, or no longer
        // permits their instance, are told why and removed.
        let removed = self.server.set_credentials(now, acl.credentials().clone());
        tracing::info!(
            rules = acl.rules().len(),
            credentials = acl.credentials().secrets.len() + acl.credentials().certificates.len(),
            disconnected = revoked.len(),
            members_revoked = removed,
            "access rules reloaded"
        );
        self.guard.acl = Some(acl);
        self.after_input(None);
        revoked.len() + removed
    }

    /// Drains every output, then updates the read gates.
    fn after_input(&mut self, input_conn: Option<ConnId>) {
        self.drain_outputs();
        self.update_gates(input_conn);
    }

    /// Hands every output of the state machine to the writers (and closes
    /// connections whose writer cannot take more).
    fn drain_outputs(&mut self) {
        loop {
            let mut broken = Vec::new();
            while let Some(o) = self.server.poll_output() {
                match o {
                    Output::Transmit { conn, data } => {
                        let Some(e) = self.conns.get(&conn) else {
                            continue;
                        };
                        match e.writer.try_send(data) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                tracing::warn!(
                                    conn = conn.0,
                                    peer = %e.peer,
                                    "write queue full: peer is not reading; closing the connection"
                                );
                                self.conns.remove(&conn);
                                broken.push(conn);
                            }
                            Err(TrySendError::Closed(_)) => {
                                self.conns.remove(&conn);
                                broken.push(conn);
                            }
                        }
                    }
                    Output::Close { conn, reason } => {
                        // Dropping the writer's sender lets it flush what is
                        // queued, then shut the socket down; dropping the
                        // gate stops the reader.
                        if let Some(e) = self.conns.remove(&conn) {
                            tracing::debug!(conn = conn.0, peer = %e.peer, ?reason, "closing connection");
                        }
                        self.gated.remove(&conn);
                    }
                    Output::Event(ev) => self.log_event(ev),
                }
            }
            if broken.is_empty() {
                break;
            }
            let now = self.clock.now();
            for conn in broken {
                self.gated.remove(&conn);
                self.server.handle_closed(now, conn);
            }
        }
    }

    /// Pauses the reader of the connection that just gave input if the
    /// server wants no more from it, and resumes paused readers the server
    /// wants again.
    fn update_gates(&mut self, input_conn: Option<ConnId>) {
        if let Some(conn) = input_conn {
            if !self.server.wants_read(conn) {
                if let Some(e) = self.conns.get(&conn) {
                    if self.gated.insert(conn) {
                        tracing::debug!(conn = conn.0, "pausing reads: member throttled");
                        let _ = e.gate.send(false);
                    }
                }
            }
        }
        if self.gated.is_empty() {
            return;
        }
        let ready: Vec<ConnId> = self
            .gated
            .iter()
            .copied()
            .filter(|c| self.server.wants_read(*c))
            .collect();
        for conn in ready {
            self.gated.remove(&conn);
            if let Some(e) = self.conns.get(&conn) {
                tracing::debug!(conn = conn.0, "resuming reads");
                let _ = e.gate.send(true);
            }
        }
    }

    /// Connections from `peer`'s IP address still in their handshake.
    fn pending_from(&self, peer: SocketAddr) -> usize {
        let ip = peer.ip();
        self.conns
            .iter()
            .filter(|(c, e)| e.peer.ip() == ip && self.server.is_handshaking(**c))
            .count()
    }

    /// Puts the address of a connection whose handshake was closed
    /// unfinished in cool-down.
    fn cool_down(&mut self, conn: ConnId) {
        let Some(e) = self.conns.get(&conn) else {
            return;
        };
        let ip = e.peer.ip();
        // An address that holds a registered member has the secret: an
        // unfinished handshake from it (say, pushed out of a full table by
        // a flood) must not lock its other members out.
        let trusted = self
            .conns
            .iter()
            .any(|(c, e)| e.peer.ip() == ip && self.server.is_authenticated(*c));
        if trusted {
            return;
        }
        let now = Instant::now();
        if self.cooldown.len() >= COOLDOWN_ADDRESSES_MAX {
            self.cooldown.retain(|_, until| *until > now);
            if self.cooldown.len() >= COOLDOWN_ADDRESSES_MAX {
                return;
            }
        }
        self.cooldown.insert(ip, now + SOURCE_COOLDOWN);
    }

    /// Counts a refused unauthenticated connection for the next summary.
    fn refused(&mut self, reason: &'static str) {
        *self.refusals.entry(reason).or_default() += 1;
    }

    /// One line for every connection refused since the last one, with
    /// counts by reason: a flood of attempts writes one line per interval,
    /// not one per attempt.
    fn log_refusals(&mut self) {
        if self.denial_log.suppressed > 0 {
            tracing::warn!(
                suppressed = self.denial_log.suppressed,
                "further refusals by credentials were not logged one by one (see switchboard_permission_denials_total)"
            );
            self.denial_log.suppressed = 0;
        }
        if self.refusals.is_empty() {
            return;
        }
        let total: u64 = self.refusals.values().sum();
        let counts = self
            .refusals
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::warn!(
            total,
            %counts,
            "unauthenticated connections refused in the last {}s",
            REFUSAL_LOG_INTERVAL.as_secs()
        );
        self.refusals.clear();
    }

    /// What the server holds against its budget now (the sum
    /// [`check_budget`](Core::check_budget) compares with it).
    fn memory_use(&self) -> MemoryUse {
        let state_bytes = self.server.memory_bytes();
        let input_bytes = self
            .guard
            .input_bytes_max
            .saturating_sub(self.guard.input.available_permits());
        let write_queue_bytes = self.guard.queued.load(Ordering::Relaxed);
        MemoryUse {
            held_bytes: state_bytes + input_bytes + write_queue_bytes,
            state_bytes,
            input_bytes,
            write_queue_bytes,
            budget_bytes: self.guard.memory_max_bytes,
            budget_evictions: self.budget_evictions,
        }
    }

    /// Keeps what peers make the server hold under `memory_max_bytes`: the
    /// state machine's queues and buffers plus the reads waiting for it.
    /// Over it, the member holding the most is cut off (it is the one that
    /// causes the growth: a slow reader's queue, or a flooder's own unread
    /// stream), until under it again.
    fn check_budget(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_budget_check) < BUDGET_CHECK_INTERVAL {
            return;
        }
        self.last_budget_check = now;
        let budget = self.guard.memory_max_bytes;
        let mut cut = false;
        loop {
            let held = self.memory_use().held_bytes;
            if held <= budget || budget_ignored() {
                break;
            }
            let Some((id, name, bytes)) = self.server.largest_member() else {
                break;
            };
            if bytes == 0 {
                break;
            }
            self.budget_evictions += 1;
            tracing::warn!(
                member_id = id,
                %name,
                member_bytes = bytes,
                held_bytes = held,
                memory_max_bytes = budget,
                evictions = self.budget_evictions,
                "memory budget reached: cutting off the member holding the most"
            );
            self.server.evict_for_memory(self.clock.now(), id);
            cut = true;
        }
        if cut {
            self.after_input(None);
        }
    }

    fn peer(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map_or_else(|| "?".to_owned(), |e| e.peer.to_string())
    }

    fn log_event(&mut self, ev: ServerEvent) {
        match ev {
            ServerEvent::MemberJoined {
                member_id,
                name,
                incarnation,
                conn,
                credential,
            } => {
                let peer = self.peer(conn);
                tracing::info!(member_id, %name, %peer, %credential, incarnation = %to_hex(&incarnation.to_be_bytes()), "member joined");
                self.names.insert(member_id, name);
                self.audit.insert(member_id, (peer, credential));
            }
            ServerEvent::MemberDetached { member_id } => {
                let name = self.names.get(&member_id).map_or("?", String::as_str);
                tracing::info!(member_id, %name, "member detached: connection lost, session kept for a resume");
            }
            ServerEvent::MemberResumed {
                member_id,
                replayed,
            } => {
                let name = self.names.get(&member_id).map_or("?", String::as_str);
                tracing::info!(member_id, %name, replayed, "member resumed its session");
            }
            ServerEvent::MemberLeft { member_id, name } => {
                self.audit.remove(&member_id);
                // The name is forgotten with the cluster event that
                // follows (its watchers still want it).
                tracing::info!(member_id, %name, "member left");
            }
            ServerEvent::MemberFailed {
                member_id,
                name,
                reason,
            } => {
                let (peer, credential) = self
                    .audit
                    .remove(&member_id)
                    .unwrap_or_else(|| ("?".to_owned(), "?".to_owned()));
                if reason == FailReason::SlowConsumer {
                    tracing::warn!(member_id, %name, %peer, %credential, "member evicted: slow consumer (stayed over its queue limit)");
                } else if reason == FailReason::Superseded {
                    tracing::warn!(member_id, %name, %peer, %credential, "member superseded: a new incarnation of its process registered with the same credential");
                } else if reason == FailReason::ProtocolViolation {
                    let detail = self.last_protocol_error.take().unwrap_or_default();
                    // It was counted as a refusal; it is logged here instead.
                    if let Some(n) = self.refusals.get_mut("protocol_error") {
                        *n -= 1;
                        if *n == 0 {
                            self.refusals.remove("protocol_error");
                        }
                    }
                    tracing::warn!(member_id, %name, %peer, %credential, %detail, "member failed: protocol violation");
                } else {
                    tracing::warn!(member_id, %name, %peer, %credential, ?reason, "member failed");
                }
            }
            ServerEvent::ReassemblyDropped {
                member_id,
                seq,
                received,
                total_len,
                why,
            } => {
                let name = self.names.get(&member_id).map_or("?", String::as_str);
                tracing::warn!(
                    member_id,
                    %name,
                    seq,
                    received,
                    total_len,
                    ?why,
                    "chunked message dropped before it was complete; NACKed Incomplete"
                );
            }
            ServerEvent::HandshakeRejected {
                conn,
                reason,
                detail,
            } => {
                tracing::debug!(conn = conn.0, peer = %self.peer(conn), ?reason, %detail, "handshake rejected");
                if reason == RejectReason::BadSecret && self.denial_log.admit(Instant::now()) {
                    // The detail names the credential the client claimed
                    // (known or not: the refusal is the same).
                    tracing::warn!(
                        peer = %self.peer(conn),
                        %detail,
                        "authentication failed (at most {DENIAL_LINES_MAX} lines per {}s, the rest counted)",
                        REFUSAL_LOG_INTERVAL.as_secs()
                    );
                }
                if matches!(
                    reason,
                    RejectReason::ServerFull | RejectReason::HandshakeTimeout
                ) {
                    self.cool_down(conn);
                }
                self.refused(match reason {
                    RejectReason::BadSecret => "bad_secret",
                    RejectReason::HandshakeTimeout => "handshake_timeout",
                    RejectReason::ServerFull => "server_full",
                    RejectReason::WrongCluster => "wrong_cluster",
                    RejectReason::UnsupportedVersion => "unsupported_version",
                    RejectReason::DuplicateIdentity => "duplicate_identity",
                    RejectReason::SessionUnknown => "session_unknown",
                    RejectReason::NotPermitted => "not_permitted",
                    _ => "invalid",
                });
            }
            ServerEvent::PermissionDenied {
                conn,
                member_id,
                credential,
                kind,
                detail,
            } => {
                let peer = conn.map_or_else(|| "-".to_owned(), |c| self.peer(c));
                if self.denial_log.admit(Instant::now()) {
                    tracing::warn!(
                        %peer,
                        %credential,
                        kind = kind.label(),
                        member_id,
                        %detail,
                        "not permitted by the credential (at most {DENIAL_LINES_MAX} lines per {}s, the rest counted)",
                        REFUSAL_LOG_INTERVAL.as_secs()
                    );
                }
            }
            ServerEvent::ProtocolError { conn, detail } => {
                // A member's violation is logged with its name when it is
                // failed (next event); an unauthenticated connection's is
                // counted in the summary.
                tracing::debug!(conn = conn.0, peer = %self.peer(conn), %detail, "protocol error");
                self.refused("protocol_error");
                self.last_protocol_error = Some(detail);
            }
            ServerEvent::Sequenced { gseq, epoch, event } => {
                let at = self.start.unix_ms(self.clock.now());
                let rec = event_record(gseq, epoch, at, &event, &self.names);
                if let switchboard_core::frame::ClusterEvent::MemberLeft { member_id }
                | switchboard_core::frame::ClusterEvent::MemberFailed { member_id, .. } = event
                {
                    self.names.remove(&member_id);
                }
                self.events.push(rec);
            }
        }
    }

    fn view(&self) -> MembersView {
        let s = &self.server;
        MembersView {
            cluster: s.config().cluster.clone(),
            server_incarnation: Some(to_hex(&s.incarnation().to_be_bytes())),
            epoch: s.epoch(),
            gseq: s.gseq(),
            connections: s.connections(),
            members: s
                .view()
                .map(|m| MemberView {
                    member_id: Some(m.member_id),
                    incarnation: Some(to_hex(&m.incarnation.to_be_bytes())),
                    instance: m.instance.clone(),
                    process: m.process.clone(),
                    services: m.services.clone(),
                    load: m.load,
                    groups: m.groups.clone(),
                    attached: s.is_attached(m.member_id),
                })
                .collect(),
            stats: s.stats().into(),
        }
    }
}
