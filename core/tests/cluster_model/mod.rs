//! The cluster model of the server property tests: random operations over
//! one server and real clients driven through the in-memory harness, and
//! the record of what every node sent and received that the guarantees
//! are checked against (see `server_cluster_props.rs`). `checks` holds the
//! checks run after every step and after healing.
#![allow(dead_code, clippy::unwrap_used)]

mod checks;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use switchboard_core::client::{ClientConfig, ClientEvent, ReplyTo, SendOptions};
use switchboard_core::frame::{
    flags, Address, ClusterEvent, EventBody, EventKind, FailReason, Filter, Limits,
    FRAME_BYTES_MAX_FLOOR,
};
use switchboard_core::server::ServerConfig;

use crate::harness::{self, Cluster};
/// Soft queue limit of the cluster tests: small, so that paused readers
/// throttle their senders and are evicted within a few dozen messages.
pub const QUEUE_MAX: usize = 16;
pub const INSTANCES: [&str; 3] = ["a", "b", "c"];
pub const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
pub const SERVICES: [&str; 2] = ["http", "rfc"];
pub const TOPICS: [&str; 3] = ["t/x", "t/y", "u"];

pub fn small_limits() -> Limits {
    // The smallest frame: payloads over ~3.5 KiB are chunked.
    Limits::with_frame_bytes_max(FRAME_BYTES_MAX_FLOOR)
}

pub fn cluster_server_config() -> ServerConfig {
    let mut cfg = harness::server_config();
    cfg.limits = small_limits();
    cfg.member_queue_items_max = QUEUE_MAX;
    cfg.slow_consumer_grace_ms = 1_000;
    cfg.send_window_items = 8;
    cfg.sender_inflight_max = 24;
    cfg.message_bytes_max = 64 * 1024;
    // Known bug: the grace timer must not fire before `in_grace` ends
    // (see `the_restart_grace_ends_cleanly_with_default_settings`).
    cfg.restart_grace_ms = u64::from(cfg.resume_window_ms);
    cfg
}

pub fn node_names(i: usize) -> (String, String) {
    (INSTANCES[i % 3].to_string(), format!("p{}", i / 3))
}

pub fn node_incarnation(i: usize) -> u64 {
    7_000 + i as u64
}

/// Payload: the unique id, then `len` bytes derived from it.
pub fn payload(uid: u64, len: usize) -> Bytes {
    let mut v = uid.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| ((uid as usize).wrapping_add(i) % 251) as u8));
    Bytes::from(v)
}

pub fn uid_of(p: &[u8]) -> u64 {
    assert!(
        p.len() >= 8,
        "G1: payload of {} bytes was never sent",
        p.len()
    );
    u64::from_be_bytes(p[..8].try_into().unwrap())
}

#[derive(Debug, Clone)]
pub enum Target {
    /// An id from the sender's own view (the n-th entry).
    ViewPick(usize),
    UnknownId,
    ByName(usize),
    UnknownName,
    Instance(usize),
    Group(usize),
    Anycast(usize),
    Broadcast,
}

#[derive(Debug, Clone)]
pub enum Op {
    Send {
        node: usize,
        to: Target,
        confirm: bool,
        len: usize,
        burst: usize,
    },
    Request {
        node: usize,
        to: Target,
        len: usize,
        timeout_ms: u32,
    },
    Reply {
        node: usize,
        pick: usize,
        len: usize,
    },
    Publish {
        node: usize,
        what: u8,
        arg: u8,
        len: usize,
    },
    Subscribe {
        node: usize,
        filter: u8,
    },
    Unsubscribe {
        node: usize,
        pick: usize,
    },
    Join {
        node: usize,
        group: usize,
    },
    Leave {
        node: usize,
        group: usize,
    },
    Drop {
        node: usize,
    },
    Pause {
        node: usize,
    },
    Unpause {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Advance {
        ms: u64,
    },
    Goodbye {
        node: usize,
    },
    RestartServer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Plain,
    Request,
    Reply { to_node: usize, corr: u64 },
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub sender: usize,
    pub seq: u64,
    pub to: Address,
    pub len: usize,
    pub kind: Kind,
    pub confirm: bool,
    /// For member-id addresses (and replies): the node the id named.
    pub intended: Option<usize>,
    /// The sender's registration count when it sent the message.
    pub registration: u32,
}

/// What a stream position carried, to compare across receivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Ident {
    Msg { from_incarnation: u64, seq: u64 },
    Event(ClusterEvent),
}

