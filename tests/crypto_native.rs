//! The native `DecryptData` (sdk-facts.md §3) and its guard `check_layout`, on records sealed by
//! an independent implementation of the encrypting side (`crypto_support::hand_seal*`) and by the
//! emulator.

use crate::crypto_support;

use crypto_support::{core_len, encode_info, hand_seal, hand_seal_with, seal_key_blob, HandSealed, SplitMix};
use wework_msgaudit::crypto::native::{self, InfoError, NativeError};

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    // JSON-ish text with multi-byte UTF-8, cut to exactly `len` bytes (may split a character).
    let mut s = Vec::with_capacity(len + 16);
    let mut rng = SplitMix(seed);
    while s.len() < len {
        match rng.below(4) {
            0 => s.extend_from_slice("会话内容存档".as_bytes()),
            1 => s.extend_from_slice(b"{\"msgid\":\"x\",\"n\":1}"),
            2 => s.extend_from_slice("😀\t\n\x00".as_bytes()),
            _ => s.extend(rng.b64_chars(7)),
        }
    }
    s.truncate(len);
    s
}

const SIZES: &[usize] = &[0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 100, 300, 1000, 5000];

#[test]
fn independently_sealed_records_decrypt() {
    let mut rng = SplitMix(1);
    for &len in SIZES {
        // k1 shorter than, equal to and longer than the 32-byte AES key (zero-padded/truncated).
        for k1_len in [0, 1, 16, 31, 32, 33, 64] {
            let p = plaintext(len, len as u64 * 100 + k1_len as u64);
            let h = hand_seal(&p, &mut rng, k1_len);
            let (k, m) = (h.encrypt_key.as_bytes(), h.encrypt_chat_msg.as_bytes());
            assert_eq!(native::check_layout(k, m), Ok(()), "len {len} k1 {k1_len}");
            assert_eq!(native::decrypt_data(k, m).unwrap(), p, "len {len} k1 {k1_len}");
        }
    }
}

#[test]
fn extreme_but_valid_layouts_decrypt() {
    let mut rng = SplitMix(2);
    for &len in SIZES {
        let p = plaintext(len, 7);
        let c = core_len(len);
        // pre/end 0, s_len at both ends of 1..=|C|.
        for (pre, s, end) in [(0, 1, 0), (0, c, 0), (0, c - 1, 0), (200, 1, 0), (0, c, 300)] {
            let h = hand_seal_with(&p, &mut rng, 32, pre, s, end);
            let got = native::decrypt_data(h.encrypt_key.as_bytes(), h.encrypt_chat_msg.as_bytes());
            assert_eq!(got.as_deref(), Ok(&p[..]), "len {len} ({pre}, {s}, {end})");
        }
    }
}

#[test]
fn emulator_sealed_records_decrypt_identically() {
    for &len in SIZES {
        for seed in 0..20u64 {
            let p = plaintext(len, seed);
            let s = emulator::codec::seal(&p, seed * 31 + len as u64);
            let (k, m) = (s.encrypt_key.as_bytes(), s.encrypt_chat_msg.as_bytes());
            assert_eq!(native::decrypt_data(k, m).unwrap(), p);
            assert_eq!(emulator::codec::open(k, m).unwrap(), p);
        }
    }
}

#[test]
fn invalid_utf8_plaintext_comes_back_byte_for_byte() {
    let p = b"{\"content\":\"\xff\xfe\xc3\x28 \xe4\xbd\"}".to_vec();
    let h = hand_seal(&p, &mut SplitMix(3), 32);
    let got = native::decrypt_data(h.encrypt_key.as_bytes(), h.encrypt_chat_msg.as_bytes());
    assert_eq!(got.unwrap(), p);
}

/// Length of `C` left when `msg` (of a record with this layout) is cut to `new_len` bytes, if the
/// layout still fits (`|C'| >= s_len`).
fn truncated_core_len(h: &HandSealed, new_len: usize) -> Option<usize> {
    let fixed = 45 + h.pre_len + h.s_len + h.end_len;
    let c = new_len.checked_sub(fixed)?;
    (c >= h.s_len).then_some(c)
}

