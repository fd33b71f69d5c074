//! A run's plan: every workload operation and every fault, with its time,
//! drawn up front from the seed. A plan is plain data, so a failing run
//! can be shrunk by removing steps, and a scripted scenario is just a
//! hand-written plan.

use std::fmt;

use rand::Rng;

use switchboard_core::frame::{EventKind, Filter};

use crate::config::{FaultKind, FaultSelection, SimConfig};
use crate::history::Ms;
use crate::rng::{stream, Stream};

/// Group names the workload uses.
pub const GROUPS: [&str; 3] = ["cache", "jobs", "audit"];

/// Whom a message goes to, in simulator terms (resolved at send time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The current member id of a slot.
    Id(usize),
    /// A slot by its instance/process name.
    Name(usize),
    /// Every member of an instance.
    Instance(usize),
    /// Every member of a group.
    Group(&'static str),
    /// One member of a group.
    Anycast(&'static str),
    /// Everyone else.
    Broadcast,
}

/// Direction(s) a partition blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Member → server only.
    Up,
    /// Server → member only.
    Down,
    /// Both.
    Both,
}

/// One planned operation or fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a message.
    Send {
        /// Sender slot.
        slot: usize,
        /// Addressee.
        to: Target,
        /// Ask for an outcome.
        confirm: bool,
        /// Payload size, bytes.
        size: usize,
    },
    /// Send a request (addressees reply at once).
    Request {
        /// Requester slot.
        slot: usize,
        /// Addressee.
        to: Target,
        /// Reply deadline, ms.
        timeout_ms: u32,
    },
    /// `count` small messages sent back to back by `slot` (a firehose
    /// burst): drives senders past the receivers' duplicate window
    /// (`SEQ_WINDOW`) and recipients over their queue limit (throttling).
    Burst {
        /// Sender.
        slot: usize,
        /// Destination.
        to: Target,
        /// Messages in the burst.
        count: u32,
        /// Ask for outcomes.
        confirm: bool,
    },
    /// Publish an event.
    Publish {
        /// Publisher slot.
        slot: usize,
        /// 0 service up/down, 1 load, 2 custom.
        kind: u8,
    },
    /// Join a group.
    Join {
        /// Slot.
        slot: usize,
        /// Group.
        group: &'static str,
    },
    /// Leave a group.
    Leave {
        /// Slot.
        slot: usize,
        /// Group.
        group: &'static str,
    },
    /// Subscribe to published events.
    Subscribe {
        /// Slot.
        slot: usize,
        /// Which filter ([`sub_filter`]).
        filter: u8,
    },
    /// Drop the slot's oldest subscription (if it holds one).
    Unsubscribe {
        /// Slot.
        slot: usize,
    },
    /// Leave the cluster for good.
    Goodbye {
        /// Slot.
        slot: usize,
    },
    /// Reset a member's connection (frames in flight are lost).
    Reset {
        /// Slot.
        slot: usize,
    },
    /// Add latency to a member's link for a while.
    Clog {
        /// Slot.
        slot: usize,
        /// Extra latency, ms.
        extra_ms: u64,
        /// For how long, ms.
        ms: u64,
    },
    /// Cut members off from the server for a while.
    Partition {
        /// Slots cut off.
        slots: Vec<usize>,
        /// Which direction.
        dir: Direction,
        /// For how long, ms.
        ms: u64,
    },
    /// Kill a member process; it restarts as a new incarnation.
    Crash {
        /// Slot.
        slot: usize,
        /// Down time, ms.
        down_ms: u64,
    },
    /// Kill the server (all state lost); it restarts.
    ServerCrash {
        /// Down time, ms.
        down_ms: u64,
    },
    /// Freeze a member process for a while.
    Pause {
        /// Slot.
        slot: usize,
        /// For how long, ms.
        ms: u64,
    },
    /// A member stops reading for a while.
    Slow {
        /// Slot.
        slot: usize,
        /// For how long, ms.
        ms: u64,
    },
    /// A hostile member writes a crafted frame (see [`HostileKind`]).
    Hostile {
        /// Slot.
        slot: usize,
        /// What it writes.
        kind: HostileKind,
    },
}

