//! The review side: people read, search and export the archive through an HTTP API, each within
//! the corps (and optionally the userids) they were granted, and every read leaves an entry in a
//! tamper-evident access log.
//!
//! This module holds the contract the parts share:
//! - [`Role`], [`Scope`], [`Principal`]: who is asking and what they may see. Every handler
//!   checks the scope server-side; what lies outside it answers 404 (not 403: a reviewer must not
//!   learn that a corp, conversation or message exists);
//! - [`AccessEvent`] and [`AccessRecorder`]: what a handler appends to the access log before it
//!   answers. Recording fails closed: when the entry cannot be written, the read is refused.
//!
//! Who is asking is settled by:
//! - [`auth`]: the session middleware (cookie → `Principal`, CSRF, 401 by default on `/api/…`),
//!   sign-in/out, and the admin's user and the auditor's access-log endpoints;
//! - [`session`] (tokens, cookie), [`password`] (Argon2id), [`ratelimit`] (failed sign-ins),
//!   [`accounts`] (users and grants, shared by the CLI and the API);
//! - [`access_log`] (the hash chain: encoding, hash, verification, anchors), [`recorder`] (the
//!   `AccessRecorder` over the store, verification of the stored log) and [`access_log_file`]
//!   (verification of an exported file, offline).
//!
//! What may be read is served by:
//! - [`server`]: the listener on `[review] listen` (its own actix-web worker, like
//!   `observe::http`), the session layer in front, the one list of read routes;
//! - [`api`]: the handlers (browse, search, media and exports) over [`api::ReviewState`];
//! - [`render`]: a stored row → the stable message JSON (every msgtype);
//! - [`cursor`]: opaque page cursors and conversation keys;
//! - [`media`]: HTTP Range, Content-Type, Content-Disposition of media files;
//! - [`export`]: CSV (BOM) / JSON Lines in a ZIP with `SHA256SUMS` and `manifest.json`;
//! - [`openapi`]: `docs/review-api.openapi.json`, served and checked against the routes;
//! - [`console`]: the browser UI (`/`, `/assets/…`), static files embedded in the binary that
//!   call the API above like any client.
//!
//! The store reads are the `ReviewReadRepo` role (`store/review_read_sql.rs`), the search is
//! `crate::search` with the scope inside the query. The daemon (`cli/run.rs`) starts the server
//! when `[review] listen` is set; it then requires `[search] enabled = true` (a configuration
//! error otherwise: the API's search would be missing) and stops the server with the pipeline.

pub mod access_log;
pub mod access_log_file;
pub mod accounts;
pub mod api;
pub mod auth;
pub mod console;
pub mod cursor;
pub mod export;
pub mod media;
pub mod openapi;
pub mod password;
pub mod ratelimit;
pub mod recorder;
pub mod render;
pub mod server;
pub mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

/// What a user may do. One role per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users and settings; reads no messages (whoever needs to read gets a reviewer
    /// account, whose reads are logged under its own name).
    Admin,
    /// Reads, searches and exports the messages of the corps (and userids) granted.
    Reviewer,
    /// Reads the access log, nothing else.
    Auditor,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "reviewer" => Ok(Role::Reviewer),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!("unknown role {other:?} (admin, reviewer or auditor)")),
        }
    }
}

/// The messages a reviewer may read: per granted corp, either the whole corp or only the
/// conversations in which one of the listed userids takes part.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    /// corpid → `None` (the whole corp) or the userids whose conversations may be read.
    pub corps: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl Scope {
    /// Nothing at all (admins and auditors).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether anything of `corpid` may be read.
    pub fn allows_corp(&self, corpid: &str) -> bool {
        self.corps.contains_key(corpid)
    }

    /// Whether a message or conversation of `corpid` with these participants (sender and
    /// recipients, or a group's members as far as they are known) may be read.
    pub fn allows(&self, corpid: &str, participants: &[&str]) -> bool {
        match self.corps.get(corpid) {
            None => false,
            Some(None) => true,
            Some(Some(userids)) => participants.iter().any(|p| userids.contains(*p)),
        }
    }

    /// The userids a corp is limited to (`None`: the whole corp, or the corp is not granted:
    /// ask [`Scope::allows_corp`] first).
    pub fn userids(&self, corpid: &str) -> Option<&BTreeSet<String>> {
        self.corps.get(corpid).and_then(Option::as_ref)
    }

    /// The granted corpids.
    pub fn corpids(&self) -> impl Iterator<Item = &str> {
        self.corps.keys().map(String::as_str)
    }
}