#[test]
fn check_layout_rejects_every_truncated_message() {
    let mut rng = SplitMix(4);
    let mut undetectable = 0usize;
    let mut checked = 0usize;
    for &len in SIZES {
        for round in 0..6 {
            let p = plaintext(len, round);
            let h = hand_seal(&p, &mut rng, 32);
            let (k, m) = (h.encrypt_key.as_bytes(), h.encrypt_chat_msg.as_bytes());
            assert_eq!(native::check_layout(k, m), Ok(()));
            let mut shorter_shape = 0usize;
            for cut in 0..m.len() {
                checked += 1;
                let got = native::check_layout(k, &m[..cut]);
                // The guard and the decryption report the same thing up to the AES stage.
                let full = native::decrypt_data(k, &m[..cut]);
                if let Err(e) = &got {
                    assert_eq!(full.as_ref().err(), Some(e), "cut {cut}");
                    continue;
                }
                // Only a core cut by a multiple of 3 AES blocks (64 base64 chars) still has the
                // shape of IV + whole blocks: it cannot be told from a shorter record without
                // decrypting it, and the padding check then (almost always) refuses it.
                let c = truncated_core_len(&h, cut).expect("layout fits");
                assert!(c % 64 == 0 && c >= 64, "len {len}: cut to {cut} of {} accepted with |C'| = {c}", m.len());
                assert_ne!(full.ok().as_deref(), Some(&p[..]));
                shorter_shape += 1;
            }
            undetectable += shorter_shape;
            // Half the message (what the SDK contract test uses) is always refused.
            assert!(native::check_layout(k, &m[..m.len() / 2]).is_err());
            // A core of at most 64 characters (plaintext < 32 B): no truncation gets through.
            if core_len(len) <= 64 {
                assert_eq!(shorter_shape, 0, "len {len}");
            }
        }
    }
    eprintln!("{checked} truncations checked, {undetectable} have the shape of a shorter record");
}

#[test]
fn the_guard_accepts_everything_that_decrypts() {
    let mut rng = SplitMix(5);
    for seed in 0..200u64 {
        let p = plaintext(seed as usize * 7, seed);
        let h = hand_seal(&p, &mut rng, 32);
        let (k, m) = (h.encrypt_key.as_bytes(), h.encrypt_chat_msg.as_bytes());
        assert!(native::decrypt_data(k, m).is_ok());
        assert_eq!(native::check_layout(k, m), Ok(()));
    }
}

/// Re-seal `info` under the message's own `K`, so that the key blob decrypts and `info` is used.
fn reseal(h: &HandSealed, info: &[u8]) -> String {
    seal_key_blob(&h.big_k, [9; 16], info)
}

