//! The figures as one self-contained page: inline CSS and SVG, no script, nothing fetched.

use std::fmt::Write as _;

use super::figures::{Figures, Row, BUCKETS};
use super::text::{cells, duration, price};

/// Text safe inside HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --p50:#0969da; --p95:#cf222e; --bar:#1a7f37;
        --a:#8250df; --b:#0969da; --c:#bf8700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--ink); background: #f6f8fa; }
header { padding: 20px 32px 8px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.sub { color: var(--muted); }
main { padding: 8px 32px 32px; display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.tiles { grid-column: 1 / -1; display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.tile b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.tile span { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 8px; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
.legend { font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 12px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td:first-child, th:first-child { text-align: left; }
tr.total td { font-weight: 600; }
footer { padding: 0 32px 24px; color: var(--muted); font-size: 12px; }
";

/// A round step for an axis reaching `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn wait_over_time(out: &mut String, f: &Figures) {
    let (w, h, l, r, t, b) = (640.0, 240.0, 56.0, 12.0, 12.0, 28.0);
    let _ = write!(
        out,
        r#"<svg id="wait-over-time" viewBox="0 0 {w} {h}" role="img" aria-label="Time to a runner over time"><title>Time to a runner over time</title>"#
    );
    if f.series.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}">no jobs ran on our runners</text></svg>"#,
            w / 2.0 - 60.0,
            h / 2.0
        );
        return;
    }
    let max = f.series.iter().map(|p| p.p95).max().unwrap_or(1).max(1) as f64;
    let step = nice_step(max, 4.0);
    let top = (max / step).ceil() * step;
    let n = f.series.len();
    let x = |i: usize| l + (w - l - r) * if n == 1 { 0.5 } else { i as f64 / (n - 1) as f64 };
    let y = |v: f64| t + (h - t - b) * (1.0 - v / top);
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let _ = write!(
            out,
            r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eaeef2"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - r,
            l - 6.0,
            y(v) + 4.0,
            duration(Some(v as i64)),
            y = y(v)
        );
        v += step;
    }
    let labels = 6.min(n);
    for k in 0..labels {
        let i = if labels == 1 { 0 } else { k * (n - 1) / (labels - 1) };
        let at = f.series[i].at;
        let label = if f.hourly {
            format!("{:02}-{:02} {:02}h", at.month() as u8, at.day(), at.hour())
        } else {
            format!("{:02}-{:02}", at.month() as u8, at.day())
        };
        let anchor = match k {
            0 if labels > 1 => "start",
            k if k + 1 == labels && labels > 1 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}">{label}</text>"#,
            x(i),
            h - 8.0
        );
    }
    for (class, color, pick) in [
        (
            "p95",
            "var(--p95)",
            (|p: &super::figures::Point| p.p95) as fn(&super::figures::Point) -> i64,
        ),
        ("p50", "var(--p50)", |p: &super::figures::Point| p.p50),
    ] {
        let points: Vec<String> = f
            .series
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(pick(p) as f64)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="{class}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
            points.join(" ")
        );
    }
    out.push_str("</svg>");
    out.push_str(r#"<div class="legend"><i style="background:var(--p50)"></i>p50<i style="background:var(--p95)"></i>p95</div>"#);
}

fn distribution(out: &mut String, f: &Figures) {
    let (w, h, l, b, t) = (640.0, 240.0, 40.0, 28.0, 14.0);
    let _ = write!(
        out,
        r#"<svg id="wait-distribution" viewBox="0 0 {w} {h}" role="img" aria-label="Time to a runner, distribution"><title>Time to a runner, distribution</title>"#
    );
    let max = f.distribution.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = f.distribution.len().max(1) as f64;
    let slot = (w - l - 8.0) / n;
    for (i, count) in f.distribution.iter().enumerate() {
        let bh = (h - t - b) * *count as f64 / max;
        let x = l + slot * i as f64;
        let label = match (i.checked_sub(1).map(|j| BUCKETS[j]), BUCKETS.get(i)) {
            (None, Some(hi)) => format!("<{}", duration(Some(*hi))),
            (Some(_), Some(hi)) => format!("≤{}", duration(Some(*hi))),
            (Some(lo), None) => format!("≥{}", duration(Some(lo))),
            (None, None) => String::new(),
        };
        let _ = write!(
            out,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" rx="2" fill="var(--bar)"><title>{label}: {count} jobs</title></rect><text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            x + 3.0,
            h - b - bh,
            slot - 6.0,
            x + slot / 2.0,
            h - 8.0
        );
        if *count > 0 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{count}</text>"#,
                x + slot / 2.0,
                h - b - bh - 3.0
            );
        }
    }
    out.push_str("</svg>");
}

