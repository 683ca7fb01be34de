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
    for id in report.redelivered.iter().flatten() {
        let _ = writeln!(out, "{:<10} App webhook delivery {id}: its delivery failed", "redeliver");
    }
    for f in &report.read_failures {
        let _ = writeln!(out, "read failed: {f}");
    }
    let _ = writeln!(out, "{}", report.summary());
    out
}
