//! One seed: the turmoil world (a server host, member hosts), the plan's
//! faults applied on schedule, then the history converted and checked.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use switchboard_core::auth::Secret;
use switchboard_core::server::ServerConfig;
use switchboard_runtime::fault;
use switchboard_server::config::ServerOptions;
use switchboard_sim::history::{Bounds, Proc, Violation};

use crate::member;
use crate::net::SimListener;
use crate::plan::{generate, FaultKind, Plan, ProdConfig, StreamKind};
use crate::record::{trace_hash, ApiAct, ApiEntry, Recorder};

/// The server host's name and member port.
pub const SERVER_ADDR: &str = "server:3900";
/// Cluster name.
pub const CLUSTER: &str = "prodsim";
/// Events queued per member stream and subscription at most (small, so
/// that slow readers matter and a subscription that is no longer read
/// fills within a run).
pub const EVENTS_MAX: usize = 12;

/// The server's memory budget: the smallest the server accepts (16 MiB),
/// so that a flood of large messages to a member that stops reading
/// reaches it within a run.
pub const MEMORY_MAX_BYTES: usize = switchboard_server::config::MEMORY_MAX_BYTES_MIN;
/// How often the server's memory is sampled, ms of simulated time.
pub const MEMORY_SAMPLE_MS: u64 = 50;

/// The cluster secret.
pub fn secret() -> Secret {
    // 32 fixed bytes are a valid secret; the error path cannot happen.
    Secret::new(vec![7u8; 32]).unwrap_or_else(|_| unreachable!("32 bytes is a valid secret"))
}

/// The server's state machine settings in the simulation (small queues,
/// so that slow consumers are evicted within a run).
pub fn server_config() -> ServerConfig {
    let mut c = ServerConfig::new(CLUSTER, secret());
    c.member_queue_items_max = 256;
    c.send_window_items = 64;
    c.restart_grace_ms = 3_000;
    c
}

/// The checkers' bounds for these settings.
pub fn bounds() -> Bounds {
    let c = server_config();
    Bounds {
        heartbeat_timeout_ms: u64::from(c.heartbeat_timeout_ms),
        resume_window_ms: u64::from(c.resume_window_ms),
        member_queue_items_max: c.member_queue_items_max,
        restart_grace_ms: c.restart_grace_ms,
        outbox_items_max: 4_096,
        slow_consumer_grace_ms: c.slow_consumer_grace_ms,
        chunk_bytes_max: c.limits.chunk_bytes_max(),
        message_bytes_max: c.message_bytes_max,
        member_queue_bytes_max: c.member_queue_bytes_max,
    }
}

/// Simulated time now, ms.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

/// State shared by the hosts and the world.
#[derive(Debug)]
pub struct Shared {
    /// The log.
    pub rec: Recorder,
    /// The seed.
    pub seed: u64,
    /// Settings.
    pub cfg: ProdConfig,
    /// The server run up now (0 before the first start).
    pub server_run: Arc<AtomicU64>,
    /// Call numbers.
    pub calls: AtomicU64,
    restarts: Mutex<Vec<u32>>,
    procs: Mutex<Vec<Option<Proc>>>,
    resets: Vec<AtomicBool>,
    reading: Mutex<Vec<Option<(StreamKind, u64)>>>,
    floods: Mutex<Vec<Option<(usize, u64)>>>,
}

impl Shared {
    fn new(seed: u64, cfg: ProdConfig) -> Shared {
        let n = cfg.members;
        Shared {
            rec: Recorder::default(),
            seed,
            cfg,
            server_run: Arc::new(AtomicU64::new(0)),
            calls: AtomicU64::new(0),
            restarts: Mutex::new(vec![0; n]),
            procs: Mutex::new(vec![None; n]),
            resets: (0..n).map(|_| AtomicBool::new(false)).collect(),
            reading: Mutex::new(vec![None; n]),
            floods: Mutex::new(vec![None; n]),
        }
    }

    /// The next start number of a slot.
    pub fn next_restart(&self, slot: usize) -> u32 {
        let mut r = self.restarts.lock().unwrap_or_else(PoisonError::into_inner);
        r[slot] += 1;
        r[slot]
    }

