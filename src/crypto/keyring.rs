//! A corp's private keys by `publickey_ver`, plus the optional fallback key.
//!
//! ARCHITECTURE.md decision 5: a record's `publickey_ver` is looked up first (`corp_keys`); only when that
//! version is absent is the fallback key (`corplist.prikey`, which the Java version used for
//! every version) tried. A version that is present but whose key does not match the record is a
//! [`CryptoError::WrongKey`]: the fallback is *not* tried then, so that a misconfigured version
//! is reported rather than silently papered over.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::keys::PrivateKey;
use super::CryptoError;

const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Keys by `publickey_ver`, plus an optional fallback. Cheap to clone (keys are `Arc`s).
#[derive(Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<u32, Arc<PrivateKey>>,
    fallback: Option<Arc<PrivateKey>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<String> = self.keys.iter().map(|(v, k)| format!("{v}: {}", k.fingerprint())).collect();
        f.debug_struct("Keyring")
            .field("versions", &versions)
            .field("fallback", &self.fallback.as_ref().map(|k| k.fingerprint()))
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) the key of a version.
    pub fn insert(&mut self, ver: u32, key: impl Into<Arc<PrivateKey>>) -> &mut Self {
        self.keys.insert(ver, key.into());
        self
    }

    /// Set the fallback key (`corplist.prikey`), tried for versions that have no key.
    pub fn set_fallback(&mut self, key: impl Into<Arc<PrivateKey>>) -> &mut Self {
        self.fallback = Some(key.into());
        self
    }

    /// The versions that have their own key, ascending.
    #[must_use]
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether a fallback key is set.
    #[must_use]
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Whether the keyring holds no key at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.fallback.is_none()
    }

    /// The key that would be used for `ver`: its own, else the fallback.
    #[must_use]
    pub fn key_for(&self, ver: u32) -> Option<&Arc<PrivateKey>> {
        self.keys.get(&ver).or(self.fallback.as_ref())
    }

    /// Base64-decode `encrypt_random_key`, RSA-decrypt it (PKCS#1 v1.5) with the key for `ver`,
    /// and check that the result is ASCII base64 text (the `encrypt_key` of `DecryptData`).
    ///
    /// # Errors
    /// [`CryptoError::MissingKeyVersion`] (no key, no fallback), [`CryptoError::CorruptCiphertext`]
    /// (not base64, wrong length), [`CryptoError::WrongKey`] (padding check failed) or
    /// [`CryptoError::RandomKeyNotText`] (decrypted, but not base64 text).
    pub fn decrypt_random_key(&self, ver: u32, encrypt_random_key_b64: &str) -> Result<Zeroizing<String>, CryptoError> {
        let key = self.key_for(ver).ok_or(CryptoError::MissingKeyVersion(ver))?;
        let compact: String = encrypt_random_key_b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let ciphertext = B64
            .decode(compact.as_bytes())
            .map_err(|_| CryptoError::CorruptCiphertext { reason: "encrypt_random_key is not base64" })?;
        let plain = key.decrypt_pkcs1(&ciphertext).map_err(|e| match e {
            CryptoError::RsaDecrypt => CryptoError::WrongKey { ver },
            other => other,
        })?;
        let is_b64_text = !plain.is_empty()
            && plain.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
        if !is_b64_text {
            return Err(CryptoError::RandomKeyNotText { ver });
        }
        // All bytes are ASCII, so this cannot fail; map defensively anyway.
        let text = String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::RandomKeyNotText { ver })?;
        Ok(Zeroizing::new(text))
    }
}
