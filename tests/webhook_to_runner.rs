//! Webhook to runner, end to end: the staged handler under a fake Functions host, against
//! fakes of GitHub, ARM, Key Vault and the managed-identity endpoint. The real
//! `ManagedIdentityCredential` and `SecretClient` run inside the handler.

mod common;

use common::fakes::{Fault, CLIENT_ID, JIT_SUFFIX};
use common::net::Resp;
use common::*;
use serde_json::{json, Value};

const QUEUE: &str = "runner-requests";

#[tokio::test]
async fn queued_job_gets_one_container_group_registered_as_a_jit_runner() {
    let b = Bench::start(&[]).await;
    let r = b.deliver("workflow_job", &queued_payload(4242, &["self-hosted", "aci"])).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json(), json!({"accepted": "create", "runner": "aci-runner-4242"}));
    assert_eq!(b.host().queued(QUEUE).len(), 1);

    assert_eq!(b.host().drain().await, 1);
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(gh.c.calls, ["jit"], "one GitHub call on a first try");
        let runner = gh.runner_named("aci-runner-4242").expect("registered");
        assert_eq!(runner.scope, "repos/Codertocat/Hello-World");
        assert_eq!(runner.labels, ["self-hosted", "linux", "x64", "aci"]);
        assert_eq!(runner.runner_group_id, 1);
    }
    {
        let arm = b.arm.lock().unwrap();
        assert_eq!(arm.writes(), 1, "one ARM write on a first try");
        let (name, body) = &arm.puts[0];
        assert_eq!(name, "aci-runner-4242");
        let ctr = &body["properties"]["containers"][0]["properties"];
        assert_eq!(ctr["image"], "ghcr.io/actions/actions-runner:latest");
        assert_eq!(ctr["command"], json!(["/home/runner/run.sh"]));
        assert_eq!(
            ctr["environmentVariables"],
            json!([{"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "secureValue": format!("aci-runner-4242-{JIT_SUFFIX}")}])
        );
        assert_eq!(body["properties"]["restartPolicy"], "Never");
        assert_eq!(body["location"], "westeurope");
        let tags = &body["tags"];
        assert_eq!(tags["managed-by"], "aci-runners");
        assert_eq!(tags["github-repository"], "Codertocat/Hello-World");
        assert_eq!(tags["github-job-id"], "4242");
        assert_eq!(tags["github-run-id"], "2202229078");
        assert_eq!(tags["origin"], "webhook");
        assert!(tags["created-at"].as_str().unwrap().ends_with('Z'));
        assert!(body["properties"].get("subnetIds").is_none());
    }
    {
        let mi = b.identity.lock().unwrap();
        assert!(
            mi.client_ids.iter().all(|c| c == CLIENT_ID),
            "the user-assigned identity: {:?}",
            mi.client_ids
        );
        assert!(mi.resources.contains(&"https://vault.azure.test".to_string()), "{:?}", mi.resources);
        assert!(
            mi.resources.contains(&"https://management.azure.test".to_string()),
            "{:?}",
            mi.resources
        );
        let kv = b.vault.lock().unwrap();
        assert_eq!(kv.c.calls[0], "challenge", "the SDK answers Key Vault's 401 challenge first");
    }
    b.host()
        .wait_log("provision op=create runner=aci-runner-4242 attempt=1 result=created")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn the_same_delivery_three_times_makes_one_group() {
    let b = Bench::start(&[]).await;
    let body = queued_payload(77, &["self-hosted", "aci"]);
    for _ in 0..3 {
        assert_eq!(b.deliver("workflow_job", &body).await.status, 202);
    }
    assert_eq!(b.host().drain().await, 3);
    {
        let arm = b.arm.lock().unwrap();
        assert_eq!(arm.groups.len(), 1);
        assert_eq!(arm.c.count("put"), 1);
    }
    assert_eq!(b.github.lock().unwrap().c.count("jit"), 1);
    b.stop().await;
}

#[tokio::test]
async fn the_same_delivery_three_times_in_one_batch_makes_one_group() {
    let b = Bench::start(&[]).await;
    let body = queued_payload(78, &["self-hosted", "aci"]);
    for _ in 0..3 {
        assert_eq!(b.deliver("workflow_job", &body).await.status, 202);
    }
    assert_eq!(b.host().invoke_batch().await, [200, 200, 200], "{}", b.host().logs());
    {
        let arm = b.arm.lock().unwrap();
        assert_eq!(arm.groups.len(), 1);
        assert_eq!(arm.c.count("put"), 1);
    }
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(gh.c.count("jit"), 1, "one registration: {:?}", gh.c.calls);
        assert_eq!(gh.runners.len(), 1);
    }
    b.stop().await;
}

#[tokio::test]
async fn a_batch_of_new_jobs_does_not_pass_max_runners() {
    let b = Bench::start(&[("MAX_RUNNERS", "2")]).await;
    for job in [501, 502, 503, 504, 505] {
        b.github.lock().unwrap().jobs.insert(job, "queued".into());
        assert_eq!(
            b.deliver("workflow_job", &queued_payload(job, &["self-hosted", "aci"]))
                .await
                .status,
            202
        );
    }
    let statuses = b.host().invoke_batch().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}\n{}",
        b.host().logs()
    );
    assert_eq!(b.arm.lock().unwrap().groups.len(), 2, "the cap holds within a batch");
    assert_eq!(b.github.lock().unwrap().c.count("jit"), 2, "no runner registered over the cap");
    assert_eq!(b.host().queued(QUEUE).len(), 3, "the others wait in the queue");
    b.host().wait_log("MAX_RUNNERS reached").await;
    b.stop().await;
}

