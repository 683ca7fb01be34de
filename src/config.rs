//! One typed `Config`, read once at start from an injected environment.
//!
//! Every error names the setting it is about. Tests pass a map; `main` passes the process
//! environment. Nothing here reads `std::env` itself.

use std::collections::HashMap;
use std::time::Duration;

use url::{Host, Url};

use crate::http::RetryPolicy;

/// Labels GitHub gives every self-hosted runner; a job asking only for these is not ours.
pub const DEFAULT_LABELS: &[&str] = &["self-hosted", "linux", "windows", "macos", "x64", "arm", "arm64"];

/// Longest prefix that still leaves room for `-<run id>-<attempt>-<8 hex>` inside ARM's
/// 63-character limit for every id GitHub can send (read as u64: up to 20 digits; attempts as
/// u32: up to 10 digits).
pub const MAX_PREFIX_LEN: usize = 63 - (1 + 20 + 1 + 10 + 1 + 8);

#[derive(Debug, thiserror::Error)]
#[error("setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

fn err(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Runners are registered to the job's (or token's) repository.
    Repo,
    /// Runners are registered to the repository's organization, in this runner group.
    Org { runner_group_id: u64 },
}

impl Scope {
    /// The runner group a JIT runner joins: the organization's, or the default group (1) of a
    /// repository.
    pub fn runner_group_id(&self) -> u64 {
        match self {
            Scope::Repo => 1,
            Scope::Org { runner_group_id } => *runner_group_id,
        }
    }

    pub fn is_org(&self) -> bool {
        matches!(self, Scope::Org { .. })
    }
}

/// GitHub App mode: the App's client id (the JWT's `iss`) and the Key Vault key that signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubApp {
    /// `GITHUB_APP_CLIENT_ID`.
    pub client_id: String,
    /// `GITHUB_APP_KEY_NAME`: an RSA key in `KEY_VAULT_URL`, used only through its `sign`.
    pub key_name: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub key_vault_url: Url,
    /// `GITHUB_PAT_SECRET_NAME`; not used in App mode.
    pub pat_secret_name: String,
    /// Set in App mode (`GITHUB_APP_CLIENT_ID`): installation tokens instead of the PAT.
    pub github_app: Option<GitHubApp>,
    pub webhook_secret_name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub azure_client_id: Option<String>,
    pub runner_labels: Vec<String>,
    pub scope: Scope,
    pub image: String,
    pub cpu: f64,
    pub memory_gb: f64,
    pub subnet_id: Option<String>,
    pub name_prefix: String,
    pub max_runners: u32,
    /// `MAX_RUNNERS_PER_REPOSITORY`: one repository's share of `MAX_RUNNERS` (unset: all of it).
    pub max_runners_per_repository: Option<u32>,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub allowed_repositories: Vec<String>,
    pub allowed_owners: Vec<String>,
    pub oidc_audience: Option<String>,
    pub oidc_issuer: Url,
    /// GitHub Enterprise Server's has a path (`/api/v3`): append to [`base`] of it.
    pub github_api_url: Url,
    pub arm_url: Url,
    pub aci_api_version: String,
    pub dry_run: bool,
    pub http_timeout: Duration,
    pub retry: RetryPolicy,
    pub secret_cache_ttl: Duration,
    /// `HOST_HEADER_TIMEOUT_MS`: how long the handler's port waits for a request's headers,
    /// idle keep-alive time included (130 s; the tests shorten it).
    pub host_header_timeout: Duration,
    /// `RECONCILE_AFTER_SECONDS`: a queued job this old with no group and no request is given
    /// a runner by the sweeper.
    pub reconcile_after: Duration,
    /// `GITHUB_JIT_PER_MINUTE`: runner registrations this instance makes in any minute, under
    /// GitHub's secondary limit (180), pausing a minute after a refusal; 0 = no pacing.
    pub jit_per_minute: usize,
}

/// Where settings come from: the process environment in `main`, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

