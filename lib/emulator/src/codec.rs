//! The vendor SDK's DecryptData format (docs/sdk-facts.md §3): the encrypting side used by the
//! emulator, a compact decrypting side ([`open`]) with the SDK's return codes, and the RSA step
//! that protects `encrypt_key` (PKCS#1 v1.5, giving `encrypt_random_key`).
//!
//! Layout produced by [`seal`]:
//! ```text
//! K    = 32 random ASCII alphanumerics (raw AES-256 key)
//! info = protobuf {1: string k1, 2: int32 pre_len, 3: int32 end_len, 4: int32 s_len}
//! encrypt_key = base64(IV ‖ AES-256-CBC-PKCS7(K, IV, info))            (88 chars)
//! C    = base64(IV2 ‖ AES-256-CBC-PKCS7(k1 zero-padded to 32, IV2, plaintext))
//! encrypt_msg = junk(13) ‖ K ‖ junk(pre_len) ‖ C[..s_len] ‖ junk(s_len) ‖ C[s_len..] ‖ junk(end_len)
//! ```
//! Everything random is drawn from a splitmix64 stream seeded by `seed`, so a seal is a pure
//! function of `(plaintext, seed)`.

use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::rng::{Rng, ALNUM, B64_ALPHABET};

/// NULL or empty input.
pub const RC_BAD_ARG: i32 = 10000;
/// Key error while encrypting.
pub const RC_ENCRYPT_KEY: i32 = 10004;
/// `info` unparsable, `s_len <= 0`, lengths out of range.
pub const RC_BAD_INFO: i32 = 10005;
/// The message core failed to decrypt.
pub const RC_DECRYPT: i32 = 10006;
/// The `encrypt_key` blob failed base64/AES/padding.
pub const RC_BAD_KEY: i32 = 10008;

/// Result of [`seal`]: what the server sends (after RSA-protecting `encrypt_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// ASCII base64 string; RSA-encrypting it gives `encrypt_random_key`.
    pub encrypt_key: String,
    /// The `encrypt_chat_msg` field, verbatim.
    pub encrypt_chat_msg: String,
}

/// Encrypts `plaintext` in the DecryptData format, deterministically from `seed`.
pub fn seal(plaintext: &[u8], seed: u64) -> Sealed {
    seal_impl(plaintext, seed, false)
}

/// Like [`seal`], but the message core is cut so that it can never be decrypted (a base64 group
/// of `C` is removed, so the ciphertext is no longer a whole number of AES blocks; all the
/// lengths stay consistent, so [`open`] answers 10006).
pub(crate) fn seal_corrupt(plaintext: &[u8], seed: u64) -> Sealed {
    seal_impl(plaintext, seed, true)
}

fn seal_impl(plaintext: &[u8], seed: u64, corrupt: bool) -> Sealed {
    let mut rng = Rng::new(seed);
    let k1 = rng.chars(B64_ALPHABET, 32);
    let big_k = rng.chars(ALNUM, 32);
    let iv: [u8; 16] = rng.bytes();
    let iv2: [u8; 16] = rng.bytes();

    // Core: C = base64(IV2 ‖ AES-256-CBC(k1, IV2, plaintext)).
    let mut d = Vec::with_capacity(16 + plaintext.len() + 16);
    d.extend_from_slice(&iv2);
    d.extend_from_slice(&cbc_encrypt(&aes_key(&k1), iv2, plaintext));
    let mut c = STANDARD.encode(&d).into_bytes();
    if corrupt {
        // C is at least 44 chars (32 bytes); drop its first full base64 group.
        c.drain(..4);
    }

    let pre_len = rng.range(1, 48) as usize;
    let end_len = rng.range(1, 48) as usize;
    let s_len = rng.range(1, (c.len() as u64).saturating_sub(1).max(1)) as usize;

    let info = encode_info(&k1, pre_len as i32, end_len as i32, s_len as i32);
    let mut b = Vec::with_capacity(16 + info.len() + 16);
    b.extend_from_slice(&iv);
    b.extend_from_slice(&cbc_encrypt(&big_k, iv, &info));
    let encrypt_key = STANDARD.encode(&b);

    let mut msg = Vec::with_capacity(45 + pre_len + c.len() + s_len + end_len);
    msg.extend_from_slice(&rng.chars(B64_ALPHABET, 13));
    msg.extend_from_slice(&big_k);
    msg.extend_from_slice(&rng.chars(B64_ALPHABET, pre_len));
    msg.extend_from_slice(&c[..s_len]);
    msg.extend_from_slice(&rng.chars(B64_ALPHABET, s_len));
    msg.extend_from_slice(&c[s_len..]);
    msg.extend_from_slice(&rng.chars(B64_ALPHABET, end_len));
    Sealed {
        encrypt_key,
        // All bytes come from ASCII alphabets.
        encrypt_chat_msg: String::from_utf8_lossy(&msg).into_owned(),
    }
}

