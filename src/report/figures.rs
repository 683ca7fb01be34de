//! The figures, from the events: pure, no I/O, table-tested.
//!
//! A job is (repository, job id); its day is the day GitHub created it. Its time to a runner is
//! `created_at` to `started_at` when it ran on one of our runners, split at our PUT: GitHub to
//! the PUT (`since_created_s` of the create made for it: the webhook's delay, the queue, the
//! JIT config) and the PUT to the job's start (ACI starting the container, the runner taking
//! the job). A group's cost is its lifetime times its size at the prices given, counted on the
//! day it was made, for the repository of the job it ran (or, failing that, its tag).

use std::collections::{BTreeMap, HashMap};

use time::{Date, OffsetDateTime};

use super::lines::{Deleted, Event, JobSeen, Stage};

/// ACI's Linux pay-as-you-go prices, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub vcpu_second: f64,
    pub gb_second: f64,
}

impl Default for Prices {
    /// The public list price (README, "What it costs").
    fn default() -> Prices {
        Prices {
            vcpu_second: LIST_VCPU_HOUR / 3600.0,
            gb_second: LIST_GB_HOUR / 3600.0,
        }
    }
}

/// ACI Linux, pay-as-you-go, East US, USD: per vCPU-hour and per GB-hour (README says where from).
pub const LIST_VCPU_HOUR: f64 = 0.04056;
pub const LIST_GB_HOUR: f64 = 0.004446;

/// Conclusions that count as failures.
const FAILED: &[&str] = &["failure", "timed_out", "startup_failure"];

/// Time-to-a-runner buckets of the distribution, upper bounds in seconds (the last is open).
pub const BUCKETS: &[i64] = &[30, 60, 90, 120, 180, 240, 300, 600, 1800];

/// One day's (or a total's) figures for one repository.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub jobs: usize,
    /// Jobs with a time to one of our runners.
    pub waited: usize,
    pub wait_p50: Option<i64>,
    pub wait_p95: Option<i64>,
    pub wait_max: Option<i64>,
    /// Medians of the two parts of the time to a runner.
    pub to_put_p50: Option<i64>,
    pub put_to_start_p50: Option<i64>,
    pub runner_seconds: i64,
    pub vcpu_hours: f64,
    pub gb_hours: f64,
    pub cost: f64,
    pub failed: usize,
    pub cancelled: usize,
    /// Jobs that ran on a runner of ours made for another job.
    pub other_runner: usize,
    /// Groups the sweeper removed, by reason.
    pub swept: BTreeMap<String, usize>,
}

impl Row {
    pub fn swept_total(&self) -> usize {
        self.swept.values().sum()
    }
}

/// One point of the time-to-a-runner chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at: OffsetDateTime,
    pub jobs: usize,
    pub p50: i64,
    pub p95: i64,
}

/// Everything the text and the page show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    /// (day, repository) → figures; `None` = a day the lines did not say.
    pub rows: BTreeMap<(Option<Date>, String), Row>,
    pub by_repository: BTreeMap<String, Row>,
    pub total: Row,
    /// Time to a runner over time (hourly when the report spans a week or less, else daily).
    pub series: Vec<Point>,
    pub hourly: bool,
    /// Jobs per [`BUCKETS`] bucket (one more for the open end).
    pub distribution: Vec<usize>,
    /// Mean parts of the time to a runner, per repository: (GitHub's delivery, webhook to PUT,
    /// PUT to job start), seconds.
    pub phases: BTreeMap<String, (f64, f64, f64)>,
    pub sweeps: usize,
    pub sweeps_failed: usize,
    pub provision_retries: usize,
    pub provision_dropped: usize,
    pub first_day: Option<Date>,
    pub last_day: Option<Date>,
    pub prices: Prices,
    /// Set when the lines say `warm=` (a deployment with `WARM_RUNNERS`).
    pub warm: Option<WarmFigures>,
}

/// Warm runners: time to a runner for the jobs that found one waiting and the ones that did
/// not, apart, and what the floor cost idle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WarmFigures {
    pub hits: usize,
    pub hit_p50: Option<i64>,
    pub hit_p95: Option<i64>,
    pub misses: usize,
    pub miss_p50: Option<i64>,
    pub miss_p95: Option<i64>,
    /// The sweeps' `warm_idle_s`, summed.
    pub idle_runner_seconds: u64,
    /// The runner size the idle seconds are priced at: the commonest among deleted groups, or
    /// the defaults (2 vCPU, 4 GB) when no deletion says.
    pub cpu: f64,
    pub memory_gb: f64,
    pub idle_cost: f64,
}

