//! Step 3 of a record's flow (ARCHITECTURE.md, "The flow of one record"): an
//! [`EncryptedRecord`] → its complete [`Row`], its media items and what it says about its key.
//!
//! Plain functions over [`crypto`] and [`message`], no actors: the corp actor
//! ([`crate::actors::corp`]) runs [`decode_on`] on the decrypt pool for each fetched page, and
//! `redecrypt` ([`crate::cli::redecrypt`]) and `doctor` call [`decode_record`] / [`key_outcome`]
//! for single rows. The row leaves this module complete: the envelope's `msgid` when the record
//! has none, the ciphertext kept when the record could not be decrypted or its plaintext was not
//! clean (decision 6).
//!
//! [`decode_on_with`] also evaluates the rules in force on every row as soon as it is parsed
//! ([`crate::rules`]), on the same pool thread.
//!
//! [`decode_on`] cuts a page into slices of at most [`SLICE_RECORDS`], each slice its own job
//! decoded sequentially, and catches a panic of decryption or parsing ([`crate::unwind::catch`],
//! decision 1) as [`DecodeError::Panicked`].

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::crypto::{self, Keyring};
use crate::message::{self, MediaRef};
use crate::rules::RuleSet;
use crate::sdk::EncryptedRecord;
use crate::store::{BatchHits, CorpId, MediaItem, Row};

/// Why a page could not be decoded (a record that does not decrypt is no error: it is a row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decryption or parsing panicked (caught).
    #[error("decrypting/parsing a page panicked: {0}")]
    Panicked(String),
    /// The decrypt pool dropped a job without running it (it is shutting down).
    #[error("the decrypt pool dropped a job")]
    PoolGone,
}

/// What decrypting one record says about the key of its `publickey_ver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The key decrypted the record's random key.
    Decrypted,
    /// The key is wrong or missing for this version (the error text).
    KeyFailed(String),
    /// Nothing known about the key (the record itself is corrupt before the RSA step).
    Unknown,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The complete row to store.
    pub row: Row,
    /// Its media items (item 0, then nested items), in item order.
    pub media: Vec<MediaRef>,
    /// What the record says about its key.
    pub key: KeyOutcome,
}

/// A decoded page.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Rows, in seq order.
    pub rows: Vec<Row>,
    /// Media items.
    pub media: Vec<MediaItem>,
    /// What each record says about the key of its `publickey_ver`, in seq order.
    pub keys: Vec<(u32, KeyOutcome)>,
    /// The rule hits of the rows ([`decode_on_with`]; empty without rules).
    pub hits: BatchHits,
}

impl Decoded {
    fn with_capacity(n: usize) -> Self {
        Self { rows: Vec::with_capacity(n), media: Vec::new(), keys: Vec::with_capacity(n), hits: BatchHits::default() }
    }

    fn push(&mut self, record: Record) {
        let Record { row, media, key } = record;
        self.media.extend(media.into_iter().map(|media| MediaItem { msgid: row.msgid.clone(), seq: row.seq, media }));
        self.keys.push((row.publickey_ver, key));
        self.rows.push(row);
    }

    fn extend(&mut self, other: Decoded) {
        self.rows.extend(other.rows);
        self.media.extend(other.media);
        self.keys.extend(other.keys);
        self.hits.extend(other.hits);
    }
}

/// One record → its complete row, media items and key outcome. Never fails: a record that does
/// not decrypt is an undecryptable row that keeps its ciphertext and the reason.
pub fn decode_record(keyring: &Keyring, r: &EncryptedRecord) -> Record {
    match crypto::decrypt_record(keyring, r.publickey_ver, &r.encrypt_random_key, &r.encrypt_chat_msg) {
        Ok(plain) => {
            let message::Parsed { row, media } = message::parse_record(r.seq, r.publickey_ver, &plain);
            Record { row: complete(row, r), media, key: KeyOutcome::Decrypted }
        }
        Err(e) => Record {
            row: message::undecryptable(
                r.seq,
                &r.msgid,
                r.publickey_ver,
                &r.encrypt_random_key,
                &r.encrypt_chat_msg,
                &e.to_string(),
            ),
            media: Vec::new(),
            key: key_outcome(&e),
        },
    }
}

