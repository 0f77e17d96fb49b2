//! Tolerant JSON reading: records as the server really sends them, and as a hostile one could.
//!
//! `serde_json` is strict, and without `arbitrary_precision` it cannot hold integers beyond
//! u64/i64 exactly (and rejects numbers beyond f64 outright). Rather than a parser of our own,
//! [`normalize`] makes a *parse copy* of the text in one linear, non-recursive pass:
//!
//! - a raw control character inside a string becomes the escape `\u00XX` (so the parsed string
//!   holds exactly the original character), one outside strings becomes a space;
//! - an invalid escape (`\x`, `\` before a control character) becomes a literal backslash, a lone
//!   UTF-16 surrogate escape becomes `\ufffd` (`serde_json` rejects both);
//! - a number that `serde_json` would reject or round (integers beyond u64/i64, floats beyond
//!   f64, malformed numbers) becomes a string holding its exact digits;
//! - a container nested deeper than [`MAX_JSON_DEPTH`] becomes `null` (`serde_json` stops at
//!   128 levels, and both its parser and `Value`'s drop recurse).
//!
//! The copy is only ever read for fields; what gets stored is the original text.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Containers nested deeper than this inside one JSON text are replaced by `null` in the parse
/// copy. Real records nest 4 levels deep at most (nested items are JSON *strings*).
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses `text` leniently (see the module documentation).
pub(crate) fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(&normalize(text.as_bytes()))
}

/// The parse copy of `raw`; borrowed when nothing had to change.
pub(crate) fn normalize(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Patch { raw, buf: None, done: 0 };
    let n = raw.len();
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = raw.get(i) {
        match b {
            b'"' => i = scan_string(raw, i + 1, &mut out),
            b'{' | b'[' if depth >= MAX_JSON_DEPTH => {
                let end = skip_container(raw, i);
                out.replace(i, end, b"null");
                i = end;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = raw
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(n - i);
                let end = i + len;
                let token = raw.get(i..end).unwrap_or_default();
                if !number_is_exact(token) {
                    let mut quoted = Vec::with_capacity(token.len() + 2);
                    quoted.push(b'"');
                    quoted.extend_from_slice(token);
                    quoted.push(b'"');
                    out.replace(i, end, &quoted);
                }
                i = end;
            }
            b'\t' | b'\n' | b'\r' => i += 1,
            c if c < 0x20 => {
                out.replace(i, i + 1, b" ");
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.finish()
}

/// A copy-on-write list of replacements over `raw`, applied in increasing order.
struct Patch<'a> {
    raw: &'a [u8],
    buf: Option<Vec<u8>>,
    /// `raw[..done]` is already in `buf`.
    done: usize,
}

impl<'a> Patch<'a> {
    /// Replaces `raw[start..end]` by `with`; `start` must not precede the previous `end`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let raw = self.raw;
        let buf = self.buf.get_or_insert_with(|| Vec::with_capacity(raw.len() + 64));
        buf.extend_from_slice(raw.get(self.done..start).unwrap_or_default());
        buf.extend_from_slice(with);
        self.done = end.max(start);
    }

    fn finish(self) -> Cow<'a, [u8]> {
        match self.buf {
            None => Cow::Borrowed(self.raw),
            Some(mut buf) => {
                buf.extend_from_slice(self.raw.get(self.done..).unwrap_or_default());
                Cow::Owned(buf)
            }
        }
    }
}

/// Scans a string whose opening quote precedes `start`; returns the index after its closing
/// quote (or the end of the input).
fn scan_string(raw: &[u8], start: usize, out: &mut Patch<'_>) -> usize {
    let mut i = start;
    while let Some(&b) = raw.get(i) {
        match b {
            b'"' => return i + 1,
            b'\\' => i = scan_escape(raw, i, out),
            c if c < 0x20 => {
                out.replace(i, i + 1, &control_escape(c));
                i += 1;
            }
            _ => i += 1,
        }
    }
    raw.len()
}

/// Handles the escape starting with the backslash at `i`; returns the index after it.
fn scan_escape(raw: &[u8], i: usize, out: &mut Patch<'_>) -> usize {
    match raw.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i + 2,
        Some(b'u') => match hex4(raw, i + 2) {
            Some(0xD800..=0xDBFF) => {
                let paired = raw.get(i + 6) == Some(&b'\\')
                    && raw.get(i + 7) == Some(&b'u')
                    && matches!(hex4(raw, i + 8), Some(0xDC00..=0xDFFF));
                if paired {
                    i + 12
                } else {
                    out.replace(i, i + 6, b"\\ufffd");
                    i + 6
                }
            }
            Some(0xDC00..=0xDFFF) => {
                out.replace(i, i + 6, b"\\ufffd");
                i + 6
            }
            Some(_) => i + 6,
            None => {
                out.replace(i, i + 1, b"\\\\");
                i + 1
            }
        },
        // `\x`, `\` before a control character or at the end: a literal backslash.
        _ => {
            out.replace(i, i + 1, b"\\\\");
            i + 1
        }
    }
}