/// What the lines say about one job.
#[derive(Debug, Default, Clone)]
struct JobFacts {
    repository: String,
    created_at: Option<OffsetDateTime>,
    seen_at: Option<OffsetDateTime>,
    lag: Option<i64>,
    to_put: Option<i64>,
    wait: Option<i64>,
    ours: bool,
    other_runner: bool,
    conclusion: Option<String>,
    warm: Option<bool>,
}

/// Jobs' times to a runner, each with its part before our PUT when known.
type Waits = Vec<(i64, Option<i64>)>;

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn merge(f: &mut JobFacts, stage: Stage, j: &JobSeen, at: Option<OffsetDateTime>) {
    f.repository = j.repository.clone();
    f.created_at = f.created_at.or(j.created_at);
    f.seen_at = f.seen_at.or(at);
    if stage == Stage::Queued {
        f.lag = f.lag.or(j.lag_s);
    }
    if j.runner.is_some() {
        f.ours = j.ours.unwrap_or(false);
        f.other_runner = j.runner_made_for.is_some();
        f.wait = j.wait_s.or(f.wait);
        f.warm = j.warm.or(f.warm);
    }
    if stage == Stage::Completed {
        f.conclusion = j.conclusion.clone();
    }
}

/// The figures of the events (each with the time its export gave it, if any).
pub fn figures(events: &[(Option<OffsetDateTime>, Event)], prices: Prices) -> Figures {
    let key = |repo: &str, job: u64| (repo.to_ascii_lowercase(), job);
    let mut jobs: HashMap<(String, u64), JobFacts> = HashMap::new();
    let mut repo_of_runner: HashMap<String, String> = HashMap::new();
    let mut out = Figures {
        prices,
        ..Figures::default()
    };
    // Jobs first: the creates and deletions are joined to them.
    for (at, e) in events {
        if let Event::Job(stage, j) = e {
            merge(jobs.entry(key(&j.repository, j.job)).or_default(), *stage, j, *at);
            if let Some(r) = &j.runner {
                repo_of_runner.insert(r.clone(), j.repository.clone());
            }
        }
    }
    for (_, e) in events {
        if let Event::Created(c) = e {
            if let (Some(repo), Some(job)) = (&c.repository, c.job) {
                if let Some(f) = jobs.get_mut(&key(repo, job)) {
                    f.to_put = c.since_created_s.or(f.to_put);
                    // The create's answer is exact; a job line's is read from a runner's name.
                    f.warm = c.warm.or(f.warm);
                }
            }
        }
    }

    let day = |t: Option<OffsetDateTime>| t.map(|t| t.to_offset(time::UtcOffset::UTC).date());
    let mut waits: BTreeMap<(Option<Date>, String), Waits> = BTreeMap::new();
    let mut all_waits: Vec<(OffsetDateTime, i64)> = vec![];
    let mut phase_sums: BTreeMap<String, (f64, f64, f64, usize)> = BTreeMap::new();
    for f in jobs.values() {
        let when = f.created_at.or(f.seen_at);
        let k = (day(when), f.repository.clone());
        let row = out.rows.entry(k.clone()).or_default();
        row.jobs += 1;
        row.other_runner += usize::from(f.other_runner);
        match f.conclusion.as_deref() {
            Some(c) if FAILED.contains(&c) => row.failed += 1,
            Some("cancelled") => row.cancelled += 1,
            _ => {}
        }
        if let (true, Some(w)) = (f.ours, f.wait) {
            waits.entry(k).or_default().push((w, f.to_put));
            if let Some(t) = when {
                all_waits.push((t, w));
            }
            if let Some(put) = f.to_put {
                let lag = f.lag.unwrap_or(0).clamp(0, put);
                let p = phase_sums.entry(f.repository.clone()).or_default();
                *p = (p.0 + lag as f64, p.1 + (put - lag) as f64, p.2 + (w - put).max(0) as f64, p.3 + 1);
            }
        }
    }
    out.phases = phase_sums
        .into_iter()
        .map(|(r, (a, b, c, n))| (r, (a / n as f64, b / n as f64, c / n as f64)))
        .collect();

    for (_, e) in events {
        match e {
            Event::Deleted(d) => {
                let ran = d.ran_job.or(d.job);
                let repository = ran
                    .and_then(|j| {
                        d.repository
                            .as_ref()
                            .and_then(|r| jobs.get(&key(r, j)))
                            .map(|f| f.repository.clone())
                    })
                    .or_else(|| repo_of_runner.get(&d.name).cloned())
                    .or_else(|| d.repository.clone())
                    .unwrap_or_else(|| "(unknown)".into());
                let row = out.rows.entry((day(d.created_at), repository)).or_default();
                let seconds = d.lifetime_s.unwrap_or(0).max(0);
                row.runner_seconds += seconds;
                let vcpu_s = seconds as f64 * d.cpu.unwrap_or(0.0);
                let gb_s = seconds as f64 * d.memory_gb.unwrap_or(0.0);
                row.vcpu_hours += vcpu_s / 3600.0;
                row.gb_hours += gb_s / 3600.0;
                row.cost += vcpu_s * prices.vcpu_second + gb_s * prices.gb_second;
                if d.by == "sweep" {
                    *row.swept.entry(d.reason.clone()).or_default() += 1;
                }
            }
            Event::Sweep { failed, .. } => {
                out.sweeps += 1;
                out.sweeps_failed += usize::from(*failed > 0);
            }
            Event::ProvisionFailed { dropped: true } => out.provision_dropped += 1,
            Event::ProvisionFailed { dropped: false } => out.provision_retries += 1,
            Event::Job(..) | Event::Created(_) => {}
        }
    }

    // Time to a runner, per row, per repository and in all.
    let mut by_repo_waits: BTreeMap<String, Waits> = BTreeMap::new();
    let mut total_waits = vec![];
    for (k, w) in &waits {
        fill_waits(out.rows.get_mut(k).expect("a row per job"), w);
        by_repo_waits.entry(k.1.clone()).or_default().extend(w);
        total_waits.extend(w);
    }
    for ((_, repo), row) in &out.rows {
        add(out.by_repository.entry(repo.clone()).or_default(), row);
        add(&mut out.total, row);
    }
    for (repo, w) in &by_repo_waits {
        fill_waits(out.by_repository.get_mut(repo).expect("a repository per row"), w);
    }
    fill_waits(&mut out.total, &total_waits);

    let days: Vec<Date> = out.rows.keys().filter_map(|(d, _)| *d).collect();
    out.first_day = days.iter().min().copied();
    out.last_day = days.iter().max().copied();
    out.hourly = match (out.first_day, out.last_day) {
        (Some(a), Some(b)) => (b - a).whole_days() < 8,
        _ => true,
    };
    out.series = series(&all_waits, out.hourly);
    out.warm = warm_figures(&jobs, events, prices);
    out.distribution = vec![0; BUCKETS.len() + 1];
    for (_, w) in &all_waits {
        let i = BUCKETS.iter().position(|b| w < b).unwrap_or(BUCKETS.len());
        out.distribution[i] += 1;
    }
    out
}

