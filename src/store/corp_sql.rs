//! [`CorpRepo`](super::CorpRepo) once for both dialects: `corplist` (as the Java version
//! created it, or adopted by `migrate`) and `corp_keys`. Integers are read through
//! `CAST(… AS <int>)` so that the Java version's column types (INT, TINYINT(1)) decode like ours.

use super::sql::Dialect;

impl Dialect {
    /// Every `corplist` row (no bind).
    fn list_corps(&self) -> String {
        let int = |c: &str| format!("CAST({c} AS {})", self.int);
        format!(
            "SELECT corpid, secret, corpname, prikey, {}, {}, {}, {} FROM corplist ORDER BY id",
            int("limits"),
            int("timeout"),
            int("status"),
            int(&self.quote("update"))
        )
    }

    /// Inserts or replaces a `corplist` row (binds: the 8 columns).
    fn upsert_corp(&self) -> String {
        let update = self.quote("update");
        format!(
            "INSERT INTO corplist (corpid, secret, corpname, prikey, limits, timeout, status, {update}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) {}",
            self.upsert("corpid", &["secret", "corpname", "prikey", "limits", "timeout", "status", &update])
        )
    }

    /// Inserts or replaces a key (binds: corpid, publickey_ver, prikey).
    fn put_corp_key(&self) -> String {
        format!(
            "INSERT INTO corp_keys (corpid, publickey_ver, prikey) VALUES (?, ?, ?) {}",
            self.upsert("corpid, publickey_ver", &["prikey"])
        )
    }

    /// Clears the update flag (bind: corpid).
    fn clear_update_flag(&self) -> String {
        format!("UPDATE corplist SET {} = 0 WHERE corpid = ?", self.quote("update"))
    }
}

/// The [`CorpRepo`](super::CorpRepo) of `SqlStore<$db>`.
macro_rules! corp_repo {
    ($db:ty) => {
        #[async_trait]
        impl CorpRepo for SqlStore<$db> {
            async fn list_corps(&self) -> Result<Vec<CorpRow>, StoreError> {
                let rows = sqlx::query(&Self::SQL.list_corps()).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        let int = |i: usize, default: i32| -> Result<i32, sqlx::Error> {
                            Ok(r.try_get::<Option<i64>, _>(i)?.map_or(default, |v| i32::try_from(v).unwrap_or(default)))
                        };
                        Ok(CorpRow {
                            corpid: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                            secret: Secret::new(r.try_get::<Option<String>, _>(1)?.unwrap_or_default()),
                            corpname: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                            prikey: Secret::new(r.try_get::<Option<String>, _>(3)?.unwrap_or_default()),
                            limits: int(4, 100)?,
                            timeout: int(5, 5)?,
                            status: int(6, 1)?,
                            update: int(7, 0)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn list_corp_keys(&self) -> Result<Vec<(String, u32, Secret)>, StoreError> {
                let rows =
                    sqlx::query("SELECT corpid, publickey_ver, prikey FROM corp_keys ORDER BY corpid, publickey_ver")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, Secret::new(r.try_get::<String, _>(2)?))))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn upsert_corp(&self, corp: &CorpRow) -> Result<(), StoreError> {
                let corpid = CorpId::new(&corp.corpid)?;
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.upsert_corp())
                    .bind(corpid.as_str())
                    .bind(corp.secret.expose())
                    .bind(&corp.corpname)
                    .bind(corp.prikey.expose())
                    .bind(corp.limits)
                    .bind(corp.timeout)
                    .bind(corp.status)
                    .bind(corp.update)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_corp_status(&self, corpid: &CorpId, status: i32) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query("UPDATE corplist SET status = ? WHERE corpid = ?")
                    .bind(status)
                    .bind(corpid.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn put_corp_key(
                &self,
                corpid: &CorpId,
                publickey_ver: u32,
                prikey: &Secret,
            ) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.put_corp_key())
                    .bind(corpid.as_str())
                    .bind(publickey_ver)
                    .bind(prikey.expose())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn clear_update_flag(&self, corpid: &CorpId) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.clear_update_flag()).bind(corpid.as_str()).execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use crate::secret::Secret;
    use crate::store::sql::SqlStore;
    use crate::store::{CorpId, CorpRepo, CorpRow, StoreError};

    corp_repo!(sqlx::MySql);
    corp_repo!(sqlx::Sqlite);
}
