//! `message::parse_record` against the emulator's ground truth: every demo record (all msgtypes,
//! nested mixed/chatrecord media, raw control characters, switch, unknown msgtype).

use std::collections::BTreeSet;

use serde_json::Value;
use wework_msgaudit::message::{parse_record, MediaKind};

fn truth() -> Vec<emulator::TruthRecord> {
    let t = emulator::Emulator::demo().truth(emulator::DEMO_CORPID);
    assert!(t.len() >= 300, "the demo scenario serves 300 records, got {}", t.len());
    t
}

#[test]
fn every_demo_record_parses_to_its_truth() {
    let mut msgtypes = BTreeSet::new();
    let mut nested = 0;
    for t in truth() {
        let ctx = format!("seq {} ({})", t.seq, t.msgtype);
        let parsed = parse_record(t.seq, t.publickey_ver, t.plaintext.as_bytes());
        let row = &parsed.row;
        assert_eq!(row.msgid, t.msgid, "{ctx}");
        assert_eq!(row.msgtype, t.msgtype, "{ctx}");
        assert_eq!(row.action, t.action, "{ctx}");
        assert_eq!(row.seq, t.seq, "{ctx}");
        assert_eq!(row.publickey_ver, t.publickey_ver, "{ctx}");
        assert_eq!(row.msgdata, t.plaintext, "{ctx}: msgdata is the record, byte for byte");
        assert_eq!(row.decrypt_error, None, "{ctx}");
        assert_eq!((row.encrypt_random_key.as_ref(), row.encrypt_chat_msg.as_ref()), (None, None), "{ctx}");

        let got: Vec<(u32, &str)> = parsed.media.iter().map(|m| (m.item, m.sdkfileid.as_str())).collect();
        let want: Vec<(u32, &str)> = t.media.iter().map(|m| (m.item, m.sdkfileid.as_str())).collect();
        assert_eq!(got, want, "{ctx}: media (item, sdkfileid)");
        for (m, tm) in parsed.media.iter().zip(&t.media) {
            let ctx = format!("{ctx} item {}", m.item);
            assert_eq!(m.kind.as_str(), tm.kind, "{ctx}");
            assert_eq!(MediaKind::from_name(&tm.kind), Some(m.kind), "{ctx}");
            if m.kind == MediaKind::MeetingVoiceCall {
                // The record carries neither md5 nor size.
                assert_eq!((m.md5sum.as_deref(), m.size), (None, None), "{ctx}");
                assert_eq!(m.ext_hint, "bin", "{ctx}");
            } else {
                assert_eq!(m.md5sum.as_deref(), Some(tm.md5.as_str()), "{ctx}");
                assert_eq!(m.size, Some(tm.size), "{ctx}");
            }
            let want_ext = match m.kind {
                MediaKind::Image => "jpg",
                MediaKind::Voice => "amr", // the bytes may be SILK: the downloader sniffs
                MediaKind::Video => "mp4",
                MediaKind::Emotion | MediaKind::File | MediaKind::VoipDocShare => tm.ext.as_str(),
                MediaKind::MeetingVoiceCall => "bin",
            };
            assert_eq!(m.ext_hint, want_ext, "{ctx}");
            match m.kind {
                MediaKind::File | MediaKind::VoipDocShare => {
                    let name = m.filename.as_deref().unwrap_or_default();
                    assert!(name.ends_with(".bin") && !name.contains('/'), "{ctx}: {name:?}")
                }
                _ => assert_eq!(m.filename, None, "{ctx}"),
            }
            if matches!(m.kind, MediaKind::Voice | MediaKind::Video) {
                assert!(m.play_length.is_some(), "{ctx}");
            }
        }
        if parsed.media.iter().any(|m| m.item > 0) {
            nested += 1;
        }
        assert_eq!(row.status, u8::from(!t.media.is_empty()), "{ctx}");
        assert_eq!(row.sdkfield, t.media.first().map(|m| m.sdkfileid.clone()).unwrap_or_default(), "{ctx}");

        // Columns against an independent reading of the record (where it is valid JSON).
        let strict: Option<Value> = serde_json::from_str(&t.plaintext).ok();
        if let Some(v) = strict {
            if t.msgtype == "switch" {
                assert_eq!(row.msgfrom, v["user"].as_str().unwrap(), "{ctx}");
                assert_eq!(row.msgtime, v["time"].as_u64().unwrap(), "{ctx}");
                assert_eq!((row.tolist.as_str(), row.roomid.as_str()), ("", ""), "{ctx}");
            } else {
                assert_eq!(row.msgfrom, v["from"].as_str().unwrap(), "{ctx}");
                assert_eq!(row.msgtime, v["msgtime"].as_u64().unwrap(), "{ctx}");
                assert_eq!(row.roomid, v["roomid"].as_str().unwrap(), "{ctx}");
                let tolist: Vec<&str> = v["tolist"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
                assert_eq!(row.tolist, tolist.join(","), "{ctx}");
            }
            let text = match t.msgtype.as_str() {
                "text" => v["text"]["content"].as_str().unwrap_or_default(),
                "markdown" => v["info"]["content"].as_str().unwrap_or_default(),
                _ => "",
            };
            assert_eq!(row.text, text, "{ctx}");
            if t.msgtype == "text" {
                assert!(!row.text.is_empty(), "{ctx}");
            }
        } else {
            // The record with raw control characters: the text column holds them exactly.
            assert_eq!(t.msgtype, "text", "{ctx}: only the control-character record is invalid JSON");
            assert_eq!(row.text, "控制字符\u{1}bell\u{7}esc\u{1b}unit\u{1f}end", "{ctx}");
        }
        msgtypes.insert(t.msgtype.clone());
    }
    for want in emulator::truth::ALL_MSGTYPES {
        assert!(msgtypes.contains(want), "the demo covers {want}");
    }
    assert!(nested > 0, "nested media were checked");
}

#[test]
fn chatrecord_media_are_numbered_depth_first_through_chatrecord_mixed() {
    let t = truth().into_iter().find(|t| t.msgtype == "chatrecord").unwrap();
    let parsed = parse_record(t.seq, t.publickey_ver, t.plaintext.as_bytes());
    let kinds: Vec<(u32, &str)> = parsed.media.iter().map(|m| (m.item, m.kind.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (1, "image"),
            (2, "video"),
            (3, "voice"),
            (4, "file"),
            (5, "emotion"),
            (6, "image"),
            (7, "emotion"),
            (8, "file"),
            (9, "voice"),
            (10, "video"),
        ]
    );
    assert_eq!(parsed.row.status, 1);
    assert_eq!(parsed.row.sdkfield, parsed.media[0].sdkfileid);
}

#[test]
fn unknown_msgtype_is_an_ordinary_row() {
    let t = truth().into_iter().find(|t| t.msgtype == "future_type").unwrap();
    let parsed = parse_record(t.seq, t.publickey_ver, t.plaintext.as_bytes());
    assert_eq!(parsed.row.msgtype, "future_type");
    assert_eq!((parsed.row.status, parsed.row.decrypt_error.as_deref()), (0, None));
    assert!(parsed.media.is_empty());
}
