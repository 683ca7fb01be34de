//! The handler's own log lines (`event key=value …`, [`crate::log`]), read back into our small
//! types. Only the lines of the job's timeline and the failures the report counts are kept.

use time::OffsetDateTime;

use crate::clock::parse_rfc3339;

/// Which of a job's deliveries a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Queued,
    Started,
    Completed,
}

/// `job.queued`, `job.started`, `job.completed`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobSeen {
    pub repository: String,
    pub job: u64,
    pub workflow: Option<String>,
    pub created_at: Option<OffsetDateTime>,
    /// GitHub's delivery delay (queued).
    pub lag_s: Option<i64>,
    pub runner: Option<String>,
    pub ours: Option<bool>,
    pub runner_made_for: Option<String>,
    /// `created_at` to `started_at`: the time to a runner.
    pub wait_s: Option<i64>,
    pub run_s: Option<i64>,
    pub conclusion: Option<String>,
    /// With warm runners: `warm=hit` (true) or `warm=miss` (false).
    pub warm: Option<bool>,
}

/// `provision op=create … result=created`.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub runner: String,
    pub repository: Option<String>,
    pub job: Option<u64>,
    pub created_at: Option<OffsetDateTime>,
    pub since_created_s: Option<i64>,
    /// With warm runners: whether the job had found a runner of ours before its own create
    /// (asked then, so exact; the job lines' `warm=` is read from the runner's name alone).
    pub warm: Option<bool>,
}

/// `group.deleted`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deleted {
    /// `release` or `sweep`.
    pub by: String,
    pub reason: String,
    pub name: String,
    pub repository: Option<String>,
    pub job: Option<u64>,
    pub ran_job: Option<u64>,
    pub created_at: Option<OffsetDateTime>,
    pub lifetime_s: Option<i64>,
    pub cpu: Option<f64>,
    pub memory_gb: Option<f64>,
}

/// A line the report reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Job(Stage, JobSeen),
    Created(Created),
    Deleted(Deleted),
    /// The sweep's summary line, with its `failed=` count.
    Sweep {
        failed: u64,
        /// With warm runners: the floor's idle runner-seconds since the previous sweep.
        warm_idle_s: Option<u64>,
    },
    /// `provision.retry` (will be tried again) or `provision.dropped` (given up).
    ProvisionFailed {
        dropped: bool,
    },
}

/// Where each event starts in a message: a log stream or export may put a time or a level in
/// front of it.
const STARTS: &[&str] = &[
    "job.queued ",
    "job.started ",
    "job.completed ",
    "provision op=",
    "group.deleted ",
    "sweep groups=",
    "provision.retry ",
    "provision.dropped ",
];

/// The `key=value` pairs of a line, values unquoted (a quoted value is a Rust string literal).
pub fn fields(text: &str) -> Vec<(&str, String)> {
    let mut out = vec![];
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = &rest[..eq];
        if key.contains(char::is_whitespace) {
            // A word without `=`: skip it.
            rest = &rest[key.find(char::is_whitespace).unwrap_or(key.len())..];
            continue;
        }
        rest = &rest[eq + 1..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let (value, used) = unquote(quoted);
            out.push((key, value));
            rest = &quoted[used..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push((key, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    out
}

/// Reads a Rust string literal's body up to its closing quote: the value and the bytes used.
fn unquote(s: &str) -> (String, usize) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, i + 1),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '0')) => out.push('\0'),
                Some((_, 'u')) => {
                    // \u{…}
                    let hex: String = chars.by_ref().map(|(_, c)| c).take_while(|c| *c != '}').skip(1).collect();
                    out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                }
                Some((_, other)) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (out, s.len())
}