/// The signed-in user a request acts for (built by the session layer; handlers never build it
/// from request data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's row id.
    pub user_id: i64,
    /// The login name.
    pub username: String,
    /// The role.
    pub role: Role,
    /// What the user may read (empty unless a reviewer).
    pub scope: Scope,
}

impl Principal {
    /// The scope, if the user may read messages at all.
    pub fn reader_scope(&self) -> Option<&Scope> {
        (self.role == Role::Reviewer).then_some(&self.scope)
    }
}

/// Handlers take a `Principal` argument; the session layer (a middleware) puts it into the
/// request's extensions after checking the session cookie (and, for state-changing methods, the
/// CSRF token). Without one the request answers 401.
impl actix_web::FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("sign in first")),
        )
    }
}

/// One access-log entry as a handler describes it; the log adds the user, the time and the
/// hash chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessEvent {
    /// What was done: `login`, `login_failed`, `logout`, `search`, `open_conversation`,
    /// `read_message`, `fetch_media`, `export`, `user_admin`, `read_access_log`, ….
    pub action: String,
    /// The corp concerned, if one.
    pub corpid: Option<String>,
    /// What was read: a conversation key, a msgid, a query, a username ….
    pub target: String,
    /// Anything else worth keeping (filters, result count, export hash), as JSON.
    pub detail: serde_json::Value,
}

/// Appends access-log entries. Implemented over the database by the access log; tests may keep
/// entries in memory.
#[async_trait]
pub trait AccessRecorder: Send + Sync {
    /// Appends `event` for `who` (`None` before sign-in, e.g. a failed login). An error means the
    /// entry is not in the log, and the caller must refuse what it was about to serve.
    async fn record(&self, who: Option<&Principal>, event: AccessEvent) -> Result<(), String>;
}

/// An [`AccessRecorder`] that keeps entries in memory (tests, tools); with `fail` set it refuses
/// every entry, as a broken access log does.
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    events: Mutex<Vec<(Option<String>, AccessEvent)>>,
    fail: std::sync::atomic::AtomicBool,
}

impl MemoryRecorder {
    /// Every entry so far: (username, event).
    pub fn events(&self) -> Vec<(Option<String>, AccessEvent)> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// From now on, refuse (`true`) or keep (`false`) entries.
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl AccessRecorder for MemoryRecorder {
    async fn record(&self, who: Option<&Principal>, event: AccessEvent) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the access log is not writable".into());
        }
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push((who.map(|p| p.username.clone()), event));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_limits_by_corp_then_by_userid() {
        let mut scope = Scope::none();
        scope.corps.insert("wwA".into(), None);
        scope.corps.insert("wwB".into(), Some(["zhangsan".to_string()].into_iter().collect()));
        assert!(scope.allows("wwA", &["anyone"]));
        assert!(scope.allows("wwB", &["lisi", "zhangsan"]));
        assert!(!scope.allows("wwB", &["lisi", "wangwu"]));
        assert!(!scope.allows("wwC", &["zhangsan"]));
        assert!(!scope.allows_corp("wwC"));
        assert_eq!(scope.corpids().collect::<Vec<_>>(), ["wwA", "wwB"]);
    }

    #[test]
    fn only_reviewers_read() {
        let p = |role| Principal { user_id: 1, username: "u".into(), role, scope: Scope::none() };
        assert!(p(Role::Reviewer).reader_scope().is_some());
        assert!(p(Role::Admin).reader_scope().is_none());
        assert!(p(Role::Auditor).reader_scope().is_none());
        assert_eq!("auditor".parse::<Role>(), Ok(Role::Auditor));
        assert!("root".parse::<Role>().is_err());
    }
}
