//! What a seed runs: the cluster shape, the workload's mix and the faults,
//! all drawn up front from the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use switchboard_runtime::fault::Fault;

/// Settings of a run (the same for every seed of a sweep).
#[derive(Debug, Clone)]
pub struct ProdConfig {
    /// Member processes (hosts `m0..`).
    pub members: usize,
    /// Simulated time with workload and faults, ms.
    pub active_ms: u64,
    /// Simulated time after the faults heal, before the final check, ms.
    pub heal_ms: u64,
    /// Fault kinds the plan may draw.
    pub kinds: Vec<FaultKind>,
    /// A deliberate adapter bug armed for the run (never in the sweep).
    pub bug: Option<Fault>,
    /// Simulated time per turmoil step, ms (the clock's resolution).
    pub tick_ms: u64,
}

impl Default for ProdConfig {
    fn default() -> Self {
        ProdConfig {
            members: 4,
            active_ms: 15_000,
            heal_ms: 15_000,
            kinds: FaultKind::DEFAULT.to_vec(),
            bug: None,
            tick_ms: 5,
        }
    }
}

/// A kind of fault the world injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The member and the server cannot exchange segments.
    Partition,
    /// Segments between the member and the server are held, then released
    /// (a long delay).
    Hold,
    /// Slower links between the member and the server.
    Delay,
    /// The member drops its connection (a reset); it resumes.
    Reset,
    /// The member's host crashes; it restarts as a new incarnation.
    MemberCrash,
    /// The server's host crashes; it restarts with no state.
    ServerCrash,
    /// The member's application stops reading its event stream or a
    /// subscription for a while, then reads again.
    SlowReader,
    /// The member's application stops reading a subscription (or its
    /// event stream) for good: a member must not stall silently. Not in
    /// the default mix: a member whose application stops reading its
    /// messages stops reading its connection by design (messages are never
    /// dropped) until the server evicts it.
    StopReading,
    /// The member's application stops reading its subscription for good
    /// (its event stream is still read): the subscription lags, and the
    /// member goes on acking, sending and being heard.
    StopReadingSub,
    /// The member's application stops reading its event stream while the
    /// next member (slot + 1) sends it large messages (96 KiB) as fast as
    /// its acks come back: the member's queue at the server grows until the
    /// server's memory budget (or its queue limit) cuts it off.
    Flood,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Partition,
        FaultKind::Hold,
        FaultKind::Delay,
        FaultKind::Reset,
        FaultKind::MemberCrash,
        FaultKind::ServerCrash,
        FaultKind::SlowReader,
        FaultKind::StopReading,
        FaultKind::StopReadingSub,
        FaultKind::Flood,
    ];
    /// The default mix.
    pub const DEFAULT: [FaultKind; 9] = [
        FaultKind::Partition,
        FaultKind::Hold,
        FaultKind::Delay,
        FaultKind::Reset,
        FaultKind::MemberCrash,
        FaultKind::ServerCrash,
        FaultKind::SlowReader,
        FaultKind::StopReadingSub,
        FaultKind::Flood,
    ];

    /// Its name (CLI, JSON, history).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Hold => "hold",
            FaultKind::Delay => "delay",
            FaultKind::Reset => "reset",
            FaultKind::MemberCrash => "member-crash",
            FaultKind::ServerCrash => "server-crash",
            FaultKind::SlowReader => "slow-reader",
            FaultKind::StopReading => "stop-reading",
            FaultKind::StopReadingSub => "stop-reading-sub",
            FaultKind::Flood => "flood",
        }
    }

    /// The kind of a name.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Which of a member's streams a reading fault stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The main event stream.
    Main,
    /// Its subscription.
    Sub,
}

/// One fault: a kind, on a member (or the server), over an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// Which.
    pub kind: FaultKind,
    /// Member slot (`None`: the server).
    pub slot: Option<usize>,
    /// Start, ms of simulated time.
    pub from: u64,
    /// End (heal), ms.
    pub until: u64,
    /// The stream, for reading faults.
    pub stream: StreamKind,
}

/// Everything a seed runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// The faults, by start time.
    pub faults: Vec<FaultPlan>,
    /// Link latency bounds, ms.
    pub latency_ms: (u64, u64),
}

/// Draws a seed's plan. Swarm style: each kind is enabled for this seed
/// with probability one half, so that seeds also explore calm mixes.
pub fn generate(seed: u64, cfg: &ProdConfig) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_fa17);
    let enabled: Vec<FaultKind> = cfg
        .kinds
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.5))
        .collect();
    let mut faults = Vec::new();
    if !enabled.is_empty() {
        let n = rng.gen_range(1..=5);
        for _ in 0..n {
            let kind = enabled[rng.gen_range(0..enabled.len())];
            let from = rng.gen_range(2_000..cfg.active_ms.saturating_sub(1_000).max(2_001));
            let len = match kind {
                FaultKind::Partition | FaultKind::Hold => rng.gen_range(500..12_000),
                FaultKind::Delay => rng.gen_range(1_000..8_000),
                FaultKind::Reset => 1,
                FaultKind::MemberCrash | FaultKind::ServerCrash => rng.gen_range(200..8_000),
                FaultKind::SlowReader => rng.gen_range(500..6_000),
                FaultKind::Flood => rng.gen_range(2_000..6_000),
                FaultKind::StopReading | FaultKind::StopReadingSub => cfg.active_ms + cfg.heal_ms,
            };
            let slot = if kind == FaultKind::ServerCrash {
                None
            } else {
                Some(rng.gen_range(0..cfg.members))
            };
            let stream = if kind == FaultKind::Flood {
                StreamKind::Main
            } else if kind == FaultKind::StopReadingSub || rng.gen_bool(0.5) {
                StreamKind::Sub
            } else {
                StreamKind::Main
            };
            let until = match kind {
                FaultKind::StopReading | FaultKind::StopReadingSub => from + len,
                _ => (from + len).min(cfg.active_ms),
            };
            faults.push(FaultPlan {
                kind,
                slot,
                from,
                until,
                stream,
            });
        }
    }
    faults.sort_by_key(|f| f.from);
    let lo = rng.gen_range(0..3);
    Plan {
        seed,
        faults,
        latency_ms: (lo, lo + rng.gen_range(1..20)),
    }
}

/// The CLI name of a deliberate adapter bug.
pub fn bug_name(f: Fault) -> &'static str {
    match f {
        Fault::ReorderWrites => "reorder-writes",
        Fault::DropEventWhenFull => "drop-event",
        Fault::ReorderWhenFull => "reorder-when-full",
        Fault::StallOnLaggingSubscription => "stall-on-lagging-sub",
        Fault::IgnoreMemoryBudget => "ignore-budget",
    }
}

/// The bug of a CLI name.
pub fn parse_bug(s: &str) -> Option<Fault> {
    [
        Fault::ReorderWrites,
        Fault::DropEventWhenFull,
        Fault::ReorderWhenFull,
        Fault::StallOnLaggingSubscription,
        Fault::IgnoreMemoryBudget,
    ]
    .into_iter()
    .find(|f| bug_name(*f) == s)
}
