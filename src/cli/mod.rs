//! The same binary as a command line: `plan`, `check`, `sweep`, `report`, from a workstation or the
//! Function App's console. Each command has its own `--help`.

pub mod check;
pub mod plan;
pub mod sweep;

use crate::azure::CredentialKind;
use crate::config::{Config, Env};
use crate::functions::App;

pub const USAGE: &str = "\
usage:
  handler                  serve the Functions host on FUNCTIONS_CUSTOMHANDLER_PORT
  handler plan [FILE]      what a webhook delivery would do, with no network
  handler sweep --dry-run  what the sweeper would delete now, and why
  handler sweep --yes      the same, deleting
  handler check            validate every setting and reach each dependency
  handler report FILE...   time to a runner, runner minutes and cost, from exported logs
  handler --version
Run `handler COMMAND --help` for a command's details.";

const PLAN_USAGE: &str = "\
usage: handler plan [FILE]
  Print what a webhook delivery (a JSON payload file; default: an embedded queued
  workflow_job for [self-hosted, aci]) would do: the decision, the queue message, the GitHub
  call and the exact container group body, secrets redacted. No network; settings that say
  where things live get built-in stand-ins when unset.";

const SWEEP_USAGE: &str = "\
usage: handler sweep --dry-run | --yes
  Run the sweeper once and print each deletion with its reason, then the summary line.
  --dry-run  change nothing, print the plan
  --yes      carry it out
  Credential: the managed identity when IDENTITY_ENDPOINT is set, else the Azure CLI /
  Azure Developer CLI login.";

const CHECK_USAGE: &str = "\
usage: handler check
  Validate every setting, then reach Key Vault, ARM, GitHub and the OIDC issuer with the
  configured credential: one PASS/FAIL/SKIP line per check, a fix: line under each failure.
  Exits 1 when a check failed. Credential: as for sweep.";

const REPORT_USAGE: &str = "\
usage: handler report [--html OUT] [--vcpu-second-price USD] [--gb-second-price USD] FILE...
  Read the job's timeline lines (job.queued/started/completed, provision result=created,
  group.deleted, the sweep summary) from Application Insights exports (the JSON of
  `az monitor app-insights query` or `az monitor log-analytics query`, the portal's CSV) or
  plain log text, and print per day and per repository: jobs, time to a runner (p50, p95,
  max) split at our PUT, runner minutes, vCPU- and GB-hours, estimated cost, failures and
  what the sweeper removed. No network, no settings.
  --html OUT               also write one self-contained page with charts to OUT
  --vcpu-second-price USD  ACI price per vCPU-second (default: Linux list price, see README)
  --gb-second-price USD    ACI price per GB-second (default: Linux list price, see README)";

/// Writes to stdout. A reader that went away (`handler plan | head`) is no error of ours.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Is the first argument a request for help?
fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| matches!(a.as_str(), "--help" | "-h"))
}

