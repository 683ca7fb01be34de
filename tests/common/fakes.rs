//! Fakes of GitHub, ARM, Key Vault and the managed-identity endpoint: state plus handlers.
//! Each records its calls, can be told to fail the next N calls of an operation, and
//! remembers anything it did not expect; `assert_clean` fails a test on such a call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::net::{Req, Resp};

pub const MI_TOKEN: &str = "mi-token-leaktest-7f3a9c";
pub const IDENTITY_HEADER: &str = "identity-header-test";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const SUBSCRIPTION: &str = "00000000-1111-2222-3333-444444444444";
pub const RESOURCE_GROUP: &str = "rg-runners";
pub const API_VERSION: &str = "2025-09-01";
pub const JIT_SUFFIX: &str = "jit-leaktest-5b2e";

/// "Fail the next `times` calls of `op` with `resp`."
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only calls whose path contains this (a group or runner name), or all.
    pub only: Option<&'static str>,
    pub op: &'static str,
    pub times: u32,
    pub resp: Resp,
}

/// One clock for every fake, so a test can order calls across GitHub and ARM.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Default)]
pub struct Common {
    /// `op` of every call, in order (faulted ones included).
    pub calls: Vec<String>,
    /// Writes that took effect, as `(sequence, "op name")`, sequenced across all fakes.
    pub writes: Vec<(u64, String)>,
    pub unexpected: Vec<String>,
    pub faults: Vec<Fault>,
}

impl Common {
    fn fault(&mut self, op: &str, path: &str) -> Option<Resp> {
        let f = self
            .faults
            .iter_mut()
            .find(|f| f.op == op && f.times > 0 && f.only.is_none_or(|o| path.contains(o)))?;
        f.times -= 1;
        Some(f.resp.clone())
    }

    fn wrote(&mut self, what: String) {
        self.writes.push((SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst), what));
    }

    /// The sequence number of a write, e.g. `seq_of("delete aci-runner-1")`.
    pub fn seq_of(&self, what: &str) -> Option<u64> {
        self.writes.iter().find(|(_, w)| w == what).map(|(s, _)| *s)
    }

    pub fn count(&self, op: &str) -> usize {
        self.calls.iter().filter(|c| *c == op).count()
    }

    fn unexpected(&mut self, r: &Req) -> Resp {
        self.unexpected.push(format!("{} {}?{}", r.method, r.path, r.query));
        Resp::json(501, json!({"message": "unexpected call to the fake"}))
    }
}

// ---------------------------------------------------------------- GitHub

#[derive(Debug, Clone)]
pub struct FakeRunner {
    pub id: u64,
    pub name: String,
    /// `repos/<owner>/<name>` or `orgs/<org>`.
    pub scope: String,
    pub labels: Vec<String>,
    pub runner_group_id: u64,
    pub status: String,
    pub busy: bool,
}

#[derive(Debug)]
pub struct GitHubState {
    pub pat: String,
    pub c: Common,
    pub runners: BTreeMap<u64, FakeRunner>,
    /// job id → status, for `GET /repos/…/actions/jobs/{id}`.
    pub jobs: HashMap<u64, String>,
    /// run id → status, for `GET /repos/…/actions/runs/{id}`.
    pub runs: HashMap<u64, String>,
    pub next_id: u64,
    /// JIT configs handed out, by runner name.
    pub jit_configs: Vec<(String, String)>,
    pub per_page_max: usize,
    /// Jobs as the runs and jobs lists show them (reconciliation), in `repos/<o>/<r>` scopes.
    pub listed_jobs: Vec<ListedJob>,
    /// Conditional GETs answered 304.
    pub not_modified: usize,
}

/// A job of a workflow run, as `GET …/actions/runs` and `…/runs/{id}/jobs` list it.
#[derive(Debug, Clone)]
pub struct ListedJob {
    pub id: u64,
    pub run_id: u64,
    pub scope: String,
    pub status: String,
    pub labels: Vec<String>,
    pub created_at: String,
}

pub type GitHub = Arc<Mutex<GitHubState>>;

pub fn github(pat: &str) -> GitHub {
    Arc::new(Mutex::new(GitHubState {
        pat: pat.into(),
        c: Common::default(),
        runners: BTreeMap::new(),
        jobs: HashMap::new(),
        runs: HashMap::new(),
        listed_jobs: vec![],
        not_modified: 0,
        next_id: 1000,
        jit_configs: vec![],
        per_page_max: 100,
    }))
}

impl GitHubState {
    pub fn runner_named(&self, name: &str) -> Option<&FakeRunner> {
        self.runners.values().find(|r| r.name == name)
    }

