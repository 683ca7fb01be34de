//! The functions this handler serves, one module each, and the state they share.

pub mod github_webhook;
pub mod provision;
pub mod runners;
pub mod sweep;

use std::sync::Arc;

use time::OffsetDateTime;

use crate::admission::Admissions;
use crate::arm::Arm;
use crate::azure::SecretStore;
use crate::config::{Config, Scope};
use crate::decide::owner_of;
use crate::github::{GitHub, Target};
use crate::host::Functions;

/// The queue every runner request goes through.
pub const QUEUE_OUTPUT: &str = "requests";
/// The queue trigger binding of `provision`.
pub const QUEUE_TRIGGER: &str = "request";

pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Everything a function needs: settings, clients, a clock.
pub struct App {
    pub cfg: Config,
    pub secrets: SecretStore,
    pub github: GitHub,
    pub arm: Arm,
    /// Set when `OIDC_AUDIENCE` is: the `runners` function is off without it.
    pub oidc: Option<crate::oidc::Verifier>,
    pub clock: Clock,
    /// Creates under way in this instance (see [`crate::admission`]).
    pub admissions: Admissions,
}

impl App {
    /// Where a repository's runners are registered under `RUNNER_SCOPE`, and in which group.
    pub fn target<'a>(&self, repository: &'a str) -> (Target<'a>, u64) {
        match self.cfg.scope {
            Scope::Repo => (Target::Repo(repository), 1),
            Scope::Org { runner_group_id } => (Target::Org(owner_of(repository)), runner_group_id),
        }
    }

    /// The function table for the host.
    pub fn functions(self: Arc<Self>) -> Functions {
        let a = self.clone();
        let b = self.clone();
        let c = self.clone();
        let d = self;
        Functions::default()
            .add("github-webhook", move |env| {
                let app = a.clone();
                async move { github_webhook::run(&app, &env).await }
            })
            .add("provision", move |env| {
                let app = b.clone();
                async move { provision::run(&app, &env).await }
            })
            .add("sweep", move |env| {
                let app = c.clone();
                async move { sweep::run(&app, &env).await }
            })
            .add("runners", move |env| {
                let app = d.clone();
                async move { runners::run(&app, &env).await }
            })
    }
}
