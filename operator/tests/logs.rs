//! Log colours: ANSI escapes only on a terminal, never with `NO_COLOR`, never into a pipe or a
//! file (where a container runtime or a log collector reads them). The operator without a
//! Kubernetes configuration logs one error line and stops: that line is checked three ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_netheal-operator");

fn missing_config(cmd: &mut Command) -> &mut Command {
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NO_COLOR")
}

/// Run the operator under a pseudo-terminal (`script`, util-linux), return what it printed.
fn on_a_terminal(no_color: Option<&str>) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", BIN, "/dev/null"]);
    missing_config(&mut cmd);
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().expect("script runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let piped = missing_config(&mut Command::new(BIN)).output().unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(err.contains("netheal-operator stopped"), "{err}");
    assert!(!err.contains('\u{1b}'), "no escapes into a pipe: {err:?}");

    let tty = on_a_terminal(None);
    assert!(tty.contains("netheal-operator stopped"), "{tty}");
    assert!(tty.contains("\u{1b}["), "colours on a terminal: {tty:?}");

    let tty = on_a_terminal(Some("1"));
    assert!(tty.contains("netheal-operator stopped"), "{tty}");
    assert!(
        !tty.contains('\u{1b}'),
        "NO_COLOR=1 turns them off: {tty:?}"
    );
    // An empty NO_COLOR does not (no-color.org).
    assert!(on_a_terminal(Some("")).contains("\u{1b}["));
}
