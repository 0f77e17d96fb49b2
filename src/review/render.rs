//! A stored row → the review API's message JSON: one STABLE shape for every msgtype.
//!
//! Every message is `{msgid, seq, time, action, msgtype, kind, sender, receivers, roomid,
//! conversation, content, media, error}`; `kind` says what `content` holds, and `content` holds
//! only the typed fields listed for that kind in `spec` (a field the record lacks is `null`,
//! numbers beyond u64 are kept as their JSON text). `chatrecord` and `mixed` hold `items`, each
//! `{type, kind, time, from_chatroom, content, media_item}` rendered the same way (nested as deep
//! as the media numbering goes, [`MAX_NESTING_DEPTH`]); `revoke` holds `pre_msgid` and the API
//! URL of the message it takes back. A row that could not be decrypted is kind `undecryptable`
//! with the reason; a msgtype this version does not know is kind `unknown` with the raw payload.
//!
//! Media references come from `media_<corpid>` ([`MediaRow`]): item, kind, download status in
//! words, file name, size and the API URL of the bytes.

use serde_json::{json, Map, Value};

use crate::message::{parse_lenient, MAX_NESTING_DEPTH};
use crate::store::{MediaRow, Row};

/// How a field is typed in the output.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// A string (a number is written as its text).
    S,
    /// An unsigned integer (a numeric string is read; beyond u64 the JSON text as a string).
    N,
    /// A float (longitude, latitude).
    F,
    /// Any JSON (lists of strings, objects).
    J,
}

/// The payload key of a msgtype and its fields: (output name, record key, type).
type Spec = (&'static str, &'static [(&'static str, &'static str, Ty)]);

/// Every msgtype of message-format.md: its payload key and the fields `content` holds.
pub const KNOWN: &[&str] = &[
    "text",
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice",
    "video",
    "card",
    "location",
    "emotion",
    "file",
    "link",
    "weapp",
    "chatrecord",
    "todo",
    "vote",
    "collect",
    "redpacket",
    "external_redpacket",
    "meeting",
    "docmsg",
    "markdown",
    "news",
    "calendar",
    "mixed",
    "meeting_voice_call",
    "voip_doc_share",
    "sphfeed",
    "voiptext",
    "qydiskfile",
    "switch",
];

/// A [`Spec`] (a function, so that each field array coerces to a slice).
fn sp(key: &'static str, fields: &'static [(&'static str, &'static str, Ty)]) -> Spec {
    (key, fields)
}