/// Hits and misses apart, and the floor's idle cost; `None` when no line says `warm=`.
fn warm_figures(
    jobs: &HashMap<(String, u64), JobFacts>,
    events: &[(Option<OffsetDateTime>, Event)],
    prices: Prices,
) -> Option<WarmFigures> {
    let idle: Vec<u64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Sweep { warm_idle_s, .. } => *warm_idle_s,
            _ => None,
        })
        .collect();
    if idle.is_empty() && jobs.values().all(|f| f.warm.is_none()) {
        return None;
    }
    let mut hits: Vec<i64> = jobs
        .values()
        .filter(|f| f.ours && f.warm == Some(true))
        .filter_map(|f| f.wait)
        .collect();
    let mut misses: Vec<i64> = jobs
        .values()
        .filter(|f| f.ours && f.warm == Some(false))
        .filter_map(|f| f.wait)
        .collect();
    hits.sort_unstable();
    misses.sort_unstable();
    // The commonest size among deleted groups (sizes as tenths, to count them).
    let mut sizes: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (_, e) in events {
        if let Event::Deleted(Deleted {
            cpu: Some(c),
            memory_gb: Some(m),
            ..
        }) = e
        {
            *sizes.entry(((c * 10.0).round() as i64, (m * 10.0).round() as i64)).or_default() += 1;
        }
    }
    let (cpu, memory_gb) = sizes
        .into_iter()
        .max_by_key(|(size, n)| (*n, *size))
        .map(|((c, m), _)| (c as f64 / 10.0, m as f64 / 10.0))
        .unwrap_or((2.0, 4.0));
    let idle_runner_seconds: u64 = idle.iter().sum();
    Some(WarmFigures {
        hits: hits.len(),
        hit_p50: percentile(&hits, 50.0),
        hit_p95: percentile(&hits, 95.0),
        misses: misses.len(),
        miss_p50: percentile(&misses, 50.0),
        miss_p95: percentile(&misses, 95.0),
        idle_runner_seconds,
        cpu,
        memory_gb,
        idle_cost: idle_runner_seconds as f64 * (cpu * prices.vcpu_second + memory_gb * prices.gb_second),
    })
}