/// Horizontal bars, one per repository, largest first.
fn cost_by_repository(out: &mut String, f: &Figures) {
    let mut rows: Vec<(&String, &Row)> = f.by_repository.iter().collect();
    rows.sort_by(|a, b| b.1.cost.total_cmp(&a.1.cost).then(a.0.cmp(b.0)));
    let (w, bar_h, l) = (640.0, 24.0, 180.0);
    let h = bar_h * rows.len().max(1) as f64 + 8.0;
    let _ = write!(
        out,
        r#"<svg id="cost-by-repository" viewBox="0 0 {w} {h}" role="img" aria-label="Estimated cost by repository"><title>Estimated cost by repository</title>"#
    );
    let max = rows.iter().map(|(_, r)| r.cost).fold(0.0, f64::max).max(1e-9);
    for (i, (repo, row)) in rows.iter().enumerate() {
        let y = 4.0 + bar_h * i as f64;
        let bw = (w - l - 170.0) * row.cost / max;
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect class="bar" x="{l}" y="{:.1}" width="{bw:.1}" height="{:.1}" rx="2" fill="var(--a)"/><text x="{:.1}" y="{:.1}">${:.2} · {:.1} runner h</text>"#,
            l - 8.0,
            y + bar_h / 2.0 + 4.0,
            escape(repo),
            y + 3.0,
            bar_h - 6.0,
            l + bw + 6.0,
            y + bar_h / 2.0 + 4.0,
            row.cost,
            row.runner_seconds as f64 / 3600.0
        );
    }
    out.push_str("</svg>");
}

/// Stacked bars: where each repository's time to a runner went (means).
fn phases(out: &mut String, f: &Figures) {
    let (w, bar_h, l) = (640.0, 24.0, 180.0);
    let h = bar_h * f.phases.len().max(1) as f64 + 8.0;
    let _ = write!(
        out,
        r#"<svg id="where-the-time-went" viewBox="0 0 {w} {h}" role="img" aria-label="Where the time to a runner went"><title>Where the time to a runner went</title>"#
    );
    let max = f.phases.values().map(|(a, b, c)| a + b + c).fold(0.0, f64::max).max(1e-9);
    for (i, (repo, (a, b, c))) in f.phases.iter().enumerate() {
        let y = 4.0 + bar_h * i as f64;
        let scale = (w - l - 70.0) / max;
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            l - 8.0,
            y + bar_h / 2.0 + 4.0,
            escape(repo)
        );
        let mut x = l;
        for (v, color, what) in [
            (a, "var(--a)", "GitHub's delivery"),
            (b, "var(--b)", "webhook to PUT"),
            (c, "var(--c)", "PUT to job start"),
        ] {
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{what}: {}</title></rect>"#,
                y + 3.0,
                v * scale,
                bar_h - 6.0,
                duration(Some(*v as i64))
            );
            x += v * scale;
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 6.0,
            y + bar_h / 2.0 + 4.0,
            duration(Some((a + b + c) as i64))
        );
    }
    out.push_str("</svg>");
    out.push_str(r#"<div class="legend"><i style="background:var(--a)"></i>GitHub's delivery<i style="background:var(--b)"></i>webhook to PUT<i style="background:var(--c)"></i>PUT to job start (mean)</div>"#);
}

fn row_cells(r: &Row) -> String {
    cells(r, |c| format!("${c:.2}"))
        .iter()
        .map(|c| format!("<td>{}</td>", escape(c)))
        .collect()
}

const HEAD: &str = "<th>jobs</th><th>p50</th><th>p95</th><th>max</th><th>to PUT</th><th>PUT→start</th><th>runner min</th><th>vCPU-h</th><th>GB-h</th><th>cost</th><th>failed</th><th>cancelled</th><th>swept</th>";

