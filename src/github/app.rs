//! GitHub App authentication: the App's JWT, signed by a [`Signer`] (Key Vault's `sign`, wired
//! in `functions`: the private key is never in this process), the installation of each owner,
//! and installation tokens with the least permissions a call needs, each cached until shortly
//! before it expires. Also the App webhook's deliveries, which only the App's JWT may list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::future::BoxFuture;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::clock::{parse_rfc3339, Clock};
use crate::http::{self, CallError, RetryPolicy};
use crate::secret::Secret;
use crate::target::Target;

/// Signs the App's JWT: RSASSA-PKCS1-v1_5 over a SHA-256 digest, the raw signature back. The
/// one seam between GitHub and where the key lives (Key Vault in production, a test key in
/// tests of this module).
pub trait Signer: Send + Sync {
    fn sign_rs256(&self, digest: [u8; 32]) -> BoxFuture<'_, Result<Vec<u8>, CallError>>;
}

/// What a call needs an installation token for; each asks for no more than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Register, list and remove self-hosted runners: repository `administration: write`
    /// (repo scope) or `organization_self_hosted_runners: write` (org scope).
    Runners,
    /// Read jobs and runs: `actions: read`.
    Actions,
}

/// The App JWT's lifetime: `iat` 60 s in the past (clock drift), `exp` 9 min ahead, inside
/// GitHub's 10 minutes.
pub const JWT_BACKDATE: Duration = Duration::from_secs(60);
pub const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// A JWT is used until this long before it expires, then signed anew.
pub const JWT_MARGIN: Duration = Duration::from_secs(60);
/// An installation token (1 hour) is used until this long before it expires: a call made with
/// it, retries included, ends before it does.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// An installation as `GET /repos/{o}/{r}/installation` and `GET /orgs/{o}/installation` give it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Installation {
    pub id: u64,
    #[serde(default)]
    pub account: Option<Account>,
    /// Permission → `read` / `write`, as granted on this installation.
    #[serde(default)]
    pub permissions: HashMap<String, String>,
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub login: String,
}

/// The App itself (`GET /app`): the events its webhook is subscribed to and its permissions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppInfo {
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub permissions: HashMap<String, String>,
}

/// The App webhook's configuration (`GET /app/hook/config`; the secret comes back masked).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HookConfig {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub insecure_ssl: Option<serde_json::Value>,
}

/// One attempt to deliver an App webhook event (`GET /app/hook/deliveries`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HookDelivery {
    pub id: u64,
    #[serde(default)]
    pub guid: String,
    #[serde(default)]
    pub delivered_at: Option<String>,
    #[serde(default)]
    pub redelivery: bool,
    #[serde(default)]
    pub status_code: u16,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub action: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: String,
    expires_at: String,
}

