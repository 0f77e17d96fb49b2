//! Media items of a record: the top-level attachment and the items nested in `mixed` and
//! `chatrecord` records.

use serde_json::{Map, Value};

use super::lenient::{self, str_at, u64_at};
use super::sanitize::{ext_of_filename, sanitize_ext, sanitize_file_component, MAX_FILENAME_BYTES};

/// How many levels of nested item lists are followed (a `mixed` or `chatrecord` record's own
/// list is level 1; every `ChatRecordMixed`/`mixed`/`chatrecord` item inside opens one more).
/// Deeper lists are not read: their media are not listed (the record itself is stored whole in
/// `msgdata`). Real records nest 2 levels; the walk is iterative, so the limit is about work, not
/// about the stack.
pub const MAX_NESTING_DEPTH: usize = 64;

/// What a media item is, as the record says (the bytes may say otherwise: the downloader sniffs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `image`: a JPEG (the Java version saved it as .png).
    Image,
    /// `voice`: AMR, or SILK v3.
    Voice,
    /// `video`: MP4.
    Video,
    /// `emotion`: GIF (type 1) or PNG (type 2).
    Emotion,
    /// `file`: anything.
    File,
    /// `meeting_voice_call`: audio of an undocumented format; the record has no md5/size.
    MeetingVoiceCall,
    /// `voip_doc_share`: a document shared in a call.
    VoipDocShare,
}

impl MediaKind {
    /// Every kind.
    pub const ALL: [MediaKind; 7] = [
        MediaKind::Image,
        MediaKind::Voice,
        MediaKind::Video,
        MediaKind::Emotion,
        MediaKind::File,
        MediaKind::MeetingVoiceCall,
        MediaKind::VoipDocShare,
    ];

