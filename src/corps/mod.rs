//! Corp sources → the desired set of corps.
//!
//! A [`CorpSpec`] is everything a corp's pipeline needs: its validated [`CorpId`], secret, page
//! size, SDK timeout and parsed [`Keyring`]. Specs come from two sources, read by [`load`]:
//!
//! - the `corplist` / `corp_keys` tables ([`from_table`]): `status = 1` rows are enabled; each
//!   `corp_keys` row is one key version and `corplist.prikey` is the fallback key (ARCHITECTURE.md
//!   decision 5);
//! - a corps TOML file ([`from_file`], format in `config/corps.example.toml`):
//!   `[[corp]] corpid, secret, name, limits, timeout, enabled` with `[[corp.key]] ver, pem | file`.
//!
//! A corp that is defined twice (in one source or across both), has an invalid corpid, an
//! unparsable key or a stored secret that cannot be decrypted ([`crate::security`]) is reported
//! in [`Desired::errors`] and left out; every other corp proceeds. Every spec carries its
//! [`CorpSource`], so that the commands can show where a corp is defined; [`read`] gives every
//! corp of every source (disabled ones too) for the commands that work on any configured corp.
//! [`LeftOutLog`] keeps a corp left out for the same reason from being logged at every reload.
//! [`CorpSpec::fingerprint`] changes whenever the secret, the keys, the limit or the timeout
//! change, so that the supervisor knows which running corps to restart.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::crypto::Keyring;
use crate::sdk::{SdkTimeout, MAX_LIMIT};
use crate::secret::Secret;
use crate::security::AtRest;
use crate::store::{CorpId, Store};

mod file;
mod table;

pub use file::from_file;
pub use table::{from_table, table_keyring};

/// One corp as the pipeline needs it. Secrets never print (`Secret`, `Keyring` debug output).
#[derive(Clone)]
pub struct CorpSpec {
    /// The validated corpid.
    pub corpid: CorpId,
    /// Display name.
    pub name: String,
    /// 会话存档 secret.
    pub secret: Secret,
    /// Records per GetChatData call, 1..=1000.
    pub limit: u32,
    /// Per-call SDK timeout.
    pub timeout: SdkTimeout,
    /// The corp's private keys.
    pub keyring: Arc<Keyring>,
    /// `corplist.update = 1`: restart this corp once (the supervisor then resets the flag).
    /// Not part of the fingerprint.
    pub update_requested: bool,
    /// The proxy of the corp's SDK calls (`[sdk] proxy`; set by [`load`] from [`Sources::proxy`]).
    pub proxy: Proxy,
    /// The corp's lease when leases are on (set by the supervisor; a new token restarts the
    /// corp, so that every batch of one actor carries one token).
    pub fence: Option<crate::store::Fence>,
    /// Where the corp is defined (not part of the fingerprint).
    pub source: CorpSource,
    /// The corp's callback token and EncodingAESKey (`crate::callback`), when configured; only
    /// whether there are any is part of the fingerprint (it sets the poll interval).
    pub callback: Option<crate::callback::CallbackKeys>,
    /// Hash of the secret and the public-key fingerprints (computed once at construction).
    key_digest: String,
    /// Hash of the proxy URL and credentials ("" without a proxy).
    proxy_digest: String,
}

/// The proxy for SDK calls: `http://host:port`, `socks5://…`, with optional `user:password`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Proxy {
    /// The proxy URL; `None` = direct.
    pub url: Option<String>,
    /// The proxy credentials (secret).
    pub password: Option<Secret>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.url.as_deref().map(crate::secret::redact_url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for CorpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorpSpec")
            .field("corpid", &self.corpid)
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("timeout", &self.timeout)
            .field("keyring", &self.keyring)
            .field("proxy", &self.proxy)
            .field("source", &self.source)
            .field("callback", &self.callback.is_some())
            .finish_non_exhaustive()
    }
}

impl CorpSpec {
    /// Builds a spec; `limit` is clamped into 1..=1000.
    pub fn new(
        corpid: CorpId,
        name: impl Into<String>,
        secret: Secret,
        limit: u32,
        timeout: SdkTimeout,
        keyring: Keyring,
    ) -> Self {
        let key_digest = digest(&secret, &keyring);
        Self {
            corpid,
            name: name.into(),
            secret,
            limit: limit.clamp(1, MAX_LIMIT),
            timeout,
            keyring: Arc::new(keyring),
            update_requested: false,
            proxy: Proxy::default(),
            fence: None,
            source: CorpSource::Fixed,
            callback: None,
            key_digest,
            proxy_digest: String::new(),
        }
    }

