//! The `switchboard` binary's command line: help, version and refusals of
//! bad arguments, without a server. (End-to-end tests over TCP live in the
//! workspace's `tests/` crate.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_LOG")
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = switchboard(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve", "demo", "members", "top", "watch", "send", "request", "bench",
    ] {
        assert!(text.contains(cmd), "--help does not list `{cmd}`:\n{text}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = switchboard(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn an_unknown_command_is_refused_with_a_message() {
    let out = switchboard(&["frobnicate"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("frobnicate"), "{text}");
}

#[test]
fn a_bad_address_flag_is_a_clear_error_not_a_panic() {
    let out = switchboard(&["serve", "--internal", "not-an-address:xyz"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("error"), "{text}");
}
