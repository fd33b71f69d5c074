//! Shrinking a failing run: with a deliberate bug switched on, the first
//! failing seed's plan shrinks to a much shorter plan that still fails the
//! same guarantee.
#![allow(clippy::unwrap_used)]

use switchboard_core::mutation::Mutation;
use switchboard_sim::config::SimConfig;
use switchboard_sim::{plan, run_plan, run_seed, shrink};

#[test]
fn a_failing_plan_shrinks_and_still_fails() {
    let cfg = SimConfig {
        mutation: Mutation::ClientSkipDedup,
        duration_ms: 10_000,
        ..SimConfig::default()
    };
    let (seed, guarantee) = (0..200)
        .find_map(|seed| {
            let r = run_seed(seed, &cfg);
            r.violations.first().map(|v| (seed, v.guarantee))
        })
        .expect("the deliberate bug is caught within 200 seeds");
    let full = plan::generate(seed, &cfg);
    let shrunk = shrink::shrink(seed, &cfg, full.clone(), guarantee);
    assert!(
        shrunk.plan.steps.len() * 20 < full.steps.len(),
        "shrunk from {} to {} steps",
        full.steps.len(),
        shrunk.plan.steps.len()
    );
    let again = run_plan(seed, &cfg, shrunk.plan.clone(), false);
    assert!(
        again.violations.iter().any(|v| v.guarantee == guarantee),
        "the shrunk plan still violates {guarantee}"
    );
    println!(
        "seed={seed} {guarantee}: {} -> {} steps in {} runs\n{}",
        full.steps.len(),
        shrunk.plan.steps.len(),
        shrunk.runs,
        shrunk.plan
    );
}
