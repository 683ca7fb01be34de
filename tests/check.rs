//! `handler check` against the fakes: every check passes on a good setup, and each broken
//! dependency fails its own check with a fix. No secret value is ever printed.

mod common;

use common::fakes::{Fault, MI_TOKEN};
use common::net::Resp;
use common::*;
use serde_json::json;

fn check(b: &Bench, extra: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .arg("check")
        .env_clear()
        .envs(&b.settings)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for s in [PAT, WEBHOOK_SECRET, MI_TOKEN] {
        assert!(!text.contains(s), "a secret was printed:\n{text}");
    }
    (out.status.success(), text)
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_setup_passes_every_check() {
    let b = Bench::new(&[]).await;
    let extra = [
        ("OIDC_AUDIENCE", common::oidc::AUDIENCE),
        ("ALLOWED_REPOSITORIES", "octo-org/octo-repo"),
    ];
    let (ok, text) = tokio::task::block_in_place(|| check(&b, &extra));
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
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_dependency_fails_its_check_with_a_fix() {
    // A bad setting stops before any call.
    let b = Bench::new(&[]).await;
    let (ok, text) = tokio::task::block_in_place(|| check(&b, &[("RUNNER_SCOPE", "enterprise")]));
    assert!(!ok);
    assert!(
        line(&text, "settings").starts_with("FAIL settings") && text.contains("RUNNER_SCOPE"),
        "{text}"
    );
    assert!(text.contains("fix: set RUNNER_SCOPE"), "{text}");

    // The PAT is missing from the vault: GitHub checks are skipped.
    b.vault.lock().unwrap().secrets.remove("github-pat");
    let (ok, text) = tokio::task::block_in_place(|| check(&b, &[]));
    assert!(!ok);
    assert!(
        line(&text, "keyvault.github-pat").starts_with("FAIL") && text.contains("SecretNotFound"),
        "{text}"
    );
    assert!(line(&text, "github.token").starts_with("SKIP"), "{text}");
    assert!(line(&text, "keyvault.webhook-secret").starts_with("PASS"), "{text}");
    b.vault.lock().unwrap().secrets.insert("github-pat".into(), PAT.into());

    // GitHub refuses the PAT; ARM refuses the identity; the repository is out of reach.
    b.github.lock().unwrap().pat = "ghp_someone_elses".into();
    b.arm.lock().unwrap().c.faults.push(Fault {
        only: None,
        op: "list",
        times: 1,
        resp: Resp::json(403, json!({"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/read'"}})),
    });
    let (ok, text) = tokio::task::block_in_place(|| check(&b, &[("ALLOWED_REPOSITORIES", "octo-org/octo-repo")]));
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
    let (_, text) = tokio::task::block_in_place(|| check(&b, &[("OIDC_AUDIENCE", "x"), ("OIDC_ISSUER", "https://nowhere.test")]));
    assert!(line(&text, "oidc.issuer").starts_with("FAIL"), "{text}");
    b.proxy_refused.lock().unwrap().clear();
    b.stop().await;
}