    pub fn add_runner(&mut self, scope: &str, name: &str, status: &str, busy: bool) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.runners.insert(
            id,
            FakeRunner {
                id,
                name: name.into(),
                scope: scope.into(),
                labels: vec![],
                runner_group_id: 1,
                status: status.into(),
                busy,
            },
        );
        id
    }
}

fn runner_json(r: &FakeRunner) -> Value {
    json!({"id": r.id, "name": r.name, "os": "linux", "status": r.status, "busy": r.busy, "ephemeral": true,
           "labels": r.labels.iter().map(|l| json!({"name": l, "type": "custom"})).collect::<Vec<_>>()})
}

/// `(scope, rest)` for `/repos/o/r/actions/…` or `/orgs/o/actions/…`. GitHub reads owner and
/// repository names in a path case-insensitively, so scopes compare that way.
fn split_scope(path: &str) -> Option<(String, Vec<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["repos", o, r, "actions", rest @ ..] => Some((format!("repos/{o}/{r}"), rest.iter().map(|s| s.to_string()).collect())),
        ["orgs", o, "actions", rest @ ..] => Some((format!("orgs/{o}"), rest.iter().map(|s| s.to_string()).collect())),
        _ => None,
    }
}

pub fn github_handler(state: GitHub) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        let resp = github_route(&mut s, &r);
        resp.with_header("x-github-request-id", "FAKE:0001:0002")
    })
}

