//! Lost deliveries made good: which of the jobs GitHub still has queued get a runner request
//! from the sweeper, because no webhook delivery ever made one.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::Config;
use crate::rules::jobs::labels_served;
use crate::rules::names::webhook_runner_name;
use crate::rules::request::{Create, Origin};

/// A job of a workflow run that is not completed, as GitHub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedJob {
    pub id: u64,
    pub run_id: u64,
    pub run_attempt: u32,
    /// `owner/name`.
    pub repository: String,
    pub status: String,
    pub labels: Vec<String>,
    pub created_at: Option<OffsetDateTime>,
}

/// The jobs to request a runner for: queued, asking for labels we serve, from an allowed
/// repository, older than `after` (younger ones are left to their webhook delivery, which may
/// be on its way), and with no group of the name their webhook would have given (`groups`:
/// every group name listed, in any state). The request is the one the webhook would have made,
/// so a late delivery changes nothing.
pub fn select(jobs: &[ListedJob], groups: &HashSet<String>, now: OffsetDateTime, after: Duration, cfg: &Config) -> Vec<Create> {
    let mut seen = HashSet::new();
    jobs.iter()
        .filter(|j| j.status == "queued")
        .filter(|j| labels_served(&j.labels, &cfg.runner_labels))
        .filter(|j| cfg.repository_allowed(&j.repository))
        .filter(|j| {
            j.created_at
                .and_then(|c| Duration::try_from(now - c).ok())
                .is_some_and(|age| age >= after)
        })
        .map(|j| (j, webhook_runner_name(&cfg.name_prefix, j.id)))
        .filter(|(_, name)| !groups.contains(name))
        .filter(|(_, name)| seen.insert(name.clone()))
        .map(|(j, runner)| Create {
            runner,
            repository: j.repository.clone(),
            origin: Origin::Webhook,
            job: Some(j.id),
            run: j.run_id,
            attempt: j.run_attempt,
            labels: cfg.runner_labels.clone(),
            created_at: j.created_at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);
    const AFTER: Duration = Duration::from_secs(120);

    fn job(id: u64, status: &str, labels: &[&str], seconds_old: i64) -> ListedJob {
        ListedJob {
            id,
            run_id: 7,
            run_attempt: 1,
            repository: "octo-org/octo-repo".into(),
            status: status.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            created_at: Some(NOW - time::Duration::seconds(seconds_old)),
        }
    }

    fn chosen(jobs: &[ListedJob], groups: &[&str], c: &Config) -> Vec<String> {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        select(jobs, &groups, NOW, AFTER, c).into_iter().map(|r| r.runner).collect()
    }

    #[test]
    fn reconcile_rules() {
        let c = cfg(&[]);
        let ours = ["self-hosted", "aci"];
        let cases: Vec<(&str, ListedJob, &[&str], bool)> = vec![
            (
                "a queued job of ours with no group, old enough, gets a runner",
                job(1, "queued", &ours, 121),
                &[],
                true,
            ),
            (
                "a young job is left to its webhook delivery",
                job(1, "queued", &ours, 119),
                &[],
                false,
            ),
            (
                "a job with a group of its name is left alone",
                job(1, "queued", &ours, 600),
                &["aci-runner-1"],
                false,
            ),
            (
                "a job whose group is of another name still gets one",
                job(1, "queued", &ours, 600),
                &["aci-runner-10"],
                true,
            ),
            (
                "a job asking for labels we do not serve is not ours",
                job(1, "queued", &["self-hosted", "gpu"], 600),
                &[],
                false,
            ),
            (
                "a job asking only for self-hosted is not ours",
                job(1, "queued", &["self-hosted"], 600),
                &[],
                false,
            ),
            ("a running job needs no runner", job(1, "in_progress", &ours, 600), &[], false),
            (
                "a job waiting for approval needs no runner yet",
                job(1, "waiting", &ours, 600),
                &[],
                false,
            ),
            (
                "a job of unknown age is left alone",
                ListedJob {
                    created_at: None,
                    ..job(1, "queued", &ours, 600)
                },
                &[],
                false,
            ),
        ];
        for (rule, j, groups, wanted) in cases {
            assert_eq!(!chosen(&[j], groups, &c).is_empty(), wanted, "{rule}");
        }
    }

    #[test]
    fn the_request_is_the_one_the_webhook_would_have_made() {
        let c = cfg(&[]);
        let got = select(&[job(42, "queued", &["aci"], 300)], &HashSet::new(), NOW, AFTER, &c);
        assert_eq!(
            got,
            [Create {
                runner: "aci-runner-42".into(),
                repository: "octo-org/octo-repo".into(),
                origin: Origin::Webhook,
                job: Some(42),
                run: 7,
                attempt: 1,
                labels: c.runner_labels.clone(),
                created_at: Some(NOW - time::Duration::seconds(300)),
            }]
        );
        assert_eq!(crate::rules::request::Request::Create(got[0].clone()).check("aci-runner"), Ok(()));
    }

    #[test]
    fn a_repository_not_allowed_is_not_reconciled_and_a_job_listed_twice_is_asked_for_once() {
        let c = cfg(&[("ALLOWED_REPOSITORIES", "someone/else")]);
        assert!(chosen(&[job(1, "queued", &["aci"], 600)], &[], &c).is_empty());
        let c = cfg(&[]);
        let j = job(1, "queued", &["aci"], 600);
        assert_eq!(chosen(&[j.clone(), j], &[], &c), ["aci-runner-1"]);
    }
}
