//! `provision`: create (JIT config + container group) or release (deregister + delete).
//!
//! Transient failures (429, 5xx, timeouts, no token) fail the invocation so the queue
//! retries it; permanent ones are logged and the message is dropped.

use std::time::{Duration, Instant};

use super::{App, QUEUE_TRIGGER};
use crate::azure::arm::Group;
use crate::github::Credential;
use crate::host::{self, InvokeResponse, Outcome};
use crate::http::CallError;
use crate::log;
use crate::rules::admission::{Limits, Refusal, Seen};
use crate::rules::capacity::Tally;
use crate::rules::group::{container_group_body, created_at, is_managed, made_for, tag, target_name};
use crate::rules::jobs::still_queued;
use crate::rules::names;
use crate::rules::request::{Create, Origin, Release, Request};
use crate::rules::timeline::{self, Size};
use crate::rules::warm;
use crate::secret::Secret;

/// The longest one invocation may take. Each outbound call has its own timeout and retries, and
/// a create makes several calls; past this the invocation fails and the queue retries,
/// well inside `functionTimeout` (5 min in host.json), where the host would restart the handler
/// with every invocation in flight. What a cut-short create leaves is taken up by the retry (a
/// registration without a group is replaced) or by the sweeper.
pub const INVOCATION_BUDGET: Duration = Duration::from_secs(240);

/// How one message ended.
#[derive(Debug)]
enum Done {
    /// `warm`: with `WARM_RUNNERS` set, whether a webhook job found a runner already waiting
    /// (`hit`: another runner of ours took it before this create, which replaces that runner).
    Created {
        warm: Option<Hit>,
    },
    Exists,
    UnderWay,
    /// Another request for the same runner is waiting here for room.
    Duplicate,
    DryRun,
    JobNotQueued(String),
    RunCompleted(String),
    Released {
        deregistered: bool,
        deleted: bool,
    },
    KeptBusy,
    NotManaged,
    /// The group was made for another repository or organization (named here).
    OtherTarget(String),
    /// A warm runner no longer wanted: its target has no floor now (outside `WARM_HOURS`, or
    /// `WARM_RUNNERS` changed).
    WarmNotWanted,
    /// A warm runner not made: no room under the caps, ACI's capacity or GitHub's limits (what
    /// would make a job's create wait). It does not wait: the next sweep asks again if the floor
    /// still lacks it, and a job's create never queues behind it.
    WarmNoRoom(String),
}

/// Did a webhook job find a runner already waiting?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    Hit,
    Miss,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hit::Hit => "hit",
            Hit::Miss => "miss",
        })
    }
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Created { .. } => f.write_str("created"),
            Done::Exists => f.write_str("exists"),
            Done::UnderWay => f.write_str("exists: another invocation here is creating it"),
            Done::Duplicate => f.write_str("dropped: a request for this runner is already waiting here"),
            Done::DryRun => f.write_str("dry-run"),
            Done::JobNotQueued(status) => write!(f, "dropped: job is {status}, no longer queued"),
            Done::RunCompleted(status) => write!(f, "dropped: run is {status}"),
            Done::Released { deregistered, deleted } => write!(f, "released deregistered={deregistered} deleted={deleted}"),
            Done::KeptBusy => f.write_str("kept: runner is busy with another job"),
            Done::NotManaged => f.write_str("left alone: group is not managed-by=aci-runners"),
            Done::OtherTarget(t) => write!(f, "left alone: group was made for {t}, not for this delivery's target"),
            Done::WarmNotWanted => f.write_str("dropped: no warm floor for its target now"),
            Done::WarmNoRoom(why) => write!(f, "skipped: {why}; the next sweep asks again"),
        }
    }
}

#[derive(Debug)]
enum Failure {
    /// Something failed that may work later: the invocation fails and the queue redelivers.
    Retry(String),
    /// Nothing failed, but the create cannot go ahead yet (`MAX_RUNNERS`, an ACI quota or
    /// capacity limit, GitHub's rate limit, an earlier group of the name still going): the
    /// invocation fails on purpose and the queue offers it again a minute later, for as long
    /// as the job is queued (host.json's `maxDequeueCount` covers GitHub's 24 h).
    Wait(String),
    /// Will not succeed: logged, message dropped.
    Drop(String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        if e.rate_limited() {
            Failure::Wait(format!("GitHub's rate limit: {e}"))
        } else if e.is_capacity() {
            Failure::Wait(format!("Azure capacity or quota: {e}"))
        } else if e.is_transient() {
            Failure::Retry(e.to_string())
        } else {
            Failure::Drop(e.to_string())
        }
    }
}