/// The payload key and fields of `msgtype` (`None`: not a known msgtype).
fn spec(msgtype: &str) -> Option<Spec> {
    use Ty::*;
    Some(match msgtype {
        "text" => sp("text", &[("text", "content", S)]),
        "image" => sp("image", &[("md5", "md5sum", S), ("size", "filesize", N)]),
        "revoke" => sp("revoke", &[("pre_msgid", "pre_msgid", S)]),
        "agree" => sp("agree", &[("userid", "userid", S), ("time", "agree_time", N)]),
        "disagree" => sp("disagree", &[("userid", "userid", S), ("time", "disagree_time", N)]),
        "voice" => sp("voice", &[("md5", "md5sum", S), ("size", "voice_size", N), ("play_length", "play_length", N)]),
        "video" => sp("video", &[("md5", "md5sum", S), ("size", "filesize", N), ("play_length", "play_length", N)]),
        "card" => sp("card", &[("corpname", "corpname", S), ("userid", "userid", S)]),
        "location" => sp(
            "location",
            &[
                ("longitude", "longitude", F),
                ("latitude", "latitude", F),
                ("address", "address", S),
                ("title", "title", S),
                ("zoom", "zoom", N),
            ],
        ),
        "emotion" => sp(
            "emotion",
            &[
                ("type", "type", N),
                ("width", "width", N),
                ("height", "height", N),
                ("size", "imagesize", N),
                ("md5", "md5sum", S),
            ],
        ),
        "file" => sp(
            "file",
            &[("filename", "filename", S), ("fileext", "fileext", S), ("size", "filesize", N), ("md5", "md5sum", S)],
        ),
        "link" => sp(
            "link",
            &[
                ("title", "title", S),
                ("description", "description", S),
                ("url", "link_url", S),
                ("image_url", "image_url", S),
            ],
        ),
        "weapp" => sp(
            "weapp",
            &[
                ("title", "title", S),
                ("description", "description", S),
                ("username", "username", S),
                ("displayname", "displayname", S),
            ],
        ),
        "chatrecord" => sp("chatrecord", &[("title", "title", S)]),
        "todo" => sp("todo", &[("title", "title", S), ("text", "content", S)]),
        "vote" => sp(
            "vote",
            &[
                ("title", "votetitle", S),
                ("items", "voteitem", J),
                ("votetype", "votetype", N),
                ("voteid", "voteid", S),
            ],
        ),
        "collect" => sp(
            "collect",
            &[
                ("room_name", "room_name", S),
                ("creator", "creator", S),
                ("create_time", "create_time", S),
                ("title", "title", S),
                ("details", "details", J),
            ],
        ),
        "redpacket" | "external_redpacket" => sp(
            "redpacket",
            &[("type", "type", N), ("wish", "wish", S), ("totalcnt", "totalcnt", N), ("totalamount", "totalamount", N)],
        ),
        "meeting" => sp(
            "meeting",
            &[
                ("topic", "topic", S),
                ("starttime", "starttime", N),
                ("endtime", "endtime", N),
                ("address", "address", S),
                ("remarks", "remarks", S),
                ("meetingtype", "meetingtype", N),
                ("meetingid", "meetingid", N),
                ("status", "status", N),
            ],
        ),
        "docmsg" => sp("doc", &[("title", "title", S), ("url", "link_url", S), ("doc_creator", "doc_creator", S)]),
        "markdown" => sp("info", &[("text", "content", S)]),
        "news" => sp("info", &[("items", "item", J)]),
        "calendar" => sp(
            "calendar",
            &[
                ("title", "title", S),
                ("creatorname", "creatorname", S),
                ("attendeename", "attendeename", J),
                ("starttime", "starttime", N),
                ("endtime", "endtime", N),
                ("place", "place", S),
                ("remarks", "remarks", S),
            ],
        ),
        "mixed" => sp("mixed", &[]),
        "meeting_voice_call" => sp(
            "meeting_voice_call",
            &[
                ("endtime", "endtime", N),
                ("demofiledata", "demofiledata", J),
                ("sharescreendata", "sharescreendata", J),
            ],
        ),
        "voip_doc_share" => {
            sp("voip_doc_share", &[("filename", "filename", S), ("size", "filesize", N), ("md5", "md5sum", S)])
        }
        "sphfeed" => {
            sp("sphfeed", &[("feed_type", "feed_type", N), ("sph_name", "sph_name", S), ("feed_desc", "feed_desc", S)])
        }
        "voiptext" => sp("info", &[("callduration", "callduration", N), ("invitetype", "invitetype", N)]),
        "qydiskfile" => sp("info", &[("filename", "filename", S)]),
        "switch" => sp("", &[]),
        _ => return None,
    })
}

/// One field of a payload, typed.
fn typed(v: Option<&Value>, ty: Ty) -> Value {
    let Some(v) = v else { return Value::Null };
    match (ty, v) {
        (Ty::S, Value::String(_)) => v.clone(),
        (Ty::S, Value::Number(n)) => Value::String(n.to_string()),
        (Ty::S, Value::Null) => Value::Null,
        (Ty::S, other) => Value::String(other.to_string()),
        (Ty::N, Value::Number(n)) if n.is_u64() => v.clone(),
        // Beyond u64 (or negative, or fractional): its JSON text, never a lossy float.
        (Ty::N, Value::Number(n)) => Value::String(n.to_string()),
        // A numeric string; the tolerant reader keeps integers beyond u64 as their digits.
        (Ty::N, Value::String(s)) => {
            let t = s.trim();
            match t.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => Value::String(t.to_string()),
                Err(_) => Value::Null,
            }
        }
        (Ty::F, Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        (Ty::F, Value::String(s)) => s.trim().parse::<f64>().map_or(Value::Null, Value::from),
        (Ty::J, _) => v.clone(),
        _ => Value::Null,
    }
}

/// The msgtype of a nested item's `type` (`ChatRecordImage` → `image`), as `message` reads it.
fn nested_msgtype(ty: &str) -> String {
    let lower = ty.trim().to_ascii_lowercase();
    match lower.strip_prefix("chatrecord") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => lower,
    }
}

