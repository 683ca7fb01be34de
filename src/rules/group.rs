//! The container group: its body, and the tags that say whose it is. The ARM client carries
//! tags as plain strings; what they mean is said here.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::clock::{parse_rfc3339, rfc3339};
use crate::config::{Config, Scope};
use crate::rules::request::{Create, Origin};
use crate::secret::Secret;
use crate::target::{owner_of, valid_owner, valid_repository, Target};

/// The value of the `managed-by` tag; the sweeper never touches a group without it.
pub const MANAGED_BY: &str = "aci-runners";

/// Tag names (part of the contract: operators filter on them).
pub mod tag {
    pub const MANAGED_BY: &str = "managed-by";
    pub const REPOSITORY: &str = "github-repository";
    pub const OWNER: &str = "github-owner";
    pub const JOB_ID: &str = "github-job-id";
    pub const RUN_ID: &str = "github-run-id";
    pub const ORIGIN: &str = "origin";
    pub const CREATED_AT: &str = "created-at";
    /// `true` on a warm runner's group (`WARM_RUNNERS`), made for no job in particular.
    pub const WARM: &str = "warm";
}

/// The tags every container group carries.
pub fn tags(cfg: &Config, req: &Create, created_at: OffsetDateTime) -> BTreeMap<&'static str, String> {
    let mut t = BTreeMap::new();
    let warm = req.origin == Origin::Warm;
    t.insert(tag::MANAGED_BY, MANAGED_BY.to_string());
    // A warm runner's target is an organization in org scope: it has no repository.
    if !warm || req.repository.contains('/') {
        t.insert(tag::REPOSITORY, req.repository.clone());
    }
    if let Scope::Org { .. } = cfg.scope {
        t.insert(tag::OWNER, owner_of(&req.repository).to_string());
    }
    if let Some(job) = req.job {
        t.insert(tag::JOB_ID, job.to_string());
    }
    if warm {
        t.insert(tag::WARM, "true".to_string());
    } else {
        t.insert(tag::RUN_ID, req.run.to_string());
    }
    t.insert(tag::ORIGIN, req.origin.as_str().to_string());
    t.insert(tag::CREATED_AT, rfc3339(created_at));
    t
}

/// Tags `managed-by=aci-runners`.
pub fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(tag::MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
}

/// Tagged `warm=true`: a warm runner's group.
pub fn is_warm(tags: &BTreeMap<String, String>) -> bool {
    tags.get(tag::WARM).map(String::as_str) == Some("true")
}

/// When we made it: the `created-at` tag, or ARM's `systemData.createdAt` when the tag is
/// missing or unreadable (so a group stripped of its tag still ages out).
pub fn created_at(tags: &BTreeMap<String, String>, arm_created: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    tags.get(tag::CREATED_AT).and_then(|t| parse_rfc3339(t)).or(arm_created)
}

/// Where its runner is registered, by the scope's naming (see [`crate::target::Target::named`]):
/// the `github-repository` tag in repo scope; `github-owner` (or the repository's owner) in org scope.
/// A tag that does not fit GitHub's grammar (anyone who may write tags in the resource group
/// can set one) names no target, so it never reaches a URL.
pub fn target_name(scope: &Scope, tags: &BTreeMap<String, String>) -> Option<String> {
    let repo = tags.get(tag::REPOSITORY);
    match scope {
        Scope::Repo => repo.cloned().filter(|r| valid_repository(r)),
        Scope::Org { .. } => tags
            .get(tag::OWNER)
            .cloned()
            .or_else(|| repo.map(|r| owner_of(r).to_string()))
            .filter(|o| valid_owner(o)),
    }
}

/// Was the group made for this repository's target (its repository in repo scope, its owner
/// in org scope)? Only then may that repository's deliveries or tokens act on it.
pub fn made_for(scope: &Scope, tags: &BTreeMap<String, String>, repository: &str) -> bool {
    let theirs = Target::of_repository(scope, repository);
    target_name(scope, tags).is_some_and(|t| t.eq_ignore_ascii_case(theirs.name()))
}