pub async fn run(app: &App, envelope: &[u8]) -> Outcome {
    let item = match host::queue_item(envelope, QUEUE_TRIGGER) {
        Ok(i) => i,
        Err(e) => {
            log::error("provision.dropped", &[("error", &e)]);
            return Outcome::Done(InvokeResponse::default());
        }
    };
    let request: Request = match serde_json::from_str(&item.text) {
        Ok(r) => r,
        Err(e) => {
            log::error("provision.dropped", &[("error", &format!("unreadable message: {e}"))]);
            return Outcome::Done(InvokeResponse::default());
        }
    };
    // A message that does not fit our grammar never reaches GitHub or ARM, and is not retried.
    if let Err(e) = request.check(&app.cfg.name_prefix) {
        log::error(
            "provision.dropped",
            &[("op", &request.op()), ("error", &format!("message refused: {e}"))],
        );
        return Outcome::Done(InvokeResponse::default());
    }
    let runner = request.runner().to_string();
    let attempt = item.dequeue_count;
    let is_create = matches!(request, Request::Create(_));
    // A copy of a request waiting here (a sweep's reconciliation or a redelivered webhook that
    // asked again for a job whose create waits for room) would only wait beside it.
    if is_create && attempt == 1 && app.waiting.is_waiting(&runner, (app.clock)()) {
        log::info(
            "provision",
            &[
                ("op", &request.op()),
                ("runner", &runner),
                ("attempt", &attempt),
                ("result", &Done::Duplicate),
            ],
        );
        return Outcome::Done(InvokeResponse::default());
    }
    let work = async {
        match &request {
            Request::Create(c) => create(app, c, attempt).await,
            Request::Release(r) => release(app, r).await,
        }
    };
    let result = tokio::time::timeout(INVOCATION_BUDGET, work).await.unwrap_or_else(|_| {
        Err(Failure::Retry(format!(
            "gave up after {} s, before the host's functionTimeout; the queue retries",
            INVOCATION_BUDGET.as_secs()
        )))
    });
    // A warm runner never waits (a cap, ACI's capacity, GitHub's limits): the next sweep asks
    // again if its floor still lacks it, and no job's create queues behind it.
    let warm = matches!(&request, Request::Create(c) if c.origin == Origin::Warm);
    let result = match result {
        Err(Failure::Wait(why)) if warm => Ok(Done::WarmNoRoom(why)),
        other => other,
    };
    let op = request.op();
    if is_create {
        match &result {
            Err(Failure::Wait(_)) => app.waiting.waited(&runner, (app.clock)()),
            Err(Failure::Retry(_)) => {}
            Ok(_) | Err(Failure::Drop(_)) => app.waiting.ended(&runner),
        }
    }
    match result {
        Ok(done) => {
            let mut line = vec![
                ("op", op.to_string()),
                ("runner", runner),
                ("attempt", attempt.to_string()),
                ("result", done.to_string()),
            ];
            if let (Done::Created { warm }, Request::Create(c)) = (&done, &request) {
                line.extend(timeline::created_fields(&c.repository, c.job, c.created_at, (app.clock)()));
                if let Some(hit) = warm {
                    line.push(("warm", hit.to_string()));
                }
            }
            log::info_text("provision", &line);
            Outcome::Done(InvokeResponse::default())
        }
        Err(Failure::Retry(e)) => {
            log::error(
                "provision.retry",
                &[("op", &op), ("runner", &runner), ("attempt", &attempt), ("error", &e)],
            );
            Outcome::Fail
        }
        Err(Failure::Wait(why)) => {
            log::info(
                "provision.waiting",
                &[("op", &op), ("runner", &runner), ("attempt", &attempt), ("why", &why)],
            );
            Outcome::Fail
        }
        Err(Failure::Drop(e)) => {
            log::error(
                "provision.dropped",
                &[("op", &op), ("runner", &runner), ("attempt", &attempt), ("error", &e)],
            );
            Outcome::Done(InvokeResponse::default())
        }
    }
}