/// Renders payloads, numbering nested media items as `message::walk_nested` does.
struct Renderer {
    next_item: u32,
}

impl Renderer {
    /// `(kind, content)` of a payload of `msgtype`; `depth` = levels of nested lists opened.
    fn content(&mut self, msgtype: &str, payload: Option<&Map<String, Value>>, depth: usize) -> (String, Value) {
        let Some((_, fields)) = spec(msgtype) else {
            let raw = payload.map_or(Value::Null, |p| Value::Object(p.clone()));
            // The same as text: a browser's JSON.parse rounds integers beyond 2^53, a string
            // keeps every digit.
            let raw_text = serde_json::to_string_pretty(&raw).unwrap_or_default();
            return ("unknown".into(), json!({ "msgtype": msgtype, "raw": raw, "raw_text": raw_text }));
        };
        let empty = Map::new();
        let p = payload.unwrap_or(&empty);
        let mut out = Map::new();
        for (name, key, ty) in fields {
            out.insert((*name).to_string(), typed(p.get(*key), *ty));
        }
        if matches!(msgtype, "chatrecord" | "mixed") {
            let items = p.get("item").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let rendered: Vec<Value> = if depth < MAX_NESTING_DEPTH {
                items.iter().map(|i| self.item(i, depth + 1)).collect()
            } else {
                Vec::new()
            };
            out.insert("items".into(), Value::Array(rendered));
            out.insert("truncated".into(), Value::Bool(depth >= MAX_NESTING_DEPTH && !items.is_empty()));
        }
        (msgtype.to_string(), Value::Object(out))
    }

    /// One nested item of a `chatrecord` or `mixed` list.
    fn item(&mut self, item: &Value, depth: usize) -> Value {
        let Some(obj) = item.as_object() else { return json!({ "kind": "unknown", "content": item }) };
        let ty = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        let msgtype = nested_msgtype(ty);
        let payload = match obj.get("content") {
            Some(Value::String(s)) => match parse_lenient(s) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            },
            Some(Value::Object(m)) => Some(m.clone()),
            _ => None,
        };
        let nested_list = matches!(msgtype.as_str(), "mixed" | "chatrecord");
        // The media number of this item, when it is a download of its own.
        let media_item = match &payload {
            Some(p)
                if !nested_list && p.get("sdkfileid").and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty()) =>
            {
                let n = self.next_item;
                self.next_item = self.next_item.saturating_add(1);
                Some(n)
            }
            _ => None,
        };
        let (kind, content) = self.content(&msgtype, payload.as_ref(), depth);
        // An item's msgtime is seconds or milliseconds: milliseconds out.
        let time = obj.get("msgtime").and_then(Value::as_u64).map(|t| if t < 100_000_000_000 { t * 1000 } else { t });
        json!({
            "type": ty,
            "kind": kind,
            "time": time,
            "from_chatroom": obj.get("from_chatroom").and_then(Value::as_bool),
            "content": content,
            "media_item": media_item,
        })
    }
}

/// The API path of a message of `corp`.
pub fn message_url(corp: &str, msgid: &str) -> String {
    format!("/api/corps/{}/messages/{}", enc(corp), enc(msgid))
}