struct Reader<'a> {
    env: &'a dyn Env,
}

impl Reader<'_> {
    /// A set, non-blank value, trimmed.
    fn opt(&self, name: &'static str) -> Option<String> {
        self.env.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.opt(name).ok_or_else(|| err(name, "is required but not set"))
    }

    fn or(&self, name: &'static str, default: &str) -> String {
        self.opt(name).unwrap_or_else(|| default.to_string())
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| err(name, format!("{v:?} is not {what}"))),
        }
    }

    fn positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        let v: u64 = self.parse(name, default, "a whole number")?;
        if v == 0 {
            return Err(err(name, "must be greater than 0"));
        }
        Ok(v)
    }

    fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.opt(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(v) => Err(err(name, format!("{v:?} is not true or false"))),
        }
    }

    fn url(&self, name: &'static str, default: Option<&str>) -> Result<Url, ConfigError> {
        let v = match default {
            Some(d) => self.or(name, d),
            None => self.required(name)?,
        };
        check_url(&v).map_err(|m| err(name, m))
    }

    fn list(&self, name: &'static str) -> Vec<String> {
        self.opt(name)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// An outbound base URL: `https://`, or plain `http://` to a loopback host (127.0.0.0/8,
/// `::1`, `localhost`) for tests; no user info, query or fragment, which a path appended to
/// it would lose or send where it should not go.
pub fn check_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("{v:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("{v:?} is plain http to a host other than loopback; use https")),
        _ => return Err(format!("{v:?} is not an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{v:?} holds a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{v:?} has a query or a fragment"));
    }
    Ok(url)
}

/// A base URL without its trailing slash, for appending a path (`/repos/…`) to.
pub fn base(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

/// ARM's rule for container group names, which are also our runner names.
pub fn check_arm_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("{name:?} must be 1 to 63 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(format!("{name:?} may hold only lowercase letters, digits and hyphens"));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!("{name:?} may not start or end with a hyphen or hold two in a row"));
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    check_arm_name(prefix).map_err(|m| err("RUNNER_NAME_PREFIX", m))?;
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(err(
            "RUNNER_NAME_PREFIX",
            format!("{prefix:?} is longer than {MAX_PREFIX_LEN} characters, so some runner names would exceed ARM's 63"),
        ));
    }
    // A name is ours only by its grammar (`<prefix>-<digits>`, `<prefix>-<digits>-<digits>-<hex>`,
    // `<prefix>-w-<hex>`). A prefix whose last part is digits or `w` could read another
    // deployment's names as its own (`aci-5` would take `aci-5-1-abcdef01`... from `aci`), so
    // no deployment may have one.
    let last = prefix.rsplit('-').next().unwrap_or(prefix);
    if last.bytes().all(|b| b.is_ascii_digit()) || last == "w" {
        return Err(err(
            "RUNNER_NAME_PREFIX",
            format!("{prefix:?} may not end in -<digits> or -w: runner names of another deployment could then read as ours"),
        ));
    }
    if !prefix.as_bytes()[0].is_ascii_lowercase() {
        return Err(err("RUNNER_NAME_PREFIX", format!("{prefix:?} must start with a lowercase letter")));
    }
    Ok(())
}

fn check_labels(labels: &[String]) -> Result<(), ConfigError> {
    if labels.is_empty() {
        return Err(err("RUNNER_LABELS", "must name at least one label"));
    }
    if let Some(bad) = labels.iter().find(|l| l.len() > 100 || l.contains(char::is_whitespace)) {
        return Err(err("RUNNER_LABELS", format!("{bad:?} is not a valid label")));
    }
    if labels.iter().all(|l| DEFAULT_LABELS.contains(&l.to_ascii_lowercase().as_str())) {
        return Err(err(
            "RUNNER_LABELS",
            "must hold at least one label that is not a GitHub default (self-hosted, OS, architecture), such as aci",
        ));
    }
    Ok(())
}

