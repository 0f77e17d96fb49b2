//! [`RuleRepo`](super::RuleRepo) once for both dialects, and the hit statements the batch write
//! uses inside its transaction (`insert_hits`, `resolve_revokes_on`): statements built from the
//! [`Dialect`], bodies one `macro_rules!` instantiated for each database (see `sql.rs`).

use super::batch::clip;
use super::rules_repo::RuleHit;
use super::sql::Dialect;

/// Columns of an inserted `rule_hit` row.
pub(super) const HIT_COLUMNS: &str =
    "corpid, msgid, rule, kind, matched, context, sender, conversation, msgtime, created_at, alert_state";

/// Most characters kept of `matched` and `context` (TEXT columns: 65,535 bytes on MySQL).
pub(super) const MAX_HIT_TEXT: usize = 2_000;

impl Dialect {
    /// Adds or replaces a rule (binds: name, body, enabled, now, now).
    fn rule_def_upsert(&self) -> String {
        format!(
            "INSERT INTO rule_def (name, body, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?) {}",
            self.upsert("name", &["body", "enabled", "updated_at"])
        )
    }

    /// Every rule (no bind).
    fn rule_defs(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), name, body, CAST(enabled AS {i}), CAST(created_at AS {i}), \
             CAST(updated_at AS {i}) FROM rule_def ORDER BY name",
            i = self.int
        )
    }

    /// `msgid, msgtime, text` of stored messages whose msgid is in a list that follows.
    fn revoked_messages(&self, t: &str) -> String {
        format!("SELECT msgid, {}, COALESCE(text, '') FROM {t} WHERE msgid IN (", self.uint("msgtime"))
    }

    /// Stored hits, with optional conditions appended by the caller.
    fn stored_hits(&self) -> String {
        format!(
            "SELECT CAST(id AS {i}), corpid, msgid, rule, kind, matched, context, sender, conversation, \
             CAST(msgtime AS {i}), CAST(alert_state AS {i}) FROM rule_hit WHERE 1 = 1",
            i = self.int
        )
    }
}

/// A hit's columns as they fit the schema (`sender` VARCHAR(128), `conversation` VARCHAR(512),
/// `matched`/`context` cut to [`MAX_HIT_TEXT`] characters).
pub(super) struct HitValues<'a> {
    pub hit: &'a RuleHit,
    pub matched: &'a str,
    pub context: &'a str,
    pub sender: &'a str,
    pub conversation: &'a str,
    pub msgtime: i64,
}

impl<'a> HitValues<'a> {
    pub fn of(hit: &'a RuleHit) -> Self {
        Self {
            hit,
            matched: clip(&hit.matched, MAX_HIT_TEXT),
            context: clip(&hit.context, MAX_HIT_TEXT),
            sender: clip(&hit.sender, 128),
            conversation: clip(&hit.conversation, 512),
            msgtime: i64::try_from(hit.msgtime).unwrap_or(i64::MAX),
        }
    }

    pub fn bytes(&self) -> usize {
        self.hit.msgid.len()
            + self.hit.rule.len()
            + self.matched.len()
            + self.context.len()
            + self.sender.len()
            + self.conversation.len()
            + 128
    }
}

/// What a resolved revoke says: the hit's `matched` and `context`.
pub(super) fn revoke_hit(
    check: &super::RevokeCheck,
    rule: &str,
    sent_at: u64,
    text: &str,
) -> Option<(String, String, String)> {
    let within = check.rules.iter().find(|(r, _)| r == rule).map(|(_, w)| *w)?;
    let after = check.revoked_at.checked_sub(sent_at)?;
    if after > within {
        return None;
    }
    let context = if text.is_empty() {
        format!("revoked {} s after sending", after / 1000)
    } else {
        format!("revoked {} s after sending: {text}", after / 1000)
    };
    Some((rule.to_string(), check.pre_msgid.clone(), context))
}

