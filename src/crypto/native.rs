//! Native (pure Rust + aws-lc-rs) implementation of the SDK's `DecryptData`.
//!
//! The format is described in `docs/sdk-facts.md` §3:
//!
//! 1. `K` = bytes `13..45` of `encrypt_msg` (32 ASCII characters used raw as an AES-256 key).
//! 2. `B = base64decode(encrypt_key)`, `IV = B[0..16]`,
//!    `info = AES-256-CBC-decrypt(K, IV, B[16..])` (PKCS#7), a protobuf message
//!    `{1: string k1, 2: int32 pre_len, 3: int32 end_len, 4: int32 s_len}`.
//! 3. `encrypt_msg = junk(13) ‖ K(32) ‖ junk(pre_len) ‖ C[..s_len] ‖ junk(s_len) ‖ C[s_len..] ‖ junk(end_len)`.
//! 4. `D = base64decode(C)`; plaintext = `AES-256-CBC-decrypt(k1 zero-padded/truncated to 32,
//!    IV = D[0..16], D[16..])` (PKCS#7).
//!
//! Every input is untrusted: this code never panics (every slice is bounds-checked, every length
//! computation is checked) and every failure is a [`NativeError`] carrying the SDK's error code.

use aws_lc_rs::cipher::{DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_256};
use base64::engine::GeneralPurpose;
use base64::Engine as _;

/// Length of the junk prefix of `encrypt_msg`.
const PREFIX_LEN: usize = 13;
/// Length of the AES key `K` embedded in `encrypt_msg`.
const KEY_LEN: usize = 32;
/// AES block (and IV) length.
const BLOCK: usize = 16;

/// SDK code: bad argument (NULL/empty input).
pub const SDK_BAD_ARGUMENT: i32 = 10000;
/// SDK code: the `info` message is unusable (bad fileid / bad key blob).
pub const SDK_BAD_INFO: i32 = 10005;
/// SDK code: the message core failed to decrypt.
pub const SDK_DECRYPT_FAILED: i32 = 10006;
/// SDK code: bad `encrypt_key`.
pub const SDK_BAD_ENCRYPT_KEY: i32 = 10008;

/// Strict standard base64 (canonical padding, no whitespace). The SDK's own decoder is lax, but
/// the server only ever produces canonical base64 (sdk-facts.md §3), and being strict keeps this
/// implementation's answers identical to the emulator's reference decoder for every input.
const B64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why native decryption failed. Each variant maps to the code the vendor SDK's `DecryptData`
/// returns for the same input ([`NativeError::sdk_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    /// `encrypt_key` or `encrypt_msg` is empty (SDK 10000).
    #[error("bad argument (SDK 10000): {0}")]
    BadArgument(&'static str),
    /// `encrypt_key` is not base64, has an impossible length, or fails AES/padding under `K`
    /// (SDK 10008).
    #[error("bad encrypt_key (SDK 10008): {0}")]
    BadEncryptKey(&'static str),
    /// `encrypt_msg` is too short to hold `K`, or the decrypted `info` message is not a valid
    /// protobuf, or its lengths do not fit `encrypt_msg` (SDK 10005; the real SDK aborts the
    /// process on messages shorter than 13 bytes).
    #[error("bad info block (SDK 10005): {0}")]
    BadInfo(InfoError),
    /// The message core is not base64, has an impossible length, or fails AES/padding under
    /// `k1` (SDK 10006).
    #[error("message core decryption failed (SDK 10006): {0}")]
    BadMessage(&'static str),
}

impl NativeError {
    /// The vendor SDK's `DecryptData` return code for the same failure.
    #[must_use]
    pub fn sdk_code(&self) -> i32 {
        match self {
            NativeError::BadArgument(_) => SDK_BAD_ARGUMENT,
            NativeError::BadEncryptKey(_) => SDK_BAD_ENCRYPT_KEY,
            NativeError::BadInfo(_) => SDK_BAD_INFO,
            NativeError::BadMessage(_) => SDK_DECRYPT_FAILED,
        }
    }
}

/// What is wrong with the `info` protobuf (all map to SDK code 10005).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("overlong varint at byte {0}")]
    OverlongVarint(usize),
    /// The message ends inside a tag, varint or length-delimited field.
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    /// A known field has the wrong wire type, or a wire type is invalid/unsupported (groups).
    #[error("field {field} has wire type {wire_type}, which is not acceptable here")]
    WireType {
        /// Field number.
        field: u64,
        /// Wire type found.
        wire_type: u8,
    },
    /// Field number 0 (invalid in protobuf).
    #[error("field number 0 at byte {0}")]
    ZeroField(usize),
    /// `encrypt_msg` is shorter than the 45 bytes that hold the junk prefix and `K`.
    #[error("encrypt_msg is {0} bytes, shorter than the 45-byte header")]
    MessageTooShort(usize),
    /// Field 1 (`k1`) is absent.
    #[error("k1 (field 1) is missing")]
    MissingK1,
    /// `s_len` is zero or negative.
    #[error("s_len is {0}, must be positive")]
    NonPositiveSLen(i32),
    /// `pre_len` or `end_len` is negative.
    #[error("{name} is negative ({value})")]
    NegativeLength {
        /// `pre_len` or `end_len`.
        name: &'static str,
        /// The value found.
        value: i32,
    },
    /// The lengths do not fit `encrypt_msg` (`45 + pre_len + s_len + end_len + |C| = len`,
    /// with `|C| ≥ s_len`).
    #[error(
        "lengths out of range: pre_len {pre_len}, s_len {s_len}, end_len {end_len} for a message of {msg_len} bytes"
    )]
    OutOfRange {
        /// `pre_len` from `info`.
        pre_len: i32,
        /// `s_len` from `info`.
        s_len: i32,
        /// `end_len` from `info`.
        end_len: i32,
        /// `encrypt_msg` length.
        msg_len: usize,
    },
}