/// GitHub's default audience is the owner's URL (`https://github.com/OWNER`, or
/// `https://HOST/OWNER` on GitHub Enterprise Server): every workflow of that owner gets it
/// without asking, for any service. `OIDC_AUDIENCE` must be one the workflow asks for on purpose.
fn check_audience(cfg: &Config) -> Result<(), ConfigError> {
    let Some(aud) = &cfg.oidc_audience else { return Ok(()) };
    // `url` lowercases hosts; an audience that is not a URL has none.
    let aud_host = url::Url::parse(aud).ok().and_then(|u| u.host_str().map(str::to_string));
    let github_host = cfg.github_api_url.host_str().map(|h| h.trim_start_matches("api.").to_string());
    if aud_host.is_some() && (aud_host.as_deref() == Some("github.com") || aud_host == github_host) {
        return Err(err(
            "OIDC_AUDIENCE",
            format!("{aud:?} is on GitHub's own host, where GitHub's default audience (the owner's URL, which every workflow gets) lives; choose a name of your own, e.g. aci-runners"),
        ));
    }
    Ok(())
}

/// App mode when `GITHUB_APP_CLIENT_ID` is set. One credential, never a silent choice: the PAT's
/// secret name beside it is refused, and so is a key name without a client id.
fn read_github_app(r: &Reader<'_>) -> Result<Option<GitHubApp>, ConfigError> {
    let Some(client_id) = r.opt("GITHUB_APP_CLIENT_ID") else {
        if r.opt("GITHUB_APP_KEY_NAME").is_some() {
            return Err(err(
                "GITHUB_APP_KEY_NAME",
                "is set but GITHUB_APP_CLIENT_ID is not: set both for GitHub App mode, or unset GITHUB_APP_KEY_NAME to use the PAT (GITHUB_PAT_SECRET_NAME)",
            ));
        }
        return Ok(None);
    };
    if r.opt("GITHUB_PAT_SECRET_NAME").is_some() {
        return Err(err(
            "GITHUB_APP_CLIENT_ID",
            "and GITHUB_PAT_SECRET_NAME are both set: configure exactly one credential, the GitHub App (GITHUB_APP_CLIENT_ID) or the PAT (GITHUB_PAT_SECRET_NAME), and unset the other",
        ));
    }
    // Client ids (`Iv23li…`, `Iv1.…`) and numeric App ids are both accepted as the JWT's `iss`.
    if client_id.len() > 100
        || !client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(err(
            "GITHUB_APP_CLIENT_ID",
            format!("{client_id:?} is not a GitHub App client id (such as Iv23liAbCdEf0123456789)"),
        ));
    }
    let key_name = r.or("GITHUB_APP_KEY_NAME", "github-app-key");
    if key_name.len() > 127 || !key_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(err(
            "GITHUB_APP_KEY_NAME",
            format!("{key_name:?} is not a Key Vault key name (1 to 127 letters, digits and hyphens)"),
        ));
    }
    Ok(Some(GitHubApp { client_id, key_name }))
}

/// NCRONTAB as the Functions timer trigger takes it: six fields, seconds first.
fn check_schedule(s: &str) -> Result<(), ConfigError> {
    let fields = s.split_whitespace().count();
    if fields != 6 {
        return Err(err(
            "SWEEP_SCHEDULE",
            format!("{s:?} has {fields} fields; NCRONTAB needs 6 (second minute hour day month weekday)"),
        ));
    }
    Ok(())
}

impl Config {
    /// Reads and checks every setting. The first problem found is returned, naming its setting.
    pub fn from_env(env: &dyn Env) -> Result<Config, ConfigError> {
        Self::read(env, false)
    }

    /// The same, but with built-in stand-ins for the settings that say where things live
    /// (vault, subscription, resource group, location), for `handler plan`, which makes no calls.
    pub fn for_plan(env: &dyn Env) -> Result<Config, ConfigError> {
        Self::read(env, true)
    }

