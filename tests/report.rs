//! `handler report` on a generated log of a few thousand jobs (deterministic), in each export
//! format, and its page in a real headless browser.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const JOBS: u64 = 3000;
const REPOS: [&str; 4] = ["octo-org/api", "octo-org/web", "octo-org/mobile", "octo-org/infra"];
/// The list prices the report uses by default (README, "What it costs").
const VCPU_S: f64 = 0.04056 / 3600.0;
const GB_S: f64 = 0.004446 / 3600.0;

/// A small deterministic generator (a 64-bit LCG), so the log is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn per_mille(&mut self, p: u64) -> bool {
        self.next() % 1000 < p
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    aci_runners::clock::rfc3339(t)
}

/// What the generated log must add up to.
#[derive(Default)]
struct Expected {
    jobs: usize,
    waits: Vec<i64>,
    failed: usize,
    cancelled: usize,
    runner_seconds: i64,
    swept: usize,
}

/// Five days of jobs across four repositories, as the handler logs them, each line with the
/// time it was logged: (time, message).
fn generate() -> (Vec<(OffsetDateTime, String)>, Expected) {
    let start = datetime!(2026-11-23 00:00 UTC);
    let mut rng = Rng(1);
    let mut lines = vec![];
    let mut want = Expected::default();
    for i in 0..JOBS {
        let id = 40_000_000 + i;
        // Most jobs come from one repository.
        let repo = REPOS[(rng.next() % 10).min(3) as usize];
        let created = start + Duration::seconds((i as i64) * 144 + rng.between(0, 120));
        let lag = rng.between(1, 3);
        let to_put = lag + rng.between(6, 30);
        // ACI starts a container in 60-180 s; sometimes capacity makes a job wait minutes.
        // Working hours are busier: capacity runs short more often then.
        let busy = (9..18).contains(&created.hour());
        let slow = if rng.per_mille(if busy { 90 } else { 10 }) {
            rng.between(300, 900)
        } else {
            0
        };
        let wait = to_put + rng.between(60, 180) + slow;
        let run = rng.between(60, 900);
        let labels = "self-hosted,linux,x64,aci";
        let head = format!(
            "repository={repo} job={id} run={} attempt=1 created_at={}",
            900 + i / 3,
            rfc3339(created)
        );
        let tail = format!("workflow=CI name=\"build (linux)\" labels={labels}");
        want.jobs += 1;
        lines.push((created + Duration::seconds(lag), format!("job.queued {head} lag_s={lag} {tail}")));
        let runner = format!("aci-runner-{id}");
        lines.push((
            created + Duration::seconds(to_put),
            format!("provision op=create runner={runner} attempt=1 result=created repository={repo} job={id} created_at={} since_created_s={to_put}", rfc3339(created)),
        ));
        if rng.per_mille(40) {
            // Cancelled while queued: its group is released, idle.
            want.cancelled += 1;
            let at = created + Duration::seconds(to_put + 30);
            lines.push((at, format!("job.completed {head} conclusion=cancelled {tail}")));
            let lifetime = 30;
            want.runner_seconds += lifetime;
            lines.push((at, format!("group.deleted by=release reason=cancelled name={runner} repository={repo} job={id} run=1 ran_job={id} created_at={} lifetime_s={lifetime} cpu=2 memory_gb=4", rfc3339(created + Duration::seconds(to_put)))));
            continue;
        }
        let started = created + Duration::seconds(wait);
        lines.push((
            started,
            format!("job.started {head} ours=true wait_s={wait} runner={runner} {tail}"),
        ));
        want.waits.push(wait);
        let conclusion = if rng.per_mille(60) {
            want.failed += 1;
            "failure"
        } else {
            "success"
        };
        let done = started + Duration::seconds(run);
        lines.push((
            done,
            format!("job.completed {head} ours=true wait_s={wait} conclusion={conclusion} run_s={run} runner={runner} {tail}"),
        ));
        let lifetime = wait - to_put + run + 5;
        want.runner_seconds += lifetime;
        let group_created = created + Duration::seconds(to_put);
        if rng.per_mille(20) {
            // The container went before its release: the sweeper took it.
            want.swept += 1;
            lines.push((done, format!("group.deleted by=sweep reason=terminated name={runner} repository={repo} job={id} run=1 created_at={} lifetime_s={lifetime} cpu=2 memory_gb=4", rfc3339(group_created))));
        } else {
            lines.push((done, format!("group.deleted by=release reason=completed name={runner} repository={repo} job={id} run=1 ran_job={id} created_at={} lifetime_s={lifetime} cpu=2 memory_gb=4", rfc3339(group_created))));
        }
    }
    // A sweep every five minutes; a few report a failure.
    let mut t = start;
    let mut n = 0u64;
    while t < start + Duration::days(5) {
        let failed = u64::from(n % 97 == 13);
        lines.push((t, format!("sweep groups=3 runners=3 deleted_terminated=0 deleted_lifetime=0 deleted_idle=0 deregistered_ghosts=0 kept=0 requeued=0 reconciled=0 failed={failed} dry_run=false past_due=false")));
        t += Duration::minutes(5);
        n += 1;
    }
    lines.push((start, "handler.starting version=aci-runners/0.1.0 dry_run=false".into()));
    lines.sort_by_key(|(t, _)| *t);
    want.waits.sort_unstable();
    (lines, want)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aci-runners-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The log in each format an operator may hand the report.
fn write_exports(dir: &Path, lines: &[(OffsetDateTime, String)]) -> Vec<PathBuf> {
    let text: String = lines.iter().map(|(t, m)| format!("{} [Information] {m}\n", rfc3339(*t))).collect();
    let tables = json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "timestamp", "type": "datetime"}, {"name": "message", "type": "string"}, {"name": "severityLevel", "type": "int"}],
        "rows": lines.iter().map(|(t, m)| json!([rfc3339(*t), m, 1])).collect::<Vec<_>>()}]});
    let rows: Vec<_> = lines
        .iter()
        .map(|(t, m)| json!({"TimeGenerated": rfc3339(*t), "Message": m, "TableName": "PrimaryResult"}))
        .collect();
    let mut csv = String::from("\u{feff}timestamp [UTC],message,severityLevel\r\n");
    for (t, m) in lines {
        let (h, half) = match t.hour() {
            0 => (12, "AM"),
            h @ 1..=11 => (h, "AM"),
            12 => (12, "PM"),
            h => (h - 12, "PM"),
        };
        let when = format!(
            "{}/{}/{}, {h}:{:02}:{:02}.000 {half}",
            t.month() as u8,
            t.day(),
            t.year(),
            t.minute(),
            t.second()
        );
        csv.push_str(&format!("\"{when}\",\"{}\",1\r\n", m.replace('"', "\"\"")));
    }
    let files = [
        ("traces.log", text),
        ("traces.json", tables.to_string()),
        ("traces-la.json", serde_json::to_string(&rows).unwrap()),
        ("traces.csv", csv),
    ];
    files
        .into_iter()
        .map(|(name, body)| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect()
}

