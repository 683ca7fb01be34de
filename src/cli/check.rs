//! `handler check`: validates every setting and reaches each dependency with the configured
//! credential, one line per check with the fix when it fails. Secret values are never printed.

use std::fmt::Write as _;

use crate::config::{Config, Scope};
use crate::functions::App;
use crate::github::app::AppAuth;
use crate::github::webhook::split_secrets;
use crate::github::Credential;
use crate::rules::group::is_managed;
use crate::target::Target;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail { fix: String },
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn pass(name: &str, detail: String) -> Check {
    Check {
        name: name.into(),
        status: Status::Pass,
        detail,
    }
}

fn fail(name: &str, detail: String, fix: &str) -> Check {
    Check {
        name: name.into(),
        status: Status::Fail { fix: fix.into() },
        detail,
    }
}

fn skip(name: &str, detail: &str) -> Check {
    Check {
        name: name.into(),
        status: Status::Skip,
        detail: detail.into(),
    }
}

/// The report as printed: `PASS name  detail`, `FAIL name  detail` + `      fix: …`, `SKIP …`.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Pass => "PASS",
            Status::Fail { .. } => "FAIL",
            Status::Skip => "SKIP",
        };
        let _ = writeln!(out, "{tag} {:<24} {}", c.name, c.detail);
        if let Status::Fail { fix } = &c.status {
            let _ = writeln!(out, "     fix: {fix}");
        }
    }
    let failed = checks.iter().filter(|c| matches!(c.status, Status::Fail { .. })).count();
    let _ = writeln!(out, "{} checks, {failed} failed", checks.len());
    out
}

/// The PAT's secret is readable.
async fn pat_check(app: &App, out: &mut Vec<Check>) -> Option<crate::secret::Secret> {
    let cfg = &app.cfg;
    match app.secrets.read(&cfg.pat_secret_name).await {
        Ok(p) => {
            out.push(pass(
                "keyvault.github-pat",
                format!("secret {:?} readable in {}", cfg.pat_secret_name, cfg.key_vault_url),
            ));
            Some(p)
        }
        Err(e) => {
            out.push(fail(
                "keyvault.github-pat",
                e.to_string(),
                "check KEY_VAULT_URL and GITHUB_PAT_SECRET_NAME, set the secret (az keyvault secret set), and give the Function's identity 'Key Vault Secrets User' on the vault",
            ));
            None
        }
    }
}

/// The targets whose rights are checked: the allowed repositories (repo scope) or owners (org).
fn allowed_targets(cfg: &Config) -> Vec<String> {
    let mut targets = match cfg.scope {
        Scope::Repo => cfg.allowed_repositories.clone(),
        Scope::Org { .. } => cfg.allowed_owners.clone(),
    };
    // The warm floors' targets: the sweeper registers runners there on its own.
    for f in cfg.warm.iter().flat_map(|w| &w.floors) {
        if !targets.iter().any(|t| t.eq_ignore_ascii_case(&f.target)) {
            targets.push(f.target.clone());
        }
    }
    targets
}

/// Can the PAT or the App's installation token manage self-hosted runners in each target?
async fn runner_rights(app: &App, cred: &Credential, out: &mut Vec<Check>) {
    let cfg = &app.cfg;
    let who = match cred {
        Credential::Pat(_) => "PAT",
        Credential::App(_) => "App",
    };
    let targets = allowed_targets(cfg);
    if targets.is_empty() {
        out.push(skip(
            "github.runner-rights",
            &match cfg.scope {
                Scope::Repo => format!("no ALLOWED_REPOSITORIES to check the {who}'s rights on"),
                Scope::Org { .. } => format!("no ALLOWED_OWNERS to check the {who}'s rights on"),
            },
        ));
    }
    for t in &targets {
        let target = Target::named(&cfg.scope, t);
        match app.github.runner_rights(cred, target).await {
            Ok(()) => out.push(pass("github.runner-rights", format!("can manage self-hosted runners of {target}"))),
            Err(e) => out.push(fail(
                "github.runner-rights",
                format!("{target}: {e}"),
                match (cred, &cfg.scope) {
                    (Credential::Pat(_), Scope::Repo) => "give the PAT admin rights on the repository (classic: repo; fine-grained: Administration read and write)",
                    (Credential::Pat(_), Scope::Org { .. }) => "give the PAT the organization's runner rights (classic: admin:org; fine-grained: Self-hosted runners read and write)",
                    (Credential::App(_), Scope::Repo) => "install the App on the repository and grant it Repository permissions: Administration read and write, Actions read",
                    (Credential::App(_), Scope::Org { .. }) => "install the App on the organization and grant it Organization permissions: Self-hosted runners read and write; Repository permissions: Actions read",
                },
            )),
        }
    }
}

