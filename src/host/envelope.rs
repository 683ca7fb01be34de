//! Reading invocation envelopes: `{"Data":{…},"Metadata":{…}}`.
//!
//! An HTTP invocation's envelope is read by a small cursor that walks only the skeleton the
//! host writes (`Data.req` with `Method`, `Headers`, `Params`, `Body`) and hands every value to
//! serde_json (strings to decode, the rest to skip and validate). The host writes `Metadata`
//! after `Data`, and it only repeats the body's fields, so reading stops once `Data` is read
//! (about 40% of a webhook envelope is never scanned); headers are kept as borrowed pairs.
//! Against serde derive with borrowed strings, this and the delivery reader in
//! [`crate::github::webhook`] save 29% of the handler's instructions per webhook invocation,
//! 16 points of it here (`cargo bench --bench webhook_instructions`; docs/benchmarks.md,
//! "Hand-written readers against serde derive").
//!
//! Queue and timer envelopes are small and go through serde_json as they are.

use std::borrow::Cow;
use std::ops::ControlFlow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// The name of the HTTP trigger binding in every HTTP function's `function.json`.
pub const HTTP_TRIGGER: &str = "req";

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the envelope is not JSON the host sends: {0}")]
    Envelope(String),
    #[error("the envelope has no Data.{0}")]
    Missing(String),
}

/// An HTTP trigger's request, from `Data.req`, borrowing from the envelope where it can.
#[derive(Debug, Default)]
pub struct HttpRequest<'a> {
    pub method: Cow<'a, str>,
    /// Every header value, in the order the host wrote them (its values are arrays).
    headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Route parameters (`{name}` in the route template).
    params: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The UTF-8 text of the raw body; absent when the body was empty.
    body: Option<Cow<'a, str>>,
}

impl HttpRequest<'_> {
    /// A header's first value, the name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// A route parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref())
    }

    pub fn body(&self) -> &str {
        self.body.as_deref().unwrap_or("")
    }
}

/// Reads `Data.req` from an HTTP invocation. Reading stops at the end of `Data`; an envelope
/// with `Metadata` first is read through (skipping it) as well.
pub fn http_request(envelope: &[u8]) -> Result<HttpRequest<'_>, ProtocolError> {
    let mut r = Reader::new(envelope);
    let mut req = None;
    let mut data_seen = false;
    r.object(|r, key| {
        if key != "Data" {
            r.skip()?;
            return Ok(ControlFlow::Continue(()));
        }
        data_seen = true;
        r.object(|r, key| {
            if key != HTTP_TRIGGER {
                r.skip()?;
            } else if !r.null()? {
                req = Some(read_request(r)?);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(ControlFlow::Break(()))
    })?;
    match (req, data_seen) {
        (Some(req), _) => Ok(req),
        (None, true) => Err(ProtocolError::Missing(HTTP_TRIGGER.into())),
        (None, false) => Err(ProtocolError::Missing("Data".into())),
    }
}

fn read_request<'a>(r: &mut Reader<'a>) -> Result<HttpRequest<'a>, ProtocolError> {
    let mut req = HttpRequest::default();
    r.object(|r, key| {
        match key.as_ref() {
            "Method" => req.method = r.string()?,
            "Body" => req.body = if r.null()? { None } else { Some(r.string()?) },
            "Headers" => {
                if !r.null()? {
                    r.object(|r, name| {
                        // The host writes arrays; a plain string is taken as one value.
                        if r.peek() == Some(b'[') {
                            r.array(|r| {
                                req.headers.push((name.clone(), r.string()?));
                                Ok(())
                            })?;
                        } else {
                            let value = r.string()?;
                            req.headers.push((name, value));
                        }
                        Ok(ControlFlow::Continue(()))
                    })?;
                }
            }
            "Params" => {
                if !r.null()? {
                    r.object(|r, name| {
                        let value = r.string()?;
                        req.params.push((name, value));
                        Ok(ControlFlow::Continue(()))
                    })?;
                }
            }
            _ => r.skip()?,
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(req)
}

/// A queue trigger's message and how often it has been dequeued.
#[derive(Debug)]
pub struct QueueItem {
    /// The message text (the host JSON-encodes it once more; this is decoded).
    pub text: String,
    pub dequeue_count: u32,
}

/// Reads `Data.<binding>` (the message text, JSON-encoded a second time) and
/// `Metadata.DequeueCount` (a string; a number is accepted too).
pub fn queue_item(envelope: &[u8], binding: &str) -> Result<QueueItem, ProtocolError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let raw = env["Data"].get(binding).ok_or_else(|| ProtocolError::Missing(binding.into()))?;
    let text = match raw {
        Value::String(s) => serde_json::from_str::<String>(s).unwrap_or_else(|_| s.clone()),
        // A host that hands over the parsed message: use it as it is.
        other => other.to_string(),
    };
    let dequeue_count = match &env["Metadata"]["DequeueCount"] {
        Value::String(s) => s.trim_matches('"').parse().unwrap_or(1),
        Value::Number(n) => n.as_u64().unwrap_or(1) as u32,
        _ => 1,
    };
    Ok(QueueItem { text, dequeue_count })
}

/// A timer trigger's `Data.<binding>`: `IsPastDue`, and `ScheduleStatus` (null without a
/// schedule monitor, else `{"Last","Next","LastUpdated"}`); `Schedule` is not read.
#[derive(Debug, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<ScheduleStatus>,
}

#[derive(Debug, Deserialize)]
pub struct ScheduleStatus {
    /// When the previous occurrence ran (`0001-01-01T00:00:00+00:00` before the first).
    #[serde(rename = "Last", default)]
    pub last: Option<String>,
}

impl TimerInfo {
    /// When the previous occurrence ran, if the host says (a real time, not .NET's default).
    pub fn last(&self) -> Option<time::OffsetDateTime> {
        let last = self.schedule_status.as_ref()?.last.as_deref()?;
        crate::clock::parse_rfc3339(last).filter(|t| t.year() > 1)
    }
}

pub fn timer_info(envelope: &[u8], binding: &str) -> Result<TimerInfo, ProtocolError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let raw = env["Data"].get(binding).ok_or_else(|| ProtocolError::Missing(binding.into()))?;
    serde_json::from_value(raw.clone()).map_err(|e| ProtocolError::Envelope(e.to_string()))
}

