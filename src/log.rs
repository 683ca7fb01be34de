//! One line per event. Information goes to stdout and errors to stderr, which is how the
//! Functions host classifies a custom handler's output (stdout = Information, stderr = Error).
//!
//! Lines are `event key=value key=value`; values with spaces, quotes, `=` or control characters
//! are quoted (as Rust string literals, so a newline cannot split a line). Never pass a secret,
//! a request URL or a query string here: the function key travels in `code`.

use std::fmt::{Display, Write as _};
use std::io::Write as _;

pub type Field<'a> = (&'a str, &'a dyn Display);

fn line(event: &str, fields: &[Field<'_>]) -> String {
    let mut out = String::with_capacity(96);
    out.push_str(event);
    for (k, v) in fields {
        let v = v.to_string();
        let _ = if v.is_empty() || v.contains([' ', '"', '=']) || v.contains(char::is_control) {
            write!(out, " {k}={v:?}")
        } else {
            write!(out, " {k}={v}")
        };
    }
    out.push('\n');
    out
}

/// An information line on stdout.
pub fn info(event: &str, fields: &[Field<'_>]) {
    let l = line(event, fields);
    let _ = std::io::stdout().lock().write_all(l.as_bytes());
}

/// An information line whose values are already text (a line the rules put together).
pub fn info_text(event: &str, fields: &[(&str, String)]) {
    let fields: Vec<Field<'_>> = fields.iter().map(|(k, v)| (*k, v as &dyn Display)).collect();
    info(event, &fields);
}

/// An error line on stderr.
pub fn error(event: &str, fields: &[Field<'_>]) {
    let l = line(event, fields);
    let _ = std::io::stderr().lock().write_all(l.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_spaces_are_quoted() {
        assert_eq!(
            line("webhook", &[("status", &202), ("reason", &"labels not served")]),
            "webhook status=202 reason=\"labels not served\"\n"
        );
    }

    #[test]
    fn a_value_with_a_newline_stays_on_one_line() {
        let l = line("provision.retry", &[("error", &"bad\nthing"), ("tab", &"a\tb")]);
        assert_eq!(l, "provision.retry error=\"bad\\nthing\" tab=\"a\\tb\"\n");
        assert_eq!(l.matches('\n').count(), 1);
    }
}
