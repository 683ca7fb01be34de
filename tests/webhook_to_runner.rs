//! Webhook to runner, end to end: the staged handler under a fake Functions host, against
//! fakes of GitHub, ARM, Key Vault and the managed-identity endpoint. The real
//! `ManagedIdentityCredential` and `SecretClient` run inside the handler.

mod common;

use common::fakes::{Fault, CLIENT_ID, JIT_SUFFIX};
use common::net::Resp;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn queued_job_gets_one_container_group_registered_as_a_jit_runner() {
    run_test(World::new(), async |ctx| {
        ctx.deliver(queued(4242))
            .await
            .expect_status(202)
            .expect_json(json!({"accepted": "create", "runner": "aci-runner-4242"}));
        ctx.expect_queued(1);

        assert_eq!(ctx.drain().await, 1);
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, ["jit"], "one GitHub call on a first try");
            let runner = gh.runner_named("aci-runner-4242").expect("registered");
            assert_eq!(runner.scope, "repos/Codertocat/Hello-World");
            assert_eq!(runner.labels, ["self-hosted", "linux", "x64", "aci"]);
            assert_eq!(runner.runner_group_id, 1);
        }
        {
            let arm = ctx.arm();
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
            let mi = ctx.identity();
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
            let kv = ctx.vault();
            assert_eq!(kv.c.calls[0], "challenge", "the SDK answers Key Vault's 401 challenge first");
        }
        ctx.expect_log("provision op=create runner=aci-runner-4242 attempt=1 result=created")
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_same_delivery_three_times_makes_one_group() {
    run_test(World::new(), async |ctx| {
        for _ in 0..3 {
            ctx.deliver(queued(77)).await.expect_status(202);
        }
        assert_eq!(ctx.drain().await, 3);
        {
            let arm = ctx.arm();
            arm.expect_groups(["aci-runner-77"]);
            assert_eq!(arm.c.count("put"), 1);
        }
        assert_eq!(ctx.github().c.count("jit"), 1);
    })
    .await;
}

#[tokio::test]
async fn the_same_delivery_three_times_in_one_batch_makes_one_group() {
    run_test(World::new(), async |ctx| {
        for _ in 0..3 {
            ctx.deliver(queued(78)).await.expect_status(202);
        }
        assert_eq!(ctx.invoke_batch().await, [200, 200, 200], "{}", ctx.logs());
        {
            let arm = ctx.arm();
            arm.expect_groups(["aci-runner-78"]);
            assert_eq!(arm.c.count("put"), 1);
        }
        {
            let gh = ctx.github();
            assert_eq!(gh.c.count("jit"), 1, "one registration: {:?}", gh.c.calls);
            gh.expect_runners(["aci-runner-78"]);
        }
    })
    .await;
}

#[tokio::test]
async fn a_batch_of_new_jobs_does_not_pass_max_runners() {
    const JOBS: [u64; 5] = [501, 502, 503, 504, 505];
    let world = World::new().setting("MAX_RUNNERS", "2").github(|gh| {
        for job in JOBS {
            gh.job(job, "queued");
        }
        gh
    });
    run_test(world, async |ctx| {
        for job in JOBS {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}\n{}", ctx.logs());
        assert_eq!(ctx.arm().groups.len(), 2, "the cap holds within a batch");
        assert_eq!(ctx.github().c.count("jit"), 2, "no runner registered over the cap");
        // The others wait in the queue.
        ctx.expect_queued(3);
        ctx.expect_log("MAX_RUNNERS reached").await;
    })
    .await;
}

#[tokio::test]
async fn a_put_whose_answer_was_lost_keeps_its_group_and_registration() {
    let world = World::new().arm(|arm| {
        arm.lost_put_answers = 100;
        arm
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(79)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1, "done on the first invocation");
        ctx.arm().expect_groups(["aci-runner-79"]);
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, ["jit"], "the registration the group runs is kept");
            assert!(gh.runner_named("aci-runner-79").is_some());
        }
        assert_eq!(ctx.arm().c.count("get"), 1, "one GET settles what the PUT did");
        ctx.expect_log("provision op=create runner=aci-runner-79 attempt=1 result=created")
            .await;
    })
    .await;
}

