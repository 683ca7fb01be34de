//! `runners`: a workflow step requests (`POST api/runners`) or releases
//! (`DELETE api/runners/{name}`) a runner with its GitHub OIDC token. Nothing is stored in the
//! repository, and the runner can only be registered to the repository the token was issued to.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{App, QUEUE_OUTPUT};
use crate::github::oidc::{Claims, TokenError};
use crate::host::{self, InvokeResponse, Outcome};
use crate::log;
use crate::rules::group::{is_managed, tag};
use crate::rules::jobs::workflow_labels;
use crate::rules::names::{is_ours, workflow_runner_name};
use crate::rules::request::{Create, Origin, Release, Request};
use crate::target::valid_repository;

/// The longest a release waits for ARM before answering 503.
pub const ARM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What became of a request. [`Answer::reply`] is the one place that maps it to HTTP.
#[derive(Debug)]
pub enum Answer {
    Requested(Create),
    Released(Release),
    NotFound,
    Unauthorized(TokenError),
    Forbidden(String),
    BadRequest(String),
    Disabled,
    Unavailable(String),
}

impl Answer {
    pub fn reply(&self) -> (u16, Value) {
        match self {
            Answer::Requested(c) => (202, json!({"runner_name": c.runner, "labels": c.labels})),
            Answer::Released(r) => (202, json!({"released": r.runner})),
            Answer::NotFound => (404, json!({"error": "no such runner"})),
            Answer::Unauthorized(e) => (401, json!({"error": format!("invalid token: {e}")})),
            Answer::Forbidden(why) => (403, json!({"error": why})),
            Answer::BadRequest(why) => (400, json!({"error": why})),
            Answer::Disabled => (
                503,
                json!({"error": "workflow-step runners are not enabled: OIDC_AUDIENCE is not set"}),
            ),
            Answer::Unavailable(why) => (503, json!({"error": why})),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    key: Option<String>,
}

pub async fn run(app: &App, envelope: &[u8]) -> Outcome {
    let answer = match host::http_request(envelope) {
        Ok(req) => answer(app, &req).await,
        Err(e) => Answer::BadRequest(e.to_string()),
    };
    let (status, body) = answer.reply();
    let mut response = InvokeResponse::http(status, &body);
    let enqueued = match &answer {
        Answer::Requested(c) => Some(Request::Create(c.clone())),
        Answer::Released(r) => Some(Request::Release(r.clone())),
        _ => None,
    };
    match enqueued {
        Some(request) => {
            log::info(
                "runners",
                &[
                    ("status", &status),
                    ("op", &request.op()),
                    ("runner", &request.runner()),
                    ("repository", &request.repository()),
                ],
            );
            response = response.with_queue(QUEUE_OUTPUT, vec![request.to_message()]);
        }
        None if matches!(answer, Answer::Unavailable(_)) => {
            log::error("runners", &[("status", &status), ("error", &body["error"].as_str().unwrap_or(""))])
        }
        None => log::info("runners", &[("status", &status), ("error", &body["error"].as_str().unwrap_or(""))]),
    }
    Outcome::Done(response)
}

async fn answer(app: &App, req: &host::HttpRequest<'_>) -> Answer {
    let Some(verifier) = &app.oidc else { return Answer::Disabled };
    let claims = match verifier.verify_header(req.header("authorization")).await {
        Ok(c) => c,
        Err(TokenError::IssuerUnavailable(e)) => {
            log::error("runners.issuer-unavailable", &[("setting", &"OIDC_ISSUER"), ("error", &e)]);
            return Answer::Unavailable("the OIDC issuer's keys could not be fetched; try again".into());
        }
        Err(e) => return Answer::Unauthorized(e),
    };
    if !valid_repository(&claims.repository) {
        return Answer::BadRequest(format!("the token's repository {:?} is not owner/name", claims.repository));
    }
    if !app.cfg.repository_allowed(&claims.repository) {
        return Answer::Forbidden(format!("repository {} is not allowed", claims.repository));
    }
    match req.method.to_ascii_uppercase().as_str() {
        "POST" => request(app, req, claims),
        "DELETE" => release(app, req, claims).await,
        other => Answer::BadRequest(format!("method {other} is not supported")),
    }
}

fn request(app: &App, req: &host::HttpRequest<'_>, claims: Claims) -> Answer {
    if req.body().len() > MAX_BODY_BYTES {
        return Answer::BadRequest(format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    let body: Body = if req.body().trim().is_empty() {
        Body::default()
    } else {
        match serde_json::from_str(req.body()) {
            Ok(b) => b,
            Err(e) => return Answer::BadRequest(format!("body must be {{\"labels\": [...], \"key\": \"...\"}}: {e}")),
        }
    };
    let key = body.key.unwrap_or_default();
    if key.len() > 256 {
        return Answer::BadRequest("key is longer than 256 bytes".into());
    }
    let labels = match workflow_labels(&body.labels, &app.cfg.runner_labels) {
        Ok(l) => l,
        Err(e) => return Answer::BadRequest(e),
    };
    Answer::Requested(Create {
        runner: workflow_runner_name(&app.cfg.name_prefix, claims.run_id, claims.run_attempt, &key),
        repository: claims.repository,
        origin: Origin::Workflow,
        job: None,
        run: claims.run_id,
        attempt: claims.run_attempt,
        labels,
        created_at: None,
    })
}

async fn release(app: &App, req: &host::HttpRequest<'_>, claims: Claims) -> Answer {
    let Some(name) = req.param("name").filter(|n| !n.is_empty()) else {
        return Answer::BadRequest("DELETE needs a runner name: api/runners/{name}".into());
    };
    if !is_ours(&app.cfg.name_prefix, name) {
        return Answer::NotFound;
    }
    // An HTTP function answers within seconds whatever ARM does; the caller may try again.
    let group = match tokio::time::timeout(ARM_WAIT, app.arm.get_group(name)).await {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => {
            log::error("runners.arm-unavailable", &[("error", &e)]);
            return Answer::Unavailable("could not read the runner's container group; try again".into());
        }
        Err(_) => {
            log::error(
                "runners.arm-unavailable",
                &[("error", &format!("no answer within {} s", ARM_WAIT.as_secs()))],
            );
            return Answer::Unavailable("could not read the runner's container group; try again".into());
        }
    };
    let Some(group) = group.filter(|g| is_managed(&g.tags)) else {
        return Answer::NotFound;
    };
    let owner_repo = group.tags.get(tag::REPOSITORY).map(String::as_str).unwrap_or("");
    if !owner_repo.eq_ignore_ascii_case(&claims.repository) {
        return Answer::Forbidden(format!("runner {name} was not created for {}", claims.repository));
    }
    Answer::Released(Release {
        runner: name.to_string(),
        repository: claims.repository,
        only_if_idle: false,
        job: None,
    })
}