/// `RuleRepo` for `SqlStore<$db>` and the batch's hit statements.
macro_rules! rule_repo {
    ($db:ty) => {
        impl SqlStore<$db> {
            /// INSERT-or-ignore of `hits` of `corpid`, chunked; how many were new.
            pub(in crate::store) async fn insert_hits(
                conn: &mut <$db as sqlx::Database>::Connection,
                corpid: &CorpId,
                hits: &[RuleHit],
                budget: usize,
            ) -> Result<u64, StoreError> {
                if hits.is_empty() {
                    return Ok(0);
                }
                let values: Vec<HitValues<'_>> = hits.iter().map(HitValues::of).collect();
                let now = now_ms();
                let start = format!("{} rule_hit ({HIT_COLUMNS}) ", Self::SQL.insert_ignore);
                let mut inserted = 0;
                for chunk in chunks(&values, HitValues::bytes, budget) {
                    let mut qb = QueryBuilder::<$db>::new(&start);
                    qb.push_values(chunk, |mut b, v| {
                        b.push_bind(corpid.as_str())
                            .push_bind(v.hit.msgid.as_str())
                            .push_bind(v.hit.rule.as_str())
                            .push_bind(v.hit.kind.as_str())
                            .push_bind(v.matched)
                            .push_bind(v.context)
                            .push_bind(v.sender)
                            .push_bind(v.conversation)
                            .push_bind(v.msgtime)
                            .push_bind(now)
                            .push_bind(0i64);
                    });
                    inserted += qb.build().execute(&mut *conn).await?.rows_affected();
                }
                Ok(inserted)
            }

            /// The hits of `checks` against the message table of `corpid` (which must exist).
            pub(in crate::store) async fn resolve_revokes_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                corpid: &CorpId,
                checks: &[RevokeCheck],
            ) -> Result<Vec<RuleHit>, StoreError> {
                let mut sent: HashMap<String, (u64, String)> = HashMap::new();
                let t = Self::SQL.message(corpid);
                for chunk in checks.chunks(CHUNK_ROWS) {
                    let mut qb = QueryBuilder::<$db>::new(Self::SQL.revoked_messages(&t));
                    let mut list = qb.separated(", ");
                    for c in chunk {
                        list.push_bind(c.pre_msgid.as_str());
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(&mut *conn).await? {
                        sent.insert(row.try_get(0)?, (Self::u64_at(&row, 1)?, row.try_get(2)?));
                    }
                }
                let mut out = Vec::new();
                for c in checks {
                    let Some((at, text)) = sent.get(&c.pre_msgid) else { continue };
                    for (rule, _) in &c.rules {
                        if let Some((rule, matched, context)) = revoke_hit(c, rule, *at, text) {
                            out.push(RuleHit {
                                msgid: c.msgid.clone(),
                                rule,
                                kind: "behaviour".into(),
                                matched,
                                context,
                                sender: c.sender.clone(),
                                conversation: c.conversation.clone(),
                                msgtime: c.revoked_at,
                            });
                        }
                    }
                }
                Ok(out)
            }

            /// Writes `hits` in the transaction `conn` of a batch whose rows are already in.
            pub(in crate::store) async fn write_hits(
                conn: &mut <$db as sqlx::Database>::Connection,
                corpid: &CorpId,
                hits: &BatchHits,
                budget: usize,
            ) -> Result<u64, StoreError> {
                let mut inserted = Self::insert_hits(&mut *conn, corpid, &hits.hits, budget).await?;
                if !hits.revokes.is_empty() {
                    let resolved = Self::resolve_revokes_on(&mut *conn, corpid, &hits.revokes).await?;
                    inserted += Self::insert_hits(&mut *conn, corpid, &resolved, budget).await?;
                }
                Ok(inserted)
            }
        }

        #[async_trait]
        impl RuleRepo for SqlStore<$db> {
            async fn rule_defs(&self) -> Result<Vec<RuleDefRow>, StoreError> {
                let rows = sqlx::query(&Self::SQL.rule_defs()).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(RuleDefRow {
                            id: r.try_get(0)?,
                            name: r.try_get(1)?,
                            body: r.try_get(2)?,
                            enabled: r.try_get::<i64, _>(3)? != 0,
                            created_at: r.try_get(4)?,
                            updated_at: r.try_get(5)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn rule_def_put(&self, name: &str, body: &str, enabled: bool) -> Result<bool, StoreError> {
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let existed: Option<i64> =
                    sqlx::query_scalar(&format!("SELECT CAST(id AS {}) FROM rule_def WHERE name = ?", Self::SQL.int))
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                let now = now_ms();
                sqlx::query(&Self::SQL.rule_def_upsert())
                    .bind(name)
                    .bind(body)
                    .bind(i64::from(enabled))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(existed.is_none())
            }

            async fn rule_def_remove(&self, name: &str) -> Result<bool, StoreError> {
                let _w = self.write_guard().await;
                let n = sqlx::query("DELETE FROM rule_def WHERE name = ?")
                    .bind(name)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn resolve_revokes(
                &self,
                corpid: &CorpId,
                checks: &[RevokeCheck],
            ) -> Result<Vec<RuleHit>, StoreError> {
                if checks.is_empty() || !self.table_exists(&corpid.message_table()).await? {
                    return Ok(Vec::new());
                }
                let mut conn = self.pool.acquire().await?;
                Self::resolve_revokes_on(&mut conn, corpid, checks).await
            }

            async fn insert_rule_hits(&self, corpid: &CorpId, hits: &BatchHits) -> Result<u64, StoreError> {
                self.ensure_corp_tables(corpid).await?;
                let _w = self.write_guard().await;
                let mut tx = self.pool.begin().await?;
                let n = Self::write_hits(&mut tx, corpid, hits, self.limits.statement_bytes()).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn rule_hits(
                &self,
                corpid: Option<&CorpId>,
                rule: Option<&str>,
                limit: u32,
            ) -> Result<Vec<StoredHit>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(Self::SQL.stored_hits());
                if let Some(c) = corpid {
                    qb.push(" AND corpid = ").push_bind(c.as_str());
                }
                if let Some(r) = rule {
                    qb.push(" AND rule = ").push_bind(r);
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(StoredHit {
                            id: r.try_get(0)?,
                            corpid: r.try_get(1)?,
                            hit: RuleHit {
                                msgid: r.try_get(2)?,
                                rule: r.try_get(3)?,
                                kind: r.try_get(4)?,
                                matched: r.try_get(5)?,
                                context: r.try_get(6)?,
                                sender: r.try_get(7)?,
                                conversation: r.try_get(8)?,
                                msgtime: u64::try_from(r.try_get::<i64, _>(9)?).unwrap_or(0),
                            },
                            alert_state: r.try_get(10)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    };
}

/// Now in ms since the epoch (`created_at`, `updated_at`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

mod instances {
    use std::collections::HashMap;

    use async_trait::async_trait;
    use sqlx::{QueryBuilder, Row as _};

    use super::{now_ms, revoke_hit, HitValues, HIT_COLUMNS};
    use crate::store::batch::{chunks, CHUNK_ROWS};
    use crate::store::sql::SqlStore;
    use crate::store::{
        BatchHits, CorpId, RevokeCheck, RuleDefRow, RuleHit, RuleRepo, SchemaRepo, StoreError, StoredHit,
    };

    rule_repo!(sqlx::MySql);
    rule_repo!(sqlx::Sqlite);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RevokeCheck;

    #[test]
    fn a_revoke_hits_only_within_its_rule_s_seconds() {
        let check = RevokeCheck {
            msgid: "r1".into(),
            pre_msgid: "m1".into(),
            revoked_at: 100_000,
            sender: "zhangsan".into(),
            conversation: "pair:a|b".into(),
            rules: vec![("fast".into(), 30_000), ("slow".into(), 120_000)],
        };
        assert_eq!(revoke_hit(&check, "fast", 60_000, ""), None);
        let (rule, matched, context) = revoke_hit(&check, "slow", 60_000, "原文").unwrap();
        assert_eq!((rule.as_str(), matched.as_str()), ("slow", "m1"));
        assert_eq!(context, "revoked 40 s after sending: 原文");
        assert!(revoke_hit(&check, "fast", 75_000, "").is_some());
        // A clock that puts the message after its revoke: no hit, no underflow.
        assert_eq!(revoke_hit(&check, "slow", 200_000, ""), None);
        assert_eq!(revoke_hit(&check, "unknown", 99_000, ""), None);
    }
}
