//! Which creates this instance lets through, between its list of container groups and its PUTs.
//!
//! The host hands `provision` a batch of queue messages at once (`batchSize` in `host.json`).
//! Each lists the groups, then registers a runner and PUTs its group, seconds later. Without a
//! record of what is under way, two messages for the same job would both register a runner, and
//! a batch of new jobs would all see room under `MAX_RUNNERS` in the same list. So a create
//! takes a ticket for its name first: a name already under way here is not made twice, and the
//! creates under way, or finished since the list was asked for, count against the cap beside the
//! groups the list shows. Instances scaled out across machines do not share this record; the
//! cap can be passed by what they create at the same moment (see the README's known limits).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Why a create may not go ahead now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This instance is creating that name, or created it after the caller's list was asked for.
    UnderWay,
    /// `live` groups in the list and `pending` creates here reach `MAX_RUNNERS`.
    Full { live: usize, pending: usize },
    /// The repository's own `live` groups and `pending` creates reach its share.
    RepositoryFull { live: usize, pending: usize, share: usize },
}

/// What the caller's list of container groups showed, taken at `started`.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Every name in the list.
    pub listed: &'a [&'a str],
    /// Groups in it that count against `MAX_RUNNERS` (managed, not terminated or failed).
    pub live: usize,
    /// Of those, the ones made for the create's repository.
    pub live_in_repository: usize,
    pub started: Instant,
}

/// `MAX_RUNNERS`, and `MAX_RUNNERS_PER_REPOSITORY` when set.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: usize,
    pub per_repository: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    /// Lowercase `owner/name`.
    repository: String,
    /// When the create finished (`None`: still under way).
    done: Option<Instant>,
}

/// Names being created, and when each create finished.
#[derive(Debug, Default)]
pub struct Admissions {
    names: Mutex<HashMap<String, Entry>>,
}

/// Holds a name while its create is under way. Dropped without [`Ticket::created`], it lets the
/// name go (nothing was made); after it, the name counts until a later list can show it.
#[derive(Debug)]
pub struct Ticket<'a> {
    owner: &'a Admissions,
    name: String,
    created: Option<Instant>,
}

impl Admissions {
    /// Admits a create of `name` for `repository`, given what the caller's list showed.
    pub fn admit(&self, name: &str, repository: &str, seen: Seen<'_>, limits: Limits) -> Result<Ticket<'_>, Refusal> {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        // A create that finished before the list was asked for is in the list, or gone since.
        names.retain(|_, e| e.done.is_none_or(|at| at > seen.started));
        if names.contains_key(name) {
            return Err(Refusal::UnderWay);
        }
        let repository = repository.to_ascii_lowercase();
        let unlisted = |n: &String| !seen.listed.contains(&n.as_str());
        let pending = names.keys().filter(|n| unlisted(n)).count();
        if seen.live + pending >= limits.max {
            return Err(Refusal::Full { live: seen.live, pending });
        }
        if let Some(share) = limits.per_repository {
            let pending = names.iter().filter(|(n, e)| unlisted(n) && e.repository == repository).count();
            if seen.live_in_repository + pending >= share {
                return Err(Refusal::RepositoryFull {
                    live: seen.live_in_repository,
                    pending,
                    share,
                });
            }
        }
        names.insert(name.to_string(), Entry { repository, done: None });
        Ok(Ticket {
            owner: self,
            name: name.to_string(),
            created: None,
        })
    }

    fn finish(&self, name: &str, created: Option<Instant>) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        match (created, names.get_mut(name)) {
            (Some(at), Some(e)) => e.done = Some(at),
            _ => {
                names.remove(name);
            }
        }
    }
}

