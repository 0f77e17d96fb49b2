//! Encryption at rest of the corp secrets and private keys stored in `corplist` / `corp_keys`.
//!
//! With a master key (`[security] master_key_file`, or the key itself in the environment variable
//! [`MASTER_KEY_ENV`]: 32 bytes, written as base64 or as 64 hex digits), every secret and key the
//! commands store is sealed with AES-256-GCM and stored as
//! `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`. The additional authenticated data is the
//! value's place (`corplist.secret/<corpid>`, `corp_keys/<corpid>/<ver>`…), so a sealed value
//! copied to another corp or column does not open. The key id (8 hex digits of a SHA-256 of the
//! key) tells "sealed with another key" from "damaged".
//!
//! Values without the `enc:` prefix are plaintext (the Java version's, or written without a
//! master key) and read as they are; `security encrypt-existing` seals them. A sealed value that
//! cannot be opened (no master key, another key, damaged) is an error for that corp only: the
//! corp is left out and named, the others proceed. The master key never appears in a log, an
//! error or `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The environment variable that may hold the master key itself (base64 or hex).
pub const MASTER_KEY_ENV: &str = "WEWORK_MSGAUDIT_MASTER_KEY";
/// The prefix of every sealed value of format version 1.
pub const PREFIX_V1: &str = "enc:v1:";
/// The prefix of any sealed value (any format version).
const PREFIX_ANY: &str = "enc:";
/// Master key length in bytes (AES-256).
const KEY_LEN: usize = 32;

/// Why a master key could not be loaded or a value could not be sealed or opened. No variant
/// holds key material or a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The master key file could not be read.
    #[error("cannot read the master key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The master key text is not 32 bytes of base64 or hex.
    #[error("the master key from {from} is not usable: {reason} (expected 32 bytes as base64 or as 64 hex digits)")]
    BadKey {
        /// Where it came from (a file path or the variable name; never the value).
        from: String,
        /// What is wrong.
        reason: String,
    },
    /// Both the file and the environment variable are set.
    #[error("both [security] master_key_file and ${MASTER_KEY_ENV} are set: give only one")]
    TwoKeys,
    /// A sealed value and no master key.
    #[error("{place} is encrypted (master key {key_id}) but no master key is configured ([security] master_key_file or ${MASTER_KEY_ENV})")]
    NoKey {
        /// The value's place.
        place: String,
        /// The id of the key it was sealed with.
        key_id: String,
    },
    /// A sealed value of another master key.
    #[error("{place} is encrypted with master key {stored}, but the configured master key is {configured}")]
    WrongKey {
        /// The value's place.
        place: String,
        /// The id of the key it was sealed with.
        stored: String,
        /// The id of the configured key.
        configured: String,
    },
    /// The value does not open with the right key: damaged, or moved from another place.
    #[error("{place} is encrypted but does not decrypt with master key {key_id} (damaged, or copied from another corp or column)")]
    Damaged {
        /// The value's place.
        place: String,
        /// The configured key's id.
        key_id: String,
    },
    /// A master key is configured but could not be loaded.
    #[error("{place} is encrypted but the master key is not usable: {reason}")]
    Unavailable {
        /// The value's place.
        place: String,
        /// Why the key could not be loaded.
        reason: String,
    },
    /// A format this build does not know.
    #[error("{place} is encrypted in a format this version does not know (expected {PREFIX_V1}…)")]
    UnknownFormat {
        /// The value's place.
        place: String,
    },
    /// The system random generator or the cipher failed.
    #[error("encryption failed: {0}")]
    Crypto(String),
}

