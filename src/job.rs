//! A workflow job as GitHub describes it: the plain data the webhook edge parses a delivery
//! into and the rules decide on.

/// A `workflow_job` event.
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