    /// Sets the proxy (a change of it changes the [`fingerprint`](Self::fingerprint)).
    #[must_use]
    pub fn with_proxy(mut self, proxy: &Proxy) -> Self {
        use std::hash::{Hash, Hasher};
        self.proxy_digest = if proxy.url.is_none() && proxy.password.is_none() {
            String::new()
        } else {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            proxy.url.hash(&mut h);
            proxy.password.as_ref().map(Secret::expose).hash(&mut h);
            format!("{:016x}", h.finish())
        };
        self.proxy = proxy.clone();
        self
    }

    /// Sets [`CorpSpec::source`].
    #[must_use]
    pub fn with_source(mut self, source: CorpSource) -> Self {
        self.source = source;
        self
    }

    /// Sets [`CorpSpec::callback`].
    #[must_use]
    pub fn with_callback(mut self, callback: Option<crate::callback::CallbackKeys>) -> Self {
        self.callback = callback;
        self
    }

    /// Sets [`CorpSpec::fence`].
    #[must_use]
    pub fn with_fence(mut self, fence: crate::store::Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Sets [`CorpSpec::update_requested`].
    #[must_use]
    pub fn with_update_requested(mut self, requested: bool) -> Self {
        self.update_requested = requested;
        self
    }

    /// Changes when the secret, keys, limit, timeout or proxy change (never contains a secret:
    /// secrets enter only through a one-way hash).
    pub fn fingerprint(&self) -> String {
        let fence = self.fence.as_ref().map(|f| format!("{}#{}", f.holder, f.token)).unwrap_or_default();
        // Callbacks change the poll interval; "" without them keeps older fingerprints unchanged.
        let callback = if self.callback.is_some() { "|callback" } else { "" };
        format!(
            "{}|{}|{}|{}|{}|{fence}{callback}",
            self.corpid,
            self.limit,
            self.timeout.secs(),
            self.key_digest,
            self.proxy_digest
        )
    }
}

impl PartialEq for CorpSpec {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

/// A non-cryptographic digest is enough here: it only detects changes, and the secret is hashed
/// together with the public-key fingerprints (no secret leaks through a 64-bit SipHash).
fn digest(secret: &Secret, keyring: &Keyring) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    secret.expose().hash(&mut h);
    format!("{:016x}|{:?}", h.finish(), keyring)
}

/// Where a corp is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CorpSource {
    /// The `corplist` / `corp_keys` tables.
    Table,
    /// The corps file (`[corps] file`).
    File,
    /// Given directly (demo, tests).
    Fixed,
}

impl fmt::Display for CorpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CorpSource::Table => "table",
            CorpSource::File => "file",
            CorpSource::Fixed => "fixed",
        })
    }
}

/// Defaults for settings a corp does not give (`[pull] limit`, `[sdk] timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Records per call when the corp's `limits` is 0 or absent.
    pub limit: u32,
    /// SDK timeout when the corp's `timeout` is 0 or absent.
    pub timeout: SdkTimeout,
}

/// The outcome of reading the sources.
#[derive(Debug, Default)]
pub struct Desired {
    /// Enabled, valid corps by corpid.
    pub corps: BTreeMap<CorpId, CorpSpec>,
    /// Corps left out, with why (`(corpid as written, error)`).
    pub errors: Vec<(String, String)>,
    /// Disabled corps (`corplist.status = 0`, `enabled = false`) with their source.
    pub disabled: Vec<(String, CorpSource)>,
}

/// Logs each corp left out once per change of its reason, not at every reload: the sources are
/// re-read every `reload_interval`, and the same ERROR 30 times an hour hides the ones that
/// matter. A corp that comes back is logged at INFO; one left out again is logged again.
#[derive(Debug, Default)]
pub struct LeftOutLog {
    last: BTreeMap<String, String>,
}

impl LeftOutLog {
    /// Logs what changed since the previous call; returns how many ERROR lines it wrote.
    pub fn report(&mut self, errors: &[(String, String)]) -> usize {
        let now: BTreeMap<String, String> = errors.iter().cloned().collect();
        let mut logged = 0;
        for (corpid, error) in &now {
            if self.last.get(corpid) != Some(error) {
                tracing::error!(%corpid, %error, "corp left out");
                logged += 1;
            }
        }
        for corpid in self.last.keys().filter(|c| !now.contains_key(*c)) {
            tracing::info!(%corpid, "corp no longer left out");
        }
        self.last = now;
        logged
    }
}

/// Why a whole source could not be read (the previous desired set must then be kept).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The corplist/corp_keys tables could not be read.
    #[error("reading corplist/corp_keys failed: {0}")]
    Table(#[from] crate::store::StoreError),
    /// The corps file could not be read or is not valid TOML.
    #[error("corps file {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        /// The file.
        path: PathBuf,
        /// The line of a syntax error (never its text: it may hold a value).
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
}

