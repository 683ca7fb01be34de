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
    let mut out = String::with_capacity(128);
    out.push_str(event);
    // One scratch buffer for every value, rather than a string each.
    let mut value = String::with_capacity(64);
    for (k, v) in fields {
        value.clear();
        let _ = write!(value, "{v}");
        push_field(&mut out, k, &value);
    }
    out.push('\n');
    out
}

/// The same line from values that are text already.
fn text_line<S: AsRef<str>>(event: &str, fields: &[(&str, S)]) -> String {
    let mut out = String::with_capacity(16 + fields.iter().map(|(k, v)| k.len() + v.as_ref().len() + 4).sum::<usize>());
    out.push_str(event);
    for (k, v) in fields {
        push_field(&mut out, k, v.as_ref());
    }
    out.push('\n');
    out
}

/// ` key=value`, the value quoted (as a Rust string literal) when it is empty or holds a space,
/// `"`, `=` or a control character.
fn push_field(out: &mut String, key: &str, v: &str) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    let plain = v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=');
    if plain && !v.is_empty() {
        out.push_str(v);
    } else if v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        // Printable ASCII: only `"` and `\` are escaped, as `{:?}` escapes them.
        out.push('"');
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else if v.contains(char::is_control) || v.contains([' ', '"', '=']) {
        let _ = write!(out, "{v:?}");
    } else {
        // Non-ASCII text with nothing to quote.
        out.push_str(v);
    }
}

/// An information line on stdout.
pub fn info(event: &str, fields: &[Field<'_>]) {
    let l = line(event, fields);
    let _ = std::io::stdout().lock().write_all(l.as_bytes());
}

/// An information line whose values are already text (a line the rules put together).
pub fn info_text<S: AsRef<str>>(event: &str, fields: &[(&str, S)]) {
    let l = text_line(event, fields);
    let _ = std::io::stdout().lock().write_all(l.as_bytes());
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
    fn values_are_quoted_exactly_as_debug_quotes_them() {
        let values = [
            "plain",
            "",
            "with space",
            "a=b",
            "say \"hi\"",
            "back\\slash",
            "back\\ slash",
            "tab\there",
            "new\nline",
            "caf\u{e9}",
            "caf\u{e9} au lait",
            "zero\u{200b}width",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
        ];
        for v in values {
            let quote = v.is_empty() || v.contains([' ', '"', '=']) || v.contains(char::is_control);
            let want = if quote { format!("e k={v:?}\n") } else { format!("e k={v}\n") };
            assert_eq!(line("e", &[("k", &v)]), want, "{v:?}");
            assert_eq!(text_line("e", &[("k", v.to_string())]), want, "{v:?}");
        }
    }

    #[test]
    fn a_value_with_a_newline_stays_on_one_line() {
        let l = line("provision.retry", &[("error", &"bad\nthing"), ("tab", &"a\tb")]);
        assert_eq!(l, "provision.retry error=\"bad\\nthing\" tab=\"a\\tb\"\n");
        assert_eq!(l.matches('\n').count(), 1);
    }
}
