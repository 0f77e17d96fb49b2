//! Values too large for one statement: the byte limits a store works to ([`Limits`]) and the
//! moving of oversized column values into the `message_part` side table ([`spill`]).
//!
//! MySQL and MariaDB refuse (and drop the connection on) any packet above `max_allowed_packet`
//! (16 MiB by default on MariaDB, read per connection at connect), and a result row above it
//! cannot be read back either; SQLite refuses a value above `SQLITE_MAX_LENGTH` (10^9 bytes).
//! So every statement the batch write sends stays well under the packet:
//! - multi-row INSERTs are cut by bytes as well as by rows ([`Limits::statement_bytes`]);
//! - a row whose values add up to more than [`Limits::row_bytes`] (or a value longer than its
//!   MySQL column holds) keeps its msgid, seq and metadata, and each of its largest columns
//!   (`msgdata`, `text`, `tolist`, `encrypt_chat_msg`, `sdkfield`, `encrypt_random_key`) is
//!   replaced, until the row
//!   fits, by a marker: `{"wwmsgaudit_part":{"table":"message_part","column":"msgdata",
//!   "bytes":31457514,"parts":8}}`. The value itself goes, cut into parts of at most
//!   [`Limits::part_bytes`], into `message_part (corpid, seq, col, part, data)`, in the same
//!   transaction as the row. [`BatchRepo::read_message`](super::BatchRepo::read_message) gives the
//!   value back whole.
//!
//! A column holds a marker only if it starts with [`MARKER_PREFIX`] AND its parts exist: a
//! record whose own text happens to look like a marker reads back as it is.

use super::batch::row_bytes;
use super::{Row, StoreError};

/// The start of a marker (a JSON object, so that a consumer parsing `msgdata` still can).
pub const MARKER_PREFIX: &str = "{\"wwmsgaudit_part\":";

/// The side table.
pub const PART_TABLE: &str = "message_part";

/// SQLite's default `SQLITE_MAX_LENGTH`: the largest string or blob, and row.
pub const SQLITE_MAX_LENGTH: u64 = 1_000_000_000;

/// Bound bytes per multi-row statement at most (whatever the packet): big statements buy
/// nothing and hold the server's memory.
const STATEMENT_CAP: usize = 3 << 20;
/// A row larger than this spills, whatever the packet.
const ROW_CAP: usize = 8 << 20;
/// Parts are at most this long, whatever the packet.
const PART_CAP: usize = 4 << 20;

/// Values up to this size are never spilled (a marker is about as long).
const MIN_SPILL: usize = 256;

/// The byte limits of a store's statements, from the packet size the database accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest packet (MySQL `max_allowed_packet`) or value (SQLite) the database accepts.
    pub packet: u64,
    /// MySQL column types cap `text`/`tolist` (MEDIUMTEXT) and `sdkfield`/`encrypt_random_key`
    /// (TEXT): longer values spill instead of being cut by `INSERT IGNORE`.
    pub column_caps: bool,
}

impl Limits {
    /// MySQL, MariaDB, TiDB with this `max_allowed_packet`.
    pub fn mysql(max_allowed_packet: u64) -> Self {
        Self { packet: max_allowed_packet, column_caps: true }
    }

    /// SQLite (`SQLITE_MAX_LENGTH`).
    pub fn sqlite() -> Self {
        Self { packet: SQLITE_MAX_LENGTH, column_caps: false }
    }

    fn quarter(&self) -> usize {
        usize::try_from(self.packet / 4).unwrap_or(usize::MAX).max(MIN_SPILL)
    }

    /// Bound bytes of one multi-row INSERT (a single larger row goes alone).
    pub fn statement_bytes(&self) -> usize {
        self.quarter().min(STATEMENT_CAP)
    }

    /// The largest row stored as it is.
    pub fn row_bytes(&self) -> usize {
        self.quarter().min(ROW_CAP)
    }

    /// The largest part of a spilled value.
    pub fn part_bytes(&self) -> usize {
        self.quarter().min(PART_CAP)
    }

    /// What the column holds at most (MySQL types), `usize::MAX` when unbounded.
    fn column_cap(&self, column: &str) -> usize {
        match (self.column_caps, column) {
            (true, "text" | "tolist") => 16_777_215,
            (true, "sdkfield" | "encrypt_random_key") => 65_535,
            _ => usize::MAX,
        }
    }
}

