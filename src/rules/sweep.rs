//! The sweeper's decision: a pure `select` over what was seen (managed container groups with
//! their state, our GitHub runners, the clock) that says what to delete and why.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::rules::warm;

/// A container group as the sweeper sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub name: String,
    /// `managed-by=aci-runners`; anything else is never touched.
    pub managed: bool,
    /// Its name parses with this deployment's prefix ([`crate::rules::names::parse`]); a
    /// sibling deployment's managed group (another prefix) is never touched.
    pub ours: bool,
    /// Exited, failed or canceled.
    pub terminal: bool,
    /// ARM is deleting it already (a DELETE was accepted): left to ARM.
    pub deleting: bool,
    /// From the `created-at` tag.
    pub created_at: Option<OffsetDateTime>,
    /// Where its runner is registered: the repository (repo scope) or organization (org scope).
    pub target: Option<String>,
    /// Tagged `warm=true`: a warm runner's group.
    pub warm: bool,
}

/// A runner is (target, name): the same name in another repository or organization is
/// another runner. GitHub's names compare case-insensitively.
fn key(target: &str, name: &str) -> (String, String) {
    (target.to_ascii_lowercase(), name.to_string())
}

/// A GitHub runner named with our prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerView {
    pub id: u64,
    pub name: String,
    /// The repository or organization it was listed in.
    pub target: String,
    pub busy: bool,
    pub online: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The container exited, or ARM failed to create it.
    Terminated,
    /// Older than `RUNNER_MAX_LIFETIME_MINUTES`.
    Lifetime,
    /// No job after `RUNNER_IDLE_TIMEOUT_MINUTES`.
    Idle,
    /// A registration with our prefix, offline, with no group.
    Ghost,
    /// An idle runner in a target with a warm floor, at `RUNNER_MAX_LIFETIME_MINUTES`: replaced
    /// by a new one in the same sweep.
    Rotated,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Terminated => "terminated",
            Reason::Lifetime => "lifetime",
            Reason::Idle => "idle",
            Reason::Ghost => "ghost",
            Reason::Rotated => "rotated",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A runner registration to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRef {
    pub id: u64,
    pub name: String,
    pub target: String,
}

/// One thing to clean up. When both are set, the runner is deregistered first, so GitHub
/// hands it no job while its container goes away.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub reason: Reason,
    pub deregister: Option<RunnerRef>,
    pub group: Option<String>,
    /// If deregistering fails (GitHub answers 422 because the runner just took a job), keep
    /// the group. True for idle groups; a group past its lifetime is deleted anyway.
    pub keep_group_if_deregister_fails: bool,
    /// The group is a warm runner's (tagged `warm=true`).
    pub warm: bool,
}

/// What `select` needs besides the observations.
#[derive(Debug, Clone)]
pub struct Rules {
    pub now: OffsetDateTime,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Org scope: ghosts cannot be traced to their job, so they are left to GitHub.
    pub org_scope: bool,
    /// The warm floor of each target now (lowercase target → runners; see
    /// [`crate::rules::warm::floors_now`]); empty when `WARM_RUNNERS` is unset or outside
    /// `WARM_HOURS`.
    pub floors: HashMap<String, u32>,
}

/// Registrations with our prefix, offline and not busy, that have no group: ghosts unless
/// what they were made for still needs them, which the caller looks up (one call each).
/// Empty in org scope.
pub fn ghost_candidates<'a>(groups: &[GroupView], runners: &'a [RunnerView], rules: &Rules) -> Vec<&'a RunnerView> {
    if rules.org_scope {
        return vec![];
    }
    let groups: HashSet<(String, String)> = groups.iter().filter_map(|g| g.target.as_ref().map(|t| key(t, &g.name))).collect();
    runners
        .iter()
        .filter(|r| !r.online && !r.busy && !groups.contains(&key(&r.target, &r.name)))
        .collect()
}

