//! Pure decisions over plain data: which jobs we serve, what we enqueue, runner names, the
//! container group body. No I/O here; everything is table-tested below.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::{Config, Scope, DEFAULT_LABELS};
use crate::secret::Secret;
use crate::webhook::JobEvent;

pub const MANAGED_BY: &str = "aci-runners";

/// Where a runner request came from (the `origin` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Webhook,
    Workflow,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Webhook => "webhook",
            Origin::Workflow => "workflow",
        }
    }
}

/// A message on the `runner-requests` queue. Its top-level keys are copied into the queue
/// trigger's Metadata by the host, so none is named `id`, `dequeueCount` or `sys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Create(Create),
    Release(Release),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Create {
    /// Runner name = container group name.
    pub runner: String,
    /// `owner/name` of the repository the job or token came from.
    pub repository: String,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
    pub run: u64,
    pub attempt: u32,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub runner: String,
    pub repository: String,
    /// Set for a job cancelled while queued: the group made for it may by now run another
    /// job, so it is released only if its runner is not busy.
    #[serde(default)]
    pub only_if_idle: bool,
}

impl Request {
    pub fn runner(&self) -> &str {
        match self {
            Request::Create(c) => &c.runner,
            Request::Release(r) => &r.runner,
        }
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("a request always serialises")
    }
}

/// What `github-webhook` does with a `workflow_job` delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Enqueue(Request),
    Ignore(String),
}

/// `<prefix>-<job id>`.
pub fn webhook_runner_name(prefix: &str, job_id: u64) -> String {
    format!("{prefix}-{job_id}")
}

/// `<prefix>-<run id>-<run attempt>-<first 8 hex of sha256(key)>`.
pub fn workflow_runner_name(prefix: &str, run_id: u64, attempt: u32, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{prefix}-{run_id}-{attempt}-{}", &hex::encode(digest)[..8])
}

/// Is this runner (or container group) name one of ours?
pub fn is_ours(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-'))
}

/// The job id a webhook runner's name was made from, if it is one.
pub fn job_id_from_name(prefix: &str, name: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}

/// The run id a workflow-step runner's name was made from (`<prefix>-<run>-<attempt>-<8 hex>`).
pub fn run_id_from_name(prefix: &str, name: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [run, attempt, hash] if attempt.parse::<u32>().is_ok() && hash.len() == 8 => run.parse().ok(),
        _ => None,
    }
}

/// All of the job's labels are ours (case-insensitive) and at least one is not a GitHub
/// default label, so a job asking only for `self-hosted` is never taken.
pub fn labels_served(job_labels: &[String], runner_labels: &[String]) -> bool {
    let ours = |l: &String| runner_labels.iter().any(|r| r.eq_ignore_ascii_case(l));
    let specific = |l: &String| !DEFAULT_LABELS.contains(&l.to_ascii_lowercase().as_str());
    !job_labels.is_empty() && job_labels.iter().all(ours) && job_labels.iter().any(specific)
}

/// The most labels a workflow step may ask for, and the longest label.
pub const MAX_REQUESTED_LABELS: usize = 10;
pub const MAX_LABEL_LEN: usize = 64;