#[tokio::test]
async fn a_put_whose_answer_was_lost_keeps_its_group_and_registration() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().lost_put_answers = 100;
    b.deliver("workflow_job", &queued_payload(79, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 1, "done on the first invocation");
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-79"));
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(gh.c.calls, ["jit"], "the registration the group runs is kept");
        assert!(gh.runner_named("aci-runner-79").is_some());
    }
    assert_eq!(b.arm.lock().unwrap().c.count("get"), 1, "one GET settles what the PUT did");
    b.host()
        .wait_log("provision op=create runner=aci-runner-79 attempt=1 result=created")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn a_runner_another_instance_just_made_is_left_alone() {
    let b = Bench::start(&[]).await;
    {
        // Another instance registered the runner and PUT its group after our list was read.
        let mut arm = b.arm.lock().unwrap();
        arm.seed("aci-runner-81", true, "Creating", None, "2026-11-28T10:00:00Z");
        arm.unlisted.push("aci-runner-81".into());
        b.github
            .lock()
            .unwrap()
            .add_runner("repos/Codertocat/Hello-World", "aci-runner-81", "offline", false);
    }
    b.deliver("workflow_job", &queued_payload(81, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 1);
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(gh.c.calls, ["jit"], "409, and the group exists: nothing deleted");
        assert!(gh.runner_named("aci-runner-81").is_some());
    }
    assert_eq!(b.arm.lock().unwrap().c.count("put"), 0);
    b.host()
        .wait_log("provision op=create runner=aci-runner-81 attempt=1 result=exists")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn every_webhook_answer() {
    let mut b = Bench::new(&[("ALLOWED_OWNERS", "codertocat")]).await;
    b.host = Some(common::host::FakeHost::start(&b.settings).await);
    let served = queued_payload(1, &["self-hosted", "aci"]);
    let ping = include_bytes!("data/ping__payload.json");
    let in_progress = include_bytes!("data/workflow_job__in_progress.payload.json");
    type Case<'a> = (&'a str, Vec<u8>, Option<String>, u16, Value);
    let cases: Vec<Case> = vec![
        ("ping is acknowledged", ping.to_vec(), None, 200, json!({"ignored": "ping"})),
        (
            "another event is ignored",
            b"{}".to_vec(),
            Some("push".into()),
            200,
            json!({"ignored": "event push is not handled"}),
        ),
        (
            "in_progress is ignored",
            in_progress.to_vec(),
            None,
            200,
            json!({"ignored": "action in_progress is not handled"}),
        ),
        (
            "github-hosted labels are not served",
            include_bytes!("data/workflow_job__queued.payload.json").to_vec(),
            None,
            200,
            json!({"ignored": "labels [ubuntu-latest] are not served"}),
        ),
        (
            "queued job we serve is accepted",
            served.clone(),
            None,
            202,
            json!({"accepted": "create", "runner": "aci-runner-1"}),
        ),
        (
            "completed on a runner that is not ours",
            include_bytes!("data/workflow_job__completed.success.with-organization.payload.json").to_vec(),
            None,
            200,
            json!({"ignored": "job ran on runner GitHub Actions 5, which is not ours"}),
        ),
        (
            "completed on our runner releases it",
            completed_payload(5, &["self-hosted", "aci"], Some("aci-runner-9")),
            None,
            202,
            json!({"accepted": "release", "runner": "aci-runner-9"}),
        ),
        ("malformed body", b"{\"action\": \"queued\"".to_vec(), None, 400, Value::Null),
    ];
    for (rule, body, event, status, want) in cases {
        let event = event.unwrap_or_else(|| {
            if body.windows(4).any(|w| w == b"zen\"") {
                "ping".into()
            } else {
                "workflow_job".into()
            }
        });
        let r = b.deliver(&event, &body).await;
        assert_eq!(r.status, status, "{rule}: {}", r.body);
        if !want.is_null() {
            assert_eq!(r.json(), want, "{rule}");
        } else {
            assert!(
                r.json()["error"].as_str().unwrap().starts_with("malformed delivery"),
                "{rule}: {}",
                r.body
            );
        }
    }
    // Only the two accepted deliveries were enqueued.
    assert_eq!(b.host().queued(QUEUE).len(), 2);
    b.stop().await;
}