/// A cursor over JSON text that reads objects, arrays and strings itself and leaves every
/// other value to serde_json.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn error(&self, what: &str) -> ProtocolError {
        ProtocolError::Envelope(format!("{what} at byte {}", self.pos))
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.buf.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn eat(&mut self, byte: u8) -> Result<(), ProtocolError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    /// Consumes a `null` and says so; anything else is left in place.
    fn null(&mut self) -> Result<bool, ProtocolError> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        if self.buf[self.pos..].starts_with(b"null") {
            self.pos += 4;
            Ok(true)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// Skips one value of any kind, validated by serde_json.
    fn skip(&mut self) -> Result<(), ProtocolError> {
        let mut values = serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                self.pos += values.byte_offset();
                Ok(())
            }
            Some(Err(e)) => Err(ProtocolError::Envelope(format!("{e} (value at byte {})", self.pos))),
            None => Err(self.error("unexpected end")),
        }
    }

    /// Walks an object, calling `member` with each key and the cursor on its value, which
    /// `member` must consume. `Break` stops reading right after that value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<ControlFlow<()>, ProtocolError>,
    ) -> Result<(), ProtocolError> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            if member(self, key)?.is_break() {
                return Ok(());
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Walks an array, calling `item` with the cursor on each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), ProtocolError>) -> Result<(), ProtocolError> {
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// A JSON string, decoded by serde_json, borrowed from the envelope when it has no
    /// escapes. (A hand-written decoder was tried: no faster on the webhook body, where the
    /// cost is one escape per 13 bytes.)
    fn string(&mut self) -> Result<Cow<'a, str>, ProtocolError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let mut values = serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<JsonStr<'a>>();
        match values.next() {
            Some(Ok(JsonStr(text))) => {
                self.pos += values.byte_offset();
                Ok(text)
            }
            Some(Err(e)) => Err(ProtocolError::Envelope(format!("{e} (string at byte {})", self.pos))),
            None => Err(self.error("unexpected end")),
        }
    }
}

