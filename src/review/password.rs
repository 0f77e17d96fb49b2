//! Review users' passwords: the rules a new one must meet, Argon2id hashing into a PHC string
//! (what `review_user.password_hash` holds), and verification.
//!
//! Parameters are OWASP's for Argon2id: m = 19456 KiB, t = 2, p = 1, a random 16-byte salt per
//! hash. A hash costs tens of milliseconds and 19 MiB, so it runs on tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]), at most [`MAX_CONCURRENT`] at a time per process (a burst
//! of sign-ins queues instead of taking the memory of hundreds of hashes). Verification reads the
//! parameters from the stored string, so hashes made with other parameters still verify.
//!
//! A sign-in with an unknown user name verifies the password against a dummy hash of the same
//! cost ([`verify`] with `None`): the answer takes as long as for a known name, so timing does
//! not tell which names exist. Passwords and hashes are [`Secret`]s: they never print.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore as _;
use tokio::sync::Semaphore;

use crate::secret::Secret;

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters.
pub const MAX_CHARS: usize = 1024;
/// Hashes computed at once per process.
pub const MAX_CONCURRENT: usize = 4;

/// What can go wrong with a password. Never holds the password or a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Shorter than [`MIN_CHARS`].
    #[error("a password needs at least {MIN_CHARS} characters")]
    TooShort,
    /// Longer than [`MAX_CHARS`].
    #[error("a password has at most {MAX_CHARS} characters")]
    TooLong,
    /// Hashing failed (Argon2 refused its input, or the blocking task died).
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Whether `password` meets the rules: [`MIN_CHARS`] to [`MAX_CHARS`] characters.
pub fn check_rules(password: &Secret) -> Result<(), PasswordError> {
    let n = password.expose().chars().count();
    if n < MIN_CHARS {
        Err(PasswordError::TooShort)
    } else if n > MAX_CHARS {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

/// Argon2id with OWASP's parameters.
fn argon2() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` (blocking: call [`hash`] from async code).
pub fn hash_blocking(password: &Secret) -> Result<Secret, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let phc =
        argon2()?.hash_password(password.expose().as_bytes(), &salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Secret::new(phc.to_string()))
}

/// Whether `password` matches the PHC string `phc` (blocking). A string that does not parse
/// matches nothing.
pub fn verify_blocking(phc: &Secret, password: &Secret) -> bool {
    match PasswordHash::new(phc.expose()) {
        Ok(parsed) => Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// The dummy hash unknown names are verified against (made once, of a random password).
fn dummy() -> &'static Secret {
    static DUMMY: OnceLock<Secret> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut pw);
        let pw = Secret::new(crate::review::access_log::hex(&pw));
        // The parameters are constants Argon2 accepts; should hashing ever fail, the dummy
        // still parses as a hash of the same cost, with an all-zero salt and digest.
        hash_blocking(&pw).unwrap_or_else(|_| {
            Secret::new(
                "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
        })
    })
}

/// The permits of [`MAX_CONCURRENT`].
fn permits() -> &'static Semaphore {
    static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);
    &PERMITS
}

/// Runs `f` on the blocking pool under a permit.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, PasswordError> {
    let _permit = permits().acquire().await.map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks the rules, then hashes `password` on the blocking pool.
pub async fn hash(password: &Secret) -> Result<Secret, PasswordError> {
    check_rules(password)?;
    let password = password.clone();
    blocking(move || hash_blocking(&password)).await?
}

/// Whether `password` matches `phc`; with `None` (no such user) verifies against the dummy hash
/// and answers `false`, taking as long.
pub async fn verify(phc: Option<&Secret>, password: &Secret) -> bool {
    let known = phc.is_some();
    let phc = phc.cloned().unwrap_or_else(|| dummy().clone());
    let password = password.clone();
    let matched = blocking(move || verify_blocking(&phc, &password)).await.unwrap_or(false);
    matched && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_characters_not_bytes() {
        assert_eq!(check_rules(&Secret::new("short")), Err(PasswordError::TooShort));
        assert_eq!(check_rules(&Secret::new("elevenchars")), Err(PasswordError::TooShort));
        assert_eq!(check_rules(&Secret::new("twelve chars")), Ok(()));
        // 12 CJK characters are 36 bytes and 12 characters: accepted; 11 are not.
        assert_eq!(check_rules(&Secret::new("密".repeat(12))), Ok(()));
        assert_eq!(check_rules(&Secret::new("密".repeat(11))), Err(PasswordError::TooShort));
        assert_eq!(check_rules(&Secret::new("x".repeat(MAX_CHARS + 1))), Err(PasswordError::TooLong));
    }

    #[tokio::test]
    async fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw).await.unwrap();
        assert!(phc.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", phc.expose());
        assert!(verify(Some(&phc), &pw).await);
        assert!(!verify(Some(&phc), &Secret::new("correct horse battery!")).await);
        // Salted: the same password hashes differently.
        assert_ne!(hash(&pw).await.unwrap(), phc);
        // An unknown user never matches, not even with the dummy's own password shape.
        assert!(!verify(None, &pw).await);
        // A stored value that is no PHC string matches nothing.
        assert!(!verify(Some(&Secret::new("plaintext")), &Secret::new("plaintext")).await);
        assert_eq!(hash(&Secret::new("short")).await, Err(PasswordError::TooShort));
    }

    #[test]
    fn an_unknown_user_costs_as_much_as_a_known_one() {
        let pw = Secret::new("correct horse battery");
        let phc = hash_blocking(&pw).unwrap();
        let _ = dummy();
        // The fastest of 5 runs each: scheduling noise only ever adds time.
        let time = |f: &dyn Fn() -> bool| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    assert!(!f());
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let wrong = Secret::new("wrong password!");
        let known = time(&|| verify_blocking(&phc, &wrong));
        let unknown = time(&|| verify_blocking(dummy(), &wrong));
        // Same parameters, same work: within a factor of 10 either way (a loaded CI machine once
        // gave 54 ms against 19 ms), where skipping the hash would be about a thousand times
        // faster.
        assert!(unknown * 10 > known && known * 10 > unknown, "known {known:?} vs unknown {unknown:?}");
        // Nothing prints.
        assert_eq!(format!("{phc:?} {phc}"), "Secret(<redacted>) <redacted>");
    }
}
