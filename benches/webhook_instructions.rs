//! Instructions per `github-webhook` invocation, counted by callgrind: repeatable on a shared
//! machine, where time is not.
//!
//!   CARGO_PROFILE_BENCH_STRIP=false cargo bench --bench webhook_instructions
//!
//! (needs valgrind; symbols are kept to find SHA-256 in the profile; results in
//! docs/benchmarks.md).
//!
//! Each invocation is the envelope `benches/webhook.rs` sends: the unedited 7.9 KB
//! `workflow_job__queued` fixture, signed, as the host wraps it, on the full accept path
//! (signature, parse, decide, queue message, 202). Two counts:
//! - **in process**: `github_webhook::run` and serialising its answer, which is what the
//!   handler does with an envelope once hyper has read it (this binary, run again under
//!   callgrind with `inprocess <n>`);
//! - **handler**: the release `handler` under callgrind, pinned to one core as the webhook
//!   bench runs it, sent the envelopes back to back over one keep-alive connection, chunked:
//!   adds hyper, tokio and the answer's way out (user space only; callgrind does not see the
//!   kernel).
//!
//! Each is run with two numbers of invocations and the difference divided by the difference
//! of the numbers, so start-up (the fakes, TLS, the first Key Vault read) cancels out.
//! Valgrind's CPU has no SHA-NI, so SHA-256 runs in software there; the part of the count spent
//! in `sha2::sha256::soft::compress` is printed apart, to set against the SHA-NI code's count.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aci_runners::azure::CredentialKind;
use aci_runners::config::Config;
use aci_runners::functions::{github_webhook, App};
use aci_runners::host::Outcome;
use bytes::Bytes;
use common::Bench;

/// The two numbers of invocations whose counts are subtracted.
const FEW: u64 = 100;
const MANY: u64 = 2100;
const SOFT_SHA256: &str = "sha2::sha256::soft::compress";

fn settings() -> [(&'static str, &'static str); 2] {
    [("RUNNER_LABELS", "self-hosted,linux,x64,ubuntu-latest"), ("MAX_RUNNERS", "1000")]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if let [mode, n] = &args[..] {
        if mode == "inprocess" {
            rt.block_on(in_process(n.parse().unwrap()));
            return;
        }
    }
    rt.block_on(drive());
}

/// Runs under callgrind: one invocation to read the secret from the Key Vault fake, then `n`.
async fn in_process(n: u64) {
    let b = Bench::new(&settings()).await;
    // The credential and the HTTP client read the proxy and the identity endpoint from the
    // process environment, as in the handler.
    for (k, v) in &b.settings {
        std::env::set_var(k, v);
    }
    let cfg = Config::from_env(&b.settings).unwrap();
    let roots = std::fs::read(&b.settings["SSL_CERT_FILE"]).unwrap();
    let app = App::new(cfg, CredentialKind::ManagedIdentity, Some(&roots)).unwrap();
    let envelope = common::signed_queued_envelope();
    let first = invoke(&app, &envelope).await;
    assert!(accepted(&first), "the full accept path: {}", String::from_utf8_lossy(&first));
    for _ in 0..n {
        std::hint::black_box(invoke(&app, std::hint::black_box(&envelope)).await);
    }
}

/// One invocation, to the bytes the host gets back.
async fn invoke(app: &App, envelope: &[u8]) -> Vec<u8> {
    match github_webhook::run(app, envelope).await {
        Outcome::Done(r) => serde_json::to_vec(&r).unwrap(),
        Outcome::Fail => panic!("the webhook never fails the invocation"),
    }
}

fn accepted(answer: &[u8]) -> bool {
    let needle = br#"\"accepted\":\"create\""#;
    answer.windows(needle.len()).any(|w| w == needle)
}

