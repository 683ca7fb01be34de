//! Runner names, which are also container group names, and their grammar.
//!
//! - `<prefix>-<job id>` for a webhook job,
//! - `<prefix>-<run id>-<run attempt>-<first 8 hex of sha256(key)>` for a workflow-step request;
//! - `<prefix>-w-<8 hex>` for a warm runner (made by the sweeper, for no job in particular).
//!
//! A name is ours only when it parses with this deployment's prefix: digits where digits are
//! due, written as a number is written (no leading zeros), lowercase hex where hex is due.

use sha2::{Digest, Sha256};

/// What a name of ours was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// `<prefix>-<job id>`.
    Job(u64),
    /// `<prefix>-<run id>-<attempt>-<8 hex>`.
    Workflow { run: u64, attempt: u32 },
    /// `<prefix>-w-<8 hex>`.
    Warm,
}

/// `<prefix>-<job id>`.
pub fn webhook_runner_name(prefix: &str, job_id: u64) -> String {
    format!("{prefix}-{job_id}")
}

/// `<prefix>-<run id>-<run attempt>-<first 8 hex of sha256(key)>`.
pub fn workflow_runner_name(prefix: &str, run_id: u64, attempt: u32, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{prefix}-{run_id}-{attempt}-{}", &hex::encode(digest)[..8])
}

/// `<prefix>-w-<first 8 hex of sha256(seed)>`: the sweeper seeds it with the target, the time
/// and the runner's place in the top-up, so names do not repeat.
pub fn warm_runner_name(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    format!("{prefix}-w-{}", &hex::encode(digest)[..8])
}

/// A number as Rust writes it: digits only, no sign, no leading zero.
fn number<T: std::str::FromStr + ToString>(s: &str) -> Option<T> {
    let n: T = s.parse().ok()?;
    (s.bytes().all(|b| b.is_ascii_digit()) && n.to_string() == s).then_some(n)
}

fn hex8(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads a name back, if it is one of this prefix's.
pub fn parse(prefix: &str, name: &str) -> Option<Name> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [job] => number(job).map(Name::Job),
        ["w", hash] if hex8(hash) => Some(Name::Warm),
        [run, attempt, hash] if hex8(hash) => Some(Name::Workflow {
            run: number(run)?,
            attempt: number(attempt)?,
        }),
        _ => None,
    }
}

/// Is this runner (or container group) name one of ours?
pub fn is_ours(prefix: &str, name: &str) -> bool {
    parse(prefix, name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_valid_and_read_back() {
        assert_eq!(webhook_runner_name("aci-runner", 289782451), "aci-runner-289782451");
        let a = workflow_runner_name("aci-runner", 2202229078, 1, "build");
        assert_eq!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 1, "build"),
            "same request, same runner"
        );
        assert_ne!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 2, "build"),
            "a new attempt gets a new runner"
        );
        assert_ne!(
            a,
            workflow_runner_name("aci-runner", 2202229078, 1, ""),
            "another key gets another runner"
        );
        // sha256("") starts e3b0c442
        assert_eq!(workflow_runner_name("p", 1, 1, ""), "p-1-1-e3b0c442");
        assert!(crate::config::check_arm_name(&a).is_ok());
        assert!(is_ours("aci-runner", &a) && is_ours("aci-runner", "aci-runner-1"));
        assert_eq!(parse("aci-runner", "aci-runner-42"), Some(Name::Job(42)));
        assert_eq!(
            parse("aci-runner", &a),
            Some(Name::Workflow {
                run: 2202229078,
                attempt: 1
            })
        );
    }

    #[test]
    fn a_name_is_ours_only_by_its_exact_grammar() {
        let cases: &[(&str, &str)] = &[
            ("letters where the job id is due", "aci-runner-x"),
            ("another prefix that begins with ours", "aci-runnerx-1"),
            ("a sibling prefix with a hyphen", "aci-runner-b-12"),
            ("a GitHub-hosted runner", "GitHub Actions 5"),
            ("hex where the job id is due", "aci-runner-abc"),
            ("a leading zero", "aci-runner-042"),
            ("a sign", "aci-runner-+42"),
            ("nothing after the prefix", "aci-runner-"),
            ("the prefix alone", "aci-runner"),
            ("a job id past u64", "aci-runner-18446744073709551616"),
            ("uppercase hex", "aci-runner-1-1-ABCDEF01"),
            ("seven hex", "aci-runner-1-1-abcdef0"),
            ("nine hex", "aci-runner-1-1-abcdef012"),
            ("an attempt past u32", "aci-runner-1-4294967296-abcdef01"),
            ("two parts", "aci-runner-1-2"),
            ("a path", "aci-runner-1/../x"),
            ("a trailing hyphen", "aci-runner-1-"),
            ("a warm name with seven hex", "aci-runner-w-abcdef0"),
            ("a warm name with uppercase hex", "aci-runner-w-ABCDEF01"),
            ("a warm name with an uppercase marker", "aci-runner-W-abcdef01"),
            ("a warm name with more after the hex", "aci-runner-w-abcdef01-1"),
            ("the warm marker alone", "aci-runner-w"),
            ("a warm name of another prefix", "aci-w-abcdef01"),
        ];
        for (rule, name) in cases {
            assert!(!is_ours("aci-runner", name), "{rule}: {name}");
        }
        assert_eq!(parse("aci-runner", "aci-runner-0"), Some(Name::Job(0)));
        let warm = warm_runner_name("aci-runner", "octo-org/octo-repo 2026-11-28T10:00:00Z 0");
        assert_eq!(parse("aci-runner", &warm), Some(Name::Warm), "{warm}");
        assert!(crate::config::check_arm_name(&warm).is_ok());
        assert_ne!(warm, warm_runner_name("aci-runner", "octo-org/octo-repo 2026-11-28T10:00:00Z 1"));
        assert_eq!(
            parse("aci-runner", "aci-runner-18446744073709551615"),
            Some(Name::Job(u64::MAX)),
            "the largest job id"
        );
    }
}