/// The 32-byte master key. `Debug` shows only its id.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Parses a key written as 64 hex digits or as base64 of 32 bytes (surrounding whitespace
    /// ignored). `from` names the source in errors.
    pub fn parse(text: &str, from: &str) -> Result<Self, SecurityError> {
        let bad = |reason: &str| SecurityError::BadKey { from: from.to_string(), reason: reason.to_string() };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let bytes: Zeroizing<Vec<u8>> = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Zeroizing::new(
                (0..KEY_LEN)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| bad("not hex"))?,
            )
        } else {
            Zeroizing::new(
                base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| bad("neither hex nor base64"))?,
            )
        };
        if bytes.len() != KEY_LEN {
            return Err(bad(&format!("it decodes to {} bytes", bytes.len())));
        }
        let mut tagged = b"wework-msgaudit master key id\0".to_vec();
        tagged.extend_from_slice(&bytes);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tagged);
        tagged.iter_mut().for_each(|b| *b = 0);
        let id: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad("rejected by AES-256-GCM"))?;
        Ok(Self { key: LessSafeKey::new(key), id })
    }

    /// The key's public id (8 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for `place`.
    pub fn seal(&self, place: &str, plain: &str) -> Result<String, SecurityError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SecurityError::Crypto("no random bytes".into()))?;
        let mut buf = Zeroizing::new(plain.as_bytes().to_vec());
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(place.as_bytes()), &mut *buf)
            .map_err(|_| SecurityError::Crypto("AES-256-GCM seal failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX_V1}{}:{}", self.id, base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`MasterKey::seal`] for `place`.
    fn open(&self, place: &str, stored: &str) -> Result<Secret, SecurityError> {
        let (key_id, body) = split_v1(place, stored)?;
        if key_id != self.id {
            return Err(SecurityError::WrongKey {
                place: place.to_string(),
                stored: key_id.to_string(),
                configured: self.id.clone(),
            });
        }
        let damaged = || SecurityError::Damaged { place: place.to_string(), key_id: self.id.clone() };
        let raw = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| damaged())?;
        if raw.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self.key.open_in_place(nonce, Aad::from(place.as_bytes()), &mut buf).map_err(|_| damaged())?;
        let text = std::str::from_utf8(plain).map_err(|_| damaged())?;
        Ok(Secret::new(text))
    }
}

/// `(key id, base64 body)` of an `enc:v1:` value.
fn split_v1<'a>(place: &str, stored: &'a str) -> Result<(&'a str, &'a str), SecurityError> {
    stored
        .strip_prefix(PREFIX_V1)
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| SecurityError::UnknownFormat { place: place.to_string() })
}

/// True when a stored value is sealed (any format version).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX_ANY)
}

/// The place (additional authenticated data) of `corplist.secret`.
pub fn secret_place(corpid: &str) -> String {
    format!("corplist.secret/{corpid}")
}

/// The place of `corplist.prikey`.
pub fn prikey_place(corpid: &str) -> String {
    format!("corplist.prikey/{corpid}")
}

/// The place of a `corp_keys` row.
pub fn key_place(corpid: &str, ver: u32) -> String {
    format!("corp_keys/{corpid}/{ver}")
}

/// The master key of a process, if any: how stored values are read and written.
#[derive(Clone, Debug, Default)]
pub struct AtRest {
    key: Option<Arc<MasterKey>>,
    /// Set when a key is configured but did not load: nothing can be sealed or opened.
    problem: Option<String>,
}

impl AtRest {
    /// No master key: values are stored as plaintext, sealed ones cannot be read.
    pub fn off() -> Self {
        Self::default()
    }

    /// With this master key.
    pub fn with_key(key: MasterKey) -> Self {
        Self { key: Some(Arc::new(key)), problem: None }
    }

    /// A configured key that did not load (`reason`): plaintext values still read; sealing and
    /// opening fail with the reason. For readers that must not stop at a bad key file (the
    /// daemon's corp reloads); commands that store values use [`AtRest::load`] and stop.
    pub fn broken(reason: impl Into<String>) -> Self {
        Self { key: None, problem: Some(reason.into()) }
    }

    /// [`AtRest::load`], or [`AtRest::broken`] with the error.
    pub fn load_or_broken(file: &Path) -> Self {
        Self::load(file).unwrap_or_else(|e| Self::broken(e.to_string()))
    }

    /// The master key of `[security] master_key_file` (`file`, empty = none) or of
    /// [`MASTER_KEY_ENV`]; neither = [`AtRest::off`].
    pub fn load(file: &Path) -> Result<Self, SecurityError> {
        Self::load_with(file, std::env::var(MASTER_KEY_ENV).ok())
    }

