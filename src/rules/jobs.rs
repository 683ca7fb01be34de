//! Which jobs we serve: the webhook's rules, a workflow step's labels, and which job
//! statuses still wait for a runner.

use crate::config::{Config, DEFAULT_LABELS};
use crate::job::JobEvent;
use crate::rules::names::{is_ours, webhook_runner_name};
use crate::rules::request::{Create, Origin, Release, Request};

/// What `github-webhook` does with a `workflow_job` delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Enqueue(Request),
    Ignore(String),
}

/// The job statuses (of `GET …/actions/jobs/{id}`) that still wait for a runner.
pub const STILL_QUEUED: &[&str] = &["queued", "waiting", "pending", "requested"];

/// Does a job with this status still wait for a runner?
pub fn still_queued(status: &str) -> bool {
    STILL_QUEUED.contains(&status)
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
            created_at: job.created_at,
        }));
    }
    // completed
    match &job.runner_name {
        Some(name) if is_ours(&cfg.name_prefix, name) => Decision::Enqueue(Request::Release(Release {
            runner: name.clone(),
            repository: event.repository.clone(),
            only_if_idle: false,
            job: Some(job.id),
        })),
        Some(name) => ignore(format!("job ran on runner {name}, which is not ours")),
        None if labels_served(&job.labels, &cfg.runner_labels) => Decision::Enqueue(Request::Release(Release {
            runner: webhook_runner_name(&cfg.name_prefix, job.id),
            repository: event.repository.clone(),
            only_if_idle: true,
            job: Some(job.id),
        })),
        None => ignore(format!("labels [{}] are not served", job.labels.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::*;

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
                only_if_idle: false,
                job: Some(42),
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
}
