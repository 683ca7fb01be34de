//! Errors a person reads are one line in our words: the operation, the service's host, the
//! cause and the request id when there is one. Each kind of failure is provoked for real,
//! in process: the Key Vault SDK client (through our `SecretStore`) and our own GitHub client.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aci_runners::azure::keyvault::SecretStore;
use aci_runners::github::GitHub;
use aci_runners::http::{self, RetryPolicy};
use aci_runners::secret::Secret;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use common::net::{self, Resp};
use serde_json::json;

const ONE_TRY: RetryPolicy = RetryPolicy {
    max_attempts: 1,
    base_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(1),
};

#[derive(Debug)]
struct StaticToken;

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "static-test-token",
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// The one HTTP client as the handler builds it, trusting `ca` (the test CA) when given.
fn client(ca: Option<&[u8]>, timeout: Duration) -> reqwest::Client {
    http::http_client(timeout, ca).unwrap()
}

fn store(http: &reqwest::Client, vault_url: &str) -> SecretStore {
    let options = aci_runners::azure::client_options(http, &ONE_TRY);
    SecretStore::new(vault_url, Arc::new(StaticToken), options, Duration::from_secs(60)).unwrap()
}

/// Reads a secret and returns the error as a person reads it.
async fn keyvault_error(http: &reqwest::Client, vault_url: &str) -> String {
    let e = store(http, vault_url).read("github-pat").await.unwrap_err();
    e.to_string()
}

async fn github_error(http: &reqwest::Client, base: &str) -> String {
    let gh = GitHub::new(http.clone(), base, ONE_TRY);
    gh.token_info(&Secret::new("ghp_x")).await.unwrap_err().to_string()
}

fn one_line_without_debug_dumps(text: &str) {
    assert!(!text.contains('\n'), "one line: {text}");
    for dump in ["Error {", "Custom {", "kind:", "backtrace", "source:"] {
        assert!(!text.contains(dump), "no Debug dump ({dump}): {text}");
    }
}

/// A TCP port nothing listens on: bound, then closed.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Accepts connections and never answers.
async fn silent_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    port
}

#[tokio::test]
async fn a_vault_name_that_does_not_resolve() {
    let e = keyvault_error(&client(None, Duration::from_secs(5)), "https://kv.example.invalid").await;
    assert_eq!(e, "keyvault.get-secret: kv.example.invalid: name does not resolve");
    let e = github_error(&client(None, Duration::from_secs(5)), "https://github.example.invalid/api/v3").await;
    assert_eq!(e, "github.rate-limit: github.example.invalid: name does not resolve");
}

#[tokio::test]
async fn a_refused_connection() {
    let port = closed_port().await;
    let e = keyvault_error(&client(None, Duration::from_secs(5)), &format!("https://localhost:{port}")).await;
    assert_eq!(e, format!("keyvault.get-secret: localhost:{port}: connection refused"));
    let e = github_error(&client(None, Duration::from_secs(5)), &format!("https://127.0.0.1:{port}")).await;
    assert_eq!(e, format!("github.rate-limit: 127.0.0.1:{port}: connection refused"));
}

#[tokio::test]
async fn a_certificate_from_an_unknown_issuer() {
    let pki = net::make_pki(&["localhost"]);
    let addr = net::serve_tls(Arc::new(|_| Resp::json(200, json!({}))), &pki).await;
    let url = format!("https://localhost:{}", addr.port());
    // Not trusting the test CA: the certificate cannot be verified.
    let e = keyvault_error(&client(None, Duration::from_secs(5)), &url).await;
    one_line_without_debug_dumps(&e);
    assert!(
        e.starts_with(&format!("keyvault.get-secret: localhost:{}: TLS: ", addr.port())),
        "{e}"
    );
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = github_error(&client(None, Duration::from_secs(5)), &url).await;
    assert!(
        e.starts_with(&format!("github.rate-limit: localhost:{}: TLS: ", addr.port())),
        "{e}"
    );
}

#[tokio::test]
async fn refusals_carry_the_services_code_and_request_id() {
    let pki = net::make_pki(&["myvault.vault.azure.test", "api.github.test"]);
    let addr = net::serve_tls(
        Arc::new(|r: net::Req| {
            if r.path.starts_with("/secrets/") {
                if r.header("authorization").is_none() {
                    return Resp::json(401, json!({"error": {"code": "Unauthorized", "message": "Request is missing a Bearer or PoP token."}}))
                        .with_header("www-authenticate", r#"Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.test""#);
                }
                Resp::json(
                    403,
                    json!({"error": {"code": "Forbidden", "message": "The user, group or application does not have secrets get permission on key vault 'kv;location=westeurope'.\nFor help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                                     "innererror": {"code": "ForbiddenByRbac"}}}),
                )
                .with_header("x-ms-request-id", "kv-req-0042")
            } else {
                Resp::json(401, json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}))
                    .with_header("x-github-request-id", "GH:0042")
            }
        }),
        &pki,
    )
    .await;
    // Key Vault's challenge names its resource's domain, which the vault's host must be under:
    // real names, resolved to the fake.
    let http = reqwest::Client::builder()
        .resolve("myvault.vault.azure.test", addr)
        .resolve("api.github.test", addr)
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(pki.ca_pem.as_bytes()).unwrap())
        .user_agent(http::USER_AGENT)
        .build()
        .unwrap();
    let port = addr.port();
    let e = keyvault_error(&http, &format!("https://myvault.vault.azure.test:{port}")).await;
    assert_eq!(
        e,
        format!(
            "keyvault.get-secret: myvault.vault.azure.test:{port}: HTTP 403 Forbidden: The user, group or application does not have secrets get permission on key vault 'kv;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287 (request id kv-req-0042)"
        )
    );
    let e = github_error(&http, &format!("https://api.github.test:{port}")).await;
    assert_eq!(
        e,
        format!("github.rate-limit: api.github.test:{port}: HTTP 401: Bad credentials (request id GH:0042)")
    );
}

#[tokio::test]
async fn a_service_that_never_answers_times_out() {
    let port = silent_server().await;
    let http = client(None, Duration::from_millis(300));
    let e = keyvault_error(&http, &format!("https://localhost:{port}")).await;
    assert_eq!(e, format!("keyvault.get-secret: localhost:{port}: timed out"));
    let e = github_error(&http, &format!("https://127.0.0.1:{port}")).await;
    assert_eq!(e, format!("github.rate-limit: 127.0.0.1:{port}: timed out"));
}
