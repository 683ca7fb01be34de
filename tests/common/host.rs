//! A fake Azure Functions host. It stages the handler the way `scripts/package.sh` lays out
//! `dist/` (host.json, the binary, one folder per function), reads each `function.json` for its
//! bindings, starts `handler` with `FUNCTIONS_CUSTOMHANDLER_PORT` and the app settings, waits
//! on `GET /`, and invokes functions with envelopes built as the real host builds them
//! (`reference/functions-host.md` §2, `queue-standby-image.md` §1–2):
//! chunked bodies with no Content-Length; `Data.req` with header arrays and the body text;
//! `Metadata` with the body's top-level fields repeated, `Query`, `Headers` and `sys`;
//! queue data JSON-encoded a second time with `DequeueCount` as a string. Queue outputs are
//! moved to the queue with the host's conversions, and failed queue invocations are retried
//! up to `maxDequeueCount`, then poisoned.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The host's default when host.json sets none.
pub const DEFAULT_MAX_DEQUEUE_COUNT: u32 = 5;

#[derive(Debug, Clone)]
struct Binding {
    kind: String,
    direction: String,
    name: String,
    queue: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub text: String,
    pub dequeue_count: u32,
    pub id: String,
}

/// What the caller of an HTTP function sees.
#[derive(Debug, Clone)]
pub struct HttpResult {
    pub status: u16,
    pub body: String,
    /// The handler's whole answer to the host (empty when it failed the invocation).
    pub raw: String,
}

impl HttpResult {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Fails the test unless the caller got `status`.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> HttpResult {
        assert_eq!(self.status, status, "the caller's status; body: {}", self.body);
        self
    }

    /// Fails the test unless the caller's body is this JSON.
    #[track_caller]
    pub fn expect_json(self, want: Value) -> HttpResult {
        assert_eq!(self.json(), want, "the caller's body: {}", self.body);
        self
    }
}

pub struct FakeHost {
    child: Child,
    port: u16,
    client: reqwest::Client,
    bindings: HashMap<String, Vec<Binding>>,
    /// `extensions.queues.maxDequeueCount` from the staged host.json.
    max_dequeue_count: u32,
    pub queues: Mutex<HashMap<String, VecDeque<Message>>>,
    pub poison: Mutex<Vec<Message>>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// Every answer the handler gave the host, verbatim.
    pub answers: Mutex<Vec<String>>,
    pub dir: PathBuf,
    next_id: Mutex<u64>,
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // Under the target directory, so the handler can be hard-linked rather than copied: a
    // binary copied while another test forks can fail to start with "text file busy".
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aci-runners-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Stages host.json, the handler and `functions/*/function.json` into `dir`, as package.sh does.
pub fn stage(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("host.json"), dir.join("host.json")).unwrap();
    if std::fs::hard_link(env!("CARGO_BIN_EXE_handler"), dir.join("handler")).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_handler"), dir.join("handler")).unwrap();
    }
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let entry = entry.unwrap();
        let to = dir.join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(entry.path().join("function.json"), to.join("function.json")).unwrap();
    }
}

fn read_bindings(dir: &Path) -> HashMap<String, Vec<Binding>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let fj = entry.path().join("function.json");
        if !fj.exists() {
            continue;
        }
        let v: Value = serde_json::from_slice(&std::fs::read(&fj).unwrap()).unwrap();
        let bs = v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| Binding {
                kind: b["type"].as_str().unwrap().to_string(),
                direction: b["direction"].as_str().unwrap().to_string(),
                name: b["name"].as_str().unwrap().to_string(),
                queue: b["queueName"].as_str().map(|q| q.to_ascii_lowercase()),
            })
            .collect();
        out.insert(entry.file_name().to_string_lossy().to_string(), bs);
    }
    out
}

fn pump(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push(l);
        }
    });
}

/// How the host serialises a binding-data value into `Metadata`: strings (and numbers and
/// bools, converted to strings first) are JSON-encoded once more; objects stay objects.
fn metadata_value(v: &Value) -> Value {
    match v {
        Value::Object(_) => v.clone(),
        Value::String(s) => Value::String(serde_json::to_string(s).unwrap()),
        other => Value::String(serde_json::to_string(&other.to_string()).unwrap()),
    }
}

