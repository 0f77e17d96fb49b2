//! Decryption of 会话内容存档 records: keys, keyring, RSA and the native `DecryptData`.
//!
//! Every record from `GetChatData` carries `publickey_ver`, `encrypt_random_key` and
//! `encrypt_chat_msg`. Turning it into the message JSON takes three steps, one per submodule:
//!
//! 1. [`keys`]: the corp's RSA private keys, pasted by users in whatever form
//!    (PKCS#1/PKCS#8, PEM/DER/bare base64, escaped…), are parsed once into [`PrivateKey`]s.
//!    A key decrypts with aws-lc-rs (2048–8192 bits, ≈5× faster than the `rsa` crate) or, for
//!    smaller legacy keys, with the `rsa` crate (ARCHITECTURE.md decision 5).
//! 2. [`keyring`]: a [`Keyring`] maps `publickey_ver` → key, plus the fallback key
//!    (`corplist.prikey`) used for versions that have no key of their own.
//!    [`Keyring::decrypt_random_key`] base64-decodes `encrypt_random_key`, RSA-decrypts it
//!    (PKCS#1 v1.5) and yields the ASCII base64 `encrypt_key`. RSA is ≈99 % of the CPU cost.
//! 3. [`native`]: [`native::decrypt_data`]`(encrypt_key, encrypt_chat_msg)` re-implements the
//!    SDK's `DecryptData` (`docs/sdk-facts.md` §3) in safe Rust on aws-lc-rs AES-256-CBC. It is
//!    the only in-process path (ARCHITECTURE.md decision 4): the vendor's `DecryptData` aborts on some
//!    inputs, this one returns a typed error for any input and never panics.
//!    [`native::check_layout`] is the same code without the final AES step: the guard the `sdk`
//!    module runs before it hands a record to the vendor's `DecryptData`.
//!
//! [`decrypt_record`] chains 2 and 3 for one record. The plaintext is returned as bytes; the
//! caller decides what to do with invalid UTF-8 (decision 6).
//!
//! Secrets: [`PrivateKey`] and [`Keyring`] print only sizes and public-key fingerprints; key
//! errors never contain key material; intermediate DER buffers and the RSA-decrypted random key
//! are zeroized on drop.

pub mod keyring;
pub mod keys;
pub mod native;

pub use keyring::Keyring;
pub use keys::{parse_private_key, KeyError, PrivateKey};
pub use native::{decrypt_data, NativeError};

/// Every failure of this module.
///
/// None is worth retrying: decryption is a pure function of the
/// record and the keys, so the same input fails the same way every time. A record that fails is
/// stored with its ciphertext and the error (invariant 1) and `redecrypt` retries it after the
/// keys change — that is the only "retry" that can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A private key could not be parsed or used.
    #[error("invalid private key: {0}")]
    Key(#[from] KeyError),
    /// No key for this `publickey_ver` and no fallback key.
    #[error("no private key for publickey_ver {0} and no fallback key")]
    MissingKeyVersion(u32),
    /// The RSA padding check failed with the key chosen for `ver`: that key does not match the
    /// public key the record was encrypted with.
    #[error(
        "RSA decryption of encrypt_random_key failed with the key for publickey_ver {ver}: wrong key for this record"
    )]
    WrongKey {
        /// The record's `publickey_ver`.
        ver: u32,
    },
    /// RSA decryption failed (padding check) — from [`PrivateKey::decrypt_pkcs1`], which does
    /// not know the version; the keyring turns it into [`CryptoError::WrongKey`].
    #[error("RSA PKCS#1 v1.5 decryption failed: wrong key or corrupt ciphertext")]
    RsaDecrypt,
    /// `encrypt_random_key` is not base64 or does not have the key's length.
    #[error("corrupt encrypt_random_key: {reason}")]
    CorruptCiphertext {
        /// What was wrong.
        reason: &'static str,
    },
    /// RSA decryption succeeded but did not yield ASCII base64 text (a wrong key that passed the
    /// padding check by chance, or a corrupt record).
    #[error("RSA-decrypted encrypt_random_key (publickey_ver {ver}) is not base64 text: wrong key or corrupt record")]
    RandomKeyNotText {
        /// The record's `publickey_ver`.
        ver: u32,
    },
    /// The native `DecryptData` failed.
    #[error("native DecryptData failed: {0}")]
    Native(#[from] NativeError),
}

impl CryptoError {
    /// The vendor SDK code for the same failure, for compatibility with the Java version's
    /// stored codes: native-decrypt failures map to 10000/10005/10006/10008 exactly as
    /// `DecryptData` would return them; a missing key version to 10007 (what `GetChatData`
    /// reports for a record whose key version the SDK does not have). RSA and key-parsing errors
    /// have no SDK equivalent (the Java version did RSA itself): `None`.
    #[must_use]
    pub fn sdk_code(&self) -> Option<i32> {
        match self {
            CryptoError::Native(e) => Some(e.sdk_code()),
            CryptoError::MissingKeyVersion(_) => Some(10007),
            _ => None,
        }
    }
}

/// Decrypt one record: RSA-decrypt `encrypt_random_key` with the key of `publickey_ver` (or the
/// fallback), then run the native `DecryptData` on `encrypt_chat_msg`. Returns the plaintext
/// bytes (normally the message JSON).
///
/// # Errors
/// See [`Keyring::decrypt_random_key`] and [`native::decrypt_data`].
pub fn decrypt_record(
    keyring: &Keyring,
    publickey_ver: u32,
    encrypt_random_key: &str,
    encrypt_chat_msg: &str,
) -> Result<Vec<u8>, CryptoError> {
    let encrypt_key = keyring.decrypt_random_key(publickey_ver, encrypt_random_key)?;
    Ok(native::decrypt_data(encrypt_key.as_bytes(), encrypt_chat_msg.as_bytes())?)
}
