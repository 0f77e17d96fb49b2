//! [`ReviewRepo`](super::ReviewRepo) once for both dialects: the review API's users
//! (`review_user`), what each may read (`review_grant`) and their sessions (`review_session`),
//! statements built from the [`Dialect`], bodies one `macro_rules!` instantiated for each
//! database (see `sql.rs`).
//!
//! Times are milliseconds of the database's clock, so that the instances sharing a database
//! agree on when a session ends. A session row is keyed by the SHA-256 of its token (computed by
//! `crate::review::session`); the token itself never reaches the database. Sessions are checked
//! here (absolute end, idle time, user enabled) and a dead one is deleted when found. Names and
//! corpids arrive validated by `crate::review::accounts`.

use super::sql::Dialect;

/// The columns of a [`ReviewUser`](super::ReviewUser) read by `user_from`, of table alias `u`.
fn user_columns(d: &Dialect) -> String {
    format!(
        "CAST(u.id AS {i}), u.username, u.role, u.password_hash, CAST(u.disabled AS {i}), \
         CAST(u.created_at AS {i}), CAST(u.updated_at AS {i}), CAST(u.last_login_at AS {i})",
        i = d.int
    )
}

/// The admin role as stored (`crate::review::Role::Admin`).
const ADMIN: &str = "admin";

/// A session's last use is written at most this often (ms), and at least 4 times per idle time.
const TOUCH_EVERY_MS: i64 = 5_000;

impl Dialect {
    /// Adds a user unless the name is taken (binds: username, role, password_hash).
    fn user_add(&self) -> String {
        format!(
            "{} review_user (username, role, password_hash, disabled, created_at, updated_at) \
             VALUES (?, ?, ?, 0, {now}, {now})",
            self.insert_ignore,
            now = self.now_ms
        )
    }

    /// One user by name (bind: username).
    fn user_by_name(&self) -> String {
        format!("SELECT {} FROM review_user u WHERE u.username = ?", user_columns(self))
    }

    /// Every user (no bind).
    fn users(&self) -> String {
        format!("SELECT {} FROM review_user u ORDER BY u.username", user_columns(self))
    }

    /// Adds or replaces a grant (binds: user_id, corpid, userids JSON or NULL).
    fn grant_upsert(&self) -> String {
        format!(
            "INSERT INTO review_grant (user_id, corpid, userids) VALUES (?, ?, ?) {}",
            self.upsert("user_id, corpid", &["userids"])
        )
    }

    /// Sets one column of a user and its `updated_at` (bind: the value, username). `column` is
    /// one of ours, never input.
    fn user_set(&self, column: &str) -> String {
        format!("UPDATE review_user SET {column} = ?, updated_at = {} WHERE username = ?", self.now_ms)
    }

    /// Starts a session (binds: token_hash, user_id, csrf, max ms).
    fn session_start(&self) -> String {
        format!(
            "INSERT INTO review_session (token_hash, user_id, csrf_token, created_at, last_seen, expires_at) \
             VALUES (?, ?, ?, {now}, {now}, {now} + ?)",
            now = self.now_ms
        )
    }

    /// Notes a sign-in (bind: user id).
    fn signed_in(&self) -> String {
        format!("UPDATE review_user SET last_login_at = {} WHERE id = ?", self.now_ms)
    }

    /// Deletes the sessions past their end (no bind).
    fn sessions_purge(&self) -> String {
        format!("DELETE FROM review_session WHERE expires_at <= {}", self.now_ms)
    }

    /// A session with its user and the database's clock (bind: token_hash): the user's
    /// columns, then csrf, created, last seen, expires, now.
    fn session(&self) -> String {
        format!(
            "SELECT {}, s.csrf_token, CAST(s.created_at AS {i}), CAST(s.last_seen AS {i}), \
             CAST(s.expires_at AS {i}), {now} \
             FROM review_session s JOIN review_user u ON u.id = s.user_id WHERE s.token_hash = ?",
            user_columns(self),
            i = self.int,
            now = self.now_ms
        )
    }

    /// Moves a session's last use to now (bind: token_hash).
    fn session_touch(&self) -> String {
        format!("UPDATE review_session SET last_seen = {} WHERE token_hash = ?", self.now_ms)
    }
}

/// Whether a session found at `now` is alive: before its end, used within `idle_ms`.
fn alive(now: i64, last_seen: i64, expires_at: i64, idle_ms: i64) -> bool {
    now < expires_at && now.saturating_sub(last_seen) <= idle_ms
}

/// Whether a live session's last use is worth writing now.
fn worth_touching(now: i64, last_seen: i64, idle_ms: i64) -> bool {
    now.saturating_sub(last_seen) >= TOUCH_EVERY_MS.min(idle_ms / 4)
}

