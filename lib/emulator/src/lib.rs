//! `wework-emulator`: a drop-in emulator of the vendor `libWeWorkFinanceSdk_C.so`.
//!
//! As a cdylib (`libWeWorkFinanceSdk_C.so`) it exports the 17 C functions of the vendor SDK
//! (see `ffi`); as an rlib it offers the same behaviour through the safe [`Emulator`] API.
//! See `lib/emulator/README.md` for environment variables, scenario keys and faults.

#![allow(non_snake_case)] // the crate must be named like the vendor library

pub mod api;
pub mod callback;
pub mod codec;
mod ffi;
mod gen;
pub mod hostile;
mod rng;
pub mod scenario;
pub mod truth;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rsa::{KeySize, Pkcs1PublicEncryptingKey, PrivateDecryptingKey};
use md5::{Digest as _, Md5};

pub use ffi::*;
pub use scenario::{
    BigKind, BigRecord, CorpScenario, CrashKind, Faults, KeyScenario, MediaMix, Scenario, ScenarioError,
};
pub use truth::{TruthMedia, TruthRecord};

use gen::{GenCtx, Generated, Src};
use rng::{hash_bytes, seed_of, Rng};

/// The demo corp's id.
pub const DEMO_CORPID: &str = "wwdemo000000000001";
/// The demo corp's secret: obviously fake (43 chars, like a real one).
pub const DEMO_SECRET: &str = "DEMO-ONLY-secret-not-real-0123456789abcdefg";

/// Plaintext chunk size of GetMediaData (512 KiB).
pub const MEDIA_CHUNK: u64 = 524_288;

const RC_OK: i32 = 0;
const RC_BAD_ARG: i32 = 10000;
const RC_NETWORK: i32 = 10001;
const RC_SYSTEM: i32 = 10003;
const RC_BAD_FILEID: i32 = 10005;

/// The PKCS#8 PEM of the DEMO-ONLY private key of version `ver` (1, 2 or 3).
pub fn demo_private_key_pem(ver: u32) -> Option<&'static str> {
    match ver {
        1 => Some(include_str!("../keys/DEMO-ONLY-v1.pem")),
        2 => Some(include_str!("../keys/DEMO-ONLY-v2.pem")),
        3 => Some(include_str!("../keys/DEMO-ONLY-v3.pem")),
        _ => None,
    }
}

/// A media item as the fake HTTPS API serves it (see [`Emulator::media_file`]).
pub struct MediaFile {
    src: Src,
    aeskey: [u8; 16],
}

impl MediaFile {
    /// The plaintext size in bytes.
    pub fn size(&self) -> u64 {
        self.src.size()
    }

    /// Plaintext bytes `offset..offset+len` (clamped to the size).
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        self.src.read(offset, len)
    }

    /// The AES-128-ECB key the server encrypts the file with: the hex-decoded `aeskey` of the
    /// sdkfileid.
    pub fn aes_key(&self) -> [u8; 16] {
        self.aeskey
    }
}

/// One GetMediaData answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChunk {
    pub outindexbuf: Vec<u8>,
    pub data: Vec<u8>,
    pub is_finish: bool,
}

/// The state of one SDK handle (what `NewSdk` returns wraps one).
#[derive(Debug, Default, Clone)]
pub struct Session {
    corpid: Option<String>,
    secret: Option<Vec<u8>>,
}

struct Corp {
    cfg: CorpScenario,
    keys: Vec<(u32, Pkcs1PublicEncryptingKey)>,
    chat_calls: AtomicU64,
    media_calls: AtomicU64,
    /// Records added by [`Emulator::grow`] (beyond the backlog and `growth_per_sec`).
    grown: AtomicU64,
    /// The kinds of the records of `[corp.media_mix]` (`None`: the normal cycle).
    mix: Option<gen::Mix>,
}

struct Inner {
    seed: u64,
    base_msgtime_ms: u64,
    step_ms: u64,
    corps: Vec<Corp>,
    /// Index of `corps` by corpid (the first of a corpid wins, as a scan would): every call looks
    /// its corp up, and a scenario may have thousands.
    by_id: HashMap<String, usize>,
    created: Instant,
    md5_cache: Mutex<HashMap<(u8, u64, u64), String>>,
    calllog: Option<Mutex<File>>,
    throwaway: OnceLock<Option<Pkcs1PublicEncryptingKey>>,
}