fn sys(function: &str) -> Value {
    json!({"MethodName": function, "UtcNow": "2026-11-28T12:00:00.1234567Z", "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"})
}

/// The envelope for an HTTP trigger, as `HttpRequestExtensions.GetRequestAsJObject` and the
/// HTTP binding data build it.
pub fn http_envelope(function: &str, route: &str, method: &str, headers: &[(&str, &str)], query: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut hs: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    hs.push(("Host".into(), "aci-runners-test.azurewebsites.net".into()));
    if !body.is_empty() {
        hs.push(("Content-Length".into(), body.len().to_string()));
    }
    let qs: String = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let url = format!(
        "https://aci-runners-test.azurewebsites.net/api/{route}{}",
        if qs.is_empty() { String::new() } else { format!("?{qs}") }
    );
    let mut header_arrays = Map::new();
    let mut header_strings = Map::new();
    for (k, v) in &hs {
        header_arrays.insert(k.clone(), json!([v]));
        header_strings.insert(k.clone(), json!(v));
    }
    let query_obj: Map<String, Value> = query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let identities = json!([{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Actor": null, "BootstrapContext": null,
                             "Claims": [{"Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Function"}],
                             "Label": null, "Name": null,
                             "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
                             "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]);
    // The members in the order the host writes them (reference/functions-host.md), `Body` last.
    let mut req = format!(
        "{{\"Url\":{},\"Method\":{},\"Query\":{},\"Headers\":{},\"Params\":{{}},\"Identities\":{}",
        json!(url),
        json!(method),
        Value::Object(query_obj.clone()),
        Value::Object(header_arrays),
        identities
    );
    if !body.is_empty() {
        req.push_str(&format!(",\"Body\":{}", json!(String::from_utf8_lossy(body))));
    }
    req.push('}');
    let mut metadata = Map::new();
    if let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) {
        for (k, v) in top {
            if !v.is_array() {
                metadata.insert(k, metadata_value(&v));
            }
        }
    }
    for (k, v) in query {
        if *k != "code" {
            metadata.insert(k.to_string(), metadata_value(&json!(v)));
        }
    }
    metadata.insert("Query".into(), Value::Object(query_obj));
    metadata.insert("Headers".into(), Value::Object(header_strings));
    metadata.insert("sys".into(), sys(function));
    format!("{{\"Data\":{{\"req\":{req}}},\"Metadata\":{}}}", Value::Object(metadata)).into_bytes()
}

/// How the host turns one `Outputs.<queue>` value into queue messages
/// (`HttpScriptInvocationResultExtensions.GetBindingValue`, `FunctionBinding.BindAsyncCollectorAsync`).
pub fn queue_messages(v: &Value) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => serde_json::to_string_pretty(other).unwrap(),
            })
            .collect(),
        Value::String(s) => {
            if let Ok(bytes) = b64.decode(s) {
                return vec![String::from_utf8_lossy(&bytes).into_owned()];
            }
            let t = s.trim();
            if (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')) {
                return match serde_json::from_str::<Value>(t).unwrap() {
                    Value::Array(a) => a.iter().map(|x| serde_json::to_string_pretty(x).unwrap()).collect(),
                    other => vec![serde_json::to_string_pretty(&other).unwrap()],
                };
            }
            vec![s.clone()]
        }
        other => vec![serde_json::to_string_pretty(other).unwrap()],
    }
}

/// A port for the handler. Picking one by binding port 0 and letting it go races with the
/// tests running beside this one: the kernel can hand the same port to another test's probe or
/// fake before the handler binds it, and then two tests talk to one handler. So ports come from
/// below the kernel's ephemeral range (which port-0 binds never use), each handed out once per
/// test process, from a start that differs between processes.
fn handler_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
        .unwrap_or(32768);
    let (low, span) = (10_000, ephemeral_low.saturating_sub(10_000).max(1000));
    let start = std::process::id() * 97;
    for _ in 0..span {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for the handler between {low} and {}", low + span);
}