/// The decoded `info` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Info {
    /// Field 1: the message key (zero-padded/truncated to 32 bytes before use).
    pub k1: Vec<u8>,
    /// Field 2.
    pub pre_len: i32,
    /// Field 3.
    pub end_len: i32,
    /// Field 4.
    pub s_len: i32,
}

impl Drop for Info {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.k1);
    }
}

/// Decrypt one record exactly as the SDK's `DecryptData(encrypt_key, encrypt_msg)` does.
///
/// `encrypt_key` is the RSA-decrypted `encrypt_random_key` (ASCII base64), `encrypt_msg` is the
/// record's `encrypt_chat_msg`. Returns the plaintext bytes (normally UTF-8 JSON; decision 6:
/// the caller handles invalid UTF-8).
///
/// # Errors
/// A [`NativeError`] saying which stage failed; never panics.
pub fn decrypt_data(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Vec<u8>, NativeError> {
    // Steps 1–3 and the base64 decoding of the core: the same code as `check_layout`.
    let Layout { info, mut core } = open_layout(encrypt_key, encrypt_msg)?;

    // Step 4: AES-256-CBC under k1 (zero-padded/truncated to 32 bytes).
    let mut k1 = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    let n = info.k1.len().min(KEY_LEN);
    if let (Some(dst), Some(src)) = (k1.get_mut(..n), info.k1.get(..n)) {
        dst.copy_from_slice(src);
    }
    let plain_len = cbc_decrypt_with_iv(&k1[..], &mut core).map_err(|e| NativeError::BadMessage(e.describe()))?.len();
    // The plaintext sits at core[16..16 + plain_len]: move it to the front in place.
    let end = BLOCK.checked_add(plain_len).ok_or(NativeError::BadMessage("length overflow"))?;
    if end > core.len() {
        return Err(NativeError::BadMessage("length overflow"));
    }
    core.copy_within(BLOCK..end, 0);
    core.truncate(plain_len);
    Ok(core)
}

/// Everything [`decrypt_data`] checks before it decrypts the message core: `encrypt_key`
/// decrypts under the message's `K` to a valid `info`, whose lengths
/// (`13 + 32 + pre_len + s_len + end_len + |C|`, with `|C| ≥ s_len`) fit `encrypt_msg`, and the
/// cut-out core `C` is canonical base64 of an IV plus a whole number (≥ 1) of AES blocks.
///
/// This is the guard the `sdk` module runs before handing input to the vendor's `DecryptData`,
/// which aborts the process when a valid key is paired with a truncated message. It rejects
/// every truncation that moves a cut point out of the message or leaves `C` with a length that
/// is not that of base64-encoded whole AES blocks; a truncation by a multiple of 64 characters
/// (48 bytes = 3 AES blocks) that also leaves the layout consistent cannot be told apart from a
/// shorter record without decrypting the core (and even then only by the padding check).
///
/// # Errors
/// The same errors as [`decrypt_data`] for these stages: [`NativeError::BadArgument`] (10000),
/// [`NativeError::BadInfo`] (10005), [`NativeError::BadEncryptKey`] (10008), and
/// [`NativeError::BadMessage`] (10006) when `C` is not base64 of whole AES blocks.
pub fn check_layout(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<(), NativeError> {
    open_layout(encrypt_key, encrypt_msg).map(|_| ())
}

/// What [`open_layout`] found: the `info` message and the base64-decoded core `D = IV ‖ AES`.
struct Layout {
    info: Info,
    core: Vec<u8>,
}

/// Steps 1–3, then base64-decode `C` and check that it holds an IV plus whole AES blocks.
fn open_layout(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Layout, NativeError> {
    if encrypt_key.is_empty() {
        return Err(NativeError::BadArgument("empty encrypt_key"));
    }
    if encrypt_msg.is_empty() {
        return Err(NativeError::BadArgument("empty encrypt_msg"));
    }
    // Step 1: K.
    let k = encrypt_msg
        .get(PREFIX_LEN..PREFIX_LEN + KEY_LEN)
        .ok_or(NativeError::BadInfo(InfoError::MessageTooShort(encrypt_msg.len())))?;

    // Step 2: the key blob.
    let mut blob =
        zeroize::Zeroizing::new(B64.decode(encrypt_key).map_err(|_| NativeError::BadEncryptKey("not base64"))?);
    let info_bytes = cbc_decrypt_with_iv(k, &mut blob).map_err(|e| NativeError::BadEncryptKey(e.describe()))?;
    let info = parse_info(info_bytes).map_err(NativeError::BadInfo)?;

    // Step 3: cut C out of the junk and decode it (no decryption yet).
    let c = extract_core(encrypt_msg, &info).map_err(NativeError::BadInfo)?;
    let core = B64.decode(&c).map_err(|_| NativeError::BadMessage("core is not base64"))?;
    if core.len() < 2 * BLOCK {
        return Err(NativeError::BadMessage(CbcError::TooShort.describe()));
    }
    if core.len() % BLOCK != 0 {
        return Err(NativeError::BadMessage(CbcError::NotBlockMultiple.describe()));
    }
    Ok(Layout { info, core })
}

/// Stage failure of [`cbc_decrypt_with_iv`].
#[derive(Debug, Clone, Copy)]
enum CbcError {
    TooShort,
    NotBlockMultiple,
    Key,
    Padding,
}

impl CbcError {
    fn describe(self) -> &'static str {
        match self {
            CbcError::TooShort => "shorter than IV + one AES block",
            CbcError::NotBlockMultiple => "ciphertext is not a whole number of AES blocks",
            CbcError::Key => "AES key setup failed",
            CbcError::Padding => "AES-CBC decryption failed (bad PKCS#7 padding: wrong key or corrupt data)",
        }
    }
}

/// `buf = IV(16) ‖ ciphertext`; decrypts in place and returns the plaintext (inside `buf[16..]`).
fn cbc_decrypt_with_iv<'a>(key: &[u8], buf: &'a mut [u8]) -> Result<&'a mut [u8], CbcError> {
    if buf.len() < 2 * BLOCK {
        return Err(CbcError::TooShort);
    }
    if buf.len() % BLOCK != 0 {
        return Err(CbcError::NotBlockMultiple);
    }
    let (iv, ct) = buf.split_at_mut(BLOCK);
    let iv: [u8; BLOCK] = (&*iv).try_into().map_err(|_| CbcError::TooShort)?;
    let unbound = UnboundCipherKey::new(&AES_256, key).map_err(|_| CbcError::Key)?;
    let dk = PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| CbcError::Key)?;
    dk.decrypt(ct, DecryptionContext::Iv128(iv.into())).map_err(|_| CbcError::Padding)
}

