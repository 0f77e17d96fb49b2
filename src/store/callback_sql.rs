//! [`CallbackRepo`](super::CallbackRepo) once for both dialects over `corp_callback`; the bodies
//! are one `macro_rules!` instantiated for each database (see `sql.rs`).

use super::sql::Dialect;

impl Dialect {
    /// Inserts or replaces a row (binds: corpid, token, encoding_aes_key).
    fn put_corp_callback(&self) -> String {
        format!(
            "INSERT INTO corp_callback (corpid, token, encoding_aes_key, updated_at) VALUES (?, ?, ?, {}) {}",
            self.now_ms,
            self.upsert("corpid", &["token", "encoding_aes_key", "updated_at"])
        )
    }
}

/// The [`CallbackRepo`](super::CallbackRepo) of `SqlStore<$db>`.
macro_rules! callback_repo {
    ($db:ty) => {
        #[async_trait]
        impl CallbackRepo for SqlStore<$db> {
            async fn list_corp_callbacks(&self) -> Result<Vec<CorpCallbackRow>, StoreError> {
                let rows = sqlx::query("SELECT corpid, token, encoding_aes_key FROM corp_callback ORDER BY corpid")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(CorpCallbackRow {
                            corpid: r.try_get(0)?,
                            token: Secret::new(r.try_get::<String, _>(1)?),
                            encoding_aes_key: Secret::new(r.try_get::<String, _>(2)?),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn put_corp_callback(
                &self,
                corpid: &CorpId,
                token: &Secret,
                encoding_aes_key: &Secret,
            ) -> Result<(), StoreError> {
                let _w = self.write_guard().await;
                sqlx::query(&Self::SQL.put_corp_callback())
                    .bind(corpid.as_str())
                    .bind(token.expose())
                    .bind(encoding_aes_key.expose())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_corp_callback(&self, corpid: &CorpId) -> Result<bool, StoreError> {
                let _w = self.write_guard().await;
                let done = sqlx::query("DELETE FROM corp_callback WHERE corpid = ?")
                    .bind(corpid.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

mod instances {
    use async_trait::async_trait;
    use sqlx::Row as _;

    use crate::secret::Secret;
    use crate::store::sql::SqlStore;
    use crate::store::{CallbackRepo, CorpCallbackRow, CorpId, StoreError};

    callback_repo!(sqlx::MySql);
    callback_repo!(sqlx::Sqlite);
}