/// Where corps come from.
#[derive(Clone, Default)]
pub struct Sources {
    /// Read `corplist`/`corp_keys` from this store.
    pub table: Option<Arc<dyn Store>>,
    /// Read this corps TOML file.
    pub file: Option<PathBuf>,
    /// Corps given directly (demo, tests).
    pub fixed: Vec<CorpSpec>,
    /// Defaults for unset per-corp settings.
    pub defaults: Option<Defaults>,
    /// The proxy of every corp's SDK calls.
    pub proxy: Proxy,
    /// The master key that opens sealed secrets and keys of the tables.
    pub at_rest: AtRest,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("table", &self.table.is_some())
            .field("file", &self.file)
            .field("fixed", &self.fixed.len())
            .field("proxy", &self.proxy)
            .field("at_rest", &self.at_rest)
            .finish()
    }
}

/// Every corp of every source, one part per source, enabled or not (not merged).
pub async fn read(sources: &Sources) -> Result<Vec<Vec<Candidate>>, SourceError> {
    let defaults = sources.defaults.unwrap_or(Defaults { limit: MAX_LIMIT, timeout: SdkTimeout::default() });
    let mut parts: Vec<Vec<Candidate>> = Vec::new();
    if let Some(store) = &sources.table {
        parts.push(from_table(store.as_ref(), defaults, &sources.at_rest).await?);
    }
    if let Some(path) = &sources.file {
        // Off the async thread: a new key costs milliseconds to check, thousands of them seconds.
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || from_file(&p, defaults)).await.map_err(|e| {
            SourceError::File { path: path.clone(), line: None, message: format!("reading the file stopped: {e}") }
        })?;
        parts.push(read?);
    }
    parts.push(
        sources
            .fixed
            .iter()
            .cloned()
            .map(|s| Candidate { corpid: s.corpid.to_string(), source: s.source, enabled: true, spec: Ok(s) })
            .collect(),
    );
    Ok(parts)
}