#[tokio::test]
async fn repository_not_allowed_is_ignored() {
    let b = Bench::start(&[("ALLOWED_REPOSITORIES", "octo-org/octo-repo")]).await;
    let r = b.deliver("workflow_job", &queued_payload(1, &["self-hosted", "aci"])).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"ignored": "repository Codertocat/Hello-World is not allowed"}))
    );
    assert!(b.host().queued(QUEUE).is_empty());
    b.stop().await;
}

#[tokio::test]
async fn bad_signatures_get_the_same_401() {
    let b = Bench::start(&[]).await;
    let body = queued_payload(1, &["self-hosted", "aci"]);
    let wrong = sign("not-the-secret", &body);
    let cases = [
        ("wrong secret", wrong.as_str()),
        ("missing", ""),
        ("garbage", "sha256=xyz"),
        ("sha1", "sha1=0123"),
    ];
    for (rule, sig) in cases {
        let r = b.deliver_signed("workflow_job", &body, sig, "application/json").await;
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"error": "signature missing or invalid"})),
            "{rule}"
        );
    }
    // A body altered after signing.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let r = b
        .deliver_signed("workflow_job", &tampered, &sign(WEBHOOK_SECRET, &body), "application/json")
        .await;
    assert_eq!(r.status, 401);
    assert!(b.host().queued(QUEUE).is_empty());
    b.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_accepts_the_old_and_the_new() {
    let b = Bench::new(&[]).await;
    b.vault
        .lock()
        .unwrap()
        .secrets
        .insert("github-webhook-secret".into(), format!("{WEBHOOK_SECRET}\n{OLD_WEBHOOK_SECRET}\n"));
    let mut b = b;
    b.host = Some(common::host::FakeHost::start(&b.settings).await);
    let body = queued_payload(3, &["self-hosted", "aci"]);
    for secret in [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET] {
        let r = b
            .deliver_signed("workflow_job", &body, &sign(secret, &body), "application/json")
            .await;
        assert_eq!(r.status, 202, "signed with one of the rotated secrets");
    }
    let r = b
        .deliver_signed("workflow_job", &body, &sign("retired-long-ago", &body), "application/json")
        .await;
    assert_eq!(r.status, 401);
    b.stop().await;
}