/// Decrypts like the SDK's DecryptData, with its return codes. Never panics.
pub fn open(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Vec<u8>, i32> {
    if encrypt_key.is_empty() || encrypt_msg.is_empty() {
        return Err(RC_BAD_ARG);
    }
    if encrypt_msg.len() < 45 {
        return Err(RC_BAD_INFO);
    }
    let big_k = &encrypt_msg[13..45];
    let b = STANDARD.decode(encrypt_key).map_err(|_| RC_BAD_KEY)?;
    if b.len() < 32 || (b.len() - 16) % 16 != 0 {
        return Err(RC_BAD_KEY);
    }
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&b[..16]);
    let info = cbc_decrypt(big_k, iv, &b[16..]).ok_or(RC_BAD_KEY)?;
    let info = decode_info(&info).ok_or(RC_BAD_INFO)?;
    if info.s_len <= 0 || info.pre_len < 0 || info.end_len < 0 {
        return Err(RC_BAD_INFO);
    }
    let (pre, s, end) = (info.pre_len as usize, info.s_len as usize, info.end_len as usize);
    let fixed =
        45usize.checked_add(pre).and_then(|v| v.checked_add(s)).and_then(|v| v.checked_add(end)).ok_or(RC_BAD_INFO)?;
    if fixed >= encrypt_msg.len() {
        return Err(RC_BAD_INFO);
    }
    let c_len = encrypt_msg.len() - fixed;
    if s > c_len {
        return Err(RC_BAD_INFO);
    }
    let start = 45 + pre;
    let mut c = Vec::with_capacity(c_len);
    c.extend_from_slice(&encrypt_msg[start..start + s]);
    let rest = start + s + s;
    c.extend_from_slice(&encrypt_msg[rest..rest + (c_len - s)]);
    let d = STANDARD.decode(&c).map_err(|_| RC_DECRYPT)?;
    if d.len() < 32 || d.len() % 16 != 0 {
        return Err(RC_DECRYPT);
    }
    let mut iv2 = [0u8; 16];
    iv2.copy_from_slice(&d[..16]);
    cbc_decrypt(&aes_key(&info.k1), iv2, &d[16..]).ok_or(RC_DECRYPT)
}

/// RSA PKCS#1 v1.5 encryption of `encrypt_key` under `key`, base64-encoded: the
/// `encrypt_random_key` field. (PKCS#1 v1.5 padding is random: the output differs per call.)
/// Errors with 10004 (the SDK's "key error while encrypting") if the key cannot take it.
pub fn rsa_encrypt(key: &Pkcs1PublicEncryptingKey, encrypt_key: &str) -> Result<String, i32> {
    let mut out = vec![0u8; key.ciphertext_size()];
    let ct = key.encrypt(encrypt_key.as_bytes(), &mut out).map_err(|_| RC_ENCRYPT_KEY)?;
    Ok(STANDARD.encode(ct))
}

/// The public half of a PKCS#8 DER RSA private key, ready for [`rsa_encrypt`].
pub fn public_key_from_pkcs8_der(der: &[u8]) -> Result<Pkcs1PublicEncryptingKey, String> {
    let sk = PrivateDecryptingKey::from_pkcs8(der).map_err(|e| format!("bad PKCS#8 key: {e}"))?;
    Pkcs1PublicEncryptingKey::new(sk.public_key()).map_err(|_| "unsupported RSA key".to_string())
}

/// Decodes a PEM document (any label) to its DER bytes.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
    if body.is_empty() {
        return Err("empty PEM".into());
    }
    STANDARD.decode(body.as_bytes()).map_err(|e| format!("bad PEM base64: {e}"))
}

/// k1 bytes zero-padded or truncated to 32.
fn aes_key(k1: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    let n = k1.len().min(32);
    k[..n].copy_from_slice(&k1[..n]);
    k
}

fn cbc_encrypt(key: &[u8], iv: [u8; 16], data: &[u8]) -> Vec<u8> {
    let mut buf = data.to_vec();
    let res = UnboundCipherKey::new(&AES_256, key)
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .and_then(|k| k.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(FixedLength::from(iv))));
    // Keys are always 32 bytes here and CBC-PKCS7 accepts any length: this cannot fail.
    debug_assert!(res.is_ok());
    buf
}

