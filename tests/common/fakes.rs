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
/// The GitHub App of the App-mode tests: its client id, and its private key (tests/data), which
/// the fake Key Vault holds as the key `github-app-key` and the fake GitHub verifies JWTs with.
pub const APP_CLIENT_ID: &str = "Iv23liAciRunnersTest";
pub const APP_KEY_NAME: &str = "github-app-key";
pub const APP_KEY: &[u8] = include_bytes!("../data/github-app-test-key.der");
/// Installation tokens the fake hands out start with this (a leak test looks for it).
pub const APP_TOKEN_PREFIX: &str = "ghs_leaktest_";

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

fn next_seq() -> u64 {
    SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

#[derive(Debug, Default)]
pub struct Common {
    /// `op` of every call, in order (faulted ones included).
    pub calls: Vec<String>,
    /// Writes that took effect, as `(sequence, "op name")`, sequenced across all fakes.
    pub writes: Vec<(u64, String)>,
    pub unexpected: Vec<String>,
    pub faults: Vec<Fault>,
    /// Faults drawn at random (benchmarks); see [`Chaos`].
    pub chaos: Option<Chaos>,
    /// Calls [`Chaos`] faulted, by the answer's status.
    pub chaos_hits: BTreeMap<u16, usize>,
    /// The answer to give instead of the real one, once the call has taken effect.
    lost: Option<Resp>,
}

/// One answer a [`Chaos`] fault may give.
#[derive(Debug, Clone)]
pub struct ChaosAnswer {
    pub resp: Resp,
    /// Given after the call took effect, as a timeout that lost the answer would: the client
    /// cannot tell whether its write happened.
    pub after_effect: bool,
}

/// "Fail this many calls in 1,000 of these operations", deterministic from a seed: whether a
/// call fails, and how, is a hash of the seed, the operation, the path and how many calls of
/// that operation on that path came before it, so it does not depend on the order in which
/// concurrent calls arrive.
#[derive(Debug, Clone)]
pub struct Chaos {
    pub seed: u64,
    pub per_mille: u64,
    /// Operations it applies to (`op` as the fake names it).
    pub ops: Vec<&'static str>,
    pub answers: Vec<ChaosAnswer>,
    counts: HashMap<String, u64>,
}

impl Chaos {
    pub fn new(seed: u64, per_mille: u64, ops: &[&'static str], answers: Vec<ChaosAnswer>) -> Chaos {
        Chaos {
            seed,
            per_mille,
            ops: ops.to_vec(),
            answers,
            counts: HashMap::new(),
        }
    }

    fn draw(&mut self, op: &str, path: &str) -> Option<ChaosAnswer> {
        if !self.ops.contains(&op) || self.answers.is_empty() {
            return None;
        }
        let key = format!("{op} {path}");
        let n = self.counts.entry(key.clone()).or_insert(0);
        *n += 1;
        // FNV-1a over the key, then splitmix64 with the seed and the count.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut z = h ^ self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if z % 1000 >= self.per_mille {
            return None;
        }
        Some(self.answers[((z / 1000) % self.answers.len() as u64) as usize].clone())
    }
}

impl Common {
    fn explicit_fault(&mut self, op: &str, path: &str) -> Option<Resp> {
        let f = self
            .faults
            .iter_mut()
            .find(|f| f.op == op && f.times > 0 && f.only.is_none_or(|o| path.contains(o)))?;
        f.times -= 1;
        Some(f.resp.clone())
    }

    /// Explicit faults first, then [`Chaos`]: an answer to give now, or none (an answer lost
    /// after the effect is kept for [`Common::answer`]).
    fn fault(&mut self, op: &str, path: &str) -> Option<Resp> {
        if let Some(r) = self.explicit_fault(op, path) {
            return Some(r);
        }
        let a = self.chaos.as_mut()?.draw(op, path)?;
        *self.chaos_hits.entry(a.resp.status).or_default() += 1;
        if a.after_effect {
            self.lost = Some(a.resp);
            return None;
        }
        Some(a.resp)
    }

    /// The answer the caller gets: `resp`, unless a fault lost it.
    fn answer(&mut self, resp: Resp) -> Resp {
        self.lost.take().unwrap_or(resp)
    }

    fn wrote(&mut self, what: String) {
        self.writes.push((next_seq(), what));
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
    /// GitHub's secondary limit on `generate-jitconfig` (900 points a minute per endpoint, 5 a
    /// POST: 180), in real time: over it, a 403 "secondary rate limit" with `Retry-After: 60`.
    pub jit_per_minute: Option<usize>,
    /// When each JIT config within the last minute was made (for the limit).
    pub jit_times: std::collections::VecDeque<std::time::Instant>,
    /// JIT configs refused by the secondary limit.
    pub jit_refused: usize,
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
    /// Jobs waiting for a runner, oldest first (see [`GitHubState::queue_job`]).
    pub queue: Vec<QueuedJob>,
    /// Jobs handed to a runner: `(sequence, job id, runner name)`, sequenced with every fake's
    /// writes (compare with [`Common::seq_of`]).
    pub started: Vec<(u64, u64, String)>,
    /// The GitHub App's side of GitHub.
    pub app: FakeApp,
}

/// A job GitHub holds until a runner that can run it is idle and online.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub id: u64,
    /// `repos/<owner>/<name>`.
    pub scope: String,
    pub labels: Vec<String>,
}

/// A GitHub App as GitHub knows it: where it is installed, with which permissions, the
/// installation tokens it was given, and its webhook's deliveries.
#[derive(Debug)]
pub struct FakeApp {
    pub client_id: String,
    /// The App's public key (PKCS#1 DER): JWTs must verify with it.
    pub public_key: Vec<u8>,
    /// Owner (lowercase) → installation.
    pub installations: BTreeMap<String, FakeInstallation>,
    /// Token → what it is.
    pub tokens: HashMap<String, FakeToken>,
    /// How long a new token lives.
    pub token_lifetime: time::Duration,
    /// Each token made: (installation id, the permissions asked for).
    pub tokens_made: Vec<(u64, Value)>,
    /// JWTs GitHub took (signature, iss and time window all good).
    pub jwts_accepted: usize,
    /// Every JWT presented, as sent (leak tests look for them).
    pub jwts_seen: Vec<String>,
    /// What refused JWTs were refused for.
    pub jwts_refused: Vec<String>,
    pub events: Vec<String>,
    pub hook_url: Option<String>,
    /// The webhook's deliveries, oldest first.
    pub deliveries: Vec<FakeDelivery>,
    /// Delivery ids redelivery was asked for, in order.
    pub redelivered: Vec<u64>,
    next_token: u64,
}

#[derive(Debug, Clone)]
pub struct FakeInstallation {
    pub id: u64,
    pub login: String,
    pub permissions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FakeToken {
    pub installation: u64,
    pub expires_at: time::OffsetDateTime,
    pub permissions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FakeDelivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: String,
    pub redelivery: bool,
    pub status_code: u16,
    pub event: String,
    pub action: String,
}

impl FakeApp {
    fn new() -> FakeApp {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::RsaKeyPair::from_der(APP_KEY).unwrap();
        FakeApp {
            client_id: APP_CLIENT_ID.into(),
            public_key: pair.public_key().as_ref().to_vec(),
            installations: BTreeMap::new(),
            tokens: HashMap::new(),
            token_lifetime: time::Duration::hours(1),
            tokens_made: vec![],
            jwts_accepted: 0,
            jwts_seen: vec![],
            jwts_refused: vec![],
            events: vec!["workflow_job".into()],
            hook_url: Some("https://func-aci-runners.azurewebsites.net/api/github/webhook?code=fn-key-leaktest-0c9a".into()),
            deliveries: vec![],
            redelivered: vec![],
            next_token: 0,
        }
    }

    /// The installation of `owner`, if the App is installed there.
    fn installation_of(&self, owner: &str) -> Option<&FakeInstallation> {
        self.installations.get(&owner.to_ascii_lowercase())
    }

    /// Why GitHub would refuse this `Authorization` as an App JWT, if it would: a JWT that
    /// does not verify with the App's public key, another issuer, `iat` in the future, `exp`
    /// past or more than 10 minutes after `iat`.
    fn refuse_jwt(&mut self, authorization: Option<&str>) -> Option<Resp> {
        if let Some(jwt) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            self.jwts_seen.push(jwt.to_string());
        }
        let why = match check_jwt(authorization, &self.public_key, &self.client_id) {
            Ok(()) => {
                self.jwts_accepted += 1;
                return None;
            }
            Err(why) => why,
        };
        self.jwts_refused.push(why.clone());
        Some(Resp::json(
            401,
            json!({"message": why, "documentation_url": "https://docs.github.com/rest"}),
        ))
    }
}

/// GitHub's checks of an App JWT, with its messages.
fn check_jwt(authorization: Option<&str>, public_key: &[u8], client_id: &str) -> Result<(), String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let undecodable = || "A JSON web token could not be decoded".to_string();
    let jwt = authorization.and_then(|a| a.strip_prefix("Bearer ")).ok_or_else(undecodable)?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, p, sig] = parts.as_slice() else { return Err(undecodable()) };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| undecodable())?;
    if header["alg"] != "RS256" {
        return Err(undecodable());
    }
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, public_key);
    if key.verify(format!("{h}.{p}").as_bytes(), &sig).is_err() {
        return Err("A JSON web token could not be decoded (signature does not verify with the App's public key)".into());
    }
    if claims["iss"] != client_id {
        return Err(format!(
            "'Issuer' claim ('iss') must be the App's client id or App id, not {}",
            claims["iss"]
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("'Issued at' claim ('iat') and 'Expiration time' claim ('exp') must be numeric".into());
    };
    if iat > now + 60 {
        return Err("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued".into());
    }
    if exp <= now {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".into(),
        );
    }
    if exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(())
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
        jit_per_minute: None,
        jit_times: Default::default(),
        jit_refused: 0,
        c: Common::default(),
        runners: BTreeMap::new(),
        jobs: HashMap::new(),
        runs: HashMap::new(),
        listed_jobs: vec![],
        not_modified: 0,
        next_id: 1000,
        jit_configs: vec![],
        per_page_max: 100,
        queue: vec![],
        started: vec![],
        app: FakeApp::new(),
    }))
}