/// Bounds-checked reader for the 4-field `info` protobuf.
pub(crate) fn parse_info(buf: &[u8]) -> Result<Info, InfoError> {
    let mut info = Info::default();
    let mut have_k1 = false;
    let mut pos = 0usize;
    while pos < buf.len() {
        let tag_at = pos;
        let tag = read_varint(buf, &mut pos)?;
        let field = tag >> 3;
        // `tag & 7` is < 8 so the conversion cannot fail.
        let wire_type = u8::try_from(tag & 7).unwrap_or(u8::MAX);
        if field == 0 {
            return Err(InfoError::ZeroField(tag_at));
        }
        match (field, wire_type) {
            (1, 2) => {
                let bytes = read_len_delimited(buf, &mut pos)?;
                bytes.clone_into(&mut info.k1);
                have_k1 = true;
            }
            (2..=4, 0) => {
                let v = read_varint(buf, &mut pos)?;
                // protobuf int32 semantics: the low 32 bits, two's complement
                // (negative values are sign-extended to 10-byte varints on the wire).
                let v = v as u32 as i32;
                match field {
                    2 => info.pre_len = v,
                    3 => info.end_len = v,
                    _ => info.s_len = v,
                }
            }
            (1..=4, _) => return Err(InfoError::WireType { field, wire_type }),
            // Unknown fields: skip the ones whose size is known; reject groups and invalid types.
            (_, 0) => {
                read_varint(buf, &mut pos)?;
            }
            (_, 1) => skip(buf, &mut pos, 8)?,
            (_, 2) => {
                read_len_delimited(buf, &mut pos)?;
            }
            (_, 5) => skip(buf, &mut pos, 4)?,
            _ => return Err(InfoError::WireType { field, wire_type }),
        }
    }
    if !have_k1 {
        return Err(InfoError::MissingK1);
    }
    Ok(info)
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, InfoError> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..10u32 {
        let b = *buf.get(*pos).ok_or(InfoError::Truncated(*pos))?;
        *pos = pos.checked_add(1).ok_or(InfoError::Truncated(*pos))?;
        let low = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            // The 10th byte may only carry the 64th bit.
            return Err(InfoError::OverlongVarint(start));
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(InfoError::OverlongVarint(start))
}

fn read_len_delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], InfoError> {
    let len = read_varint(buf, pos)?;
    let len = usize::try_from(len).map_err(|_| InfoError::Truncated(*pos))?;
    let end = pos.checked_add(len).ok_or(InfoError::Truncated(*pos))?;
    let bytes = buf.get(*pos..end).ok_or(InfoError::Truncated(*pos))?;
    *pos = end;
    Ok(bytes)
}

