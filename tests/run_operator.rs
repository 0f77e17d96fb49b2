//! The daemon binary (`run`, the in-process emulator) under an operator's conditions:
//! - configuration errors name the key and where it was set, never the value; environment values
//!   take the type of their key (`…__INSTANCE_ID=1`); so do the corps file's, in the daemon's log,
//!   `validate`, `doctor` and `corp list`;
//! - the database is down at start: each attempt is logged with the target (password redacted)
//!   and the driver's error, with growing delays; the daemon keeps running and ingests once the
//!   database appears (real MariaDB behind a TCP relay started late); SIGTERM while waiting: exit 0;
//! - SIGHUP re-reads the corps and the configuration (here a corps file behind a symlink, whose
//!   edits the file watcher cannot see) and the daemon keeps running;
//! - `--log trace` with the log file in the watched configuration directory: the log stays small
//!   and its writes trigger no reload.
//!
//! `WWF_TEST_DAEMON_BIN` runs these tests against another build of the binary (e.g. the previous
//! release, to see them fail there).

use crate::common;

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::free_port;

fn daemon_bin() -> PathBuf {
    std::env::var_os("WWF_TEST_DAEMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wework-msgaudit")))
}

/// The daemon as a child process, stderr (the log) to `log`; killed when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, config: &Path, log: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["run", "--config", config.to_str().unwrap()]);
        let child = Command::new(daemon_bin())
            .args(&args)
            .env("WWF_EMULATOR_SCENARIO", dir.join("scenario.toml"))
            .env_remove("WEWORK_MSGAUDIT_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap();
        Daemon { child, log: log.to_path_buf() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the daemon exited {when} ({status}):\n{}", tail(&self.log()));
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{sig}"), &pid]).status().unwrap().success());
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "no exit 60 s after SIGTERM:\n{}", tail(&self.log()));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn wait_for(what: &str, deadline: Duration, daemon: &mut Daemon, mut done: impl FnMut(&mut Daemon) -> bool) {
    let until = Instant::now() + deadline;
    while !done(daemon) {
        daemon.assert_alive(&format!("while waiting for {what}"));
        assert!(Instant::now() < until, "timed out waiting for {what}:\n{}", tail(&daemon.log()));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The emulator scenario (`<dir>/scenario.toml`) of `corps` with `records` each, and the key files
/// `<dir>/keys/v<n>.pem`.
fn write_scenario(dir: &Path, corps: &[&str], records: u64) {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let mut scenario = String::from("seed = 11\n");
    for (i, corp) in corps.iter().enumerate() {
        scenario.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"op-secret-{i}\"\nrecords = {records}\n"));
        for ver in 1..=2 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
            std::fs::write(dir.join(format!("keys/v{ver}.pem")), pem).unwrap();
        }
    }
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
}

/// A corps file of `corps` (of [`write_scenario`]), keys by absolute path.
fn corps_file(dir: &Path, corps: &[&str]) -> String {
    let mut out = String::new();
    for (i, corp) in corps.iter().enumerate() {
        out.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"op-secret-{i}\"\nlimits = 100\n"));
        for ver in 1..=2 {
            out.push_str(&format!(
                "[[corp.key]]\nver = {ver}\nfile = \"{}\"\n",
                dir.join(format!("keys/v{ver}.pem")).display()
            ));
        }
    }
    out
}

fn config_text(db_url: &str, corps: &Path, reload_interval: &str) -> String {
    format!(
        "[database]\nurl = \"{db_url}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
         [pull]\npoll_interval = \"300ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"1s\"\n\
         [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"{reload_interval}\"\n[media]\nenabled = false\n",
        corps = corps.display()
    )
}

/// Stored records of `corp` in the SQLite database `db` (0 before its table exists).
fn sqlite_rows(db: &Path, corp: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let Ok(pool) = sqlx::SqlitePool::connect(&url).await else { return 0 };
        let n = sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM message_{corp}"))
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        pool.close().await;
        n
    })
}

// ---- point 10: configuration errors -------------------------------------------------------------