impl GitHubState {
    /// A job is queued in `scope` (`repos/o/r`) asking for `labels`. As GitHub does, it is
    /// handed at once to an idle online runner that can run it (the repository's, or its
    /// organization's; every label the job asks for among the runner's, case-insensitively),
    /// else it waits for one. Returns the runner that took it at once.
    pub fn queue_job(&mut self, scope: &str, id: u64, labels: &[&str]) -> Option<String> {
        self.jobs.insert(id, "queued".into());
        self.queue.push(QueuedJob {
            id,
            scope: scope.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        });
        self.dispatch();
        self.runner_of_job(id)
    }

    /// A runner's container started and the runner connected: it is online, and GitHub hands
    /// it the oldest queued job it can run.
    pub fn runner_online(&mut self, name: &str) {
        if let Some(r) = self.runners.values_mut().find(|r| r.name == name) {
            r.status = "online".into();
        }
        self.dispatch();
    }

    /// A job ends: `completed`, and its runner, ephemeral, leaves GitHub (as GitHub removes an
    /// ephemeral runner after its one job). Returns the runner that ran it.
    pub fn finish_job(&mut self, id: u64) -> Option<String> {
        self.jobs.insert(id, "completed".into());
        let runner = self.runner_of_job(id)?;
        self.runners.retain(|_, r| r.name != runner);
        Some(runner)
    }

    /// The runner a job was handed to.
    pub fn runner_of_job(&self, id: u64) -> Option<String> {
        self.started.iter().find(|(_, j, _)| *j == id).map(|(_, _, r)| r.clone())
    }