    fn read(env: &dyn Env, stand_ins: bool) -> Result<Config, ConfigError> {
        let r = Reader { env };
        let where_ = |name: &'static str, stand_in: &str| -> Result<String, ConfigError> {
            if stand_ins {
                Ok(r.or(name, stand_in))
            } else {
                r.required(name)
            }
        };
        let key_vault_url = if stand_ins {
            r.url("KEY_VAULT_URL", Some("https://example-vault.vault.azure.net"))?
        } else {
            r.url("KEY_VAULT_URL", None)?
        };
        let subscription_id = where_("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000")?;
        let resource_group = where_("RUNNER_RESOURCE_GROUP", "rg-aci-runners")?;
        let location = where_("RUNNER_LOCATION", "westeurope")?;

        let runner_labels = {
            let l = r.list("RUNNER_LABELS");
            if l.is_empty() && r.opt("RUNNER_LABELS").is_none() {
                vec!["self-hosted".into(), "linux".into(), "x64".into(), "aci".into()]
            } else {
                l
            }
        };
        check_labels(&runner_labels)?;

        let scope = match r.or("RUNNER_SCOPE", "repo").to_ascii_lowercase().as_str() {
            "repo" => Scope::Repo,
            "org" => Scope::Org {
                runner_group_id: r.positive("RUNNER_GROUP_ID", 1)?,
            },
            other => return Err(err("RUNNER_SCOPE", format!("{other:?} is neither repo nor org"))),
        };

        let cpu: f64 = r.parse("RUNNER_CPU", 2.0, "a number of cores")?;
        if !(cpu > 0.0 && cpu <= 32.0) {
            return Err(err("RUNNER_CPU", format!("{cpu} is outside 0 to 32 cores")));
        }
        let memory_gb: f64 = r.parse("RUNNER_MEMORY_GB", 4.0, "a number of GB")?;
        if !(memory_gb > 0.0 && memory_gb <= 256.0) {
            return Err(err("RUNNER_MEMORY_GB", format!("{memory_gb} is outside 0 to 256 GB")));
        }

        let subnet_id = r.opt("RUNNER_SUBNET_ID");
        if let Some(s) = &subnet_id {
            let lower = s.to_ascii_lowercase();
            if !(lower.starts_with("/subscriptions/")
                && lower.contains("/providers/microsoft.network/virtualnetworks/")
                && lower.contains("/subnets/"))
            {
                return Err(err(
                    "RUNNER_SUBNET_ID",
                    format!("{s:?} is not a subnet resource id (/subscriptions/…/providers/Microsoft.Network/virtualNetworks/…/subnets/…)"),
                ));
            }
        }

        let name_prefix = r.or("RUNNER_NAME_PREFIX", "aci-runner");
        check_prefix(&name_prefix)?;

        let image = r.or("RUNNER_IMAGE", "ghcr.io/actions/actions-runner:latest");
        if image.contains(char::is_whitespace) {
            return Err(err("RUNNER_IMAGE", format!("{image:?} is not an image reference")));
        }

        let github_app = read_github_app(&r)?;

        // Settings of features this version does not have yet: refused, never silently ignored
        // (a deployment that sets one expects it to work).
        for (setting, feature) in [("WARM_RUNNERS", "warm runners"), ("WARM_HOURS", "warm runners")] {
            if r.opt(setting).is_some() {
                return Err(err(setting, format!("{feature} is not in this version yet; unset it")));
            }
        }

        // Read by the host (`%SWEEP_SCHEDULE%` in the timer's function.json), checked here.
        check_schedule(&r.or("SWEEP_SCHEDULE", "0 */5 * * * *"))?;

