//! The native `DecryptData` never panics: at least 1,000,000 random and mutated inputs.
//!
//! - Mutations of valid records (sealed by the emulator and by the independent sealer in
//!   `crypto_support`): bit flips, truncations, insertions, deletions, duplications, swapped
//!   key/msg, keys and messages of different records, foreign bytes, and hostile `info` messages
//!   (absurd, negative, off-by-one lengths; missing, empty, huge `k1`; bad wire types; overlong
//!   varints; random bytes) re-sealed under the message's own `K` so that they are really parsed.
//! - A proptest part: random keys and messages, and random `info` bytes re-sealed under `K`.
//!
//! Every input must give the same answer (plaintext or SDK error code) as the emulator's
//! reference decoder, `check_layout` must agree with `decrypt_data` up to the AES stage, and
//! nothing may panic. The count is printed and asserted.

use crate::crypto_support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crypto_support::{encode_info, hand_seal, put_varint, seal_key_blob, SplitMix};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use wework_msgaudit::crypto::native::{self, NativeError};

const TOTAL: u64 = 1_000_000;
/// Inputs from the proptest part; the rest are mutations.
const PROPTEST_CASES: u32 = 100_000;

/// Outcomes counted: decrypted, then SDK codes 10000, 10005, 10006, 10008.
const OUTCOMES: [&str; 5] = ["ok", "10000", "10005", "10006", "10008"];

/// One input: decrypt it, check it against the guard and the reference decoder. Returns the
/// index of its outcome in [`OUTCOMES`].
fn check(key: &[u8], msg: &[u8]) -> usize {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let got = native::decrypt_data(key, msg);
        let layout = native::check_layout(key, msg);
        match (&got, &layout) {
            (Ok(_), Ok(())) => {}
            // Only the AES stage of the core comes after the guard.
            (Err(NativeError::BadMessage(_)), Ok(())) => {}
            (Err(e), Err(l)) => assert_eq!(e, l, "guard and decryption disagree"),
            (Ok(_), Err(l)) => panic!("decrypts, yet the guard says {l}"),
            (Err(e), Ok(())) => panic!("the guard passed, decryption failed with {e}"),
        }
        let reference = emulator::codec::open(key, msg);
        match (&got, &reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "plaintexts differ"),
            (Err(e), Err(code)) => assert_eq!(e.sdk_code(), *code, "codes differ: {e}"),
            _ => panic!("native {:?} vs reference {:?}", got.as_ref().map(Vec::len), reference.as_ref().map(Vec::len)),
        }
        match got.map_err(|e| e.sdk_code()) {
            Ok(_) => 0,
            Err(10000) => 1,
            Err(10005) => 2,
            Err(10006) => 3,
            Err(10008) => 4,
            Err(other) => panic!("unexpected code {other}"),
        }
    }));
    match outcome {
        Ok(i) => i,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{what}\n  key = {:?}\n  msg = {:?}", String::from_utf8_lossy(key), String::from_utf8_lossy(msg));
        }
    }
}

type Tally = [AtomicU64; 5];

struct Record {
    key: Vec<u8>,
    msg: Vec<u8>,
}

fn corpus() -> Vec<Record> {
    let mut out = Vec::new();
    let mut rng = SplitMix(0xC0FFEE);
    for (i, len) in [0usize, 1, 15, 16, 17, 31, 32, 48, 100, 300, 700, 1500, 5000].into_iter().enumerate() {
        for j in 0..3u64 {
            let p: Vec<u8> = (0..len).map(|n| b"{\"msgid\":1}"[n % 11]).collect();
            let s = emulator::codec::seal(&p, i as u64 * 10 + j);
            out.push(Record { key: s.encrypt_key.into_bytes(), msg: s.encrypt_chat_msg.into_bytes() });
            let h = hand_seal(&p, &mut rng, [0, 32, 40][j as usize]);
            out.push(Record { key: h.encrypt_key.into_bytes(), msg: h.encrypt_chat_msg.into_bytes() });
        }
    }
    out
}

fn big_k(msg: &[u8]) -> Option<[u8; 32]> {
    msg.get(13..45)?.try_into().ok()
}

