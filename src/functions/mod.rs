//! The functions this handler serves, one module each (parse → decide → act), and the state
//! they share.

pub mod github_webhook;
pub mod liveness;
pub mod provision;
pub mod redeliver;
pub mod runners;
pub mod sweep;

use std::sync::Arc;

use crate::azure::arm::Arm;
use crate::azure::keyvault::{KeySigner, SecretStore};
use crate::azure::{self, CredentialKind};
use crate::clock::Clock;
use crate::config::Config;
use crate::github::app::{AppAuth, Signer};
use crate::github::oidc::Verifier;
use crate::github::{Credential, GitHub};
use crate::host::Functions;
use crate::http;
use crate::rules::admission::Admissions;
use crate::rules::capacity::Waiting;
use crate::target::Target;
use liveness::Liveness;

/// The queue every runner request goes through (the output binding's name).
pub const QUEUE_OUTPUT: &str = "requests";
/// The queue trigger binding of `provision`.
pub const QUEUE_TRIGGER: &str = "request";

/// Everything a function needs: settings, clients, a clock.
pub struct App {
    pub cfg: Config,
    pub secrets: SecretStore,
    pub github: GitHub,
    /// Set in GitHub App mode (`GITHUB_APP_CLIENT_ID`): installation tokens instead of the PAT.
    pub github_app: Option<Arc<AppAuth>>,
    pub arm: Arm,
    /// Set when `OIDC_AUDIENCE` is: the `runners` function is off without it.
    pub oidc: Option<Verifier>,
    pub clock: Clock,
    /// Creates under way in this instance (see [`crate::rules::admission`]).
    pub admissions: Admissions,
    /// What reads of groups said lately, shared by this instance's creates.
    pub liveness: Liveness,
    /// Runner names whose create waited here lately.
    pub waiting: Waiting,
}

impl App {
    /// Builds the clients from the settings: one HTTP client (trusting `extra_roots_pem` beside
    /// the system roots), one credential, the real clock.
    pub fn new(cfg: Config, credential: CredentialKind, extra_roots_pem: Option<&[u8]>) -> anyhow::Result<App> {
        let http = http::http_client(cfg.http_timeout, extra_roots_pem)?;
        let options = azure::client_options(&http, &cfg.retry);
        let credential = azure::credential(credential, cfg.azure_client_id.as_deref(), options.clone())?;
        let secrets = SecretStore::new(
            cfg.key_vault_url.as_str(),
            credential.clone(),
            options.clone(),
            cfg.secret_cache_ttl,
        )?;
        let github = GitHub::new(http.clone(), cfg.github_api_url.as_str(), cfg.retry).with_jit_per_minute(cfg.jit_per_minute);
        let clock = crate::clock::system();
        let github_app = match &cfg.github_app {
            None => None,
            Some(a) => {
                let signer = KeySigner::new(cfg.key_vault_url.as_str(), &a.key_name, credential.clone(), options)?;
                Some(Arc::new(AppAuth::new(
                    http.clone(),
                    cfg.github_api_url.as_str(),
                    cfg.retry,
                    &a.client_id,
                    cfg.scope.is_org(),
                    Arc::new(VaultSigner(signer)),
                    clock.clone(),
                )))
            }
        };
        let arm = Arm::new(
            http.clone(),
            credential,
            cfg.arm_url.as_str(),
            &cfg.subscription_id,
            &cfg.resource_group,
            &cfg.aci_api_version,
            cfg.retry,
        );
        let oidc = cfg
            .oidc_audience
            .as_ref()
            .map(|aud| Verifier::new(http, cfg.oidc_issuer.as_str(), aud, cfg.retry, clock.clone()));
        Ok(App {
            cfg,
            secrets,
            github,
            github_app,
            arm,
            oidc,
            clock,
            admissions: Default::default(),
            liveness: Default::default(),
            waiting: Default::default(),
        })
    }

    /// Who GitHub calls are made as: the App, or the PAT read from Key Vault (cached). The
    /// error names the setting.
    pub async fn github_credential(&self) -> Result<Credential, String> {
        match &self.github_app {
            Some(app) => Ok(Credential::App(app.clone())),
            None => self
                .secrets
                .get(&self.cfg.pat_secret_name)
                .await
                .map(Credential::Pat)
                .map_err(|e| format!("GITHUB_PAT_SECRET_NAME: {e}")),
        }
    }

    /// Where a repository's runners are registered under `RUNNER_SCOPE`.
    pub fn target<'a>(&self, repository: &'a str) -> Target<'a> {
        Target::of_repository(&self.cfg.scope, repository)
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

/// The App's JWT is signed by Key Vault: the one place GitHub and Azure meet.
struct VaultSigner(KeySigner);

impl Signer for VaultSigner {
    fn sign_rs256(&self, digest: [u8; 32]) -> futures::future::BoxFuture<'_, Result<Vec<u8>, http::CallError>> {
        Box::pin(async move { self.0.sign_rs256(&digest).await })
    }
}