pub struct Model {
    pub c: Cluster,
    pub n: usize,
    /// Server generation: bumped on every restart (gseqs restart too).
    pub gen: u32,
    pub restarts: u64,
    pub crashed: Vec<bool>,
    pub gone: Vec<bool>,
    /// Registrations of each node so far.
    pub registrations: Vec<u32>,
    /// Registrations of each node in the batch of events being checked.
    pub registering: Vec<u32>,
    pub next_uid: u64,
    pub sent: BTreeMap<u64, Sent>,
    pub by_seq: BTreeMap<(usize, u64), u64>,
    pub received: BTreeMap<u64, BTreeSet<usize>>,
    pub replies_seen: BTreeSet<u64>,
    pub seen: BTreeSet<(usize, u64, u64)>,
    pub last_seq: BTreeMap<(usize, u64), u64>,
    pub last_pos: Vec<Option<(u32, u64, u64)>>,
    pub positions: BTreeMap<(u32, u64), Ident>,
    /// Member ids each node saw leave or fail, per generation.
    pub departed: Vec<BTreeSet<(u32, u64)>>,
    pub joined_ever: Vec<BTreeSet<String>>,
    pub requests_in: Vec<Vec<(ReplyTo, u64)>>,
    pub subs: Vec<Vec<u32>>,
    /// Resent messages delivered after later ones of the same sender.
    pub resend_reorders: Vec<String>,
    /// Confirmed messages without a final status after healing, whose
    /// sender lost its session (see `heal`).
    pub lost_statuses: Vec<String>,
    /// Final statuses (outcome or NACK) each node received, by sequence.
    pub finals: BTreeSet<(usize, u64)>,
    /// Sequenced commands each node issued.
    pub commands: Vec<usize>,
    /// Nodes that were ever paused (they may be evicted as slow).
    pub ever_paused: Vec<bool>,
    /// Which node a member id of a generation belongs to.
    pub id_to_node: BTreeMap<(u32, u64), usize>,
    pub opts: Opts,
}

/// What a run exercises.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Allow `RestartServer` operations.
    pub restarts: bool,
    /// Allow messages a node addresses to itself.
    pub self_sends: bool,
    /// No allowance for the known bugs (see the ignored tests below):
    /// resent messages keep FIFO order at every receiver (G3), NACK
    /// notices stay within `sender_inflight_max` (G11), and every
    /// confirmed message gets a final status even if its sender's session
    /// was lost meanwhile (G8).
    pub strict: bool,
}

impl Model {
    pub fn new(n: usize, seed: u64, opts: Opts) -> Model {
        let mut c = Cluster::with_config(seed, cluster_server_config());
        for i in 0..n {
            let (inst, proc_) = node_names(i);
            let mut cfg = ClientConfig::new(
                harness::CLUSTER,
                harness::secret(),
                inst,
                proc_,
                node_incarnation(i),
            );
            cfg.limits = small_limits();
            cfg.message_bytes_max = 64 * 1024;
            c.add_with(cfg);
        }
        c.start();
        let mut m = Model {
            c,
            n,
            gen: 0,
            restarts: 0,
            crashed: vec![false; n],
            gone: vec![false; n],
            registrations: vec![0; n],
            registering: vec![0; n],
            next_uid: 1,
            sent: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            received: BTreeMap::new(),
            replies_seen: BTreeSet::new(),
            seen: BTreeSet::new(),
            last_seq: BTreeMap::new(),
            last_pos: vec![None; n],
            positions: BTreeMap::new(),
            departed: vec![BTreeSet::new(); n],
            joined_ever: vec![BTreeSet::new(); n],
            requests_in: vec![Vec::new(); n],
            subs: vec![Vec::new(); n],
            lost_statuses: Vec::new(),
            finals: BTreeSet::new(),
            resend_reorders: Vec::new(),
            commands: vec![0; n],
            ever_paused: vec![false; n],
            id_to_node: BTreeMap::new(),
            opts,
        };
        m.absorb();
        m.check_queues();
        m
    }

    pub fn alive(&self, i: usize) -> bool {
        !self.crashed[i] && !self.gone[i]
    }

