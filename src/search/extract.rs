//! The searchable text of a stored record: read from its `msgdata` (the whole record JSON), for
//! every msgtype that has text, nested `chatrecord`/`mixed` items included.
//!
//! Hostile input is bounded: nested item lists are walked iteratively to at most
//! [`MAX_NESTING_DEPTH`](crate::message::MAX_NESTING_DEPTH) levels, at most [`MAX_ITEMS`] nested
//! items are read and the text stops growing at [`MAX_TEXT_BYTES`] (cut at a character boundary).

use serde_json::{Map, Value};

use crate::message::{parse_lenient, MAX_NESTING_DEPTH};

/// Most nested items read from one record.
pub const MAX_ITEMS: usize = 10_000;

/// Most bytes of text taken from one record.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The fields holding text, per msgtype (of the payload object: the one under the msgtype's
/// payload key, or a nested item's parsed `content`). Arrays of strings are taken whole; arrays of
/// objects are handled in [`payload_text`].
fn text_fields(msgtype: &str) -> &'static [&'static str] {
    match msgtype {
        "text" | "markdown" => &["content"],
        "link" => &["title", "description"],
        "weapp" => &["title", "description", "displayname"],
        "file" | "voip_doc_share" | "qydiskfile" => &["filename"],
        "location" => &["title", "address"],
        "card" => &["corpname"],
        "chatrecord" => &["title"],
        "todo" => &["title", "content"],
        "vote" => &["votetitle", "voteitem"],
        "collect" => &["room_name", "title"],
        "redpacket" | "external_redpacket" => &["wish"],
        "meeting" => &["topic", "address", "remarks"],
        "docmsg" | "doc" => &["title"],
        "calendar" => &["title", "place", "remarks"],
        "sphfeed" => &["sph_name", "feed_desc"],
        "image" | "voice" | "video" | "emotion" | "meeting_voice_call" | "revoke" | "agree" | "disagree" | "switch"
        | "voiptext" | "mixed" => &[],
        // Unknown msgtypes: the usual names of text fields.
        _ => &["content", "title", "description", "desc", "name", "filename", "text", "topic", "wish", "remarks"],
    }
}

/// Whether a record of `msgtype` may have text at all (`image`, `voice`, `revoke`… never do):
/// lets a caller skip [`record_text`]'s parse.
pub fn may_have_text(msgtype: &str) -> bool {
    !text_fields(msgtype).is_empty() || matches!(msgtype, "mixed" | "news")
}

/// The payload key of a top-level msgtype (message-format.md).
fn payload_key(msgtype: &str) -> &str {
    match msgtype {
        "docmsg" => "doc",
        "markdown" | "news" | "voiptext" | "qydiskfile" => "info",
        "external_redpacket" => "redpacket",
        other => other,
    }
}

/// The msgtype a nested item's `type` stands for (`ChatRecordText` → `text`).
fn nested_msgtype(ty: &str) -> String {
    let lower = ty.trim().to_ascii_lowercase();
    match lower.strip_prefix("chatrecord") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => lower,
    }
}

/// Collects text, bounded by [`MAX_TEXT_BYTES`].
struct Out {
    text: String,
}

