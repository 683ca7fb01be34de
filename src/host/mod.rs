//! The Azure Functions custom-handler protocol, as the real host speaks it.
//!
//! - Readiness: the host polls `GET /` until anything answers.
//! - Invocations: `POST /<function folder>` with a chunked JSON envelope
//!   `{"Data":{…},"Metadata":{…}}` (no Content-Length; bodies with one work too).
//! - Answers: always 200 + `application/json` `{"Outputs":…,"Logs":[…],"ReturnValue":null}`
//!   with the caller's status in `Outputs.res`. A non-2xx fails the invocation and drops
//!   every output binding; functions ask for that on purpose with [`Outcome::Fail`].
//!
//! This module knows nothing of the functions themselves: `main` hands it a table of them.

mod envelope;

pub use envelope::{http_request, queue_item, timer_info, HttpRequest, ProtocolError, QueueItem, TimerInfo, HTTP_TRIGGER};

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

/// The name of the HTTP output binding.
pub const HTTP_OUTPUT: &str = "res";
/// The largest envelope read from the host. Bodies are bounded without trusting
/// Content-Length, which the host never sends.
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;
/// How much of an oversized envelope is read (and thrown away) before giving up on it. The
/// Functions front end refuses request bodies over 100 MB itself.
const DISCARD_LIMIT: usize = 128 * 1024 * 1024;

/// What a function returns.
pub enum Outcome {
    /// 200 to the host with these outputs.
    Done(InvokeResponse),
    /// A non-2xx to the host: the invocation fails, outputs are dropped, a queue message is
    /// retried. The text is logged by the function, not sent.
    Fail,
}

/// `{"Outputs":…,"Logs":[…],"ReturnValue":null}`.
#[derive(Debug, Default, serde::Serialize)]
pub struct InvokeResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Value>,
}

impl InvokeResponse {
    /// An HTTP answer for the caller: `Outputs.res` with a JSON body.
    pub fn http(status: u16, body: &Value) -> Self {
        let mut r = InvokeResponse::default();
        r.outputs.insert(
            HTTP_OUTPUT.into(),
            json!({
                "statusCode": status,
                "body": body.to_string(),
                "headers": {"Content-Type": "application/json"},
            }),
        );
        r
    }