/// The four hex digits at `at`, if they are.
fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// `\u00XX` for a control byte.
fn control_escape(c: u8) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]
}

/// The index after the container opening at `start` (or the end of the input), without
/// recursion.
fn skip_container(raw: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while let Some(&b) = raw.get(i) {
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    raw.len()
}

/// True when `serde_json` parses `token` to exactly the number it writes: a well-formed JSON
/// number that is an integer within u64/i64, or a finite float.
fn number_is_exact(token: &[u8]) -> bool {
    if !is_json_number(token) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(token) else { return false };
    if token.iter().all(|c| c.is_ascii_digit() || *c == b'-') {
        s.parse::<u64>().is_ok() || s.parse::<i64>().is_ok()
    } else {
        s.parse::<f64>().is_ok_and(f64::is_finite)
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(t: &[u8]) -> bool {
    let digits_from = |mut i: usize| {
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(t.first() == Some(&b'-'));
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits_from(i + 1),
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        let start = i + 1;
        i = digits_from(start);
        if i == start {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        i = digits_from(start);
        if i == start {
            return false;
        }
    }
    i == t.len()
}

/// The string at `v`, if it is one.
pub(crate) fn str_at<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// The string at `v`, or `""`.
pub(crate) fn string_at(obj: &Map<String, Value>, key: &str) -> String {
    str_at(obj, key).unwrap_or_default().to_string()
}

/// A non-negative integer read leniently: a JSON integer, an integral float, or a string of
/// digits (which is what [`normalize`] makes of integers beyond u64). `None` otherwise.
pub(crate) fn u64_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            // 2^64 as f64; anything at or above it does not fit.
            (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0).then_some(f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// [`u64_of`] at `key`.
pub(crate) fn u64_at(obj: &Map<String, Value>, key: &str) -> Option<u64> {
    u64_of(obj.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8(normalize(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn clean_json_is_borrowed() {
        let s = br#"{"a":[1,-2,3.5,1e10,0],"b":"x\"\\\u00e9\ud83d\ude00","c":18446744073709551615,"d":-9223372036854775808}"#;
        assert!(matches!(normalize(s), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped_inside_strings_and_blanked_outside() {
        assert_eq!(norm("{\"a\":\"x\u{1}y\nz\"}\u{0}"), "{\"a\":\"x\\u0001y\\u000az\"} ");
        let v = parse("{\"a\":\"x\u{1}y\u{1f}\"}").unwrap();
        assert_eq!(v["a"], "x\u{1}y\u{1f}");
    }

    #[test]
    fn numbers_serde_cannot_hold_exactly_become_strings() {
        let v = parse(r#"{"big":123456789012345678901234567890,"inf":1e400,"neg":-99999999999999999999,"ok":18446744073709551615,"bad":01,"f":116.397128}"#).unwrap();
        assert_eq!(v["big"], "123456789012345678901234567890");
        assert_eq!(v["inf"], "1e400");
        assert_eq!(v["neg"], "-99999999999999999999");
        assert_eq!(v["bad"], "01");
        assert_eq!(u64_of(v.get("ok")), Some(u64::MAX));
        assert_eq!(u64_of(v.get("big")), None);
        assert_eq!(v["f"].as_f64(), Some(116.397128));
    }

    #[test]
    fn bad_escapes_and_lone_surrogates_are_repaired() {
        let v = parse(r#"{"a":"\x\ud800z\udc00\ud83d\ude00","b":"\u12"}"#).unwrap();
        assert_eq!(v["a"], "\\x\u{fffd}z\u{fffd}😀");
        assert_eq!(v["b"], "\\u12");
    }

    #[test]
    fn deep_nesting_is_cut_without_recursion() {
        let depth = 100_000;
        let s = format!("{{\"k\":{}1{}, \"after\":\"\\\"]]]\"}}", "[".repeat(depth), "]".repeat(depth));
        let v = parse(&s).unwrap();
        assert_eq!(v["after"], "\"]]]");
        let mut cur = &v["k"];
        let mut levels = 1;
        while let Some(a) = cur.as_array() {
            cur = &a[0];
            levels += 1;
        }
        assert_eq!(levels, MAX_JSON_DEPTH);
        assert!(cur.is_null());
    }

    #[test]
    fn lenient_integers() {
        assert_eq!(u64_of(Some(&Value::from(5.0))), Some(5));
        assert_eq!(u64_of(Some(&Value::from(5.5))), None);
        assert_eq!(u64_of(Some(&Value::from(-1))), None);
        assert_eq!(u64_of(Some(&Value::from(" 42 "))), Some(42));
        assert_eq!(u64_of(None), None);
    }
}