    /// When a job was handed to its runner (the sequence of [`GitHubState::started`]).
    pub fn started_seq(&self, id: u64) -> Option<u64> {
        self.started.iter().find(|(_, j, _)| *j == id).map(|(s, _, _)| *s)
    }

    /// Hands queued jobs, oldest first, to idle online runners that can run them.
    fn dispatch(&mut self) {
        let mut i = 0;
        while i < self.queue.len() {
            let job = self.queue[i].clone();
            let owner_scope = format!("orgs/{}", job.scope.split('/').nth(1).unwrap_or(""));
            let fits = |r: &FakeRunner| {
                r.status == "online"
                    && !r.busy
                    && (r.scope.eq_ignore_ascii_case(&job.scope) || r.scope.eq_ignore_ascii_case(&owner_scope))
                    && job.labels.iter().all(|l| r.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
            };
            match self.runners.values_mut().find(|r| fits(r)) {
                Some(r) => {
                    r.busy = true;
                    let name = r.name.clone();
                    self.jobs.insert(job.id, "in_progress".into());
                    self.started.push((next_seq(), job.id, name));
                    self.queue.remove(i);
                }
                None => i += 1,
            }
        }
    }

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
        s.c.answer(resp).with_header("x-github-request-id", "FAKE:0001:0002")
    })
}

/// The permission a call on `scope` needs of an installation token, and its level.
fn permission_for(op: &str, scope: &str) -> (&'static str, &'static str) {
    match op {
        "jit" | "delete-runner" | "list-runners" if scope.starts_with("orgs/") => ("organization_self_hosted_runners", "write"),
        "jit" | "delete-runner" | "list-runners" => ("administration", "write"),
        _ => ("actions", "read"),
    }
}

fn covers(granted: Option<&String>, needed: &str) -> bool {
    let rank = |l: &str| match l {
        "read" => 1,
        "write" => 2,
        _ => 0,
    };
    granted.is_some_and(|g| rank(g) >= rank(needed))
}

/// Is `authorization` the PAT, or an installation token, live, for `scope`'s owner, with the
/// permission `op` needs? The refusal GitHub gives otherwise.
fn refuse_caller(s: &GitHubState, r: &Req, scope: &str, op: &str) -> Option<Resp> {
    let bad = || {
        Resp::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        )
    };
    let auth = r.header("authorization").unwrap_or_default();
    if auth == format!("Bearer {}", s.pat) {
        return None;
    }
    let Some(token) = auth.strip_prefix("Bearer ").and_then(|t| s.app.tokens.get(t)) else {
        return Some(bad());
    };
    if token.expires_at <= time::OffsetDateTime::now_utc() {
        return Some(bad());
    }
    let owner = scope.split('/').nth(1).unwrap_or_default();
    let (permission, level) = permission_for(op, scope);
    let installed_here = s.app.installation_of(owner).is_some_and(|i| i.id == token.installation);
    if !installed_here || !covers(token.permissions.get(permission), level) {
        return Some(Resp::json(
            403,
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest"}),
        ));
    }
    None
}

