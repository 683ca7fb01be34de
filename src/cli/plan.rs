//! `handler plan <webhook file>`: what the handler would do with a delivery, with no network:
//! the decision, the queue message, and the exact container group body (secrets redacted).

use std::fmt::Write as _;

use serde_json::Value;
use time::OffsetDateTime;

use crate::config::Config;
use crate::github::webhook::{self, Delivery};
use crate::rules::group::container_group_body;
use crate::rules::jobs::{decide, Decision};
use crate::rules::request::Request;
use crate::secret::Secret;
use crate::target::Target;

/// A queued `workflow_job` delivery asking for `[self-hosted, aci]`, used when no file is
/// given. Derived from octokit/webhooks' `workflow_job/queued` example (MIT): labels set to
/// `runs-on: [self-hosted, aci]` and the runner fields null, as real queued deliveries carry.
pub const EXAMPLE_QUEUED: &str = include_str!("../../examples/webhook-queued.json");

/// GitHub's event name for a payload file: `ping` carries `zen`, `workflow_job` its job.
fn event_of(payload: &Value) -> &'static str {
    if payload.get("workflow_job").is_some() {
        "workflow_job"
    } else if payload.get("zen").is_some() {
        "ping"
    } else {
        "unknown"
    }
}

/// The plan as text.
pub fn plan(cfg: &Config, payload: &str, now: OffsetDateTime) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(payload).map_err(|e| anyhow::anyhow!("the webhook file is not JSON: {e}"))?;
    let event = event_of(&v);
    let mut out = String::new();
    let delivery = webhook::parse(Some(event), Some("application/json"), payload).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ev = match delivery {
        Delivery::WorkflowJob(ev) => ev,
        other => {
            writeln!(out, "event:     {event}")?;
            writeln!(
                out,
                "decision:  ignore (HTTP 200): {}",
                if other == Delivery::Ping {
                    "ping".into()
                } else {
                    format!("event {event} is not handled")
                }
            )?;
            return Ok(out);
        }
    };
    writeln!(
        out,
        "event:     workflow_job action={} job={} run={} repository={} labels=[{}]",
        ev.action,
        ev.job.id,
        ev.job.run_id,
        ev.repository,
        ev.job.labels.join(", ")
    )?;
    let request = match decide(&ev, cfg) {
        Decision::Ignore(why) => {
            writeln!(out, "decision:  ignore (HTTP 200): {why}")?;
            return Ok(out);
        }
        Decision::Enqueue(r) => r,
    };
    writeln!(out, "decision:  accept (HTTP 202), enqueue on runner-requests:")?;
    writeln!(out, "           {}", request.to_message())?;
    let groups = format!(
        "{}{}",
        crate::config::base(&cfg.arm_url),
        crate::azure::arm::groups_path(&cfg.subscription_id, &cfg.resource_group)
    );
    match &request {
        Request::Create(c) => {
            let scope = match Target::of_repository(&cfg.scope, &c.repository) {
                Target::Repo(r) => format!("repos/{r}"),
                Target::Org(o) => format!("orgs/{o} (runner group {})", cfg.scope.runner_group_id()),
            };
            writeln!(
                out,
                "provision: POST {}/{scope}/actions/runners/generate-jitconfig name={} labels=[{}]",
                crate::config::base(&cfg.github_api_url),
                c.runner,
                c.labels.join(", ")
            )?;
            writeln!(out, "           PUT {groups}/{}?api-version={}", c.runner, cfg.aci_api_version)?;
            let body = container_group_body(cfg, c, now, &Secret::new("[redacted: JIT config from GitHub]"));
            writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
        }
        Request::Release(r) => {
            let cond = if r.only_if_idle {
                " unless its runner is busy with another job"
            } else {
                ""
            };
            writeln!(
                out,
                "provision: deregister runner {} and DELETE {groups}/{}{cond} (managed groups only)",
                r.runner, r.runner
            )?;
        }
    }
    if cfg.dry_run {
        writeln!(out, "DRY_RUN is on: provision would log these writes instead of making them.")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn embedded_example_plans_a_container_group_without_secrets() {
        let cfg = Config::for_plan(&HashMap::new()).unwrap();
        let out = plan(&cfg, EXAMPLE_QUEUED, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert!(out.contains("accept (HTTP 202)"), "{out}");
        assert!(out.contains(r#""secureValue": "[redacted: JIT config from GitHub]""#), "{out}");
        assert!(out.contains("/home/runner/run.sh"), "{out}");
    }

    #[test]
    fn a_job_we_do_not_serve_is_planned_as_ignored() {
        let cfg = Config::for_plan(&HashMap::new()).unwrap();
        let payload = EXAMPLE_QUEUED.replace(r#""aci""#, r#""gpu""#);
        let out = plan(&cfg, &payload, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert!(out.contains("ignore (HTTP 200): labels [self-hosted, gpu] are not served"), "{out}");
    }
}
