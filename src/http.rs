//! Outbound HTTP: the one shared client (one TLS stack, the system roots plus `SSL_CERT_FILE`),
//! the retry policy every call goes through, and the error callers branch on.

use std::future::Future;
use std::time::Duration;

use reqwest::{header::HeaderMap, Response, StatusCode};

pub const USER_AGENT: &str = concat!("aci-runners/", env!("CARGO_PKG_VERSION"));

/// How often and how long to retry one named outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// Exponential backoff starts here and doubles per try.
    pub base_delay: Duration,
    /// The longest wait this process will sit through. A `Retry-After` longer than this is
    /// not waited out here: the call fails as transient and the queue retries later.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (after `attempt` failed tries), or `None` to stop.
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let backoff = self.base_delay.saturating_mul(1 << (attempt.saturating_sub(1)).min(16));
        let wait = retry_after.map_or(backoff, |ra| ra.max(backoff.min(self.max_delay)));
        (wait <= self.max_delay).then_some(wait)
    }
}

/// Reads a server's wish to be left alone: `retry-after-ms` / `x-ms-retry-after-ms` (Azure),
/// then `Retry-After` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = get(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    if let Some(s) = get("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(s));
    }
    // GitHub's primary rate limit: wait until the window resets.
    if get("x-ratelimit-remaining") == Some("0") {
        let reset = get("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    None
}

/// 408, 429 and 5xx may succeed later; the rest will not.
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A failed outbound call, as callers need to see it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with a non-success status.
    #[error("{op}: {host}: HTTP {status}{}: {message}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Status {
        op: &'static str,
        /// The service's host name (never the URL: URLs can carry keys).
        host: String,
        status: u16,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
        /// GitHub's rate limit (a 403 or 429 with `x-ratelimit-remaining: 0`, or a secondary
        /// rate limit): transient whatever the status.
        rate_limited: bool,
    },
    /// No answer: the name does not resolve, the connection is refused or reset, TLS fails,
    /// or it timed out. `cause` is one line in our words (see [`cause_of`]).
    #[error("{op}: {host}: {cause}")]
    Transport { op: &'static str, host: String, cause: String },
    /// Not sent: GitHub's limit on runner registrations leaves this client no turn for `wait`
    /// (the GitHub client paces its registrations). A rate limit like GitHub's own.
    #[error("{op}: held back: GitHub's secondary limit on runner registrations leaves no turn for {} s", wait.as_secs().max(1))]
    HeldBack { op: &'static str, wait: Duration },
    /// Anything else (a credential that cannot get a token, a body we cannot read).
    #[error("{op}: {message}")]
    Other {
        op: &'static str,
        message: String,
        transient: bool,
    },
}

impl CallError {
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Status { status, rate_limited, .. } => {
                *rate_limited || StatusCode::from_u16(*status).map(is_transient_status).unwrap_or(false)
            }
            CallError::Transport { .. } | CallError::HeldBack { .. } => true,
            CallError::Other { transient, .. } => *transient,
        }
    }

    /// GitHub's rate limit: wait for the window, it is no failure of the request.
    pub fn rate_limited(&self) -> bool {
        matches!(self, CallError::Status { rate_limited: true, .. } | CallError::HeldBack { .. })
    }

    /// Azure said no for want of capacity or quota (`ContainerGroupQuotaReached`, a cores
    /// quota, a region out of capacity): it clears when groups go, so the create waits.
    pub fn is_capacity(&self) -> bool {
        let CallError::Status { code, message, .. } = self else {
            return false;
        };
        let code = code.as_deref().unwrap_or("").to_ascii_lowercase();
        let message = message.to_ascii_lowercase();
        code.contains("quota")
            || matches!(code.as_str(), "insufficientcapacity" | "resourcesunavailable" | "skunotavailable")
            || (code == "serviceunavailable" && message.contains("quota"))
            || message.contains("quota") && message.contains("exceeded")
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Builds a `Status` error from a non-success response: the service's error code and
    /// message (GitHub `{message}`, ARM `{error:{code,message}}`) and its request id.
    pub async fn from_response(op: &'static str, resp: Response) -> CallError {
        let host = host_of(resp.url());
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let request_id = ["x-github-request-id", "x-ms-request-id", "x-ms-correlation-request-id"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(str::to_string));
        let header_code = headers.get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);
        let exhausted = headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()) == Some("0");
        let text = resp.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        let code = header_code.or_else(|| body["error"]["code"].as_str().map(str::to_string));
        let message = body["error"]["message"]
            .as_str()
            .or_else(|| body["message"].as_str())
            .map(one_line)
            .unwrap_or_else(|| one_line(&text.chars().take(200).collect::<String>()));
        let rate_limited = matches!(status, 403 | 429) && (exhausted || message.to_ascii_lowercase().contains("rate limit"));
        CallError::Status {
            op,
            host,
            status,
            code,
            message,
            request_id,
            rate_limited,
        }
    }
}

/// Reads a success answer's JSON body; an unreadable one is transient (a proxy's error page,
/// a cut connection).
pub async fn read_json<T: serde::de::DeserializeOwned>(op: &'static str, resp: Response) -> Result<T, CallError> {
    resp.json().await.map_err(|e| CallError::Other {
        op,
        message: format!("unreadable answer: {e}"),
        transient: true,
    })
}

