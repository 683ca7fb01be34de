//! Webhook speed, readiness, memory and provisioning cost, against the real host's envelopes.
//!
//!   cargo bench --bench webhook            (README: "Benchmarks"; results in docs/benchmarks.md)
//!
//! The handler (release build) is pinned to CPU 0 with `taskset`; this process, the load
//! generator, re-executes itself pinned to CPU 1. Each request is the envelope the Functions
//! host sends for a signed delivery of the unedited 7.9 KB `workflow_job__queued` fixture:
//! chunked, the body text in `Data.req.Body`, its top-level fields repeated in `Metadata`.
//! `RUNNER_LABELS` includes the fixture's `ubuntu-latest`, so every request takes the full
//! path: HMAC, parse, decide, enqueue (202).
//!
//! The open-loop latency runs in rounds, each against the handler and then against a null
//! handler (this binary again, pinned to CPU 0: it reads each envelope and gives the handler's
//! own answer, nothing else), so what the machine and the generator cost alone is measured
//! next to the handler. `ACI_BENCH_TRACE=<file>` writes every request's latency.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::host::FakeHost;
use common::Bench;

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const READY_RUNS: usize = 20;
/// Offered load for the latency measurement: the throughput target, spread over the connections.
const PACED_RATE: u32 = 12_000;
const PROVISION_JOBS: u64 = 50;
/// Open-loop rounds, each run against the handler and then against the null handler.
const ROUNDS: usize = 3;
/// Set (to the answer to give) when this binary runs as the null handler.
const NULL_HANDLER: &str = "ACI_BENCH_NULL_HANDLER";

fn main() {
    if let Some(answer) = std::env::var_os(NULL_HANDLER) {
        null_handler(answer.into_string().unwrap());
        return;
    }
    if std::env::var_os("ACI_BENCH_PINNED").is_none() && std::env::args().all(|a| a != "--no-pin") {
        let exe = std::env::current_exe().unwrap();
        let status = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("ACI_BENCH_PINNED", "1")
            .status()
            .expect("taskset (util-linux) runs the load generator on CPU 1");
        std::process::exit(status.code().unwrap_or(1));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

fn settings_env(b: &Bench) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = b.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.push(("RUNNER_LABELS".into(), "self-hosted,linux,x64,ubuntu-latest".into()));
    v.push(("MAX_RUNNERS".into(), "1000".into()));
    v
}

/// Spawns the handler pinned to CPU 0 and returns it with the time until `GET /` answered.
// The child is returned to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn spawn_pinned(env: &[(String, String)]) -> (std::process::Child, u16, Duration) {
    let dir = common::host::temp_dir("bench");
    common::host::stage(&dir);
    let spawned = spawn_program_pinned(&dir.join("handler"), env);
    // Running, so its files are no longer needed (and a left-over hard link would keep an old
    // binary on disk).
    let _ = std::fs::remove_dir_all(&dir);
    spawned
}

