//! GitHub App mode, end to end: the handler signs the App's JWT with Key Vault's `sign` (the
//! real `KeyClient` against the fake vault, 401 challenge first), finds the installation,
//! makes installation tokens with the least permissions each call needs, and uses them where
//! the PAT was used. The fake GitHub verifies every JWT with the App's public key.

mod common;

use common::fakes::{Fault, APP_KEY_NAME};
use common::net::Resp;
use common::*;
use serde_json::json;

/// The owner of the fixtures' repository (`Codertocat/Hello-World`).
const OWNER: &str = "Codertocat";

fn app_world() -> World {
    World::new().github_app(&[OWNER])
}

#[tokio::test]
async fn a_queued_job_gets_a_runner_through_the_app_in_repo_scope() {
    run_test(app_world(), async |ctx| {
        ctx.deliver(queued(4242)).await.expect_status(202);
        assert_eq!(ctx.drain().await, 1);
        {
            let gh = ctx.github();
            assert_eq!(gh.c.calls, ["app-installation", "app-token", "jit"]);
            let runner = gh.runner_named("aci-runner-4242").expect("registered");
            assert_eq!(runner.scope, "repos/Codertocat/Hello-World");
            assert_eq!(
                gh.app.tokens_made,
                [(gh.installation_id(OWNER), json!({"administration": "write"}))],
                "a token with the one permission registering needs"
            );
            assert_eq!((gh.app.jwts_accepted, gh.app.jwts_refused.len()), (2, 0));
        }
        {
            let kv = ctx.vault();
            assert_eq!(kv.signs(APP_KEY_NAME), 1, "one JWT, signed once by Key Vault");
            assert_eq!(kv.reads("github-pat"), 0, "no PAT in App mode");
            assert_eq!(
                kv.c.calls.iter().filter(|c| *c == "challenge").count(),
                2,
                "the keys client answers the 401 challenge too"
            );
        }
        ctx.arm().expect_groups(["aci-runner-4242"]);
        ctx.expect_log("provision op=create runner=aci-runner-4242 attempt=1 result=created")
            .await;

        // Its completion deregisters the runner with the same token and deletes the group.
        ctx.deliver(completed(4242, Some("aci-runner-4242"))).await.expect_status(202);
        ctx.drain().await;
        let gh = ctx.github();
        gh.expect_runners([]);
        assert_eq!(gh.calls_of("app-token"), 1, "the cached token served the release");
    })
    .await;
}

