//! `sweep`: the timer that removes what is left behind. It gathers what ARM and GitHub know,
//! lets the pure [`crate::rules::sweep::select`] decide, then deletes with bounded concurrency.
//! One failure does not stop the rest; whatever failed is met again on the next run.

use std::collections::{BTreeSet, HashSet};

use futures::StreamExt;

use super::{App, QUEUE_OUTPUT};
use crate::azure::arm::Group;
use crate::clock::parse_rfc3339;
use crate::config::Scope;
use crate::github::{Credential, Runner};
use crate::host::{self, InvokeResponse, Outcome};
use crate::http::CallError;
use crate::log;
use crate::rules::group::{created_at, is_managed, is_warm, tag, target_name, webhook_request};
use crate::rules::jobs::still_queued;
use crate::rules::names::{self, Name};
use crate::rules::reconcile::{self, ListedJob};
use crate::rules::request::Origin;
use crate::rules::request::{Create, Request};
use crate::rules::sweep::{ghost_candidates, select, Deletion, GroupView, Reason, Rules, RunnerView};
use crate::rules::timeline::{self, Size};
use crate::rules::warm;
use crate::target::valid_repository;
use crate::target::Target;

/// Calls in flight at once (ARM reads, GitHub lists, deletes).
pub const CONCURRENCY: usize = 16;
/// The longest one sweep may take, inside the host's `functionTimeout` (5 min).
pub const SWEEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(240);
/// The timer trigger binding of `sweep`.
pub const TIMER_TRIGGER: &str = "timer";