/// What a hostile member writes ([`Action::Hostile`],
/// `sim/src/world/hostile.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileKind {
    /// A `Send` whose `seq` jumps more than `SEQ_WINDOW` past its newest.
    SeqAhead,
    /// A `Send` whose `seq` lies more than `SEQ_WINDOW` behind what the
    /// server acknowledged (only once it acknowledged that far), or, when
    /// the server's mark is known exactly, sometimes exactly `SEQ_WINDOW`
    /// behind it (no violation).
    SeqBehind,
    /// A message to itself and, in the same write, a `DeliveryAck` beyond
    /// everything it received.
    AckAhead,
    /// A `Taken` the server must ignore: without the TAKEN capability, or
    /// at or below the last one.
    Taken,
    /// Subscriptions up to `SUBSCRIPTIONS_MAX`, then one more.
    SubscribeOver,
    /// Group joins up to `GROUPS_PER_MEMBER_MAX`, then one more.
    JoinOver,
    /// Bytes whose frame header the decoder refuses, alone or right before
    /// or after the client's next command in the same write.
    Undecodable,
    /// The head of a chunked `Send` and, before any `Chunk`, the client's
    /// next command (a sequenced frame) in the same write.
    ChunkInterleaved,
}

impl HostileKind {
    /// Every kind.
    pub const ALL: [HostileKind; 8] = [
        HostileKind::SeqAhead,
        HostileKind::SeqBehind,
        HostileKind::AckAhead,
        HostileKind::Taken,
        HostileKind::SubscribeOver,
        HostileKind::JoinOver,
        HostileKind::Undecodable,
        HostileKind::ChunkInterleaved,
    ];
}

impl Action {
    /// The slot a workload operation runs on (`None` for faults).
    pub fn workload_slot(&self) -> Option<usize> {
        match self {
            Action::Send { slot, .. }
            | Action::Burst { slot, .. }
            | Action::Request { slot, .. }
            | Action::Publish { slot, .. }
            | Action::Join { slot, .. }
            | Action::Leave { slot, .. }
            | Action::Subscribe { slot, .. }
            | Action::Unsubscribe { slot }
            | Action::Goodbye { slot }
            | Action::Hostile { slot, .. } => Some(*slot),
            _ => None,
        }
    }

    /// True for faults (as opposed to workload operations).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Action::Reset { .. }
                | Action::Clog { .. }
                | Action::Partition { .. }
                | Action::Crash { .. }
                | Action::ServerCrash { .. }
                | Action::Pause { .. }
                | Action::Slow { .. }
        )
    }
}

/// A timed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When, ms from the start.
    pub at: Ms,
    /// What.
    pub action: Action,
}

/// Everything a run will do, in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
    /// Fault kinds enabled (for the summary).
    pub faults: Vec<FaultKind>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "  t={:>6}ms  {:?}", s.at, s.action)?;
        }
        Ok(())
    }
}

/// Fault rates a seed picked: mean gap between two faults of a kind, ms.
fn fault_gap_ms(rng: &mut impl Rng) -> u64 {
    [1_000, 2_500, 5_000, 10_000][rng.gen_range(0..4)]
}