/// A string that borrows from the input when it can.
struct JsonStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for JsonStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timer_says_when_its_previous_occurrence_ran_when_the_host_knows() {
        let env = |status: &str| {
            format!(r#"{{"Data": {{"timer": {{"Schedule": {{"AdjustForDST": true}}, "ScheduleStatus": {status}, "IsPastDue": false}}}}}}"#)
        };
        let last = |status: &str| timer_info(env(status).as_bytes(), "timer").unwrap().last();
        assert_eq!(
            last(
                r#"{"Last": "2016-10-04T10:15:00+00:00", "Next": "2016-10-04T10:20:00+00:00", "LastUpdated": "2016-10-04T10:16:00+00:00"}"#
            ),
            Some(time::macros::datetime!(2016-10-04 10:15 UTC)),
            "the documented example"
        );
        assert_eq!(last("null"), None, "no schedule monitor");
        assert_eq!(
            last(
                r#"{"Last": "0001-01-01T00:00:00+00:00", "Next": "2016-10-04T10:20:00+00:00", "LastUpdated": "0001-01-01T00:00:00+00:00"}"#
            ),
            None,
            "the first run: .NET's default time"
        );
        assert_eq!(last(r#"{"Last": "yesterday"}"#), None, "unreadable: unknown");
    }

    use super::*;

    fn decode(json: &str) -> Result<String, ProtocolError> {
        Reader::new(json.as_bytes()).string().map(Cow::into_owned)
    }

    #[test]
    fn strings_decode_as_serde_json_decodes_them() {
        let mut cases: Vec<String> = [
            "",
            "plain",
            "quote \" backslash \\ slash / controls \u{8}\u{c}\n\r\t\u{1}\u{1f}",
            "unicode é ß 中文 and astral 🦀 𝄞",
            "{\n  \"action\": \"queued\",\n  \"labels\": [\"self-hosted\", \"aci\"]\n}",
            "ends with escape\n",
            "\\",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Deterministic pseudo-random strings over a troublesome alphabet.
        let alphabet: Vec<char> = "ab\"\\/\n\t\u{0}\u{1f} é中🦀\u{7f}\u{2028}".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            cases.push(s);
        }
        for s in cases {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(decode(&json).unwrap(), s, "{json}");
            // Followed by more envelope, so the eight-byte blocks run past the closing quote.
            assert_eq!(decode(&format!("{json},\"Next\":\"\\n\"}}")).unwrap(), s, "{json}");
        }
        // Escapes serde_json would not write but other writers (System.Text.Json) do.
        let others = [r#""\u0041\u00e9\u4e2d\ud83e\udd80\/""#, r#""\u003Cscript\u003E \u0022 \u002B""#];
        for json in others {
            let expected: String = serde_json::from_str(json).unwrap();
            assert_eq!(decode(json).unwrap(), expected, "{json}");
        }
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_envelope() {
        let mut r = Reader::new(br#""no escapes here""#);
        assert!(matches!(r.string().unwrap(), Cow::Borrowed("no escapes here")));
    }

    #[test]
    fn bad_strings_are_refused() {
        let bad = [
            "\"unterminated",
            "\"raw \n newline\"",
            "\"bad \\x escape\"",
            "\"short \\u12\"",
            "\"lone \\ud800 surrogate\"",
            "\"trailing \\udc00 surrogate\"",
            "\"bad pair \\ud800\\u0041\"",
            "\"ends in backslash \\",
        ];
        for json in bad {
            assert!(serde_json::from_str::<String>(json).is_err(), "serde_json accepts {json:?}");
            assert!(decode(json).is_err(), "{json:?}");
            let padded = format!("{json}{}", " ".repeat(20));
            assert!(decode(&padded).is_err(), "{padded:?}");
        }
        let invalid_utf8 = b"\"\xff\xfe\"";
        assert!(Reader::new(invalid_utf8).string().is_err());
        assert!(Reader::new(b"\"\xff\\n\"").string().is_err());
    }

    #[test]
    fn skipped_values_are_validated_by_serde_json() {
        let env = br#"{"Data":{"req":{"Url":"u","Query":{"a":[1,2.5e3,true,null]},"Identities":[{"x":{}}],"Body":"b"}}}"#;
        assert_eq!(http_request(env).unwrap().body(), "b");
        let broken = br#"{"Data":{"req":{"Query":{"a":tru},"Body":"b"}}}"#;
        assert!(matches!(http_request(broken), Err(ProtocolError::Envelope(_))));
    }

    #[test]
    fn the_real_hosts_member_order_and_whitespace_are_read() {
        let env = br#" { "Data" : { "req" : { "Url" : "https://x/api/runners/r1?code=k" , "Method" : "DELETE" ,
            "Query" : { "code" : "k" } , "Headers" : { "Authorization" : [ "Bearer t" ] , "X-Multi" : [ "a" , "b" ] } ,
            "Params" : { "name" : "r1" } , "Identities" : [ ] , "Body" : null } } , "Metadata" : { "name" : "r1" } } "#;
        let req = http_request(env).unwrap();
        assert_eq!(req.method, "DELETE");
        assert_eq!(req.header("authorization"), Some("Bearer t"));
        assert_eq!(req.header("x-multi"), Some("a"));
        assert_eq!(req.param("name"), Some("r1"));
        assert_eq!(req.body(), "");
    }

    #[test]
    fn null_members_read_as_absent() {
        let env = br#"{"Data":{"req":{"Method":"GET","Headers":null,"Params":null,"Body":null}},"Metadata":null}"#;
        let req = http_request(env).unwrap();
        assert_eq!((req.header("host"), req.param("name"), req.body()), (None, None, ""));
        assert!(matches!(http_request(br#"{"Data":{"req":null}}"#), Err(ProtocolError::Missing(_))));
    }

    #[test]
    fn reading_stops_after_data() {
        // Whatever follows `Data` is not read: the host's Metadata only repeats it.
        let env = br#"{"Data":{"req":{"Method":"POST","Body":"x"}},"Metadata":{not even json"#;
        assert_eq!(http_request(env).unwrap().body(), "x");
    }
}