/// Sends the request `make` builds, retrying transient failures by `policy`.
/// Returns the first success (any 2xx, or a status listed in `accept`) or the last error.
pub async fn send<F, Fut>(op: &'static str, policy: &RetryPolicy, accept: &[u16], mut make: F) -> Result<Response, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<reqwest::RequestBuilder, CallError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (err, wait_hint) = match make().await?.send().await {
            Ok(resp) if resp.status().is_success() || accept.contains(&resp.status().as_u16()) => return Ok(resp),
            Ok(resp) => {
                let hint = retry_after(resp.headers());
                (CallError::from_response(op, resp).await, hint)
            }
            Err(e) => (
                CallError::Transport {
                    op,
                    host: e.url().map(host_of).unwrap_or_else(|| "-".into()),
                    cause: cause_of(&e),
                },
                None,
            ),
        };
        if !err.is_transient() {
            return Err(err);
        }
        match policy.next_delay(attempt, wait_hint) {
            Some(d) => tokio::time::sleep(d).await,
            None => return Err(err),
        }
    }
}

/// Characters left as they are in a path segment: RFC 3986's unreserved set. Everything else,
/// `/`, `?`, `#`, `%` and `.` runs included, is percent-encoded, so data can never change a path.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One URL path segment built from data, percent-encoded. A segment of only dots (`.`, `..`),
/// which a URL parser would resolve, has its dots encoded too.
pub fn segment(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b == b'.') {
        return s.replace('.', "%2E");
    }
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// A URL's host (and port, when it is not the scheme's own), for error messages.
pub fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => "-".into(),
    }
}

/// Whitespace runs (newlines included) as one space, so a message stays on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a request got no answer, in a few words a person can act on: walks the error's sources
/// (reqwest, hyper, the resolver, rustls, the OS) for the first thing we can name.
pub fn cause_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(next) = chain.last().and_then(|c| c.source()) {
        chain.push(next);
    }
    let timed_out = chain.iter().any(|c| {
        c.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout)
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || c.is::<tokio::time::error::Elapsed>()
    });
    if timed_out {
        return "timed out".into();
    }
    for c in &chain {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
                std::io::ErrorKind::ConnectionAborted => return "connection aborted".into(),
                _ => {}
            }
        }
    }
    let texts: Vec<String> = chain.iter().map(|c| c.to_string()).collect();
    if texts
        .iter()
        .any(|t| t.contains("failed to lookup address") || t.starts_with("dns error"))
    {
        return "name does not resolve".into();
    }
    let innermost = texts.last().map(|t| one_line(t)).unwrap_or_default();
    if texts
        .iter()
        .any(|t| t.contains("certificate") || t.contains("handshake") || t.contains("TLS"))
    {
        return format!("TLS: {innermost}");
    }
    innermost
}

/// The one HTTP client: rustls with the system roots plus the PEM bundle in `SSL_CERT_FILE`
/// (GitHub Enterprise Server with a private CA, TLS-inspecting proxies, the tests' CA).
/// Proxies come from `HTTPS_PROXY` / `NO_PROXY` as usual.
pub fn http_client(timeout: Duration, extra_roots_pem: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context as _;
    let mut b = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(pem) = extra_roots_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).context("SSL_CERT_FILE holds no readable PEM certificates")?;
        b = b.tls_certs_merge(certs);
    }
    b.build().context("building the HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
        }
    }

    #[test]
    fn data_cannot_change_a_path() {
        assert_eq!(segment("aci-runner-1"), "aci-runner-1");
        assert_eq!(segment("../rg"), "..%2Frg");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a?b#c%d e"), "a%3Fb%23c%25d%20e");
        assert_eq!(segment("Hello-World.js_x~"), "Hello-World.js_x~");
    }

    #[test]
    fn backoff_doubles_per_try() {
        let p = policy();
        assert_eq!(p.next_delay(1, None), Some(Duration::from_millis(100)));
        assert_eq!(p.next_delay(2, None), Some(Duration::from_millis(200)));
        assert_eq!(p.next_delay(3, None), Some(Duration::from_millis(400)));
    }

    #[test]
    fn stops_after_the_last_attempt() {
        assert_eq!(policy().next_delay(4, None), None);
    }

    #[test]
    fn retry_after_longer_than_backoff_is_honoured() {
        assert_eq!(policy().next_delay(1, Some(Duration::from_secs(7))), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_beyond_the_bound_is_left_to_the_queue() {
        assert_eq!(policy().next_delay(1, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn retry_after_headers_are_read_in_azure_order() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("x-ms-retry-after-ms", "5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(5)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn githubs_rate_limit_waits_for_the_reset() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600), "{wait:?}");
    }

    #[test]
    fn a_rate_limited_403_is_transient_and_a_plain_403_is_not() {
        let e = |rate_limited| CallError::Status {
            op: "x",
            host: "api.github.com".into(),
            status: 403,
            code: None,
            message: "m".into(),
            request_id: None,
            rate_limited,
        };
        assert!(e(true).is_transient());
        assert!(!e(false).is_transient());
    }

    #[test]
    fn capacity_answers_are_told_apart() {
        let e = |status, code: &str, message: &str| CallError::Status {
            op: "arm.put-container-group",
            host: "management.azure.com".into(),
            status,
            code: Some(code.into()),
            message: message.into(),
            request_id: None,
            rate_limited: false,
        };
        let capacity = [
            e(409, "ContainerGroupQuotaReached", "Resource type 'Microsoft.ContainerInstance/containerGroups' has reached the quota"),
            e(403, "QuotaExceeded", "Operation results in exceeding quota limits of Core"),
            e(503, "ServiceUnavailable", "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' exceeded in region 'westeurope'"),
            e(409, "InsufficientCapacity", "The requested resource is not available in the location"),
        ];
        for c in &capacity {
            assert!(c.is_capacity(), "{c}");
        }
        for c in [
            e(400, "InvalidRequestContent", "bad body"),
            e(403, "AuthorizationFailed", "no rights"),
        ] {
            assert!(!c.is_capacity(), "{c}");
        }
    }

    #[test]
    fn transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(!is_transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