/// The page.
pub fn render(f: &Figures, sources: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let span = match (f.first_day, f.last_day) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "days unknown".into(),
    };
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>aci-runners: time to a runner and cost</title><style>{STYLE}</style></head><body><header><h1>Time to a runner and what it cost</h1><div class="sub">{} jobs in {} repositories · {} · {}</div></header><main>"#,
        f.total.jobs,
        f.by_repository.len(),
        escape(&span),
        escape(sources)
    );
    let tiles = [
        ("jobs", f.total.jobs.to_string()),
        ("time to a runner p50", duration(f.total.wait_p50)),
        ("p95", duration(f.total.wait_p95)),
        ("runner hours", format!("{:.1}", f.total.runner_seconds as f64 / 3600.0)),
        ("estimated cost", format!("${:.2}", f.total.cost)),
        ("failed · swept", format!("{} · {}", f.total.failed, f.total.swept_total())),
    ];
    out.push_str(r#"<div class="tiles">"#);
    for (label, value) in tiles {
        let _ = write!(
            out,
            r#"<div class="tile"><b>{}</b><span>{}</span></div>"#,
            escape(&value),
            escape(label)
        );
    }
    out.push_str("</div>");
    out.push_str("<section><h2>Time to a runner over time</h2>");
    wait_over_time(&mut out, f);
    out.push_str("</section><section><h2>Time to a runner, distribution</h2>");
    distribution(&mut out, f);
    out.push_str("</section><section><h2>Estimated cost by repository</h2>");
    cost_by_repository(&mut out, f);
    out.push_str("</section><section><h2>Where the time went</h2>");
    phases(&mut out, f);
    out.push_str("</section>");
    let _ = write!(
        out,
        r#"<section class="wide"><h2>Per repository</h2><table id="per-repository"><tr><th>repository</th>{HEAD}</tr>"#
    );
    for (repo, row) in &f.by_repository {
        let _ = write!(out, "<tr><td>{}</td>{}</tr>", escape(repo), row_cells(row));
    }
    let _ = write!(
        out,
        r#"<tr class="total"><td>all</td>{}</tr></table></section>"#,
        row_cells(&f.total)
    );
    let _ = write!(
        out,
        r#"<section class="wide"><h2>Per day and repository</h2><table id="per-day"><tr><th>day</th><th>repository</th>{HEAD}</tr>"#
    );
    for ((day, repo), row) in &f.rows {
        let day = day.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "<tr><td>{day}</td><td style=\"text-align:left\">{}</td>{}</tr>",
            escape(repo),
            row_cells(row)
        );
    }
    out.push_str("</table></section></main>");
    let swept: Vec<String> = f.total.swept.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "<footer>Time to a runner: the job's created_at to started_at, on our runners. Cost: each container group's lifetime × its vCPUs and GB at ${}/vCPU-s and ${}/GB-s. Sweeper: removed {} groups ({}); {} of {} sweeps reported failures. Provision: {} retries, {} dropped.</footer></body></html>",
        price(f.prices.vcpu_second),
        price(f.prices.gb_second),
        f.total.swept_total(),
        escape(&if swept.is_empty() { "none".into() } else { swept.join(", ") }),
        f.sweeps_failed,
        f.sweeps,
        f.provision_retries,
        f.provision_dropped
    );
    if let Some(w) = &f.warm {
        // Before the closing tags: a paragraph of its own in the footer's place.
        let at = out.rfind("</body>").unwrap_or(out.len());
        out.insert_str(at, &format!("<p>{}</p>", escape(&super::text::warm_line(w))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_warm_hits_and_misses_when_the_lines_say_warm() {
        let mut f = Figures::default();
        assert!(!render(&f, "x").contains("warm runners:"), "no warm runners: no warm paragraph");
        f.warm = Some(crate::report::figures::WarmFigures {
            hits: 3,
            misses: 2,
            ..Default::default()
        });
        let page = render(&f, "x");
        assert!(page.contains("<p>warm runners: 3 hits"), "{page}");
        assert!(
            page.ends_with("</body></html>\n") || page.ends_with("</body></html>"),
            "still one page"
        );
    }

    #[test]
    fn a_repository_name_cannot_inject_markup_and_nothing_is_fetched() {
        let mut f = Figures::default();
        f.by_repository.insert("o/<script>alert(1)</script>".into(), Row::default());
        f.phases.insert("o/<img src=x>".into(), (1.0, 2.0, 3.0));
        let page = render(&f, "x");
        assert!(!page.contains("<script") && !page.contains("<img"), "escaped");
        assert!(!page.contains("http://") && !page.contains("https://"), "self-contained");
    }

    #[test]
    fn axis_steps_are_round() {
        let cases = [(95.0, 4.0, 50.0), (600.0, 4.0, 200.0), (3.0, 4.0, 1.0), (1.0, 4.0, 0.5)];
        for (max, ticks, want) in cases {
            assert_eq!(nice_step(max, ticks), want, "{max}");
        }
    }
}