        let max_runners: u32 = r.parse("MAX_RUNNERS", 20, "a whole number")?;
        if max_runners == 0 {
            return Err(err("MAX_RUNNERS", "must be greater than 0"));
        }
        let max_runners_per_repository = match r.opt("MAX_RUNNERS_PER_REPOSITORY") {
            None => None,
            Some(_) => {
                let n = r.positive("MAX_RUNNERS_PER_REPOSITORY", 1)?;
                if n > u64::from(max_runners) {
                    return Err(err(
                        "MAX_RUNNERS_PER_REPOSITORY",
                        format!("{n} is more than MAX_RUNNERS ({max_runners}); leave it unset for no share"),
                    ));
                }
                Some(n as u32)
            }
        };
        let idle = r.positive("RUNNER_IDLE_TIMEOUT_MINUTES", 15)?;
        let lifetime = r.positive("RUNNER_MAX_LIFETIME_MINUTES", 360)?;
        if lifetime < idle {
            return Err(err(
                "RUNNER_MAX_LIFETIME_MINUTES",
                format!("{lifetime} is shorter than RUNNER_IDLE_TIMEOUT_MINUTES ({idle})"),
            ));
        }

        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        let allowed_repositories = lower(r.list("ALLOWED_REPOSITORIES"));
        if let Some(bad) = allowed_repositories
            .iter()
            .find(|s| s.split('/').count() != 2 || s.starts_with('/') || s.ends_with('/'))
        {
            return Err(err("ALLOWED_REPOSITORIES", format!("{bad:?} is not owner/name")));
        }
        let allowed_owners = lower(r.list("ALLOWED_OWNERS"));

        let retry = RetryPolicy {
            max_attempts: r.positive("RETRY_MAX_ATTEMPTS", 4)? as u32,
            base_delay: Duration::from_millis(r.parse("RETRY_BASE_DELAY_MS", 500, "a number of milliseconds")?),
            max_delay: Duration::from_millis(r.parse("RETRY_MAX_DELAY_MS", 20_000, "a number of milliseconds")?),
        };