fn github_route(s: &mut GitHubState, r: &Req) -> Resp {
    if r.method == "GET" && r.path == "/rate_limit" {
        s.c.calls.push("rate-limit".into());
        if r.header("authorization") != Some(&format!("Bearer {}", s.pat)) {
            return Resp::json(
                401,
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            );
        }
        let body: Value = serde_json::from_slice(include_bytes!("../data/rate-limit.200.json")).unwrap();
        return Resp::json(200, body)
            .with_header("x-oauth-scopes", "repo, workflow")
            .with_header("x-ratelimit-remaining", "4999");
    }
    let Some((scope, rest)) = split_scope(&r.path) else {
        return s.c.unexpected(r);
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let op = match (r.method.as_str(), rest.as_slice()) {
        ("POST", ["runners", "generate-jitconfig"]) => "jit",
        ("GET", ["runners"]) => "list-runners",
        ("DELETE", ["runners", _]) => "delete-runner",
        ("GET", ["jobs", _]) if scope.starts_with("repos/") => "get-job",
        ("GET", ["runs", _]) if scope.starts_with("repos/") => "get-run",
        ("GET", ["runs"]) if scope.starts_with("repos/") => "list-runs",
        ("GET", ["runs", _, "jobs"]) if scope.starts_with("repos/") => "list-jobs",
        _ => return s.c.unexpected(r),
    };
    s.c.calls.push(op.into());
    if r.header("user-agent").is_none_or(|ua| !ua.starts_with("aci-runners/")) {
        return Resp::json(
            403,
            json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}),
        );
    }
    if r.header("authorization") != Some(&format!("Bearer {}", s.pat)) {
        return Resp::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    if let Some(f) = s.c.fault(op, &r.path) {
        return f;
    }
    match op {
        "jit" => {
            let b = r.json();
            let (Some(name), Some(group), Some(labels)) = (b["name"].as_str(), b["runner_group_id"].as_u64(), b["labels"].as_array())
            else {
                return Resp::json(422, json!({"message": "Invalid input: object is missing required key"}));
            };
            if labels.is_empty() {
                return Resp::json(422, json!({"message": "labels: minItems 1"}));
            }
            if s.runners.values().any(|x| x.name == name && x.scope.eq_ignore_ascii_case(&scope)) {
                return Resp::json(
                    409,
                    json!({"message": format!("Already exists - A runner with the name {name} already exists.")}),
                );
            }
            let id = s.add_runner(&scope, name, "offline", false);
            let runner = s.runners.get_mut(&id).unwrap();
            runner.labels = labels.iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
            runner.runner_group_id = group;
            let jit = format!("{name}-{JIT_SUFFIX}");
            s.jit_configs.push((name.to_string(), jit.clone()));
            s.c.wrote(format!("jit {name}"));
            Resp::json(201, json!({"runner": runner_json(&s.runners[&id]), "encoded_jit_config": jit}))
        }
        "list-runners" => {
            let name = r.query_param("name");
            let per_page = r
                .query_param("per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(30usize)
                .min(s.per_page_max);
            let page = r.query_param("page").and_then(|p| p.parse().ok()).unwrap_or(1usize);
            let all: Vec<&FakeRunner> = s
                .runners
                .values()
                .filter(|x| x.scope.eq_ignore_ascii_case(&scope) && name.as_ref().is_none_or(|n| *n == x.name))
                .collect();
            let chunk: Vec<Value> = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|x| runner_json(x))
                .collect();
            let mut resp = Resp::json(200, json!({"total_count": all.len(), "runners": chunk}));
            if page * per_page < all.len() {
                let mut q = form_urlencoded::Serializer::new(String::new());
                if let Some(n) = &name {
                    q.append_pair("name", n);
                }
                q.append_pair("per_page", &per_page.to_string())
                    .append_pair("page", &(page + 1).to_string());
                resp = resp.with_header(
                    "link",
                    &format!(r#"<https://api.github.test/{scope}/actions/runners?{}>; rel="next""#, q.finish()),
                );
            }
            resp
        }
        "delete-runner" => {
            let id: u64 = rest[1].parse().unwrap_or(0);
            match s.runners.get(&id) {
                Some(x) if !x.scope.eq_ignore_ascii_case(&scope) => Resp::json(404, json!({"message": "Not Found"})),
                Some(x) if x.busy => Resp::json(
                    422,
                    json!({"message": format!("Bad request - Runner \"{}\" is still running a job\"", x.name)}),
                ),
                Some(_) => {
                    let name = s.runners.remove(&id).unwrap().name;
                    s.c.wrote(format!("delete-runner {name}"));
                    Resp::empty(204)
                }
                None => Resp::json(404, json!({"message": "Not Found"})),
            }
        }
        "list-runs" => {
            // Runs are made of the listed jobs: completed when all their jobs are.
            let mut runs: BTreeMap<u64, bool> = BTreeMap::new();
            for j in s.listed_jobs.iter().filter(|j| j.scope == scope) {
                *runs.entry(j.run_id).or_insert(true) &= j.status == "completed";
            }
            let list: Vec<Value> = runs
                .iter()
                .rev()
                .map(|(id, done)| json!({"id": id, "status": if *done { "completed" } else { "in_progress" }}))
                .collect();
            conditional(s, r, json!({"total_count": list.len(), "workflow_runs": list}))
        }
        "list-jobs" => {
            let run: u64 = rest[1].parse().unwrap_or(0);
            let jobs: Vec<Value> = s
                .listed_jobs
                .iter()
                .filter(|j| j.scope == scope && j.run_id == run)
                .map(|j| {
                    json!({"id": j.id, "run_id": j.run_id, "run_attempt": 1, "status": j.status, "labels": j.labels,
                                "created_at": j.created_at, "runner_name": null})
                })
                .collect();
            conditional(s, r, json!({"total_count": jobs.len(), "jobs": jobs}))
        }
        "get-run" => {
            let id: u64 = rest[1].parse().unwrap_or(0);
            match s.runs.get(&id) {
                Some(status) => Resp::json(200, json!({"id": id, "status": status})),
                None => Resp::json(404, json!({"message": "Not Found"})),
            }
        }
        "get-job" => {
            let id: u64 = rest[1].parse().unwrap_or(0);
            match s.jobs.get(&id) {
                Some(status) => Resp::json(
                    200,
                    json!({"id": id, "status": status, "runner_id": null, "runner_name": null, "labels": []}),
                ),
                None => Resp::json(404, json!({"message": "Not Found"})),
            }
        }
        _ => unreachable!(),
    }
}

/// A 200 with an ETag of the body, or a 304 when the request's `If-None-Match` names it, as
/// GitHub answers conditional requests.
fn conditional(s: &mut GitHubState, r: &Req, body: Value) -> Resp {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    let etag = format!("W/\"{:016x}\"", h.finish());
    if r.header("if-none-match") == Some(etag.as_str()) {
        s.not_modified += 1;
        return Resp::empty(304).with_header("etag", &etag);
    }
    Resp::json(200, body).with_header("etag", &etag)
}

// ---------------------------------------------------------------- ARM

#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub provisioning_state: String,
    pub instance_state: Option<String>,
    /// What was PUT, secure values included (ARM stores them; it never returns them).
    pub body: Value,
}

#[derive(Debug)]
pub struct ArmState {
    pub c: Common,
    pub groups: BTreeMap<String, FakeGroup>,
    pub page_size: usize,
    /// Bodies of every accepted PUT, in order.
    pub puts: Vec<(String, Value)>,
    /// The next this many PUTs take effect, then answer 504: a gateway timeout that lost the
    /// answer to a request ARM took.
    pub lost_put_answers: u32,
    /// Groups the list does not show yet: made by another instance after that list was read.
    pub unlisted: Vec<String>,
}

