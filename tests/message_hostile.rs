//! `message::parse_record` on hostile and odd records: nothing fails, nothing panics, nothing
//! overflows the stack, and untrusted names come out safe.

use proptest::prelude::*;
use serde_json::{json, Value};
use wework_msgaudit::message::{
    parse_record, sanitize_file_component, undecryptable, MediaKind, Parsed, MAX_FILENAME_BYTES, NOT_JSON_PREFIX,
    NOT_UTF8_ERROR,
};

const MD5: &str = "0123456789abcdef0123456789abcdef";

fn record(msgtype: &str, key: &str, payload: Value) -> String {
    json!({
        "msgid": "m1", "action": "send", "from": "zhangsan", "tolist": ["lisi", "wangwu"],
        "roomid": "wr1", "msgtime": 1_700_000_000_123u64, "msgtype": msgtype, key: payload,
    })
    .to_string()
}

fn parse(s: &str) -> Parsed {
    parse_record(7, 2, s.as_bytes())
}

/// Runs `f` on a thread with a 256 KiB stack: proves that hostile nesting needs no deep stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap()
}

#[test]
fn invalid_utf8_is_stored_lossily_and_flagged() {
    let mut bytes = record("text", "text", json!({"content": "AB"})).into_bytes();
    let at = bytes.windows(2).position(|w| w == b"AB").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xc3; // a truncated sequence
    let p = parse_record(1, 1, &bytes);
    assert_eq!(p.row.msgdata, String::from_utf8_lossy(&bytes));
    assert_eq!(p.row.decrypt_error.as_deref(), Some(NOT_UTF8_ERROR));
    // The rest is read from the lossy text; the ciphertext columns are the caller's to set.
    assert_eq!((p.row.msgid.as_str(), p.row.msgtype.as_str()), ("m1", "text"));
    assert_eq!(p.row.text, "\u{fffd}\u{fffd}");
    assert_eq!((p.row.encrypt_random_key.as_ref(), p.row.encrypt_chat_msg.as_ref()), (None, None));

    let p = parse_record(1, 1, b"\xff\xfe not json");
    let err = p.row.decrypt_error.unwrap();
    assert!(err.starts_with(NOT_UTF8_ERROR) && err.contains(NOT_JSON_PREFIX), "{err}");
}

#[test]
fn raw_control_characters_and_bad_escapes() {
    let raw = "{\"msgid\":\"m\u{1}1\",\u{0}\"action\":\"send\",\"msgtype\":\"text\",\"from\":\"a\",\"msgtime\":1,\
               \"text\":{\"content\":\"a\u{0}b\u{8}c\td\\x\\ud800e\"}}";
    let p = parse(raw);
    assert_eq!(p.row.decrypt_error, None);
    assert_eq!(p.row.msgdata, raw);
    assert_eq!(p.row.msgid, "m\u{1}1");
    assert_eq!(p.row.text, "a\u{0}b\u{8}c\td\\x\u{fffd}e");
}

#[test]
fn long_text_is_kept_whole() {
    let content = "长".repeat(70_000); // 210 KB
    let p = parse(&record("text", "text", json!({ "content": content })));
    assert_eq!(p.row.text, content);
    assert_eq!(p.row.status, 0);
}

#[test]
fn huge_tolist() {
    let ids: Vec<String> = (0..100_000).map(|i| format!("user{i}")).collect();
    let mut v: Value = serde_json::from_str(&record("text", "text", json!({"content": "x"}))).unwrap();
    v["tolist"] = Value::from(ids.clone());
    let p = parse(&v.to_string());
    assert_eq!(p.row.tolist, ids.join(","));
    // Odd shapes: numbers kept as written, other values skipped, a plain string taken as is.
    v["tolist"] = json!(["a", 5, null, {"x": 1}, "b"]);
    assert_eq!(parse(&v.to_string()).row.tolist, "a,5,b");
    v["tolist"] = json!("a,b");
    assert_eq!(parse(&v.to_string()).row.tolist, "a,b");
}

