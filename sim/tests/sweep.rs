//! CI sweeps: many seeds per fault profile, every guarantee checked. On the
//! first violating seed a sweep fails with the seed and the exact command
//! that replays it.
#![allow(clippy::unwrap_used)]

use switchboard_core::mutation::Mutation;
use switchboard_sim::config::{FaultKind, FaultSelection, SimConfig};
use switchboard_sim::sweep::{sweep, Summary};

/// Worker threads (the CI machine has two cores).
const JOBS: usize = 2;

/// `--faults` value for a selection.
fn faults_arg(f: &FaultSelection) -> String {
    match f {
        FaultSelection::None => "none".into(),
        FaultSelection::Swarm => "swarm".into(),
        FaultSelection::Only(k) => k.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
    }
}

/// `--mutation` value.
fn mutation_arg(m: Mutation) -> Option<&'static str> {
    match m {
        Mutation::None => None,
        Mutation::ClientSkipDedup => Some("client-skip-dedup"),
        Mutation::ServerStableOnReceipt => Some("server-stable-on-receipt"),
        Mutation::ServerSkipReplay => Some("server-skip-replay"),
    }
}

/// The command that replays `seed` with the options of `cfg`.
fn replay_command(seed: u64, cfg: &SimConfig) -> String {
    let mut cmd = format!(
        "cargo run --release -p switchboard-sim -- --seed {seed} --members {} --instances {} --faults {} --duration {}",
        cfg.members,
        cfg.instances,
        faults_arg(&cfg.faults),
        cfg.duration_ms
    );
    if let Some(m) = mutation_arg(cfg.mutation) {
        cmd.push_str(&format!(" --mutation {m}"));
    }
    cmd.push_str(" --trace");
    cmd
}

/// Sweeps `seeds` and fails on the first violating seed.
#[track_caller]
fn run_profile(name: &str, seeds: std::ops::Range<u64>, cfg: &SimConfig) -> Summary {
    let s = sweep(seeds.clone(), cfg, JOBS, &|_| {});
    eprintln!(
        "profile {name}: seeds {seeds:?}  violations {}  events {}  wall {:.2}s  trace_hash {}",
        s.violations, s.events, s.wall_s, s.trace_hash
    );
    eprintln!("  faults: {:?}", s.coverage.faults.pairs());
    eprintln!("  paths:  {:?}", s.coverage.paths());
    if let Some(f) = s.failures.first() {
        let detail: Vec<String> = f
            .violations
            .iter()
            .take(5)
            .map(|(g, d)| format!("  {g}: {d}"))
            .collect();
        panic!(
            "profile {name}: {} of {} seeds violate guarantees; first failing seed={}\n{}\nreplay: {}",
            s.violations,
            s.seeds,
            f.seed,
            detail.join("\n"),
            replay_command(f.seed, cfg)
        );
    }
    assert_eq!(s.seeds, seeds.end - seeds.start);
    s
}

/// Swarm testing (the seed picks faults and rates): no violation, and
/// every fault kind and every protocol path happened at least once.
#[test]
fn swarm_sweep() {
    let s = run_profile("swarm", 0..400, &SimConfig::default());
    for (name, n) in s.coverage.faults.pairs() {
        assert!(n > 0, "fault {name} never injected in the swarm sweep");
    }
    for (name, n) in s.coverage.paths() {
        assert!(
            n > 0,
            "protocol path {name} never reached in the swarm sweep"
        );
    }
    let low = s.coverage.below_floors(s.seeds);
    assert!(
        low.is_empty(),
        "coverage collapsed in the swarm sweep (a path every ordinary sweep reaches): {low:#?}"
    );
}

/// No faults at all: nothing may go wrong, and nothing was injected.
#[test]
fn no_fault_sweep() {
    let cfg = SimConfig {
        faults: FaultSelection::None,
        ..SimConfig::default()
    };
    let s = run_profile("faults-none", 0..50, &cfg);
    assert!(s.coverage.faults.pairs().iter().all(|&(_, n)| n == 0));
    assert!(s.coverage.deliveries > 0 && s.coverage.replies > 0);
}

/// Only faults of `kinds`, at rates the seed picks; asserts they fired and
/// nothing else did.
#[track_caller]
fn only(name: &str, kinds: &[FaultKind], seeds: std::ops::Range<u64>) -> Summary {
    let cfg = SimConfig {
        faults: FaultSelection::Only(kinds.to_vec()),
        ..SimConfig::default()
    };
    let s = run_profile(name, seeds, &cfg);
    let want: Vec<&str> = kinds
        .iter()
        .map(|k| k.name())
        .map(|n| {
            if n == "server-crash" {
                "server_crash"
            } else {
                n
            }
        })
        .collect();
    for (kind, n) in s.coverage.faults.pairs() {
        assert_eq!(n > 0, want.contains(&kind), "{kind}: {n}");
    }
    s
}

/// Server crashes only: sessions lost, members re-register, senders resend.
#[test]
fn server_crash_sweep() {
    let s = only("server-crash", &[FaultKind::ServerCrash], 0..60);
    assert!(s.coverage.reregistrations > 0);
}

/// Partitions and pauses: failure detection, resumes, gap notices.
#[test]
fn partition_and_pause_sweep() {
    let s = only(
        "partition,pause",
        &[FaultKind::Partition, FaultKind::Pause],
        0..60,
    );
    assert!(s.coverage.resumes > 0 && s.coverage.heartbeat_failures > 0);
}

/// Member crashes and slow consumers: superseded incarnations, evictions.
#[test]
fn crash_and_slow_sweep() {
    let s = only("crash,slow", &[FaultKind::Crash, FaultKind::Slow], 0..60);
    assert!(s.coverage.superseded > 0 && s.coverage.evictions > 0);
}

/// The replay command carries every option a sweep used.
#[test]
fn replay_command_names_every_option() {
    let cfg = SimConfig {
        members: 5,
        instances: 2,
        duration_ms: 7_000,
        faults: FaultSelection::Only(vec![FaultKind::ServerCrash, FaultKind::Pause]),
        mutation: Mutation::ServerSkipReplay,
        trace: false,
    };
    assert_eq!(
        replay_command(42, &cfg),
        "cargo run --release -p switchboard-sim -- --seed 42 --members 5 --instances 2 \
         --faults server-crash,pause --duration 7000 --mutation server-skip-replay --trace"
    );
    assert!(replay_command(7, &SimConfig::default()).contains("--faults swarm --duration 20000"));
}
