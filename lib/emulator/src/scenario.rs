//! Scenario: which corps exist, their keys, backlog, growth and faults (TOML or JSON).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse scenario {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

fn d_seed() -> u64 {
    42
}
fn d_base() -> u64 {
    1_767_225_600_000
}
fn d_step() -> u64 {
    1000
}

/// The whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// msgtime (ms) of seq 1.
    #[serde(default = "d_base")]
    pub base_msgtime_ms: u64,
    /// msgtime step between consecutive records (ms).
    #[serde(default = "d_step")]
    pub step_ms: u64,
    #[serde(default)]
    pub corp: Vec<CorpScenario>,
}

/// One corp.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpScenario {
    pub corpid: String,
    pub secret: String,
    /// Initial backlog: seq 1..=records.
    #[serde(default)]
    pub records: u64,
    /// Records added per second of wall time since the emulator was created.
    #[serde(default)]
    pub growth_per_sec: f64,
    /// If > 0, the first `file` record carries a pseudo-random file of this size.
    #[serde(default)]
    pub big_file_bytes: u64,
    /// Every record is one of the hostile kinds of `crate::hostile`, in turn.
    #[serde(default)]
    pub hostile: bool,
    /// Records replaced by a big one of the given size (`[[corp.big_records]]`): larger than
    /// a database packet, for the storage limits. Generated deterministically like the others.
    #[serde(default)]
    pub big_records: Vec<BigRecord>,
    /// Seqs the archive never serves: GetChatData pages skip them (the gaps of a real archive
    /// that never returns some records), and the ground truth leaves them out.
    #[serde(default)]
    pub withheld_seqs: Vec<u64>,
    /// With `[corp.media_mix]`: exactly these many records carry one top-level media item of each
    /// kind, spread evenly over seq 1..=records; every other record is a media-free kind (the
    /// normal cycle of every msgtype is not used). `big_file_bytes` then applies to the first
    /// `file` record of the mix. For media benchmarks with a given mix.
    pub media_mix: Option<MediaMix>,
    #[serde(default)]
    pub key: Vec<KeyScenario>,
    #[serde(default)]
    pub faults: Faults,
}

impl fmt::Debug for CorpScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorpScenario")
            .field("corpid", &self.corpid)
            .field("secret", &"<redacted>")
            .field("records", &self.records)
            .field("growth_per_sec", &self.growth_per_sec)
            .field("big_file_bytes", &self.big_file_bytes)
            .field("hostile", &self.hostile)
            .field("big_records", &self.big_records)
            .field("withheld_seqs", &self.withheld_seqs)
            .field("media_mix", &self.media_mix)
            .field("key", &self.key)
            .field("faults", &self.faults)
            .finish()
    }
}

/// How many records of a corp carry one media item of each kind (`[corp.media_mix]`). Voice
/// alternates AMR-NB, SILK (Tencent header) and plain SILK; emotions GIF and PNG.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaMix {
    pub image: u64,
    pub voice: u64,
    pub emotion: u64,
    pub file: u64,
    pub video: u64,
}

impl MediaMix {
    /// Records with media.
    pub fn total(&self) -> u64 {
        self.image + self.voice + self.emotion + self.file + self.video
    }
}

/// One big record of a corp: record `seq` becomes a record of about `bytes` bytes of plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigRecord {
    pub seq: u64,
    /// Plaintext size to reach (the record is at least this long, at most a few hundred bytes
    /// longer).
    pub bytes: u64,
    #[serde(default)]
    pub kind: BigKind,
    /// Levels of a `chatrecord` (each nested in the previous one's last item); ignored for `text`.
    #[serde(default = "d_depth")]
    pub depth: u32,
}

fn d_depth() -> u32 {
    1000
}

/// What a [`BigRecord`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BigKind {
    /// A `text` whose content has the size.
    #[default]
    Text,
    /// A `chatrecord` nested `depth` levels deep, each level with text items that share the size.
    Chatrecord,
}

/// One key version of a corp (PEM inline or in a file; PKCS#8 RSA).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyScenario {
    pub ver: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

impl fmt::Debug for KeyScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyScenario")
            .field("ver", &self.ver)
            .field("private_key_pem", &self.private_key_pem.as_ref().map(|_| "<redacted>"))
            .field("private_key_file", &self.private_key_file)
            .finish()
    }
}

impl KeyScenario {
    /// The PEM text of this key (inline or read from the file).
    pub fn pem(&self) -> Result<String, ScenarioError> {
        match (&self.private_key_pem, &self.private_key_file) {
            (Some(p), None) => Ok(p.clone()),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.clone(), source })
            }
            _ => Err(ScenarioError::Invalid(format!(
                "key ver {}: exactly one of private_key_pem / private_key_file is required",
                self.ver
            ))),
        }
    }
}

