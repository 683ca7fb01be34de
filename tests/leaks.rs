//! A known PAT, webhook secret, JIT config and managed-identity token never appear in logs,
//! answers, queue messages, tags or plain environment values, on success and failure paths.

mod common;

use common::fakes::{Fault, MI_TOKEN};
use common::net::Resp;
use common::*;
use serde_json::json;

#[tokio::test]
async fn no_secret_leaks_anywhere() {
    run_test(World::new(), async |ctx| {
        // Success: create, then release.
        ctx.deliver(queued(1)).await;
        // Failure paths that log errors: GitHub refusing, ARM refusing, a bad signature.
        ctx.github().c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 1,
            resp: Resp::json(401, json!({"message": "Bad credentials"})),
        });
        ctx.deliver(queued(2)).await;
        ctx.drain().await;
        ctx.arm().c.faults.push(Fault {
            only: None,
            op: "put",
            times: 1,
            resp: Resp::json(400, json!({"error": {"code": "InvalidRequestContent", "message": "bad"}})),
        });
        ctx.deliver(queued(3)).await;
        ctx.deliver(Delivery::new("workflow_job", b"{}".to_vec()).signature("sha256=00"))
            .await;
        ctx.deliver(completed(1, Some("aci-runner-1"))).await;
        ctx.drain().await;
        ctx.expect_log("runner=aci-runner-3").await;

        let jit_configs: Vec<String> = ctx.github().jit_configs.iter().map(|(_, j)| j.clone()).collect();
        assert_eq!(jit_configs.len(), 2, "runners 1 and 3 got JIT configs");
        let mut secrets = vec![PAT.to_string(), WEBHOOK_SECRET.to_string(), MI_TOKEN.to_string()];
        secrets.extend(jit_configs.iter().cloned());

        let host = ctx.host();
        let logs = host.logs();
        let answers = host.answers.lock().unwrap().join("\n");
        let queue = host.queued(QUEUE).join("\n");
        {
            let arm = ctx.arm();
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
    })
    .await;
}

#[tokio::test]
async fn no_secret_leaks_from_workflow_steps_the_sweeper_or_a_dry_run() {
    use common::oidc::{TestKey, AUDIENCE, KEY_A, KEY_B};
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = TestKey::new("key-a", KEY_A).token(ISSUER, "octo-org/octo-repo", 7, 1, now);
    let unknown_key = TestKey::new("key-b", KEY_B).token(ISSUER, "octo-org/octo-repo", 7, 1, now);

    let (seen, jit_configs) = run_test(World::new().setting("OIDC_AUDIENCE", AUDIENCE), async |ctx| {
        for token in [&good, &unknown_key] {
            let auth = format!("Bearer {token}");
            let body = serde_json::to_vec(&json!({"labels": ["run-7-1"], "key": "build"})).unwrap();
            ctx.host()
                .http(
                    "runners",
                    "POST",
                    &[("Authorization", auth.as_str()), ("Content-Type", "application/json")],
                    &body,
                )
                .await;
        }
        ctx.drain().await;
        // The sweeper, with GitHub refusing the PAT on its runner list.
        ctx.arm().seed("aci-runner-900", true, "Failed", None, "2026-11-28T10:00:00Z");
        ctx.github().c.faults.push(Fault {
            only: None,
            op: "list-runners",
            times: 1,
            resp: Resp::json(401, json!({"message": "Bad credentials"})),
        });
        ctx.host().timer("sweep", json!(null), false).await;
        let jit_configs: Vec<String> = ctx.github().jit_configs.iter().map(|(_, j)| j.clone()).collect();
        assert_eq!(jit_configs.len(), 1, "the workflow step's runner");
        let seen = format!("{}\n{}", ctx.logs(), ctx.host().answers.lock().unwrap().join("\n"));
        (seen, jit_configs)
    })
    .await;
    let mut secrets = vec![
        PAT.to_string(),
        WEBHOOK_SECRET.to_string(),
        MI_TOKEN.to_string(),
        good.clone(),
        unknown_key.clone(),
    ];
    secrets.extend(jit_configs);

    // A dry run logs the container group body it would PUT.
    let seen = run_test(World::new().setting("DRY_RUN", "true"), async |ctx| {
        ctx.deliver(queued(5)).await;
        ctx.drain().await;
        ctx.expect_log("dry-run.arm.put-container-group").await;
        format!("{seen}\n{}\n{}", ctx.logs(), ctx.host().answers.lock().unwrap().join("\n"))
    })
    .await;

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

#[tokio::test]
async fn no_installation_token_or_app_jwt_leaks_in_app_mode() {
    // Success, a revoked token (401 then a new one), GitHub refusing a call, the sweeper with
    // its redelivery, and `handler check`: then the tokens and JWTs GitHub saw are looked for
    // everywhere the handler writes.
    let world = World::new()
        .github_app(&["Codertocat", "octo-org"])
        .setting("ALLOWED_REPOSITORIES", "Codertocat/Hello-World,octo-org/octo-repo")
        .github(|gh| gh.app_delivery(1, "lost", 5, 503));
    run_test(world, async |ctx| {
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        ctx.github().app.tokens.clear();
        ctx.deliver(queued(2)).await;
        ctx.github().c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 1,
            resp: Resp::json(403, json!({"message": "Resource not accessible by integration"})),
        });
        ctx.deliver(queued(3)).await;
        ctx.drain().await;
        ctx.deliver(completed(1, Some("aci-runner-1"))).await;
        ctx.drain().await;
        ctx.sweep().await;
        let check = ctx.cli(&["check"], &[]).await;
        ctx.expect_log("runner=aci-runner-3").await;

        let (tokens, jwts) = {
            let gh = ctx.github();
            let tokens: Vec<String> = gh.app.tokens.keys().cloned().collect();
            (tokens, gh.app.jwts_seen.clone())
        };
        assert!(tokens.len() >= 2 && !jwts.is_empty(), "tokens {} jwts {}", tokens.len(), jwts.len());
        // The revoked token is gone from the fake; it was made with the prefix all tokens share.
        assert!(tokens.iter().all(|t| t.starts_with(common::fakes::APP_TOKEN_PREFIX)));

        let host = ctx.host();
        let seen = format!(
            "{}\n{}\n{}\n{}\n{}",
            host.logs(),
            host.answers.lock().unwrap().join("\n"),
            host.queued(QUEUE).join("\n"),
            check.stdout,
            check.stderr
        );
        assert!(!seen.contains(common::fakes::APP_TOKEN_PREFIX), "an installation token:\n{seen}");
        for j in &jwts {
            assert!(!seen.contains(j.as_str()), "an App JWT:\n{seen}");
            // Not even its signature or claims on their own.
            for part in j.split('.').skip(1) {
                assert!(!seen.contains(part), "part of an App JWT:\n{seen}");
            }
        }
        let arm = ctx.arm();
        let tags = serde_json::to_string(&arm.puts.iter().map(|(_, b)| b["tags"].clone()).collect::<Vec<_>>()).unwrap();
        let env: String = arm
            .puts
            .iter()
            .flat_map(|(_, b)| b["properties"]["containers"].as_array().unwrap().clone())
            .flat_map(|c| c["properties"]["environmentVariables"].as_array().unwrap().clone())
            .map(|e| e.to_string())
            .collect();
        assert!(!arm.puts.is_empty());
        for s in tokens.iter().chain(&jwts) {
            assert!(!tags.contains(s.as_str()), "a token in a tag");
            assert!(!env.contains(s.as_str()), "a token in the container's environment, secure or not");
        }
        assert!(!env.contains(common::fakes::APP_TOKEN_PREFIX));
        // Sanity: the paths ran.
        for expected in ["result=created", "provision.dropped", "redelivered=1", "PASS keyvault.app-key"] {
            assert!(seen.contains(expected), "{expected} missing:\n{seen}");
        }
    })
    .await;
}

