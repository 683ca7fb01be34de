//! A fake GitHub Actions OIDC issuer (discovery document + JWKS, keys can rotate) and a
//! token minter. Claims follow GitHub's documented example token.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::net::{Handler, Req, Resp};

pub const AUDIENCE: &str = "aci-runners-test";
pub const KEY_A: &[u8] = include_bytes!("../data/oidc-test-key-a.der");
pub const KEY_B: &[u8] = include_bytes!("../data/oidc-test-key-b.der");

pub struct TestKey {
    pub kid: String,
    pub pair: RsaKeyPair,
}

impl TestKey {
    pub fn new(kid: &str, der: &[u8]) -> TestKey {
        TestKey {
            kid: kid.into(),
            pair: RsaKeyPair::from_der(der).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let (n, e) = rsa_public_components(self.pair.public_key().as_ref());
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
    }

    /// A token with this header and these claims, signed RS256 by this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!("{}.{}", b64(header), b64(claims));
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut sig)
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A valid token for `repository` at `now`.
    pub fn token(&self, issuer: &str, repository: &str, run_id: u64, attempt: u32, now: i64) -> String {
        self.sign(&header(&self.kid), &claims(issuer, repository, run_id, attempt, now))
    }

    /// The public key as DER (PKCS#1), what an HS256 confusion attack would use as the secret.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// `n` and `e` of a DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`,
/// without leading zero bytes, as a JWK carries them.
fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = b[0];
        let (len, start) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let k = (b[1] & 0x7f) as usize;
            (b[2..2 + k].iter().fold(0usize, |a, x| (a << 8) | *x as usize), 2 + k)
        };
        (tag, &b[start..start + len], &b[start + len..])
    }
    let (seq, body, _) = tlv(der);
    assert_eq!(seq, 0x30);
    let (_, n, rest) = tlv(body);
    let (_, e, _) = tlv(rest);
    let strip = |x: &[u8]| x.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    (strip(n), strip(e))
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

pub fn header(kid: &str) -> Value {
    json!({"typ": "JWT", "alg": "RS256", "x5t": "example-thumbprint", "kid": kid})
}

pub fn claims(issuer: &str, repository: &str, run_id: u64, attempt: u32, now: i64) -> Value {
    let owner = repository.split('/').next().unwrap();
    json!({
        "jti": "example-id", "sub": format!("repo:{repository}:ref:refs/heads/main"), "aud": AUDIENCE,
        "ref": "refs/heads/main", "sha": "example-sha", "repository": repository, "repository_owner": owner,
        "actor_id": "12", "repository_visibility": "private", "repository_id": "74", "repository_owner_id": "65",
        "run_id": run_id.to_string(), "run_number": "10", "run_attempt": attempt.to_string(),
        "runner_environment": "github-hosted", "actor": "octocat", "workflow": "example-workflow",
        "head_ref": "", "base_ref": "", "event_name": "workflow_dispatch", "ref_type": "branch",
        "job_workflow_ref": format!("{repository}/.github/workflows/ci.yml@refs/heads/main"),
        "iss": issuer, "nbf": now - 600, "exp": now + 300, "iat": now
    })
}

#[derive(Default)]
pub struct IssuerState {
    pub jwks: Vec<Value>,
    pub discovery_calls: usize,
    pub jwks_calls: usize,
    pub unexpected: Vec<String>,
    /// The issuer answers 503 to everything (an outage).
    pub down: bool,
}

pub type Issuer = Arc<Mutex<IssuerState>>;

/// Serves `<issuer>/.well-known/openid-configuration` and the JWKS it points to.
pub fn issuer_handler(state: Issuer, issuer: String) -> Handler {
    Arc::new(move |r: Req| {
        let mut s = state.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") if s.down => {
                s.discovery_calls += 1;
                Resp::json(503, json!({"message": "Service Unavailable"}))
            }
            ("GET", "/.well-known/openid-configuration") => {
                s.discovery_calls += 1;
                Resp::json(
                    200,
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/.well-known/jwks"),
                    "subject_types_supported": ["public", "pairwise"], "response_types_supported": ["id_token"],
                    "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid"]}),
                )
            }
            ("GET", "/.well-known/jwks") => {
                s.jwks_calls += 1;
                Resp::json(200, json!({"keys": s.jwks}))
            }
            _ => {
                s.unexpected.push(format!("{} {}", r.method, r.path));
                Resp::json(404, json!({}))
            }
        }
    })
}
