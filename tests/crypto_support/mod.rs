//! Helpers shared by the `crypto_*` integration tests: fixture loading, an independent
//! implementation of the *encrypting* side of sdk-facts.md §3 (so that the tests do not only
//! check the emulator against itself), and RSA encryption for any key size.
#![allow(dead_code)]

use std::path::PathBuf;

use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey as _;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys").join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Deterministic splitmix64 PRNG (fast, no dependencies).
#[derive(Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    pub fn b64_chars(&mut self, n: usize) -> Vec<u8> {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n).map(|_| A[self.below(64) as usize]).collect()
    }
}

pub fn aes_cbc_encrypt(key: &[u8; 32], iv: [u8; 16], data: &[u8]) -> Vec<u8> {
    let mut buf = data.to_vec();
    let k = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).unwrap()).unwrap();
    k.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into())).unwrap();
    buf
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// protobuf `info` with arbitrary (possibly hostile) values; `None` omits a field.
pub fn encode_info(k1: Option<&[u8]>, pre: Option<i64>, end: Option<i64>, s: Option<i64>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(k1) = k1 {
        out.push(0x0a);
        put_varint(&mut out, k1.len() as u64);
        out.extend_from_slice(k1);
    }
    for (field, v) in [(2u64, pre), (3, end), (4, s)] {
        if let Some(v) = v {
            put_varint(&mut out, field << 3);
            put_varint(&mut out, v as u64);
        }
    }
    out
}

/// `encrypt_key` for a given `K`, IV and raw info bytes.
pub fn seal_key_blob(big_k: &[u8; 32], iv: [u8; 16], info: &[u8]) -> String {
    let mut b = iv.to_vec();
    b.extend_from_slice(&aes_cbc_encrypt(big_k, iv, info));
    STANDARD.encode(b)
}

/// An independent sealer following sdk-facts.md §3 step by step.
pub struct HandSealed {
    pub encrypt_key: String,
    pub encrypt_chat_msg: String,
    pub big_k: [u8; 32],
    pub k1: Vec<u8>,
    pub pre_len: usize,
    pub s_len: usize,
    pub end_len: usize,
}

pub fn hand_seal(plaintext: &[u8], rng: &mut SplitMix, k1_len: usize) -> HandSealed {
    let c_len = core_len(plaintext.len());
    let pre_len = rng.below(60) as usize;
    let end_len = rng.below(60) as usize;
    let s_len = 1 + rng.below(c_len as u64) as usize; // 1..=|C|
    hand_seal_with(plaintext, rng, k1_len, pre_len, s_len, end_len)
}

/// Length of the base64 core `C` for a plaintext of `len` bytes: base64(IV ‖ PKCS#7-padded).
pub fn core_len(len: usize) -> usize {
    4 * (16 + (len / 16 + 1) * 16).div_ceil(3)
}

/// [`hand_seal`] with chosen junk lengths (`1 <= s_len <= core_len(plaintext.len())`).
pub fn hand_seal_with(
    plaintext: &[u8],
    rng: &mut SplitMix,
    k1_len: usize,
    pre_len: usize,
    s_len: usize,
    end_len: usize,
) -> HandSealed {
    let big_k: [u8; 32] = rng.b64_chars(32).try_into().unwrap();
    let k1 = rng.b64_chars(k1_len);
    let mut k1_key = [0u8; 32];
    let n = k1.len().min(32);
    k1_key[..n].copy_from_slice(&k1[..n]);
    let iv2: [u8; 16] = rng.bytes(16).try_into().unwrap();
    let mut d = iv2.to_vec();
    d.extend_from_slice(&aes_cbc_encrypt(&k1_key, iv2, plaintext));
    let c = STANDARD.encode(d).into_bytes();
    assert_eq!(c.len(), core_len(plaintext.len()));
    assert!((1..=c.len()).contains(&s_len), "s_len {s_len} for |C| {}", c.len());
    let info = encode_info(Some(&k1), Some(pre_len as i64), Some(end_len as i64), Some(s_len as i64));
    let iv: [u8; 16] = rng.bytes(16).try_into().unwrap();
    let encrypt_key = seal_key_blob(&big_k, iv, &info);
    let mut msg = rng.b64_chars(13);
    msg.extend_from_slice(&big_k);
    msg.extend(rng.b64_chars(pre_len));
    msg.extend_from_slice(&c[..s_len]);
    msg.extend(rng.b64_chars(s_len));
    msg.extend_from_slice(&c[s_len..]);
    msg.extend(rng.b64_chars(end_len));
    HandSealed { encrypt_key, encrypt_chat_msg: String::from_utf8(msg).unwrap(), big_k, k1, pre_len, s_len, end_len }
}

/// `rand_core` 0.6 RNG for the `rsa` crate's encryption (test only).
pub struct TestRng(pub SplitMix);
impl rsa::rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rsa::rand_core::CryptoRng for TestRng {}

/// RSA PKCS#1 v1.5 encryption under an SPKI DER public key (any size), base64-encoded:
/// an `encrypt_random_key`.
pub fn rsa_encrypt_b64(spki_der: &[u8], plaintext: &[u8], seed: u64) -> String {
    let pk = rsa::RsaPublicKey::from_public_key_der(spki_der).unwrap();
    let ct = pk.encrypt(&mut TestRng(SplitMix(seed)), rsa::Pkcs1v15Encrypt, plaintext).unwrap();
    STANDARD.encode(ct)
}