#[test]
fn numbers_beyond_u64_do_not_break_parsing() {
    let raw = r#"{"msgid":"big","action":"send","from":"a","tolist":["b"],"msgtime":1700000000000,"msgtype":"meeting",
        "meeting":{"topic":"t","meetingid":123456789012345678901234567890,"starttime":1e400,"endtime":-1e999},
        "collect":{"details":[{"id":18446744073709551616},{"id":99999999999999999999999999999999999999999}]}}"#;
    let p = parse(raw);
    assert_eq!(p.row.decrypt_error, None);
    assert_eq!((p.row.msgid.as_str(), p.row.msgtype.as_str(), p.row.msgtime), ("big", "meeting", 1_700_000_000_000));
    assert_eq!(p.row.msgdata, raw, "the original digits are stored");

    // A msgtime that does not fit reads as 0, the row is still stored.
    let p = parse(
        r#"{"msgid":"x","action":"send","msgtype":"text","msgtime":184467440737095516160,"text":{"content":"c"}}"#,
    );
    assert_eq!((p.row.msgtime, p.row.text.as_str(), p.row.decrypt_error.as_deref()), (0, "c", None));
}

#[test]
fn untrusted_file_names_and_extensions() {
    let long_name = format!("a/b\0c{}.pdf", "文".repeat(3400)); // ~10 KB
    let p = parse(&record(
        "file",
        "file",
        json!({"md5sum": MD5.to_uppercase(), "filename": long_name, "fileext": "../../etc/passwd", "filesize": 12, "sdkfileid": "F"}),
    ));
    let m = &p.media[0];
    assert_eq!((m.item, m.kind, m.sdkfileid.as_str(), m.size), (0, MediaKind::File, "F", Some(12)));
    assert_eq!(m.md5sum.as_deref(), Some(MD5));
    assert_eq!(m.ext_hint, "pdf", "fileext is not an extension: the filename's is used");
    let name = m.filename.as_deref().unwrap();
    assert!(name.len() <= MAX_FILENAME_BYTES && name.starts_with("a_bc文") && name.ends_with(".pdf"), "{name}");
    assert!(!name.contains(['/', '\\', '\0']));

    let p = parse(&record("file", "file", json!({"filename": "../..", "fileext": "", "sdkfileid": "F"})));
    assert_eq!((p.media[0].ext_hint.as_str(), p.media[0].filename.as_deref()), ("bin", Some("_")));
    let p = parse(&record("file", "file", json!({"filename": " . ", "fileext": "", "sdkfileid": "F"})));
    assert_eq!((p.media[0].ext_hint.as_str(), p.media[0].filename.as_deref()), ("bin", None));
    let p = parse(&record("file", "file", json!({"filename": "x.tar.gz", "fileext": "ZIP", "sdkfileid": "F"})));
    assert_eq!(p.media[0].ext_hint, "zip");

    // voip_doc_share: the extension comes from the filename.
    let p = parse(&record(
        "voip_doc_share",
        "voip_doc_share",
        json!({"filename": "共享文档.PPTX", "md5sum": "", "filesize": 3, "sdkfileid": "V"}),
    ));
    let m = &p.media[0];
    assert_eq!((m.kind, m.ext_hint.as_str(), m.md5sum.as_deref()), (MediaKind::VoipDocShare, "pptx", None));
    assert_eq!(m.filename.as_deref(), Some("共享文档.PPTX"));

    for (input, want) in [("../../etc/passwd", "_._etc_passwd"), ("..", ""), ("", ""), ("a\u{7}b", "ab")] {
        assert_eq!(sanitize_file_component(input, 64), want);
    }
}

