//! Configuration: defaults < TOML file < environment.
//!
//! [`Config::load`] reads the TOML file (every key optional, unknown keys are errors), overlays
//! every `WEWORK_MSGAUDIT__<SECTION>__<KEY>` environment variable onto it, then deserialises the
//! result, so that a value from the environment is validated exactly like one from the file.
//! Durations are humantime strings. Secrets ([`Secret`]) print as `<redacted>` in `Debug`.
//! `config/example.toml` documents every key with its default; a test keeps the two in step.
//!
//! Errors ([`ConfigError`]) never show a value (a rejected value may be a password or a key):
//! they name the key (`pull.limit`) and where it was set ([`Origin`]: `file:line` for the TOML
//! file, from its spans, or the variable's name for the environment). An environment
//! value takes the type of its key: `WEWORK_MSGAUDIT__CLUSTER__INSTANCE_ID=1` is the string
//! `"1"`, `WEWORK_MSGAUDIT__PULL__LIMIT=500` the number 500, `…__CORPS__TABLE=false` a boolean.

mod load;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{redact_url, Secret};

pub use load::Origin;

/// The prefix of environment overrides: `WEWORK_MSGAUDIT__DATABASE__URL`.
pub const ENV_PREFIX: &str = "WEWORK_MSGAUDIT__";

/// Why the configuration could not be loaded. No variant holds a configured value.
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
    /// The file is not valid TOML.
    #[error("invalid configuration: {at}: not valid TOML: {message}")]
    Syntax {
        /// `file:line` of the error.
        at: Origin,
        /// The parser's message (without the source line, which may hold a value).
        message: String,
    },
    /// A key has a wrong or invalid value, or is not a key of the configuration.
    #[error("invalid configuration: {}{key}: {message}", at.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Invalid {
        /// Where the key was set (`file:line`, or the environment variable), when known.
        at: Option<Origin>,
        /// The key path, e.g. `pull.limit`.
        key: String,
        /// What is wrong, without the value.
        message: String,
    },
    /// An environment override names no key of the configuration.
    #[error("environment variable {0} does not name a configuration key (expected {ENV_PREFIX}<SECTION>__<KEY>)")]
    BadEnv(String),
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
    /// Encryption at rest of the stored corp secrets and keys.
    pub security: SecurityConfig,
    /// The full-text search index (derived data, kept by the daemon).
    pub search: SearchConfig,
    /// The review API (reading the archive), its users' sessions and exports.
    pub review: ReviewConfig,
    /// WeCom callbacks (`msgaudit_notify` → pull now).
    pub callback: CallbackConfig,
    /// Alerts of rule hits: the outbox and its channels (`crate::alerts`).
    pub alerts: AlertsConfig,
    /// Content and behaviour rules evaluated at ingest.
    pub rules: RulesConfig,
    /// Reply-time checks (质检, `crate::quality`).
    pub reply_time: ReplyTimeConfig,
    /// WeCom's archive APIs: group names, archived members, consent (`crate::wecom`).
    pub wecom_api: WecomApiConfig,
}

/// `[callback]`: the endpoint WeCom sends `msgaudit_notify` to (`crate::callback`). Each corp's
/// Token and EncodingAESKey are its `callback_token` and `encoding_aes_key` (corps file) or its
/// `corp_callback` row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// Serve `GET`/`POST /callback/<corpid>` on this address (e.g. "127.0.0.1:8081" behind the
    /// HTTPS proxy WeCom reaches); `""` = off.
    pub listen: String,
    /// With the listener on, a corp with callback settings polls only this often (the safety net
    /// for a lost callback); the others keep `[pull] poll_interval`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The largest request body accepted (bytes); larger ones answer 413.
    pub max_body: usize,
    /// A callback's timestamp must be within this of the clock, and a `(timestamp, nonce)` seen
    /// within it again is a replay (409).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            poll_interval: Duration::from_secs(300),
            max_body: 64 * 1024,
            max_age: Duration::from_secs(300),
        }
    }
}

/// `[rules]`: content and behaviour rules evaluated on every stored record (`crate::rules`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// The rules file (see config/rules.example.toml); `""` = `rules.toml` in the directory of
    /// the configuration file. A file that does not exist means no file rules.
    pub file: PathBuf,
    /// Also read the rules of the `rule_def` table (`rule add`).
    pub table: bool,
    /// Compiled-size limit of one regular expression in bytes (a larger one is refused).
    pub regex_size_limit: usize,
    /// How often the file and the table are re-read (an edit of the file applies at once).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::new(),
            table: true,
            regex_size_limit: crate::rules::DEFAULT_REGEX_SIZE_LIMIT,
            reload_interval: Duration::from_secs(30),
        }
    }
}

