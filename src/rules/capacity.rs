//! What a create at capacity needs to know, and what this instance remembers between its tries.
//!
//! A create that finds `MAX_RUNNERS` reached waits and is tried again a minute later, for as
//! long as its job is queued. Two things would make that waiting expensive or wrong:
//! - **Counting live groups.** ARM's list has no instance view, so a group whose container has
//!   exited looks live until a GET says otherwise. At the cap, [`Tally`] decides when enough
//!   groups have been read to know: as soon as there is room, or as soon as the cap is certainly
//!   reached. A group not read (or whose read failed) counts as live, so the cap is never passed
//!   on a guess. (`functions::provision` shares the reads among a batch of creates.)
//! - **Requests asked for twice.** The sweeper's reconciliation sees a queued job with no group
//!   and asks for a runner; if that job's request is waiting here, a second request would wait
//!   beside it, and a third after the next sweep. [`Waiting`] remembers the runner names whose
//!   request waited here lately: reconciliation skips them and a copy arriving for the first time
//!   is dropped as a duplicate.
//!
//! Each instance remembers only its own tries (instances scaled out do not share memory): a
//! copy may still be made by an instance that has not seen the original wait; it then waits
//! beside it until one of them creates the group and the other finds it (`exists`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

/// How long a name whose create waited counts as waiting. A waiting request is tried again
/// every minute (host.json's `visibilityTimeout`), and more slowly under a backlog: five minutes
/// leaves room for both. A request that ends (created, dropped) forgets its name at once.
pub const WAITING_FRESH: Duration = Duration::from_secs(300);

/// Counts the groups that count against the caps, reading as few as needed.
///
/// Starts with every candidate unread, and an unread group counts as live (the upper bound);
/// each read moves one to live or ended. [`Tally::settled`] says when reading more cannot
/// change the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    max: usize,
    share: Option<usize>,
    unread: usize,
    unread_in_repository: usize,
    live: usize,
    live_in_repository: usize,
}

impl Tally {
    /// `candidates` groups of ours listed as not ended, `in_repository` of them made for the
    /// create's repository; `max` is `MAX_RUNNERS`, `share` `MAX_RUNNERS_PER_REPOSITORY`.
    pub fn new(candidates: usize, in_repository: usize, max: usize, share: Option<usize>) -> Tally {
        Tally {
            max,
            share,
            unread: candidates,
            unread_in_repository: in_repository.min(candidates),
            live: 0,
            live_in_repository: 0,
        }
    }

    /// One group read: `live` is false for a group that ended (or is gone).
    pub fn read(&mut self, in_repository: bool, live: bool) {
        if self.unread == 0 || (in_repository && self.unread_in_repository == 0) {
            return;
        }
        self.unread -= 1;
        if in_repository {
            self.unread_in_repository -= 1;
        }
        if live {
            self.live += 1;
            self.live_in_repository += usize::from(in_repository);
        }
    }

    /// Live groups (all, the repository's): once a cap is certain, the groups read live (what
    /// the wait's log line says); otherwise unread ones count as live.
    pub fn counts(&self) -> (usize, usize) {
        if self.full() {
            (self.live, self.live_in_repository)
        } else {
            self.upper()
        }
    }

    fn upper(&self) -> (usize, usize) {
        (self.live + self.unread, self.live_in_repository + self.unread_in_repository)
    }

    /// There is room under both caps even if every unread group is live.
    pub fn room(&self) -> bool {
        let (all, mine) = self.upper();
        all < self.max && self.share.is_none_or(|s| mine < s)
    }

    /// The groups read live reach a cap already: no unread group can make room.
    pub fn full(&self) -> bool {
        self.live >= self.max || self.share.is_some_and(|s| self.live_in_repository >= s)
    }

    /// Reading more cannot change whether the create goes ahead.
    pub fn settled(&self) -> bool {
        self.unread == 0 || self.room() || self.full()
    }
}

