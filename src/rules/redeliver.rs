//! Lost deliveries made good, the App's way: which of the App webhook's failed `workflow_job`
//! deliveries the sweeper asks GitHub to deliver again. GitHub never retries a failed delivery
//! by itself; a redelivery carries the same `X-GitHub-Delivery` (the list's `guid`) and is marked
//! `redelivery: true` in the list, which is how each event is redelivered once at most, with no
//! state of our own.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;

/// Deliveries this old or older are left alone: their jobs were given a runner by
/// reconciliation, were cancelled, or ran elsewhere long since.
pub const WINDOW: Duration = Duration::from_secs(6 * 3600);
/// Redeliveries asked for in one sweep at most (each is one GitHub call and one webhook
/// invocation); the rest wait for the next sweep.
pub const MAX_PER_SWEEP: usize = 20;
/// Pages of 100 deliveries read per sweep at most.
pub const MAX_PAGES: usize = 10;

/// One attempt to deliver an event, as the App webhook's delivery list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: u64,
    /// The event's id, shared by every attempt to deliver it.
    pub guid: String,
    pub delivered_at: Option<OffsetDateTime>,
    pub redelivery: bool,
    /// What our endpoint answered; 0 when it could not be reached.
    pub status_code: u16,
    pub event: String,
}

fn succeeded(a: &Attempt) -> bool {
    (200..300).contains(&a.status_code)
}

/// The attempts to redeliver, oldest event first, at most `max`: one per `workflow_job` event
/// delivered within `window` of `now` that no attempt delivered and that was not redelivered
/// before (by us or by hand); of its failed attempts, the latest.
pub fn select(attempts: &[Attempt], now: OffsetDateTime, window: Duration, max: usize) -> Vec<u64> {
    let recent = |a: &Attempt| {
        a.delivered_at
            .and_then(|t| Duration::try_from(now - t).ok().or(Some(Duration::ZERO)))
            .is_some_and(|age| age < window)
    };
    let jobs: Vec<&Attempt> = attempts.iter().filter(|a| a.event == "workflow_job").collect();
    let done: HashSet<&str> = jobs
        .iter()
        .filter(|a| succeeded(a) || a.redelivery)
        .map(|a| a.guid.as_str())
        .collect();
    let mut latest: HashMap<&str, &Attempt> = HashMap::new();
    for a in jobs.iter().copied().filter(|a| recent(a) && !done.contains(a.guid.as_str())) {
        let e = latest.entry(a.guid.as_str()).or_insert(a);
        if a.delivered_at > e.delivered_at {
            *e = a;
        }
    }
    let mut chosen: Vec<&Attempt> = latest.into_values().collect();
    chosen.sort_by_key(|a| (a.delivered_at, a.id));
    chosen.into_iter().take(max).map(|a| a.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes_ago: i64) -> Option<OffsetDateTime> {
        Some(time::macros::datetime!(2026-12-02 10:00 UTC) - time::Duration::minutes(minutes_ago))
    }

    fn attempt(id: u64, guid: &str, minutes_ago: i64, status_code: u16, redelivery: bool) -> Attempt {
        Attempt {
            id,
            guid: guid.into(),
            delivered_at: at(minutes_ago),
            redelivery,
            status_code,
            event: "workflow_job".into(),
        }
    }

    #[test]
    fn the_rules_choose_each_lost_event_once() {
        let now = at(0).unwrap();
        let other_event = Attempt {
            event: "ping".into(),
            ..attempt(9, "p", 5, 500, false)
        };
        let no_time = Attempt {
            delivered_at: None,
            ..attempt(10, "t", 5, 500, false)
        };
        let cases: Vec<(&str, Vec<Attempt>, Vec<u64>)> = vec![
            (
                "a failed workflow_job delivery is redelivered",
                vec![attempt(1, "a", 5, 502, false)],
                vec![1],
            ),
            (
                "an unreachable endpoint (no status) is a failure",
                vec![attempt(1, "a", 5, 0, false)],
                vec![1],
            ),
            ("a delivered event is left alone", vec![attempt(1, "a", 5, 202, false)], vec![]),
            (
                "an ignored event (200) is delivered too",
                vec![attempt(1, "a", 5, 200, false)],
                vec![],
            ),
            (
                "an event redelivered before is not redelivered again, even if that failed",
                vec![attempt(1, "a", 9, 500, false), attempt(2, "a", 5, 500, true)],
                vec![],
            ),
            (
                "an event another attempt delivered is left alone",
                vec![attempt(1, "a", 9, 500, false), attempt(2, "a", 5, 202, false)],
                vec![],
            ),
            (
                "one redelivery per event: its latest failed attempt",
                vec![attempt(1, "a", 9, 500, false), attempt(2, "a", 5, 504, false)],
                vec![2],
            ),
            ("another event is not ours to redeliver", vec![other_event], vec![]),
            (
                "a delivery older than the window is left alone",
                vec![attempt(1, "a", 6 * 60 + 1, 500, false)],
                vec![],
            ),
            ("a delivery with no time is left alone", vec![no_time], vec![]),
            (
                "several lost events: each once, the oldest first",
                vec![
                    attempt(3, "c", 1, 500, false),
                    attempt(1, "a", 30, 500, false),
                    attempt(2, "b", 10, 500, false),
                ],
                vec![1, 2, 3],
            ),
        ];
        for (rule, attempts, want) in cases {
            assert_eq!(select(&attempts, now, WINDOW, MAX_PER_SWEEP), want, "{rule}");
        }
    }

    #[test]
    fn a_sweep_redelivers_at_most_its_bound() {
        let now = at(0).unwrap();
        let many: Vec<Attempt> = (0..50).map(|i| attempt(i, &format!("g{i}"), 100 - i as i64, 500, false)).collect();
        let chosen = select(&many, now, WINDOW, MAX_PER_SWEEP);
        assert_eq!(chosen, (0..20).collect::<Vec<u64>>(), "the oldest 20");
    }
}