/// Spawns `program` pinned to CPU 0 with only `env`, and waits for `GET /` to answer.
#[allow(clippy::zombie_processes)]
fn spawn_program_pinned(program: &std::path::Path, env: &[(String, String)]) -> (std::process::Child, u16, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg("0").arg(program);
    cmd.env_clear()
        .envs(env.iter().cloned())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string());
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1") {
                return (child, port, start.elapsed());
            }
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("handler not ready after 10 s");
        }
        std::hint::spin_loop();
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() {
    let b = Bench::new(&[]).await;
    let env = settings_env(&b);
    let body = include_bytes!("../tests/data/workflow_job__queued.payload.json");
    let envelope = Bytes::from(common::signed_queued_envelope());

    // 1. Readiness: exec to the first answer on GET /.
    let mut ready: Vec<Duration> = Vec::new();
    for _ in 0..READY_RUNS {
        let (mut child, _, t) = spawn_pinned(&env);
        ready.push(t);
        let _ = child.kill();
        let _ = child.wait();
    }
    ready.sort();

    // 2. Throughput and latency at 32 connections.
    let (mut child, port, _) = spawn_pinned(&env);
    let pid = child.id();
    let (first_status, first_body) = one_request(port, envelope.clone()).await;
    assert_eq!(first_status, 200);
    assert!(first_body.contains("\"statusCode\":202"), "the full accept path: {first_body}");
    let _ = load(port, envelope.clone(), WARMUP).await;
    let s0 = cpu_times();
    let c0 = process_cpu(pid);
    let (latencies, accepted) = load(port, envelope.clone(), MEASURE).await;
    let c1 = process_cpu(pid);
    let s1 = cpu_times();

    // 3. Latency at the target rate, open loop, in rounds: each against the handler, then
    //    against the null handler (reads the envelope, gives the handler's answer, does nothing
    //    else) on the same core, to show what the machine and the load generator cost alone.
    let null_env = vec![(NULL_HANDLER.to_string(), first_body.clone())];
    let (mut null_child, null_port, _) = spawn_program_pinned(&std::env::current_exe().unwrap(), &null_env);
    let (null_status, null_body) = one_request(null_port, envelope.clone()).await;
    assert_eq!(
        (null_status, &null_body),
        (200, &first_body),
        "the null handler answers as the handler does"
    );
    let mut rounds = Vec::new();
    let mut traces = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = cpu_times();
        let handler = paced_load(port, envelope.clone(), PACED_RATE, MEASURE).await;
        let t1 = cpu_times();
        let null = paced_load(null_port, envelope.clone(), PACED_RATE, MEASURE).await;
        let t2 = cpu_times();
        rounds.push(Round {
            handler: Paced::of(&handler, |s| s.from_dispatch),
            handler_from_due: Paced::of(&handler, |s| s.from_due),
            handler_steal: steal(t0, t1),
            null: Paced::of(&null, |s| s.from_dispatch),
            null_from_due: Paced::of(&null, |s| s.from_due),
            null_steal: steal(t1, t2),
        });
        traces.push(handler);
    }
    let _ = null_child.kill();
    let _ = null_child.wait();
    if let Some(path) = std::env::var_os("ACI_BENCH_TRACE") {
        // One line per request of every handler round: round, due time (µs from the round's
        // start), latency from the due time and from the dispatch (µs). For finding stalls.
        let mut out = String::new();
        for (i, t) in traces.iter().enumerate() {
            for x in t {
                out.push_str(&format!("{i} {} {} {}\n", x.due.as_micros(), x.from_due, x.from_dispatch));
            }
        }
        std::fs::write(path, out).unwrap();
    }
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse::<u64>().unwrap()))
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let rps = latencies.len() as f64 / MEASURE.as_secs_f64();
    let kv_reads = b.vault.lock().unwrap().reads("github-webhook-secret");
    let total_requests = latencies.len() + 1;

    // 3. Provisioning cost per job on a first try, through the fake host.
    let host = FakeHost::start(&env.iter().cloned().collect()).await;
    let queued_before = |b: &Bench| {
        let gh = b.github.lock().unwrap().c.calls.len();
        let arm = b.arm.lock().unwrap();
        (gh, arm.writes(), arm.c.calls.len())
    };
    let (gh0, aw0, ac0) = queued_before(&b);
    let kv0 = b.vault.lock().unwrap().reads("github-pat");
    for job in 0..PROVISION_JOBS {
        let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["workflow_job"]["id"] = (9_000_000 + job).into();
        let payload = serde_json::to_vec(&v).unwrap();
        let sig = common::sign(common::WEBHOOK_SECRET, &payload);
        let hs = [
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "workflow_job"),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        assert_eq!(host.http("github-webhook", "POST", &hs, &payload).await.status, 202);
    }
    host.drain().await;
    let (gh1, aw1, ac1) = queued_before(&b);
    let kv_pat = b.vault.lock().unwrap().reads("github-pat") - kv0;
    let groups = b.arm.lock().unwrap().groups.len();
    host.stop().await;
    b.assert_clean();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("## Webhook benchmark (cargo bench --bench webhook)");
    println!();
    println!(
        "machine: {} ({} CPUs); handler pinned to CPU 0, load generator to CPU 1",
        cpu_model(),
        // The machine's CPUs, not this process's (it is pinned to one).
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0)
    );
    println!();
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| ready after exec (median / max of {READY_RUNS}) | {:.1} ms / {:.1} ms | < 20 ms |",
        ms(ready[READY_RUNS / 2]),
        ms(ready[READY_RUNS - 1])
    );
    println!(
        "| `queued` invocations per second ({CONNECTIONS} connections, {} s) | {rps:.0} | ≥ 12,000 |",
        MEASURE.as_secs()
    );
    println!(
        "| latency at saturation (closed loop, {CONNECTIONS} in flight): p50 / p99 / max | {} µs / {} µs / {} µs | — |",
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1]
    );
    let median_p99 = |f: fn(&Round) -> u32| {
        let mut v: Vec<u32> = rounds.iter().map(f).collect();
        v.sort_unstable();
        v[ROUNDS / 2]
    };
    println!(
        "| latency at {PACED_RATE}/s offered over {CONNECTIONS} connections (open loop), p99, median of {ROUNDS} rounds: from dispatch / from due time | {} µs / {} µs | p99 < 1 ms |",
        median_p99(|r| r.handler.p99),
        median_p99(|r| r.handler_from_due.p99)
    );
    println!(
        "| the same for the null handler (the machine and the generator alone) | {} µs / {} µs | — |",
        median_p99(|r| r.null.p99),
        median_p99(|r| r.null_from_due.p99)
    );
    println!(
        "| CPU steal by the hypervisor during the closed loop run | {:.1}% | (noise) |",
        steal(s0, s1)
    );
    // Clock ticks are 10 ms (USER_HZ = 100 on Linux).
    let per_request = |ticks: u64| ticks as f64 * 10_000.0 / latencies.len() as f64;
    println!(
        "| handler CPU time per `queued` invocation (closed loop): user + system | {:.1} µs + {:.1} µs | — |",
        per_request(c1.0 - c0.0),
        per_request(c1.1 - c0.1)
    );
    println!("| answered 202 (accepted and enqueued) | {accepted} of {} | all |", latencies.len());
    println!("| peak RSS (VmHWM) | {:.1} MB | < 30 MB |", rss_kb as f64 / 1024.0);
    println!("| Key Vault reads of the webhook secret for {total_requests} deliveries | {kv_reads} | amortised |");
    println!(
        "| GitHub calls per job, first try ({PROVISION_JOBS} jobs) | {:.2} | 1 |",
        (gh1 - gh0) as f64 / PROVISION_JOBS as f64
    );
    println!(
        "| ARM writes per job, first try | {:.2} | 1 |",
        (aw1 - aw0) as f64 / PROVISION_JOBS as f64
    );
    println!(
        "| ARM calls per job (the list that checks existence and MAX_RUNNERS, the PUT) | {:.2} | — |",
        (ac1 - ac0) as f64 / PROVISION_JOBS as f64
    );
    println!("| Key Vault reads of the PAT for {PROVISION_JOBS} jobs | {kv_pat} | amortised |");
    println!("| container groups created | {groups} | {PROVISION_JOBS} |");
    println!();
    println!(
        "Open loop, {PACED_RATE}/s over {CONNECTIONS} connections, {} s per run, p50 / p99 / p99.9 / max:",
        MEASURE.as_secs()
    );
    println!();
    println!("| round | handler, from dispatch | from due time | steal | null handler, from dispatch | from due time | steal |");
    println!("|---|---|---|---|---|---|---|");
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "| {} | {} | {} | {:.1}% | {} | {} | {:.1}% |",
            i + 1,
            r.handler,
            r.handler_from_due,
            r.handler_steal,
            r.null,
            r.null_from_due,
            r.null_steal
        );
    }
}

