//! `wework-msgaudit demo` as a user runs it: the binary, the in-process emulator and through the
//! emulator's `.so`, the full pipeline into a SQLite file; the test reads the database: every
//! record of the demo corp stored once, every msgtype present, cursor = max seq.

use crate::common;

use std::process::Command;

/// Runs `demo --duration 3s` into a temp database; returns stdout and the database path.
fn run_demo(dir: &std::path::Path, extra: &[&str]) -> (String, std::path::PathBuf) {
    let db = dir.join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["demo", "--duration", "3s", "--db", db.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("run wework-msgaudit demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    (stdout, db)
}

/// (rows, distinct msgids, max seq, cursor, msgtypes, undecryptable) of the demo corp's table.
fn db_facts(db: &std::path::Path) -> (i64, i64, i64, i64, Vec<String>, i64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let t = "message_wwdemo000000000001";
        let one = |sql: String| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await.unwrap() }
        };
        let rows = one(format!("SELECT COUNT(*) FROM {t}")).await;
        let distinct = one(format!("SELECT COUNT(DISTINCT msgid) FROM {t}")).await;
        let max_seq = one(format!("SELECT MAX(seq) FROM {t}")).await;
        let cursor = one("SELECT seq FROM corp_cursor WHERE corpid = 'wwdemo000000000001'".into()).await;
        let undecryptable = one(format!("SELECT COUNT(*) FROM {t} WHERE decrypt_error IS NOT NULL")).await;
        let msgtypes: Vec<String> =
            sqlx::query_scalar(&format!("SELECT DISTINCT msgtype FROM {t}")).fetch_all(&pool).await.unwrap();
        (rows, distinct, max_seq, cursor, msgtypes, undecryptable)
    })
}

fn assert_complete(stdout: &str, db: &std::path::Path) -> i64 {
    let (rows, distinct, max_seq, cursor, msgtypes, undecryptable) = db_facts(db);
    assert!(rows >= 300, "{rows} rows\n{stdout}");
    assert_eq!(distinct, rows, "every msgid once");
    assert_eq!(max_seq, rows, "seq 1..=rows, none missing");
    assert_eq!(cursor, max_seq, "cursor = max seq");
    assert_eq!(undecryptable, 0, "the demo corp has no corrupt records");
    for msgtype in emulator::truth::ALL_MSGTYPES {
        assert!(msgtypes.iter().any(|m| m == msgtype), "{msgtype} missing: {msgtypes:?}");
    }
    assert!(stdout.contains("stored"), "a live summary line: {stdout}");
    assert!(stdout.contains("sqlite3 ") && stdout.contains("message_wwdemo000000000001"), "{stdout}");
    assert!(
        stdout.contains("review console: http://127.0.0.1:") && stdout.contains("user demo, password "),
        "{stdout}"
    );
    rows
}

#[test]
fn demo_in_process_stores_every_record_of_every_msgtype() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, db) = run_demo(dir.path(), &[]);
    let rows = assert_complete(&stdout, &db);
    // "the emulator had N records of wwdemo000000000001 at the end"
    let line = stdout.lines().find(|l| l.starts_with("the emulator had")).expect("truth line");
    let truth: i64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(rows, truth, "row count = emulator truth count at the end\n{stdout}");
}

#[test]
fn demo_through_the_emulator_so() {
    let so = common::emulator_so();
    let dir = tempfile::tempdir().unwrap();
    let (stdout, db) = run_demo(dir.path(), &["--sdk", so.to_str().unwrap()]);
    assert!(stdout.contains(&format!("vendor:{}", so.display())), "{stdout}");
    assert_complete(&stdout, &db);
}

#[test]
fn a_missing_library_is_a_configuration_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["demo", "--sdk", "/nonexistent/libWeWorkFinanceSdk_C.so"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configuration error") && stderr.contains("/nonexistent/libWeWorkFinanceSdk_C.so"),
        "{stderr}"
    );
}
