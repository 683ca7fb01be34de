//! aci-runners: on-demand, ephemeral, self-hosted GitHub Actions runners on Azure Container
//! Instances, as an Azure Functions custom handler.
//!
//! The map, highest first; each layer uses only those below it:
//! - [`cli`]: `plan`, `check`, `sweep`, `report` from a workstation (`main` is wiring only);
//! - [`report`]: the job's timeline read back from an export, as figures, text and a page;
//! - [`functions`]: one module per function (`github-webhook`, `runners`, `provision`,
//!   `sweep`), each parse → decide → act, and the [`functions::App`] they share;
//! - [`rules`]: pure decisions over plain data (jobs served, names, the container group and its
//!   tags, admission under `MAX_RUNNERS`, the sweeper's selection);
//! - the outside systems, each a thin concrete client that knows nothing of our tags or queues:
//!   [`github`] (REST, webhook deliveries, OIDC tokens, GitHub App auth), [`azure`]
//!   (credential, Key Vault secrets and key signing, ARM container groups), [`host`] (the Functions custom-handler protocol);
//! - shared: [`config`], [`http`] (the one HTTP client, retries, `CallError`), [`log`],
//!   [`secret`], [`clock`], [`target`] (repository or organization), [`job`] (a workflow job).

pub mod azure;
pub mod cli;
pub mod clock;
pub mod config;
pub mod functions;
pub mod github;
pub mod host;
pub mod http;
pub mod job;
pub mod log;
pub mod report;
pub mod rules;
pub mod secret;
pub mod target;
