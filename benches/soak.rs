//! The fault soak (issue 13, item 5): 1,000 jobs through the fake Functions host and the
//! release `handler`, with GitHub, ARM and Key Vault failing, deliveries lost, capacity short.
//!
//!   cargo bench --bench soak                  (seed 1)
//!   cargo bench --bench soak -- --seed 7      (another seed)
//!
//! A simulation driven step by step (one step = 10 simulated seconds); no wall-clock sleeps:
//! - **Time is the simulation's.** ARM's operations end on its own clock, moved by the steps
//!   (`timed_by_caller`), not by the calls made. The handler reads the system clock, so before
//!   each step the jobs' `created_at` (the runs and jobs lists) and the groups' `created-at`
//!   tags are rewritten to "now minus their simulated age": reconciliation and the idle rule see
//!   simulated ages.
//! - **The host** invokes `provision` with the visible messages in batches of 8 at once
//!   (host.json's `batchSize`); a failed invocation makes its message visible again 60
//!   simulated seconds later (`visibilityTimeout`), and poisons it after `maxDequeueCount`.
//!   The `sweep` timer runs every simulated minute.
//! - **GitHub's world:** jobs arrive in bursts; each `queued` delivery is sent or lost (5%), and
//!   one answered with anything but 2xx is lost too (GitHub does not redeliver by itself). When
//!   a group runs (ARM `Succeeded`, container `Running`) and its runner is registered, the runner
//!   comes online and GitHub hands it the oldest queued job (any job asking for our labels, not
//!   necessarily the one it was made for); the job runs 20–60 s, completes, GitHub removes the
//!   ephemeral registration, the container exits (`Succeeded`) and a `completed` delivery is
//!   sent (or lost, 5%). 3% of containers exit before taking a job (an image that will not
//!   pull). 1% of jobs are cancelled if still queued 5 minutes after they were queued.
//!   A runner whose group ARM deletes while it runs a job kills that job: counted, and a failure.
//! - **Faults:** 10% of the calls to GitHub, ARM and Key Vault fail, drawn from the seed per call
//!   ([`common::fakes::Chaos`]): a 429 with `Retry-After`, a 5xx, or a timeout (modelled as an
//!   answer lost after the call took effect: a 504 the client cannot tell from a write that did
//!   not happen; an idle socket would cost `HTTP_TIMEOUT_SECONDS` of wall time per fault).
//!   ARM creates take 60 s and deletes 30 s. `MAX_RUNNERS` is 50; bursts bring 150 jobs.
//!
//! At the end it goes on stepping (sweeps included) until nothing is left or an hour of
//! simulated time has passed, then checks: every job ran once on one runner, or was cancelled;
//! no job was killed; no group and no registration left; no secret in any log line; nothing in
//! the poison queue. It prints the figures and exits 1 if a check fails.
//!
//! Deterministic from the seed in what it decides (arrivals, losses, faults, exits); the
//! handler's concurrency (8 invocations at once, the sweep's 16 calls in flight) can still
//! order calls differently between runs, so figures vary a little from run to run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use common::fakes::{Chaos, ChaosAnswer, ListedJob, JIT_SUFFIX, MI_TOKEN};
use common::host::{FakeHost, Message};
use common::net::Resp;
use common::{deliver_workflow_job, Bench, PAT, QUEUE, WEBHOOK_SECRET};
use serde_json::{json, Value};
use time::OffsetDateTime;