fn skip(buf: &[u8], pos: &mut usize, n: usize) -> Result<(), InfoError> {
    let end = pos.checked_add(n).ok_or(InfoError::Truncated(*pos))?;
    if end > buf.len() {
        return Err(InfoError::Truncated(*pos));
    }
    *pos = end;
    Ok(())
}

/// Cut the base64 core `C` out of `encrypt_msg` using the lengths from `info`.
fn extract_core(msg: &[u8], info: &Info) -> Result<Vec<u8>, InfoError> {
    if info.s_len <= 0 {
        return Err(InfoError::NonPositiveSLen(info.s_len));
    }
    if info.pre_len < 0 {
        return Err(InfoError::NegativeLength { name: "pre_len", value: info.pre_len });
    }
    if info.end_len < 0 {
        return Err(InfoError::NegativeLength { name: "end_len", value: info.end_len });
    }
    let out_of_range = || InfoError::OutOfRange {
        pre_len: info.pre_len,
        s_len: info.s_len,
        end_len: info.end_len,
        msg_len: msg.len(),
    };
    let to_usize = |v: i32| usize::try_from(v).map_err(|_| out_of_range());
    let pre = to_usize(info.pre_len)?;
    let s = to_usize(info.s_len)?;
    let end = to_usize(info.end_len)?;

    // first = msg[a .. a + s]; second = msg[a + 2s .. len - end]
    let a = (PREFIX_LEN + KEY_LEN).checked_add(pre).ok_or_else(out_of_range)?;
    let first_end = a.checked_add(s).ok_or_else(out_of_range)?;
    let second_start = first_end.checked_add(s).ok_or_else(out_of_range)?;
    let second_end = msg.len().checked_sub(end).ok_or_else(out_of_range)?;
    if second_start > second_end {
        return Err(out_of_range());
    }
    let first = msg.get(a..first_end).ok_or_else(out_of_range)?;
    let second = msg.get(second_start..second_end).ok_or_else(out_of_range)?;
    let mut core = Vec::with_capacity(first.len().saturating_add(second.len()));
    core.extend_from_slice(first);
    core.extend_from_slice(second);
    Ok(core)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn parses_four_fields_and_negative_int32() {
        let mut b = vec![0x0a, 3, b'a', b'b', b'c'];
        b.push(0x10);
        varint(5, &mut b);
        b.push(0x18);
        varint(-7i64 as u64, &mut b);
        b.push(0x20);
        varint(300, &mut b);
        let info = parse_info(&b).unwrap();
        assert_eq!(info.k1, b"abc");
        assert_eq!((info.pre_len, info.end_len, info.s_len), (5, -7, 300));
    }

    #[test]
    fn skips_unknown_fields_and_rejects_bad_wire_types() {
        let mut b = vec![0x0a, 0, 0x28, 1, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0x3a, 1, 0, 0x45, 0, 0, 0, 0];
        b.extend([0x20, 9]);
        assert_eq!(parse_info(&b).unwrap().s_len, 9);
        assert!(matches!(parse_info(&[0x08, 1]), Err(InfoError::WireType { field: 1, .. })));
        assert!(matches!(parse_info(&[0x22, 0]), Err(InfoError::WireType { field: 4, .. })));
        assert!(matches!(parse_info(&[0x2b]), Err(InfoError::WireType { field: 5, .. })));
        assert!(matches!(parse_info(&[0x00]), Err(InfoError::ZeroField(0))));
        assert!(matches!(parse_info(&[0x20, 1]), Err(InfoError::MissingK1)));
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut b = vec![0x20];
        b.extend([0xff; 10]);
        b.push(0);
        assert!(matches!(parse_info(&b), Err(InfoError::OverlongVarint(1))));
        let mut b = vec![0x20];
        b.extend([0xff; 9]);
        b.push(0x02);
        assert!(matches!(parse_info(&b), Err(InfoError::OverlongVarint(1))));
        assert!(matches!(parse_info(&[0x20, 0x80]), Err(InfoError::Truncated(2))));
        assert!(matches!(parse_info(&[0x0a, 5, 1]), Err(InfoError::Truncated(2))));
        let mut b = vec![0x0a];
        varint(u64::MAX, &mut b);
        assert!(parse_info(&b).is_err());
    }

    #[test]
    fn extract_core_bounds() {
        let msg: Vec<u8> = (0..100u8).collect();
        let info = |pre, s, end| Info { k1: vec![], pre_len: pre, s_len: s, end_len: end };
        // 45 + 5 + 10 + 5 => C = 100 - 65 = 35 bytes total, first 10 then 25
        let core = extract_core(&msg, &info(5, 10, 5)).unwrap();
        assert_eq!(core.len(), 35);
        assert_eq!(core[..10], msg[50..60]);
        assert_eq!(core[10..], msg[70..95]);
        assert!(extract_core(&msg, &info(0, 0, 0)).is_err());
        assert!(extract_core(&msg, &info(-1, 1, 0)).is_err());
        assert!(extract_core(&msg, &info(0, 1, -1)).is_err());
        assert!(extract_core(&msg, &info(i32::MAX, i32::MAX, i32::MAX)).is_err());
        assert!(extract_core(&msg, &info(0, 28, 0)).is_err()); // |C| = 27 < s_len
        assert!(extract_core(&msg, &info(0, 27, 0)).is_ok());
        assert!(extract_core(&msg, &info(0, 1, 100)).is_err());
    }

    #[test]
    fn short_and_empty_inputs() {
        assert_eq!(decrypt_data(b"", b"x").unwrap_err().sdk_code(), 10000);
        assert_eq!(decrypt_data(b"x", b"").unwrap_err().sdk_code(), 10000);
        assert_eq!(decrypt_data(b"=", &[b'A'; 44]).unwrap_err().sdk_code(), 10005);
        assert_eq!(decrypt_data(b"=", &[b'A'; 45]).unwrap_err().sdk_code(), 10008);
        assert_eq!(decrypt_data(b"A==", &[b'A'; 45]).unwrap_err().sdk_code(), 10008);
        assert_eq!(decrypt_data(&[b'A'; 44], &[b'A'; 45]).unwrap_err().sdk_code(), 10008);
    }
}
