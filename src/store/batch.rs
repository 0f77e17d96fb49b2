//! What a batch write does before and around its SQL, the same for both dialects: checking and
//! cutting the rows ([`chunks`] by count and bytes), renaming msgids stored under another seq
//! ([`renamed_duplicates`]), and the media rows to insert ([`MediaInsert`]). The statements and
//! their execution are in `batch_sql`.

use std::collections::HashMap;

use super::{MediaItem, MediaRef, Row, StoreError, MEDIA_HELD};

/// Rows per multi-row INSERT statement (16 parameters per message row: far below SQLite's 32,766
/// and MySQL's 65,535 bind parameters). The bytes per statement come from
/// [`Limits`](super::Limits).
pub(super) const CHUNK_ROWS: usize = 500;

/// Splits `items` into chunks of at most [`CHUNK_ROWS`] items and `budget` bytes (an item
/// larger than the budget alone).
pub(super) fn chunks<T>(items: &[T], size: impl Fn(&T) -> usize, budget: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if i > start && (i - start >= CHUNK_ROWS || bytes + s > budget) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

pub(super) fn row_bytes(r: &Row) -> usize {
    r.msgid.len()
        + r.action.len()
        + r.msgfrom.len()
        + r.tolist.len()
        + r.msgtype.len()
        + r.text.len()
        + r.sdkfield.len()
        + r.msgdata.len()
        + r.roomid.len()
        + r.decrypt_error.as_ref().map_or(0, String::len)
        + r.encrypt_random_key.as_ref().map_or(0, String::len)
        + r.encrypt_chat_msg.as_ref().map_or(0, String::len)
        + 64
}

/// Rows of a batch whose msgid is already stored under another seq, renamed so that they are
/// stored too, with the media list to insert in their place; `None` when there is no such row.
///
/// WeCom msgids are unique, so a second record under a stored msgid comes from a broken or
/// hostile server; dropping it (what INSERT IGNORE alone would do) would lose a message. The
/// renamed row gets `msgid~dup<seq>` (cut to fit the column) and a `decrypt_error` naming the
/// first seq; its media items follow it. A record stored again at the SAME seq (a re-pull) is
/// not a duplicate. `stored` maps the batch's msgids to the seq stored under each.
pub(super) fn renamed_duplicates(
    rows: &[Row],
    media: &[MediaItem],
    stored: &HashMap<String, u64>,
) -> Option<(Vec<Row>, Vec<MediaItem>)> {
    let mut renamed: HashMap<u64, String> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let Some(&first) = stored.get(&r.msgid) else { continue };
        if first == r.seq {
            continue;
        }
        let suffix = format!("~dup{}", r.seq);
        let keep = MAX_MSGID_CHARS.saturating_sub(suffix.chars().count());
        let msgid: String = r.msgid.chars().take(keep).chain(suffix.chars()).collect();
        let note = format!("duplicate msgid {}: first stored at seq {first}, this record kept as {msgid}", r.msgid);
        let mut row = r.clone();
        row.decrypt_error = Some(match &r.decrypt_error {
            Some(e) => format!("{e}; {note}"),
            None => note,
        });
        row.msgid.clone_from(&msgid);
        renamed.insert(r.seq, msgid);
        out.push(row);
    }
    if out.is_empty() {
        return None;
    }
    let media = media
        .iter()
        .map(|m| match renamed.get(&m.seq) {
            Some(new) => MediaItem { msgid: new.clone(), ..m.clone() },
            None => m.clone(),
        })
        .collect();
    Some((out, media))
}

/// Longest msgid the schema holds (VARCHAR(128)); a longer one is refused rather than truncated
/// (MySQL's INSERT IGNORE would truncate it silently and break uniqueness).
pub(super) const MAX_MSGID_CHARS: usize = 128;

