//! The handler's port outlasts what else on the machine may do to it: running out of file
//! descriptors (accept fails: it backs off and logs once, it does not spin or flood stderr)
//! and clients that send half a request (closed after `HOST_HEADER_TIMEOUT_MS`).
//!
//! The handler runs as its own process with a low descriptor limit (`ulimit -n`), so the
//! exhaustion is real and touches nothing else.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Handler {
    child: tokio::process::Child,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

async fn start(fd_limit: u32) -> Handler {
    let port = {
        // Ports below the ephemeral range, one per test binary run, as the fake host takes them.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {fd_limit} && exec \"$0\""))
        .arg(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("KEY_VAULT_URL", "https://kv.example.invalid")
        .env("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")
        .env("RUNNER_RESOURCE_GROUP", "rg")
        .env("RUNNER_LOCATION", "westeurope")
        .env("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
        .env("IDENTITY_HEADER", "x")
        .env("HOST_HEADER_TIMEOUT_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = stderr.clone();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push(l);
        }
    });
    let h = Handler { child, port, stderr };
    h.wait_ready().await;
    h
}

impl Handler {
    async fn get_ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        read.is_ok() && buf.starts_with(b"HTTP/1.1 200")
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if self.get_ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the handler never answered GET /: {:?}", self.stderr.lock().unwrap());
    }

    fn count(&self, needle: &str) -> usize {
        self.stderr.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    async fn wait_for(&self, needle: &str) {
        for _ in 0..500 {
            if self.count(needle) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {needle:?} in {:?}", self.stderr.lock().unwrap());
    }
}

#[tokio::test]
async fn the_port_survives_running_out_of_descriptors() {
    let mut h = start(40).await;
    // Hold far more connections than the handler has descriptors: accept starts failing.
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(TcpStream::connect(("127.0.0.1", h.port)).await.unwrap());
    }
    h.wait_for("host.accept-failed").await;
    // A second of failing: with the backoff that is at most a handful of tries, and one line.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (A descriptor freed now and then starts a new streak: a few lines at most, never a flood.)
    let lines = h.stderr.lock().unwrap().clone();
    let first: Vec<&String> = lines.iter().take(5).collect();
    assert!(
        h.count("host.accept-failed") <= 3,
        "one line per streak, got {}: {first:?}",
        lines.len()
    );
    assert!(lines.len() < 10, "stderr is not flooded: {} lines", lines.len());
    // Descriptors come back: the port answers again.
    drop(held);
    h.wait_ready().await;
    assert!(h.child.try_wait().unwrap().is_none(), "the handler is still running");
}

#[tokio::test]
async fn half_a_request_is_closed_after_the_header_timeout() {
    let h = start(256).await;
    let mut slow = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    slow.write_all(b"POST /github-webhook HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection is closed by the handler, not held");
    // Meanwhile, and after, others are served.
    assert!(h.get_ready().await);
}

#[tokio::test]
async fn a_slow_body_does_not_hold_up_others() {
    let h = start(256).await;
    let mut slow = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
    slow.write_all(b"POST /github-webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Data\":")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The body has 30 s; this test only checks that a whole other request goes through meanwhile.
    assert!(h.get_ready().await);
    let still_open = tokio::time::timeout(Duration::from_millis(50), slow.read_to_end(&mut buf)).await;
    assert!(still_open.is_err(), "a slow body is not cut before its time");
}