impl FakeHost {
    /// Stages and starts the handler with exactly these app settings (no other environment).
    pub async fn start(settings: &HashMap<String, String>) -> FakeHost {
        let dir = temp_dir("host");
        stage(&dir);
        let bindings = read_bindings(&dir);
        let host_json: Value = serde_json::from_slice(&std::fs::read(dir.join("host.json")).unwrap()).unwrap();
        let max_dequeue_count = host_json["extensions"]["queues"]["maxDequeueCount"]
            .as_u64()
            .map(|n| n as u32)
            .unwrap_or(DEFAULT_MAX_DEQUEUE_COUNT);
        let port = handler_port();
        let mut child = Command::new(dir.join("handler"))
            .current_dir(&dir)
            .env_clear()
            .envs(settings)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "8a3f1e2c-0000-4000-8000-000000000001")
            .env("FUNCTIONS_APP_ROOT_PATH", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start handler");
        let stdout: Arc<Mutex<Vec<String>>> = Default::default();
        let stderr: Arc<Mutex<Vec<String>>> = Default::default();
        pump(child.stdout.take().unwrap(), stdout.clone());
        pump(child.stderr.take().unwrap(), stderr.clone());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut host = FakeHost {
            child,
            port,
            client,
            bindings,
            max_dequeue_count,
            queues: Default::default(),
            poison: Default::default(),
            stdout,
            stderr,
            answers: Default::default(),
            dir,
            next_id: Mutex::new(0),
        };
        host.wait_ready().await;
        host
    }