/// Groups of ours that count against `MAX_RUNNERS` (managed, named with our prefix, not
/// terminated or failed), and how many of them were made for `repository`. The list has no
/// instance view, so when the list alone says a cap is reached, groups are read (oldest first,
/// a read shared by the creates whose lists came before it: [`super::liveness`]) until there is
/// room or the cap is certain ([`Tally`]). A group that could not be read counts as live: a
/// failed read neither passes the cap nor fails the try.
async fn live_groups(app: &App, listed: &[Group], list_started: Instant, repository: &str) -> (usize, usize) {
    let cfg = &app.cfg;
    let mut candidates: Vec<&Group> = listed
        .iter()
        .filter(|g| is_managed(&g.tags) && names::is_ours(&cfg.name_prefix, &g.name) && !g.terminal())
        .collect();
    let mine = |g: &Group| g.tags.get(tag::REPOSITORY).is_some_and(|r| r.eq_ignore_ascii_case(repository));
    let in_repository = candidates.iter().filter(|g| mine(g)).count();
    let share = cfg.max_runners_per_repository.map(|n| n as usize);
    let mut tally = Tally::new(candidates.len(), in_repository, cfg.max_runners as usize, share);
    if tally.settled() {
        return tally.counts();
    }
    app.liveness.keep_only(&listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>());
    // Oldest first: the likeliest to have finished.
    candidates.sort_by_key(|g| created_at(&g.tags, g.created));
    for g in candidates {
        if tally.settled() {
            break;
        }
        let read = app.liveness.live(&g.name, list_started, || async {
            Ok::<_, CallError>(app.arm.get_group(&g.name).await?.is_some_and(|f| !f.terminal()))
        });
        tally.read(mine(g), read.await.unwrap_or(true));
    }
    tally.counts()
}

/// While a create waits (capacity, an old group in the way), whether its job is still queued is
/// asked every this many tries (a try a minute: every 15 minutes), and always right before a
/// runner is registered. So a waiting job costs ARM one list a minute and GitHub at most four
/// calls an hour.
pub const STATUS_EVERY: u32 = 15;

/// The warm floor of the target a request's runner goes to, now.
fn floor_now(app: &App, c: &Create) -> u32 {
    warm::floor_of(app.cfg.warm.as_ref(), app.target(&c.repository).name(), (app.clock)())
}

/// With `WARM_RUNNERS` set, a webhook job another runner of ours took before its own create:
/// a hit. Its create goes on while the target has a floor: it replaces the runner that took it.
fn taken_by_another_of_ours(app: &App, c: &Create, runner: Option<&str>) -> bool {
    app.cfg.warm.is_some() && warm::found_waiting(&app.cfg.name_prefix, &c.runner, runner)
}

/// Is what the request was made for still waiting for a runner? A webhook job still queued (or,
/// with a warm floor, taken by a runner of ours that this create replaces), a workflow-step
/// request's run not completed (its runner serves later jobs of the run), a warm runner's
/// target still with a floor. `hit` is set when a webhook job's status was read.
async fn still_wanted(app: &App, auth: &Credential, c: &Create, hit: &mut Option<Hit>) -> Result<Result<(), Done>, Failure> {
    if c.origin == Origin::Warm {
        return Ok(if floor_now(app, c) > 0 { Ok(()) } else { Err(Done::WarmNotWanted) });
    }
    Ok(match (c.origin, c.job) {
        (Origin::Webhook, Some(job)) => match app.github.job(auth, &c.repository, job).await? {
            Some(j) if still_queued(&j.status) => {
                *hit = Some(Hit::Miss);
                Ok(())
            }
            Some(j) if taken_by_another_of_ours(app, c, j.runner_name.as_deref()) && floor_now(app, c) > 0 => {
                *hit = Some(Hit::Hit);
                Ok(())
            }
            other => Err(Done::JobNotQueued(other.map(|j| j.status).unwrap_or_else(|| "gone".into()))),
        },
        _ => match app.github.run_status(auth, &c.repository, c.run).await? {
            Some(s) if s != "completed" => Ok(()),
            other => Err(Done::RunCompleted(other.unwrap_or_else(|| "gone".into()))),
        },
    })
}

/// A group of the request's name is there already. Is it a runner for it?
/// - being deleted (a DELETE was accepted): wait for it to go, then make a new one;
/// - ended (the container exited, or ARM failed to make it) while its job is still queued: it
///   will never run that job; delete it, wait for it to go, then make a new one;
/// - anything else (creating, pending, running): it is the job's runner.
async fn existing(
    app: &App,
    auth: &Credential,
    c: &Create,
    listed: &Group,
    asked: &mut bool,
    hit: &mut Option<Hit>,
) -> Result<Done, Failure> {
    if listed.deleting() {
        return Err(Failure::Wait(
            "an earlier group of this name is being deleted; a new one follows once it is gone".into(),
        ));
    }
    // The list has no instance view: only a GET says whether the container has exited.
    let group = if listed.terminal() {
        Some(listed.clone())
    } else {
        app.arm.get_group(&c.runner).await?
    };
    let Some(group) = group else {
        return Err(Failure::Wait(
            "the group of this name went while we looked; the next try makes a new one".into(),
        ));
    };
    if group.deleting() {
        return Err(Failure::Wait(
            "an earlier group of this name is being deleted; a new one follows once it is gone".into(),
        ));
    }
    if !group.terminal() {
        return Ok(Done::Exists);
    }
    // A workflow-step runner serves one job and exits: its request was served.
    if c.origin != Origin::Webhook {
        return Ok(Done::Exists);
    }
    *asked = true;
    if let Err(done) = still_wanted(app, auth, c, hit).await? {
        return Ok(done);
    }
    if app.cfg.dry_run {
        log::info("dry-run.arm.delete-container-group", &[("name", &c.runner)]);
        return Ok(Done::DryRun);
    }
    app.arm.delete_group(&c.runner).await?;
    Err(Failure::Wait(
        "the earlier group of this name ended before its job ran; it is being deleted and a new one follows".into(),
    ))
}

