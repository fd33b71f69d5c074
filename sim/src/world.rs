//! The discrete-event loop: a virtual clock, an event queue ordered by
//! (time, insertion sequence), one message server and N member clients —
//! the real `switchboard-core` state machines, fed bytes and timers exactly
//! as the tokio adapter feeds them — and a network between them that can
//! delay, clog, partition and reset.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::hash::{Hash, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use switchboard_core::client::{Client, ClientEvent, ClientOutput, RequestError, SendOptions};
use switchboard_core::frame::{Address, ClusterEvent, EventBody, FailReason};
use switchboard_core::server::{ConnId, Output, Server, ServerEvent};
use switchboard_core::time::Tick;

use crate::config::SimConfig;
use crate::coverage::Coverage;
use crate::history::{Act, History, Ms, MsgId, Proc, ViewChange, Violation};
use crate::plan::{Action, Direction, Plan, Target};
use crate::rng::{mix, stream, Fnv, Stream};

/// Largest number of events one run may process (a bound on every loop).
pub const EVENTS_MAX: u64 = 50_000_000;

/// Something that happens at a point of virtual time.
#[derive(Debug)]
enum Ev {
    /// Carry out plan step `i`.
    Step(usize),
    /// Bytes arrive at the server.
    ToServer { conn: u64, data: Bytes },
    /// Bytes arrive at a client.
    ToClient { conn: u64, data: Bytes },
    /// The server learns the connection closed.
    CloseToServer { conn: u64 },
    /// The client learns the connection closed.
    CloseToClient { conn: u64 },
    /// A connection attempt completes (or fails).
    Connected { conn: u64 },
    /// The server's timer.
    ServerTimer { at: Tick },
    /// A client's timer.
    ClientTimer { slot: usize, gen: u64, at: Tick },
    /// The server comes back after a crash.
    ServerRestart,
    /// A member process comes back after a crash.
    ProcRestart { slot: usize },
    /// Record memory figures.
    Sample,
    /// Retry bytes held back by server backpressure on a connection.
    ReleaseConn { conn: u64 },
    /// Retry events held back while a process was paused or not reading.
    ReleaseSlot { slot: usize, gen: u64 },
}

struct Queued {
    at: Tick,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A connection between one member slot and the server.
#[derive(Debug)]
struct Conn {
    slot: usize,
    gen: u64,
    /// Reset or crashed: bytes in flight are lost.
    dead: bool,
    /// The server still knows it.
    server_open: bool,
    /// The client still knows it.
    client_open: bool,
    /// Latest arrival time scheduled member → server (keeps order).
    up_last: Tick,
    /// Latest arrival time scheduled server → member.
    down_last: Tick,
    /// Member → server events held back by backpressure, in order.
    up_held: std::collections::VecDeque<Ev>,
}

/// One member process slot: a process that may crash and restart.
struct Slot {
    instance: String,
    process: String,
    client: Option<Client>,
    proc: Proc,
    /// Bumped on every restart: events of an older process are stale.
    gen: u64,
    conn: Option<u64>,
    timer: Option<Tick>,
    paused_until: Tick,
    slow_until: Tick,
    clog_until: Tick,
    clog_extra_us: u64,
    block_up_until: Tick,
    block_down_until: Tick,
    /// Said goodbye: never restarts.
    gone: bool,
    /// Confirmed sends without a final status.
    pending_confirms: BTreeSet<u64>,
    /// Client-bound events waiting for the process (paused, not reading),
    /// in arrival order.
    held: std::collections::VecDeque<Ev>,
    /// Group operations whose effect the server has not confirmed yet.
    pending_group_ops: BTreeSet<u64>,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// Violations found by the checkers.
    pub violations: Vec<Violation>,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated, ms.
    pub sim_ms: u64,
    /// Hash of the whole history.
    pub trace_hash: u64,
    /// What happened, counted.
    pub coverage: Coverage,
    /// The history (kept only when asked for).
    pub history: Option<History>,
}

/// The simulated world.
pub struct World {
    cfg: SimConfig,
    seed: u64,
    now: Tick,
    queue: BinaryHeap<Reverse<Queued>>,
    next_seq: u64,
    /// One latency stream per member slot: removing one member's steps
    /// (shrinking) does not shift the others' network draws.
    net: Vec<ChaCha8Rng>,
    server: Option<Server>,
    server_inc: u64,
    server_starts: u64,
    server_timer: Option<Tick>,
    slots: Vec<Slot>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    plan: Plan,
    history: History,
    hash: Fnv,
    next_tag: u64,
    events: u64,
    coverage: Coverage,
    end_ms: Ms,
}

fn ms(t: Tick) -> Ms {
    t.as_millis()
}

/// 512 bytes counting 0..=255 twice: any 256-byte window is a filler run.
static RAMP: [u8; 512] = {
    let mut r = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        r[i] = i as u8;
        i += 1;
    }
    r
};