/// A workflow-step runner's labels: `RUNNER_LABELS` plus the requested ones (each at most
/// [`MAX_LABEL_LEN`] characters of `[A-Za-z0-9._-]`, at most [`MAX_REQUESTED_LABELS`] of them),
/// duplicates dropped case-insensitively. Labels only name the runner: a request can never
/// change its image or size.
pub fn workflow_labels(requested: &[String], runner_labels: &[String]) -> Result<Vec<String>, String> {
    if requested.len() > MAX_REQUESTED_LABELS {
        return Err(format!(
            "at most {MAX_REQUESTED_LABELS} labels may be requested, got {}",
            requested.len()
        ));
    }
    let mut out = runner_labels.to_vec();
    for l in requested {
        let valid =
            !l.is_empty() && l.len() <= MAX_LABEL_LEN && l.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(format!(
                "label {l:?} must be 1 to {MAX_LABEL_LEN} characters of letters, digits, '.', '_' and '-'"
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(l)) {
            out.push(l.clone());
        }
    }
    Ok(out)
}

/// The webhook rules (DESIGN.md, Answers).
pub fn decide(event: &JobEvent, cfg: &Config) -> Decision {
    let ignore = |why: String| Decision::Ignore(why);
    match event.action.as_str() {
        "queued" | "completed" => {}
        other => return ignore(format!("action {other} is not handled")),
    }
    if !cfg.repository_allowed(&event.repository) {
        return ignore(format!("repository {} is not allowed", event.repository));
    }
    let job = &event.job;
    if event.action == "queued" {
        if !labels_served(&job.labels, &cfg.runner_labels) {
            return ignore(format!("labels [{}] are not served", job.labels.join(", ")));
        }
        return Decision::Enqueue(Request::Create(Create {
            runner: webhook_runner_name(&cfg.name_prefix, job.id),
            repository: event.repository.clone(),
            origin: Origin::Webhook,
            job: Some(job.id),
            run: job.run_id,
            attempt: job.run_attempt,
            labels: cfg.runner_labels.clone(),
        }));
    }
    // completed
    match &job.runner_name {
        Some(name) if is_ours(&cfg.name_prefix, name) => Decision::Enqueue(Request::Release(Release {
            runner: name.clone(),
            repository: event.repository.clone(),
            only_if_idle: false,
        })),
        Some(name) => ignore(format!("job ran on runner {name}, which is not ours")),
        None if labels_served(&job.labels, &cfg.runner_labels) => Decision::Enqueue(Request::Release(Release {
            runner: webhook_runner_name(&cfg.name_prefix, job.id),
            repository: event.repository.clone(),
            only_if_idle: true,
        })),
        None => ignore(format!("labels [{}] are not served", job.labels.join(", "))),
    }
}

/// The tags every container group carries; operators and the sweeper filter on them.
pub fn tags(cfg: &Config, req: &Create, created_at: OffsetDateTime) -> BTreeMap<&'static str, String> {
    let mut t = BTreeMap::new();
    t.insert("managed-by", MANAGED_BY.to_string());
    t.insert("github-repository", req.repository.clone());
    if let Scope::Org { .. } = cfg.scope {
        t.insert("github-owner", owner_of(&req.repository).to_string());
    }
    if let Some(job) = req.job {
        t.insert("github-job-id", job.to_string());
    }
    t.insert("github-run-id", req.run.to_string());
    t.insert("origin", req.origin.as_str().to_string());
    t.insert("created-at", rfc3339(created_at));
    t
}

