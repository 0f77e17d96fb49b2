//! Poison-batch isolation: what the writer does when a batch fails for a reason that retrying
//! the same batch can never fix (a non-retryable [`StoreError`], e.g. a msgid the schema cannot
//! hold). Without it one bad record would stall its corp forever, since the cursor only moves
//! with a committed batch.
//!
//! [`write_isolating`] stores the batch again one record at a time, in seq order (each record
//! with its media rows, its rule hits and the cursor at its seq: one transaction each, so invariant 1 holds at
//! every step). A record the database still refuses is stored as a [`quarantined`] row: a safe
//! msgid, no media rows, the complete record kept in `msgdata` and the refusal in
//! `decrypt_error`, so nothing is lost and the corp moves on. Only if that minimal row is refused
//! too, or a retryable error occurs, does the error go back to the corp (which backs off and
//! re-fetches from the committed cursor).

use super::batch::MAX_MSGID_CHARS;
use super::{BatchHits, BatchOutcome, CorpId, Fence, MediaItem, Row, Store, StoreError};

/// Prefix of `decrypt_error` for a record stored as a [`quarantined`] row.
pub const QUARANTINE_PREFIX: &str = "not stored as parsed: ";

/// Writes `rows` (sorted by seq), `media` and `hits` record by record; see the module docs. Returns the
/// summed outcome; the cursor ends at `new_cursor`.
pub async fn write_isolating(
    store: &dyn Store,
    corpid: &CorpId,
    rows: &[Row],
    media: &[MediaItem],
    hits: &BatchHits,
    new_cursor: u64,
    fence: Option<&Fence>,
) -> Result<BatchOutcome, StoreError> {
    let mut total = BatchOutcome::default();
    let mut quarantined_rows = 0u64;
    for row in rows {
        let own: Vec<MediaItem> = media.iter().filter(|m| m.seq == row.seq && m.msgid == row.msgid).cloned().collect();
        let own_hits = hits.of_record(&row.msgid, &row.msgid);
        let one = std::slice::from_ref(row);
        let outcome = match store.write_batch_with_hits(corpid, one, &own, &own_hits, row.seq, fence).await {
            Ok(o) => o,
            Err(e) if e.is_retryable() || matches!(e, StoreError::Fenced { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(seq = row.seq, error = %e, "the database refused a record; storing it quarantined");
                quarantined_rows += 1;
                // Its rule hits stay, under the msgid it is stored with.
                let q = quarantined(row, &e);
                let q_hits = hits.of_record(&row.msgid, &q.msgid);
                store.write_batch_with_hits(corpid, &[q], &[], &q_hits, row.seq, fence).await?
            }
        };
        total.inserted_rows += outcome.inserted_rows;
        total.inserted_media += outcome.inserted_media;
    }
    let last = store.write_batch_fenced(corpid, &[], &[], new_cursor, fence).await?;
    total.inserted_rows += last.inserted_rows;
    tracing::warn!(rows = rows.len(), quarantined = quarantined_rows, cursor = new_cursor, "isolated a refused batch");
    Ok(total)
}

/// The minimal form of a row the database refused: same seq, msgtype and record (`msgdata`),
/// no media (status 0), `decrypt_error` = [`QUARANTINE_PREFIX`] + the refusal, the ciphertext
/// only when the row already kept it (then `redecrypt` may retry it). The msgid is kept when it
/// is a plain id that fits, else it becomes `seq-<seq>` (unique because seq is).
pub fn quarantined(row: &Row, error: &StoreError) -> Row {
    let plain =
        !row.msgid.is_empty() && row.msgid.len() <= MAX_MSGID_CHARS && row.msgid.bytes().all(|b| b.is_ascii_graphic());
    let msgid = if plain { row.msgid.clone() } else { format!("seq-{}", row.seq) };
    let mut err = format!("{QUARANTINE_PREFIX}{error}");
    if let Some(e) = &row.decrypt_error {
        err.push_str("; ");
        err.push_str(e);
    }
    Row {
        msgid,
        publickey_ver: row.publickey_ver,
        seq: row.seq,
        action: clip(&row.action, 16),
        msgfrom: String::new(),
        tolist: String::new(),
        msgtype: clip(&row.msgtype, 32),
        msgtime: row.msgtime,
        text: String::new(),
        sdkfield: String::new(),
        msgdata: row.msgdata.clone(),
        roomid: String::new(),
        status: 0,
        decrypt_error: Some(err),
        encrypt_random_key: row.encrypt_random_key.clone(),
        encrypt_chat_msg: row.encrypt_chat_msg.clone(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        super::batch::clip(s, max).to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(msgid: &str, seq: u64) -> Row {
        Row {
            msgid: msgid.into(),
            seq,
            msgtype: "text".into(),
            msgdata: format!("{{\"msgid\":\"{msgid}\"}}"),
            msgfrom: "zhangsan".into(),
            status: 1,
            ..Row::default()
        }
    }

    #[test]
    fn a_quarantined_row_keeps_the_record_and_says_why() {
        let long = "x".repeat(300);
        let q = quarantined(&row(&long, 7), &StoreError::InvalidData("msgid too long".into()));
        assert_eq!(q.msgid, "seq-7");
        assert_eq!(q.seq, 7);
        assert_eq!(q.status, 0);
        assert_eq!(q.msgdata, format!("{{\"msgid\":\"{long}\"}}"));
        assert_eq!(q.decrypt_error.as_deref(), Some("not stored as parsed: invalid data: msgid too long"));
        let q = quarantined(&row("ok_id", 8), &StoreError::InvalidData("x".into()));
        assert_eq!(q.msgid, "ok_id");
        assert_eq!(q.msgtype, "text");
        let q = quarantined(&row("bad id\u{0}", 9), &StoreError::InvalidData("x".into()));
        assert_eq!(q.msgid, "seq-9");
    }
}