#[test]
fn configuration_errors_name_the_key_and_place_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &Path, env: &[(&str, &str)]| {
        let out = Command::new(daemon_bin())
            .args(["run", "--config", config.to_str().unwrap()])
            .env_remove("WEWORK_MSGAUDIT_LOG")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // An all-digit secret where a string belongs, on line 4 of the file.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[media]\nenabled = false\nroot = \"m\"\ns3_secret_access_key = 918273645501\n").unwrap();
    let (code, err) = run(&config, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("918273645501"), "the value is printed: {err}");
    assert!(err.contains(&format!("{}:4: media.s3_secret_access_key: ", config.display())), "{err}");

    // An invalid value from the environment: the variable is named, its value is not.
    std::fs::write(&config, "[pull]\nlimit = 100\n").unwrap();
    let (code, err) = run(&config, &[("WEWORK_MSGAUDIT__PULL__LIMIT", "7788990011x")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("7788990011"), "the value is printed: {err}");
    assert!(err.contains("environment variable WEWORK_MSGAUDIT__PULL__LIMIT: pull.limit: "), "{err}");

    // Environment values take their key's type: digits for string keys, words for booleans. The
    // configuration loads; what fails next is the (absent) SDK library.
    std::fs::write(&config, "[sdk]\nlibrary = \"/nonexistent/libWeWorkFinanceSdk_C.so\"\n").unwrap();
    let (code, err) = run(
        &config,
        &[
            ("WEWORK_MSGAUDIT__CLUSTER__INSTANCE_ID", "1"),
            ("WEWORK_MSGAUDIT__MEDIA__INSTANCE_ID", "2"),
            ("WEWORK_MSGAUDIT__CLUSTER__LEASES", "true"),
            ("WEWORK_MSGAUDIT__PULL__LIMIT", "500"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/libWeWorkFinanceSdk_C.so") && !err.contains("instance_id"), "{err}");
}

/// The same for the corps file (the most sensitive file: corp secrets, inline keys): a digits-only
/// `secret` and an integer `pem`, beside a valid corp. Neither value appears in the daemon's log,
/// `validate`, `doctor` or `corp list`; each names the file, the line and the key; the valid corp
/// still ingests. Before the fix all four printed "invalid [[corp]] entry: invalid type: integer
/// `918273645501`, expected a string", with no line.
#[test]
fn corps_file_errors_name_the_entry_line_and_key_never_the_value() {
    const GOOD: &str = "wwopcorpsgood00001";
    const DIGITS: &str = "wwopcorpsdigits001";
    const PEM: &str = "wwopcorpspem000001";
    const SECRET: &str = "918273645501";
    const PEM_VALUE: &str = "123456789012345";
    const RECORDS: i64 = 50;
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), &[GOOD], RECORDS as u64);
    let mut text = corps_file(dir.path(), &[GOOD]);
    let secret_line = text.lines().count() + 3;
    text.push_str(&format!(
        "[[corp]]\ncorpid = \"{DIGITS}\"\nsecret = {SECRET}\n[[corp.key]]\nver = 1\nfile = \"{}\"\n",
        dir.path().join("keys/v1.pem").display()
    ));
    let pem_line = text.lines().count() + 6;
    text.push_str(&format!(
        "[[corp]]\ncorpid = \"{PEM}\"\nsecret = \"op-secret-pem\"\n[[corp.key]]\nver = 1\npem = {PEM_VALUE}\n"
    ));
    let corps = dir.path().join("corps.toml");
    std::fs::write(&corps, text).unwrap();
    let db = dir.path().join("corps.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&format!("sqlite://{}", db.display()), &corps, "1h")).unwrap();
    let wants = [
        (DIGITS, format!("{}:{secret_line}: corp[2].secret: wrong type, expected a string", corps.display())),
        (PEM, format!("{}:{pem_line}: corp[3].key[1].pem: wrong type, expected a string", corps.display())),
    ];
    let check = |what: &str, out: &str| {
        for value in [SECRET, PEM_VALUE] {
            assert!(!out.contains(value), "{what} shows the value {value}:\n{out}");
        }
        for (corpid, want) in &wants {
            assert!(
                out.lines().any(|l| l.contains(corpid) && l.contains(want.as_str())),
                "{what}: no {want:?}:\n{out}"
            );
        }
    };

    let mut daemon = Daemon::start(dir.path(), &config, &dir.path().join("daemon.log"), &[], &[]);
    wait_for("the valid corp ingested", Duration::from_secs(60), &mut daemon, |_| sqlite_rows(&db, GOOD) >= RECORDS);
    wait_for("both bad corps left out", Duration::from_secs(30), &mut daemon, |d| {
        d.log().lines().filter(|l| l.contains("corp left out")).count() >= 2
    });
    let status = daemon.terminate();
    assert!(status.success(), "exit {status}:\n{}", tail(&daemon.log()));
    check("the daemon's log", &daemon.log());

    let cli = |args: &[&str], code: i32| {
        let out = Command::new(daemon_bin())
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .env("WWF_EMULATOR_SCENARIO", dir.path().join("scenario.toml"))
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}:\n{text}");
        text
    };
    check("validate", &cli(&["validate"], 2));
    check("doctor", &cli(&["doctor"], 1));
    let list = cli(&["corp", "list"], 0);
    check("corp list", &list);
    assert!(list.lines().any(|l| l.contains(GOOD) && !l.contains("problem")), "{list}");
}

// ---- point 8: database down at start ------------------------------------------------------------

/// The redacted URL and the driver's error of each logged attempt, and the delays, in order.
fn db_attempts(log: &str) -> Vec<(String, Duration)> {
    log.lines()
        .filter(|l| l.contains("cannot reach the database"))
        .map(|l| {
            let retry = l.split("retry_in=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("?");
            let retry = humantime::parse_duration(retry).unwrap_or_else(|_| panic!("retry_in of {l}"));
            (l.to_string(), retry)
        })
        .collect()
}

/// SIGTERM while the database is unreachable ends the daemon at once with exit 0; before that,
/// every attempt was logged with the target and the cause, with growing delays.
#[test]
fn database_unreachable_at_start_is_retried_with_backoff_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), &["wwopdbcorp00000001"], 10);
    let corps = dir.path().join("corps.toml");
    std::fs::write(&corps, corps_file(dir.path(), &["wwopdbcorp00000001"])).unwrap();
    let port = free_port();
    let url = format!("mysql://archiver:4815162342@127.0.0.1:{port}/msgaudit");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&url, &corps, "1s")).unwrap();
    let t0 = Instant::now();
    let mut daemon = Daemon::start(dir.path(), &config, &dir.path().join("daemon.log"), &[], &[]);
    wait_for("3 logged attempts", Duration::from_secs(20), &mut daemon, |d| db_attempts(&d.log()).len() >= 3);
    daemon.assert_alive("while the database is down");
    // SIGHUP while waiting changes nothing.
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    daemon.assert_alive("after SIGHUP while waiting for the database");
    let log = daemon.log();
    let attempts = db_attempts(&log);
    for (line, _) in &attempts {
        assert!(line.contains(&format!("mysql://archiver:***@127.0.0.1:{port}/msgaudit")), "target: {line}");
        assert!(line.contains("Connection refused"), "the driver's error: {line}");
    }
    let delays: Vec<Duration> = attempts.iter().map(|(_, d)| *d).collect();
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "growing delays: {delays:?}");
    assert!(!log.contains("4815162342"), "the password is logged:\n{log}");
    let status = daemon.terminate();
    assert!(status.success(), "exit {status}:\n{}", tail(&daemon.log()));
    common::report(&format!(
        "run_operator db-down: {} attempts in {:.1?}, delays {delays:?}, SIGTERM → {status}",
        attempts.len(),
        t0.elapsed()
    ));
}

