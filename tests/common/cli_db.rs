//! A database for tests that drive the binary's subcommands: a SQLite temp file or a fresh
//! MariaDB database, a directory for the config and input files, the binary run against it
//! (the URL given through the environment override, as `run` honours it), and the tamperer's
//! direct SQL. Test modules wrap it in their own `Db` (the name `per_db!` calls) to add their
//! files.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;

use wework_msgaudit::store::{self, Store};

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");

/// See the module documentation.
pub struct CliDb {
    /// The database URL.
    pub url: String,
    /// Config and input files.
    pub dir: tempfile::TempDir,
    /// (admin URL, database) of a MariaDB database to drop at the end.
    drop_db: Option<(String, String)>,
}

impl CliDb {
    /// A SQLite file named `file` in a new temp directory.
    pub fn sqlite(file: &str) -> CliDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join(file).display());
        CliDb { url, dir, drop_db: None }
    }

    /// A fresh MariaDB database (`prefix` + a unique suffix); `None` after the SKIPPED banner
    /// (a failure under `CI=true`) naming `what`.
    pub async fn mysql(prefix: &str, what: &str) -> Option<CliDb> {
        match super::pipeline::fresh_mysql_database(prefix).await {
            Ok((url, admin, db)) => Some(CliDb { url, dir: tempfile::tempdir().unwrap(), drop_db: Some((admin, db)) }),
            Err(why) => {
                super::skip_or_fail(what, &why);
                None
            }
        }
    }

    /// A file of the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file of the directory.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// Runs the binary with `args` plus `--config <dir>/config.toml`, `stdin` on its standard
    /// input, the database URL from the environment, `USER=tester`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let config = self.path("config.toml").display().to_string();
        let mut child = std::process::Command::new(BIN)
            .args(args)
            .args(["--config", &config])
            .env("WEWORK_MSGAUDIT__DATABASE__URL", &self.url)
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .env("USER", "tester")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// [`CliDb::run`], asserting the exit code; stdout + stderr.
    pub fn expect_in(&self, args: &[&str], stdin: &str, code: i32) -> String {
        let out = self.run(args, stdin);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}:\n{text}");
        text
    }

    /// [`CliDb::expect_in`] with nothing on standard input.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        self.expect_in(args, "", code)
    }

    /// [`CliDb::expect`] exit 0.
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    /// The store, migrated.
    pub async fn store(&self) -> Arc<dyn Store> {
        let s = store::connect(&self.url, 4).await.unwrap();
        s.migrate().await.unwrap();
        s
    }

    /// Runs one statement directly (the tamperer's view); rows affected.
    pub async fn exec(&self, sql: &str) -> u64 {
        if self.url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let n = sqlx::query(sql).execute(&p).await.unwrap().rows_affected();
            p.close().await;
            n
        } else {
            let p = sqlx::MySqlPool::connect(&self.url).await.unwrap();
            let n = sqlx::query(sql).execute(&p).await.unwrap().rows_affected();
            p.close().await;
            n
        }
    }

    /// One integer from a query (0 for NULL).
    pub async fn int(&self, sql: &str) -> i64 {
        let v: Option<i64> = if self.url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&p).await;
            p.close().await;
            v
        } else {
            let p = sqlx::MySqlPool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&p).await;
            p.close().await;
            v
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        v.unwrap_or(0)
    }

    /// The text values of a one-column query.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        if self.url.starts_with("sqlite:") {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_all(&p).await.unwrap();
            p.close().await;
            v
        } else {
            let p = sqlx::MySqlPool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_all(&p).await.unwrap();
            p.close().await;
            v
        }
    }

    /// Drops the MariaDB database (the SQLite file goes with the directory).
    pub async fn finish(self) {
        use sqlx::{Connection, Executor};
        if let Some((admin, db)) = &self.drop_db {
            let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
            c.execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str()).await.unwrap();
        }
    }
}