/// The App's own endpoints, which take its JWT: installation lookups, token creation, the App,
/// its webhook's configuration and deliveries.
fn app_route(s: &mut GitHubState, r: &Req) -> Option<Resp> {
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let op = match (r.method.as_str(), parts.as_slice()) {
        ("GET", ["repos", _, _, "installation"] | ["orgs", _, "installation"] | ["users", _, "installation"]) => "app-installation",
        ("POST", ["app", "installations", _, "access_tokens"]) => "app-token",
        ("GET", ["app"]) => "app",
        ("GET", ["app", "hook", "config"]) => "app-hook-config",
        ("GET", ["app", "hook", "deliveries"]) => "app-deliveries",
        ("POST", ["app", "hook", "deliveries", _, "attempts"]) => "app-redeliver",
        _ => return None,
    };
    s.c.calls.push(op.into());
    if let Some(refusal) = s.app.refuse_jwt(r.header("authorization")) {
        return Some(refusal);
    }
    if let Some(f) = s.c.fault(op, &r.path) {
        return Some(f);
    }
    let not_found = || {
        Resp::json(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        )
    };
    Some(match op {
        "app-installation" => {
            let owner = parts[1];
            match s.app.installation_of(owner) {
                Some(i) => {
                    let mut body: Value = serde_json::from_slice(include_bytes!("../data/get-repo-installation.200.json")).unwrap();
                    body["id"] = i.id.into();
                    body["account"]["login"] = i.login.clone().into();
                    body["client_id"] = s.app.client_id.clone().into();
                    body["permissions"] = json!(i.permissions);
                    body["events"] = json!(s.app.events);
                    Resp::json(200, body)
                }
                None => not_found(),
            }
        }
        "app-token" => {
            let id: u64 = parts[2].parse().unwrap_or(0);
            let Some(i) = s.app.installations.values().find(|i| i.id == id).cloned() else {
                return Some(not_found());
            };
            let asked = r.json()["permissions"].clone();
            let permissions: BTreeMap<String, String> = match asked.as_object() {
                Some(m) => m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect(),
                None => i.permissions.clone(),
            };
            if permissions.iter().any(|(p, l)| !covers(i.permissions.get(p), l)) {
                return Some(Resp::json(
                    422,
                    json!({"message": "The permissions requested are not granted to this installation.", "documentation_url": "https://docs.github.com/rest"}),
                ));
            }
            s.app.next_token += 1;
            let token = format!("{APP_TOKEN_PREFIX}{:04}_{}", s.app.next_token, "x".repeat(20));
            let expires_at = time::OffsetDateTime::now_utc() + s.app.token_lifetime;
            s.app.tokens.insert(
                token.clone(),
                FakeToken {
                    installation: id,
                    expires_at,
                    permissions: permissions.clone(),
                },
            );
            s.app.tokens_made.push((id, asked));
            let mut body: Value = serde_json::from_slice(include_bytes!("../data/installation-token.201.json")).unwrap();
            body["token"] = token.into();
            body["expires_at"] = aci_runners::clock::rfc3339(expires_at).into();
            body["permissions"] = json!(permissions);
            body["repository_selection"] = "all".into();
            body.as_object_mut().unwrap().remove("repositories");
            Resp::json(201, body)
        }
        "app" => Resp::json(
            200,
            json!({"id": 1, "slug": "aci-runners-test", "client_id": s.app.client_id, "name": "aci-runners test",
                   "permissions": {"administration": "write", "actions": "read", "metadata": "read", "organization_self_hosted_runners": "write"},
                   "events": s.app.events}),
        ),
        "app-hook-config" => Resp::json(
            200,
            json!({"url": s.app.hook_url, "content_type": "json", "secret": "********", "insecure_ssl": "0"}),
        ),
        "app-deliveries" => {
            // Newest first, 100 a page at most, the cursor being an index.
            let per_page = r.query_param("per_page").and_then(|p| p.parse().ok()).unwrap_or(30usize).min(100);
            let start: usize = r.query_param("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let all: Vec<&FakeDelivery> = s.app.deliveries.iter().rev().collect();
            let page: Vec<Value> = all
                .iter()
                .skip(start)
                .take(per_page)
                .map(|d| {
                    json!({"id": d.id, "guid": d.guid, "delivered_at": d.delivered_at, "redelivery": d.redelivery, "duration": 0.27,
                           "status": if (200..300).contains(&d.status_code) { "OK" } else { "Invalid HTTP Response: 503" },
                           "status_code": d.status_code, "event": d.event, "action": d.action, "installation_id": 1,
                           "repository_id": 1, "throttled_at": null})
                })
                .collect();
            let mut resp = Resp::json(200, json!(page));
            if start + per_page < all.len() {
                resp = resp.with_header(
                    "link",
                    &format!(
                        r#"<https://api.github.test/app/hook/deliveries?per_page={per_page}&cursor={}>; rel="next""#,
                        start + per_page
                    ),
                );
            }
            resp
        }
        "app-redeliver" => {
            let id: u64 = parts[3].parse().unwrap_or(0);
            let Some(d) = s.app.deliveries.iter().find(|d| d.id == id).cloned() else {
                return Some(not_found());
            };
            s.app.redelivered.push(id);
            s.c.wrote(format!("redeliver {id}"));
            // GitHub delivers it again at once; the test plays the delivery itself. The
            // attempt shows in the list as a redelivery of the same event.
            let next = s.app.deliveries.iter().map(|d| d.id).max().unwrap_or(0) + 1;
            s.app.deliveries.push(FakeDelivery {
                id: next,
                redelivery: true,
                status_code: 202,
                delivered_at: aci_runners::clock::rfc3339(time::OffsetDateTime::now_utc()),
                ..d
            });
            Resp::json(202, json!({}))
        }
        _ => unreachable!(),
    })
}

fn github_route(s: &mut GitHubState, r: &Req) -> Resp {
    if let Some(resp) = app_route(s, r) {
        return resp;
    }
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
    if let Some(refusal) = refuse_caller(s, r, &scope, op) {
        return refusal;
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
            if let Some(limit) = s.jit_per_minute {
                let now = std::time::Instant::now();
                while s
                    .jit_times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60))
                {
                    s.jit_times.pop_front();
                }
                if s.jit_times.len() >= limit {
                    s.jit_refused += 1;
                    return Resp::json(
                        403,
                        json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE:0001:0002.", "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
                    )
                    .with_header("retry-after", "60");
                }
                s.jit_times.push_back(now);
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
            let runner = s.runner_of_job(id);
            let runner_id = runner.as_ref().and_then(|n| s.runner_named(n)).map(|r| r.id);
            match s.jobs.get(&id) {
                Some(status) => Resp::json(
                    200,
                    json!({"id": id, "status": status, "runner_id": runner_id, "runner_name": runner, "labels": []}),
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
//
// ARM as it is: a container group PUT or DELETE is a long-running operation. A PUT answers 201
// (200 for a group that exists) with the group `Creating` (`Updating`), an `Azure-AsyncOperation`
// and a `Location` to poll; the group is `Succeeded` with its container `Running` (or `Failed`)
// later. A DELETE answers 202 with the group `Deleting`, which stays visible in GET and list
// until the operation ends; a DELETE of a group that is not there answers 204. A PUT on a group
// ARM is deleting is refused: 409 `ContainerGroupTransitioning`.
//
// Time in the fake is explicit and counted in ARM calls, never slept: every call the fake
// answers is one tick of its clock (`ArmState::now`), and an operation accepted at tick `t`
// ends at tick `t + create_takes` (`t + delete_takes`): the `n`th ARM call after it sees it
// done, whoever makes that call (a GET that polls, the next list, another function). A test
// moves time itself with `advance(n)` (as if `n` more calls were made) or `settle()` (every
// operation under way ends now). Seeded groups in a transitional state (`Creating`, `Pending`,
// `Updating`, `Deleting`) have their operation under way from the start.

/// Calls a PUT or a DELETE takes by default: the group is `Creating` or `Deleting` for the next
/// two ARM calls and done from the third. Long enough that the handler's own next call sees
/// the operation under way, short enough that a function that waits for it (polls, or fails
/// and is retried by the queue) sees it end well inside the queue's `maxDequeueCount`.
pub const OPERATION_TAKES: u64 = 3;

/// The location the fake's operations live in.
const LOCATION: &str = "westeurope";

/// What an operation under way does when it ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// `Creating`/`Updating` → `Succeeded` with the container `Running`, or `Failed`.
    Create { fail: bool },
    /// `Deleting` → gone (404 on GET, absent from lists).
    Delete,
}

/// The operation under way on a group.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its id: the last segment of its `Azure-AsyncOperation` URL.
    pub op: String,
    pub transition: Transition,
    /// The tick of the fake's clock at which it ends.
    pub done_at: u64,
}

#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub name: String,
    /// Empty = no tags: ARM writes `"tags": null`.
    pub tags: BTreeMap<String, String>,
    pub provisioning_state: String,
    pub instance_state: Option<String>,
    /// What was PUT, secure values included (ARM stores them; it never returns them).
    pub body: Value,
    /// `systemData.createdAt`, as ARM writes it (`2026-11-28T10:00:00.1234567Z`).
    pub created_at: String,
    /// The operation under way, if any.
    pub pending: Option<Pending>,
}

/// A long-running operation, as `GET …/locations/{l}/operations/{id}` reports it.
#[derive(Debug, Clone)]
pub struct Operation {
    pub group: String,
    /// `create` or `delete`.
    pub kind: &'static str,
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    pub status: String,
    pub error: Option<Value>,
    pub start_time: String,
    pub end_time: Option<String>,
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
    /// The fake's clock: the ARM calls answered so far, plus what tests advanced it by.
    pub now: u64,
    /// Ticks from an accepted PUT to `Succeeded`/`Failed`; 0 = at once (a 200/201 with the end state).
    pub create_takes: u64,
    /// Ticks from an accepted DELETE to gone; 0 = at once (a 200).
    pub delete_takes: u64,
    /// Names whose next create ends `Failed` (one entry per create).
    pub failing_creates: Vec<String>,
    /// Every operation accepted, by id.
    pub operations: BTreeMap<String, Operation>,
    /// What ARM did on its own when an operation ended, `(sequence, "created|failed|gone <name>")`,
    /// sequenced with every fake's writes (compare with [`Common::seq_of`]).
    pub events: Vec<(u64, String)>,
    /// Names of PUTs refused because the group was being deleted.
    pub refused_puts: Vec<String>,
    /// The name of every group GET, in order (answered or not).
    pub reads: Vec<String>,
    /// `Retry-After` (seconds) on accepted operations. 0: a client that honours it waits no
    /// real time in a test.
    pub retry_after: u32,
    /// The clock moves only when the caller says (`advance`), not with each call: for a
    /// simulation whose time is its own (the soak), where the number of calls made says
    /// nothing about how long an operation took.
    pub timed_by_caller: bool,
    next_op: u64,
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
        now: 0,
        create_takes: OPERATION_TAKES,
        delete_takes: OPERATION_TAKES,
        failing_creates: vec![],
        operations: BTreeMap::new(),
        events: vec![],
        refused_puts: vec![],
        reads: vec![],
        retry_after: 0,
        timed_by_caller: false,
        next_op: 0,
    }))
}