/// A TCP relay from `127.0.0.1:port` to MariaDB (its Unix socket, else 127.0.0.1:3306): "the
/// database appears" when it starts. Runs until the test process ends.
fn start_relay(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let socket = Path::new("/run/mysqld/mysqld.sock");
            let pipe = |mut from: Box<dyn std::io::Read + Send>, mut to: Box<dyn std::io::Write + Send>| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                })
            };
            if socket.exists() {
                let Ok(up) = std::os::unix::net::UnixStream::connect(socket) else { continue };
                pipe(Box::new(client.try_clone().unwrap()), Box::new(up.try_clone().unwrap()));
                pipe(Box::new(up), Box::new(client));
            } else {
                let Ok(up) = TcpStream::connect("127.0.0.1:3306") else { continue };
                pipe(Box::new(client.try_clone().unwrap()), Box::new(up.try_clone().unwrap()));
                pipe(Box::new(up), Box::new(client));
            }
        }
    });
}

/// The database is down at start and appears ~5 s later: the daemon logged each attempt, kept
/// running, and then ingests everything (MariaDB, a user with an all-digit password).
#[test]
fn database_down_at_start_then_up_ingests_without_a_restart() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (url, admin, db) = match rt.block_on(common::pipeline::fresh_mysql_database("wwopdb")) {
        Ok(v) => v,
        Err(why) => return common::skip_or_fail("the database-down-at-start test", &why),
    };
    use sqlx::{Connection as _, Executor as _};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let user = format!("wwop_{}_{nanos}", std::process::id());
    let password = format!("{}", 9_000_000_000u64 + u64::from(nanos));
    rt.block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        c.execute(format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'").as_str()).await.unwrap();
        c.execute(format!("GRANT ALL ON `{db}`.* TO '{user}'@'%'").as_str()).await.unwrap();
        c.close().await.unwrap();
    });

    const CORP: &str = "wwopdbcorp00000002";
    const RECORDS: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), &[CORP], RECORDS as u64);
    let corps = dir.path().join("corps.toml");
    std::fs::write(&corps, corps_file(dir.path(), &[CORP])).unwrap();
    let port = free_port();
    let db_url = format!("mysql://{user}:{password}@127.0.0.1:{port}/{db}");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&db_url, &corps, "1s")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &config, &dir.path().join("daemon.log"), &[], &[]);
    wait_for("3 logged attempts", Duration::from_secs(20), &mut daemon, |d| db_attempts(&d.log()).len() >= 3);
    let down = db_attempts(&daemon.log()).len();
    start_relay(port);
    let rows = |url: String| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let Ok(mut c) = sqlx::MySqlConnection::connect(&url).await else { return 0 };
            let n = sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM message_{CORP}"))
                .fetch_one(&mut c)
                .await
                .unwrap_or(0);
            let _ = c.close().await;
            n
        })
    };
    let admin_db = url.clone();
    wait_for("every record stored", Duration::from_secs(90), &mut daemon, |_| rows(admin_db.clone()) >= RECORDS);
    let log = daemon.log();
    assert!(log.contains("database reached"), "{}", tail(&log));
    assert!(!log.contains(&password), "the password is logged");
    for (line, _) in db_attempts(&log) {
        assert!(line.contains(&format!("mysql://{user}:***@127.0.0.1:{port}/{db}")), "{line}");
    }
    let status = daemon.terminate();
    assert!(status.success(), "exit {status}:\n{}", tail(&daemon.log()));
    assert_eq!(rows(admin_db), RECORDS);
    common::report(&format!("run_operator db-late: {down} failed attempts, then {RECORDS} records stored, {status}"));
    rt.block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        let _ = c.execute(format!("DROP USER '{user}'@'%'").as_str()).await;
        let _ = c.execute(format!("DROP DATABASE `{db}`").as_str()).await;
        let _ = c.close().await;
    });
}