/// The emulated SDK (all corps of one scenario). `Send + Sync`.
pub struct Emulator {
    inner: Result<Inner, String>,
}

static GLOBAL: OnceLock<Emulator> = OnceLock::new();

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn md5_hex(chunks: impl Iterator<Item = Vec<u8>>) -> String {
    let mut h = Md5::new();
    for c in chunks {
        h.update(&c);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Emulator {
    /// Builds an emulator from a scenario (keys are parsed here).
    pub fn new(s: Scenario) -> Result<Emulator, ScenarioError> {
        s.validate()?;
        let mut corps = Vec::new();
        for c in &s.corp {
            let mut keys = Vec::new();
            for k in &c.key {
                let pem = k.pem()?;
                let der = codec::pem_to_der(&pem)
                    .map_err(|e| ScenarioError::Invalid(format!("corp {} key ver {}: {e}", c.corpid, k.ver)))?;
                let pk = codec::public_key_from_pkcs8_der(&der)
                    .map_err(|e| ScenarioError::Invalid(format!("corp {} key ver {}: {e}", c.corpid, k.ver)))?;
                keys.push((k.ver, pk));
            }
            keys.sort_by_key(|(v, _)| *v);
            let mix = c.media_mix.as_ref().map(|m| gen::Mix::new(m, c.records));
            corps.push(Corp {
                cfg: c.clone(),
                keys,
                chat_calls: AtomicU64::new(0),
                media_calls: AtomicU64::new(0),
                grown: AtomicU64::new(0),
                mix,
            });
        }
        let calllog = match std::env::var_os("WWF_EMULATOR_CALLLOG") {
            Some(p) if !p.is_empty() => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|source| ScenarioError::Io { path: p.into(), source })?,
            )),
            _ => None,
        };
        let mut by_id = HashMap::with_capacity(corps.len());
        for (i, c) in corps.iter().enumerate() {
            by_id.entry(c.cfg.corpid.clone()).or_insert(i);
        }
        let emu = Emulator {
            inner: Ok(Inner {
                seed: s.seed,
                base_msgtime_ms: s.base_msgtime_ms,
                step_ms: s.step_ms,
                corps,
                by_id,
                created: Instant::now(),
                md5_cache: Mutex::new(HashMap::new()),
                calllog,
                throwaway: OnceLock::new(),
            }),
        };
        if let Some(p) = std::env::var_os("WWF_EMULATOR_TRUTH").filter(|p| !p.is_empty()) {
            emu.write_truth(std::path::Path::new(&p)).map_err(|source| ScenarioError::Io { path: p.into(), source })?;
        }
        Ok(emu)
    }

    /// The built-in demo scenario: [`DEMO_CORPID`], three DEMO-ONLY keys, 300 records,
    /// 2 records/s growth, no faults, a 3 MiB big file.
    pub fn demo() -> Emulator {
        match Emulator::new(Scenario::demo()) {
            Ok(e) => e,
            Err(e) => Emulator { inner: Err(format!("demo scenario failed: {e}")) },
        }
    }

    /// `WWF_EMULATOR_SCENARIO` (a `.toml` or `.json` path) if set, else the demo scenario.
    pub fn from_env() -> Result<Emulator, ScenarioError> {
        match std::env::var_os("WWF_EMULATOR_SCENARIO").filter(|p| !p.is_empty()) {
            Some(p) => Emulator::new(Scenario::load(std::path::Path::new(&p))?),
            None => Emulator::new(Scenario::demo()),
        }
    }

    /// The process-wide emulator used by the C ABI, created lazily by [`Emulator::from_env`].
    /// On a bad scenario it logs to stderr once and every call answers 10003.
    pub fn global() -> &'static Emulator {
        GLOBAL.get_or_init(|| match Emulator::from_env() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("wework-emulator: bad scenario, every call will return 10003: {e}");
                Emulator { inner: Err(e.to_string()) }
            }
        })
    }

    /// A fresh handle state.
    pub fn new_session(&self) -> Session {
        Session::default()
    }

    /// Like the SDK's Init: stores corpid/secret, checks only that they are non-empty.
    pub fn init(&self, s: &mut Session, corpid: Option<&[u8]>, secret: Option<&[u8]>) -> i32 {
        let (Some(c), Some(k)) = (corpid, secret) else { return RC_BAD_ARG };
        if c.is_empty() || k.is_empty() {
            return RC_BAD_ARG;
        }
        if self.inner.is_err() {
            return RC_SYSTEM;
        }
        s.corpid = Some(String::from_utf8_lossy(c).into_owned());
        s.secret = Some(k.to_vec());
        RC_OK
    }

    /// GetChatData. `Ok(body)` = rc 0 with the raw JSON body (which may carry a non-zero errcode).
    pub fn get_chat_data(
        &self,
        s: &mut Session,
        seq: u64,
        limit: u32,
        proxy: Option<&[u8]>,
        passwd: Option<&[u8]>,
        timeout: i32,
    ) -> Result<Vec<u8>, i32> {
        let _ = (proxy, passwd);
        if limit == 0 || limit > 1000 {
            return Err(RC_BAD_ARG);
        }
        let inner = self.inner.as_ref().map_err(|_| RC_SYSTEM)?;
        // Unknown corp or wrong secret: gettoken fails => 10001.
        let corp = if self.session_ok(s) { inner.corp_of(s) } else { None };
        let res = inner.chat(corp, seq, limit, timeout);
        let rc = res.as_ref().err().copied().unwrap_or(RC_OK);
        inner.log_call("chat", corp.map(|c| c.cfg.corpid.as_str()).or(s.corpid.as_deref()), seq, limit, rc);
        res
    }

    /// GetMediaData: one 512 KiB plaintext chunk starting where `indexbuf` says.
    pub fn get_media_data(
        &self,
        s: &mut Session,
        indexbuf: Option<&[u8]>,
        sdkfileid: Option<&[u8]>,
        proxy: Option<&[u8]>,
        passwd: Option<&[u8]>,
        timeout: i32,
    ) -> Result<MediaChunk, i32> {
        let _ = (proxy, passwd, timeout);
        let inner = self.inner.as_ref().map_err(|_| RC_SYSTEM)?;
        let corp = if self.session_ok(s) { inner.corp_of(s) } else { None };
        let (res, seq) = inner.media(corp, indexbuf, sdkfileid);
        let rc = res.as_ref().err().copied().unwrap_or(RC_OK);
        inner.log_call("media", corp.map(|c| c.cfg.corpid.as_str()).or(s.corpid.as_deref()), seq, 0, rc);
        res
    }

    /// DecryptData (the exact SDK format; see [`codec::open`]).
    pub fn decrypt_data(&self, encrypt_key: Option<&[u8]>, encrypt_msg: Option<&[u8]>) -> Result<Vec<u8>, i32> {
        let (Some(k), Some(m)) = (encrypt_key, encrypt_msg) else { return Err(RC_BAD_ARG) };
        if self.inner.is_err() {
            return Err(RC_SYSTEM);
        }
        codec::open(k, m)
    }

    /// The corp ids of the scenario.
    pub fn corpids(&self) -> Vec<String> {
        self.inner.as_ref().map(|i| i.corps.iter().map(|c| c.cfg.corpid.clone()).collect()).unwrap_or_default()
    }

    /// Makes `n` new records of `corpid` appear now (the next seqs; they are served to every
    /// GetChatData from now on and are in [`Emulator::truth`]). Returns the highest seq now
    /// available, or `None` for a corp not in the scenario. In-process only: an emulator `.so`
    /// in another process has its own counters.
    pub fn grow(&self, corpid: &str, n: u64) -> Option<u64> {
        let inner = self.inner.as_ref().ok()?;
        let corp = inner.corp(corpid)?;
        corp.grown.fetch_add(n, Ordering::SeqCst);
        Some(inner.available(corp))
    }

    /// GetChatData calls of `corpid` so far (through the C ABI or [`Emulator`]'s session API; the
    /// fake HTTPS API serves pages without counting here).
    pub fn chat_calls(&self, corpid: &str) -> u64 {
        let Ok(inner) = self.inner.as_ref() else { return 0 };
        inner.corp(corpid).map_or(0, |c| c.chat_calls.load(Ordering::Relaxed))
    }

    /// The highest seq of `corpid` available now (`None` for a corp not in the scenario).
    pub fn available(&self, corpid: &str) -> Option<u64> {
        let inner = self.inner.as_ref().ok()?;
        inner.corp(corpid).map(|c| inner.available(c))
    }

    /// Ground truth of every record of `corpid` available now (seq 1..=available, without the
    /// `withheld_seqs`, which are never served).
    pub fn truth(&self, corpid: &str) -> Vec<TruthRecord> {
        let Ok(inner) = self.inner.as_ref() else { return Vec::new() };
        let Some(corp) = inner.corp(corpid) else { return Vec::new() };
        (1..=inner.available(corp))
            .filter(|seq| !corp.cfg.withheld_seqs.contains(seq))
            .map(|seq| inner.truth_record(corp, seq))
            .collect()
    }

    /// The original plaintext bytes of a media item.
    pub fn media_bytes(&self, sdkfileid: &str) -> Option<Vec<u8>> {
        let inner = self.inner.as_ref().ok()?;
        let src = inner.find_media(sdkfileid.as_bytes())?.0;
        Some(src.read(0, src.size()))
    }

    /// Whether `secret` is the scenario's secret of `corpid` (what the fake `gettoken` checks).
    pub fn secret_ok(&self, corpid: &str, secret: &[u8]) -> bool {
        let Ok(inner) = self.inner.as_ref() else { return false };
        inner.corp(corpid).is_some_and(|c| c.cfg.secret.as_bytes() == secret)
    }

    /// The GetChatData response body of `corpid` for `seq`/`limit`, with none of the SDK-level
    /// faults (the fake HTTPS API injects its own). Errors are SDK codes: 10000 bad limit,
    /// 10001 unknown corp, 10003 no usable key.
    pub fn chat_page(&self, corpid: &str, seq: u64, limit: u32) -> Result<Vec<u8>, i32> {
        if limit == 0 || limit > 1000 {
            return Err(RC_BAD_ARG);
        }
        let inner = self.inner.as_ref().map_err(|_| RC_SYSTEM)?;
        let corp = inner.corp(corpid).ok_or(RC_NETWORK)?;
        inner.page(corp, seq, limit)
    }

    /// A media item as the WeCom server knows it: found by the `fileid` and `authkey` of its
    /// sdkfileid (which the SDK sends), owned by `corpid`.
    pub fn media_file(&self, corpid: &str, fileid: &str, authkey: &str) -> Option<MediaFile> {
        let inner = self.inner.as_ref().ok()?;
        let (src, owner, _) = inner.find_media_by_fileid(fileid, authkey)?;
        (owner == corpid).then_some(())?;
        Some(MediaFile { src: src.0, aeskey: src.1 })
    }

    fn write_truth(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(File::create(path)?);
        for corpid in self.corpids() {
            for t in self.truth(&corpid) {
                let mut v = serde_json::to_value(&t).map_err(std::io::Error::other)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("corpid".into(), corpid.clone().into());
                }
                writeln!(out, "{v}")?;
            }
        }
        out.flush()
    }
}

