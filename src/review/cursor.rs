//! Opaque tokens of the review API: page cursors and conversation keys.
//!
//! A cursor is the base64url (no padding) of a small JSON value: the position after which the
//! next page starts (a timeline's `(msgtime, seq)`, a list's sort key, a search's offset). It
//! names a position, not a page number, so pages stay stable while rows are added. A token that
//! does not decode answers 400.
//!
//! A conversation key is the base64url of the search index's conversation key (`room:<roomid>`
//! or `pair:<a>|<b>`, [`crate::search::index::conversation_key`]): the same conversation in the
//! timeline, the lists and the search hits, safe in a URL path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::TimelinePos;

/// The longest token accepted (a search cursor holds at most a page of (corp, seq) pairs).
const MAX_TOKEN: usize = 16 * 1024;

/// `value` as an opaque token.
pub fn encode<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The value of a token made by [`encode`]; `None` when it is not one.
pub fn decode<T: DeserializeOwned>(token: &str) -> Option<T> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A timeline cursor: `(msgtime, seq)`.
pub fn timeline(pos: TimelinePos) -> String {
    encode(&(pos.msgtime, pos.seq))
}

/// The position of a timeline cursor. Values are clamped to 2^63-1: SQLite compares its
/// two's-complement u64s as signed, and no real msgtime or seq comes near.
pub fn timeline_pos(token: &str) -> Option<TimelinePos> {
    const MAX: u64 = i64::MAX as u64;
    decode::<(u64, u64)>(token).map(|(msgtime, seq)| TimelinePos { msgtime: msgtime.min(MAX), seq: seq.min(MAX) })
}

/// A conversation as its key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvKey {
    /// A group chat.
    Room(String),
    /// A chat outside groups among these ids (sorted, distinct; two for a one-to-one chat).
    Pair(Vec<String>),
    /// The rows that could not be read at all (no sender, no conversation of their own): shown
    /// to reviewers of the whole corp only.
    Undecryptable,
}

/// The raw key of [`ConvKey::Undecryptable`].
const UNDECRYPTABLE: &str = "undecryptable:";

impl ConvKey {
    /// The key of the search index's conversation key `raw`.
    pub fn from_raw(raw: &str) -> Option<Self> {
        if raw == UNDECRYPTABLE {
            return Some(ConvKey::Undecryptable);
        }
        if let Some(room) = raw.strip_prefix("room:") {
            return (!room.is_empty()).then(|| ConvKey::Room(room.to_string()));
        }
        let people: Vec<String> = raw.strip_prefix("pair:")?.split('|').map(str::to_string).collect();
        if people.iter().any(String::is_empty) {
            return None;
        }
        let mut sorted = people.clone();
        sorted.sort();
        sorted.dedup();
        (sorted == people).then_some(ConvKey::Pair(people))
    }

    /// The search index's conversation key.
    pub fn raw(&self) -> String {
        match self {
            ConvKey::Room(r) => crate::search::index::room_key(r),
            ConvKey::Pair(p) => format!("pair:{}", p.join("|")),
            ConvKey::Undecryptable => UNDECRYPTABLE.to_string(),
        }
    }

    /// The API token.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.raw())
    }

    /// The key of an API token.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
        Self::from_raw(&raw)
    }

    /// `"group"` or `"direct"` (a chat outside groups; `people` says with whom).
    pub fn kind(&self) -> &'static str {
        match self {
            ConvKey::Room(_) => "group",
            ConvKey::Pair(_) => "direct",
            ConvKey::Undecryptable => "undecryptable",
        }
    }
}

/// The API token of the conversation of a row (`roomid`, `msgfrom`, `tolist`).
pub fn conversation_token(roomid: &str, from: &str, tolist: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::search::index::conversation_key(roomid, from, tolist))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_cursors_round_trip_and_refuse_garbage() {
        let p = TimelinePos { msgtime: 1_700_000_000_123, seq: 42 };
        assert_eq!(timeline_pos(&timeline(p)), Some(p));
        let far = TimelinePos { msgtime: u64::MAX, seq: u64::MAX };
        assert_eq!(timeline_pos(&timeline(far)), Some(TimelinePos { msgtime: i64::MAX as u64, seq: i64::MAX as u64 }));
        assert_eq!(timeline(p), timeline(p), "stable");
        assert_eq!(timeline_pos("!!"), None);
        assert_eq!(timeline_pos(&encode(&"x")), None);
        assert_eq!(timeline_pos(&"A".repeat(20_000)), None);
    }

    #[test]
    fn conversation_keys_round_trip() {
        let room = ConvKey::Room("wrABC".into());
        assert_eq!(ConvKey::from_token(&room.token()), Some(room.clone()));
        assert_eq!(room.raw(), "room:wrABC");
        let pair = ConvKey::from_raw("pair:lisi|zhangsan").unwrap();
        assert_eq!(pair, ConvKey::Pair(vec!["lisi".into(), "zhangsan".into()]));
        assert_eq!(ConvKey::from_token(&conversation_token("", "zhangsan", "lisi")), Some(pair.clone()));
        assert_eq!(ConvKey::from_token(&pair.token()), Some(pair));
        // Not sorted, empty parts, other prefixes: not keys.
        assert_eq!(ConvKey::from_raw("pair:zhangsan|lisi"), None);
        assert_eq!(ConvKey::from_raw("pair:a||b"), None);
        assert_eq!(ConvKey::from_raw("room:"), None);
        assert_eq!(ConvKey::from_raw("x"), None);
        assert!(!room.token().contains(['/', '+', '=']));
        assert_eq!(ConvKey::from_token(&ConvKey::Undecryptable.token()), Some(ConvKey::Undecryptable));
    }
}
