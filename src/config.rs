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
    /// `WARM_RUNNERS` and `WARM_HOURS`; `None` when `WARM_RUNNERS` is unset (nothing of the
    /// feature runs).
    pub warm: Option<Warm>,
}

/// Warm runners: a floor of idle runners per target, during some hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warm {
    /// `WARM_RUNNERS`, one entry per target, each target once.
    pub floors: Vec<WarmFloor>,
    /// `WARM_HOURS`; empty = always.
    pub hours: Vec<WarmWindow>,
}

/// Idle runners kept ready in one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmFloor {
    /// Lowercase `owner/name` (repo scope) or `owner` (org scope), as the scope names targets.
    pub target: String,
    pub runners: u32,
}

/// One window of `WARM_HOURS`: on these days, from `start` to `end` (minutes after midnight),
/// at a fixed offset from UTC. An `end` at or before `start` runs past midnight into the next
/// day (counted as the day it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmWindow {
    /// Monday first.
    pub days: [bool; 7],
    pub start: u16,
    pub end: u16,
    /// Minutes east of UTC (`UTC+01:00` = 60).
    pub offset_minutes: i16,
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

/// The owner of `owner/name`.
pub fn owner_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

/// GitHub's grammar for a user or organization login: 1 to 39 letters, digits and hyphens,
/// not starting with a hyphen. (GitHub also refuses a trailing or doubled hyphen in new names,
/// but some old logins have them, so they are accepted.)
pub fn valid_owner(owner: &str) -> bool {
    (1..=39).contains(&owner.len()) && !owner.starts_with('-') && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// GitHub's grammar for a repository name: 1 to 100 letters, digits, `.`, `_` and `-`, and
/// never `.` or `..`.
pub fn valid_repository_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `owner/name`, each part by GitHub's grammar, so it can go into a URL path as it is.
pub fn valid_repository(full_name: &str) -> bool {
    match full_name.split_once('/') {
        Some((owner, name)) => valid_owner(owner) && valid_repository_name(name),
        None => false,
    }
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

/// `WARM_RUNNERS`: a comma list of `TARGET=N` (`owner/name=N` in repo scope, `owner=N` in org
/// scope), or one plain `N` for every target the allow-lists name (`ALLOWED_REPOSITORIES` in repo
/// scope; `ALLOWED_OWNERS` and the owners of `ALLOWED_REPOSITORIES` in org scope). `N` is 1 to
/// 100; each target once; a target the allow-lists leave out (when set) is refused, as its jobs
/// are never served.
pub fn parse_warm_runners(
    v: &str,
    scope: &Scope,
    allowed_repositories: &[String],
    allowed_owners: &[String],
) -> Result<Vec<WarmFloor>, String> {
    let count = |n: &str| -> Result<u32, String> {
        let n = n.trim();
        match n.parse::<u32>() {
            Ok(x @ 1..=100) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(x),
            _ => Err(format!("{n:?} is not a number of runners from 1 to 100")),
        }
    };
    let org = scope.is_org();
    let allowed = |t: &str| -> bool {
        if allowed_repositories.is_empty() && allowed_owners.is_empty() {
            return true;
        }
        if org {
            allowed_owners.iter().any(|o| o == t) || allowed_repositories.iter().any(|r| owner_of(r) == t)
        } else {
            allowed_repositories.iter().any(|r| r == t) || allowed_owners.iter().any(|o| o == owner_of(t))
        }
    };
    let v = v.trim();
    if !v.contains('=') {
        let n = count(v)?;
        let mut targets: Vec<String> = if org {
            allowed_owners
                .iter()
                .cloned()
                .chain(allowed_repositories.iter().map(|r| owner_of(r).to_string()))
                .collect()
        } else {
            allowed_repositories.to_vec()
        };
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            let lists = if org {
                "ALLOWED_OWNERS or ALLOWED_REPOSITORIES"
            } else {
                "ALLOWED_REPOSITORIES"
            };
            return Err(format!(
                "a plain number applies to every target {lists} names, and it names none; write TARGET=N (e.g. {})",
                if org { "octo-org=2" } else { "octo-org/octo-repo=2" }
            ));
        }
        return Ok(targets.into_iter().map(|target| WarmFloor { target, runners: n }).collect());
    }
    let mut floors: Vec<WarmFloor> = vec![];
    for entry in v.split(',').map(str::trim) {
        let Some((target, n)) = entry.split_once('=') else {
            return Err(format!("{entry:?} is not TARGET=N"));
        };
        let target = target.trim().to_ascii_lowercase();
        let fits = if org { valid_owner(&target) } else { valid_repository(&target) };
        if !fits {
            return Err(if org {
                format!("{target:?} is not an organization (RUNNER_SCOPE=org registers runners to organizations: owner=N)")
            } else {
                format!("{target:?} is not owner/name (RUNNER_SCOPE=repo registers runners to repositories: owner/name=N)")
            });
        }
        if !allowed(&target) {
            return Err(format!(
                "{target:?} is outside ALLOWED_REPOSITORIES/ALLOWED_OWNERS: its jobs are never served"
            ));
        }
        if floors.iter().any(|f| f.target == target) {
            return Err(format!("{target:?} is named twice"));
        }
        floors.push(WarmFloor {
            target,
            runners: count(n)?,
        });
    }
    Ok(floors)
}

/// `WARM_HOURS`: a comma list of windows `DAYS HH:MM-HH:MM [ZONE]`. `DAYS` is a day (`Mon` …
/// `Sun`), a range (`Mon-Fri`; `Fri-Mon` wraps) or `Daily`; times are 24-hour, the end may be
/// `24:00`, and an end at or before the start runs past midnight. `ZONE` is `UTC` (the default)
/// or a fixed offset, `UTC+01:00` / `UTC-05:00`: no daylight saving (write the offset that
/// holds, or the window in UTC).
pub fn parse_warm_hours(v: &str) -> Result<Vec<WarmWindow>, String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let day = |d: &str| {
        DAYS.iter()
            .position(|x| x.eq_ignore_ascii_case(d))
            .ok_or_else(|| format!("{d:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
    };
    let clock = |t: &str, end: bool| -> Result<u16, String> {
        let bad = || format!("{t:?} is not a time HH:MM (00:00 to {})", if end { "24:00" } else { "23:59" });
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        match (h, m) {
            (24, 0) if end => Ok(24 * 60),
            (0..=23, 0..=59) => Ok(h * 60 + m),
            _ => Err(bad()),
        }
    };
    let zone = |z: &str| -> Result<i16, String> {
        let bad = || format!("{z:?} is not UTC or a fixed offset such as UTC+01:00 or UTC-05:00");
        let upper = z.to_ascii_uppercase();
        let rest = upper.strip_prefix("UTC").ok_or_else(bad)?;
        if rest.is_empty() {
            return Ok(0);
        }
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let minutes = clock(&rest[1..], false).map_err(|_| bad())?;
        if minutes > 14 * 60 {
            return Err(bad());
        }
        Ok(sign * minutes as i16)
    };
    let mut out = vec![];
    for window in v.split(',').map(str::trim) {
        let parts: Vec<&str> = window.split_whitespace().collect();
        let (days, times, offset) = match parts.as_slice() {
            [d, t] => (*d, *t, 0),
            [d, t, z] => (*d, *t, zone(z)?),
            _ => return Err(format!("{window:?} is not DAYS HH:MM-HH:MM [ZONE], e.g. Mon-Fri 07:00-19:00 UTC")),
        };
        let mut set = [false; 7];
        if days.eq_ignore_ascii_case("daily") {
            set = [true; 7];
        } else {
            let (first, last) = match days.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => (day(days)?, day(days)?),
            };
            let mut d = first;
            loop {
                set[d] = true;
                if d == last {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        let (start, end) = times.split_once('-').ok_or_else(|| format!("{times:?} is not HH:MM-HH:MM"))?;
        let (start, end) = (clock(start, false)?, clock(end, true)?);
        if start == end {
            return Err(format!("{times:?} is empty; for the whole day write 00:00-24:00"));
        }
        out.push(WarmWindow {
            days: set,
            start,
            end,
            offset_minutes: offset,
        });
    }
    Ok(out)
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

        let warm = match (r.opt("WARM_RUNNERS"), r.opt("WARM_HOURS")) {
            (None, None) => None,
            (None, Some(_)) => return Err(err("WARM_HOURS", "is set but WARM_RUNNERS is not; set both, or neither")),
            (Some(runners), hours) => {
                let floors =
                    parse_warm_runners(&runners, &scope, &allowed_repositories, &allowed_owners).map_err(|m| err("WARM_RUNNERS", m))?;
                let total: u64 = floors.iter().map(|f| u64::from(f.runners)).sum();
                if total >= u64::from(max_runners) {
                    return Err(err(
                        "WARM_RUNNERS",
                        format!("{total} warm runners in all leave no room under MAX_RUNNERS ({max_runners}) for the runner a job's create makes; keep the sum below it"),
                    ));
                }
                if let Some(share) = max_runners_per_repository {
                    if let Some(f) = floors.iter().find(|f| f.runners >= share && f.target.contains('/')) {
                        return Err(err(
                            "WARM_RUNNERS",
                            format!(
                                "{}={} reaches MAX_RUNNERS_PER_REPOSITORY ({share}): no room is left for its jobs' creates",
                                f.target, f.runners
                            ),
                        ));
                    }
                }
                let hours = match hours {
                    None => vec![],
                    Some(h) => parse_warm_hours(&h).map_err(|m| err("WARM_HOURS", m))?,
                };
                Some(Warm { floors, hours })
            }
        };

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
            warm,
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
            ("warm runners for an organization in repo scope", "WARM_RUNNERS", "octo-org=2"),
            ("warm hours without warm runners", "WARM_HOURS", "Mon-Fri 07:00-19:00"),
        ];
        for (rule, setting, value) in cases {
            let e = error_of(&[(setting, value)]);
            assert_eq!(e.setting, *setting, "{rule}: {e}");
        }
    }

    fn floors(v: &str, org: bool, repos: &[&str], owners: &[&str]) -> Result<Vec<(String, u32)>, String> {
        let scope = if org { Scope::Org { runner_group_id: 1 } } else { Scope::Repo };
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        parse_warm_runners(v, &scope, &own(repos), &own(owners)).map(|f| f.into_iter().map(|f| (f.target, f.runners)).collect())
    }

    #[test]
    fn warm_runners_name_a_floor_per_target() {
        type Names = &'static [&'static str];
        type Floors = &'static [(&'static str, u32)];
        let ok: &[(&str, &str, bool, Names, Names, Floors)] = &[
            (
                "one repository",
                "octo-org/octo-repo=2",
                false,
                &[],
                &[],
                &[("octo-org/octo-repo", 2)],
            ),
            (
                "a list, spaces and case forgiven",
                " Octo-Org/A=1 , octo-org/b = 3",
                false,
                &[],
                &[],
                &[("octo-org/a", 1), ("octo-org/b", 3)],
            ),
            ("an organization in org scope", "octo-org=2", true, &[], &[], &[("octo-org", 2)]),
            (
                "a plain number for every allowed repository",
                "2",
                false,
                &["o/b", "o/a"],
                &[],
                &[("o/a", 2), ("o/b", 2)],
            ),
            (
                "a plain number for every allowed owner in org scope",
                "1",
                true,
                &["x/r"],
                &["o"],
                &[("o", 1), ("x", 1)],
            ),
            ("an allowed owner's repository", "o/r=1", false, &[], &["o"], &[("o/r", 1)]),
        ];
        for (rule, v, org, repos, owners, want) in ok {
            let got = floors(v, *org, repos, owners).unwrap_or_else(|e| panic!("{rule}: {e}"));
            let want: Vec<(String, u32)> = want.iter().map(|(t, n)| (t.to_string(), *n)).collect();
            assert_eq!(got, want, "{rule}");
        }
        let refused: &[(&str, &str, bool, Names, Names)] = &[
            ("an organization in repo scope", "octo-org=2", false, &[], &[]),
            ("a repository in org scope", "octo-org/r=2", true, &[], &[]),
            ("zero", "o/r=0", false, &[], &[]),
            ("over a hundred", "o/r=101", false, &[], &[]),
            ("a sign", "o/r=+2", false, &[], &[]),
            ("not a number", "o/r=two", false, &[], &[]),
            ("no count", "o/r=", false, &[], &[]),
            ("no target", "=2", false, &[], &[]),
            ("an entry without =", "o/r=1,o/s", false, &[], &[]),
            ("a path in the target", "o/../x=1", false, &[], &[]),
            ("a target named twice", "o/r=1,O/R=2", false, &[], &[]),
            ("a target the allow-lists leave out", "o/r=1", false, &["o/s"], &[]),
            ("a plain number with no allow-list", "2", false, &[], &[]),
            ("a plain number with only owners in repo scope", "2", false, &[], &["o"]),
        ];
        for (rule, v, org, repos, owners) in refused {
            assert!(floors(v, *org, repos, owners).is_err(), "{rule}");
        }
    }

    #[test]
    fn warm_hours_are_windows_of_days_and_times() {
        let weekdays = [true, true, true, true, true, false, false];
        let ok: &[(&str, &str, Vec<WarmWindow>)] = &[
            (
                "business hours in UTC by default",
                "Mon-Fri 07:00-19:00",
                vec![WarmWindow {
                    days: weekdays,
                    start: 420,
                    end: 1140,
                    offset_minutes: 0,
                }],
            ),
            (
                "a fixed offset",
                "mon-fri 07:00-19:00 UTC+01:00",
                vec![WarmWindow {
                    days: weekdays,
                    start: 420,
                    end: 1140,
                    offset_minutes: 60,
                }],
            ),
            (
                "a range that wraps, to midnight, west of UTC",
                "Fri-Mon 00:00-24:00 utc-05:30",
                vec![WarmWindow {
                    days: [true, false, false, false, true, true, true],
                    start: 0,
                    end: 1440,
                    offset_minutes: -330,
                }],
            ),
            (
                "several windows, one overnight",
                "Daily 22:00-06:00, Sat 09:00-12:00 UTC",
                vec![
                    WarmWindow {
                        days: [true; 7],
                        start: 1320,
                        end: 360,
                        offset_minutes: 0,
                    },
                    WarmWindow {
                        days: [false, false, false, false, false, true, false],
                        start: 540,
                        end: 720,
                        offset_minutes: 0,
                    },
                ],
            ),
        ];
        for (rule, v, want) in ok {
            assert_eq!(&parse_warm_hours(v).unwrap_or_else(|e| panic!("{rule}: {e}")), want, "{rule}");
        }
        let refused: &[(&str, &str)] = &[
            ("no times", "Mon-Fri"),
            ("no days", "07:00-19:00"),
            ("a day that is not one", "Mon-Fry 07:00-19:00"),
            ("full day names", "Monday 07:00-19:00"),
            ("an hour past 23", "Mon 07:00-25:00"),
            ("24:00 as a start", "Mon 24:00-06:00"),
            ("a minute past 59", "Mon 07:60-19:00"),
            ("one-digit hours", "Mon 7:00-19:00"),
            ("seconds", "Mon 07:00:00-19:00"),
            ("an empty window", "Mon 07:00-07:00"),
            ("a named zone", "Mon 07:00-19:00 Europe/Berlin"),
            ("an offset past 14 hours", "Mon 07:00-19:00 UTC+15:00"),
            ("an offset without a sign", "Mon 07:00-19:00 UTC01:00"),
            ("a trailing comma", "Mon 07:00-19:00,"),
            ("a fourth word", "Mon 07:00-19:00 UTC extra"),
        ];
        for (rule, v) in refused {
            assert!(parse_warm_hours(v).is_err(), "{rule}: {v}");
        }
    }

    #[test]
    fn warm_settings_are_read_together_and_fit_the_caps() {
        let c = Config::from_env(&env(&[
            ("WARM_RUNNERS", "octo-org/octo-repo=2"),
            ("WARM_HOURS", "Mon-Fri 07:00-19:00"),
        ]))
        .unwrap();
        let warm = c.warm.unwrap();
        assert_eq!(
            warm.floors,
            [WarmFloor {
                target: "octo-org/octo-repo".into(),
                runners: 2
            }]
        );
        assert_eq!(warm.hours.len(), 1);
        assert!(Config::from_env(&env(&[])).unwrap().warm.is_none(), "unset: no warm runners");
        let refused: &[(&str, &[(&str, &str)])] = &[
            (
                "a floor that fills MAX_RUNNERS",
                &[("MAX_RUNNERS", "4"), ("WARM_RUNNERS", "o/a=2,o/b=2")],
            ),
            (
                "a floor that fills a repository's share",
                &[("MAX_RUNNERS_PER_REPOSITORY", "2"), ("WARM_RUNNERS", "o/a=2")],
            ),
            ("bad hours", &[("WARM_RUNNERS", "o/a=1"), ("WARM_HOURS", "weekdays")]),
        ];
        for (rule, pairs) in refused {
            let e = error_of(pairs);
            assert!(matches!(e.setting, "WARM_RUNNERS" | "WARM_HOURS"), "{rule}: {e}");
        }
        assert_eq!(
            error_of(&[("WARM_RUNNERS", "o/a=1"), ("WARM_HOURS", "weekdays")]).setting,
            "WARM_HOURS"
        );
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