/// One configured corp (enabled or not) of any source, by corpid; `Ok(None)` when no source
/// defines it, `Err` with why when it is defined more than once or its entry is invalid.
pub async fn find(sources: &Sources, corpid: &CorpId) -> Result<Option<Result<CorpSpec, String>>, SourceError> {
    let found: Vec<Candidate> =
        read(sources).await?.into_iter().flatten().filter(|c| c.corpid == corpid.as_str()).collect();
    Ok(match found.len() {
        0 => None,
        1 => found.into_iter().next().map(|c| c.spec),
        _ => Some(Err(format!(
            "corp is defined more than once ({})",
            found.iter().map(|c| c.source.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    })
}

/// Reads every source and merges them; a corp defined in more than one place is an error for it.
pub async fn load(sources: &Sources) -> Result<Desired, SourceError> {
    let mut desired = merge(read(sources).await?);
    if sources.proxy != Proxy::default() {
        for spec in desired.corps.values_mut() {
            *spec = spec.clone().with_proxy(&sources.proxy);
        }
    }
    Ok(desired)
}

/// One corp as read from a source.
#[derive(Debug)]
pub struct Candidate {
    /// The corpid as written.
    pub corpid: String,
    /// Where it is defined.
    pub source: CorpSource,
    /// `corplist.status = 1` / `enabled = true`.
    pub enabled: bool,
    /// The spec, or why it is invalid (for a disabled corp: not an error of the sources).
    pub spec: Result<CorpSpec, String>,
}

/// Merges candidates: a corpid seen more than once (enabled or not) is an error for that corp.
pub fn merge(parts: Vec<Vec<Candidate>>) -> Desired {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in parts.iter().flatten() {
        *seen.entry(c.corpid.clone()).or_default() += 1;
    }
    let mut desired = Desired::default();
    let mut reported = std::collections::HashSet::new();
    for c in parts.into_iter().flatten() {
        if seen.get(&c.corpid).copied().unwrap_or(0) > 1 {
            if reported.insert(c.corpid.clone()) {
                desired.errors.push((c.corpid.clone(), "corp is defined more than once".into()));
            }
            continue;
        }
        match (c.enabled, c.spec) {
            (true, Ok(spec)) => {
                desired.corps.insert(spec.corpid.clone(), spec);
            }
            (true, Err(e)) => desired.errors.push((c.corpid, e)),
            (false, _) => desired.disabled.push((c.corpid, c.source)),
        }
    }
    desired
}

pub(crate) fn limit_or(limit: i64, defaults: Defaults) -> u32 {
    if limit <= 0 {
        defaults.limit
    } else {
        u32::try_from(limit.min(i64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT)
    }
}

pub(crate) fn timeout_or(timeout: i64, defaults: Defaults) -> SdkTimeout {
    if timeout <= 0 {
        defaults.timeout
    } else {
        SdkTimeout::from_secs(timeout.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;
    use std::path::Path;

    #[test]
    fn a_proxy_change_changes_the_fingerprint_without_showing_the_password() {
        let key = crypto::parse_private_key(emulator::demo_private_key_pem(1).unwrap().as_bytes()).unwrap();
        let mut ring = Keyring::new();
        ring.insert(1, key);
        let spec =
            CorpSpec::new(CorpId::new("wwproxy").unwrap(), "p", Secret::new("s"), 10, SdkTimeout::from_secs(5), ring);
        let proxy = |url: &str, pw: &str| Proxy { url: Some(url.into()), password: Some(Secret::new(pw)) };
        let a = spec.clone().with_proxy(&proxy("http://10.0.0.1:3128", "u:pw-one"));
        let b = spec.clone().with_proxy(&proxy("http://10.0.0.1:3128", "u:pw-two"));
        let c = spec.clone().with_proxy(&proxy("http://10.0.0.2:3128", "u:pw-one"));
        assert_ne!(spec.fingerprint(), a.fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint(), "a new password restarts the corp");
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), spec.clone().with_proxy(&proxy("http://10.0.0.1:3128", "u:pw-one")).fingerprint());
        for shown in [a.fingerprint(), format!("{a:?}")] {
            assert!(!shown.contains("pw-one"), "{shown}");
        }
        assert_eq!(spec.clone().with_proxy(&Proxy::default()).fingerprint(), spec.fingerprint());
    }

    #[test]
    fn a_corp_left_out_is_logged_once_per_change() {
        let mut log = LeftOutLog::default();
        let bad = vec![("ww1".to_string(), "no key".to_string())];
        assert_eq!(log.report(&bad), 1);
        for _ in 0..5 {
            assert_eq!(log.report(&bad), 0, "the same reason again: not logged");
        }
        assert_eq!(log.report(&[("ww1".to_string(), "bad key".to_string())]), 1, "a new reason is logged");
        assert_eq!(log.report(&[]), 0);
        assert_eq!(log.report(&bad), 1, "left out again after coming back: logged again");
    }

    const PEM: &str = include_str!("../../tests/fixtures/keys/rsa2048.pkcs8.pem");

    fn defaults() -> Defaults {
        Defaults { limit: 100, timeout: SdkTimeout::from_secs(5) }
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("corps.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn file_errors_are_per_corp() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[[corp]]\ncorpid = \"ok1\"\nsecret = \"s\"\nlimits = 5000\n[[corp.key]]\nver = 1\npem = '''{PEM}'''\n\
             [[corp]]\ncorpid = \"badkey\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = \"nope\"\n\
             [[corp]]\ncorpid = \"twice\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = '''{PEM}'''\n\
             [[corp]]\ncorpid = \"twice\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = '''{PEM}'''\n\
             [[corp]]\ncorpid = \"off\"\nsecret = \"s\"\nenabled = false\n"
        );
        let p = write(dir.path(), &text);
        let d = merge(vec![from_file(&p, defaults()).unwrap()]);
        assert_eq!(d.corps.keys().map(CorpId::as_str).collect::<Vec<_>>(), ["ok1"]);
        let ok = &d.corps[&CorpId::new("ok1").unwrap()];
        assert_eq!(ok.limit, 1000);
        assert_eq!(ok.timeout, SdkTimeout::from_secs(5));
        let mut names: Vec<&str> = d.errors.iter().map(|(c, _)| c.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["badkey", "twice"], "{:?}", d.errors);
        assert!(!format!("{d:?}").contains("MII"), "no key material in debug output");
    }

    #[test]
    fn fingerprint_follows_secret_keys_limit_timeout() {
        let key = Arc::new(crypto::parse_private_key(PEM.as_bytes()).unwrap());
        let mut ring = Keyring::new();
        ring.insert(1, key.clone());
        let id = CorpId::new("c1").unwrap();
        let t = SdkTimeout::from_secs(5);
        let a = CorpSpec::new(id.clone(), "n", Secret::new("s"), 10, t, ring.clone());
        assert_eq!(a, CorpSpec::new(id.clone(), "other name", Secret::new("s"), 10, t, ring.clone()));
        assert_ne!(a, CorpSpec::new(id.clone(), "n", Secret::new("s2"), 10, t, ring.clone()));
        assert_ne!(a, CorpSpec::new(id.clone(), "n", Secret::new("s"), 11, t, ring.clone()));
        assert_ne!(a, CorpSpec::new(id.clone(), "n", Secret::new("s"), 10, SdkTimeout::from_secs(6), ring.clone()));
        let mut ring2 = ring.clone();
        ring2.insert(2, key);
        assert_ne!(a, CorpSpec::new(id, "n", Secret::new("s"), 10, t, ring2));
        assert!(!a.fingerprint().contains("|s|"));
    }
}