/// Fault injection; every rate is a probability in 0..=1, decided deterministically.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    pub chat_rc_rate: f64,
    pub chat_rc: i32,
    pub errcode_rate: f64,
    pub errcode: i64,
    pub empty_body_rate: f64,
    pub slow_rate: f64,
    pub slow_ms: u64,
    pub hang_ms: u64,
    /// Only the first this many GetChatData calls of the corp hang (`hang_ms`); 0 = every call.
    pub hang_calls: u64,
    pub corrupt_rate: f64,
    pub unknown_key_ver_rate: f64,
    /// Share of records whose msgid is 300+ characters (longer than any real one and than the
    /// schema's VARCHAR(128)): a record the database refuses as parsed.
    pub long_msgid_rate: f64,
    pub media_rc_rate: f64,
    pub media_rc: i32,
    /// Every GetMediaData call of the corp takes at least this long (a slow link).
    pub media_chunk_ms: u64,
    pub bad_secret: bool,
    /// A GetChatData call whose page would hold this seq kills the process (`crash`): the
    /// vendor SDK's segfaults and aborts, for crash containment tests. 0 = never.
    pub crash_seq: u64,
    /// A GetMediaData call for a media item of the record with this seq kills the process. 0 = never.
    pub media_crash_seq: u64,
    /// A GetMediaData call for a media item of the record with this seq never returns (it
    /// sleeps until the process ends, ignoring the timeout). 0 = never.
    pub media_hang_seq: u64,
    /// How `crash_seq` / `media_crash_seq` kill the process: `abort` (SIGABRT) or `segv` (SIGSEGV).
    pub crash: CrashKind,
}

/// How an emulated crash kills the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrashKind {
    /// `abort()`: SIGABRT, as the vendor SDK's failed assertions and `free(): invalid pointer`.
    #[default]
    Abort,
    /// SIGSEGV, as the vendor SDK's NULL dereferences.
    Segv,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            chat_rc_rate: 0.0,
            chat_rc: 10001,
            errcode_rate: 0.0,
            errcode: 45009,
            empty_body_rate: 0.0,
            slow_rate: 0.0,
            slow_ms: 0,
            hang_ms: 0,
            hang_calls: 0,
            corrupt_rate: 0.0,
            unknown_key_ver_rate: 0.0,
            long_msgid_rate: 0.0,
            media_rc_rate: 0.0,
            media_rc: 10001,
            media_chunk_ms: 0,
            bad_secret: false,
            crash_seq: 0,
            media_crash_seq: 0,
            media_hang_seq: 0,
            crash: CrashKind::Abort,
        }
    }
}

impl Scenario {
    /// Loads a scenario file: JSON if the name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_path_buf(), source })?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|msg| ScenarioError::Parse { path: path.to_path_buf(), msg })
    }

    /// The built-in demo scenario (see the crate docs).
    pub fn demo() -> Scenario {
        Scenario {
            seed: d_seed(),
            base_msgtime_ms: d_base(),
            step_ms: d_step(),
            corp: vec![CorpScenario {
                corpid: crate::DEMO_CORPID.to_string(),
                secret: crate::DEMO_SECRET.to_string(),
                records: 300,
                growth_per_sec: 2.0,
                big_file_bytes: 3 * 1024 * 1024,
                hostile: false,
                big_records: Vec::new(),
                withheld_seqs: Vec::new(),
                media_mix: None,
                key: (1..=3)
                    .map(|ver| KeyScenario {
                        ver,
                        private_key_pem: crate::demo_private_key_pem(ver).map(str::to_string),
                        private_key_file: None,
                    })
                    .collect(),
                faults: Faults::default(),
            }],
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let mut seen = std::collections::HashSet::new();
        for c in &self.corp {
            if c.corpid.is_empty() || c.secret.is_empty() {
                return bad("corpid and secret must not be empty".into());
            }
            if !seen.insert(c.corpid.as_str()) {
                return bad(format!("duplicate corpid {}", c.corpid));
            }
            if c.key.is_empty() {
                return bad(format!("corp {} has no [[corp.key]]", c.corpid));
            }
            for b in &c.big_records {
                if b.seq == 0 || b.bytes > 1 << 30 || (b.kind == BigKind::Chatrecord && b.depth == 0) {
                    return bad(format!("corp {}: big_records need seq >= 1, bytes <= 1 GiB, depth >= 1", c.corpid));
                }
            }
            if let Some(mix) = &c.media_mix {
                if mix.total() > c.records {
                    return bad(format!("corp {}: media_mix has more items than records", c.corpid));
                }
            }
            if !(c.growth_per_sec.is_finite() && c.growth_per_sec >= 0.0) {
                return bad(format!("corp {}: growth_per_sec must be >= 0", c.corpid));
            }
            let f = &c.faults;
            for (name, r) in [
                ("chat_rc_rate", f.chat_rc_rate),
                ("errcode_rate", f.errcode_rate),
                ("empty_body_rate", f.empty_body_rate),
                ("slow_rate", f.slow_rate),
                ("corrupt_rate", f.corrupt_rate),
                ("unknown_key_ver_rate", f.unknown_key_ver_rate),
                ("long_msgid_rate", f.long_msgid_rate),
                ("media_rc_rate", f.media_rc_rate),
            ] {
                if !(0.0..=1.0).contains(&r) {
                    return bad(format!("corp {}: {name} must be within 0..=1", c.corpid));
                }
            }
        }
        Ok(())
    }
}
