//! Looking at a database without changing it: does it exist, which migrations would
//! [`SchemaRepo::migrate`](super::SchemaRepo::migrate) apply, and a read-only [`Store`] to read
//! `corplist`/`corp_keys` with. Used by `validate` and by `doctor` without `--fix`, which must
//! not create the SQLite file nor run a migration (on a Java database that means an
//! `ALTER TABLE corplist`).

use std::collections::HashSet;
use std::str::FromStr as _;
use std::sync::Arc;

use sqlx::Connection as _;

use super::{MysqlStore, SqliteStore, Store, StoreError};

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// False for a SQLite file that does not exist (MySQL: always true once connected).
    pub exists: bool,
    /// What `migrate()` would do, one entry per step (`20261129000001 corp_lease`, the Java
    /// `corplist` adoption…); empty when the schema is current.
    pub pending: Vec<String>,
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn pending_of(migrator: &sqlx::migrate::Migrator, applied: &HashSet<i64>) -> Vec<String> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect()
}

/// The versions `_sqlx_migrations` lists as applied (the table must exist).
async fn applied<'c, DB, E>(conn: E) -> Result<HashSet<i64>, StoreError>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
{
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1").fetch_all(conn).await?;
    Ok(versions.into_iter().collect())
}

/// Inspects the database at `url` without creating or changing anything.
pub async fn inspect(url: &str) -> Result<Inspection, StoreError> {
    if is_sqlite(url) {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        if url.contains(":memory:") || !opts.get_filename().exists() {
            return Ok(Inspection { exists: false, pending: pending_of(&super::sqlite::MIGRATOR, &HashSet::new()) });
        }
        let mut conn =
            sqlx::sqlite::SqliteConnection::connect_with(&opts.create_if_missing(false).read_only(true)).await?;
        let has: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(&mut conn)
                .await?;
        let applied = if has > 0 { applied(&mut conn).await? } else { HashSet::new() };
        let _ = conn.close().await;
        return Ok(Inspection { exists: true, pending: pending_of(&super::sqlite::MIGRATOR, &applied) });
    }
    if !url.starts_with("mysql://") && !url.starts_with("mariadb://") {
        return Err(StoreError::UnsupportedUrl(super::redact_url(url)));
    }
    let url = url.strip_prefix("mariadb://").map_or_else(|| url.to_string(), |rest| format!("mysql://{rest}"));
    let mut conn = sqlx::MySqlConnection::connect(&url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME IN ('_sqlx_migrations', 'corplist')",
    )
    .fetch_all(&mut conn)
    .await?;
    let applied =
        if tables.iter().any(|t| t == "_sqlx_migrations") { applied(&mut conn).await? } else { HashSet::new() };
    let mut pending = pending_of(&super::mysql::MIGRATOR, &applied);
    if tables.iter().any(|t| t == "corplist") {
        let cols: HashSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'corplist'",
        )
        .fetch_all(&mut conn)
        .await?
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
        let missing: Vec<&str> = super::mysql::CORPLIST_COLUMNS
            .iter()
            .map(|(name, _)| name.trim_matches('`'))
            .filter(|name| !cols.contains(*name))
            .collect();
        if !missing.is_empty() {
            pending.push(format!("ALTER TABLE corplist ADD COLUMN {} (a Java-era corplist)", missing.join(", ")));
        }
        if super::mysql::secret_column(&mut conn).await?.is_some_and(|(len, _)| len < super::mysql::SECRET_WIDTH) {
            pending.push(format!(
                "ALTER TABLE corplist MODIFY COLUMN secret VARCHAR({}) (room for encrypted secrets)",
                super::mysql::SECRET_WIDTH
            ));
        }
    }
    let _ = conn.close().await;
    Ok(Inspection { exists: true, pending })
}

/// The pool of a [`connect_read_only`] MySQL store: a few reads, one after the other.
const READ_ONLY_CONNECTIONS: u32 = 2;

/// A [`Store`] on an existing database that changes nothing: SQLite opened read-only (never
/// created), MySQL connected without migrating. Only the reading methods are meant to be used.
pub async fn connect_read_only(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if is_sqlite(url) {
        Ok(Arc::new(SqliteStore::connect_read_only(url).await?))
    } else if let Some(rest) = url.strip_prefix("mariadb://") {
        Ok(Arc::new(MysqlStore::connect(&format!("mysql://{rest}"), READ_ONLY_CONNECTIONS).await?))
    } else if url.starts_with("mysql://") {
        Ok(Arc::new(MysqlStore::connect(url, READ_ONLY_CONNECTIONS).await?))
    } else {
        Err(StoreError::UnsupportedUrl(super::redact_url(url)))
    }
}
