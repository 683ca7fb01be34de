//! GitHub webhook deliveries: the signature over the raw bytes, then our own small types.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::clock::parse_rfc3339;
pub use crate::job::{Job, JobEvent};
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

/// The webhook secret setting holds several secrets, one per line (rotation). Each is used
/// byte for byte: lines are split on line breaks (`\n`, `\r\n`) only, never trimmed, so a
/// secret with leading or trailing spaces verifies as GitHub computes it.
pub fn split_secrets(value: &Secret) -> Vec<Secret> {
    value.expose().lines().filter(|l| !l.is_empty()).map(Secret::new).collect()
}

/// A delivery, parsed. One is made per request and matched at once, so the job is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Ping,
    WorkflowJob(JobEvent),
    Other(String),
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
struct RawJob {
    id: u64,
    run_id: u64,
    #[serde(default)]
    run_attempt: Option<u32>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    runner_name: Option<String>,
    #[serde(default)]
    workflow_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct RawOwner {
    login: String,
}

/// The few fields a `workflow_job` delivery is read for. GitHub writes `action`,
/// `workflow_job` and `repository` first, with `full_name` and `owner` early in `repository`;
/// reading stops once all of them are in hand, so the rest of the repository's ~60 URLs and
/// the `sender` (about 70% of a delivery) are never scanned. The body is signed by GitHub
/// (the signature is checked first), so what is not read cannot have been tampered with; in
/// any other order, everything is read. Against a derived struct this saves 12% of the
/// handler's instructions per webhook invocation (docs/benchmarks.md, "Hand-written readers
/// against serde derive").
#[derive(Default)]
struct Fields {
    action: Option<String>,
    job: Option<RawJob>,
    full_name: Option<String>,
    owner: Option<String>,
}

impl Fields {
    fn complete(&self) -> bool {
        self.action.is_some() && self.job.is_some() && self.full_name.is_some() && self.owner.is_some()
    }

