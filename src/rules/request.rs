//! A runner request: what the HTTP functions put on the `runner-requests` queue and
//! `provision` takes off it. Plain data; the queue itself is the host's.

use serde::{Deserialize, Serialize};

use crate::rules::names::{self, Name};
use crate::target::{valid_owner, valid_repository};

/// The most labels a runner carries: `RUNNER_LABELS` and a workflow step's own.
pub const MAX_LABELS: usize = 64;

/// A label as GitHub takes it: 1 to 100 characters, no whitespace, no control characters.
pub fn valid_label(label: &str) -> bool {
    (1..=100).contains(&label.len()) && !label.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Where a runner request came from (the `origin` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Webhook,
    Workflow,
    /// A warm runner the sweeper asked for, to keep a target's floor (`WARM_RUNNERS`).
    Warm,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Webhook => "webhook",
            Origin::Workflow => "workflow",
            Origin::Warm => "warm",
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
    /// `owner/name` of the repository the job or token came from. A warm runner is for no
    /// repository in particular: this is its target, `owner/name` in repo scope or `owner` in
    /// org scope.
    pub repository: String,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
    pub run: u64,
    pub attempt: u32,
    pub labels: Vec<String>,
    /// When GitHub created the job (webhook and reconciled requests), so `provision` can log
    /// how long the job waited for its container group.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub created_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub runner: String,
    pub repository: String,
    /// Set for a job cancelled while queued: the group made for it may by now run another
    /// job, so it is released only if its runner is not busy.
    #[serde(default)]
    pub only_if_idle: bool,
    /// The job whose `completed` delivery asked for this (webhook releases): the timeline says
    /// which job a group ran, which may not be the one it was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
}

impl Request {
    pub fn runner(&self) -> &str {
        match self {
            Request::Create(c) => &c.runner,
            Request::Release(r) => &r.runner,
        }
    }

    pub fn repository(&self) -> &str {
        match self {
            Request::Create(c) => &c.repository,
            Request::Release(r) => &r.repository,
        }
    }

    /// The operation's name in answers and log lines.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Create(_) => "create",
            Request::Release(_) => "release",
        }
    }

    /// Does the message fit our grammar? Its runner name parses with `prefix` and matches
    /// what it says it was made from, its repository is GitHub's `owner/name`, its labels are
    /// labels. Everything here reaches a URL or a body, so nothing else is let through.
    pub fn check(&self, prefix: &str) -> Result<(), String> {
        let name = names::parse(prefix, self.runner()).ok_or_else(|| format!("runner {:?} is not a name of ours", self.runner()))?;
        let warm = matches!(self, Request::Create(Create { origin: Origin::Warm, .. }));
        if warm {
            if !valid_repository(self.repository()) && !valid_owner(self.repository()) {
                return Err(format!("target {:?} is neither owner/name nor an owner", self.repository()));
            }
        } else if !valid_repository(self.repository()) {
            return Err(format!("repository {:?} is not owner/name", self.repository()));
        }
        let Request::Create(c) = self else { return Ok(()) };
        let matches = match (c.origin, name) {
            (Origin::Webhook, Name::Job(id)) => c.job == Some(id),
            (Origin::Workflow, Name::Workflow { run, attempt }) => c.job.is_none() && c.run == run && c.attempt == attempt,
            (Origin::Warm, Name::Warm) => c.job.is_none() && c.run == 0 && c.attempt == 0,
            _ => false,
        };
        if !matches {
            return Err(format!("runner {:?} was not made from this message's job or run", c.runner));
        }
        if c.labels.is_empty() || c.labels.len() > MAX_LABELS {
            return Err(format!("{} labels; 1 to {MAX_LABELS} are allowed", c.labels.len()));
        }
        if let Some(bad) = c.labels.iter().find(|l| !valid_label(l)) {
            return Err(format!("label {bad:?} is not a label"));
        }
        Ok(())
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("a request always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::*;
    use serde_json::Value;

    #[test]
    fn queue_messages_have_no_keys_the_host_would_clobber() {
        let requests = [
            Request::Create(Create {
                runner: "aci-runner-42".into(),
                repository: "octo-org/octo-repo".into(),
                origin: Origin::Webhook,
                job: Some(42),
                run: 7,
                attempt: 1,
                labels: vec!["self-hosted".into(), "aci".into()],
                created_at: Some(time::macros::datetime!(2026-12-01 10:00:00 UTC)),
            }),
            Request::Release(Release {
                runner: "aci-runner-42".into(),
                repository: "octo-org/octo-repo".into(),
                only_if_idle: true,
                job: Some(42),
            }),
        ];
        for r in requests {
            let v: Value = serde_json::from_str(&r.to_message()).unwrap();
            for k in v.as_object().unwrap().keys() {
                let k = k.to_ascii_lowercase();
                let clobbered = [
                    "id",
                    "dequeuecount",
                    "popreceipt",
                    "insertiontime",
                    "expirationtime",
                    "nextvisibletime",
                    "sys",
                ];
                assert!(!clobbered.contains(&k.as_str()), "{k}");
                assert!(!k.ends_with("trigger"), "{k}");
            }
            assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
        }
    }

    #[test]
    fn messages_that_do_not_fit_the_grammar_are_refused() {
        let ok = Request::Create(create());
        assert_eq!(ok.check("aci-runner"), Ok(()));
        let workflow = Request::Create(Create {
            runner: crate::rules::names::workflow_runner_name("aci-runner", 7, 2, "k"),
            origin: Origin::Workflow,
            job: None,
            run: 7,
            attempt: 2,
            ..create()
        });
        assert_eq!(workflow.check("aci-runner"), Ok(()));
        let warm = |target: &str| Request::Create(warm_create(target));
        assert_eq!(warm("octo-org/octo-repo").check("aci-runner"), Ok(()));
        assert_eq!(warm("octo-org").check("aci-runner"), Ok(()), "org scope: the organization");
        let with = |f: &dyn Fn(&mut Create)| {
            let mut c = create();
            f(&mut c);
            Request::Create(c)
        };
        let cases: Vec<(&str, Request)> = vec![
            ("a path in the runner name", with(&|c| c.runner = "../other-rg/providers/x".into())),
            ("an empty runner name", with(&|c| c.runner = String::new())),
            ("another deployment's prefix", with(&|c| c.runner = "aci-runnerx-42".into())),
            ("a name not made from the job", with(&|c| c.job = Some(43))),
            ("a webhook request without a job", with(&|c| c.job = None)),
            (
                "a path in the repository",
                with(&|c| c.repository = "owner/../../orgs/other".into()),
            ),
            ("a repository without owner", with(&|c| c.repository = "repo".into())),
            ("no labels", with(&|c| c.labels.clear())),
            ("a label with a newline", with(&|c| c.labels.push("a\nb".into()))),
            ("too many labels", with(&|c| c.labels = (0..65).map(|i| format!("l{i}")).collect())),
            (
                "a workflow name that says another run",
                Request::Create(Create {
                    runner: crate::rules::names::workflow_runner_name("aci-runner", 8, 2, "k"),
                    origin: Origin::Workflow,
                    job: None,
                    run: 7,
                    attempt: 2,
                    ..create()
                }),
            ),
            (
                "a warm request for a job's name",
                with(&|c| {
                    c.origin = Origin::Warm;
                    c.job = None;
                    c.run = 0;
                    c.attempt = 0;
                }),
            ),
            (
                "a warm name for a job",
                with(&|c| c.runner = crate::rules::names::warm_runner_name("aci-runner", "seed")),
            ),
            (
                "a warm request with a path for a target",
                Request::Create(Create {
                    runner: crate::rules::names::warm_runner_name("aci-runner", "seed"),
                    repository: "octo-org/../x".into(),
                    origin: Origin::Warm,
                    job: None,
                    run: 0,
                    attempt: 0,
                    ..create()
                }),
            ),
            (
                "a warm request that says a run",
                Request::Create(Create {
                    runner: crate::rules::names::warm_runner_name("aci-runner", "seed"),
                    origin: Origin::Warm,
                    job: None,
                    run: 7,
                    attempt: 0,
                    ..create()
                }),
            ),
            (
                "a release of a name that is not ours",
                Request::Release(Release {
                    runner: "GitHub Actions 5".into(),
                    repository: "octo-org/octo-repo".into(),
                    only_if_idle: false,
                    job: None,
                }),
            ),
        ];
        for (rule, r) in cases {
            assert!(r.check("aci-runner").is_err(), "{rule}");
        }
    }
}