struct Record {
    gen: Generated,
    ver: u32,
    corrupt: bool,
}

impl Inner {
    fn corp_of(&self, s: &Session) -> Option<&Corp> {
        self.corp(s.corpid.as_deref()?)
    }

    fn corp(&self, corpid: &str) -> Option<&Corp> {
        self.by_id.get(corpid).and_then(|&i| self.corps.get(i))
    }

    fn available(&self, corp: &Corp) -> u64 {
        let grown = corp.cfg.growth_per_sec * self.created.elapsed().as_secs_f64();
        corp.cfg.records.saturating_add(grown.floor() as u64).saturating_add(corp.grown.load(Ordering::SeqCst))
    }

    fn md5_of(&self, src: &Src) -> String {
        let key = match src {
            Src::Fixture(b) => (0, b.as_ptr() as u64, b.len() as u64),
            Src::Random { seed, size } => (1, *seed, *size),
        };
        if let Some(m) = self.md5_cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return m;
        }
        let size = src.size();
        let m = md5_hex((0..size.div_ceil(MEDIA_CHUNK)).map(|i| src.read(i * MEDIA_CHUNK, MEDIA_CHUNK)));
        if let Ok(mut c) = self.md5_cache.lock() {
            c.insert(key, m.clone());
        }
        m
    }

    fn generate(&self, corp: &Corp, seq: u64) -> Generated {
        let md5 = |s: &Src| self.md5_of(s);
        let ctx = GenCtx {
            seed: self.seed,
            corpid: &corp.cfg.corpid,
            base_msgtime_ms: self.base_msgtime_ms,
            step_ms: self.step_ms,
            big_file_bytes: corp.cfg.big_file_bytes,
            hostile: corp.cfg.hostile,
            big_records: &corp.cfg.big_records,
            mix: corp.mix.as_ref(),
            md5: &md5,
        };
        gen::generate(&ctx, seq)
    }

    fn record(&self, corp: &Corp, seq: u64) -> Record {
        let mut gen = self.generate(corp, seq);
        let mut r = Rng::new(seed_of(&[self.seed, hash_bytes(corp.cfg.corpid.as_bytes()), seq, 0xFA17]));
        let f = &corp.cfg.faults;
        let key_pick = r.below(corp.keys.len() as u64) as usize;
        let corrupt = r.chance(f.corrupt_rate) || hostile::cuts_ciphertext(gen.hostile);
        let unknown = r.chance(f.unknown_key_ver_rate);
        let ver = if unknown { 99 } else { corp.keys.get(key_pick).map_or(1, |k| k.0) };
        if r.chance(f.long_msgid_rate) {
            let long = format!("{}-{}", gen.msgid, "L".repeat(300));
            let old = format!("\"msgid\":{}", serde_json::Value::from(gen.msgid.as_str()));
            let new = format!("\"msgid\":{}", serde_json::Value::from(long.as_str()));
            gen.plaintext = gen.plaintext.replacen(&old, &new, 1);
            gen.msgid = long;
        }
        Record { gen, ver, corrupt }
    }

    fn truth_record(&self, corp: &Corp, seq: u64) -> TruthRecord {
        let r = self.record(corp, seq);
        TruthRecord {
            seq,
            msgid: r.gen.msgid,
            publickey_ver: r.ver,
            msgtype: r.gen.msgtype,
            action: r.gen.action,
            corrupt: r.corrupt,
            hostile: r.gen.hostile.map(str::to_string),
            plaintext: r.gen.plaintext,
            media: r
                .gen
                .media
                .iter()
                .map(|m| TruthMedia {
                    item: m.item,
                    sdkfileid: m.sdkfileid.clone(),
                    md5: m.md5.clone(),
                    size: m.src.size(),
                    kind: m.kind.into(),
                    ext: m.ext.into(),
                })
                .collect(),
        }
    }

    fn throwaway_key(&self) -> Option<&Pkcs1PublicEncryptingKey> {
        self.throwaway
            .get_or_init(|| {
                let sk = PrivateDecryptingKey::generate(KeySize::Rsa2048).ok()?;
                Pkcs1PublicEncryptingKey::new(sk.public_key()).ok()
            })
            .as_ref()
    }

    fn chatdata_entry(&self, corp: &Corp, seq: u64) -> Result<String, i32> {
        let r = self.record(corp, seq);
        let seal_seed = seed_of(&[self.seed, hash_bytes(corp.cfg.corpid.as_bytes()), seq, 0x5EA1]);
        let raw = hostile::raw_plaintext(&r.gen);
        // A cut record is corrupt by its cut alone: sealed whole, then cut.
        let mut sealed = if r.corrupt && !hostile::cuts_ciphertext(r.gen.hostile) {
            codec::seal_corrupt(&raw, seal_seed)
        } else {
            codec::seal(&raw, seal_seed)
        };
        hostile::cut_ciphertext(r.gen.hostile, &mut sealed.encrypt_chat_msg);
        let key =
            if r.ver == 99 { self.throwaway_key() } else { corp.keys.iter().find(|k| k.0 == r.ver).map(|k| &k.1) };
        let erk = codec::rsa_encrypt(key.ok_or(RC_SYSTEM)?, &sealed.encrypt_key)?;
        // Field order as the real server sends it.
        Ok(format!(
            "{{\"seq\":{seq},\"msgid\":{},\"publickey_ver\":{},\"encrypt_random_key\":{},\"encrypt_chat_msg\":{}}}",
            serde_json::Value::from(r.gen.msgid),
            r.ver,
            serde_json::Value::from(erk),
            serde_json::Value::from(sealed.encrypt_chat_msg),
        ))
    }

    fn chat(&self, corp: Option<&Corp>, seq: u64, limit: u32, timeout: i32) -> Result<Vec<u8>, i32> {
        let Some(corp) = corp else { return Err(RC_NETWORK) };
        let f = &corp.cfg.faults;
        let n = corp.chat_calls.fetch_add(1, Ordering::Relaxed);
        let mut r = Rng::new(seed_of(&[self.seed, hash_bytes(corp.cfg.corpid.as_bytes()), n, 0xCA11]));
        let (slow, rc_fault, errcode_fault, empty) =
            (r.chance(f.slow_rate), r.chance(f.chat_rc_rate), r.chance(f.errcode_rate), r.chance(f.empty_body_rate));
        if f.hang_ms > 0 && (f.hang_calls == 0 || n < f.hang_calls) {
            std::thread::sleep(Duration::from_millis(f.hang_ms));
        }
        if slow && f.slow_ms > 0 {
            let limit_ms = if timeout > 0 { u64::from(timeout.unsigned_abs()) * 1000 } else { u64::MAX };
            std::thread::sleep(Duration::from_millis(f.slow_ms.min(limit_ms)));
            if f.slow_ms > limit_ms {
                return Err(RC_NETWORK);
            }
        }
        // The bad_secret fault: gettoken fails => 10001, like the real SDK with a wrong secret.
        if f.bad_secret {
            return Err(RC_NETWORK);
        }
        if rc_fault {
            return Err(f.chat_rc);
        }
        if errcode_fault {
            let body = serde_json::json!({"errcode": f.errcode, "errmsg": format!("emulated errcode {}", f.errcode)});
            return Ok(body.to_string().into_bytes());
        }
        if empty {
            return Ok(Vec::new());
        }
        if f.crash_seq > 0 {
            let last = seq.saturating_add(u64::from(limit)).min(self.available(corp));
            if seq < f.crash_seq && f.crash_seq <= last {
                crash(f.crash);
            }
        }
        self.page(corp, seq, limit)
    }

    /// The fault-free GetChatData body: records seq+1 ..= seq+limit of what is available now.
    fn page(&self, corp: &Corp, seq: u64, limit: u32) -> Result<Vec<u8>, i32> {
        let avail = self.available(corp);
        let first = seq.saturating_add(1);
        let last = seq.saturating_add(u64::from(limit)).min(avail);
        let mut body = String::from("{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[");
        // A withheld seq is never served (a gap): the page holds the next `limit` others.
        let withheld = &corp.cfg.withheld_seqs;
        let last = if withheld.is_empty() {
            last
        } else {
            let behind = withheld.iter().filter(|w| **w >= first && **w <= avail).count() as u64;
            seq.saturating_add(u64::from(limit)).saturating_add(behind).min(avail)
        };
        let page = (first..=last).filter(|s| !withheld.contains(s)).take(limit as usize);
        for (i, s) in page.enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&self.chatdata_entry(corp, s)?);
        }
        body.push_str("]}");
        Ok(body.into_bytes())
    }

    fn find_media(&self, sdkfileid: &[u8]) -> Option<(Src, String, u64)> {
        let (corpid, seq, item) = gen::parse_sdkfileid(sdkfileid)?;
        let corp = self.corp(&corpid)?;
        if seq == 0 || seq > self.available(corp) {
            return None;
        }
        let gen = self.generate(corp, seq);
        let m = gen.media.into_iter().find(|m| m.item == item)?;
        // The authkey/aeskey must match too: a sdkfileid is only valid verbatim.
        if m.sdkfileid.as_bytes() != sdkfileid {
            return None;
        }
        Some((m.src, corpid, seq))
    }

    /// (source and AES-128 key, corpid, seq) of the media item whose sdkfileid holds `fileid` and
    /// `authkey`.
    fn find_media_by_fileid(&self, fileid: &str, authkey: &str) -> Option<((Src, [u8; 16]), String, u64)> {
        let mut it = fileid.strip_prefix("emu/")?.rsplitn(3, '/');
        let item: u32 = it.next()?.parse().ok()?;
        let seq: u64 = it.next()?.parse().ok()?;
        let corpid = it.next()?;
        let corp = self.corp(corpid)?;
        if seq == 0 || seq > self.available(corp) {
            return None;
        }
        let m = self.generate(corp, seq).media.into_iter().find(|m| m.item == item)?;
        let (f, a, aeskey) = gen::sdkfileid_parts(m.sdkfileid.as_bytes())?;
        if f != fileid || a != authkey {
            return None;
        }
        Some(((m.src, aeskey), corpid.to_string(), seq))
    }

    fn media(
        &self,
        corp: Option<&Corp>,
        indexbuf: Option<&[u8]>,
        sdkfileid: Option<&[u8]>,
    ) -> (Result<MediaChunk, i32>, u64) {
        let Some(fileid) = sdkfileid.filter(|f| !f.is_empty()) else { return (Err(RC_BAD_ARG), 0) };
        let Some(corp) = corp else { return (Err(RC_NETWORK), 0) };
        let f = &corp.cfg.faults;
        if f.bad_secret {
            return (Err(RC_NETWORK), 0);
        }
        let n = corp.media_calls.fetch_add(1, Ordering::Relaxed);
        let mut r = Rng::new(seed_of(&[self.seed, hash_bytes(corp.cfg.corpid.as_bytes()), n, 0x3ED1A]));
        if f.hang_ms > 0 {
            std::thread::sleep(Duration::from_millis(f.hang_ms));
        }
        if f.media_chunk_ms > 0 {
            std::thread::sleep(Duration::from_millis(f.media_chunk_ms));
        }
        if r.chance(f.media_rc_rate) {
            return (Err(f.media_rc), 0);
        }
        let Some((src, owner, seq)) = self.find_media(fileid) else { return (Err(RC_BAD_FILEID), 0) };
        if owner != corp.cfg.corpid {
            return (Err(RC_BAD_FILEID), seq);
        }
        if f.media_crash_seq > 0 && seq == f.media_crash_seq {
            crash(f.crash);
        }
        if f.media_hang_seq > 0 && seq == f.media_hang_seq {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let offset = match indexbuf.filter(|b| !b.is_empty()) {
            None => 0,
            Some(b) => match parse_range(b) {
                Some(o) => o,
                None => return (Err(RC_BAD_ARG), seq),
            },
        };
        let size = src.size();
        if offset > size {
            return (Err(RC_BAD_ARG), seq);
        }
        let data = src.read(offset, MEDIA_CHUNK);
        let next = offset + data.len() as u64;
        let is_finish = next >= size;
        let outindexbuf = format!("Range:bytes={}-{}", next, next + MEDIA_CHUNK - 1).into_bytes();
        (Ok(MediaChunk { outindexbuf, data, is_finish }), seq)
    }

    fn log_call(&self, call: &str, corpid: Option<&str>, seq: u64, limit: u32, rc: i32) {
        let Some(log) = &self.calllog else { return };
        let line = serde_json::json!({
            "pid": std::process::id(),
            "call": call,
            "corpid": corpid.unwrap_or(""),
            "seq": seq,
            "limit": limit,
            "rc": rc,
            "t_ms": now_ms(),
        })
        .to_string()
            + "\n";
        if let Ok(mut f) = log.lock() {
            // One write per line on an O_APPEND file: lines of concurrent processes do not mix.
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Kills the process the way the vendor SDK does when it crashes (the `crash_seq` faults). No
/// unwinding, no destructors: like a real crash, nothing of the process survives it.
fn crash(kind: CrashKind) -> ! {
    match kind {
        CrashKind::Abort => std::process::abort(),
        CrashKind::Segv => {
            // SAFETY: raise() has no memory-safety preconditions; SIGSEGV's default action ends
            // the process. Reset to the default first, in case the host installed a handler.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
            std::process::abort()
        }
    }
}

/// `Range:bytes=A-B` -> A.
fn parse_range(b: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(b).ok()?;
    let rest = s.trim().strip_prefix("Range:bytes=")?;
    let (a, _) = rest.split_once('-')?;
    a.trim().parse().ok()
}

impl Emulator {
    /// Checks the session's secret against the scenario (wrong secret or unknown corp: 10001).
    fn session_ok(&self, s: &Session) -> bool {
        let Ok(inner) = self.inner.as_ref() else { return false };
        match (inner.corp_of(s), &s.secret) {
            (Some(c), Some(k)) => c.cfg.secret.as_bytes() == k.as_slice(),
            _ => false,
        }
    }
}