#[tokio::test]
async fn a_form_encoded_delivery_is_accepted() {
    let b = Bench::start(&[]).await;
    let json_body = queued_payload(8, &["self-hosted", "aci"]);
    let form = format!("payload={}", form_urlencoded::byte_serialize(&json_body).collect::<String>());
    let r = b
        .deliver_signed(
            "workflow_job",
            form.as_bytes(),
            &sign(WEBHOOK_SECRET, form.as_bytes()),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!((r.status, r.json()), (202, json!({"accepted": "create", "runner": "aci-runner-8"})));
    b.host().drain().await;
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-8"));
    b.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let b = Bench::start(&[]).await;
    let mut v: Value = serde_json::from_slice(&queued_payload(9, &["self-hosted", "aci"])).unwrap();
    v["padding"] = json!("x".repeat(1024 * 1024 + 1));
    let body = serde_json::to_vec(&v).unwrap();
    let r = b.deliver("workflow_job", &body).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // An envelope past the host-protocol bound as well.
    v["padding"] = json!("x".repeat(5 * 1024 * 1024));
    let r = b.deliver("workflow_job", &serde_json::to_vec(&v).unwrap()).await;
    assert_eq!(r.status, 413);
    assert!(b.host().queued(QUEUE).is_empty());
    b.stop().await;
}

#[tokio::test]
async fn an_unreadable_webhook_secret_answers_500() {
    let b = Bench::new(&[("GITHUB_WEBHOOK_SECRET_NAME", "no-such-secret")]).await;
    let mut b = b;
    b.host = Some(common::host::FakeHost::start(&b.settings).await);
    let r = b.deliver("workflow_job", &queued_payload(1, &["self-hosted", "aci"])).await;
    assert_eq!(r.status, 500);
    b.host()
        .wait_log("github-webhook.secret-unavailable setting=GITHUB_WEBHOOK_SECRET_NAME")
        .await;
    assert!(b.host().logs().contains("SecretNotFound"), "{}", b.host().logs());
    b.stop().await;
}

#[tokio::test]
async fn a_key_vault_outage_after_the_first_read_does_not_stop_deliveries() {
    // A zero TTL: every delivery finds the cached secret past its time.
    let b = Bench::start(&[("SECRET_CACHE_SECONDS", "0")]).await;
    assert_eq!(
        b.deliver("workflow_job", &queued_payload(601, &["self-hosted", "aci"]))
            .await
            .status,
        202
    );
    b.vault.lock().unwrap().c.faults.push(Fault {
        only: Some("github-webhook-secret"),
        op: "read",
        times: 1000,
        resp: Resp::json(
            503,
            json!({"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}}),
        ),
    });
    for job in [602, 603, 604] {
        let r = b.deliver("workflow_job", &queued_payload(job, &["self-hosted", "aci"])).await;
        assert_eq!(r.status, 202, "served with the last good secret: {}", r.body);
    }
    b.host().wait_log("keyvault.stale secret=github-webhook-secret").await;
    assert_eq!(b.host().queued(QUEUE).len(), 4);
    b.stop().await;
}

#[tokio::test]
async fn a_secret_added_in_key_vault_is_read_when_a_delivery_needs_it() {
    let b = Bench::start(&[("SECRET_CACHE_SECONDS", "0")]).await;
    let body = queued_payload(605, &["self-hosted", "aci"]);
    assert_eq!(b.deliver("workflow_job", &body).await.status, 202);
    // Rotation: the new secret is added in Key Vault, then GitHub signs with it.
    b.vault
        .lock()
        .unwrap()
        .secrets
        .insert("github-webhook-secret".into(), format!("{WEBHOOK_SECRET}\nwhsec-added-later-17\n"));
    let r = b
        .deliver_signed("workflow_job", &body, &sign("whsec-added-later-17", &body), "application/json")
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = b
        .deliver_signed("workflow_job", &body, &sign("never-in-key-vault", &body), "application/json")
        .await;
    assert_eq!(r.status, 401);
    b.stop().await;
}

#[tokio::test]
async fn a_burst_of_webhooks_reads_key_vault_once() {
    let b = Bench::start(&[]).await;
    let deliveries = (0..40u64).map(|i| {
        let body = queued_payload(1000 + i, &["self-hosted", "aci"]);
        let b = &b;
        async move { b.deliver("workflow_job", &body).await.status }
    });
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    {
        let kv = b.vault.lock().unwrap();
        assert_eq!(kv.reads("github-webhook-secret"), 1, "{:?}", kv.c.calls);
        assert_eq!(
            b.identity.lock().unwrap().resources.iter().filter(|r| r.contains("vault")).count(),
            1
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn completed_job_releases_its_runner_and_deletes_the_group() {
    let b = Bench::start(&[]).await;
    b.deliver("workflow_job", &queued_payload(50, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-50"));
    // The job ran on the runner made for job 51's delivery; release that one.
    b.arm
        .lock()
        .unwrap()
        .seed("aci-runner-51", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z");
    // Made for the repository the deliveries come from.
    b.arm
        .lock()
        .unwrap()
        .groups
        .get_mut("aci-runner-51")
        .unwrap()
        .tags
        .insert("github-repository".into(), "Codertocat/Hello-World".into());
    let r = b
        .deliver(
            "workflow_job",
            &completed_payload(50, &["self-hosted", "aci"], Some("aci-runner-51")),
        )
        .await;
    assert_eq!(r.status, 202);
    b.host().drain().await;
    {
        let arm = b.arm.lock().unwrap();
        assert!(!arm.groups.contains_key("aci-runner-51"), "the runner that ran the job is released");
        assert!(
            arm.groups.contains_key("aci-runner-50"),
            "the runner made for the job may serve another"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn cancelled_while_queued_releases_its_group_unless_busy_elsewhere() {
    let b = Bench::start(&[]).await;
    for job in [60, 61] {
        b.deliver("workflow_job", &queued_payload(job, &["self-hosted", "aci"])).await;
    }
    b.host().drain().await;
    // Runner 61 picked up some other job meanwhile.
    b.github
        .lock()
        .unwrap()
        .runners
        .values_mut()
        .find(|r| r.name == "aci-runner-61")
        .unwrap()
        .busy = true;
    for job in [60, 61] {
        assert_eq!(
            b.deliver("workflow_job", &completed_payload(job, &["self-hosted", "aci"], None))
                .await
                .status,
            202
        );
    }
    b.host().drain().await;
    {
        let arm = b.arm.lock().unwrap();
        assert!(
            !arm.groups.contains_key("aci-runner-60"),
            "idle group of a cancelled job is released"
        );
        assert!(arm.groups.contains_key("aci-runner-61"), "a group busy with another job is kept");
        let gh = b.github.lock().unwrap();
        assert!(gh.runner_named("aci-runner-60").is_none(), "deregistered");
        assert!(gh.runner_named("aci-runner-61").is_some());
    }
    b.host().wait_log("result=\"kept: runner is busy with another job\"").await;
    b.stop().await;
}

#[tokio::test]
async fn release_never_touches_an_unmanaged_group() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().seed("aci-runner-70", false, "Succeeded", Some("Running"), "");
    b.deliver(
        "workflow_job",
        &completed_payload(1, &["self-hosted", "aci"], Some("aci-runner-70")),
    )
    .await;
    b.host().drain().await;
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-70"));
    assert_eq!(b.arm.lock().unwrap().c.count("delete"), 0);
    b.stop().await;
}

#[tokio::test]
async fn arm_429_with_a_short_retry_after_is_retried_in_place() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "put",
        times: 1,
        resp: Resp::json(429, json!({"error": {"code": "TooManyRequests", "message": "throttled"}}))
            .with_header("x-ms-retry-after-ms", "2"),
    });
    b.deliver("workflow_job", &queued_payload(80, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 1, "no redelivery needed");
    {
        let arm = b.arm.lock().unwrap();
        assert_eq!(arm.c.count("put"), 2, "429 then success");
        assert!(arm.groups.contains_key("aci-runner-80"));
    }
    assert_eq!(b.github.lock().unwrap().c.count("jit"), 1);
    b.stop().await;
}

#[tokio::test]
async fn arm_429_with_a_long_retry_after_goes_back_to_the_queue() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "put",
        times: 1,
        resp: Resp::json(429, json!({"error": {"code": "TooManyRequests", "message": "throttled"}})).with_header("retry-after", "17"),
    });
    b.github.lock().unwrap().jobs.insert(81, "queued".into());
    b.deliver("workflow_job", &queued_payload(81, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 2, "the first invocation failed, the queue retried");
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(
            gh.c.calls,
            ["jit", "delete-runner", "get-job", "jit"],
            "registration removed, job re-checked, registered again"
        );
        assert_eq!(gh.runners.len(), 1);
    }
    {
        let arm = b.arm.lock().unwrap();
        assert_eq!(arm.c.count("put"), 2);
        assert!(arm.groups.contains_key("aci-runner-81"));
    }
    b.host().wait_log("provision.retry op=create runner=aci-runner-81 attempt=1").await;
    assert!(b.host().logs().contains("request id fake-arm-request-0001"), "{}", b.host().logs());
    b.stop().await;
}

#[tokio::test]
async fn github_5xx_on_the_jit_call_is_retried() {
    let b = Bench::start(&[]).await;
    b.github.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "jit",
        times: 2,
        resp: Resp::json(502, json!({"message": "Server Error"})),
    });
    b.deliver("workflow_job", &queued_payload(90, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 1);
    assert_eq!(
        b.github.lock().unwrap().c.count("jit"),
        3,
        "two 502s, then success (RETRY_MAX_ATTEMPTS=3)"
    );
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-90"));
    b.stop().await;
}

#[tokio::test]
async fn github_5xx_past_the_retries_fails_the_invocation_until_github_recovers() {
    let b = Bench::start(&[]).await;
    b.github.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "jit",
        times: 4,
        resp: Resp::json(503, json!({"message": "Service Unavailable"})),
    });
    b.github.lock().unwrap().jobs.insert(91, "queued".into());
    b.deliver("workflow_job", &queued_payload(91, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 2);
    assert_eq!(b.github.lock().unwrap().c.count("jit"), 5);
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-91"));
    b.host()
        .wait_log("github.generate-jitconfig: api.github.test: HTTP 503: Service Unavailable (request id FAKE:0001:0002)")
        .await;
    b.stop().await;
}

#[tokio::test]
async fn arm_quota_error_removes_the_registration_and_drops_the_message() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "put",
        times: 1,
        resp: Resp::json(409, json!({"error": {"code": "ContainerGroupQuotaReached", "message": "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in region 'westeurope'."}})),
    });
    b.deliver("workflow_job", &queued_payload(100, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 1, "permanent: not retried");
    assert!(b.host().poison.lock().unwrap().is_empty());
    {
        let gh = b.github.lock().unwrap();
        assert_eq!(gh.c.calls, ["jit", "delete-runner"]);
        assert!(gh.runners.is_empty(), "the registration nothing will run is removed");
    }
    assert!(b.arm.lock().unwrap().groups.is_empty());
    b.host().wait_log("ContainerGroupQuotaReached").await;
    assert!(
        b.host()
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with("provision.dropped op=create runner=aci-runner-100")),
        "{}",
        b.host().logs()
    );
    b.stop().await;
}

#[tokio::test]
async fn max_runners_holds_new_jobs_in_the_queue() {
    let b = Bench::start(&[("MAX_RUNNERS", "2")]).await;
    {
        let mut arm = b.arm.lock().unwrap();
        arm.seed("aci-runner-1", true, "Succeeded", Some("Running"), "2026-11-28T10:00:00Z");
        arm.seed("aci-runner-2", true, "Creating", None, "2026-11-28T10:00:00Z");
        arm.seed("aci-runner-3", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z");
        arm.seed("someone-elses", false, "Succeeded", Some("Running"), "");
    }
    b.github.lock().unwrap().jobs.insert(200, "queued".into());
    b.deliver("workflow_job", &queued_payload(200, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    assert_eq!(b.host().poison.lock().unwrap().len(), 1, "retried until poisoned while at the cap");
    assert_eq!(b.github.lock().unwrap().c.count("jit"), 0, "no runner registered over the cap");
    assert_eq!(b.arm.lock().unwrap().c.count("put"), 0);
    b.host().wait_log("MAX_RUNNERS reached (2 of 2 live)").await;

    // A finished group frees a slot.
    b.arm.lock().unwrap().groups.get_mut("aci-runner-2").unwrap().provisioning_state = "Failed".into();
    b.deliver("workflow_job", &queued_payload(200, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    assert!(b.arm.lock().unwrap().groups.contains_key("aci-runner-200"));
    b.stop().await;
}

#[tokio::test]
async fn a_retried_message_for_a_job_no_longer_queued_is_dropped() {
    let b = Bench::start(&[]).await;
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "list",
        times: 3,
        resp: Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "busy"}})),
    });
    b.github.lock().unwrap().jobs.insert(300, "in_progress".into());
    b.deliver("workflow_job", &queued_payload(300, &["self-hosted", "aci"])).await;
    assert_eq!(b.host().drain().await, 2);
    assert_eq!(b.github.lock().unwrap().c.calls, ["get-job"]);
    assert!(b.arm.lock().unwrap().groups.is_empty());
    b.host().wait_log("result=\"dropped: job is in_progress, no longer queued\"").await;
    b.stop().await;
}

