//! The simulated world: a discrete-event loop over a virtual clock, an
//! event queue ordered by (time, insertion sequence), one message server and
//! N member clients — the real `switchboard-core` state machines, fed bytes
//! and timers exactly as the tokio adapter feeds them — and a network
//! between them that can delay, clog, partition and reset.
//!
//! * this module: the event loop (queue, clock, dispatch, the run itself);
//! * [`network`](self::network): connections, latency, ordering, partitions,
//!   held bytes (backpressure, paused processes);
//! * [`nodes`](self::nodes): driving the server and the clients (timers,
//!   outputs, what they report into the history);
//! * [`workload`](self::workload): the application's operations and their
//!   payloads;
//! * [`faults`](self::faults): injected faults;
//! * [`hostile`](self::hostile): the hostile member's crafted frames.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use switchboard_core::client::Client;
use switchboard_core::server::Server;
use switchboard_core::time::Tick;

use crate::config::SimConfig;
use crate::coverage::Coverage;
use crate::history::{Act, History, Ms, Proc, Violation};
use crate::plan::{Action, Plan};
use crate::rng::{stream, Fnv, Stream};

mod faults;
mod hostile;
mod network;
mod nodes;
mod observe;
mod workload;

use network::Conn;
pub use workload::{check_payload, payload};

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
    /// The process's application takes what it was handed so far.
    AppTake { slot: usize, gen: u64 },
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
    /// Group operations, subscriptions and unsubscriptions whose effect
    /// the server has not confirmed yet.
    pending_state_ops: BTreeSet<u64>,
    /// Ids of the process's subscriptions, oldest first.
    subs: std::collections::VecDeque<u32>,
    /// The member id of the client's session as last seen (a refused
    /// resume drops it).
    session_member: Option<u64>,
    /// The client's stable watermark as last recorded (`Act::Stable`).
    stable: u64,
    /// The connection's close is being handed to the client: a disconnect
    /// now was caused by it (`Act::Disconnected::by_peer`).
    closing_by_peer: bool,
    /// Messages (and replies) the client handed to this process; with
    /// `ClientConfig::report_taken` the application takes them in batches
    /// of 32, and the rest [`APP_TAKE_MS`] after it was handed them.
    handed: u64,
    /// When the application takes the rest of what it was handed, if it
    /// has messages not taken yet.
    take_at: Option<Tick>,
    /// Highest sequence the server acknowledged (`ClientEvent::Acked`)
    /// since the client's latest registration: the server has processed
    /// at least this far in the current session.
    session_acked: u64,
}

/// How long after it was handed a message the simulated application takes
/// it at the latest (when no batch of 32 took it first), ms.
pub const APP_TAKE_MS: u64 = 20;

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
    /// One stream per member slot for the service a `Publish` of a
    /// service event names and whether it goes up or down: its own
    /// stream, so the rest of the seed's plan draws as before.
    services: Vec<ChaCha8Rng>,
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
    /// Members of the current server run whose queue is over its soft
    /// item or byte limit (see `Act::QueueOver`).
    over_limit: BTreeSet<u64>,
    /// The server's soft queue limit, items.
    queue_items_max: usize,
    /// The server's soft queue limit, bytes.
    queue_bytes_max: usize,
    /// Members of the current server run that are throttled (counted in
    /// coverage as they become so).
    throttled: BTreeSet<u64>,
    /// Server-side observations carried between server steps.
    observed: observe::Observed,
    /// While a hostile member writes: the slot whose client's transmits
    /// are kept here instead of being sent over the network.
    capture: Option<(usize, Vec<Bytes>)>,
    /// Tries of each hostile plan step so far (it waits for a quiet
    /// connection).
    hostile_tries: BTreeMap<usize, u32>,
}

fn ms(t: Tick) -> Ms {
    t.as_millis()
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
            services: (0..n as u64)
                .map(|slot| stream(seed, Stream::Services, slot))
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
            over_limit: BTreeSet::new(),
            queue_items_max: cfg.server_config().member_queue_items_max,
            queue_bytes_max: cfg.server_config().member_queue_bytes_max,
            throttled: BTreeSet::new(),
            observed: observe::Observed::default(),
            capture: None,
            hostile_tries: BTreeMap::new(),
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
                pending_state_ops: BTreeSet::new(),
                subs: std::collections::VecDeque::new(),
                session_member: None,
                stable: 0,
                closing_by_peer: false,
                handed: 0,
                take_at: None,
                session_acked: 0,
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

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Step(i) => self.step(i),
            ev @ (Ev::ToServer { .. } | Ev::CloseToServer { .. }) => self.arrive_at_server(ev),
            Ev::ReleaseConn { conn } => self.release_conn(conn),
            ev @ (Ev::ToClient { .. } | Ev::CloseToClient { .. } | Ev::Connected { .. }) => {
                self.arrive_at_client(ev)
            }
            Ev::ReleaseSlot { slot, gen } => self.release_slot(slot, gen),
            Ev::AppTake { slot, gen } => self.app_take(slot, gen),
            Ev::ServerTimer { at } => self.server_timer(at),
            Ev::ClientTimer { slot, gen, at } => self.client_timer(slot, gen, at),
            Ev::ServerRestart => {
                if self.server.is_none() {
                    self.start_server();
                }
            }
            Ev::ProcRestart { slot } => self.proc_restart(slot),
            Ev::Sample => self.sample(),
        }
    }

    /// Carries out plan step `i` (later when its process is paused).
    fn step(&mut self, i: usize) {
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
        if let Action::Hostile { slot, kind } = action {
            return self.hostile(i, slot, kind);
        }
        self.apply(action);
    }

    /// Applies one plan action.
    fn apply(&mut self, action: Action) {
        if action.is_fault() {
            self.apply_fault(action);
        } else {
            self.apply_workload(action);
        }
    }
}
