//! GitHub Actions OIDC tokens, verified with `jsonwebtoken` on aws-lc-rs (the crypto library
//! the TLS stack already uses): RS256 only, keys from the issuer's discovery document and JWKS
//! (cached, refetched on an unknown `kid` at most once per [`REFETCH_INTERVAL`]), `iss` exact,
//! `aud` equal to `OIDC_AUDIENCE`. `exp`/`nbf`/`iat` are checked here, with a small skew,
//! against the injected clock (`jsonwebtoken` would read the system's).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::http::{self, CallError, RetryPolicy};

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const SKEW: Duration = Duration::from_secs(60);
/// An unknown `kid` refetches the keys at most this often, so forged tokens cannot make us
/// hammer the issuer.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// What a verified token says about its workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `owner/name`.
    pub repository: String,
    pub owner: String,
    pub run_id: u64,
    pub run_attempt: u32,
}

/// Why a token was refused (all answer 401), or that the issuer could not be reached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0} is not accepted; only RS256")]
    Algorithm(String),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("missing claim {0}")]
    Claim(&'static str),
    /// The issuer's keys could not be fetched: our problem, not the caller's.
    #[error("the OIDC issuer is unreachable: {0}")]
    IssuerUnavailable(String),
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<OffsetDateTime>,
    /// The last failed fetch and why: remembered for [`FAILURE_MEMORY`], so an issuer outage
    /// costs one fetch, not one per request.
    failed: Option<(OffsetDateTime, String)>,
}

/// How long a failed key-set fetch is remembered (requests that need a fetch meanwhile are
/// answered at once).
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30);
/// How often the key set is read again while in use, so retired keys are dropped.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The longest a request waits for the issuer: an HTTP function answers within seconds.
pub const FETCH_WAIT: Duration = Duration::from_secs(4);

pub struct Verifier {
    http: reqwest::Client,
    issuer: String,
    /// RS256, `iss` and `aud` required and equal to ours; no time checks (see [`Verifier::verify`]).
    validation: Validation,
    retry: RetryPolicy,
    clock: Clock,
    keys: RwLock<Keys>,
    refetch: tokio::sync::Mutex<()>,
    fetch_wait: Duration,
}

/// The claims read besides those `jsonwebtoken` checks.
#[derive(Deserialize)]
struct RawClaims {
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    repository: Option<String>,
    repository_owner: Option<String>,
    run_id: Option<String>,
    run_attempt: Option<String>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Verifier {
    pub fn new(http: reqwest::Client, issuer: &str, audience: &str, retry: RetryPolicy, clock: Clock) -> Self {
        let issuer = issuer.trim_end_matches('/').to_string();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Verifier {
            http,
            issuer,
            validation,
            retry,
            clock,
            keys: RwLock::new(Keys::default()),
            refetch: tokio::sync::Mutex::new(()),
            fetch_wait: FETCH_WAIT,
        }
    }

    /// Waits at most `d` for the issuer (tests shorten [`FETCH_WAIT`]).
    pub fn with_fetch_wait(mut self, d: Duration) -> Self {
        self.fetch_wait = d;
        self
    }

    /// Verifies `Authorization: Bearer <token>` and returns its claims.
    pub async fn verify_header(&self, authorization: Option<&str>) -> Result<Claims, TokenError> {
        let token = authorization
            .and_then(|h| h.trim().strip_prefix("Bearer ").or_else(|| h.trim().strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.split('.').count() != 3 {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        }
        // An `alg` jsonwebtoken does not know (such as `none`) leaves the header unread.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed("header"))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::Malformed("no kid"))?;
        let key = self.key(&kid).await?;
        let c = jsonwebtoken::decode::<RawClaims>(token, &key, &self.validation)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) if c == "iss" => TokenError::Issuer,
                ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) if c == "aud" => TokenError::Audience,
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm(format!("{:?}", header.alg)),
                ErrorKind::Base64(_) => TokenError::Malformed("signature or claims encoding"),
                _ => TokenError::Malformed("claims"),
            })?
            .claims;