/// Wall-clock time as ARM writes it: UTC, seven fractional digits.
fn arm_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}.{:07}Z",
        t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
            .unwrap(),
        t.nanosecond() / 100
    )
}

fn arm_now() -> String {
    arm_time(time::OffsetDateTime::now_utc())
}

impl ArmState {
    pub fn writes(&self) -> usize {
        self.c.count("put") + self.c.count("delete")
    }

    /// A group as if made earlier (by us when `managed`), in the given states. `created_at` is
    /// both its `created-at` tag (managed groups) and ARM's `systemData.createdAt`; `""` = no
    /// tag, and ARM made it now. A group seeded `Creating`, `Pending` or `Updating` has its
    /// create under way, one seeded `Deleting` its delete, from tick 0.
    pub fn seed(&mut self, name: &str, managed: bool, provisioning: &str, instance: Option<&str>, created_at: &str) -> &mut Self {
        let mut tags = BTreeMap::new();
        if managed {
            tags.insert("managed-by".into(), "aci-runners".into());
            tags.insert("github-repository".into(), "octo-org/octo-repo".into());
            if !created_at.is_empty() {
                tags.insert("created-at".into(), created_at.into());
            }
        } else {
            tags.insert("team".into(), "data".into());
        }
        let system_created = aci_runners::clock::parse_rfc3339(created_at).map(arm_time).unwrap_or_else(arm_now);
        self.groups.insert(
            name.into(),
            FakeGroup {
                name: name.into(),
                tags,
                provisioning_state: provisioning.into(),
                instance_state: instance.map(str::to_string),
                body: json!({}),
                created_at: system_created,
                pending: None,
            },
        );
        match provisioning {
            "Creating" | "Pending" | "Updating" => {
                self.begin(name, Transition::Create { fail: false });
            }
            "Deleting" => {
                self.begin(name, Transition::Delete);
            }
            _ => {}
        }
        self
    }

    /// Sets one tag of a seeded group.
    pub fn tag(&mut self, name: &str, key: &str, value: &str) -> &mut Self {
        self.group_mut(name).tags.insert(key.into(), value.into());
        self
    }

    /// Removes one tag of a seeded group (say `created-at`: the group then ages from
    /// `systemData.createdAt`).
    pub fn untag(&mut self, name: &str, key: &str) -> &mut Self {
        self.group_mut(name).tags.remove(key);
        self
    }

    /// A group with no tags at all: ARM lists it with `"tags": null`.
    pub fn untagged(&mut self, name: &str) -> &mut Self {
        self.group_mut(name).tags.clear();
        self
    }

    /// ARM's `systemData.createdAt` of a group (RFC 3339).
    pub fn made_by_arm_at(&mut self, name: &str, at: &str) -> &mut Self {
        let t = aci_runners::clock::parse_rfc3339(at).expect("an RFC 3339 time");
        self.group_mut(name).created_at = arm_time(t);
        self
    }

    /// Ticks an accepted PUT takes to end (0: at once).
    pub fn create_takes(&mut self, ticks: u64) -> &mut Self {
        self.create_takes = ticks;
        self
    }

    /// Ticks an accepted DELETE takes to end (0: at once).
    pub fn delete_takes(&mut self, ticks: u64) -> &mut Self {
        self.delete_takes = ticks;
        self
    }

    /// The next create of `name` ends `Failed` (an image that will not pull).
    pub fn fail_next_create(&mut self, name: &str) -> &mut Self {
        self.failing_creates.push(name.into());
        self
    }