/// What [`message::parse_record`] leaves to the caller, from the envelope: its `msgid` when the
/// plaintext has none, its ciphertext when the plaintext was not clean (so `redecrypt` can retry).
fn complete(mut row: Row, r: &EncryptedRecord) -> Row {
    if row.msgid.is_empty() {
        row.msgid.clone_from(&r.msgid);
    }
    if row.decrypt_error.is_some() {
        row.encrypt_random_key = Some(r.encrypt_random_key.clone());
        row.encrypt_chat_msg = Some(r.encrypt_chat_msg.clone());
    }
    row
}

/// What a decryption failure says about the key: the RSA step failed (wrong key, no key for the
/// version, a random key that is no text) or the record was corrupt before the key was used.
pub fn key_outcome(e: &crypto::CryptoError) -> KeyOutcome {
    use crypto::CryptoError as E;
    match e {
        E::WrongKey { .. } | E::MissingKeyVersion(_) | E::RandomKeyNotText { .. } | E::RsaDecrypt | E::Key(_) => {
            KeyOutcome::KeyFailed(e.to_string())
        }
        // The random key decrypted: the key is right, the message part is corrupt.
        E::Native(_) => KeyOutcome::Decrypted,
        E::CorruptCiphertext { .. } => KeyOutcome::Unknown,
    }
}

/// The rules a page is evaluated with: the rule set in force and the page's corp.
pub type PageRules = (Arc<RuleSet>, CorpId);

/// Decodes records one after the other on the calling thread, evaluating `rules` on each row.
fn decode_slice(keyring: &Keyring, records: &[EncryptedRecord], rules: Option<&PageRules>) -> Decoded {
    let mut out = Decoded::with_capacity(records.len());
    for r in records {
        let record = decode_record(keyring, r);
        if let Some((set, corpid)) = rules {
            set.evaluate(corpid.as_str(), &record.row, &mut out.hits);
        }
        out.push(record);
    }
    out
}

/// Records in one job of [`decode_on`]: a slice takes ~7 ms to decode (an RSA decryption is
/// ~0.21 ms on the benchmark machine), so the pool's threads finish a page within a slice of each
/// other. With one slice per thread, a thread that other work slowed down (the database writer,
/// an SDK thread) kept the page waiting while the thread that was done idled: `cargo bench
/// --bench pipeline`, 2 cores, pages of 1,000, the records' source off the machine, went from
/// 0.77–0.81 of the RSA ceiling to 0.84–0.87 (4 runs each; 16 records per slice gave 0.82–0.85).
pub const SLICE_RECORDS: usize = 32;

/// Decrypts and parses a page on `pool`, catching panics. The page is cut into slices of at most
/// [`SLICE_RECORDS`] (fewer when a page has fewer records than that per pool thread) and each
/// slice is its own job, decoded sequentially: no pool thread ever blocks waiting for another job
/// (a rayon `join` inside a spawned job lets the waiting thread run other corps' jobs on top of
/// its stack, which overflowed it with hundreds of corps).
pub async fn decode_on(
    pool: &rayon::ThreadPool,
    keyring: Arc<Keyring>,
    records: Vec<EncryptedRecord>,
) -> Result<Decoded, DecodeError> {
    decode_on_with(pool, keyring, records, None).await
}

/// [`decode_on`], and each row evaluated against `rules` right after it is parsed, on the same
/// pool thread ([`crate::rules`]): the hits are in [`Decoded::hits`].
pub async fn decode_on_with(
    pool: &rayon::ThreadPool,
    keyring: Arc<Keyring>,
    records: Vec<EncryptedRecord>,
    rules: Option<PageRules>,
) -> Result<Decoded, DecodeError> {
    let rules = rules.map(Arc::new);
    let records = Arc::new(records);
    let slice = records.len().div_ceil(pool.current_num_threads().max(1)).clamp(1, SLICE_RECORDS);
    let jobs: Vec<_> = (0..records.len())
        .step_by(slice)
        .map(|start| {
            let (keyring, records, rules) = (Arc::clone(&keyring), Arc::clone(&records), rules.clone());
            spawn_on(pool, move || {
                let end = (start + slice).min(records.len());
                decode_slice(&keyring, &records[start..end], rules.as_deref())
            })
        })
        .collect();
    let mut out = Decoded::with_capacity(records.len());
    for job in jobs {
        out.extend(job.await.map_err(|_| DecodeError::PoolGone)??);
    }
    Ok(out)
}