/// Runs one command (`args` without the program name, not empty).
pub fn run(args: &[String], env: &dyn Env) -> anyhow::Result<()> {
    let (command, rest) = args.split_first().expect("a command");
    match command.as_str() {
        "plan" if wants_help(rest) => say(&format!("{PLAN_USAGE}\n")),
        "sweep" if wants_help(rest) => say(&format!("{SWEEP_USAGE}\n")),
        "check" if wants_help(rest) => say(&format!("{CHECK_USAGE}\n")),
        "report" if wants_help(rest) => say(&format!("{REPORT_USAGE}\n")),
        "plan" => run_plan(env, rest)?,
        "sweep" => run_sweep(env, rest)?,
        "check" => run_check(env, rest)?,
        "report" => run_report(rest)?,
        "--version" | "-V" => say(&format!("{}\n", crate::http::USER_AGENT)),
        "--help" | "-h" | "help" => say(&format!("{USAGE}\n")),
        other => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
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

/// `SSL_CERT_FILE`'s certificates, trusted beside the system roots.
pub fn extra_roots(env: &dyn Env) -> anyhow::Result<Option<Vec<u8>>> {
    match env.get("SSL_CERT_FILE") {
        Some(path) => Ok(Some(
            std::fs::read(&path).map_err(|e| anyhow::anyhow!("setting SSL_CERT_FILE: reading {path}: {e}"))?,
        )),
        None => Ok(None),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run_plan(env: &dyn Env, args: &[String]) -> anyhow::Result<()> {
    let file = match args {
        [] => None,
        [f] if !f.starts_with('-') => Some(f),
        _ => anyhow::bail!("plan takes one FILE at most\n{PLAN_USAGE}"),
    };
    let cfg = Config::for_plan(env)?;
    let payload = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("reading {f}: {e}"))?,
        None => plan::EXAMPLE_QUEUED.to_string(),
    };
    say(&plan::plan(&cfg, &payload, time::OffsetDateTime::now_utc())?);
    Ok(())
}

fn run_check(env: &dyn Env, args: &[String]) -> anyhow::Result<()> {
    if let Some(bad) = args.first() {
        anyhow::bail!("check takes no arguments, got {bad:?}\n{CHECK_USAGE}");
    }
    let cfg = Config::from_env(env);
    let mut checks = vec![check::settings_check(&cfg)];
    if let Ok(cfg) = cfg {
        let app = App::new(cfg, operator_credential(env), extra_roots(env)?.as_deref())?;
        checks.extend(runtime()?.block_on(check::dependencies(&app)));
    }
    say(&check::render(&checks));
    let failed = checks.iter().filter(|c| matches!(c.status, check::Status::Fail { .. })).count();
    if failed > 0 {
        anyhow::bail!("{failed} checks failed");
    }
    Ok(())
}

fn run_sweep(env: &dyn Env, args: &[String]) -> anyhow::Result<()> {
    let dry_run = args.iter().any(|f| f == "--dry-run");
    let yes = args.iter().any(|f| f == "--yes");
    if let Some(bad) = args.iter().find(|f| *f != "--dry-run" && *f != "--yes") {
        anyhow::bail!("unknown flag {bad:?} for sweep (use --dry-run or --yes)");
    }
    if !dry_run && !yes {
        anyhow::bail!("sweep deletes container groups and runner registrations: pass --dry-run to see the plan, or --yes to carry it out");
    }
    let cfg = Config::from_env(env)?;
    let app = App::new(cfg, operator_credential(env), extra_roots(env)?.as_deref())?;
    let report = runtime()?.block_on(crate::functions::sweep::sweep(&app, dry_run || app.cfg.dry_run));
    say(&sweep::render(&report));
    if report.failed() > 0 {
        anyhow::bail!("{} operations failed", report.failed());
    }
    Ok(())
}

/// A price option's value: a non-negative number of dollars.
fn price(flag: &str, value: Option<&String>) -> anyhow::Result<f64> {
    let v = value.ok_or_else(|| anyhow::anyhow!("{flag} needs a price in USD per second\n{REPORT_USAGE}"))?;
    v.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p >= 0.0)
        .ok_or_else(|| anyhow::anyhow!("{flag} {v:?} is not a price (a number of USD per second, like 0.0000113)"))
}

fn run_report(args: &[String]) -> anyhow::Result<()> {
    let mut files = vec![];
    let mut html = None;
    let mut prices = crate::report::Prices::default();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--html" => {
                html = Some(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--html needs a file to write\n{REPORT_USAGE}"))?,
                )
            }
            "--vcpu-second-price" => prices.vcpu_second = price(a, args.next())?,
            "--gb-second-price" => prices.gb_second = price(a, args.next())?,
            flag if flag.starts_with('-') => anyhow::bail!("unknown flag {flag:?} for report\n{REPORT_USAGE}"),
            file => files.push(file.to_string()),
        }
    }
    if files.is_empty() {
        anyhow::bail!("report needs at least one FILE\n{REPORT_USAGE}");
    }
    let inputs = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| (f.clone(), t))
                .map_err(|e| anyhow::anyhow!("reading {f}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = crate::report::build(&inputs, prices)?;
    say(&crate::report::text::render(&report.figures, &report.sources));
    if let Some(out) = html {
        std::fs::write(out, crate::report::html::render(&report.figures, &report.sources))
            .map_err(|e| anyhow::anyhow!("writing {out}: {e}"))?;
        say(&format!("wrote {out}\n"));
    }
    Ok(())
}
