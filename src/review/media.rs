//! Serving a media file: HTTP Range (RFC 9110 §14: one range, 206 with `Content-Range`, 416
//! when unsatisfiable), the Content-Type from the sniffed bytes, and a Content-Disposition whose
//! original file name survives any script (RFC 6266 with an RFC 5987 `filename*`).
//!
//! The bytes come from the media root (`[media] root`) or from the object store (`[media]
//! backend = "s3"`, one ranged GET per chunk), streamed in chunks read on the blocking pool.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::media::object_store::ObjectStore;
use crate::media::sniff::{sniff, Sniffed, SNIFF_BYTES};

/// Bytes per chunk of a streamed file.
const CHUNK: u64 = 256 * 1024;

/// Where finished media files are.
#[derive(Clone, Debug)]
pub struct MediaSource {
    /// The media root (`[media] root`).
    pub root: PathBuf,
    /// The object store, with `[media] backend = "s3"`.
    pub object_store: Option<Arc<ObjectStore>>,
}

/// A byte range to serve, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never empty (a range has at least one byte); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole file (no header, a header that is not one byte range: served whole, as RFC
    /// 9110 allows).
    Whole,
    /// One satisfiable range.
    Part(ByteRange),
    /// A range outside the file: 416.
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b | a- | -n` against `size`. Several ranges, other units and
/// malformed headers give [`RangeAsk::Whole`].
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeAsk::Whole };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAsk::Whole };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| if s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match num(b) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(ByteRange { start: size.saturating_sub(n), end: size - 1 }),
            None => RangeAsk::Whole,
        },
        (false, _) => {
            let Some(start) = num(a) else { return RangeAsk::Whole };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= size {
                return RangeAsk::Unsatisfiable;
            }
            RangeAsk::Part(ByteRange { start, end: end.map_or(size - 1, |e| e.min(size - 1)) })
        }
        (true, true) => RangeAsk::Whole,
    }
}

/// `Content-Disposition: attachment` with `name`: an ASCII fallback in `filename` (non-ASCII,
/// quotes, backslashes and controls replaced by `_`) and the exact name in `filename*`
/// (RFC 5987: UTF-8, percent-encoded but for attr-chars).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' { c } else { '_' })
        .collect();
    let mut ext = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            ext.push(char::from(b));
        } else {
            ext.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{ext}")
}

/// The MIME type of sniffed bytes (`application/octet-stream` when unknown).
pub fn content_type(sniffed: Option<Sniffed>) -> &'static str {
    match sniffed {
        Some(Sniffed::Jpeg) => "image/jpeg",
        Some(Sniffed::Png) => "image/png",
        Some(Sniffed::Gif) => "image/gif",
        Some(Sniffed::Webp) => "image/webp",
        Some(Sniffed::Bmp) => "image/bmp",
        Some(Sniffed::Mp4) => "video/mp4",
        Some(Sniffed::Amr) => "audio/amr",
        Some(Sniffed::AmrWb) => "audio/amr-wb",
        Some(Sniffed::Silk) => "audio/silk",
        Some(Sniffed::Mp3) => "audio/mpeg",
        Some(Sniffed::Wav) => "audio/wav",
        Some(Sniffed::Ogg) => "audio/ogg",
        Some(Sniffed::Pdf) => "application/pdf",
        Some(Sniffed::Zip) => "application/zip",
        Some(Sniffed::Ole) => "application/x-ole-storage",
        Some(Sniffed::Rar) => "application/vnd.rar",
        Some(Sniffed::SevenZip) => "application/x-7z-compressed",
        Some(Sniffed::Gzip) => "application/gzip",
        None => "application/octet-stream",
    }
}

/// `rel` under `root`, refusing anything that could leave it (absolute paths, `..`).
pub fn under_root(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(p))
}

/// Why a file could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file is not where its row says.
    #[error("media file missing")]
    Missing,
    /// Reading it failed.
    #[error("media file: {0}")]
    Io(String),
}

/// Where the bytes of one file are read from, a chunk at a time (on the blocking pool).
enum Reader {
    /// A file under the media root.
    Local(std::fs::File),
    /// An object.
    Remote(Arc<ObjectStore>, String),
}

impl Reader {
    /// `len` bytes from `pos` (fewer only at the end).
    fn read_at(&mut self, pos: u64, len: u64) -> std::io::Result<Vec<u8>> {
        match self {
            Reader::Local(f) => {
                f.seek(SeekFrom::Start(pos))?;
                let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
                let n = read_full(f, &mut buf)?;
                buf.truncate(n);
                Ok(buf)
            }
            Reader::Remote(store, key) => {
                store.read_range(key, pos, len).map_err(|e| std::io::Error::other(e.to_string()))
            }
        }
    }
}

/// Opens the file: its reader, size and first bytes (for the type).
fn open(source: &MediaSource, rel: &str) -> Result<(Reader, u64, Vec<u8>), MediaError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => MediaError::Missing,
        _ => MediaError::Io(e.to_string()),
    };
    let (mut reader, size) = match &source.object_store {
        Some(store) => {
            let key = store.key(rel);
            let size = store.size(&key).map_err(|e| MediaError::Io(e.to_string()))?;
            (Reader::Remote(Arc::clone(store), key), size)
        }
        None => {
            let path = under_root(&source.root, rel).ok_or(MediaError::Missing)?;
            let file = std::fs::File::open(path).map_err(io)?;
            let size = file.metadata().map_err(io)?.len();
            (Reader::Local(file), size)
        }
    };
    let head = reader.read_at(0, (SNIFF_BYTES as u64).min(size)).map_err(io)?;
    Ok((reader, size, head))
}

/// The response for the file `rel` (under the media root, or in the object store), named `name`,
/// for this `Range` header: the bytes are streamed in chunks, each read (a ranged GET from the
/// object store) on the blocking pool, so a range of a large video reads only that range.
pub async fn serve(
    source: &MediaSource,
    rel: &str,
    name: &str,
    range: Option<&str>,
) -> Result<HttpResponse, MediaError> {
    let (source, rel) = (source.clone(), rel.to_string());
    let (reader, size, head) =
        web::block(move || open(&source, &rel)).await.map_err(|e| MediaError::Io(e.to_string()))??;
    let ty = content_type(sniff(&head));
    Ok(match parse_range(range, size) {
        RangeAsk::Unsatisfiable => unsatisfiable(size),
        RangeAsk::Whole => base(HttpResponse::Ok(), ty, name).body(stream(reader, 0, size)),
        RangeAsk::Part(r) => partial(ty, name, r, size).body(stream(reader, r.start, r.len())),
    })
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn base(mut b: actix_web::HttpResponseBuilder, ty: &str, name: &str) -> actix_web::HttpResponseBuilder {
    b.content_type(ty)
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(name)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    b
}

fn partial(ty: &str, name: &str, r: ByteRange, size: u64) -> actix_web::HttpResponseBuilder {
    let mut b = base(HttpResponse::PartialContent(), ty, name);
    b.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end)));
    b
}

fn unsatisfiable(size: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .finish()
}

/// `len` bytes from `start`, read in chunks on the blocking pool.
fn stream(
    reader: Reader,
    start: u64,
    len: u64,
) -> SizedStream<impl futures_core::Stream<Item = Result<web::Bytes, std::io::Error>>> {
    let s = futures_util::stream::unfold((Some(reader), start, len), |(reader, pos, left)| async move {
        let mut reader = reader?;
        if left == 0 {
            return None;
        }
        let want = left.min(CHUNK);
        let read = web::block(move || reader.read_at(pos, want).map(|buf| (reader, buf))).await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => {
                Some((Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank")), (None, pos, 0)))
            }
            Ok(Ok((reader, buf))) => {
                let n = buf.len() as u64;
                Some((Ok(web::Bytes::from(buf)), (Some(reader), pos + n, left.saturating_sub(n))))
            }
            Ok(Err(e)) => Some((Err(e), (None, pos, 0))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, pos, 0))),
        }
    });
    SizedStream::new(len, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let part = |s, e| RangeAsk::Part(ByteRange { start: s, end: e });
        assert_eq!(parse_range(None, 1000), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-99"), 1000), part(0, 99));
        assert_eq!(parse_range(Some("bytes=900-"), 1000), part(900, 999));
        assert_eq!(parse_range(Some("bytes=990-2000"), 1000), part(990, 999));
        assert_eq!(parse_range(Some("bytes=-100"), 1000), part(900, 999));
        assert_eq!(parse_range(Some("bytes=-5000"), 1000), part(0, 999));
        assert_eq!(parse_range(Some("bytes=1000-"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 1000), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 1000), RangeAsk::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 1000), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=+1-2"), 1000), RangeAsk::Whole);
        assert_eq!(part(0, 99), parse_range(Some(" bytes= 0 - 99 "), 1000));
    }

    #[test]
    fn dispositions_keep_the_name_in_filename_star() {
        assert_eq!(content_disposition("a.pdf"), "attachment; filename=\"a.pdf\"; filename*=UTF-8''a.pdf");
        assert_eq!(
            content_disposition("合同 v2\".pdf"),
            "attachment; filename=\"__ v2_.pdf\"; filename*=UTF-8''%E5%90%88%E5%90%8C%20v2%22.pdf"
        );
        assert!(!content_disposition("a\r\nSet-Cookie: x").contains('\n'));
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/m");
        assert_eq!(under_root(root, "wwa/2024/a.jpg"), Some(PathBuf::from("/m/wwa/2024/a.jpg")));
        assert_eq!(under_root(root, "../etc/passwd"), None);
        assert_eq!(under_root(root, "/etc/passwd"), None);
        assert_eq!(under_root(root, "a/../../b"), None);
        assert_eq!(under_root(root, ""), None);
        assert_eq!(content_type(sniff(b"\xff\xd8\xff\xe0")), "image/jpeg");
    }
}
