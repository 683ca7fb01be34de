//! The custom-handler protocol's edges, spoken to the staged handler directly: readiness,
//! bodies with and without Content-Length, and what answers a request the host never sends.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn readiness_bodies_and_stray_requests() {
    run_test(World::new(), async |ctx| {
        let port = ctx.host().port();
        let http = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

        // Readiness: GET / answers 200 with JSON.
        let r = http.get(url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // The same invocation sent in one piece with a Content-Length (load tools, curl) works
        // as the chunked one the host sends.
        let body = queued(77).body;
        let sig = sign(WEBHOOK_SECRET, &body);
        let headers = [
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "workflow_job"),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        let envelope = common::host::http_envelope("github-webhook", "github/webhook", "POST", &headers, &[], &body);
        let r = http.post(url("/github-webhook")).body(envelope.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["Outputs"]["res"]["statusCode"], 202, "{answer}");
        let (status, text) = ctx.host().post_envelope("github-webhook", envelope).await;
        let chunked: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((status, &chunked["Outputs"]), (200, &answer["Outputs"]));

        // Requests the host never sends get plain HTTP answers, not a crash.
        let r = http.post(url("/no-such-function")).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = http.get(url("/github-webhook")).send().await.unwrap();
        assert_eq!(r.status(), 405);
        let r = http.post(url("/")).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 405);
        // A malformed envelope is the caller's 400 inside a 200 to the host.
        let r = http.post(url("/github-webhook")).body("{\"Data\":").send().await.unwrap();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["Outputs"]["res"]["statusCode"], 400, "{answer}");
    })
    .await;
}
