//! `handler check` against the fakes: every check passes on a good setup, and each broken
//! dependency fails its own check with a fix. No secret value is ever printed.

mod common;

use common::fakes::{Fault, MI_TOKEN};
use common::net::Resp;
use common::*;
use serde_json::json;

async fn check(ctx: &Ctx, env: &[(&str, &str)]) -> (bool, String) {
    let out = ctx.cli(&["check"], env).await;
    let text = format!("{}{}", out.stdout, out.stderr);
    for s in [PAT, WEBHOOK_SECRET, MI_TOKEN] {
        assert!(!text.contains(s), "a secret was printed:\n{text}");
    }
    (out.ok, text)
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
}

#[tokio::test]
async fn a_good_setup_passes_every_check() {
    run_test(World::new().without_host(), async |ctx| {
        let extra = [
            ("OIDC_AUDIENCE", common::oidc::AUDIENCE),
            ("ALLOWED_REPOSITORIES", "octo-org/octo-repo"),
        ];
        let (ok, text) = check(ctx, &extra).await;
        assert!(ok, "{text}");
        for name in [
            "settings",
            "keyvault.github-pat",
            "keyvault.webhook-secret",
            "arm.resource-group",
            "github.token",
            "github.runner-rights",
            "oidc.issuer",
        ] {
            assert!(line(&text, name).starts_with("PASS"), "{text}");
        }
        assert!(
            line(&text, "github.token").contains("rate limit 4999 of 5000 left, scopes [repo, workflow]"),
            "{text}"
        );
        assert!(line(&text, "github.runner-rights").contains("repo octo-org/octo-repo"), "{text}");
        assert!(text.contains("7 checks, 0 failed"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn each_broken_dependency_fails_its_check_with_a_fix() {
    run_test(World::new().without_host(), async |ctx| {
        // A bad setting stops before any call.
        let (ok, text) = check(ctx, &[("RUNNER_SCOPE", "enterprise")]).await;
        assert!(!ok);
        assert!(
            line(&text, "settings").starts_with("FAIL settings") && text.contains("RUNNER_SCOPE"),
            "{text}"
        );
        assert!(text.contains("fix: set RUNNER_SCOPE"), "{text}");

        // The PAT is missing from the vault: GitHub checks are skipped.
        ctx.vault().secrets.remove("github-pat");
        let (ok, text) = check(ctx, &[]).await;
        assert!(!ok);
        assert!(
            line(&text, "keyvault.github-pat").starts_with("FAIL") && text.contains("SecretNotFound"),
            "{text}"
        );
        assert!(line(&text, "github.token").starts_with("SKIP"), "{text}");
        assert!(line(&text, "keyvault.webhook-secret").starts_with("PASS"), "{text}");
        ctx.vault().secret("github-pat", PAT);

        // GitHub refuses the PAT; ARM refuses the identity; the repository is out of reach.
        ctx.github().pat = "ghp_someone_elses".into();
        ctx.arm().c.faults.push(Fault {
            only: None,
            op: "list",
            times: 1,
            resp: Resp::json(403, json!({"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/read'"}})),
        });
        let (ok, text) = check(ctx, &[("ALLOWED_REPOSITORIES", "octo-org/octo-repo")]).await;
        assert!(!ok);
        assert!(
            line(&text, "github.token").starts_with("FAIL") && text.contains("Bad credentials"),
            "{text}"
        );
        assert!(
            line(&text, "arm.resource-group").starts_with("FAIL") && text.contains("AuthorizationFailed"),
            "{text}"
        );
        assert!(line(&text, "github.runner-rights").starts_with("FAIL"), "{text}");
        assert!(text.contains("fix: give the PAT admin rights on the repository"), "{text}");
        assert!(
            text.contains("fix: check AZURE_SUBSCRIPTION_ID and RUNNER_RESOURCE_GROUP"),
            "{text}"
        );

        // The OIDC issuer is unreachable.
        let (_, text) = check(ctx, &[("OIDC_AUDIENCE", "x"), ("OIDC_ISSUER", "https://nowhere.test")]).await;
        assert!(line(&text, "oidc.issuer").starts_with("FAIL"), "{text}");
        ctx.expect_refused("nowhere.test:443");
    })
    .await;
}

#[tokio::test]
async fn app_mode_checks_the_key_the_jwt_the_webhook_and_each_installation() {
    use common::fakes::{APP_CLIENT_ID, APP_KEY_NAME};
    run_test(World::new().without_host().github_app(&["octo-org"]), async |ctx| {
        let app = [
            ("GITHUB_APP_CLIENT_ID", APP_CLIENT_ID),
            ("ALLOWED_REPOSITORIES", "octo-org/octo-repo"),
        ];
        let (ok, text) = check(ctx, &app).await;
        assert!(ok, "{text}");
        assert!(
            line(&text, "settings").contains(&format!("GitHub App {APP_CLIENT_ID}")),
            "the mode: {text}"
        );
        for name in [
            "keyvault.app-key",
            "github.app",
            "github.app-webhook",
            "github.app-installation",
            "github.runner-rights",
        ] {
            assert!(line(&text, name).starts_with("PASS"), "{text}");
        }
        assert!(
            !text.contains("keyvault.github-pat") && !text.contains("github.token"),
            "no PAT checks: {text}"
        );
        assert!(
            line(&text, "github.app-webhook")
                .contains("https://func-aci-runners.azurewebsites.net/api/github/webhook, events [workflow_job]"),
            "{text}"
        );
        assert!(
            !text.contains("fn-key-leaktest"),
            "the function key in the hook URL is never printed: {text}"
        );
        assert!(
            line(&text, "github.app-installation").contains("administration: write, actions: read"),
            "{text}"
        );
        for t in ctx.github().app.tokens.keys() {
            assert!(!text.contains(t.as_str()), "an installation token was printed");
        }
        for j in &ctx.github().app.jwts_seen {
            assert!(!text.contains(j.as_str()), "a JWT was printed");
        }

        // The App lacks a permission on one owner and is not installed on another; the webhook
        // is not subscribed to workflow_job.
        ctx.github().install("octo-org", &[("actions", "read")]);
        ctx.github().app.events = vec!["push".into()];
        let (ok, text) = check(ctx, &[app[0], ("ALLOWED_REPOSITORIES", "octo-org/octo-repo,other-org/x")]).await;
        assert!(!ok);
        let installations: Vec<&str> = text.lines().filter(|l| l.contains("github.app-installation")).collect();
        assert!(
            installations[0].starts_with("FAIL") && installations[0].contains("without administration: write"),
            "{text}"
        );
        assert!(text.contains("fix: grant the App administration: write"), "{text}");
        assert!(
            installations[1].starts_with("FAIL") && installations[1].contains("not installed on repo other-org/x"),
            "{text}"
        );
        assert!(text.contains("fix: install the App on other-org/x"), "{text}");
        assert!(line(&text, "github.app-webhook").starts_with("FAIL"), "{text}");
        assert!(text.contains("subscribe to Workflow job"), "{text}");

        // The key is not in the vault: nothing that needs a JWT is tried.
        ctx.vault().keys.remove(APP_KEY_NAME);
        let (ok, text) = check(ctx, &app).await;
        assert!(!ok);
        assert!(
            line(&text, "keyvault.app-key").starts_with("FAIL") && text.contains("KeyNotFound"),
            "{text}"
        );
        assert!(
            text.contains("fix: import the App's private key as an RSA key: az keyvault key import"),
            "{text}"
        );
        assert!(line(&text, "github.app").starts_with("SKIP"), "{text}");
        assert!(line(&text, "github.app-installation").starts_with("SKIP"), "{text}");

        // A PAT secret name beside the App: the settings check names both.
        let (ok, text) = check(ctx, &[app[0], ("GITHUB_PAT_SECRET_NAME", "github-pat")]).await;
        assert!(!ok);
        assert!(
            line(&text, "settings").contains("GITHUB_APP_CLIENT_ID") && line(&text, "settings").contains("GITHUB_PAT_SECRET_NAME"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn warm_runners_are_in_the_settings_line_and_their_targets_rights_are_checked() {
    run_test(World::new().without_host(), async |ctx| {
        let extra = [("WARM_RUNNERS", "octo-org/octo-repo=2"), ("WARM_HOURS", "Mon-Fri 07:00-19:00")];
        let (ok, text) = check(ctx, &extra).await;
        assert!(ok, "{text}");
        assert!(
            line(&text, "settings").contains(", warm runners octo-org/octo-repo=2 (during WARM_HOURS)"),
            "{text}"
        );
        assert!(line(&text, "github.runner-rights").contains("repo octo-org/octo-repo"), "{text}");
    })
    .await;
}
