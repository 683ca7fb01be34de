//! The burst (issue 13, item 5): 500 jobs queued at once, through the fake Functions host and
//! the release `handler`, against fakes that answer as slowly as the real services.
//!
//!   cargo bench --bench burst                 (500 jobs)
//!   cargo bench --bench burst -- --jobs 200   (another size)
//!
//! - **Latencies**: every GitHub call 300 ms; ARM's PUT 1 s, its list 200 ms, a GET or DELETE
//!   100 ms; Key Vault and the identity endpoint at loopback speed (their answers are cached).
//! - **GitHub's secondary limit on JIT configs**: at most 900 points a minute per endpoint, a
//!   POST costing 5, so 180 `generate-jitconfig` calls in any 60 s; the next one is answered 403
//!   "You have exceeded a secondary rate limit" with `Retry-After: 60`, as GitHub does.
//! - **The host as host.json sets it** (read from the real file): the queue listener fetches up
//!   to `batchSize` messages when at most `newBatchThreshold` are in flight, polls an empty queue
//!   every `maxPollingInterval` at most, and makes a failed message visible again after
//!   `visibilityTimeout`. One instance (a Flex app scales out under a backlog; one is the floor).
//! - All deliveries are made at once at the start (concurrently, as GitHub sends them); the run
//!   ends when every job's group has been PUT.
//!
//! Prints: runners started per minute (PUTs accepted; overall and the best 60 s), the p50/p99/max
//! from a job's delivery to its group's PUT, the secondary-limit refusals, waits logged, and the
//! GitHub and ARM calls per job. Real time: about three minutes for 500 jobs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::host::{FakeHost, Message};
use common::{deliver_workflow_job, Bench, QUEUE};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};

const GITHUB_LATENCY: Duration = Duration::from_millis(300);
const ARM_PUT: Duration = Duration::from_millis(1_000);
const ARM_LIST: Duration = Duration::from_millis(200);
const ARM_OTHER: Duration = Duration::from_millis(100);
/// GitHub's secondary limit: 900 points a minute per endpoint, 5 per POST.
const JIT_PER_MINUTE: usize = 180;
const REPO: &str = "octo-org/octo-repo";
const FIRST_JOB: u64 = 9_000_001;
/// Gives up after this long (something is wrong).
const LIMIT: Duration = Duration::from_secs(20 * 60);

/// host.json's queue settings.
struct Queues {
    batch_size: usize,
    new_batch_threshold: usize,
    max_polling_interval: Duration,
    visibility_timeout: Duration,
}

fn queues() -> Queues {
    let host: Value = serde_json::from_str(include_str!("../host.json")).unwrap();
    let q = &host["extensions"]["queues"];
    let secs = |v: &Value| {
        let p: Vec<u64> = v.as_str().unwrap().split(':').map(|x| x.parse().unwrap()).collect();
        Duration::from_secs(p[0] * 3600 + p[1] * 60 + p[2])
    };
    Queues {
        batch_size: q["batchSize"].as_u64().unwrap() as usize,
        new_batch_threshold: q["newBatchThreshold"].as_u64().unwrap() as usize,
        max_polling_interval: secs(&q["maxPollingInterval"]),
        visibility_timeout: secs(&q["visibilityTimeout"]),
    }
}

