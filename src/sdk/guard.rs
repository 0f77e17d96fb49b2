//! Checks that run before any argument reaches the vendor SDK.
//!
//! The vendor library aborts or segfaults on some inputs (sdk-facts.md §2): `DecryptData` with an
//! `encrypt_msg` shorter than 13 bytes, with `encrypt_key` `=`/`==`/`A==`/`====`, with a valid key
//! and a truncated message; NULL pointers anywhere. A crash there kills every corp of the process,
//! so each entry point of [`super::dynlib`] calls one of these functions first and refuses the
//! call with [`SdkError::InvalidInput`]. The emulator binding runs the same checks so that tests
//! exercise them.

use std::ffi::CString;

use base64::Engine as _;

use super::SdkError;

/// Longest corpid accepted (WeCom corpids are 18 characters).
const MAX_CORPID: usize = 64;
/// Longest secret accepted (WeCom secrets are 43 characters).
const MAX_SECRET: usize = 256;
/// Longest sdkfileid accepted (real ones are a few hundred bytes).
const MAX_SDKFILEID: usize = 16 * 1024;
/// Longest media index accepted.
const MAX_INDEX: usize = 1024;

/// A Rust string as a C string, refusing interior NULs.
pub fn c_string(call: &'static str, value: &str, reason: &'static str) -> Result<CString, SdkError> {
    CString::new(value).map_err(|_| SdkError::InvalidInput { call, reason })
}

/// `Init` arguments: a plain identifier and a non-empty secret.
pub fn check_init(corpid: &str, secret: &str) -> Result<(), SdkError> {
    const CALL: &str = "Init";
    if corpid.is_empty() || corpid.len() > MAX_CORPID {
        return Err(SdkError::InvalidInput { call: CALL, reason: "corpid must be 1 to 64 characters" });
    }
    if !corpid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(SdkError::InvalidInput {
            call: CALL,
            reason: "corpid may contain only ASCII letters, digits, '_' and '-'",
        });
    }
    if secret.is_empty() || secret.len() > MAX_SECRET || secret.bytes().any(|b| b.is_ascii_control()) {
        return Err(SdkError::InvalidInput { call: CALL, reason: "secret must be 1 to 256 printable characters" });
    }
    Ok(())
}

/// `GetMediaData` arguments: a base64 sdkfileid and a printable index.
pub fn check_media(sdkfileid: &str, index: &str) -> Result<(), SdkError> {
    const CALL: &str = "GetMediaData";
    if sdkfileid.is_empty() || sdkfileid.len() > MAX_SDKFILEID {
        return Err(SdkError::InvalidInput { call: CALL, reason: "sdkfileid must be 1 to 16384 characters" });
    }
    if !sdkfileid.bytes().all(is_base64_byte) {
        return Err(SdkError::InvalidInput { call: CALL, reason: "sdkfileid is not base64" });
    }
    if index.len() > MAX_INDEX || !index.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(SdkError::InvalidInput {
            call: CALL,
            reason: "media index must be printable ASCII up to 1024 bytes",
        });
    }
    Ok(())
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// `DecryptData` arguments, checked so that none of the known crashing inputs gets through:
///
/// - `encrypt_key` must be canonical base64 decoding to an IV plus at least one AES block, a
///   whole number of blocks (this refuses `=`, `==`, `A==`, `====` and every other short key);
/// - `encrypt_msg` must be base64-alphabet text longer than its 13-byte junk prefix and 32-byte key;
/// - the lengths in the key blob must fit inside `encrypt_msg` (a valid key with a truncated
///   message aborts the SDK): checked by [`crate::crypto::native::check_layout`].
pub fn check_decrypt_input(encrypt_key: &str, encrypt_msg: &str) -> Result<(), SdkError> {
    const CALL: &str = "DecryptData";
    let blob = base64::engine::general_purpose::STANDARD
        .decode(encrypt_key)
        .map_err(|_| SdkError::InvalidInput { call: CALL, reason: "encrypt_key is not canonical base64" })?;
    if blob.len() < 32 || blob.len() % 16 != 0 {
        return Err(SdkError::InvalidInput {
            call: CALL,
            reason: "encrypt_key does not hold an IV and whole AES blocks",
        });
    }
    if encrypt_msg.len() <= 45 || !encrypt_msg.bytes().all(is_base64_byte) {
        return Err(SdkError::InvalidInput { call: CALL, reason: "encrypt_msg is too short or not base64 text" });
    }
    crate::crypto::native::check_layout(encrypt_key.as_bytes(), encrypt_msg.as_bytes()).map_err(|_| {
        SdkError::InvalidInput {
            call: CALL,
            reason: "encrypt_key does not describe encrypt_msg (truncated or mismatched message)",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_crashing_decrypt_inputs_are_refused() {
        let long_msg = "A".repeat(200);
        for key in ["", "=", "==", "A==", "====", "AAAA", "not base64!"] {
            assert!(check_decrypt_input(key, &long_msg).is_err(), "{key:?}");
        }
        let key = "A".repeat(88);
        for msg in ["", "short", "123456789012", &"A".repeat(45)] {
            assert!(check_decrypt_input(&key, msg).is_err(), "{msg:?}");
        }
    }

    #[test]
    fn init_and_media_checks() {
        assert!(check_init("ww0123456789abcdef", "s").is_ok());
        assert!(check_init("", "s").is_err());
        assert!(check_init("ww'; DROP TABLE x;--", "s").is_err());
        assert!(check_init("ww01", "").is_err());
        assert!(check_media("Q2lSa1lXRT0=", "").is_ok());
        assert!(check_media("", "").is_err());
        assert!(check_media("../../etc/passwd", "").is_err());
        assert!(check_media("Q2k=", "Range:bytes=1-2\n").is_err());
        assert!(c_string("Init", "a\0b", "nul").is_err());
    }
}
