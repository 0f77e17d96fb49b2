//! Session tokens and the session cookie, as plain functions (the middleware that uses them is
//! `auth::layer`, the rows `store::ReviewRepo`).
//!
//! - A token is 256 random bits from the OS, base64url without padding (43 characters). The
//!   browser holds it in the cookie [`COOKIE`]; the database holds only its SHA-256
//!   ([`token_hash`]), so a copy of `review_session` signs nobody in.
//! - The CSRF token is drawn the same way, stored with the session and given to the client at
//!   sign-in (and by `GET /api/me`); state-changing requests send it back in `X-CSRF-Token`,
//!   compared in constant time ([`same`]).
//! - The cookie is `HttpOnly; SameSite=Strict; Path=/`, without `Max-Age` (it ends with the
//!   browser; the server ends the session after `[review] session_idle` without use and
//!   `session_max` after sign-in whatever its use), and `Secure` per [`CookieSecure`].

use std::str::FromStr;

use base64::Engine as _;
use rand::RngCore as _;

use crate::secret::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "wwmsg_session";

/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Length of a token: 32 bytes in base64url without padding.
const TOKEN_CHARS: usize = 43;

/// A new random token (a session's or a CSRF token).
pub fn new_token() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database keys a session by: SHA-256 of the token, hex.
pub fn token_hash(token: &Secret) -> String {
    crate::review::access_log::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.expose().as_bytes()).as_ref(),
    )
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// When the cookie gets `Secure` (`[review] cookie_secure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    /// When the request came over HTTPS, directly or per `X-Forwarded-Proto`/`Forwarded` from
    /// the proxy in front (as actix's `connection_info().scheme()` sees it).
    Auto,
    /// Always.
    Always,
    /// Never (plain HTTP on a trusted network, tests).
    Never,
}

impl FromStr for CookieSecure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!("[review] cookie_secure = {other:?}: expected \"auto\", \"always\" or \"never\"")),
        }
    }
}

impl CookieSecure {
    /// Whether a response to a request of `scheme` (`http`/`https`) sets `Secure`.
    pub fn secure(self, scheme: &str) -> bool {
        match self {
            Self::Auto => scheme.eq_ignore_ascii_case("https"),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// The `Set-Cookie` value that holds `token`.
pub fn set_cookie(token: &Secret, secure: bool) -> String {
    format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}", token.expose(), if secure { "; Secure" } else { "" })
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

/// The session token among `Cookie` header values, if one is there and well formed.
pub fn cookie_token<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<Secret> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .find(|v| v.len() == TOKEN_CHARS && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_stored_only_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(a.expose()).unwrap();
        assert_eq!(decoded.len(), 32);
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(a.expose()));
        assert_eq!(h, token_hash(&a.clone()));
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn the_cookie_has_the_required_flags() {
        let t = new_token();
        let c = set_cookie(&t, false);
        assert!(c.starts_with(&format!("wwmsg_session={}; ", t.expose())), "{c}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.split("; ").any(|p| p == flag), "{flag} in {c}");
        }
        assert!(!c.contains("Secure"));
        assert!(set_cookie(&t, true).ends_with("; Secure"));
        let gone = clear_cookie(true);
        assert!(gone.starts_with("wwmsg_session=; ") && gone.contains("Max-Age=0") && gone.ends_with("; Secure"));
    }

    #[test]
    fn secure_follows_the_setting_and_the_scheme() {
        assert!(CookieSecure::Auto.secure("https"));
        assert!(!CookieSecure::Auto.secure("http"));
        assert!(CookieSecure::Always.secure("http"));
        assert!(!CookieSecure::Never.secure("https"));
        assert_eq!("auto".parse(), Ok(CookieSecure::Auto));
        assert!("yes".parse::<CookieSecure>().is_err());
    }

    #[test]
    fn the_token_is_found_among_other_cookies_and_junk_is_ignored() {
        let t = new_token();
        let header = format!("theme=dark; wwmsg_session={}; lang=zh", t.expose());
        assert_eq!(cookie_token([header.as_str()]), Some(t.clone()));
        assert_eq!(cookie_token(["a=b", &format!("wwmsg_session={}", t.expose())]), Some(t));
        assert_eq!(cookie_token(["wwmsg_session=short"]), None);
        assert_eq!(cookie_token(["wwmsg_session=' OR 1=1 --xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]), None);
        assert_eq!(cookie_token(["other=1"]), None);
        assert_eq!(cookie_token([]), None);
    }

    #[test]
    fn csrf_comparison_is_exact() {
        let t = new_token();
        let copy = t.expose().to_string();
        assert!(same(t.expose(), &copy));
        assert!(!same(t.expose(), new_token().expose()));
        assert!(!same(t.expose(), &t.expose()[..42]));
        assert!(!same(t.expose(), ""));
    }
}
