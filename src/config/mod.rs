//! Configuration: defaults < TOML file < environment.
//!
//! [`Config::load`] reads the TOML file (every key optional, unknown keys are errors), overlays
//! every `WEWORK_MSGAUDIT__<SECTION>__<KEY>` environment variable onto it, then deserialises the
//! result once, so that a value from the environment is validated exactly like one from the file.
//! Durations are humantime strings. Secrets ([`Secret`]) print as `<redacted>` in `Debug`.
//! `config/example.toml` documents every key with its default; a test keeps the two in step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{redact_url, Secret};

/// The prefix of environment overrides: `WEWORK_MSGAUDIT__DATABASE__URL`.
pub const ENV_PREFIX: &str = "WEWORK_MSGAUDIT__";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML (after environment overrides) is invalid.
    #[error("invalid configuration{}: {message}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong, with the key.
        message: String,
    },
    /// An environment override names no key of the configuration.
    #[error("environment variable {0} does not name a configuration key (expected {ENV_PREFIX}<SECTION>__<KEY>)")]
    BadEnv(String),
}

impl ConfigError {
    /// Configuration errors never fix themselves.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where records are stored.
    pub database: DatabaseConfig,
    /// The vendor SDK.
    pub sdk: SdkConfig,
    /// Pulling records.
    pub pull: PullConfig,
    /// Where the corps come from.
    pub corps: CorpsConfig,
    /// Media downloads.
    pub media: MediaConfig,
    /// Logging.
    pub log: LogConfig,
    /// The HTTP endpoint (`/healthz`, `/metrics`, `/status`).
    pub http: HttpConfig,
    /// Process supervision: shutdown grace, failing threshold, retention alert.
    pub daemon: DaemonConfig,
    /// Several instances sharing one database.
    pub cluster: ClusterConfig,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Split the corps between the instances that share the database, by leases.
    pub leases: bool,
    /// This instance's id; `""` = `<host name>-<pid>-<random>`, new at every start.
    pub instance_id: String,
    /// A lease not renewed for this long is taken over by another instance.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { leases: false, instance_id: String::new(), lease_ttl: Duration::from_secs(30) }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to serve `/healthz`, `/metrics` and `/status` on; `""` = off. Unauthenticated:
    /// keep it on loopback or a private network.
    pub listen: String,
}

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// After SIGTERM/SIGINT, in-flight work must finish within this; keep supervisord's
    /// `stopwaitsecs` (systemd's `TimeoutStopSec`) above it.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A corp whose actor has failed this many times in a row (or whose pull fails permanently)
    /// is reported failing in `status`, `/metrics` and `/healthz`.
    pub failing_after: u32,
    /// WARN (alert) when a corp has had no successful pull for this long: the WeCom server keeps
    /// records for about 5 days only.
    #[serde(with = "humantime_serde")]
    pub alert_after: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self { shutdown_grace: Duration::from_secs(30), failing_after: 3, alert_after: Duration::from_secs(24 * 3600) }
    }
}

/// `[database]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `mysql://…` or `sqlite://…` (may hold a password: see [`DatabaseConfig::redacted_url`]).
    pub url: Secret,
    /// Pool size.
    pub max_connections: u32,
}

impl DatabaseConfig {
    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: Secret::new("sqlite://wework-msgaudit.db"), max_connections: 8 }
    }
}

/// How records are decrypted (DESIGN.md decision 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecryptMode {
    /// The native implementation (default).
    #[default]
    Native,
    /// The vendor's DecryptData, behind input guards.
    Sdk,
}

/// `[sdk]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdkConfig {
    /// Path of the vendor library, or `emulator`.
    pub library: PathBuf,
    /// GetChatData threads.
    pub threads: usize,
    /// Per-call timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Proxy URL, `""` for none.
    pub proxy: String,
    /// Proxy credentials.
    pub proxy_password: Secret,
    /// Decryption path.
    pub decrypt: DecryptMode,
    /// More GetChatData calls hung at once than this: exit non-zero (decision 3).
    pub max_hung_threads: usize,
    /// Run a vendor library in `sdk-worker` child processes (a crash inside it ends a child,
    /// never the daemon); `false` loads it into the daemon. `emulator` is always in-process.
    pub isolate: bool,
}

