//! The one way into an integration test, after rust-lang/bors's `run_test`:
//!
//! ```ignore
//! let world = World::new().setting("MAX_RUNNERS", "2").github(|gh| gh.job(501, "queued"));
//! run_test(world, async |ctx| {
//!     ctx.deliver(queued(501)).await.expect_status(202);
//!     ctx.drain().await;
//!     ctx.arm().expect_groups(["aci-runner-501"]);
//! })
//! .await;
//! ```
//!
//! `run_test` starts the fakes, applies the seeds, starts the handler under the fake host (unless
//! the world is [`World::without_host`]), and runs the body under a timeout: a hung handler
//! fails its test in seconds, with the handler's last log lines, and never hangs the suite.
//! However the body ends, the handler is stopped. When it ends well, the world checks what
//! every test must leave behind: no fake saw a call it did not expect, the proxy refused no
//! host, the handler is still running, and nothing is left in a queue or the poison queue
//! but what the test last expected there ([`Ctx::expect_queued`], [`Ctx::expect_poisoned`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::MutexGuard;
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::Value;

use super::fakes::{ArmState, GitHubState, IdentityState, VaultState};
use super::host::{FakeHost, HttpResult};
use super::{sign, Bench, WEBHOOK_SECRET};

/// The queue `github-webhook`, `runners` and `sweep` write and `provision` reads.
pub const QUEUE: &str = "runner-requests";

/// How long a test body may take by default. The slowest test takes two seconds or so.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How many of the handler's last log lines a failed or timed-out test shows.
const LOG_TAIL: usize = 30;

type Seed = Box<dyn FnOnce(&Bench) + Send>;

/// What a test starts from: app settings over the bench's defaults, and the fakes' state.
pub struct World {
    settings: Vec<(String, String)>,
    seeds: Vec<Seed>,
    host: bool,
    timeout: Duration,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World {
            settings: vec![],
            seeds: vec![],
            host: true,
            timeout: TEST_TIMEOUT,
        }
    }

    /// An app setting, over the bench's default.
    pub fn setting(mut self, name: &str, value: &str) -> World {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// What GitHub holds before the handler starts.
    pub fn github(mut self, seed: impl for<'a> FnOnce(&'a mut GitHubState) -> &'a mut GitHubState + Send + 'static) -> World {
        self.seeds.push(Box::new(move |b: &Bench| {
            seed(&mut b.github.lock().unwrap());
        }));
        self
    }

    /// What ARM holds before the handler starts.
    pub fn arm(mut self, seed: impl for<'a> FnOnce(&'a mut ArmState) -> &'a mut ArmState + Send + 'static) -> World {
        self.seeds.push(Box::new(move |b: &Bench| {
            seed(&mut b.arm.lock().unwrap());
        }));
        self
    }

    /// What Key Vault holds before the handler starts.
    pub fn vault(mut self, seed: impl for<'a> FnOnce(&'a mut VaultState) -> &'a mut VaultState + Send + 'static) -> World {
        self.seeds.push(Box::new(move |b: &Bench| {
            seed(&mut b.vault.lock().unwrap());
        }));
        self
    }

    /// GitHub App mode: `GITHUB_APP_CLIENT_ID` set (the key is the vault's `github-app-key`),
    /// and the App installed on `owners` with what runners need in both scopes.
    pub fn github_app(self, owners: &[&str]) -> World {
        let owners: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
        self.setting("GITHUB_APP_CLIENT_ID", super::fakes::APP_CLIENT_ID).github(move |gh| {
            for o in &owners {
                gh.install(
                    o,
                    &[
                        ("administration", "write"),
                        ("organization_self_hosted_runners", "write"),
                        ("actions", "read"),
                        ("metadata", "read"),
                    ],
                );
            }
            gh
        })
    }

    /// The fakes only: for tests of the CLI, which runs the handler binary itself.
    pub fn without_host(mut self) -> World {
        self.host = false;
        self
    }

    /// Another bound on the body than [`TEST_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> World {
        self.timeout = timeout;
        self
    }
}