/// Runner names whose create waited here lately, and when it last did.
#[derive(Debug, Default)]
pub struct Waiting {
    names: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Waiting {
    /// The create of `name` waited at `now` (its message stays on the queue).
    pub fn waited(&self, name: &str, now: OffsetDateTime) {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), now);
    }

    /// The request for `name` ended (created, found, dropped): its message is gone.
    pub fn ended(&self, name: &str) {
        self.names.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }

    /// Did a request for `name` wait within [`WAITING_FRESH`] of `now`?
    pub fn is_waiting(&self, name: &str, now: OffsetDateTime) -> bool {
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .is_some_and(|at| fresh(*at, now))
    }

    /// Every name waiting at `now`; the stale ones are forgotten.
    pub fn names(&self, now: OffsetDateTime) -> Vec<String> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names.retain(|_, at| fresh(*at, now));
        names.keys().cloned().collect()
    }
}

fn fresh(at: OffsetDateTime, now: OffsetDateTime) -> bool {
    Duration::try_from(now - at).map_or(true, |age| age < WAITING_FRESH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Reads groups in order (`(in the repository, live)`) until the tally settles; returns how
    /// many were read and the counts.
    fn tally(max: usize, share: Option<usize>, groups: &[(bool, bool)]) -> (usize, (usize, usize), bool) {
        let in_repository = groups.iter().filter(|(r, _)| *r).count();
        let mut t = Tally::new(groups.len(), in_repository, max, share);
        let mut read = 0;
        for &(r, live) in groups {
            if t.settled() {
                break;
            }
            t.read(r, live);
            read += 1;
        }
        assert!(t.settled(), "every group read settles it");
        (read, t.counts(), t.room())
    }

    #[test]
    fn tally_rules() {
        let live = (false, true);
        let ended = (false, false);
        let mine_live = (true, true);
        let mine_ended = (true, false);
        /// (rule, max, share, groups, groups read, counts, room)
        type Case = (&'static str, usize, Option<usize>, Vec<(bool, bool)>, usize, (usize, usize), bool);
        let cases: Vec<Case> = vec![
            (
                "under the cap by the list alone, nothing is read",
                3,
                None,
                vec![live, live],
                0,
                (2, 0),
                true,
            ),
            (
                "at the cap, the first ended group found makes room and reading stops",
                3,
                None,
                vec![ended, live, live],
                1,
                (2, 0),
                true,
            ),
            (
                "at the cap with every group live, reading stops once the cap is certain",
                3,
                None,
                vec![live, live, live, live, live],
                3,
                (3, 0),
                false,
            ),
            (
                "an unread group counts as live: room is found only by reading",
                2,
                None,
                vec![live, ended, ended],
                3,
                (1, 0),
                true,
            ),
            (
                "the repository's share full stops the reading too",
                10,
                Some(2),
                vec![mine_live, mine_live, live],
                2,
                (2, 2),
                false,
            ),
            (
                "an ended group of the repository frees its share",
                10,
                Some(2),
                vec![mine_ended, mine_live],
                1,
                (1, 1),
                true,
            ),
        ];
        for (rule, max, share, groups, read, counts, room) in cases {
            assert_eq!(tally(max, share, &groups), (read, counts, room), "{rule}");
        }
    }

    #[test]
    fn a_waiting_name_is_remembered_until_its_request_ends_or_goes_quiet() {
        let w = Waiting::default();
        let t0 = datetime!(2026-12-02 10:00 UTC);
        w.waited("r-1", t0);
        w.waited("r-2", t0);
        assert!(w.is_waiting("r-1", t0 + time::Duration::seconds(299)));
        assert!(
            !w.is_waiting("r-1", t0 + time::Duration::seconds(300)),
            "no try for five minutes: gone"
        );
        w.ended("r-2");
        assert!(!w.is_waiting("r-2", t0), "created or dropped: forgotten at once");
        w.waited("r-3", t0 + time::Duration::seconds(200));
        let mut names = w.names(t0 + time::Duration::seconds(400));
        names.sort();
        assert_eq!(names, ["r-3"], "stale names are forgotten");
    }
}
