//! Driving the nodes: the server and the member clients are started,
//! their timers armed and fired, their outputs drained, and what they
//! report recorded into the history.

use std::collections::BTreeSet;

use rand::Rng;
use switchboard_core::client::{Client, ClientEvent, ClientOutput, RequestError};
use switchboard_core::frame::{Address, ClusterEvent, FailReason, SEQ_WINDOW};
use switchboard_core::server::{Output, Server, ServerEvent};
use switchboard_core::time::Tick;

use super::network::Conn;
use super::workload::{check_payload, payload};
use super::{Ev, World};
use crate::history::{Act, MsgId, Proc, ServiceFact, ViewChange, Violation};
use crate::rng::{stream, Stream};

impl World {
    pub(super) fn start_server(&mut self) {
        self.server_starts += 1;
        let rng = stream(self.seed, Stream::Server, self.server_starts);
        let mut config = self.cfg.server_config();
        if self.server_starts == 1 {
            // A first start, as the binary runs it (no run marker left by
            // an earlier run): nobody can be coming back, so nothing is
            // held for a restart grace.
            config.restart_grace_ms = 0;
        }
        let server = Server::new(config, Box::new(rng), self.now);
        self.server_inc = server.incarnation();
        self.server = Some(server);
        self.server_timer = None;
        self.observed.server_started();
        let server = self.server_inc;
        self.record(Act::ServerStarted { server });
        self.arm_server();
    }

    pub(super) fn start_proc(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.gen += 1;
        let mut rng = stream(self.seed, Stream::Clients, (slot as u64) << 32 | s.gen);
        let incarnation = rng.gen::<u64>() | 1;
        let mut cfg = self.cfg.client_config(&s.instance, &s.process, incarnation);
        // Every other member reports what its application took: its
        // messages count in outcomes once taken, in batches of 32 or
        // shortly after it was handed them.
        cfg.report_taken = slot % 2 == 1;
        s.client = Some(Client::new(cfg, Box::new(rng), self.now));
        s.handed = 0;
        s.take_at = None;
        s.proc = Proc { slot, incarnation };
        s.conn = None;
        s.timer = None;
        s.pending_confirms.clear();
        s.held.clear();
        s.pending_state_ops.clear();
        s.subs.clear();
        s.session_member = None;
        s.stable = 0;
        s.session_acked = 0;
        let (proc, instance, process) = (s.proc, s.instance.clone(), s.process.clone());
        self.record(Act::Started {
            proc,
            instance,
            process,
        });
        self.arm_client(slot);
    }

    pub(super) fn arm_server(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        if let Some(t) = server.poll_timeout() {
            if self.server_timer != Some(t) {
                self.server_timer = Some(t);
                self.push(t, Ev::ServerTimer { at: t });
            }
        }
    }

    pub(super) fn arm_client(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        let Some(c) = &s.client else {
            return;
        };
        if let Some(t) = c.poll_timeout() {
            if s.timer != Some(t) {
                s.timer = Some(t);
                let gen = s.gen;
                self.push(t, Ev::ClientTimer { slot, gen, at: t });
            }
        }
    }

