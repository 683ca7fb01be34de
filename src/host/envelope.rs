//! Reading invocation envelopes: `{"Data":{…},"Metadata":{…}}`.
//!
//! An HTTP invocation's `Data.req` is read by serde derive, borrowing every string without
//! escapes from the envelope (the body, which has them, is decoded once).
//!
//! Queue and timer envelopes are small and go through serde_json as they are.

use std::borrow::Cow;
use std::collections::BTreeMap;

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

/// A string borrowed from the envelope when it holds no escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// An HTTP trigger's request, from `Data.req`, borrowing from the envelope where it can.
#[derive(Debug, Default, Deserialize)]
pub struct HttpRequest<'a> {
    #[serde(rename = "Method", borrow, default)]
    pub method: Cow<'a, str>,
    /// Every header, its values an array as the host writes them.
    #[serde(rename = "Headers", borrow, default)]
    headers: Option<BTreeMap<Text<'a>, Vec<Text<'a>>>>,
    /// Route parameters (`{name}` in the route template).
    #[serde(rename = "Params", borrow, default)]
    params: Option<BTreeMap<Text<'a>, Text<'a>>>,
    /// The UTF-8 text of the raw body; absent when the body was empty.
    #[serde(rename = "Body", borrow, default)]
    body: Option<Text<'a>>,
}

impl HttpRequest<'_> {
    /// A header's first value, the name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .flatten()
            .find(|(k, _)| k.0.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(|v| v.0.as_ref())
    }

    /// A route parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().flatten().find(|(k, _)| k.0 == name).map(|(_, v)| v.0.as_ref())
    }

    pub fn body(&self) -> &str {
        self.body.as_ref().map_or("", |b| b.0.as_ref())
    }
}

#[derive(Deserialize)]
struct HttpEnvelope<'a> {
    #[serde(rename = "Data", borrow)]
    data: Option<HttpData<'a>>,
}

#[derive(Deserialize)]
struct HttpData<'a> {
    /// [`HTTP_TRIGGER`].
    #[serde(borrow)]
    req: Option<HttpRequest<'a>>,
}

/// Reads `Data.req` from an HTTP invocation, `Data` and `Metadata` in either order.
pub fn http_request(envelope: &[u8]) -> Result<HttpRequest<'_>, ProtocolError> {
    let env: HttpEnvelope = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let data = env.data.ok_or_else(|| ProtocolError::Missing("Data".into()))?;
    data.req.ok_or_else(|| ProtocolError::Missing(HTTP_TRIGGER.into()))
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

/// A timer trigger's `Data.<binding>`: `ScheduleStatus` may be null or an object.
#[derive(Debug, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<Value>,
}

pub fn timer_info(envelope: &[u8], binding: &str) -> Result<TimerInfo, ProtocolError> {
    let env: Value = serde_json::from_slice(envelope).map_err(|e| ProtocolError::Envelope(e.to_string()))?;
    let raw = env["Data"].get(binding).ok_or_else(|| ProtocolError::Missing(binding.into()))?;
    serde_json::from_value(raw.clone()).map_err(|e| ProtocolError::Envelope(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope whose body is this JSON string literal.
    fn with_body(json: &str) -> String {
        format!(r#"{{"Data":{{"req":{{"Method":"POST","Body":{json}}}}},"Metadata":{{}}}}"#)
    }

    fn decode(json: &str) -> Result<String, ProtocolError> {
        let env = with_body(json);
        http_request(env.as_bytes()).map(|r| r.body().to_string())
    }

    #[test]
    fn bodies_decode_as_serde_json_decodes_them() {
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
        let env = br#"{"Data":{"req":{"Method":"POST","Headers":{"X-GitHub-Event":["ping"]},"Body":"no escapes here"}}}"#;
        let req = http_request(env).unwrap();
        assert!(matches!(req.method, Cow::Borrowed("POST")));
        assert!(matches!(&req.body, Some(Text(Cow::Borrowed("no escapes here")))));
        let (name, values) = req.headers.as_ref().unwrap().iter().next().unwrap();
        assert!(matches!((&name.0, &values[0].0), (Cow::Borrowed(_), Cow::Borrowed(_))));
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
            assert!(matches!(decode(json), Err(ProtocolError::Envelope(_))), "{json:?}");
        }
        let invalid_utf8 = [&br#"{"Data":{"req":{"Body":""#[..], b"\xff\xfe", b"\"}}}"].concat();
        assert!(matches!(http_request(&invalid_utf8), Err(ProtocolError::Envelope(_))));
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
}