/// The grant's `userids` as stored: a JSON array, `None` for the whole corp.
fn userids_json(userids: Option<&Vec<String>>) -> Option<String> {
    userids.map(|ids| serde_json::Value::from(ids.clone()).to_string())
}

/// The stored `userids` back (a value that is not a JSON array of strings grants nothing rather
/// than the whole corp).
fn userids_from(json: Option<String>) -> Option<Vec<String>> {
    json.map(|j| serde_json::from_str::<Vec<String>>(&j).unwrap_or_default())
}

/// The [`ReviewRepo`](super::ReviewRepo) of `SqlStore<$db>`. SQLite's writer lock is held around
/// each write.
macro_rules! review_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// A [`ReviewUser`] from the columns of `user_columns` starting at 0.
            fn review_user_from(r: &<$db as sqlx::Database>::Row) -> Result<ReviewUser, sqlx::Error> {
                Ok(ReviewUser {
                    id: r.try_get(0)?,
                    username: r.try_get(1)?,
                    role: r.try_get(2)?,
                    password_hash: Secret::new(r.try_get::<String, _>(3)?),
                    disabled: r.try_get::<i64, _>(4)? != 0,
                    created_at_ms: r.try_get(5)?,
                    updated_at_ms: r.try_get(6)?,
                    last_login_ms: r.try_get(7)?,
                })
            }

            /// Writes `grants` of `user_id` inside `tx`.
            async fn review_grants_put(
                tx: &mut sqlx::Transaction<'_, $db>,
                user_id: i64,
                grants: &[ReviewGrant],
            ) -> Result<(), StoreError> {
                for g in grants {
                    sqlx::query(&Self::SQL.grant_upsert())
                        .bind(user_id)
                        .bind(g.corpid.as_str())
                        .bind(userids_json(g.userids.as_ref()))
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl ReviewRepo for SqlStore<$db> {
            async fn review_user_add(
                &self,
                username: &str,
                role: &str,
                password_hash: &Secret,
                grants: &[ReviewGrant],
            ) -> Result<Option<i64>, StoreError> {
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let added = sqlx::query(&Self::SQL.user_add())
                    .bind(username)
                    .bind(role)
                    .bind(password_hash.expose())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if added == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let id: i64 = sqlx::query_scalar(&format!(
                    "SELECT CAST(id AS {}) FROM review_user WHERE username = ?",
                    Self::SQL.int
                ))
                .bind(username)
                .fetch_one(&mut *tx)
                .await?;
                Self::review_grants_put(&mut tx, id, grants).await?;
                tx.commit().await?;
                Ok(Some(id))
            }

            async fn review_user(&self, username: &str) -> Result<Option<ReviewUser>, StoreError> {
                let row = sqlx::query(&Self::SQL.user_by_name()).bind(username).fetch_optional(&self.pool).await?;
                Ok(row.as_ref().map(Self::review_user_from).transpose()?)
            }

            async fn review_users(&self) -> Result<Vec<ReviewUser>, StoreError> {
                let rows = sqlx::query(&Self::SQL.users()).fetch_all(&self.pool).await?;
                Ok(rows.iter().map(Self::review_user_from).collect::<Result<_, _>>()?)
            }

            async fn review_user_change(
                &self,
                username: &str,
                change: &ReviewUserChange,
            ) -> Result<UserChangeOutcome, StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                // The user's row first, locked where the database has row locks: concurrent
                // changes of one user apply one after the other.
                let row: Option<(i64, String, i64)> = sqlx::query_as(&format!(
                    "SELECT CAST(id AS {i}), role, CAST(disabled AS {i}) FROM review_user WHERE username = ?{}",
                    d.for_update,
                    i = d.int
                ))
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, role_before, disabled_before)) = row else {
                    tx.rollback().await?;
                    return Ok(UserChangeOutcome::NoSuchUser);
                };
                let was_admin = role_before == ADMIN && disabled_before == 0;
                if let Some(role) = &change.role {
                    sqlx::query(&d.user_set("role")).bind(role.as_str()).bind(username).execute(&mut *tx).await?;
                }
                if let Some(disabled) = change.disabled {
                    sqlx::query(&d.user_set("disabled"))
                        .bind(i64::from(disabled))
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(hash) = &change.password_hash {
                    sqlx::query(&d.user_set("password_hash"))
                        .bind(hash.expose())
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                }
                if change.disabled == Some(true) || change.password_hash.is_some() {
                    sqlx::query("DELETE FROM review_session WHERE user_id = ?").bind(id).execute(&mut *tx).await?;
                }
                if let Some(grants) = &change.grants {
                    sqlx::query("DELETE FROM review_grant WHERE user_id = ?").bind(id).execute(&mut *tx).await?;
                    Self::review_grants_put(&mut tx, id, grants).await?;
                }
                Self::review_grants_put(&mut tx, id, &change.grant).await?;
                for corpid in &change.revoke {
                    sqlx::query("DELETE FROM review_grant WHERE user_id = ? AND corpid = ?")
                        .bind(id)
                        .bind(corpid.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                if change.grants.is_some() || !change.grant.is_empty() || !change.revoke.is_empty() {
                    sqlx::query(&format!("UPDATE review_user SET updated_at = {} WHERE id = ?", d.now_ms))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if was_admin && (change.disabled == Some(true) || change.role.as_deref().is_some_and(|r| r != ADMIN)) {
                    let left: i64 = sqlx::query_scalar(&format!(
                        "SELECT CAST(COUNT(*) AS {}) FROM review_user WHERE role = ? AND disabled = 0{}",
                        d.int, d.for_update
                    ))
                    .bind(ADMIN)
                    .fetch_one(&mut *tx)
                    .await?;
                    if left == 0 {
                        tx.rollback().await?;
                        return Ok(UserChangeOutcome::LastAdmin);
                    }
                }
                tx.commit().await?;
                Ok(UserChangeOutcome::Changed)
            }

            async fn review_grants(&self, user_id: i64) -> Result<Vec<ReviewGrant>, StoreError> {
                let rows: Vec<(String, Option<String>)> =
                    sqlx::query_as("SELECT corpid, userids FROM review_grant WHERE user_id = ? ORDER BY corpid")
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(|(corpid, ids)| ReviewGrant { corpid, userids: userids_from(ids) }).collect())
            }

            async fn review_session_start(
                &self,
                token_hash: &str,
                user_id: i64,
                csrf_token: &Secret,
                max_ms: i64,
            ) -> Result<(), StoreError> {
                let d = Self::SQL;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query(&d.sessions_purge()).execute(&mut *tx).await?;
                sqlx::query(&d.session_start())
                    .bind(token_hash)
                    .bind(user_id)
                    .bind(csrf_token.expose())
                    .bind(max_ms)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&d.signed_in()).bind(user_id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn review_session(
                &self,
                token_hash: &str,
                idle_ms: i64,
            ) -> Result<Option<ReviewSession>, StoreError> {
                let Some(r) = sqlx::query(&Self::SQL.session()).bind(token_hash).fetch_optional(&self.pool).await?
                else {
                    return Ok(None);
                };
                let user = Self::review_user_from(&r)?;
                let csrf_token = Secret::new(r.try_get::<String, _>(8)?);
                let (created_at_ms, last_seen, expires_at_ms, now): (i64, i64, i64, i64) =
                    (r.try_get(9)?, r.try_get(10)?, r.try_get(11)?, r.try_get(12)?);
                let _w = self.write_guard().await;
                if user.disabled || !alive(now, last_seen, expires_at_ms, idle_ms) {
                    sqlx::query("DELETE FROM review_session WHERE token_hash = ?")
                        .bind(token_hash)
                        .execute(&self.pool)
                        .await?;
                    return Ok(None);
                }
                if worth_touching(now, last_seen, idle_ms) {
                    sqlx::query(&Self::SQL.session_touch()).bind(token_hash).execute(&self.pool).await?;
                }
                Ok(Some(ReviewSession { user, csrf_token, created_at_ms, expires_at_ms }))
            }

            async fn review_session_end(&self, token_hash: &str) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query("DELETE FROM review_session WHERE token_hash = ?")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use super::{alive, userids_from, userids_json, worth_touching, ADMIN};
    use crate::secret::Secret;
    use crate::store::sql::SqlStore;
    use crate::store::{
        ReviewGrant, ReviewRepo, ReviewSession, ReviewUser, ReviewUserChange, StoreError, UserChangeOutcome,
    };

    review_repo!(sqlx::MySql);
    review_repo!(sqlx::Sqlite);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_dies_at_its_end_or_when_idle() {
        assert!(alive(1_000, 900, 2_000, 500));
        assert!(!alive(2_000, 1_900, 2_000, 500), "at its end");
        assert!(!alive(1_500, 900, 2_000, 500), "idle for 600 ms of 500");
        assert!(worth_touching(10_000, 4_000, 60_000));
        assert!(!worth_touching(10_000, 9_000, 60_000));
        assert!(worth_touching(10_000, 9_000, 2_000), "a short idle time is kept fresh");
    }

    #[test]
    fn userids_round_trip_and_bad_json_grants_nothing() {
        let ids = vec!["zhangsan".to_string(), "li\"si".to_string()];
        assert_eq!(userids_from(userids_json(Some(&ids))), Some(ids));
        assert_eq!(userids_from(userids_json(None)), None);
        assert_eq!(userids_from(Some("not json".into())), Some(vec![]));
    }
}