/// The payload of message `tag`: tag, checksum, filler (`tag + i` as bytes).
pub fn payload(tag: u64, size: usize) -> Bytes {
    let size = size.max(16);
    let mut b = BytesMut::with_capacity(size);
    b.put_u64(tag);
    b.put_u64(mix(tag ^ size as u64));
    let start = usize::from(tag as u8);
    let mut left = size - 16;
    while left > 0 {
        let n = left.min(256);
        b.put_slice(&RAMP[start..start + n]);
        left -= n;
    }
    b.freeze()
}

/// Decodes a payload: its tag and whether it is intact.
pub fn check_payload(p: &[u8]) -> (u64, bool) {
    if p.len() < 16 {
        return (0, false);
    }
    let tag = u64::from_be_bytes(p[0..8].try_into().unwrap_or([0; 8]));
    let sum = u64::from_be_bytes(p[8..16].try_into().unwrap_or([0; 8]));
    let start = usize::from(tag as u8);
    let filler_ok = p[16..]
        .chunks(256)
        .all(|c| c == &RAMP[start..start + c.len()]);
    (tag, filler_ok && sum == mix(tag ^ p.len() as u64))
}

impl World {
    /// A world for one seed and plan.
    pub fn new(seed: u64, cfg: SimConfig, plan: Plan) -> World {
        let n = cfg.members.max(1);
        let inst = cfg.instances.max(1);
        let mut w = World {
            seed,
            now: Tick::ZERO,
            queue: BinaryHeap::new(),
            next_seq: 0,
            net: (0..n as u64)
                .map(|slot| stream(seed, Stream::Network, slot))
                .collect(),
            server: None,
            server_inc: 0,
            server_starts: 0,
            server_timer: None,
            slots: Vec::with_capacity(n),
            conns: BTreeMap::new(),
            next_conn: 1,
            plan,
            history: History {
                entries: Vec::with_capacity(1 << 15),
            },
            hash: Fnv::default(),
            next_tag: 1,
            events: 0,
            coverage: Coverage::default(),
            end_ms: cfg.duration_ms + cfg.liveness_bound_ms(),
            cfg,
        };
        w.start_server();
        for slot in 0..n {
            w.slots.push(Slot {
                instance: format!("i{}", slot % inst),
                process: format!("p{}", slot / inst),
                client: None,
                proc: Proc {
                    slot,
                    incarnation: 0,
                },
                gen: 0,
                conn: None,
                timer: None,
                paused_until: Tick::ZERO,
                slow_until: Tick::ZERO,
                clog_until: Tick::ZERO,
                clog_extra_us: 0,
                block_up_until: Tick::ZERO,
                block_down_until: Tick::ZERO,
                gone: false,
                pending_confirms: BTreeSet::new(),
                held: std::collections::VecDeque::new(),
                pending_group_ops: BTreeSet::new(),
            });
            w.start_proc(slot);
        }
        for i in 0..w.plan.steps.len() {
            let at = Tick::from_millis(w.plan.steps[i].at);
            w.push(at, Ev::Step(i));
        }
        w.push(Tick::from_millis(100), Ev::Sample);
        w
    }