pub type Arm = Arc<Mutex<ArmState>>;

pub fn arm() -> Arm {
    Arc::new(Mutex::new(ArmState {
        c: Common::default(),
        groups: BTreeMap::new(),
        page_size: 100,
        puts: vec![],
        lost_put_answers: 0,
        unlisted: vec![],
    }))
}

impl ArmState {
    pub fn writes(&self) -> usize {
        self.c.count("put") + self.c.count("delete")
    }

    /// A group as if made earlier (by us when `managed`), in the given states.
    /// Sets one tag of a seeded group.
    pub fn tag(&mut self, name: &str, key: &str, value: &str) -> &mut Self {
        self.groups
            .get_mut(name)
            .expect("seeded first")
            .tags
            .insert(key.into(), value.into());
        self
    }

    pub fn seed(&mut self, name: &str, managed: bool, provisioning: &str, instance: Option<&str>, created_at: &str) -> &mut Self {
        let mut tags = BTreeMap::new();
        if managed {
            tags.insert("managed-by".into(), "aci-runners".into());
            tags.insert("github-repository".into(), "octo-org/octo-repo".into());
            tags.insert("created-at".into(), created_at.into());
        } else {
            tags.insert("team".into(), "data".into());
        }
        self.groups.insert(
            name.into(),
            FakeGroup {
                name: name.into(),
                tags,
                provisioning_state: provisioning.into(),
                instance_state: instance.map(str::to_string),
                body: json!({}),
            },
        );
        self
    }
}

fn groups_prefix() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups")
}

/// A group as ARM returns it: secure values stripped; the list form has no instance view.
fn group_json(g: &FakeGroup, with_instance_view: bool) -> Value {
    let mut props = g
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({"osType": "Linux", "containers": []}));
    if let Some(cs) = props["containers"].as_array_mut() {
        for c in cs {
            if let Some(envs) = c["properties"]["environmentVariables"].as_array_mut() {
                for e in envs {
                    if e.get("secureValue").is_some() {
                        e["secureValue"] = Value::Null;
                    }
                }
            }
        }
    }
    props["provisioningState"] = json!(g.provisioning_state);
    if with_instance_view {
        if let Some(st) = &g.instance_state {
            props["instanceView"] = json!({"state": st, "events": []});
        }
    }
    json!({"id": format!("{}/{}", groups_prefix(), g.name), "name": g.name, "type": "Microsoft.ContainerInstance/containerGroups",
           "location": g.body.get("location").cloned().unwrap_or(json!("westeurope")), "tags": g.tags, "properties": props})
}

pub fn arm_handler(state: Arm) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        arm_route(&mut s, &r).with_header("x-ms-request-id", "fake-arm-request-0001")
    })
}

