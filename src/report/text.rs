//! The figures as text: one table per day and repository, one per repository, and the totals.

use std::fmt::Write as _;

use super::figures::{Figures, Row, WarmFigures};

/// A price per second as people write it: `0.0000112667`.
pub fn price(p: f64) -> String {
    let s = format!("{p:.10}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `95` → `1m35s`; `None` → `-`.
pub fn duration(s: Option<i64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 0 => format!("-{}", duration(Some(-s))),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

const HEADER: &[&str] = &[
    "jobs",
    "p50",
    "p95",
    "max",
    "to PUT",
    "PUT→start",
    "runner min",
    "vCPU-h",
    "GB-h",
    "cost $",
    "failed",
    "cancelled",
    "swept",
];

/// A row's figures, in the order of the columns, the cost written by `money`.
pub(super) fn cells(r: &Row, money: fn(f64) -> String) -> Vec<String> {
    vec![
        r.jobs.to_string(),
        duration(r.wait_p50),
        duration(r.wait_p95),
        duration(r.wait_max),
        duration(r.to_put_p50),
        duration(r.put_to_start_p50),
        format!("{:.1}", r.runner_seconds as f64 / 60.0),
        format!("{:.2}", r.vcpu_hours),
        format!("{:.2}", r.gb_hours),
        money(r.cost),
        r.failed.to_string(),
        r.cancelled.to_string(),
        r.swept_total().to_string(),
    ]
}

fn table(out: &mut String, keys: &[&str], rows: Vec<(Vec<String>, &Row)>) {
    let mut all: Vec<Vec<String>> = vec![keys.iter().chain(HEADER).map(|s| s.to_string()).collect()];
    for (k, r) in rows {
        all.push(k.into_iter().chain(cells(r, |c| format!("{c:.2}"))).collect());
    }
    let widths: Vec<usize> = (0..all[0].len())
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i < keys.len() {
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The whole text report.
pub fn render(f: &Figures, sources: &str) -> String {
    let mut out = String::new();
    let span = match (f.first_day, f.last_day) {
        (Some(a), Some(b)) if a == b => format!("on {a}"),
        (Some(a), Some(b)) => format!("from {a} to {b}"),
        _ => "on days the lines do not say".into(),
    };
    let _ = writeln!(
        out,
        "aci-runners report: {} jobs in {} repositories {span} ({sources})",
        f.total.jobs,
        f.by_repository.len()
    );
    let _ = writeln!(
        out,
        "time to a runner: created_at to started_at on our runners; to PUT = job created to our container group PUT, PUT→start = the rest (p50s)"
    );
    let _ = writeln!(
        out,
        "cost: group lifetime × size at ${}/vCPU-s and ${}/GB-s\n",
        price(f.prices.vcpu_second),
        price(f.prices.gb_second)
    );
    out.push_str("per day and repository\n");
    table(
        &mut out,
        &["day", "repository"],
        f.rows
            .iter()
            .map(|((d, r), row)| (vec![d.map(|d| d.to_string()).unwrap_or("-".into()), r.clone()], row))
            .collect(),
    );
    out.push_str("\nper repository\n");
    let mut rows: Vec<(Vec<String>, &Row)> = f.by_repository.iter().map(|(r, row)| (vec![r.clone()], row)).collect();
    rows.push((vec!["all".into()], &f.total));
    table(&mut out, &["repository"], rows);
    let swept: Vec<String> = f.total.swept.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "\nsweeper: removed {} groups ({}); {} of {} sweeps reported failures",
        f.total.swept_total(),
        if swept.is_empty() { "none".into() } else { swept.join(", ") },
        f.sweeps_failed,
        f.sweeps
    );
    let _ = writeln!(
        out,
        "provision: {} retries, {} dropped; {} jobs ran on a runner of ours made for another job",
        f.provision_retries, f.provision_dropped, f.total.other_runner
    );
    if let Some(w) = &f.warm {
        let _ = writeln!(out, "{}", warm_line(w));
    }
    out
}

/// With warm runners: time to a runner for hits and misses apart, and the floor's idle cost.
pub fn warm_line(w: &WarmFigures) -> String {
    format!(
        "warm runners: {} hits (time to a runner p50 {}, p95 {}), {} misses (p50 {}, p95 {}); the floor idle {:.1} runner-hours, ${:.2} at {} vCPU and {} GB",
        w.hits,
        duration(w.hit_p50),
        duration(w.hit_p95),
        w.misses,
        duration(w.miss_p50),
        duration(w.miss_p95),
        w.idle_runner_seconds as f64 / 3600.0,
        w.idle_cost,
        w.cpu,
        w.memory_gb
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        let cases = [
            (None, "-"),
            (Some(0), "0s"),
            (Some(59), "59s"),
            (Some(95), "1m35s"),
            (Some(3720), "1h02m"),
            (Some(-5), "-5s"),
        ];
        for (s, want) in cases {
            assert_eq!(duration(s), want);
        }
    }
}