    /// Moves the clock on by `ticks`, as if that many ARM calls were made: the operations due
    /// by then end.
    pub fn advance(&mut self, ticks: u64) -> &mut Self {
        self.now += ticks;
        self.finish_due();
        self
    }

    /// Every operation under way ends now.
    pub fn settle(&mut self) -> &mut Self {
        let last = self.groups.values().filter_map(|g| g.pending.as_ref().map(|p| p.done_at)).max();
        if let Some(t) = last {
            self.now = self.now.max(t);
            self.finish_due();
        }
        self
    }

    /// The container of a running group exits (`Succeeded` for exit code 0, `Failed` otherwise),
    /// as a runner's does after its job, or before it when the runner cannot start.
    pub fn container_exits(&mut self, name: &str, state: &str) -> &mut Self {
        let g = self.group_mut(name);
        assert!(
            g.pending.is_none() && g.provisioning_state == "Succeeded",
            "{name} is {} with an operation under way ({:?}): settle() first",
            g.provisioning_state,
            g.pending
        );
        g.instance_state = Some(state.into());
        self
    }

    /// ARM gives up on a group now: `provisioningState: Failed`, whatever was under way.
    pub fn fail(&mut self, name: &str) -> &mut Self {
        if let Some(p) = self.group_mut(name).pending.take() {
            self.end_operation(&p.op, "Failed", Some(image_error(name)));
        }
        self.group_mut(name).provisioning_state = "Failed".into();
        self
    }

    /// `(provisioningState, instanceView.state)` of a group.
    pub fn state(&self, name: &str) -> (&str, Option<&str>) {
        let g = self.groups.get(name).unwrap_or_else(|| panic!("no group {name}"));
        (g.provisioning_state.as_str(), g.instance_state.as_deref())
    }

    /// The sequence number of an event, e.g. `event_seq("gone aci-runner-1")` (the last one).
    pub fn event_seq(&self, what: &str) -> Option<u64> {
        self.events.iter().rev().find(|(_, e)| e == what).map(|(s, _)| *s)
    }

    fn group_mut(&mut self, name: &str) -> &mut FakeGroup {
        self.groups
            .get_mut(name)
            .unwrap_or_else(|| panic!("no group {name}: seed it first"))
    }

    /// Starts an operation on `name` (which exists) and returns its id.
    fn begin(&mut self, name: &str, transition: Transition) -> String {
        self.next_op += 1;
        let id = format!("{:08x}-0000-4000-8000-{:012x}", self.next_op, self.next_op);
        let (kind, takes) = match transition {
            Transition::Create { .. } => ("create", self.create_takes),
            Transition::Delete => ("delete", self.delete_takes),
        };
        self.operations.insert(
            id.clone(),
            Operation {
                group: name.into(),
                kind,
                status: "InProgress".into(),
                error: None,
                start_time: arm_now(),
                end_time: None,
            },
        );
        let done_at = self.now + takes;
        let g = self.group_mut(name);
        if let Some(old) = g.pending.take() {
            // A DELETE while the create is under way cancels the create.
            self.end_operation(&old.op, "Canceled", None);
        }
        self.group_mut(name).pending = Some(Pending {
            op: id.clone(),
            transition,
            done_at,
        });
        if takes == 0 {
            self.finish(name);
        }
        id
    }

    fn end_operation(&mut self, id: &str, status: &str, error: Option<Value>) {
        if let Some(op) = self.operations.get_mut(id) {
            op.status = status.into();
            op.error = error;
            op.end_time = Some(arm_now());
        }
    }

    /// Ends the operation under way on `name`.
    fn finish(&mut self, name: &str) {
        let Some(p) = self.groups.get_mut(name).and_then(|g| g.pending.take()) else {
            return;
        };
        let event = match p.transition {
            Transition::Create { fail: false } => {
                let g = self.group_mut(name);
                g.provisioning_state = "Succeeded".into();
                g.instance_state = Some("Running".into());
                self.end_operation(&p.op, "Succeeded", None);
                format!("created {name}")
            }
            Transition::Create { fail: true } => {
                self.group_mut(name).provisioning_state = "Failed".into();
                self.end_operation(&p.op, "Failed", Some(image_error(name)));
                format!("failed {name}")
            }
            Transition::Delete => {
                self.groups.remove(name);
                self.end_operation(&p.op, "Succeeded", None);
                format!("gone {name}")
            }
        };
        self.events.push((next_seq(), event));
    }

    /// Ends every operation due by now, earliest first.
    fn finish_due(&mut self) {
        let mut due: Vec<(u64, String)> = self
            .groups
            .values()
            .filter_map(|g| {
                g.pending
                    .as_ref()
                    .filter(|p| p.done_at <= self.now)
                    .map(|p| (p.done_at, g.name.clone()))
            })
            .collect();
        due.sort();
        for (_, name) in due {
            self.finish(&name);
        }
    }

    /// One ARM call: the clock moves on one tick first.
    fn tick(&mut self) {
        if !self.timed_by_caller {
            self.now += 1;
        }
        self.finish_due();
    }

    /// `Azure-AsyncOperation`, `Location` and `Retry-After` of an operation under way.
    fn async_headers(&self, resp: Resp, op: &str) -> Resp {
        let base = format!("https://management.azure.test{}/{LOCATION}", operations_prefix());
        resp.with_header("azure-asyncoperation", &format!("{base}/operations/{op}?api-version={API_VERSION}"))
            .with_header("location", &format!("{base}/operationResults/{op}?api-version={API_VERSION}"))
            .with_header("retry-after", &self.retry_after.to_string())
    }
}

/// Why a create ends `Failed`: ACI's error for an image that will not pull.
fn image_error(name: &str) -> Value {
    json!({"code": "InaccessibleImage",
           "message": format!("The image 'ghcr.io/actions/actions-runner:latest' in container group '{name}' is not accessible. Please check the image and registry credential.")})
}

fn groups_prefix() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups")
}

/// Where ARM's operation status resources live: `{this}/{location}/operations/{id}`.
fn operations_prefix() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerInstance/locations")
}

