//! The GitHub side: the REST client (JIT runner configs, runners, jobs; concrete, base URL
//! injected; registrations paced under GitHub's secondary limit by [`pace`]), with the PAT or
//! a GitHub App's installation tokens ([`app`]), webhook deliveries
//! ([`webhook`]) and Actions OIDC tokens ([`oidc`]).

pub mod app;
pub mod oidc;
pub mod pace;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde::Deserialize;

use crate::http::{self, CallError, RetryPolicy};
use crate::secret::Secret;
use crate::target::Target;

pub use app::Access;

/// Who the calls are made as: the PAT, or the GitHub App (an installation token per owner and
/// per [`Access`], made and cached by [`app::AppAuth`]).
#[derive(Clone)]
pub enum Credential {
    Pat(Secret),
    App(Arc<app::AppAuth>),
}

impl From<Secret> for Credential {
    fn from(pat: Secret) -> Self {
        Credential::Pat(pat)
    }
}

/// The API path of a target: `/repos/{owner}/{name}` or `/orgs/{org}`, each part
/// percent-encoded so no name can reach another path.
fn target_path(target: &Target<'_>) -> String {
    match target {
        Target::Repo(r) => repo_path(r),
        Target::Org(o) => format!("/orgs/{}", http::segment(o)),
    }
}

/// `/repos/{owner}/{name}` for `owner/name`.
fn repo_path(repository: &str) -> String {
    match repository.split_once('/') {
        Some((owner, name)) => format!("/repos/{}/{}", http::segment(owner), http::segment(name)),
        None => format!("/repos/{}", http::segment(repository)),
    }
}

/// A next page (`Link: rel="next"`) to follow: only one under `base` (`GITHUB_API_URL`), since
/// the PAT, a token or the App JWT goes with it.
fn same_api(op: &'static str, base: &str, next: String) -> Result<String, CallError> {
    if next.starts_with(&format!("{base}/")) {
        return Ok(next);
    }
    Err(CallError::Other {
        op,
        message: format!("next page {next} is outside GITHUB_API_URL"),
        transient: false,
    })
}

/// A request to GitHub's REST API with its media type, API version and bearer token (a PAT,
/// an installation token or the App's JWT).
fn request_to(http: &Client, method: Method, url: &str, bearer: &Secret) -> RequestBuilder {
    http.request(method, url)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .bearer_auth(bearer.expose())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub busy: bool,
}

/// A registered runner and its single-use configuration.
#[derive(Debug)]
pub struct JitConfig {
    pub runner_id: u64,
    pub config: Secret,
}

#[derive(Clone)]
pub struct GitHub {
    http: Client,
    base: String,
    retry: RetryPolicy,
    /// Conditional GETs: path → (ETag, body) of the last 200. A 304 answer to `If-None-Match`
    /// does not count against the rate limit.
    etags: Arc<Mutex<HashMap<String, (String, bytes::Bytes)>>>,
    /// Registrations of the last minute, against `jit_per_minute` (0: no pacing).
    jit_window: Arc<Mutex<pace::Window>>,
    jit_per_minute: usize,
}

/// GitHub's secondary limit on `generate-jitconfig`: 900 points a minute, 5 a POST.
pub const DEFAULT_JIT_PER_MINUTE: usize = 180;

/// The most answers kept for conditional GETs; past it the cache starts over.
const ETAG_CACHE_MAX: usize = 4096;

impl GitHub {
    pub fn new(http: Client, base: &str, retry: RetryPolicy) -> Self {
        GitHub {
            http,
            base: base.trim_end_matches('/').to_string(),
            retry,
            etags: Default::default(),
            jit_window: Default::default(),
            jit_per_minute: DEFAULT_JIT_PER_MINUTE,
        }
    }

    /// At most `n` registrations in any minute from this client, and a pause after GitHub
    /// refuses one (`GITHUB_JIT_PER_MINUTE`; 0: no pacing, a refusal is left to the queue).
    pub fn with_jit_per_minute(mut self, n: usize) -> Self {
        self.jit_per_minute = n;
        self
    }

