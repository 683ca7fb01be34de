//! `handler`: the custom handler for the Functions host, and the same binary as a CLI.
//! This file is wiring only.

use std::process::ExitCode;
use std::sync::Arc;

use aci_runners::azure::CredentialKind;
use aci_runners::config::{Config, Env};
use aci_runners::functions::App;
use aci_runners::{cli, host, http, log};

fn process_env() -> impl Env {
    |name: &str| std::env::var(name).ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = process_env();
    let result = if args.is_empty() { serve(&env) } else { cli::run(&args, &env) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error("handler.stopped", &[("error", &format!("{e:#}"))]);
            ExitCode::FAILURE
        }
    }
}

/// Serves the Functions host: the settings, the clients, the function table, the port.
fn serve(env: &dyn Env) -> anyhow::Result<()> {
    let port: u16 = env
        .get("FUNCTIONS_CUSTOMHANDLER_PORT")
        .ok_or_else(|| {
            anyhow::anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not set (the Functions host sets it; run `handler --help` for the CLI)")
        })?
        .parse()
        .map_err(|_| anyhow::anyhow!("setting FUNCTIONS_CUSTOMHANDLER_PORT: not a port number"))?;
    let cfg = Config::from_env(env)?;
    for w in cfg.warnings() {
        log::error("config.warning", &[("warning", &w)]);
    }
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
    let extra_roots = cli::extra_roots(env)?;
    let options = host::ServeOptions {
        header_read_timeout: cfg.host_header_timeout,
        ..Default::default()
    };
    runtime.block_on(async move {
        let app = Arc::new(App::new(cfg, CredentialKind::ManagedIdentity, extra_roots.as_deref())?);
        log::info("handler.starting", &[("version", &http::USER_AGENT), ("dry_run", &dry_run)]);
        host::serve(port, app.functions(), options).await
    })
}