/// Draws the plan of a run from its seed.
pub fn generate(seed: u64, cfg: &SimConfig) -> Plan {
    let mut plan = Plan::default();
    let n = cfg.members.max(1);
    let end = cfg.duration_ms;

    // Swarm testing: the seed decides which faults are on.
    let mut swarm = stream(seed, Stream::Swarm, 0);
    let enabled: Vec<FaultKind> = match &cfg.faults {
        FaultSelection::None => Vec::new(),
        FaultSelection::Only(k) => k.clone(),
        FaultSelection::Swarm => FaultKind::ALL
            .into_iter()
            .filter(|_| swarm.gen_bool(0.6))
            .collect(),
    };
    plan.faults = enabled.clone();

    // Workload: every member joins some groups, some subscribe; then a mix
    // of operations at a seed-chosen rate.
    let mut w = stream(seed, Stream::Workload, 0);
    // Filters and unsubscriptions come from a stream of their own, so the
    // rest of the plan is the same as before they existed.
    let mut subs = stream(seed, Stream::Workload, 2);
    for slot in 0..n {
        for g in GROUPS {
            if w.gen_bool(0.5) {
                plan.steps.push(Step {
                    at: w.gen_range(0..200),
                    action: Action::Join { slot, group: g },
                });
            }
        }
        if w.gen_bool(0.5) {
            plan.steps.push(Step {
                at: w.gen_range(0..200),
                action: Action::Subscribe {
                    slot,
                    filter: subs.gen_range(0..SUB_FILTERS),
                },
            });
        }
    }
    let ops_per_s = [50u64, 200, 500][w.gen_range(0..3)];
    let confirm_p = [0.1, 0.5, 0.9][w.gen_range(0..3)];
    let count = ops_per_s * end / 1_000;
    for _ in 0..count {
        let at = w.gen_range(300..end.max(301));
        let slot = w.gen_range(0..n);
        let roll = w.gen_range(0..100);
        let action = match roll {
            0..=54 => Action::Send {
                slot,
                to: random_target(&mut w, n, cfg.instances),
                confirm: w.gen_bool(confirm_p),
                size: if w.gen_bool(0.02) {
                    w.gen_range(20_000..60_000)
                } else {
                    w.gen_range(16..200)
                },
            },
            55..=69 => Action::Request {
                slot,
                to: match w.gen_range(0..3) {
                    0 => Target::Id(w.gen_range(0..n)),
                    1 => Target::Name(w.gen_range(0..n)),
                    _ => Target::Anycast(GROUPS[w.gen_range(0..GROUPS.len())]),
                },
                timeout_ms: w.gen_range(200..2_000),
            },
            70..=84 => Action::Publish {
                slot,
                kind: w.gen_range(0..3),
            },
            85..=91 => Action::Join {
                slot,
                group: GROUPS[w.gen_range(0..GROUPS.len())],
            },
            92..=98 => Action::Leave {
                slot,
                group: GROUPS[w.gen_range(0..GROUPS.len())],
            },
            _ => Action::Subscribe {
                slot,
                filter: subs.gen_range(0..SUB_FILTERS),
            },
        };
        plan.steps.push(Step { at, action });
    }
    // A few members leave for good near the end (never all).
    if n > 2 && w.gen_bool(0.3) {
        plan.steps.push(Step {
            at: w.gen_range(end / 2..end),
            action: Action::Goodbye {
                slot: w.gen_range(0..n),
            },
        });
    }

    unsubscriptions(&mut subs, end, &mut plan);
    firehose(seed, cfg, &mut plan);
    bulk(seed, cfg, &mut plan);
    hostile(seed, cfg, &mut plan);

    // Faults, each kind at its own seed-chosen rate, all over by `end`.
    let mut fr = stream(seed, Stream::Faults, 0);
    for kind in enabled {
        let gap = fault_gap_ms(&mut fr);
        let mut t = fr.gen_range(500..gap + 501);
        while t + 100 < end {
            let slot = fr.gen_range(0..n);
            let left = end - t;
            let action = match kind {
                FaultKind::Reset => Action::Reset { slot },
                FaultKind::Clog => Action::Clog {
                    slot,
                    extra_ms: fr.gen_range(20..400),
                    ms: fr.gen_range(100..3_000).min(left),
                },
                FaultKind::Partition => {
                    let slots = if fr.gen_bool(0.3) {
                        // A whole instance.
                        let inst = fr.gen_range(0..cfg.instances.max(1));
                        (0..n)
                            .filter(|s| s % cfg.instances.max(1) == inst)
                            .collect()
                    } else {
                        vec![slot]
                    };
                    let dir = match fr.gen_range(0..3) {
                        0 => Direction::Up,
                        1 => Direction::Down,
                        _ => Direction::Both,
                    };
                    Action::Partition {
                        slots,
                        dir,
                        ms: fr.gen_range(100..4_000).min(left),
                    }
                }
                FaultKind::Crash => Action::Crash {
                    slot,
                    down_ms: fr.gen_range(50..3_000).min(left),
                },
                FaultKind::ServerCrash => Action::ServerCrash {
                    down_ms: fr.gen_range(50..1_500).min(left),
                },
                FaultKind::Pause => Action::Pause {
                    slot,
                    ms: fr.gen_range(50..2_500).min(left),
                },
                FaultKind::Slow => Action::Slow {
                    slot,
                    ms: fr.gen_range(100..4_000).min(left),
                },
            };
            plan.steps.push(Step { at: t, action });
            t += fr.gen_range(gap / 2..gap * 3 / 2 + 1);
        }
    }
    // Stable order: by time, then by generation order.
    plan.steps.sort_by_key(|s| s.at);
    plan
}

