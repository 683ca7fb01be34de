//! Time, injected: functions read the clock they are given, so tests can set it.

use std::sync::Arc;

use time::OffsetDateTime;

/// What time it is now.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The real clock.
pub fn system() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// RFC 3339 in UTC, whole seconds (`2026-11-28T10:00:00Z`), as the `created-at` tag carries it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Reads an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
