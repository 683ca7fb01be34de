//! The job's timeline (DESIGN.md): what each delivery, create and deletion says about a job,
//! as the fields of one log line. Plain data in, plain data out; the functions log it.
//!
//! The lines, and the fields `handler report` and the workbook's queries read:
//! - `job.queued|job.started|job.completed repository job run attempt created_at [lag_s]
//!   [ours runner_made_for wait_s [warm]] [conclusion run_s] [runner] workflow name labels`;
//! - `provision op=create … result=created repository job created_at since_created_s [warm]`;
//!   (`warm=hit|miss` only with `WARM_RUNNERS` set);
//! - `group.deleted by reason name repository job run [ran_job] created_at lifetime_s cpu
//!   memory_gb`.
//!
//! Every line carries the time it is about (`created_at`), so a plain log without timestamps
//! reads the same as an export with them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::config::Config;
use crate::job::JobEvent;
use crate::rules::group::{created_at, tag};
use crate::rules::jobs::labels_served;
use crate::rules::names::{self, Name};

/// One log line: its event and its fields, in order. Text from the delivery is borrowed, not
/// copied: the webhook's path makes this line for every delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub event: &'static str,
    pub fields: Vec<(&'static str, Cow<'a, str>)>,
}

impl<'a> Line<'a> {
    fn new(event: &'static str) -> Line<'a> {
        Line {
            event,
            fields: Vec::with_capacity(16),
        }
    }

    fn text(mut self, key: &'static str, value: impl Into<Cow<'a, str>>) -> Line<'a> {
        self.fields.push((key, value.into()));
        self
    }

    fn text_some(self, key: &'static str, value: Option<&'a str>) -> Line<'a> {
        match value {
            Some(v) => self.text(key, v),
            None => self,
        }
    }

    fn with(self, key: &'static str, value: impl std::fmt::Display) -> Line<'a> {
        self.text(key, value.to_string())
    }

    fn with_some(self, key: &'static str, value: Option<impl std::fmt::Display>) -> Line<'a> {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// The value of a field, for tests and callers that add to a line.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_ref())
    }

    /// The fields as plain pairs.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.fields.iter().map(|(k, v)| (*k, v.as_ref())).collect()
    }
}

/// Whole seconds from `from` to `to` (negative when a clock ran ahead).
pub fn seconds(from: OffsetDateTime, to: OffsetDateTime) -> i64 {
    (to - from).whole_seconds()
}

/// The timeline line for a `workflow_job` delivery, or `None` when the job is none of ours:
/// - `queued`, `in_progress` and `completed` are read (`waiting` and the rest say nothing
///   about a runner);
/// - only jobs from allowed repositories that ask for labels we serve, or that ran on a
///   runner named with our prefix, are logged: an organization's webhook also reports every
///   GitHub-hosted job, which is no one's time to a runner here;
/// - a job that ran on one of our runners made for another job says which (`runner_made_for`):
///   GitHub hands a JIT runner any job its labels match.
///
/// `now` is when the delivery arrived: `lag_s` on `job.queued` is GitHub's delivery delay.
pub fn job_line<'a>(event: &'a JobEvent, cfg: &Config, now: OffsetDateTime) -> Option<Line<'a>> {
    let name = match event.action.as_str() {
        "queued" => "job.queued",
        "in_progress" => "job.started",
        "completed" => "job.completed",
        _ => return None,
    };
    if !cfg.repository_allowed(&event.repository) {
        return None;
    }
    let job = &event.job;
    let ours = job.runner_name.as_deref().and_then(|r| names::parse(&cfg.name_prefix, r));
    if ours.is_none() && !labels_served(&job.labels, &cfg.runner_labels) {
        return None;
    }
    // Our own fields first, the ones a workflow's author or a runner's owner writes (the
    // runner's, workflow's and job's names, the labels) last: a query that takes a field's
    // first match (KQL's `extract`) cannot be fooled by a name like `x ours=true wait_s=1`.
    let mut line = Line::new(name)
        .text("repository", event.repository.as_str())
        .with("job", job.id)
        .with("run", job.run_id)
        .with("attempt", job.run_attempt)
        .with_some("created_at", job.created_at.map(rfc3339));
    if name == "job.queued" {
        // A queued delivery's `started_at` is its `created_at`: no runner yet.
        line = line.with_some("lag_s", job.created_at.map(|c| seconds(c, now)));
    } else if job.runner_name.is_some() {
        let made_for = match ours {
            Some(Name::Job(id)) if id != job.id => Some(id.to_string()),
            Some(Name::Workflow { run, attempt }) if run != job.run_id => Some(format!("run-{run}-{attempt}")),
            _ => None,
        };
        line = line
            .text("ours", if ours.is_some() { "true" } else { "false" })
            .with_some("runner_made_for", made_for)
            .with_some("wait_s", job.created_at.zip(job.started_at).map(|(c, s)| seconds(c, s)));
        // With warm runners: did the job find a runner of ours already waiting? Read from the
        // runner's name alone ([`crate::rules::warm::found_waiting`]): two misses whose runners
        // start in the other order read as hits here; provision's `warm=`, asked at the create,
        // is exact, and `handler report` prefers it.
        if cfg.warm.is_some() {
            let own = names::webhook_runner_name(&cfg.name_prefix, job.id);
            let hit = crate::rules::warm::found_waiting(&cfg.name_prefix, &own, job.runner_name.as_deref());
            line = line.text("warm", if hit { "hit" } else { "miss" });
        }
    }
    if name == "job.completed" {
        line = line.text_some("conclusion", job.conclusion.as_deref());
        if job.runner_name.is_some() {
            line = line.with_some("run_s", job.started_at.zip(job.completed_at).map(|(s, c)| seconds(s, c)));
        }
    }
    line = line
        .text_some("runner", job.runner_name.as_deref())
        .text_some("workflow", job.workflow.as_deref())
        .text_some("name", job.name.as_deref())
        .text("labels", job.labels.join(","));
    Some(line)
}