        let cfg = Config {
            key_vault_url,
            pat_secret_name: r.or("GITHUB_PAT_SECRET_NAME", "github-pat"),
            github_app,
            webhook_secret_name: r.or("GITHUB_WEBHOOK_SECRET_NAME", "github-webhook-secret"),
            subscription_id,
            resource_group,
            location,
            azure_client_id: r.opt("AZURE_CLIENT_ID"),
            runner_labels,
            scope,
            image,
            cpu,
            memory_gb,
            subnet_id,
            name_prefix,
            max_runners,
            max_runners_per_repository,
            idle_timeout: Duration::from_secs(idle * 60),
            max_lifetime: Duration::from_secs(lifetime * 60),
            allowed_repositories,
            allowed_owners,
            oidc_audience: r.opt("OIDC_AUDIENCE"),
            oidc_issuer: r.url("OIDC_ISSUER", Some("https://token.actions.githubusercontent.com"))?,
            github_api_url: r.url("GITHUB_API_URL", Some("https://api.github.com"))?,
            arm_url: r.url("AZURE_RESOURCE_MANAGER_URL", Some("https://management.azure.com"))?,
            aci_api_version: r.or("ACI_API_VERSION", "2025-09-01"),
            dry_run: r.bool("DRY_RUN")?,
            http_timeout: Duration::from_secs(r.positive("HTTP_TIMEOUT_SECONDS", 30)?),
            retry,
            secret_cache_ttl: Duration::from_secs(r.parse("SECRET_CACHE_SECONDS", 300, "a number of seconds")?),
            host_header_timeout: Duration::from_millis(r.positive("HOST_HEADER_TIMEOUT_MS", 130_000)?),
            reconcile_after: Duration::from_secs(r.positive("RECONCILE_AFTER_SECONDS", 120)?),
            jit_per_minute: r.parse("GITHUB_JIT_PER_MINUTE", 180, "a whole number")?,
        };
        check_audience(&cfg)?;
        Ok(cfg)
    }

    /// What is allowed but probably not meant, one sentence each (logged at start, shown by `check`).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = vec![];
        if self.oidc_audience.is_some() && self.allowed_repositories.is_empty() && self.allowed_owners.is_empty() {
            w.push(
                "OIDC_AUDIENCE is set with neither ALLOWED_REPOSITORIES nor ALLOWED_OWNERS: a workflow in any repository on the GitHub instance can request runners here"
                    .to_string(),
            );
        }
        w
    }

    /// Is a repository (`owner/name`) allowed by `ALLOWED_REPOSITORIES` / `ALLOWED_OWNERS`?
    pub fn repository_allowed(&self, full_name: &str) -> bool {
        if self.allowed_repositories.is_empty() && self.allowed_owners.is_empty() {
            return true;
        }
        let full = full_name.to_ascii_lowercase();
        let owner = full.split('/').next().unwrap_or("");
        self.allowed_repositories.contains(&full) || self.allowed_owners.iter().any(|o| o == owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("KEY_VAULT_URL", "https://kv.vault.azure.net/"),
            ("AZURE_SUBSCRIPTION_ID", "sub"),
            ("RUNNER_RESOURCE_GROUP", "rg"),
            ("RUNNER_LOCATION", "westeurope"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn error_of(pairs: &[(&str, &str)]) -> ConfigError {
        Config::from_env(&env(pairs)).unwrap_err()
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(base(&c.key_vault_url), "https://kv.vault.azure.net");
        assert_eq!(c.pat_secret_name, "github-pat");
        assert_eq!(c.webhook_secret_name, "github-webhook-secret");
        assert_eq!(c.runner_labels, ["self-hosted", "linux", "x64", "aci"]);
        assert_eq!(c.scope, Scope::Repo);
        assert_eq!(c.image, "ghcr.io/actions/actions-runner:latest");
        assert_eq!((c.cpu, c.memory_gb), (2.0, 4.0));
        assert_eq!(c.name_prefix, "aci-runner");
        assert_eq!(c.max_runners, 20);
        assert_eq!(c.idle_timeout, Duration::from_secs(15 * 60));
        assert_eq!(c.max_lifetime, Duration::from_secs(360 * 60));
        assert_eq!(base(&c.oidc_issuer), "https://token.actions.githubusercontent.com");
        assert_eq!(base(&c.github_api_url), "https://api.github.com");
        assert_eq!(base(&c.arm_url), "https://management.azure.com");
        assert_eq!(c.aci_api_version, "2025-09-01");
        assert!(!c.dry_run && c.oidc_audience.is_none() && c.subnet_id.is_none());
    }

    #[test]
    fn missing_required_setting_is_named() {
        let mut e = env(&[]);
        e.remove("RUNNER_RESOURCE_GROUP");
        let got = Config::from_env(&e).unwrap_err();
        assert_eq!(got.setting, "RUNNER_RESOURCE_GROUP");
        assert!(got.to_string().starts_with("setting RUNNER_RESOURCE_GROUP: "));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: &[(&str, &str, &str)] = &[
            ("prefix with uppercase", "RUNNER_NAME_PREFIX", "ACI"),
            ("prefix with trailing hyphen", "RUNNER_NAME_PREFIX", "aci-"),
            ("prefix with double hyphen", "RUNNER_NAME_PREFIX", "aci--runner"),
            (
                "prefix too long for every name to fit",
                "RUNNER_NAME_PREFIX",
                "a-very-long-runner-prefix-x",
            ),
            ("prefix starting with a digit", "RUNNER_NAME_PREFIX", "1aci"),
            ("prefix ending in digits", "RUNNER_NAME_PREFIX", "aci-runner-2"),
            ("prefix ending in the warm marker", "RUNNER_NAME_PREFIX", "aci-w"),
            ("scope neither repo nor org", "RUNNER_SCOPE", "enterprise"),
            ("cpu not a number", "RUNNER_CPU", "two"),
            ("memory zero", "RUNNER_MEMORY_GB", "0"),
            ("max runners zero", "MAX_RUNNERS", "0"),
            ("max runners negative", "MAX_RUNNERS", "-1"),
            ("a share over the cap", "MAX_RUNNERS_PER_REPOSITORY", "21"),
            ("a share of zero", "MAX_RUNNERS_PER_REPOSITORY", "0"),
            ("dry run not a bool", "DRY_RUN", "maybe"),
            ("only default labels can never be served", "RUNNER_LABELS", "self-hosted,linux"),
            ("five-field cron", "SWEEP_SCHEDULE", "*/5 * * * *"),
            ("repository without owner", "ALLOWED_REPOSITORIES", "hello-world"),
            ("subnet that is not a subnet id", "RUNNER_SUBNET_ID", "my-subnet"),
            ("vault url without scheme", "KEY_VAULT_URL", "kv.vault.azure.net"),
            ("lifetime shorter than idle timeout", "RUNNER_MAX_LIFETIME_MINUTES", "5"),
            ("GitHub's default audience", "OIDC_AUDIENCE", "https://github.com/octo-org"),
            (
                "GitHub's default audience in any case",
                "OIDC_AUDIENCE",
                "HTTPS://GITHUB.COM/octo-org",
            ),
            ("an App client id with a space", "GITHUB_APP_CLIENT_ID", "Iv23li example"),
            ("an App key name without a client id", "GITHUB_APP_KEY_NAME", "github-app-key"),
            ("warm runners, not built yet", "WARM_RUNNERS", "octo-org=2"),
            ("warm hours, not built yet", "WARM_HOURS", "Mon-Fri 07:00-19:00"),
        ];
        for (rule, setting, value) in cases {
            let e = error_of(&[(setting, value)]);
            assert_eq!(e.setting, *setting, "{rule}: {e}");
        }
    }

    #[test]
    fn app_mode_is_on_with_a_client_id_and_refuses_a_pat_beside_it() {
        let pat = Config::from_env(&env(&[])).unwrap();
        assert_eq!(pat.github_app, None, "no client id: the PAT");
        let app = Config::from_env(&env(&[("GITHUB_APP_CLIENT_ID", "Iv23liexample")])).unwrap();
        assert_eq!(
            app.github_app,
            Some(GitHubApp {
                client_id: "Iv23liexample".into(),
                key_name: "github-app-key".into()
            }),
            "the key name's default"
        );
        let named = Config::from_env(&env(&[("GITHUB_APP_CLIENT_ID", "123456"), ("GITHUB_APP_KEY_NAME", "app-key-2")])).unwrap();
        assert_eq!(named.github_app.unwrap().key_name, "app-key-2");
        let both = error_of(&[("GITHUB_APP_CLIENT_ID", "Iv23liexample"), ("GITHUB_PAT_SECRET_NAME", "github-pat")]);
        let text = both.to_string();
        assert!(
            text.contains("GITHUB_APP_CLIENT_ID") && text.contains("GITHUB_PAT_SECRET_NAME"),
            "both settings are named: {text}"
        );
    }

    #[test]
    fn an_audience_without_an_allow_list_is_warned_about() {
        let open = Config::from_env(&env(&[("OIDC_AUDIENCE", "aci-runners")])).unwrap();
        assert_eq!(open.warnings().len(), 1);
        assert!(open.warnings()[0].contains("any repository"));
        let closed = Config::from_env(&env(&[("OIDC_AUDIENCE", "aci-runners"), ("ALLOWED_OWNERS", "octo-org")])).unwrap();
        assert!(closed.warnings().is_empty());
        assert!(
            Config::from_env(&env(&[("OIDC_AUDIENCE", "https://aci-runners.example.com/runners")])).is_ok(),
            "a URL of one's own"
        );
        let ghes = env(&[
            ("GITHUB_API_URL", "https://ghes.example.com/api/v3"),
            ("OIDC_AUDIENCE", "https://ghes.example.com/octo-org"),
        ]);
        assert_eq!(
            Config::from_env(&ghes).unwrap_err().setting,
            "OIDC_AUDIENCE",
            "a GitHub Enterprise Server's default audience"
        );
    }

    #[test]
    fn url_settings_are_https_or_loopback_http_and_bare() {
        let refused: &[(&str, &str)] = &[
            ("no scheme", "kv.vault.azure.net"),
            ("plain http to a public host", "http://kv.vault.azure.net"),
            ("plain http to a private address", "http://10.0.0.4"),
            ("plain http to a name that ends in localhost", "http://localhost.example.com"),
            ("another scheme", "ftp://kv.vault.azure.net"),
            ("a query", "https://kv.vault.azure.net/?code=abc"),
            ("an empty query", "https://kv.vault.azure.net/?"),
            ("a fragment", "https://kv.vault.azure.net/#top"),
            ("a user name", "https://admin@kv.vault.azure.net"),
            ("a user name and password", "https://admin:hunter2@kv.vault.azure.net"),
            ("not a URL at all", "https://"),
        ];
        for setting in ["KEY_VAULT_URL", "OIDC_ISSUER", "GITHUB_API_URL", "AZURE_RESOURCE_MANAGER_URL"] {
            for (rule, value) in refused {
                let e = error_of(&[(setting, value)]);
                assert_eq!(e.setting, setting, "{rule} is refused, naming its setting: {e}");
            }
        }
        let accepted: &[(&str, &str, &str)] = &[
            ("https", "https://kv.vault.azure.net/", "https://kv.vault.azure.net"),
            (
                "https with a path",
                "https://ghes.example.com/api/v3",
                "https://ghes.example.com/api/v3",
            ),
            (
                "a path with a trailing slash",
                "https://ghes.example.com/api/v3/",
                "https://ghes.example.com/api/v3",
            ),
            ("https with a port", "https://127.0.0.1:8443", "https://127.0.0.1:8443"),
            ("plain http to 127.0.0.1", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("plain http to anywhere in 127/8", "http://127.1.2.3", "http://127.1.2.3"),
            ("plain http to ::1", "http://[::1]:8080", "http://[::1]:8080"),
            ("plain http to localhost", "http://LocalHost:8080", "http://localhost:8080"),
        ];
        for (rule, value, base_url) in accepted {
            let c = Config::from_env(&env(&[("GITHUB_API_URL", value)])).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(base(&c.github_api_url), *base_url, "{rule}");
        }
    }

    #[test]
    fn org_scope_reads_the_runner_group() {
        let c = Config::from_env(&env(&[("RUNNER_SCOPE", "org"), ("RUNNER_GROUP_ID", "7")])).unwrap();
        assert_eq!(c.scope, Scope::Org { runner_group_id: 7 });
    }

    #[test]
    fn longest_allowed_prefix_fits_every_name() {
        let prefix = "a".repeat(MAX_PREFIX_LEN);
        Config::from_env(&env(&[("RUNNER_NAME_PREFIX", &prefix)])).unwrap();
        let longest = format!("{prefix}-{}-{}-{}", u64::MAX, u32::MAX, "abcdef01");
        assert!(check_arm_name(&longest).is_ok(), "{longest}");
    }

    #[test]
    fn plan_needs_no_settings() {
        let c = Config::for_plan(&HashMap::new()).unwrap();
        assert_eq!(c.location, "westeurope");
    }

    #[test]
    fn allow_lists_are_case_insensitive() {
        let c = Config::from_env(&env(&[("ALLOWED_REPOSITORIES", "Octo/Hello"), ("ALLOWED_OWNERS", "Acme")])).unwrap();
        assert!(c.repository_allowed("octo/hello"));
        assert!(c.repository_allowed("ACME/anything"));
        assert!(!c.repository_allowed("octo/other"));
        let open = Config::from_env(&env(&[])).unwrap();
        assert!(open.repository_allowed("anyone/anything"));
    }
}
