//! Warm runners (`WARM_RUNNERS`, `WARM_HOURS`): the floor of idle runners each target keeps now,
//! which idle runners it keeps from the sweeper, and how many runners the sweeper asks for.
//!
//! The floor counts every idle runner of ours in the target, warm-named or not: a job that lands
//! on a warm runner still causes its own create, and that runner, idle once it starts, is the
//! warm runner's replacement. A group still starting counts as idle (it will be in a minute or
//! two), so a slow start does not make the sweeper ask twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{Warm, WarmWindow};
use crate::rules::sweep::{GroupView, Rules, RunnerView};

/// Is `now` inside one of the windows? No windows (`WARM_HOURS` unset): always.
pub fn in_hours(hours: &[WarmWindow], now: OffsetDateTime) -> bool {
    hours.is_empty() || hours.iter().any(|w| in_window(w, now))
}

fn in_window(w: &WarmWindow, now: OffsetDateTime) -> bool {
    let offset = time::UtcOffset::from_whole_seconds(i32::from(w.offset_minutes) * 60).unwrap_or(time::UtcOffset::UTC);
    let local = now.to_offset(offset);
    let day = usize::from(local.weekday().number_days_from_monday());
    let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
    if w.start < w.end {
        w.days[day] && (w.start..w.end).contains(&minute)
    } else {
        // Past midnight: from the start on one of the days, until the end on the next day.
        (w.days[day] && minute >= w.start) || (w.days[(day + 6) % 7] && minute < w.end)
    }
}

/// The floor of each target now (lowercase target → runners), only the targets whose floor is
/// above 0: empty when `WARM_RUNNERS` is unset or `now` is outside `WARM_HOURS`.
pub fn floors_now(warm: Option<&Warm>, now: OffsetDateTime) -> HashMap<String, u32> {
    match warm {
        Some(w) if in_hours(&w.hours, now) => w.floors.iter().map(|f| (f.target.to_ascii_lowercase(), f.runners)).collect(),
        _ => HashMap::new(),
    }
}

/// The floor of one target now (0 when it has none, or outside `WARM_HOURS`).
pub fn floor_of(warm: Option<&Warm>, target: &str, now: OffsetDateTime) -> u32 {
    floors_now(warm, now).get(&target.to_ascii_lowercase()).copied().unwrap_or(0)
}

/// Did a job find a runner already waiting (`warm=hit`)? Yes when GitHub handed it, before its
/// own create (`own`, the runner made for it), to another runner of ours (`taken_by`, the job's
/// `runner_name`): a warm runner, or an idle one left over. Then its create replaces that runner.
/// Two misses whose runners start in the other order look alike from a job's status alone; asked
/// at the create's first try, before its runner exists, they do not happen.
pub fn found_waiting(prefix: &str, own: &str, taken_by: Option<&str>) -> bool {
    taken_by.is_some_and(|r| r != own && crate::rules::names::is_ours(prefix, r))
}

fn lower(t: &Option<String>) -> Option<String> {
    t.as_ref().map(|t| t.to_ascii_lowercase())
}

/// A group that may be one of its target's idle runners: ours, alive, below the lifetime cap,
/// and its runner (in its own target) not busy: idle, or not registered or online yet because
/// the group is still starting.
fn candidate(g: &GroupView, runner: Option<&RunnerView>, rules: &Rules) -> bool {
    let young = g
        .created_at
        .map(|c| rules.now - c)
        .and_then(|d| Duration::try_from(d).ok())
        .is_none_or(|age| age <= rules.max_lifetime);
    g.managed && g.ours && !g.terminal && !g.deleting && young && !runner.is_some_and(|r| r.busy)
}

/// The runner of a group: the one of its name in its own target.
fn runner_of<'a>(g: &GroupView, runners: &'a [RunnerView]) -> Option<&'a RunnerView> {
    let t = g.target.as_ref()?;
    runners.iter().find(|r| r.name == g.name && r.target.eq_ignore_ascii_case(t))
}