/// One open-loop round against the handler and then the null handler.
struct Round {
    handler: Paced,
    handler_from_due: Paced,
    handler_steal: f64,
    null: Paced,
    null_from_due: Paced,
    null_steal: f64,
}

/// Percentiles of one open-loop run, in µs.
struct Paced {
    p50: u32,
    p99: u32,
    p999: u32,
    max: u32,
}

impl Paced {
    fn of(trace: &[Sample], latency: fn(&Sample) -> u32) -> Paced {
        let mut l: Vec<u32> = trace.iter().map(latency).collect();
        l.sort_unstable();
        Paced {
            p50: percentile(&l, 0.50),
            p99: percentile(&l, 0.99),
            p999: percentile(&l, 0.999),
            max: l[l.len() - 1],
        }
    }
}

impl std::fmt::Display for Paced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {} / {} / {} µs", self.p50, self.p99, self.p999, self.max)
    }
}

/// The null handler: answers every invocation with `answer` once it has read the envelope,
/// and does nothing else. Same runtime, HTTP stack and socket options as the handler.
fn null_handler(answer: String) {
    use http_body_util::BodyExt;
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").unwrap().parse().unwrap();
    let answer = Bytes::from(answer);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let answer = answer.clone();
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    let mut r = hyper::Response::new(http_body_util::Full::new(answer));
                    r.headers_mut()
                        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
}