/// App mode: the key signs (one `sign` in Key Vault, the key itself never read).
async fn key_check(app: &App, a: &AppAuth, out: &mut Vec<Check>) -> bool {
    let cfg = &app.cfg;
    let key = cfg.github_app.as_ref().map(|g| g.key_name.as_str()).unwrap_or_default();
    match a.signed_jwt().await {
        Ok(()) => {
            out.push(pass(
                "keyvault.app-key",
                format!("key {key:?} in {} signs (RS256)", cfg.key_vault_url),
            ));
            true
        }
        Err(e) => {
            out.push(fail(
                "keyvault.app-key",
                e.to_string(),
                &format!("import the App's private key as an RSA key: az keyvault key import --vault-name <vault> --name {key} --pem-file <app>.private-key.pem; give the Function's identity the sign permission on that key (infra/main.bicep with githubAuth=app)"),
            ));
            false
        }
    }
}

/// The permissions a scope needs of the App, and what each is for.
fn needed_permissions(scope: &Scope) -> &'static [(&'static str, &'static str)] {
    match scope {
        Scope::Repo => &[("administration", "write"), ("actions", "read")],
        Scope::Org { .. } => &[("organization_self_hosted_runners", "write"), ("actions", "read")],
    }
}

/// Does a granted level (`read`/`write`/`admin`) cover the needed one?
fn covers(granted: &str, needed: &str) -> bool {
    let rank = |l: &str| match l {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    };
    rank(granted) >= rank(needed)
}