#[test]
fn error_codes_follow_the_sdk_mapping() {
    let p = plaintext(300, 1);
    let h = hand_seal_with(&p, &mut SplitMix(6), 32, 10, 20, 30);
    let (k, m) = (h.encrypt_key.as_str(), h.encrypt_chat_msg.as_str());
    let code = |k: &str, m: &[u8]| native::decrypt_data(k.as_bytes(), m).unwrap_err().sdk_code();

    // 10000: empty input.
    assert_eq!(code("", m.as_bytes()), 10000);
    assert_eq!(code(k, b""), 10000);
    // 10005: shorter than the 45-byte header (the SDK aborts under 13 bytes).
    for n in [1, 12, 13, 44] {
        let err = native::decrypt_data(k.as_bytes(), &m.as_bytes()[..n]).unwrap_err();
        assert_eq!(err, NativeError::BadInfo(InfoError::MessageTooShort(n)));
    }
    // 10008: the key blob is not base64, too short, or does not decrypt under this K.
    for bad in ["=", "==", "A==", "====", "AAAA", "not base64!", &k[..44]] {
        assert_eq!(code(bad, m.as_bytes()), 10008, "{bad:?}");
    }
    let mut other_k = m.as_bytes().to_vec();
    other_k[20] = if other_k[20] == b'A' { b'B' } else { b'A' };
    let c = code(k, &other_k);
    assert!(c == 10008 || c == 10005, "{c}");

    // 10005: hostile info, re-sealed so that it is what the SDK would parse.
    let k1 = &h.k1[..];
    type Expect = fn(&InfoError) -> bool;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (encode_info(None, Some(10), Some(30), Some(20)), |e| *e == InfoError::MissingK1),
        (encode_info(Some(k1), Some(10), Some(30), Some(0)), |e| *e == InfoError::NonPositiveSLen(0)),
        (encode_info(Some(k1), Some(10), Some(30), None), |e| *e == InfoError::NonPositiveSLen(0)),
        (encode_info(Some(k1), Some(10), Some(30), Some(-5)), |e| *e == InfoError::NonPositiveSLen(-5)),
        (encode_info(Some(k1), Some(-1), Some(30), Some(20)), |e| {
            matches!(e, InfoError::NegativeLength { name: "pre_len", value: -1 })
        }),
        (encode_info(Some(k1), Some(10), Some(i64::from(i32::MIN)), Some(20)), |e| {
            matches!(e, InfoError::NegativeLength { name: "end_len", .. })
        }),
        (encode_info(Some(k1), Some(i64::from(i32::MAX)), Some(i64::from(i32::MAX)), Some(i64::from(i32::MAX))), |e| {
            matches!(e, InfoError::OutOfRange { .. })
        }),
        // s_len larger than what is left for C.
        (encode_info(Some(k1), Some(10), Some(30), Some(2000)), |e| matches!(e, InfoError::OutOfRange { .. })),
        (b"\x0a\x05ab".to_vec(), |e| matches!(e, InfoError::Truncated(_))),
        (b"\x08\x01".to_vec(), |e| matches!(e, InfoError::WireType { field: 1, .. })),
        (b"\x00".to_vec(), |e| matches!(e, InfoError::ZeroField(0))),
        ([&[0x20][..], &[0xff; 10], &[0x01]].concat(), |e| matches!(e, InfoError::OverlongVarint(1))),
    ];
    for (i, (info, expected)) in cases.iter().enumerate() {
        let err = native::decrypt_data(reseal(&h, info).as_bytes(), m.as_bytes()).unwrap_err();
        assert_eq!(err.sdk_code(), 10005, "case {i}: {err}");
        match &err {
            NativeError::BadInfo(e) => assert!(expected(e), "case {i}: {e}"),
            other => panic!("case {i}: {other}"),
        }
        assert_eq!(native::check_layout(reseal(&h, info).as_bytes(), m.as_bytes()), Err(err));
    }
    // Lengths one off in either direction: a different cut of the same message.
    for (pre, s, end) in [(11, 20, 30), (10, 21, 30), (10, 20, 29), (9, 20, 31)] {
        let info = encode_info(Some(k1), Some(pre), Some(end), Some(s));
        let r = native::decrypt_data(reseal(&h, &info).as_bytes(), m.as_bytes());
        assert!(r.is_err(), "({pre}, {s}, {end})");
        assert_ne!(r.unwrap_err().sdk_code(), 10008);
    }
    // The exact lengths re-sealed decrypt (the reseal itself is sound).
    let info = encode_info(Some(k1), Some(10), Some(30), Some(20));
    assert_eq!(native::decrypt_data(reseal(&h, &info).as_bytes(), m.as_bytes()).unwrap(), p);

    // 10006: the core is damaged but the layout is fine.
    let at = 45 + 10 + 20 + 20 + 5; // inside C[s_len..]
    let mut short_core = m.as_bytes().to_vec();
    short_core.drain(at..at + 4); // one base64 group less: not whole AES blocks
    assert_eq!(code(k, &short_core), 10006);
    assert_eq!(native::check_layout(k.as_bytes(), &short_core).unwrap_err().sdk_code(), 10006);
    // CBC is not authenticated: a changed character early in C changes the plaintext and
    // passes the padding check; only the record's JSON parsing can notice.
    let mut flipped = m.as_bytes().to_vec();
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    assert_ne!(native::decrypt_data(k.as_bytes(), &flipped).ok(), Some(p.clone()));
    let mut not_b64 = m.as_bytes().to_vec();
    not_b64[at] = b'*';
    assert_eq!(code(k, &not_b64), 10006);
    assert_eq!(native::check_layout(k.as_bytes(), &not_b64).unwrap_err().sdk_code(), 10006);
    // A different k1: the padding check fails.
    let info = encode_info(Some(b"another key"), Some(10), Some(30), Some(20));
    let err = native::decrypt_data(reseal(&h, &info).as_bytes(), m.as_bytes()).unwrap_err();
    assert!(matches!(err, NativeError::BadMessage(_)), "{err}");
}

#[test]
fn errors_never_show_the_keys() {
    let h = hand_seal(&plaintext(100, 9), &mut SplitMix(7), 32);
    let k1 = String::from_utf8(h.k1.clone()).unwrap();
    let big_k = String::from_utf8(h.big_k.to_vec()).unwrap();
    let mut m = h.encrypt_chat_msg.clone().into_bytes();
    let n = m.len();
    m[n - h.end_len - 1] ^= 0x01;
    let inputs: [(&[u8], &[u8]); 3] =
        [(h.encrypt_key.as_bytes(), &m), (h.encrypt_key.as_bytes(), &m[..60]), (b"AAAA", &m)];
    for (k, m) in inputs {
        let err = native::decrypt_data(k, m).unwrap_err();
        let shown = format!("{err} {err:?}");
        for secret in [&k1, &big_k, &h.encrypt_key] {
            for w in secret.as_bytes().windows(9) {
                assert!(!shown.contains(std::str::from_utf8(w).unwrap()), "{shown}");
            }
        }
    }
}