#[test]
fn top_level_media_of_every_kind() {
    let cases = [
        ("image", json!({"md5sum": MD5, "filesize": 10, "sdkfileid": "I"}), MediaKind::Image, "jpg", Some(10)),
        (
            "voice",
            json!({"md5sum": MD5, "voice_size": 11, "play_length": 3, "sdkfileid": "A"}),
            MediaKind::Voice,
            "amr",
            Some(11),
        ),
        (
            "video",
            json!({"md5sum": MD5, "filesize": 12, "play_length": 1, "sdkfileid": "V"}),
            MediaKind::Video,
            "mp4",
            Some(12),
        ),
        (
            "emotion",
            json!({"type": 1, "imagesize": 13, "md5sum": MD5, "sdkfileid": "E"}),
            MediaKind::Emotion,
            "gif",
            Some(13),
        ),
        (
            "emotion",
            json!({"type": 2, "imagesize": 14, "md5sum": MD5, "sdkfileid": "E"}),
            MediaKind::Emotion,
            "png",
            Some(14),
        ),
        (
            "meeting_voice_call",
            json!({"endtime": 1, "sdkfileid": "M", "demofiledata": []}),
            MediaKind::MeetingVoiceCall,
            "bin",
            None,
        ),
    ];
    for (msgtype, payload, kind, ext, size) in cases {
        let p = parse(&record(msgtype, msgtype, payload));
        assert_eq!(p.media.len(), 1, "{msgtype}");
        let m = &p.media[0];
        assert_eq!((m.item, m.kind, m.ext_hint.as_str(), m.size), (0, kind, ext, size), "{msgtype}");
        assert_eq!((p.row.status, p.row.sdkfield.as_str()), (1, m.sdkfileid.as_str()), "{msgtype}");
        if matches!(kind, MediaKind::Voice | MediaKind::Video) {
            assert!(m.play_length.is_some());
        }
    }
    // No sdkfileid, a blank one, or a payload that is not an object: no media, status 0.
    for payload in [json!({"md5sum": MD5}), json!({"sdkfileid": "  "}), json!("img"), json!({"sdkfileid": 5})] {
        let p = parse(&record("image", "image", payload));
        assert!(p.media.is_empty());
        assert_eq!((p.row.status, p.row.sdkfield.as_str()), (0, ""));
    }
    // An md5 that is not 32 hex digits is not announced (the downloader would never match it).
    let p = parse(&record("image", "image", json!({"md5sum": "xyz", "sdkfileid": "I"})));
    assert_eq!(p.media[0].md5sum, None);
}

#[test]
fn payload_keys_that_differ_from_the_msgtype() {
    let p = parse(&record("markdown", "info", json!({"content": "# 标题"})));
    assert_eq!((p.row.msgtype.as_str(), p.row.text.as_str()), ("markdown", "# 标题"));
    for (msgtype, key, payload) in [
        ("external_redpacket", "redpacket", json!({"type": 2, "wish": "w", "totalcnt": 1, "totalamount": 888})),
        ("docmsg", "doc", json!({"title": "t", "link_url": "u", "doc_creator": "c"})),
        ("news", "info", json!({"item": [{"title": "t", "url": "u"}]})),
        ("voiptext", "info", json!({"callduration": 65, "invitetype": 1})),
        ("qydiskfile", "info", json!({"filename": "a.pdf", "sdkfileid": "not-media"})),
        ("sphfeed", "sphfeed", json!({"feed_type": 4})),
        ("future_type", "future_type", json!({"sdkfileid": "unknown-top-level-is-not-media"})),
    ] {
        let p = parse(&record(msgtype, key, payload));
        assert_eq!((p.row.msgtype.as_str(), p.row.text.as_str(), p.row.status), (msgtype, "", 0), "{msgtype}");
        assert!(p.media.is_empty() && p.row.decrypt_error.is_none(), "{msgtype}");
    }
}

#[test]
fn vote_with_fields_at_top_level() {
    let raw = r#"{"msgid":"v","action":"send","from":"a","tolist":["b"],"roomid":"r","msgtime":5,"msgtype":"vote",
        "votetitle":"午饭？","voteitem":["面","饭"],"votetype":102,"voteid":"vote1"}"#;
    let p = parse(raw);
    assert_eq!((p.row.msgtype.as_str(), p.row.roomid.as_str(), p.row.status), ("vote", "r", 0));
    assert_eq!(p.row.decrypt_error, None);
}