/// Reads one message, if it is a line the report counts.
pub fn event(message: &str) -> Option<Event> {
    let start = STARTS
        .iter()
        .filter_map(|s| {
            message
                .match_indices(s)
                .find(|(i, _)| *i == 0 || message[..*i].ends_with(char::is_whitespace))
                .map(|(i, _)| i)
        })
        .min()?;
    let line = message[start..].trim_end();
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let f = fields(rest);
    let get = |k: &str| f.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
    let text = |k: &str| get(k).map(str::to_string);
    let int = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
    let id = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let time = |k: &str| get(k).and_then(parse_rfc3339);
    let stage = match name {
        "job.queued" => Some(Stage::Queued),
        "job.started" => Some(Stage::Started),
        "job.completed" => Some(Stage::Completed),
        _ => None,
    };
    if let Some(stage) = stage {
        return Some(Event::Job(
            stage,
            JobSeen {
                repository: text("repository")?,
                job: id("job")?,
                workflow: text("workflow"),
                created_at: time("created_at"),
                lag_s: int("lag_s"),
                runner: text("runner"),
                ours: get("ours").map(|v| v == "true"),
                runner_made_for: text("runner_made_for"),
                wait_s: int("wait_s"),
                run_s: int("run_s"),
                conclusion: text("conclusion"),
                warm: get("warm").map(|v| v == "hit"),
            },
        ));
    }
    match name {
        "provision" if get("op") == Some("create") && get("result") == Some("created") => Some(Event::Created(Created {
            runner: text("runner")?,
            repository: text("repository"),
            job: id("job"),
            created_at: time("created_at"),
            since_created_s: int("since_created_s"),
            warm: get("warm").map(|v| v == "hit"),
        })),
        "group.deleted" => Some(Event::Deleted(Deleted {
            by: text("by")?,
            reason: text("reason").unwrap_or_default(),
            name: text("name")?,
            repository: text("repository"),
            job: id("job"),
            ran_job: id("ran_job"),
            created_at: time("created_at"),
            lifetime_s: int("lifetime_s"),
            cpu: get("cpu").and_then(|v| v.parse().ok()),
            memory_gb: get("memory_gb").and_then(|v| v.parse().ok()),
        })),
        "sweep" => Some(Event::Sweep {
            failed: id("failed").unwrap_or(0),
            warm_idle_s: id("warm_idle_s"),
        }),
        "provision.retry" => Some(Event::ProvisionFailed { dropped: false }),
        "provision.dropped" => Some(Event::ProvisionFailed { dropped: true }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_the_log_writes_them() {
        let f = fields(r#"a=1 workflow="CI \"nightly\"" name="x\ny" empty="" b=2"#);
        assert_eq!(
            f,
            [
                ("a", "1".to_string()),
                ("workflow", "CI \"nightly\"".to_string()),
                ("name", "x\ny".to_string()),
                ("empty", String::new()),
                ("b", "2".to_string())
            ]
        );
    }

    #[test]
    fn what_each_line_reads_as() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "a job line",
                "job.started repository=o/r job=42 run=7 attempt=1 workflow=CI labels=self-hosted,aci created_at=2026-12-01T10:00:00Z runner=aci-runner-41 ours=true runner_made_for=41 wait_s=95",
                Some("job"),
            ),
            (
                "a job line behind a log stream's time and level",
                "2026-12-01T10:01:35.123 [Information] job.queued repository=o/r job=42 created_at=2026-12-01T10:00:00Z",
                Some("job"),
            ),
            (
                "a create",
                "provision op=create runner=aci-runner-42 attempt=1 result=created repository=o/r job=42 since_created_s=37",
                Some("created"),
            ),
            (
                "a create that waited is not a create",
                "provision op=create runner=aci-runner-42 attempt=1 result=exists",
                None,
            ),
            (
                "a deletion",
                "group.deleted by=sweep reason=idle name=aci-runner-42 lifetime_s=960 cpu=2 memory_gb=4",
                Some("deleted"),
            ),
            ("a sweep summary", "sweep groups=3 runners=2 failed=1 dry_run=false past_due=false", Some("sweep")),
            ("a retry", "provision.retry op=create runner=aci-runner-42 attempt=2 error=x", Some("failed")),
            ("an event inside a word is no event", "xjob.queued repository=o/r job=1", None),
            ("a job line without its job id", "job.queued repository=o/r", None),
            ("anything else", "handler.starting version=aci-runners/0.1.0", None),
        ];
        for (rule, line, want) in cases {
            let got = event(line).map(|e| match e {
                Event::Job(..) => "job",
                Event::Created(_) => "created",
                Event::Deleted(_) => "deleted",
                Event::Sweep { .. } => "sweep",
                Event::ProvisionFailed { .. } => "failed",
            });
            assert_eq!(got, *want, "{rule}");
        }
        let Some(Event::Job(Stage::Started, j)) = event(cases[0].1) else {
            panic!()
        };
        assert_eq!(
            (j.repository.as_str(), j.job, j.wait_s, j.ours, j.runner_made_for.as_deref()),
            ("o/r", 42, Some(95), Some(true), Some("41"))
        );
        let Some(Event::Deleted(d)) = event(cases[4].1) else { panic!() };
        assert_eq!((d.lifetime_s, d.cpu, d.memory_gb), (Some(960), Some(2.0), Some(4.0)));
        assert_eq!(
            event(cases[5].1),
            Some(Event::Sweep {
                failed: 1,
                warm_idle_s: None
            })
        );
    }
}
