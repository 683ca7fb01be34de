//! Pure decisions over plain data: no I/O, no clock of their own, each table-tested.
//!
//! - [`jobs`]: which `workflow_job` events we serve, a workflow step's labels, which statuses
//!   still wait for a runner;
//! - [`names`]: runner names and their grammar;
//! - [`request`]: the runner request on the queue;
//! - [`group`]: the container group body and what its tags mean;
//! - [`admission`]: which creates go ahead under `MAX_RUNNERS`;
//! - [`capacity`]: counting live groups at the cap, and the requests waiting for room;
//! - [`sweep`]: what the sweeper removes, and why;
//! - [`reconcile`]: which queued jobs no delivery asked a runner for;
//! - [`redeliver`]: which failed App webhook deliveries to deliver again;
//! - [`timeline`]: what each delivery, create and deletion logs about a job;
//! - [`warm`]: the warm floor: when it applies, which idle runners it keeps, what it lacks.

pub mod admission;
pub mod capacity;
pub mod group;
pub mod jobs;
pub mod names;
pub mod reconcile;
pub mod redeliver;
pub mod request;
pub mod sweep;
pub mod timeline;
pub mod warm;

/// What the rules' tests share: settings with stand-ins, and a webhook job's request.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::HashMap;

    use crate::config::Config;
    use crate::job::{Job, JobEvent};
    use crate::rules::request::{Create, Origin};

    /// `Config` with the plan's stand-ins and these settings.
    pub fn cfg(extra: &[(&str, &str)]) -> Config {
        let env: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::for_plan(&env).unwrap()
    }

    /// A `workflow_job` delivery of job 42 of run 7 in `octo-org/octo-repo`.
    pub fn event(action: &str, labels: &[&str], runner: Option<&str>) -> JobEvent {
        JobEvent {
            action: action.into(),
            job: Job {
                id: 42,
                run_id: 7,
                run_attempt: 1,
                labels: labels.iter().map(|s| s.to_string()).collect(),
                runner_name: runner.map(str::to_string),
                ..Job::default()
            },
            repository: "octo-org/octo-repo".into(),
            owner: "octo-org".into(),
        }
    }

    /// A warm runner's request for `target`, as the sweeper makes it.
    pub fn warm_create(target: &str) -> Create {
        Create {
            runner: crate::rules::names::warm_runner_name("aci-runner", "seed"),
            repository: target.into(),
            origin: Origin::Warm,
            job: None,
            run: 0,
            attempt: 0,
            ..create()
        }
    }

    /// The request for webhook job 42 of run 7 in `octo-org/octo-repo`, with the default labels.
    pub fn create() -> Create {
        Create {
            runner: "aci-runner-42".into(),
            repository: "octo-org/octo-repo".into(),
            origin: Origin::Webhook,
            job: Some(42),
            run: 7,
            attempt: 1,
            labels: vec!["self-hosted".into(), "linux".into(), "x64".into(), "aci".into()],
            created_at: None,
        }
    }
}