pub fn owner_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The container group: one Linux container `runner`, never restarted, started as
/// `/home/runner/run.sh` with the JIT config in a secure environment variable.
pub fn container_group_body(cfg: &Config, req: &Create, created_at: OffsetDateTime, jit_config: &Secret) -> Value {
    let mut properties = json!({
        "osType": "Linux",
        "restartPolicy": "Never",
        "sku": "Standard",
        "containers": [{
            "name": "runner",
            "properties": {
                "image": cfg.image,
                "command": ["/home/runner/run.sh"],
                "resources": {"requests": {"cpu": cfg.cpu, "memoryInGB": cfg.memory_gb}},
                "environmentVariables": [
                    {"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": jit_config.expose()}
                ]
            }
        }]
    });
    if let Some(subnet) = &cfg.subnet_id {
        properties["subnetIds"] = json!([{"id": subnet}]);
    }
    json!({
        "location": cfg.location,
        "tags": tags(cfg, req, created_at),
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Job;
    use std::collections::HashMap;

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let mut env: HashMap<String, String> = HashMap::new();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        Config::for_plan(&env).unwrap()
    }

    fn event(action: &str, labels: &[&str], runner: Option<&str>) -> JobEvent {
        JobEvent {
            action: action.into(),
            job: Job {
                id: 42,
                run_id: 7,
                run_attempt: 1,
                labels: labels.iter().map(|s| s.to_string()).collect(),
                runner_name: runner.map(str::to_string),
            },
            repository: "octo-org/octo-repo".into(),
            owner: "octo-org".into(),
        }
    }

    fn is_ignore(d: &Decision) -> bool {
        matches!(d, Decision::Ignore(_))
    }

    #[test]
    fn webhook_rules() {
        let c = cfg(&[]);
        let cases: &[(&str, JobEvent, bool)] = &[
            (
                "queued job with self-hosted and aci is served",
                event("queued", &["self-hosted", "aci"], None),
                true,
            ),
            (
                "labels compare case-insensitively",
                event("queued", &["Self-Hosted", "ACI", "Linux"], None),
                true,
            ),
            (
                "job with only self-hosted is ignored",
                event("queued", &["self-hosted"], None),
                false,
            ),
            (
                "job with only default labels is ignored",
                event("queued", &["self-hosted", "linux", "x64"], None),
                false,
            ),
            (
                "job with a label we lack is ignored",
                event("queued", &["self-hosted", "aci", "gpu"], None),
                false,
            ),
            ("job with no labels is ignored", event("queued", &[], None), false),
            ("github-hosted job is ignored", event("queued", &["ubuntu-latest"], None), false),
            (
                "in_progress is ignored",
                event("in_progress", &["self-hosted", "aci"], Some("aci-runner-42")),
                false,
            ),
            ("waiting is ignored", event("waiting", &["self-hosted", "aci"], None), false),
            (
                "completed on our runner releases it",
                event("completed", &["self-hosted", "aci"], Some("aci-runner-99")),
                true,
            ),
            (
                "completed on another runner is ignored",
                event("completed", &["self-hosted", "aci"], Some("GitHub Actions 5")),
                false,
            ),
            (
                "cancelled while queued releases its group",
                event("completed", &["self-hosted", "aci"], None),
                true,
            ),
            (
                "cancelled job we never served is ignored",
                event("completed", &["ubuntu-latest"], None),
                false,
            ),
        ];
        for (rule, e, enqueues) in cases {
            assert_eq!(!is_ignore(&decide(e, &c)), *enqueues, "{rule}");
        }
    }

    #[test]
    fn queued_job_becomes_a_create_named_after_the_job() {
        let c = cfg(&[]);
        let Decision::Enqueue(Request::Create(r)) = decide(&event("queued", &["self-hosted", "aci"], None), &c) else {
            panic!()
        };
        assert_eq!(r.runner, "aci-runner-42");
        assert_eq!(r.job, Some(42));
        assert_eq!(r.labels, c.runner_labels);
        assert_eq!(r.origin, Origin::Webhook);
    }

    #[test]
    fn completed_releases_the_runner_that_ran_it_not_the_one_made_for_it() {
        let c = cfg(&[]);
        let d = decide(&event("completed", &["self-hosted", "aci"], Some("aci-runner-99")), &c);
        assert_eq!(
            d,
            Decision::Enqueue(Request::Release(Release {
                runner: "aci-runner-99".into(),
                repository: "octo-org/octo-repo".into(),
                only_if_idle: false
            }))
        );
        let d = decide(&event("completed", &["self-hosted", "aci"], None), &c);
        let Decision::Enqueue(Request::Release(r)) = d else { panic!() };
        assert_eq!((r.runner.as_str(), r.only_if_idle), ("aci-runner-42", true));
    }

    #[test]
    fn repository_not_allowed_is_ignored() {
        let c = cfg(&[("ALLOWED_REPOSITORIES", "someone/else")]);
        assert!(is_ignore(&decide(&event("queued", &["self-hosted", "aci"], None), &c)));
        let c = cfg(&[("ALLOWED_OWNERS", "Octo-Org")]);
        assert!(!is_ignore(&decide(&event("queued", &["self-hosted", "aci"], None), &c)));
    }

    #[test]
    fn workflow_label_rules() {
        let base = vec!["self-hosted".to_string(), "aci".to_string()];
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            workflow_labels(&l(&["run-42-1", "ACI"]), &base).unwrap(),
            l(&["self-hosted", "aci", "run-42-1"]),
            "added, duplicates dropped"
        );
        assert_eq!(workflow_labels(&[], &base).unwrap(), base, "nothing requested: RUNNER_LABELS");
        let bad: &[(&str, Vec<String>)] = &[
            ("too many labels", (0..11).map(|i| format!("l{i}")).collect()),
            ("empty label", l(&[""])),
            ("label too long", vec!["x".repeat(65)]),
            ("label with a space", l(&["a b"])),
            ("label with a comma", l(&["a,b"])),
            ("label with a slash", l(&["../image"])),
        ];
        for (rule, req) in bad {
            assert!(workflow_labels(req, &base).is_err(), "{rule}");
        }
    }

    #[test]
    fn names_are_stable_valid_and_read_back() {
        assert_eq!(webhook_runner_name("aci-runner", 289782451), "aci-runner-289782451");
        let a = workflow_runner_name("aci-runner", 2202229078, 1, "build");
        assert_eq!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 1, "build"),
            "same request, same runner"
        );
        assert_ne!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 2, "build"),
            "a new attempt gets a new runner"
        );
        assert_ne!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 1, ""),
            "another key gets another runner"
        );
        // sha256("") starts e3b0c442
        assert_eq!(workflow_runner_name("p", 1, 1, ""), "p-1-1-e3b0c442");
        assert!(crate::config::check_arm_name(&a).is_ok());
        assert!(is_ours("aci-runner", &a) && is_ours("aci-runner", "aci-runner-1"));
        assert!(
            !is_ours("aci-runner", "aci-runner-x") && !is_ours("aci-runner", "aci-runnerx-1") && !is_ours("aci-runner", "GitHub Actions 5")
        );
        assert_eq!(job_id_from_name("aci-runner", "aci-runner-42"), Some(42));
        assert_eq!(job_id_from_name("aci-runner", &a), None);
        assert_eq!(run_id_from_name("aci-runner", &a), Some(2202229078));
        assert_eq!(run_id_from_name("aci-runner", "aci-runner-42"), None);
    }

    #[test]
    fn container_group_body_follows_the_design() {
        let c = cfg(&[(
            "RUNNER_SUBNET_ID",
            "/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/aci",
        )]);
        let Decision::Enqueue(Request::Create(r)) = decide(&event("queued", &["self-hosted", "aci"], None), &c) else {
            panic!()
        };
        let at = time::macros::datetime!(2026-11-28 10:00:00.123 UTC);
        let b = container_group_body(&c, &r, at, &Secret::new("JITJIT"));
        let p = &b["properties"];
        assert_eq!(p["osType"], "Linux");
        assert_eq!(p["restartPolicy"], "Never");
        assert_eq!(p["subnetIds"][0]["id"], c.subnet_id.clone().unwrap());
        let ctr = &p["containers"][0];
        assert_eq!(ctr["name"], "runner");
        assert_eq!(ctr["properties"]["command"], json!(["/home/runner/run.sh"]));
        assert_eq!(ctr["properties"]["resources"]["requests"], json!({"cpu": 2.0, "memoryInGB": 4.0}));
        assert_eq!(
            ctr["properties"]["environmentVariables"],
            json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": "JITJIT"}])
        );
        assert_eq!(
            b["tags"],
            json!({"managed-by": "aci-runners", "github-repository": "octo-org/octo-repo", "github-job-id": "42",
                   "github-run-id": "7", "origin": "webhook", "created-at": "2026-11-28T10:00:00Z"})
        );
        assert!(!b["tags"].to_string().contains("JITJIT"), "no secret in a tag");
    }

    #[test]
    fn org_scope_tags_the_owner_and_no_subnet_means_no_subnet_ids() {
        let c = cfg(&[("RUNNER_SCOPE", "org")]);
        let Decision::Enqueue(Request::Create(r)) = decide(&event("queued", &["self-hosted", "aci"], None), &c) else {
            panic!()
        };
        let b = container_group_body(&c, &r, OffsetDateTime::UNIX_EPOCH, &Secret::new("x"));
        assert_eq!(b["tags"]["github-owner"], "octo-org");
        assert!(b["properties"].get("subnetIds").is_none());
    }

    #[test]
    fn queue_messages_have_no_keys_the_host_would_clobber() {
        let c = cfg(&[]);
        let Decision::Enqueue(r) = decide(&event("queued", &["self-hosted", "aci"], None), &c) else {
            panic!()
        };
        let v: Value = serde_json::from_str(&r.to_message()).unwrap();
        for k in v.as_object().unwrap().keys() {
            let k = k.to_ascii_lowercase();
            assert!(
                ![
                    "id",
                    "dequeuecount",
                    "popreceipt",
                    "insertiontime",
                    "expirationtime",
                    "nextvisibletime",
                    "sys"
                ]
                .contains(&k.as_str()),
                "{k}"
            );
            assert!(!k.ends_with("trigger"), "{k}");
        }
        assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
    }
}