/// Number of subscription filters the workload draws from ([`sub_filter`]).
pub const SUB_FILTERS: u8 = 10;

/// Share of subscriptions the workload drops again, 0.5–5 s later.
pub const UNSUBSCRIBE_P: f64 = 0.3;

/// The filter of a planned subscription: mostly every event; some only
/// custom events on `cache/` (what the workload publishes), some only
/// service and load changes, one a topic nothing is published on.
pub fn sub_filter(filter: u8) -> Filter {
    match filter {
        0..=5 => Filter::all(),
        6 | 7 => Filter::topic("cache/"),
        8 => Filter::kinds(&[EventKind::Service, EventKind::Load]),
        _ => Filter::topic("jobs/"),
    }
}

/// For a share ([`UNSUBSCRIBE_P`]) of the planned subscriptions, an
/// unsubscription by the same slot 0.5–5 s later (of its oldest
/// subscription then).
fn unsubscriptions(subs: &mut impl Rng, end: Ms, plan: &mut Plan) {
    let mut extra = Vec::new();
    for s in &plan.steps {
        if let Action::Subscribe { slot, .. } = s.action {
            if subs.gen_bool(UNSUBSCRIBE_P) {
                let at = s.at + subs.gen_range(500..5_000);
                if at < end {
                    extra.push(Step {
                        at,
                        action: Action::Unsubscribe { slot },
                    });
                }
            }
        }
    }
    plan.steps.extend(extra);
}

/// Share of seeds with a firehose sender.
pub const FIREHOSE_P: f64 = 0.1;
/// Messages per firehose burst.
pub const FIREHOSE_BURST: u32 = 250;
/// Time between firehose bursts, ms.
pub const FIREHOSE_EVERY_MS: u64 = 50;

/// In a share of the seeds ([`FIREHOSE_P`]), one member sends bursts of
/// small messages to one destination for the whole safety phase: about
/// 130 bursts of 250, well past `SEQ_WINDOW` (16,384) sequences when the
/// faults let it through, and enough to push a recipient that stops
/// reading over its queue limit (its sender is throttled). Drawn from its
/// own stream, so the other seeds' plans are unchanged.
fn firehose(seed: u64, cfg: &SimConfig, plan: &mut Plan) {
    let mut f = stream(seed, Stream::Workload, 1);
    let n = cfg.members.max(1);
    if n < 2 || !f.gen_bool(FIREHOSE_P) {
        return;
    }
    let slot = f.gen_range(0..n);
    let other = (slot + f.gen_range(1..n)) % n;
    let to = match f.gen_range(0..4) {
        0 => Target::Id(other),
        1 => Target::Name(other),
        2 => Target::Group(GROUPS[f.gen_range(0..GROUPS.len())]),
        _ => Target::Instance(other % cfg.instances.max(1)),
    };
    let confirm = f.gen_bool(0.25);
    let mut at = 300;
    while at < cfg.duration_ms {
        plan.steps.push(Step {
            at,
            action: Action::Burst {
                slot,
                to: to.clone(),
                count: FIREHOSE_BURST,
                confirm,
            },
        });
        at += FIREHOSE_EVERY_MS;
    }
}

