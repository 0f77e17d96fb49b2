//! Deterministic record generator: (seed, corpid, seq) -> record JSON + its media.
//!
//! The kind of record `seq` is `KINDS[(seq - 1) % KINDS.len()]`, so every msgtype of
//! docs/message-format.md appears in any window of `KINDS.len()` consecutive records.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::codec::{parse_pb, put_bytes_field, PbValue};
use crate::rng::{hash_bytes, seed_of, stream_bytes, Rng};
use crate::scenario::{BigKind, BigRecord, MediaMix};

pub(crate) const FIX_JPG: &[u8] = include_bytes!("../fixtures/image.jpg");
pub(crate) const FIX_PNG: &[u8] = include_bytes!("../fixtures/emotion.png");
pub(crate) const FIX_GIF: &[u8] = include_bytes!("../fixtures/emotion.gif");
pub(crate) const FIX_MP4: &[u8] = include_bytes!("../fixtures/video.mp4");
pub(crate) const FIX_AMR: &[u8] = include_bytes!("../fixtures/voice.amr");
pub(crate) const FIX_SILK_TENCENT: &[u8] = include_bytes!("../fixtures/voice_tencent.silk");
pub(crate) const FIX_SILK_PLAIN: &[u8] = include_bytes!("../fixtures/voice_plain.silk");

/// Where a media item's bytes come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src {
    Fixture(&'static [u8]),
    Random { seed: u64, size: u64 },
}