impl Default for SdkConfig {
    fn default() -> Self {
        Self {
            library: PathBuf::from("lib/libWeWorkFinanceSdk_C.so"),
            threads: 4,
            timeout: Duration::from_secs(10),
            proxy: String::new(),
            proxy_password: Secret::default(),
            decrypt: DecryptMode::Native,
            max_hung_threads: 8,
            isolate: true,
        }
    }
}

/// `[pull]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullConfig {
    /// Records per call.
    pub limit: u32,
    /// Wait after a short page.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First backoff delay.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Backoff cap.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Decrypt threads (0 = cores).
    pub decrypt_threads: usize,
}

impl Default for PullConfig {
    fn default() -> Self {
        Self {
            limit: 1000,
            poll_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            decrypt_threads: 0,
        }
    }
}

/// `[corps]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorpsConfig {
    /// Read `corplist`/`corp_keys`.
    pub table: bool,
    /// A corps TOML file (empty = none).
    pub file: PathBuf,
    /// Re-read interval.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for CorpsConfig {
    fn default() -> Self {
        Self { table: true, file: PathBuf::new(), reload_interval: Duration::from_secs(30) }
    }
}

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Download media at all.
    pub enabled: bool,
    /// Media root directory.
    pub root: PathBuf,
    /// Download threads.
    pub workers: usize,
    /// Items of one corp in flight at most.
    pub per_corp: usize,
    /// Attempts per item.
    pub max_attempts: u32,
    /// In-place retries of a failed chunk.
    pub chunk_retries: u32,
    /// First retry delay of an item.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// This instance's name in claims; "" = the host name.
    pub instance_id: String,
    /// A claim older than this is taken back.
    #[serde(with = "humantime_serde")]
    pub claim_stale: Duration,
    /// How often every corp's media table is looked at without a nudge.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Transcode voice (AMR, SILK) to MP3.
    pub transcode: bool,
    /// MP3 bitrate in kbit/s.
    pub mp3_bitrate: u32,
    /// MP3 sample rate in Hz; 0 = the source's.
    pub mp3_sample_rate: u32,
    /// `fs` (files under `root`) or `s3` (an S3-compatible object store; `root` then only holds
    /// files in flight).
    pub backend: MediaBackend,
    /// S3 API endpoint, e.g. `https://oss-cn-hangzhou.aliyuncs.com` or `http://minio:9000`.
    pub s3_endpoint: String,
    /// The bucket (must exist).
    pub s3_bucket: String,
    /// The region (`us-east-1` when empty).
    pub s3_region: String,
    /// Access key id.
    pub s3_access_key_id: Secret,
    /// Secret access key (secret: never logged).
    pub s3_secret_access_key: Secret,
    /// Key prefix, e.g. `msgfile/`.
    pub s3_prefix: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            root: PathBuf::from("msgfile"),
            workers: 2,
            per_corp: 1,
            max_attempts: 5,
            chunk_retries: 3,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            instance_id: String::new(),
            claim_stale: Duration::from_secs(1800),
            sweep_interval: Duration::from_secs(30),
            transcode: true,
            mp3_bitrate: 32,
            mp3_sample_rate: 0,
            backend: MediaBackend::Fs,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: String::new(),
            s3_access_key_id: Secret::default(),
            s3_secret_access_key: Secret::default(),
            s3_prefix: String::new(),
        }
    }
}

/// Log output format.
/// Where media files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaBackend {
    /// Files under `[media] root`.
    #[default]
    Fs,
    /// An S3-compatible object store.
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Human }
    }
}