/// Builds `world`, runs `body` in it and checks what it left. Returns what the body returns.
pub async fn run_test<T>(world: World, body: impl AsyncFnOnce(&Ctx) -> T) -> T {
    let settings: Vec<(&str, &str)> = world.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bench = Bench::new(&settings).await;
    for seed in world.seeds {
        seed(&bench);
    }
    let host = match world.host {
        true => Some(FakeHost::start(&bench.settings).await),
        false => None,
    };
    let mut ctx = Ctx {
        bench,
        host,
        queued: AtomicUsize::new(0),
        poisoned: AtomicUsize::new(0),
    };
    let outcome = tokio::time::timeout(world.timeout, AssertUnwindSafe(body(&ctx)).catch_unwind()).await;
    let failed = match outcome {
        Ok(Ok(value)) => match std::panic::catch_unwind(AssertUnwindSafe(|| ctx.check_what_is_left())) {
            Ok(()) => {
                ctx.stop().await;
                return value;
            }
            Err(panic) => panic,
        },
        Ok(Err(panic)) => panic,
        Err(_) => {
            let tail = ctx.log_tail();
            ctx.stop().await;
            panic!("the test did not finish within {:?}\n{tail}", world.timeout)
        }
    };
    eprintln!("{}", ctx.log_tail());
    ctx.stop().await;
    std::panic::resume_unwind(failed)
}

/// A running world, as the test body sees it.
pub struct Ctx {
    bench: Bench,
    host: Option<FakeHost>,
    /// What the test last expected in [`QUEUE`] and in the poison queue.
    queued: AtomicUsize,
    poisoned: AtomicUsize,
}

impl Ctx {
    /// Fires the `sweep` timer once, as the host does on schedule, and waits for a summary line.
    pub async fn sweep(&self) {
        let (status, body) = self.host().timer("sweep", serde_json::Value::Null, false).await;
        assert_eq!(status, 200, "{body}");
        self.expect_log("sweep groups=").await;
    }

    /// Every operation ARM has under way ends, and the runner of each group now running
    /// connects to GitHub (goes online, and may be handed a queued job at once). The one link
    /// between the two fakes: a container that runs is a runner that connects.
    pub fn start_runners(&self) {
        let running: Vec<String> = {
            let mut arm = self.arm();
            arm.settle();
            arm.groups
                .values()
                .filter(|g| g.provisioning_state == "Succeeded" && g.instance_state.as_deref() == Some("Running"))
                .map(|g| g.name.clone())
                .collect()
        };
        let mut gh = self.github();
        for name in running {
            if gh.runner_named(&name).is_some_and(|r| r.status != "online") {
                gh.runner_online(&name);
            }
        }
    }

    /// The last sweep's summary line.
    pub fn sweep_summary(&self) -> String {
        self.logs()
            .lines()
            .rfind(|l| l.starts_with("sweep groups="))
            .unwrap_or_default()
            .to_string()
    }

    /// The fake Functions host, for what the helpers here do not cover.
    pub fn host(&self) -> &FakeHost {
        self.host.as_ref().expect("this world has no host (World::without_host)")
    }