#[tokio::test]
async fn a_runner_another_instance_just_made_is_left_alone() {
    // Another instance registered the runner and PUT its group after our list was read.
    let world = World::new()
        .arm(|arm| {
            arm.seed("aci-runner-81", true, "Creating", None, "2026-11-28T10:00:00Z")
                .unlisted
                .push("aci-runner-81".into());
            arm
        })
        .github(|gh| gh.runner("repos/Codertocat/Hello-World", "aci-runner-81", "offline", false));
    run_test(world, async |ctx| {
        ctx.deliver(queued(81)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1);
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, ["jit"], "409, and the group exists: nothing deleted");
            assert!(gh.runner_named("aci-runner-81").is_some());
        }
        assert_eq!(ctx.arm().c.count("put"), 0);
        ctx.expect_log("provision op=create runner=aci-runner-81 attempt=1 result=exists")
            .await;
    })
    .await;
}

#[tokio::test]
async fn every_webhook_answer() {
    run_test(World::new().setting("ALLOWED_OWNERS", "codertocat"), async |ctx| {
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
                queued(1).body,
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
                completed(5, Some("aci-runner-9")).body,
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
            let r = ctx.deliver(Delivery::new(&event, body)).await;
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
        ctx.expect_queued(2);
    })
    .await;
}

