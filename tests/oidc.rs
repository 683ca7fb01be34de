//! OIDC token verification, in process against a fake issuer with an injected clock.

mod common;

use std::sync::{Arc, Mutex};

use aci_runners::github::oidc::{Claims, TokenError, Verifier};
use aci_runners::http::RetryPolicy;
use common::oidc::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use time::OffsetDateTime;

const REPO: &str = "octo-org/octo-repo";

struct Setup {
    verifier: Verifier,
    issuer: Issuer,
    url: String,
    now: Arc<Mutex<OffsetDateTime>>,
    a: TestKey,
    b: TestKey,
}

async fn setup() -> Setup {
    let issuer: Issuer = Default::default();
    let a = TestKey::new("key-a", KEY_A);
    let b = TestKey::new("key-b", KEY_B);
    issuer.lock().unwrap().jwks.push(a.jwk());
    // The issuer URL is only known once bound; the handler reads it per request.
    let url_cell: Arc<Mutex<String>> = Default::default();
    let handler_issuer = issuer.clone();
    let cell = url_cell.clone();
    let addr = common::net::serve_http(Arc::new(move |r| {
        issuer_handler(handler_issuer.clone(), cell.lock().unwrap().clone())(r)
    }))
    .await;
    let url = format!("http://{addr}");
    *url_cell.lock().unwrap() = url.clone();
    let now = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
    let clock_now = now.clone();
    let retry = RetryPolicy {
        max_attempts: 2,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let verifier = Verifier::new(http, &url, AUDIENCE, retry, Arc::new(move || *clock_now.lock().unwrap()));
    Setup {
        verifier,
        issuer,
        url,
        now,
        a,
        b,
    }
}

/// Every test ends by checking the issuer saw only the calls it serves.
impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let unexpected = &self.issuer.lock().unwrap().unexpected;
            assert!(unexpected.is_empty(), "unexpected OIDC issuer calls: {unexpected:?}");
        }
    }
}

impl Setup {
    fn ts(&self) -> i64 {
        self.now.lock().unwrap().unix_timestamp()
    }

    fn valid(&self) -> String {
        self.a.token(&self.url, REPO, 2202229078, 2, self.ts())
    }

    fn with_claims(&self, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut c = claims(&self.url, REPO, 2202229078, 2, self.ts());
        f(&mut c);
        self.a.sign(&header("key-a"), &c)
    }
}

#[tokio::test]
async fn a_valid_token_yields_its_repository_and_run() {
    let s = setup().await;
    let c = s.verifier.verify_header(Some(&format!("Bearer {}", s.valid()))).await.unwrap();
    assert_eq!(
        c,
        Claims {
            repository: REPO.into(),
            owner: "octo-org".into(),
            run_id: 2202229078,
            run_attempt: 2
        }
    );
    // Keys are cached: a second token costs no fetch.
    s.verifier.verify(&s.valid()).await.unwrap();
    let calls = {
        let i = s.issuer.lock().unwrap();
        (i.discovery_calls, i.jwks_calls)
    };
    assert_eq!(calls, (1, 1));
}