/// Adds a row's counts and sums into a total (not its percentiles).
fn add(total: &mut Row, row: &Row) {
    total.jobs += row.jobs;
    total.runner_seconds += row.runner_seconds;
    total.vcpu_hours += row.vcpu_hours;
    total.gb_hours += row.gb_hours;
    total.cost += row.cost;
    total.failed += row.failed;
    total.cancelled += row.cancelled;
    total.other_runner += row.other_runner;
    for (reason, n) in &row.swept {
        *total.swept.entry(reason.clone()).or_default() += n;
    }
}

fn fill_waits(row: &mut Row, w: &[(i64, Option<i64>)]) {
    let mut waits: Vec<i64> = w.iter().map(|(w, _)| *w).collect();
    waits.sort_unstable();
    let mut to_put: Vec<i64> = w.iter().filter_map(|(_, p)| *p).collect();
    to_put.sort_unstable();
    let mut put_to_start: Vec<i64> = w.iter().filter_map(|(w, p)| p.map(|p| (w - p).max(0))).collect();
    put_to_start.sort_unstable();
    row.waited = waits.len();
    row.wait_p50 = percentile(&waits, 50.0);
    row.wait_p95 = percentile(&waits, 95.0);
    row.wait_max = waits.last().copied();
    row.to_put_p50 = percentile(&to_put, 50.0);
    row.put_to_start_p50 = percentile(&put_to_start, 50.0);
}