async fn create(app: &App, c: &Create, dequeue_count: u32) -> Result<Done, Failure> {
    let cfg = &app.cfg;
    let auth = app.github_credential().await.map_err(Failure::Retry)?;
    let target = app.target(&c.repository);
    let group_id = cfg.scope.runner_group_id();
    let mut hit = None;
    if c.origin == Origin::Warm {
        // A warm runner's target is the scope's: `owner/name` in repo scope, `owner` in org scope.
        if c.repository.contains('/') == cfg.scope.is_org() {
            return Err(Failure::Drop(format!("warm target {} does not fit RUNNER_SCOPE", c.repository)));
        }
        if let Err(done) = still_wanted(app, &auth, c, &mut hit).await? {
            return Ok(done);
        }
    }
    // A retried message may be stale: the job may have started elsewhere or been cancelled.
    // Asked now and then while waiting, and always before registering (below).
    let mut asked = false;
    if dequeue_count > 1 && (dequeue_count - 2).is_multiple_of(STATUS_EVERY) {
        asked = true;
        if let Err(done) = still_wanted(app, &auth, c, &mut hit).await? {
            return Ok(done);
        }
    }
    // With warm runners, the first try asks whether the job found a runner already waiting: the
    // timeline's `warm=hit|miss`. Whatever the answer, the create goes on (a hit's create
    // replaces the runner that took the job), as it does without warm runners.
    if cfg.warm.is_some() && c.origin == Origin::Webhook && dequeue_count <= 1 {
        // A failed lookup leaves it unknown (no `warm=` on the line) and fails nothing.
        if let Some(job) = c.job {
            if let Ok(j) = app.github.job(&auth, &c.repository, job).await {
                let taken = j.as_ref().and_then(|j| j.runner_name.as_deref());
                hit = Some(if taken_by_another_of_ours(app, c, taken) {
                    Hit::Hit
                } else {
                    Hit::Miss
                });
            }
        }
    }

    let list_started = Instant::now();
    let groups = app.arm.list_groups().await?;
    if let Some(g) = groups.iter().find(|g| g.name == c.runner) {
        return existing(app, &auth, c, g, &mut asked, &mut hit).await;
    }
    let listed: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let (live, live_in_repository) = live_groups(app, &groups, list_started, &c.repository).await;
    let max = cfg.max_runners as usize;
    let seen = Seen {
        listed: &listed,
        live,
        live_in_repository,
        started: list_started,
    };
    let limits = Limits {
        max,
        per_repository: cfg.max_runners_per_repository.map(|n| n as usize),
    };
    let ticket = match app.admissions.admit(&c.runner, &c.repository, seen, limits) {
        Ok(t) => t,
        Err(Refusal::UnderWay) => return Ok(Done::UnderWay),
        Err(Refusal::RepositoryFull { live, pending, share }) => {
            return Err(Failure::Wait(format!(
                "MAX_RUNNERS_PER_REPOSITORY reached for {} ({live} live and {pending} being created here, of {share})",
                c.repository
            )))
        }
        Err(Refusal::Full { live, pending: 0 }) => return Err(Failure::Wait(format!("MAX_RUNNERS reached ({live} of {max} live)"))),
        Err(Refusal::Full { live, pending }) => {
            return Err(Failure::Wait(format!(
                "MAX_RUNNERS reached ({live} live and {pending} being created here, of {max})"
            )))
        }
    };
    if dequeue_count > 1 && !asked {
        if let Err(done) = still_wanted(app, &auth, c, &mut hit).await? {
            return Ok(done);
        }
    }

    let now = (app.clock)();
    if cfg.dry_run {
        let body = container_group_body(cfg, c, now, &Secret::new("[redacted]"));
        log::info(
            "dry-run.github.generate-jitconfig",
            &[("runner", &c.runner), ("target", &target), ("labels", &c.labels.join(","))],
        );
        log::info("dry-run.arm.put-container-group", &[("name", &c.runner), ("body", &body)]);
        return Ok(Done::DryRun);
    }

    let jit = match app.github.generate_jitconfig(&auth, target, &c.runner, &c.labels, group_id).await {
        Ok(j) => j,
        Err(e) if e.status() == Some(409) => {
            // A runner of this name is registered already. Its group exists when another
            // instance made it since our list: that runner is taken, nothing to do.
            if app.arm.get_group(&c.runner).await?.is_some() {
                return Ok(Done::Exists);
            }
            // Otherwise a try registered it and failed before cleaning up. Idle and offline,
            // it is ours to replace.
            match app.github.runner_by_name(&auth, target, &c.runner).await? {
                Some(r) if r.busy => return Ok(Done::Exists),
                Some(r) => app.github.delete_runner(&auth, target, r.id).await?,
                None => {}
            }
            app.github.generate_jitconfig(&auth, target, &c.runner, &c.labels, group_id).await?
        }
        Err(e) => return Err(e.into()),
    };

    let body = container_group_body(cfg, c, now, &jit.config);
    if let Err(e) = app.arm.put_group(&c.runner, &body).await {
        // A timeout or a 5xx may have lost the answer to a PUT that ARM took: if the group is
        // there, it runs this registration.
        if e.is_transient() && matches!(app.arm.get_group(&c.runner).await, Ok(Some(_))) {
            ticket.created(Instant::now());
            return Ok(Done::Created { warm: hit });
        }
        // Nothing will ever run this registration: remove it before giving up or retrying.
        if let Err(d) = app.github.delete_runner(&auth, target, jit.runner_id).await {
            log::error("provision.deregister-failed", &[("runner", &c.runner), ("error", &d)]);
        }
        return Err(e.into());
    }
    ticket.created(Instant::now());
    Ok(Done::Created { warm: hit })
}