#[tokio::test]
async fn dry_run_answers_and_enqueues_but_writes_nothing() {
    let b = Bench::start(&[("DRY_RUN", "true")]).await;
    let r = b.deliver("workflow_job", &queued_payload(400, &["self-hosted", "aci"])).await;
    assert_eq!(r.status, 202);
    b.arm
        .lock()
        .unwrap()
        .seed("aci-runner-401", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z");
    // Made for the repository the deliveries come from.
    b.arm
        .lock()
        .unwrap()
        .groups
        .get_mut("aci-runner-401")
        .unwrap()
        .tags
        .insert("github-repository".into(), "Codertocat/Hello-World".into());
    b.github
        .lock()
        .unwrap()
        .add_runner("repos/Codertocat/Hello-World", "aci-runner-401", "offline", false);
    b.deliver(
        "workflow_job",
        &completed_payload(401, &["self-hosted", "aci"], Some("aci-runner-401")),
    )
    .await;
    b.host().drain().await;
    assert_eq!(b.arm.lock().unwrap().writes(), 0);
    let gh_writes = {
        let gh = b.github.lock().unwrap();
        gh.c.count("jit") + gh.c.count("delete-runner")
    };
    assert_eq!(gh_writes, 0);
    b.host().wait_log("dry-run.arm.put-container-group name=aci-runner-400").await;
    b.host().wait_log("dry-run.arm.delete-container-group name=aci-runner-401").await;
    b.host().wait_log("dry-run.github.delete-runner runner=aci-runner-401").await;
    b.stop().await;
}

#[tokio::test]
async fn subnet_and_org_scope_shape_the_request() {
    let subnet = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci";
    let b = Bench::start(&[("RUNNER_SUBNET_ID", subnet), ("RUNNER_SCOPE", "org"), ("RUNNER_GROUP_ID", "3")]).await;
    b.deliver("workflow_job", &queued_payload(500, &["self-hosted", "aci"])).await;
    b.host().drain().await;
    {
        let gh = b.github.lock().unwrap();
        let r = gh.runner_named("aci-runner-500").unwrap();
        assert_eq!((r.scope.as_str(), r.runner_group_id), ("orgs/Codertocat", 3));
        let arm = b.arm.lock().unwrap();
        let body = &arm.puts[0].1;
        assert_eq!(body["properties"]["subnetIds"], json!([{"id": subnet}]));
        assert_eq!(body["tags"]["github-owner"], "Codertocat");
    }
    b.stop().await;
}