    fn push(&mut self, at: Tick, ev: Ev) {
        let at = at.max(self.now);
        self.next_seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.next_seq,
            ev,
        }));
    }

    fn record(&mut self, act: Act) {
        let at = ms(self.now);
        at.hash(&mut self.hash);
        act.hash(&mut self.hash);
        self.history.push(at, act);
    }

    fn fault(&mut self, slot: Option<usize>, dur_ms: u64, kind: &'static str) {
        let from = ms(self.now);
        self.record(Act::Fault {
            slot,
            from,
            until: from + dur_ms,
            kind,
        });
    }

    /// One-way network latency: 50–300 µs plus rare jitter spikes.
    fn latency(&mut self, slot: usize) -> u64 {
        let rng = &mut self.net[slot];
        let mut us = rng.gen_range(50..300);
        if rng.gen_bool(0.01) {
            us += rng.gen_range(1_000..20_000);
        }
        let s = &self.slots[slot];
        if s.clog_until > self.now {
            us += s.clog_extra_us;
        }
        us
    }

    fn start_server(&mut self) {
        self.server_starts += 1;
        let rng = stream(self.seed, Stream::Server, self.server_starts);
        let server = Server::new(self.cfg.server_config(), Box::new(rng), self.now);
        self.server_inc = server.incarnation();
        self.server = Some(server);
        self.server_timer = None;
        let server = self.server_inc;
        self.record(Act::ServerStarted { server });
        self.arm_server();
    }

    fn start_proc(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.gen += 1;
        let mut rng = stream(self.seed, Stream::Clients, (slot as u64) << 32 | s.gen);
        let incarnation = rng.gen::<u64>() | 1;
        let cfg = self.cfg.client_config(&s.instance, &s.process, incarnation);
        s.client = Some(Client::new(cfg, Box::new(rng), self.now));
        s.proc = Proc { slot, incarnation };
        s.conn = None;
        s.timer = None;
        s.pending_confirms.clear();
        s.held.clear();
        s.pending_group_ops.clear();
        let (proc, instance, process) = (s.proc, s.instance.clone(), s.process.clone());
        self.record(Act::Started {
            proc,
            instance,
            process,
        });
        self.arm_client(slot);
    }

    fn arm_server(&mut self) {
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

    fn arm_client(&mut self, slot: usize) {
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

    /// Runs the whole plan, heals, converges, and checks the history.
    pub fn run(mut self, keep_history: bool) -> RunResult {
        let end = Tick::from_millis(self.end_ms);
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > end || self.events >= EVENTS_MAX {
                break;
            }
            self.now = q.at;
            self.events += 1;
            self.dispatch(q.ev);
        }
        self.now = end;
        self.finish();
        let mut violations = crate::checkers::check_all(&self.history, &self.cfg.bounds());
        violations.extend(self.stale_view_members());
        self.coverage.add_history(&self.history);
        RunResult {
            seed: self.seed,
            violations,
            events: self.events,
            sim_ms: self.end_ms,
            trace_hash: self.hash.finish(),
            coverage: self.coverage,
            history: keep_history.then_some(self.history),
        }
    }

    /// Writes the final state of every live process (for G9).
    fn finish(&mut self) {
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
    fn stale_view_members(&self) -> Vec<Violation> {
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

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Step(i) => {
                let action = self.plan.steps[i].action.clone();
                // A paused process runs no application code either.
                if let Some(slot) = action.workload_slot() {
                    let until = self.slots.get(slot).map_or(Tick::ZERO, |s| s.paused_until);
                    if until > self.now {
                        self.push(until, Ev::Step(i));
                        return;
                    }
                    if slot >= self.slots.len() {
                        return;
                    }
                }
                self.apply(action);
            }
            ev @ (Ev::ToServer { .. } | Ev::CloseToServer { .. }) => {
                let conn = match &ev {
                    Ev::ToServer { conn, .. } | Ev::CloseToServer { conn } => *conn,
                    _ => return,
                };
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.up_held.is_empty() {
                    // Bytes keep their order behind held ones.
                    c.up_held.push_back(ev);
                    return;
                }
                let blocked = matches!(ev, Ev::ToServer { .. })
                    && self
                        .server
                        .as_ref()
                        .is_some_and(|s| !s.wants_read(ConnId(conn)));
                if blocked {
                    // The member's deferred frames are at their limit: the
                    // bytes wait in the socket (TCP backpressure).
                    self.coverage.throttled += 1;
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.up_held.push_back(ev);
                    }
                    let at = self.now + 1_000;
                    self.push(at, Ev::ReleaseConn { conn });
                    return;
                }
                self.server_ev(ev);
            }
            Ev::ReleaseConn { conn } => loop {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let Some(front) = c.up_held.front() else {
                    return;
                };
                let blocked = matches!(front, Ev::ToServer { .. })
                    && self
                        .server
                        .as_ref()
                        .is_some_and(|s| !s.wants_read(ConnId(conn)));
                if blocked {
                    let at = self.now + 1_000;
                    self.push(at, Ev::ReleaseConn { conn });
                    return;
                }
                let Some(ev) = self
                    .conns
                    .get_mut(&conn)
                    .and_then(|c| c.up_held.pop_front())
                else {
                    return;
                };
                self.server_ev(ev);
            },
            ev @ (Ev::ToClient { .. } | Ev::CloseToClient { .. } | Ev::Connected { .. }) => {
                let conn = match &ev {
                    Ev::ToClient { conn, .. }
                    | Ev::CloseToClient { conn }
                    | Ev::Connected { conn } => *conn,
                    _ => return,
                };
                let Some(slot) = self.conns.get(&conn).map(|c| c.slot) else {
                    return;
                };
                if !self.slots[slot].held.is_empty() {
                    self.slots[slot].held.push_back(ev);
                    return;
                }
                if let Some(until) = self.hold_until(slot, &ev) {
                    // A paused (or not reading) process: the event waits,
                    // in order with those after it.
                    self.slots[slot].held.push_back(ev);
                    let gen = self.slots[slot].gen;
                    self.push(until, Ev::ReleaseSlot { slot, gen });
                    return;
                }
                self.client_ev(ev);
            }
            Ev::ReleaseSlot { slot, gen } => loop {
                if self.slots[slot].gen != gen {
                    self.slots[slot].held.clear();
                    return;
                }
                let Some(front) = self.slots[slot].held.front() else {
                    return;
                };
                if let Some(until) = self.hold_until(slot, front) {
                    self.push(until, Ev::ReleaseSlot { slot, gen });
                    return;
                }
                let Some(ev) = self.slots[slot].held.pop_front() else {
                    return;
                };
                self.client_ev(ev);
            },
            Ev::ServerTimer { at } => {
                if self.server_timer != Some(at) {
                    return;
                }
                self.server_timer = None;
                if let Some(server) = self.server.as_mut() {
                    server.handle_timeout(self.now);
                    self.drain_server();
                }
            }
            Ev::ClientTimer { slot, gen, at } => {
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
                    client.handle_timeout(self.now);
                }
                self.drain_client(slot);
            }
            Ev::ServerRestart => {
                if self.server.is_none() {
                    self.start_server();
                }
            }
            Ev::ProcRestart { slot } => {
                if self.slots[slot].client.is_none() && !self.slots[slot].gone {
                    self.coverage.restarts += 1;
                    self.start_proc(slot);
                }
            }
            Ev::Sample => {
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
                self.record(Act::Memory {
                    server_queue_max,
                    outbox_max,
                });
                let at = self.now.plus_millis(100);
                self.push(at, Ev::Sample);
            }
        }
    }

    /// When a client-bound event must wait for its process, if it must.
    fn hold_until(&self, slot: usize, ev: &Ev) -> Option<Tick> {
        let s = &self.slots[slot];
        let mut until = s.paused_until;
        if matches!(ev, Ev::ToClient { .. }) {
            until = until.max(s.slow_until);
        }
        (until > self.now).then_some(until)
    }

    /// Delivers a server-bound network event.
    fn server_ev(&mut self, ev: Ev) {
        match ev {
            Ev::ToServer { conn, data } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.dead || !c.server_open {
                    return;
                }
                let Some(server) = self.server.as_mut() else {
                    return;
                };
                server.handle_bytes(self.now, ConnId(conn), &data);
                self.drain_server();
            }
            Ev::CloseToServer { conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.server_open {
                    return;
                }
                c.server_open = false;
                if let Some(server) = self.server.as_mut() {
                    server.handle_closed(self.now, ConnId(conn));
                    self.drain_server();
                }
                self.gc_conn(conn);
            }
            _ => {}
        }
    }

    /// Delivers a client-bound network event.
    fn client_ev(&mut self, ev: Ev) {
        match ev {
            Ev::ToClient { conn, data } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.dead || !c.client_open {
                    return;
                }
                let slot = c.slot;
                let s = &self.slots[slot];
                if s.gen != c.gen || s.conn != Some(conn) {
                    return;
                }
                if let Some(client) = self.slots[slot].client.as_mut() {
                    client.handle_bytes(self.now, &data);
                }
                self.drain_client(slot);
            }
            Ev::CloseToClient { conn } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.client_open {
                    return;
                }
                let slot = c.slot;
                let s = &self.slots[slot];
                if s.gen != c.gen || s.conn != Some(conn) {
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.client_open = false;
                }
                self.slots[slot].conn = None;
                if let Some(client) = self.slots[slot].client.as_mut() {
                    client.handle_closed(self.now);
                }
                self.drain_client(slot);
                self.gc_conn(conn);
            }
            Ev::Connected { conn } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                let slot = c.slot;
                let (gen, dead) = (c.gen, c.dead);
                if self.slots[slot].gen != gen || self.slots[slot].conn != Some(conn) {
                    return;
                }
                let reachable = !dead && self.server.is_some() && !self.blocked(slot);
                if reachable {
                    if let Some(server) = self.server.as_mut() {
                        server.handle_connected(self.now, ConnId(conn));
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.server_open = true;
                    }
                    if let Some(client) = self.slots[slot].client.as_mut() {
                        client.handle_connected(self.now);
                    }
                    self.drain_server();
                } else {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.client_open = false;
                        c.dead = true;
                    }
                    self.slots[slot].conn = None;
                    if let Some(client) = self.slots[slot].client.as_mut() {
                        client.handle_closed(self.now);
                    }
                    self.gc_conn(conn);
                }
                self.drain_client(slot);
            }
            _ => {}
        }
    }

    fn blocked(&self, slot: usize) -> bool {
        let s = &self.slots[slot];
        s.block_up_until > self.now || s.block_down_until > self.now
    }

    fn gc_conn(&mut self, conn: u64) {
        if let Some(c) = self.conns.get(&conn) {
            if !c.server_open && !c.client_open {
                self.conns.remove(&conn);
            }
        }
    }

    /// Schedules member → server bytes, in order, through faults.
    fn send_up(&mut self, slot: usize, conn: u64, ev: Ev) {
        let lat = self.latency(slot);
        let block = self.slots[slot].block_up_until;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + lat).max(block).max(c.up_last);
        c.up_last = at;
        self.push(at, ev);
    }

    /// Schedules server → member bytes, in order, through faults.
    fn send_down(&mut self, slot: usize, conn: u64, ev: Ev) {
        let lat = self.latency(slot);
        let block = self.slots[slot].block_down_until;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + lat).max(block).max(c.down_last);
        c.down_last = at;
        self.push(at, ev);
    }

    fn drain_server(&mut self) {
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
                        match reason {
                            FailReason::SlowConsumer => self.coverage.evictions += 1,
                            FailReason::Superseded => self.coverage.superseded += 1,
                            FailReason::HeartbeatTimeout => self.coverage.heartbeat_failures += 1,
                            FailReason::ConnectionLost => self.coverage.session_expiries += 1,
                            FailReason::ProtocolViolation => {}
                        }
                        self.record(Act::ServerRemoved {
                            server: inc,
                            member_id,
                            reason: Some(reason),
                        });
                    }
                    ServerEvent::MemberLeft { member_id, .. } => {
                        self.record(Act::ServerRemoved {
                            server: inc,
                            member_id,
                            reason: None,
                        });
                    }
                    ServerEvent::MemberResumed { .. } => self.coverage.server_resumes += 1,
                    _ => {}
                },
            }
        }
        self.arm_server();
    }

    fn drain_client(&mut self, slot: usize) {
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
        self.confirm_group_ops(slot);
        self.arm_client(slot);
    }

    /// Records an `Acked` for group operations once the server has their
    /// effect (acked, resumed past, or carried by a registration).
    fn confirm_group_ops(&mut self, slot: usize) {
        let Some(through) = self.slots[slot]
            .client
            .as_ref()
            .map(|c| c.effective_through())
        else {
            return;
        };
        let proc = self.slots[slot].proc;
        while let Some(&seq) = self.slots[slot].pending_group_ops.first() {
            if seq > through {
                break;
            }
            self.slots[slot].pending_group_ops.pop_first();
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
                self.record(Act::Registered {
                    proc,
                    server,
                    member_id,
                    position,
                    view: view.iter().map(|m| m.member_id).collect(),
                });
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
                self.coverage.replies += 1;
                self.record_delivery(slot, &message);
            }
            ClientEvent::Message(m) => {
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
                        self.record_sent(slot, seq, to, tag, false, false);
                    }
                }
            }
            ClientEvent::Event { gseq, event, .. } => {
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
                    });
                }
            }
            ClientEvent::Acked { seq } => self.record(Act::Acked { proc, seq }),
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
            ClientEvent::Disconnected { .. } => self.coverage.disconnects += 1,
            ClientEvent::Rejected { .. } => self.coverage.rejects += 1,
            ClientEvent::Closed => {}
        }
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
        if matches!(m.to, Address::Anycast(_)) {
            self.coverage.anycast_deliveries += 1;
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

    /// A fresh payload tag.
    fn take_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    /// Records a message the client accepted (and, when a final status is
    /// owed, remembers it for G8/G9).
    fn record_sent(
        &mut self,
        slot: usize,
        seq: u64,
        to: Address,
        tag: u64,
        confirm: bool,
        request: bool,
    ) {
        let proc = self.slots[slot].proc;
        if confirm {
            self.slots[slot].pending_confirms.insert(seq);
        }
        self.record(Act::Sent {
            proc,
            id: MsgId {
                sender: proc.incarnation,
                seq,
            },
            to,
            tag,
            confirm,
            request,
        });
    }

    /// Resolves a target to an address, if the slot it names is known.
    fn address(&self, from: usize, to: &Target) -> Option<Address> {
        Some(match to {
            // As an application would: the id from the sender's own view.
            Target::Id(s) => {
                let t = self.slots.get(*s)?;
                let view = self.slots.get(from)?.client.as_ref()?.view();
                let m = view
                    .values()
                    .find(|m| m.instance == t.instance && m.process == t.process)?;
                Address::MemberId(m.member_id)
            }
            Target::Name(s) => {
                let s = self.slots.get(*s)?;
                Address::Member {
                    instance: s.instance.clone(),
                    process: s.process.clone(),
                }
            }
            Target::Instance(i) => Address::Instance(format!("i{i}")),
            Target::Group(g) => Address::Group((*g).to_owned()),
            Target::Anycast(g) => Address::Anycast((*g).to_owned()),
            Target::Broadcast => Address::Broadcast,
        })
    }

    fn apply(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Send {
                slot,
                to,
                confirm,
                size,
            } => {
                let Some(addr) = self.address(slot, &to) else {
                    return;
                };
                let tag = self.take_tag();
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                match c.send(
                    now,
                    addr.clone(),
                    payload(tag, size),
                    SendOptions { confirm },
                ) {
                    Ok(seq) => {
                        if size > 16 * 1024 {
                            self.coverage.chunked_sends += 1;
                        }
                        self.coverage.sends += 1;
                        self.record_sent(slot, seq, addr, tag, confirm, false);
                    }
                    Err(_) => self.coverage.refused_commands += 1,
                }
                self.drain_client(slot);
            }
            Action::Request {
                slot,
                to,
                timeout_ms,
            } => {
                let Some(addr) = self.address(slot, &to) else {
                    return;
                };
                let tag = self.take_tag();
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                match c.request(now, addr.clone(), payload(tag, 24), timeout_ms) {
                    Ok(seq) => {
                        self.coverage.requests += 1;
                        self.record_sent(slot, seq, addr, tag, true, true);
                    }
                    Err(_) => self.coverage.refused_commands += 1,
                }
                self.drain_client(slot);
            }
            Action::Publish { slot, kind } => {
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                let body = match kind {
                    0 => EventBody::ServiceState {
                        service: "http".into(),
                        up: now.as_millis() % 2 == 0,
                    },
                    1 => EventBody::Load((now.as_millis() % 100) as u32),
                    _ => EventBody::Custom {
                        topic: "cache/invalidate".into(),
                        payload: Bytes::from_static(b"key"),
                    },
                };
                if c.publish(now, body).is_ok() {
                    self.coverage.publishes += 1;
                }
                self.drain_client(slot);
            }
            Action::Join { slot, group } | Action::Leave { slot, group } => {
                let join = matches!(action, Action::Join { .. });
                let proc = self.slots[slot].proc;
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                let before = c.outbox_len();
                let r = if join {
                    c.join(now, group)
                } else {
                    c.leave(now, group)
                };
                // The client took a sequence only if it queued a frame.
                if r.is_ok() && c.outbox_len() > before {
                    // The frame just queued carries the newest sequence;
                    // the outbox holds it until acked.
                    let seq = c.last_seq();
                    self.slots[slot].pending_group_ops.insert(seq);
                    self.record(Act::GroupOp {
                        proc,
                        group: group.to_owned(),
                        join,
                        seq,
                    });
                }
                self.drain_client(slot);
            }
            Action::Subscribe { slot } => {
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                let _ = c.subscribe(
                    now,
                    switchboard_core::frame::Filter {
                        kinds: switchboard_core::frame::EventKind::ALL,
                        topic_prefix: String::new(),
                    },
                );
                self.drain_client(slot);
            }
            Action::Goodbye { slot } => {
                let proc = self.slots[slot].proc;
                let Some(c) = self.slots[slot].client.as_mut() else {
                    return;
                };
                if c.is_closed() {
                    return;
                }
                c.goodbye(now);
                self.slots[slot].gone = true;
                self.record(Act::Goodbye { proc });
                self.drain_client(slot);
            }
            Action::Reset { slot } => {
                let Some(conn) = self.slots[slot].conn else {
                    return;
                };
                self.coverage.faults.reset += 1;
                self.fault(Some(slot), 1, "reset");
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.dead = true;
                }
                let lat = self.latency(slot);
                self.push(self.now + lat, Ev::CloseToServer { conn });
                self.push(self.now + lat, Ev::CloseToClient { conn });
            }
            Action::Clog {
                slot,
                extra_ms,
                ms: dur,
            } => {
                self.coverage.faults.clog += 1;
                self.fault(Some(slot), dur, "clog");
                let s = &mut self.slots[slot];
                s.clog_until = now.plus_millis(dur);
                s.clog_extra_us = extra_ms * 1000;
            }
            Action::Partition {
                slots,
                dir,
                ms: dur,
            } => {
                self.coverage.faults.partition += 1;
                for slot in slots {
                    if slot >= self.slots.len() {
                        continue;
                    }
                    self.fault(Some(slot), dur, "partition");
                    let until = now.plus_millis(dur);
                    let s = &mut self.slots[slot];
                    if matches!(dir, Direction::Up | Direction::Both) {
                        s.block_up_until = s.block_up_until.max(until);
                    }
                    if matches!(dir, Direction::Down | Direction::Both) {
                        s.block_down_until = s.block_down_until.max(until);
                    }
                }
            }
            Action::Crash { slot, down_ms } => {
                if self.slots[slot].client.is_none() || self.slots[slot].gone {
                    return;
                }
                self.coverage.faults.crash += 1;
                self.fault(Some(slot), down_ms, "crash");
                let proc = self.slots[slot].proc;
                self.record(Act::Crashed { proc });
                let s = &mut self.slots[slot];
                s.client = None;
                s.gen += 1;
                s.timer = None;
                if let Some(conn) = s.conn.take() {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.dead = true;
                        c.client_open = false;
                    }
                    let lat = self.latency(slot);
                    self.push(self.now + lat, Ev::CloseToServer { conn });
                }
                self.push(now.plus_millis(down_ms), Ev::ProcRestart { slot });
            }
            Action::ServerCrash { down_ms } => {
                if self.server.is_none() {
                    return;
                }
                self.coverage.faults.server_crash += 1;
                self.fault(None, down_ms, "server-crash");
                let server = self.server_inc;
                self.record(Act::ServerCrashed { server });
                self.server = None;
                self.server_timer = None;
                let conns: Vec<u64> = self.conns.keys().copied().collect();
                for conn in conns {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    c.dead = true;
                    c.server_open = false;
                    let slot = c.slot;
                    let lat = self.latency(slot);
                    self.push(self.now + lat, Ev::CloseToClient { conn });
                }
                self.push(now.plus_millis(down_ms), Ev::ServerRestart);
            }
            Action::Pause { slot, ms: dur } => {
                self.coverage.faults.pause += 1;
                self.fault(Some(slot), dur, "pause");
                let s = &mut self.slots[slot];
                s.paused_until = s.paused_until.max(now.plus_millis(dur));
            }
            Action::Slow { slot, ms: dur } => {
                self.coverage.faults.slow += 1;
                self.fault(Some(slot), dur, "slow");
                let s = &mut self.slots[slot];
                s.slow_until = s.slow_until.max(now.plus_millis(dur));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_check_and_tampering_is_detected() {
        for (tag, size) in [(1u64, 16usize), (7, 100), (255, 300), (1 << 40, 70_000)] {
            let p = payload(tag, size);
            assert_eq!(p.len(), size);
            assert_eq!(check_payload(&p), (tag, true));
            let mut bad = p.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!check_payload(&bad).1, "flipped filler byte");
            let mut bad = p.to_vec();
            bad[9] ^= 1;
            assert!(!check_payload(&bad).1, "flipped checksum byte");
            assert!(!check_payload(&p[..p.len() - 1]).1, "truncated");
        }
        assert!(!check_payload(b"short").1);
    }
}