/// One part of a spilled value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    pub seq: u64,
    pub column: &'static str,
    pub part: u32,
    pub data: &'a [u8],
}

/// The marker that stands for a value of `bytes` bytes in `parts` parts of `column`.
pub fn marker(column: &str, bytes: usize, parts: usize) -> String {
    format!(
        "{MARKER_PREFIX}{{\"table\":\"{PART_TABLE}\",\"column\":\"{column}\",\"bytes\":{bytes},\"parts\":{parts}}}}}"
    )
}

/// What a marker says: (column, bytes, parts); `None` for any other text.
pub fn parse_marker(value: &str) -> Option<(String, u64, u32)> {
    if !value.starts_with(MARKER_PREFIX) || value.len() > 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    let m = v.get("wwmsgaudit_part")?;
    Some((
        m.get("column")?.as_str()?.to_string(),
        m.get("bytes")?.as_u64()?,
        u32::try_from(m.get("parts")?.as_u64()?).ok()?,
    ))
}

/// The spillable columns of a row, by name.
fn columns(r: &Row) -> [(&'static str, &str); 6] {
    [
        ("msgdata", r.msgdata.as_str()),
        ("text", r.text.as_str()),
        ("tolist", r.tolist.as_str()),
        ("encrypt_chat_msg", r.encrypt_chat_msg.as_deref().unwrap_or("")),
        ("sdkfield", r.sdkfield.as_str()),
        ("encrypt_random_key", r.encrypt_random_key.as_deref().unwrap_or("")),
    ]
}

fn set_column(r: &mut Row, column: &str, value: String) {
    match column {
        "msgdata" => r.msgdata = value,
        "text" => r.text = value,
        "tolist" => r.tolist = value,
        "encrypt_chat_msg" => r.encrypt_chat_msg = Some(value),
        "encrypt_random_key" => r.encrypt_random_key = Some(value),
        _ => r.sdkfield = value,
    }
}

/// `rows` as they can be stored under `limits`: `None` when every row fits as it is, else the
/// rows with their oversized columns replaced by markers; and the parts to store beside them.
pub(crate) fn spill<'a>(rows: &'a [Row], limits: &Limits) -> (Option<Vec<Row>>, Vec<Part<'a>>) {
    let mut out: Option<Vec<Row>> = None;
    let mut parts = Vec::new();
    let part_bytes = limits.part_bytes();
    for (i, r) in rows.iter().enumerate() {
        let cols = columns(r);
        let mut spilled = [false; 6];
        let mut size = row_bytes(r);
        for (k, (name, value)) in cols.iter().enumerate() {
            if value.len() > limits.column_cap(name).max(MIN_SPILL) {
                spilled[k] = true;
                size -= value.len();
            }
        }
        while size > limits.row_bytes() {
            let largest = (0..cols.len())
                .filter(|&k| !spilled[k] && cols[k].1.len() > MIN_SPILL)
                .max_by_key(|&k| cols[k].1.len());
            let Some(k) = largest else { break };
            spilled[k] = true;
            size -= cols[k].1.len();
        }
        if !spilled.contains(&true) {
            if let Some(o) = out.as_mut() {
                o.push(r.clone());
            }
            continue;
        }
        let o = out.get_or_insert_with(|| rows[..i].to_vec());
        let mut row = r.clone();
        for (k, (name, value)) in cols.iter().enumerate() {
            if spilled[k] {
                let chunks: Vec<&[u8]> = value.as_bytes().chunks(part_bytes).collect();
                set_column(&mut row, name, marker(name, value.len(), chunks.len()));
                parts.extend(chunks.into_iter().enumerate().map(|(n, data)| Part {
                    seq: r.seq,
                    column: name,
                    part: u32::try_from(n).unwrap_or(u32::MAX),
                    data,
                }));
            }
        }
        o.push(row);
    }
    (out, parts)
}

