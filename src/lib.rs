//! aci-runners: on-demand, ephemeral, self-hosted GitHub Actions runners on Azure Container
//! Instances, as an Azure Functions custom handler.
//!
//! Edges: [`host`] (the Functions protocol), [`config`], [`webhook`] (GitHub deliveries),
//! [`github`], [`arm`] and [`azure`] (identity, Key Vault). Pure decisions live in [`decide`].
//! The functions themselves are in [`functions`]; `main` wires them together.

pub mod admission;
pub mod arm;
pub mod azure;
pub mod check;
pub mod config;
pub mod decide;
pub mod functions;
pub mod github;
pub mod host;
pub mod log;
pub mod oidc;
pub mod plan;
pub mod retry;
pub mod secret;
pub mod sweep;
pub mod webhook;