#[tokio::test]
async fn no_secret_leaks_from_warm_runners() {
    let world = World::new().setting("WARM_RUNNERS", "codertocat/hello-world=2");
    run_test(world, async |ctx| {
        // The sweeper asks for two warm runners; one is made, GitHub refuses the other's JIT call.
        ctx.sweep().await;
        ctx.github().c.faults.push(Fault {
            only: None,
            op: "jit",
            times: 1,
            resp: Resp::json(401, json!({"message": "Bad credentials"})),
        });
        ctx.drain().await;
        ctx.start_runners();
        // A job lands on the warm runner; its own create replaces it; it completes.
        let warm = ctx.arm().groups.keys().next().cloned().expect("one warm group");
        ctx.github().queue_job("repos/Codertocat/Hello-World", 11, &["self-hosted", "aci"]);
        ctx.deliver(queued(11)).await.expect_status(202);
        ctx.drain().await;
        ctx.expect_log("warm=hit").await;
        ctx.github().finish_job(11);
        ctx.arm().settle().container_exits(&warm, "Succeeded");
        ctx.deliver(completed(11, Some(&warm))).await.expect_status(202);
        ctx.drain().await;
        ctx.sweep().await;
        ctx.drain().await;

        let jit_configs: Vec<String> = ctx.github().jit_configs.iter().map(|(_, j)| j.clone()).collect();
        assert!(jit_configs.len() >= 2, "the warm runner and its replacement: {jit_configs:?}");
        let mut secrets = vec![PAT.to_string(), WEBHOOK_SECRET.to_string(), MI_TOKEN.to_string()];
        secrets.extend(jit_configs.iter().cloned());
        let host = ctx.host();
        let seen = format!("{}\n{}", host.logs(), host.answers.lock().unwrap().join("\n"));
        let arm = ctx.arm();
        for (name, body) in &arm.puts {
            let env = &body["properties"]["containers"][0]["properties"]["environmentVariables"];
            assert_eq!(env[0]["name"], "ACTIONS_RUNNER_INPUT_JITCONFIG");
            assert!(env[0].get("value").is_none(), "{name}: the JIT config only as a secureValue");
            assert!(body.get("identity").is_none(), "{name}: no managed identity on a runner's group");
            let tags = body["tags"].to_string();
            for s in &secrets {
                assert!(!tags.contains(s.as_str()), "a secret in {name}'s tags");
            }
        }
        for s in &secrets {
            assert!(!seen.contains(s.as_str()), "a secret in the logs or answers:\n{seen}");
        }
        assert!(seen.contains("sweep.warm runner=aci-runner-w-"), "{seen}");
    })
    .await;
}
