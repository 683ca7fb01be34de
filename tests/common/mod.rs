//! The test bench: fakes of GitHub, ARM, Key Vault and the managed-identity endpoint on
//! loopback (TLS where the real ones are), a CONNECT proxy that routes the production-looking
//! host names to them, and a fake Functions host driving the staged handler.
//!
//! Tests go in through one door, [`run_test`] (`world.rs`): it builds the bench, seeds it,
//! starts the handler, runs the test under a timeout and checks what every test must leave
//! behind. The benchmarks drive [`Bench`] and [`host::FakeHost`] themselves.
#![allow(dead_code)]

pub mod fakes;
pub mod host;
pub mod net;
pub mod oidc;
pub mod world;

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use fakes::*;
// Not every test binary goes through the harness (package.rs, oidc.rs).
#[allow(unused_imports)]
pub use world::*;

pub const PAT: &str = "ghp_leaktest_PAT_9d8c7b6a5f4e3d2c1b0a";
pub const WEBHOOK_SECRET: &str = "whsec-leaktest-current-4c1d";
pub const OLD_WEBHOOK_SECRET: &str = "whsec-leaktest-previous-88aa";
pub const ISSUER: &str = "https://token.actions.test";

/// The fakes on loopback and the app settings that point the handler at them.
pub struct Bench {
    pub github: fakes::GitHub,
    pub arm: fakes::Arm,
    pub vault: fakes::Vault,
    pub identity: fakes::Identity,
    pub settings: HashMap<String, String>,
    pub proxy_refused: Arc<std::sync::Mutex<Vec<String>>>,
    /// The fake OIDC issuer at `https://token.actions.test` (set `OIDC_AUDIENCE` to use it).
    pub issuer: oidc::Issuer,
    /// Latency the ARM fake adds to its answers.
    pub arm_delay: net::Delay,
    /// Latency the GitHub fake adds to its answers.
    pub github_delay: net::Delay,
}

/// An RFC 3339 time `m` minutes ago, as a `created-at` tag or a job's `created_at` carries it.
pub fn minutes_ago(m: i64) -> String {
    aci_runners::clock::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::minutes(m))
}

/// The envelope the Functions host sends for a signed delivery of GitHub's unedited `queued`
/// fixture, with the function key in the query: what the webhook benchmarks send.
pub fn signed_queued_envelope() -> Vec<u8> {
    let body = include_bytes!("../data/workflow_job__queued.payload.json");
    let signature = sign(WEBHOOK_SECRET, body);
    let headers = [
        ("Accept", "*/*"),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
        ("Content-Type", "application/json"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Hook-ID", "292430182"),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    host::http_envelope("github-webhook", "github/webhook", "POST", &headers, &[("code", "key")], body)
}

/// Sends `body` as a `workflow_job` delivery GitHub signed with the webhook secret, through the
/// host, as the benchmarks' GitHub does.
pub async fn deliver_workflow_job(host: &host::FakeHost, body: &[u8]) -> host::HttpResult {
    let signature = sign(WEBHOOK_SECRET, body);
    let headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
        ("X-GitHub-Event", "workflow_job"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    host.http("github-webhook", "POST", &headers, body).await
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Bench {
    /// Starts the fakes (not the host). `extra` settings override the defaults. Tests get
    /// theirs from [`run_test`]; this is for the benchmarks and the harness itself.
    pub async fn new(extra: &[(&str, &str)]) -> Bench {
        let pki = net::make_pki(&[
            "management.azure.test",
            "myvault.vault.azure.test",
            "api.github.test",
            "token.actions.test",
        ]);
        let github = fakes::github(PAT);
        let arm = fakes::arm();
        let vault = fakes::vault(&[("github-pat", PAT), ("github-webhook-secret", WEBHOOK_SECRET)]);
        let identity: fakes::Identity = Default::default();

        let github_delay = net::Delay::default();
        let gh_addr = net::serve_tls_delayed(github_handler(github.clone()), &pki, github_delay.clone()).await;
        let arm_delay = net::Delay::default();
        let arm_addr = net::serve_tls_delayed(arm_handler(arm.clone()), &pki, arm_delay.clone()).await;
        let kv_addr = net::serve_tls(vault_handler(vault.clone()), &pki).await;
        let mi_addr = net::serve_http(identity_handler(identity.clone())).await;
        let issuer: oidc::Issuer = Default::default();
        issuer.lock().unwrap().jwks.push(oidc::TestKey::new("key-a", oidc::KEY_A).jwk());
        let issuer_addr = net::serve_tls(oidc::issuer_handler(issuer.clone(), ISSUER.into()), &pki).await;
        let proxy = net::connect_proxy(
            [
                ("api.github.test", gh_addr),
                ("management.azure.test", arm_addr),
                ("myvault.vault.azure.test", kv_addr),
                ("token.actions.test", issuer_addr),
            ]
            .into_iter()
            .map(|(h, a)| (h.to_string(), a))
            .collect(),
        )
        .await;

        let dir = host::temp_dir("pki");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();

        let mut settings: HashMap<String, String> = [
            ("FUNCTIONS_WORKER_RUNTIME", "custom".to_string()),
            ("KEY_VAULT_URL", "https://myvault.vault.azure.test".into()),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION.into()),
            ("RUNNER_RESOURCE_GROUP", RESOURCE_GROUP.into()),
            ("RUNNER_LOCATION", "westeurope".into()),
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("GITHUB_API_URL", "https://api.github.test".into()),
            ("AZURE_RESOURCE_MANAGER_URL", "https://management.azure.test".into()),
            ("ACI_API_VERSION", API_VERSION.into()),
            ("IDENTITY_ENDPOINT", format!("http://{mi_addr}/msi/token")),
            ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
            ("HTTPS_PROXY", format!("http://{}", proxy.addr)),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
            ("SSL_CERT_FILE", ca.to_string_lossy().into_owned()),
            ("RETRY_BASE_DELAY_MS", "1".into()),
            ("RETRY_MAX_DELAY_MS", "50".into()),
            ("RETRY_MAX_ATTEMPTS", "3".into()),
            ("OIDC_ISSUER", ISSUER.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            settings.insert(k.to_string(), v.to_string());
        }
        Bench {
            github,
            arm,
            vault,
            identity,
            settings,
            proxy_refused: proxy.refused,
            issuer,
            arm_delay,
            github_delay,
        }
    }

    /// Fails the test on any call a fake did not expect, or any host the proxy refused.
    pub fn assert_clean(&self) {
        assert!(
            self.github.lock().unwrap().c.unexpected.is_empty(),
            "unexpected GitHub calls: {:?}",
            self.github.lock().unwrap().c.unexpected
        );
        assert!(
            self.arm.lock().unwrap().c.unexpected.is_empty(),
            "unexpected ARM calls: {:?}",
            self.arm.lock().unwrap().c.unexpected
        );
        assert!(
            self.vault.lock().unwrap().c.unexpected.is_empty(),
            "unexpected Key Vault calls: {:?}",
            self.vault.lock().unwrap().c.unexpected
        );
        assert!(self.identity.lock().unwrap().c.unexpected.is_empty(), "unexpected identity calls");
        assert!(
            self.issuer.lock().unwrap().unexpected.is_empty(),
            "unexpected OIDC issuer calls: {:?}",
            self.issuer.lock().unwrap().unexpected
        );
        assert!(
            self.proxy_refused.lock().unwrap().is_empty(),
            "calls to unknown hosts: {:?}",
            self.proxy_refused.lock().unwrap()
        );
    }
}