/// The App's credentials and what they buy, cached. Concrete, base URL injected; one per process.
pub struct AppAuth {
    http: Client,
    base: String,
    retry: RetryPolicy,
    client_id: String,
    org_scope: bool,
    signer: Arc<dyn Signer>,
    clock: Clock,
    /// The current JWT and until when it is used.
    jwt: Mutex<Option<(OffsetDateTime, Secret)>>,
    /// Owner (lowercase) → installation id.
    installations: Mutex<HashMap<String, u64>>,
    /// (installation, access) → (expires at, token).
    tokens: Mutex<HashMap<(u64, Access), (OffsetDateTime, Secret)>>,
    /// One lookup or token request at a time: a burst waits for the one in flight.
    fetching: tokio::sync::Mutex<()>,
    /// One sign at a time: callers that find no JWT wait for the one being signed.
    signing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The account an installation belongs to: a repository's owner, or the organization.
fn owner_of(target: &Target<'_>) -> String {
    match target {
        Target::Repo(r) => r.split('/').next().unwrap_or(r).to_ascii_lowercase(),
        Target::Org(o) => o.to_ascii_lowercase(),
    }
}

impl AppAuth {
    pub fn new(
        http: Client,
        base: &str,
        retry: RetryPolicy,
        client_id: &str,
        org_scope: bool,
        signer: Arc<dyn Signer>,
        clock: Clock,
    ) -> AppAuth {
        AppAuth {
            http,
            base: base.trim_end_matches('/').to_string(),
            retry,
            client_id: client_id.to_string(),
            org_scope,
            signer,
            clock,
            jwt: Mutex::new(None),
            installations: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            signing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The permissions a token for `access` asks for, in this deployment's scope.
    pub fn permissions(&self, access: Access) -> serde_json::Value {
        match (access, self.org_scope) {
            (Access::Runners, false) => serde_json::json!({"administration": "write"}),
            (Access::Runners, true) => serde_json::json!({"organization_self_hosted_runners": "write"}),
            (Access::Actions, _) => serde_json::json!({"actions": "read"}),
        }
    }

    fn cached_token(&self, owner: &str, access: Access) -> Option<Secret> {
        let id = *lock(&self.installations).get(owner)?;
        let now = (self.clock)();
        lock(&self.tokens)
            .get(&(id, access))
            .filter(|(expires, _)| now + TOKEN_MARGIN < *expires)
            .map(|(_, t)| t.clone())
    }

    /// An installation token for calls on `target` that need `access`: cached, or made now
    /// (one JWT, one installation lookup per owner, one token request).
    pub async fn token(&self, target: Target<'_>, access: Access) -> Result<Secret, CallError> {
        let owner = owner_of(&target);
        if let Some(t) = self.cached_token(&owner, access) {
            return Ok(t);
        }
        let _one = self.fetching.lock().await;
        if let Some(t) = self.cached_token(&owner, access) {
            return Ok(t);
        }
        let cached = lock(&self.installations).get(&owner).copied();
        let id = match cached {
            Some(id) => id,
            None => self.installation(target).await?.id,
        };
        let made = match self.create_token(id, access).await {
            // The App was uninstalled and installed again since: look it up once more.
            Err(e) if cached.is_some() && e.status() == Some(404) => {
                lock(&self.installations).remove(&owner);
                let id = self.installation(target).await?.id;
                self.create_token(id, access).await.map(|t| (id, t))
            }
            other => other.map(|t| (id, t)),
        };
        let (id, (expires, token)) = made?;
        lock(&self.tokens).insert((id, access), (expires, token.clone()));
        Ok(token)
    }

    /// Forgets a token GitHub refused (revoked, or expired early), so the next call makes one.
    pub fn forget_token(&self, token: &Secret) {
        lock(&self.tokens).retain(|_, (_, t)| t.expose() != token.expose());
    }

    /// `POST /app/installations/{id}/access_tokens` with the permissions `access` needs.
    async fn create_token(&self, installation: u64, access: Access) -> Result<(OffsetDateTime, Secret), CallError> {
        const OP: &str = "github.create-installation-token";
        let path = format!("/app/installations/{installation}/access_tokens");
        let body = serde_json::json!({"permissions": self.permissions(access)});
        let resp = self
            .with_jwt(OP, &[], |jwt| self.request(Method::POST, &path, jwt).json(&body))
            .await
            .map_err(|e| match e {
                CallError::Status {
                    op,
                    host,
                    status: 422,
                    code,
                    message,
                    request_id,
                    rate_limited,
                } => CallError::Status {
                    op,
                    host,
                    status: 422,
                    code,
                    message: format!(
                        "{message} (the App needs {} on installation {installation}: grant it in the App's permissions and accept them on the installation)",
                        self.permissions(access)
                    ),
                    request_id,
                    rate_limited,
                },
                other => other,
            })?;
        let a: TokenAnswer = http::read_json(OP, resp).await?;
        let expires = parse_rfc3339(&a.expires_at).ok_or_else(|| CallError::Other {
            op: OP,
            message: format!("unreadable expires_at {:?}", a.expires_at),
            transient: true,
        })?;
        Ok((expires, Secret::new(a.token)))
    }

    /// The App's installation on `target`'s owner (`GET /repos/{o}/{r}/installation` or
    /// `GET /orgs/{o}/installation`), remembered for the owner.
    pub async fn installation(&self, target: Target<'_>) -> Result<Installation, CallError> {
        const OP: &str = "github.find-installation";
        let path = match &target {
            Target::Repo(r) => match r.split_once('/') {
                Some((o, n)) => format!("/repos/{}/{}/installation", http::segment(o), http::segment(n)),
                None => format!("/users/{}/installation", http::segment(r)),
            },
            Target::Org(o) => format!("/orgs/{}/installation", http::segment(o)),
        };
        let resp = self
            .with_jwt(OP, &[], |jwt| self.request(Method::GET, &path, jwt))
            .await
            .map_err(|e| match e {
                CallError::Status {
                    op,
                    host,
                    status: 404,
                    code,
                    request_id,
                    rate_limited,
                    ..
                } => CallError::Status {
                    op,
                    host,
                    status: 404,
                    code,
                    message: format!(
                        "the GitHub App {} is not installed on {target} (or not given that repository): install it there",
                        self.client_id
                    ),
                    request_id,
                    rate_limited,
                },
                other => other,
            })?;
        let i: Installation = http::read_json(OP, resp).await?;
        lock(&self.installations).insert(owner_of(&target), i.id);
        Ok(i)
    }

    /// `GET /app`: the App as its JWT sees it.
    pub async fn app_info(&self) -> Result<AppInfo, CallError> {
        const OP: &str = "github.get-app";
        let resp = self.with_jwt(OP, &[], |jwt| self.request(Method::GET, "/app", jwt)).await?;
        http::read_json(OP, resp).await
    }

    /// `GET /app/hook/config`.
    pub async fn hook_config(&self) -> Result<HookConfig, CallError> {
        const OP: &str = "github.get-hook-config";
        let resp = self
            .with_jwt(OP, &[], |jwt| self.request(Method::GET, "/app/hook/config", jwt))
            .await?;
        http::read_json(OP, resp).await
    }

    /// The App webhook's deliveries, newest first, following the cursor (`Link: rel="next"`)
    /// for at most `max_pages` pages of 100, and no further than the first one older than
    /// `since`.
    pub async fn hook_deliveries(&self, since: OffsetDateTime, max_pages: usize) -> Result<Vec<HookDelivery>, CallError> {
        const OP: &str = "github.list-hook-deliveries";
        let mut url = format!("{}/app/hook/deliveries?per_page=100", self.base);
        let mut out: Vec<HookDelivery> = Vec::new();
        for _ in 0..max_pages {
            let resp = self.with_jwt(OP, &[], |jwt| self.request_url(Method::GET, &url, jwt)).await?;
            let next = super::next_link(resp.headers().get("link").and_then(|v| v.to_str().ok()));
            let page: Vec<HookDelivery> = http::read_json(OP, resp).await?;
            let older = page
                .iter()
                .any(|d| d.delivered_at.as_deref().and_then(parse_rfc3339).is_some_and(|t| t < since));
            out.extend(page);
            match next {
                None => break,
                Some(_) if older => break,
                Some(n) => url = super::same_api(OP, &self.base, n)?,
            }
        }
        Ok(out)
    }

    /// `POST /app/hook/deliveries/{id}/attempts`: GitHub delivers that event again.
    pub async fn redeliver(&self, delivery_id: u64) -> Result<(), CallError> {
        let path = format!("/app/hook/deliveries/{delivery_id}/attempts");
        self.with_jwt("github.redeliver", &[], |jwt| self.request(Method::POST, &path, jwt))
            .await?;
        Ok(())
    }

    /// Checks that the key signs and GitHub takes the JWT (for `handler check`): a fresh JWT.
    pub async fn signed_jwt(&self) -> Result<(), CallError> {
        let _one = self.signing.lock().await;
        self.sign_jwt().await.map(|_| ())
    }

    /// The JWT in hand, while it is good to use.
    fn current_jwt(&self) -> Option<Secret> {
        let now = (self.clock)();
        lock(&self.jwt)
            .as_ref()
            .filter(|(until, _)| now < *until)
            .map(|(_, jwt)| jwt.clone())
    }

    /// The current App JWT, or a new one signed now (one sign however many callers wait).
    async fn jwt(&self) -> Result<Secret, CallError> {
        if let Some(jwt) = self.current_jwt() {
            return Ok(jwt);
        }
        let _one = self.signing.lock().await;
        if let Some(jwt) = self.current_jwt() {
            return Ok(jwt);
        }
        self.sign_jwt().await
    }

    /// Signs a new App JWT with the [`Signer`] and keeps it for [`JWT_LIFETIME`] less
    /// [`JWT_MARGIN`].
    async fn sign_jwt(&self) -> Result<Secret, CallError> {
        let now = (self.clock)();
        let iat = now - JWT_BACKDATE;
        let exp = now + JWT_LIFETIME;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"iat": iat.unix_timestamp(), "exp": exp.unix_timestamp(), "iss": self.client_id}).to_string());
        let signing_input = format!("{header}.{claims}");
        let digest: [u8; 32] = Sha256::digest(signing_input.as_bytes()).into();
        let signature = self.signer.sign_rs256(digest).await?;
        let jwt = Secret::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)));
        *lock(&self.jwt) = Some((exp - JWT_MARGIN, jwt.clone()));
        Ok(jwt)
    }

    /// Sends with the App JWT; a 401 (a JWT GitHub no longer takes: clock drift, a rotated
    /// key) signs a new one and sends once more.
    async fn with_jwt(&self, op: &'static str, accept: &[u16], make: impl Fn(&Secret) -> RequestBuilder) -> Result<Response, CallError> {
        let jwt = self.jwt().await?;
        match http::send(op, &self.retry, accept, || async { Ok(make(&jwt)) }).await {
            Err(e) if e.status() == Some(401) => {
                *lock(&self.jwt) = None;
                let jwt = self.jwt().await?;
                http::send(op, &self.retry, accept, || async { Ok(make(&jwt)) }).await
            }
            other => other,
        }
    }

    fn request(&self, method: Method, path: &str, jwt: &Secret) -> RequestBuilder {
        self.request_url(method, &format!("{}{path}", self.base), jwt)
    }

    fn request_url(&self, method: Method, url: &str, jwt: &Secret) -> RequestBuilder {
        super::request_to(&self.http, method, url, jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's own examples (tests/data/README.md).

    #[test]
    fn githubs_installation_answer_reads() {
        let i: Installation = serde_json::from_str(include_str!("../../tests/data/get-repo-installation.200.json")).unwrap();
        assert_eq!(i.id, 1);
        assert_eq!(i.account.unwrap().login, "github");
        assert_eq!(i.permissions.get("checks").map(String::as_str), Some("write"));
        assert_eq!(i.events, ["push", "pull_request"]);
    }

    #[test]
    fn githubs_token_answer_reads() {
        let t: TokenAnswer = serde_json::from_str(include_str!("../../tests/data/installation-token.201.json")).unwrap();
        assert!(t.token.starts_with("ghs_"));
        assert!(parse_rfc3339(&t.expires_at).is_some());
    }

    #[test]
    fn githubs_delivery_list_reads() {
        let l: Vec<HookDelivery> = serde_json::from_str(include_str!("../../tests/data/list-hook-deliveries.200.json")).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!((l[1].id, l[1].redelivery, l[1].status_code), (123456789, true, 200));
        assert_eq!(l[0].action.as_deref(), Some("opened"));
    }

    #[test]
    fn the_owner_of_a_target_is_its_account() {
        assert_eq!(owner_of(&Target::Repo("Octo-Org/Hello")), "octo-org");
        assert_eq!(owner_of(&Target::Org("Octo-Org")), "octo-org");
    }

    /// The App `Iv23liExample` against a GitHub nobody calls here, one try per call.
    fn test_auth(org: bool, signer: Arc<dyn Signer>, clock: Clock) -> AppAuth {
        let once = RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        AppAuth::new(Client::new(), "https://api.github.test", once, "Iv23liExample", org, signer, clock)
    }

    /// Records the digest it is asked to sign and answers a fixed "signature".
    struct Recorder(Mutex<Vec<[u8; 32]>>);

    impl Signer for Recorder {
        fn sign_rs256(&self, digest: [u8; 32]) -> BoxFuture<'_, Result<Vec<u8>, CallError>> {
            lock(&self.0).push(digest);
            Box::pin(async { Ok(vec![0xab; 256]) })
        }
    }

    #[tokio::test]
    async fn the_jwt_is_rs256_over_its_signing_input_with_the_client_id_and_githubs_window() {
        let at = time::macros::datetime!(2026-12-02 10:00 UTC);
        let signer = Arc::new(Recorder(Mutex::new(vec![])));
        let auth = test_auth(false, signer.clone(), Arc::new(move || at));
        let jwt = auth.jwt().await.unwrap();
        let again = auth.jwt().await.unwrap();
        assert_eq!(jwt.expose(), again.expose(), "kept while it lives");
        assert_eq!(lock(&signer.0).len(), 1, "signed once");
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        let decode = |p: &str| -> serde_json::Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
        assert_eq!(decode(parts[0]), serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "Iv23liExample");
        assert_eq!(claims["iat"].as_i64(), Some(at.unix_timestamp() - 60), "60 s in the past");
        assert_eq!(claims["exp"].as_i64(), Some(at.unix_timestamp() + 540), "inside 10 minutes of iat");
        let digest: [u8; 32] = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes()).into();
        assert_eq!(
            lock(&signer.0)[0],
            digest,
            "the SHA-256 of the signing input is what Key Vault signs"
        );
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            vec![0xab; 256],
            "the signature as Key Vault gave it"
        );
        assert!(!format!("{jwt:?}").contains(parts[2]), "the JWT is a Secret");
    }

    #[test]
    fn tokens_ask_for_the_least_each_call_needs() {
        let auth = |org| test_auth(org, Arc::new(Recorder(Mutex::new(vec![]))), crate::clock::system());
        let cases = [
            (
                "repo scope manages runners with administration",
                false,
                Access::Runners,
                serde_json::json!({"administration": "write"}),
            ),
            (
                "org scope manages runners with the organization's runner permission",
                true,
                Access::Runners,
                serde_json::json!({"organization_self_hosted_runners": "write"}),
            ),
            (
                "jobs and runs are only read",
                false,
                Access::Actions,
                serde_json::json!({"actions": "read"}),
            ),
            (
                "jobs and runs are only read in org scope too",
                true,
                Access::Actions,
                serde_json::json!({"actions": "read"}),
            ),
        ];
        for (rule, org, access, want) in cases {
            assert_eq!(auth(org).permissions(access), want, "{rule}");
        }
    }

    #[test]
    fn a_jwt_lives_inside_githubs_ten_minutes() {
        assert!(JWT_BACKDATE + JWT_LIFETIME <= Duration::from_secs(600));
        assert!(JWT_MARGIN < JWT_LIFETIME && TOKEN_MARGIN < Duration::from_secs(3600));
    }
}