fn cbc_decrypt(key: &[u8], iv: [u8; 16], data: &[u8]) -> Option<Vec<u8>> {
    if key.len() != 32 || data.is_empty() || data.len() % 16 != 0 {
        return None;
    }
    let dk = UnboundCipherKey::new(&AES_256, key).and_then(PaddedBlockDecryptingKey::cbc_pkcs7).ok()?;
    let mut buf = data.to_vec();
    let n = dk.decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv))).ok()?.len();
    buf.truncate(n);
    Some(buf)
}

// ---- minimal protobuf -------------------------------------------------------------------------

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_int32_field(out: &mut Vec<u8>, field: u32, v: i32) {
    put_varint(out, u64::from(field) << 3);
    // int32: negative values are sign-extended to 64 bits (10 bytes), like protobuf does.
    put_varint(out, i64::from(v) as u64);
}

fn encode_info(k1: &[u8], pre_len: i32, end_len: i32, s_len: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    put_bytes_field(&mut out, 1, k1);
    put_int32_field(&mut out, 2, pre_len);
    put_int32_field(&mut out, 3, end_len);
    put_int32_field(&mut out, 4, s_len);
    out
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let c = *b.get(*pos)?;
        *pos += 1;
        if shift == 63 && c > 1 {
            return None;
        }
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One parsed protobuf field: number and either a varint or a length-delimited slice.
pub(crate) enum PbValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// Parses a protobuf message into its fields; `None` if malformed.
pub(crate) fn parse_pb(b: &[u8]) -> Option<Vec<(u64, PbValue<'_>)>> {
    let mut pos = 0usize;
    let mut out = Vec::new();
    while pos < b.len() {
        let tag = get_varint(b, &mut pos)?;
        let field = tag >> 3;
        if field == 0 {
            return None;
        }
        let v = match tag & 7 {
            0 => PbValue::Varint(get_varint(b, &mut pos)?),
            1 => {
                pos = pos.checked_add(8).filter(|&p| p <= b.len())?;
                PbValue::Other
            }
            2 => {
                let len = usize::try_from(get_varint(b, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|&e| e <= b.len())?;
                let s = &b[pos..end];
                pos = end;
                PbValue::Bytes(s)
            }
            5 => {
                pos = pos.checked_add(4).filter(|&p| p <= b.len())?;
                PbValue::Other
            }
            _ => return None,
        };
        out.push((field, v));
    }
    Some(out)
}

struct Info {
    k1: Vec<u8>,
    pre_len: i64,
    end_len: i64,
    s_len: i64,
}

fn decode_info(b: &[u8]) -> Option<Info> {
    let mut info = Info { k1: Vec::new(), pre_len: 0, end_len: 0, s_len: 0 };
    let mut have_k1 = false;
    for (field, v) in parse_pb(b)? {
        match (field, v) {
            (1, PbValue::Bytes(s)) => {
                info.k1 = s.to_vec();
                have_k1 = true;
            }
            // int32 semantics: the low 32 bits, sign-extended.
            (2, PbValue::Varint(n)) => info.pre_len = i64::from(n as u32 as i32),
            (3, PbValue::Varint(n)) => info.end_len = i64::from(n as u32 as i32),
            (4, PbValue::Varint(n)) => info.s_len = i64::from(n as u32 as i32),
            (1..=4, _) => return None,
            _ => {}
        }
    }
    have_k1.then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"{\"msgid\":\"x\"}".to_vec(),
            "你好，世界！😀👍🏽 emoji and 中文".as_bytes().to_vec(),
            b"ctl \x00\x01\x07\x1b\x1f\t\n\r end".to_vec(),
            vec![b'x'; 15],
            vec![b'y'; 16],
            vec![b'z'; 17],
        ];
        let mut big = vec![0u8; 1 << 20];
        crate::rng::stream_bytes(3, 0, &mut big);
        v.push(big);
        let mut odd = vec![0u8; 100_003];
        crate::rng::stream_bytes(4, 0, &mut odd);
        v.push(odd);
        v
    }

    #[test]
    fn round_trip() {
        for (i, p) in samples().iter().enumerate() {
            for seed in 0..20u64 {
                let s = seal(p, seed * 1000 + i as u64);
                assert_eq!(s.encrypt_key.len(), 88);
                assert!(s.encrypt_chat_msg.is_ascii());
                assert_eq!(open(s.encrypt_key.as_bytes(), s.encrypt_chat_msg.as_bytes()).as_ref(), Ok(p));
                if p.len() > 1000 {
                    break;
                }
            }
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(seal(b"hello", 9), seal(b"hello", 9));
        assert_ne!(seal(b"hello", 9), seal(b"hello", 10));
    }

    #[test]
    fn corrupt_never_opens() {
        for seed in 0..200 {
            let s = seal_corrupt(b"{\"msgid\":\"corrupt\"}", seed);
            assert_eq!(open(s.encrypt_key.as_bytes(), s.encrypt_chat_msg.as_bytes()), Err(RC_DECRYPT));
        }
    }

    #[test]
    fn error_codes() {
        let s = seal(b"hello world", 1);
        let (k, m) = (s.encrypt_key.as_bytes(), s.encrypt_chat_msg.as_bytes());
        assert_eq!(open(b"", m), Err(RC_BAD_ARG));
        assert_eq!(open(k, b""), Err(RC_BAD_ARG));
        assert_eq!(open(b"=", m), Err(RC_BAD_KEY));
        assert_eq!(open(b"A==", m), Err(RC_BAD_KEY));
        assert_eq!(open(b"====", m), Err(RC_BAD_KEY));
        assert_eq!(open(k, &m[..12]), Err(RC_BAD_INFO));
        // Another message's K cannot open this key blob (padding fails) or parses as garbage.
        let other = seal(b"hello world", 2);
        let r = open(k, other.encrypt_chat_msg.as_bytes());
        assert!(matches!(r, Err(RC_BAD_KEY) | Err(RC_BAD_INFO)), "{r:?}");
        // Truncated message: lengths out of range.
        assert_eq!(open(k, &m[..m.len() - 60]), Err(RC_BAD_INFO));
    }

    #[test]
    fn never_panics_on_mutations() {
        let mut r = Rng::new(77);
        for i in 0..300u64 {
            let p: Vec<u8> = r.chars(B64_ALPHABET, (i * 7 % 500) as usize);
            let s = seal(&p, i);
            let (k, m) = (s.encrypt_key.into_bytes(), s.encrypt_chat_msg.into_bytes());
            for _ in 0..20 {
                let mut k2 = k.clone();
                let mut m2 = m.clone();
                match r.below(6) {
                    0 => k2.truncate(r.below(k2.len() as u64 + 1) as usize),
                    1 => m2.truncate(r.below(m2.len() as u64 + 1) as usize),
                    2 => {
                        let j = r.below(k2.len() as u64) as usize;
                        k2[j] = r.next_u64() as u8;
                    }
                    3 => {
                        let j = r.below(m2.len() as u64) as usize;
                        m2[j] = r.next_u64() as u8;
                    }
                    4 => {
                        let j = r.below(m2.len() as u64) as usize;
                        m2.insert(j, b'A');
                    }
                    _ => {
                        let n = r.below(200) as usize;
                        m2 = r.chars(B64_ALPHABET, n);
                    }
                }
                let _ = open(&k2, &m2);
            }
        }
        // Arbitrary info blobs encrypted under a valid K: hostile lengths.
        for i in 0..500u64 {
            let mut rr = Rng::new(i);
            let big_k = rr.chars(ALNUM, 32);
            let mut info = Vec::new();
            put_bytes_field(&mut info, 1, b"0123456789abcdef0123456789abcdef");
            for f in 2..=4u32 {
                put_varint(&mut info, u64::from(f) << 3);
                put_varint(&mut info, rr.next_u64() >> rr.below(64));
            }
            let iv: [u8; 16] = rr.bytes();
            let mut b = iv.to_vec();
            b.extend_from_slice(&cbc_encrypt(&big_k, iv, &info));
            let mut m = rr.chars(B64_ALPHABET, 13);
            m.extend_from_slice(&big_k);
            let n = rr.below(300) as usize;
            m.extend_from_slice(&rr.chars(B64_ALPHABET, n));
            let r = open(STANDARD.encode(&b).as_bytes(), &m);
            assert!(r.is_err());
        }
    }

    #[test]
    fn rsa_round_trip() {
        use aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey;
        let pem = crate::demo_private_key_pem(1).unwrap_or_default();
        let der = pem_to_der(pem).unwrap();
        let pk = public_key_from_pkcs8_der(&der).unwrap();
        let s = seal(b"x", 5);
        let erk = rsa_encrypt(&pk, &s.encrypt_key).unwrap();
        let sk = Pkcs1PrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&der).unwrap()).unwrap();
        let ct = STANDARD.decode(erk).unwrap();
        let mut out = vec![0u8; sk.min_output_size()];
        let pt = sk.decrypt(&ct, &mut out).unwrap();
        assert_eq!(pt, s.encrypt_key.as_bytes());
    }
}