fn arm_route(s: &mut ArmState, r: &Req) -> Resp {
    let prefix = groups_prefix();
    let Some(rest) = r.path.strip_prefix(&prefix) else {
        return s.c.unexpected(r);
    };
    let name = rest.trim_start_matches('/').to_string();
    let op = match (r.method.as_str(), name.is_empty()) {
        ("GET", true) => "list",
        ("PUT", false) => "put",
        ("GET", false) => "get",
        ("DELETE", false) => "delete",
        _ => return s.c.unexpected(r),
    };
    s.c.calls.push(op.into());
    if r.query_param("api-version").as_deref() != Some(API_VERSION) {
        return Resp::json(
            400,
            json!({"error": {"code": "InvalidApiVersionParameter", "message": "bad api-version"}}),
        );
    }
    if r.header("authorization") != Some(&format!("Bearer {MI_TOKEN}")) {
        return Resp::json(
            401,
            json!({"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}}),
        );
    }
    if let Some(f) = s.c.fault(op, &r.path) {
        return f;
    }
    match op {
        "list" => {
            let skip: usize = r.query_param("$skipToken").and_then(|t| t.parse().ok()).unwrap_or(0);
            let all: Vec<&FakeGroup> = s.groups.values().filter(|g| !s.unlisted.contains(&g.name)).collect();
            let page: Vec<Value> = all.iter().skip(skip).take(s.page_size).map(|g| group_json(g, false)).collect();
            let mut body = json!({"value": page});
            if skip + s.page_size < all.len() {
                body["nextLink"] = json!(format!(
                    "https://management.azure.test{prefix}?api-version={API_VERSION}&$skipToken={}",
                    skip + s.page_size
                ));
            }
            Resp::json(200, body)
        }
        "put" => {
            let b = r.json();
            let ok = b["location"].is_string()
                && b["properties"]["containers"].as_array().is_some_and(|c| !c.is_empty())
                && b["properties"]["osType"].is_string();
            if !ok {
                return Resp::json(
                    400,
                    json!({"error": {"code": "InvalidRequestContent", "message": "The request content was invalid"}}),
                );
            }
            let tags: BTreeMap<String, String> = serde_json::from_value(b["tags"].clone()).unwrap_or_default();
            let existed = s.groups.contains_key(&name);
            let g = FakeGroup {
                name: name.clone(),
                tags,
                provisioning_state: "Succeeded".into(),
                instance_state: Some("Running".into()),
                body: b.clone(),
            };
            let out = group_json(&g, false);
            s.groups.insert(name.clone(), g);
            s.c.wrote(format!("put {name}"));
            s.puts.push((name, b));
            if s.lost_put_answers > 0 {
                s.lost_put_answers -= 1;
                return Resp::json(
                    504,
                    json!({"error": {"code": "GatewayTimeout", "message": "The gateway did not receive a response within the specified time period."}}),
                );
            }
            Resp::json(if existed { 200 } else { 201 }, out)
                .with_header("azure-asyncoperation", "https://management.azure.test/operations/fake")
        }
        "get" => match s.groups.get(&name) {
            Some(g) => Resp::json(200, group_json(g, true)),
            None => Resp::json(
                404,
                json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group '{RESOURCE_GROUP}' was not found.")}}),
            ),
        },
        "delete" => match s.groups.remove(&name) {
            Some(g) => {
                s.c.wrote(format!("delete {name}"));
                Resp::json(200, group_json(&g, false))
            }
            None => Resp::empty(204),
        },
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------- Key Vault

#[derive(Debug, Default)]
pub struct VaultState {
    pub c: Common,
    pub secrets: HashMap<String, String>,
}

pub type Vault = Arc<Mutex<VaultState>>;

pub fn vault(secrets: &[(&str, &str)]) -> Vault {
    Arc::new(Mutex::new(VaultState {
        c: Common::default(),
        secrets: secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }))
}

impl VaultState {
    /// Authorised reads of a secret (challenges not counted).
    pub fn reads(&self, name: &str) -> usize {
        self.c.count(&format!("read:{name}"))
    }
}

pub fn vault_handler(state: Vault) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        let Some(name) = r
            .path
            .strip_prefix("/secrets/")
            .map(|p| p.trim_end_matches('/').split('/').next().unwrap_or("").to_string())
        else {
            return s.c.unexpected(&r);
        };
        if r.method != "GET" {
            return s.c.unexpected(&r);
        }
        if r.header("authorization") != Some(&format!("Bearer {MI_TOKEN}")) {
            s.c.calls.push("challenge".into());
            return Resp::json(401, json!({"error": {"code": "Unauthorized", "message": "Request is missing a Bearer or PoP token."}}))
                .with_header("www-authenticate", r#"Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.test""#);
        }
        let op = format!("read:{name}");
        s.c.calls.push(op.clone());
        if let Some(f) = s.c.fault("read", &r.path) {
            return f.with_header("x-ms-request-id", "fake-kv-request-0001");
        }
        match s.secrets.get(&name) {
            Some(v) => Resp::json(200, json!({"value": v, "id": format!("https://myvault.vault.azure.test/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79"),
                                              "attributes": {"enabled": true, "created": 1493938410, "updated": 1493938410}})),
            None => Resp::json(404, json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}})),
        }
        .with_header("x-ms-request-id", "fake-kv-request-0001")
    })
}

// ---------------------------------------------------------------- managed identity

#[derive(Debug, Default)]
pub struct IdentityState {
    pub c: Common,
    /// `resource` of each token handed out.
    pub resources: Vec<String>,
    pub client_ids: Vec<String>,
}

pub type Identity = Arc<Mutex<IdentityState>>;

pub fn identity_handler(state: Identity) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        if r.method != "GET" || r.path != "/msi/token" {
            return s.c.unexpected(&r);
        }
        s.c.calls.push("token".into());
        if r.header("x-identity-header") != Some(IDENTITY_HEADER) || r.query_param("api-version").as_deref() != Some("2019-08-01") {
            return Resp::json(400, json!({"error": "bad identity request"}));
        }
        let resource = r.query_param("resource").unwrap_or_default();
        s.resources.push(resource.clone());
        s.client_ids.push(r.query_param("client_id").unwrap_or_default());
        let expires_on = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600)
            .to_string();
        Resp::json(
            200,
            json!({"access_token": MI_TOKEN, "expires_on": expires_on, "resource": resource, "token_type": "Bearer", "client_id": CLIENT_ID}),
        )
    })
}
