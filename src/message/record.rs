//! One decrypted record → one row of `message_<corpid>` plus its media items.

use serde_json::{Map, Value};

use super::lenient::{self, str_at, string_at, u64_at};
use super::media::{media_ref, walk_nested, MediaKind, MediaRef};

/// `decrypt_error` of a row whose plaintext was not valid UTF-8 (decision 6).
pub const NOT_UTF8_ERROR: &str = "plaintext was not valid UTF-8; replaced invalid bytes";

/// The prefix of `decrypt_error` when the plaintext is not a JSON object.
pub const NOT_JSON_PREFIX: &str = "record is not a JSON object: ";

/// One row of `message_<corpid>`: the Java version's columns plus decision 7's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// `msgid` of the record; `""` when the record has none (or is not JSON): the caller then
    /// fills it from the chatdata envelope's `msgid`.
    pub msgid: String,
    /// The key version the record was encrypted for (from the envelope).
    pub publickey_ver: u32,
    /// The record's seq (from the envelope).
    pub seq: u64,
    /// `send`, `recall` or `switch`.
    pub action: String,
    /// `from`; `user` for switch records.
    pub msgfrom: String,
    /// `tolist`, comma-joined (as the Java version stored it).
    pub tolist: String,
    /// `msgtype`; `"switch"` for switch records; `""` when the record could not be read.
    pub msgtype: String,
    /// `msgtime` in ms; `time` for switch records; 0 when absent.
    pub msgtime: u64,
    /// `text.content` for `text`, `info.content` for `markdown`; `""` for every other msgtype
    /// (as in the Java version: the rest is in `msgdata`).
    pub text: String,
    /// The first media item's sdkfileid, or `""` (the Java column name, sic).
    pub sdkfield: String,
    /// The COMPLETE record JSON, as text (the original, not the parse copy).
    pub msgdata: String,
    /// `roomid`, `""` for one-to-one chats.
    pub roomid: String,
    /// 0 = no media, 1 = media pending.
    pub status: u8,
    /// Why the record could not be (fully) read; `None` when fine.
    pub decrypt_error: Option<String>,
    /// The envelope's `encrypt_random_key`, kept when `decrypt_error` is set.
    pub encrypt_random_key: Option<String>,
    /// The envelope's `encrypt_chat_msg`, kept when `decrypt_error` is set.
    pub encrypt_chat_msg: Option<String>,
}

/// What one record becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The message row.
    pub row: Row,
    /// Its media items (top-level item 0 and nested items 1..), in item order.
    pub media: Vec<MediaRef>,
}

/// Turns one decrypted record into its row and media items. Never fails, never panics.
///
/// What the caller must complete (this function does not see the envelope's fields):
/// - `row.msgid` is `""` when the record has no `msgid` or is not JSON: use the envelope's.
/// - `row.decrypt_error` is `Some` when the plaintext was not valid UTF-8 ([`NOT_UTF8_ERROR`]:
///   `msgdata` then holds `String::from_utf8_lossy`, and the other columns are read from that
///   text) or is not a JSON object (starts with [`NOT_JSON_PREFIX`]; msgtype `""`, status 0,
///   `msgdata` = the text); both messages are joined with `"; "` when both apply. In either case
///   the caller sets `encrypt_random_key`/`encrypt_chat_msg` so that `redecrypt` can retry.
///
/// A record of an unknown msgtype is an ordinary row with that msgtype, status 0, no error.
pub fn parse_record(seq: u64, publickey_ver: u32, plaintext: &[u8]) -> Parsed {
    let (msgdata, mut errors) = match std::str::from_utf8(plaintext) {
        Ok(s) => (s.to_string(), Vec::new()),
        Err(_) => (String::from_utf8_lossy(plaintext).into_owned(), vec![NOT_UTF8_ERROR.to_string()]),
    };
    let parsed = lenient::parse(&msgdata);
    let mut row = Row { seq, publickey_ver, msgdata, ..Row::default() };
    let mut media = Vec::new();
    match parsed {
        Ok(Value::Object(obj)) => fill(&mut row, obj, &mut media),
        Ok(other) => errors.push(format!("{NOT_JSON_PREFIX}found {}", json_kind(&other))),
        Err(e) => errors.push(format!("{NOT_JSON_PREFIX}{e}")),
    }
    if let Some(first) = media.first() {
        row.sdkfield = first.sdkfileid.clone();
        row.status = 1;
    }
    if !errors.is_empty() {
        row.decrypt_error = Some(errors.join("; "));
    }
    Parsed { row, media }
}

/// The row of a record that could not be decrypted: the ciphertext is kept, `decrypt_error` says
/// why, msgtype is `""`, status 0, `msgdata` `""`.
pub fn undecryptable(
    seq: u64,
    msgid: &str,
    publickey_ver: u32,
    encrypt_random_key: &str,
    encrypt_chat_msg: &str,
    error: &str,
) -> Row {
    Row {
        msgid: msgid.to_string(),
        publickey_ver,
        seq,
        decrypt_error: Some(error.to_string()),
        encrypt_random_key: Some(encrypt_random_key.to_string()),
        encrypt_chat_msg: Some(encrypt_chat_msg.to_string()),
        ..Row::default()
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Fills the row's columns and the media list from the record object.
fn fill(row: &mut Row, mut obj: Map<String, Value>, media: &mut Vec<MediaRef>) {
    row.msgid = string_at(&obj, "msgid");
    row.action = string_at(&obj, "action");
    if row.action == "switch" {
        // {"msgid","action":"switch","time":<ms>,"user":"<userid>"}
        row.msgtype = "switch".to_string();
        row.msgtime = u64_at(&obj, "time").unwrap_or(0);
        row.msgfrom = string_at(&obj, "user");
        return;
    }
    row.msgtype = string_at(&obj, "msgtype");
    row.msgfrom = string_at(&obj, "from");
    row.msgtime = u64_at(&obj, "msgtime").unwrap_or(0);
    row.roomid = string_at(&obj, "roomid");
    row.tolist = join_tolist(obj.get("tolist"));
    let content_of = |key: &str| {
        obj.get(key).and_then(Value::as_object).and_then(|p| str_at(p, "content")).unwrap_or_default().to_string()
    };
    row.text = match row.msgtype.as_str() {
        "text" => content_of("text"),
        "markdown" => content_of("info"),
        _ => String::new(),
    };
    match row.msgtype.as_str() {
        "mixed" | "chatrecord" => {
            let items = match obj.remove(row.msgtype.as_str()) {
                Some(Value::Object(mut payload)) => payload.remove("item"),
                _ => None,
            };
            if let Some(Value::Array(items)) = items {
                let mut next_item = 1;
                walk_nested(items, &mut next_item, media);
            }
        }
        other => {
            let top = MediaKind::from_name(other)
                .and_then(|kind| Some((kind, obj.get(other)?.as_object()?)))
                .and_then(|(kind, payload)| media_ref(0, kind, payload));
            media.extend(top);
        }
    }
}

/// `tolist` comma-joined: strings as they are, numbers as written, anything else skipped; a
/// plain string is taken as it is.
fn join_tolist(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(list)) => {
            let mut out = String::new();
            for id in list {
                let piece = match id {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(&piece);
            }
            out
        }
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}