    /// [`AtRest::load`] with the environment value given (testable).
    pub fn load_with(file: &Path, env: Option<String>) -> Result<Self, SecurityError> {
        let env = env.filter(|v| !v.trim().is_empty());
        let has_file = !file.as_os_str().is_empty();
        match (has_file, env) {
            (true, Some(_)) => Err(SecurityError::TwoKeys),
            (false, Some(text)) => {
                let text = Zeroizing::new(text);
                Ok(Self::with_key(MasterKey::parse(&text, &format!("${MASTER_KEY_ENV}"))?))
            }
            (true, None) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(file).map_err(|e| SecurityError::KeyFile {
                        path: file.to_path_buf(),
                        reason: e.kind().to_string(),
                    })?);
                Ok(Self::with_key(MasterKey::parse(&text, &file.display().to_string())?))
            }
            (false, None) => Ok(Self::off()),
        }
    }

    /// The configured key's id, if a key is configured.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_deref().map(MasterKey::id)
    }

    /// A stored value as plaintext: a sealed one is opened, a plaintext one returned as is.
    pub fn reveal(&self, place: &str, stored: &Secret) -> Result<Secret, SecurityError> {
        let text = stored.expose();
        if !is_sealed(text) {
            return Ok(stored.clone());
        }
        match (&self.key, &self.problem) {
            (Some(key), _) => key.open(place, text),
            (None, Some(reason)) => {
                Err(SecurityError::Unavailable { place: place.to_string(), reason: reason.clone() })
            }
            (None, None) => {
                let (key_id, _) = split_v1(place, text)?;
                Err(SecurityError::NoKey { place: place.to_string(), key_id: key_id.to_string() })
            }
        }
    }

    /// The value to store: sealed with the master key, or plaintext without one.
    pub fn protect(&self, place: &str, plain: &Secret) -> Result<Secret, SecurityError> {
        if let Some(reason) = &self.problem {
            return Err(SecurityError::Unavailable { place: place.to_string(), reason: reason.clone() });
        }
        match &self.key {
            Some(key) if !plain.is_empty() => Ok(Secret::new(key.seal(place, plain.expose())?)),
            _ => Ok(plain.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key(text: &str) -> AtRest {
        AtRest::with_key(MasterKey::parse(text, "test").unwrap())
    }

    #[test]
    fn sealed_values_round_trip_and_are_bound_to_their_place() {
        let k = key(HEX);
        let plain = Secret::new("corp-secret-123456");
        let sealed = k.protect("corplist.secret/ww1", &plain).unwrap();
        assert!(sealed.expose().starts_with(PREFIX_V1), "{}", sealed.expose());
        assert!(!sealed.expose().contains("corp-secret"));
        assert_eq!(k.reveal("corplist.secret/ww1", &sealed).unwrap(), plain);
        assert!(matches!(k.reveal("corplist.secret/ww2", &sealed), Err(SecurityError::Damaged { .. })));
        // Plaintext (Java) values read as they are.
        assert_eq!(k.reveal("corplist.secret/ww1", &plain).unwrap(), plain);
        // Two seals of one value differ (random nonce).
        assert_ne!(k.protect("p", &plain).unwrap(), k.protect("p", &plain).unwrap());
    }

    #[test]
    fn hex_and_base64_give_the_same_key_and_errors_never_show_it() {
        let b64 = base64::engine::general_purpose::STANDARD.encode((0u8..32).collect::<Vec<u8>>());
        let a = MasterKey::parse(HEX, "a").unwrap();
        let b = MasterKey::parse(&format!("  {b64}\n"), "b").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(format!("{a:?}"), format!("MasterKey({})", a.id()));
        let e = MasterKey::parse(&HEX[..40], "$X").unwrap_err().to_string();
        assert!(!e.contains(&HEX[..40]) && e.contains("$X"), "{e}");
    }

    #[test]
    fn a_missing_or_other_key_is_named() {
        let sealed = key(HEX).protect("place", &Secret::new("v")).unwrap();
        let other = key(&"ab".repeat(32));
        let e = other.reveal("place", &sealed).unwrap_err();
        assert!(matches!(e, SecurityError::WrongKey { .. }), "{e}");
        let e = AtRest::off().reveal("place", &sealed).unwrap_err();
        assert!(matches!(e, SecurityError::NoKey { .. }) && e.to_string().contains("place"), "{e}");
        assert_eq!(AtRest::off().protect("place", &Secret::new("v")).unwrap().expose(), "v");
    }

    #[test]
    fn both_sources_at_once_are_refused() {
        assert!(matches!(AtRest::load_with(Path::new("/x"), Some(HEX.into())), Err(SecurityError::TwoKeys)));
        assert!(AtRest::load_with(Path::new(""), None).unwrap().key_id().is_none());
        assert!(AtRest::load_with(Path::new(""), Some(HEX.into())).unwrap().key_id().is_some());
    }
}
