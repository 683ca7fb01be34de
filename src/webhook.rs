//! GitHub webhook deliveries: the signature over the raw bytes, then our own small types.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::secret::Secret;

/// The largest webhook body accepted (GitHub caps payloads at 25 MB; a `workflow_job` is ~10 KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Is `X-Hub-Signature-256` a valid HMAC-SHA256 of `body` under any of `secrets`?
/// Compared in constant time; every secret is tried, so timing does not tell which matched.
pub fn signature_valid(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    if sig.len() != 32 {
        return false;
    }
    let mut valid = false;
    for s in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(s.expose().as_bytes()) else {
            continue;
        };
        mac.update(body);
        valid |= mac.verify_slice(&sig).is_ok();
    }
    valid
}

/// The webhook secret setting holds several secrets, one per line (rotation).
pub fn split_secrets(value: &Secret) -> Vec<Secret> {
    value
        .expose()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(Secret::new)
        .collect()
}

/// A delivery, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Ping,
    WorkflowJob(JobEvent),
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub action: String,
    pub job: Job,
    /// `owner/name`.
    pub repository: String,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    pub run_attempt: u32,
    pub labels: Vec<String>,
    /// Set once a runner took the job; `None` for a job cancelled while queued.
    pub runner_name: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadDelivery {
    #[error("missing X-GitHub-Event header")]
    NoEvent,
    #[error("form body has no payload field")]
    NoPayload,
    #[error("payload is not a workflow_job event: {0}")]
    Json(String),
}

#[derive(Deserialize)]
struct Payload {
    action: String,
    workflow_job: RawJob,
    repository: RawRepo,
}

#[derive(Deserialize)]
struct RawJob {
    id: u64,
    run_id: u64,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    runner_name: Option<String>,
}

#[derive(Deserialize)]
struct RawRepo {
    full_name: String,
    owner: RawOwner,
}

#[derive(Deserialize)]
struct RawOwner {
    login: String,
}

/// Parses a delivery whose signature has been checked. Accepts GitHub's two content types:
/// `application/json`, and `application/x-www-form-urlencoded` with the JSON in `payload`.
pub fn parse(event: Option<&str>, content_type: Option<&str>, body: &str) -> Result<Delivery, BadDelivery> {
    let event = event.map(str::trim).filter(|e| !e.is_empty()).ok_or(BadDelivery::NoEvent)?;
    match event {
        "ping" => return Ok(Delivery::Ping),
        "workflow_job" => {}
        other => return Ok(Delivery::Other(other.to_string())),
    }
    let is_form = content_type
        .map(|c| c.trim().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
        .unwrap_or(false);
    let json = if is_form {
        let payload = form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or(BadDelivery::NoPayload)?;
        std::borrow::Cow::Owned(payload)
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let p: Payload = serde_json::from_str(&json).map_err(|e| BadDelivery::Json(e.to_string()))?;
    Ok(Delivery::WorkflowJob(JobEvent {
        action: p.action,
        job: Job {
            id: p.workflow_job.id,
            run_id: p.workflow_job.run_id,
            run_attempt: p.workflow_job.run_attempt.unwrap_or(1),
            labels: p.workflow_job.labels,
            runner_name: p.workflow_job.runner_name.filter(|n| !n.is_empty()),
        },
        repository: p.repository.full_name,
        owner: p.repository.owner.login,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS_SECRET: &str = "It's a Secret to Everybody";

    #[test]
    fn githubs_documented_test_vector_verifies() {
        let secrets = [Secret::new(DOCS_SECRET)];
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(&secrets, b"Hello, World!", Some(header)));
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_fail() {
        let secrets = [Secret::new(DOCS_SECRET)];
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let cases: &[(&str, Option<String>, &[u8])] = &[
            ("missing header", None, b"Hello, World!"),
            ("body changed", Some(format!("sha256={good}")), b"Hello, World?"),
            ("sha1 prefix", Some(format!("sha1={good}")), b"Hello, World!"),
            ("not hex", Some("sha256=zz".into()), b"Hello, World!"),
            ("truncated", Some(format!("sha256={}", &good[..62])), b"Hello, World!"),
            ("empty", Some(String::new()), b"Hello, World!"),
        ];
        for (rule, header, body) in cases {
            assert!(!signature_valid(&secrets, body, header.as_deref()), "{rule}");
        }
        assert!(
            !signature_valid(&[], b"Hello, World!", Some(&format!("sha256={good}"))),
            "no secrets"
        );
    }

    #[test]
    fn any_of_several_rotated_secrets_verifies() {
        let secrets = split_secrets(&Secret::new(format!("new-secret\n{DOCS_SECRET}\n\n")));
        assert_eq!(secrets.len(), 2);
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(&secrets, b"Hello, World!", Some(header)));
    }

    #[test]
    fn form_and_json_bodies_parse_alike() {
        let json = r#"{"action":"queued","workflow_job":{"id":7,"run_id":8,"run_attempt":2,"labels":["self-hosted","aci"],"runner_name":null},"repository":{"full_name":"o/r","owner":{"login":"o"}}}"#;
        let form = format!("payload={}", form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>());
        let a = parse(Some("workflow_job"), Some("application/json"), json).unwrap();
        let b = parse(Some("workflow_job"), Some("application/x-www-form-urlencoded"), &form).unwrap();
        assert_eq!(a, b);
        let Delivery::WorkflowJob(e) = a else { panic!() };
        assert_eq!((e.job.id, e.job.run_id, e.job.run_attempt), (7, 8, 2));
        assert_eq!(e.repository, "o/r");
        assert_eq!(e.job.runner_name, None);
    }

    #[test]
    fn ping_and_other_events_need_no_payload() {
        assert_eq!(parse(Some("ping"), None, "{}").unwrap(), Delivery::Ping);
        assert_eq!(parse(Some("push"), None, "").unwrap(), Delivery::Other("push".into()));
        assert_eq!(parse(None, None, "{}").unwrap_err(), BadDelivery::NoEvent);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(matches!(parse(Some("workflow_job"), None, "{not json"), Err(BadDelivery::Json(_))));
        assert!(matches!(
            parse(Some("workflow_job"), None, r#"{"action":"queued"}"#),
            Err(BadDelivery::Json(_))
        ));
        assert_eq!(
            parse(Some("workflow_job"), Some("application/x-www-form-urlencoded"), "other=1").unwrap_err(),
            BadDelivery::NoPayload
        );
    }
}
