//! What an operator exports from Application Insights, read into messages with their times:
//! - `az monitor app-insights query` (and the Log Analytics query API): JSON
//!   `{"tables": [{"name", "columns": [{"name", "type"}], "rows": [[…]]}]}`;
//! - `az monitor log-analytics query`: a JSON array of row objects;
//! - the portal's "Export to CSV": a header row, then RFC 4180 rows (quoted fields may hold
//!   commas, doubled quotes and line breaks);
//! - plain log text (`func start`, the log stream, a saved console): one line each.
//!
//! In the tables, the message is the `message` (App Insights `traces`) or `Message`
//! (Log Analytics `AppTraces`) column, the time `timestamp` or `TimeGenerated`; the portal adds
//! ` [UTC]` to the names of time columns.

use serde_json::Value;
use time::OffsetDateTime;

use crate::clock::parse_rfc3339;

/// One exported log message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub at: Option<OffsetDateTime>,
    pub text: String,
}

/// The format a file was read as (said in the report's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tables,
    Rows,
    Csv,
    Text,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Tables => "Application Insights query JSON",
            Format::Rows => "Log Analytics query JSON",
            Format::Csv => "CSV export",
            Format::Text => "log text",
        }
    }
}

fn is_message_column(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("message")
}

fn is_time_column(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_suffix(" [utc]").unwrap_or(&n);
    n == "timestamp" || n == "timegenerated"
}

/// Reads a file's text: which format it is, and its messages. A JSON or CSV file without a
/// message column is an error that names what was looked for.
pub fn read(text: &str) -> Result<(Format, Vec<Message>), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let head = text.trim_start();
    if head.starts_with('{') || head.starts_with('[') {
        let v: Value = serde_json::from_str(head).map_err(|e| format!("not JSON: {e}"))?;
        return json(&v);
    }
    let first = head.lines().next().unwrap_or("");
    let header = csv_rows(first).into_iter().next().unwrap_or_default();
    if header.len() > 1 && header.iter().any(|h| is_message_column(h)) {
        return csv(text).map(|m| (Format::Csv, m));
    }
    let messages = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Message {
            at: leading_time(l),
            text: l.to_string(),
        })
        .collect();
    Ok((Format::Text, messages))
}

fn json(v: &Value) -> Result<(Format, Vec<Message>), String> {
    if let Some(tables) = v.get("tables").and_then(Value::as_array) {
        let mut out = vec![];
        for t in tables {
            let columns: Vec<&str> = t["columns"]
                .as_array()
                .map(|c| c.iter().map(|c| c["name"].as_str().unwrap_or("")).collect())
                .unwrap_or_default();
            let Some(m) = columns.iter().position(|c| is_message_column(c)) else {
                continue;
            };
            let at = columns.iter().position(|c| is_time_column(c));
            for row in t["rows"].as_array().into_iter().flatten() {
                if let Some(text) = row[m].as_str() {
                    out.push(Message {
                        at: at.and_then(|i| row[i].as_str()).and_then(parse_time),
                        text: text.to_string(),
                    });
                }
            }
            return Ok((Format::Tables, out));
        }
        return Err("no table with a `message` column (query the `traces` table, with `message` in the result)".into());
    }
    if let Some(rows) = v.as_array() {
        let mut out = vec![];
        for row in rows {
            let Some(obj) = row.as_object() else {
                return Err("a JSON array whose items are not rows (objects)".into());
            };
            let text = obj.iter().find(|(k, _)| is_message_column(k)).and_then(|(_, v)| v.as_str());
            let at = obj.iter().find(|(k, _)| is_time_column(k)).and_then(|(_, v)| v.as_str());
            match text {
                Some(text) => out.push(Message {
                    at: at.and_then(parse_time),
                    text: text.to_string(),
                }),
                None => return Err("a row without a `message` or `Message` field".into()),
            }
        }
        return Ok((Format::Rows, out));
    }
    Err("JSON that is neither {\"tables\": …} nor an array of rows".into())
}

fn csv(text: &str) -> Result<Vec<Message>, String> {
    let mut rows = csv_rows(text).into_iter();
    let header = rows.next().unwrap_or_default();
    let m = header
        .iter()
        .position(|h| is_message_column(h))
        .ok_or("no `message` column in the CSV header")?;
    let at = header.iter().position(|h| is_time_column(h));
    Ok(rows
        .filter_map(|r| {
            let text = r.get(m)?.clone();
            Some(Message {
                at: at.and_then(|i| r.get(i)).and_then(|t| parse_time(t)),
                text,
            })
        })
        .collect())
}