/// Share of the seeds with the slow-consumer fault on that also have a
/// bulk sender ([`bulk`]).
pub const BULK_P: f64 = 0.3;
/// Payload sizes of bulk messages, bytes (chunked).
pub const BULK_BYTES: std::ops::Range<usize> = 24_000..64_000;
/// Time between two bulk messages, ms.
pub const BULK_EVERY_MS: u64 = 20;

/// In a share of the seeds whose fault selection includes slow consumers
/// ([`BULK_P`]), one member stops reading for 1.5–3 s, one to three times,
/// while another sends it a large message every 20 ms: its queue passes the
/// byte soft limit long before the item limit (a few dozen messages fill
/// it), so throttling and slow-consumer eviction happen by bytes. Drawn
/// from its own stream, so the other seeds' plans are unchanged.
fn bulk(seed: u64, cfg: &SimConfig, plan: &mut Plan) {
    let mut b = stream(seed, Stream::Workload, 3);
    let n = cfg.members.max(1);
    if n < 2 || !plan.faults.contains(&FaultKind::Slow) || !b.gen_bool(BULK_P) {
        return;
    }
    let slot = b.gen_range(0..n);
    let reader = (slot + b.gen_range(1..n)) % n;
    let last = cfg.duration_ms.saturating_sub(4_000).max(1_001);
    for _ in 0..b.gen_range(1..=3) {
        let at = b.gen_range(1_000..last);
        let ms = b.gen_range(1_500..3_000);
        plan.steps.push(Step {
            at,
            action: Action::Slow { slot: reader, ms },
        });
        let mut t = at;
        while t < at + ms {
            plan.steps.push(Step {
                at: t,
                action: Action::Send {
                    slot,
                    to: Target::Name(reader),
                    confirm: b.gen_bool(0.5),
                    size: b.gen_range(BULK_BYTES),
                },
            });
            t += BULK_EVERY_MS;
        }
    }
}

/// Share of seeds with a hostile member.
pub const HOSTILE_P: f64 = 0.5;
/// Hostile writes per hostile member (a range).
pub const HOSTILE_ACTS: std::ops::Range<u32> = 4..12;

/// In a share of the seeds ([`HOSTILE_P`]), one member is **hostile**: a
/// few times during the safety phase it writes a crafted frame that its
/// client would never send ([`HostileKind`]). In the seeds with a firehose,
/// the firehose sender (the only member that gets more than `SEQ_WINDOW`
/// sequences acknowledged) also tries a `Send` far behind its window late
/// in the phase. Drawn from its own stream, so the other seeds' plans are
/// unchanged.
fn hostile(seed: u64, cfg: &SimConfig, plan: &mut Plan) {
    let mut h = stream(seed, Stream::Workload, 4);
    let n = cfg.members.max(1);
    let end = cfg.duration_ms;
    if end > 2_000 && h.gen_bool(HOSTILE_P) {
        let slot = h.gen_range(0..n);
        for _ in 0..h.gen_range(HOSTILE_ACTS) {
            let kind = HostileKind::ALL[h.gen_range(0..HostileKind::ALL.len())];
            plan.steps.push(Step {
                at: h.gen_range(1_000..end - 500),
                action: Action::Hostile { slot, kind },
            });
        }
    }
    let firehose = plan.steps.iter().find_map(|s| match s.action {
        Action::Burst { slot, .. } => Some(slot),
        _ => None,
    });
    if let Some(slot) = firehose {
        if end > 4_000 {
            for _ in 0..3 {
                plan.steps.push(Step {
                    at: h.gen_range(end / 2..end - 500),
                    action: Action::Hostile {
                        slot,
                        kind: HostileKind::SeqBehind,
                    },
                });
            }
        }
    }
}

fn random_target(w: &mut impl Rng, n: usize, instances: usize) -> Target {
    match w.gen_range(0..10) {
        0..=2 => Target::Id(w.gen_range(0..n)),
        3 => Target::Name(w.gen_range(0..n)),
        4 => Target::Instance(w.gen_range(0..instances.max(1))),
        5 | 6 => Target::Group(GROUPS[w.gen_range(0..GROUPS.len())]),
        7 => Target::Anycast(GROUPS[w.gen_range(0..GROUPS.len())]),
        _ => Target::Broadcast,
    }
}