/// A group as ARM returns it: secure values stripped; the list form has no instance view;
/// no tags is `"tags": null`; `systemData` says when ARM made it.
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
    let tags = if g.tags.is_empty() { Value::Null } else { json!(g.tags) };
    json!({"id": format!("{}/{}", groups_prefix(), g.name), "name": g.name, "type": "Microsoft.ContainerInstance/containerGroups",
           "location": g.body.get("location").cloned().unwrap_or(json!(LOCATION)), "tags": tags, "properties": props,
           "systemData": {"createdBy": CLIENT_ID, "createdByType": "Application", "createdAt": g.created_at,
                          "lastModifiedBy": CLIENT_ID, "lastModifiedByType": "Application", "lastModifiedAt": g.created_at}})
}

pub fn arm_handler(state: Arm) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        s.tick();
        let resp = arm_route(&mut s, &r);
        s.c.answer(resp).with_header("x-ms-request-id", "fake-arm-request-0001")
    })
}

fn not_found(name: &str) -> Resp {
    Resp::json(
        404,
        json!({"error": {"code": "ResourceNotFound", "message": format!("The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group '{RESOURCE_GROUP}' was not found.")}}),
    )
}

fn arm_route(s: &mut ArmState, r: &Req) -> Resp {
    let groups = groups_prefix();
    let (op, name) = if let Some(rest) = r.path.strip_prefix(&groups) {
        let name = rest.trim_start_matches('/').to_string();
        match (r.method.as_str(), name.is_empty()) {
            ("GET", true) => ("list", name),
            ("PUT", false) => ("put", name),
            ("GET", false) => ("get", name),
            ("DELETE", false) => ("delete", name),
            _ => return s.c.unexpected(r),
        }
    } else if let Some(rest) = r.path.strip_prefix(&format!("{}/", operations_prefix())) {
        match (r.method.as_str(), rest.split('/').collect::<Vec<_>>().as_slice()) {
            ("GET", [LOCATION, "operations", id]) => ("operation", id.to_string()),
            ("GET", [LOCATION, "operationResults", id]) => ("operation-result", id.to_string()),
            _ => return s.c.unexpected(r),
        }
    } else {
        return s.c.unexpected(r);
    };
    s.c.calls.push(op.into());
    if op == "get" {
        s.reads.push(name.clone());
    }
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
                    "https://management.azure.test{groups}?api-version={API_VERSION}&$skipToken={}",
                    skip + s.page_size
                ));
            }
            Resp::json(200, body)
        }
        "put" => put(s, &name, r.json()),
        "get" => match s.groups.get(&name) {
            Some(g) => Resp::json(200, group_json(g, true)),
            None => not_found(&name),
        },
        "delete" => delete(s, &name),
        "operation" => match s.operations.get(&name) {
            Some(o) => {
                let mut body = json!({"id": format!("{}/{LOCATION}/operations/{name}", operations_prefix()), "name": name,
                                      "status": o.status, "startTime": o.start_time});
                if let Some(end) = &o.end_time {
                    body["endTime"] = json!(end);
                }
                if let Some(e) = &o.error {
                    body["error"] = e.clone();
                }
                Resp::json(200, body)
            }
            None => Resp::json(
                404,
                json!({"error": {"code": "OperationNotFound", "message": format!("The operation '{name}' could not be found.")}}),
            ),
        },
        "operation-result" => match s.operations.get(&name).cloned() {
            Some(o) if o.status == "InProgress" => s.async_headers(Resp::empty(202), &name),
            Some(o) if o.status == "Succeeded" && o.kind == "create" => match s.groups.get(&o.group) {
                Some(g) => Resp::json(200, group_json(g, true)),
                None => not_found(&o.group),
            },
            Some(o) if o.status == "Succeeded" => Resp::empty(204),
            Some(o) => Resp::json(
                if o.status == "Canceled" { 409 } else { 400 },
                json!({"error": o.error.unwrap_or(json!({"code": "OperationCanceled", "message": "The operation was canceled."}))}),
            ),
            None => Resp::json(
                404,
                json!({"error": {"code": "OperationNotFound", "message": format!("The operation '{name}' could not be found.")}}),
            ),
        },
        _ => unreachable!(),
    }
}

fn put(s: &mut ArmState, name: &str, b: Value) -> Resp {
    let ok = b["location"].is_string()
        && b["properties"]["containers"].as_array().is_some_and(|c| !c.is_empty())
        && b["properties"]["osType"].is_string();
    if !ok {
        return Resp::json(
            400,
            json!({"error": {"code": "InvalidRequestContent", "message": "The request content was invalid"}}),
        );
    }
    let existed = match s.groups.get(name) {
        Some(g) if g.provisioning_state == "Deleting" => {
            s.refused_puts.push(name.into());
            return Resp::json(
                409,
                json!({"error": {"code": "ContainerGroupTransitioning", "message": format!("The container group '{name}' is still transitioning, please retry later.")}}),
            );
        }
        Some(_) => true,
        None => false,
    };
    let tags: BTreeMap<String, String> = serde_json::from_value(b["tags"].clone()).unwrap_or_default();
    let created_at = s.groups.get(name).map(|g| g.created_at.clone()).unwrap_or_else(arm_now);
    let instance_state = match s.groups.get(name) {
        Some(g) => g.instance_state.clone(),
        None => Some("Pending".into()),
    };
    let pending = s.groups.get_mut(name).and_then(|g| g.pending.take());
    if let Some(p) = pending {
        s.end_operation(&p.op, "Canceled", None);
    }
    s.groups.insert(
        name.into(),
        FakeGroup {
            name: name.into(),
            tags,
            provisioning_state: if existed { "Updating" } else { "Creating" }.into(),
            instance_state,
            body: b.clone(),
            created_at,
            pending: None,
        },
    );
    let fail = match s.failing_creates.iter().position(|n| n == name) {
        Some(i) => {
            s.failing_creates.remove(i);
            true
        }
        None => false,
    };
    let op = s.begin(name, Transition::Create { fail });
    s.c.wrote(format!("put {name}"));
    s.puts.push((name.into(), b));
    if s.lost_put_answers > 0 {
        s.lost_put_answers -= 1;
        return Resp::json(
            504,
            json!({"error": {"code": "GatewayTimeout", "message": "The gateway did not receive a response within the specified time period."}}),
        );
    }
    let resp = Resp::json(if existed { 200 } else { 201 }, group_json(&s.groups[name], false));
    match s.groups[name].pending {
        Some(_) => s.async_headers(resp, &op),
        None => resp,
    }
}

