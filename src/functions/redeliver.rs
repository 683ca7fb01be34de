//! The sweeper's App-mode step: the App webhook's failed `workflow_job` deliveries of the last
//! hours, delivered again (the choice is [`crate::rules::redeliver::select`]'s).

use crate::clock::parse_rfc3339;
use crate::github::app::AppAuth;
use crate::log;
use crate::rules::redeliver::{self, Attempt};

use super::App;

/// Asks GitHub to redeliver what the rules choose. Returns the delivery ids redelivered (or,
/// with `dry_run`, that would be) and what failed.
pub async fn failed_deliveries(app: &App, auth: &AppAuth, dry_run: bool) -> (Vec<u64>, Vec<String>) {
    let now = (app.clock)();
    let since = now - redeliver::WINDOW;
    let listed = match auth.hook_deliveries(since, redeliver::MAX_PAGES).await {
        Ok(l) => l,
        Err(e) => return (vec![], vec![e.to_string()]),
    };
    let attempts: Vec<Attempt> = listed
        .into_iter()
        .map(|d| Attempt {
            id: d.id,
            guid: d.guid,
            delivered_at: d.delivered_at.as_deref().and_then(parse_rfc3339),
            redelivery: d.redelivery,
            status_code: d.status_code,
            event: d.event,
        })
        .collect();
    let (mut done, mut failures) = (vec![], vec![]);
    for id in redeliver::select(&attempts, now, redeliver::WINDOW, redeliver::MAX_PER_SWEEP) {
        let guid = attempts.iter().find(|a| a.id == id).map(|a| a.guid.as_str()).unwrap_or("-");
        if dry_run {
            log::info("sweep.would-redeliver", &[("delivery", &id), ("guid", &guid)]);
            done.push(id);
            continue;
        }
        match auth.redeliver(id).await {
            Ok(()) => {
                log::info("sweep.redelivered", &[("delivery", &id), ("guid", &guid)]);
                done.push(id);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    (done, failures)
}
