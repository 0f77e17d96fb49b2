//! What an error about a TOML file may say, shared by the configuration loader (`config::load`)
//! and the corps file (`corps::file`): where a key was set ([`locate`]: the line of every key,
//! from the TOML spans) and serde's message without the rejected value ([`without_value`]).
//!
//! serde quotes the value it rejects ("invalid type: integer `918273645501`, expected a string"),
//! and TOML's own `Display` quotes the source line; both files hold secrets, so neither reaches a
//! log line or a terminal: a message names the key, where it is and what was expected.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// How a value may appear in a message, for [`without_value`]'s last check: a string's content,
/// any other scalar as TOML ("" for tables and arrays).
pub(crate) fn value_text(value: Option<&toml::Value>) -> String {
    match value {
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Table(_) | toml::Value::Array(_)) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// serde's `message` reduced to what was expected: serde quotes the rejected value ("invalid
/// type: string \"123456\", expected u32", "unknown variant `x`, expected one of …"), which may be
/// a secret. Unknown and missing keys keep their message (it names the key, not a value).
/// `value` (as [`value_text`] gives it; "" when unknown) must not survive in any case.
pub(crate) fn without_value(message: &str, value: &str) -> String {
    let message = message.trim();
    let expected = message.split_once(", expected ").map(|(_, e)| plain_type(e.trim()));
    let reduced = if message.starts_with("unknown field") || message.starts_with("missing field") {
        return message.to_string();
    } else if message.starts_with("invalid type") {
        format!("wrong type, expected {}", expected.unwrap_or_else(|| "another type".into()))
    } else if message.starts_with("unknown variant") {
        format!("not an allowed value, expected {}", expected.unwrap_or_else(|| "another value".into()))
    } else if message.starts_with("invalid value") || message.starts_with("invalid length") {
        format!("invalid value, expected {}", expected.unwrap_or_else(|| "another value".into()))
    } else {
        message.to_string()
    };
    // Belt and braces for messages of unknown shape.
    if !value.is_empty() && reduced.contains(value) {
        return "invalid value".into();
    }
    reduced
}

/// Rust type names in serde's "expected" as words.
fn plain_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        other => other.to_string(),
    }
}

/// The message of an error of `toml::from_str`/`str::parse` on one line, without the quoted
/// source line of its `Display` and without a value a type error would quote.
pub(crate) fn message_of(e: &toml::de::Error) -> String {
    let message = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    without_value(&message, "")
}

/// The 1-based line of the error `e` in `text` (1 when the error has no place).
pub(crate) fn line_of_error(text: &str, e: &toml::de::Error) -> usize {
    e.span().map_or(1, |s| line_of(text, s.start))
}

/// 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The line of every key set in `text`, by its path: `section`, `section.key`, and deeper
/// (`corp[2].key[1].pem`; array elements count from 1, as an operator counts `[[corp]]` entries).
/// The line is that of the value (for a table, its header or opening brace). Empty when `text`
/// is not valid TOML.
pub(crate) fn locate(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok(Node::Table(root)) = toml::from_str::<Node>(text) {
        // Where each line starts, once: a rules file of 10,000 keywords has as many values, and
        // counting newlines from the start for each of them was quadratic (seconds per reload).
        let starts: Vec<usize> = std::iter::once(0)
            .chain(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1))
            .collect();
        for (key, value) in &root {
            walk(&starts, key.clone(), value, &mut out);
        }
    }
    out
}

/// `starts`: the byte offset where each line begins (the first is 0).
fn walk(starts: &[usize], path: String, node: &Spanned<Node>, out: &mut BTreeMap<String, usize>) {
    match node.get_ref() {
        Node::Table(keys) => {
            for (key, value) in keys {
                walk(starts, format!("{path}.{key}"), value, out);
            }
        }
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(starts, format!("{path}[{}]", i + 1), item, out);
            }
        }
        Node::Leaf => {}
    }
    // The number of lines that start at or before the value's first byte.
    out.insert(path, starts.partition_point(|s| *s <= node.span().start));
}

/// A TOML document reduced to its shape, with the span of every value (the values themselves are
/// dropped: a map of where things are holds no secret).
enum Node {
    Table(BTreeMap<String, Spanned<Node>>),
    Array(Vec<Spanned<Node>>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut keys = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            // A date-time comes as a map of one private key (its value has no span of its own).
            if key.starts_with("$__toml_private") {
                map.next_value::<IgnoredAny>()?;
                return Ok(Node::Leaf);
            }
            keys.insert(key, map.next_value::<Spanned<Node>>()?);
        }
        Ok(Node::Table(keys))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_located_at_its_line() {
        let text = "# c\n[db]\nurl = \"x\"\n\n[[corp]]\ncorpid = \"a\"\nsecret = 918273645501\n[[corp.key]]\nver = 1\n\
                    pem = 12345\n[[corp]]\nx = { y = [1, { q = 2 }] }\nwhen = 1979-05-27T07:32:00Z\n";
        let at = locate(text);
        for (path, line) in [
            ("db", 2),
            ("db.url", 3),
            ("corp[1]", 5),
            ("corp[1].corpid", 6),
            ("corp[1].secret", 7),
            ("corp[1].key[1]", 8),
            ("corp[1].key[1].ver", 9),
            ("corp[1].key[1].pem", 10),
            ("corp[2]", 11),
            ("corp[2].x.y[2].q", 12),
            ("corp[2].when", 13),
        ] {
            assert_eq!(at.get(path), Some(&line), "{path}: {at:?}");
        }
        assert!(locate("not = = toml").is_empty());
    }

    #[test]
    fn no_message_keeps_the_value() {
        assert_eq!(
            without_value("invalid type: integer `918273645501`, expected a string", "918273645501"),
            "wrong type, expected a string"
        );
        assert_eq!(
            without_value("invalid value: integer `-5`, expected u32", "-5"),
            "invalid value, expected a non-negative integer"
        );
        assert_eq!(without_value("missing field `secret`", ""), "missing field `secret`");
        assert_eq!(without_value("something about 918273645501", "918273645501"), "invalid value");
        let e = toml::from_str::<BTreeMap<String, Vec<String>>>("corp = 918273645501\n").unwrap_err();
        assert!(!message_of(&e).contains("918273645501"), "{}", message_of(&e));
        assert_eq!(
            line_of_error(
                "\n\ncorp = 918273645501\n",
                &toml::from_str::<BTreeMap<String, Vec<String>>>("\n\ncorp = 918273645501\n").unwrap_err()
            ),
            3
        );
    }
}