/// A webhook group's runner request, rebuilt from its tags (`None` for any other group).
pub fn webhook_request(name: &str, tags: &BTreeMap<String, String>, labels: &[String]) -> Option<Create> {
    if tags.get(tag::ORIGIN).map(String::as_str) != Some(Origin::Webhook.as_str()) {
        return None;
    }
    let job: u64 = tags.get(tag::JOB_ID)?.parse().ok()?;
    Some(Create {
        runner: name.to_string(),
        repository: tags.get(tag::REPOSITORY)?.clone(),
        origin: Origin::Webhook,
        job: Some(job),
        run: tags.get(tag::RUN_ID).and_then(|r| r.parse().ok()).unwrap_or(0),
        attempt: 1,
        labels: labels.to_vec(),
        created_at: None,
    })
}

/// The container group: one Linux container `runner`, never restarted, started as
/// `/home/runner/run.sh` with the JIT config in a secure environment variable.
pub fn container_group_body(cfg: &Config, req: &Create, created_at: OffsetDateTime, jit_config: &Secret) -> Value {
    let mut properties = json!({
        "osType": "Linux",
        "restartPolicy": "Never",
        "sku": "Standard",
        "containers": [{
            "name": "runner",
            "properties": {
                "image": cfg.image,
                "command": ["/home/runner/run.sh"],
                "resources": {"requests": {"cpu": cfg.cpu, "memoryInGB": cfg.memory_gb}},
                "environmentVariables": [
                    {"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": jit_config.expose()}
                ]
            }
        }]
    });
    if let Some(subnet) = &cfg.subnet_id {
        properties["subnetIds"] = json!([{"id": subnet}]);
    }
    json!({
        "location": cfg.location,
        "tags": tags(cfg, req, created_at),
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::*;

    #[test]
    fn container_group_body_follows_the_design() {
        let c = cfg(&[(
            "RUNNER_SUBNET_ID",
            "/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/aci",
        )]);
        let at = time::macros::datetime!(2026-11-28 10:00:00.123 UTC);
        let b = container_group_body(&c, &create(), at, &Secret::new("JITJIT"));
        let p = &b["properties"];
        assert_eq!(p["osType"], "Linux");
        assert_eq!(p["restartPolicy"], "Never");
        assert_eq!(p["subnetIds"][0]["id"], c.subnet_id.clone().unwrap());
        let ctr = &p["containers"][0];
        assert_eq!(ctr["name"], "runner");
        assert_eq!(ctr["properties"]["command"], json!(["/home/runner/run.sh"]));
        assert_eq!(ctr["properties"]["resources"]["requests"], json!({"cpu": 2.0, "memoryInGB": 4.0}));
        assert_eq!(
            ctr["properties"]["environmentVariables"],
            json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": "JITJIT"}])
        );
        assert_eq!(
            b["tags"],
            json!({"managed-by": "aci-runners", "github-repository": "octo-org/octo-repo", "github-job-id": "42",
                   "github-run-id": "7", "origin": "webhook", "created-at": "2026-11-28T10:00:00Z"})
        );
        assert!(!b["tags"].to_string().contains("JITJIT"), "no secret in a tag");
    }

    #[test]
    fn org_scope_tags_the_owner_and_no_subnet_means_no_subnet_ids() {
        let c = cfg(&[("RUNNER_SCOPE", "org")]);
        let b = container_group_body(&c, &create(), OffsetDateTime::UNIX_EPOCH, &Secret::new("x"));
        assert_eq!(b["tags"]["github-owner"], "octo-org");
        assert!(b["properties"].get("subnetIds").is_none());
    }

    #[test]
    fn a_warm_group_is_tagged_warm_for_its_target_and_carries_no_identity() {
        let at = time::macros::datetime!(2026-11-28 10:00 UTC);
        let b = container_group_body(&cfg(&[]), &warm_create("octo-org/octo-repo"), at, &Secret::new("JITJIT"));
        assert_eq!(
            b["tags"],
            json!({"managed-by": "aci-runners", "github-repository": "octo-org/octo-repo", "origin": "warm", "warm": "true",
                   "created-at": "2026-11-28T10:00:00Z"})
        );
        assert!(b.get("identity").is_none(), "no managed identity on a runner's group");
        assert_eq!(
            b["properties"]["containers"][0]["properties"]["environmentVariables"],
            json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": "JITJIT"}]),
            "the JIT config only as a secure value"
        );
        assert!(!b["tags"].to_string().contains("JITJIT"));
        let org = cfg(&[("RUNNER_SCOPE", "org")]);
        let b = container_group_body(&org, &warm_create("octo-org"), at, &Secret::new("x"));
        assert_eq!(
            b["tags"],
            json!({"managed-by": "aci-runners", "github-owner": "octo-org", "origin": "warm", "warm": "true",
                   "created-at": "2026-11-28T10:00:00Z"}),
            "org scope: the organization, no repository"
        );
        let t: BTreeMap<String, String> = tags(&org, &warm_create("octo-org"), at)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(is_warm(&t) && is_managed(&t));
        assert_eq!(target_name(&org.scope, &t).as_deref(), Some("octo-org"));
        assert_eq!(webhook_request("x", &t, &[]), None, "no job to requeue");
        assert!(
            made_for(&org.scope, &t, "octo-org/any-repo"),
            "any repository of the organization may release it"
        );
    }

    #[test]
    fn tags_read_back() {
        let c = cfg(&[("RUNNER_SCOPE", "org")]);
        let at = time::macros::datetime!(2026-11-28 10:00 UTC);
        let t: BTreeMap<String, String> = tags(&c, &create(), at).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert!(is_managed(&t));
        assert_eq!(created_at(&t, None), Some(at));
        let arm = time::macros::datetime!(2026-11-28 09:59 UTC);
        assert_eq!(created_at(&t, Some(arm)), Some(at), "our tag first");
        let mut untagged = t.clone();
        untagged.remove(tag::CREATED_AT);
        assert_eq!(created_at(&untagged, Some(arm)), Some(arm), "ARM's createdAt when the tag is gone");
        assert_eq!(target_name(&c.scope, &t).as_deref(), Some("octo-org"));
        assert_eq!(target_name(&Scope::Repo, &t).as_deref(), Some("octo-org/octo-repo"));
        assert_eq!(webhook_request("aci-runner-42", &t, &create().labels), Some(create()));
        let mut other = t.clone();
        other.insert(tag::MANAGED_BY.into(), "someone-else".into());
        assert!(!is_managed(&other));
    }

    #[test]
    fn a_group_acts_only_for_the_target_it_was_made_for() {
        let tagged = |repo: &str| -> BTreeMap<String, String> {
            let mut c = create();
            c.repository = repo.into();
            tags(&cfg(&[("RUNNER_SCOPE", "org")]), &c, OffsetDateTime::UNIX_EPOCH)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        };
        let a = tagged("octo-org/a");
        assert!(made_for(&Scope::Repo, &a, "octo-org/a"));
        assert!(
            made_for(&Scope::Repo, &a, "Octo-Org/A"),
            "GitHub's names compare case-insensitively"
        );
        assert!(!made_for(&Scope::Repo, &a, "octo-org/b"), "another repository of the same owner");
        assert!(!made_for(&Scope::Repo, &a, "evil/a"), "another owner's repository of the same name");
        let org = Scope::Org { runner_group_id: 1 };
        assert!(made_for(&org, &a, "octo-org/b"), "org scope: the organization's runner");
        assert!(!made_for(&org, &a, "other-org/a"), "org scope: another organization");
        let mut forged = a.clone();
        forged.insert(tag::REPOSITORY.into(), "octo-org/../../orgs/x".into());
        forged.remove(tag::OWNER);
        assert_eq!(target_name(&Scope::Repo, &forged), None, "a tag outside the grammar names nothing");
        assert!(!made_for(&Scope::Repo, &forged, "octo-org/../../orgs/x"));
    }
}