    /// Adds queue messages to an output binding, as the host wants them: an array of compact
    /// JSON strings (a bare string that looks like base64 would be decoded, an object
    /// re-serialised).
    pub fn with_queue(mut self, binding: &str, messages: Vec<String>) -> Self {
        self.outputs
            .insert(binding.into(), Value::Array(messages.into_iter().map(Value::String).collect()));
        self
    }
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// A function: takes the raw envelope, returns what to tell the host.
pub type Function = Arc<dyn Fn(Bytes) -> BoxFuture + Send + Sync>;

/// The functions this handler serves, by folder name.
#[derive(Default, Clone)]
pub struct Functions(HashMap<String, Function>);

impl Functions {
    pub fn add<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.0.insert(name.to_string(), Arc::new(move |b| Box::pin(f(b))));
        self
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Reads a body of unknown length (chunked) up to `limit` bytes; `None` when it is larger.
/// A body that arrives as one frame (the usual case) is kept as it is, without a copy.
async fn read_bounded(mut body: Incoming, limit: usize) -> Result<Option<Bytes>, hyper::Error> {
    let mut first: Option<Bytes> = None;
    let mut more = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        seen += data.len();
        if seen > limit {
            // Read the rest without keeping it, so the host gets an answer rather than a
            // broken pipe; past DISCARD_LIMIT the connection is simply dropped.
            if seen > DISCARD_LIMIT {
                return Ok(None);
            }
            first = None;
            more.clear();
            continue;
        }
        match &first {
            None if more.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    more.extend_from_slice(&f);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        return Ok(None);
    }
    Ok(Some(first.unwrap_or_else(|| more.freeze())))
}

async fn invoke(function: Function, name: &str, body: Incoming, read_timeout: Duration) -> Response {
    let read = match tokio::time::timeout(read_timeout, read_bounded(body, MAX_ENVELOPE_BYTES)).await {
        Ok(read) => read,
        Err(_) => {
            crate::log::error("host.read-timeout", &[("function", &name), ("after_ms", &read_timeout.as_millis())]);
            return json_reply(StatusCode::REQUEST_TIMEOUT, &json!({"error": "request body incomplete"}));
        }
    };
    let envelope = match read {
        Ok(Some(b)) => b,
        Ok(None) => {
            crate::log::error("host.too-large", &[("function", &name), ("limit_bytes", &MAX_ENVELOPE_BYTES)]);
            let r = InvokeResponse::http(413, &json!({"error": "body too large"}));
            return json_reply(StatusCode::OK, &r);
        }
        Err(e) => {
            crate::log::error("host.read-failed", &[("function", &name), ("error", &e)]);
            return json_reply(StatusCode::BAD_REQUEST, &json!({"error": "unreadable body"}));
        }
    };
    match function(envelope).await {
        Outcome::Done(r) => json_reply(StatusCode::OK, &r),
        Outcome::Fail => json_reply(StatusCode::INTERNAL_SERVER_ERROR, &InvokeResponse::default()),
    }
}

/// The protocol's two routes: `GET /` (readiness) and `POST /<function>` (an invocation).
async fn route(functions: Arc<Functions>, options: ServeOptions, req: hyper::Request<Incoming>) -> Result<Response, Infallible> {
    let path = req.uri().path();
    if path == "/" {
        return Ok(if req.method() == Method::GET {
            json_reply(StatusCode::OK, &json!({"ready": true}))
        } else {
            json_reply(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "GET / is the readiness probe"}))
        });
    }
    let name = path.trim_start_matches('/');
    let Some(function) = functions.0.get(name).cloned() else {
        crate::log::error("host.unknown-function", &[("function", &name)]);
        return Ok(json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such function"})));
    };
    if req.method() != Method::POST {
        return Ok(json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "the host POSTs invocations"}),
        ));
    }
    let name = name.to_string();
    Ok(invoke(function, &name, req.into_body(), options.body_read_timeout).await)
}

/// How the port treats its clients. The host is the only client meant to connect, but the
/// port must outlast anything else on the machine that does.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A connection that has not sent a request's headers in this long is closed. hyper counts
    /// a kept-alive connection's idle time too, so this must outlast the host's own idle
    /// timeout for pooled connections (.NET's `PooledConnectionIdleTimeout`, 1 to 2 minutes):
    /// the host then always closes an idle connection first, and never sends a request on one
    /// we are closing.
    pub header_read_timeout: Duration,
    /// A request whose body has not arrived whole in this long is answered 408 and closed.
    pub body_read_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(130),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// After a failed `accept` (out of file descriptors, most often), wait before trying again:
