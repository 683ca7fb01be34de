//! The Azure Resource Manager client for container groups, with a bearer token from the
//! configured credential. Hand-rolled: there is no 1.x ACI management crate.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use reqwest::{Client, Method, RequestBuilder};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::http::{self, CallError, RetryPolicy};

/// What we know of a container group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    /// ARM's `provisioningState` (`Succeeded`, `Failed`, `Creating`, …).
    pub provisioning_state: Option<String>,
    /// `instanceView.state` (`Running`, `Succeeded`, `Failed`, …); only a GET carries it.
    pub instance_state: Option<String>,
    /// `systemData.createdAt`: when ARM made it.
    pub created: Option<OffsetDateTime>,
    /// Its size: the containers' requested vCPUs and memory (GB), summed; `None` when ARM's
    /// answer names no container resources.
    pub cpu: Option<f64>,
    pub memory_gb: Option<f64>,
}

impl Group {
    /// Finished or broken: the container exited, or ARM gave up creating it.
    pub fn terminal(&self) -> bool {
        let is = |s: &Option<String>, v: &[&str]| s.as_deref().is_some_and(|s| v.iter().any(|x| s.eq_ignore_ascii_case(x)));
        is(&self.provisioning_state, &["Failed", "Canceled"]) || is(&self.instance_state, &["Succeeded", "Failed", "Terminated", "Stopped"])
    }

    /// A DELETE was accepted and ARM is removing it (a long-running operation).
    pub fn deleting(&self) -> bool {
        self.provisioning_state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Deleting"))
    }
}

#[derive(Deserialize)]
struct RawGroup {
    name: String,
    /// ARM writes `"tags": null` for a group without tags.
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    properties: Value,
    #[serde(default, rename = "systemData")]
    system_data: Value,
}

impl From<RawGroup> for Group {
    fn from(r: RawGroup) -> Group {
        let s = |v: &Value| v.as_str().map(str::to_string);
        let requests = |key: &str| -> Option<f64> {
            let values: Vec<f64> = r.properties["containers"]
                .as_array()?
                .iter()
                .filter_map(|c| c["properties"]["resources"]["requests"][key].as_f64())
                .collect();
            (!values.is_empty()).then(|| values.iter().sum())
        };
        Group {
            cpu: requests("cpu"),
            memory_gb: requests("memoryInGB"),
            provisioning_state: s(&r.properties["provisioningState"]),
            instance_state: s(&r.properties["instanceView"]["state"]),
            created: r.system_data["createdAt"].as_str().and_then(crate::clock::parse_rfc3339),
            name: r.name,
            tags: r.tags.unwrap_or_default(),
        }
    }
}

/// One page of a container group list.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<RawGroup>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

/// The ARM path of the container groups of a resource group; a group's is this plus `/{name}`.
pub fn groups_path(subscription: &str, resource_group: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerInstance/containerGroups")
}

#[derive(Clone)]
pub struct Arm {
    http: Client,
    credential: Arc<dyn TokenCredential>,
    base: String,
    scope: String,
    groups_path: String,
    api_version: String,
    retry: RetryPolicy,
}

impl Arm {
    pub fn new(
        http: Client,
        credential: Arc<dyn TokenCredential>,
        base: &str,
        subscription: &str,
        resource_group: &str,
        api_version: &str,
        retry: RetryPolicy,
    ) -> Self {
        let base = base.trim_end_matches('/').to_string();
        Arm {
            http,
            credential,
            scope: format!("{base}/.default"),
            groups_path: groups_path(subscription, resource_group),
            base,
            api_version: api_version.to_string(),
            retry,
        }
    }

    async fn authed(&self, op: &'static str, method: Method, url: &str) -> Result<RequestBuilder, CallError> {
        let token = self
            .credential
            .get_token(&[&self.scope], None)
            .await
            .map_err(|e| CallError::Other {
                op,
                message: format!(
                    "no Azure token from the managed identity or developer login: {}",
                    http::cause_of(&e)
                ),
                transient: true,
            })?;
        Ok(self.http.request(method, url).bearer_auth(token.token.secret()))
    }

    /// A group's URL. A name outside ARM's grammar (empty, a path, over 63 characters) is
    /// refused here, so no data can reach the collection or another resource group.
    fn group_url(&self, op: &'static str, name: &str) -> Result<String, CallError> {
        if let Err(why) = crate::config::check_arm_name(name) {
            return Err(CallError::Other {
                op,
                message: format!("container group name {why}"),
                transient: false,
            });
        }
        Ok(format!(
            "{}{}/{}?api-version={}",
            self.base,
            self.groups_path,
            http::segment(name),
            self.api_version
        ))
    }

    /// PUT the container group (create). ARM answers 201 (or 200) and creates it in the
    /// background; the sweeper removes any that end up failed.
    pub async fn put_group(&self, name: &str, body: &Value) -> Result<(), CallError> {
        const OP: &str = "arm.put-container-group";
        let url = self.group_url(OP, name)?;
        http::send(OP, &self.retry, &[], || async {
            Ok(self.authed(OP, Method::PUT, &url).await?.json(body))
        })
        .await?;
        Ok(())
    }

