//! Review users as the command line (`wework-msgaudit user …`) and the admin API
//! (`/api/users`) both manage them: the rules for names and grants, adding, changing and listing
//! users, and a user's [`Scope`]. One implementation for both, so both check the same and log
//! the same.
//!
//! Every change is appended to the access log (action `user_admin`, the user changed as target,
//! what changed as detail: never a password or a hash) BEFORE it is applied: a change that
//! cannot be logged is not made. The actor is the signed-in admin, or `cli:<os user>` for the
//! command line ([`Actor::cli`]).
//!
//! The last enabled admin cannot be disabled or demoted, by anyone ([`AccountError::LastAdmin`]):
//! the API would be left with nobody to manage users. Checked before the change is logged
//! ([`removes_the_last_admin`]), and again by the store inside the change's transaction (two
//! instances disabling two different admins at the same instant); a database without any admin
//! (a fresh install, managed from the command line) is left alone.
//!
//! Names are case-insensitive (stored lowercased: MariaDB's default collation would compare
//! them so anyway, SQLite would not).

use std::collections::BTreeSet;

use serde_json::json;

use super::password::{self, PasswordError};
use super::{recorder, AccessEvent, Principal, Role, Scope};
use crate::secret::Secret;
use crate::store::{CorpId, ReviewGrant, ReviewUser, ReviewUserChange, Store, StoreError, UserChangeOutcome};

/// Longest user name.
pub const MAX_NAME: usize = 64;
/// Longest userid in a grant.
const MAX_USERID: usize = 64;

/// Why a user could not be added, changed or listed. Never holds a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A name outside the rules.
    #[error(
        "invalid user name {0:?}: 1 to 64 characters of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit"
    )]
    InvalidName(String),
    /// A grant outside the rules.
    #[error("invalid grant {0:?}: expected a corpid, or corpid:userid1,userid2 (userids of A-Z a-z 0-9 . _ @ -)")]
    InvalidGrant(String),
    /// The password breaks a rule, or could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The name is taken.
    #[error("user {0} already exists")]
    Exists(String),
    /// No such user.
    #[error("no user {0}")]
    NoSuchUser(String),
    /// A change that changes nothing, or one refused (e.g. an admin demoting themselves).
    #[error("{0}")]
    Refused(String),
    /// The change would leave no enabled admin.
    #[error(
        "{0} is the last enabled admin: disabling or demoting it would leave nobody to manage users \
         (add or enable another admin first)"
    )]
    LastAdmin(String),
    /// The change could not be logged, so it was not made.
    #[error("the access log could not be written, nothing was changed")]
    Log(#[source] StoreError),
    /// The database failed.
    #[error("database error")]
    Store(#[from] StoreError),
}

impl AccountError {
    /// The caller's mistake (bad input, unknown or taken name), not a failure.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidName(_)
                | Self::InvalidGrant(_)
                | Self::Exists(_)
                | Self::NoSuchUser(_)
                | Self::Refused(_)
                | Self::LastAdmin(_)
                | Self::Password(PasswordError::TooShort | PasswordError::TooLong)
        )
    }

    /// Worth trying again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) | Self::Log(e) if e.is_retryable())
    }
}

/// `name` lowercased, if it meets the rules.
pub fn username(name: &str) -> Result<String, AccountError> {
    let n = name.trim().to_lowercase();
    let ok = !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@-".contains(&b))
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(n)
    } else {
        Err(AccountError::InvalidName(name.chars().take(80).collect()))
    }
}

