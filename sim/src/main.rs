//! `switchboard-sim`: run seeds, report, replay, shrink.
//!
//! ```text
//! cargo run --release -p switchboard-sim -- --seeds 0..10000 --jobs 2
//! cargo run --release -p switchboard-sim -- --seed 42 --trace
//! ```

use std::io::Write;
use std::process::ExitCode;

/// `println!` that ignores a closed stdout (e.g. piped into `head`).
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use switchboard_core::mutation::Mutation;
use switchboard_sim::config::{FaultKind, FaultSelection, SimConfig};
use switchboard_sim::{plan, run_plan, shrink, sweep};

/// Seeded simulation of a Switchboard cluster under faults.
#[derive(Debug, Parser)]
#[command(name = "switchboard-sim", version)]
struct Args {
    /// Range of seeds to run, `A..B`.
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Replay one seed (overrides --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Member processes.
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Instances.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Faults: `swarm` (the seed picks), `none`, `all`, or a comma list of
    /// reset,clog,partition,crash,server-crash,pause,slow.
    #[arg(long, default_value = "swarm")]
    faults: String,
    /// Safety phase length, ms (the heal phase follows).
    #[arg(long, default_value_t = 20_000)]
    duration: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// With --seed: print the plan and the whole timeline.
    #[arg(long)]
    trace: bool,
    /// Do not shrink failing seeds.
    #[arg(long)]
    no_shrink: bool,
    /// Switch on a deliberate bug: client-skip-dedup,
    /// server-stable-on-receipt, server-skip-replay.
    #[arg(long)]
    mutation: Option<String>,
}

/// Errors in the command line, with a clear message.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("--seeds must look like A..B with A < B, got {0:?}")]
    Seeds(String),
    #[error(
        "unknown fault {0:?}; known: reset, clog, partition, crash, server-crash, pause, slow"
    )]
    Fault(String),
    #[error("unknown mutation {0:?}")]
    Mutation(String),
    #[error("--members and --instances must be at least 1")]
    Shape,
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, ArgError> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| ArgError::Seeds(s.into()))?;
    let a: u64 = a.trim().parse().map_err(|_| ArgError::Seeds(s.into()))?;
    let b: u64 = b.trim().parse().map_err(|_| ArgError::Seeds(s.into()))?;
    if a >= b {
        return Err(ArgError::Seeds(s.into()));
    }
    Ok(a..b)
}

fn parse_faults(s: &str) -> Result<FaultSelection, ArgError> {
    Ok(match s {
        "swarm" => FaultSelection::Swarm,
        "none" => FaultSelection::None,
        "all" => FaultSelection::Only(FaultKind::ALL.to_vec()),
        list => FaultSelection::Only(
            list.split(',')
                .map(|f| FaultKind::parse(f.trim()).ok_or_else(|| ArgError::Fault(f.into())))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn parse_mutation(s: &str) -> Result<Mutation, ArgError> {
    Ok(match s {
        "none" => Mutation::None,
        "client-skip-dedup" => Mutation::ClientSkipDedup,
        "server-stable-on-receipt" => Mutation::ServerStableOnReceipt,
        "server-skip-replay" => Mutation::ServerSkipReplay,
        other => return Err(ArgError::Mutation(other.into())),
    })
}

fn replay_command(args: &Args, seed: u64) -> String {
    let mut cmd = format!(
        "cargo run --release -p switchboard-sim -- --seed {seed} --members {} --instances {} --faults {} --duration {}",
        args.members, args.instances, args.faults, args.duration
    );
    if let Some(m) = &args.mutation {
        cmd.push_str(&format!(" --mutation {m}"));
    }
    cmd.push_str(" --trace");
    cmd
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, ArgError> {
    if args.members == 0 || args.instances == 0 {
        return Err(ArgError::Shape);
    }
    let cfg = SimConfig {
        members: args.members,
        instances: args.instances,
        duration_ms: args.duration,
        faults: parse_faults(&args.faults)?,
        mutation: args
            .mutation
            .as_deref()
            .map(parse_mutation)
            .transpose()?
            .unwrap_or_default(),
        trace: args.trace,
    };
    if let Some(seed) = args.seed {
        return Ok(replay(args, &cfg, seed));
    }
    let seeds = parse_seeds(&args.seeds)?;
    let total = seeds.end - seeds.start;
    let bar = ProgressBar::new(total);
    if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = sweep::sweep(seeds, &cfg, args.jobs, &|n| bar.set_position(n));
    bar.finish_and_clear();

    out!(
        "seeds {}  violations {}  events {}  wall {:.2}s  simulated {:.0}s",
        summary.seeds,
        summary.violations,
        summary.events,
        summary.wall_s,
        summary.sim_s
    );
    out!(
        "{:.0} events/s  {:.0}x real time  {:.0} seeds/min  trace_hash {}",
        summary.events_per_s,
        summary.sim_to_wall,
        summary.seeds_per_min,
        summary.trace_hash
    );
    let faults: Vec<String> = summary
        .coverage
        .faults
        .pairs()
        .iter()
        .map(|(n, c)| format!("{n}={c}"))
        .collect();
    out!("faults: {}", faults.join(" "));
    let paths: Vec<String> = summary
        .coverage
        .paths()
        .iter()
        .map(|(n, c)| format!("{n}={c}"))
        .collect();
    out!("paths:  {}", paths.join(" "));
    for f in &summary.failures {
        out!("FAILED seed={}", f.seed);
        for (g, d) in f.violations.iter().take(5) {
            out!("  {g}: {d}");
        }
        out!("  replay: {}", replay_command(args, f.seed));
    }
    if let Some(first) = summary.failures.first() {
        if !args.no_shrink && !args.json {
            shrink_and_print(&cfg, first.seed, &first.violations[0].0);
        }
    }
    if args.json {
        match serde_json::to_string(&summary) {
            Ok(s) => out!("{s}"),
            Err(e) => eprintln!("switchboard-sim: cannot encode summary: {e}"),
        }
    }
    Ok(if summary.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn shrink_and_print(cfg: &SimConfig, seed: u64, guarantee: &str) {
    let plan = plan::generate(seed, cfg);
    let Some(g) = switchboard_sim::checkers::CHECKERS
        .iter()
        .map(|(n, _)| *n)
        .chain(std::iter::once("G9 liveness"))
        .find(|n| *n == guarantee)
    else {
        return;
    };
    let before = plan.steps.len();
    let s = shrink::shrink(seed, cfg, plan, g);
    out!(
        "shrunk seed={seed} from {before} to {} steps in {} runs, still violating {}:",
        s.plan.steps.len(),
        s.runs,
        s.guarantee
    );
    let _ = write!(std::io::stdout(), "{}", s.plan);
}

fn replay(args: &Args, cfg: &SimConfig, seed: u64) -> ExitCode {
    let plan = plan::generate(seed, cfg);
    if args.trace {
        out!("plan (faults {:?}):", plan.faults);
        let _ = write!(std::io::stdout(), "{plan}");
    }
    let r = run_plan(seed, cfg, plan, args.trace);
    if let Some(h) = &r.history {
        out!("timeline:");
        for e in h.iter() {
            out!("  t={:>6}ms  {:?}", e.at, e.act);
        }
    }
    out!(
        "seed={seed} events={} simulated={}ms trace_hash={:016x} violations={}",
        r.events,
        r.sim_ms,
        r.trace_hash,
        r.violations.len()
    );
    for v in &r.violations {
        out!("  {}: {}", v.guarantee, v.detail);
    }
    if r.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        out!("replay: {}", replay_command(args, seed));
        ExitCode::FAILURE
    }
}