/// Spawns `f` on `pool` now; the receiver yields its result, a panic as
/// [`DecodeError::Panicked`].
fn spawn_on<T: Send + 'static>(
    pool: &rayon::ThreadPool,
    f: impl FnOnce() -> T + Send + 'static,
) -> oneshot::Receiver<Result<T, DecodeError>> {
    let (tx, rx) = oneshot::channel();
    pool.spawn(move || {
        let result = crate::unwind::catch(f).map_err(DecodeError::Panicked);
        let _ = tx.send(result);
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, msgid: &str) -> EncryptedRecord {
        EncryptedRecord {
            seq,
            msgid: msgid.into(),
            publickey_ver: 1,
            encrypt_random_key: "bad".into(),
            encrypt_chat_msg: "bad".into(),
        }
    }

    #[test]
    fn a_page_is_decoded_in_slices_in_order() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let records: Vec<EncryptedRecord> = (1..=10u64).map(|seq| record(seq, &format!("m{seq}"))).collect();
        let d = rt.block_on(decode_on(&pool, Arc::new(Keyring::new()), records)).unwrap();
        assert_eq!(d.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
        assert_eq!(d.rows[3].msgid, "m4");
        assert!(d.rows.iter().all(|r| r.decrypt_error.is_some()));
        assert_eq!(d.keys.len(), 10);
        let empty = rt.block_on(decode_on(&pool, Arc::new(Keyring::new()), Vec::new())).unwrap();
        assert!(empty.rows.is_empty());
        // A page of many slices (the pool's threads take them as they come): still in order.
        let n = 10 * SLICE_RECORDS as u64 + 7;
        let records: Vec<EncryptedRecord> = (1..=n).map(|seq| record(seq, &format!("m{seq}"))).collect();
        let d = rt.block_on(decode_on(&pool, Arc::new(Keyring::new()), records)).unwrap();
        assert_eq!(d.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
        assert_eq!(d.keys.len() as u64, n);
    }

    #[test]
    fn a_panic_on_the_decrypt_pool_is_a_typed_error() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let run = |f: Box<dyn FnOnce() -> u32 + Send>| rt.block_on(spawn_on(&pool, f)).unwrap();
        let r = run(Box::new(|| panic!("boom in decrypt")));
        assert!(matches!(&r, Err(DecodeError::Panicked(m)) if m.contains("boom in decrypt")), "{r:?}");
        // A panic inside a parallel iterator reaches the caller too.
        let r = run(Box::new(|| {
            use rayon::prelude::*;
            (0..100u32).into_par_iter().map(|i| if i == 57 { panic!("item {i}") } else { i }).sum::<u32>()
        }));
        assert!(matches!(&r, Err(DecodeError::Panicked(m)) if m.contains("item 57")), "{r:?}");
        assert_eq!(run(Box::new(|| 41 + 1)), Ok(42));
    }

    #[test]
    fn an_undecryptable_record_is_a_complete_row_with_its_ciphertext() {
        let d = decode_record(&Keyring::new(), &record(7, "m7"));
        assert_eq!((d.row.seq, d.row.msgid.as_str(), d.row.publickey_ver), (7, "m7", 1));
        assert_eq!(d.row.encrypt_random_key.as_deref(), Some("bad"));
        assert_eq!(d.row.encrypt_chat_msg.as_deref(), Some("bad"));
        assert!(d.row.decrypt_error.is_some() && d.media.is_empty());
        // No key for the version: the outcome blames the key.
        assert!(matches!(d.key, KeyOutcome::KeyFailed(_)), "{:?}", d.key);
    }

    #[test]
    fn the_envelope_completes_a_parsed_row() {
        let envelope = record(3, "from-envelope");
        // Not JSON: no msgid of its own, a decrypt_error, so the envelope's msgid and ciphertext.
        let parsed = message::parse_record(3, 1, b"not json").row;
        let row = complete(parsed, &envelope);
        assert_eq!(row.msgid, "from-envelope");
        assert!(row.decrypt_error.is_some());
        assert_eq!(row.encrypt_chat_msg.as_deref(), Some("bad"));
        // A clean record keeps its own msgid and no ciphertext.
        let parsed = message::parse_record(3, 1, br#"{"msgid":"own","msgtype":"text","text":{"content":"hi"}}"#).row;
        let row = complete(parsed, &envelope);
        assert_eq!(row.msgid, "own");
        assert!(row.decrypt_error.is_none() && row.encrypt_random_key.is_none() && row.encrypt_chat_msg.is_none());
    }
}
