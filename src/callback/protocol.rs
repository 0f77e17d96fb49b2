//! WeCom's callback cryptography (回调和回复的加解密方案), as pure functions.
//!
//! - **Signature**: `msg_signature` = lowercase hex SHA-1 of the concatenation of
//!   `token`, `timestamp`, `nonce` and the ciphertext (`echostr` of a URL verification, `<Encrypt>`
//!   of an event), sorted as byte strings. Compared in constant time ([`verify_signature`]).
//! - **Key**: the EncodingAESKey is 43 characters of base64; `Base64(EncodingAESKey + "=")` is the
//!   32-byte AES-256 key ([`AesKey::from_encoding`]). WeCom's keys are random characters, so the
//!   last one usually has non-zero padding bits: they are accepted, as WeCom's own samples do.
//! - **Cipher**: AES-256-CBC, IV = the first 16 bytes of the key, PKCS#7 padding to a multiple of
//!   **32** bytes (pad values 1..=32), base64 of the ciphertext.
//! - **Plaintext**: 16 random bytes ‖ 4-byte big-endian length of the message ‖ the message ‖ the
//!   ReceiveId (the corpid for an enterprise's own app), which [`decrypt`] returns for the caller to
//!   compare.
//!
//! Nothing here logs, and no error carries key material, a token or a plaintext.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use zeroize::Zeroizing;

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// The block size the padding rounds to (WeCom's, not AES's 16).
pub const PAD_BLOCK: usize = 32;
/// Characters of an EncodingAESKey.
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// The longest ciphertext (base64 characters) accepted: callbacks are small documents.
pub const MAX_CIPHERTEXT: usize = 1 << 20;

/// Base64 that accepts non-zero trailing bits (WeCom's EncodingAESKeys and samples have them) and
/// requires the canonical padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a key, a signature or a ciphertext was refused. Never holds a secret or a plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The EncodingAESKey is not 43 base64 characters.
    #[error("must be 43 characters of base64 (A-Z, a-z, 0-9, + and /), got {0} characters")]
    KeyLength(usize),
    /// A character outside the base64 alphabet (its position, 1-based; not the character).
    #[error("must be 43 characters of base64 (A-Z, a-z, 0-9, + and /): character {0} is not one")]
    KeyAlphabet(usize),
    /// `msg_signature` does not match.
    #[error("the signature does not match")]
    BadSignature,
    /// The ciphertext is not base64, not a whole number of blocks, or too long.
    #[error("the ciphertext is malformed: {0}")]
    Malformed(&'static str),
    /// The padding or the length field is wrong (wrong key, or damaged).
    #[error("the plaintext is malformed: {0}")]
    BadPlaintext(&'static str),
}

impl ProtocolError {
    /// Never: the same input fails the same way (a sender must fix its request or its key).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The 32-byte AES key of a corp's callbacks. Zeroed on drop; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

impl AesKey {
    /// The key of an EncodingAESKey: exactly 43 base64 characters (what the admin console shows),
    /// decoded as `Base64(key + "=")`. The error names what is wrong, never a character of it.
    pub fn from_encoding(encoding: &str) -> Result<AesKey, ProtocolError> {
        let n = encoding.chars().count();
        if n != ENCODING_AES_KEY_LEN {
            return Err(ProtocolError::KeyLength(n));
        }
        if let Some(i) = encoding.bytes().position(|b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/')) {
            return Err(ProtocolError::KeyAlphabet(i + 1));
        }
        let mut text = Zeroizing::new(String::with_capacity(44));
        text.push_str(encoding);
        text.push('=');
        let bytes = Zeroizing::new(LENIENT.decode(text.as_bytes()).map_err(|_| ProtocolError::KeyAlphabet(0))?);
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(ProtocolError::KeyLength(n));
        }
        key.copy_from_slice(&bytes);
        Ok(AesKey(key))
    }

    /// The key bytes (for the cipher only).
    fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The IV: the key's first 16 bytes.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// `msg_signature` of `(token, timestamp, nonce, encrypted)`: hex SHA-1 of the four sorted and
/// concatenated.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `given` (a `msg_signature`, any case) against [`signature`] in constant time.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypted: &str,
    given: &str,
) -> Result<(), ProtocolError> {
    let want = signature(token, timestamp, nonce, encrypted);
    let given = given.trim().to_ascii_lowercase();
    aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), given.as_bytes())
        .map_err(|_| ProtocolError::BadSignature)
}

/// A decrypted callback: the message and the ReceiveId it was addressed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// The message (the echostr's plain text, or the event's XML).
    pub message: Vec<u8>,
    /// The ReceiveId (the corpid for an enterprise's own app).
    pub receive_id: String,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain").field("message_len", &self.message.len()).field("receive_id", &self.receive_id).finish()
    }
}

