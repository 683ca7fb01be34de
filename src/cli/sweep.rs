//! `handler sweep --dry-run | --yes`: the sweeper once, from a workstation.

use std::fmt::Write as _;

use crate::functions::sweep::Report;

/// One line per deletion (`reason  what: how it ended`), the read failures, then the summary.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for (d, ended) in &report.deletions {
        let what = [
            d.deregister
                .as_ref()
                .map(|r| format!("deregister runner {} ({})", r.name, r.target)),
            d.group.as_ref().map(|g| format!("delete group {g}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", then ");
        let _ = writeln!(out, "{:<10} {what}: {ended}", d.reason.as_str());
    }
    let requests = [
        ("requeue", &report.requeue, "its group ended before the job ran"),
        ("reconcile", &report.reconciled, "no delivery asked for one"),
    ];
    for (what, list, why) in requests {
        for c in list {
            let _ = writeln!(
                out,
                "{what:<10} request a runner for queued job {} ({}): {why}",
                c.job.unwrap_or(0),
                c.repository
            );
        }
    }
    for c in report.warm.iter().flat_map(|w| &w.requested) {
        let _ = writeln!(
            out,
            "{:<10} request warm runner {} ({}): the floor lacks it",
            "warm", c.runner, c.repository
        );
    }
    for id in report.redelivered.iter().flatten() {
        let _ = writeln!(out, "{:<10} App webhook delivery {id}: its delivery failed", "redeliver");
    }
    for f in &report.read_failures {
        let _ = writeln!(out, "read failed: {f}");
    }
    let _ = writeln!(out, "{}", report.summary());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::sweep::WarmReport;
    use crate::rules::request::{Create, Origin};

    #[test]
    fn the_warm_runners_a_sweep_would_ask_for_are_listed_before_the_summary() {
        let report = Report {
            warm: Some(WarmReport {
                floor: 1,
                requested: vec![Create {
                    runner: "aci-runner-w-abcdef01".into(),
                    repository: "octo-org/octo-repo".into(),
                    origin: Origin::Warm,
                    job: None,
                    run: 0,
                    attempt: 0,
                    labels: vec!["aci".into()],
                    created_at: None,
                }],
                idle_seconds: 0,
            }),
            dry_run: true,
            ..Report::default()
        };
        let out = render(&report);
        assert!(
            out.starts_with("warm       request warm runner aci-runner-w-abcdef01 (octo-org/octo-repo): the floor lacks it\n"),
            "{out}"
        );
        assert!(
            out.contains(" reconciled=0 redelivered=0 warm_floor=1 warm_requested=1 warm_rotated=0 warm_removed=0 warm_idle_s=0 failed=0 dry_run=true"),
            "{out}"
        );
    }
}