impl Ticket<'_> {
    /// The group exists now (its PUT was taken at `at`).
    pub fn created(mut self, at: Instant) {
        self.created = Some(at);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.owner.finish(&self.name, self.created);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const REPO: &str = "o/r";

    fn seen<'a>(listed: &'a [&'a str], live: usize, started: Instant) -> Seen<'a> {
        Seen {
            listed,
            live,
            live_in_repository: 0,
            started,
        }
    }

    fn cap(max: usize) -> Limits {
        Limits { max, per_repository: None }
    }

    fn at(ms: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn a_name_under_way_is_not_created_twice() {
        let a = Admissions::default();
        let _first = a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(20)).unwrap();
        assert_eq!(a.admit("r-1", REPO, seen(&[], 0, at(1)), cap(20)).unwrap_err(), Refusal::UnderWay);
    }

    #[test]
    fn creates_under_way_count_against_the_cap() {
        let a = Admissions::default();
        let _one = a.admit("r-1", REPO, seen(&[], 1, at(0)), cap(3)).unwrap();
        let _two = a.admit("r-2", REPO, seen(&[], 1, at(0)), cap(3)).unwrap();
        assert_eq!(
            a.admit("r-3", REPO, seen(&[], 1, at(0)), cap(3)).unwrap_err(),
            Refusal::Full { live: 1, pending: 2 }
        );
    }

    #[test]
    fn a_failed_create_frees_its_name_and_its_slot() {
        let a = Admissions::default();
        drop(a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(1)).unwrap());
        assert!(a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(1)).is_ok());
    }

    #[test]
    fn a_create_finished_after_the_list_was_asked_for_still_counts() {
        let a = Admissions::default();
        a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(1)).unwrap().created(at(10));
        // This list was asked for before r-1's PUT was taken: it cannot show r-1.
        assert_eq!(
            a.admit("r-2", REPO, seen(&[], 0, at(5)), cap(1)).unwrap_err(),
            Refusal::Full { live: 0, pending: 1 }
        );
        assert_eq!(a.admit("r-1", REPO, seen(&[], 0, at(5)), cap(1)).unwrap_err(), Refusal::UnderWay);
    }

    #[test]
    fn a_later_list_takes_over_from_the_record() {
        let a = Admissions::default();
        a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(2)).unwrap().created(at(10));
        // Listed after the PUT: r-1 is among the live groups, counted once.
        let _r2 = a.admit("r-2", REPO, seen(&["r-1"], 1, at(20)), cap(2)).unwrap();
        assert_eq!(a.names.lock().unwrap().len(), 1, "r-1 left the record");
        // Deleted since: a later list without it frees its slot.
        drop(_r2);
        assert!(a.admit("r-3", REPO, seen(&[], 0, at(30)), cap(1)).is_ok());
    }

    #[test]
    fn a_listed_create_under_way_is_counted_once() {
        let a = Admissions::default();
        let _one = a.admit("r-1", REPO, seen(&[], 0, at(0)), cap(2)).unwrap();
        // r-1's PUT was taken before this list: the list shows it (live 1) while it is still
        // under way here; counted twice, r-2 would find no room.
        assert!(a.admit("r-2", REPO, seen(&["r-1"], 1, at(5)), cap(2)).is_ok());
    }

    #[test]
    fn one_repository_cannot_take_every_slot() {
        let a = Admissions::default();
        let limits = Limits {
            max: 10,
            per_repository: Some(2),
        };
        let _one = a.admit("r-1", "greedy/repo", seen(&[], 0, at(0)), limits).unwrap();
        let _two = a.admit("r-2", "Greedy/Repo", seen(&[], 0, at(0)), limits).unwrap();
        assert_eq!(
            a.admit("r-3", "greedy/repo", seen(&[], 0, at(0)), limits).unwrap_err(),
            Refusal::RepositoryFull {
                live: 0,
                pending: 2,
                share: 2
            },
            "names compare case-insensitively"
        );
        assert!(
            a.admit("r-4", "other/repo", seen(&[], 0, at(0)), limits).is_ok(),
            "the rest still get theirs"
        );
        let listed = Seen {
            live_in_repository: 2,
            ..seen(&[], 2, at(0))
        };
        assert!(matches!(
            a.admit("r-5", "greedy/repo", listed, limits),
            Err(Refusal::RepositoryFull { live: 2, .. })
        ));
    }
}
