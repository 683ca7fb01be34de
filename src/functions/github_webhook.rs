//! `github-webhook`: verify, parse, decide, enqueue. Answers in well under GitHub's 10 s,
//! whatever Azure is doing: the slow work happens in `provision`.

use serde_json::{json, Value};

use super::{App, QUEUE_OUTPUT};
use crate::azure::keyvault::{Freshness, FIRST_READ_WAIT};
use crate::github::webhook::{self, Delivery};
use crate::host::{self, InvokeResponse, Outcome};
use crate::log;
use crate::rules::jobs::{decide, Decision};
use crate::rules::request::Request;
use crate::rules::timeline;
use crate::secret::Secret;
use crate::target::valid_repository;

/// What became of a delivery. [`Answer::reply`] is the one place that maps it to HTTP.
#[derive(Debug)]
pub enum Answer {
    Accepted(Request),
    Ignored(String),
    Unsigned,
    Malformed(String),
    TooLarge,
    SecretUnavailable,
}

impl Answer {
    pub fn reply(&self) -> (u16, Value) {
        match self {
            Answer::Accepted(r) => (202, json!({"accepted": r.op(), "runner": r.runner()})),
            Answer::Ignored(why) => (200, json!({"ignored": why})),
            Answer::Unsigned => (401, json!({"error": "signature missing or invalid"})),
            Answer::Malformed(why) => (400, json!({"error": format!("malformed delivery: {why}")})),
            Answer::TooLarge => (413, json!({"error": format!("body larger than {} bytes", webhook::MAX_BODY_BYTES)})),
            Answer::SecretUnavailable => (500, json!({"error": "webhook secret unavailable; see the function's logs"})),
        }
    }
}

pub async fn run(app: &App, envelope: &[u8]) -> Outcome {
    let req = match host::http_request(envelope) {
        Ok(r) => r,
        Err(e) => return finish(Answer::Malformed(e.to_string()), None),
    };
    let delivery_id = req.header("x-github-delivery").unwrap_or("-").to_string();
    let answer = answer(app, &req).await;
    finish(answer, Some(&delivery_id))
}

async fn answer(app: &App, req: &host::HttpRequest<'_>) -> Answer {
    let body = req.body();
    if body.len() > webhook::MAX_BODY_BYTES {
        return Answer::TooLarge;
    }
    let name = &app.cfg.webhook_secret_name;
    let (secret, freshness) = match app.secrets.get_now(name).await {
        Ok(s) => s,
        Err(e) => {
            log::error(
                "github-webhook.secret-unavailable",
                &[("setting", &"GITHUB_WEBHOOK_SECRET_NAME"), ("error", &e)],
            );
            return Answer::SecretUnavailable;
        }
    };
    let signature = req.header("x-hub-signature-256");
    let signed_with = |s: &Secret| webhook::signature_valid(&webhook::split_secrets(s), body.as_bytes(), signature);
    let mut signed = signed_with(&secret);
    if !signed && freshness == Freshness::Stale {
        // Past its TTL, the cached value may lack a secret added in Key Vault since: read it now.
        if let Ok(Ok(secret)) = tokio::time::timeout(FIRST_READ_WAIT, app.secrets.get(name)).await {
            signed = signed_with(&secret);
        }
    }
    if !signed {
        return Answer::Unsigned;
    }
    match webhook::parse(req.header("x-github-event"), req.header("content-type"), body) {
        Err(e) => Answer::Malformed(e.to_string()),
        Ok(Delivery::Ping) => Answer::Ignored("ping".into()),
        Ok(Delivery::Other(event)) => Answer::Ignored(format!("event {event} is not handled")),
        // Names reach GitHub's and ARM's URLs: one that does not fit GitHub's grammar is refused.
        Ok(Delivery::WorkflowJob(ev)) if !valid_repository(&ev.repository) => {
            Answer::Malformed(format!("repository {:?} is not owner/name", ev.repository))
        }
        Ok(Delivery::WorkflowJob(ev)) => {
            if let Some(line) = timeline::job_line(&ev, &app.cfg, (app.clock)()) {
                log::info_text(line.event, &line.fields);
            }
            match decide(&ev, &app.cfg) {
                Decision::Enqueue(r) => Answer::Accepted(r),
                Decision::Ignore(why) => Answer::Ignored(why),
            }
        }
    }
}

fn finish(answer: Answer, delivery: Option<&str>) -> Outcome {
    let (status, body) = answer.reply();
    let delivery = delivery.unwrap_or("-");
    let mut response = InvokeResponse::http(status, &body);
    match &answer {
        Answer::Accepted(r) => {
            log::info(
                "github-webhook",
                &[
                    ("status", &status),
                    ("delivery", &delivery),
                    ("op", &r.op()),
                    ("runner", &r.runner()),
                ],
            );
            response = response.with_queue(QUEUE_OUTPUT, vec![r.to_message()]);
        }
        Answer::Ignored(why) => log::info("github-webhook", &[("status", &status), ("delivery", &delivery), ("ignored", why)]),
        Answer::Malformed(why) => log::error("github-webhook", &[("status", &status), ("delivery", &delivery), ("error", why)]),
        _ => log::error(
            "github-webhook",
            &[
                ("status", &status),
                ("delivery", &delivery),
                ("error", &body["error"].as_str().unwrap_or("")),
            ],
        ),
    }
    Outcome::Done(response)
}