/// A grant checked: a valid corpid, and userids (if any) non-empty, valid, sorted, unique.
pub fn check_grant(g: ReviewGrant) -> Result<ReviewGrant, AccountError> {
    let bad =
        || AccountError::InvalidGrant(format!("{}:{}", g.corpid, g.userids.as_deref().unwrap_or_default().join(",")));
    let corpid = CorpId::new(&g.corpid).map_err(|_| bad())?;
    let userids = match &g.userids {
        None => None,
        Some(ids) => {
            let ok = |u: &String| {
                !u.is_empty()
                    && u.len() <= MAX_USERID
                    && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
            };
            if ids.is_empty() || !ids.iter().all(ok) {
                return Err(bad());
            }
            Some(ids.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect())
        }
    };
    Ok(ReviewGrant { corpid: corpid.as_str().to_string(), userids })
}

/// `wwX` (the whole corp) or `wwX:userid1,userid2`, as `--corp` takes it.
pub fn parse_grant(s: &str) -> Result<ReviewGrant, AccountError> {
    let (corpid, userids) = match s.split_once(':') {
        None => (s, None),
        Some((c, ids)) => (c, Some(ids.split(',').map(|u| u.trim().to_string()).collect())),
    };
    check_grant(ReviewGrant { corpid: corpid.trim().to_string(), userids })
        .map_err(|_| AccountError::InvalidGrant(s.chars().take(200).collect()))
}

/// The scope of grants.
pub fn scope(grants: &[ReviewGrant]) -> Scope {
    Scope {
        corps: grants
            .iter()
            .map(|g| (g.corpid.clone(), g.userids.as_ref().map(|ids| ids.iter().cloned().collect())))
            .collect(),
    }
}

/// What `user` may read: its grants if a reviewer, nothing otherwise.
pub async fn scope_of(store: &dyn Store, user_id: i64, role: Role) -> Result<Scope, StoreError> {
    if role != Role::Reviewer {
        return Ok(Scope::none());
    }
    Ok(scope(&store.review_grants(user_id).await?))
}

/// Who makes a change, as the access log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `alice`, `cli:root(uid 0)`.
    pub username: String,
    /// `admin`, `cli`.
    pub role: String,
}

impl Actor {
    /// A signed-in user.
    pub fn user(p: &Principal) -> Self {
        Self { username: p.username.clone(), role: p.role.as_str().to_string() }
    }

    /// The command line: `cli:<$USER>(uid <uid>)` (the uid is the process's own, which the
    /// environment cannot fake).
    pub fn cli() -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let name = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "?".into());
        // The log's `username` column holds 128 characters.
        let name: String = name.chars().take(64).collect();
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid().to_string()).unwrap_or_else(|_| "?".into());
        Self { username: format!("cli:{name}(uid {uid})"), role: "cli".into() }
    }
}

/// A user as shown by `user list` and `/api/users`: never its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserView {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: String,
    /// Cannot sign in.
    pub disabled: bool,
    /// What it may read (reviewers).
    pub grants: Vec<ReviewGrant>,
    /// Created, ms since the epoch.
    pub created_at_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_at_ms: i64,
    /// Last sign-in, ms since the epoch.
    pub last_login_ms: Option<i64>,
}

impl UserView {
    fn of(u: ReviewUser, grants: Vec<ReviewGrant>) -> Self {
        Self {
            username: u.username,
            role: u.role,
            disabled: u.disabled,
            grants,
            created_at_ms: u.created_at_ms,
            updated_at_ms: u.updated_at_ms,
            last_login_ms: u.last_login_ms,
        }
    }
}

/// Appends the `user_admin` entry of a change to `target`.
async fn log(store: &dyn Store, actor: &Actor, target: &str, detail: serde_json::Value) -> Result<(), AccountError> {
    let event = AccessEvent { action: "user_admin".into(), corpid: None, target: target.to_string(), detail };
    recorder::append(store, &actor.username, &actor.role, event).await.map(|_| ()).map_err(AccountError::Log)
}

/// One user, shown.
pub async fn view(store: &dyn Store, name: &str) -> Result<UserView, AccountError> {
    let name = username(name)?;
    let user = store.review_user(&name).await?.ok_or(AccountError::NoSuchUser(name))?;
    let grants = store.review_grants(user.id).await?;
    Ok(UserView::of(user, grants))
}

