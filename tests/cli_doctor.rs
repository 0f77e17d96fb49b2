//! `wework-msgaudit doctor [--online]` through the real binary, one line per check.
//!
//! - a healthy installation (SQLite, the emulator, a corps file with two corps whose keys are
//!   inline and in files, a media root in the temp dir): exit 0, every line `ok`, the key versions
//!   named, `--online` reaches both corps;
//! - a broken one (an SDK file that is no library, a garbage key, an invalid corpid, a duplicate):
//!   exit 1 with the specific FAIL lines, the good corp still `ok`; a missing SDK file and a
//!   configuration that does not load (exit 2);
//! - `--online` with a corp whose emulated secret is wrong: FAIL with rc 10001 in words;
//! - a media root below a regular file (root ignores chmod): FAIL media;
//! - MariaDB with a password in the URL: `ok` with the URL redacted; an unreachable MySQL URL:
//!   FAIL, no password;
//! - the real vendor SDK (`WWF_REAL_SDK`, else `.cache/sdk/libWeWorkFinanceSdk_C_x86.so`) loads
//!   through doctor, and `--online` fails with 10001 without anything the SDK prints reaching
//!   doctor's output. The binary runs under `unshare -n`: a fresh network namespace where not
//!   even loopback is up, so the SDK cannot reach any network.
//!
//! Every run is searched for the configured secrets, the database password and a slice of every
//! private key's text: none may appear on stdout or stderr.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");
const GOOD: &str = "wwdocgood000000001";
const OTHER: &str = "wwdocother00000002";
const BADKEY: &str = "wwdocbadkey0000003";
const DUP: &str = "wwdocdup0000000004";
const SECRET_GOOD: &str = "doctor-secret-good-9f2c7e51";
const SECRET_OTHER: &str = "doctor-secret-other-3d8a0b66";
const SECRET_BADKEY: &str = "doctor-secret-badkey-77e1aa02";
/// The body of the garbage key: PEM armour around base64 that is no key.
const GARBAGE_BODY: &str = "R0FSQkFHRS1OT1QtQS1LRVktYnV0LXByZXR0eS1sb25nLXRleHQtMDEyMzQ1Njc4OQ==";

/// One `[[corp.key]]` of the corps file.
#[derive(Clone, Copy)]
enum Key {
    /// A DEMO-ONLY key of this version, inline.
    Inline(u32),
    /// A DEMO-ONLY key of this version, in `keys/v<ver>.pem`.
    File(u32),
    /// Version 1 with a PEM that does not parse.
    Garbage,
}

struct Corp {
    corpid: &'static str,
    secret: &'static str,
    keys: Vec<Key>,
    /// Emulated `bad_secret` fault (the token request fails: rc 10001).
    bad_secret: bool,
}

fn corp(corpid: &'static str, secret: &'static str, keys: &[Key]) -> Corp {
    Corp { corpid, secret, keys: keys.to_vec(), bad_secret: false }
}

/// A temp dir with `config.toml`, `corps.toml`, `scenario.toml`, `keys/`, a SQLite database.
struct Setup {
    dir: tempfile::TempDir,
    /// Extra environment for the binary.
    env: Vec<(String, String)>,
    /// Strings that must never be printed.
    forbidden: Vec<String>,
}

/// 20 characters from the middle of a PEM body: enough to spot a leaked key.
fn pem_slice(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    body[body.len() / 2..body.len() / 2 + 20].to_string()
}

fn demo_pem(ver: u32) -> &'static str {
    emulator::demo_private_key_pem(ver).expect("DEMO-ONLY key")
}

