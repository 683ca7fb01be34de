//! `handler check`: validates every setting and reaches each dependency with the configured
//! credential, one line per check with the fix when it fails. Secret values are never printed.

use std::fmt::Write as _;

use crate::config::{Config, Scope};
use crate::functions::App;
use crate::github::webhook::split_secrets;
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

pub fn settings_check(result: &Result<Config, crate::config::ConfigError>) -> Check {
    match result {
        Ok(c) => pass(
            "settings",
            format!(
                "scope {}, labels [{}], prefix {}, MAX_RUNNERS {}, DRY_RUN {}, runners function {}",
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

    let pat = match app.secrets.read(&cfg.pat_secret_name).await {
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

    match &pat {
        None => {
            out.push(skip("github.token", "no PAT (see keyvault.github-pat)"));
            out.push(skip("github.runner-rights", "no PAT"));
        }
        Some(pat) => {
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
            let mut targets: Vec<String> = match cfg.scope {
                Scope::Repo => cfg.allowed_repositories.clone(),
                Scope::Org { .. } => cfg.allowed_owners.clone(),
            };
            // The warm floors' targets: the sweeper registers runners there on its own.
            for f in cfg.warm.iter().flat_map(|w| &w.floors) {
                if !targets.iter().any(|t| t.eq_ignore_ascii_case(&f.target)) {
                    targets.push(f.target.clone());
                }
            }
            if targets.is_empty() {
                out.push(skip(
                    "github.runner-rights",
                    match cfg.scope {
                        Scope::Repo => "no ALLOWED_REPOSITORIES to check the PAT's rights on",
                        Scope::Org { .. } => "no ALLOWED_OWNERS to check the PAT's rights on",
                    },
                ));
            }
            for t in &targets {
                let target = Target::named(&cfg.scope, t);
                match app.github.runner_rights(pat, target).await {
                    Ok(()) => out.push(pass("github.runner-rights", format!("can manage self-hosted runners of {target}"))),
                    Err(e) => out.push(fail(
                        "github.runner-rights",
                        format!("{target}: {e}"),
                        match cfg.scope {
                            Scope::Repo => "give the PAT admin rights on the repository (classic: repo; fine-grained: Administration read and write)",
                            Scope::Org { .. } => "give the PAT the organization's runner rights (classic: admin:org; fine-grained: Self-hosted runners read and write)",
                        },
                    )),
                }
            }
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
