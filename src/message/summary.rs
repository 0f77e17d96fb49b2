//! A quick look at a record (used by `demo`): the few top-level fields every record has.

use std::borrow::Cow;

use serde_json::Value;

/// A copy of `raw` in which every ASCII control character (which JSON forbids inside strings) is
/// replaced by a space, so that `serde_json` accepts records that the server really sends. The
/// original is returned untouched when it has none.
///
/// [`parse_record`](super::parse_record) uses a finer normaliser (it keeps control characters
/// inside strings as `\u00XX` escapes, so that the `text` column holds them exactly).
pub fn sanitize_for_parse(raw: &[u8]) -> Cow<'_, [u8]> {
    let stray_control = raw.iter().any(|b| *b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'));
    if !stray_control && !has_control_in_string(raw) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(raw.iter().map(|&b| if b < 0x20 { b' ' } else { b }).collect())
}

/// True when a `\n`, `\r` or `\t` byte sits inside a JSON string (outside strings they are
/// legal whitespace).
fn has_control_in_string(raw: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for &b in raw {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                b if b < 0x20 => return true,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        }
    }
    false
}

/// The few top-level fields every record has, read tolerantly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `msgid`.
    pub msgid: String,
    /// `send`, `recall` or `switch`.
    pub action: String,
    /// The msgtype (`switch` for switch records, which have none).
    pub msgtype: String,
    /// `from`, or `user` for switch records.
    pub from: String,
    /// `msgtime` in ms, or `time` for switch records.
    pub msgtime: u64,
    /// The text content for `text` records, shortened.
    pub text: Option<String>,
}

/// Reads the [`Summary`] of a decrypted record; `None` when it is not a JSON object.
pub fn summarize(raw: &[u8]) -> Option<Summary> {
    let value: Value = serde_json::from_slice(&sanitize_for_parse(raw)).ok()?;
    let obj = value.as_object()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let action = s("action");
    let switch = action == "switch";
    Some(Summary {
        msgid: s("msgid"),
        msgtype: if switch { "switch".into() } else { s("msgtype") },
        from: if switch { s("user") } else { s("from") },
        msgtime: obj.get(if switch { "time" } else { "msgtime" }).and_then(Value::as_u64).unwrap_or(0),
        text: obj
            .get("text")
            .and_then(|t| t.get("content"))
            .and_then(Value::as_str)
            .map(|t| t.chars().take(60).collect()),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_inside_strings_are_neutralised_for_parsing_only() {
        let raw = b"{\"msgid\":\"a\",\"action\":\"send\",\"msgtype\":\"text\",\"from\":\"u\",\"msgtime\":5,\"text\":{\"content\":\"x\x01y\nz\"}}";
        assert!(serde_json::from_slice::<Value>(raw).is_err());
        let summary = summarize(raw).unwrap();
        assert_eq!(summary.text.as_deref(), Some("x y z"));
        assert_eq!(summary.msgtime, 5);
        let clean = b"{\n\t\"msgid\": \"a\"\n}";
        assert!(matches!(sanitize_for_parse(clean), Cow::Borrowed(_)));
    }

    #[test]
    fn switch_records_use_user_and_time() {
        let raw = br#"{"msgid":"s1","action":"switch","time":1700000000123,"user":"zhangsan"}"#;
        let s = summarize(raw).unwrap();
        assert_eq!((s.msgtype.as_str(), s.from.as_str(), s.msgtime), ("switch", "zhangsan", 1_700_000_000_123));
        assert!(summarize(b"[1,2]").is_none());
        assert!(summarize(b"\xff\xfe").is_none());
    }
}