#[tokio::test]
async fn every_bad_token_is_refused() {
    let s = setup().await;
    let now = s.ts();
    let valid = s.valid();
    let (h, p, _) = {
        let mut it = valid.split('.');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let forged = {
        // Signed by key B but claiming key A.
        s.b.sign(&header("key-a"), &claims(&s.url, REPO, 1, 1, now))
    };
    let alg_none = format!("{}.{p}.", b64(&json!({"alg": "none", "kid": "key-a"})));
    let hs256 = {
        let hh = b64(&json!({"alg": "HS256", "kid": "key-a", "typ": "JWT"}));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&s.a.public_der()).unwrap();
        mac.update(format!("{hh}.{p}").as_bytes());
        format!(
            "{hh}.{p}.{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac.finalize().into_bytes())
        )
    };
    let tampered = {
        let c = b64(&claims(&s.url, "evil/repo", 2202229078, 2, now));
        let sig = valid.rsplit('.').next().unwrap();
        format!("{h}.{c}.{sig}")
    };
    type Case<'a> = (&'a str, Option<String>, fn(&TokenError) -> bool);
    let cases: Vec<Case> = vec![
        ("forged signature", Some(format!("Bearer {forged}")), |e| {
            *e == TokenError::Signature
        }),
        ("claims changed after signing", Some(format!("Bearer {tampered}")), |e| {
            *e == TokenError::Signature
        }),
        (
            "expired",
            Some(format!("Bearer {}", s.with_claims(|c| c["exp"] = json!(now - 61)))),
            |e| *e == TokenError::Expired,
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", s.with_claims(|c| c["nbf"] = json!(now + 120)))),
            |e| *e == TokenError::NotYetValid,
        ),
        (
            "issued in the future",
            Some(format!("Bearer {}", s.with_claims(|c| c["iat"] = json!(now + 120)))),
            |e| *e == TokenError::NotYetValid,
        ),
        (
            "wrong audience",
            Some(format!("Bearer {}", s.with_claims(|c| c["aud"] = json!("someone-else")))),
            |e| *e == TokenError::Audience,
        ),
        (
            "the default owner-URL audience",
            Some(format!(
                "Bearer {}",
                s.with_claims(|c| c["aud"] = json!("https://github.com/octo-org"))
            )),
            |e| *e == TokenError::Audience,
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {}", s.with_claims(|c| c["iss"] = json!("https://evil.example")))),
            |e| *e == TokenError::Issuer,
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                s.with_claims(|c| c.as_object_mut().unwrap().remove("exp").map(|_| ()).unwrap())
            )),
            |e| *e == TokenError::Claim("exp"),
        ),
        // jsonwebtoken knows no algorithm `none`: such a header is not read at all.
        ("alg none", Some(format!("Bearer {alg_none}")), |e| {
            *e == TokenError::Malformed("header")
        }),
        (
            "HS256 signed with the public key",
            Some(format!("Bearer {hs256}")),
            |e| matches!(e, TokenError::Algorithm(a) if a == "HS256"),
        ),
        (
            "unknown kid",
            Some(format!("Bearer {}", s.b.sign(&header("key-zzz"), &claims(&s.url, REPO, 1, 1, now)))),
            |e| *e == TokenError::UnknownKey,
        ),
        (
            "run id not a string of digits",
            Some(format!("Bearer {}", s.with_claims(|c| c["run_id"] = json!("+7")))),
            |e| *e == TokenError::Claim("run_id"),
        ),
        (
            "repository without owner",
            Some(format!("Bearer {}", s.with_claims(|c| c["repository"] = json!("octo-repo")))),
            |e| *e == TokenError::Claim("repository"),
        ),
        (
            "no audience",
            Some(format!(
                "Bearer {}",
                s.with_claims(|c| c.as_object_mut().unwrap().remove("aud").map(|_| ()).unwrap())
            )),
            |e| *e == TokenError::Audience,
        ),
        ("missing header", None, |e| *e == TokenError::Missing),
        ("empty bearer", Some("Bearer ".into()), |e| *e == TokenError::Missing),
        ("basic auth", Some("Basic dXNlcjpwYXNz".into()), |e| *e == TokenError::Missing),
        ("not a JWT", Some("Bearer abc.def".into()), |e| {
            matches!(e, TokenError::Malformed(_))
        }),
        ("garbage header", Some(format!("Bearer !!!.{p}.sig")), |e| {
            matches!(e, TokenError::Malformed(_))
        }),
    ];
    for (rule, header, expected) in cases {
        let got = s.verifier.verify_header(header.as_deref()).await;
        match got {
            Err(e) => assert!(expected(&e), "{rule}: got {e:?}"),
            Ok(c) => panic!("{rule}: accepted {c:?}"),
        }
    }
}

#[tokio::test]
async fn the_audience_may_be_one_of_several_and_times_at_the_ends_of_i64_do_not_overflow() {
    let s = setup().await;
    let cases: Vec<(&str, String)> = vec![
        (
            "audience among others",
            s.with_claims(|c| c["aud"] = json!(["someone-else", AUDIENCE])),
        ),
        ("expires at the end of time", s.with_claims(|c| c["exp"] = json!(i64::MAX))),
        (
            "valid since the start of time",
            s.with_claims(|c| {
                c["nbf"] = json!(i64::MIN);
                c["iat"] = json!(i64::MIN);
            }),
        ),
        // The skew, checked against the injected clock, not the system's.
        ("expired 59 s ago", s.with_claims(|c| c["exp"] = json!(s.ts() - 59))),
        ("issued 59 s ahead", s.with_claims(|c| c["iat"] = json!(s.ts() + 59))),
    ];
    for (rule, token) in cases {
        assert!(s.verifier.verify(&token).await.is_ok(), "{rule}");
    }
    // Only the injected clock counts: two hours back, a token of then is valid though the
    // system's clock has it expired, and an hour on it has expired though the system's has not.
    *s.now.lock().unwrap() -= time::Duration::hours(2);
    s.verifier.verify(&s.valid()).await.unwrap();
    let token = {
        *s.now.lock().unwrap() += time::Duration::hours(2);
        s.valid()
    };
    *s.now.lock().unwrap() += time::Duration::hours(1);
    assert_eq!(s.verifier.verify(&token).await.unwrap_err(), TokenError::Expired);
}

#[tokio::test]
async fn keys_rotated_at_the_issuer_are_picked_up() {
    let s = setup().await;
    s.verifier.verify(&s.valid()).await.unwrap();
    // The issuer moves to key B.
    s.issuer.lock().unwrap().jwks = vec![s.b.jwk()];
    let with_b = s.b.token(&s.url, REPO, 7, 1, s.ts());
    // An unknown kid right after a fetch is refused without hammering the issuer...
    assert_eq!(s.verifier.verify(&with_b).await.unwrap_err(), TokenError::UnknownKey);
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 1);
    // ...and once the refetch interval has passed, the new key is fetched and accepted.
    *s.now.lock().unwrap() += time::Duration::seconds(61);
    let with_b = s.b.token(&s.url, REPO, 7, 1, s.ts());
    assert_eq!(s.verifier.verify(&with_b).await.unwrap().run_id, 7);
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 2);
    // A token signed with the retired key no longer verifies.
    let with_a = s.a.token(&s.url, REPO, 7, 1, s.ts());
    assert_eq!(s.verifier.verify(&with_a).await.unwrap_err(), TokenError::UnknownKey);
}