impl Out {
    fn push(&mut self, s: &str) {
        let s = s.trim();
        if s.is_empty() || self.text.len() >= MAX_TEXT_BYTES {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let room = MAX_TEXT_BYTES.saturating_sub(self.text.len());
        let mut cut = s.len().min(room);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
    }
}

/// The searchable text of a record of `msgtype` whose JSON is `msgdata` (pieces joined by
/// newlines); `""` when it has none or is not a JSON object. `msgtype` is the row's column
/// (`switch` for switch records).
pub fn record_text(msgtype: &str, msgdata: &str) -> String {
    let mut out = Out { text: String::new() };
    let Ok(Value::Object(mut obj)) = parse_lenient(msgdata) else { return out.text };
    let key = payload_key(msgtype).to_string();
    let payload = match obj.remove(&key) {
        Some(Value::Object(p)) => Some(p),
        _ => None,
    };
    match (msgtype, payload) {
        // Votes may carry their fields at the top level.
        ("vote", None) => payload_text("vote", &obj, &mut out),
        ("mixed" | "chatrecord", Some(mut p)) => {
            payload_text(msgtype, &p, &mut out);
            if let Some(Value::Array(items)) = p.remove("item") {
                walk_items(items, &mut out);
            }
        }
        (_, Some(p)) => payload_text(msgtype, &p, &mut out),
        (_, None) => {}
    }
    out.text
}

/// The text fields of one payload object.
fn payload_text(msgtype: &str, payload: &Map<String, Value>, out: &mut Out) {
    for field in text_fields(msgtype) {
        match payload.get(*field) {
            Some(Value::String(s)) => out.push(s),
            Some(Value::Array(list)) => {
                for v in list {
                    if let Value::String(s) = v {
                        out.push(s);
                    }
                }
            }
            _ => {}
        }
    }
    let list_of = |key: &str| payload.get(key).and_then(Value::as_array);
    match msgtype {
        "news" => {
            for item in list_of("item").into_iter().flatten() {
                if let Some(item) = item.as_object() {
                    for k in ["title", "description"] {
                        if let Some(s) = item.get(k).and_then(Value::as_str) {
                            out.push(s);
                        }
                    }
                }
            }
        }
        "collect" => {
            for d in list_of("details").into_iter().flatten() {
                if let Some(s) = d.get("ques").and_then(Value::as_str) {
                    out.push(s);
                }
            }
        }
        _ => {}
    }
}

/// A nested item's payload: its `content`, a JSON string (or, tolerated, an object).
fn nested_payload(content: Option<Value>) -> Option<Map<String, Value>> {
    match content? {
        Value::String(s) => match parse_lenient(&s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The text of nested items (`mixed.item`, `chatrecord.item`), depth-first, iteratively, at most
/// [`MAX_NESTING_DEPTH`] levels and [`MAX_ITEMS`] items.
fn walk_items(items: Vec<Value>, out: &mut Out) {
    let mut stack: Vec<std::vec::IntoIter<Value>> = vec![items.into_iter()];
    let mut seen = 0usize;
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.next() else {
            stack.pop();
            continue;
        };
        seen += 1;
        if seen > MAX_ITEMS || out.text.len() >= MAX_TEXT_BYTES {
            return;
        }
        let Value::Object(mut entry) = entry else { continue };
        let msgtype = nested_msgtype(entry.get("type").and_then(Value::as_str).unwrap_or_default());
        let Some(mut payload) = nested_payload(entry.remove("content")) else { continue };
        if matches!(msgtype.as_str(), "mixed" | "chatrecord") {
            payload_text(&msgtype, &payload, out);
            if stack.len() < MAX_NESTING_DEPTH {
                if let Some(Value::Array(inner)) = payload.remove("item") {
                    stack.push(inner.into_iter());
                }
            }
            continue;
        }
        // A nested `news`/`markdown` item holds its payload directly (no `info` wrapper);
        // tolerate both.
        if let Some(Value::Object(inner)) = payload.remove("info") {
            payload_text(&msgtype, &inner, out);
        }
        payload_text(&msgtype, &payload, out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(v: Value) -> String {
        let msgtype = v.get("msgtype").and_then(Value::as_str).unwrap_or("switch").to_string();
        record_text(&msgtype, &v.to_string())
    }

    #[test]
    fn every_msgtype_with_text() {
        let cases = [
            (json!({"msgtype":"text","text":{"content":"你好 world"}}), "你好 world"),
            (json!({"msgtype":"markdown","info":{"content":"**重点**"}}), "**重点**"),
            (
                json!({"msgtype":"link","link":{"title":"标题","description":"描述","link_url":"http://x"}}),
                "标题\n描述",
            ),
            (
                json!({"msgtype":"weapp","weapp":{"title":"小程序","description":"d","displayname":"名"}}),
                "小程序\nd\n名",
            ),
            (json!({"msgtype":"file","file":{"filename":"合同.pdf","sdkfileid":"x"}}), "合同.pdf"),
            (json!({"msgtype":"voip_doc_share","voip_doc_share":{"filename":"共享.doc"}}), "共享.doc"),
            (json!({"msgtype":"qydiskfile","info":{"filename":"微盘.xlsx"}}), "微盘.xlsx"),
            (json!({"msgtype":"location","location":{"title":"公司","address":"深圳"}}), "公司\n深圳"),
            (json!({"msgtype":"card","card":{"corpname":"腾讯","userid":"u"}}), "腾讯"),
            (json!({"msgtype":"todo","todo":{"title":"待办","content":"买菜"}}), "待办\n买菜"),
            (json!({"msgtype":"vote","votetitle":"投票","voteitem":["甲","乙"]}), "投票\n甲\n乙"),
            (json!({"msgtype":"vote","vote":{"votetitle":"投票2","voteitem":["丙"]}}), "投票2\n丙"),
            (
                json!({"msgtype":"collect","collect":{"room_name":"群","title":"接龙","details":[{"id":1,"ques":"姓名"}]}}),
                "群\n接龙\n姓名",
            ),
            (json!({"msgtype":"redpacket","redpacket":{"wish":"恭喜发财"}}), "恭喜发财"),
            (json!({"msgtype":"external_redpacket","redpacket":{"wish":"大吉"}}), "大吉"),
            (
                json!({"msgtype":"meeting","meeting":{"topic":"周会","address":"A座","remarks":"带电脑"}}),
                "周会\nA座\n带电脑",
            ),
            (json!({"msgtype":"docmsg","doc":{"title":"文档"}}), "文档"),
            (json!({"msgtype":"news","info":{"item":[{"title":"新闻","description":"摘要"}]}}), "新闻\n摘要"),
            (
                json!({"msgtype":"calendar","calendar":{"title":"日程","place":"会议室","remarks":"r"}}),
                "日程\n会议室\nr",
            ),
            (json!({"msgtype":"sphfeed","sphfeed":{"sph_name":"视频号","feed_desc":"描述"}}), "视频号\n描述"),
            (json!({"msgtype":"image","image":{"sdkfileid":"x","md5sum":"y"}}), ""),
            (json!({"msgtype":"brand_new","brand_new":{"title":"新类型","sdkfileid":"x"}}), "新类型"),
            (json!({"action":"switch","user":"u","time":1}), ""),
        ];
        for (v, want) in cases {
            assert_eq!(text(v.clone()), want, "{v}");
            let msgtype = v.get("msgtype").and_then(Value::as_str).unwrap_or("switch");
            assert_eq!(may_have_text(msgtype), !want.is_empty(), "{v}");
        }
        assert_eq!(record_text("text", "not json"), "");
    }

    #[test]
    fn nested_items_of_chatrecord_and_mixed() {
        let inner_mixed = json!({"item":[
            {"type":"text","content":json!({"content":"内层文字"}).to_string()},
            {"type":"image","content":json!({"sdkfileid":"x"}).to_string()},
        ]});
        let v = json!({"msgtype":"chatrecord","chatrecord":{"title":"聊天记录","item":[
            {"type":"ChatRecordText","content":json!({"content":"第一条"}).to_string()},
            {"type":"ChatRecordLink","content":json!({"title":"链接","description":"说明"}).to_string()},
            {"type":"ChatRecordMixed","content":inner_mixed.to_string()},
            {"type":"ChatRecordFile","content":json!({"filename":"a.txt"}).to_string()},
        ]}});
        assert_eq!(text(v), "聊天记录\n第一条\n链接\n说明\n内层文字\na.txt");
        let m = json!({"msgtype":"mixed","mixed":{"item":[
            {"type":"text","content":json!({"content":"混合"}).to_string()},
            {"type":"markdown","content":json!({"info":{"content":"md"}}).to_string()},
        ]}});
        assert_eq!(text(m), "混合\nmd");
    }

    #[test]
    fn hostile_nesting_and_size_are_bounded() {
        let mut inner = json!({"item": []});
        for level in (0..200).rev() {
            inner = json!({"item": [
                {"type":"ChatRecordText","content":json!({"content":format!("L{level}")}).to_string()},
                {"type":"ChatRecordMixed","content":inner},
            ]});
        }
        // The walk itself stops at MAX_NESTING_DEPTH levels.
        let Some(Value::Array(items)) = inner.get("item").cloned() else { panic!("an array") };
        let mut out = Out { text: String::new() };
        walk_items(items, &mut out);
        assert_eq!(out.text.lines().count(), MAX_NESTING_DEPTH);
        assert_eq!(out.text.lines().last(), Some(format!("L{}", MAX_NESTING_DEPTH - 1).as_str()));
        // As a stored record, the parse copy already cuts containers below MAX_JSON_DEPTH: the
        // outer levels are read, nothing fails.
        let t = text(json!({"msgtype":"chatrecord","chatrecord":inner}));
        assert!(t.starts_with("L0\nL1\n") && t.lines().count() < MAX_NESTING_DEPTH, "{t}");

        let big = "长".repeat(MAX_TEXT_BYTES);
        let t = text(json!({"msgtype":"text","text":{"content":big}}));
        assert!(t.len() <= MAX_TEXT_BYTES && t.len() > MAX_TEXT_BYTES - 4);

        let many: Vec<Value> = (0..MAX_ITEMS + 50)
            .map(|i| json!({"type":"text","content":json!({"content":format!("i{i}")}).to_string()}))
            .collect();
        let t = text(json!({"msgtype":"mixed","mixed":{"item":many}}));
        assert_eq!(t.lines().count(), MAX_ITEMS);
    }
}