/// The API path of a media item.
pub fn media_url(corp: &str, msgid: &str, item: u32) -> String {
    format!("/api/corps/{}/media/{}/{item}", enc(corp), enc(msgid))
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The receivers of a row (the comma-joined `tolist`).
pub fn receivers(row: &Row) -> Vec<&str> {
    row.tolist.split(',').filter(|s| !s.is_empty()).collect()
}

/// The message JSON of `row` of `corp` in conversation `conversation` (the API key), with its
/// media rows (`media`: the rows of this msgid, any order).
pub fn render(corp: &str, conversation: &str, row: &Row, media: &[MediaRow]) -> Value {
    let (kind, content) = kind_and_content(corp, row);
    let mut items: Vec<&MediaRow> = media.iter().filter(|m| m.msgid == row.msgid).collect();
    items.sort_by_key(|m| m.item);
    let media: Vec<Value> = items
        .iter()
        .map(|m| {
            let mp3 = m.transcoded_path.as_ref().map(|_| format!("{}?format=mp3", media_url(corp, &m.msgid, m.item)));
            json!({
                "item": m.item,
                "kind": m.kind,
                "status": crate::observe::media_status_name(m.status),
                "error_code": (m.status == 4).then_some(m.media_code),
                "filename": m.filename,
                "size": m.size,
                "md5": m.md5,
                "url": (m.status == 3).then(|| media_url(corp, &m.msgid, m.item)),
                "mp3_url": if m.status == 3 { mp3 } else { None },
            })
        })
        .collect();
    json!({
        "msgid": row.msgid,
        "seq": row.seq,
        "time": row.msgtime,
        "action": row.action,
        "msgtype": row.msgtype,
        "kind": kind,
        "sender": row.msgfrom,
        "receivers": receivers(row),
        "roomid": row.roomid,
        "conversation": conversation,
        "url": message_url(corp, &row.msgid),
        "content": content,
        "media": media,
        "error": row.decrypt_error,
    })
}

/// `kind` and `content` of a row.
pub fn kind_and_content(corp: &str, row: &Row) -> (String, Value) {
    if row.msgdata.is_empty() && row.decrypt_error.is_some() {
        return ("undecryptable".into(), json!({ "reason": row.decrypt_error }));
    }
    let obj = match parse_lenient(&row.msgdata) {
        Ok(Value::Object(o)) => o,
        _ => return ("undecryptable".into(), json!({ "reason": row.decrypt_error })),
    };
    if row.msgtype == "switch" {
        return ("switch".into(), json!({ "user": row.msgfrom, "time": row.msgtime }));
    }
    let msgtype = row.msgtype.as_str();
    let key = spec(msgtype).map_or(msgtype, |(k, _)| k);
    // vote: the payload object, or its fields at the top level.
    let payload = match obj.get(key) {
        Some(Value::Object(p)) => Some(p),
        _ if msgtype == "vote" => Some(&obj),
        _ => None,
    };
    let mut r = Renderer { next_item: 1 };
    let (kind, mut content) = r.content(msgtype, payload, 0);
    if let Value::Object(c) = &mut content {
        match msgtype {
            "revoke" => {
                let pre = c.get("pre_msgid").and_then(Value::as_str).map(|p| message_url(corp, p));
                c.insert("pre_msgid_url".into(), json!(pre));
            }
            "meeting_voice_call" => {
                c.insert("voiceid".into(), typed(obj.get("voiceid"), Ty::S));
            }
            "voip_doc_share" => {
                c.insert("voipid".into(), typed(obj.get("voipid"), Ty::S));
            }
            "external_redpacket" | "redpacket" => {
                c.insert("external".into(), json!(msgtype == "external_redpacket"));
            }
            _ => {}
        }
    }
    (kind, content)
}

/// A one-line text of a row (conversation summaries, CSV): the text, or `[kind] title`.
pub fn summary_text(corp: &str, row: &Row) -> String {
    let (kind, content) = kind_and_content(corp, row);
    let field = |k: &str| content.get(k).and_then(Value::as_str).map(str::to_string);
    let text = match kind.as_str() {
        "text" | "markdown" => field("text").unwrap_or_default(),
        "file" | "voip_doc_share" | "qydiskfile" => format!("[{kind}] {}", field("filename").unwrap_or_default()),
        "link" | "weapp" | "chatrecord" | "todo" | "docmsg" | "calendar" | "collect" | "vote" => {
            format!("[{kind}] {}", field("title").unwrap_or_default())
        }
        "meeting" => format!("[meeting] {}", field("topic").unwrap_or_default()),
        "revoke" => format!("[revoke] {}", field("pre_msgid").unwrap_or_default()),
        "location" => format!("[location] {}", field("address").or_else(|| field("title")).unwrap_or_default()),
        "undecryptable" => "[undecryptable]".to_string(),
        other => format!("[{other}]"),
    };
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(msgtype: &str, msgdata: Value) -> Row {
        Row {
            msgid: "m1".into(),
            seq: 7,
            msgtype: msgtype.into(),
            msgfrom: "zhangsan".into(),
            tolist: "lisi".into(),
            msgtime: 1_700_000_000_000,
            msgdata: msgdata.to_string(),
            ..Row::default()
        }
    }

    #[test]
    fn every_known_msgtype_has_a_kind_and_typed_fields() {
        for t in KNOWN {
            let r = row(t, json!({"msgid": "m1", "msgtype": t}));
            let v = render("wwa", "k", &r, &[]);
            assert_eq!(v["kind"], json!(t), "{t}");
            assert!(v["content"].is_object(), "{t}");
        }
        let v = render("wwa", "k", &row("hologram", json!({"msgtype": "hologram", "hologram": {"x": 1}})), &[]);
        assert_eq!(v["kind"], "unknown");
        assert_eq!(v["content"]["raw"]["x"], 1);
        // Beyond 2^53: the text keeps every digit (a browser's JSON.parse would not).
        let big = r#"{"msgtype":"hologram","hologram":{"id":9007199254740993}}"#;
        let r = Row { msgdata: big.into(), ..row("hologram", json!({})) };
        let v = render("wwa", "k", &r, &[]);
        assert!(v["content"]["raw_text"].as_str().unwrap().contains("9007199254740993"), "{v}");
    }

    #[test]
    fn revoke_links_and_numbers_stay_exact() {
        let v = render("wwa", "k", &row("revoke", json!({"revoke": {"pre_msgid": "abc/1"}})), &[]);
        assert_eq!(v["content"]["pre_msgid"], "abc/1");
        assert_eq!(v["content"]["pre_msgid_url"], "/api/corps/wwa/messages/abc%2F1");
        let big = r#"{"msgtype":"meeting","meeting":{"meetingid":18446744073709551615,"topic":"t"}}"#;
        let r = Row { msgdata: big.into(), ..row("meeting", json!({})) };
        assert_eq!(render("wwa", "k", &r, &[])["content"]["meetingid"], json!(u64::MAX));
        let bigger = r#"{"msgtype":"meeting","meeting":{"meetingid":184467440737095516150}}"#;
        let r = Row { msgdata: bigger.into(), ..row("meeting", json!({})) };
        assert!(render("wwa", "k", &r, &[])["content"]["meetingid"].is_string());
    }

    #[test]
    fn nested_items_render_and_number_their_media() {
        let inner = json!({"item": [
            {"type": "ChatRecordText", "msgtime": 1_700_000_000u64, "content": json!({"content": "hi"}).to_string()},
            {"type": "ChatRecordImage", "content": json!({"sdkfileid": "s1"}).to_string()},
            {"type": "ChatRecordMixed", "content": json!({"item": [
                {"type": "image", "content": json!({"sdkfileid": "s2"}).to_string()}]}).to_string()},
        ]});
        let r = row("chatrecord", json!({"chatrecord": {"title": "T", "item": inner["item"]}}));
        let v = render("wwa", "k", &r, &[]);
        let items = v["content"]["items"].as_array().unwrap();
        assert_eq!(items[0]["kind"], "text");
        assert_eq!(items[0]["content"]["text"], "hi");
        assert_eq!(items[0]["time"], 1_700_000_000_000u64);
        assert_eq!(items[1]["media_item"], 1);
        assert_eq!(items[2]["kind"], "mixed");
        assert_eq!(items[2]["content"]["items"][0]["media_item"], 2);
    }

    #[test]
    fn undecryptable_rows_say_so() {
        let r = Row { msgdata: String::new(), decrypt_error: Some("no key".into()), ..row("", json!({})) };
        let v = render("wwa", "k", &r, &[]);
        assert_eq!(v["kind"], "undecryptable");
        assert_eq!(v["content"]["reason"], "no key");
        assert_eq!(summary_text("wwa", &r), "[undecryptable]");
    }

    #[test]
    fn media_rows_carry_status_and_urls() {
        let m = MediaRow {
            msgid: "m1".into(),
            item: 0,
            kind: "voice".into(),
            status: 3,
            media_code: 0,
            path: Some("a.amr".into()),
            transcoded_path: Some("a.mp3".into()),
            filename: None,
            size: Some(10),
            md5: None,
        };
        let v = render("wwa", "k", &row("voice", json!({"voice": {"play_length": 3}})), &[m]);
        assert_eq!(v["media"][0]["status"], "done");
        assert_eq!(v["media"][0]["url"], "/api/corps/wwa/media/m1/0");
        assert_eq!(v["media"][0]["mp3_url"], "/api/corps/wwa/media/m1/0?format=mp3");
        assert_eq!(v["content"]["play_length"], 3);
    }
}
