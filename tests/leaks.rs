//! A known PAT, webhook secret, JIT config and managed-identity token never appear in logs,
//! answers, queue messages, tags or plain environment values, on success and failure paths.

mod common;

use common::fakes::{Fault, MI_TOKEN};
use common::net::Resp;
use common::*;
use serde_json::json;

#[tokio::test]
async fn no_secret_leaks_anywhere() {
    let b = Bench::start(&[]).await;
    // Success: create, then release.
    b.deliver("workflow_job", &queued_payload(1, &["self-hosted", "aci"])).await;
    // Failure paths that log errors: GitHub refusing, ARM refusing, a bad signature.
    b.github.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "jit",
        times: 1,
        resp: Resp::json(401, json!({"message": "Bad credentials"})),
    });
    b.deliver("workflow_job", &queued_payload(2, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "put",
        times: 1,
        resp: Resp::json(400, json!({"error": {"code": "InvalidRequestContent", "message": "bad"}})),
    });
    b.deliver("workflow_job", &queued_payload(3, &["self-hosted", "aci"])).await;
    b.deliver_signed("workflow_job", b"{}", "sha256=00", "application/json").await;
    b.deliver("workflow_job", &completed_payload(1, &["self-hosted", "aci"], Some("aci-runner-1")))
        .await;
    b.host().drain().await;
    b.host().wait_log("runner=aci-runner-3").await;

    let jit_configs: Vec<String> = b.github.lock().unwrap().jit_configs.iter().map(|(_, j)| j.clone()).collect();
    assert_eq!(jit_configs.len(), 2, "runners 1 and 3 got JIT configs");
    let mut secrets = vec![PAT.to_string(), WEBHOOK_SECRET.to_string(), MI_TOKEN.to_string()];
    secrets.extend(jit_configs.iter().cloned());

    let host = b.host();
    let logs = host.logs();
    let answers = host.answers.lock().unwrap().join("\n");
    let queue = host.queued("runner-requests").join("\n");
    {
        let arm = b.arm.lock().unwrap();
        let tags = serde_json::to_string(&arm.puts.iter().map(|(_, body)| body["tags"].clone()).collect::<Vec<_>>()).unwrap();
        let plain_env: Vec<String> = arm
            .puts
            .iter()
            .flat_map(|(_, body)| body["properties"]["containers"].as_array().unwrap().clone())
            .flat_map(|c| c["properties"]["environmentVariables"].as_array().unwrap().clone())
            .filter_map(|e| e.get("value").map(|v| v.to_string()))
            .collect();
        assert!(!arm.puts.is_empty());
        for s in &secrets {
            assert!(!logs.contains(s.as_str()), "secret in logs:\n{logs}");
            assert!(!answers.contains(s.as_str()), "secret in an answer to the host");
            assert!(!queue.contains(s.as_str()), "secret in a queue message");
            assert!(!tags.contains(s.as_str()), "secret in a tag");
            assert!(plain_env.iter().all(|v| !v.contains(s.as_str())), "secret in a plain env value");
        }
        // The JIT config travels only as a secureValue.
        let (_, body) = &arm.puts[0];
        assert_eq!(
            body["properties"]["containers"][0]["properties"]["environmentVariables"][0]["secureValue"],
            jit_configs[0]
        );
        // The function key in `code` is never logged either.
        assert!(!logs.contains("function-key-abc"), "{logs}");
    }
    b.stop().await;
}

#[tokio::test]
async fn no_secret_leaks_from_workflow_steps_the_sweeper_or_a_dry_run() {
    use common::oidc::{TestKey, AUDIENCE, KEY_A, KEY_B};
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = TestKey::new("key-a", KEY_A).token(ISSUER, "octo-org/octo-repo", 7, 1, now);
    let unknown_key = TestKey::new("key-b", KEY_B).token(ISSUER, "octo-org/octo-repo", 7, 1, now);

    let b = Bench::start(&[("OIDC_AUDIENCE", AUDIENCE)]).await;
    for token in [&good, &unknown_key] {
        let auth = format!("Bearer {token}");
        let body = serde_json::to_vec(&json!({"labels": ["run-7-1"], "key": "build"})).unwrap();
        b.host()
            .http(
                "runners",
                "POST",
                &[("Authorization", auth.as_str()), ("Content-Type", "application/json")],
                &body,
            )
            .await;
    }
    b.host().drain().await;
    // The sweeper, with GitHub refusing the PAT on its runner list.
    b.arm
        .lock()
        .unwrap()
        .seed("aci-runner-900", true, "Failed", None, "2026-11-28T10:00:00Z");
    b.github.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "list-runners",
        times: 1,
        resp: Resp::json(401, json!({"message": "Bad credentials"})),
    });
    b.host().timer("sweep", json!(null), false).await;
    let jit_configs: Vec<String> = b.github.lock().unwrap().jit_configs.iter().map(|(_, j)| j.clone()).collect();
    assert_eq!(jit_configs.len(), 1, "the workflow step's runner");
    let mut secrets = vec![
        PAT.to_string(),
        WEBHOOK_SECRET.to_string(),
        MI_TOKEN.to_string(),
        good.clone(),
        unknown_key.clone(),
    ];
    secrets.extend(jit_configs);
    let seen = format!("{}\n{}", b.host().logs(), b.host().answers.lock().unwrap().join("\n"));
    b.stop().await;

    // A dry run logs the container group body it would PUT.
    let d = Bench::start(&[("DRY_RUN", "true")]).await;
    d.deliver("workflow_job", &queued_payload(5, &["self-hosted", "aci"])).await;
    d.host().drain().await;
    d.host().wait_log("dry-run.arm.put-container-group").await;
    let seen = format!("{seen}\n{}\n{}", d.host().logs(), d.host().answers.lock().unwrap().join("\n"));
    d.stop().await;

    for s in &secrets {
        assert!(!seen.contains(s.as_str()), "a secret in the logs or answers:\n{seen}");
    }
    // Sanity: the paths ran.
    for expected in [
        "runners status=202",
        "runners status=401",
        "sweep groups=",
        "dry-run.arm.put-container-group",
    ] {
        assert!(seen.contains(expected), "{expected} missing:\n{seen}");
    }
}