/// Every user, by name.
pub async fn list(store: &dyn Store) -> Result<Vec<UserView>, AccountError> {
    let mut out = Vec::new();
    for u in store.review_users().await? {
        let grants = store.review_grants(u.id).await?;
        out.push(UserView::of(u, grants));
    }
    Ok(out)
}

/// Adds a user (enabled).
pub async fn add(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    role: Role,
    password: &Secret,
    grants: Vec<ReviewGrant>,
) -> Result<UserView, AccountError> {
    let name = username(name)?;
    let grants = grants.into_iter().map(check_grant).collect::<Result<Vec<_>, _>>()?;
    let hash = password::hash(password).await?;
    if store.review_user(&name).await?.is_some() {
        return Err(AccountError::Exists(name));
    }
    log(store, actor, &name, json!({ "op": "add", "role": role, "grants": grants })).await?;
    if store.review_user_add(&name, role.as_str(), &hash, &grants).await?.is_none() {
        return Err(AccountError::Exists(name));
    }
    view(store, &name).await
}

/// What to change of a user (`None`/empty: unchanged).
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// New role.
    pub role: Option<Role>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New password (ends the user's sessions).
    pub password: Option<Secret>,
    /// Every grant, replacing the current ones.
    pub grants: Option<Vec<ReviewGrant>>,
    /// Grants to add (or replace, by corp).
    pub grant: Vec<ReviewGrant>,
    /// Corps whose grant is removed.
    pub revoke: Vec<String>,
}

