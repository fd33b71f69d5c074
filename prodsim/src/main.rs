//! `switchboard-prodsim`: runs seeds of the production-path simulation.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use switchboard_prodsim::plan::{parse_bug, FaultKind, ProdConfig};
use switchboard_prodsim::run_seed;
use switchboard_prodsim::sweep::{replay_command, sweep};

/// Seeded simulation of the real server runtime and client library.
#[derive(Debug, Parser)]
#[command(name = "switchboard-prodsim")]
struct Args {
    /// Seed range `A..B` (B excluded).
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// One seed (overrides --seeds).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the seed's API-level history.
    #[arg(long)]
    trace: bool,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
    /// Fault kinds: `+kind` adds one to the default mix, `-kind` removes
    /// one (partition, hold, delay, reset, member-crash, server-crash,
    /// slow-reader, stop-reading, stop-reading-sub, flood); comma separated.
    #[arg(long, default_value = "")]
    faults: String,
    /// Arm a deliberate adapter bug: reorder-writes, drop-event,
    /// reorder-when-full, stall-on-lagging-sub, ignore-budget.
    #[arg(long)]
    bug: Option<String>,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--seeds {s:?}: expected A..B"))?;
    let a: u64 = a.parse().map_err(|_| format!("--seeds {s:?}: bad start"))?;
    let b: u64 = b.parse().map_err(|_| format!("--seeds {s:?}: bad end"))?;
    if b <= a {
        return Err(format!("--seeds {s:?}: empty range"));
    }
    Ok((a, b))
}

fn config(args: &Args) -> Result<ProdConfig, String> {
    let mut cfg = ProdConfig::default();
    for item in args.faults.split(',').filter(|s| !s.is_empty()) {
        let (add, name) = match item.split_at(1) {
            ("+", n) => (true, n),
            ("-", n) => (false, n),
            _ => return Err(format!("--faults {item:?}: start with + or -")),
        };
        let k = FaultKind::parse(name).ok_or_else(|| format!("--faults: unknown kind {name:?}"))?;
        cfg.kinds.retain(|x| *x != k);
        if add {
            cfg.kinds.push(k);
        }
    }
    if let Some(b) = &args.bug {
        cfg.bug = Some(parse_bug(b).ok_or_else(|| format!("--bug: unknown bug {b:?}"))?);
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (from, to) = match args.seed {
        Some(s) => (s, s.saturating_add(1)),
        None => match parse_range(&args.seeds) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let started = Instant::now();
    let results = if args.trace {
        let r = run_seed(from, &cfg, true);
        for e in r.log.iter().flatten() {
            println!("{:>7} {:?}", e.at, e.act);
        }
        vec![r]
    } else {
        sweep(from, to, args.jobs, &cfg)
    };
    let wall_s = started.elapsed().as_secs_f64();
    let failing: Vec<_> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    for r in &failing {
        eprintln!("seed {}: {} violations", r.seed, r.violations.len());
        for v in r.violations.iter().take(5) {
            eprintln!("  {}: {}", v.guarantee, v.detail);
        }
        eprintln!("  replay: {}", replay_command(r.seed, &cfg));
    }
    if args.json {
        let hash = results
            .iter()
            .fold(0u64, |h, r| h.rotate_left(5) ^ r.trace_hash);
        let mut faults = std::collections::BTreeMap::<&str, u64>::new();
        let mut reached = std::collections::BTreeMap::<&str, u64>::new();
        for r in &results {
            for (k, n) in &r.faults {
                *faults.entry(k).or_default() += u64::from(*n);
            }
            for (k, n) in &r.reached {
                *reached.entry(k).or_default() += n;
            }
        }
        // Seeds with at least one violation of each guarantee.
        let mut by_guarantee = std::collections::BTreeMap::<&str, u64>::new();
        for r in &results {
            let mut names: Vec<&str> = r.violations.iter().map(|v| v.guarantee).collect();
            names.dedup();
            names.sort_unstable();
            names.dedup();
            for n in names {
                *by_guarantee.entry(n).or_default() += 1;
            }
        }
        let v = serde_json::json!({
            "failing_seeds_by_guarantee": by_guarantee,
            "faults": faults,
            "reached": reached,
            "seeds": results.len(),
            "violations": results.iter().map(|r| r.violations.len()).sum::<usize>(),
            "failing_seeds": failing.iter().map(|r| r.seed).collect::<Vec<_>>(),
            "wall_s": wall_s,
            "seeds_per_min": results.len() as f64 * 60.0 / wall_s.max(1e-9),
            "trace_hash": format!("{hash:016x}"),
        });
        println!("{v}");
    } else {
        println!(
            "{} seeds, {} failing, {:.1} s ({:.0} seeds/min)",
            results.len(),
            failing.len(),
            wall_s,
            results.len() as f64 * 60.0 / wall_s.max(1e-9)
        );
    }
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
