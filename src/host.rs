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

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::{Buf, Filter};

/// The name of the HTTP trigger binding in every HTTP function's `function.json`.
pub const HTTP_TRIGGER: &str = "req";
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

/// An HTTP trigger's request, from `Data.req`.
#[derive(Debug, Deserialize)]
pub struct HttpRequest {
    #[serde(rename = "Method", default)]
    pub method: String,
    #[serde(rename = "Headers", default)]
    headers: HashMap<String, Vec<String>>,
    #[serde(rename = "Params", default)]
    pub params: HashMap<String, String>,
    /// The UTF-8 text of the raw body; absent when the body was empty.
    #[serde(rename = "Body", default)]
    pub body: Option<String>,
}

impl HttpRequest {
    /// A header's first value, the name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    pub fn body(&self) -> &str {
        self.body.as_deref().unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the envelope is not JSON the host sends: {0}")]
    Envelope(String),
    #[error("the envelope has no Data.{0}")]
    Missing(String),
}

/// Reads `Data.req` from an HTTP invocation. The host writes `Data` before `Metadata`, and
/// `Metadata` only repeats the body's top-level fields, so reading stops once `Data` is read
/// (about 40% of a webhook envelope is never scanned). An envelope with `Metadata` first is
/// read through as usual.
pub fn http_request(envelope: &[u8]) -> Result<HttpRequest, ProtocolError> {
    use serde::de::{Deserializer as _, Error as _, IgnoredAny, MapAccess, Visitor};

    #[derive(Deserialize)]
    struct Data {
        req: Option<HttpRequest>,
    }
    const STOP: &str = "aci-runners: Data read";
    struct DataOnly<'a>(&'a mut Option<Data>);
    impl<'de> Visitor<'de> for DataOnly<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an invocation envelope")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "Data" {
                    *self.0 = Some(map.next_value()?);
                    return Err(A::Error::custom(STOP));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }

    let mut data = None;
    let result = serde_json::Deserializer::from_slice(envelope).deserialize_map(DataOnly(&mut data));
    match (data, result) {
        (Some(d), _) => d.req.ok_or_else(|| ProtocolError::Missing(HTTP_TRIGGER.into())),
        (None, Err(e)) => Err(ProtocolError::Envelope(e.to_string())),
        (None, Ok(())) => Err(ProtocolError::Missing("Data".into())),
    }
}

/// A queue trigger's message and how often it has been dequeued.
#[derive(Debug)]
pub struct QueueItem {
    /// The message text (the host JSON-encodes it once more; this is decoded).
    pub text: String,
    pub dequeue_count: u32,
}

/// Reads `Data.<binding>` (the message text, JSON-encoded a second time) and
/// `Metadata.DequeueCount` (a string; a number is accepted too).
pub fn queue_item(envelope: &[u8], binding: &str) -> Result<QueueItem, ProtocolError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let raw = env["Data"].get(binding).ok_or_else(|| ProtocolError::Missing(binding.into()))?;
    let text = match raw {
        Value::String(s) => serde_json::from_str::<String>(s).unwrap_or_else(|_| s.clone()),
        // A host that hands over the parsed message: use it as it is.
        other => other.to_string(),
    };
    let dequeue_count = match &env["Metadata"]["DequeueCount"] {
        Value::String(s) => s.trim_matches('"').parse().unwrap_or(1),
        Value::Number(n) => n.as_u64().unwrap_or(1) as u32,
        _ => 1,
    };
    Ok(QueueItem { text, dequeue_count })
}

/// A timer trigger's `Data.<binding>`: `ScheduleStatus` may be null or an object.
#[derive(Debug, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<Value>,
}

pub fn timer_info(envelope: &[u8], binding: &str) -> Result<TimerInfo, ProtocolError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let raw = env["Data"].get(binding).ok_or_else(|| ProtocolError::Missing(binding.into()))?;
    serde_json::from_value(raw.clone()).map_err(|e| ProtocolError::Envelope(e.to_string()))
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

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> warp::reply::Response {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = warp::reply::Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", warp::http::HeaderValue::from_static("application/json"));
    r
}

/// Reads a body of unknown length (chunked) up to `limit` bytes; `None` when it is larger.
async fn read_bounded(
    mut body: impl futures::Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    limit: usize,
) -> Result<Option<Bytes>, warp::Error> {
    let mut out = BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk?;
        seen += chunk.remaining();
        if seen > limit {
            // Read the rest without keeping it, so the host gets an answer rather than a
            // broken pipe; past DISCARD_LIMIT the connection is simply dropped.
            if seen > DISCARD_LIMIT {
                return Ok(None);
            }
            out.clear();
            continue;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok((seen <= limit).then(|| out.freeze()))
}

async fn invoke(
    name: String,
    functions: Arc<Functions>,
    body: impl futures::Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<warp::reply::Response, Infallible> {
    let Some(f) = functions.0.get(&name).cloned() else {
        crate::log::error("host.unknown-function", &[("function", &name)]);
        return Ok(json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such function"})));
    };
    let envelope = match read_bounded(body, MAX_ENVELOPE_BYTES).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            crate::log::error("host.too-large", &[("function", &name), ("limit_bytes", &MAX_ENVELOPE_BYTES)]);
            let r = InvokeResponse::http(413, &json!({"error": "body too large"}));
            return Ok(json_reply(StatusCode::OK, &r));
        }
        Err(e) => {
            crate::log::error("host.read-failed", &[("function", &name), ("error", &e)]);
            return Ok(json_reply(StatusCode::BAD_REQUEST, &json!({"error": "unreadable body"})));
        }
    };
    Ok(match f(envelope).await {
        Outcome::Done(r) => json_reply(StatusCode::OK, &r),
        Outcome::Fail => json_reply(StatusCode::INTERNAL_SERVER_ERROR, &InvokeResponse::default()),
    })
}

/// The warp filter for the whole protocol (exposed for in-process tests and benchmarks).
pub fn routes(functions: Functions) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let functions = Arc::new(functions);
    let ready = warp::get()
        .and(warp::path::end())
        .map(|| json_reply(StatusCode::OK, &json!({"ready": true})));
    let call = warp::post()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::any().map(move || functions.clone()))
        .and(warp::body::stream())
        .and_then(|name, fs, body| invoke(name, fs, Box::pin(body)));
    ready.or(call).unify()
}

/// Serves the functions on `127.0.0.1:<port>` (the host connects to IPv4 loopback) until the
/// process ends. Connections get `TCP_NODELAY`: answers are small, and Nagle's algorithm with
/// delayed ACKs would hold some of them back for 40 ms.
pub async fn serve(port: u16, functions: Functions) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    crate::log::info("host.listening", &[("address", &addr)]);
    let service = warp::service(routes(functions));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::log::error("host.accept-failed", &[("error", &e)]);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
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
        assert!(timer_info(null, "timer").unwrap().schedule_status.is_none());
        let obj = br#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2016-10-04T10:15:00+00:00","Next":"2016-10-04T10:20:00+00:00","LastUpdated":"2016-10-04T10:16:00+00:00"},"IsPastDue":true}},"Metadata":{}}"#;
        let t = timer_info(obj, "timer").unwrap();
        assert!(t.is_past_due && t.schedule_status.is_some());
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
}
