//! Workflow-step runners: `runners` through the fake host with GitHub OIDC tokens from the
//! fake issuer, to a JIT config and an ARM PUT for the token's repository.

mod common;

use common::oidc::{TestKey, AUDIENCE, KEY_A, KEY_B};
use common::*;
use serde_json::{json, Value};

const REPO: &str = "octo-org/octo-repo";
const RUN: u64 = 2202229078;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn token(repo: &str) -> String {
    TestKey::new("key-a", KEY_A).token(ISSUER, repo, RUN, 1, now())
}

async fn post(ctx: &Ctx, token: Option<&str>, body: &Value) -> common::host::HttpResult {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json"), ("User-Agent", "curl/8.5.0")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = if body.is_null() {
        vec![]
    } else {
        serde_json::to_vec(body).unwrap()
    };
    ctx.host().http("runners", "POST", &headers, &body).await
}

async fn delete(ctx: &Ctx, token: &str, name: &str) -> common::host::HttpResult {
    let auth = format!("Bearer {token}");
    ctx.host()
        .http_with_params("runners", "DELETE", &[("Authorization", auth.as_str())], b"", &[("name", name)])
        .await
}

#[tokio::test]
async fn a_workflow_step_gets_a_runner_for_its_own_repository() {
    run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        let r = post(ctx, Some(&token(REPO)), &json!({"labels": ["run-2202229078-1"], "key": "build"}))
            .await
            .expect_status(202);
        let name = r.json()["runner_name"].as_str().unwrap().to_string();
        assert_eq!(name, aci_runners::rules::names::workflow_runner_name("aci-runner", RUN, 1, "build"));
        assert_eq!(
            r.json()["labels"],
            json!(["self-hosted", "linux", "x64", "aci", "run-2202229078-1"])
        );
        ctx.drain().await;
        {
            let gh = ctx.github();
            let runner = gh.runner_named(&name).expect("registered");
            assert_eq!(runner.scope, format!("repos/{REPO}"), "registered to the token's repository");
            assert_eq!(runner.labels, ["self-hosted", "linux", "x64", "aci", "run-2202229078-1"]);
            let arm = ctx.arm();
            let (put_name, body) = &arm.puts[0];
            assert_eq!(put_name, &name);
            assert_eq!(body["tags"]["origin"], "workflow");
            assert_eq!(body["tags"]["github-repository"], REPO);
            assert_eq!(body["tags"]["github-run-id"], RUN.to_string());
            assert!(body["tags"].get("github-job-id").is_none());
            assert_eq!(
                body["properties"]["containers"][0]["properties"]["image"],
                "ghcr.io/actions/actions-runner:latest"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_same_request_twice_gives_one_runner() {
    run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        let t = token(REPO);
        let first = post(ctx, Some(&t), &json!({"key": "k"})).await;
        let second = post(ctx, Some(&t), &json!({"key": "k"})).await;
        assert_eq!(first.json()["runner_name"], second.json()["runner_name"]);
        let other = post(ctx, Some(&t), &json!({"key": "other"})).await;
        assert_ne!(
            first.json()["runner_name"],
            other.json()["runner_name"],
            "another key, another runner"
        );
        ctx.drain().await;
        assert_eq!(ctx.arm().groups.len(), 2);
        assert_eq!(ctx.github().c.count("jit"), 2);
    })
    .await;
}

#[tokio::test]
async fn every_runners_answer() {
    let world = World::new()
        .setting("OIDC_AUDIENCE", AUDIENCE)
        .setting("ALLOWED_OWNERS", "octo-org");
    run_test(world, async |ctx| {
        let good = token(REPO);
        let forged = TestKey::new("key-b", KEY_B).sign(&common::oidc::header("key-a"), &common::oidc::claims(ISSUER, REPO, RUN, 1, now()));
        let expired = TestKey::new("key-a", KEY_A).token(ISSUER, REPO, RUN, 1, now() - 3600);
        let cases: Vec<(&str, Option<String>, Value, u16)> = vec![
            ("no token", None, Value::Null, 401),
            ("forged token", Some(forged), Value::Null, 401),
            ("expired token", Some(expired), Value::Null, 401),
            ("repository not allowed", Some(token("someone/else")), Value::Null, 403),
            (
                "a request cannot pick the image",
                Some(good.clone()),
                json!({"image": "evil:latest"}),
                400,
            ),
            ("a request cannot pick the size", Some(good.clone()), json!({"cpu": 64}), 400),
            ("bad label", Some(good.clone()), json!({"labels": ["a b"]}), 400),
            ("body not JSON", Some(good.clone()), json!("labels"), 400),
            ("empty body is fine", Some(good.clone()), Value::Null, 202),
        ];
        for (rule, t, body, status) in cases {
            let r = post(ctx, t.as_deref(), &body).await;
            assert_eq!(r.status, status, "{rule}: {}", r.body);
            assert!(r.json()["error"].is_string() || status == 202, "{rule}: {}", r.body);
        }
        // Only the accepted request was enqueued.
        ctx.expect_queued(1);
    })
    .await;
}

#[tokio::test]
async fn without_an_audience_the_function_is_off() {
    run_test(World::new(), async |ctx| {
        let r = post(ctx, Some(&token(REPO)), &Value::Null).await.expect_status(503);
        assert!(r.json()["error"].as_str().unwrap().contains("OIDC_AUDIENCE"));
    })
    .await;
}

#[tokio::test]
async fn release_works_only_for_the_repository_that_made_the_runner() {
    run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        let r = post(ctx, Some(&token(REPO)), &json!({"key": "x"})).await;
        let name = r.json()["runner_name"].as_str().unwrap().to_string();
        ctx.drain().await;
        delete(ctx, &token("octo-org/other-repo"), &name).await.expect_status(403);
        delete(ctx, &token(REPO), "aci-runner-1-1-deadbeef").await.expect_status(404);
        delete(ctx, &token(REPO), "build-box").await.expect_status(404);
        delete(ctx, &token(REPO), &name).await.expect_status(202);
        ctx.drain().await;
        // Released: ARM is deleting the group, then it is gone.
        {
            let mut arm = ctx.arm();
            arm.expect_deleting([name.as_str()]);
            arm.settle().expect_groups([]);
        }
        assert!(ctx.github().runner_named(&name).is_none(), "deregistered");
    })
    .await;
}

#[tokio::test]
async fn a_retried_request_for_a_finished_run_is_dropped() {
    let world = World::new()
        .setting("OIDC_AUDIENCE", AUDIENCE)
        .arm(|arm| {
            arm.c.faults.push(common::fakes::Fault {
                only: None,
                op: "list",
                times: 3,
                resp: common::net::Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "busy"}})),
            });
            arm
        })
        .github(|gh| gh.run(RUN, "completed"));
    run_test(world, async |ctx| {
        post(ctx, Some(&token(REPO)), &Value::Null).await;
        assert_eq!(ctx.drain().await, 2);
        ctx.arm().expect_groups([]);
        ctx.expect_log("result=\"dropped: run is completed\"").await;
    })
    .await;
}