async fn release(app: &App, r: &Release) -> Result<Done, Failure> {
    let cfg = &app.cfg;
    let auth = app.github_credential().await.map_err(Failure::Retry)?;
    let target = app.target(&r.repository);

    let group = app.arm.get_group(&r.runner).await?;
    if let Some(g) = &group {
        if !is_managed(&g.tags) {
            return Ok(Done::NotManaged);
        }
        // Only the repository (repo scope) or organization (org scope) a group was made for
        // may release it: a signed delivery from another repository naming it is refused.
        if !made_for(&cfg.scope, &g.tags, &r.repository) {
            return Ok(Done::OtherTarget(target_name(&cfg.scope, &g.tags).unwrap_or_else(|| "-".into())));
        }
    }
    let runner = app.github.runner_by_name(&auth, target, &r.runner).await?;
    if r.only_if_idle && runner.as_ref().is_some_and(|x| x.busy) {
        return Ok(Done::KeptBusy);
    }
    if cfg.dry_run {
        if let Some(x) = &runner {
            log::info("dry-run.github.delete-runner", &[("runner", &x.name), ("id", &x.id)]);
        }
        if group.is_some() {
            log::info("dry-run.arm.delete-container-group", &[("name", &r.runner)]);
        }
        return Ok(Done::DryRun);
    }
    // Deregister first, so GitHub hands the runner no job while its container goes away.
    if let Some(x) = &runner {
        app.github.delete_runner(&auth, target, x.id).await?;
    }
    if let Some(g) = &group {
        app.arm.delete_group(&r.runner).await?;
        let why = if r.only_if_idle { "cancelled" } else { "completed" };
        let size = Size {
            cpu: g.cpu,
            memory_gb: g.memory_gb,
        };
        let line = timeline::group_deleted("release", why, &g.name, r.job, &g.tags, g.created, size, (app.clock)());
        log::info_text(line.event, &line.fields);
    }
    Ok(Done::Released {
        deregistered: runner.is_some(),
        deleted: group.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_ends_before_the_hosts_function_timeout() {
        let host: serde_json::Value = serde_json::from_str(include_str!("../../host.json")).unwrap();
        let t = host["functionTimeout"].as_str().expect("functionTimeout is set");
        let secs: Vec<u64> = t.split(':').map(|p| p.parse().unwrap()).collect();
        let timeout = Duration::from_secs(secs[0] * 3600 + secs[1] * 60 + secs[2]);
        assert!(INVOCATION_BUDGET + Duration::from_secs(30) <= timeout, "{t}");
    }
}