    /// Writes the final state of every live process (for G9).
    pub(super) fn finish(&mut self) {
        let view: Vec<(u64, u64)> = self
            .server
            .as_ref()
            .map(|s| s.view().map(|m| (m.member_id, m.incarnation)).collect())
            .unwrap_or_default();
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            if s.gone {
                continue;
            }
            let Some(c) = &s.client else {
                continue;
            };
            let act = Act::Final {
                proc: s.proc,
                ready: c.is_ready(),
                in_view: c
                    .member_id()
                    .is_some_and(|id| view.contains(&(id, s.proc.incarnation))),
                outbox: c.outbox_len(),
                unresolved_confirms: s.pending_confirms.len(),
            };
            self.record(act);
        }
    }

    /// G9: after healing, the server's view holds only live processes.
    pub(super) fn stale_view_members(&self) -> Vec<Violation> {
        let Some(server) = &self.server else {
            return vec![Violation {
                guarantee: "G9 liveness",
                detail: "server down at the end of the run".into(),
            }];
        };
        let live: BTreeSet<u64> = self
            .slots
            .iter()
            .filter(|s| !s.gone && s.client.is_some())
            .map(|s| s.proc.incarnation)
            .collect();
        server
            .view()
            .filter(|m| !live.contains(&m.incarnation))
            .map(|m| Violation {
                guarantee: "G9 liveness",
                detail: format!(
                    "member {} ({}/{}, incarnation {}) is dead but still in the view after healing",
                    m.member_id, m.instance, m.process, m.incarnation
                ),
            })
            .collect()
    }

    /// The server's timer fired (if it is still the one armed).
    pub(super) fn server_timer(&mut self, at: Tick) {
        if self.server_timer != Some(at) {
            return;
        }
        self.server_timer = None;
        if let Some(server) = self.server.as_mut() {
            server.handle_timeout(self.now);
            self.drain_server();
        }
    }

    /// A client's timer fired (if it is still the one armed).
    pub(super) fn client_timer(&mut self, slot: usize, gen: u64, at: Tick) {
        let s = &mut self.slots[slot];
        if s.gen != gen || s.timer != Some(at) {
            return;
        }
        if s.paused_until > self.now {
            s.timer = None;
            let t = s.paused_until;
            s.timer = Some(t);
            self.push(t, Ev::ClientTimer { slot, gen, at: t });
            return;
        }
        s.timer = None;
        if let Some(client) = s.client.as_mut() {
            // The application takes what it was handed so far.
            client.taken(self.now, s.handed);
            client.handle_timeout(self.now);
        }
        self.drain_client(slot);
    }

    /// A crashed member process comes back as a new incarnation.
    pub(super) fn proc_restart(&mut self, slot: usize) {
        if self.slots[slot].client.is_none() && !self.slots[slot].gone {
            self.coverage.restarts += 1;
            self.start_proc(slot);
        }
    }

    /// Records memory figures and schedules the next sample.
    pub(super) fn sample(&mut self) {
        let server_queue_max = self
            .server
            .as_ref()
            .map(|s| {
                s.view()
                    .filter_map(|m| s.queue_len(m.member_id))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let outbox_max = self
            .slots
            .iter()
            .filter_map(|s| s.client.as_ref().map(|c| c.outbox_len()))
            .max()
            .unwrap_or(0);
        let server_queue_bytes_max = self
            .server
            .as_ref()
            .map(|s| {
                s.view()
                    .filter_map(|m| s.queued_frame_bytes(m.member_id))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        self.record(Act::Memory {
            server_queue_max,
            outbox_max,
            server_queue_bytes_max,
        });
        let at = self.now.plus_millis(100);
        self.push(at, Ev::Sample);
    }

    pub(super) fn drain_server(&mut self) {
        let inc = self.server_inc;
        loop {
            let Some(server) = self.server.as_mut() else {
                return;
            };
            let Some(out) = server.poll_output() else {
                break;
            };
            match out {
                Output::Transmit { conn, data } => {
                    self.note_written(conn.0, &data);
                    if let Some(slot) = self.conns.get(&conn.0).map(|c| c.slot) {
                        self.send_down(slot, conn.0, Ev::ToClient { conn: conn.0, data });
                    }
                }
                Output::Close { conn, .. } => {
                    if let Some(c) = self.conns.get_mut(&conn.0) {
                        c.server_open = false;
                        let slot = c.slot;
                        self.send_down(slot, conn.0, Ev::CloseToClient { conn: conn.0 });
                    }
                }
                Output::Event(e) => match e {
                    ServerEvent::MemberFailed {
                        member_id, reason, ..
                    } => {
                        self.observed.removed.push(member_id);
                        match reason {
                            FailReason::SlowConsumer => self.coverage.evictions += 1,
                            FailReason::Superseded => self.coverage.superseded += 1,
                            FailReason::HeartbeatTimeout => self.coverage.heartbeat_failures += 1,
                            FailReason::ConnectionLost => self.coverage.session_expiries += 1,
                            FailReason::ProtocolViolation => self.coverage.protocol_violations += 1,
                        }
                        self.record(Act::ServerRemoved {
                            server: inc,
                            member_id,
                            reason: Some(reason),
                        });
                    }
                    ServerEvent::MemberLeft { member_id, .. } => {
                        self.observed.removed.push(member_id);
                        self.record(Act::ServerRemoved {
                            server: inc,
                            member_id,
                            reason: None,
                        });
                    }
                    ServerEvent::Sequenced { gseq, event, .. } => {
                        if crate::history::delivered_digest(&event).is_none() {
                            self.observed.raised = true;
                        }
                        let fact = match event {
                            ClusterEvent::MemberJoined(m) => {
                                self.record(Act::ServerJoined {
                                    server: inc,
                                    gseq,
                                    member_id: m.member_id,
                                    instance: m.instance,
                                    process: m.process,
                                });
                                for group in m.groups {
                                    self.record(Act::ServerGroup {
                                        server: inc,
                                        gseq,
                                        member_id: m.member_id,
                                        group,
                                        joined: true,
                                    });
                                }
                                Some((m.member_id, ServiceFact::Joined(m.services)))
                            }
                            ClusterEvent::GroupJoined { member_id, group } => {
                                self.record(Act::ServerGroup {
                                    server: inc,
                                    gseq,
                                    member_id,
                                    group,
                                    joined: true,
                                });
                                None
                            }
                            ClusterEvent::GroupLeft { member_id, group } => {
                                self.record(Act::ServerGroup {
                                    server: inc,
                                    gseq,
                                    member_id,
                                    group,
                                    joined: false,
                                });
                                None
                            }
                            ClusterEvent::ServiceState {
                                member_id,
                                service,
                                up,
                            } => Some((member_id, ServiceFact::Change { service, up })),
                            _ => None,
                        };
                        if let Some((member_id, fact)) = fact {
                            self.record(Act::ServerServices {
                                server: inc,
                                gseq,
                                member_id,
                                fact,
                            });
                        }
                    }
                    ServerEvent::MemberResumed { .. } => self.coverage.server_resumes += 1,
                    ServerEvent::ReassemblyDropped { .. } => self.coverage.reassembly_drops += 1,
                    _ => {}
                },
            }
        }
        self.note_queues_over_limit();
        self.note_throttling();
        self.arm_server();
    }

    /// Records each member queue of the current server run that went over
    /// its soft item or byte limit, or back under both (or was removed).
    fn note_queues_over_limit(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        let items_max = self.queue_items_max;
        let bytes_max = self.queue_bytes_max;
        let throttled: BTreeSet<u64> = server
            .view()
            .map(|m| m.member_id)
            .filter(|&id| server.is_throttled(id))
            .collect();
        let newly = throttled.difference(&self.throttled).count() as u64;
        self.coverage.throttled += newly;
        self.throttled = throttled;
        let Some(server) = &self.server else {
            return;
        };
        // `queue_len` leaves notices out already, as the core's item limit
        // does; their bytes count toward the byte limit, as in the core.
        let over_items = |id: u64| server.queue_len(id).unwrap_or(0) > items_max;
        let over: BTreeSet<u64> = server
            .view()
            .map(|m| m.member_id)
            .filter(|&id| over_items(id) || server.queue_bytes(id).unwrap_or(0) > bytes_max)
            .collect();
        if over == self.over_limit {
            return;
        }
        let server = self.server_inc;
        let went_under: Vec<u64> = self.over_limit.difference(&over).copied().collect();
        let went_over: Vec<u64> = over.difference(&self.over_limit).copied().collect();
        // Over the byte limit while within the item limit: the bytes bind.
        self.coverage.byte_limit_binds +=
            went_over.iter().filter(|&&id| !over_items(id)).count() as u64;
        for member_id in went_under {
            self.record(Act::QueueOver {
                server,
                member_id,
                over: false,
            });
        }
        for member_id in went_over {
            self.coverage.queues_over_limit += 1;
            self.record(Act::QueueOver {
                server,
                member_id,
                over: true,
            });
        }
        self.over_limit = over;
    }

    pub(super) fn drain_client(&mut self, slot: usize) {
        loop {
            let Some(client) = self.slots[slot].client.as_mut() else {
                return;
            };
            let Some(out) = client.poll_output() else {
                break;
            };
            match out {
                ClientOutput::Connect => {
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    let gen = self.slots[slot].gen;
                    self.conns.insert(
                        conn,
                        Conn {
                            slot,
                            gen,
                            dead: false,
                            server_open: false,
                            client_open: true,
                            up_last: self.now,
                            down_last: self.now,
                            up_held: std::collections::VecDeque::new(),
                        },
                    );
                    self.slots[slot].conn = Some(conn);
                    // Refused at once when the server is down, after a SYN
                    // timeout when partitioned, else after a round trip.
                    let delay = if self.server.is_none() {
                        self.latency(slot)
                    } else if self.blocked(slot) {
                        1_000_000
                    } else {
                        2 * self.latency(slot)
                    };
                    let at = self.now + delay;
                    self.push(at, Ev::Connected { conn });
                }
                ClientOutput::Transmit(data) => {
                    // A hostile member's write is kept back (`hostile.rs`).
                    let data = match self.capture.as_mut() {
                        Some((s, out)) if *s == slot => {
                            out.push(data);
                            continue;
                        }
                        _ => data,
                    };
                    if let Some(conn) = self.slots[slot].conn {
                        self.send_up(slot, conn, Ev::ToServer { conn, data });
                    }
                }
                ClientOutput::Close => {
                    if let Some(conn) = self.slots[slot].conn.take() {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.client_open = false;
                        }
                        self.send_up(slot, conn, Ev::CloseToServer { conn });
                    }
                }
                ClientOutput::Event(e) => self.client_event(slot, e),
            }
        }
        self.note_refused_resume(slot);
        self.confirm_state_ops(slot);
        self.note_stable(slot);
        self.arm_client(slot);
    }

    /// Records the client's stable watermark when it changed (`Act::Stable`).
    fn note_stable(&mut self, slot: usize) {
        let Some(through) = self.slots[slot].client.as_ref().map(|c| c.stable_through()) else {
            return;
        };
        if std::mem::replace(&mut self.slots[slot].stable, through) != through {
            let proc = self.slots[slot].proc;
            self.record(Act::Stable { proc, through });
        }
    }

    /// Records a refused resume: the client dropped its session (it does so
    /// only on `Reject{SessionUnknown}`), after any `Gap` that came first.
    fn note_refused_resume(&mut self, slot: usize) {
        let now_id = self.slots[slot].client.as_ref().and_then(|c| c.member_id());
        let before = std::mem::replace(&mut self.slots[slot].session_member, now_id);
        if let (Some(member_id), None) = (before, now_id) {
            self.coverage.refused_resumes += 1;
            let proc = self.slots[slot].proc;
            let server = self.server_inc;
            self.record(Act::ResumeRefused {
                proc,
                server,
                member_id,
            });
        }
    }

    /// Records an `Acked` for group operations, subscriptions and
    /// unsubscriptions once the server has their effect (acked, resumed
    /// past, or carried by a registration).
    fn confirm_state_ops(&mut self, slot: usize) {
        let Some(through) = self.slots[slot]
            .client
            .as_ref()
            .map(|c| c.effective_through())
        else {
            return;
        };
        let proc = self.slots[slot].proc;
        while let Some(&seq) = self.slots[slot].pending_state_ops.first() {
            if seq > through {
                break;
            }
            self.slots[slot].pending_state_ops.pop_first();
            self.record(Act::Acked { proc, seq });
        }
    }

    fn client_event(&mut self, slot: usize, e: ClientEvent) {
        let proc = self.slots[slot].proc;
        let server = self.server_inc;
        match e {
            ClientEvent::Registered {
                member_id,
                position,
                view,
                session_lost,
                ..
            } => {
                if session_lost {
                    self.coverage.reregistrations += 1;
                }
                self.slots[slot].session_acked = 0;
                self.record(Act::Registered {
                    proc,
                    server,
                    member_id,
                    position,
                    view: view.iter().map(|m| m.member_id).collect(),
                });
                for m in view.iter() {
                    self.record(Act::ServicesSeen {
                        proc,
                        server,
                        gseq: position,
                        member_id: m.member_id,
                        services: m.services.clone(),
                    });
                }
            }
            ClientEvent::Resumed { .. } => {
                self.coverage.resumes += 1;
                self.record(Act::Resumed { proc });
            }
            ClientEvent::Gap { from, through } => {
                self.coverage.gaps += 1;
                self.record(Act::GapNotice {
                    proc,
                    from,
                    through,
                });
            }
            ClientEvent::Reply { message, .. } => {
                self.handed(slot);
                self.coverage.replies += 1;
                self.record_delivery(slot, &message);
            }
            ClientEvent::Message(m) => {
                self.handed(slot);
                self.record_delivery(slot, &m);
                if m.is_request() {
                    let tag = self.take_tag();
                    let reply_to = m.reply_to();
                    let now = self.now;
                    let reply = self.slots[slot]
                        .client
                        .as_mut()
                        .map(|c| c.reply(now, reply_to, payload(tag, 32)));
                    if let Some(Ok(seq)) = reply {
                        let to = Address::MemberId(reply_to.member_id);
                        self.record_sent(
                            slot,
                            seq,
                            to,
                            super::workload::SentAs {
                                tag,
                                confirm: false,
                                request: false,
                                bytes: 32,
                            },
                        );
                    }
                }
            }
            ClientEvent::Event {
                gseq,
                epoch,
                event,
                origin,
                ..
            } => {
                if let (Some((sender, seq)), Some((from, digest))) =
                    (origin, crate::history::delivered_digest(&event))
                {
                    self.coverage.published_deliveries += 1;
                    let member_id = self.slots[slot]
                        .client
                        .as_ref()
                        .and_then(|c| c.member_id())
                        .unwrap_or(0);
                    self.record(Act::Notified {
                        proc,
                        server,
                        member_id,
                        gseq,
                        from,
                        id: MsgId { sender, seq },
                        digest,
                    });
                }
                if let ClusterEvent::MemberJoined(m) = &event {
                    self.record(Act::ServicesSeen {
                        proc,
                        server,
                        gseq,
                        member_id: m.member_id,
                        services: m.services.clone(),
                    });
                }
                let change = match event {
                    ClusterEvent::MemberJoined(m) => Some(ViewChange::Joined(m.member_id)),
                    ClusterEvent::MemberLeft { member_id } => Some(ViewChange::Left(member_id)),
                    ClusterEvent::MemberFailed { member_id, reason } => {
                        Some(ViewChange::Failed(member_id, reason))
                    }
                    _ => {
                        self.coverage.events_seen += 1;
                        None
                    }
                };
                if let Some(change) = change {
                    self.record(Act::ViewEvent {
                        proc,
                        server,
                        gseq,
                        change,
                        epoch,
                    });
                }
            }
            ClientEvent::Acked { seq } => {
                let s = &mut self.slots[slot];
                s.session_acked = s.session_acked.max(seq);
                self.record(Act::Acked { proc, seq })
            }
            ClientEvent::Nacked { seq, reason } => {
                self.coverage.nacks += 1;
                self.slots[slot].pending_confirms.remove(&seq);
                self.record(Act::Nacked { proc, seq, reason });
            }
            ClientEvent::Outcome {
                seq,
                delivered,
                missed,
            } => {
                self.coverage.outcomes += 1;
                if !missed.is_empty() {
                    self.coverage.outcomes_with_missed += 1;
                }
                self.slots[slot].pending_confirms.remove(&seq);
                self.record(Act::Outcome {
                    proc,
                    seq,
                    delivered,
                    missed,
                });
            }
            ClientEvent::RequestFailed { error, .. } => match error {
                RequestError::TimedOut => self.coverage.request_timeouts += 1,
                RequestError::PartnerGone => self.coverage.partner_gone += 1,
                RequestError::Nacked(_) => {}
            },
            ClientEvent::Disconnected { code, .. } => {
                self.coverage.disconnects += 1;
                let by_peer = self.slots[slot].closing_by_peer;
                self.record(Act::Disconnected {
                    proc,
                    code,
                    by_peer,
                });
            }
            ClientEvent::Rejected { .. } => self.coverage.rejects += 1,
            ClientEvent::Closed => {}
        }
    }

    /// One more message handed to the process's application, which takes
    /// them in batches of 32, and the rest `APP_TAKE_MS` later (a real
    /// application reads its stream on its own schedule, not at the
    /// client's protocol timer, which steady traffic keeps pushing back).
    fn handed(&mut self, slot: usize) {
        let now = self.now;
        let s = &mut self.slots[slot];
        s.handed += 1;
        if s.handed % 32 == 0 {
            if let Some(c) = s.client.as_mut() {
                c.taken(now, s.handed);
            }
        } else if s.take_at.is_none() {
            let at = now.plus_millis(super::APP_TAKE_MS);
            s.take_at = Some(at);
            let gen = s.gen;
            self.push(at, Ev::AppTake { slot, gen });
        }
    }

    /// The application takes what it was handed so far (a paused process
    /// does it when it runs again).
    pub(super) fn app_take(&mut self, slot: usize, gen: u64) {
        let now = self.now;
        let s = &mut self.slots[slot];
        if s.gen != gen || s.take_at.is_none() {
            return;
        }
        if s.paused_until > now {
            let at = s.paused_until;
            s.take_at = Some(at);
            self.push(at, Ev::AppTake { slot, gen });
            return;
        }
        s.take_at = None;
        if let Some(c) = s.client.as_mut() {
            c.taken(now, s.handed);
        }
        self.drain_client(slot);
    }

    fn record_delivery(&mut self, slot: usize, m: &switchboard_core::client::Message) {
        let proc = self.slots[slot].proc;
        let server = self.server_inc;
        let (tag, intact) = check_payload(&m.payload);
        let member_id = self.slots[slot]
            .client
            .as_ref()
            .and_then(|c| c.member_id())
            .unwrap_or(0);
        match m.to {
            Address::Anycast(_) => self.coverage.anycast_deliveries += 1,
            Address::Group(_) => self.coverage.group_deliveries += 1,
            _ => {}
        }
        if m.seq > SEQ_WINDOW {
            self.coverage.past_seq_window += 1;
        }
        if m.payload.len() > 16 * 1024 {
            self.coverage.chunked_deliveries += 1;
        }
        self.record(Act::Delivered {
            proc,
            server,
            member_id,
            gseq: m.gseq,
            from: m.from,
            id: MsgId {
                sender: m.from_incarnation,
                seq: m.seq,
            },
            tag,
            intact,
        });
    }
}