// ---- point 12: SIGHUP ---------------------------------------------------------------------------

/// SIGHUP re-reads the corps file: an edit the watcher cannot see (the corps file is a symlink
/// into another directory, as Kubernetes ConfigMaps are) is applied on SIGHUP; the daemon keeps
/// running (it used to die with exit 129).
#[test]
fn sighup_reloads_the_corps_and_the_daemon_keeps_running() {
    const A: &str = "wwophupcorp0000001";
    const B: &str = "wwophupcorp0000002";
    const RECORDS: i64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), &[A, B], RECORDS as u64);
    let real = elsewhere.path().join("corps-real.toml");
    std::fs::write(&real, corps_file(dir.path(), &[A])).unwrap();
    let corps = dir.path().join("corps.toml");
    std::os::unix::fs::symlink(&real, &corps).unwrap();
    let db = dir.path().join("hup.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&format!("sqlite://{}", db.display()), &corps, "1h")).unwrap();
    let mut daemon = Daemon::start(dir.path(), &config, &dir.path().join("daemon.log"), &[], &[]);
    wait_for("corp A ingested", Duration::from_secs(60), &mut daemon, |_| sqlite_rows(&db, A) >= RECORDS);

    // Edit the target in place: nothing changes in the watched directory.
    std::fs::write(&real, corps_file(dir.path(), &[A, B])).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sqlite_rows(&db, B), 0, "the watcher saw the edit: this test would not test SIGHUP");

    daemon.signal("HUP");
    wait_for("corp B ingested after SIGHUP", Duration::from_secs(60), &mut daemon, |_| sqlite_rows(&db, B) >= RECORDS);
    daemon.assert_alive("after SIGHUP");
    // A second SIGHUP with nothing changed is harmless too.
    daemon.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    daemon.assert_alive("after a second SIGHUP");
    let log = daemon.log();
    assert_eq!(log.matches("SIGHUP: re-reading").count(), 2, "{}", tail(&log));
    let status = daemon.terminate();
    assert!(status.success(), "exit {status}:\n{}", tail(&daemon.log()));
    assert_eq!((sqlite_rows(&db, A), sqlite_rows(&db, B)), (RECORDS, RECORDS));
}