    /// A GET that sends the last answer's ETag and, on 304, returns that answer again.
    async fn get_conditional(&self, op: &'static str, path: &str, cred: &Credential, on: Target<'_>) -> Result<bytes::Bytes, CallError> {
        let cached = self.etags.lock().unwrap_or_else(PoisonError::into_inner).get(path).cloned();
        let resp = self
            .send_as(op, cred, on, Access::Actions, &[304], |token| {
                let mut r = self.request(Method::GET, path, token);
                if let Some((etag, _)) = &cached {
                    r = r.header("If-None-Match", etag);
                }
                r
            })
            .await?;
        if resp.status().as_u16() == 304 {
            if let Some((_, body)) = cached {
                return Ok(body);
            }
        }
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.bytes().await.map_err(|e| CallError::Other {
            op,
            message: format!("unreadable answer: {}", http::cause_of(&e)),
            transient: true,
        })?;
        if let Some(etag) = etag {
            let mut cache = self.etags.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= ETAG_CACHE_MAX {
                cache.clear();
            }
            cache.insert(path.to_string(), (etag, body.clone()));
        }
        Ok(body)
    }

    /// The ids of a repository's workflow runs that are not completed, among its 100 most
    /// recent (a conditional request: unchanged, it costs no rate limit).
    pub async fn active_runs(&self, auth: &Credential, repository: &str) -> Result<Vec<u64>, CallError> {
        const OP: &str = "github.list-runs";
        let path = format!("{}/actions/runs?per_page=100", repo_path(repository));
        let body = self.get_conditional(OP, &path, auth, Target::Repo(repository)).await?;
        let list: RunList = parse(OP, &body)?;
        Ok(list
            .workflow_runs
            .into_iter()
            .filter(|r| r.status.as_deref() != Some("completed"))
            .map(|r| r.id)
            .collect())
    }

    /// The jobs of a run's latest attempt (conditional, as [`GitHub::active_runs`]).
    pub async fn run_jobs(&self, auth: &Credential, repository: &str, run_id: u64) -> Result<Vec<Job>, CallError> {
        const OP: &str = "github.list-jobs";
        let path = format!("{}/actions/runs/{run_id}/jobs?filter=latest&per_page=100", repo_path(repository));
        let body = self.get_conditional(OP, &path, auth, Target::Repo(repository)).await?;
        let list: JobList = parse(OP, &body)?;
        Ok(list.jobs)
    }

    /// Sends as `cred`: with the PAT as it is; with the App, with an installation token for
    /// `on`'s owner that has `access`. A token GitHub refuses (401: revoked, or expired early)
    /// is dropped and a new one made, once.
    async fn send_as(
        &self,
        op: &'static str,
        cred: &Credential,
        on: Target<'_>,
        access: Access,
        accept: &[u16],
        make: impl Fn(&Secret) -> RequestBuilder,
    ) -> Result<Response, CallError> {
        match cred {
            Credential::Pat(pat) => http::send(op, &self.retry, accept, || async { Ok(make(pat)) }).await,
            Credential::App(app) => {
                let token = app.token(on, access).await?;
                match http::send(op, &self.retry, accept, || async { Ok(make(&token)) }).await {
                    Err(e) if e.status() == Some(401) => {
                        app.forget_token(&token);
                        let token = app.token(on, access).await?;
                        http::send(op, &self.retry, accept, || async { Ok(make(&token)) }).await
                    }
                    other => other,
                }
            }
        }
    }

    fn request(&self, method: Method, path: &str, token: &Secret) -> RequestBuilder {
        self.request_url(method, &format!("{}{path}", self.base), token)
    }

    fn request_url(&self, method: Method, url: &str, token: &Secret) -> RequestBuilder {
        request_to(&self.http, method, url, token)
    }

    /// `POST …/actions/runners/generate-jitconfig`: registers the runner (offline until its
    /// container starts) and returns its one-job configuration.
    pub async fn generate_jitconfig(
        &self,
        auth: &Credential,
        target: Target<'_>,
        name: &str,
        labels: &[String],
        runner_group_id: u64,
    ) -> Result<JitConfig, CallError> {
        const OP: &str = "github.generate-jitconfig";
        let path = format!("{}/actions/runners/generate-jitconfig", target_path(&target));
        let body = serde_json::json!({"name": name, "runner_group_id": runner_group_id, "labels": labels, "work_folder": "_work"});
        let window = || self.jit_window.lock().unwrap_or_else(PoisonError::into_inner);
        let turn = if self.jit_per_minute > 0 {
            let at = window()
                .turn(Instant::now(), self.jit_per_minute, pace::WAIT_MAX)
                .map_err(|wait| CallError::HeldBack { op: OP, wait })?;
            tokio::time::sleep_until(at.into()).await;
            Some(at)
        } else {
            None
        };
        let resp = self
            .send_as(OP, auth, target, Access::Runners, &[], |t| {
                self.request(Method::POST, &path, t).json(&body)
            })
            .await;
        if let Some(at) = turn {
            let mut w = window();
            w.answered(at, Instant::now());
            if resp.as_ref().is_err_and(CallError::rate_limited) {
                w.refused(Instant::now());
            }
        }
        let resp = resp?;
        let a: JitAnswer = http::read_json(OP, resp).await?;
        Ok(JitConfig {
            runner_id: a.runner.id,
            config: Secret::new(a.encoded_jit_config),
        })
    }

