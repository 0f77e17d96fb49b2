//! Hostile records, for a corp whose scenario says `hostile = true`: what a broken or malicious
//! server (or a man in the middle, see sdk-facts.md §2 on TLS) could send. Each seq is one of
//! [`KINDS`], in turn:
//!
//! | kind | what |
//! |---|---|
//! | `bad_utf8` | a text whose bytes are not UTF-8 (0xFF 0xFE inside the content) |
//! | `control_chars` | raw NUL, BEL, ESC, US inside a JSON string (not valid JSON) |
//! | `huge_text` | 200 KB of text |
//! | `deep_nesting` | `mixed` → `mixed` → … 1,000 levels deep |
//! | `huge_tolist` | 100,000 recipients |
//! | `big_numbers` | a msgtime and ids beyond u64, floats beyond f64 |
//! | `dup_msgid` | the msgid of the previous seq, with other content |
//! | `traversal` | a file whose filename and fileext climb out of any directory |
//! | `truncated_short` | `encrypt_chat_msg` cut to 12 bytes (the real SDK's DecryptData aborts) |
//! | `truncated_half` | a valid key with half of its `encrypt_chat_msg` (the real SDK aborts) |
//! | `text` | a plain record, to show that the corp keeps going |
//!
//! The plaintext of `bad_utf8` carries U+FFFD U+FFFD where the invalid bytes go: the encrypted
//! bytes have 0xFF 0xFE there instead ([`raw_plaintext`]), so a lossy decoding gives the truth's
//! plaintext back.

use serde_json::json;

use crate::gen::{make_sdkfileid, msgid_of, GenCtx, Generated, MediaSpec, Src};
use crate::rng::{hash_bytes, seed_of, Rng};

/// The kinds, in the order seqs take them.
pub const KINDS: &[&str] = &[
    "bad_utf8",
    "control_chars",
    "huge_text",
    "deep_nesting",
    "huge_tolist",
    "big_numbers",
    "dup_msgid",
    "traversal",
    "truncated_short",
    "truncated_half",
    "text",
];

/// Where the invalid bytes go in `bad_utf8`.
const BAD_MARK: &str = "\u{FFFD}\u{FFFD}";
const BAD_BYTES: [u8; 2] = [0xFF, 0xFE];

/// The hostile kind of `seq`.
pub fn kind_of(seq: u64) -> &'static str {
    KINDS[((seq.max(1) - 1) % KINDS.len() as u64) as usize]
}

/// The bytes that are encrypted for this record.
pub(crate) fn raw_plaintext(gen: &Generated) -> Vec<u8> {
    let mut bytes = gen.plaintext.clone().into_bytes();
    if gen.msgtype == "text" && gen.hostile == Some("bad_utf8") {
        if let Some(at) = gen.plaintext.find(BAD_MARK) {
            bytes.splice(at..at + BAD_MARK.len(), BAD_BYTES);
        }
    }
    bytes
}

/// Whether this record's `encrypt_chat_msg` is cut (its truth says `corrupt`).
pub(crate) fn cuts_ciphertext(kind: Option<&str>) -> bool {
    matches!(kind, Some("truncated_short" | "truncated_half"))
}

/// Cuts `encrypt_chat_msg` as the record's kind says (nothing for the other kinds).
pub(crate) fn cut_ciphertext(kind: Option<&str>, encrypt_chat_msg: &mut String) {
    match kind {
        Some("truncated_short") => encrypt_chat_msg.truncate(12),
        Some("truncated_half") => encrypt_chat_msg.truncate(encrypt_chat_msg.len() / 2),
        _ => {}
    }
}