impl Setup {
    /// `sdk`: `emulator` or a library path; `media_root`: relative to the temp dir.
    fn new(sdk: &str, corps: &[Corp], media_root: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("keys")).unwrap();
        let mut forbidden: Vec<String> = (1..=3).map(|v| pem_slice(demo_pem(v))).collect();
        forbidden.push(GARBAGE_BODY[10..30].to_string());
        let mut scenario = String::new();
        let mut file = String::new();
        for c in corps {
            forbidden.push(c.secret.to_string());
            scenario
                .push_str(&format!("[[corp]]\ncorpid = \"{}\"\nsecret = \"{}\"\nrecords = 3\n", c.corpid, c.secret));
            // The server encrypts with the versions the corp configures (doctor --online checks
            // every version it fetches).
            let mut versions: Vec<u32> = c
                .keys
                .iter()
                .map(|k| match *k {
                    Key::Inline(v) | Key::File(v) => v,
                    Key::Garbage => 1,
                })
                .collect();
            versions.sort_unstable();
            versions.dedup();
            for ver in versions {
                scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{}'''\n", demo_pem(ver)));
            }
            if c.bad_secret {
                scenario.push_str("[corp.faults]\nbad_secret = true\n");
            }
            file.push_str(&format!(
                "[[corp]]\ncorpid = \"{}\"\nsecret = \"{}\"\nname = \"Doctor {}\"\ntimeout = 3\n",
                c.corpid, c.secret, c.corpid
            ));
            for k in &c.keys {
                match *k {
                    Key::Inline(ver) => {
                        file.push_str(&format!("[[corp.key]]\nver = {ver}\npem = '''{}'''\n", demo_pem(ver)))
                    }
                    Key::File(ver) => {
                        std::fs::write(d.join(format!("keys/v{ver}.pem")), demo_pem(ver)).unwrap();
                        file.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
                    }
                    Key::Garbage => file.push_str(&format!(
                        "[[corp.key]]\nver = 1\npem = '''-----BEGIN PRIVATE KEY-----\n{GARBAGE_BODY}\n\
                         -----END PRIVATE KEY-----\n'''\n"
                    )),
                }
            }
        }
        std::fs::write(d.join("scenario.toml"), scenario).unwrap();
        std::fs::write(d.join("corps.toml"), file).unwrap();
        let config = format!(
            "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"{sdk}\"\ntimeout = \"3s\"\n\
             [corps]\ntable = true\nfile = \"{corps}\"\n[media]\nroot = \"{media}\"\n",
            db = d.join("doctor.db").display(),
            corps = d.join("corps.toml").display(),
            media = d.join(media_root).display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let env = vec![("WWF_EMULATOR_SCENARIO".to_string(), d.join("scenario.toml").display().to_string())];
        Setup { dir, env, forbidden }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn env(mut self, key: &str, value: &str) -> Setup {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// `[wrapper…] BIN doctor --config <dir>/config.toml <extra>`, in the temp dir, with no
    /// `WEWORK_MSGAUDIT__*` variable of the test's own environment.
    fn command(&self, wrapper: &[&str], extra: &[&str]) -> Command {
        self.command_for("doctor", wrapper, extra)
    }

    /// `[wrapper…] BIN <sub> --config <dir>/config.toml <extra>` (see [`Setup::command`]).
    fn command_for(&self, sub: &str, wrapper: &[&str], extra: &[&str]) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.args([sub, "--config"]).arg(self.path("config.toml")).args(extra);
        for (k, _) in std::env::vars() {
            if k.starts_with("WEWORK_MSGAUDIT__") || k == "WWF_EMULATOR_SCENARIO" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path()).env("WEWORK_MSGAUDIT_LOG", "warn").envs(self.env.iter().cloned());
        cmd
    }

    fn doctor(&self, extra: &[&str]) -> Run {
        self.run(self.command(&[], extra))
    }

    fn validate(&self) -> Run {
        self.run(self.command_for("validate", &[], &[]))
    }

    /// Runs a prepared command and checks that nothing forbidden was printed.
    fn run(&self, mut cmd: Command) -> Run {
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        };
        for secret in &self.forbidden {
            assert!(!run.stdout.contains(secret.as_str()), "stdout shows {secret:?}:\n{}", run.stdout);
            assert!(!run.stderr.contains(secret.as_str()), "stderr shows {secret:?}:\n{}", run.stderr);
        }
        eprintln!("doctor exit {:?} in {:?}:\n{}{}", run.code, run.took, run.stdout, run.stderr);
        run
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The line starting with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{}{}", self.stdout, self.stderr))
    }

    fn check_lines(&self) -> Vec<&str> {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let (last, checks) = lines.split_last().expect("some output");
        assert!(last.starts_with("summary: "), "the last line is the summary:\n{}", self.stdout);
        for l in checks {
            assert!(
                ["ok    ", "warn  ", "FAIL  ", "skip  "].iter().any(|p| l.starts_with(p)),
                "not a check line: {l:?}\n{}",
                self.stdout
            );
        }
        checks.to_vec()
    }

    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit code:\n{}{}", self.stdout, self.stderr);
        self
    }
}

fn healthy_corps() -> Vec<Corp> {
    vec![corp(GOOD, SECRET_GOOD, &[Key::Inline(1), Key::File(2)]), corp(OTHER, SECRET_OTHER, &[Key::File(3)])]
}

#[test]
fn a_healthy_installation_is_all_ok_offline_and_online() {
    let s = Setup::new("emulator", &healthy_corps(), "msgfile");
    let run = s.doctor(&["--fix"]);
    run.expect_code(0);
    let checks = run.check_lines();
    for l in &checks {
        assert!(l.starts_with("ok    "), "{l}\n{}", run.stdout);
    }
    let subjects: Vec<&str> = checks.iter().filter_map(|l| l[6..].split(':').next()).collect();
    assert_eq!(
        subjects,
        [
            "config",
            "sdk",
            "database",
            &format!("corp {GOOD} (Doctor {GOOD})"),
            &format!("corp {OTHER} (Doctor {OTHER})"),
            "ffmpeg",
            "media"
        ],
        "{}",
        run.stdout
    );
    assert!(run.line("ok    config: ").contains("config.toml"));
    assert!(run.line("ok    sdk: ").contains("emulator"));
    assert!(run.line("ok    database: ").contains(&format!("sqlite sqlite://{}", s.path("doctor.db").display())));
    assert!(run.line(&format!("ok    corp {GOOD}")).contains("keys for versions 1, 2;"), "{}", run.stdout);
    assert!(run.line(&format!("ok    corp {OTHER}")).contains("key for version 3;"), "{}", run.stdout);
    assert!(run.line("ok    ffmpeg: ").contains("libmp3lame"));
    assert!(run.line("ok    media: ").contains("writable"));
    assert!(run.line("summary: ").contains("7 ok, 0 warn, 0 FAIL"), "{}", run.stdout);
    assert!(s.path("msgfile").is_dir(), "the media root was created");
    assert_eq!(std::fs::read_dir(s.path("msgfile/.tmp")).unwrap().count(), 0, "the probe file was removed");

    let run = s.doctor(&["--online"]);
    run.expect_code(0);
    for l in run.check_lines() {
        assert!(l.starts_with("ok    "), "{l}\n{}", run.stdout);
    }
    for corpid in [GOOD, OTHER] {
        let online = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("ok    corp {corpid}")) && l.contains("online"))
            .unwrap_or_else(|| panic!("no online line for {corpid}:\n{}", run.stdout));
        assert!(online.contains("3 record(s) returned by GetChatData(seq 0, limit 100)"), "{online}");
    }
}

/// `validate` and `doctor` without `--fix` create nothing (no SQLite file, no media root, no
/// probe file); `doctor --fix` creates and migrates; `validate` exits 2 on an invalid corp.
#[test]
fn validate_and_doctor_change_nothing_until_fix() {
    let s = Setup::new("emulator", &healthy_corps(), "media/msgfile");
    let before = common::files_under(s.dir.path());
    let run = s.validate();
    run.expect_code(0);
    run.check_lines();
    assert!(run.line("warn  database: ").contains("does not exist yet"), "{}", run.stdout);
    assert!(run.line("skip  corps: ").contains("corplist"), "{}", run.stdout);
    assert!(run.line(&format!("ok    corp {GOOD}")).contains("keys for versions 1, 2;"), "{}", run.stdout);
    assert!(run.line("warn  media: ").contains("does not exist yet"), "{}", run.stdout);
    assert!(run.line("ok    security: ").contains("no master key"), "{}", run.stdout);
    assert!(!s.path("doctor.db").exists() && !s.path("media").exists(), "validate created something");

    let run = s.doctor(&[]);
    run.expect_code(0);
    run.check_lines();
    assert!(run.line("warn  database: ").contains("`doctor --fix` creates it"), "{}", run.stdout);
    assert!(run.line("warn  media: ").contains("does not exist yet"), "{}", run.stdout);
    assert!(!s.path("doctor.db").exists() && !s.path("media").exists(), "doctor without --fix created something");
    assert_eq!(common::files_under(s.dir.path()), before, "no file was created or removed");

    let run = s.doctor(&["--fix"]);
    run.expect_code(0);
    assert!(run.line("ok    database: ").contains("migrations applied"), "{}", run.stdout);
    assert!(s.path("doctor.db").is_file() && s.path("media/msgfile").is_dir());
    // Now current: read-only doctor and validate say so, and read the (empty) corplist.
    let run = s.doctor(&[]);
    run.expect_code(0);
    assert!(run.line("ok    database: ").contains("schema up to date"), "{}", run.stdout);
    assert!(run.line("ok    media: ").contains("writable"), "{}", run.stdout);
    s.validate().expect_code(0);

    // A database and media root left open to others (an older version, umask 022): doctor warns
    // and changes nothing; --fix sets 0600/0700.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&s.path("doctor.db")), mode(&s.path("media/msgfile"))), (0o600, 0o700), "created owner-only");
    std::fs::set_permissions(s.path("doctor.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(s.path("media/msgfile"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = s.doctor(&[]);
    run.expect_code(0);
    let warn = run.line("warn  permissions: ");
    assert!(warn.contains("doctor.db (0644)") && warn.contains("msgfile (0755)"), "{warn}");
    assert_eq!((mode(&s.path("doctor.db")), mode(&s.path("media/msgfile"))), (0o644, 0o755));
    let run = s.doctor(&["--fix"]);
    run.expect_code(0);
    run.line("ok    permissions: ");
    assert_eq!((mode(&s.path("doctor.db")), mode(&s.path("media/msgfile"))), (0o600, 0o700));
    assert!(!s.doctor(&[]).stdout.contains("permissions"), "nothing left to report");

    // An invalid corp entry: validate exits 2 (doctor: 1).
    let bad = Setup::new("emulator", &[corp(BADKEY, SECRET_BADKEY, &[Key::Garbage])], "msgfile");
    let run = bad.validate();
    run.expect_code(2);
    assert!(run.line(&format!("FAIL  corp {BADKEY}: ")).contains("left out"), "{}", run.stdout);
    // An unreadable master key file: exit 2, its path named.
    let nokey = Setup::new("emulator", &healthy_corps(), "msgfile");
    let cfg = std::fs::read_to_string(nokey.path("config.toml")).unwrap();
    std::fs::write(
        nokey.path("config.toml"),
        format!("{cfg}[security]\nmaster_key_file = \"{}\"\n", nokey.path("no-such.key").display()),
    )
    .unwrap();
    let run = nokey.validate();
    run.expect_code(2);
    assert!(run.line("FAIL  security: ").contains("no-such.key"), "{}", run.stdout);
}

#[test]
fn a_broken_installation_names_each_problem_and_exits_1() {
    let corps = vec![
        corp(GOOD, SECRET_GOOD, &[Key::Inline(1)]),
        corp(BADKEY, SECRET_BADKEY, &[Key::Inline(2), Key::Garbage]),
        corp("bad-corp!", SECRET_OTHER, &[Key::Inline(1)]),
        corp(DUP, SECRET_OTHER, &[Key::Inline(1)]),
        corp(DUP, SECRET_OTHER, &[Key::Inline(2)]),
    ];
    let s = Setup::new("notalib.so", &corps, "msgfile");
    std::fs::write(s.path("notalib.so"), "this is a text file, not a shared library\n".repeat(4)).unwrap();
    // A relative library path is relative to the working directory (the temp dir here), even
    // without a slash (dlopen would search the library path for a bare name).
    let run = s.doctor(&["--fix"]);
    run.expect_code(1);
    run.check_lines();
    let sdk = run.line("FAIL  sdk: ");
    assert!(sdk.contains("cannot load") && sdk.contains("notalib.so"), "{sdk}");
    assert!(sdk.contains("ELF") && !sdk.contains("No such file"), "the loader's reason: {sdk}");
    assert!(run.line(&format!("ok    corp {GOOD}")).contains("key for version 1;"));
    let bad = run.line(&format!("FAIL  corp {BADKEY}: "));
    assert!(bad.contains("left out") && bad.contains("key ver 1"), "{bad}");
    assert!(run.line("FAIL  corp bad-corp!: ").contains("invalid corpid"), "{}", run.stdout);
    assert!(run.line(&format!("FAIL  corp {DUP}: ")).contains("more than once"));
    for ok in ["ok    config: ", "ok    database: ", "ok    ffmpeg: ", "ok    media: "] {
        run.line(ok);
    }
    assert!(run.line("summary: ").contains("4 FAIL"), "{}", run.stdout);
    assert!(run.stderr.contains("4 checks failed"), "{}", run.stderr);

    // --online cannot call anything without the SDK: skipped, still exit 1.
    let run = s.doctor(&["--online"]);
    run.expect_code(1);
    assert!(run.line("skip  online: ").contains("SDK did not load"));

    // A library file that does not exist at all.
    let s = s.env("WEWORK_MSGAUDIT__SDK__LIBRARY", "/nonexistent/libWeWorkFinanceSdk_C.so");
    let run = s.doctor(&[]);
    run.expect_code(1);
    let sdk = run.line("FAIL  sdk: ");
    assert!(sdk.contains("/nonexistent/libWeWorkFinanceSdk_C.so") && sdk.contains("no such file"), "{sdk}");

    // A configuration that does not load: FAIL config, exit 2, FFmpeg still checked.
    let mut cmd = s.command(&[], &[]);
    cmd.env("WEWORK_MSGAUDIT__PULL__NO_SUCH_KEY", "1");
    let run = s.run(cmd);
    run.expect_code(2);
    run.check_lines();
    assert!(run.line("FAIL  config: ").contains("no_such_key"), "{}", run.stdout);
    run.line("ok    ffmpeg: ");
}

#[test]
fn online_names_a_wrong_secret_and_the_other_corp_stays_ok() {
    let mut corps = healthy_corps();
    corps[1].bad_secret = true;
    let s = Setup::new("emulator", &corps, "msgfile");
    let run = s.doctor(&["--online"]);
    run.expect_code(1);
    run.check_lines();
    let good = run.stdout.lines().find(|l| l.starts_with(&format!("ok    corp {GOOD}")) && l.contains("online"));
    assert!(good.is_some(), "{}", run.stdout);
    let bad = run.line(&format!("FAIL  corp {OTHER}"));
    assert!(bad.contains("GetChatData returned 10001"), "{bad}");
    assert!(bad.contains("wrong secret") && bad.contains("whitelist"), "the code in words: {bad}");
    // Offline, the same installation is fine: the secret is only checked by the server.
    s.doctor(&[]).expect_code(0);
}

#[test]
fn a_media_root_that_cannot_be_created_fails() {
    let s = Setup::new("emulator", &healthy_corps(), "afile/msgfile");
    // Root ignores permissions, so "not writable" is a path below a regular file.
    std::fs::write(s.path("afile"), "a regular file").unwrap();
    let run = s.doctor(&[]);
    run.expect_code(1);
    run.check_lines();
    let media = run.line("FAIL  media: ");
    assert!(media.contains("afile/msgfile") && media.contains("cannot create"), "{media}");
    run.line(&format!("ok    corp {GOOD}"));
    assert!(run.line("summary: ").contains("1 FAIL"));
}

#[test]
fn an_unreachable_database_fails_without_showing_its_password() {
    let s = Setup::new("emulator", &healthy_corps(), "msgfile")
        .env("WEWORK_MSGAUDIT__DATABASE__URL", "mysql://root:wrongpw@127.0.0.1:1/x");
    let mut s = s;
    s.forbidden.push("wrongpw".into());
    let run = s.doctor(&[]);
    run.expect_code(1);
    run.check_lines();
    let db = run.line("FAIL  database: ");
    assert!(db.contains("mysql mysql://root:***@127.0.0.1:1/x"), "{db}");
    assert!(db.contains("refused"), "the cause is named: {db}");
    assert!(run.took < Duration::from_secs(20), "a refused connection fails at once: {:?}", run.took);
    assert!(run.line("skip  corps: ").contains("corplist"), "{}", run.stdout);
    run.line(&format!("ok    corp {GOOD}"));
}

#[test]
fn mariadb_is_ok_and_its_url_is_redacted() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some((url, admin, db)) = rt.block_on(async {
        match common::pipeline::fresh_mysql_database("wwdoc").await {
            Ok(found) => Some(found),
            Err(why) => {
                common::skip_or_fail("the MariaDB doctor test", &why);
                None
            }
        }
    }) else {
        return;
    };
    use sqlx::{Connection, Executor};
    let user = format!("wwdoc{}", std::process::id());
    let password = format!("doctor-db-pw-{}", std::process::id());
    let exec = |sql: String| {
        let admin = admin.clone();
        async move {
            let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
            c.execute(sql.as_str()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            c.close().await.unwrap();
        }
    };
    rt.block_on(async {
        for host in ["localhost", "%"] {
            exec(format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")).await;
            exec(format!("GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}'")).await;
        }
    });
    let with_password = with_userinfo(&url, &format!("{user}:{password}"));
    let mut s =
        Setup::new("emulator", &healthy_corps(), "msgfile").env("WEWORK_MSGAUDIT__DATABASE__URL", &with_password);
    s.forbidden.push(password.clone());
    // A Java-era corplist: without --fix doctor names the migration it needs and changes nothing.
    let java = with_userinfo(&url, &format!("{user}:{password}"));
    let columns = "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                   AND TABLE_NAME = 'corplist'";
    let tables = "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()";
    let count = |sql: &'static str| {
        let java = java.clone();
        async move {
            let mut c = sqlx::MySqlConnection::connect(&java).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
            c.close().await.unwrap();
            n
        }
    };
    rt.block_on(async {
        let mut c = sqlx::MySqlConnection::connect(&java).await.unwrap();
        c.execute("CREATE TABLE corplist (id INT AUTO_INCREMENT PRIMARY KEY, corpid VARCHAR(32) NOT NULL)")
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let run = s.doctor(&[]);
    let (cols_after, tables_after) = rt.block_on(async { (count(columns).await, count(tables).await) });
    let read_only = run.line("warn  database: ").to_string();
    assert!(read_only.contains("needs migration") && read_only.contains("ALTER TABLE corplist"), "{read_only}");
    assert!(read_only.contains("corp lease"), "the pending sqlx migrations are named: {read_only}");
    assert_eq!((cols_after, tables_after), (2, 1), "doctor without --fix changed the Java database");
    run.expect_code(0);
    let run = s.doctor(&["--fix"]);
    rt.block_on(async {
        for host in ["localhost", "%"] {
            exec(format!("DROP USER IF EXISTS '{user}'@'{host}'")).await;
        }
        exec(format!("DROP DATABASE IF EXISTS `{db}`")).await;
    });
    run.expect_code(0);
    let line = run.line("ok    database: ");
    assert!(line.contains(&format!("mysql {}", with_userinfo(&url, &format!("{user}:***")))), "{line}");
    assert!(line.contains("migrations applied"), "{line}");
}

/// `url` with its userinfo replaced by `userinfo`.
fn with_userinfo(url: &str, userinfo: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
    format!("{scheme}://{userinfo}@{}", &rest[host_start..])
}

/// The real SDK: `WWF_REAL_SDK`, else the copy scripts/setup.sh fetches.
fn real_sdk_path() -> Option<PathBuf> {
    let path = std::env::var_os("WWF_REAL_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/sdk/libWeWorkFinanceSdk_C_x86.so"));
    if path.is_file() {
        Some(path)
    } else {
        common::skip_or_fail(
            "the real-SDK doctor test",
            &format!("{} is missing (scripts/setup.sh fetches it)", path.display()),
        );
        None
    }
}

/// `unshare -n` (plus `-r` when not root): a new network namespace with no interface up. Checks
/// that it works and isolates before anything runs in it.
fn netns_prefix() -> Option<Vec<&'static str>> {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let prefix: Vec<&str> = if root { vec!["unshare", "-n", "--"] } else { vec!["unshare", "-r", "-n", "--"] };
    let probe = Command::new(prefix[0]).args(&prefix[1..]).args(["cat", "/proc/self/net/dev"]).output();
    match probe {
        Ok(out) if out.status.success() => {
            let dev = String::from_utf8_lossy(&out.stdout).into_owned();
            let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
            assert_eq!(ifaces, ["lo"], "unshare -n must leave only loopback: {dev}");
            Some(prefix)
        }
        Ok(out) => {
            common::skip_or_fail(
                "the real-SDK doctor test",
                &format!("unshare fails: {}", String::from_utf8_lossy(&out.stderr)),
            );
            None
        }
        Err(e) => {
            common::skip_or_fail("the real-SDK doctor test", &format!("no unshare: {e}"));
            None
        }
    }
}

#[test]
fn the_real_sdk_loads_through_doctor_in_an_isolated_network_namespace() {
    let Some(sdk) = real_sdk_path() else { return };
    let Some(prefix) = netns_prefix() else { return };
    let corps = vec![corp(GOOD, SECRET_GOOD, &[Key::Inline(1)])];
    let s = Setup::new(&sdk.display().to_string(), &corps, "msgfile");
    let run = s.run(s.command(&prefix, &[]));
    run.expect_code(0);
    run.check_lines();
    let line = run.line("ok    sdk: ");
    assert!(line.contains("all 17 functions resolved"), "{line}");
    assert!(line.contains("pyweworkfinance 1.1.0 x86-64 build"), "the known build is recognised: {line}");

    // --online: no network at all, so the token request fails (10001) within the corp's timeout
    // (3 s) + 10 s; whatever the SDK prints on stdout is captured, never mixed into the report.
    let run = s.run(s.command(&prefix, &["--online"]));
    run.expect_code(1);
    run.check_lines();
    let line = run.line(&format!("FAIL  corp {GOOD}"));
    assert!(line.contains("GetChatData returned 10001"), "{line}");
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
}