    /// Never paused, crashed or gone: such a node must never be declared
    /// failed.
    pub fn healthy(&self, i: usize) -> bool {
        self.alive(i) && !self.ever_paused[i]
    }

    pub fn node_of_incarnation(&self, inc: u64) -> Option<usize> {
        (0..self.n).find(|&i| node_incarnation(i) == inc)
    }

    /// Resolves a target for node `i`; the intended node for member ids.
    /// `None` for a target that names node `i` itself when self sends are
    /// off.
    pub fn address(&self, i: usize, t: &Target) -> Option<(Address, Option<usize>)> {
        let own = node_incarnation(i);
        Some(match t {
            Target::ViewPick(k) => {
                let view: Vec<_> = self.c.nodes[i]
                    .client
                    .view()
                    .values()
                    .filter(|m| self.opts.self_sends || m.incarnation != own)
                    .collect();
                if view.is_empty() {
                    return Some((Address::MemberId(1 << 40), None));
                }
                let info = view[k % view.len()];
                let node = self.node_of_incarnation(info.incarnation).unwrap();
                (Address::MemberId(info.member_id), Some(node))
            }
            Target::UnknownId => (Address::MemberId(1 << 40), None),
            Target::ByName(k) => {
                let k = k % self.n;
                if k == i && !self.opts.self_sends {
                    return None;
                }
                let (instance, process) = node_names(k);
                (Address::Member { instance, process }, None)
            }
            Target::UnknownName => (
                Address::Member {
                    instance: "zz".into(),
                    process: "p9".into(),
                },
                None,
            ),
            Target::Instance(k) => (
                Address::Instance(INSTANCES.get(*k).copied().unwrap_or("zz").into()),
                None,
            ),
            Target::Group(k) => (Address::Group(GROUPS[*k].into()), None),
            Target::Anycast(k) => (Address::Anycast(GROUPS[*k].into()), None),
            Target::Broadcast => (Address::Broadcast, None),
        })
    }

    pub fn record(&mut self, uid: u64, s: Sent) {
        self.commands[s.sender] += 1;
        self.by_seq.insert((s.sender, s.seq), uid);
        self.sent.insert(uid, s);
    }

