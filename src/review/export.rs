//! Exports: messages as CSV (UTF-8 with a BOM, so that Excel reads Chinese right) or JSON Lines,
//! delivered as a ZIP archive (stored, no compression) holding the data file, `SHA256SUMS` (the
//! format `sha256sum -c SHA256SUMS` checks) and `manifest.json` (who, what, when, how many rows,
//! whether the `[review] export_max_rows` cap (or [`MAX_DATA_BYTES`]) cut it, and the data
//! file's SHA-256). Exports are built in memory, which those two caps bound.
//!
//! CSV cells that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, CR first) get
//! a leading `'` (CSV injection).

use aws_lc_rs::digest;
use serde_json::Value;

/// The most bytes of one data file: an export is built in memory (data and archive), so beyond
/// this it stops early like at `[review] export_max_rows` (the manifest says `truncated`).
pub const MAX_DATA_BYTES: usize = 128 << 20;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The CSV columns.
pub const CSV_COLUMNS: [&str; 10] =
    ["time", "msgid", "seq", "conversation", "sender", "receivers", "roomid", "msgtype", "kind", "text"];

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a BOM.
    Csv,
    /// One message JSON per line.
    Jsonl,
}

impl Format {
    /// The format named `s` (`csv` or `jsonl`).
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("csv") {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The data file's name in the archive.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Csv => "messages.csv",
            Format::Jsonl => "messages.jsonl",
        }
    }
}

/// One CSV cell, quoted, formula-safe.
fn cell(out: &mut String, value: &str) {
    out.push('"');
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

/// ISO 8601 UTC with milliseconds of a msgtime.
pub fn iso_time(ms: u64) -> String {
    let (y, m, d) = crate::media::download::utc_date(ms);
    let rem = (ms / 1000) % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60, ms % 1000)
}

/// Builds the data file from rendered messages ([`super::render::render`]) with their one-line
/// texts.
pub struct DataFile {
    format: Format,
    buf: Vec<u8>,
    rows: u64,
}

impl DataFile {
    /// An empty file (the CSV has its BOM and header).
    pub fn new(format: Format) -> Self {
        let mut buf = Vec::new();
        if format == Format::Csv {
            buf.extend_from_slice(BOM);
            let mut line = String::new();
            for (i, c) in CSV_COLUMNS.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                cell(&mut line, c);
            }
            line.push_str("\r\n");
            buf.extend_from_slice(line.as_bytes());
        }
        Self { format, buf, rows: 0 }
    }

    /// Appends one message.
    pub fn push(&mut self, message: &Value, text: &str) {
        self.rows += 1;
        match self.format {
            Format::Jsonl => {
                self.buf.extend_from_slice(message.to_string().as_bytes());
                self.buf.push(b'\n');
            }
            Format::Csv => {
                let s = |k: &str| message.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let n = |k: &str| message.get(k).and_then(Value::as_u64).unwrap_or_default();
                let receivers: Vec<&str> = message
                    .get("receivers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let values = [
                    iso_time(n("time")),
                    s("msgid"),
                    n("seq").to_string(),
                    s("conversation"),
                    s("sender"),
                    receivers.join(","),
                    s("roomid"),
                    s("msgtype"),
                    s("kind"),
                    text.to_string(),
                ];
                let mut line = String::new();
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    cell(&mut line, v);
                }
                line.push_str("\r\n");
                self.buf.extend_from_slice(line.as_bytes());
            }
        }
    }

    /// Messages pushed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the file reached [`MAX_DATA_BYTES`].
    pub fn is_full(&self) -> bool {
        self.buf.len() >= MAX_DATA_BYTES
    }

    /// The archive: the data file, `SHA256SUMS` and `manifest.json` (`manifest` gets `file`,
    /// `sha256`, `bytes`, `rows`), and the data file's SHA-256 (hex).
    pub fn finish(self, mut manifest: serde_json::Map<String, Value>) -> (Vec<u8>, String) {
        let name = self.format.file_name();
        let sha = hex(digest::digest(&digest::SHA256, &self.buf).as_ref());
        manifest.insert("file".into(), Value::from(name));
        manifest.insert("sha256".into(), Value::from(sha.clone()));
        manifest.insert("bytes".into(), Value::from(self.buf.len()));
        manifest.insert("rows".into(), Value::from(self.rows));
        let manifest = serde_json::to_vec_pretty(&Value::Object(manifest)).unwrap_or_default();
        let manifest_sha = hex(digest::digest(&digest::SHA256, &manifest).as_ref());
        let sums = format!("{sha}  {name}\n{manifest_sha}  manifest.json\n");
        let mut zip = ZipWriter::default();
        zip.add(name, &self.buf);
        zip.add("manifest.json", &manifest);
        zip.add("SHA256SUMS", sums.as_bytes());
        (zip.finish(), sha)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ZIP archive of stored (uncompressed) files, in memory (exports are capped).
#[derive(Default)]
struct ZipWriter {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl ZipWriter {
    fn add(&mut self, name: &str, data: &[u8]) {
        let crc = crc32fast::hash(data);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let offset = u32::try_from(self.out.len()).unwrap_or(u32::MAX);
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        // Version 2.0, flag bit 11 (UTF-8 names), stored, DOS time 1980-01-01 00:00.
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes());
            v.extend_from_slice(&0x0800u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&0x0021u16.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&name_len.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        self.out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut self.out);
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(data);
        self.central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        self.central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut self.central);
        self.central.extend_from_slice(&[0u8; 8]); // comment len, disk, internal attrs, external attrs (part)
        self.central.extend_from_slice(&[0u8; 2]);
        self.central.extend_from_slice(&offset.to_le_bytes());
        self.central.extend_from_slice(name.as_bytes());
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        let cd_offset = u32::try_from(self.out.len()).unwrap_or(u32::MAX);
        let cd_size = u32::try_from(self.central.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&[0u8; 4]);
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&cd_size.to_le_bytes());
        self.out.extend_from_slice(&cd_offset.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out
    }
}

