//! Names and scope from WeCom's archive APIs (issue 16, part 2): group chat names and members,
//! the archived members, and the consent of external contacts, kept in the `wecom_*` tables.
//!
//! How the parts connect:
//! - [`client::Client`] calls `qyapi.weixin.qq.com` for one corp with the archive app's secret
//!   (the same token the vendor SDK obtains), through `[sdk] proxy`, with a cached token that is
//!   renewed as WeCom requires and a [`limit::RateLimiter`] per API ([`Api::per_minute`]);
//! - [`refresh::Service`] does the work per corp ([`refresh::Service::refresh_corp`]): it scans
//!   the stored messages after its cursor (`wecom_scan`) for roomids and external contacts
//!   (userids starting `wo`/`wm`), fetches new rooms and those older than `refresh`
//!   (`groupchat/get`, `check_room_agree`), checks the consent of new 1:1 pairs and of pairs
//!   older than `refresh` (`check_single_agree`, ≤ 100 per call), and lists the archived members
//!   once per `refresh` (`get_permit_user_list`, types 1/2/3 and without type). Everything goes
//!   through the store role [`crate::store::WecomRepo`];
//! - [`refresh::Service::refresh_consent`] is the on-demand path (the callback's
//!   `msg_audit_approved` event);
//! - [`refresh::start`] is the daemon's background task (`[wecom_api] enabled`): a pass every
//!   `interval` over the corps this instance works on (with `[cluster] leases`, those it holds),
//!   each corp on its own task with a time limit, so one corp's errors or slowness never stall
//!   the others. Errcode 301052 (the corp's archive service expired) marks the corp failing in
//!   `/status` and metrics ([`crate::actors::CorpStatus::wecom_api_error`]) until a pass works.
//!
//! Nothing here is needed for archiving: the whole module is off by default, and a failure only
//! leaves the metadata older.

pub mod client;
pub mod limit;
pub mod refresh;

pub use client::{Client, ClientSettings};
pub use refresh::{Service, Settings};

use crate::store::StoreError;

/// The archive APIs called (besides `gettoken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `msgaudit/groupchat/get`.
    GroupChat = 0,
    /// `msgaudit/get_permit_user_list`.
    PermitUsers = 1,
    /// `msgaudit/check_single_agree`.
    SingleAgree = 2,
    /// `msgaudit/check_room_agree`.
    RoomAgree = 3,
}

impl Api {
    /// The path under `/cgi-bin/`.
    pub fn path(self) -> &'static str {
        match self {
            Api::GroupChat => "msgaudit/groupchat/get",
            Api::PermitUsers => "msgaudit/get_permit_user_list",
            Api::SingleAgree => "msgaudit/check_single_agree",
            Api::RoomAgree => "msgaudit/check_room_agree",
        }
    }

    /// WeCom's published limit per corp and minute.
    pub fn per_minute(self) -> u32 {
        match self {
            Api::GroupChat => 2_000,
            Api::PermitUsers => 1_000,
            Api::SingleAgree => 2_500,
            Api::RoomAgree => 1_500,
        }
    }
}

/// The errcode of an expired archive service (会话存档服务已过期).
pub const ERRCODE_ARCHIVE_EXPIRED: i64 = 301_052;

/// What can go wrong. No variant carries a token, the secret or a URL with them.
#[derive(Debug, thiserror::Error)]
pub enum WecomError {
    /// The request did not complete (connect, TLS, proxy, timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// An HTTP status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body was not what the API sends.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// An errcode.
    #[error("{call}: errcode {errcode} ({errmsg})")]
    Api {
        /// The call.
        call: &'static str,
        /// WeCom's errcode.
        errcode: i64,
        /// WeCom's errmsg.
        errmsg: String,
    },
    /// Errcode 301052: the corp's archive service expired.
    #[error("the archive service of the corp expired (errcode 301052): renew it in the WeCom admin console")]
    ArchiveExpired,
    /// The settings (proxy, extra CA) are unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The corp is not one this instance works on.
    #[error("corp {0} is not handled by this instance")]
    UnknownCorp(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WecomError {
    /// The error of a non-zero errcode.
    pub fn from_errcode(errcode: i64, errmsg: String, call: &'static str) -> Self {
        if errcode == ERRCODE_ARCHIVE_EXPIRED {
            WecomError::ArchiveExpired
        } else {
            WecomError::Api { call, errcode, errmsg }
        }
    }

    /// Worth trying again soon: transport failures, HTTP 5xx and 429, rate limit (45009), busy
    /// (-1), token expiry (42001).
    pub fn is_retryable(&self) -> bool {
        match self {
            WecomError::Transport(_) => true,
            WecomError::Status(s) => *s >= 500 || *s == 429,
            WecomError::Api { errcode, .. } => matches!(errcode, -1 | 42001 | 45009),
            WecomError::Decode(_)
            | WecomError::ArchiveExpired
            | WecomError::Config(_)
            | WecomError::UnknownCorp(_)
            | WecomError::Store(_) => false,
        }
    }

    /// An answer about this one object (a room WeCom does not know, a bad parameter): the others
    /// of the corp are still worth asking about.
    pub fn is_about_the_object(&self) -> bool {
        matches!(self, WecomError::Api { .. }) && !self.is_retryable() && !self.is_about_the_corp()
    }

    /// The corp's credentials or service are wrong (40001 bad secret, 48002 API not allowed,
    /// 60020 IP not allowed, 301052 expired): nothing of the corp works.
    pub fn is_about_the_corp(&self) -> bool {
        match self {
            WecomError::ArchiveExpired => true,
            WecomError::Api { errcode, .. } => matches!(errcode, 40001 | 40013 | 40014 | 42001 | 48002 | 60020),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_are_classified() {
        assert!(matches!(WecomError::from_errcode(301_052, "x".into(), "c"), WecomError::ArchiveExpired));
        assert!(WecomError::from_errcode(45009, String::new(), "c").is_retryable());
        assert!(!WecomError::from_errcode(40058, String::new(), "c").is_retryable());
        assert!(WecomError::from_errcode(40058, String::new(), "c").is_about_the_object());
        assert!(WecomError::from_errcode(60020, String::new(), "c").is_about_the_corp());
        assert!(WecomError::Status(500).is_retryable());
        assert!(!WecomError::Status(404).is_retryable());
        assert!(!WecomError::ArchiveExpired.is_retryable());
    }
}
