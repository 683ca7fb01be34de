//! A workflow job as GitHub describes it: the plain data the webhook edge parses a delivery
//! into and the rules decide on.

use time::OffsetDateTime;

/// A `workflow_job` event.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub action: String,
    pub job: Job,
    /// `owner/name`.
    pub repository: String,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    pub run_attempt: u32,
    pub labels: Vec<String>,
    /// Set once a runner took the job; `None` for a job cancelled while queued.
    pub runner_name: Option<String>,
    /// The workflow's name (`workflow_name`) and the job's own (`name`).
    pub workflow: Option<String>,
    pub name: Option<String>,
    /// `created_at`, `started_at`, `completed_at`: the job's timeline as GitHub keeps it. A
    /// time GitHub sends that is not RFC 3339 is read as absent, never as a bad delivery.
    pub created_at: Option<OffsetDateTime>,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    /// `success`, `failure`, `cancelled`, … once completed.
    pub conclusion: Option<String>,
}