fn series(waits: &[(OffsetDateTime, i64)], hourly: bool) -> Vec<Point> {
    let mut buckets: BTreeMap<OffsetDateTime, Vec<i64>> = BTreeMap::new();
    for (t, w) in waits {
        let t = t.to_offset(time::UtcOffset::UTC);
        let start = t.replace_time(time::Time::from_hms(if hourly { t.hour() } else { 0 }, 0, 0).expect("a time"));
        buckets.entry(start).or_default().push(*w);
    }
    buckets
        .into_iter()
        .map(|(at, mut w)| {
            w.sort_unstable();
            Point {
                at,
                jobs: w.len(),
                p50: percentile(&w, 50.0).unwrap_or(0),
                p95: percentile(&w, 95.0).unwrap_or(0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::lines::{Created, Deleted};
    use time::macros::{date, datetime};

    const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

    fn job(stage: Stage, repo: &str, id: u64, runner: Option<&str>, wait: Option<i64>, conclusion: Option<&str>) -> Event {
        Event::Job(
            stage,
            JobSeen {
                repository: repo.into(),
                job: id,
                created_at: Some(T0),
                lag_s: (stage == Stage::Queued).then_some(2),
                runner: runner.map(Into::into),
                ours: runner.map(|r| r.starts_with("aci-runner-")),
                runner_made_for: runner
                    .filter(|r| r.starts_with("aci-runner-") && *r != format!("aci-runner-{id}"))
                    .map(|_| "x".into()),
                wait_s: wait,
                conclusion: conclusion.map(Into::into),
                ..JobSeen::default()
            },
        )
    }

    fn created(repo: &str, id: u64, since: i64) -> Event {
        Event::Created(Created {
            runner: format!("aci-runner-{id}"),
            repository: Some(repo.into()),
            job: Some(id),
            created_at: Some(T0),
            since_created_s: Some(since),
            warm: None,
        })
    }

    fn deleted(by: &str, reason: &str, repo: &str, id: u64, lifetime: i64) -> Event {
        Event::Deleted(Deleted {
            by: by.into(),
            reason: reason.into(),
            name: format!("aci-runner-{id}"),
            repository: Some(repo.into()),
            job: Some(id),
            created_at: Some(T0),
            lifetime_s: Some(lifetime),
            cpu: Some(2.0),
            memory_gb: Some(4.0),
            ..Deleted::default()
        })
    }

    fn fig(events: Vec<Event>) -> Figures {
        let e: Vec<_> = events.into_iter().map(|e| (None, e)).collect();
        figures(&e, Prices::default())
    }

    /// A started job on `runner` that waited `wait` seconds, with `warm=hit|miss`.
    fn warm_job(id: u64, runner: &str, wait: i64, hit: bool) -> Event {
        match job(Stage::Started, "o/r", id, Some(runner), Some(wait), None) {
            Event::Job(stage, j) => Event::Job(stage, JobSeen { warm: Some(hit), ..j }),
            other => other,
        }
    }

    #[test]
    fn warm_runners_split_time_to_a_runner_into_hits_and_misses_and_price_the_idle_floor() {
        let f = fig(vec![
            warm_job(1, "aci-runner-w-abcdef01", 4, true),
            warm_job(2, "aci-runner-1", 6, true),
            warm_job(3, "aci-runner-3", 150, false),
            warm_job(4, "aci-runner-4", 170, false),
            warm_job(5, "aci-runner-5", 190, false),
            Event::Sweep {
                failed: 0,
                warm_idle_s: Some(3600),
            },
            Event::Sweep {
                failed: 0,
                warm_idle_s: Some(1800),
            },
            deleted("sweep", "idle", "o/r", 9, 60),
        ]);
        let w = f.warm.expect("the lines say warm=");
        assert_eq!((w.hits, w.hit_p50, w.hit_p95), (2, Some(4), Some(6)));
        assert_eq!((w.misses, w.miss_p50, w.miss_p95), (3, Some(170), Some(190)));
        assert_eq!(w.idle_runner_seconds, 5400);
        assert_eq!((w.cpu, w.memory_gb), (2.0, 4.0), "the deleted groups' size");
        let p = Prices::default();
        assert!((w.idle_cost - 5400.0 * (2.0 * p.vcpu_second + 4.0 * p.gb_second)).abs() < 1e-9);
        assert_eq!(
            fig(vec![job(Stage::Started, "o/r", 1, Some("aci-runner-1"), Some(5), None)]).warm,
            None,
            "no warm runners: no warm figures"
        );
        // A miss whose job line reads hit (it ran on a runner made for another job that
        // started first): the create's warm=miss, asked before, wins.
        let exact = match created("o/r", 3, 10) {
            Event::Created(c) => Event::Created(Created { warm: Some(false), ..c }),
            other => other,
        };
        let w = fig(vec![warm_job(3, "aci-runner-2", 150, true), exact]).warm.unwrap();
        assert_eq!((w.hits, w.misses), (0, 1));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        let cases: &[(&str, &[i64], f64, Option<i64>)] = &[
            ("p50 of 1..100 is 50", &v, 50.0, Some(50)),
            ("p95 of 1..100 is 95", &v, 95.0, Some(95)),
            ("p95 of one value is it", &[7], 95.0, Some(7)),
            ("p50 of two is the lower", &[1, 9], 50.0, Some(1)),
            ("nothing has no percentile", &[], 50.0, None),
        ];
        for (rule, values, p, want) in cases {
            assert_eq!(percentile(values, *p), *want, "{rule}");
        }
    }

    #[test]
    fn time_to_a_runner_counts_jobs_on_our_runners_only() {
        let f = fig(vec![
            job(Stage::Queued, "o/a", 1, None, None, None),
            job(Stage::Started, "o/a", 1, Some("aci-runner-1"), Some(100), None),
            job(Stage::Completed, "o/a", 1, Some("aci-runner-1"), Some(100), Some("success")),
            job(Stage::Started, "o/a", 2, Some("my-own-box"), Some(5), None),
            job(Stage::Completed, "o/a", 3, None, None, Some("cancelled")),
            job(Stage::Completed, "o/a", 4, Some("aci-runner-9"), Some(300), Some("failure")),
            created("o/a", 1, 30),
        ]);
        let row = &f.rows[&(Some(date!(2026 - 12 - 01)), "o/a".to_string())];
        let cases: &[(&str, usize, usize)] = &[
            ("every job is counted once, whatever its lines", row.jobs, 4),
            ("a job elsewhere or cancelled has no time to our runner", row.waited, 2),
            ("failure is a failure", row.failed, 1),
            ("cancelled is cancelled", row.cancelled, 1),
            ("a job on a runner made for another is counted", row.other_runner, 1),
        ];
        for (rule, got, want) in cases {
            assert_eq!(got, want, "{rule}");
        }
        assert_eq!((row.wait_p50, row.wait_p95, row.wait_max), (Some(100), Some(300), Some(300)));
        assert_eq!(
            (row.to_put_p50, row.put_to_start_p50),
            (Some(30), Some(70)),
            "split at the PUT, for the job that has one"
        );
        assert_eq!(f.phases["o/a"], (2.0, 28.0, 70.0), "delivery, webhook to PUT, PUT to start");
        assert_eq!(f.distribution.iter().sum::<usize>(), 2);
        assert_eq!(f.distribution[3], 1, "100 s falls in 90–120 s");
    }

    #[test]
    fn cost_is_lifetime_times_size_at_the_prices() {
        let f = fig(vec![
            deleted("release", "completed", "o/a", 1, 3600),
            deleted("sweep", "idle", "o/b", 2, 1800),
            deleted("sweep", "terminated", "o/b", 3, 0),
        ]);
        let a = &f.by_repository["o/a"];
        assert_eq!((a.runner_seconds, a.vcpu_hours, a.gb_hours), (3600, 2.0, 4.0));
        let want = 2.0 * LIST_VCPU_HOUR + 4.0 * LIST_GB_HOUR;
        assert!((a.cost - want).abs() < 1e-9, "{} vs {want}", a.cost);
        let b = &f.by_repository["o/b"];
        assert_eq!(b.swept, BTreeMap::from([("idle".into(), 1), ("terminated".into(), 1)]));
        assert_eq!(a.swept_total(), 0, "a release is not the sweeper");
        assert!((f.total.cost - (a.cost + b.cost)).abs() < 1e-12);
        let cheap = figures(
            &[(None, deleted("release", "completed", "o/a", 1, 3600))],
            Prices {
                vcpu_second: 0.0,
                gb_second: 1.0 / 3600.0,
            },
        );
        assert!((cheap.total.cost - 4.0).abs() < 1e-9, "prices are options");
    }

    #[test]
    fn a_group_is_charged_to_the_repository_of_the_job_it_ran() {
        // Org scope: a runner made for o/a's job 1 ran o/b's job 5.
        let f = fig(vec![
            job(Stage::Started, "o/b", 5, Some("aci-runner-1"), Some(40), None),
            deleted("sweep", "terminated", "o/a", 1, 600),
        ]);
        assert_eq!(f.by_repository["o/b"].runner_seconds, 600);
        assert!(!f.by_repository.contains_key("o/a"));
    }

    #[test]
    fn sweeps_and_provision_failures_are_counted() {
        let f = fig(vec![
            Event::Sweep {
                failed: 0,
                warm_idle_s: None,
            },
            Event::Sweep {
                failed: 2,
                warm_idle_s: None,
            },
            Event::ProvisionFailed { dropped: false },
            Event::ProvisionFailed { dropped: true },
        ]);
        assert_eq!((f.sweeps, f.sweeps_failed, f.provision_retries, f.provision_dropped), (2, 1, 1, 1));
    }

    #[test]
    fn the_series_is_hourly_over_a_week_and_daily_over_longer() {
        let at = |d: i64, h: i64, id: u64| {
            let mut e = job(Stage::Started, "o/a", id, Some("aci-runner-0"), Some(60), None);
            if let Event::Job(_, j) = &mut e {
                j.created_at = Some(T0 + time::Duration::days(d) + time::Duration::hours(h));
                j.runner_made_for = None;
            }
            e
        };
        let short = fig(vec![at(0, 0, 1), at(0, 1, 2), at(0, 1, 3)]);
        assert!(short.hourly);
        assert_eq!(short.series.iter().map(|p| p.jobs).collect::<Vec<_>>(), [1, 2]);
        let long = fig(vec![at(0, 0, 1), at(0, 5, 2), at(9, 0, 3)]);
        assert!(!long.hourly);
        assert_eq!(long.series.iter().map(|p| p.jobs).collect::<Vec<_>>(), [2, 1]);
    }
}