/// The sweeper's rules, in order:
/// - a group without `managed-by=aci-runners`, or whose name does not parse with this
///   deployment's prefix, is never touched;
/// - a group's runner is the registration of its name in its own target only;
/// - a group ARM is deleting already is left to ARM;
/// - a terminated or failed group is deleted (its runner, if still registered and not busy,
///   deregistered first);
/// - a group older than the lifetime cap: deregister, delete (even if deregistering fails);
/// - in a target with a warm floor, a group past the lifetime cap whose runner is not busy is
///   rotated: deregister first, then delete, keeping the group if deregistering fails (the runner
///   just took a job); the sweeper asks for its replacement;
/// - a group older than the idle timeout whose runner is not busy: deregister first, then delete,
///   keeping the group if deregistering fails; a busy runner is never touched below the cap;
///   groups whose runners could not be listed (`unlisted`) are not judged idle, nor are those
///   the warm floor keeps ([`crate::rules::warm::kept`]);
/// - a ghost registration (see [`ghost_candidates`]) not in `still_needed` is deregistered.
pub fn select(
    groups: &[GroupView],
    runners: &[RunnerView],
    unlisted: &HashSet<String>,
    still_needed: &HashSet<String>,
    rules: &Rules,
) -> Vec<Deletion> {
    let by_key: HashMap<(String, String), &RunnerView> = runners.iter().map(|r| (key(&r.target, &r.name), r)).collect();
    let unlisted: HashSet<String> = unlisted.iter().map(|t| t.to_ascii_lowercase()).collect();
    let reference = |r: &RunnerView| RunnerRef {
        id: r.id,
        name: r.name.clone(),
        target: r.target.clone(),
    };
    let kept = warm::kept(groups, runners, &unlisted, rules);
    let mut out = Vec::new();
    for g in groups.iter().filter(|g| g.managed && g.ours && !g.deleting) {
        // Its runner is the one of its name in its own target, and nowhere else.
        let runner = g.target.as_ref().and_then(|t| by_key.get(&key(t, &g.name)).copied());
        let age = g.created_at.map(|c| rules.now - c).and_then(|d| Duration::try_from(d).ok());
        let older_than = |limit: Duration| age.is_some_and(|a| a > limit);
        if g.terminal {
            out.push(Deletion {
                reason: Reason::Terminated,
                deregister: runner.filter(|r| !r.busy).map(reference),
                group: Some(g.name.clone()),
                keep_group_if_deregister_fails: false,
                warm: g.warm,
            });
        } else if older_than(rules.max_lifetime) {
            let floor = g.target.as_ref().and_then(|t| rules.floors.get(&t.to_ascii_lowercase()));
            let rotate = floor.is_some_and(|f| *f > 0) && !runner.is_some_and(|r| r.busy);
            out.push(Deletion {
                reason: if rotate { Reason::Rotated } else { Reason::Lifetime },
                deregister: runner.map(reference),
                group: Some(g.name.clone()),
                keep_group_if_deregister_fails: rotate,
                warm: g.warm,
            });
        } else if older_than(rules.idle_timeout) && !runner.is_some_and(|r| r.busy) {
            let listed = g.target.as_ref().is_some_and(|t| !unlisted.contains(&t.to_ascii_lowercase()));
            if listed && !kept.contains(&g.name) {
                out.push(Deletion {
                    reason: Reason::Idle,
                    deregister: runner.map(reference),
                    group: Some(g.name.clone()),
                    keep_group_if_deregister_fails: true,
                    warm: g.warm,
                });
            }
        }
    }
    for r in ghost_candidates(groups, runners, rules) {
        if !still_needed.contains(&r.name) {
            out.push(Deletion {
                reason: Reason::Ghost,
                deregister: Some(reference(r)),
                group: None,
                keep_group_if_deregister_fails: false,
                warm: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn rules() -> Rules {
        Rules {
            now: NOW,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(360 * 60),
            org_scope: false,
            floors: HashMap::new(),
        }
    }

    fn group(name: &str, minutes_old: i64, terminal: bool) -> GroupView {
        GroupView {
            name: name.into(),
            managed: true,
            ours: true,
            terminal,
            deleting: false,
            created_at: Some(NOW - time::Duration::minutes(minutes_old)),
            target: Some("o/r".into()),
            warm: false,
        }
    }

    fn runner(name: &str, busy: bool, online: bool) -> RunnerView {
        RunnerView {
            id: name.len() as u64,
            name: name.into(),
            target: "o/r".into(),
            busy,
            online,
        }
    }

    /// (groups, runners, unlisted targets, still-needed names) → the reasons chosen, by name.
    fn run(
        groups: &[GroupView],
        runners: &[RunnerView],
        unlisted: &[&str],
        needed: &[&str],
        r: &Rules,
    ) -> Vec<(String, Reason, bool, bool)> {
        let unlisted = unlisted.iter().map(|s| s.to_string()).collect();
        let needed = needed.iter().map(|s| s.to_string()).collect();
        select(groups, runners, &unlisted, &needed, r)
            .into_iter()
            .map(|d| {
                let name = d.group.clone().or(d.deregister.as_ref().map(|x| x.name.clone())).unwrap();
                (name, d.reason, d.deregister.is_some(), d.group.is_some())
            })
            .collect()
    }

    #[test]
    fn terminated_or_failed_group_is_deleted() {
        let got = run(&[group("aci-runner-1", 2, true)], &[], &[], &[], &rules());
        assert_eq!(got, [("aci-runner-1".to_string(), Reason::Terminated, false, true)]);
    }

    #[test]
    fn terminated_group_with_a_stale_registration_deregisters_it_first() {
        let got = run(
            &[group("aci-runner-1", 2, true)],
            &[runner("aci-runner-1", false, false)],
            &[],
            &[],
            &rules(),
        );
        assert_eq!(got, [("aci-runner-1".to_string(), Reason::Terminated, true, true)]);
    }

    #[test]
    fn group_past_the_lifetime_is_deregistered_and_deleted_even_when_busy() {
        let got = run(
            &[group("aci-runner-1", 361, false)],
            &[runner("aci-runner-1", true, true)],
            &[],
            &[],
            &rules(),
        );
        assert_eq!(got, [("aci-runner-1".to_string(), Reason::Lifetime, true, true)]);
        let d = select(
            &[group("aci-runner-1", 361, false)],
            &[],
            &HashSet::new(),
            &HashSet::new(),
            &rules(),
        );
        assert!(!d[0].keep_group_if_deregister_fails, "deleted anyway");
    }

    #[test]
    fn idle_runner_past_the_timeout_is_deregistered_then_deleted() {
        let d = select(
            &[group("aci-runner-1", 16, false)],
            &[runner("aci-runner-1", false, true)],
            &HashSet::new(),
            &HashSet::new(),
            &rules(),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].reason, Reason::Idle);
        assert!(d[0].deregister.is_some() && d[0].group.is_some() && d[0].keep_group_if_deregister_fails);
    }

    #[test]
    fn busy_runner_is_never_touched_below_the_lifetime_cap() {
        for minutes in [1, 16, 120, 359] {
            let got = run(
                &[group("aci-runner-1", minutes, false)],
                &[runner("aci-runner-1", true, true)],
                &[],
                &[],
                &rules(),
            );
            assert!(got.is_empty(), "{minutes} minutes old: {got:?}");
        }
    }

    #[test]
    fn young_idle_runner_is_kept() {
        let got = run(
            &[group("aci-runner-1", 14, false)],
            &[runner("aci-runner-1", false, false)],
            &[],
            &[],
            &rules(),
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn group_without_managed_by_is_never_touched() {
        let mut g = group("aci-runner-1", 1000, true);
        g.managed = false;
        assert!(run(&[g], &[], &[], &[], &rules()).iter().all(|(n, ..)| n != "aci-runner-1"));
    }

    #[test]
    fn idle_group_whose_runners_could_not_be_listed_is_kept() {
        let got = run(&[group("aci-runner-1", 16, false)], &[], &["o/r"], &[], &rules());
        assert!(got.is_empty(), "busy-ness unknown: {got:?}");
        // The lifetime cap and terminal state do not depend on the runner.
        let got = run(
            &[group("aci-runner-2", 400, false), group("aci-runner-3", 1, true)],
            &[],
            &["o/r"],
            &[],
            &rules(),
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn group_without_created_at_is_judged_only_by_its_state() {
        let mut g = group("aci-runner-1", 0, false);
        g.created_at = None;
        assert!(run(std::slice::from_ref(&g), &[], &[], &[], &rules()).is_empty());
        g.terminal = true;
        assert_eq!(run(&[g], &[], &[], &[], &rules()).len(), 1);
    }

    #[test]
    fn offline_registration_with_no_group_is_deregistered() {
        let got = run(&[], &[runner("aci-runner-9", false, false)], &[], &[], &rules());
        assert_eq!(got, [("aci-runner-9".to_string(), Reason::Ghost, true, false)]);
    }

    #[test]
    fn ghost_whose_job_is_still_queued_is_kept() {
        let got = run(&[], &[runner("aci-runner-9", false, false)], &[], &["aci-runner-9"], &rules());
        assert!(got.is_empty(), "it may be between its JIT config and its container group");
    }

    #[test]
    fn online_or_busy_registration_without_group_is_not_a_ghost() {
        let got = run(
            &[],
            &[runner("aci-runner-9", false, true), runner("aci-runner-8", true, false)],
            &[],
            &[],
            &rules(),
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn org_scope_leaves_ghosts_to_github() {
        let r = Rules {
            org_scope: true,
            ..rules()
        };
        assert!(run(&[], &[runner("aci-runner-9", false, false)], &[], &[], &r).is_empty());
        assert!(ghost_candidates(&[], &[runner("aci-runner-9", false, false)], &r).is_empty());
    }

    #[test]
    fn a_registration_with_a_group_is_no_ghost() {
        let runners = [runner("aci-runner-1", false, false)];
        assert!(ghost_candidates(&[group("aci-runner-1", 1, false)], &runners, &rules()).is_empty());
    }

    #[test]
    fn a_sibling_deployments_group_is_never_touched() {
        let mut g = group("aci-runner-2-1", 1000, true);
        g.ours = false;
        let mut idle = group("aci-runner-2-7", 30, false);
        idle.ours = false;
        assert!(run(&[g, idle], &[runner("aci-runner-2-7", false, true)], &[], &[], &rules()).is_empty());
    }

    #[test]
    fn a_same_named_idle_runner_in_another_repository_does_not_make_a_busy_group_idle() {
        let mut elsewhere = runner("aci-runner-1", false, true);
        elsewhere.target = "other/repo".into();
        // Either order of the list: the group's own runner is the busy one in o/r.
        for runners in [
            vec![runner("aci-runner-1", true, true), elsewhere.clone()],
            vec![elsewhere.clone(), runner("aci-runner-1", true, true)],
        ] {
            let got = run(&[group("aci-runner-1", 30, false)], &runners, &[], &[], &rules());
            assert!(got.is_empty(), "{got:?}");
        }
    }

    #[test]
    fn a_group_deregisters_only_the_runner_in_its_own_target() {
        let mut elsewhere = runner("aci-runner-1", false, false);
        elsewhere.target = "other/repo".into();
        elsewhere.id = 999;
        let d = select(
            &[group("aci-runner-1", 400, false)],
            std::slice::from_ref(&elsewhere),
            &HashSet::new(),
            &HashSet::new(),
            &rules(),
        );
        let lifetime = d.iter().find(|d| d.reason == Reason::Lifetime).unwrap();
        assert_eq!(lifetime.deregister, None, "the runner in other/repo is not this group's");
        // The other repository's offline runner of that name has no group there: it is a ghost
        // of its own, judged in its own target.
        let ghost = d.iter().find(|d| d.reason == Reason::Ghost).unwrap();
        assert_eq!(ghost.deregister.as_ref().map(|r| r.target.as_str()), Some("other/repo"));
    }

    #[test]
    fn targets_compare_case_insensitively() {
        let mut r = runner("aci-runner-1", true, true);
        r.target = "O/R".into();
        assert!(
            run(&[group("aci-runner-1", 30, false)], &[r], &[], &[], &rules()).is_empty(),
            "busy"
        );
        assert!(
            run(&[group("aci-runner-1", 30, false)], &[], &["O/R"], &[], &rules()).is_empty(),
            "unlisted"
        );
    }

    #[test]
    fn a_group_arm_is_deleting_is_left_to_arm() {
        let mut g = group("aci-runner-1", 1000, true);
        g.deleting = true;
        assert!(run(&[g], &[runner("aci-runner-1", false, false)], &[], &[], &rules()).is_empty());
    }

    fn with_floor(n: u32) -> Rules {
        Rules {
            floors: [("o/r".to_string(), n)].into_iter().collect(),
            ..rules()
        }
    }

    #[test]
    fn an_idle_runner_at_or_below_the_floor_is_never_removed() {
        let groups = [
            group("aci-runner-w-00000001", 200, false),
            group("aci-runner-w-00000002", 100, false),
            group("aci-runner-3", 30, false),
        ];
        let runners = [
            runner("aci-runner-w-00000001", false, true),
            runner("aci-runner-w-00000002", false, true),
            runner("aci-runner-3", false, true),
        ];
        let cases: &[(&str, u32, &[&str])] = &[
            (
                "no floor: every idle runner past the timeout goes",
                0,
                &["aci-runner-3", "aci-runner-w-00000001", "aci-runner-w-00000002"],
            ),
            (
                "a floor of one: the surplus goes, oldest first",
                1,
                &["aci-runner-w-00000001", "aci-runner-w-00000002"],
            ),
            ("a floor of two", 2, &["aci-runner-w-00000001"]),
            ("a floor of three keeps all", 3, &[]),
        ];
        for (rule, floor, want) in cases {
            let mut got: Vec<String> = run(&groups, &runners, &[], &[], &with_floor(*floor))
                .into_iter()
                .inspect(|(_, reason, ..)| assert_eq!(*reason, Reason::Idle, "{rule}"))
                .map(|(n, ..)| n)
                .collect();
            got.sort();
            assert_eq!(got, *want, "{rule}");
        }
    }

    #[test]
    fn an_idle_runner_at_the_lifetime_cap_is_rotated_and_kept_if_it_just_took_a_job() {
        let d = select(
            &[group("aci-runner-w-00000001", 361, false)],
            &[runner("aci-runner-w-00000001", false, true)],
            &HashSet::new(),
            &HashSet::new(),
            &with_floor(2),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].reason, Reason::Rotated);
        assert!(d[0].deregister.is_some(), "deregistered first");
        assert!(d[0].keep_group_if_deregister_fails, "a 422 keeps it");
        let busy = select(
            &[group("aci-runner-w-00000001", 361, false)],
            &[runner("aci-runner-w-00000001", true, true)],
            &HashSet::new(),
            &HashSet::new(),
            &with_floor(2),
        );
        assert_eq!(busy[0].reason, Reason::Lifetime, "a busy runner past the cap goes as any other");
        let no_floor = select(
            &[group("aci-runner-w-00000001", 361, false)],
            &[runner("aci-runner-w-00000001", false, true)],
            &HashSet::new(),
            &HashSet::new(),
            &rules(),
        );
        assert_eq!(
            no_floor[0].reason,
            Reason::Lifetime,
            "outside WARM_HOURS: the lifetime rule as it was"
        );
    }
}
