//! Key Vault on the official SDK: secrets (`azure_security_keyvault_secrets`), cached, and a
//! key's `sign` operation (`azure_security_keyvault_keys`) for the GitHub App's JWT.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_security_keyvault_keys::models::{SignParameters, SignatureAlgorithm};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::sdk_error;
use crate::http::CallError;
use crate::log;
use crate::secret::Secret;

/// After a failed read, how long the last good value is served before Key Vault is tried again.
pub const STALE_RETRY: Duration = Duration::from_secs(30);
/// How long [`SecretStore::get_now`] waits for a secret it has never read: inside GitHub's
/// 10 s webhook budget, with room to answer.
pub const FIRST_READ_WAIT: Duration = Duration::from_secs(8);

/// Longer than any process lives; a larger `SECRET_CACHE_SECONDS` is held to it.
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Whether a value came from a read within the TTL or is an older one served meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
}

/// Secrets from Key Vault, each cached for a TTL so a burst of invocations costs one read.
/// Concurrent misses of a secret wait for the one read in flight instead of starting their own.
/// When a read fails, the last good value goes on being served (and the failure logged), so a
/// Key Vault outage does not stop a running app.
pub struct SecretStore {
    inner: Arc<Store>,
}

struct Store {
    client: SecretClient,
    /// The vault's host, for error messages.
    host: String,
    ttl: Duration,
    /// Name → (fresh until, value).
    cache: RwLock<HashMap<String, (Instant, Secret)>>,
    /// One read at a time per name.
    reads: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
            inner: Arc::new(Store {
                client,
                host: vault_host(vault_url),
                ttl,
                cache: RwLock::new(HashMap::new()),
                reads: Default::default(),
            }),
        })
    }

    /// The secret's current value: cached, or read now. If the read fails and an earlier value
    /// is at hand, that one is served for [`STALE_RETRY`] before Key Vault is tried again.
    pub async fn get(&self, name: &str) -> Result<Secret, CallError> {
        self.inner.get(name).await
    }

    /// For callers that must answer at once (the webhook): a cached value even past its TTL,
    /// refreshed in the background, or a first read of at most [`FIRST_READ_WAIT`].
    pub async fn get_now(&self, name: &str) -> Result<(Secret, Freshness), CallError> {
        match self.inner.cached(name) {
            Some((value, true)) => Ok((value, Freshness::Fresh)),
            Some((value, false)) => {
                let store = self.inner.clone();
                let name = name.to_string();
                tokio::spawn(async move {
                    // A failure is logged inside (`keyvault.stale`) and the value kept meanwhile.
                    let _ = store.get(&name).await;
                });
                Ok((value, Freshness::Stale))
            }
            None => match tokio::time::timeout(FIRST_READ_WAIT, self.inner.get(name)).await {
                Ok(read) => read.map(|v| (v, Freshness::Fresh)),
                Err(_) => Err(CallError::Transport {
                    op: "keyvault.get-secret",
                    host: self.inner.host.clone(),
                    cause: format!("no answer within {} s", FIRST_READ_WAIT.as_secs()),
                }),
            },
        }
    }

    /// Reads past the cache (for `handler check`).
    pub async fn read(&self, name: &str) -> Result<Secret, CallError> {
        self.inner.read(name).await
    }
}

/// `myvault.vault.azure.net` of `https://myvault.vault.azure.net/` (with the port, if any).
fn vault_host(vault_url: &str) -> String {
    reqwest::Url::parse(vault_url)
        .map(|u| crate::http::host_of(&u))
        .unwrap_or_else(|_| vault_url.to_string())
}

impl Store {
    /// The cached value and whether it is still fresh.
    fn cached(&self, name: &str) -> Option<(Secret, bool)> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(name).map(|(until, s)| (s.clone(), Instant::now() < *until))
    }

    fn keep(&self, name: &str, value: &Secret, for_: Duration) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (Instant::now() + for_.min(TEN_YEARS), value.clone()));
    }

    async fn get(&self, name: &str) -> Result<Secret, CallError> {
        if let Some((s, true)) = self.cached(name) {
            return Ok(s);
        }
        let lock = self
            .reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        let earlier = match self.cached(name) {
            Some((s, true)) => return Ok(s),
            other => other.map(|(s, _)| s),
        };
        match (self.read(name).await, earlier) {
            (Ok(value), _) => {
                self.keep(name, &value, self.ttl);
                Ok(value)
            }
            (Err(e), Some(earlier)) => {
                log::error("keyvault.stale", &[("secret", &name), ("error", &e)]);
                self.keep(name, &earlier, self.ttl.min(STALE_RETRY));
                Ok(earlier)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn read(&self, name: &str) -> Result<Secret, CallError> {
        const OP: &str = "keyvault.get-secret";
        let resp = self.client.get_secret(name, None).await.map_err(|e| sdk_error(OP, &self.host, e))?;
        let secret = resp.into_model().map_err(|e| sdk_error(OP, &self.host, e))?;
        secret.value.map(Secret::new).ok_or_else(|| CallError::Other {
            op: OP,
            message: format!("secret {name} has no value"),
            transient: false,
        })
    }
}

/// A Key Vault key used only through its `sign` operation (`azure_security_keyvault_keys`, on
/// the same pipeline options and credential as the secrets): the private key never leaves the
/// vault and is never read. The identity needs `keys/sign` on this key and nothing else.
pub struct KeySigner {
    client: KeyClient,
    host: String,
    key_name: String,
}

/// A SHA-256 digest is 32 bytes; Key Vault refuses RS256 over anything else.
pub const SHA256_LEN: usize = 32;

impl KeySigner {
    pub fn new(vault_url: &str, key_name: &str, credential: Arc<dyn TokenCredential>, options: ClientOptions) -> anyhow::Result<Self> {
        let client = KeyClient::new(
            &format!("{}/", vault_url.trim_end_matches('/')),
            credential,
            Some(KeyClientOptions {
                client_options: options,
                ..Default::default()
            }),
        )
        .map_err(|e| anyhow::anyhow!("KEY_VAULT_URL: {e}"))?;
        Ok(KeySigner {
            client,
            host: vault_host(vault_url),
            key_name: key_name.to_string(),
        })
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) over `digest`, the SHA-256 of what is signed, by
    /// the key's current version: the raw signature bytes, as a JWS carries them.
    pub async fn sign_rs256(&self, digest: &[u8]) -> Result<Vec<u8>, CallError> {
        const OP: &str = "keyvault.sign";
        if digest.len() != SHA256_LEN {
            return Err(CallError::Other {
                op: OP,
                message: format!("a SHA-256 digest is {SHA256_LEN} bytes, not {}", digest.len()),
                transient: false,
            });
        }
        let params = SignParameters {
            algorithm: Some(SignatureAlgorithm::Rs256),
            value: Some(digest.to_vec()),
        };
        let body = params.try_into().map_err(|e| sdk_error(OP, &self.host, e))?;
        let resp = self
            .client
            .sign(&self.key_name, body, None)
            .await
            .map_err(|e| sdk_error(OP, &self.host, e))?;
        let result = resp.into_model().map_err(|e| sdk_error(OP, &self.host, e))?;
        result.result.filter(|s| !s.is_empty()).ok_or_else(|| CallError::Other {
            op: OP,
            message: format!("{}: key {} gave no signature", self.host, self.key_name),
            transient: true,
        })
    }
}