/// `[alerts]`: rule hits sent to robots, webhooks and mail (`crate::alerts`), through a durable
/// outbox in the database. Without a `[[alerts.channel]]` nothing is sent (hits are still
/// recorded, and handed over so that they are not sent later by surprise).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often the outbox is fed from new hits and a channel with nothing to send looks again.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// At most this many hits in one message of a channel.
    pub batch_max: u32,
    /// A burst is gathered into one message: the first pending hit waits this long for others
    /// (unless `batch_max` are already waiting).
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// The first retry of a failed send comes after this, doubling up to `retry_max` (±25 %).
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// The longest wait between two retries.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// A batch is given up after this many failed attempts; 0 = never.
    pub max_attempts: u32,
    /// A batch claimed for this long without a result (its process died mid-send) is sent again.
    #[serde(with = "humantime_serde")]
    pub claim_ttl: Duration,
    /// The time limit of one HTTP request or SMTP session.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The channels (`[[alerts.channel]]`).
    pub channel: Vec<AlertChannelConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            batch_max: 20,
            batch_window: Duration::from_secs(5),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            max_attempts: 0,
            claim_ttl: Duration::from_secs(120),
            timeout: Duration::from_secs(10),
            channel: Vec::new(),
        }
    }
}

/// What an alert channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertChannelKind {
    /// A WeCom (企业微信) group robot: markdown, 20 messages a minute.
    Wecom,
    /// A DingTalk (钉钉) custom robot, signed (加签) with `secret`.
    Dingtalk,
    /// A Feishu/Lark (飞书) custom bot, signed with `secret`.
    Feishu,
    /// Any HTTP endpoint: JSON, the body signed (HMAC-SHA256) with `secret`, an idempotency key.
    Webhook,
    /// Mail over SMTP.
    Email,
}

/// One `[[alerts.channel]]`. `url` and `secret` never print.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelConfig {
    /// Its name (unique; in `alert_outbox`, metrics, `alerts test-channel NAME`).
    pub name: String,
    /// What it is.
    pub kind: AlertChannelKind,
    /// The robot's or endpoint's URL (a robot's URL holds its key: a secret); for `email`, the
    /// SMTP server: `smtp://host:587` (STARTTLS required), `smtps://host:465` (TLS), or
    /// `smtp://host:25?tls=none` (plain, only for a local relay).
    pub url: Secret,
    /// The signing secret (DingTalk `SEC…`, Feishu, webhook HMAC key) or the SMTP password.
    #[serde(default)]
    pub secret: Secret,
    /// The rules routed here, by name (`*` = every rule; a trailing `*` matches a prefix).
    #[serde(default = "all")]
    pub rules: Vec<String>,
    /// The corps routed here (`*` = every corp).
    #[serde(default = "all")]
    pub corps: Vec<String>,
    /// At most this many messages per `rate_window`; 0 = the kind's own limit (WeCom and
    /// DingTalk 20, Feishu 100 a minute; none for webhook and email).
    #[serde(default)]
    pub rate_limit: u32,
    /// The window of `rate_limit`.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub rate_window: Duration,
    /// A template replacing the built-in one (see docs/alerts.md for its placeholders); "" =
    /// built-in.
    #[serde(default)]
    pub template: String,
    /// `email`: the SMTP user name ("" = no authentication).
    #[serde(default)]
    pub username: String,
    /// `email`: the sender address.
    #[serde(default)]
    pub from: String,
    /// `email`: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// `[reply_time]`: the daemon evaluates the `[[reply_time]]` rules of the rules file over the
/// stored messages (`crate::quality`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplyTimeConfig {
    /// Run the reply-time checks in the background.
    pub enabled: bool,
    /// How often the rules file is re-read and new rows are evaluated.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for ReplyTimeConfig {
    fn default() -> Self {
        Self { enabled: false, poll_interval: Duration::from_secs(10) }
    }
}

/// `[wecom_api]`: the metadata of `crate::wecom` (group chat names and members, archived
/// members, consent of external contacts), fetched with the archive secret through `[sdk] proxy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WecomApiConfig {
    /// Run the background refresh in the daemon.
    pub enabled: bool,
    /// Wait between passes (each pass scans the new messages of every corp handled here).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rooms, consents and the archived-member list are asked again when older than this.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A corp's pass is abandoned after this long (the next one continues).
    #[serde(with = "humantime_serde")]
    pub corp_timeout: Duration,
    /// Messages read per scan query.
    pub scan_batch: u32,
    /// A PEM file of certificates trusted besides the system's roots: for tests (the emulator's
    /// fake API) and private CAs of a TLS-inspecting proxy. Verification is never turned off.
    pub extra_ca_file: PathBuf,
}