#[tokio::test]
async fn repository_not_allowed_is_ignored() {
    run_test(World::new().setting("ALLOWED_REPOSITORIES", "octo-org/octo-repo"), async |ctx| {
        ctx.deliver(queued(1))
            .await
            .expect_status(200)
            .expect_json(json!({"ignored": "repository Codertocat/Hello-World is not allowed"}));
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn bad_signatures_get_the_same_401() {
    run_test(World::new(), async |ctx| {
        let body = queued(1).body;
        let wrong = sign("not-the-secret", &body);
        let cases = [
            ("wrong secret", wrong.as_str()),
            ("missing", ""),
            ("garbage", "sha256=xyz"),
            ("sha1", "sha1=0123"),
        ];
        for (rule, sig) in cases {
            let r = ctx.deliver(queued(1).signature(sig)).await;
            assert_eq!(
                (r.status, r.json()),
                (401, json!({"error": "signature missing or invalid"})),
                "{rule}"
            );
        }
        // A body altered after signing.
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        ctx.deliver(Delivery::new("workflow_job", tampered).signature(&sign(WEBHOOK_SECRET, &body)))
            .await
            .expect_status(401);
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn a_rotated_secret_accepts_the_old_and_the_new() {
    let world = World::new().vault(|kv| kv.secret("github-webhook-secret", &format!("{WEBHOOK_SECRET}\n{OLD_WEBHOOK_SECRET}\n")));
    run_test(world, async |ctx| {
        // Signed with either of the rotated secrets.
        for secret in [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET] {
            ctx.deliver(queued(3).signed_with(secret)).await.expect_status(202);
        }
        ctx.deliver(queued(3).signed_with("retired-long-ago")).await.expect_status(401);
        ctx.expect_queued(2);
    })
    .await;
}

#[tokio::test]
async fn a_form_encoded_delivery_is_accepted() {
    run_test(World::new(), async |ctx| {
        ctx.deliver(queued(8).form_encoded())
            .await
            .expect_status(202)
            .expect_json(json!({"accepted": "create", "runner": "aci-runner-8"}));
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-8"]);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    run_test(World::new(), async |ctx| {
        let mut v: Value = serde_json::from_slice(&queued(9).body).unwrap();
        v["padding"] = json!("x".repeat(1024 * 1024 + 1));
        ctx.deliver(Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap()))
            .await
            .expect_status(413);
        // An envelope past the host-protocol bound as well.
        v["padding"] = json!("x".repeat(5 * 1024 * 1024));
        ctx.deliver(Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap()))
            .await
            .expect_status(413);
        ctx.expect_queued(0);
    })
    .await;
}

#[tokio::test]
async fn an_unreadable_webhook_secret_answers_500() {
    run_test(World::new().setting("GITHUB_WEBHOOK_SECRET_NAME", "no-such-secret"), async |ctx| {
        ctx.deliver(queued(1)).await.expect_status(500);
        ctx.expect_log("github-webhook.secret-unavailable setting=GITHUB_WEBHOOK_SECRET_NAME")
            .await;
        assert!(ctx.logs().contains("SecretNotFound"), "{}", ctx.logs());
    })
    .await;
}

#[tokio::test]
async fn a_key_vault_outage_after_the_first_read_does_not_stop_deliveries() {
    // A zero TTL: every delivery finds the cached secret past its time.
    run_test(World::new().setting("SECRET_CACHE_SECONDS", "0"), async |ctx| {
        ctx.deliver(queued(601)).await.expect_status(202);
        ctx.vault().c.faults.push(Fault {
            only: Some("github-webhook-secret"),
            op: "read",
            times: 1000,
            resp: Resp::json(
                503,
                json!({"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}}),
            ),
        });
        // Served with the last good secret.
        for job in [602, 603, 604] {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        ctx.expect_log("keyvault.stale secret=github-webhook-secret").await;
        ctx.expect_queued(4);
    })
    .await;
}

#[tokio::test]
async fn a_secret_added_in_key_vault_is_read_when_a_delivery_needs_it() {
    run_test(World::new().setting("SECRET_CACHE_SECONDS", "0"), async |ctx| {
        ctx.deliver(queued(605)).await.expect_status(202);
        // Rotation: the new secret is added in Key Vault, then GitHub signs with it.
        ctx.vault()
            .secret("github-webhook-secret", &format!("{WEBHOOK_SECRET}\nwhsec-added-later-17\n"));
        ctx.deliver(queued(605).signed_with("whsec-added-later-17"))
            .await
            .expect_status(202);
        ctx.deliver(queued(605).signed_with("never-in-key-vault")).await.expect_status(401);
        ctx.expect_queued(2);
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_webhooks_reads_key_vault_once() {
    run_test(World::new(), async |ctx| {
        let deliveries = (0..40u64).map(|i| async move { ctx.deliver(queued(1000 + i)).await.status });
        let statuses = futures::future::join_all(deliveries).await;
        assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
        {
            let kv = ctx.vault();
            assert_eq!(kv.reads("github-webhook-secret"), 1, "{:?}", kv.c.calls);
            assert_eq!(ctx.identity().resources.iter().filter(|r| r.contains("vault")).count(), 1);
        }
        ctx.expect_queued(40);
    })
    .await;
}

#[tokio::test]
async fn completed_job_releases_its_runner_and_deletes_the_group() {
    run_test(World::new(), async |ctx| {
        ctx.deliver(queued(50)).await.expect_status(202);
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-50"]);
        // The job ran on the runner made for job 51's delivery; release that one.
        // Made for the repository the deliveries come from.
        ctx.arm()
            .seed("aci-runner-51", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z")
            .tag("aci-runner-51", "github-repository", "Codertocat/Hello-World");
        ctx.deliver(completed(50, Some("aci-runner-51"))).await.expect_status(202);
        ctx.drain().await;
        {
            let mut arm = ctx.arm();
            // ARM accepted the DELETE (202) and is deleting the group; then it is gone.
            arm.expect_deleting(["aci-runner-51"]);
            arm.settle();
            assert!(!arm.groups.contains_key("aci-runner-51"), "the runner that ran the job is released");
            assert!(
                arm.groups.contains_key("aci-runner-50"),
                "the runner made for the job may serve another"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn cancelled_while_queued_releases_its_group_unless_busy_elsewhere() {
    run_test(World::new(), async |ctx| {
        for job in [60, 61] {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        ctx.drain().await;
        // Runner 61 picked up some other job meanwhile.
        ctx.github().runners.values_mut().find(|r| r.name == "aci-runner-61").unwrap().busy = true;
        for job in [60, 61] {
            ctx.deliver(completed(job, None)).await.expect_status(202);
        }
        ctx.drain().await;
        {
            let mut arm = ctx.arm();
            arm.expect_deleting(["aci-runner-60"]);
            arm.settle();
            assert!(
                !arm.groups.contains_key("aci-runner-60"),
                "idle group of a cancelled job is released"
            );
            assert!(arm.groups.contains_key("aci-runner-61"), "a group busy with another job is kept");
            let gh = ctx.github();
            assert!(gh.runner_named("aci-runner-60").is_none(), "deregistered");
            assert!(gh.runner_named("aci-runner-61").is_some());
        }
        ctx.expect_log("result=\"kept: runner is busy with another job\"").await;
    })
    .await;
}

#[tokio::test]
async fn release_never_touches_an_unmanaged_group() {
    let world = World::new().arm(|arm| arm.seed("aci-runner-70", false, "Succeeded", Some("Running"), ""));
    run_test(world, async |ctx| {
        ctx.deliver(completed(1, Some("aci-runner-70"))).await;
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-70"]);
        assert_eq!(ctx.arm().c.count("delete"), 0);
    })
    .await;
}

#[tokio::test]
async fn arm_429_with_a_short_retry_after_is_retried_in_place() {
    let world = World::new().arm(|arm| {
        arm.c.faults.push(Fault {
            only: None,
            op: "put",
            times: 1,
            resp: Resp::json(429, json!({"error": {"code": "TooManyRequests", "message": "throttled"}}))
                .with_header("x-ms-retry-after-ms", "2"),
        });
        arm
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(80)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1, "no redelivery needed");
        {
            let arm = ctx.arm();
            assert_eq!(arm.c.count("put"), 2, "429 then success");
            arm.expect_groups(["aci-runner-80"]);
        }
        assert_eq!(ctx.github().c.count("jit"), 1);
    })
    .await;
}

#[tokio::test]
async fn arm_429_with_a_long_retry_after_goes_back_to_the_queue() {
    let world = World::new()
        .arm(|arm| {
            arm.c.faults.push(Fault {
                only: None,
                op: "put",
                times: 1,
                resp: Resp::json(429, json!({"error": {"code": "TooManyRequests", "message": "throttled"}}))
                    .with_header("retry-after", "17"),
            });
            arm
        })
        .github(|gh| gh.job(81, "queued"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(81)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 2, "the first invocation failed, the queue retried");
        {
            let gh = ctx.github();
            assert_eq!(
                gh.c.calls,
                ["jit", "delete-runner", "get-job", "jit"],
                "registration removed, job re-checked, registered again"
            );
            gh.expect_runners(["aci-runner-81"]);
        }
        {
            let arm = ctx.arm();
            assert_eq!(arm.c.count("put"), 2);
            arm.expect_groups(["aci-runner-81"]);
        }
        ctx.expect_log("provision.retry op=create runner=aci-runner-81 attempt=1").await;
        assert!(ctx.logs().contains("request id fake-arm-request-0001"), "{}", ctx.logs());
    })
    .await;
}

#[tokio::test]
async fn github_5xx_on_the_jit_call_is_retried() {
    let world = World::new().github(|gh| {
        gh.c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 2,
            resp: Resp::json(502, json!({"message": "Server Error"})),
        });
        gh
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(90)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1);
        assert_eq!(ctx.github().c.count("jit"), 3, "two 502s, then success (RETRY_MAX_ATTEMPTS=3)");
        ctx.arm().expect_groups(["aci-runner-90"]);
    })
    .await;
}

#[tokio::test]
async fn github_5xx_past_the_retries_fails_the_invocation_until_github_recovers() {
    let world = World::new().github(|gh| {
        gh.c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 4,
            resp: Resp::json(503, json!({"message": "Service Unavailable"})),
        });
        gh.job(91, "queued")
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(91)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 2);
        assert_eq!(ctx.github().c.count("jit"), 5);
        ctx.arm().expect_groups(["aci-runner-91"]);
        ctx.expect_log("github.generate-jitconfig: api.github.test: HTTP 503: Service Unavailable (request id FAKE:0001:0002)")
            .await;
    })
    .await;
}

#[tokio::test]
async fn an_arm_quota_error_removes_the_registration_and_the_create_waits() {
    let world = World::new()
        .arm(|arm| {
            arm.c.faults.push(Fault {
                only: None,
                op: "put",
                times: 1,
                resp: Resp::json(409, json!({"error": {"code": "ContainerGroupQuotaReached", "message": "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'StandardCores' exceeded in region 'westeurope'."}})),
            });
            arm
        })
        .github(|gh| gh.job(100, "queued"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(100)).await.expect_status(202);
        assert_eq!(ctx.host().invoke_batch().await, [500], "waits: the queue offers it again");
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, ["jit", "delete-runner"]);
            // The registration nothing will run is removed.
            gh.expect_runners([]);
        }
        ctx.arm().expect_groups([]);
        ctx.expect_log("provision.waiting op=create runner=aci-runner-100 attempt=1 why=\"Azure capacity or quota: arm.put-container-group: management.azure.test: HTTP 409 ContainerGroupQuotaReached")
            .await;
        // The quota frees up: the next try makes the runner.
        assert_eq!(ctx.host().invoke_batch().await, [200]);
        ctx.arm().expect_groups(["aci-runner-100"]);
        assert_eq!(
            ctx.github().c.calls,
            ["jit", "delete-runner", "get-job", "jit"],
            "still queued? asked once, before registering"
        );
        ctx.expect_poisoned(0);
    })
    .await;
}

#[tokio::test]
async fn max_runners_holds_new_jobs_until_a_slot_frees_and_never_poisons_them() {
    let world = World::new()
        .setting("MAX_RUNNERS", "2")
        .arm(|arm| {
            arm.seed("aci-runner-1", true, "Succeeded", Some("Running"), "2026-11-28T10:00:00Z")
                .seed("aci-runner-2", true, "Creating", None, "2026-11-28T10:00:00Z")
                .seed("aci-runner-3", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z")
                .seed("someone-elses", false, "Succeeded", Some("Running"), "")
        })
        .github(|gh| gh.job(200, "queued"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(200)).await.expect_status(202);
        // Half an hour of tries a minute apart, all at the cap.
        for _ in 0..30 {
            assert_eq!(ctx.host().invoke_batch().await, [500]);
        }
        ctx.expect_queued(1);
        assert_eq!(ctx.github().c.count("jit"), 0, "no runner registered over the cap");
        assert_eq!(ctx.arm().c.count("put"), 0);
        assert_eq!(ctx.github().c.count("get-job"), 2, "while waiting, GitHub is asked every 15 tries");
        ctx.expect_log("provision.waiting op=create runner=aci-runner-200 attempt=1 why=\"MAX_RUNNERS reached (2 of 2 live)\"")
            .await;
        let waits = ctx.logs().lines().filter(|l| l.starts_with("provision.waiting")).count();
        assert_eq!(waits, 30, "one line per wait");

        // A finished group frees a slot.
        ctx.arm().fail("aci-runner-2");
        assert_eq!(ctx.host().invoke_batch().await, [200]);
        ctx.expect_queued(0);
        assert!(ctx.arm().groups.contains_key("aci-runner-200"));
        ctx.expect_poisoned(0);
    })
    .await;
}

#[tokio::test]
async fn a_retried_message_for_a_job_no_longer_queued_is_dropped() {
    let world = World::new()
        .arm(|arm| {
            arm.c.faults.push(Fault {
                only: None,
                op: "list",
                times: 3,
                resp: Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "busy"}})),
            });
            arm
        })
        .github(|gh| gh.job(300, "in_progress"));
    run_test(world, async |ctx| {
        ctx.deliver(queued(300)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 2);
        assert_eq!(ctx.github().c.calls, ["get-job"]);
        ctx.arm().expect_groups([]);
        ctx.expect_log("result=\"dropped: job is in_progress, no longer queued\"").await;
    })
    .await;
}

#[tokio::test]
async fn dry_run_answers_and_enqueues_but_writes_nothing() {
    let world = World::new()
        .setting("DRY_RUN", "true")
        .arm(|arm| {
            arm.seed("aci-runner-401", true, "Succeeded", Some("Succeeded"), "2026-11-28T10:00:00Z")
                .tag("aci-runner-401", "github-repository", "Codertocat/Hello-World")
        })
        .github(|gh| gh.runner("repos/Codertocat/Hello-World", "aci-runner-401", "offline", false));
    run_test(world, async |ctx| {
        ctx.deliver(queued(400)).await.expect_status(202);
        ctx.deliver(completed(401, Some("aci-runner-401"))).await;
        ctx.drain().await;
        assert_eq!(ctx.arm().writes(), 0);
        let gh_writes = {
            let gh = ctx.github();
            gh.c.count("jit") + gh.c.count("delete-runner")
        };
        assert_eq!(gh_writes, 0);
        ctx.expect_log("dry-run.arm.put-container-group name=aci-runner-400").await;
        ctx.expect_log("dry-run.arm.delete-container-group name=aci-runner-401").await;
        ctx.expect_log("dry-run.github.delete-runner runner=aci-runner-401").await;
    })
    .await;
}

#[tokio::test]
async fn subnet_and_org_scope_shape_the_request() {
    const SUBNET: &str = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci";
    let world = World::new()
        .setting("RUNNER_SUBNET_ID", SUBNET)
        .setting("RUNNER_SCOPE", "org")
        .setting("RUNNER_GROUP_ID", "3");
    run_test(world, async |ctx| {
        ctx.deliver(queued(500)).await.expect_status(202);
        ctx.drain().await;
        {
            let gh = ctx.github();
            let r = gh.runner_named("aci-runner-500").unwrap();
            assert_eq!((r.scope.as_str(), r.runner_group_id), ("orgs/Codertocat", 3));
            let arm = ctx.arm();
            let body = &arm.puts[0].1;
            assert_eq!(body["properties"]["subnetIds"], json!([{"id": SUBNET}]));
            assert_eq!(body["tags"]["github-owner"], "Codertocat");
        }
    })
    .await;
}

/// Issue 13's soak found a create at the cap reading every live group, and one failed read
/// failing the whole try: a waiting job cost ARM over a thousand calls.
#[tokio::test]
async fn at_the_cap_a_batch_reads_each_group_once_and_a_failed_read_counts_as_live() {
    const JOBS: [u64; 4] = [601, 602, 603, 604];
    let world = World::new()
        .setting("MAX_RUNNERS", "3")
        .arm(|arm| {
            // Four live groups (one made by hand past the cap, say) against a cap of three.
            arm.seed("aci-runner-1", true, "Succeeded", Some("Running"), "2026-11-28T10:00:00Z")
                .seed("aci-runner-2", true, "Succeeded", Some("Running"), "2026-11-28T10:01:00Z")
                .seed("aci-runner-3", true, "Succeeded", Some("Running"), "2026-11-28T10:02:00Z")
                .seed("aci-runner-4", true, "Succeeded", Some("Running"), "2026-11-28T10:03:00Z");
            arm.c.faults.push(Fault {
                only: Some("aci-runner-2"),
                op: "get",
                times: 100,
                resp: Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "busy"}})),
            });
            arm
        })
        .github(|gh| {
            for job in JOBS {
                gh.job(job, "queued");
            }
            gh
        });
    run_test(world, async |ctx| {
        for job in JOBS {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        assert_eq!(ctx.invoke_batch().await, [500; 4], "all wait: the cap is reached");
        // aci-runner-1 read live, aci-runner-2's read failed (live, for the cap), aci-runner-3
        // read live: the cap is certain and aci-runner-4 is never read.
        {
            let arm = ctx.arm();
            assert_eq!(arm.c.count("list"), 4);
            let reads_of = |name: &str| arm.reads.iter().filter(|n| *n == name).count();
            assert_eq!(reads_of("aci-runner-4"), 0, "{:?}", arm.reads);
            assert_eq!(reads_of("aci-runner-1"), 1, "one read for the batch: {:?}", arm.reads);
            assert_eq!(reads_of("aci-runner-3"), 1, "one read for the batch: {:?}", arm.reads);
        }
        ctx.expect_log("why=\"MAX_RUNNERS reached (3 of 3 live)\"").await;
        assert!(
            !ctx.logs().contains("provision.retry"),
            "a failed read fails no try:\n{}",
            ctx.logs()
        );
        ctx.expect_queued(4);

        // Two containers exit (the list still shows their groups `Succeeded`): the next batch
        // finds the room by reading again, and one job gets it.
        ctx.arm()
            .container_exits("aci-runner-1", "Succeeded")
            .container_exits("aci-runner-3", "Failed");
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}\n{}", ctx.logs());
        assert_eq!(ctx.github().c.count("jit"), 1);
        ctx.expect_queued(3);
        ctx.expect_poisoned(0);
    })
    .await;
}

