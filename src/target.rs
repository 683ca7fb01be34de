//! Where a runner is registered: a repository (`RUNNER_SCOPE=repo`) or an organization
//! (`org`). The one place that says what the scope makes of a repository.

use std::fmt;

use crate::config::Scope;
// GitHub's name grammar lives beside ARM's in config, which checks settings with it.
pub use crate::config::{owner_of, valid_owner, valid_repository, valid_repository_name};

/// A repository (`owner/name`) or an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Repo(&'a str),
    Org(&'a str),
}

impl<'a> Target<'a> {
    /// Where `scope` registers the runners of `repository` (`owner/name`).
    pub fn of_repository(scope: &Scope, repository: &'a str) -> Target<'a> {
        match scope {
            Scope::Repo => Target::Repo(repository),
            Scope::Org { .. } => Target::Org(owner_of(repository)),
        }
    }

    /// A target by its name as the scope writes it (`owner/name` or `owner`).
    pub fn named(scope: &Scope, name: &'a str) -> Target<'a> {
        match scope {
            Scope::Repo => Target::Repo(name),
            Scope::Org { .. } => Target::Org(name),
        }
    }

    /// `owner/name` or `owner`: the target's name, as [`Target::named`] reads it.
    pub fn name(&self) -> &'a str {
        match self {
            Target::Repo(n) | Target::Org(n) => n,
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Repo(r) => write!(f, "repo {r}"),
            Target::Org(o) => write!(f, "org {o}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_decides_where_a_repositorys_runners_go() {
        assert_eq!(Target::of_repository(&Scope::Repo, "octo/hello"), Target::Repo("octo/hello"));
        let org = Scope::Org { runner_group_id: 1 };
        assert_eq!(Target::of_repository(&org, "octo/hello"), Target::Org("octo"));
        assert_eq!(Target::named(&org, "octo"), Target::Org("octo"));
        assert_eq!(Target::of_repository(&org, "octo/hello").name(), "octo");
    }

    #[test]
    fn names_from_outside_follow_githubs_grammar() {
        for ok in ["octo/hello", "Octo-Org/hello.world", "a/b", "x/_private", "o/..x", "o/a-b_c.d"] {
            assert!(valid_repository(ok), "{ok}");
        }
        let bad = [
            ("a path", "owner/../../orgs/other"),
            ("a third part", "owner/repo/extra"),
            ("dot", "owner/."),
            ("dot dot", "owner/.."),
            ("no owner", "/repo"),
            ("no name", "owner/"),
            ("no slash", "owner"),
            ("a query", "owner/repo?x=1"),
            ("a fragment", "owner/repo#x"),
            ("an encoded slash", "owner/repo%2f.."),
            ("a space", "owner/re po"),
            ("a backslash", "owner/re\\po"),
            ("an owner starting with a hyphen", "-owner/repo"),
            ("an owner with a dot", "own.er/repo"),
            ("an owner of 40", &format!("{}/repo", "a".repeat(40))),
            ("a name of 101", &format!("o/{}", "a".repeat(101))),
            ("non-ASCII", "ownér/repo"),
            ("empty", ""),
        ];
        for (rule, name) in bad {
            assert!(!valid_repository(name), "{rule}: {name}");
        }
        assert!(valid_owner("octo-org") && !valid_owner("octo/org") && !valid_owner(""));
    }
}