/// Changes a user; disabling it or setting its password ends its sessions.
pub async fn change(store: &dyn Store, actor: &Actor, name: &str, c: Change) -> Result<UserView, AccountError> {
    let name = username(name)?;
    let nothing = c.role.is_none()
        && c.disabled.is_none()
        && c.password.is_none()
        && c.grants.is_none()
        && c.grant.is_empty()
        && c.revoke.is_empty();
    if nothing {
        return Err(AccountError::Refused("nothing to change".into()));
    }
    // Nobody left to manage users through the API: refused from the command line too, before
    // the change is logged.
    if c.disabled == Some(true) || c.role.is_some_and(|r| r != Role::Admin) {
        let users = store.review_users().await?;
        if removes_the_last_admin(&users, &name, c.role, c.disabled) {
            return Err(AccountError::LastAdmin(name));
        }
    }
    // The last way back in must not be closed from inside: the command line can still do it.
    if actor.username == name && (c.disabled == Some(true) || c.role.is_some_and(|r| r.as_str() != actor.role)) {
        return Err(AccountError::Refused("you cannot disable yourself or change your own role".into()));
    }
    let check_all = |gs: Vec<ReviewGrant>| gs.into_iter().map(check_grant).collect::<Result<Vec<_>, _>>();
    let grants = c.grants.map(check_all).transpose()?;
    let grant = check_all(c.grant)?;
    let revoke = c
        .revoke
        .iter()
        .map(|r| CorpId::new(r).map(|c| c.as_str().to_string()).map_err(|_| AccountError::InvalidGrant(r.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let password_hash = match &c.password {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    if store.review_user(&name).await?.is_none() {
        return Err(AccountError::NoSuchUser(name));
    }
    let detail = json!({
        "op": "change",
        "role": c.role,
        "disabled": c.disabled,
        "password_changed": password_hash.is_some(),
        "grants": grants,
        "grant": grant,
        "revoke": revoke,
    });
    log(store, actor, &name, detail).await?;
    let change = ReviewUserChange {
        role: c.role.map(|r| r.as_str().to_string()),
        disabled: c.disabled,
        password_hash,
        grants,
        grant,
        revoke,
    };
    match store.review_user_change(&name, &change).await? {
        UserChangeOutcome::Changed => {}
        UserChangeOutcome::NoSuchUser => return Err(AccountError::NoSuchUser(name)),
        UserChangeOutcome::LastAdmin => return Err(AccountError::LastAdmin(name)),
    }
    view(store, &name).await
}

/// Whether changing `name`'s role to `role` and its `disabled` flag to `disabled` (`None`:
/// unchanged) would leave no enabled admin while there is one now: nobody could then manage
/// users through the API.
pub fn removes_the_last_admin(users: &[ReviewUser], name: &str, role: Option<Role>, disabled: Option<bool>) -> bool {
    let admin = |u: &ReviewUser| !u.disabled && u.role == Role::Admin.as_str();
    let after = |u: &ReviewUser| {
        if u.username != name {
            return admin(u);
        }
        let admin_after = role.map_or(u.role == Role::Admin.as_str(), |r| r == Role::Admin);
        !disabled.unwrap_or(u.disabled) && admin_after
    };
    users.iter().any(admin) && !users.iter().any(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(username(" Alice.Wang@corp ").unwrap(), "alice.wang@corp");
        for bad in ["", "-x", ".x", "a b", "a;b", "名字", &"a".repeat(65), "cli:root"] {
            assert!(matches!(username(bad), Err(AccountError::InvalidName(_))), "{bad:?}");
        }
    }

    #[test]
    fn grants_parse_and_normalise() {
        assert_eq!(parse_grant("wwA").unwrap(), ReviewGrant { corpid: "wwA".into(), userids: None });
        assert_eq!(
            parse_grant("wwB:zhangsan, lisi,zhangsan").unwrap(),
            ReviewGrant { corpid: "wwB".into(), userids: Some(vec!["lisi".into(), "zhangsan".into()]) }
        );
        for bad in ["", "ww-1", "wwA:", "wwA:a,,b", "wwA:a b", "ww'x:y"] {
            assert!(matches!(parse_grant(bad), Err(AccountError::InvalidGrant(_))), "{bad:?}");
        }
        let s = scope(&[parse_grant("wwA").unwrap(), parse_grant("wwB:u1").unwrap()]);
        assert!(s.allows("wwA", &["x"]) && s.allows("wwB", &["u1"]) && !s.allows("wwB", &["u2"]));
    }

    #[test]
    fn the_last_enabled_admin_cannot_be_disabled_or_demoted() {
        let user = |name: &str, role: Role, disabled: bool| ReviewUser {
            id: 1,
            username: name.into(),
            role: role.as_str().into(),
            password_hash: Secret::new("x"),
            disabled,
            created_at_ms: 0,
            updated_at_ms: 0,
            last_login_ms: None,
        };
        let one =
            [user("root", Role::Admin, false), user("old", Role::Admin, true), user("rita", Role::Reviewer, false)];
        assert!(removes_the_last_admin(&one, "root", None, Some(true)));
        assert!(removes_the_last_admin(&one, "root", Some(Role::Auditor), None));
        assert!(!removes_the_last_admin(&one, "root", Some(Role::Admin), Some(false)));
        assert!(!removes_the_last_admin(&one, "rita", None, Some(true)));
        // Enabling another admin is fine.
        assert!(!removes_the_last_admin(&one, "old", None, Some(false)));
        let two = [user("root", Role::Admin, false), user("ann", Role::Admin, false)];
        assert!(!removes_the_last_admin(&two, "root", None, Some(true)));
        // No admin at all (a fresh install managed from the command line): nothing to keep.
        let none = [user("rita", Role::Reviewer, false)];
        assert!(!removes_the_last_admin(&none, "rita", None, Some(true)));
        let e = AccountError::LastAdmin("root".into());
        assert!(e.is_client_error() && e.to_string().contains("root is the last enabled admin"), "{e}");
    }

    #[test]
    fn the_cli_actor_names_the_uid() {
        let a = Actor::cli();
        assert!(a.username.starts_with("cli:") && a.username.contains("(uid "), "{}", a.username);
        assert_eq!(a.role, "cli");
    }
}