/// App mode: GitHub takes the JWT, the webhook is set and subscribed to `workflow_job`, the App
/// is installed on each allowed owner with the permissions the scope needs, and its tokens can
/// manage runners there.
async fn app_checks(app: &App, a: &AppAuth, signs: bool, out: &mut Vec<Check>) {
    let cfg = &app.cfg;
    if !signs {
        for name in [
            "github.app",
            "github.app-webhook",
            "github.app-installation",
            "github.runner-rights",
        ] {
            out.push(skip(name, "no App JWT (see keyvault.app-key)"));
        }
        return;
    }
    let info = match a.app_info().await {
        Ok(i) => {
            out.push(pass(
                "github.app",
                format!("App {} takes the JWT (iss {})", i.slug.as_deref().unwrap_or("?"), a.client_id()),
            ));
            i
        }
        Err(e) => {
            out.push(fail(
                "github.app",
                e.to_string(),
                "set GITHUB_APP_CLIENT_ID to the App's client id (the App's settings page) and import the App's current private key into GITHUB_APP_KEY_NAME; check GITHUB_API_URL",
            ));
            for name in ["github.app-webhook", "github.app-installation", "github.runner-rights"] {
                out.push(skip(name, "GitHub did not take the App's JWT (see github.app)"));
            }
            return;
        }
    };
    let webhook_fix = "in the App's settings: tick Webhook Active, set the URL to https://<function app>/api/github/webhook?code=<function key> and the secret to the one in GITHUB_WEBHOOK_SECRET_NAME; under Permissions & events subscribe to Workflow job";
    match a.hook_config().await {
        Ok(h) => {
            let url = h.url.as_deref().and_then(|u| reqwest::Url::parse(u).ok());
            let subscribed = info.events.iter().any(|e| e == "workflow_job");
            // Never the URL as it is: the function key travels in its query.
            let shown = url
                .as_ref()
                .map(|u| format!("{}://{}{}", u.scheme(), crate::http::host_of(u), u.path()))
                .unwrap_or_else(|| "no URL".into());
            let detail = format!(
                "webhook {shown}, events [{}]{}",
                info.events.join(", "),
                if h.content_type.as_deref() == Some("form") {
                    ", content type form"
                } else {
                    ""
                }
            );
            if url.is_some() && subscribed {
                out.push(pass("github.app-webhook", detail));
            } else {
                out.push(fail("github.app-webhook", detail, webhook_fix));
            }
        }
        Err(e) => out.push(fail("github.app-webhook", e.to_string(), webhook_fix)),
    }
    let owners: Vec<String> = {
        let mut o: Vec<String> = allowed_targets(cfg);
        if !cfg.scope.is_org() {
            o.extend(cfg.allowed_owners.iter().cloned());
        }
        o
    };
    if owners.is_empty() {
        out.push(skip(
            "github.app-installation",
            "no ALLOWED_OWNERS or ALLOWED_REPOSITORIES to check the installation on",
        ));
    }
    let needed = needed_permissions(&cfg.scope);
    for o in &owners {
        let target = Target::named(&cfg.scope, o);
        match a.installation(target).await {
            Ok(i) => {
                let missing: Vec<String> = needed
                    .iter()
                    .filter(|(p, level)| !i.permissions.get(*p).is_some_and(|g| covers(g, level)))
                    .map(|(p, level)| format!("{p}: {level}"))
                    .collect();
                let on = i.account.as_ref().map(|a| a.login.as_str()).unwrap_or(o);
                if missing.is_empty() {
                    out.push(pass(
                        "github.app-installation",
                        format!(
                            "installed on {on} (installation {}), with {}",
                            i.id,
                            needed.iter().map(|(p, l)| format!("{p}: {l}")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                } else {
                    out.push(fail(
                        "github.app-installation",
                        format!("installed on {on} (installation {}) without {}", i.id, missing.join(", ")),
                        &format!(
                            "grant the App {} in its settings (Permissions & events), then accept the new permissions on {on}'s installation",
                            missing.join(", ")
                        ),
                    ));
                }
            }
            Err(e) => out.push(fail(
                "github.app-installation",
                e.to_string(),
                &format!("install the App on {o} (the App's public page, Install App), with access to the repositories that run jobs here"),
            )),
        }
    }
    runner_rights(app, &Credential::App(app.github_app.clone().expect("App mode")), out).await;
}

pub fn settings_check(result: &Result<Config, crate::config::ConfigError>) -> Check {
    match result {
        Ok(c) => pass(
            "settings",
            format!(
                "{}, scope {}, labels [{}], prefix {}, MAX_RUNNERS {}, DRY_RUN {}, runners function {}",
                match &c.github_app {
                    Some(a) => format!("GitHub App {} (Key Vault key {:?})", a.client_id, a.key_name),
                    None => format!("PAT (Key Vault secret {:?})", c.pat_secret_name),
                },
                match c.scope {
                    Scope::Repo => "repo".to_string(),
                    Scope::Org { runner_group_id } => format!("org (runner group {runner_group_id})"),
                },
                c.runner_labels.join(", "),
                c.name_prefix,
                c.max_runners,
                c.dry_run,
                if c.oidc_audience.is_some() {
                    "on"
                } else {
                    "off (OIDC_AUDIENCE unset)"
                }
            ) + &warm_summary(c)
                + &c.warnings().iter().map(|w| format!("; WARNING: {w}")).collect::<String>(),
        ),
        Err(e) => fail(
            "settings",
            e.to_string(),
            &format!("set {} as the README's settings table says", e.setting),
        ),
    }
}

/// `, warm runners o/r=2, o/s=1 (during WARM_HOURS)` with `WARM_RUNNERS` set; nothing without.
fn warm_summary(c: &Config) -> String {
    let Some(w) = &c.warm else { return String::new() };
    let floors: Vec<String> = w.floors.iter().map(|f| format!("{}={}", f.target, f.runners)).collect();
    let when = if w.hours.is_empty() { "always" } else { "during WARM_HOURS" };
    format!(", warm runners {} ({when})", floors.join(", "))
}

/// Every check that needs the network, in order.
pub async fn dependencies(app: &App) -> Vec<Check> {
    let cfg = &app.cfg;
    let mut out = Vec::new();

    let pat = match &app.github_app {
        Some(_) => None,
        None => pat_check(app, &mut out).await,
    };
    let signs = match &app.github_app {
        Some(a) => key_check(app, a, &mut out).await,
        None => false,
    };
    match app.secrets.read(&cfg.webhook_secret_name).await {
        Ok(s) => {
            let n = split_secrets(&s).len();
            if n == 0 {
                out.push(fail(
                    "keyvault.webhook-secret",
                    format!("secret {:?} is empty", cfg.webhook_secret_name),
                    "set the webhook secret (one per line while rotating)",
                ));
            } else {
                out.push(pass(
                    "keyvault.webhook-secret",
                    format!("secret {:?} readable, {n} webhook secret(s)", cfg.webhook_secret_name),
                ));
            }
        }
        Err(e) => out.push(fail(
            "keyvault.webhook-secret",
            e.to_string(),
            "check GITHUB_WEBHOOK_SECRET_NAME, set the secret, and give the Function's identity 'Key Vault Secrets User' on the vault",
        )),
    }

    match app.arm.list_groups().await {
        Ok(groups) => {
            let managed = groups.iter().filter(|g| is_managed(&g.tags)).count();
            out.push(pass("arm.resource-group", format!("{} container groups in {}, {managed} managed by aci-runners", groups.len(), cfg.resource_group)));
        }
        Err(e) => out.push(fail(
            "arm.resource-group",
            e.to_string(),
            "check AZURE_SUBSCRIPTION_ID and RUNNER_RESOURCE_GROUP, and give the identity containerGroups read/write/delete on the resource group (infra/main.bicep's runner role)",
        )),
    }

    match (&app.github_app, &pat) {
        (Some(a), _) => app_checks(app, a, signs, &mut out).await,
        (None, None) => {
            out.push(skip("github.token", "no PAT (see keyvault.github-pat)"));
            out.push(skip("github.runner-rights", "no PAT"));
        }
        (None, Some(pat)) => {
            match app.github.token_info(pat).await {
                Ok(info) => {
                    let scopes = info.scopes.as_deref().map(|s| format!(", scopes [{s}]")).unwrap_or_else(|| ", fine-grained or app token".into());
                    let detail = format!("PAT valid, rate limit {} of {} left{scopes}", info.remaining, info.limit);
                    if info.remaining == 0 {
                        out.push(fail("github.token", detail, "wait for the rate limit window to reset, or use a token with its own limit"));
                    } else {
                        out.push(pass("github.token", detail));
                    }
                }
                Err(e) => out.push(fail(
                    "github.token",
                    e.to_string(),
                    "store a valid PAT (classic: repo, or admin:org for RUNNER_SCOPE=org; fine-grained: Administration read/write, or organization Self-hosted runners read/write); check GITHUB_API_URL",
                )),
            }
            runner_rights(app, &Credential::Pat(pat.clone()), &mut out).await;
        }
    }

    match &app.oidc {
        None => out.push(skip("oidc.issuer", "OIDC_AUDIENCE unset: the runners function is off")),
        Some(v) => match v.fetch_keys().await {
            Ok(keys) if !keys.is_empty() => out.push(pass("oidc.issuer", format!("{} signing keys from {}", keys.len(), cfg.oidc_issuer))),
            Ok(_) => out.push(fail(
                "oidc.issuer",
                format!("{} publishes no RS256 signing key", cfg.oidc_issuer),
                "check OIDC_ISSUER",
            )),
            Err(e) => out.push(fail(
                "oidc.issuer",
                e.to_string(),
                "check OIDC_ISSUER (GitHub Enterprise Server: https://HOST/_services/token) and outbound HTTPS",
            )),
        },
    }
    out
}