/// 10 ms, doubling to 1 s while it keeps failing, so the loop neither spins nor floods stderr.
/// One line is logged per failure streak, and one when accepting works again.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// The wait after one more failure.
    fn failed(&mut self) -> Duration {
        self.failures += 1;
        Self::FIRST.saturating_mul(1 << (self.failures - 1).min(7)).min(Self::MAX)
    }

    /// Accepting works again; returns how many failures the streak had.
    fn recovered(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// Serves the functions on `127.0.0.1:<port>` (the host connects to IPv4 loopback) until the
/// process ends. Connections get `TCP_NODELAY`: answers are small, and Nagle's algorithm with
/// delayed ACKs would hold some of them back for 40 ms.
pub async fn serve(port: u16, functions: Functions, options: ServeOptions) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    crate::log::info("host.listening", &[("address", &addr)]);
    let functions = Arc::new(functions);
    let mut backoff = AcceptBackoff::default();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => {
                let failures = backoff.recovered();
                if failures > 0 {
                    crate::log::info("host.accepting-again", &[("failures", &failures)]);
                }
                tcp
            }
            Err(e) => {
                let wait = backoff.failed();
                if backoff.failures == 1 {
                    crate::log::error("host.accept-failed", &[("error", &e), ("retry_ms", &wait.as_millis())]);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let functions = functions.clone();
        let svc = hyper::service::service_fn(move |req| route(functions.clone(), options, req));
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_data_is_decoded_twice_and_dequeue_count_is_a_string() {
        let env = br#"{"Data":{"request":"\"{\\\"op\\\":\\\"create\\\"}\""},"Metadata":{"DequeueCount":"3","Id":"\"abc\""}}"#;
        let item = queue_item(env, "request").unwrap();
        assert_eq!(item.text, r#"{"op":"create"}"#);
        assert_eq!(item.dequeue_count, 3);
    }

    #[test]
    fn http_headers_are_arrays_and_case_insensitive() {
        let env = br#"{"Data":{"req":{"Method":"POST","Query":{},"Headers":{"X-GitHub-Event":["ping"]},"Params":{},"Body":"{}"}},"Metadata":{"Headers":{"X-GitHub-Event":"ping"}}}"#;
        let req = http_request(env).unwrap();
        assert_eq!(req.header("x-github-event"), Some("ping"));
        assert_eq!(req.body(), "{}");
    }

    #[test]
    fn http_request_is_read_whichever_comes_first() {
        let data_first = br#"{"Data":{"req":{"Method":"POST","Headers":{},"Body":"x"}},"Metadata":{"Headers":{}}}"#;
        let metadata_first = br#"{"Metadata":{"Headers":{}},"Data":{"req":{"Method":"POST","Headers":{},"Body":"x"}}}"#;
        assert_eq!(http_request(data_first).unwrap().body(), "x");
        assert_eq!(http_request(metadata_first).unwrap().body(), "x");
        assert!(matches!(http_request(b"{\"Metadata\":{}}"), Err(ProtocolError::Missing(_))));
        assert!(matches!(http_request(b"{\"Data\":{}}"), Err(ProtocolError::Missing(_))));
        assert!(matches!(http_request(b"not json"), Err(ProtocolError::Envelope(_))));
        assert!(matches!(
            http_request(b"{\"Data\":{\"req\":{\"Method\":1}}}"),
            Err(ProtocolError::Envelope(_))
        ));
    }

    #[test]
    fn http_request_without_body_has_an_empty_one() {
        let env = br#"{"Data":{"req":{"Method":"GET","Query":{},"Headers":{},"Params":{}}},"Metadata":{}}"#;
        assert_eq!(http_request(env).unwrap().body(), "");
    }

    #[test]
    fn timer_status_may_be_null_or_an_object() {
        let null = br#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}"#;
        assert!(!timer_info(null, "timer").unwrap().is_past_due);
        let obj = br#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2016-10-04T10:15:00+00:00","Next":"2016-10-04T10:20:00+00:00","LastUpdated":"2016-10-04T10:16:00+00:00"},"IsPastDue":true}},"Metadata":{}}"#;
        assert!(timer_info(obj, "timer").unwrap().is_past_due);
    }

    #[test]
    fn http_answer_carries_the_callers_status_in_res() {
        let r = InvokeResponse::http(202, &json!({"ok": true})).with_queue("requests", vec![r#"{"op":"create"}"#.into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["Outputs"]["res"]["statusCode"], 202);
        assert_eq!(v["Outputs"]["res"]["body"], r#"{"ok":true}"#);
        assert_eq!(v["Outputs"]["requests"][0], r#"{"op":"create"}"#);
        assert_eq!(v["ReturnValue"], Value::Null);
    }

    #[test]
    fn accept_failures_back_off_to_a_second_and_reset() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u128> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(b.recovered(), 10);
        assert_eq!(b.failed().as_millis(), 10, "a new streak starts small");
    }
}