/// RFC 4180: fields split on commas, rows on line breaks outside quotes; `""` is a quote.
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let mut row = vec![];
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A time as the exports write it: RFC 3339 (the API, the CLI), with or without a zone (UTC),
/// or the portal's `12/1/2026, 10:00:00.123 AM`.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Some(t) = parse_rfc3339(&format!("{}Z", s.replace(' ', "T"))) {
        return Some(t);
    }
    // M/D/YYYY, h:mm:ss[.fff] AM|PM
    let (date, rest) = s.split_once(", ")?;
    let (clock, half) = rest.rsplit_once(' ')?;
    let mut d = date.split('/').map(|p| p.parse::<u32>().ok());
    let (month, day, year) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut c = hms.split(':').map(|p| p.parse::<u32>().ok());
    let (mut hour, minute, second) = (c.next()??, c.next()??, c.next()??);
    match (half, hour) {
        ("AM", 12) => hour = 0,
        ("PM", h) if h < 12 => hour += 12,
        ("AM" | "PM", _) => {}
        _ => return None,
    }
    let millis: u32 = format!("{frac:0<3}")[..3].parse().ok()?;
    let date = time::Date::from_calendar_date(year as i32, time::Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let t = time::Time::from_hms_milli(hour as u8, minute as u8, second as u8, millis as u16).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// The time a log line starts with, if any (`2026-12-01T10:00:00.123Z …`, `2026-12-01 10:00:00 …`).
fn leading_time(line: &str) -> Option<OffsetDateTime> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    parse_time(first).or_else(|| parse_time(&format!("{first} {}", words.next()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const LINE: &str = "job.queued repository=o/r job=1";

    #[test]
    fn every_export_reads_as_the_same_messages() {
        let tables = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"timestamp","type":"datetime"},{"name":"message","type":"string"},{"name":"severityLevel","type":"int"}],"rows":[["2026-12-01T10:00:00.1234567Z","job.queued repository=o/r job=1",1]]}]}"#;
        let rows =
            r#"[{"Message":"job.queued repository=o/r job=1","TableName":"PrimaryResult","TimeGenerated":"2026-12-01T10:00:00.1234567Z"}]"#;
        let csv = "\u{feff}timestamp [UTC],message,severityLevel\r\n\"12/1/2026, 10:00:00.123 AM\",job.queued repository=o/r job=1,1\r\n";
        let text = "2026-12-01T10:00:00.123Z [Information] job.queued repository=o/r job=1\n\n";
        let cases = [
            ("az monitor app-insights query", tables, Format::Tables),
            ("az monitor log-analytics query", rows, Format::Rows),
            ("the portal's CSV", csv, Format::Csv),
            ("log text", text, Format::Text),
        ];
        for (rule, input, format) in cases {
            let (f, m) = read(input).unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(f, format, "{rule}");
            assert_eq!(m.len(), 1, "{rule}");
            assert!(m[0].text.ends_with(LINE), "{rule}");
            let at = m[0].at.unwrap_or_else(|| panic!("{rule}: no time"));
            assert_eq!(at.replace_nanosecond(0).unwrap(), datetime!(2026-12-01 10:00:00 UTC), "{rule}");
        }
    }

    #[test]
    fn csv_fields_keep_commas_quotes_and_line_breaks() {
        let rows = csv_rows("a,b\n\"x, \"\"y\"\"\nz\",2\n");
        assert_eq!(rows, [vec!["a", "b"], vec!["x, \"y\"\nz", "2"]]);
    }

    #[test]
    fn exports_without_messages_say_what_is_missing() {
        let cases = [
            (
                r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"count_","type":"long"}],"rows":[[1]]}]}"#,
                "`message` column",
            ),
            (r#"[{"count_":1}]"#, "`message` or `Message`"),
            (r#"{"value":1}"#, "neither"),
            ("{not json", "not JSON"),
        ];
        for (input, says) in cases {
            let e = read(input).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn portal_times_read_in_both_halves_of_the_day() {
        assert_eq!(parse_time("12/1/2026, 12:05:00 AM"), Some(datetime!(2026-12-01 00:05 UTC)));
        assert_eq!(parse_time("12/1/2026, 1:05:00.5 PM"), Some(datetime!(2026-12-01 13:05:00.5 UTC)));
        assert_eq!(parse_time("2026-12-01 13:05:00"), Some(datetime!(2026-12-01 13:05 UTC)));
        assert_eq!(parse_time("13/1/2026, 1:05:00 PM"), None);
    }
}