pub(crate) fn generate(ctx: &GenCtx<'_>, seq: u64) -> Generated {
    let kind = kind_of(seq);
    let mut rng = Rng::new(seed_of(&[ctx.seed, hash_bytes(ctx.corpid.as_bytes()), seq, 0x4057]));
    let msgid = if kind == "dup_msgid" && seq > 1 {
        msgid_of(ctx.seed, ctx.corpid, seq - 1)
    } else {
        msgid_of(ctx.seed, ctx.corpid, seq)
    };
    let msgtime = ctx.base_msgtime_ms.saturating_add(seq.saturating_sub(1).saturating_mul(ctx.step_ms));
    let head = |msgtype: &str, tolist: &str, msgtime: &str| {
        format!(
            "{{\"msgid\":{},\"action\":\"send\",\"from\":\"zhangsan\",\"tolist\":{tolist},\"roomid\":\"\",\
             \"msgtime\":{msgtime},\"msgtype\":\"{msgtype}\"",
            json!(msgid)
        )
    };
    let text = |content: &str| {
        format!("{},\"text\":{{\"content\":{}}}}}", head("text", "[\"lisi\"]", &msgtime.to_string()), json!(content))
    };
    let mut media = Vec::new();
    let (msgtype, plaintext) = match kind {
        "bad_utf8" => ("text", text(&format!("坏的字节 {BAD_MARK} 之后"))),
        "control_chars" => {
            let escaped = text("NUL\u{0}BEL\u{7}ESC\u{1b}[31mUS\u{1f}end");
            let mut raw = escaped;
            for (esc, ch) in [("\\u0000", "\u{0}"), ("\\u0007", "\u{7}"), ("\\u001b", "\u{1b}"), ("\\u001f", "\u{1f}")]
            {
                raw = raw.replace(esc, ch);
            }
            ("text", raw)
        }
        "huge_text" => {
            let mut s = String::with_capacity(200 * 1024 + 64);
            while s.len() < 200 * 1024 {
                s.push_str("很长的消息 a long message 🧾 ");
            }
            ("text", text(&s))
        }
        "deep_nesting" => {
            // Items nest through `content` objects: through JSON strings the escaping would double
            // at every level.
            let mut body = String::new();
            for level in 0..1000 {
                body.push_str(&format!(
                    "{{\"item\":[{{\"type\":\"text\",\"content\":\"{{\\\"content\\\":\\\"level {level}\\\"}}\"}},\
                     {{\"type\":\"mixed\",\"content\":"
                ));
            }
            body.push_str("{\"item\":[]}");
            body.push_str(&"}]}".repeat(1000));
            ("mixed", format!("{},\"mixed\":{body}}}", head("mixed", "[\"lisi\"]", &msgtime.to_string())))
        }
        "huge_tolist" => {
            let list: Vec<String> = (0..100_000).map(|i| format!("wm{i:012}")).collect();
            let tolist = json!(list).to_string();
            ("text", format!("{},\"text\":{{\"content\":\"大群\"}}}}", head("text", &tolist, &msgtime.to_string())))
        }
        "big_numbers" => (
            "meeting",
            format!(
                "{},\"meeting\":{{\"topic\":\"t\",\"meetingid\":123456789012345678901234567890,\
                 \"starttime\":1e400,\"endtime\":-1e999,\"id\":18446744073709551616}}}}",
                head("meeting", "[\"lisi\"]", "100000000000000000000000000000")
            ),
        ),
        "dup_msgid" => ("text", text("同一个 msgid，不同的内容 (a duplicate msgid with other content)")),
        "traversal" => {
            let size = rng.range(1000, 30_000);
            let src = Src::Random { seed: rng.next_u64(), size };
            let sdkfileid = make_sdkfileid(&mut rng, ctx.corpid, seq, 0);
            let md5 = (ctx.md5)(&src);
            let payload = json!({"md5sum": md5, "filename": "../../../../../../tmp/wwf-pwned.sh",
                "fileext": "/../../../etc/cron.d/x", "filesize": size, "sdkfileid": sdkfileid});
            media.push(MediaSpec { item: 0, kind: "file", ext: "bin", src, sdkfileid, md5 });
            ("file", format!("{},\"file\":{payload}}}", head("file", "[\"lisi\"]", &msgtime.to_string())))
        }
        _ => ("text", text("正常的消息 (a plain record after the hostile ones)")),
    };
    Generated { msgid, msgtype: msgtype.into(), action: "send".into(), plaintext, media, hostile: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_md5(_: &Src) -> String {
        "00".repeat(16)
    }

    fn gen(seq: u64) -> Generated {
        let ctx = GenCtx {
            seed: 1,
            corpid: "wwhostile",
            base_msgtime_ms: 1,
            step_ms: 1,
            big_file_bytes: 0,
            hostile: true,
            big_records: &[],
            mix: None,
            md5: &ctx_md5,
        };
        generate(&ctx, seq)
    }

    #[test]
    fn every_kind_is_what_it_says() {
        let by_kind = |k: &str| gen(KINDS.iter().position(|x| *x == k).unwrap() as u64 + 1);
        let bad = by_kind("bad_utf8");
        let raw = raw_plaintext(&bad);
        assert!(std::str::from_utf8(&raw).is_err());
        assert_eq!(String::from_utf8_lossy(&raw), bad.plaintext);
        assert!(by_kind("control_chars").plaintext.contains('\u{0}'));
        assert!(serde_json::from_str::<serde_json::Value>(&by_kind("control_chars").plaintext).is_err());
        assert!(by_kind("huge_text").plaintext.len() > 200 * 1024);
        assert!(by_kind("huge_tolist").plaintext.len() > 1_000_000);
        assert!(by_kind("deep_nesting").plaintext.matches("\"type\":\"mixed\"").count() == 1000);
        let dup = by_kind("dup_msgid");
        assert_eq!(dup.msgid, gen(KINDS.iter().position(|x| *x == "dup_msgid").unwrap() as u64).msgid);
        assert_eq!(by_kind("traversal").media.len(), 1);
        let cut = |kind: &str| {
            let mut ecm = "x".repeat(100);
            cut_ciphertext(Some(kind), &mut ecm);
            (cuts_ciphertext(Some(kind)), ecm.len())
        };
        assert_eq!(cut("truncated_short"), (true, 12));
        assert_eq!(cut("truncated_half"), (true, 50));
        assert_eq!(cut("text"), (false, 100));
    }
}