/// Puts the value of a marker back together from its parts (in part order); the value itself
/// when `parts` is empty (no marker after all).
pub(crate) fn reassemble(value: String, parts: Vec<Vec<u8>>, column: &str) -> Result<String, StoreError> {
    let Some((_, bytes, count)) = parse_marker(&value) else { return Ok(value) };
    if parts.is_empty() {
        return Ok(value);
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    if parts.len() != count as usize || total as u64 != bytes {
        return Err(StoreError::InvalidData(format!(
            "{PART_TABLE}: {column} has {} parts of {total} bytes, its marker says {count} parts of {bytes} bytes",
            parts.len()
        )));
    }
    String::from_utf8(parts.concat())
        .map_err(|e| StoreError::InvalidData(format!("{PART_TABLE}: {column} is not UTF-8 once reassembled: {e}")))
}

/// The columns of `row` that hold a marker (candidates for reassembly).
pub(crate) fn marked_columns(row: &Row) -> Vec<&'static str> {
    columns(row).into_iter().filter(|(_, v)| v.starts_with(MARKER_PREFIX)).map(|(n, _)| n).collect()
}

/// Takes the value of `column` out of `row`.
pub(crate) fn take_column(row: &mut Row, column: &str) -> String {
    match column {
        "msgdata" => std::mem::take(&mut row.msgdata),
        "text" => std::mem::take(&mut row.text),
        "tolist" => std::mem::take(&mut row.tolist),
        "encrypt_chat_msg" => row.encrypt_chat_msg.take().unwrap_or_default(),
        "encrypt_random_key" => row.encrypt_random_key.take().unwrap_or_default(),
        _ => std::mem::take(&mut row.sdkfield),
    }
}

/// Replaces `column` of `row` with `value`.
pub(crate) fn put_column(row: &mut Row, column: &str, value: String) {
    set_column(row, column, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64, msgdata: String, text: String) -> Row {
        Row { msgid: format!("m{seq}"), seq, msgtype: "text".into(), msgdata, text, ..Row::default() }
    }

    #[test]
    fn limits_follow_the_packet_with_margins() {
        let m = Limits::mysql(16 << 20);
        assert_eq!((m.statement_bytes(), m.row_bytes(), m.part_bytes()), (3 << 20, 4 << 20, 4 << 20));
        let s = Limits::sqlite();
        assert_eq!((s.statement_bytes(), s.row_bytes(), s.part_bytes()), (3 << 20, 8 << 20, 4 << 20));
        let tiny = Limits::mysql(1024);
        assert_eq!(tiny.part_bytes(), 256, "never below the smallest spilled value");
    }

    #[test]
    fn only_oversized_rows_spill_their_largest_columns() {
        let limits = Limits::mysql(64 << 10);
        let big = "大".repeat(20_000); // 60,000 bytes
        let rows =
            vec![row(1, "{}".into(), "a".into()), row(2, big.clone(), "b".into()), row(3, "{}".into(), big.clone())];
        let (spilled, parts) = spill(&rows, &limits);
        let spilled = spilled.unwrap();
        assert_eq!(spilled[0], rows[0]);
        assert_eq!(spilled[1].msgdata, marker("msgdata", big.len(), 4));
        assert_eq!(spilled[1].text, "b");
        assert_eq!(spilled[2].text, marker("text", big.len(), 4));
        assert_eq!(parse_marker(&spilled[2].text), Some(("text".into(), big.len() as u64, 4)));
        assert_eq!(parts.len(), 8);
        assert!(parts.iter().all(|p| p.data.len() <= 16 << 10));
        let text_parts: Vec<Vec<u8>> = parts.iter().filter(|p| p.seq == 3).map(|p| p.data.to_vec()).collect();
        assert_eq!(reassemble(spilled[2].text.clone(), text_parts, "text").unwrap(), big);
        // Nothing to do: no copy.
        assert!(spill(&rows[..1], &limits).0.is_none());
        // A marker without parts is the value itself; parts that do not add up are an error.
        let fake = marker("msgdata", 5, 1);
        assert_eq!(reassemble(fake.clone(), Vec::new(), "msgdata").unwrap(), fake);
        assert!(reassemble(fake, vec![b"abc".to_vec()], "msgdata").is_err());
    }

    #[test]
    fn mysql_column_caps_spill_even_a_small_row() {
        let r = Row { sdkfield: "x".repeat(70_000), ..row(1, "{}".into(), String::new()) };
        let (spilled, parts) = spill(std::slice::from_ref(&r), &Limits::mysql(1 << 30));
        assert!(spilled.unwrap()[0].sdkfield.starts_with(MARKER_PREFIX));
        assert_eq!(parts.len(), 1);
        assert!(spill(std::slice::from_ref(&r), &Limits::sqlite()).0.is_none());
    }
}
