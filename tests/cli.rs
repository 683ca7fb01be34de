//! The command line as a person meets it: every command's `--help` prints its usage and exits 0.

use std::process::Command;

fn handler(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_handler")).args(args).env_clear().output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_prints_its_usage_for_help() {
    for (args, usage) in [
        (&["--help"][..], "usage:\n  handler "),
        (&["help"][..], "usage:\n  handler "),
        (&["plan", "--help"][..], "usage: handler plan [FILE]"),
        (&["plan", "-h"][..], "usage: handler plan [FILE]"),
        (&["sweep", "--help"][..], "usage: handler sweep --dry-run | --yes"),
        (&["sweep", "--dry-run", "--help"][..], "usage: handler sweep --dry-run | --yes"),
        (&["check", "--help"][..], "usage: handler check"),
        (&["report", "--help"][..], "usage: handler report [--html OUT]"),
        (&["report", "a.json", "-h"][..], "usage: handler report [--html OUT]"),
    ] {
        let (ok, stdout, stderr) = handler(args);
        assert!(ok, "{args:?}: {stderr}");
        assert!(stdout.starts_with(usage), "{args:?}: {stdout}");
    }
}

#[test]
fn mistakes_name_themselves_and_fail() {
    for (args, says) in [
        (&["plan", "a.json", "b.json"][..], "plan takes one FILE at most"),
        (&["plan", "--verbose"][..], "plan takes one FILE at most"),
        (&["sweep"][..], "pass --dry-run to see the plan, or --yes"),
        (&["sweep", "--force"][..], "unknown flag \\\"--force\\\" for sweep"),
        (&["check", "now"][..], "check takes no arguments"),
        (&["report"][..], "report needs at least one FILE"),
        (&["report", "--html"][..], "--html needs a file to write"),
        (&["report", "--vcpu-second-price", "cheap", "a.log"][..], "is not a price"),
        (&["report", "--gb-second-price", "-1", "a.log"][..], "is not a price"),
        (&["report", "--width", "a.log"][..], "unknown flag \\\"--width\\\" for report"),
        (&["report", "/nonexistent/x.json"][..], "reading /nonexistent/x.json"),
        (&["deploy"][..], "unknown command \\\"deploy\\\""),
    ] {
        let (ok, _, stderr) = handler(args);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_file_named_like_a_flag_is_not_read() {
    let (ok, stdout, _) = handler(&["plan", "--help"]);
    assert!(ok && !stdout.contains("reading --help"), "{stdout}");
}