    pub fn step(&mut self, op: &Op) {
        let now = self.c.now;
        let n = self.n;
        match op.clone() {
            Op::Send {
                node,
                to,
                confirm,
                len,
                burst,
            } => {
                let i = node % n;
                if self.crashed[i] {
                    return;
                }
                for _ in 0..burst {
                    let Some((addr, intended)) = self.address(i, &to) else {
                        return;
                    };
                    let uid = self.next_uid;
                    self.next_uid += 1;
                    let r = self.c.nodes[i].client.send(
                        now,
                        addr.clone(),
                        payload(uid, len),
                        SendOptions { confirm },
                    );
                    if let Ok(seq) = r {
                        self.record(
                            uid,
                            Sent {
                                sender: i,
                                seq,
                                to: addr,
                                len,
                                kind: Kind::Plain,
                                confirm,
                                intended,
                                registration: self.registrations[i],
                            },
                        );
                    }
                }
            }
            Op::Request {
                node,
                to,
                len,
                timeout_ms,
            } => {
                let i = node % n;
                if self.crashed[i] {
                    return;
                }
                let Some((addr, intended)) = self.address(i, &to) else {
                    return;
                };
                let uid = self.next_uid;
                self.next_uid += 1;
                let r = self.c.nodes[i].client.request(
                    now,
                    addr.clone(),
                    payload(uid, len),
                    timeout_ms,
                );
                if let Ok(seq) = r {
                    self.record(
                        uid,
                        Sent {
                            sender: i,
                            seq,
                            to: addr,
                            len,
                            kind: Kind::Request,
                            confirm: true,
                            intended,
                            registration: self.registrations[i],
                        },
                    );
                }
            }
            Op::Reply { node, pick, len } => {
                let i = node % n;
                if self.crashed[i] || self.requests_in[i].is_empty() {
                    return;
                }
                let k = pick % self.requests_in[i].len();
                let (to, req_uid) = self.requests_in[i].remove(k);
                let requester = self.sent[&req_uid].sender;
                let uid = self.next_uid;
                self.next_uid += 1;
                if let Ok(seq) = self.c.nodes[i].client.reply(now, to, payload(uid, len)) {
                    self.record(
                        uid,
                        Sent {
                            sender: i,
                            seq,
                            to: Address::MemberId(to.member_id),
                            len,
                            kind: Kind::Reply {
                                to_node: requester,
                                corr: to.correlation,
                            },
                            confirm: false,
                            intended: Some(requester),
                            registration: self.registrations[i],
                        },
                    );
                }
            }
            Op::Publish {
                node,
                what,
                arg,
                len,
            } => {
                let i = node % n;
                if self.crashed[i] {
                    return;
                }
                let event = match what {
                    0 => EventBody::ServiceState {
                        service: SERVICES[usize::from(arg) % 2].into(),
                        up: arg & 0x80 != 0,
                    },
                    1 => EventBody::Load(u32::from(arg)),
                    _ => EventBody::Custom {
                        topic: TOPICS[usize::from(arg) % 3].into(),
                        payload: Bytes::from(vec![arg; len]),
                    },
                };
                if self.c.nodes[i].client.publish(now, event).is_ok() {
                    self.commands[i] += 1;
                }
            }
            Op::Subscribe { node, filter } => {
                let i = node % n;
                if self.crashed[i] {
                    return;
                }
                let f = match filter {
                    0 => Filter::all(),
                    1 => Filter {
                        kinds: EventKind::Custom.bit(),
                        topic_prefix: "t/".into(),
                    },
                    2 => Filter::kinds(&[EventKind::Service, EventKind::Load]),
                    3 => Filter::kinds(&[EventKind::Group, EventKind::Instance]),
                    _ => Filter::default(),
                };
                if let Ok(id) = self.c.nodes[i].client.subscribe(now, f) {
                    self.commands[i] += 1;
                    self.subs[i].push(id);
                }
            }
            Op::Unsubscribe { node, pick } => {
                let i = node % n;
                if self.crashed[i] || self.subs[i].is_empty() {
                    return;
                }
                let k = pick % self.subs[i].len();
                let id = self.subs[i].remove(k);
                if self.c.nodes[i].client.unsubscribe(now, id).is_ok() {
                    self.commands[i] += 1;
                }
            }
            Op::Join { node, group } => {
                let i = node % n;
                if self.crashed[i] {
                    return;
                }
                if self.c.nodes[i].client.join(now, GROUPS[group]).is_ok() {
                    self.commands[i] += 1;
                    self.joined_ever[i].insert(GROUPS[group].into());
                }
            }
            Op::Leave { node, group } => {
                let i = node % n;
                if !self.crashed[i] && self.c.nodes[i].client.leave(now, GROUPS[group]).is_ok() {
                    self.commands[i] += 1;
                }
            }
            Op::Drop { node } => {
                let i = node % n;
                if !self.crashed[i] {
                    self.c.drop_connection(i);
                }
            }
            Op::Pause { node } => {
                self.c.nodes[node % n].paused = true;
                self.ever_paused[node % n] = true;
            }
            Op::Unpause { node } => self.c.nodes[node % n].paused = false,
            Op::Crash { node } => {
                let i = node % n;
                if !self.crashed[i] {
                    self.crashed[i] = true;
                    self.c.crash(i);
                }
            }
            Op::Advance { ms } => {
                self.c.run_for(ms, 50);
            }
            Op::Goodbye { node } => {
                let i = node % n;
                if !self.crashed[i] && !self.gone[i] {
                    self.gone[i] = true;
                    self.c.nodes[i].client.goodbye(now);
                }
            }
            Op::RestartServer => {
                if !self.opts.restarts {
                    return;
                }
                self.absorb();
                self.restarts += 1;
                self.gen += 1;
                self.c.restart_server(10_000 + self.restarts);
            }
        }
        self.c.settle();
        self.absorb();
        self.check_queues();
    }
}

pub fn run_cluster(n: usize, seed: u64, ops: &[Op], opts: Opts) -> Model {
    let mut m = Model::new(n, seed, opts);
    for op in ops {
        m.step(op);
    }
    m.heal();
    if std::env::var_os("SERVER_PROPS_STATS").is_some() {
        eprintln!(
            "n={n} ops={} sent={} received={} restarts={} reorders={} lost_statuses={} {:?}",
            ops.len(),
            m.sent.len(),
            m.received.values().map(|s| s.len()).sum::<usize>(),
            m.restarts,
            m.resend_reorders.len(),
            m.lost_statuses.len(),
            m.c.server.stats()
        );
    }
    m
}