/// How one deletion ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Done,
    DryRun,
    /// Deregistering failed, so the idle group was kept (GitHub answers 422 when the runner
    /// just took a job).
    Kept(String),
    Failed(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Done => f.write_str("done"),
            Ended::DryRun => f.write_str("would do"),
            Ended::Kept(why) => write!(f, "kept ({why})"),
            Ended::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// What one sweep saw and did.
#[derive(Debug, Default)]
pub struct Report {
    pub groups_seen: usize,
    pub runners_seen: usize,
    pub deletions: Vec<(Deletion, Ended)>,
    /// Reads that failed (lists, states, job lookups); what depended on them was left alone.
    pub read_failures: Vec<String>,
    /// Runner requests made anew: a webhook group that ended before its job started (an
    /// image that would not pull, a container that died) leaves a job queued with nobody to
    /// run it, so the job gets another runner.
    pub requeue: Vec<Create>,
    /// Runner requests for queued jobs no delivery asked for (a delivery GitHub failed to make).
    pub reconciled: Vec<Create>,
    /// App webhook deliveries asked for again: their first delivery failed. `None` in PAT
    /// mode, where there is no App webhook (the summary line says `redelivered=0`).
    pub redelivered: Option<Vec<u64>>,
    /// Set when `WARM_RUNNERS` is: what the warm floor did.
    pub warm: Option<WarmReport>,
    pub dry_run: bool,
}

/// What one sweep did for the warm floor.
#[derive(Debug, Default)]
pub struct WarmReport {
    /// The floors now, summed over targets (0 outside `WARM_HOURS`).
    pub floor: u32,
    /// Warm runners asked for (put on the queue for `provision`, which creates them).
    pub requested: Vec<Create>,
    /// Warm groups the floor keeps, and the seconds they were up since the previous sweep (or
    /// since they were made, when the host does not say when that was).
    pub idle_seconds: u64,
}

impl Report {
    pub fn count(&self, reason: Reason) -> usize {
        self.deletions
            .iter()
            .filter(|(d, e)| d.reason == reason && matches!(e, Ended::Done | Ended::DryRun))
            .count()
    }

    pub fn failed(&self) -> usize {
        self.read_failures.len() + self.deletions.iter().filter(|(_, e)| matches!(e, Ended::Failed(_))).count()
    }

    /// The one line an operator alerts on. With `WARM_RUNNERS` set it also says what the warm
    /// floor did: the floors now, warm runners asked for, rotated, removed as surplus, and the
    /// floor's idle runner-seconds.
    pub fn summary(&self) -> String {
        let kept = self.deletions.iter().filter(|(_, e)| matches!(e, Ended::Kept(_))).count();
        let warm = match &self.warm {
            None => String::new(),
            Some(w) => {
                let removed = self
                    .deletions
                    .iter()
                    .filter(|(d, e)| d.reason == Reason::Idle && d.warm && matches!(e, Ended::Done | Ended::DryRun))
                    .count();
                format!(
                    " warm_floor={} warm_requested={} warm_rotated={} warm_removed={removed} warm_idle_s={}",
                    w.floor,
                    w.requested.len(),
                    self.count(Reason::Rotated),
                    w.idle_seconds
                )
            }
        };
        format!(
            "sweep groups={} runners={} deleted_terminated={} deleted_lifetime={} deleted_idle={} deregistered_ghosts={} kept={} requeued={} reconciled={} redelivered={}{warm} failed={} dry_run={}",
            self.groups_seen,
            self.runners_seen,
            self.count(Reason::Terminated),
            self.count(Reason::Lifetime),
            self.count(Reason::Idle),
            self.count(Reason::Ghost),
            kept,
            self.requeue.len(),
            self.reconciled.len(),
            self.redelivered.as_ref().map_or(0, Vec::len),
            self.failed(),
            self.dry_run
        )
    }
}

fn describe(d: &Deletion) -> String {
    let mut parts = vec![format!("reason={}", d.reason)];
    if let Some(r) = &d.deregister {
        parts.push(format!("deregister={} ({})", r.name, r.target));
    }
    if let Some(g) = &d.group {
        parts.push(format!("delete={g}"));
    }
    parts.join(" ")
}

/// One sweep. With `dry_run` nothing is written; the plan is in the report.
pub async fn sweep(app: &App, dry_run: bool) -> Report {
    sweep_since(app, dry_run, None).await
}

/// One sweep, knowing when the previous one ran (`since`, for the warm floor's idle seconds).
pub async fn sweep_since(app: &App, dry_run: bool, since: Option<time::OffsetDateTime>) -> Report {
    let cfg = &app.cfg;
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let now = (app.clock)();
    let floors = warm::floors_now(cfg.warm.as_ref(), now);

    // 1. Managed groups, then each one's state (the list carries no instance view).
    let listed = match app.arm.list_groups().await {
        Ok(g) => g,
        Err(e) => {
            report.read_failures.push(e.to_string());
            return report;
        }
    };
    // Ours: managed, and named with this deployment's prefix (a sibling deployment in the same
    // resource group has its own sweeper).
    let all_names: HashSet<String> = listed.iter().map(|g| g.name.clone()).collect();
    let managed: Vec<Group> = listed
        .into_iter()
        .filter(|g| is_managed(&g.tags) && names::is_ours(&cfg.name_prefix, &g.name))
        .collect();
    let states = futures::stream::iter(managed.into_iter().map(|g| state_of(app, g)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut groups = Vec::new();
    let mut unknown_state = HashSet::new();
    for (g, err) in states {
        if let Some(e) = err {
            report.read_failures.push(e);
            if let Some(g) = &g {
                unknown_state.insert(g.name.clone());
            }
        }
        groups.extend(g);
    }
    report.groups_seen = groups.len();

    // 2. Our runners, in every repository or organization that may hold one.
    // Each target once: GitHub's names compare case-insensitively.
    let allowed = match cfg.scope {
        Scope::Repo => &cfg.allowed_repositories,
        Scope::Org { .. } => &cfg.allowed_owners,
    };
    let targets: BTreeSet<String> = groups
        .iter()
        .filter_map(|g| target_name(&cfg.scope, &g.tags))
        .chain(allowed.iter().cloned())
        .chain(floors.keys().cloned())
        .map(|t| (t.to_ascii_lowercase(), t))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    let mut unlisted: HashSet<String> = HashSet::new();
    let mut runners: Vec<RunnerView> = Vec::new();
    let auth = match app.github_credential().await {
        Ok(p) => Some(p),
        Err(e) => {
            report.read_failures.push(e);
            unlisted.extend(targets.iter().cloned());
            None
        }
    };
    if let Some(auth) = &auth {
        let lists = futures::stream::iter(targets.iter().cloned().map(|t| runners_of(app, auth, t)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (t, result) in lists {
            match result {
                Ok(rs) => runners.extend(
                    rs.into_iter()
                        .filter(|r| names::is_ours(&cfg.name_prefix, &r.name))
                        .map(|r| RunnerView {
                            id: r.id,
                            online: r.status.eq_ignore_ascii_case("online"),
                            busy: r.busy,
                            name: r.name,
                            target: t.clone(),
                        }),
                ),
                Err(e) => {
                    report.read_failures.push(e.to_string());
                    unlisted.insert(t);
                }
            }
        }
    }
    report.runners_seen = runners.len();

    // A group whose state could not be read is judged by its age only if its
    // runner is known; it is never taken for terminated.
    let views: Vec<GroupView> = groups
        .iter()
        .map(|g| GroupView {
            name: g.name.clone(),
            managed: is_managed(&g.tags),
            ours: names::is_ours(&cfg.name_prefix, &g.name),
            terminal: g.terminal() && !unknown_state.contains(&g.name),
            deleting: g.deleting(),
            created_at: created_at(&g.tags, g.created),
            target: target_name(&cfg.scope, &g.tags),
            warm: is_warm(&g.tags),
        })
        .collect();

    // 3. Ghost candidates that what they were made for may still need (one call each).
    let rules = Rules {
        now,
        idle_timeout: cfg.idle_timeout,
        max_lifetime: cfg.max_lifetime,
        org_scope: cfg.scope.is_org(),
        floors,
    };
    let mut still_needed: HashSet<String> = HashSet::new();
    if let Some(auth) = &auth {
        let candidates = ghost_candidates(&views, &runners, &rules);
        let checks = futures::stream::iter(candidates.into_iter().cloned().map(|r| still_needed_by(app, auth, r)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (name, needed) in checks {
            match needed {
                Ok(false) => {}
                Ok(true) => {
                    still_needed.insert(name);
                }
                Err(e) => {
                    report.read_failures.push(e.to_string());
                    still_needed.insert(name);
                }
            }
        }
    }

    // 4. Decide, and what the warm floor lacks once the deletions are done.
    let deletions = select(&views, &runners, &unlisted, &still_needed, &rules);
    if cfg.warm.is_some() {
        let unlisted_lower: HashSet<String> = unlisted.iter().map(|t| t.to_ascii_lowercase()).collect();
        let removed: HashSet<String> = deletions.iter().filter_map(|d| d.group.clone()).collect();
        let kept = warm::kept(&views, &runners, &unlisted_lower, &rules);
        let mut w = WarmReport {
            floor: rules.floors.values().sum(),
            idle_seconds: warm::idle_seconds(&views, &kept, since, now),
            ..WarmReport::default()
        };
        for (target, missing) in warm::top_up(&views, &runners, &unlisted_lower, &removed, &rules) {
            for i in 0..missing {
                let seed = format!("{target} {} {i}", now.unix_timestamp_nanos());
                let c = Create {
                    runner: names::warm_runner_name(&cfg.name_prefix, &seed),
                    repository: target.clone(),
                    origin: Origin::Warm,
                    job: None,
                    run: 0,
                    attempt: 0,
                    labels: cfg.runner_labels.clone(),
                    created_at: None,
                };
                log::info(
                    if dry_run { "sweep.would-warm" } else { "sweep.warm" },
                    &[("runner", &c.runner), ("target", &target)],
                );
                w.requested.push(c);
            }
        }
        report.warm = Some(w);
    }

    // 5. Act.
    let auth = auth.as_ref();
    let ended = futures::stream::iter(deletions.into_iter().map(|d| execute(app, auth, d, dry_run)))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    report.deletions = ended;
    log_deleted_groups(app, &report, &groups);

    // 6. Jobs whose container ended before it took them get another runner.
    if let Some(auth) = auth {
        let candidates: Vec<Create> = report
            .deletions
            .iter()
            .filter(|(d, e)| d.reason == Reason::Terminated && matches!(e, Ended::Done | Ended::DryRun))
            .filter_map(|(d, _)| groups.iter().find(|g| Some(&g.name) == d.group.as_ref()))
            .filter_map(|g| webhook_request(&g.name, &g.tags, &cfg.runner_labels))
            .collect();
        let checks = futures::stream::iter(candidates.into_iter().map(|c| job_still_queued(app, auth, c)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (c, queued) in checks {
            match queued {
                Ok(true) => {
                    log::info(
                        if dry_run { "sweep.would-requeue" } else { "sweep.requeued" },
                        &[("runner", &c.runner), ("job", &c.job.unwrap_or(0))],
                    );
                    report.requeue.push(c);
                }
                Ok(false) => {}
                Err(e) => report.read_failures.push(e.to_string()),
            }
        }
    }

    // 7. Deliveries GitHub never made: queued jobs of ours with no group of their name.
    if let Some(auth) = auth {
        let repositories: BTreeSet<String> = groups
            .iter()
            .filter_map(|g| g.tags.get(tag::REPOSITORY).filter(|r| valid_repository(r)).cloned())
            .chain(cfg.allowed_repositories.iter().cloned())
            .map(|r| (r.to_ascii_lowercase(), r))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        let listed = futures::stream::iter(repositories.into_iter().map(|r| queued_jobs(app, auth, r)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut jobs = vec![];
        for (found, failures) in listed {
            jobs.extend(found);
            report.read_failures.extend(failures);
        }
        // Taken: every group's name, what was requeued above, and the requests waiting here
        // for room (their job is queued and has no group, but a runner is on its way).
        let mut taken = all_names;
        taken.extend(report.requeue.iter().map(|c| c.runner.clone()));
        taken.extend(app.waiting.names((app.clock)()));
        for c in reconcile::select(&jobs, &taken, (app.clock)(), cfg.reconcile_after, cfg) {
            log::info(
                if dry_run { "sweep.would-reconcile" } else { "sweep.reconciled" },
                &[("runner", &c.runner), ("repository", &c.repository), ("job", &c.job.unwrap_or(0))],
            );
            report.reconciled.push(c);
        }
    }

    // 8. App mode: the App webhook's failed deliveries, delivered again.
    if let Some(auth) = &app.github_app {
        let (redelivered, failures) = super::redeliver::failed_deliveries(app, auth, dry_run).await;
        report.redelivered = Some(redelivered);
        report.read_failures.extend(failures);
    }
    report
}

/// The timeline: one `group.deleted` line per group this sweep removed, with what it cost.
fn log_deleted_groups(app: &App, report: &Report, groups: &[Group]) {
    let now = (app.clock)();
    for (d, _) in report.deletions.iter().filter(|(_, e)| *e == Ended::Done) {
        let Some(g) = d.group.as_ref().and_then(|n| groups.iter().find(|g| &g.name == n)) else {
            continue;
        };
        let size = Size {
            cpu: g.cpu,
            memory_gb: g.memory_gb,
        };
        let line = timeline::group_deleted("sweep", d.reason.as_str(), &g.name, None, &g.tags, g.created, size, now);
        log::info_text(line.event, &line.fields);
    }
}

/// The jobs of a repository's runs that are not completed: one conditional call for the runs,
/// one per such run for its jobs.
async fn queued_jobs(app: &App, auth: &Credential, repository: String) -> (Vec<ListedJob>, Vec<String>) {
    let runs = match app.github.active_runs(auth, &repository).await {
        Ok(r) => r,
        Err(e) => return (vec![], vec![e.to_string()]),
    };
    let (mut jobs, mut failures) = (vec![], vec![]);
    for run in runs {
        match app.github.run_jobs(auth, &repository, run).await {
            Ok(list) => jobs.extend(list.into_iter().map(|j| ListedJob {
                id: j.id,
                run_id: j.run_id,
                run_attempt: j.run_attempt.unwrap_or(1),
                repository: repository.clone(),
                status: j.status.unwrap_or_default(),
                labels: j.labels,
                created_at: j.created_at.as_deref().and_then(parse_rfc3339),
            })),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (jobs, failures)
}

async fn job_still_queued(app: &App, auth: &Credential, c: Create) -> (Create, Result<bool, CallError>) {
    let status = app.github.job_status(auth, &c.repository, c.job.unwrap_or(0)).await;
    (c, status.map(|s| s.as_deref().is_some_and(still_queued)))
}

async fn state_of(app: &App, g: Group) -> (Option<Group>, Option<String>) {
    if g.terminal() {
        return (Some(g), None);
    }
    let began = std::time::Instant::now();
    match app.arm.get_group(&g.name).await {
        Ok(Some(full)) => {
            app.liveness.record(&g.name, !full.terminal(), began);
            (Some(Group { tags: g.tags, ..full }), None)
        }
        Ok(None) => {
            app.liveness.record(&g.name, false, began);
            (None, None)
        }
        Err(e) => (Some(g), Some(e.to_string())),
    }
}

async fn runners_of(app: &App, auth: &Credential, t: String) -> (String, Result<Vec<Runner>, CallError>) {
    let result = app.github.list_runners(auth, Target::named(&app.cfg.scope, &t)).await;
    (t, result)
}

/// Does what a ghost was made for still need it? A webhook runner's job still queued, or a
/// workflow-step runner's run not yet completed. A name we cannot read back counts as needed.
async fn still_needed_by(app: &App, auth: &Credential, r: RunnerView) -> (String, Result<bool, CallError>) {
    let needed = match names::parse(&app.cfg.name_prefix, &r.name) {
        Some(Name::Job(job)) => app
            .github
            .job_status(auth, &r.target, job)
            .await
            .map(|s| s.as_deref().is_some_and(still_queued)),
        Some(Name::Workflow { run, .. }) => app
            .github
            .run_status(auth, &r.target, run)
            .await
            .map(|s| s.is_some_and(|s| s != "completed")),
        // A warm runner is for no job: one with no group is only in the way.
        Some(Name::Warm) => Ok(false),
        None => Ok(true),
    };
    (r.name, needed)
}

async fn execute(app: &App, auth: Option<&Credential>, d: Deletion, dry_run: bool) -> (Deletion, Ended) {
    let e = execute_one(app, auth, &d, dry_run).await;
    (d, e)
}

async fn execute_one(app: &App, auth: Option<&Credential>, d: &Deletion, dry_run: bool) -> Ended {
    if dry_run {
        log::info("sweep.would-delete", &[("plan", &describe(d))]);
        return Ended::DryRun;
    }
    if let (Some(r), Some(auth)) = (&d.deregister, auth) {
        if let Err(e) = app.github.delete_runner(auth, Target::named(&app.cfg.scope, &r.target), r.id).await {
            if d.group.is_none() {
                log::error("sweep.failed", &[("plan", &describe(d)), ("error", &e)]);
                return Ended::Failed(e.to_string());
            }
            if d.keep_group_if_deregister_fails {
                let why = if e.status() == Some(422) {
                    "runner took a job".to_string()
                } else {
                    e.to_string()
                };
                log::info("sweep.kept", &[("plan", &describe(d)), ("why", &why)]);
                return if e.is_transient() { Ended::Failed(why) } else { Ended::Kept(why) };
            }
            log::error("sweep.deregister-failed", &[("plan", &describe(d)), ("error", &e)]);
        }
    }
    if let Some(g) = &d.group {
        if let Err(e) = app.arm.delete_group(g).await {
            log::error("sweep.failed", &[("plan", &describe(d)), ("error", &e)]);
            return Ended::Failed(e.to_string());
        }
    }
    log::info("sweep.deleted", &[("plan", &describe(d))]);
    Ended::Done
}

/// The timer function.
pub async fn run(app: &App, envelope: &[u8]) -> Outcome {
    let (past_due, since) = match host::timer_info(envelope, TIMER_TRIGGER) {
        Ok(t) => (t.is_past_due, t.last()),
        Err(e) => {
            log::error("sweep.bad-envelope", &[("error", &e)]);
            (false, None)
        }
    };
    let report = match tokio::time::timeout(SWEEP_BUDGET, sweep_since(app, app.cfg.dry_run, since)).await {
        Ok(r) => r,
        Err(_) => {
            // Nothing is lost: the next run sees what this one did not get to.
            log::error(
                "sweep.gave-up",
                &[
                    ("after_s", &SWEEP_BUDGET.as_secs()),
                    ("why", &"ARM or GitHub too slow; the next run goes on"),
                ],
            );
            return Outcome::Done(InvokeResponse::default());
        }
    };
    for f in &report.read_failures {
        log::error("sweep.read-failed", &[("error", f)]);
    }
    let line = format!("{} past_due={past_due}", report.summary());
    if report.failed() > 0 {
        log::error(&line, &[]);
    } else {
        log::info(&line, &[]);
    }
    let mut response = InvokeResponse::default();
    let requests: Vec<String> = report
        .requeue
        .iter()
        .chain(&report.reconciled)
        .chain(report.warm.iter().flat_map(|w| &w.requested))
        .map(|c| Request::Create(c.clone()).to_message())
        .collect();
    if !report.dry_run && !requests.is_empty() {
        response = response.with_queue(QUEUE_OUTPUT, requests);
    }

    Outcome::Done(response)
}