/// `(user, system)` CPU time of a process, in clock ticks (`utime`, `stime` in /proc/<pid>/stat).
fn process_cpu(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    (f[11], f[12])
}

/// `(steal, total)` jiffies of all CPUs, from /proc/stat.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (fields.get(7).copied().unwrap_or(0), fields.iter().take(8).sum())
}

fn steal(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1).max(1);
    100.0 * b.0.saturating_sub(a.0) as f64 / total as f64
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

type Conn = hyper::client::conn::http1::SendRequest<
    http_body_util::StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>>>,
>;

async fn connect(port: u16) -> Conn {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// One chunked POST, as the host sends it (the body's length is not announced).
async fn send(conn: &mut Conn, port: u16, envelope: Bytes) -> (u16, Bytes) {
    use http_body_util::BodyExt;
    let body = http_body_util::StreamBody::new(futures::stream::iter(vec![Ok(hyper::body::Frame::data(envelope))]));
    let req = hyper::Request::post("/github-webhook")
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-azure-functions-invocationid", "fa4fcd1a-a965-431e-8f10-a15c07b4fe2a")
        .body(body)
        .unwrap();
    conn.ready().await.unwrap();
    let resp = conn.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes)
}

async fn one_request(port: u16, envelope: Bytes) -> (u16, String) {
    let mut c = connect(port).await;
    let (s, b) = send(&mut c, port, envelope).await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// `CONNECTIONS` keep-alive connections, each sending back to back until `dur` has passed.
/// Returns each request's latency in µs and how many answered 202.
async fn load(port: u16, envelope: Bytes, dur: Duration) -> (Vec<u32>, usize) {
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let envelope = envelope.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(port).await;
            let mut lat = Vec::with_capacity(64 * 1024);
            let mut ok = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (status, body) = send(&mut c, port, envelope.clone()).await;
                lat.push(t.elapsed().as_micros() as u32);
                if status == 200 && body.windows(16).any(|w| w == b"\"statusCode\":202") {
                    ok += 1;
                }
            }
            (lat, ok)
        }));
    }
    let mut all = Vec::new();
    let mut accepted = 0;
    for t in tasks {
        let (l, ok) = t.await.unwrap();
        all.extend(l);
        accepted += ok;
    }
    (all, accepted)
}

/// Open-loop load: requests are due on a fixed schedule (`rate` per second, handed to the
/// connections in turn); one dispatcher task keeps the schedule and never waits for answers,
/// and each connection sends what it is handed, in order, so a slow answer cannot hide the
/// requests queued behind it (no coordinated omission). Latency is counted twice: from the due
/// time (includes any stall of the generator itself, whose overdue requests then leave in a
/// burst) and from the dispatch (what a host that received them then would see).
async fn paced_load(port: u16, envelope: Bytes, rate: u32, dur: Duration) -> Vec<Sample> {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (rate as f64 * dur.as_secs_f64()) as u32;
    let start = Instant::now() + Duration::from_millis(50);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let envelope = envelope.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Instant)>();
        senders.push(tx);
        let mut c = connect(port).await;
        tasks.push(tokio::spawn(async move {
            let mut trace = Vec::new();
            while let Some((due, dispatched)) = rx.recv().await {
                let (status, _) = send(&mut c, port, envelope.clone()).await;
                assert_eq!(status, 200);
                trace.push(Sample {
                    due: due - start,
                    from_due: due.elapsed().as_micros() as u32,
                    from_dispatch: dispatched.elapsed().as_micros() as u32,
                });
            }
            trace
        }));
    }
    for k in 0..total {
        let due = start + interval * k;
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Timers tick in milliseconds: sleep while the due time is far, then yield (which
            // lets the runtime read answers) until it comes.
            if due - now > Duration::from_millis(2) {
                tokio::time::sleep(due - now - Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        let _ = senders[k as usize % CONNECTIONS].send((due, Instant::now()));
    }
    drop(senders);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable_by_key(|s| s.due);
    all
}

/// One request of an open-loop run: when it was due (from the run's start), and its latency
/// in µs counted from that due time and from when the generator handed it to its connection.
struct Sample {
    due: Duration,
    from_due: u32,
    from_dispatch: u32,
}