    /// The runner with exactly this name, if registered.
    pub async fn runner_by_name(&self, auth: &Credential, target: Target<'_>, name: &str) -> Result<Option<Runner>, CallError> {
        const OP: &str = "github.find-runner";
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("name", name)
            .append_pair("per_page", "100")
            .finish();
        let path = format!("{}/actions/runners?{query}", target_path(&target));
        let resp = self
            .send_as(OP, auth, target, Access::Runners, &[], |t| self.request(Method::GET, &path, t))
            .await?;
        let list: RunnerList = http::read_json(OP, resp).await?;
        Ok(list.runners.into_iter().find(|r| r.name == name))
    }

    /// Every runner in the target, following `Link: rel="next"`.
    pub async fn list_runners(&self, auth: &Credential, target: Target<'_>) -> Result<Vec<Runner>, CallError> {
        const OP: &str = "github.list-runners";
        let mut url = format!("{}{}/actions/runners?per_page=100", self.base, target_path(&target));
        let mut out = Vec::new();
        loop {
            let u = url.clone();
            let resp = self
                .send_as(OP, auth, target, Access::Runners, &[], |t| self.request_url(Method::GET, &u, t))
                .await?;
            let next = next_link(resp.headers().get("link").and_then(|v| v.to_str().ok()));
            let list: RunnerList = http::read_json(OP, resp).await?;
            out.extend(list.runners);
            match next {
                Some(n) => url = same_api(OP, &self.base, n)?,
                None => return Ok(out),
            }
        }
    }

    /// Deregisters a runner. An absent runner counts as done.
    pub async fn delete_runner(&self, auth: &Credential, target: Target<'_>, runner_id: u64) -> Result<(), CallError> {
        let path = format!("{}/actions/runners/{runner_id}", target_path(&target));
        self.send_as("github.delete-runner", auth, target, Access::Runners, &[404], |t| {
            self.request(Method::DELETE, &path, t)
        })
        .await?;
        Ok(())
    }

    /// Checks the PAT and reads its rate limit (a call that does not count against it).
    pub async fn token_info(&self, pat: &Secret) -> Result<TokenInfo, CallError> {
        const OP: &str = "github.rate-limit";
        let resp = http::send(OP, &self.retry, &[], || async { Ok(self.request(Method::GET, "/rate_limit", pat)) }).await?;
        let scopes = resp
            .headers()
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let v: serde_json::Value = http::read_json(OP, resp).await?;
        let core = &v["resources"]["core"];
        Ok(TokenInfo {
            remaining: core["remaining"].as_u64().unwrap_or(0),
            limit: core["limit"].as_u64().unwrap_or(0),
            scopes,
        })
    }

    /// Can the PAT or App manage self-hosted runners here? (Listing needs the same rights as
    /// registering: repository Administration, or the organization's self-hosted runners.)
    pub async fn runner_rights(&self, auth: &Credential, target: Target<'_>) -> Result<(), CallError> {
        let path = format!("{}/actions/runners?per_page=1", target_path(&target));
        self.send_as("github.list-runners", auth, target, Access::Runners, &[], |t| {
            self.request(Method::GET, &path, t)
        })
        .await?;
        Ok(())
    }

    /// A job's `status` (`queued`, `in_progress`, `completed`, …), or `None` if it is gone.
    pub async fn job_status(&self, auth: &Credential, repository: &str, job_id: u64) -> Result<Option<String>, CallError> {
        Ok(self.job(auth, repository, job_id).await?.map(|j| j.status))
    }