pub(super) fn check_rows(rows: &[Row], media: &[MediaItem]) -> Result<(), StoreError> {
    let long = rows
        .iter()
        .map(|r| &r.msgid)
        .chain(media.iter().map(|m| &m.msgid))
        .find(|id| id.chars().count() > MAX_MSGID_CHARS);
    match long {
        Some(id) => Err(StoreError::InvalidData(format!(
            "msgid of {} characters (at most {MAX_MSGID_CHARS}): {}…",
            id.chars().count(),
            id.chars().take(40).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// `s` cut to at most `max` characters (for short descriptive columns such as ext, filename).
pub(super) fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One media row to insert, from a [`MediaItem`] or from a Java-era message row.
pub(super) struct MediaInsert<'a> {
    pub msgid: &'a str,
    pub seq: u64,
    pub item: u32,
    pub kind: &'a str,
    pub sdkfileid: &'a str,
    pub md5: Option<&'a str>,
    pub size: Option<u64>,
    pub ext: &'a str,
    pub filename: Option<&'a str>,
    pub play_length: Option<u32>,
    pub status: u8,
    pub path: Option<&'a str>,
}

impl<'a> MediaInsert<'a> {
    /// A pending (status 1) media row.
    pub fn pending(msgid: &'a str, seq: u64, m: &'a MediaRef) -> Self {
        Self {
            msgid,
            seq,
            item: m.item,
            kind: m.kind.as_str(),
            sdkfileid: &m.sdkfileid,
            md5: m.md5sum.as_deref().filter(|s| s.len() <= 32),
            size: m.size,
            ext: clip(&m.ext_hint, 16),
            filename: m.filename.as_deref().map(|f| clip(f, 255)),
            play_length: m.play_length,
            status: 1,
            path: None,
        }
    }

    /// Held ([`MEDIA_HELD`]) instead of pending when `hold`.
    pub fn held_if(mut self, hold: bool) -> Self {
        if hold {
            self.status = MEDIA_HELD;
        }
        self
    }

    pub fn bytes(&self) -> usize {
        self.msgid.len() + self.sdkfileid.len() + self.filename.map_or(0, str::len) + self.path.map_or(0, str::len) + 64
    }
}

pub(super) const MEDIA_COLUMNS: &str =
    "msgid, item, seq, kind, sdkfileid, md5, size, ext, filename, play_length, status, path";

pub(super) const ROW_COLUMNS: &str =
    "msgid, publickey_ver, seq, action, msgfrom, tolist, msgtype, msgtime, text, sdkfield, \
     msgdata, status, roomid, decrypt_error, encrypt_random_key, encrypt_chat_msg";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_renamed_within_the_column_and_take_their_media() {
        let row = |msgid: &str, seq: u64| Row { msgid: msgid.into(), seq, ..Row::default() };
        let media_ref = MediaRef {
            item: 0,
            kind: crate::message::MediaKind::Image,
            sdkfileid: "F".into(),
            md5sum: None,
            size: None,
            ext_hint: String::new(),
            filename: None,
            play_length: None,
        };
        let long = "m".repeat(MAX_MSGID_CHARS);
        let rows = [row("a", 1), row("a", 2), row(&long, 3), row("b", 4)];
        let item = |msgid: &str, seq: u64| MediaItem { msgid: msgid.into(), seq, media: media_ref.clone() };
        let media = vec![item("a", 2), item("b", 4)];
        let stored = HashMap::from([("a".to_string(), 1), (long.clone(), 9)]);
        let (dups, media) = renamed_duplicates(&rows, &media, &stored).unwrap();
        let ids: Vec<&str> = dups.iter().map(|r| r.msgid.as_str()).collect();
        let cut = format!("{}~dup3", &long[..MAX_MSGID_CHARS - 5]);
        assert_eq!(ids, ["a~dup2", cut.as_str()]);
        assert_eq!(cut.chars().count(), MAX_MSGID_CHARS);
        assert!(dups[0].decrypt_error.as_deref().is_some_and(|e| e.contains("first stored at seq 1")));
        let media_ids: Vec<(&str, u64)> = media.iter().map(|m| (m.msgid.as_str(), m.seq)).collect();
        assert_eq!(media_ids, [("a~dup2", 2), ("b", 4)]);
        // Nothing stored under another seq: nothing to do.
        assert!(renamed_duplicates(&rows[..1], &[], &HashMap::from([("a".into(), 1)])).is_none());
    }

    #[test]
    fn chunking_respects_count_and_bytes() {
        let v: Vec<usize> = vec![1; 1201];
        let c = chunks(&v, |x| *x, 1 << 20);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![500, 500, 201]);
        let big: Vec<usize> = vec![1000; 3];
        assert_eq!(chunks(&big, |x| *x, 1000).len(), 3);
        assert_eq!(chunks(&big, |x| *x, 2000).len(), 2);
        assert!(chunks::<usize>(&[], |x| *x, 1).is_empty());
        assert_eq!(clip("ab中文", 3), "ab中");
        assert_eq!(clip("ab", 3), "ab");
    }
}