    /// GET one group with its instance view; `None` if it does not exist.
    pub async fn get_group(&self, name: &str) -> Result<Option<Group>, CallError> {
        const OP: &str = "arm.get-container-group";
        let url = self.group_url(OP, name)?;
        let resp = http::send(OP, &self.retry, &[404], || async { self.authed(OP, Method::GET, &url).await }).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let raw: RawGroup = http::read_json(OP, resp).await?;
        Ok(Some(raw.into()))
    }

    /// Every container group in the resource group (following `nextLink`). The list carries
    /// no instance view: call [`Arm::get_group`] for a group's state.
    pub async fn list_groups(&self) -> Result<Vec<Group>, CallError> {
        const OP: &str = "arm.list-container-groups";
        let mut url = format!("{}{}?api-version={}", self.base, self.groups_path, self.api_version);
        let mut out = Vec::new();
        loop {
            let u = url.clone();
            let resp = http::send(OP, &self.retry, &[], || async { self.authed(OP, Method::GET, &u).await }).await?;
            let page: Page = http::read_json(OP, resp).await?;
            out.extend(page.value.into_iter().map(Group::from));
            match page.next_link.filter(|l| !l.is_empty()) {
                // The token goes only where AZURE_RESOURCE_MANAGER_URL points.
                Some(next) if next.starts_with(&format!("{}/", self.base)) => url = next,
                Some(next) => {
                    return Err(CallError::Other {
                        op: OP,
                        message: format!("nextLink {next} is outside AZURE_RESOURCE_MANAGER_URL"),
                        transient: false,
                    })
                }
                None => return Ok(out),
            }
        }
    }

    /// DELETE a group. 200/202 (accepted, deleting in the background) and 204/404 (already
    /// gone) all count as done.
    pub async fn delete_group(&self, name: &str) -> Result<(), CallError> {
        const OP: &str = "arm.delete-container-group";
        let url = self.group_url(OP, name)?;
        http::send(OP, &self.retry, &[404], || async { self.authed(OP, Method::DELETE, &url).await }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's answer body with this status (tests/data/README.md: Azure's REST spec examples).
    fn example(json: &str, status: &str) -> Value {
        let v: Value = serde_json::from_str(json).unwrap();
        v["responses"][status]["body"].clone()
    }

    #[test]
    fn azures_get_example_reads_its_state() {
        let body = example(include_str!("../../tests/data/ContainerGroupsGet_Succeeded.json"), "200");
        let g = Group::from(serde_json::from_value::<RawGroup>(body).unwrap());
        assert_eq!(g.name, "demo1");
        assert_eq!(g.provisioning_state.as_deref(), Some("Succeeded"));
        assert!(!g.terminal());
        assert_eq!(
            (g.cpu, g.memory_gb),
            (Some(1.0), Some(1.5)),
            "its size, from the container's requests"
        );
    }

    #[test]
    fn azures_list_example_reads_as_one_last_page() {
        let body = example(include_str!("../../tests/data/ContainerGroupsListByResourceGroup.json"), "200");
        let page: Page = serde_json::from_value(body).unwrap();
        assert!(page.next_link.is_none());
        let groups: Vec<Group> = page.value.into_iter().map(Group::from).collect();
        assert_eq!(groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["demo1"]);
        assert_eq!(
            (groups[0].cpu, groups[0].memory_gb),
            (Some(1.0), Some(1.5)),
            "the list carries the size too"
        );
    }

    #[test]
    fn azures_create_example_answers_read() {
        for status in ["200", "201"] {
            let body = example(include_str!("../../tests/data/ContainerGroupsCreateOrUpdate.json"), status);
            let g = Group::from(serde_json::from_value::<RawGroup>(body).unwrap());
            assert_eq!(g.provisioning_state.as_deref(), Some("Succeeded"), "{status}");
        }
    }

    #[test]
    fn a_list_entry_with_null_tags_and_system_data_reads() {
        let page: Page = serde_json::from_value(serde_json::json!({"value": [
            {"name": "a", "tags": null, "properties": {"provisioningState": "Deleting"},
             "systemData": {"createdBy": "x", "createdAt": "2026-11-28T10:00:00.1234567Z", "lastModifiedAt": "2026-11-28T10:01:00Z"}},
            {"name": "b", "properties": {"provisioningState": "Succeeded"}}
        ]}))
        .unwrap();
        let groups: Vec<Group> = page.value.into_iter().map(Group::from).collect();
        assert!(groups[0].tags.is_empty() && groups[0].deleting());
        assert_eq!(groups[0].created, Some(time::macros::datetime!(2026-11-28 10:00:00.1234567 UTC)));
        assert!(groups[1].tags.is_empty() && groups[1].created.is_none() && !groups[1].deleting());
        assert_eq!((groups[1].cpu, groups[1].memory_gb), (None, None), "no containers, no size");
    }

    #[test]
    fn terminal_states() {
        let g = |p: &str, i: Option<&str>| Group {
            name: "x".into(),
            tags: BTreeMap::new(),
            provisioning_state: Some(p.into()),
            instance_state: i.map(str::to_string),
            created: None,
            cpu: None,
            memory_gb: None,
        };
        assert!(g("Failed", None).terminal());
        assert!(g("Succeeded", Some("Succeeded")).terminal());
        assert!(g("Succeeded", Some("Failed")).terminal());
        assert!(!g("Succeeded", Some("Running")).terminal());
        assert!(!g("Creating", None).terminal());
        assert!(!g("Succeeded", Some("Pending")).terminal());
    }
}