    /// Like the host: poll `GET /` every 25 ms; any answer means ready. A handler that exits
    /// first fails at once.
    async fn wait_ready(&mut self) {
        for _ in 0..400 {
            if self.client.get(format!("http://127.0.0.1:{}/", self.port)).send().await.is_ok() {
                return;
            }
            if let Some(status) = self.exited() {
                // Let the pipes give up the handler's last words.
                for _ in 0..40 {
                    if !self.stderr.lock().unwrap().is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!(
                    "handler exited before it was ready ({status}); stderr: {:?}",
                    self.stderr.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("handler never became ready; stderr: {:?}", self.stderr.lock().unwrap());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends an envelope chunked (no Content-Length), as the host does. Returns the handler's
    /// status and body.
    pub async fn post_envelope(&self, function: &str, envelope: Vec<u8>) -> (u16, String) {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
            envelope.chunks(4096).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let resp = self
            .client
            .post(format!("http://127.0.0.1:{}/{function}", self.port))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", "fa4fcd1a-a965-431e-8f10-a15c07b4fe2a")
            .header("User-Agent", "Azure-Functions-Host/4.1037.0")
            .body(body)
            .send()
            .await
            .expect("handler answered");
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        if (200..300).contains(&status) {
            assert!(
                ct.as_deref().is_some_and(|c| c.starts_with("application/json")),
                "host needs application/json, got {ct:?}"
            );
        }
        self.answers.lock().unwrap().push(text.clone());
        (status, text)
    }

    /// Writes an invocation's queue outputs, as the output bindings would.
    fn apply_outputs(&self, function: &str, outputs: &Value) {
        for b in self.bindings[function].iter().filter(|b| b.kind == "queue" && b.direction == "out") {
            if let Some(v) = outputs.get(&b.name) {
                for text in queue_messages(v) {
                    self.enqueue(b.queue.as_deref().unwrap(), &text);
                }
            }
        }
    }

    pub fn enqueue(&self, queue: &str, text: &str) {
        let mut id = self.next_id.lock().unwrap();
        *id += 1;
        let m = Message {
            text: text.to_string(),
            dequeue_count: 0,
            id: format!("4434c659-815f-434e-a851-{:012}", *id),
        };
        self.queues.lock().unwrap().entry(queue.to_string()).or_default().push_back(m);
    }

    pub fn queued(&self, queue: &str) -> Vec<String> {
        self.queues
            .lock()
            .unwrap()
            .get(queue)
            .map(|q| q.iter().map(|m| m.text.clone()).collect())
            .unwrap_or_default()
    }

    /// Invokes an HTTP function as a caller (GitHub, a workflow step) would reach it.
    pub async fn http(&self, function: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResult {
        self.http_with_params(function, method, headers, body, &[]).await
    }

    /// The same, with route parameters (`Data.req.Params`, also repeated in `Metadata`).
    pub async fn http_with_params(
        &self,
        function: &str,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        params: &[(&str, &str)],
    ) -> HttpResult {
        let route = match function {
            "github-webhook" => "github/webhook".to_string(),
            "runners" => params
                .iter()
                .find(|(k, _)| *k == "name")
                .map(|(_, v)| format!("runners/{v}"))
                .unwrap_or_else(|| "runners".into()),
            other => other.to_string(),
        };
        let query: &[(&str, &str)] = if function == "runners" {
            &[]
        } else {
            &[("code", "function-key-abc")]
        };
        let mut env: Value = serde_json::from_slice(&http_envelope(function, &route, method, headers, query, body)).unwrap();
        for (k, v) in params {
            env["Data"]["req"]["Params"][*k] = json!(v);
            env["Metadata"][*k] = json!(v);
        }
        let env = serde_json::to_vec(&env).unwrap();
        let (status, text) = self.post_envelope(function, env).await;
        if !(200..300).contains(&status) {
            // The invocation failed: the caller gets a 500 and no output binding is written.
            return HttpResult {
                status: 500,
                body: String::new(),
                raw: text,
            };
        }
        let v: Value = serde_json::from_str(&text).expect("the answer to the host is JSON");
        let outputs = v.get("Outputs").cloned().unwrap_or(Value::Null);
        let res = &outputs["res"];
        assert!(res.is_object(), "Outputs.res must be an object: {text}");
        let status = match &res["statusCode"] {
            Value::Number(n) => n.as_u64().unwrap() as u16,
            Value::String(s) => s.parse().unwrap(),
            _ => 200,
        };
        let body = res["body"].as_str().map(str::to_string).unwrap_or_else(|| res["body"].to_string());
        self.apply_outputs(function, &outputs);
        HttpResult { status, body, raw: text }
    }

    /// The queue-trigger envelope for one message.
    pub fn queue_envelope(function: &str, binding: &str, m: &Message) -> Vec<u8> {
        let mut metadata = Map::new();
        metadata.insert("DequeueCount".into(), json!(m.dequeue_count.to_string()));
        metadata.insert("ExpirationTime".into(), json!("2026-12-05T12:00:00+00:00"));
        metadata.insert("Id".into(), json!(serde_json::to_string(&m.id).unwrap()));
        metadata.insert("InsertionTime".into(), json!("2026-11-28T12:00:00+00:00"));
        metadata.insert("NextVisibleTime".into(), json!("2026-11-28T12:10:00+00:00"));
        metadata.insert("PopReceipt".into(), json!("\"AgAAAAMAAAAAAAAAVqQNb/ai2gE=\""));
        metadata.insert("sys".into(), sys(function));
        if let Ok(Value::Object(top)) = serde_json::from_str::<Value>(&m.text) {
            for (k, v) in top {
                if v.is_array() {
                    continue;
                }
                // Binding data is case-insensitive: a message key overrides a built-in one.
                if let Some(existing) = metadata.keys().find(|e| e.eq_ignore_ascii_case(&k)).cloned() {
                    metadata.remove(&existing);
                }
                metadata.insert(k, metadata_value(&v));
            }
        }
        let data = json!({binding: serde_json::to_string(&m.text).unwrap()});
        serde_json::to_vec(&json!({"Data": data, "Metadata": metadata})).unwrap()
    }

    /// Runs every queue-triggered function until its queues are empty. A failed invocation
    /// makes the message visible again (visibilityTimeout is not waited out here); after
    /// host.json's `maxDequeueCount` tries it moves to the poison queue. Returns the invocations made.
    pub async fn drain(&self) -> usize {
        let mut invocations = 0;
        loop {
            let mut did = false;
            for (function, b) in self.queue_triggers() {
                let queue = b.queue.clone().unwrap();
                loop {
                    let next = self.queues.lock().unwrap().get_mut(&queue).and_then(|q| q.pop_front());
                    let Some(mut m) = next else { break };
                    did = true;
                    m.dequeue_count += 1;
                    invocations += 1;
                    let (status, text) = self.post_envelope(&function, Self::queue_envelope(&function, &b.name, &m)).await;
                    self.settle(&function, &b, m, status, &text);
                }
            }
            if !did {
                return invocations;
            }
        }
    }

    /// Invokes every message now in the queues at once, as the host does with a batch
    /// (`batchSize` in host.json), then settles each answer as `drain` does. Returns the
    /// statuses, in queue order.
    pub async fn invoke_batch(&self) -> Vec<u16> {
        let mut batch = vec![];
        for (function, b) in self.queue_triggers() {
            let queue = b.queue.clone().unwrap();
            while let Some(mut m) = self.queues.lock().unwrap().get_mut(&queue).and_then(|q| q.pop_front()) {
                m.dequeue_count += 1;
                batch.push((function.clone(), b.clone(), m));
            }
        }
        let answers = futures::future::join_all(
            batch
                .iter()
                .map(|(f, b, m)| self.post_envelope(f, Self::queue_envelope(f, &b.name, m))),
        )
        .await;
        let mut statuses = vec![];
        for ((function, b, m), (status, text)) in batch.into_iter().zip(answers) {
            statuses.push(status);
            self.settle(&function, &b, m, status, &text);
        }
        statuses
    }

    /// One queue-triggered invocation of `function` with `m` (whose dequeue count the caller
    /// has counted), as the host makes it: on success its outputs go to their queues. What
    /// becomes of a failed message (visibility, poison) is the caller's.
    pub async fn invoke_message(&self, function: &str, m: &Message) -> u16 {
        let binding = self.bindings[function]
            .iter()
            .find(|b| b.kind == "queueTrigger")
            .expect("a queue trigger")
            .name
            .clone();
        let (status, text) = self.post_envelope(function, Self::queue_envelope(function, &binding, m)).await;
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_str(&text).expect("JSON answer");
            self.apply_outputs(function, v.get("Outputs").unwrap_or(&Value::Null));
        }
        status
    }

    /// host.json's `extensions.queues.maxDequeueCount`.
    pub fn max_dequeue_count(&self) -> u32 {
        self.max_dequeue_count
    }

    /// Takes every message out of `queue`.
    pub fn take_queued(&self, queue: &str) -> Vec<Message> {
        self.queues
            .lock()
            .unwrap()
            .get_mut(queue)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    fn queue_triggers(&self) -> Vec<(String, Binding)> {
        self.bindings
            .iter()
            .flat_map(|(f, bs)| bs.iter().filter(|b| b.kind == "queueTrigger").map(move |b| (f.clone(), b.clone())))
            .collect()
    }

    /// What the host does with a queue invocation's answer: outputs on success; otherwise the
    /// message goes back to its queue, or to the poison queue after `maxDequeueCount` tries.
    fn settle(&self, function: &str, b: &Binding, m: Message, status: u16, text: &str) {
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_str(text).expect("JSON answer");
            self.apply_outputs(function, v.get("Outputs").unwrap_or(&Value::Null));
        } else if m.dequeue_count >= self.max_dequeue_count {
            self.poison.lock().unwrap().push(m);
        } else {
            self.queues
                .lock()
                .unwrap()
                .entry(b.queue.clone().unwrap())
                .or_default()
                .push_back(m);
        }
    }

    /// Invokes a timer function.
    pub async fn timer(&self, function: &str, status: Value, past_due: bool) -> (u16, String) {
        let binding = self.bindings[function]
            .iter()
            .find(|b| b.kind == "timerTrigger")
            .expect("a timer trigger")
            .name
            .clone();
        let env = json!({"Data": {binding: {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": status, "IsPastDue": past_due}},
                         "Metadata": {"sys": sys(function)}});
        let (status, text) = self.post_envelope(function, serde_json::to_vec(&env).unwrap()).await;
        if (200..300).contains(&status) {
            let v: Value = serde_json::from_str(&text).expect("JSON answer");
            self.apply_outputs(function, v.get("Outputs").unwrap_or(&Value::Null));
        }
        (status, text)
    }

    /// stdout and stderr, as the host would have logged them.
    pub fn logs(&self) -> String {
        let mut s = self.stdout.lock().unwrap().join("\n");
        s.push('\n');
        s.push_str(&self.stderr.lock().unwrap().join("\n"));
        s
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (polling, bounded) until the handler's output holds `needle`: the handler writes
    /// its line before it answers, but the pipe is read by another task.
    pub async fn wait_log(&self, needle: &str) {
        for _ in 0..400 {
            if self.logs().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no log line with {needle:?} in:\n{}", self.logs());
    }

    /// How the handler exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the handler and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// However a test ends (a panic, a timeout), the handler goes with it (`kill_on_drop` kills it
/// too) and so does its staged directory.
impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