/// The files of a stored ZIP made by [`DataFile::finish`] (tests and tools): name → bytes.
pub fn unzip_stored(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let u16_at = |i: usize| zip.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| zip.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    while u32_at(at)? == 0x0403_4b50 {
        let size = u32_at(at + 18)? as usize;
        let name_len = usize::from(u16_at(at + 26)?);
        let extra = usize::from(u16_at(at + 28)?);
        let name_start = at + 30;
        let name = String::from_utf8(zip.get(name_start..name_start + name_len)?.to_vec()).ok()?;
        let data_start = name_start + name_len + extra;
        let data = zip.get(data_start..data_start + size)?.to_vec();
        if crc32fast::hash(&data) != u32_at(at + 14)? {
            return None;
        }
        out.push((name, data));
        at = data_start + size;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_has_a_bom_quotes_and_no_formulas() {
        let mut f = DataFile::new(Format::Csv);
        let m =
            json!({"time": 1_700_000_000_123u64, "msgid": "m\"1", "seq": 3, "sender": "a", "receivers": ["b", "c"]});
        f.push(&m, "=HYPERLINK(\"x\")");
        let (zip, sha) = f.finish(serde_json::Map::new());
        let files = unzip_stored(&zip).unwrap();
        assert_eq!(
            files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["messages.csv", "manifest.json", "SHA256SUMS"]
        );
        let csv = &files[0].1;
        assert!(csv.starts_with(BOM));
        let text = std::str::from_utf8(&csv[3..]).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[1], "\"2023-11-14T22:13:20.123Z\",\"m\"\"1\",\"3\",\"\",\"a\",\"b,c\",\"\",\"\",\"\",\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(sha, hex(digest::digest(&digest::SHA256, csv).as_ref()));
        let sums = String::from_utf8(files[2].1.clone()).unwrap();
        assert!(sums.starts_with(&format!("{sha}  messages.csv\n")));
        let manifest: Value = serde_json::from_slice(&files[1].1).unwrap();
        assert_eq!(manifest["rows"], 1);
        assert!(sums.contains(&hex(digest::digest(&digest::SHA256, &files[1].1).as_ref())));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(Format::parse(None), Some(Format::Csv));
        assert_eq!(Format::parse(Some("xlsx")), None);
    }
}