const JOBS: u64 = 1_000;
/// Simulated seconds per step.
const STEP: u64 = 10;
const SWEEP_EVERY: u64 = 60;
/// host.json: `visibilityTimeout` 1 min, `batchSize` 8.
const VISIBILITY: u64 = 60;
const BATCH: usize = 8;
const MAX_RUNNERS: &str = "50";
/// In 1,000.
const LOST_DELIVERIES: u64 = 50;
const FAULTS: u64 = 100;
const EARLY_EXITS: u64 = 30;
const CANCELLED: u64 = 10;
const CANCEL_AFTER: u64 = 300;
const CREATE_TAKES: u64 = 60;
const DELETE_TAKES: u64 = 30;
/// How long the end may take to settle, simulated.
const SETTLE_LIMIT: u64 = 3_600;
const REPO: &str = "octo-org/octo-repo";
const SCOPE: &str = "repos/octo-org/octo-repo";
const PREFIX: &str = "aci-runner-";
const FIRST_JOB: u64 = 5_000_001;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn per_mille(&mut self, n: u64) -> bool {
        self.draw() % 1000 < n
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.draw() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum JobState {
    Queued,
    Running {
        ends: u64,
    },
    Done {
        runner: String,
    },
    Cancelled,
    /// Its runner's group was deleted under it.
    Killed,
}

struct Job {
    run: u64,
    queued_at: u64,
    started_at: Option<u64>,
    state: JobState,
    cancel_at: Option<u64>,
    /// When a group of its name was first seen.
    group_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Starting,
    Online,
    Busy(u64),
    Exited,
}

/// One incarnation of a container group, as the runner inside sees it.
struct Container {
    first_seen: u64,
    /// How many PUTs of its name ARM had taken when it was first seen.
    incarnation: usize,
    phase: Phase,
    ran: Option<u64>,
    early_exit: bool,
}

#[derive(Default)]
struct Figures {
    queued_sent: u64,
    queued_lost: u64,
    queued_refused: u64,
    completed_sent: u64,
    completed_lost: u64,
    completed_refused: u64,
    containers: u64,
    early_exits: u64,
    no_registration: u64,
    invocations: u64,
    failed_invocations: u64,
    sweeps: u64,
}

struct Sim {
    b: Bench,
    host: FakeHost,
    rng: Rng,
    t: u64,
    jobs: BTreeMap<u64, Job>,
    containers: HashMap<String, Container>,
    /// Messages out of sight until a time.
    waiting: Vec<(u64, Message)>,
    poisoned: Vec<Message>,
    f: Figures,
    /// Finished incarnations (their group went): (ran a job, exited early).
    gone: Vec<(Option<u64>, bool)>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let ok = rt.block_on(soak(seed));
    std::process::exit(if ok { 0 } else { 1 });
}

fn chaos(seed: u64, ops: &[&'static str], answers: Vec<(Resp, bool)>) -> Option<Chaos> {
    let answers = answers
        .into_iter()
        .map(|(resp, after_effect)| ChaosAnswer { resp, after_effect })
        .collect();
    Some(Chaos::new(seed, FAULTS, ops, answers))
}

async fn soak(seed: u64) -> bool {
    let b = Bench::new(&[
        ("MAX_RUNNERS", MAX_RUNNERS),
        ("ALLOWED_REPOSITORIES", REPO),
        ("RUNNER_IDLE_TIMEOUT_MINUTES", "5"),
        ("RUNNER_MAX_LIFETIME_MINUTES", "60"),
        ("SWEEP_SCHEDULE", "0 */1 * * * *"),
        // Key Vault read about once a second of wall time, so its faults are met.
        ("SECRET_CACHE_SECONDS", "1"),
        // The handler's pacing of registrations runs on its own (wall) clock, about 20 times
        // slower than the simulation's: a minute's pause would be 20 simulated minutes. The
        // burst benchmark measures the pacing; here GitHub's refusals go to the queue.
        ("GITHUB_JIT_PER_MINUTE", "0"),
    ])
    .await;
    {
        let mut arm = b.arm.lock().unwrap();
        arm.timed_by_caller = true;
        arm.create_takes = CREATE_TAKES;
        arm.delete_takes = DELETE_TAKES;
        let arm_error = |status: u16, code: &str, message: &str| Resp::json(status, json!({"error": {"code": code, "message": message}}));
        arm.c.chaos = chaos(
            seed,
            &["list", "put", "get", "delete", "operation", "operation-result"],
            vec![
                (
                    arm_error(429, "TooManyRequests", "The request is being throttled.").with_header("retry-after", "10"),
                    false,
                ),
                (arm_error(500, "InternalServerError", "Encountered internal server error."), false),
                (
                    arm_error(503, "ServiceUnavailable", "The service is temporarily unavailable."),
                    false,
                ),
                (
                    arm_error(
                        504,
                        "GatewayTimeout",
                        "The gateway did not receive a response within the specified time period.",
                    ),
                    true,
                ),
            ],
        );
    }
    {
        let mut gh = b.github.lock().unwrap();
        gh.c.chaos = chaos(
            seed ^ 0x6769_7468_7562,
            &[
                "jit",
                "list-runners",
                "delete-runner",
                "get-job",
                "get-run",
                "list-runs",
                "list-jobs",
            ],
            vec![
                (
                    Resp::json(
                        429,
                        json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                                          "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
                    )
                    .with_header("retry-after", "60"),
                    false,
                ),
                (Resp::json(502, json!({"message": "Server Error"})), false),
                (Resp::json(503, json!({"message": "Service Unavailable"})), false),
                (
                    Resp::json(504, json!({"message": "We couldn't respond to your request in time."})),
                    true,
                ),
            ],
        );
    }
    {
        let mut kv = b.vault.lock().unwrap();
        kv.c.chaos = chaos(
            seed ^ 0x6b76,
            &["read"],
            vec![
                (
                    Resp::json(429, json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received."}}))
                        .with_header("retry-after", "5"),
                    false,
                ),
                (Resp::json(500, json!({"error": {"code": "InternalServerError", "message": "Internal server error."}})), false),
                (Resp::json(504, json!({"error": {"code": "GatewayTimeout", "message": "Gateway timeout."}})), true),
            ],
        );
    }
    let host = FakeHost::start(&b.settings).await;
    let mut sim = Sim {
        b,
        host,
        rng: Rng(seed),
        t: 0,
        jobs: BTreeMap::new(),
        containers: HashMap::new(),
        waiting: vec![],
        poisoned: vec![],
        f: Figures::default(),
        gone: vec![],
    };
    let wall = Instant::now();
    let mut next_job = FIRST_JOB;
    let mut settle_from = None;
    loop {
        sim.t += STEP;
        sim.b.arm.lock().unwrap().advance(STEP);
        // Arrivals: a burst of 150 every 10 minutes, 0–8 a step between.
        let arriving = if sim.t % 600 == 10 { 150 } else { sim.rng.between(0, 8) };
        for _ in 0..arriving {
            if next_job >= FIRST_JOB + JOBS {
                break;
            }
            sim.arrive(next_job).await;
            next_job += 1;
        }
        sim.world().await;
        sim.refresh_clocks();
        if sim.t.is_multiple_of(SWEEP_EVERY) {
            sim.f.sweeps += 1;
            let (status, _) = sim.host.timer("sweep", json!(null), false).await;
            assert_eq!(status, 200, "the sweep answers the host");
        }
        sim.provision().await;

        if sim.t.is_multiple_of(600) {
            sim.progress(wall.elapsed());
        }
        let arrived = next_job >= FIRST_JOB + JOBS;
        let open = sim
            .jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Queued | JobState::Running { .. }))
            .count();
        if arrived && open == 0 && settle_from.is_none() {
            settle_from = Some(sim.t);
        }
        if let Some(from) = settle_from {
            if (sim.t.is_multiple_of(SWEEP_EVERY) && sim.settled()) || sim.t - from > SETTLE_LIMIT {
                break;
            }
        }
        if sim.t > 48 * 3600 {
            break;
        }
    }
    // Let the pipes give up the last lines.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ok = sim.report(seed, wall.elapsed(), settle_from);
    sim.host.stop().await;
    ok
}

impl Sim {
    fn payload(&self, id: u64, action: &str, runner: Option<&str>) -> Vec<u8> {
        let fixture: &[u8] = if action == "queued" {
            include_bytes!("../tests/data/workflow_job__queued.payload.json")
        } else {
            include_bytes!("../tests/data/workflow_job__completed.success.with-organization.payload.json")
        };
        let mut v: Value = serde_json::from_slice(fixture).unwrap();
        let job = &self.jobs[&id];
        let w = &mut v["workflow_job"];
        w["id"] = id.into();
        w["run_id"] = job.run.into();
        w["labels"] = json!(["self-hosted", "aci"]);
        w["status"] = if action == "queued" { "queued" } else { "completed" }.into();
        if action != "queued" {
            w["conclusion"] = if runner.is_some() { "success" } else { "cancelled" }.into();
        }
        w["runner_name"] = runner.map(Value::from).unwrap_or(Value::Null);
        if runner.is_none() {
            for k in ["runner_id", "runner_group_id", "runner_group_name"] {
                w[k] = Value::Null;
            }
        }
        v["repository"]["full_name"] = REPO.into();
        v["repository"]["name"] = "octo-repo".into();
        v["repository"]["owner"]["login"] = "octo-org".into();
        serde_json::to_vec(&v).unwrap()
    }

    /// A delivery GitHub sends (or loses). Returns whether it was accepted.
    async fn deliver(&mut self, id: u64, action: &str, runner: Option<&str>) {
        let queued = action == "queued";
        if self.rng.per_mille(LOST_DELIVERIES) {
            if queued {
                self.f.queued_lost += 1;
            } else {
                self.f.completed_lost += 1;
            }
            return;
        }
        let status = deliver_workflow_job(&self.host, &self.payload(id, action, runner)).await.status;
        let refused = !(200..300).contains(&status);
        match (queued, refused) {
            (true, false) => self.f.queued_sent += 1,
            (true, true) => self.f.queued_refused += 1,
            (false, false) => self.f.completed_sent += 1,
            (false, true) => self.f.completed_refused += 1,
        }
    }

    async fn arrive(&mut self, id: u64) {
        let run = 900_000 + (id - FIRST_JOB) / 10;
        let cancel_at = self.rng.per_mille(CANCELLED).then_some(self.t + CANCEL_AFTER);
        self.jobs.insert(
            id,
            Job {
                run,
                queued_at: self.t,
                started_at: None,
                state: JobState::Queued,
                cancel_at,
                group_at: None,
            },
        );
        {
            let mut gh = self.b.github.lock().unwrap();
            gh.jobs.insert(id, "queued".into());
            gh.runs.insert(run, "queued".into());
            gh.listed_jobs.push(ListedJob {
                id,
                run_id: run,
                scope: SCOPE.into(),
                status: "queued".into(),
                labels: vec!["self-hosted".into(), "aci".into()],
                created_at: aci_runners::clock::rfc3339(OffsetDateTime::now_utc()),
            });
        }
        self.deliver(id, "queued", None).await;
    }

    fn set_status(&self, id: u64, status: &str) {
        let mut gh = self.b.github.lock().unwrap();
        gh.jobs.insert(id, status.into());
        if let Some(j) = gh.listed_jobs.iter_mut().find(|j| j.id == id) {
            j.status = status.into();
        }
    }

    /// Rewrites what the handler reads the time from, so it sees simulated ages.
    fn refresh_clocks(&mut self) {
        let now = OffsetDateTime::now_utc();
        let ago = |secs: u64| aci_runners::clock::rfc3339(now - time::Duration::seconds(secs as i64));
        {
            let mut gh = self.b.github.lock().unwrap();
            for j in gh.listed_jobs.iter_mut() {
                if let Some(job) = self.jobs.get(&j.id) {
                    j.created_at = ago(self.t - job.queued_at);
                }
            }
        }
        let mut arm = self.b.arm.lock().unwrap();
        for g in arm.groups.values_mut() {
            if let Some(c) = self.containers.get(&g.name) {
                if g.tags.contains_key("created-at") {
                    g.tags.insert("created-at".into(), ago(self.t - c.first_seen));
                }
            }
        }
    }

    /// GitHub and the containers: runners start, take jobs, finish them, exit.
    async fn world(&mut self) {
        for (id, runner) in self.step_world() {
            self.deliver(id, "completed", runner.as_deref()).await;
        }
    }

    /// One step of GitHub and the containers; returns the `completed` deliveries GitHub sends.
    fn step_world(&mut self) -> Vec<(u64, Option<String>)> {
        let mut deliveries: Vec<(u64, Option<String>)> = vec![];
        // Cancellations of jobs still queued.
        for (id, j) in self.jobs.iter_mut() {
            if j.state == JobState::Queued && j.cancel_at.is_some_and(|c| c <= self.t) {
                j.state = JobState::Cancelled;
                deliveries.push((*id, None));
            }
        }
        for (id, _) in &deliveries {
            self.set_status(*id, "completed");
        }

        let mut arm = self.b.arm.lock().unwrap();
        let mut gh = self.b.github.lock().unwrap();
        let mut puts: HashMap<&str, usize> = HashMap::new();
        for (name, _) in &arm.puts {
            *puts.entry(name.as_str()).or_default() += 1;
        }
        let puts: HashMap<String, usize> = puts.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // Incarnations whose group went (or was replaced).
        let names: Vec<String> = self.containers.keys().cloned().collect();
        for name in names {
            let replaced = puts.get(&name).copied().unwrap_or(0) != self.containers[&name].incarnation;
            let state = arm.groups.get(&name).map(|g| g.provisioning_state.clone());
            if state.as_deref() == Some("Deleting") || state.is_none() || replaced {
                let c = self.containers.get_mut(&name).unwrap();
                if let Phase::Busy(job) = c.phase {
                    // Its group was deleted while it ran a job: the job dies with it.
                    self.jobs.get_mut(&job).unwrap().state = JobState::Killed;
                    gh.jobs.insert(job, "completed".into());
                    if let Some(j) = gh.listed_jobs.iter_mut().find(|j| j.id == job) {
                        j.status = "completed".into();
                    }
                }
                if let Some(id) = gh.runner_named(&name).map(|r| r.id) {
                    let r = gh.runners.get_mut(&id).unwrap();
                    r.status = "offline".into();
                    r.busy = false;
                }
                if matches!(c.phase, Phase::Busy(_) | Phase::Online | Phase::Starting) {
                    c.phase = Phase::Exited;
                }
                if state.is_none() || replaced {
                    let c = self.containers.remove(&name).unwrap();
                    self.gone.push((c.ran, c.early_exit));
                }
            }
        }
        let groups: Vec<(String, String, Option<String>)> = arm
            .groups
            .values()
            .map(|g| (g.name.clone(), g.provisioning_state.clone(), g.instance_state.clone()))
            .collect();
        for (name, provisioning, instance) in groups {
            if provisioning == "Deleting" {
                continue;
            }
            if !self.containers.contains_key(&name) {
                self.f.containers += 1;
                self.containers.insert(
                    name.clone(),
                    Container {
                        first_seen: self.t,
                        incarnation: puts.get(&name).copied().unwrap_or(0),
                        phase: Phase::Starting,
                        ran: None,
                        early_exit: false,
                    },
                );
                if let Some(id) = name.strip_prefix(PREFIX).and_then(|s| s.parse::<u64>().ok()) {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.group_at.get_or_insert(self.t);
                    }
                }
            }
            let running = provisioning == "Succeeded"
                && instance.as_deref() == Some("Running")
                && arm.groups.get(&name).is_some_and(|g| g.pending.is_none());
            let c = self.containers.get_mut(&name).unwrap();
            let registration = gh.runner_named(&name).map(|r| r.id);
            match c.phase.clone() {
                Phase::Starting if running => {
                    if self.rng.per_mille(EARLY_EXITS) {
                        arm.container_exits(&name, "Failed");
                        c.phase = Phase::Exited;
                        c.early_exit = true;
                        self.f.early_exits += 1;
                    } else if let Some(id) = registration {
                        gh.runners.get_mut(&id).unwrap().status = "online".into();
                        c.phase = Phase::Online;
                    } else {
                        // Its JIT config names a registration that is gone: the runner cannot start.
                        arm.container_exits(&name, "Failed");
                        c.phase = Phase::Exited;
                        self.f.no_registration += 1;
                    }
                }
                Phase::Online if registration.is_none() && running => {
                    // Deregistered while idle: the runner is told so and exits.
                    arm.container_exits(&name, "Succeeded");
                    c.phase = Phase::Exited;
                }
                Phase::Online => {
                    let next = self
                        .jobs
                        .iter_mut()
                        .filter(|(_, j)| j.state == JobState::Queued)
                        .min_by_key(|(id, j)| (j.queued_at, **id));
                    if let Some((id, j)) = next {
                        let ends = self.t + self.rng.between(2, 6) * STEP;
                        j.state = JobState::Running { ends };
                        j.started_at = Some(self.t);
                        c.phase = Phase::Busy(*id);
                        c.ran = Some(*id);
                        gh.runners.get_mut(&registration.unwrap()).unwrap().busy = true;
                        gh.jobs.insert(*id, "in_progress".into());
                        let id = *id;
                        if let Some(l) = gh.listed_jobs.iter_mut().find(|l| l.id == id) {
                            l.status = "in_progress".into();
                        }
                    }
                }
                Phase::Busy(id) if running => {
                    let j = self.jobs.get_mut(&id).unwrap();
                    if let JobState::Running { ends, .. } = j.state {
                        if ends <= self.t {
                            j.state = JobState::Done { runner: name.clone() };
                            gh.jobs.insert(id, "completed".into());
                            if let Some(l) = gh.listed_jobs.iter_mut().find(|l| l.id == id) {
                                l.status = "completed".into();
                            }
                            // An ephemeral runner is removed by GitHub after its job.
                            if let Some(r) = registration {
                                gh.runners.remove(&r);
                            }
                            arm.container_exits(&name, "Succeeded");
                            c.phase = Phase::Exited;
                            deliveries.push((id, Some(name.clone())));
                        }
                    }
                }
                _ => {}
            }
        }
        // Runs are completed when all their jobs are.
        let mut runs: BTreeMap<u64, bool> = BTreeMap::new();
        for j in self.jobs.values() {
            *runs.entry(j.run).or_insert(true) &= matches!(j.state, JobState::Done { .. } | JobState::Cancelled | JobState::Killed);
        }
        for (run, done) in runs {
            gh.runs.insert(run, if done { "completed" } else { "in_progress" }.into());
        }
        deliveries
    }

    /// The host: every visible message, in batches of 8 invoked at once.
    async fn provision(&mut self) {
        for m in self.host.take_queued(QUEUE) {
            self.waiting.push((self.t, m));
        }
        let (mut now, later): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|(at, _)| *at <= self.t);
        self.waiting = later;
        now.sort_by_key(|(at, _)| *at);
        let max = self.host.max_dequeue_count();
        for chunk in now.chunks(BATCH) {
            let batch: Vec<Message> = chunk
                .iter()
                .map(|(_, m)| {
                    let mut m = m.clone();
                    m.dequeue_count += 1;
                    m
                })
                .collect();
            let statuses = futures::future::join_all(batch.iter().map(|m| self.host.invoke_message("provision", m))).await;
            for (m, status) in batch.into_iter().zip(statuses) {
                self.f.invocations += 1;
                if (200..300).contains(&status) {
                    continue;
                }
                self.f.failed_invocations += 1;
                if m.dequeue_count >= max {
                    self.poisoned.push(m);
                } else {
                    self.waiting.push((self.t + VISIBILITY, m));
                }
            }
        }
    }

    /// One line on stderr every 10 simulated minutes.
    fn progress(&self, wall: std::time::Duration) {
        let by = |f: &dyn Fn(&JobState) -> bool| self.jobs.values().filter(|j| f(&j.state)).count();
        eprintln!(
            "t={} min wall={:.0} s jobs={} queued={} running={} done={} groups={} registrations={} waiting={} invocations={}",
            self.t / 60,
            wall.as_secs_f64(),
            self.jobs.len(),
            by(&|s| *s == JobState::Queued),
            by(&|s| matches!(s, JobState::Running { .. })),
            by(&|s| matches!(s, JobState::Done { .. })),
            self.b.arm.lock().unwrap().groups.len(),
            self.b.github.lock().unwrap().runners.len(),
            self.waiting.len(),
            self.f.invocations
        );
    }

    fn settled(&self) -> bool {
        self.b.arm.lock().unwrap().groups.is_empty()
            && self.b.github.lock().unwrap().runners.is_empty()
            && self.waiting.is_empty()
            && self.host.queued(QUEUE).is_empty()
    }

    fn report(&self, seed: u64, wall: std::time::Duration, settle_from: Option<u64>) -> bool {
        let count = |f: &dyn Fn(&JobState) -> bool| self.jobs.values().filter(|j| f(&j.state)).count();
        let served = count(&|s| matches!(s, JobState::Done { .. }));
        let cancelled = count(&|s| matches!(s, JobState::Cancelled));
        let killed = count(&|s| matches!(s, JobState::Killed));
        let left = count(&|s| matches!(s, JobState::Queued | JobState::Running { .. }));
        // A runner runs at most one job and a job is handed to one runner: a duplicate would be
        // two runners credited with one job.
        let mut ran_by: HashMap<u64, usize> = HashMap::new();
        for (ran, _) in &self.gone {
            if let Some(j) = ran {
                *ran_by.entry(*j).or_default() += 1;
            }
        }
        for c in self.containers.values() {
            if let Some(j) = c.ran {
                *ran_by.entry(j).or_default() += 1;
            }
        }
        let duplicates = ran_by.values().filter(|n| **n > 1).count();
        let elsewhere = self
            .jobs
            .iter()
            .filter(|(id, j)| matches!(&j.state, JobState::Done { runner } if *runner != format!("{PREFIX}{id}")))
            .count();
        let ran_nothing = self.gone.iter().filter(|(ran, early)| ran.is_none() && !early).count()
            + self.containers.values().filter(|c| c.ran.is_none() && !c.early_exit).count();

        let stdout = self.host.stdout.lock().unwrap().clone();
        let stderr = self.host.stderr.lock().unwrap().clone();
        let lines: Vec<&String> = stdout.iter().chain(stderr.iter()).collect();
        let summed = |key: &str| -> u64 {
            lines
                .iter()
                .filter(|l| l.contains("sweep groups="))
                .filter_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .sum()
        };
        let reconciled = summed("reconciled=");
        let requeued = summed("requeued=");
        let waits = lines.iter().filter(|l| l.contains("provision.waiting")).count();
        let retries = lines.iter().filter(|l| l.contains("provision.retry")).count();
        let dropped = lines.iter().filter(|l| l.contains("provision.dropped")).count();
        let secrets = [PAT, WEBHOOK_SECRET, JIT_SUFFIX, MI_TOKEN];
        let leaks = lines.iter().filter(|l| secrets.iter().any(|s| l.contains(s))).count();

        let (groups_left, arm_calls, arm_hits, puts, deletes) = {
            let arm = self.b.arm.lock().unwrap();
            (
                arm.groups.len(),
                arm.c.calls.len(),
                arm.c.chaos_hits.clone(),
                arm.c.count("put"),
                arm.c.count("delete"),
            )
        };
        let (runners_left, gh_calls, gh_hits, jits) = {
            let gh = self.b.github.lock().unwrap();
            (gh.runners.len(), gh.c.calls.len(), gh.c.chaos_hits.clone(), gh.c.count("jit"))
        };
        let (kv_calls, kv_hits) = {
            let kv = self.b.vault.lock().unwrap();
            (kv.c.calls.len(), kv.c.chaos_hits.clone())
        };
        let queue_left = self.waiting.len() + self.host.queued(QUEUE).len();

        let mut to_group: Vec<u64> = self.jobs.values().filter_map(|j| j.group_at.map(|g| g - j.queued_at)).collect();
        let mut to_start: Vec<u64> = self.jobs.values().filter_map(|j| j.started_at.map(|s| s - j.queued_at)).collect();
        to_group.sort_unstable();
        to_start.sort_unstable();
        let pct = |v: &[u64], p: f64| {
            if v.is_empty() {
                0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        let jobs = JOBS as f64;

        println!("## Fault soak (cargo bench --bench soak -- --seed {seed})");
        println!();
        println!(
            "{JOBS} jobs, MAX_RUNNERS {MAX_RUNNERS}, {}% of deliveries lost, {}% of GitHub, ARM and Key Vault calls failing, creates {CREATE_TAKES} s, deletes {DELETE_TAKES} s, sweep every {SWEEP_EVERY} s; simulated {} min (the last {} min settling), {:.0} s of wall time",
            LOST_DELIVERIES / 10,
            FAULTS / 10,
            self.t / 60,
            settle_from.map(|s| (self.t - s) / 60).unwrap_or(0),
            wall.as_secs_f64()
        );
        println!();
        println!("| figure | value |");
        println!("|---|---|");
        println!("| jobs served (ran once, on one runner) | {served} |");
        println!("| jobs cancelled by their user while queued (not ours) | {cancelled} |");
        println!("| jobs left behind (still queued or running) | {left} |");
        println!("| jobs killed (their runner's group deleted under them) | {killed} |");
        println!("| duplicates (a job credited to two runners) | {duplicates} |");
        println!("| jobs served by a runner made for another job (GitHub hands any queued job to an idle runner) | {elsewhere} |");
        println!(
            "| containers started | {} (early exits injected: {}; could not register: {}; ran nothing: {ran_nothing}) |",
            self.f.containers, self.f.early_exits, self.f.no_registration
        );
        println!(
            "| `queued` deliveries: sent and accepted / lost / answered non-2xx | {} / {} / {} |",
            self.f.queued_sent, self.f.queued_lost, self.f.queued_refused
        );
        println!(
            "| `completed` deliveries: sent and accepted / lost / answered non-2xx | {} / {} / {} |",
            self.f.completed_sent, self.f.completed_lost, self.f.completed_refused
        );
        println!("| runner requests made by sweeps: reconciled / requeued | {reconciled} / {requeued} |");
        println!("| sweeps | {} |", self.f.sweeps);
        println!(
            "| `provision` invocations / failed (retried by the queue) | {} / {} |",
            self.f.invocations, self.f.failed_invocations
        );
        println!("| `provision.waiting` lines / `provision.retry` / `provision.dropped` | {waits} / {retries} / {dropped} |");
        println!(
            "| GitHub calls per job (JIT configs per job) | {:.1} ({:.2}) |",
            gh_calls as f64 / jobs,
            jits as f64 / jobs
        );
        println!(
            "| ARM calls per job (PUTs, DELETEs per job) | {:.1} ({:.2}, {:.2}) |",
            arm_calls as f64 / jobs,
            puts as f64 / jobs,
            deletes as f64 / jobs
        );
        println!("| Key Vault calls per job | {:.2} |", kv_calls as f64 / jobs);
        println!(
            "| faults injected by status: GitHub / ARM / Key Vault | {:?} / {:?} / {:?} |",
            gh_hits, arm_hits, kv_hits
        );
        println!(
            "| job queued → group of its name seen, s (p50 / p99 / max, {} jobs) | {} / {} / {} |",
            to_group.len(),
            pct(&to_group, 0.5),
            pct(&to_group, 0.99),
            to_group.last().copied().unwrap_or(0)
        );
        println!(
            "| job queued → started on a runner, s (p50 / p99 / max) | {} / {} / {} |",
            pct(&to_start, 0.5),
            pct(&to_start, 0.99),
            to_start.last().copied().unwrap_or(0)
        );
        println!("| groups / registrations / queue messages left after the last sweep | {groups_left} / {runners_left} / {queue_left} |");
        println!("| log lines holding a secret | {leaks} of {} |", lines.len());
        println!("| messages in the poison queue | {} |", self.poisoned.len());
        println!();
        let checks = [
            (
                "every job ran once on one runner or was cancelled",
                served + cancelled == JOBS as usize && duplicates == 0,
            ),
            ("no job killed", killed == 0),
            ("no group left", groups_left == 0),
            ("no registration left", runners_left == 0),
            ("no secret in a log line", leaks == 0),
            ("nothing poisoned", self.poisoned.is_empty()),
        ];
        let mut ok = true;
        for (what, pass) in checks {
            println!("{} {what}", if pass { "PASS" } else { "FAIL" });
            ok &= pass;
        }
        if !ok {
            for (id, j) in self
                .jobs
                .iter()
                .filter(|(_, j)| matches!(j.state, JobState::Queued | JobState::Running { .. } | JobState::Killed))
                .take(10)
            {
                eprintln!("job {id}: {:?}, queued at {} s, group at {:?}", j.state, j.queued_at, j.group_at);
            }
            let arm = self.b.arm.lock().unwrap();
            for g in arm.groups.values().take(10) {
                eprintln!("group {}: {} {:?}", g.name, g.provisioning_state, g.instance_state);
            }
            let gh = self.b.github.lock().unwrap();
            for r in gh.runners.values().take(10) {
                eprintln!("runner {}: {} busy={}", r.name, r.status, r.busy);
            }
            for l in lines.iter().filter(|l| secrets.iter().any(|s| l.contains(s))).take(5) {
                eprintln!("leak: {l}");
            }
        }
        ok
    }
}