impl Default for WecomApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(60),
            refresh: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            corp_timeout: Duration::from_secs(300),
            scan_batch: 500,
            extra_ca_file: PathBuf::new(),
        }
    }
}

/// `[review]`: the review API (`crate::review`): sessions, login limits, exports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Serve the review API on this address (e.g. "127.0.0.1:8080"); `""` = off.
    pub listen: String,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session ends this long after sign-in, whatever its use.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// The session cookie's `Secure` flag: `auto` (when the request came over HTTPS, directly or
    /// as `X-Forwarded-Proto: https` from the proxy in front), `always` or `never`.
    pub cookie_secure: String,
    /// Failed sign-ins allowed per user name and per client address within `login_window`;
    /// beyond, sign-in answers 429 until the window has passed. `0`: no limit. In memory, per
    /// instance (`crate::review::ratelimit`).
    pub login_max_failures: u32,
    /// The window of `login_max_failures`.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// The most messages one export may hold.
    pub export_max_rows: u64,
    /// The addresses of the proxies in front whose `X-Forwarded-For` is believed (its last
    /// address not itself a proxy's is the client); from any other peer the header is ignored
    /// and the peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            cookie_secure: "auto".into(),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            export_max_rows: 100_000,
            trusted_proxies: vec!["127.0.0.1".into(), "::1".into()],
        }
    }
}

/// `[search]`: the daemon keeps a full-text index of the stored messages (`crate::search`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Keep the index up to date while running.
    pub enabled: bool,
    /// The index directory; `""` = beside a SQLite database file (`<file>.search`); with another
    /// database it must be set (else search stays off, with a WARN).
    pub dir: PathBuf,
    /// Indexing threads.
    pub threads: usize,
    /// Memory budget of the index writer, MiB (at least 15 per thread).
    pub memory_mb: usize,
    /// How often a caught-up index looks for new rows.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often rows deleted from the database are looked for (and removed from the index),
    /// and rows that were undecryptable when indexed are read again.
    #[serde(with = "humantime_serde")]
    pub verify_interval: Duration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: PathBuf::new(),
            threads: 1,
            memory_mb: 64,
            poll_interval: Duration::from_secs(5),
            verify_interval: Duration::from_secs(3600),
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// A file holding the master key (32 bytes as base64 or 64 hex digits) that seals the corp
    /// secrets and keys stored in `corplist`/`corp_keys`; `""` = none (or the key itself in
    /// `$WEWORK_MSGAUDIT_MASTER_KEY`). See [`crate::security`].
    pub master_key_file: PathBuf,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to serve `/healthz`, `/metrics` and `/status` on; `""` = off. Without
    /// `token_file` unauthenticated: keep it on loopback or a private network.
    pub listen: String,
    /// A file holding a bearer token (one line); when set, every endpoint requires
    /// `Authorization: Bearer <token>` and `status` sends it. Empty = no token.
    pub token_file: PathBuf,
    /// The address the review console is reached at by people (e.g. "https://audit.example.com"),
    /// for links in alerts; "" = no links.
    pub public_url: String,
    /// How often the daemon makes the completeness report (seq gaps, people, consent, failed
    /// media, undecryptable records) shown in `/status` and `/metrics`; each check reads every
    /// corp's tables, so not too often. "0s" = never (the `completeness` command still works).
    #[serde(with = "humantime_serde")]
    pub completeness_interval: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token_file: PathBuf::new(),
            public_url: String::new(),
            completeness_interval: Duration::from_secs(15 * 60),
        }
    }
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
    /// While a corp is behind (its pages come back full), log its progress (records/s, lag,
    /// ETA) at most this often, and "caught up" at the end; "0s" = never.
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(30),
            failing_after: 3,
            alert_after: Duration::from_secs(24 * 3600),
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// `[database]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `mysql://…` or `sqlite://…` (may hold a password: see [`DatabaseConfig::redacted_url`]).
    pub url: Secret,
    /// Connections in the pool (at least 1; an in-memory SQLite database always has exactly one).
    /// Unset: [`DatabaseConfig::pool_size`] chooses.
    pub max_connections: Option<u32>,
}