#[tokio::test]
async fn a_burst_of_unknown_kids_costs_one_fetch() {
    let s = setup().await;
    for i in 0..20 {
        let t = s.b.sign(&header(&format!("attacker-{i}")), &claims(&s.url, REPO, 1, 1, s.ts()));
        assert_eq!(s.verifier.verify(&t).await.unwrap_err(), TokenError::UnknownKey);
    }
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 1);
}

#[tokio::test]
async fn an_unreachable_issuer_is_not_the_callers_fault() {
    let retry = RetryPolicy {
        max_attempts: 1,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(1),
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // Port 1 (tcpmux) is closed on any machine that runs these tests: connection refused. A
    // port taken from port 0 and let go could meanwhile be bound by a test running beside.
    let url = "http://127.0.0.1:1".to_string();
    let v = Verifier::new(http, &url, AUDIENCE, retry, Arc::new(OffsetDateTime::now_utc));
    let t = TestKey::new("key-a", KEY_A).token(&url, REPO, 1, 1, OffsetDateTime::now_utc().unix_timestamp());
    assert!(matches!(v.verify(&t).await, Err(TokenError::IssuerUnavailable(_))));
}

#[tokio::test]
async fn a_failed_key_fetch_is_remembered_for_a_while() {
    let s = setup().await;
    s.issuer.lock().unwrap().down = true;
    // The issuer is down: the first request pays one fetch, the next ones none.
    for _ in 0..10 {
        assert!(matches!(s.verifier.verify(&s.valid()).await, Err(TokenError::IssuerUnavailable(_))));
    }
    assert_eq!(
        s.issuer.lock().unwrap().discovery_calls,
        2,
        "one fetch (two tries by the retry policy)"
    );
    // Past the memory, and the issuer back: one fetch, and tokens verify.
    s.issuer.lock().unwrap().down = false;
    *s.now.lock().unwrap() += time::Duration::seconds(31);
    s.verifier.verify(&s.valid()).await.unwrap();
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 1);
}

#[tokio::test]
async fn keys_in_use_are_refreshed_hourly_and_retired_ones_dropped() {
    let s = setup().await;
    s.issuer.lock().unwrap().jwks.push(s.b.jwk());
    s.verifier.verify(&s.valid()).await.unwrap();
    let with_b = |s: &Setup| s.b.token(&s.url, REPO, 7, 1, s.ts());
    s.verifier.verify(&with_b(&s)).await.unwrap();
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 1, "both keys from one fetch");
    // The issuer retires key B. Within the hour, the set in hand is used as it is.
    s.issuer.lock().unwrap().jwks = vec![s.a.jwk()];
    *s.now.lock().unwrap() += time::Duration::minutes(59);
    s.verifier.verify(&with_b(&s)).await.unwrap();
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 1);
    // After it, the next request reads the set again: B is gone.
    *s.now.lock().unwrap() += time::Duration::minutes(2);
    assert_eq!(s.verifier.verify(&with_b(&s)).await.unwrap_err(), TokenError::UnknownKey);
    assert_eq!(s.issuer.lock().unwrap().jwks_calls, 2);
    s.verifier.verify(&s.valid()).await.unwrap();
    // A refresh that fails keeps the keys in hand.
    s.issuer.lock().unwrap().down = true;
    *s.now.lock().unwrap() += time::Duration::minutes(61);
    s.verifier.verify(&s.valid()).await.unwrap();
}

#[tokio::test]
async fn a_hanging_issuer_costs_a_request_at_most_the_fetch_wait() {
    // Accepts connections and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((c, _)) = l.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(c);
        }
    });
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(1),
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let v = Verifier::new(http, &url, AUDIENCE, retry, Arc::new(OffsetDateTime::now_utc))
        .with_fetch_wait(std::time::Duration::from_millis(200));
    let t = TestKey::new("key-a", KEY_A).token(&url, REPO, 1, 1, OffsetDateTime::now_utc().unix_timestamp());
    // Without the fetch wait, four tries of the HTTP client's own 30 s timeout.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), v.verify(&t)).await;
    assert!(matches!(answer, Ok(Err(TokenError::IssuerUnavailable(_)))), "{answer:?}");
    let tried = connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(tried >= 1);
    // And the failure is remembered: the next requests do not go to the issuer again.
    for _ in 0..5 {
        assert!(matches!(v.verify(&t).await, Err(TokenError::IssuerUnavailable(_))));
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), tried);
}
