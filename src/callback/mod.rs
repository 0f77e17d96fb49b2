//! WeCom callbacks → pull now.
//!
//! WeCom POSTs a `msgaudit_notify` event to the callback URL of the archive app (会话内容存档's
//! 接收事件服务器) when new archive messages exist, at most every 15 s and only when there are
//! some. This module is the endpoint that receives it, so that a new record is stored within a
//! second instead of after the next `poll_interval`:
//!
//! ```text
//!  WeCom ──GET/POST /callback/<corpid>──► server (own actix-web listener, [callback] listen)
//!                                           │ Directory::keys(corpid)  (the supervisor: CallbackKeysOf)
//!                                           │ protocol: signature, AES-256-CBC, ReceiveId
//!                                           │ replay: timestamp window, (timestamp, nonce) seen once
//!                                           │ event: the XML inside
//!                                           ▼
//!                                   EventSink::pull_now ──► Supervisor ─PullNow─► CorpActor
//!                                   EventSink::consent_approved (logged, counted, and with [wecom_api]
//!                                   the consent re-checked: wecom::refresh)
//! ```
//!
//! - [`protocol`]: the cryptography as pure functions (sign, verify, decrypt, encrypt; the key);
//! - [`event`]: the envelope and event XML (quick-xml);
//! - [`replay`]: the 5-minute window and the replay table;
//! - [`endpoint`]: one request → an [`endpoint::Outcome`] (status, metric label) and maybe an
//!   event, with no server: what the tests call directly;
//! - [`server`]: the actix-web listener, the body limit (413 before reading more), the
//!   [`Directory`] of keys and the [`EventSink`];
//! - [`counters`]: the per-corp counts behind `wework_msgaudit_callback_*` (kept in
//!   [`crate::actors::Stats`], rendered by `crate::observe::metrics`).
//!
//! A corp's keys ([`CallbackKeys`]: `callback_token`, `encoding_aes_key`, both secrets) come with
//! its [`crate::corps::CorpSpec`] from the corps file or the `corp_callback` table. The
//! coalescing itself lives in the corp actor (`crate::actors::corp::PullNow`): any number of
//! notifies before its next wait give one pull, so a flood of valid callbacks cannot make a pull
//! storm; rejected ones never reach it. Polling stays the safety net, at `[callback]
//! poll_interval` for the corps with callbacks.

pub mod counters;
pub mod endpoint;
pub mod event;
pub mod protocol;
pub mod replay;
pub mod server;

use crate::secret::Secret;

pub use counters::Counters;
pub use protocol::AesKey;
pub use server::{Directory, EventSink, PipelineSink};

/// A corp's callback settings: the Token (signs) and the key of the EncodingAESKey (encrypts).
/// `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackKeys {
    /// The Token entered in the admin console.
    pub token: Secret,
    /// The AES key of the EncodingAESKey.
    pub aes: AesKey,
}

impl std::fmt::Debug for CallbackKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKeys(<redacted>)")
    }
}

/// Why a corp's callback settings are refused: the key (`callback_token`, `encoding_aes_key`) and
/// what is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// One of the two settings is given without the other.
    #[error("{given} is set but {missing} is not: give both or neither")]
    Half {
        /// The one given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// The Token is empty or not 1..=32 letters and digits.
    #[error("must be 1 to 32 letters or digits (as the admin console requires)")]
    Token,
    /// The EncodingAESKey is not 43 characters of base64.
    #[error("{0}")]
    AesKey(protocol::ProtocolError),
}

impl CallbackError {
    /// The setting at fault: `callback_token` or `encoding_aes_key`.
    pub fn key(&self) -> &'static str {
        match self {
            CallbackError::Half { given, .. } => given,
            CallbackError::Token => "callback_token",
            CallbackError::AesKey(_) => "encoding_aes_key",
        }
    }

    /// Whether trying again could help: never (the settings must be fixed).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl CallbackKeys {
    /// The settings of a corp (both or neither), validated: `Ok(None)` when neither is given.
    pub fn from_settings(
        token: Option<&Secret>,
        encoding_aes_key: Option<&Secret>,
    ) -> Result<Option<CallbackKeys>, CallbackError> {
        let token = token.filter(|t| !t.expose().trim().is_empty());
        let key = encoding_aes_key.filter(|k| !k.expose().trim().is_empty());
        match (token, key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(CallbackError::Half { given: "callback_token", missing: "encoding_aes_key" }),
            (None, Some(_)) => Err(CallbackError::Half { given: "encoding_aes_key", missing: "callback_token" }),
            (Some(token), Some(key)) => {
                let t = token.expose().trim();
                if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(CallbackError::Token);
                }
                let aes = AesKey::from_encoding(key.expose().trim()).map_err(CallbackError::AesKey)?;
                Ok(Some(CallbackKeys { token: Secret::new(t), aes }))
            }
        }
    }
}

/// The place (additional authenticated data, `crate::security`) of a sealed `corp_callback.token`.
pub fn token_place(corpid: &str) -> String {
    format!("corp_callback.token/{corpid}")
}

/// The place of a sealed `corp_callback.encoding_aes_key`.
pub fn aes_key_place(corpid: &str) -> String {
    format!("corp_callback.encoding_aes_key/{corpid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_both_or_neither_and_errors_without_values() {
        let key = Secret::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C");
        let token = Secret::new("QDG6eK");
        assert_eq!(CallbackKeys::from_settings(None, None), Ok(None));
        let keys = CallbackKeys::from_settings(Some(&token), Some(&key)).unwrap().unwrap();
        assert_eq!(format!("{keys:?}"), "CallbackKeys(<redacted>)");
        let e = CallbackKeys::from_settings(Some(&token), None).unwrap_err();
        assert_eq!(e.key(), "callback_token");
        assert!(e.to_string().contains("encoding_aes_key is not"), "{e}");
        let bad = Secret::new("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2");
        let e = CallbackKeys::from_settings(Some(&token), Some(&bad)).unwrap_err();
        assert_eq!(e.key(), "encoding_aes_key");
        assert!(e.to_string().contains("43 characters") && !e.to_string().contains("jWmYm7"), "{e}");
        let e = CallbackKeys::from_settings(Some(&Secret::new("has space")), Some(&key)).unwrap_err();
        assert_eq!((e.key(), e.to_string().contains("has space")), ("callback_token", false));
        assert!(!e.is_retryable());
    }
}
