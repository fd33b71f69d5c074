//! `switchboard bench --quick` against Switchboard and the bare relay (the
//! built binary, as a user runs it): every workload completes, nothing
//! acknowledged is lost, and the JSON line carries the figures. No timing
//! is asserted: the machine decides the figures.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_bench_runs_every_workload_and_loses_nothing() {
    let out = Command::new(switchboard_tests::switchboard_bin())
        .args([
            "bench",
            "--quick",
            "--no-peers",
            "--json",
            "--send-ms",
            "200",
        ])
        .env("SWITCHBOARD_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let v: Value = serde_json::from_str(last).unwrap();
    let w = &v["workloads"];
    for name in ["w1", "w2", "w4"] {
        let sb = &w[name]["switchboard"];
        assert!(sb["msgs_per_s"].as_f64().unwrap() > 0.0, "{name}: {sb}");
        assert_eq!(sb["lost"], 0, "{name}: {sb}");
        // Every message sent was acknowledged by the server.
        assert!(sb["acked"].as_u64().unwrap() > 0, "{name}: {sb}");
    }
    // Acked counts messages, expected counts deliveries (W1: the same).
    assert_eq!(
        w["w1"]["switchboard"]["acked"],
        w["w1"]["switchboard"]["expected"]
    );
    let w3 = &w["w3"]["switchboard"];
    assert!(w3["p50_us"].as_u64().unwrap() > 0);
    assert!(w3["p99_us"].as_u64().unwrap() >= w3["p50_us"].as_u64().unwrap());
    let w5 = &w["w5"]["switchboard"];
    assert_eq!(w5["lost"], 0, "{w5}");
    assert!(w5["server_bytes_per_member"].as_f64().is_some());
    assert_eq!(v["acknowledged"]["switchboard"], true);
}
