//! GitHub Actions OIDC tokens: RS256 only, keys from the issuer's discovery document and JWKS
//! (cached, refetched on an unknown `kid` at most once per [`REFETCH_INTERVAL`]), `iss` exact,
//! `aud` equal to `OIDC_AUDIENCE`, `exp`/`nbf`/`iat` with a small skew. RSA verification is
//! aws-lc-rs, the crypto library the TLS stack already uses.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
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
    by_kid: HashMap<String, RsaPublicKeyComponents<Vec<u8>>>,
    fetched_at: Option<OffsetDateTime>,
}

pub struct Verifier {
    http: reqwest::Client,
    issuer: String,
    audience: String,
    retry: RetryPolicy,
    clock: Clock,
    keys: RwLock<Keys>,
    refetch: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    repository_owner: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_attempt: Option<String>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

impl Verifier {
    pub fn new(http: reqwest::Client, issuer: &str, audience: &str, retry: RetryPolicy, clock: Clock) -> Self {
        Verifier {
            http,
            issuer: issuer.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            retry,
            clock,
            keys: RwLock::new(Keys::default()),
            refetch: tokio::sync::Mutex::new(()),
        }
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
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode_json(h).ok_or(TokenError::Malformed("header"))?;
        if header.alg != "RS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(TokenError::Malformed("no kid"))?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed("signature encoding"))?;
        let key = self.key(&kid).await?;
        let signed = &token[..h.len() + 1 + p.len()];
        key.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;

        let c: RawClaims = decode_json(p).ok_or(TokenError::Malformed("claims"))?;
        if c.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(TokenError::Issuer);
        }
        let aud_ok = match &c.aud {
            Some(serde_json::Value::String(a)) => *a == self.audience,
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience);
        }
        let now = (self.clock)().unix_timestamp();
        let skew = SKEW.as_secs() as i64;
        let exp = c.exp.ok_or(TokenError::Claim("exp"))?;
        if now > exp + skew {
            return Err(TokenError::Expired);
        }
        if c.nbf.is_some_and(|nbf| now + skew < nbf) || c.iat.is_some_and(|iat| now + skew < iat) {
            return Err(TokenError::NotYetValid);
        }
        let repository = c.repository.filter(|r| r.contains('/')).ok_or(TokenError::Claim("repository"))?;
        let owner = c.repository_owner.ok_or(TokenError::Claim("repository_owner"))?;
        let run_id = c.run_id.and_then(|r| r.parse().ok()).ok_or(TokenError::Claim("run_id"))?;
        let run_attempt = c.run_attempt.and_then(|r| r.parse().ok()).ok_or(TokenError::Claim("run_attempt"))?;
        Ok(Claims {
            repository,
            owner,
            run_id,
            run_attempt,
        })
    }

    fn cached(&self, kid: &str) -> Option<RsaPublicKeyComponents<Vec<u8>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).by_kid.get(kid).cloned()
    }

    /// The key for `kid`: cached, or fetched when unknown (rate-limited).
    async fn key(&self, kid: &str) -> Result<RsaPublicKeyComponents<Vec<u8>>, TokenError> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let _one = self.refetch.lock().await;
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let now = (self.clock)();
        let last = self.keys.read().unwrap_or_else(|e| e.into_inner()).fetched_at;
        if last.is_some_and(|t| now - t < REFETCH_INTERVAL) {
            return Err(TokenError::UnknownKey);
        }
        let fetched = self.fetch_keys().await.map_err(|e| TokenError::IssuerUnavailable(e.to_string()))?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.by_kid = fetched;
        keys.fetched_at = Some(now);
        keys.by_kid.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }

    /// The discovery document's `jwks_uri`, then its RSA signing keys.
    pub async fn fetch_keys(&self) -> Result<HashMap<String, RsaPublicKeyComponents<Vec<u8>>>, CallError> {
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
            let (Some(kid), Some(n), Some(e)) = (k.kid, k.n, k.e) else {
                continue;
            };
            let (Ok(n), Ok(e)) = (
                URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')),
                URL_SAFE_NO_PAD.decode(e.trim_end_matches('=')),
            ) else {
                continue;
            };
            if usable {
                out.insert(kid, RsaPublicKeyComponents { n, e });
            }
        }
        Ok(out)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}
