//! GitHub's secondary limit on runner registrations, kept here rather than run into.
//!
//! GitHub allows about 900 points a minute per REST endpoint, a POST costing 5: about 180
//! `generate-jitconfig` calls in any 60 s, per user or App. Past it, calls are refused (403
//! "secondary rate limit"), and "continuing to make requests while you are rate limited may
//! result in the banning of your integration". A burst of queued jobs meets that limit in
//! seconds. So each instance keeps its own sliding window: a registration that would pass
//! `GITHUB_JIT_PER_MINUTE` in the last 60 s waits in process for its turn if that comes within
//! [`WAIT_MAX`], and otherwise is not sent (the create waits on the queue, like any rate limit).
//! A refusal all the same (other users of the PAT, other instances) pauses the instance's
//! registrations for [`PAUSE`], GitHub's own advice when it gives no time.

use std::time::{Duration, Instant};

/// The span of GitHub's limit.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The longest a registration waits in process for its turn.
pub const WAIT_MAX: Duration = Duration::from_secs(30);
/// How long a refusal pauses registrations ("wait at least one minute").
pub const PAUSE: Duration = Duration::from_secs(60);

/// The registrations of the last minute (and those given a turn ahead), and a pause.
#[derive(Debug, Default)]
pub struct Window {
    /// Each registration's time, sorted: its turn, then the moment its answer came (GitHub
    /// counted it in between, so a window reckoned from the answers never runs ahead of GitHub's).
    turns: Vec<Instant>,
    paused_until: Option<Instant>,
}

impl Window {
    /// Gives a registration asked for at `now` its turn, at most `limit` in any [`WINDOW`]:
    /// `Ok(at)` (now or later, within `wait_max`), or `Err(wait)` when the turn is further off
    /// than that (no turn is taken). `limit` 0 leaves only the pause.
    pub fn turn(&mut self, now: Instant, limit: usize, wait_max: Duration) -> Result<Instant, Duration> {
        self.turns.retain(|t| now.saturating_duration_since(*t) < WINDOW);
        let mut at = now;
        if let Some(p) = self.paused_until {
            at = at.max(p);
        }
        if limit > 0 && self.turns.len() >= limit {
            // The turn frees when the one `limit` places back leaves the window.
            at = at.max(self.turns[self.turns.len() - limit] + WINDOW);
        }
        let wait = at.saturating_duration_since(now);
        if wait > wait_max {
            return Err(wait);
        }
        if limit > 0 {
            self.insert(at);
        }
        Ok(at)
    }

    /// The registration given the turn `at` was answered at `answered`.
    pub fn answered(&mut self, at: Instant, answered: Instant) {
        if let Some(i) = self.turns.iter().position(|t| *t == at) {
            self.turns.remove(i);
            self.insert(answered.max(at));
        }
    }

    /// GitHub refused a registration at `now` for its rate limit.
    pub fn refused(&mut self, now: Instant) {
        let until = now + PAUSE;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    fn insert(&mut self, t: Instant) {
        let i = self.turns.partition_point(|x| *x <= t);
        self.turns.insert(i, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn under_the_limit_every_registration_goes_at_once() {
        let mut w = Window::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(w.turn(t0 + s(i), 3, WAIT_MAX), Ok(t0 + s(i)));
        }
    }

    #[test]
    fn over_the_limit_a_registration_waits_for_the_oldest_to_leave_the_window() {
        let mut w = Window::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            w.turn(t0, 3, WAIT_MAX).unwrap();
        }
        // 40 s later: the window frees at t0 + 60, 20 s away.
        assert_eq!(w.turn(t0 + s(40), 3, WAIT_MAX), Ok(t0 + s(60)));
        // The next two also get t0 + 60; the one after, a turn a minute after the fourth.
        assert_eq!(w.turn(t0 + s(40), 3, WAIT_MAX), Ok(t0 + s(60)));
        assert_eq!(w.turn(t0 + s(40), 3, WAIT_MAX), Ok(t0 + s(60)));
        assert_eq!(
            w.turn(t0 + s(40), 3, WAIT_MAX),
            Err(s(80)),
            "further off than WAIT_MAX: no turn taken"
        );
        assert_eq!(w.turn(t0 + s(100), 3, WAIT_MAX), Ok(t0 + s(120)));
    }

    #[test]
    fn the_window_runs_from_each_answer_not_from_the_turn() {
        let mut w = Window::default();
        let t0 = Instant::now();
        let turn = w.turn(t0, 1, WAIT_MAX).unwrap();
        // GitHub took its time: it counted the call somewhere in the 5 s before it answered.
        w.answered(turn, t0 + s(5));
        assert_eq!(w.turn(t0 + s(40), 1, WAIT_MAX), Ok(t0 + s(65)));
    }

    #[test]
    fn a_turn_too_far_off_is_not_taken() {
        let mut w = Window::default();
        let t0 = Instant::now();
        w.turn(t0, 1, WAIT_MAX).unwrap();
        assert_eq!(w.turn(t0 + s(1), 1, WAIT_MAX), Err(s(59)));
        assert_eq!(w.turn(t0 + s(1), 1, WAIT_MAX), Err(s(59)), "the refused ask took nothing");
        assert_eq!(w.turn(t0 + s(60), 1, WAIT_MAX), Ok(t0 + s(60)));
    }

    #[test]
    fn a_refusal_pauses_every_registration_for_a_minute() {
        let mut w = Window::default();
        let t0 = Instant::now();
        w.refused(t0);
        assert_eq!(w.turn(t0 + s(1), 180, WAIT_MAX), Err(s(59)));
        assert_eq!(
            w.turn(t0 + s(31), 180, WAIT_MAX),
            Ok(t0 + s(60)),
            "within WAIT_MAX: waits in process"
        );
        assert_eq!(w.turn(t0 + s(61), 0, WAIT_MAX), Ok(t0 + s(61)), "the pause is over");
    }

    #[test]
    fn no_limit_of_ours_only_the_pause() {
        let mut w = Window::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(w.turn(t0, 0, WAIT_MAX), Ok(t0));
        }
    }
}
