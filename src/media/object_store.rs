//! Media in S3-compatible object storage (`[media] backend = "s3"`: AWS S3, MinIO, Aliyun OSS,
//! Tencent COS…) through OpenDAL.
//!
//! The download/verify/transcode pipeline is the same as for the file system: a media worker
//! downloads into the media root, verifies size and MD5, transcodes voice beside it, then
//! [`ObjectStore::upload_file`] streams each file up (multipart in [`PART_BYTES`] parts: a file is
//! never held in memory), checks the stored size, and the local copies are deleted. The object
//! key is `<prefix><relative path>`, and that key is what `media_path` holds.
//!
//! OpenDAL is async; a media worker is a plain thread, so each [`ObjectStore`] owns a small
//! current-thread runtime to drive it.

use std::io::Read;
use std::path::Path;

use crate::secret::Secret;

/// Multipart part size (S3's minimum is 5 MiB, except for the last part).
pub const PART_BYTES: usize = 5 << 20;

/// Where the objects go.
#[derive(Clone, Default)]
pub struct ObjectStoreSettings {
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: String,
    /// The bucket (must exist).
    pub bucket: String,
    /// The region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Key prefix, e.g. `msgfile/` (`""` = the bucket's root).
    pub prefix: String,
}

impl std::fmt::Debug for ObjectStoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreSettings")
            .field("endpoint", &crate::secret::redact_url(&self.endpoint))
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why an object-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    /// The settings are unusable (no bucket, bad endpoint).
    #[error("object store settings: {0}")]
    Config(String),
    /// Reading the local file failed.
    #[error("reading {path}: {source}")]
    Local {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The object store refused or failed.
    #[error("object store {op} {key}: {message}")]
    Remote {
        /// What was done.
        op: &'static str,
        /// The object key.
        key: String,
        /// OpenDAL's message (never holds credentials).
        message: String,
        /// Whether OpenDAL says trying again may help.
        temporary: bool,
    },
    /// The stored object does not have the size of the file.
    #[error("object {key} has {got} bytes after upload, expected {want}")]
    SizeMismatch {
        /// The key.
        key: String,
        /// Local size.
        want: u64,
        /// Stored size.
        got: u64,
    },
}

impl ObjectStoreError {
    /// Temporary remote errors and size mismatches may pass on retry; settings and local I/O
    /// errors are retried too (the attempt counter bounds them) except bad settings.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Remote { temporary, .. } => *temporary,
            Self::Local { .. } | Self::SizeMismatch { .. } => true,
        }
    }
}

fn remote<'a>(op: &'static str, key: &'a str) -> impl Fn(opendal::Error) -> ObjectStoreError + 'a {
    move |e| ObjectStoreError::Remote { op, key: key.to_string(), message: e.to_string(), temporary: e.is_temporary() }
}

/// An S3-compatible bucket, usable from a plain thread.
pub struct ObjectStore {
    op: opendal::Operator,
    prefix: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// Connects (lazily: the first request talks to the server).
    pub fn new(s: &ObjectStoreSettings) -> Result<Self, ObjectStoreError> {
        if s.bucket.is_empty() || s.endpoint.is_empty() {
            return Err(ObjectStoreError::Config("media.s3_bucket and media.s3_endpoint are required".into()));
        }
        let region = if s.region.is_empty() { "us-east-1" } else { s.region.as_str() };
        let builder = opendal::services::S3::default()
            .endpoint(&s.endpoint)
            .bucket(&s.bucket)
            .region(region)
            .access_key_id(s.access_key_id.expose())
            .secret_access_key(s.secret_access_key.expose())
            // Only the configured credentials: no ~/.aws, no instance metadata probing.
            .disable_config_load()
            .disable_ec2_metadata();
        let op = opendal::Operator::new(builder).map_err(|e| ObjectStoreError::Config(e.to_string()))?.finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ObjectStoreError::Config(format!("cannot start a runtime: {e}")))?;
        Ok(Self { op, prefix: s.prefix.clone(), rt })
    }

    /// The object key of a path relative to the media root.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{}", self.prefix, rel.trim_start_matches('/'))
    }

    /// Streams `local` to `key` in [`PART_BYTES`] parts and checks the stored size; returns it.
    pub fn upload_file(&self, local: &Path, key: &str) -> Result<u64, ObjectStoreError> {
        let local_err = |source| ObjectStoreError::Local { path: local.display().to_string(), source };
        let mut file = std::fs::File::open(local).map_err(local_err)?;
        let want = file.metadata().map_err(local_err)?.len();
        self.rt.block_on(async {
            let mut w = self.op.writer_with(key).chunk(PART_BYTES).await.map_err(remote("open writer", key))?;
            loop {
                // A fresh buffer per part, moved into the writer (no copy).
                let mut buf = vec![0u8; PART_BYTES];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = file.read(&mut buf[filled..]).map_err(local_err)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                let last = filled < buf.len();
                buf.truncate(filled);
                w.write(buf).await.map_err(remote("write", key))?;
                if last {
                    break;
                }
            }
            w.close().await.map_err(remote("complete", key))?;
            let got = self.op.stat(key).await.map_err(remote("stat", key))?.content_length();
            if got != want {
                return Err(ObjectStoreError::SizeMismatch { key: key.to_string(), want, got });
            }
            Ok(got)
        })
    }

    /// The object's bytes (tests, tools).
    pub fn get(&self, key: &str) -> Result<Vec<u8>, ObjectStoreError> {
        self.rt.block_on(async { Ok(self.op.read(key).await.map_err(remote("get", key))?.to_vec()) })
    }

    /// The object's size in bytes.
    pub fn size(&self, key: &str) -> Result<u64, ObjectStoreError> {
        self.rt.block_on(async { Ok(self.op.stat(key).await.map_err(remote("stat", key))?.content_length()) })
    }

    /// `len` bytes of the object from `offset` (the range must lie within the object: see
    /// [`ObjectStore::size`]): one ranged GET, so that a range of a large file never reads the
    /// rest (the review API serves media by ranges).
    pub fn read_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, ObjectStoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.rt.block_on(async {
            let end = offset.saturating_add(len);
            Ok(self.op.read_with(key).range(offset..end).await.map_err(remote("get", key))?.to_vec())
        })
    }

    /// The object's ETag (multipart uploads have `-<parts>` at the end).
    pub fn etag(&self, key: &str) -> Result<Option<String>, ObjectStoreError> {
        self.rt.block_on(async { Ok(self.op.stat(key).await.map_err(remote("stat", key))?.etag().map(str::to_string)) })
    }

    /// Put, get and delete a probe object (`doctor`).
    pub fn probe(&self, name: &str) -> Result<(), ObjectStoreError> {
        let key = self.key(&format!(".probe/{name}"));
        let body = format!("wework-msgaudit probe {name}").into_bytes();
        self.rt.block_on(async {
            self.op.write(&key, body.clone()).await.map_err(remote("put", &key))?;
            let back = self.op.read(&key).await.map_err(remote("get", &key))?.to_vec();
            self.op.delete(&key).await.map_err(remote("delete", &key))?;
            if back != body {
                return Err(ObjectStoreError::SizeMismatch {
                    key: key.clone(),
                    want: body.len() as u64,
                    got: back.len() as u64,
                });
            }
            Ok(())
        })
    }
}