/// GitHub's secondary limit on runner registrations: "continuing to make requests while you are
/// rate limited may result in the banning of your integration". One refusal holds back every
/// registration of the instance for a minute; the creates wait on the queue meanwhile.
#[tokio::test]
async fn a_refusal_by_githubs_secondary_limit_holds_back_registrations() {
    let world = World::new().github(|gh| {
        gh.c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 1,
            resp: Resp::json(
                403,
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            )
            .with_header("retry-after", "60"),
        });
        gh.job(701, "queued").job(702, "queued")
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(701)).await.expect_status(202);
        assert_eq!(ctx.invoke_batch().await, [500]);
        ctx.expect_log("provision.waiting op=create runner=aci-runner-701 attempt=1 why=\"GitHub's rate limit: github.generate-jitconfig: api.github.test: HTTP 403: You have exceeded a secondary rate limit")
            .await;

        ctx.deliver(queued(702)).await.expect_status(202);
        assert_eq!(ctx.invoke_batch().await, [500, 500], "both wait");
        ctx.expect_log("provision.waiting op=create runner=aci-runner-702 attempt=1 why=\"GitHub's rate limit: github.generate-jitconfig: held back: GitHub's secondary limit on runner registrations leaves no turn for")
            .await;
        assert_eq!(ctx.github().c.count("jit"), 1, "no registration sent during the pause");
        ctx.arm().expect_groups([]);
        ctx.expect_queued(2);
        ctx.expect_poisoned(0);
    })
    .await;
}