// ---- point 16: the log in the watched directory -------------------------------------------------

/// `--log trace` with stderr in the configuration's own directory (watched for edits): the log
/// grows with the work, not with itself, and its writes trigger no reload. Before the fix each
/// logged file event was a write there, i.e. a new event to log (300 MB in 6 s).
#[test]
fn trace_log_in_the_watched_directory_does_not_feed_on_itself() {
    const CORP: &str = "wwoplogcorp0000001";
    let dir = tempfile::tempdir().unwrap();
    write_scenario(dir.path(), &[CORP], 100);
    let corps = dir.path().join("corps.toml");
    std::fs::write(&corps, corps_file(dir.path(), &[CORP])).unwrap();
    let db = dir.path().join("data.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&format!("sqlite://{}", db.display()), &corps, "1h")).unwrap();
    let log = dir.path().join("wework-msgaudit.log");
    let mut daemon = Daemon::start(dir.path(), &config, &log, &["--log", "trace"], &[]);
    let size = || std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    const LIMIT: u64 = 64 << 20;
    wait_for("the corp ingested", Duration::from_secs(60), &mut daemon, |_| {
        assert!(size() < LIMIT, "the log passed {LIMIT} bytes before the corp was ingested");
        sqlite_rows(&db, CORP) >= 100
    });
    // Idle: polling only. Measure the growth over 4 s.
    std::thread::sleep(Duration::from_secs(1));
    let before = size();
    std::thread::sleep(Duration::from_secs(4));
    daemon.assert_alive("idle");
    let growth = size() - before;
    let text = daemon.log();
    let reloads =
        text.lines().filter(|l| l.contains("changed; reloading") || l.contains("configuration changed")).count();
    let status = daemon.terminate();
    assert!(status.success(), "exit {status}");
    common::report(&format!("run_operator trace-log: {before} bytes after ingest, +{growth} bytes in 4 s idle"));
    assert!(growth < 1 << 20, "the idle daemon wrote {growth} bytes of log in 4 s");
    assert_eq!(reloads, 0, "log writes triggered reloads");
    assert!(!text.contains("inotify event"), "file events are logged");
    let mut head = String::new();
    std::fs::File::open(&log).unwrap().take(1 << 20).read_to_string(&mut head).unwrap();
    // The filter is wide open (the daemon's own code has no trace events; sqlx logs at debug).
    assert!(head.contains("DEBUG sqlx::query"), "debug and trace events are written");
}