/// Lengths an attacker (or a bug) could put in `info`.
fn hostile_len(rng: &mut SplitMix, msg_len: usize) -> Option<i64> {
    let m = msg_len as i64;
    Some(match rng.below(14) {
        0 => return None,
        1 => 0,
        2 => -1,
        3 => i64::from(i32::MIN),
        4 => i64::from(i32::MAX),
        5 => i64::from(u32::MAX),
        6 => 1 << 40,
        7 => -(1 << 40),
        8 => m,
        9 => m - 45,
        10 => m - 44,
        11 => (m - 45) / 2,
        12 => rng.below(64) as i64,
        _ => rng.below(msg_len as u64 + 2) as i64,
    })
}

/// A hostile `info` message for a record whose message is `msg_len` bytes.
fn hostile_info(rng: &mut SplitMix, msg_len: usize) -> Vec<u8> {
    let k1: Option<Vec<u8>> = match rng.below(5) {
        0 => None,
        1 => Some(Vec::new()),
        2 => {
            let n = rng.below(200) as usize;
            Some(rng.bytes(n))
        }
        _ => Some(rng.b64_chars(32)),
    };
    let mut info = match rng.below(8) {
        // Near-valid lengths: a plausible layout, off by a little.
        0..=2 => {
            let pre = rng.below(50) as i64;
            let end = rng.below(50) as i64;
            let room = (msg_len as i64 - 45 - pre - end).max(1);
            let s = (room / 2 + rng.below(5) as i64 - 2).max(-1);
            encode_info(k1.as_deref(), Some(pre), Some(end), Some(s))
        }
        3..=5 => {
            encode_info(k1.as_deref(), hostile_len(rng, msg_len), hostile_len(rng, msg_len), hostile_len(rng, msg_len))
        }
        6 => {
            let n = rng.below(80) as usize;
            rng.bytes(n)
        }
        _ => {
            // Valid fields followed by protobuf oddities.
            let mut b = encode_info(k1.as_deref(), Some(1), Some(1), Some(1));
            match rng.below(6) {
                0 => b.extend([0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
                1 => b.extend([0x0b, 0x0c]), // group start/end
                2 => b.extend([0x10]),       // truncated varint field
                3 => {
                    put_varint(&mut b, (99 << 3) | 2);
                    put_varint(&mut b, u64::MAX);
                }
                4 => b.extend([0x22, 0x01, 0x00]), // s_len as bytes
                _ => {
                    put_varint(&mut b, 0); // field 0
                }
            }
            b
        }
    };
    if rng.below(10) == 0 {
        info.truncate(rng.below(info.len() as u64 + 1) as usize);
    }
    info
}

fn mutate(rng: &mut SplitMix, corpus: &[Record], key: &mut Vec<u8>, msg: &mut Vec<u8>) {
    let pick = |rng: &mut SplitMix, v: &Vec<u8>| rng.below(v.len() as u64 + 1) as usize;
    match rng.below(13) {
        0 => {
            for _ in 0..=rng.below(3) {
                if !msg.is_empty() {
                    let i = rng.below(msg.len() as u64) as usize;
                    msg[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            for _ in 0..=rng.below(3) {
                if !key.is_empty() {
                    let i = rng.below(key.len() as u64) as usize;
                    key[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let n = pick(rng, msg);
            msg.truncate(n);
        }
        3 => {
            let n = pick(rng, key);
            key.truncate(n);
        }
        4 => {
            let at = pick(rng, msg);
            let n = 1 + rng.below(8) as usize;
            let ins = if rng.below(2) == 0 { rng.b64_chars(n) } else { rng.bytes(n) };
            msg.splice(at..at, ins);
        }
        5 => {
            let a = pick(rng, msg);
            let b = (a + rng.below(70) as usize).min(msg.len());
            msg.drain(a..b);
        }
        6 => std::mem::swap(key, msg),
        7 | 8 => {
            if let Some(k) = big_k(msg) {
                let info = hostile_info(rng, msg.len());
                let iv: [u8; 16] = rng.bytes(16).try_into().unwrap_or([0; 16]);
                *key = seal_key_blob(&k, iv, &info).into_bytes();
            }
        }
        9 => {
            let other = &corpus[rng.below(corpus.len() as u64) as usize];
            if rng.below(2) == 0 {
                key.clone_from(&other.key);
            } else {
                msg.clone_from(&other.msg);
            }
        }
        10 => {
            let a = pick(rng, msg);
            let b = pick(rng, msg);
            let (a, b) = (a.min(b), a.max(b));
            let dup = msg[a..b].to_vec();
            msg.extend(dup);
        }
        11 => {
            // Foreign bytes: NUL, non-ASCII, '=' inside, whitespace.
            let at = pick(rng, msg);
            let b = [0u8, 0xff, b'=', b' ', b'\n', b'-', b'_', 0x80][rng.below(8) as usize];
            msg.insert(at, b);
        }
        _ => {
            // The key of a record reused with its message's K replaced by random characters.
            if msg.len() >= 45 {
                let k = rng.b64_chars(32);
                msg[13..45].copy_from_slice(&k);
            }
        }
    }
}

fn mutation_worker(seed: u64, n: u64, corpus: &[Record], tally: &Tally) {
    let mut rng = SplitMix(seed);
    let mut key = Vec::new();
    let mut msg = Vec::new();
    for _ in 0..n {
        let r = &corpus[rng.below(corpus.len() as u64) as usize];
        key.clone_from(&r.key);
        msg.clone_from(&r.msg);
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, corpus, &mut key, &mut msg);
        }
        tally[check(&key, &msg)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Random inputs, and random `info` bytes re-sealed under a random message's `K`.
fn random_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let b64 = prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".to_vec());
    let b64_text = move |max: usize| prop::collection::vec(b64.clone(), 0..max);
    prop_oneof![
        (prop::collection::vec(any::<u8>(), 0..128), prop::collection::vec(any::<u8>(), 0..400)),
        (b64_text(130), b64_text(500)),
        (
            prop::collection::vec(any::<u8>(), 0..96),
            prop::collection::vec(any::<u8>(), 16..64),
            b64_text(600),
            any::<[u8; 32]>(),
        )
            .prop_map(|(info, iv, tail, k)| {
                // msg = 13 junk ‖ K ‖ tail, with K made of base64 characters.
                let big_k: [u8; 32] = k.map(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[usize::from(b % 32)]);
                let mut msg = b"0123456789abc".to_vec();
                msg.extend_from_slice(&big_k);
                msg.extend(tail);
                let iv: [u8; 16] = iv.get(..16).and_then(|s| s.try_into().ok()).unwrap_or([0; 16]);
                (seal_key_blob(&big_k, iv, &info).into_bytes(), msg)
            }),
    ]
}

#[test]
fn a_million_inputs_never_panic() {
    let start = Instant::now();
    let corpus = corpus();
    for r in &corpus {
        assert!(native::decrypt_data(&r.key, &r.msg).is_ok());
    }
    let tally: Tally = Default::default();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8) as u64;
    let mutations = TOTAL - u64::from(PROPTEST_CASES);
    let per_worker = mutations.div_ceil(workers);

    std::thread::scope(|scope| {
        for w in 0..workers {
            let (corpus, tally) = (&corpus, &tally);
            scope.spawn(move || mutation_worker(0x5EED + w, per_worker, corpus, tally));
        }
        let mut runner =
            TestRunner::new(Config { cases: PROPTEST_CASES, failure_persistence: None, ..Config::default() });
        let result = runner.run(&random_strategy(), |(key, msg)| {
            tally[check(&key, &msg)].fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        if let Err(e) = result {
            panic!("proptest: {e}");
        }
    });

    let counts: Vec<u64> = tally.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let n: u64 = counts.iter().sum();
    let by_outcome: Vec<String> = OUTCOMES.iter().zip(&counts).map(|(name, c)| format!("{name}: {c}")).collect();
    eprintln!(
        "native DecryptData fuzz: {n} inputs ({} mutated with {workers} threads, {PROPTEST_CASES} \
         proptest), no panic, in {:.1?}; outcomes {}",
        per_worker * workers,
        start.elapsed(),
        by_outcome.join(", ")
    );
    assert!(n >= TOTAL, "only {n} inputs");
    // Every stage is reached often: the inputs are not all rejected at the first check.
    for (name, c) in OUTCOMES.iter().zip(&counts) {
        assert!(*c >= 1_000, "outcome {name} reached only {c} times");
    }
}