/// The idle groups the floor keeps from the idle timeout, by name: in each target with a floor
/// whose runners could be listed, up to its floor of candidates, ready runners (online) first,
/// then the youngest (they last longest before they are rotated).
pub fn kept(groups: &[GroupView], runners: &[RunnerView], unlisted: &HashSet<String>, rules: &Rules) -> HashSet<String> {
    let mut out = HashSet::new();
    for (target, floor) in &rules.floors {
        if unlisted.contains(target) {
            continue;
        }
        let mut mine: Vec<(&GroupView, bool)> = groups
            .iter()
            .filter(|g| lower(&g.target).as_ref() == Some(target))
            .filter_map(|g| {
                let r = runner_of(g, runners);
                candidate(g, r, rules).then(|| (g, r.is_some_and(|r| r.online)))
            })
            .collect();
        mine.sort_by(|(a, a_ready), (b, b_ready)| b_ready.cmp(a_ready).then(b.created_at.cmp(&a.created_at)));
        out.extend(mine.into_iter().take(*floor as usize).map(|(g, _)| g.name.clone()));
    }
    out
}

/// How many warm runners each target is short of its floor, once the groups in `removed` are
/// gone: its floor less its candidates. Targets whose runners could not be listed get none
/// (whether their runners are busy is unknown). Sorted by target.
pub fn top_up(
    groups: &[GroupView],
    runners: &[RunnerView],
    unlisted: &HashSet<String>,
    removed: &HashSet<String>,
    rules: &Rules,
) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = rules
        .floors
        .iter()
        .filter(|(t, _)| !unlisted.contains(*t))
        .filter_map(|(target, floor)| {
            let supply = groups
                .iter()
                .filter(|g| lower(&g.target).as_ref() == Some(target) && !removed.contains(&g.name))
                .filter(|g| candidate(g, runner_of(g, runners), rules))
                .count() as u32;
            (supply < *floor).then(|| (target.clone(), floor - supply))
        })
        .collect();
    out.sort();
    out
}

