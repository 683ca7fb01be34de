//! The Azure side: the credential (`azure_identity`), the client options every SDK client
//! shares, Key Vault ([`keyvault`]) and Azure Resource Manager's container groups ([`arm`]).

pub mod arm;
pub mod keyvault;

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

use crate::http::{self, CallError, RetryPolicy};

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

/// An SDK error as a `CallError`, in our words: the service's status, error code, message and
/// request id when it answered; the cause in a few words when it did not ([`http::cause_of`]);
/// never the SDK's `Debug` dump.
pub fn sdk_error(op: &'static str, host: &str, e: azure_core::Error) -> CallError {
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let header = |name: &'static str| {
                raw_response.as_ref().and_then(|r| {
                    r.headers()
                        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
                        .map(str::to_string)
                })
            };
            let body: Option<serde_json::Value> = raw_response.as_ref().and_then(|r| r.body().json().ok());
            let message = body
                .as_ref()
                .and_then(|b| b["error"]["message"].as_str())
                .map(http::one_line)
                .unwrap_or_else(|| status.canonical_reason().to_string());
            // The service's own code; the SDK falls back to the status number, which says nothing.
            let code = header("x-ms-error-code")
                .or_else(|| body.as_ref().and_then(|b| b["error"]["code"].as_str()).map(str::to_string))
                .or_else(|| error_code.clone().filter(|c| !c.bytes().all(|b| b.is_ascii_digit())));
            CallError::Status {
                op,
                host: host.to_string(),
                status: u16::from(*status),
                code,
                message,
                request_id: header("x-ms-request-id"),
                rate_limited: false,
            }
        }
        ErrorKind::Io | ErrorKind::Connection => CallError::Transport {
            op,
            host: host.to_string(),
            cause: http::cause_of(&e),
        },
        ErrorKind::Credential => CallError::Other {
            op,
            message: format!("{host}: no token from the credential: {}", http::cause_of(&e)),
            transient: true,
        },
        _ => CallError::Other {
            op,
            message: format!("{host}: {}", http::cause_of(&e)),
            transient: false,
        },
    }
}