fn delete(s: &mut ArmState, name: &str) -> Resp {
    let Some(g) = s.groups.get(name) else {
        return Resp::empty(204);
    };
    // A DELETE of a group being deleted answers as the first did: the same operation.
    if let Some(p) = g.pending.as_ref().filter(|p| p.transition == Transition::Delete) {
        let op = p.op.clone();
        return s.async_headers(Resp::json(202, group_json(g, false)), &op);
    }
    s.c.wrote(format!("delete {name}"));
    let before = group_json(g, false);
    s.group_mut(name).provisioning_state = "Deleting".into();
    let op = s.begin(name, Transition::Delete);
    match s.groups.get(name) {
        Some(g) => s.async_headers(Resp::json(202, group_json(g, false)), &op),
        // Done at once (delete_takes = 0): the group as it was.
        None => Resp::json(200, before),
    }
}

// ---------------------------------------------------------------- Key Vault

#[derive(Debug, Default)]
pub struct VaultState {
    pub c: Common,
    pub secrets: HashMap<String, String>,
    /// RSA keys (PKCS#1 DER) by name: used only through `sign`, as the real vault's are.
    pub keys: HashMap<String, Vec<u8>>,
}

pub type Vault = Arc<Mutex<VaultState>>;

pub fn vault(secrets: &[(&str, &str)]) -> Vault {
    Arc::new(Mutex::new(VaultState {
        c: Common::default(),
        secrets: secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        keys: [(APP_KEY_NAME.to_string(), APP_KEY.to_vec())].into_iter().collect(),
    }))
}

impl VaultState {
    /// Authorised reads of a secret (challenges not counted).
    pub fn reads(&self, name: &str) -> usize {
        self.c.count(&format!("read:{name}"))
    }

    /// Authorised `sign` calls with a key (challenges not counted).
    pub fn signs(&self, name: &str) -> usize {
        self.c.count(&format!("sign:{name}"))
    }
}

pub fn vault_handler(state: Vault) -> super::net::Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        if r.path.starts_with("/keys/") {
            return key_route(&mut s, &r);
        }
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
        if let Some(challenge) = vault_challenge(&mut s, &r) {
            return challenge;
        }
        let op = format!("read:{name}");
        s.c.calls.push(op.clone());
        if let Some(f) = s.c.fault("read", &r.path) {
            return f.with_header("x-ms-request-id", "fake-kv-request-0001");
        }
        let resp = match s.secrets.get(&name) {
            Some(v) => Resp::json(
                200,
                json!({"value": v, "id": format!("https://myvault.vault.azure.test/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79"),
                                              "attributes": {"enabled": true, "created": 1493938410, "updated": 1493938410}}),
            ),
            None => Resp::json(
                404,
                json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}}),
            ),
        };
        s.c.answer(resp).with_header("x-ms-request-id", "fake-kv-request-0001")
    })
}

/// The Key Vault 401 challenge, for a request without the managed identity's token.
fn vault_challenge(s: &mut VaultState, r: &Req) -> Option<Resp> {
    if r.header("authorization") == Some(&format!("Bearer {MI_TOKEN}")) {
        return None;
    }
    s.c.calls.push("challenge".into());
    Some(
        Resp::json(401, json!({"error": {"code": "Unauthorized", "message": "Request is missing a Bearer or PoP token."}}))
            .with_header("www-authenticate", r#"Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.test""#),
    )
}

/// `POST /keys/{name}/{version}/sign` (the version may be empty: the current one). Checks the
/// algorithm and the digest's length as Key Vault does, and signs the digest with the key.
fn key_route(s: &mut VaultState, r: &Req) -> Resp {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let name = match (r.method.as_str(), parts.as_slice()) {
        ("POST", ["keys", name, _version, "sign"]) => name.to_string(),
        _ => return s.c.unexpected(r),
    };
    if let Some(challenge) = vault_challenge(s, r) {
        return challenge;
    }
    s.c.calls.push(format!("sign:{name}"));
    let id = |resp: Resp| resp.with_header("x-ms-request-id", "fake-kv-request-0002");
    if let Some(f) = s.c.fault("sign", &r.path) {
        return id(f);
    }
    let bad = |m: &str| id(Resp::json(400, json!({"error": {"code": "BadParameter", "message": m}})));
    let b = r.json();
    if b["alg"] != "RS256" {
        return bad("Invalid algorithm: this test vault signs RS256 only");
    }
    let Some(digest) = b["value"].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok()) else {
        return bad("Property 'value' is required and must be base64url");
    };
    if digest.len() != 32 {
        return bad(&format!("Invalid digest length {} for RS256 (32 expected)", digest.len()));
    }
    let Some(der) = s.keys.get(&name) else {
        return id(Resp::json(
            404,
            json!({"error": {"code": "KeyNotFound", "message": format!("A key with (name/id) {name} was not found in this key vault.")}}),
        ));
    };
    let pair = aws_lc_rs::signature::RsaKeyPair::from_der(der).unwrap();
    let digest = aws_lc_rs::digest::Digest::import_less_safe(&digest, &aws_lc_rs::digest::SHA256).unwrap();
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign_digest(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &digest, &mut sig)
        .unwrap();
    let resp = Resp::json(
        200,
        json!({"kid": format!("https://myvault.vault.azure.test/keys/{name}/78deebed173b48e48f55abf87ed4cf71"), "value": URL_SAFE_NO_PAD.encode(sig)}),
    );
    id(s.c.answer(resp))
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