    /// The msgtype that carries this kind (also what the `media_<corpid>` table may store).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
            MediaKind::Emotion => "emotion",
            MediaKind::File => "file",
            MediaKind::MeetingVoiceCall => "meeting_voice_call",
            MediaKind::VoipDocShare => "voip_doc_share",
        }
    }

    /// The kind whose [`as_str`](Self::as_str) is `s`.
    pub fn from_name(s: &str) -> Option<MediaKind> {
        MediaKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One downloadable media item of a record (one row of `media_<corpid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// 0 = the top-level attachment; 1.. = nested items in document order (depth-first).
    pub item: u32,
    /// What the record says it is.
    pub kind: MediaKind,
    /// The id to download it with (non-empty; exactly as in the record).
    pub sdkfileid: String,
    /// Lowercase hex MD5 the record announces; `None` when absent, empty or not 32 hex digits.
    pub md5sum: Option<String>,
    /// `filesize` / `voice_size` / `imagesize`; `None` when absent.
    pub size: Option<u64>,
    /// The extension the record suggests, safe for a path (`[a-z0-9]{1,16}`): `jpg` for images,
    /// `amr` for voice, `mp4` for video, `gif`/`png` for emotions by type (1 gif, 2 png, else
    /// gif), for files the `fileext` if it is a plain extension, else the filename's, else
    /// `bin`; for voip_doc_share the filename's (else `fileext`, else `bin`); `bin` for
    /// meeting_voice_call. The downloader sniffs the bytes anyway.
    pub ext_hint: String,
    /// The record's `filename` (files, voip_doc_share, and nested items of unknown types that
    /// carry one), sanitised with [`sanitize_file_component`] to at most [`MAX_FILENAME_BYTES`].
    pub filename: Option<String>,
    /// `play_length` in seconds (voice, video).
    pub play_length: Option<u32>,
}

/// The media item of `payload` (the object under the msgtype's payload key, or a nested item's
/// parsed `content`), if it carries a non-blank `sdkfileid`.
pub(crate) fn media_ref(item: u32, kind: MediaKind, payload: &Map<String, Value>) -> Option<MediaRef> {
    let sdkfileid = str_at(payload, "sdkfileid").filter(|s| !s.trim().is_empty())?.to_string();
    let md5sum = str_at(payload, "md5sum")
        .map(str::trim)
        .filter(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    let size = ["filesize", "voice_size", "imagesize"].iter().find_map(|k| u64_at(payload, k));
    let play_length = u64_at(payload, "play_length").and_then(|p| u32::try_from(p).ok());
    let raw_name = str_at(payload, "filename");
    let filename = match kind {
        MediaKind::File | MediaKind::VoipDocShare => {
            raw_name.map(|n| sanitize_file_component(n, MAX_FILENAME_BYTES)).filter(|n| !n.is_empty())
        }
        _ => None,
    };
    let fileext = || str_at(payload, "fileext").and_then(sanitize_ext);
    let from_name = || raw_name.and_then(ext_of_filename);
    let ext_hint = match kind {
        MediaKind::Image => "jpg".to_string(),
        MediaKind::Voice => "amr".to_string(),
        MediaKind::Video => "mp4".to_string(),
        MediaKind::Emotion if u64_at(payload, "type") == Some(2) => "png".to_string(),
        MediaKind::Emotion => "gif".to_string(),
        MediaKind::File => fileext().or_else(from_name).unwrap_or_else(|| "bin".to_string()),
        MediaKind::VoipDocShare => from_name().or_else(fileext).unwrap_or_else(|| "bin".to_string()),
        MediaKind::MeetingVoiceCall => "bin".to_string(),
    };
    Some(MediaRef { item, kind, sdkfileid, md5sum, size, ext_hint, filename, play_length })
}

/// The msgtype a nested item's `type` stands for: `ChatRecordImage` → `image`,
/// `ChatRecordMixed` → `mixed`, `image` → `image` (case-insensitive).
fn nested_msgtype(ty: &str) -> String {
    let lower = ty.trim().to_ascii_lowercase();
    match lower.strip_prefix("chatrecord") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => lower,
    }
}

/// A nested item's payload: its `content`, a JSON string (or, tolerated, an object).
fn nested_payload(content: Option<Value>) -> Option<Map<String, Value>> {
    match content? {
        Value::String(s) => match lenient::parse(&s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Appends the media of a nested item list (`mixed.item` or `chatrecord.item`) to `media`,
/// depth-first in document order, numbering them from `*next_item`. Iterative: hostile nesting
/// costs neither stack nor more than [`MAX_NESTING_DEPTH`] levels of work.
///
/// Nested items of a known media type become that kind; items of another type (text, link,
/// location, an unknown one…) that still carry a `sdkfileid` become [`MediaKind::File`], so that
/// nothing downloadable is dropped.
pub(crate) fn walk_nested(items: Vec<Value>, next_item: &mut u32, media: &mut Vec<MediaRef>) {
    let mut stack: Vec<std::vec::IntoIter<Value>> = vec![items.into_iter()];
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.next() else {
            stack.pop();
            continue;
        };
        let Value::Object(mut entry) = entry else { continue };
        let msgtype = nested_msgtype(str_at(&entry, "type").unwrap_or_default());
        let Some(mut payload) = nested_payload(entry.remove("content")) else { continue };
        if matches!(msgtype.as_str(), "mixed" | "chatrecord") {
            if stack.len() < MAX_NESTING_DEPTH {
                if let Some(Value::Array(inner)) = payload.remove("item") {
                    stack.push(inner.into_iter());
                }
            }
            continue;
        }
        let kind = MediaKind::from_name(&msgtype).unwrap_or(MediaKind::File);
        if let Some(m) = media_ref(*next_item, kind, &payload) {
            media.push(m);
            *next_item = next_item.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nesting_stops_at_the_limit() {
        let mut inner = json!([]);
        for level in (0..100).rev() {
            inner = json!([
                {"type": "image", "content": json!({"sdkfileid": format!("L{level}")}).to_string()},
                {"type": "ChatRecordMixed", "content": {"item": inner}},
            ]);
        }
        let Value::Array(items) = inner else { panic!("an array") };
        let (mut media, mut next) = (Vec::new(), 1);
        walk_nested(items, &mut next, &mut media);
        assert_eq!(media.len(), MAX_NESTING_DEPTH);
        assert_eq!(media.last().map(|m| m.sdkfileid.clone()), Some(format!("L{}", MAX_NESTING_DEPTH - 1)));
        assert_eq!(next as usize, MAX_NESTING_DEPTH + 1);
    }

    #[test]
    fn nested_type_names() {
        assert_eq!(nested_msgtype("ChatRecordImage"), "image");
        assert_eq!(nested_msgtype("ChatRecordMixed"), "mixed");
        assert_eq!(nested_msgtype("chatrecord"), "chatrecord");
        assert_eq!(nested_msgtype("ChatRecordChatRecord"), "chatrecord");
        assert_eq!(nested_msgtype(" voice "), "voice");
        for k in MediaKind::ALL {
            assert_eq!(MediaKind::from_name(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
    }
}