async fn drive() {
    let envelope = common::signed_queued_envelope();
    println!("Envelope {} bytes; counts from {FEW} and {MANY} invocations.", envelope.len());
    println!();
    println!("| what | instructions per invocation | of which software SHA-256 |");
    println!("|---|---|---|");
    let exe = std::env::current_exe().unwrap();
    let mut runs = Vec::new();
    for n in [FEW, MANY] {
        let out = out_file(&format!("inprocess-{n}"));
        let status = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["inprocess", &n.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("valgrind (apt-get install valgrind)");
        assert!(status.success(), "the in-process run under callgrind");
        runs.push(counts(&out));
        let _ = std::fs::remove_dir_all(out.parent().unwrap());
    }
    row("in process: `github_webhook::run` and its answer serialised", &runs);

    let b = Bench::new(&settings()).await;
    let mut runs = Vec::new();
    for n in [FEW, MANY] {
        runs.push(handler_run(&b, &envelope, n).await);
    }
    row("the `handler` process (hyper, tokio, the function), user space", &runs);
}

fn row(what: &str, runs: &[(u64, u64)]) {
    let per = |f: fn(&(u64, u64)) -> u64| (f(&runs[1]) - f(&runs[0])) as f64 / (MANY - FEW) as f64;
    let sha = if runs.iter().all(|r| r.1 == 0) {
        "— (symbols stripped: set CARGO_PROFILE_BENCH_STRIP=false)".to_string()
    } else {
        format!("{:.0}", per(|r| r.1))
    };
    println!("| {what} | {:.0} | {sha} |", per(|r| r.0));
}

fn out_file(tag: &str) -> std::path::PathBuf {
    common::host::temp_dir("callgrind").join(format!("{tag}.out"))
}

/// `(total, in software SHA-256)` instructions of a callgrind profile.
fn counts(out: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(out).unwrap();
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("totals: ").or_else(|| l.strip_prefix("summary: ")))
        .and_then(|t| t.trim().parse().ok())
        .expect("a callgrind profile");
    let annotated = Command::new("callgrind_annotate").arg(out).output().unwrap();
    let sha = String::from_utf8_lossy(&annotated.stdout)
        .lines()
        .find(|l| l.contains(SOFT_SHA256))
        .and_then(|l| l.split_whitespace().next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or(0);
    (total, sha)
}

/// The staged handler under callgrind, pinned to CPU 0 (so it runs its one-core runtime),
/// sent one envelope to warm it up and then `n`; stopped with SIGTERM, on which callgrind
/// writes its profile.
async fn handler_run(b: &Bench, envelope: &[u8], n: u64) -> (u64, u64) {
    let dir = common::host::temp_dir("callgrind-handler");
    common::host::stage(&dir);
    let out = dir.join(format!("handler-{n}.out"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("taskset")
        .args(["-c", "0", "valgrind", "--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(dir.join("handler"))
        .env_clear()
        .envs(b.settings.iter())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskset and valgrind");
    let start = Instant::now();
    let mut conn = loop {
        if let Ok(mut c) = connect(port).await {
            if get_ready(&mut c, port).await {
                break c;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "handler not ready under callgrind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let envelope = Bytes::copy_from_slice(envelope);
    for _ in 0..=n {
        let answer = send(&mut conn, port, envelope.clone()).await;
        assert!(accepted(&answer), "the full accept path: {}", String::from_utf8_lossy(&answer));
    }
    drop(conn);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let c = counts(&out);
    let _ = std::fs::remove_dir_all(&dir);
    c
}

type Conn = hyper::client::conn::http1::SendRequest<
    http_body_util::StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>>>,
>;

async fn connect(port: u16) -> std::io::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

async fn get_ready(conn: &mut Conn, port: u16) -> bool {
    let req = hyper::Request::get("/")
        .header("host", format!("127.0.0.1:{port}"))
        .body(http_body_util::StreamBody::new(futures::stream::iter(vec![])))
        .unwrap();
    use http_body_util::BodyExt;
    if conn.ready().await.is_err() {
        return false;
    }
    match conn.send_request(req).await {
        Ok(resp) => resp.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

/// One chunked POST, as the host sends it (the body's length is not announced).
async fn send(conn: &mut Conn, port: u16, envelope: Bytes) -> Bytes {
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
    resp.into_body().collect().await.unwrap().to_bytes()
}