impl DatabaseConfig {
    /// Connections in the pool: `max_connections`, or by default 8 for MySQL and 4 for SQLite.
    /// SQLite lets one connection write at a time, and every connection keeps its own parsed
    /// copy of the schema, which grows with the corps (about 39 MB per connection at 5,000
    /// corps, measured): more readers than that buy nothing on SQLite but memory.
    #[must_use]
    pub fn pool_size(&self) -> u32 {
        self.max_connections.unwrap_or(if self.url.expose().starts_with("sqlite:") { 4 } else { 8 })
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.pool_size())
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: Secret::new("sqlite://wework-msgaudit.db"), max_connections: None }
    }
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
    /// Fetch a corp's next page while the one before it is decrypted and written.
    pub fetch_ahead: bool,
}

impl Default for PullConfig {
    fn default() -> Self {
        Self {
            limit: 1000,
            poll_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            decrypt_threads: 0,
            fetch_ahead: false,
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
    /// Transcoder threads (voice to MP3), a pool of their own; 0 = one per core.
    pub transcode_workers: usize,
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
    /// LAME's algorithm quality, 0 (slowest, best) to 9 (fastest); the size stays the same.
    pub mp3_quality: u8,
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
            workers: 16,
            per_corp: 8,
            transcode_workers: 0,
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
            mp3_quality: 7, // media::transcode::DEFAULT_MP3_QUALITY (a test in actors::media::settings checks)
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

/// Log output format.
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

    /// Parses TOML `text` (read from `path`, for error locations) with the given environment on
    /// top (testable without touching the process environment).
    pub fn from_parts(
        text: &str,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        load::load(text, path, env)
    }

    /// Checks values the types alone do not constrain: `Err((key, what is wrong))`, without the
    /// value.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(("http.listen", "expected host:port, e.g. \"127.0.0.1:9100\"".into()));
        }
        if !self.callback.listen.is_empty() && self.callback.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(("callback.listen", "expected host:port, e.g. \"127.0.0.1:8081\"".into()));
        }
        if self.callback.max_body < 1024 {
            return Err(("callback.max_body", "must be at least 1024 bytes".into()));
        }
        if self.callback.max_age < Duration::from_secs(1) {
            return Err(("callback.max_age", "must be at least 1s".into()));
        }
        if self.cluster.leases && self.cluster.lease_ttl < Duration::from_secs(1) {
            return Err(("cluster.lease_ttl", "must be at least 1s".into()));
        }
        if self.media.backend == MediaBackend::S3
            && (self.media.s3_endpoint.is_empty() || self.media.s3_bucket.is_empty())
        {
            return Err(("media.backend", "\"s3\" needs media.s3_endpoint and media.s3_bucket".into()));
        }
        if self.database.max_connections == Some(0) {
            return Err(("database.max_connections", "must be at least 1".into()));
        }
        if self.daemon.failing_after == 0 {
            return Err(("daemon.failing_after", "must be at least 1".into()));
        }
        const MP3_RATES: [u32; 10] = [0, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
        if !MP3_RATES.contains(&self.media.mp3_sample_rate) {
            return Err((
                "media.mp3_sample_rate",
                "expected 0 (the source's) or one of 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000"
                    .into(),
            ));
        }
        if !(8..=320).contains(&self.media.mp3_bitrate) {
            return Err(("media.mp3_bitrate", "expected 8..=320 kbit/s".into()));
        }
        if self.media.mp3_quality > 9 {
            return Err(("media.mp3_quality", "expected 0 (slowest, best) to 9 (fastest)".into()));
        }
        self.check_alerts()
    }

    /// The `[[alerts.channel]]`s: names unique and set, a URL, what mail needs.
    fn check_alerts(&self) -> Result<(), (&'static str, String)> {
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.alerts.channel.iter().enumerate() {
            let which = format!("channel #{} ({:?})", i + 1, c.name);
            if c.name.is_empty() || c.name.len() > 128 || c.name.chars().any(char::is_whitespace) {
                return Err(("alerts.channel", format!("{which}: name must be 1 to 128 characters, no spaces")));
            }
            if !names.insert(c.name.as_str()) {
                return Err(("alerts.channel", format!("{which}: the name is used twice")));
            }
            if c.url.is_empty() {
                return Err(("alerts.channel", format!("{which}: url is required")));
            }
            if c.kind == AlertChannelKind::Email && (c.from.is_empty() || c.to.is_empty()) {
                return Err(("alerts.channel", format!("{which}: email needs from and to")));
            }
            if c.rate_window.is_zero() {
                return Err(("alerts.channel", format!("{which}: rate_window must be more than 0")));
            }
        }
        if self.alerts.batch_max == 0 {
            return Err(("alerts.batch_max", "must be at least 1".into()));
        }
        let url = &self.http.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("http.public_url", "expected an http:// or https:// URL".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
