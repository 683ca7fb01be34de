//! `handler`: the custom handler for the Functions host, and the same binary as a CLI.
//! This file is wiring only.

use std::process::ExitCode;
use std::sync::Arc;

use aci_runners::arm::Arm;
use aci_runners::azure::{self, CredentialKind, SecretStore};
use aci_runners::config::{Config, Env};
use aci_runners::functions::App;
use aci_runners::github::GitHub;
use aci_runners::{host, log, plan, retry};

const USAGE: &str = "\
usage:
  handler                  serve the Functions host on FUNCTIONS_CUSTOMHANDLER_PORT
  handler plan [FILE]      print what a webhook delivery (a JSON payload file; default: an
                           embedded queued workflow_job for [self-hosted, aci]) would do:
                           the decision and the exact container group body, secrets redacted.
                           No network; missing settings get built-in stand-ins.
  handler sweep --dry-run  run the sweeper once from a workstation and print what it would
                           delete and why (credential: the managed identity when
                           IDENTITY_ENDPOINT is set, else Azure CLI / azd login)
  handler sweep --yes      the same, deleting
  handler check            validate every setting and reach Key Vault, ARM, GitHub and the
                           OIDC issuer with the configured credential; one line per check
  handler --version";

fn process_env() -> impl Env {
    |name: &str| std::env::var(name).ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = process_env();
    let result = match args.first().map(String::as_str) {
        None => serve(&env),
        Some("plan") => run_plan(&env, args.get(1)),
        Some("sweep") => run_sweep(&env, &args[1..]),
        Some("check") => run_check(&env),
        Some("--version") | Some("-V") => {
            println!("{}", retry::USER_AGENT);
            Ok(())
        }
        Some("--help") | Some("-h") | Some("help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error("handler.stopped", &[("error", &format!("{e:#}"))]);
            ExitCode::FAILURE
        }
    }
}

fn run_plan(env: &dyn Env, file: Option<&String>) -> anyhow::Result<()> {
    let cfg = Config::for_plan(env)?;
    let payload = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("reading {f}: {e}"))?,
        None => plan::EXAMPLE_QUEUED.to_string(),
    };
    print!("{}", plan::plan(&cfg, &payload, time::OffsetDateTime::now_utc())?);
    Ok(())
}

/// The managed identity when the platform provides one, else the developer's CLI login.
fn operator_credential(env: &dyn Env) -> CredentialKind {
    if env.get("IDENTITY_ENDPOINT").is_some() {
        CredentialKind::ManagedIdentity
    } else {
        CredentialKind::Developer
    }
}

fn run_check(env: &dyn Env) -> anyhow::Result<()> {
    use aci_runners::check;
    let cfg = Config::from_env(env);
    let mut checks = vec![check::settings_check(&cfg)];
    if let Ok(cfg) = cfg {
        let kind = operator_credential(env);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let more = runtime.block_on(async move {
            let app = app(env, cfg, kind)?;
            Ok::<_, anyhow::Error>(check::dependencies(&app).await)
        })?;
        checks.extend(more);
    }
    print!("{}", check::render(&checks));
    let failed = checks.iter().filter(|c| matches!(c.status, check::Status::Fail { .. })).count();
    if failed > 0 {
        anyhow::bail!("{failed} checks failed");
    }
    Ok(())
}

fn run_sweep(env: &dyn Env, flags: &[String]) -> anyhow::Result<()> {
    let dry_run = flags.iter().any(|f| f == "--dry-run");
    let yes = flags.iter().any(|f| f == "--yes");
    if let Some(bad) = flags.iter().find(|f| *f != "--dry-run" && *f != "--yes") {
        anyhow::bail!("unknown flag {bad:?} for sweep (use --dry-run or --yes)");
    }
    if !dry_run && !yes {
        anyhow::bail!("sweep deletes container groups and runner registrations: pass --dry-run to see the plan, or --yes to carry it out");
    }
    let cfg = Config::from_env(env)?;
    let kind = if env.get("IDENTITY_ENDPOINT").is_some() {
        CredentialKind::ManagedIdentity
    } else {
        CredentialKind::Developer
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = app(env, cfg, kind)?;
        let report = aci_runners::functions::sweep::sweep(&app, dry_run || app.cfg.dry_run).await;
        for (d, ended) in &report.deletions {
            let what = [
                d.deregister
                    .as_ref()
                    .map(|r| format!("deregister runner {} ({})", r.name, r.target)),
                d.group.as_ref().map(|g| format!("delete group {g}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", then ");
            println!("{:<10} {what}: {ended}", d.reason.as_str());
        }
        for f in &report.read_failures {
            println!("read failed: {f}");
        }
        println!("{}", report.summary());
        if report.failed() > 0 {
            anyhow::bail!("{} operations failed", report.failed());
        }
        Ok(())
    })
}

fn app(env: &dyn Env, cfg: Config, kind: CredentialKind) -> anyhow::Result<App> {
    let extra_roots = match env.get("SSL_CERT_FILE") {
        Some(path) => Some(std::fs::read(&path).map_err(|e| anyhow::anyhow!("setting SSL_CERT_FILE: reading {path}: {e}"))?),
        None => None,
    };
    let http = retry::http_client(cfg.http_timeout, extra_roots.as_deref())?;
    let options = azure::client_options(&http, &cfg.retry);
    let credential = azure::credential(kind, cfg.azure_client_id.as_deref(), options.clone())?;
    let secrets = SecretStore::new(&cfg.key_vault_url, credential.clone(), options, cfg.secret_cache_ttl)?;
    let github = GitHub::new(http.clone(), &cfg.github_api_url, cfg.retry);
    let arm = Arm::new(
        http.clone(),
        credential,
        &cfg.arm_url,
        &cfg.subscription_id,
        &cfg.resource_group,
        &cfg.aci_api_version,
        cfg.retry,
    );
    let clock: aci_runners::functions::Clock = Arc::new(time::OffsetDateTime::now_utc);
    let oidc = cfg
        .oidc_audience
        .as_ref()
        .map(|aud| aci_runners::oidc::Verifier::new(http, &cfg.oidc_issuer, aud, cfg.retry, clock.clone()));
    Ok(App {
        cfg,
        secrets,
        github,
        arm,
        oidc,
        clock,
        admissions: Default::default(),
    })
}

fn serve(env: &dyn Env) -> anyhow::Result<()> {
    let port: u16 = env
        .get("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok_or_else(|| {
            anyhow::anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not set (the Functions host sets it; run `handler --help` for the CLI)")
        })?
        .parse()
        .map_err(|_| anyhow::anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not a port number"))?;
    let cfg = Config::from_env(env)?;
    let dry_run = cfg.dry_run;
    // One core (a pinned or single-vCPU worker): a single-threaded runtime, no work stealing.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let app = Arc::new(app(env, cfg, CredentialKind::ManagedIdentity)?);
        log::info("handler.starting", &[("version", &retry::USER_AGENT), ("dry_run", &dry_run)]);
        host::serve(port, app.functions()).await
    })
}