impl Src {
    pub(crate) fn size(&self) -> u64 {
        match self {
            Src::Fixture(b) => b.len() as u64,
            Src::Random { size, .. } => *size,
        }
    }
    /// Bytes `offset..offset+len` (clamped to the size).
    pub(crate) fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = offset.saturating_add(len).min(self.size());
        if offset >= end {
            return Vec::new();
        }
        match self {
            Src::Fixture(b) => b[offset as usize..end as usize].to_vec(),
            Src::Random { seed, .. } => {
                let mut out = vec![0u8; (end - offset) as usize];
                stream_bytes(*seed, offset, &mut out);
                out
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MediaSpec {
    pub item: u32,
    pub kind: &'static str,
    pub ext: &'static str,
    pub src: Src,
    pub sdkfileid: String,
    pub md5: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub msgid: String,
    pub msgtype: String,
    pub action: String,
    pub plaintext: String,
    pub media: Vec<MediaSpec>,
    /// The kind of a hostile record (`crate::hostile`), `None` for the normal ones.
    pub hostile: Option<&'static str>,
}

/// What the generator needs to know about a corp.
pub(crate) struct GenCtx<'a> {
    pub seed: u64,
    pub corpid: &'a str,
    pub base_msgtime_ms: u64,
    pub step_ms: u64,
    pub big_file_bytes: u64,
    /// Generate the records of `crate::hostile` instead of the normal cycle.
    pub hostile: bool,
    /// Records replaced by big ones (`[[corp.big_records]]`).
    pub big_records: &'a [BigRecord],
    /// The kinds of `[corp.media_mix]`, when the corp has one.
    pub mix: Option<&'a Mix>,
    /// md5 (hex) of a source, cached by the caller.
    pub md5: &'a dyn Fn(&Src) -> String,
}

/// The cycle of record kinds.
pub(crate) const KINDS: &[&str] = &[
    "text",
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice_amr",
    "video",
    "card",
    "location",
    "emotion_gif",
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
    "future_type",
    "switch",
    "text_long",
    "voice_silk",
    "text_ctl",
    "emotion_png",
    "vote_top",
    "voice_silk_plain",
    "text_external",
    "image",
];

fn kind_of(seq: u64) -> &'static str {
    KINDS[((seq.max(1) - 1) % KINDS.len() as u64) as usize]
}

/// Media-free kinds that the records of a media mix without media cycle through.
const PLAIN: &[&str] = &["text", "link", "card", "location", "markdown", "weapp", "news"];

/// The record kinds of a corp with `[corp.media_mix]`: `total` records with one media item each,
/// at evenly spread seqs, their kinds interleaved evenly; the rest media-free.
#[derive(Debug, Clone)]
pub(crate) struct Mix {
    records: u64,
    /// The kind of the j-th record with media.
    kinds: Vec<&'static str>,
    /// The seq of the first `file` record (the big file's), 0 when none.
    first_file: u64,
}

impl Mix {
    pub(crate) fn new(mix: &MediaMix, records: u64) -> Mix {
        let groups: [(u64, &[&'static str]); 5] = [
            (mix.image, &["image"]),
            (mix.voice, &["voice_amr", "voice_silk", "voice_silk_plain"]),
            (mix.emotion, &["emotion_gif", "emotion_png"]),
            (mix.file, &["file"]),
            (mix.video, &["video"]),
        ];
        // Each kind's k-th item sits at (k + 1/2) / count of the way: sorted, that interleaves them.
        let mut slots: Vec<(u128, usize, &'static str)> = Vec::new();
        for (g, (count, names)) in groups.iter().enumerate() {
            for k in 0..*count {
                let at = (u128::from(2 * k + 1) << 64) / u128::from(2 * count);
                slots.push((at, g, names[(k % names.len() as u64) as usize]));
            }
        }
        slots.sort_unstable();
        let kinds: Vec<&'static str> = slots.into_iter().map(|s| s.2).collect();
        let mut m = Mix { records, kinds, first_file: 0 };
        m.first_file = (1..=records).find(|&seq| m.kind(seq) == "file").unwrap_or(0);
        m
    }

    fn kind(&self, seq: u64) -> &'static str {
        let (m, n) = (self.kinds.len() as u64, self.records);
        let plain = PLAIN[(seq % PLAIN.len() as u64) as usize];
        if m == 0 || seq == 0 || seq > n {
            return plain;
        }
        let (a, b) = ((seq - 1) * m / n, seq * m / n);
        if a == b {
            plain
        } else {
            self.kinds[a as usize]
        }
    }
}

/// The kind of record `seq` of this corp: its media mix's, else the cycle of every msgtype.
fn kind_in(ctx: &GenCtx<'_>, seq: u64) -> &'static str {
    ctx.mix.map_or_else(|| kind_of(seq), |m| m.kind(seq))
}

/// The record (seq) that carries the big file: the first `file` record.
pub(crate) fn big_file_seq() -> u64 {
    KINDS.iter().position(|k| *k == "file").map_or(0, |i| i as u64 + 1)
}

pub(crate) fn msgid_of(seed: u64, corpid: &str, seq: u64) -> String {
    let h = seed_of(&[seed, hash_bytes(corpid.as_bytes()), seq, 0x4d53_4749]);
    let mut s = format!("{h:016x}{seq:08}");
    if kind_of(seq) == "text_external" {
        s.push_str("_external");
    }
    s
}

/// `sdkfileid` = base64(protobuf {1: fileid, 2: authkey, 3: aeskey(32 hex)}); the fileid names
/// corp, seq and item so that the bytes can be found again.
pub(crate) fn make_sdkfileid(rng: &mut Rng, corpid: &str, seq: u64, item: u32) -> String {
    let fileid = format!("emu/{corpid}/{seq}/{item}");
    let authkey = format!("{:016x}", rng.next_u64());
    let aeskey = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    let mut pb = Vec::new();
    put_bytes_field(&mut pb, 1, fileid.as_bytes());
    put_bytes_field(&mut pb, 2, authkey.as_bytes());
    put_bytes_field(&mut pb, 3, aeskey.as_bytes());
    STANDARD.encode(pb)
}

/// Parses a sdkfileid back into (corpid, seq, item); `None` if it is not one of ours.
pub(crate) fn parse_sdkfileid(sdkfileid: &[u8]) -> Option<(String, u64, u32)> {
    let pb = STANDARD.decode(sdkfileid).ok()?;
    let fields = parse_pb(&pb)?;
    let fileid = fields.iter().find_map(|(f, v)| match (f, v) {
        (1, PbValue::Bytes(b)) => Some(*b),
        _ => None,
    })?;
    let s = std::str::from_utf8(fileid).ok()?;
    let mut it = s.strip_prefix("emu/")?.rsplitn(3, '/');
    let item = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let corpid = it.next()?.to_string();
    Some((corpid, seq, item))
}

/// The (fileid, authkey, AES-128 key) inside a sdkfileid; `None` if it is not well formed.
pub(crate) fn sdkfileid_parts(sdkfileid: &[u8]) -> Option<(String, String, [u8; 16])> {
    let pb = STANDARD.decode(sdkfileid).ok()?;
    let fields = parse_pb(&pb)?;
    let text = |n: u64| {
        fields.iter().find_map(|(f, v)| match v {
            PbValue::Bytes(b) if *f == n => std::str::from_utf8(b).ok().map(str::to_string),
            _ => None,
        })
    };
    let hex = text(3)?;
    let mut key = [0u8; 16];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((text(1)?, text(2)?, key))
}

const CHINESE: &[&str] = &[
    "你好，今天的会议改到下午三点。",
    "收到，我马上处理 👍",
    "合同已经发到邮箱了，请查收。😀",
    "周末愉快！🎉🎉",
    "这个报价太高了，能不能再优惠一点？",
    "客户说下周一来公司参观 🏢",
    "好的👌，谢谢！",
];
/// The employees of the generated records.
pub(crate) const USERS: &[&str] = &["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba"];

struct Builder<'a> {
    ctx: &'a GenCtx<'a>,
    seq: u64,
    rng: Rng,
    media: Vec<MediaSpec>,
    /// 0 for the top-level attachment; records whose media are all nested start at 1.
    next_item: u32,
}

impl Builder<'_> {
    fn media(&mut self, kind: &'static str, ext: &'static str, src: Src) -> (String, String, u64) {
        let item = self.next_item;
        self.next_item += 1;
        let sdkfileid = make_sdkfileid(&mut self.rng, self.ctx.corpid, self.seq, item);
        let md5 = (self.ctx.md5)(&src);
        self.media.push(MediaSpec { item, kind, ext, src, sdkfileid: sdkfileid.clone(), md5: md5.clone() });
        (sdkfileid, md5, src.size())
    }

    fn random_src(&mut self, lo: u64, hi: u64) -> Src {
        let size = self.rng.range(lo, hi);
        Src::Random { seed: self.rng.next_u64(), size }
    }

    fn image(&mut self) -> Value {
        let (id, md5, size) = self.media("image", "jpg", Src::Fixture(FIX_JPG));
        json!({"md5sum": md5, "filesize": size, "sdkfileid": id})
    }
    fn voice(&mut self, which: u8) -> Value {
        let (ext, src) = match which {
            0 => ("amr", FIX_AMR),
            1 => ("silk", FIX_SILK_TENCENT),
            _ => ("silk", FIX_SILK_PLAIN),
        };
        let (id, md5, size) = self.media("voice", ext, Src::Fixture(src));
        json!({"md5sum": md5, "voice_size": size, "play_length": 3, "sdkfileid": id})
    }
    fn video(&mut self) -> Value {
        let (id, md5, size) = self.media("video", "mp4", Src::Fixture(FIX_MP4));
        json!({"md5sum": md5, "filesize": size, "play_length": 1, "sdkfileid": id})
    }
    fn emotion(&mut self, gif: bool) -> Value {
        let (ext, src, t) = if gif { ("gif", FIX_GIF, 1) } else { ("png", FIX_PNG, 2) };
        let (id, md5, size) = self.media("emotion", ext, Src::Fixture(src));
        let (w, h) = if gif { (48, 32) } else { (64, 48) };
        json!({"type": t, "width": w, "height": h, "imagesize": size, "md5sum": md5, "sdkfileid": id})
    }
    fn file(&mut self, big: u64) -> Value {
        let src = if big > 0 {
            Src::Random { seed: seed_of(&[self.ctx.seed, hash_bytes(self.ctx.corpid.as_bytes()), 0xB16]), size: big }
        } else {
            self.random_src(1, 200_000)
        };
        let (id, md5, size) = self.media("file", "bin", src);
        let name = if big > 0 { "大文件-big.bin".to_string() } else { format!("报告-{}.bin", self.seq) };
        json!({"md5sum": md5, "filename": name, "fileext": "bin", "filesize": size, "sdkfileid": id})
    }

    fn user(&mut self) -> String {
        (*self.rng.pick(USERS)).to_string()
    }

    /// Items of a mixed message: `{type, content: JSON string of the payload}`.
    fn mixed_items(&mut self) -> Vec<Value> {
        let items = vec![
            ("text", json!({"content": "看看这几个文件 📎"})),
            ("image", self.image()),
            ("emotion", self.emotion(true)),
            ("file", self.file(0)),
            ("voice", self.voice(0)),
            ("video", self.video()),
        ];
        items.into_iter().map(|(t, p)| json!({"type": t, "content": p.to_string()})).collect()
    }
}

/// Serialises an ordered object.
fn ordered(fields: &[(&str, Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Value::from(*k).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

/// Filler text of at least `bytes` bytes: numbered lines of Chinese and ASCII (no character that
/// JSON escapes), different for every `salt`.
fn filler(bytes: u64, salt: u64) -> String {
    let mut s = String::with_capacity(bytes as usize + 64);
    let mut i = 0u64;
    while (s.len() as u64) < bytes {
        s.push_str(&format!("{salt}-{i:08} 很长的聊天记录 a big record 🧾 "));
        i += 1;
    }
    s
}

/// A record of `big.kind` with about `big.bytes` bytes of plaintext (no media).
fn big_record(ctx: &GenCtx<'_>, seq: u64, big: &BigRecord) -> Generated {
    let msgid = msgid_of(ctx.seed, ctx.corpid, seq);
    let msgtime = ctx.base_msgtime_ms.saturating_add(seq.saturating_sub(1).saturating_mul(ctx.step_ms));
    let head = |msgtype: &str| {
        format!(
            "{{\"msgid\":{},\"action\":\"send\",\"from\":\"zhangsan\",\"tolist\":[\"lisi\"],\"roomid\":\"\",\
             \"msgtime\":{msgtime},\"msgtype\":\"{msgtype}\"",
            json!(msgid)
        )
    };
    let (msgtype, plaintext) = match big.kind {
        BigKind::Text => {
            ("text", format!("{},\"text\":{{\"content\":\"{}\"}}}}", head("text"), filler(big.bytes, seq)))
        }
        BigKind::Chatrecord => {
            // Levels nest through `content` objects (through JSON strings the escaping would
            // double at every level); each level has one text item carrying its share.
            let depth = u64::from(big.depth.max(1));
            let share = big.bytes / depth;
            let secs = msgtime / 1000;
            let mut body = String::with_capacity(big.bytes as usize + depth as usize * 200);
            for level in 0..depth {
                body.push_str(&format!(
                    "{{\"title\":\"聊天记录 {level}\",\"item\":[{{\"type\":\"ChatRecordText\",\"msgtime\":{secs},\
                     \"content\":\"{{\\\"content\\\":\\\"{}\\\"}}\",\"from_chatroom\":false}},\
                     {{\"type\":\"chatrecord\",\"msgtime\":{secs},\"from_chatroom\":false,\"content\":",
                    filler(share, level)
                ));
            }
            body.push_str("{\"title\":\"end\",\"item\":[]}");
            body.push_str(&"}]}".repeat(depth as usize));
            ("chatrecord", format!("{},\"chatrecord\":{body}}}", head("chatrecord")))
        }
    };
    Generated { msgid, msgtype: msgtype.into(), action: "send".into(), plaintext, media: Vec::new(), hostile: None }
}

pub(crate) fn generate(ctx: &GenCtx<'_>, seq: u64) -> Generated {
    if let Some(big) = ctx.big_records.iter().find(|b| b.seq == seq) {
        return big_record(ctx, seq, big);
    }
    if ctx.hostile {
        return crate::hostile::generate(ctx, seq);
    }
    let corp_h = hash_bytes(ctx.corpid.as_bytes());
    let mut b = Builder { ctx, seq, rng: Rng::new(seed_of(&[ctx.seed, corp_h, seq])), media: Vec::new(), next_item: 0 };
    let kind = kind_in(ctx, seq);
    if matches!(kind, "chatrecord" | "mixed") {
        // Only nested media: items 1.. in document order (item 0 = a top-level attachment).
        b.next_item = 1;
    }
    let msgid = msgid_of(ctx.seed, ctx.corpid, seq);
    let msgtime = ctx.base_msgtime_ms.saturating_add(seq.saturating_sub(1).saturating_mul(ctx.step_ms));
    let secs = msgtime / 1000;

    if kind == "switch" {
        let user = b.user();
        let plaintext = ordered(&[
            ("msgid", json!(msgid)),
            ("action", json!("switch")),
            ("time", json!(msgtime)),
            ("user", json!(user)),
        ]);
        return Generated {
            msgid,
            msgtype: "switch".into(),
            action: "switch".into(),
            plaintext,
            media: Vec::new(),
            hostile: None,
        };
    }

    let from = if kind == "text_external" { format!("wb{:014x}", b.rng.next_u64() >> 8) } else { b.user() };
    let to = b.user();
    let tolist = if b.rng.chance(0.5) { json!([to]) } else { json!([to, "lisi", "wmAbCdEf0123456789"]) };
    let roomid = if b.rng.chance(0.4) { format!("wr{:016x}", b.rng.next_u64()) } else { String::new() };
    let mut action = "send";
    let mut ctl = false;
    let mut top_extra: Vec<(&str, Value)> = Vec::new();

    let (msgtype, key, payload): (&str, &str, Value) = match kind {
        "text" => ("text", "text", json!({"content": *b.rng.pick(CHINESE)})),
        "text_external" => ("text", "text", json!({"content": "您好，我是外部联系人 👋"})),
        "text_long" => {
            let mut s = String::new();
            while s.len() < 20 * 1024 + 100 {
                let p: &&str = b.rng.pick(CHINESE);
                s.push_str(p);
            }
            ("text", "text", json!({"content": s}))
        }
        "text_ctl" => {
            ctl = true;
            ("text", "text", json!({"content": "控制字符\u{1}bell\u{7}esc\u{1b}unit\u{1f}end"}))
        }
        "image" => ("image", "image", b.image()),
        "revoke" => {
            action = "recall";
            ("revoke", "revoke", json!({"pre_msgid": msgid_of(ctx.seed, ctx.corpid, seq.saturating_sub(1).max(1))}))
        }
        "agree" => ("agree", "agree", json!({"userid": "wmExternal01", "agree_time": msgtime})),
        "disagree" => ("disagree", "disagree", json!({"userid": "wmExternal01", "disagree_time": msgtime})),
        "voice_amr" => ("voice", "voice", b.voice(0)),
        "voice_silk" => ("voice", "voice", b.voice(1)),
        "voice_silk_plain" => ("voice", "voice", b.voice(2)),
        "video" => ("video", "video", b.video()),
        "card" => ("card", "card", json!({"corpname": "模拟企业", "userid": "zhangsan"})),
        "location" => (
            "location",
            "location",
            json!({"longitude": 116.397128, "latitude": 39.916527,
            "address": "北京市东城区景山前街4号", "title": "故宫博物院", "zoom": 15}),
        ),
        "emotion_gif" => ("emotion", "emotion", b.emotion(true)),
        "emotion_png" => ("emotion", "emotion", b.emotion(false)),
        "file" => {
            let big_seq = ctx.mix.map_or_else(big_file_seq, |m| m.first_file);
            let big = if seq == big_seq { ctx.big_file_bytes } else { 0 };
            ("file", "file", b.file(big))
        }
        "link" => (
            "link",
            "link",
            json!({"title": "企业微信", "description": "链接描述",
            "link_url": "https://work.weixin.qq.com/", "image_url": "https://example.invalid/a.png"}),
        ),
        "weapp" => (
            "weapp",
            "weapp",
            json!({"title": "小程序", "description": "描述",
            "username": "gh_0123456789ab@app", "displayname": "模拟小程序"}),
        ),
        "chatrecord" => {
            // Media in document order: image, video, voice, file, emotion, then the mixed ones.
            let img = b.image();
            let vid = b.video();
            let voi = b.voice(1);
            let fil = b.file(0);
            let emo = b.emotion(false);
            let mixed = b.mixed_items();
            let item = |t: &str, mt: u64, c: String, room: bool| json!({"type": t, "msgtime": mt, "content": c, "from_chatroom": room});
            let items = json!([
                item("ChatRecordText", secs, json!({"content": "聊天记录里的文字"}).to_string(), false),
                item("ChatRecordImage", msgtime, img.to_string(), true),
                item("ChatRecordVideo", secs, vid.to_string(), false),
                item("ChatRecordVoice", secs, voi.to_string(), false),
                item("ChatRecordFile", secs, fil.to_string(), false),
                item("ChatRecordEmotion", secs, emo.to_string(), false),
                item(
                    "ChatRecordLink",
                    secs,
                    json!({"title": "链接", "link_url": "https://example.invalid/"}).to_string(),
                    false
                ),
                item(
                    "ChatRecordLocation",
                    secs,
                    json!({"longitude": 121.47, "latitude": 31.23, "address": "上海", "title": "外滩", "zoom": 12})
                        .to_string(),
                    false
                ),
                item("ChatRecordMixed", secs, json!({"item": mixed}).to_string(), false),
            ]);
            ("chatrecord", "chatrecord", json!({"title": "群聊的聊天记录", "item": items}))
        }
        "todo" => ("todo", "todo", json!({"title": "待办", "content": "周五前提交报告"})),
        "vote" => (
            "vote",
            "vote",
            json!({"votetitle": "团建去哪里？", "voteitem": ["爬山", "烧烤"],
            "votetype": 101, "voteid": format!("vote{seq}")}),
        ),
        "vote_top" => {
            top_extra = vec![
                ("votetitle", json!("午饭吃什么？")),
                ("voteitem", json!(["面", "饭"])),
                ("votetype", json!(102)),
                ("voteid", json!(format!("vote{seq}"))),
            ];
            ("vote", "", Value::Null)
        }
        "collect" => (
            "collect",
            "collect",
            json!({"room_name": "项目群", "creator": "zhangsan",
            "create_time": "2026-01-01 10:00:00", "title": "报名", "details": [
            {"id": 18_446_744_073_709_551_000u64, "ques": "姓名", "type": "Text"},
            {"id": (i64::MAX as u64) + 12345, "ques": "人数", "type": "Number"}]}),
        ),
        "redpacket" => (
            "redpacket",
            "redpacket",
            json!({"type": 1, "wish": "恭喜发财，大吉大利", "totalcnt": 5, "totalamount": 10000}),
        ),
        "external_redpacket" => (
            "external_redpacket",
            "redpacket",
            json!({"type": 2, "wish": "新年快乐", "totalcnt": 1, "totalamount": 888}),
        ),
        "meeting" => (
            "meeting",
            "meeting",
            json!({"topic": "周会", "starttime": secs, "endtime": secs + 3600,
            "address": "3楼会议室", "remarks": "", "meetingtype": 102, "meetingid": 18_000_000_000_000_000_001u64, "status": 1}),
        ),
        "docmsg" => (
            "docmsg",
            "doc",
            json!({"title": "在线文档", "link_url": "https://doc.weixin.qq.com/x", "doc_creator": "zhangsan"}),
        ),
        "markdown" => ("markdown", "info", json!({"content": "# 标题\n**加粗** 与 `代码`"})),
        "news" => (
            "news",
            "info",
            json!({"item": [{"title": "新闻", "description": "摘要",
            "url": "https://example.invalid/n", "picurl": "https://example.invalid/p.jpg"}]}),
        ),
        "calendar" => (
            "calendar",
            "calendar",
            json!({"title": "日程", "creatorname": "张三",
            "attendeename": ["李四", "王五"], "starttime": secs, "endtime": secs + 1800, "place": "线上", "remarks": "记得带电脑"}),
        ),
        "mixed" => {
            let items = b.mixed_items();
            ("mixed", "mixed", json!({"item": items}))
        }
        "meeting_voice_call" => {
            let (id, _, _) = b.media("meeting_voice_call", "amr", Src::Fixture(FIX_AMR));
            top_extra = vec![("voiceid", json!(format!("voice{seq:x}")))];
            (
                "meeting_voice_call",
                "meeting_voice_call",
                json!({"endtime": secs + 60, "sdkfileid": id,
                "demofiledata": [{"filename": "共享.docx", "demooperator": "zhangsan", "starttime": secs, "endtime": secs + 30}],
                "sharescreendata": [{"share": "lisi", "starttime": secs, "endtime": secs + 10}]}),
            )
        }
        "voip_doc_share" => {
            let src = b.random_src(1000, 60_000);
            let (id, md5, size) = b.media("voip_doc_share", "bin", src);
            top_extra = vec![("voipid", json!(format!("voip{seq:x}")))];
            (
                "voip_doc_share",
                "voip_doc_share",
                json!({"filename": "共享文档.bin", "md5sum": md5, "filesize": size, "sdkfileid": id}),
            )
        }
        "sphfeed" => ("sphfeed", "sphfeed", json!({"feed_type": 4, "sph_name": "视频号", "feed_desc": "描述"})),
        "voiptext" => ("voiptext", "info", json!({"callduration": 65, "invitetype": 1})),
        "qydiskfile" => ("qydiskfile", "info", json!({"filename": "微盘文件.pdf"})),
        _ => (
            "future_type",
            "future_type",
            json!({"whatever": [1, 2, 3], "note": "a msgtype this daemon has never seen"}),
        ),
    };

    let mut fields: Vec<(&str, Value)> = vec![
        ("msgid", json!(msgid)),
        ("action", json!(action)),
        ("from", json!(from)),
        ("tolist", tolist),
        ("roomid", json!(roomid)),
        ("msgtime", json!(msgtime)),
        ("msgtype", json!(msgtype)),
    ];
    fields.extend(top_extra);
    if !key.is_empty() {
        fields.push((key, payload));
    }
    let mut plaintext = ordered(&fields);
    if ctl {
        // Raw control characters inside a string, as seen in the field (not valid JSON).
        for (esc, raw) in [("\\u0001", "\u{1}"), ("\\u0007", "\u{7}"), ("\\u001b", "\u{1b}"), ("\\u001f", "\u{1f}")] {
            plaintext = plaintext.replace(esc, raw);
        }
    }
    Generated { msgid, msgtype: msgtype.into(), action: action.into(), plaintext, media: b.media, hostile: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_md5(_: &Src) -> String {
        "00".repeat(16)
    }

    #[test]
    fn big_records_have_their_size_kind_and_depth() {
        let big = [
            BigRecord { seq: 3, bytes: 300_000, kind: BigKind::Chatrecord, depth: 100 },
            BigRecord { seq: 5, bytes: 200_000, kind: BigKind::Text, depth: 1 },
        ];
        let ctx = GenCtx {
            seed: 1,
            corpid: "wwbig",
            base_msgtime_ms: 1,
            step_ms: 1,
            big_file_bytes: 0,
            hostile: false,
            big_records: &big,
            mix: None,
            md5: &no_md5,
        };
        let chat = generate(&ctx, 3);
        assert_eq!(chat.msgtype, "chatrecord");
        assert!(chat.plaintext.len() >= 300_000 && chat.plaintext.len() < 330_000, "{}", chat.plaintext.len());
        assert_eq!(chat.plaintext.matches("\"type\":\"chatrecord\"").count(), 100);
        assert!(chat.plaintext.starts_with(&format!("{{\"msgid\":\"{}\"", msgid_of(1, "wwbig", 3))));
        let text = generate(&ctx, 5);
        assert_eq!(text.msgtype, "text");
        let v: Value = serde_json::from_str(&text.plaintext).unwrap();
        assert!(v["text"]["content"].as_str().unwrap().len() >= 200_000);
        assert_eq!(generate(&ctx, 5).plaintext, text.plaintext, "deterministic");
        assert_ne!(generate(&ctx, 4).msgtype, "", "the others are the normal cycle");
    }

    #[test]
    fn a_media_mix_has_exactly_its_counts() {
        let mix = MediaMix { image: 216, voice: 90, emotion: 81, file: 72, video: 46 };
        let m = Mix::new(&mix, 2000);
        let ctx = GenCtx {
            seed: 1,
            corpid: "wwmix",
            base_msgtime_ms: 1,
            step_ms: 1,
            big_file_bytes: 3_300_000,
            hostile: false,
            big_records: &[],
            mix: Some(&m),
            md5: &no_md5,
        };
        let mut by_kind = std::collections::BTreeMap::new();
        let mut big = 0;
        for seq in 1..=2000 {
            for media in generate(&ctx, seq).media {
                *by_kind.entry(media.kind).or_insert(0u64) += 1;
                big += u64::from(media.src.size() == 3_300_000);
            }
        }
        let want = [("emotion", 81), ("file", 72), ("image", 216), ("video", 46), ("voice", 90)];
        assert_eq!(by_kind.into_iter().collect::<Vec<_>>(), want);
        assert_eq!(big, 1, "one big file");
        assert!(m.first_file > 0 && m.kind(m.first_file) == "file");
        // Evenly spread: no 200-record window is without media.
        assert!((1..=1800).all(|s| (s..s + 200).any(|q| m.kind(q) != "text" && !PLAIN.contains(&m.kind(q)))));
    }
}