    fn read(json: &str) -> Result<Payload, String> {
        use serde::de::Deserializer as _;
        let mut fields = Fields::default();
        match serde_json::Deserializer::from_str(json).deserialize_map(FieldsVisitor::Payload(&mut fields)) {
            Err(e) if !e.to_string().starts_with(STOP) => return Err(e.to_string()),
            _ => {}
        }
        match fields {
            Fields {
                action: Some(action),
                job: Some(job),
                full_name: Some(repository),
                owner: Some(owner),
            } => Ok(Payload {
                action,
                job,
                repository,
                owner,
            }),
            f => {
                let missing = if f.action.is_none() {
                    "action"
                } else if f.job.is_none() {
                    "workflow_job"
                } else if f.full_name.is_none() {
                    "repository.full_name"
                } else {
                    "repository.owner"
                };
                Err(format!("missing field `{missing}`"))
            }
        }
    }
}

struct Payload {
    action: String,
    job: RawJob,
    repository: String,
    owner: String,
}

/// Raised (and caught in [`Fields::read`]) to stop reading once every field is in hand.
const STOP: &str = "aci-runners: every field read";

/// The keys looked for, without allocating a string per key.
enum Key {
    Action,
    WorkflowJob,
    Repository,
    FullName,
    Owner,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "action" => Key::Action,
                    "workflow_job" => Key::WorkflowJob,
                    "repository" => Key::Repository,
                    "full_name" => Key::FullName,
                    "owner" => Key::Owner,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Reads the payload's top level, or (as a seed) its `repository` object.
enum FieldsVisitor<'a> {
    Payload(&'a mut Fields),
    Repository(&'a mut Fields),
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldsVisitor<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldsVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a workflow_job event")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::{Error as _, IgnoredAny};
        let (fields, top) = match self {
            FieldsVisitor::Payload(f) => (f, true),
            FieldsVisitor::Repository(f) => (f, false),
        };
        while let Some(key) = map.next_key::<Key>()? {
            match (top, key) {
                (true, Key::Action) => fields.action = Some(map.next_value()?),
                (true, Key::WorkflowJob) => fields.job = Some(map.next_value()?),
                (true, Key::Repository) => map.next_value_seed(FieldsVisitor::Repository(&mut *fields))?,
                (false, Key::FullName) => fields.full_name = Some(map.next_value()?),
                (false, Key::Owner) => fields.owner = Some(map.next_value::<RawOwner>()?.login),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if fields.complete() {
                return Err(A::Error::custom(STOP));
            }
        }
        Ok(())
    }
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
    let Payload {
        action,
        job,
        repository,
        owner,
    } = Fields::read(&json).map_err(BadDelivery::Json)?;
    Ok(Delivery::WorkflowJob(JobEvent {
        action,
        job: Job {
            id: job.id,
            run_id: job.run_id,
            run_attempt: job.run_attempt.unwrap_or(1),
            labels: job.labels,
            runner_name: job.runner_name.filter(|n| !n.is_empty()),
            workflow: job.workflow_name,
            name: job.name,
            created_at: job.created_at.as_deref().and_then(parse_rfc3339),
            started_at: job.started_at.as_deref().and_then(parse_rfc3339),
            completed_at: job.completed_at.as_deref().and_then(parse_rfc3339),
            conclusion: job.conclusion,
        },
        repository,
        owner,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS_SECRET: &str = "It's a Secret to Everybody";

    #[test]
    fn githubs_documented_test_vector_verifies() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../../tests/data/signature-test-vectors.json")).unwrap();
        let secrets = [Secret::new(v["secret"].as_str().unwrap())];
        assert_eq!(v["secret"], DOCS_SECRET);
        let payload = v["payload"].as_str().unwrap().as_bytes();
        assert!(signature_valid(&secrets, payload, v["x_hub_signature_256"].as_str()));
    }

    #[test]
    fn signatures_over_the_raw_bytes_of_githubs_payloads_verify() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../../tests/data/signature-test-vectors.json")).unwrap();
        let files: [(&str, &[u8]); 3] = [
            (
                "workflow_job__queued.payload.json",
                include_bytes!("../../tests/data/workflow_job__queued.payload.json"),
            ),
            (
                "workflow_job__completed.success.with-organization.payload.json",
                include_bytes!("../../tests/data/workflow_job__completed.success.with-organization.payload.json"),
            ),
            ("ping__payload.json", include_bytes!("../../tests/data/ping__payload.json")),
        ];
        let vectors = v["derived_vectors_over_raw_file_bytes_COMPUTED_LOCALLY"].as_array().unwrap();
        assert_eq!(vectors.len(), files.len());
        for (name, bytes) in files {
            let vector = vectors.iter().find(|x| x["file"] == name).unwrap();
            assert_eq!(vector["bytes"], bytes.len(), "{name} is unedited");
            let secrets = [Secret::new(vector["secret"].as_str().unwrap())];
            let header = vector["x_hub_signature_256"].as_str();
            assert!(signature_valid(&secrets, bytes, header), "{name}");
            // One byte more (a re-serialised body would differ by far more) and it fails.
            assert!(!signature_valid(&secrets, &[bytes, b"\n"].concat(), header), "{name}");
        }
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
    fn a_secret_with_spaces_is_used_byte_for_byte() {
        let secret = "  spaced secret\t ";
        let body = b"{}";
        let header = {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let secrets = split_secrets(&Secret::new(format!("other\r\n{secret}\n")));
        assert_eq!(secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(), ["other", secret]);
        assert!(signature_valid(&secrets, body, Some(&header)));
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

    /// The fields, read the slow and obvious way.
    fn expected(json: &str) -> JobEvent {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let j = &v["workflow_job"];
        JobEvent {
            action: v["action"].as_str().unwrap().into(),
            job: Job {
                id: j["id"].as_u64().unwrap(),
                run_id: j["run_id"].as_u64().unwrap(),
                run_attempt: j["run_attempt"].as_u64().unwrap_or(1) as u32,
                labels: j["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect(),
                runner_name: j["runner_name"].as_str().filter(|n| !n.is_empty()).map(Into::into),
                workflow: j["workflow_name"].as_str().map(Into::into),
                name: j["name"].as_str().map(Into::into),
                created_at: j["created_at"].as_str().and_then(parse_rfc3339),
                started_at: j["started_at"].as_str().and_then(parse_rfc3339),
                completed_at: j["completed_at"].as_str().and_then(parse_rfc3339),
                conclusion: j["conclusion"].as_str().map(Into::into),
            },
            repository: v["repository"]["full_name"].as_str().unwrap().into(),
            owner: v["repository"]["owner"]["login"].as_str().unwrap().into(),
        }
    }

    #[test]
    fn githubs_payloads_read_as_a_full_parse_reads_them() {
        for fixture in [
            include_str!("../../tests/data/workflow_job__queued.payload.json"),
            include_str!("../../tests/data/workflow_job__in_progress.payload.json"),
            include_str!("../../tests/data/workflow_job__completed.success.with-organization.payload.json"),
        ] {
            let Delivery::WorkflowJob(e) = parse(Some("workflow_job"), None, fixture).unwrap() else {
                panic!()
            };
            assert_eq!(e, expected(fixture));
        }
    }

    #[test]
    fn the_jobs_times_are_read_and_a_bad_one_is_no_bad_delivery() {
        let fixture = include_str!("../../tests/data/workflow_job__completed.success.with-organization.payload.json");
        let Delivery::WorkflowJob(e) = parse(Some("workflow_job"), None, fixture).unwrap() else {
            panic!()
        };
        assert_eq!(e.job.created_at, Some(time::macros::datetime!(2021-08-05 10:33:58 UTC)));
        assert_eq!(e.job.started_at, Some(time::macros::datetime!(2021-08-05 10:34:58 UTC)));
        assert_eq!(e.job.completed_at, Some(time::macros::datetime!(2021-08-05 10:38:16 UTC)));
        assert_eq!(
            (e.job.workflow.as_deref(), e.job.conclusion.as_deref()),
            (Some("CodeQL"), Some("success"))
        );
        let odd = r#"{"action":"completed","workflow_job":{"id":7,"run_id":8,"created_at":"yesterday","started_at":null},"repository":{"full_name":"o/r","owner":{"login":"o"}}}"#;
        let Delivery::WorkflowJob(e) = parse(Some("workflow_job"), None, odd).unwrap() else {
            panic!()
        };
        assert_eq!((e.job.created_at, e.job.started_at), (None, None));
    }

    #[test]
    fn fields_in_any_order_are_found() {
        let reordered = r#"{"sender":{"login":"x"},"repository":{"owner":{"login":"o"},"private":false,"full_name":"o/r"},"workflow_job":{"labels":["aci"],"run_id":8,"id":7},"action":"queued"}"#;
        let Delivery::WorkflowJob(e) = parse(Some("workflow_job"), None, reordered).unwrap() else {
            panic!()
        };
        assert_eq!(e, expected(reordered));
    }

    #[test]
    fn a_missing_field_is_named() {
        let cases = [
            (
                r#"{"workflow_job":{"id":1,"run_id":2},"repository":{"full_name":"o/r","owner":{"login":"o"}}}"#,
                "`action`",
            ),
            (
                r#"{"action":"queued","repository":{"full_name":"o/r","owner":{"login":"o"}}}"#,
                "`workflow_job`",
            ),
            (
                r#"{"action":"queued","workflow_job":{"id":1,"run_id":2},"repository":{"owner":{"login":"o"}}}"#,
                "`repository.full_name`",
            ),
            (
                r#"{"action":"queued","workflow_job":{"id":1,"run_id":2},"repository":{"full_name":"o/r"}}"#,
                "`repository.owner`",
            ),
            (
                r#"{"action":"queued","workflow_job":{"id":1},"repository":{"full_name":"o/r","owner":{"login":"o"}}}"#,
                "`run_id`",
            ),
        ];
        for (json, field) in cases {
            let Err(BadDelivery::Json(why)) = parse(Some("workflow_job"), None, json) else {
                panic!("{json}")
            };
            assert!(why.contains(field), "{why} should name {field}");
        }
    }
}