/// The fields `provision` adds to `result=created`: whose job, and how long since GitHub
/// created it (its webhook's delay, the queue and the create so far).
pub fn created_fields(
    repository: &str,
    job: Option<u64>,
    job_created: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    Line::new("")
        .text("repository", repository)
        .with_some("job", job)
        .with_some("created_at", job_created.map(rfc3339))
        .with_some("since_created_s", job_created.map(|c| seconds(c, now)))
        .fields
        .into_iter()
        .map(|(k, v)| (k, v.into_owned()))
        .collect()
}

/// What a container group cost while it lived.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Size {
    pub cpu: Option<f64>,
    pub memory_gb: Option<f64>,
}

/// The line for a container group we deleted: who (`release` or `sweep`), why, the job it was
/// made for (from its tags) and the job it ran (`ran_job`, when a `completed` delivery said),
/// how long it lived (from `created-at`, or ARM's creation time), and its size: together, what
/// it cost.
#[allow(clippy::too_many_arguments)]
pub fn group_deleted(
    by: &str,
    reason: &str,
    name: &str,
    ran_job: Option<u64>,
    tags: &BTreeMap<String, String>,
    arm_created: Option<OffsetDateTime>,
    size: Size,
    now: OffsetDateTime,
) -> Line<'static> {
    let born = created_at(tags, arm_created);
    Line::new("group.deleted")
        .with("by", by)
        .with("reason", reason)
        .with("name", name)
        .with_some("repository", tags.get(tag::REPOSITORY))
        .with_some("job", tags.get(tag::JOB_ID))
        .with_some("run", tags.get(tag::RUN_ID))
        .with_some("ran_job", ran_job)
        .with_some("created_at", born.map(rfc3339))
        .with_some("lifetime_s", born.map(|b| seconds(b, now)))
        .with_some("cpu", size.cpu)
        .with_some("memory_gb", size.memory_gb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Job;
    use crate::rules::fixtures::{self, *};
    use time::macros::datetime;

    const CREATED: OffsetDateTime = datetime!(2026-12-01 10:00:00 UTC);

    /// The fixtures' delivery, with a workflow, a name and the times GitHub writes.
    fn event(action: &str, labels: &[&str], runner: Option<&str>) -> JobEvent {
        let e = fixtures::event(action, labels, runner);
        JobEvent {
            job: Job {
                workflow: Some("CI".into()),
                name: Some("build (linux)".into()),
                created_at: Some(CREATED),
                started_at: Some(CREATED + time::Duration::seconds(95)),
                completed_at: Some(CREATED + time::Duration::seconds(95 + 240)),
                conclusion: (action == "completed").then(|| "success".into()),
                ..e.job
            },
            ..e
        }
    }

    const SERVED: &[&str] = &["self-hosted", "aci"];

    #[test]
    fn which_deliveries_make_a_line() {
        let c = cfg(&[]);
        let now = CREATED + time::Duration::seconds(2);
        let cases: &[(&str, JobEvent, Option<&str>)] = &[
            (
                "a queued job we serve is job.queued",
                event("queued", SERVED, None),
                Some("job.queued"),
            ),
            (
                "in_progress is read now: job.started",
                event("in_progress", SERVED, Some("aci-runner-42")),
                Some("job.started"),
            ),
            (
                "completed is job.completed",
                event("completed", SERVED, Some("aci-runner-42")),
                Some("job.completed"),
            ),
            (
                "cancelled while queued is job.completed without a runner",
                event("completed", SERVED, None),
                Some("job.completed"),
            ),
            ("waiting says nothing about a runner", event("waiting", SERVED, None), None),
            (
                "a GitHub-hosted job is none of ours",
                event("in_progress", &["ubuntu-latest"], Some("GitHub Actions 5")),
                None,
            ),
            (
                "labels we do not serve but our runner ran it: logged",
                event("completed", &["self-hosted", "linux"], Some("aci-runner-42")),
                Some("job.completed"),
            ),
            (
                "labels we serve run elsewhere: logged, not ours",
                event("in_progress", SERVED, Some("my-own-box")),
                Some("job.started"),
            ),
        ];
        for (rule, e, want) in cases {
            assert_eq!(job_line(e, &c, now).map(|l| l.event), *want, "{rule}");
        }
        let other = cfg(&[("ALLOWED_REPOSITORIES", "someone/else")]);
        assert_eq!(
            job_line(&event("queued", SERVED, None), &other, now),
            None,
            "a repository not allowed is none of ours"
        );
    }

    #[test]
    fn the_lines_carry_the_timeline() {
        let c = cfg(&[]);
        let now = CREATED + time::Duration::seconds(2);
        let e_q = event("queued", SERVED, None);
        let q = job_line(&e_q, &c, now).unwrap();
        assert_eq!(
            q.pairs(),
            [
                ("repository", "octo-org/octo-repo"),
                ("job", "42"),
                ("run", "7"),
                ("attempt", "1"),
                ("created_at", "2026-12-01T10:00:00Z"),
                ("lag_s", "2"),
                ("workflow", "CI"),
                ("name", "build (linux)"),
                ("labels", "self-hosted,aci"),
            ]
        );
        let e_s = event("in_progress", SERVED, Some("aci-runner-42"));
        let s = job_line(&e_s, &c, now).unwrap();
        assert_eq!(
            (s.get("runner"), s.get("ours"), s.get("wait_s"), s.get("runner_made_for")),
            (Some("aci-runner-42"), Some("true"), Some("95"), None)
        );
        assert_eq!(s.get("run_s"), None, "a started job has not run yet");
        let e_d = event("completed", SERVED, Some("aci-runner-42"));
        let d = job_line(&e_d, &c, now).unwrap();
        assert_eq!(
            (d.get("conclusion"), d.get("wait_s"), d.get("run_s")),
            (Some("success"), Some("95"), Some("240"))
        );
        let e_cancelled = event("completed", SERVED, None);
        let cancelled = job_line(&e_cancelled, &c, now).unwrap();
        assert_eq!(
            (cancelled.get("runner"), cancelled.get("wait_s"), cancelled.get("run_s")),
            (None, None, None),
            "no runner, no time to one"
        );
    }

    #[test]
    fn with_warm_runners_a_started_job_says_whether_it_found_one_waiting() {
        let warm = cfg(&[("WARM_RUNNERS", "octo-org/octo-repo=2")]);
        let now = CREATED + time::Duration::seconds(2);
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("on a warm runner: a hit", "aci-runner-w-abcdef01", Some("hit")),
            ("on an idle runner made for another job: a hit", "aci-runner-41", Some("hit")),
            ("on its own runner: a miss", "aci-runner-42", Some("miss")),
            ("on a runner not ours: a miss", "build-box", Some("miss")),
        ];
        for (rule, runner, want) in cases {
            let e = event("in_progress", SERVED, Some(runner));
            assert_eq!(job_line(&e, &warm, now).unwrap().get("warm"), *want, "{rule}");
        }
        let e = event("in_progress", SERVED, Some("aci-runner-w-abcdef01"));
        assert_eq!(
            job_line(&e, &cfg(&[]), now).unwrap().get("warm"),
            None,
            "without WARM_RUNNERS, no warm field"
        );
        let queued = event("queued", SERVED, None);
        assert_eq!(job_line(&queued, &warm, now).unwrap().get("warm"), None, "no runner yet");
    }

    #[test]
    fn a_job_on_a_runner_made_for_another_says_so() {
        let c = cfg(&[]);
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("our runner made for this job", "aci-runner-42", None, "true"),
            ("our runner made for job 41", "aci-runner-41", Some("41"), "true"),
            (
                "a workflow-step runner of another run",
                "aci-runner-9-1-abcdef01",
                Some("run-9-1"),
                "true",
            ),
            ("a workflow-step runner of this run", "aci-runner-7-1-abcdef01", None, "true"),
            ("another deployment's runner is not ours", "aci-runnerx-41", None, "false"),
        ];
        for (rule, runner, made_for, ours) in cases {
            let e = event("in_progress", SERVED, Some(runner));
            let l = job_line(&e, &c, CREATED).unwrap();
            assert_eq!(l.get("runner_made_for"), *made_for, "{rule}");
            assert_eq!(l.get("ours"), Some(*ours), "{rule}");
        }
    }

    #[test]
    fn names_others_write_come_after_every_field_we_write() {
        let c = cfg(&[]);
        let mut e = event("completed", SERVED, Some("box ours=true wait_s=1"));
        e.job.workflow = Some("w ours=true wait_s=1 conclusion=success".into());
        e.job.name = Some("n runner_made_for=1".into());
        let l = job_line(&e, &c, CREATED).unwrap();
        let keys: Vec<&str> = l.fields.iter().map(|(k, _)| *k).collect();
        let first_untrusted = keys.iter().position(|k| *k == "runner").unwrap();
        for ours in ["repository", "job", "created_at", "ours", "wait_s", "conclusion", "run_s"] {
            let at = keys.iter().position(|k| *k == ours).unwrap();
            assert!(at < first_untrusted, "{ours} comes before the names: {keys:?}");
        }
        assert_eq!((l.get("ours"), l.get("wait_s")), (Some("false"), Some("95")));
    }

    #[test]
    fn a_job_without_times_logs_none() {
        let c = cfg(&[]);
        let mut e = event("completed", SERVED, Some("aci-runner-42"));
        e.job.created_at = None;
        e.job.started_at = None;
        let l = job_line(&e, &c, CREATED).unwrap();
        assert_eq!((l.get("created_at"), l.get("wait_s"), l.get("run_s")), (None, None, None));
    }

    #[test]
    fn created_and_deleted_say_how_long() {
        let f = created_fields("o/r", Some(42), Some(CREATED), CREATED + time::Duration::seconds(37));
        assert_eq!(
            f,
            [
                ("repository", "o/r"),
                ("job", "42"),
                ("created_at", "2026-12-01T10:00:00Z"),
                ("since_created_s", "37")
            ]
            .map(|(k, v)| (k, v.to_string()))
        );
        assert_eq!(created_fields("o/r", None, None, CREATED), [("repository", "o/r".to_string())]);

        let tags: BTreeMap<String, String> = [
            ("managed-by", "aci-runners"),
            ("github-repository", "o/r"),
            ("github-job-id", "42"),
            ("github-run-id", "7"),
            ("created-at", "2026-12-01T10:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let size = Size {
            cpu: Some(2.0),
            memory_gb: Some(4.0),
        };
        let l = group_deleted(
            "sweep",
            "idle",
            "aci-runner-42",
            None,
            &tags,
            None,
            size,
            CREATED + time::Duration::minutes(16),
        );
        assert_eq!(l.event, "group.deleted");
        assert_eq!(
            l.pairs(),
            [
                ("by", "sweep"),
                ("reason", "idle"),
                ("name", "aci-runner-42"),
                ("repository", "o/r"),
                ("job", "42"),
                ("run", "7"),
                ("created_at", "2026-12-01T10:00:00Z"),
                ("lifetime_s", "960"),
                ("cpu", "2"),
                ("memory_gb", "4"),
            ]
        );
        let mut untagged = tags.clone();
        untagged.remove("created-at");
        let l = group_deleted(
            "release",
            "completed",
            "aci-runner-42",
            Some(41),
            &untagged,
            Some(CREATED),
            Size::default(),
            CREATED,
        );
        assert_eq!(
            (l.get("ran_job"), l.get("lifetime_s"), l.get("cpu")),
            (Some("41"), Some("0"), None),
            "ARM's creation time when the tag is gone; an unknown size is left out"
        );
    }
}
