// What each fuzz target checks, included by the targets (fuzz/fuzz_targets/*.rs) and by
// tests/fuzz_seeds.rs, which runs every seed through the same code on stable in CI.

use aci_runners::config::{check_arm_name, Config};
use aci_runners::github::webhook::{self, Delivery};
use aci_runners::host;
use aci_runners::rules::jobs::{decide, Decision};
use aci_runners::rules::request::Request;
use aci_runners::secret::Secret;
use aci_runners::target::valid_repository;

/// The Functions host's invocation envelopes: whatever arrives on the handler's port is read
/// without panicking, and what is read can be asked for without panicking.
pub fn host_envelope(data: &[u8]) {
    if let Ok(req) = host::http_request(data) {
        let _ = (req.header("x-hub-signature-256"), req.header("X-GitHub-Event"), req.param("name"));
        let _ = req.body().len();
    }
    let _ = host::queue_item(data, "request");
    let _ = host::timer_info(data, "timer");
}

/// A webhook delivery's body (first byte even: JSON, odd: form) and signature header: parsed
/// without panicking, and whatever the rules make of a delivery with a valid repository is a
/// runner request that fits our own grammar and survives the queue.
pub fn webhook_delivery(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else { return };
    let _ = webhook::signature_valid(&[Secret::new("s")], rest, std::str::from_utf8(rest).ok());
    let Ok(body) = std::str::from_utf8(rest) else { return };
    let content_type = if kind & 1 == 0 { "application/json" } else { "application/x-www-form-urlencoded" };
    let Ok(Delivery::WorkflowJob(ev)) = webhook::parse(Some("workflow_job"), Some(content_type), body) else { return };
    if !valid_repository(&ev.repository) {
        return; // answered 400 by the function before any rule sees it
    }
    let cfg = Config::for_plan(&std::collections::HashMap::new()).unwrap();
    if let Decision::Enqueue(r) = decide(&ev, &cfg) {
        r.check(&cfg.name_prefix).expect("a decided request fits our grammar");
        let back: Request = serde_json::from_str(&r.to_message()).unwrap();
        assert_eq!(back, r);
    }
}

/// A message on the `runner-requests` queue, as anyone with rights on the storage account may
/// write it: read without panicking; one that passes the grammar check names only a valid ARM
/// name of ours and a GitHub repository.
pub fn queue_message(data: &[u8]) {
    let Ok(r) = serde_json::from_slice::<Request>(data) else { return };
    if r.check("aci-runner").is_ok() {
        assert!(check_arm_name(r.runner()).is_ok(), "{}", r.runner());
        assert!(valid_repository(r.repository()));
    }
}

/// A bearer token from anyone on the Internet (the `runners` function is anonymous at the
/// host): read without panicking, refused unless signed by the issuer's key. The verifier's
/// issuer is unreachable and its clock stands still, so after the first input no fetch is
/// made (the failure is remembered) and every input exercises the reading of a token alone.
pub fn oidc_token(data: &[u8]) {
    use std::sync::{Arc, OnceLock};
    static WORLD: OnceLock<(tokio::runtime::Runtime, aci_runners::github::oidc::Verifier)> = OnceLock::new();
    let (runtime, verifier) = WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let retry = aci_runners::http::RetryPolicy {
            max_attempts: 1,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(1),
        };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let v = aci_runners::github::oidc::Verifier::new(http, "http://127.0.0.1:1", "aci-runners", retry, Arc::new(move || now));
        (runtime, v)
    });
    let header = std::str::from_utf8(data).ok().map(|t| format!("Bearer {t}"));
    let answer = runtime.block_on(verifier.verify_header(header.as_deref()));
    assert!(answer.is_err(), "no token verifies without the issuer's key");
}