    /// Notes the process running in a slot.
    pub fn set_proc(&self, slot: usize, p: Proc) {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)[slot] = Some(p);
    }

    fn proc(&self, slot: usize) -> Option<Proc> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)[slot]
    }

    /// True once after the world asked the slot's member to reset its
    /// connection.
    pub fn take_reset(&self, slot: usize) -> bool {
        self.resets[slot].swap(false, Ordering::SeqCst)
    }

    /// The reading fault on a slot: which stream, until when.
    pub fn reading(&self, slot: usize) -> Option<(StreamKind, u64)> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)[slot]
    }

    fn set_reading(&self, slot: usize, r: Option<(StreamKind, u64)>) {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)[slot] = r;
    }

    /// The member a slot floods now, with the flood's end.
    pub fn flood(&self, slot: usize) -> Option<(usize, u64)> {
        self.floods.lock().unwrap_or_else(PoisonError::into_inner)[slot]
    }

    fn set_flood(&self, slot: usize, f: Option<(usize, u64)>) {
        self.floods.lock().unwrap_or_else(PoisonError::into_inner)[slot] = f;
    }
}

/// What one seed produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// Violations found (core checkers, then adapter promises).
    pub violations: Vec<Violation>,
    /// Hash of the API-level log.
    pub trace_hash: u64,
    /// The plan's faults, by kind name, with how often each was applied.
    pub faults: Vec<(&'static str, u32)>,
    /// Counters of what the run reached (re-registrations, resumes, ...).
    pub reached: Vec<(&'static str, u64)>,
    /// The API-level log (only when asked for).
    pub log: Option<Vec<ApiEntry>>,
    /// Wall time, s.
    pub wall_s: f64,
}

enum Step {
    Start(usize),
    End(usize),
}

fn host_name(slot: usize) -> String {
    format!("m{slot}")
}

/// Runs one seed.
pub fn run_seed(seed: u64, cfg: &ProdConfig, keep_log: bool) -> RunResult {
    let started = Instant::now();
    let plan = generate(seed, cfg);
    let (log, error) = simulate(seed, cfg, &plan);
    let hash = trace_hash(&log);
    let mut violations = crate::convert::check(&log, &bounds());
    if let Some(detail) = error {
        violations.push(Violation {
            guarantee: "simulation",
            detail,
        });
    }
    violations.extend(crate::promises::check(&log, cfg));
    let mut faults: Vec<(&'static str, u32)> = Vec::new();
    for f in &plan.faults {
        match faults.iter_mut().find(|(k, _)| *k == f.kind.name()) {
            Some((_, n)) => *n += 1,
            None => faults.push((f.kind.name(), 1)),
        }
    }
    RunResult {
        seed,
        violations,
        trace_hash: hash,
        faults,
        reached: crate::convert::reached(&log),
        log: keep_log.then_some(log),
        wall_s: started.elapsed().as_secs_f64(),
    }
}

fn simulate(seed: u64, cfg: &ProdConfig, plan: &Plan) -> (Vec<ApiEntry>, Option<String>) {
    fault::arm(cfg.bug);
    let sh = Arc::new(Shared::new(seed, cfg.clone()));
    let end = cfg.active_ms + cfg.heal_ms + 1_000;
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_millis(end + 10_000))
        .tick_duration(Duration::from_millis(cfg.tick_ms))
        .min_message_latency(Duration::from_millis(plan.latency_ms.0))
        .max_message_latency(Duration::from_millis(plan.latency_ms.1))
        .rng_seed(seed)
        .build();
    let s = sh.clone();
    sim.host("server", move || server_host(s.clone()));
    for slot in 0..cfg.members {
        let s = sh.clone();
        sim.host(host_name(slot), move || member::host(s.clone(), slot));
    }
    let mut steps: Vec<(u64, Step)> = Vec::new();
    for (i, f) in plan.faults.iter().enumerate() {
        steps.push((f.from, Step::Start(i)));
        steps.push((f.until, Step::End(i)));
        sh.rec.push_at(
            f.from,
            ApiAct::Fault {
                slot: f.slot,
                from: f.from,
                until: f.until,
                kind: f.kind.name(),
            },
        );
    }
    steps.sort_by_key(|(t, s)| (*t, matches!(s, Step::Start(_))));
    let mut next = 0;
    let mut server_down = 0u32;
    let mut member_down = vec![0u32; cfg.members];
    let mut error = None;
    loop {
        let now = sim.elapsed().as_millis() as u64;
        while next < steps.len() && steps[next].0 <= now {
            let (start, i) = match steps[next].1 {
                Step::Start(i) => (true, i),
                Step::End(i) => (false, i),
            };
            next += 1;
            let f = &plan.faults[i];
            let m = f.slot.map(host_name);
            match (f.kind, start, m) {
                (FaultKind::Partition, true, Some(m)) => sim.partition("server", m),
                (FaultKind::Partition, false, Some(m)) => sim.repair("server", m),
                (FaultKind::Hold, true, Some(m)) => sim.hold("server", m),
                (FaultKind::Hold, false, Some(m)) => sim.release("server", m),
                (FaultKind::Delay, true, Some(m)) => {
                    sim.set_link_latency("server", m, Duration::from_millis(400));
                }
                (FaultKind::Delay, false, Some(m)) => {
                    sim.set_link_latency("server", m, Duration::from_millis(plan.latency_ms.0))
                }
                (FaultKind::Reset, true, _) => {
                    if let Some(slot) = f.slot {
                        sh.resets[slot].store(true, Ordering::SeqCst);
                    }
                }
                (FaultKind::MemberCrash, true, Some(m)) => {
                    let slot = f.slot.unwrap_or(0);
                    member_down[slot] += 1;
                    if member_down[slot] == 1 {
                        if let Some(proc) = sh.proc(slot) {
                            sh.rec.push_at(now, ApiAct::Crashed { proc });
                        }
                        sim.crash(m);
                    }
                }
                (FaultKind::MemberCrash, false, Some(m)) => {
                    let slot = f.slot.unwrap_or(0);
                    member_down[slot] -= 1;
                    if member_down[slot] == 0 {
                        sim.bounce(m);
                    }
                }
                (FaultKind::ServerCrash, true, _) => {
                    server_down += 1;
                    if server_down == 1 {
                        let run = sh.server_run.load(Ordering::SeqCst);
                        sh.rec.push_at(now, ApiAct::ServerCrashed { run });
                        sim.crash("server");
                    }
                }
                (FaultKind::ServerCrash, false, _) => {
                    server_down -= 1;
                    if server_down == 0 {
                        sim.bounce("server");
                    }
                }
                (
                    FaultKind::SlowReader | FaultKind::StopReading | FaultKind::StopReadingSub,
                    true,
                    _,
                ) => {
                    if let Some(slot) = f.slot {
                        sh.set_reading(slot, Some((f.stream, f.until)));
                    }
                }
                (
                    FaultKind::SlowReader | FaultKind::StopReading | FaultKind::StopReadingSub,
                    false,
                    _,
                ) => {
                    if let Some(slot) = f.slot {
                        sh.set_reading(slot, None);
                    }
                }
                (FaultKind::Flood, start, _) => {
                    if let Some(slot) = f.slot {
                        let flooder = (slot + 1) % cfg.members;
                        if start {
                            sh.set_reading(slot, Some((StreamKind::Main, f.until)));
                            sh.set_flood(flooder, Some((slot, f.until)));
                        } else {
                            sh.set_reading(slot, None);
                            sh.set_flood(flooder, None);
                        }
                    }
                }
                _ => {}
            }
        }
        if now >= end {
            break;
        }
        if let Err(e) = sim.step() {
            error = Some(format!("a host failed at {now} ms: {e}"));
            break;
        }
    }
    drop(sim);
    fault::arm(None);
    let mut log = sh.rec.take();
    log.sort_by_key(|e| e.at);
    (log, error)
}

async fn server_host(sh: Arc<Shared>) -> turmoil::Result {
    let run = sh.server_run.fetch_add(1, Ordering::SeqCst) + 1;
    sh.rec.push(ApiAct::ServerStarted { run });
    let listener = SimListener(turmoil::net::TcpListener::bind("0.0.0.0:3900").await?);
    let mut opts = ServerOptions::new(server_config());
    opts.internal = ([0, 0, 0, 0], 3900).into();
    opts.connections_max = 64;
    opts.memory_max_bytes = MEMORY_MAX_BYTES;
    let rng = Box::new(ChaCha8Rng::seed_from_u64(member::mix(sh.seed, run)));
    let server = switchboard_server::run_with(opts, listener, rng)?;
    // Samples what the server holds against its budget.
    loop {
        tokio::time::sleep(Duration::from_millis(MEMORY_SAMPLE_MS)).await;
        if let Some(m) = server.memory().await {
            sh.rec.push(ApiAct::ServerMemory {
                run,
                held: m.held_bytes,
                state: m.state_bytes,
                input: m.input_bytes,
                write_queue: m.write_queue_bytes,
                budget: m.budget_bytes,
                evictions: m.budget_evictions,
            });
        }
    }
}