        let now = (self.clock)().unix_timestamp();
        let skew = SKEW.as_secs() as i64;
        let exp = c.exp.ok_or(TokenError::Claim("exp"))?;
        // Checked, so that no time near either end of i64 overflows: a token expiring past the
        // far end never expires, and one valid from before the far start has begun.
        if exp.checked_add(skew).is_some_and(|latest| now > latest) {
            return Err(TokenError::Expired);
        }
        let begun = |t: Option<i64>| t.is_none_or(|t| t.checked_sub(skew).is_none_or(|earliest| now >= earliest));
        if !begun(c.nbf) || !begun(c.iat) {
            return Err(TokenError::NotYetValid);
        }
        let digits = |v: Option<String>| v.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        let repository = c.repository.filter(|r| r.contains('/')).ok_or(TokenError::Claim("repository"))?;
        let owner = c.repository_owner.ok_or(TokenError::Claim("repository_owner"))?;
        let run_id = digits(c.run_id).and_then(|r| r.parse().ok()).ok_or(TokenError::Claim("run_id"))?;
        let run_attempt = digits(c.run_attempt)
            .and_then(|r| r.parse().ok())
            .ok_or(TokenError::Claim("run_attempt"))?;
        Ok(Claims {
            repository,
            owner,
            run_id,
            run_attempt,
        })
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).by_kid.get(kid).cloned()
    }

    /// The key for `kid`. A known key is used at once (after refreshing the set when it is
    /// due, if no other request is fetching); an unknown one makes one fetch at a time, at most
    /// once per [`REFETCH_INTERVAL`], never while a failure is remembered, and never longer
    /// than the fetch wait.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let now = (self.clock)();
        if let Some(k) = self.cached(kid) {
            let due = self.read_keys(|k| k.fetched_at.is_none_or(|t| older(now, t, REFRESH_EVERY)) && !self.failure_remembered(k, now));
            if due {
                if let Ok(_one) = self.refetch.try_lock() {
                    // A failed refresh keeps the keys in hand (and is remembered).
                    let _ = self.fetch_and_keep(now).await;
                    return self.cached(kid).ok_or(TokenError::UnknownKey);
                }
            }
            return Ok(k);
        }
        let _one = self.refetch.lock().await;
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        if let Some(why) = self.read_keys(|k| k.failed.clone().filter(|_| self.failure_remembered(k, now))) {
            return Err(TokenError::IssuerUnavailable(why.1));
        }
        if self.read_keys(|k| k.fetched_at.is_some_and(|t| !older(now, t, REFETCH_INTERVAL))) {
            return Err(TokenError::UnknownKey);
        }
        self.fetch_and_keep(now).await?;
        self.cached(kid).ok_or(TokenError::UnknownKey)
    }

    fn read_keys<T>(&self, f: impl FnOnce(&Keys) -> T) -> T {
        f(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn failure_remembered(&self, k: &Keys, now: OffsetDateTime) -> bool {
        k.failed.as_ref().is_some_and(|(at, _)| !older(now, *at, FAILURE_MEMORY))
    }

    /// Fetches the key set (bounded by the fetch wait) and keeps it, or remembers the failure.
    async fn fetch_and_keep(&self, now: OffsetDateTime) -> Result<(), TokenError> {
        let fetched = match tokio::time::timeout(self.fetch_wait, self.fetch_keys()).await {
            Ok(Ok(keys)) => Ok(keys),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("oidc.discovery: no answer within {} s", self.fetch_wait.as_secs_f32())),
        };
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(set) => {
                keys.by_kid = set;
                keys.fetched_at = Some(now);
                keys.failed = None;
                Ok(())
            }
            Err(why) => {
                keys.failed = Some((now, why.clone()));
                Err(TokenError::IssuerUnavailable(why))
            }
        }
    }

    /// The discovery document's `jwks_uri`, then its RSA signing keys.
    pub async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, CallError> {
        const OP: &str = "oidc.discovery";
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let resp = http::send(OP, &self.retry, &[], || async { Ok(self.http.get(&url)) }).await?;
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let d: Discovery = http::read_json(OP, resp).await?;
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(CallError::Other {
                op: OP,
                message: format!("discovery document names issuer {}", d.issuer),
                transient: false,
            });
        }
        const JWKS: &str = "oidc.jwks";
        let resp = http::send(JWKS, &self.retry, &[], || async { Ok(self.http.get(&d.jwks_uri)) }).await?;
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<Jwk>,
        }
        let set: Set = http::read_json(JWKS, resp).await?;
        let mut out = HashMap::new();
        for k in set.keys {
            let usable = k.kty == "RSA" && k.use_.as_deref().is_none_or(|u| u == "sig") && k.alg.as_deref().is_none_or(|a| a == "RS256");
            let (true, Some(kid), Some(n), Some(e)) = (usable, k.kid, k.n, k.e) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_rsa_components(n.trim_end_matches('='), e.trim_end_matches('=')) {
                out.insert(kid, key);
            }
        }
        Ok(out)
    }
}

/// Is `then` more than `d` before `now`? (A clock set back counts as not older.)
fn older(now: OffsetDateTime, then: OffsetDateTime, d: Duration) -> bool {
    Duration::try_from(now - then).is_ok_and(|age| age >= d)
}