fn payload(id: u64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(include_bytes!("../tests/data/workflow_job__queued.payload.json")).unwrap();
    let w = &mut v["workflow_job"];
    w["id"] = id.into();
    w["run_id"] = (id / 10).into();
    w["labels"] = json!(["self-hosted", "aci"]);
    for k in ["runner_id", "runner_name", "runner_group_id", "runner_group_name"] {
        w[k] = Value::Null;
    }
    v["repository"]["full_name"] = REPO.into();
    v["repository"]["name"] = "octo-repo".into();
    v["repository"]["owner"]["login"] = "octo-org".into();
    serde_json::to_vec(&v).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let jobs: u64 = args
        .iter()
        .position(|a| a == "--jobs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--jobs N"))
        .unwrap_or(500);
    let q = queues();

    let b = Bench::new(&[
        ("MAX_RUNNERS", "1000"),
        // The production retry policy: a Retry-After over 20 s is left to the queue.
        ("RETRY_BASE_DELAY_MS", "500"),
        ("RETRY_MAX_DELAY_MS", "20000"),
        ("RETRY_MAX_ATTEMPTS", "4"),
    ])
    .await;
    let puts: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    {
        let puts = puts.clone();
        b.arm_delay.set(move |method, path| match method {
            "PUT" => {
                let name = path.rsplit('/').next().unwrap_or("").to_string();
                puts.lock().unwrap().entry(name).or_insert_with(Instant::now);
                ARM_PUT
            }
            "GET" if path.ends_with("/containerGroups") => ARM_LIST,
            _ => ARM_OTHER,
        });
        b.github_delay.set(|_, _| GITHUB_LATENCY);
    }
    {
        let mut gh = b.github.lock().unwrap();
        gh.jit_per_minute = Some(JIT_PER_MINUTE);
        for id in FIRST_JOB..FIRST_JOB + jobs {
            gh.job(id, "queued");
        }
    }
    let host = Arc::new(FakeHost::start(&b.settings).await);

    println!(
        "burst: {jobs} jobs; GitHub {} ms a call, ARM PUT {} ms; JIT limit {JIT_PER_MINUTE}/min; host.json batchSize {} newBatchThreshold {} visibilityTimeout {} s",
        GITHUB_LATENCY.as_millis(),
        ARM_PUT.as_millis(),
        q.batch_size,
        q.new_batch_threshold,
        q.visibility_timeout.as_secs()
    );

    // Every delivery at once, as GitHub sends a burst.
    let start = Instant::now();
    let delivered: HashMap<String, Instant> = futures::future::join_all((FIRST_JOB..FIRST_JOB + jobs).map(|id| {
        let host = host.clone();
        async move {
            let r = deliver_workflow_job(&host, &payload(id)).await;
            assert_eq!(r.status, 202, "{}", r.body);
            (format!("aci-runner-{id}"), Instant::now())
        }
    }))
    .await
    .into_iter()
    .collect();
    let delivered_in = start.elapsed();

    // The queue listener.
    let mut visible: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut invocations = 0usize;
    let mut failed = 0usize;
    let mut last_poll = Instant::now() - q.max_polling_interval;
    loop {
        for m in host.take_queued(QUEUE) {
            visible.push_back((Instant::now(), m));
        }
        let done = puts.lock().unwrap().len() as u64 >= jobs;
        if done || start.elapsed() > LIMIT {
            break;
        }
        let now = Instant::now();
        let ready = visible.iter().filter(|(at, _)| *at <= now).count();
        // A new batch when the ones in flight are down to newBatchThreshold; an empty queue is
        // polled again after maxPollingInterval at most.
        if in_flight.len() <= q.new_batch_threshold && (ready > 0 || now - last_poll >= q.max_polling_interval) {
            last_poll = now;
            let mut taken = 0;
            let mut keep = VecDeque::new();
            while let Some((at, mut m)) = visible.pop_front() {
                if at <= now && taken < q.batch_size {
                    taken += 1;
                    m.dequeue_count += 1;
                    let host = host.clone();
                    in_flight.push(async move {
                        let status = host.invoke_message("provision", &m).await;
                        (m, status)
                    });
                } else {
                    keep.push_back((at, m));
                }
            }
            visible = keep;
        }
        tokio::select! {
            Some((m, status)) = in_flight.next(), if !in_flight.is_empty() => {
                invocations += 1;
                if !(200..300).contains(&status) {
                    failed += 1;
                    visible.push_back((Instant::now() + q.visibility_timeout, m));
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let elapsed = start.elapsed();

    // Figures.
    let puts = puts.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = puts
        .iter()
        .filter_map(|(name, at)| delivered.get(name).map(|d| at.saturating_duration_since(*d)))
        .collect();
    latencies.sort();
    let mut times: Vec<Instant> = puts.values().copied().collect();
    times.sort();
    let best_minute = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0);
    let span = times.last().map(|t| t.duration_since(start)).unwrap_or_default();
    let per_minute = puts.len() as f64 / span.as_secs_f64().max(1e-9) * 60.0;
    let (gh_calls, jit_refused, jit_ok) = {
        let gh = b.github.lock().unwrap();
        (gh.c.calls.len(), gh.jit_refused, gh.jit_configs.len())
    };
    let arm_calls = b.arm.lock().unwrap().c.calls.len();
    let logs = host.logs();
    let waits = logs.lines().filter(|l| l.starts_with("provision.waiting")).count();
    let retries = logs.lines().filter(|l| l.starts_with("provision.retry")).count();
    let dropped = logs.lines().filter(|l| l.starts_with("provision.dropped")).count();

    println!("deliveries: {jobs} answered 202 in {}", secs(delivered_in));
    println!(
        "groups PUT: {} of {jobs} in {} ({per_minute:.0}/min overall, {best_minute} in the best 60 s; GitHub's ceiling {JIT_PER_MINUTE}/min)",
        puts.len(),
        secs(span)
    );
    println!(
        "delivery to PUT: p50 {} p99 {} max {}",
        secs(percentile(&latencies, 0.50)),
        secs(percentile(&latencies, 0.99)),
        secs(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "invocations: {invocations} ({failed} failed and retried after {} s); provision.waiting {waits}, provision.retry {retries}, provision.dropped {dropped}",
        q.visibility_timeout.as_secs()
    );
    println!("JIT configs: {jit_ok} made, {jit_refused} refused by the secondary limit");
    println!(
        "calls per job: GitHub {:.2}, ARM {:.2}; wall {}",
        gh_calls as f64 / jobs as f64,
        arm_calls as f64 / jobs as f64,
        secs(elapsed)
    );
    b.assert_clean();
    let ok = puts.len() as u64 == jobs && dropped == 0 && jit_ok as u64 == jobs;
    if !ok {
        eprintln!("FAILED: not every job got exactly one runner");
        std::process::exit(1);
    }
}
