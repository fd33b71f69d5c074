//! The one task that owns the [`Server`] state machine.
//!
//! Loop: take one input (a connection accepted, bytes, a close, a timer, a
//! query), hand it to the server, drain `poll_output` (transmits to the
//! writers, closes, log events), update the read gates, re-arm the timer
//! from `poll_timeout`. No lock: nobody else touches the state machine.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::RngCore;
use switchboard_core::frame::FailReason;
use switchboard_core::server::{ConnId, Output, Server, ServerConfig, ServerEvent};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};

use super::event_log::{EventLog, Subscription};
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
        writer: mpsc::Sender<Bytes>,
        gate: watch::Sender<bool>,
    },
    /// Bytes read from a connection.
    Bytes { conn: ConnId, data: Bytes },
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
}

/// What the core task keeps per open connection.
#[derive(Debug)]
struct ConnEntry {
    peer: SocketAddr,
    writer: mpsc::Sender<Bytes>,
    gate: watch::Sender<bool>,
}

struct Core {
    server: Server,
    clock: Clock,
    conns: HashMap<ConnId, ConnEntry>,
    /// Connections whose reader is paused (`wants_read` was false).
    gated: BTreeSet<ConnId>,
    /// `instance/process` per member id, for log lines that carry only ids.
    names: HashMap<u64, String>,
    /// Recent cluster events for watchers.
    events: EventLog,
    /// When the clock's origin was, in wall-clock time.
    start: StartTime,
}

pub(crate) async fn run(
    config: ServerConfig,
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
        clock,
        conns: HashMap::new(),
        gated: BTreeSet::new(),
        names: HashMap::new(),
        events: EventLog::new(),
        start,
    };
    let mut batch = Vec::with_capacity(INPUT_BATCH_MAX);
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
            }
            n = rx.recv_many(&mut batch, INPUT_BATCH_MAX) => {
                if n == 0 {
                    break;
                }
                core.handle_batch(&mut batch);
            }
        }
    }
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
                self.conns.insert(conn, ConnEntry { peer, writer, gate });
                self.server.handle_connected(now, conn);
                Some(conn)
            }
            CoreMsg::Bytes { conn, data } => {
                if self.conns.contains_key(&conn) {
                    self.server.handle_bytes(now, conn, &data);
                    Some(conn)
                } else {
                    None
                }
            }
            CoreMsg::Closed { conn } => {
                // Only connections the server still knows: after a `Close`
                // output it has forgotten them.
                if let Some(e) = self.conns.remove(&conn) {
                    if self.server.awaits_auth(conn) {
                        // The client did not accept the server's proof.
                        tracing::warn!(
                            conn = conn.0,
                            peer = %e.peer,
                            "handshake abandoned by the client after the challenge: \
                             it holds another cluster secret"
                        );
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
                let _ = reply.send(super::snapshot::build(&self.server, now, self.start));
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
            } => {
                tracing::info!(member_id, %name, incarnation = %to_hex(&incarnation.to_be_bytes()), "member joined");
                self.names.insert(member_id, name);
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
                // The name is forgotten with the cluster event that
                // follows (its watchers still want it).
                tracing::info!(member_id, %name, "member left");
            }
            ServerEvent::MemberFailed {
                member_id,
                name,
                reason,
            } => {
                if reason == FailReason::SlowConsumer {
                    tracing::warn!(member_id, %name, "member evicted: slow consumer (stayed over its queue limit)");
                } else {
                    tracing::warn!(member_id, %name, ?reason, "member failed");
                }
            }
            ServerEvent::HandshakeRejected {
                conn,
                reason,
                detail,
            } => {
                tracing::warn!(conn = conn.0, peer = %self.peer(conn), ?reason, %detail, "handshake rejected");
            }
            ServerEvent::ProtocolError { conn, detail } => {
                tracing::warn!(conn = conn.0, peer = %self.peer(conn), %detail, "protocol error");
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
            server_incarnation: to_hex(&s.incarnation().to_be_bytes()),
            epoch: s.epoch(),
            gseq: s.gseq(),
            connections: s.connections(),
            members: s
                .view()
                .map(|m| MemberView {
                    member_id: m.member_id,
                    incarnation: to_hex(&m.incarnation.to_be_bytes()),
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
