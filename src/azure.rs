//! Azure identity and Key Vault: the managed-identity credential and a cached secret store
//! on the official SDK (`azure_identity`, `azure_security_keyvault_secrets`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::retry::{CallError, RetryPolicy};
use crate::secret::Secret;

/// Client options that send through our one HTTP client and retry by our policy.
pub fn client_options(http: &reqwest::Client, retry: &RetryPolicy) -> ClientOptions {
    let d = |d: Duration| azure_core::time::Duration::try_from(d).unwrap_or(azure_core::time::Duration::seconds(1));
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http.clone()))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: d(retry.base_delay),
            max_retries: retry.max_attempts.saturating_sub(1),
            max_total_elapsed: d(retry.max_delay * retry.max_attempts),
            max_delay: d(retry.max_delay),
        }),
        ..Default::default()
    }
}

/// Which credential to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// In Azure: the Function App's managed identity (`AZURE_CLIENT_ID` picks a
    /// user-assigned one). The platform sets `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    ManagedIdentity,
    /// On a workstation: the Azure CLI (`az login`), then the Azure Developer CLI.
    Developer,
}

pub fn credential(kind: CredentialKind, client_id: Option<&str>, options: ClientOptions) -> anyhow::Result<Arc<dyn TokenCredential>> {
    Ok(match kind {
        CredentialKind::ManagedIdentity => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(|c| UserAssignedId::ClientId(c.to_string())),
            client_options: options,
        }))
        .map_err(|e| anyhow::anyhow!("managed identity credential (AZURE_CLIENT_ID): {e}"))?,
        CredentialKind::Developer => {
            DeveloperToolsCredential::new(None).map_err(|e| anyhow::anyhow!("developer credential (az login): {e}"))?
        }
    })
}

/// Secrets from Key Vault, each cached for a TTL so a burst of invocations costs one read.
/// Concurrent misses wait for the one read in flight instead of starting their own.
pub struct SecretStore {
    client: SecretClient,
    ttl: Duration,
    cache: RwLock<HashMap<String, (Instant, Secret)>>,
    fetch: tokio::sync::Mutex<()>,
}

impl SecretStore {
    pub fn new(vault_url: &str, credential: Arc<dyn TokenCredential>, options: ClientOptions, ttl: Duration) -> anyhow::Result<Self> {
        let client = SecretClient::new(
            &format!("{}/", vault_url.trim_end_matches('/')),
            credential,
            Some(SecretClientOptions {
                client_options: options,
                ..Default::default()
            }),
        )
        .map_err(|e| anyhow::anyhow!("KEY_VAULT_URL: {e}"))?;
        Ok(SecretStore {
            client,
            ttl,
            cache: RwLock::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(name).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, s)| s.clone())
    }

    /// The secret's current value.
    pub async fn get(&self, name: &str) -> Result<Secret, CallError> {
        if let Some(s) = self.cached(name) {
            return Ok(s);
        }
        let _one_at_a_time = self.fetch.lock().await;
        if let Some(s) = self.cached(name) {
            return Ok(s);
        }
        let value = self.read(name).await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Reads past the cache (for `handler check`).
    pub async fn read(&self, name: &str) -> Result<Secret, CallError> {
        const OP: &str = "keyvault.get-secret";
        let resp = self.client.get_secret(name, None).await.map_err(|e| sdk_error(OP, e))?;
        let secret = resp.into_model().map_err(|e| sdk_error(OP, e))?;
        secret.value.map(Secret::new).ok_or_else(|| CallError::Other {
            op: OP,
            message: format!("secret {name} has no value"),
            transient: false,
        })
    }
}

/// An SDK error as a `CallError`, with the service's code and request id when there is one.
pub fn sdk_error(op: &'static str, e: azure_core::Error) -> CallError {
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let request_id = raw_response.as_ref().and_then(|r| {
                r.headers()
                    .get_optional_str(&azure_core::http::headers::HeaderName::from_static("x-ms-request-id"))
                    .map(str::to_string)
            });
            CallError::Status {
                op,
                status: u16::from(*status),
                code: error_code.clone(),
                message: e.to_string(),
                request_id,
                rate_limited: false,
            }
        }
        ErrorKind::Io | ErrorKind::Connection => CallError::Transport {
            op,
            message: format!("{e:?}"),
        },
        _ => CallError::Other {
            op,
            message: format!("{e}: {e:?}"),
            transient: false,
        },
    }
}