#[test]
fn switch_records() {
    let raw = r#"{"msgid":"s1","action":"switch","time":1700000000123,"user":"zhangsan"}"#;
    let p = parse(raw);
    let r = &p.row;
    assert_eq!((r.msgid.as_str(), r.action.as_str(), r.msgtype.as_str()), ("s1", "switch", "switch"));
    assert_eq!((r.msgfrom.as_str(), r.msgtime, r.status), ("zhangsan", 1_700_000_000_123, 0));
    assert_eq!((r.seq, r.publickey_ver, r.msgdata.as_str()), (7, 2, raw));
}

#[test]
fn not_a_json_object() {
    for raw in ["", "garbage", "[1,2]", "\"s\"", "{\"msgid\":\"m\"", "null"] {
        let p = parse(raw);
        let err = p.row.decrypt_error.clone().unwrap_or_default();
        assert!(err.starts_with(NOT_JSON_PREFIX), "{raw:?}: {err}");
        assert_eq!((p.row.msgid.as_str(), p.row.msgtype.as_str(), p.row.status), ("", "", 0), "{raw:?}");
        assert_eq!(p.row.msgdata, raw);
        assert!(p.media.is_empty());
    }
    // An object without msgid: the caller fills it from the envelope.
    let p = parse(r#"{"action":"send","msgtype":"text","text":{"content":"x"}}"#);
    assert_eq!((p.row.msgid.as_str(), p.row.decrypt_error.as_deref()), ("", None));
}

#[test]
fn undecryptable_rows_keep_the_ciphertext() {
    let r = undecryptable(9, "mid", 99, "ERK", "ECM", "no key for publickey_ver 99");
    assert_eq!((r.seq, r.msgid.as_str(), r.publickey_ver), (9, "mid", 99));
    assert_eq!((r.msgtype.as_str(), r.status, r.msgdata.as_str(), r.sdkfield.as_str()), ("", 0, "", ""));
    assert_eq!(r.decrypt_error.as_deref(), Some("no key for publickey_ver 99"));
    assert_eq!((r.encrypt_random_key.as_deref(), r.encrypt_chat_msg.as_deref()), (Some("ERK"), Some("ECM")));
}

/// A `mixed` record whose items nest `depth` levels deep through `content` *objects* (nesting
/// through JSON strings doubles the escaping at every level, so it cannot go deep); every level
/// holds one image.
fn deep_mixed(depth: usize, container: &str, nested_type: &str) -> String {
    let mut s = String::new();
    for level in 0..depth {
        s.push_str(&format!(
            "{{\"item\":[{{\"type\":\"image\",\"content\":\"{{\\\"sdkfileid\\\":\\\"L{level}\\\"}}\"}},{{\"type\":\"{nested_type}\",\"content\":"
        ));
    }
    s.push_str("{\"item\":[]}");
    for _ in 0..depth {
        s.push_str("}]}");
    }
    format!(
        "{{\"msgid\":\"deep\",\"action\":\"send\",\"msgtype\":\"{container}\",\"msgtime\":1,\"{container}\":{s},\"tail\":\"after\"}}"
    )
}

#[test]
fn nesting_a_thousand_deep_needs_no_stack() {
    on_small_stack(|| {
        for (container, nested) in
            [("mixed", "mixed"), ("chatrecord", "ChatRecordMixed"), ("chatrecord", "ChatRecordChatRecord")]
        {
            let raw = deep_mixed(1000, container, nested);
            let p = parse(&raw);
            assert_eq!((p.row.msgid.as_str(), p.row.decrypt_error.as_deref()), ("deep", None), "{container}/{nested}");
            assert_eq!(p.row.msgdata, raw);
            // The first levels are read, in order; the rest is cut (and stays in msgdata).
            assert!(p.media.len() >= 15, "{}", p.media.len());
            for (i, m) in p.media.iter().enumerate() {
                assert_eq!((m.item as usize, m.sdkfileid.clone()), (i + 1, format!("L{i}")));
            }
        }
        // Raw arrays/objects a million deep anywhere in a record.
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        let raw = format!("{{\"msgid\":\"x\",\"action\":\"send\",\"msgtype\":\"odd\",\"odd\":{deep},\"msgtime\":3}}");
        let p = parse(&raw);
        assert_eq!((p.row.msgid.as_str(), p.row.msgtime, p.row.decrypt_error.as_deref()), ("x", 3, None));
        let unclosed = format!("{{\"msgid\":\"x\",\"odd\":{}", "{\"a\":".repeat(1_000_000));
        assert!(parse(&unclosed).row.decrypt_error.is_some());
    });
}

#[test]
fn nesting_through_json_strings() {
    // content strings inside content strings, 12 levels (the escaping doubles at every level).
    let mut inner = json!({"item": []});
    for level in (0..12).rev() {
        let image = json!({"sdkfileid": format!("S{level}"), "md5sum": MD5, "filesize": level});
        inner = json!({"item": [
            {"type": "ChatRecordText", "content": json!({"content": "t"}).to_string()},
            {"type": "ChatRecordImage", "content": image.to_string()},
            {"type": "ChatRecordMixed", "content": inner.to_string()},
            {"type": "ChatRecordLink", "content": json!({"title": "after", "sdkfileid": format!("X{level}")}).to_string()},
        ]});
    }
    let p = on_small_stack(move || parse(&record("chatrecord", "chatrecord", inner)));
    let got: Vec<(u32, String, MediaKind)> = p.media.iter().map(|m| (m.item, m.sdkfileid.clone(), m.kind)).collect();
    // Depth-first document order: S0, S1, … S11, then the links on the way back out.
    let mut want: Vec<(String, MediaKind)> = (0..12).map(|l| (format!("S{l}"), MediaKind::Image)).collect();
    want.extend((0..12).rev().map(|l| (format!("X{l}"), MediaKind::File)));
    let want: Vec<(u32, String, MediaKind)> =
        want.into_iter().enumerate().map(|(i, (id, k))| (i as u32 + 1, id, k)).collect();
    assert_eq!(got, want);
    assert_eq!(p.media[3].size, Some(3));
}

#[test]
fn odd_nested_items_are_skipped() {
    let items = json!([
        "not an object",
        {"type": "image"},
        {"type": "image", "content": "not json"},
        {"type": "image", "content": 5},
        {"content": json!({"sdkfileid": "untyped"}).to_string()},
        {"type": "mixed", "content": json!({"item": "not a list"}).to_string()},
        {"type": "voice", "content": json!({"sdkfileid": "ok", "voice_size": 1, "play_length": 2}).to_string()},
    ]);
    let p = parse(&record("mixed", "mixed", json!({ "item": items })));
    let got: Vec<(u32, &str, MediaKind)> = p.media.iter().map(|m| (m.item, m.sdkfileid.as_str(), m.kind)).collect();
    assert_eq!(got, vec![(1, "untyped", MediaKind::File), (2, "ok", MediaKind::Voice)]);
    assert_eq!(p.row.sdkfield, "untyped");
}

fn demo_plaintexts() -> Vec<String> {
    emulator::Emulator::demo().truth(emulator::DEMO_CORPID).into_iter().take(40).map(|t| t.plaintext).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let p = parse_record(1, 1, &bytes);
        prop_assert_eq!(p.row.status, u8::from(!p.media.is_empty()));
    }

    #[test]
    fn mangled_demo_records_never_panic(idx in 0usize..40, cut in any::<prop::sample::Index>(),
                                        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8)) {
        thread_local!(static DEMO: Vec<String> = demo_plaintexts());
        let mut bytes = DEMO.with(|d| d[idx].clone().into_bytes());
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let p = parse_record(1, 1, &bytes);
        let items: Vec<u32> = p.media.iter().map(|m| m.item).collect();
        let mut sorted = items.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(items, sorted);
    }
}