    pub fn github(&self) -> MutexGuard<'_, GitHubState> {
        self.bench.github.lock().unwrap()
    }

    pub fn arm(&self) -> MutexGuard<'_, ArmState> {
        self.bench.arm.lock().unwrap()
    }

    pub fn vault(&self) -> MutexGuard<'_, VaultState> {
        self.bench.vault.lock().unwrap()
    }

    pub fn identity(&self) -> MutexGuard<'_, IdentityState> {
        self.bench.identity.lock().unwrap()
    }

    /// A `workflow_job` (or other) delivery through the host, as GitHub sends it.
    pub async fn deliver(&self, d: Delivery) -> HttpResult {
        let signature = d.signature.unwrap_or_else(|| sign(&d.secret, &d.body));
        let headers = [
            ("Accept", "*/*"),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
            ("Content-Type", d.content_type),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-GitHub-Event", d.event.as_str()),
            ("X-GitHub-Hook-ID", "292430182"),
            ("X-GitHub-Hook-Installation-Target-ID", "79929171"),
            ("X-GitHub-Hook-Installation-Target-Type", "repository"),
            ("X-Hub-Signature-256", signature.as_str()),
        ];
        self.host().http("github-webhook", "POST", &headers, &d.body).await
    }

    /// Runs the queue-triggered functions until the queue is empty (failures are retried, then
    /// poisoned, as the host does). Returns the invocations made.
    pub async fn drain(&self) -> usize {
        self.host().drain().await
    }

    /// Invokes everything in the queue at once, as one batch. Returns the statuses.
    pub async fn invoke_batch(&self) -> Vec<u16> {
        self.host().invoke_batch().await
    }

    /// Fails the test unless [`QUEUE`] holds `n` messages now. Messages the test leaves there
    /// must be expected this way: at the end the queue holds what was last expected, or nothing.
    #[track_caller]
    pub fn expect_queued(&self, n: usize) {
        let queued = self.host().queued(QUEUE);
        assert_eq!(queued.len(), n, "messages in {QUEUE}: {queued:#?}");
        self.queued.store(n, Ordering::Relaxed);
    }

    /// Fails the test unless the poison queue holds `n` messages now. At the end it must hold
    /// what was last expected.
    #[track_caller]
    pub fn expect_poisoned(&self, n: usize) {
        let poisoned = self.host().poison.lock().unwrap().len();
        assert_eq!(poisoned, n, "messages in the poison queue");
        self.poisoned.store(n, Ordering::Relaxed);
    }

    /// Waits (bounded) for a line of the handler's output that holds `needle`.
    pub async fn expect_log(&self, needle: &str) {
        self.host().wait_log(needle).await
    }

    /// The handler's stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.host().logs()
    }

    /// Runs the handler binary as a CLI with the world's settings and `env` over them.
    pub async fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Cli {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_handler"))
            .args(args)
            .env_clear()
            .envs(&self.bench.settings)
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run the handler CLI");
        Cli {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails the test unless the proxy refused exactly `authority` (`host:port`) since the
    /// start, then forgets it: the test meant the handler to try a host off the bench.
    #[track_caller]
    pub fn expect_refused(&self, authority: &str) {
        let mut refused = self.bench.proxy_refused.lock().unwrap();
        assert!(
            !refused.is_empty() && refused.iter().all(|a| a == authority),
            "hosts the proxy refused: {refused:?}"
        );
        refused.clear();
    }

    /// The handler's last lines, for a test that failed.
    fn log_tail(&self) -> String {
        let Some(host) = &self.host else {
            return "(no handler in this world)".to_string();
        };
        let tail = |lines: &std::sync::Mutex<Vec<String>>| {
            let lines = lines.lock().unwrap();
            match lines.len() {
                0 => "(none)".to_string(),
                n => lines[n.saturating_sub(LOG_TAIL)..].join("\n"),
            }
        };
        format!(
            "the handler's last stdout lines:\n{}\nits last stderr lines:\n{}",
            tail(&host.stdout),
            tail(&host.stderr)
        )
    }

    /// The checks every test ends with.
    fn check_what_is_left(&mut self) {
        self.bench.assert_clean();
        let Some(host) = &mut self.host else {
            return;
        };
        if let Some(status) = host.exited() {
            panic!("the handler exited during the test ({status})");
        }
        for (queue, messages) in host.queues.lock().unwrap().iter() {
            let expected = if queue == QUEUE { self.queued.load(Ordering::Relaxed) } else { 0 };
            assert!(
                messages.is_empty() || messages.len() == expected,
                "{} messages left in {queue}, and the test last expected {expected} there \
                 (ctx.drain() them or say ctx.expect_queued(n)): {messages:#?}",
                messages.len()
            );
        }
        let poisoned = host.poison.lock().unwrap();
        assert_eq!(
            poisoned.len(),
            self.poisoned.load(Ordering::Relaxed),
            "messages left in the poison queue (say ctx.expect_poisoned(n)): {poisoned:#?}"
        );
    }

    async fn stop(self) {
        if let Some(host) = self.host {
            host.stop().await;
        }
    }
}

/// What the handler CLI printed.
pub struct Cli {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A delivery as GitHub sends it, signed with the current webhook secret unless told otherwise.
#[derive(Clone)]
pub struct Delivery {
    pub event: String,
    pub body: Vec<u8>,
    secret: String,
    signature: Option<String>,
    content_type: &'static str,
}

impl Delivery {
    pub fn new(event: &str, body: impl Into<Vec<u8>>) -> Delivery {
        Delivery {
            event: event.into(),
            body: body.into(),
            secret: WEBHOOK_SECRET.into(),
            signature: None,
            content_type: "application/json",
        }
    }

    /// Signed with another secret.
    pub fn signed_with(mut self, secret: &str) -> Delivery {
        self.secret = secret.into();
        self
    }

    /// With this `X-Hub-Signature-256`, whatever the body.
    pub fn signature(mut self, header: &str) -> Delivery {
        self.signature = Some(header.into());
        self
    }

    /// As `application/x-www-form-urlencoded` (`payload=…`), GitHub's default content type.
    pub fn form_encoded(mut self) -> Delivery {
        self.body = format!("payload={}", form_urlencoded::byte_serialize(&self.body).collect::<String>()).into_bytes();
        self.content_type = "application/x-www-form-urlencoded";
        self
    }
}

/// The labels this deployment serves, as a job asks for them.
const SERVED: [&str; 2] = ["self-hosted", "aci"];

/// A queued `workflow_job` for `job_id` with labels this deployment serves (runner fields null,
/// as in a real queued delivery).
pub fn queued(job_id: u64) -> Delivery {
    let mut v: Value = serde_json::from_slice(include_bytes!("../data/workflow_job__queued.payload.json")).unwrap();
    v["workflow_job"]["id"] = job_id.into();
    v["workflow_job"]["labels"] = SERVED.into();
    for k in ["runner_id", "runner_name", "runner_group_id", "runner_group_name"] {
        v["workflow_job"][k] = Value::Null;
    }
    Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap())
}

/// A completed `workflow_job` for `job_id`, run by `runner` (None = cancelled while queued).
pub fn completed(job_id: u64, runner: Option<&str>) -> Delivery {
    let mut v: Value = serde_json::from_slice(include_bytes!(
        "../data/workflow_job__completed.success.with-organization.payload.json"
    ))
    .unwrap();
    v["workflow_job"]["id"] = job_id.into();
    v["workflow_job"]["labels"] = SERVED.into();
    v["workflow_job"]["runner_name"] = runner.map(Value::from).unwrap_or(Value::Null);
    Delivery::new("workflow_job", serde_json::to_vec(&v).unwrap())
}

// Seeds and expectations on the fakes' state.

impl GitHubState {
    /// A job GitHub knows, by its status (`queued`, `in_progress`, `completed`).
    pub fn job(&mut self, id: u64, status: &str) -> &mut Self {
        self.jobs.insert(id, status.into());
        self
    }

    /// A workflow run GitHub knows, by its status.
    pub fn run(&mut self, id: u64, status: &str) -> &mut Self {
        self.runs.insert(id, status.into());
        self
    }

    /// The GitHub App installed on `owner`, with these permissions. Returns the installation id
    /// through [`GitHubState::installation_id`].
    pub fn install(&mut self, owner: &str, permissions: &[(&str, &str)]) -> &mut Self {
        let id = 9000 + self.app.installations.len() as u64 + 1;
        self.app.installations.insert(
            owner.to_ascii_lowercase(),
            super::fakes::FakeInstallation {
                id,
                login: owner.to_string(),
                permissions: permissions.iter().map(|(p, l)| (p.to_string(), l.to_string())).collect(),
            },
        );
        self
    }

    /// The installation id of `owner`.
    pub fn installation_id(&self, owner: &str) -> u64 {
        self.app.installations[&owner.to_ascii_lowercase()].id
    }

    /// A delivery of the App webhook, `minutes_ago`, answered `status_code` by our endpoint.
    pub fn app_delivery(&mut self, id: u64, guid: &str, minutes_ago: i64, status_code: u16) -> &mut Self {
        self.app.deliveries.push(super::fakes::FakeDelivery {
            id,
            guid: guid.into(),
            delivered_at: super::minutes_ago(minutes_ago),
            redelivery: false,
            status_code,
            event: "workflow_job".into(),
            action: "queued".into(),
        });
        self
    }

    /// Calls of `op` (as the fake names it: `app-token`, `jit`, …).
    pub fn calls_of(&self, op: &str) -> usize {
        self.c.count(op)
    }

    /// A registered runner in `scope` (`repos/o/r` or `orgs/o`).
    pub fn runner(&mut self, scope: &str, name: &str, status: &str, busy: bool) -> &mut Self {
        self.add_runner(scope, name, status, busy);
        self
    }

    /// Fails the test unless exactly these runners are registered, in any scope.
    #[track_caller]
    pub fn expect_runners<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> &Self {
        let mut have: Vec<&str> = self.runners.values().map(|r| r.name.as_str()).collect();
        have.sort();
        let mut want: Vec<&str> = names.into_iter().collect();
        want.sort();
        assert_eq!(have, want, "registered runners");
        self
    }
}

impl ArmState {
    /// Fails the test unless exactly these container groups exist, as ARM shows them now: a
    /// group ARM is still deleting is there (`settle()` first to see what is left once every
    /// operation under way has ended).
    #[track_caller]
    pub fn expect_groups<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> &Self {
        let have: Vec<&str> = self.groups.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = names.into_iter().collect();
        want.sort();
        assert_eq!(have, want, "container groups");
        self
    }

    /// Fails the test unless exactly these groups are `Deleting` (a DELETE was accepted and
    /// has not ended).
    #[track_caller]
    pub fn expect_deleting<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> &Self {
        let have: Vec<&str> = self
            .groups
            .values()
            .filter(|g| g.provisioning_state == "Deleting")
            .map(|g| g.name.as_str())
            .collect();
        let mut want: Vec<&str> = names.into_iter().collect();
        want.sort();
        assert_eq!(have, want, "container groups being deleted");
        self
    }
}

impl VaultState {
    /// A secret's value.
    pub fn secret(&mut self, name: &str, value: &str) -> &mut Self {
        self.secrets.insert(name.into(), value.into());
        self
    }
}