#[tokio::test]
async fn a_queued_job_gets_a_runner_through_the_app_in_org_scope() {
    run_test(app_world().setting("RUNNER_SCOPE", "org"), async |ctx| {
        ctx.deliver(queued(51)).await.expect_status(202);
        ctx.drain().await;
        let gh = ctx.github();
        let runner = gh.runner_named("aci-runner-51").expect("registered");
        assert_eq!(runner.scope, "orgs/Codertocat");
        assert_eq!(
            gh.app.tokens_made,
            [(gh.installation_id(OWNER), json!({"organization_self_hosted_runners": "write"}))],
            "org scope asks for the organization's runner permission, not the repositories' administration"
        );
        drop(gh);
        ctx.arm().expect_groups(["aci-runner-51"]);
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_100_jobs_for_one_owner_costs_one_sign_and_one_token() {
    run_test(app_world().setting("MAX_RUNNERS", "100"), async |ctx| {
        for job in 1..=100 {
            ctx.deliver(queued(job)).await.expect_status(202);
        }
        // All at once, as a host with a large batch would run them: the first fetch is shared.
        let statuses = ctx.invoke_batch().await;
        assert_eq!(statuses.len(), 100);
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(ctx.arm().groups.len(), 100);
        let gh = ctx.github();
        assert_eq!(gh.calls_of("jit"), 100);
        assert_eq!(gh.calls_of("app-installation"), 1, "one installation lookup");
        assert_eq!(gh.calls_of("app-token"), 1, "one installation token");
        drop(gh);
        assert_eq!(ctx.vault().signs(APP_KEY_NAME), 1, "one sign");
    })
    .await;
}

#[tokio::test]
async fn a_token_near_its_expiry_is_replaced_and_an_expired_one_refetched() {
    run_test(app_world(), async |ctx| {
        // Tokens that live 4 minutes are inside the 5-minute margin at once: each use makes one.
        ctx.github().app.token_lifetime = time::Duration::minutes(4);
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        ctx.deliver(queued(2)).await;
        ctx.drain().await;
        assert_eq!(ctx.github().calls_of("app-token"), 2, "a token about to expire is not used");
        assert_eq!(ctx.vault().signs(APP_KEY_NAME), 1, "the JWT is reused while it lives");

        // An hour-long token that GitHub says has expired (clocks disagree): a 401, then a new
        // token, once.
        ctx.github().app.token_lifetime = time::Duration::hours(1);
        ctx.deliver(queued(3)).await;
        ctx.drain().await;
        assert_eq!(ctx.github().calls_of("app-token"), 3);
        for t in ctx.github().app.tokens.values_mut() {
            t.expires_at = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        }
        ctx.deliver(queued(4)).await;
        ctx.drain().await;
        let gh = ctx.github();
        assert_eq!(gh.calls_of("app-token"), 4, "the refused token was dropped and one new one made");
        assert!(gh.runner_named("aci-runner-4").is_some());
        drop(gh);
        ctx.arm()
            .expect_groups(["aci-runner-1", "aci-runner-2", "aci-runner-3", "aci-runner-4"]);
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_fetched_once_more() {
    run_test(app_world(), async |ctx| {
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        // Revoked (DELETE /installation/token, or the installation suspended and restored).
        ctx.github().app.tokens.clear();
        ctx.deliver(queued(2)).await;
        ctx.drain().await;
        let gh = ctx.github();
        assert_eq!(gh.calls_of("jit"), 3, "one refused with 401, one with the new token");
        assert_eq!(gh.calls_of("app-token"), 2);
        assert_eq!(gh.calls_of("app-installation"), 1, "the installation is still cached");
        assert!(gh.runner_named("aci-runner-2").is_some());
        drop(gh);
        ctx.arm().expect_groups(["aci-runner-1", "aci-runner-2"]);
    })
    .await;
}

#[tokio::test]
async fn an_app_not_installed_on_the_owner_is_a_clear_error_and_nothing_is_made() {
    run_test(World::new().github_app(&["someone-else"]), async |ctx| {
        ctx.deliver(queued(9)).await.expect_status(202);
        ctx.drain().await;
        ctx.expect_log("provision.dropped op=create runner=aci-runner-9").await;
        let line = ctx
            .logs()
            .lines()
            .find(|l| l.contains("provision.dropped"))
            .unwrap_or_default()
            .to_string();
        assert!(
            line.contains("github.find-installation") && line.contains("is not installed on repo Codertocat/Hello-World"),
            "{line}"
        );
        let gh = ctx.github();
        assert_eq!(gh.c.calls, ["app-installation"], "no token, no registration");
        gh.expect_runners([]);
        drop(gh);
        ctx.arm().expect_groups([]);
        assert_eq!(ctx.arm().writes(), 0);
    })
    .await;
}

#[tokio::test]
async fn key_vault_refusing_sign_creates_nothing_and_says_why() {
    run_test(app_world(), async |ctx| {
        // The identity lacks keys/sign: permanent, the message is dropped with Key Vault's words.
        ctx.vault().c.faults.push(Fault {
            only: None,
            op: "sign",
            times: 1,
            resp: Resp::json(
                403,
                json!({"error": {"code": "Forbidden", "message": "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/keys/sign/action'"}}),
            ),
        });
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        ctx.expect_log("provision.dropped op=create runner=aci-runner-1").await;
        let line = ctx.logs().lines().find(|l| l.contains("provision.dropped")).unwrap_or_default().to_string();
        assert!(line.contains("keyvault.sign") && line.contains("HTTP 403 Forbidden"), "{line}");
        assert!(line.contains("fake-kv-request-0002"), "Key Vault's request id: {line}");
        assert!(ctx.github().c.calls.is_empty(), "GitHub saw nothing");
        ctx.arm().expect_groups([]);

        // Key Vault unavailable for a moment: the queue retries and the job gets its runner.
        ctx.vault().c.faults.push(Fault {
            only: None,
            op: "sign",
            times: 3,
            resp: Resp::json(503, json!({"error": {"code": "ServiceUnavailable", "message": "try later"}})),
        });
        ctx.github().job(2, "queued");
        ctx.deliver(queued(2)).await;
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-2"]);
    })
    .await;
}

#[tokio::test]
async fn the_sweeper_works_with_installation_tokens() {
    // Seeded groups are made for octo-org/octo-repo.
    let world = World::new()
        .github_app(&["octo-org"])
        .setting("ALLOWED_REPOSITORIES", "octo-org/octo-repo")
        .arm(|arm| arm.seed("aci-runner-7", true, "Succeeded", Some("Running"), &minutes_ago(30)))
        .github(|gh| {
            gh.runner("repos/octo-org/octo-repo", "aci-runner-7", "online", false);
            gh.runner("repos/octo-org/octo-repo", "aci-runner-70", "offline", false);
            // A job whose delivery never came: reconciled with the same tokens.
            gh.listed_jobs.push(common::fakes::ListedJob {
                id: 71,
                run_id: 9,
                scope: "repos/octo-org/octo-repo".into(),
                status: "queued".into(),
                labels: vec!["self-hosted".into(), "aci".into()],
                created_at: minutes_ago(10),
            });
            gh.job(70, "queued").job(71, "queued")
        });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let summary = ctx.sweep_summary();
        assert!(
            summary.contains("deleted_idle=1") && summary.contains("reconciled=1") && summary.contains("failed=0"),
            "{summary}"
        );
        ctx.expect_queued(1);
        ctx.drain().await;
        ctx.arm().settle().expect_groups(["aci-runner-71"]);
        let gh = ctx.github();
        gh.expect_runners(["aci-runner-70", "aci-runner-71"]);
        let asked: Vec<&serde_json::Value> = gh.app.tokens_made.iter().map(|(_, p)| p).collect();
        assert_eq!(
            asked,
            [&json!({"administration": "write"}), &json!({"actions": "read"})],
            "one token to manage runners, one to read jobs, each with only that"
        );
    })
    .await;
}

#[tokio::test]
async fn each_failed_delivery_is_redelivered_once_and_a_sweep_does_at_most_twenty() {
    let world = app_world().github(|gh| {
        gh.app_delivery(1, "lost-1", 10, 503) // our endpoint failed: redeliver
            .app_delivery(2, "fine", 9, 202) // delivered
            .app_delivery(3, "too-old", 7 * 60, 503) // outside the window
            .app_delivery(4, "lost-2", 8, 0) // not reached at all: redeliver
            .app_delivery(5, "retried", 20, 500)
            .app_delivery(6, "retried", 15, 202) // delivered on a later attempt
            .app_delivery(7, "lost-2", 6, 502); // a later failed attempt: redeliver this one
        for i in 0..25 {
            gh.app_delivery(100 + i, &format!("burst-{i}"), 5, 503);
        }
        gh
    });
    run_test(world, async |ctx| {
        ctx.sweep().await;
        let first: Vec<u64> = ctx.github().app.redelivered.clone();
        assert_eq!(first.len(), 20, "the bound per sweep");
        assert_eq!(
            &first[..2],
            [1, 7],
            "the oldest lost events first, each by its latest failed attempt"
        );
        assert!(
            ctx.sweep_summary().contains("reconciled=0 redelivered=20 failed=0"),
            "{}",
            ctx.sweep_summary()
        );

        ctx.sweep().await;
        let all = ctx.github().app.redelivered.clone();
        assert_eq!(all.len(), 27, "the 7 left over, and nothing twice");
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 27);
        assert!(!all.contains(&2) && !all.contains(&3) && !all.contains(&5) && !all.contains(&6));
        assert!(ctx.sweep_summary().contains("redelivered=7"), "{}", ctx.sweep_summary());

        ctx.sweep().await;
        assert!(
            ctx.sweep_summary().contains("redelivered=0"),
            "once per delivery: {}",
            ctx.sweep_summary()
        );
        assert_eq!(ctx.github().app.redelivered.len(), 27);
    })
    .await;
}

#[tokio::test]
async fn the_app_webhook_is_served_like_any_other() {
    // GitHub App deliveries carry `installation` and the App's hook headers; the same function
    // and secret serve them.
    run_test(app_world(), async |ctx| {
        let mut d = queued(808);
        let mut v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        v["installation"] = json!({"id": 3456996, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMzQ1Njk5Ng=="});
        d = Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap());
        ctx.deliver(d).await.expect_status(202);
        ctx.drain().await;
        ctx.arm().expect_groups(["aci-runner-808"]);
    })
    .await;
}

#[tokio::test]
async fn github_refuses_a_jwt_from_another_key_or_issuer() {
    // The vault's key is not the App's: the signature does not verify. The handler signs once
    // more (a rotated key would be picked up), is refused again, and says so.
    let world = app_world().vault(|kv| {
        kv.keys.insert(APP_KEY_NAME.into(), common::oidc::KEY_A.to_vec());
        kv
    });
    run_test(world, async |ctx| {
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        ctx.expect_log("provision.dropped op=create runner=aci-runner-1").await;
        assert!(
            ctx.logs().contains("signature does not verify with the App's public key"),
            "{}",
            ctx.logs()
        );
        assert_eq!(ctx.vault().signs(APP_KEY_NAME), 2, "signed anew after the 401, once");
        assert_eq!(ctx.github().app.jwts_accepted, 0);
        ctx.arm().expect_groups([]);
    })
    .await;
    // Another App's client id: the issuer is wrong.
    run_test(app_world().setting("GITHUB_APP_CLIENT_ID", "Iv23liSomeOtherApp"), async |ctx| {
        ctx.deliver(queued(1)).await;
        ctx.drain().await;
        ctx.expect_log("provision.dropped op=create runner=aci-runner-1").await;
        assert!(ctx.logs().contains("'Issuer' claim ('iss')"), "{}", ctx.logs());
        ctx.arm().expect_groups([]);
    })
    .await;
}