    /// A job's status and the runner that took it, or `None` if it is gone.
    pub async fn job(&self, auth: &Credential, repository: &str, job_id: u64) -> Result<Option<JobState>, CallError> {
        const OP: &str = "github.get-job";
        let path = format!("{}/actions/jobs/{job_id}", repo_path(repository));
        let resp = self
            .send_as(OP, auth, Target::Repo(repository), Access::Actions, &[404], |t| {
                self.request(Method::GET, &path, t)
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let w: WithStatus = http::read_json(OP, resp).await?;
        Ok(Some(JobState {
            status: w.status.unwrap_or_default(),
            runner_name: w.runner_name.filter(|n| !n.is_empty()),
        }))
    }

    /// A workflow run's `status` (`queued`, `in_progress`, `completed`, …), or `None` if gone.
    pub async fn run_status(&self, auth: &Credential, repository: &str, run_id: u64) -> Result<Option<String>, CallError> {
        let path = format!("{}/actions/runs/{run_id}", repo_path(repository));
        self.status_of("github.get-run", &path, auth, repository).await
    }

    /// The `status` field of a job or run; `None` when GitHub answers 404.
    async fn status_of(&self, op: &'static str, path: &str, auth: &Credential, repository: &str) -> Result<Option<String>, CallError> {
        let resp = self
            .send_as(op, auth, Target::Repo(repository), Access::Actions, &[404], |t| {
                self.request(Method::GET, path, t)
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let w: WithStatus = http::read_json(op, resp).await?;
        Ok(Some(w.status.unwrap_or_default()))
    }
}

/// What `GET /rate_limit` says about the PAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub remaining: u64,
    pub limit: u64,
    /// `x-oauth-scopes` (classic PATs only; fine-grained tokens send none).
    pub scopes: Option<String>,
}

#[derive(Deserialize)]
struct JitAnswer {
    runner: Runner,
    encoded_jit_config: String,
}

/// A job as the jobs list gives it: what reconciling needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// RFC 3339, as GitHub writes it.
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Deserialize)]
struct JobList {
    #[serde(default)]
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct RunSummary {
    id: u64,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct RunList {
    #[serde(default)]
    workflow_runs: Vec<RunSummary>,
}

fn parse<T: serde::de::DeserializeOwned>(op: &'static str, body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body).map_err(|e| CallError::Other {
        op,
        message: format!("unreadable answer: {e}"),
        transient: true,
    })
}

#[derive(Deserialize)]
struct WithStatus {
    status: Option<String>,
    /// Jobs only: the runner that took it (null while queued).
    #[serde(default)]
    runner_name: Option<String>,
}

/// What `GET …/actions/jobs/{id}` says of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub status: String,
    /// The runner that took it; `None` while it is queued.
    pub runner_name: Option<String>,
}

#[derive(Deserialize)]
struct RunnerList {
    #[serde(default)]
    runners: Vec<Runner>,
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's own examples (tests/data/README.md): what the fakes answer is shaped after them.

    #[test]
    fn githubs_jit_config_answer_reads() {
        let a: JitAnswer = serde_json::from_str(include_str!("../../tests/data/generate-jitconfig.201.json")).unwrap();
        assert_eq!((a.runner.id, a.runner.name.as_str()), (23, "New runner"));
        assert!(a.encoded_jit_config.starts_with("abc123"));
    }

    #[test]
    fn githubs_runner_list_reads() {
        let l: RunnerList = serde_json::from_str(include_str!("../../tests/data/list-runners.200.json")).unwrap();
        let seen: Vec<(u64, &str, &str, bool)> = l
            .runners
            .iter()
            .map(|r| (r.id, r.name.as_str(), r.status.as_str(), r.busy))
            .collect();
        assert_eq!(seen, [(23, "linux_runner", "online", true), (24, "mac_runner", "offline", false)]);
    }

    #[test]
    fn githubs_job_reads_as_a_listed_job() {
        let j: Job = serde_json::from_str(include_str!("../../tests/data/get-job.200.json")).unwrap();
        assert_eq!((j.id, j.run_id, j.status.as_deref()), (399444496, 29679449, Some("completed")));
    }

    #[test]
    fn githubs_job_answer_gives_its_status() {
        let w: WithStatus = serde_json::from_str(include_str!("../../tests/data/get-job.200.json")).unwrap();
        assert_eq!(w.status.as_deref(), Some("completed"));
        assert_eq!(w.runner_name.as_deref(), Some("my runner"), "and the runner that took it");
    }

    #[test]
    fn link_header_next_is_found() {
        let h = r#"<https://api.github.com/repositories/1/actions/runners?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/actions/runners?per_page=100&page=3>; rel="last""#;
        assert_eq!(
            next_link(Some(h)).as_deref(),
            Some("https://api.github.com/repositories/1/actions/runners?per_page=100&page=2")
        );
        assert_eq!(next_link(Some(r#"<https://x/?page=1>; rel="prev""#)), None);
        assert_eq!(next_link(None), None);
    }
}