/// Decrypts a base64 ciphertext (`echostr` or `<Encrypt>`).
pub fn decrypt(key: &AesKey, encrypted: &str) -> Result<Plain, ProtocolError> {
    let encrypted = encrypted.trim();
    if encrypted.len() > MAX_CIPHERTEXT {
        return Err(ProtocolError::Malformed("too long"));
    }
    let mut buf = Zeroizing::new(LENIENT.decode(encrypted).map_err(|_| ProtocolError::Malformed("not base64"))?);
    if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
        return Err(ProtocolError::Malformed("not a whole number of 32-byte blocks"));
    }
    let plain = Dec::new_from_slices(key.bytes(), &key.iv())
        .map_err(|_| ProtocolError::Malformed("key length"))?
        .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
        .map_err(|_| ProtocolError::Malformed("not a whole number of blocks"))?;
    let pad = usize::from(*plain.last().ok_or(ProtocolError::BadPlaintext("empty"))?);
    if pad == 0
        || pad > PAD_BLOCK
        || pad > plain.len()
        || !plain[plain.len() - pad..].iter().all(|&b| usize::from(b) == pad)
    {
        return Err(ProtocolError::BadPlaintext("bad padding"));
    }
    let body = &plain[..plain.len() - pad];
    if body.len() < 20 {
        return Err(ProtocolError::BadPlaintext("shorter than the random prefix and the length"));
    }
    let len = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let rest = &body[20..];
    if len > rest.len() {
        return Err(ProtocolError::BadPlaintext("the length field exceeds the plaintext"));
    }
    let receive_id =
        std::str::from_utf8(&rest[len..]).map_err(|_| ProtocolError::BadPlaintext("the ReceiveId is not UTF-8"))?;
    Ok(Plain { message: rest[..len].to_vec(), receive_id: receive_id.to_string() })
}

/// Encrypts `message` for `receive_id` with the 16 `random` bytes; base64 of the ciphertext
/// (what WeCom puts in `echostr` or `<Encrypt>`; the daemon uses it in tests only, the emulator
/// has its own implementation).
pub fn encrypt(key: &AesKey, random: &[u8; 16], message: &[u8], receive_id: &str) -> String {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut buf = Zeroizing::new(Vec::with_capacity(20 + message.len() + receive_id.len() + PAD_BLOCK));
    buf.extend_from_slice(random);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(message);
    buf.extend_from_slice(receive_id.as_bytes());
    let pad = PAD_BLOCK - buf.len() % PAD_BLOCK; // 1..=32
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let n = buf.len();
    // The key is 32 bytes, the IV 16 and the buffer a whole number of blocks (padded to 32
    // above), so neither step can fail; should one, the ciphertext would be empty and every
    // receiver would refuse it.
    let out = Enc::new_from_slices(key.bytes(), &key.iv())
        .ok()
        .and_then(|c| {
            c.encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf, n).ok().map(<[u8]>::to_vec)
        })
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeCom's published sample (WXBizMsgCrypt, "使用示例一/二"): token, EncodingAESKey, corpid,
    /// a URL verification and an event. Checked independently with Python's `cryptography`
    /// (see tests/callback.rs for the generated vectors).
    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const CORP: &str = "wx5823bf96d3bd56c7";
    const ECHO: &str = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    const EVENT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

    #[test]
    fn the_published_url_verification_sample() {
        verify_signature(TOKEN, "1409659589", "263014780", ECHO, "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3").unwrap();
        let key = AesKey::from_encoding(KEY).unwrap();
        let plain = decrypt(&key, ECHO).unwrap();
        assert_eq!(plain.message, b"1616140317555161061");
        assert_eq!(plain.receive_id, CORP);
        assert_eq!(
            verify_signature(TOKEN, "1409659589", "263014780", ECHO, "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd4"),
            Err(ProtocolError::BadSignature)
        );
    }

    #[test]
    fn the_published_event_sample() {
        verify_signature(TOKEN, "1409659813", "1372623149", EVENT, "477715D11CDB4164915DEBCBA66CB864D751F3E6").unwrap();
        let plain = decrypt(&AesKey::from_encoding(KEY).unwrap(), EVENT).unwrap();
        let xml = String::from_utf8(plain.message).unwrap();
        assert!(xml.starts_with("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"), "{xml}");
        assert!(xml.contains("<Content><![CDATA[hello]]></Content>"), "{xml}");
        assert_eq!(plain.receive_id, CORP);
    }

    #[test]
    fn round_trip_pads_to_32_and_refuses_damage() {
        let key = AesKey::from_encoding(KEY).unwrap();
        for len in [0usize, 1, 11, 12, 13, 43, 44, 45, 300] {
            let msg = vec![b'x'; len];
            let ct = encrypt(&key, &[7; 16], &msg, "ww1");
            let raw = base64::engine::general_purpose::STANDARD.decode(&ct).unwrap();
            assert_eq!(raw.len() % 32, 0, "{len}");
            let plain = decrypt(&key, &ct).unwrap();
            assert_eq!((plain.message, plain.receive_id.as_str()), (msg, "ww1"));
        }
        let ct = encrypt(&key, &[7; 16], b"hello", "ww1");
        let other = AesKey::from_encoding("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert!(decrypt(&other, &ct).is_err(), "another key");
        assert_eq!(decrypt(&key, "%%%"), Err(ProtocolError::Malformed("not base64")));
        assert!(decrypt(&key, &base64::engine::general_purpose::STANDARD.encode([0u8; 16])).is_err());
        assert!(decrypt(&key, "").is_err());
    }

    #[test]
    fn key_errors_name_the_problem_never_the_key() {
        assert_eq!(AesKey::from_encoding("short"), Err(ProtocolError::KeyLength(5)));
        let with_eq = format!("{}=", &KEY[..42]);
        let e = AesKey::from_encoding(&with_eq).unwrap_err();
        assert_eq!(e, ProtocolError::KeyAlphabet(43));
        assert!(!e.to_string().contains(&KEY[..10]));
        let key = AesKey::from_encoding(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "AesKey(<redacted>)");
        // 44 characters: a whole base64 string is not an EncodingAESKey.
        assert_eq!(AesKey::from_encoding(&format!("{KEY}=")), Err(ProtocolError::KeyLength(44)));
    }
}