fn report(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_handler"))
        .arg("report")
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The per-repository table's `all` row, as columns.
fn all_row(text: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_else(|| panic!("no all row:\n{text}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

#[test]
fn every_export_format_gives_the_same_figures_and_they_add_up() {
    let (lines, want) = generate();
    assert!(lines.len() > 4 * JOBS as usize, "a few thousand jobs, {} lines", lines.len());
    let dir = scratch("formats");
    let files = write_exports(&dir, &lines);
    let texts: Vec<String> = files.iter().map(|f| report(&[f.to_str().unwrap()])).collect();
    // The same figures whatever the format (the header names the format, so compare the rest).
    let body = |t: &str| t.split_once('\n').unwrap().1.to_string();
    for (f, t) in files.iter().zip(&texts).skip(1) {
        assert_eq!(body(t), body(&texts[0]), "{} reads as the log text does", f.display());
    }
    let t = &texts[0];
    assert!(
        t.starts_with(&format!(
            "aci-runners report: {JOBS} jobs in 4 repositories from 2026-11-23 to 2026-11-27"
        )),
        "{t}"
    );

    let all = all_row(t);
    let d = aci_runners::report::text::duration;
    let cost = want.runner_seconds as f64 * (2.0 * VCPU_S + 4.0 * GB_S);
    let cases: &[(&str, usize, String)] = &[
        ("every job counted once", 1, want.jobs.to_string()),
        ("p50 of the time to a runner", 2, d(Some(nearest_rank(&want.waits, 50.0)))),
        ("p95", 3, d(Some(nearest_rank(&want.waits, 95.0)))),
        ("max", 4, d(want.waits.last().copied())),
        (
            "runner minutes: each group's lifetime",
            7,
            format!("{:.1}", want.runner_seconds as f64 / 60.0),
        ),
        (
            "vCPU-hours at 2 vCPUs",
            8,
            format!("{:.2}", want.runner_seconds as f64 * 2.0 / 3600.0),
        ),
        ("GB-hours at 4 GB", 9, format!("{:.2}", want.runner_seconds as f64 * 4.0 / 3600.0)),
        ("cost at the list price", 10, format!("{cost:.2}")),
        ("failures", 11, want.failed.to_string()),
        ("cancelled", 12, want.cancelled.to_string()),
        ("what the sweeper removed", 13, want.swept.to_string()),
    ];
    for (rule, column, value) in cases {
        assert_eq!(&all[*column], value, "{rule}: {all:?}");
    }
    assert!(t.contains("sweeper: removed "), "{t}");
    assert!(
        t.contains("of 1440 sweeps reported failures"),
        "a sweep every 5 minutes for 5 days: {t}"
    );
    // Per day and repository: 5 days × 4 repositories, under a header.
    let per_day = t.split("per day and repository\n").nth(1).unwrap().split("\n\n").next().unwrap();
    assert_eq!(per_day.lines().count(), 1 + 5 * 4, "{per_day}");

    // Prices are options: twice the price, twice the cost.
    let double = report(&[
        "--vcpu-second-price",
        &(2.0 * VCPU_S).to_string(),
        "--gb-second-price",
        &(2.0 * GB_S).to_string(),
        files[0].to_str().unwrap(),
    ]);
    assert_eq!(all_row(&double)[10], format!("{:.2}", 2.0 * cost));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_no_export_is_named() {
    let dir = scratch("bad");
    let f = dir.join("result.json");
    std::fs::write(
        &f,
        r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"count_","type":"long"}],"rows":[[1]]}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_handler"))
        .args(["report", f.to_str().unwrap()])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("result.json") && stderr.contains("`message` column"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_query_is_loaded_by_the_template_and_shown_in_the_operations_guide() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let module = std::fs::read_to_string(root.join("infra/modules/monitoring.bicep")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(root.join("infra/queries")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kql = std::fs::read_to_string(&path).unwrap();
        assert!(
            module.contains(&format!("loadTextContent('../queries/{name}')")),
            "{name} is deployed"
        );
        assert!(
            guide.contains(&format!("```kusto\n{kql}```")),
            "docs/operations.md shows {name} as it is"
        );
        n += 1;
    }
    assert_eq!(n, 8, "five charts and three alerts");
}

/// The browser CI installs (`.ci/run`); on a workstation, `apt-get install chromium`.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("no headless browser: install chromium (`apt-get install -y chromium`; .ci/run does it in CI)");
}

fn browser(profile: &Path, args: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_page_renders_its_charts_in_a_real_browser() {
    let (lines, want) = generate();
    let dir = scratch("browser");
    let files = write_exports(&dir, &lines);
    let page = dir.join("report.html");
    let text = report(&["--html", page.to_str().unwrap(), files[1].to_str().unwrap()]);
    assert!(text.ends_with(&format!("wrote {}\n", page.display())), "{text}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "self-contained, nothing fetched"
    );

    let url = format!("file://{}", page.display());
    let dom = browser(&dir.join("profile-dom"), &["--dump-dom", &url]);
    for shown in [
        "Time to a runner over time",
        "Time to a runner, distribution",
        "Estimated cost by repository",
        "Where the time went",
        "octo-org/api",
    ] {
        assert!(dom.contains(shown), "the page shows {shown:?}");
    }
    assert!(dom.contains(&format!("<b>{JOBS}</b><span>jobs</span>")), "the jobs tile");
    let p50 = aci_runners::report::text::duration(Some(nearest_rank(&want.waits, 50.0)));
    assert!(
        dom.contains(&format!("<b>{p50}</b><span>time to a runner p50</span>")),
        "the p50 tile: {p50}"
    );
    assert_eq!(dom.matches("<polyline").count(), 2, "p50 and p95 over time");
    assert_eq!(
        dom.matches(r#"<rect class="bar""#).count(),
        10 + REPOS.len(),
        "ten distribution buckets and a cost bar per repository"
    );

    let shot = dir.join("report.png");
    browser(
        &dir.join("profile-shot"),
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,1500", &url],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot with something on it"
    );
    println!("screenshot of the report page: {}", shot.display());
}