impl Config {
    /// Loads `path` (or only defaults when `None`) with the process environment on top.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => {
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?
            }
            None => String::new(),
        };
        Self::from_parts(&text, path, std::env::vars())
    }

    /// Parses TOML `text` with the given environment on top (testable without touching the process
    /// environment).
    pub fn from_parts(
        text: &str,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { path: path.map(Path::to_path_buf), message };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            let mut parts = rest.split("__").map(str::to_ascii_lowercase);
            let (Some(section), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(ConfigError::BadEnv(name));
            };
            if section.is_empty() || key.is_empty() {
                return Err(ConfigError::BadEnv(name));
            }
            let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else { return Err(ConfigError::BadEnv(name)) };
            section_table.insert(key, env_value(&value));
        }
        let config = Config::deserialize(toml::Value::Table(table)).map_err(|e| invalid(e.message().to_string()))?;
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Checks values the types alone do not constrain.
    fn check(&self) -> Result<(), String> {
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("http.listen = {:?}: expected host:port, e.g. \"127.0.0.1:9100\"", self.http.listen));
        }
        if self.cluster.leases && self.cluster.lease_ttl < Duration::from_secs(1) {
            return Err("cluster.lease_ttl must be at least 1s".into());
        }
        if self.media.backend == MediaBackend::S3
            && (self.media.s3_endpoint.is_empty() || self.media.s3_bucket.is_empty())
        {
            return Err("media.backend = \"s3\" needs media.s3_endpoint and media.s3_bucket".into());
        }
        if self.daemon.failing_after == 0 {
            return Err("daemon.failing_after must be at least 1".into());
        }
        const MP3_RATES: [u32; 10] = [0, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
        if !MP3_RATES.contains(&self.media.mp3_sample_rate) {
            return Err(format!(
                "media.mp3_sample_rate = {}: expected 0 (the source's) or one of 8000, 11025, 12000, 16000, 22050, \
                 24000, 32000, 44100, 48000",
                self.media.mp3_sample_rate
            ));
        }
        if !(8..=320).contains(&self.media.mp3_bitrate) {
            return Err(format!("media.mp3_bitrate = {}: expected 8..=320 kbit/s", self.media.mp3_bitrate));
        }
        Ok(())
    }
}

/// An environment value as TOML: integers, floats and booleans keep their type, anything else is
/// a string (so `WEWORK_MSGAUDIT__PULL__LIMIT=500` is the number 500).
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_settings_are_checked() {
        let err = Config::from_parts("[media]\nmp3_sample_rate = 44000\n", None, []).unwrap_err();
        assert!(err.to_string().contains("media.mp3_sample_rate = 44000"), "{err}");
        let err = Config::from_parts("[media]\nmp3_bitrate = 0\n", None, []).unwrap_err();
        assert!(err.to_string().contains("media.mp3_bitrate = 0"), "{err}");
        let ok = Config::from_parts("[media]\nmp3_sample_rate = 16000\nmp3_bitrate = 48\n", None, []).unwrap();
        assert_eq!((ok.media.mp3_sample_rate, ok.media.mp3_bitrate), (16000, 48));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_example_toml() {
        let example = include_str!("../../config/example.toml");
        let from_file = Config::from_parts(example, None, env(&[])).expect("example.toml parses");
        let defaults = Config::default();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"), "config/example.toml must show the defaults");
    }

    #[test]
    fn environment_overrides_the_file_with_types() {
        let text = "[database]\nurl = \"sqlite://a.db\"\n[pull]\nlimit = 100\n";
        let cfg = Config::from_parts(
            text,
            None,
            env(&[
                ("WEWORK_MSGAUDIT__DATABASE__URL", "mysql://u:pw@db/x"),
                ("WEWORK_MSGAUDIT__PULL__LIMIT", "500"),
                ("WEWORK_MSGAUDIT__PULL__POLL_INTERVAL", "250ms"),
                ("WEWORK_MSGAUDIT__CORPS__TABLE", "false"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.database.url.expose(), "mysql://u:pw@db/x");
        assert_eq!(cfg.pull.limit, 500);
        assert_eq!(cfg.pull.poll_interval, Duration::from_millis(250));
        assert!(!cfg.corps.table);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::from_parts("[pull]\nlimt = 5\n", Some(Path::new("x.toml")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("limt") && err.to_string().contains("x.toml"), "{err}");
        let err = Config::from_parts("", None, env(&[("WEWORK_MSGAUDIT__PULL__NOPE", "1")])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = Config::from_parts("", None, env(&[("WEWORK_MSGAUDIT__PULL", "1")])).unwrap_err();
        assert!(matches!(err, ConfigError::BadEnv(_)), "{err}");
        let err = Config::from_parts("[pull]\npoll_interval = \"soon\"\n", None, env(&[])).unwrap_err();
        assert!(err.to_string().contains("soon") || err.to_string().contains("poll_interval"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let text =
            "[database]\nurl = \"mysql://archiver:S3cretPw@db:3306/x\"\n[sdk]\nproxy_password = \"user:Pr0xyPw\"\n";
        let cfg = Config::from_parts(text, None, env(&[])).unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("S3cretPw") && !debug.contains("Pr0xyPw"), "{debug}");
        assert!(debug.contains("mysql://archiver:***@db:3306/x"), "{debug}");
    }
}