/// The floor's idle cost since `since` (the previous sweep; `None`: since each one was made):
/// the seconds each group the floor keeps has been up in that time, as ACI bills a group from
/// its start whether its runner has a job or not.
pub fn idle_seconds(groups: &[GroupView], kept: &HashSet<String>, since: Option<OffsetDateTime>, now: OffsetDateTime) -> u64 {
    groups
        .iter()
        .filter(|g| kept.contains(&g.name))
        .filter_map(|g| {
            let from = match (g.created_at, since) {
                (Some(c), Some(s)) => c.max(s),
                (c, s) => c.or(s)?,
            };
            Duration::try_from(now - from).ok().map(|d| d.as_secs())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_warm_hours;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC); // a Monday

    #[test]
    fn warm_hours_say_when_the_floor_applies() {
        let cases: &[(&str, &str, OffsetDateTime, bool)] = &[
            (
                "inside business hours",
                "Mon-Fri 07:00-19:00",
                datetime!(2026-11-30 07:00 UTC),
                true,
            ),
            (
                "the end is not inside",
                "Mon-Fri 07:00-19:00",
                datetime!(2026-11-30 19:00 UTC),
                false,
            ),
            ("before the start", "Mon-Fri 07:00-19:00", datetime!(2026-11-30 06:59 UTC), false),
            ("a Saturday", "Mon-Fri 07:00-19:00", datetime!(2026-12-05 12:00 UTC), false),
            (
                "an offset moves the window: 07:00 at UTC+01:00 is 06:00 UTC",
                "Mon-Fri 07:00-19:00 UTC+01:00",
                datetime!(2026-11-30 06:00 UTC),
                true,
            ),
            (
                "an offset moves the day: Monday 00:30 at UTC+01:00 is Sunday 23:30 UTC",
                "Mon 00:00-01:00 UTC+01:00",
                datetime!(2026-11-29 23:30 UTC),
                true,
            ),
            (
                "overnight, after the start",
                "Fri 22:00-06:00",
                datetime!(2026-12-04 23:00 UTC),
                true,
            ),
            (
                "overnight, the next morning counts as the day it started",
                "Fri 22:00-06:00",
                datetime!(2026-12-05 05:59 UTC),
                true,
            ),
            (
                "overnight, the morning of the start day is not in it",
                "Fri 22:00-06:00",
                datetime!(2026-12-04 05:00 UTC),
                false,
            ),
            ("to midnight", "Daily 00:00-24:00", datetime!(2026-12-06 23:59 UTC), true),
            (
                "one of several windows",
                "Mon-Fri 07:00-19:00, Sat 09:00-12:00",
                datetime!(2026-12-05 10:00 UTC),
                true,
            ),
        ];
        for (rule, hours, at, want) in cases {
            assert_eq!(in_hours(&parse_warm_hours(hours).unwrap(), *at), *want, "{rule}");
        }
        assert!(in_hours(&[], NOW), "no WARM_HOURS: always");
    }

    fn warm(floors: &[(&str, u32)], hours: &str) -> Warm {
        Warm {
            floors: floors
                .iter()
                .map(|(t, n)| crate::config::WarmFloor {
                    target: t.to_string(),
                    runners: *n,
                })
                .collect(),
            hours: if hours.is_empty() {
                vec![]
            } else {
                parse_warm_hours(hours).unwrap()
            },
        }
    }

    #[test]
    fn a_job_found_a_runner_waiting_when_another_runner_of_ours_took_it() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("still queued: a miss", None, false),
            ("a warm runner took it: a hit", Some("aci-runner-w-abcdef01"), true),
            ("an idle runner made for another job took it: a hit", Some("aci-runner-41"), true),
            ("its own runner took it: a miss", Some("aci-runner-42"), false),
            ("a runner not ours took it", Some("build-box"), false),
            ("a sibling deployment's runner took it", Some("aci-runner-gpu-w-abcdef01"), false),
        ];
        for (rule, taken_by, want) in cases {
            assert_eq!(found_waiting("aci-runner", "aci-runner-42", *taken_by), *want, "{rule}");
        }
    }

    #[test]
    fn outside_warm_hours_every_floor_is_zero() {
        let w = warm(&[("o/r", 2), ("o/s", 1)], "Mon-Fri 07:00-19:00");
        assert_eq!(floor_of(Some(&w), "O/R", NOW), 2, "targets compare case-insensitively");
        assert_eq!(floor_of(Some(&w), "o/x", NOW), 0, "a target without a floor");
        assert!(floors_now(Some(&w), datetime!(2026-11-30 20:00 UTC)).is_empty());
        assert!(floors_now(None, NOW).is_empty(), "unset: no floor anywhere");
    }

    fn rules(floors: &[(&str, u32)]) -> Rules {
        Rules {
            now: NOW,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(360 * 60),
            org_scope: false,
            floors: floors.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        }
    }

    fn group(name: &str, minutes_old: i64) -> GroupView {
        GroupView {
            name: name.into(),
            managed: true,
            ours: true,
            terminal: false,
            deleting: false,
            created_at: Some(NOW - time::Duration::minutes(minutes_old)),
            target: Some("o/r".into()),
            warm: name.contains("-w-"),
        }
    }

    /// An online runner of this name in o/r.
    fn idle(name: &str) -> RunnerView {
        RunnerView {
            id: 1,
            name: name.into(),
            target: "o/r".into(),
            busy: false,
            online: true,
        }
    }

    fn busy(name: &str) -> RunnerView {
        RunnerView { busy: true, ..idle(name) }
    }

    fn names(set: HashSet<String>) -> Vec<String> {
        let mut v: Vec<String> = set.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn the_floor_keeps_ready_runners_first_then_the_youngest() {
        let groups = [
            group("a-w-00000001", 100),
            group("a-w-00000002", 50),
            group("a-w-00000003", 20),
            group("a-7", 1), // still starting: no runner online yet
        ];
        let runners = [idle("a-w-00000001"), idle("a-w-00000002"), idle("a-w-00000003")];
        let cases: &[(&str, u32, &[&str])] = &[
            ("a floor of one keeps the youngest ready runner", 1, &["a-w-00000003"]),
            ("a floor of two", 2, &["a-w-00000002", "a-w-00000003"]),
            (
                "a floor of four keeps the starting one too",
                4,
                &["a-7", "a-w-00000001", "a-w-00000002", "a-w-00000003"],
            ),
            (
                "a floor above what there is keeps all",
                9,
                &["a-7", "a-w-00000001", "a-w-00000002", "a-w-00000003"],
            ),
        ];
        for (rule, floor, want) in cases {
            let got = names(kept(&groups, &runners, &HashSet::new(), &rules(&[("o/r", *floor)])));
            assert_eq!(got, *want, "{rule}");
        }
    }

    #[test]
    fn the_floor_counts_only_idle_runners_of_its_own_target() {
        let mut elsewhere = group("a-w-0000000e", 1);
        elsewhere.target = Some("o/other".into());
        let mut terminal = group("a-w-0000000f", 1);
        terminal.terminal = true;
        let mut deleting = group("a-w-0000000d", 1);
        deleting.deleting = true;
        let mut sibling = group("b-w-00000001", 1);
        sibling.ours = false;
        let groups = [
            group("a-1", 30),
            group("a-w-00000002", 400), // past the lifetime cap: rotated, not kept
            elsewhere,
            terminal,
            deleting,
            sibling,
        ];
        let runners = [busy("a-1"), idle("a-w-00000002")];
        let r = rules(&[("o/r", 2)]);
        assert!(
            kept(&groups, &runners, &HashSet::new(), &r).is_empty(),
            "busy, past the cap, elsewhere, ended, going, a sibling's: none is an idle runner here"
        );
        assert_eq!(
            top_up(&groups, &runners, &HashSet::new(), &HashSet::new(), &r),
            [("o/r".to_string(), 2)]
        );
    }

    #[test]
    fn the_sweeper_asks_for_what_the_floor_lacks() {
        let groups = [group("a-w-00000001", 10), group("a-w-00000002", 30), group("a-3", 1)];
        let runners = [idle("a-w-00000001"), idle("a-w-00000002")];
        type Floors = &'static [(&'static str, u32)];
        type Names = &'static [&'static str];
        // (rule, floors, removed this sweep, unlisted targets, what the sweeper asks for)
        let cases: &[(&str, Floors, Names, Names, Floors)] = &[
            ("no floor: nothing", &[], &[], &[], &[]),
            ("a floor met by idle and starting runners", &[("o/r", 3)], &[], &[], &[]),
            ("a floor above them", &[("o/r", 5)], &[], &[], &[("o/r", 2)]),
            (
                "what this sweep removes no longer counts",
                &[("o/r", 3)],
                &["a-w-00000002"],
                &[],
                &[("o/r", 1)],
            ),
            ("a target not listed gets nothing", &[("o/r", 5)], &[], &["o/r"], &[]),
            (
                "a target with no group yet gets its whole floor",
                &[("o/r", 3), ("o/new", 2)],
                &[],
                &[],
                &[("o/new", 2)],
            ),
        ];
        for (rule, floors, removed, unlisted, want) in cases {
            let removed: HashSet<String> = removed.iter().map(|s| s.to_string()).collect();
            let unlisted: HashSet<String> = unlisted.iter().map(|s| s.to_string()).collect();
            let got = top_up(&groups, &runners, &unlisted, &removed, &rules(floors));
            let want: Vec<(String, u32)> = want.iter().map(|(t, n)| (t.to_string(), *n)).collect();
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn idle_seconds_count_from_the_later_of_the_previous_sweep_and_the_start() {
        let groups = [group("a-w-00000001", 10), group("a-w-00000002", 2), group("a-3", 60)];
        let kept: HashSet<String> = ["a-w-00000001", "a-w-00000002"].iter().map(|s| s.to_string()).collect();
        let five_ago = NOW - time::Duration::minutes(5);
        assert_eq!(idle_seconds(&groups, &kept, Some(five_ago), NOW), 300 + 120);
        assert_eq!(
            idle_seconds(&groups, &kept, None, NOW),
            600 + 120,
            "no previous sweep: since each start"
        );
        assert_eq!(idle_seconds(&groups, &HashSet::new(), None, NOW), 0);
    }
}
