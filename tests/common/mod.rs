//! Helpers shared by the integration tests: where the SDK libraries are, and the rules for
//! loading the real one; [`block_on`] and [`per_db!`] for the tests that run on each database;
//! `daemon` (the daemon binary as a child process) and `pipeline` (emulator scenarios, a test
//! database, the exact-ground-truth check).
//!
//! The integration binary (`tests/tests.rs`) declares this module first with `#[macro_use]`, so
//! `per_db!` is in scope in every test file; the test targets of their own and the benches include
//! this file by `mod common;` / `#[path]`.
#![allow(dead_code)]

/// One test per database for each `async fn(Db)` body named: a module `<test>` holding
/// `#[test] fn sqlite` (a SQLite temp file) and `#[test] fn mysql` (a fresh MariaDB database;
/// when MariaDB is unreachable a loud skip, and a failure under `CI=true`), so the tests are
/// `<file>::<test>::sqlite` and `<file>::<test>::mysql`.
///
/// `per_db!(body)` names the module after the body; `per_db!(test => body)` gives it another
/// name. `Db` is the `Db` the calling file has in scope: [`pipeline::Db`], or a file's own type
/// with `async fn sqlite() -> Db` and `async fn mysql() -> Option<Db>`. The body runs on an actix
/// System (a current-thread runtime on the test's thread, as the pipeline actors need); with
/// `tokio:` first, on a multi-threaded tokio runtime of 2 workers instead.
#[allow(unused_macros)]
macro_rules! per_db {
    (@one $rt:ident $test:ident) => {
        per_db!(@one $rt $test => $test);
    };
    (@one actix $test:ident => $body:ident) => {
        mod $test {
            use super::*;

            #[test]
            fn sqlite() {
                $crate::common::block_on(async { super::$body(Db::sqlite().await).await });
            }

            #[test]
            fn mysql() {
                $crate::common::block_on(async {
                    if let Some(db) = Db::mysql().await {
                        super::$body(db).await;
                    }
                });
            }
        }
    };
    (@one tokio $test:ident => $body:ident) => {
        mod $test {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(Db::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                let Some(db) = Db::mysql().await else { return };
                super::$body(db).await;
            }
        }
    };
    (tokio: $($test:ident $(=> $body:ident)?),+ $(,)?) => {
        $(per_db!(@one tokio $test $(=> $body)?);)+
    };
    ($($test:ident $(=> $body:ident)?),+ $(,)?) => {
        $(per_db!(@one actix $test $(=> $body)?);)+
    };
}

pub mod cli_db;
pub mod daemon;
pub mod freshness;
pub mod pipeline;
pub mod review;
pub mod rss;

use std::path::{Path, PathBuf};
use std::sync::Once;

impl pipeline::Db {
    /// A fresh MariaDB database, or `None` after a loud SKIPPED banner when MariaDB is unreachable
    /// outside CI (a failure under `CI=true`).
    pub async fn mysql() -> Option<pipeline::Db> {
        match Self::try_mysql().await {
            Ok(db) => Some(db),
            Err(why) => {
                skip_or_fail("the MariaDB pipeline tests", &why);
                None
            }
        }
    }
}

/// Runs `f` to completion on an actix System: a current-thread runtime on the calling thread, on
/// which actors can be started (the pipeline's need one).
pub fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    actix_rt::System::new().block_on(f);
}

/// True when running under CI, where nothing that CI can provide may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Every file under `dir`, recursively; none when `dir` cannot be read.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The MD5 (lowercase hex) of a file, read in a stream.
pub fn md5_file(p: &Path) -> String {
    use md5::{Digest, Md5};
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Md5::new();
    std::io::copy(&mut f, &mut h).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints a drill's or an end-to-end run's summary line on stderr and appends it to the file
/// named by `WWF_TEST_SUMMARY` (scripts/test.sh prints that file at the end, so that the lines
/// show in CI's log although cargo captures the output of passing tests).
pub fn report(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("WWF_TEST_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        // One write per line on an O_APPEND file: lines of concurrent tests do not mix.
        let written = file.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("could not append the summary line to {}: {e}", Path::new(&path).display());
        }
    }
}

/// Skips a test loudly, or fails it under CI (`CI=true`).
pub fn skip_or_fail(what: &str, why: &str) {
    if in_ci() {
        panic!("CI=true but {what} cannot run: {why}");
    }
    eprintln!("\n\n!!!!! SKIPPED: {what}: {why} !!!!!\n(run scripts/test.sh, or see README: Testing)\n");
}

/// The emulator's drop-in `libWeWorkFinanceSdk_C.so`, built by cargo beside the test binaries
/// (the root crate depends on the emulator, so building the tests builds its cdylib too).
pub fn emulator_so() -> PathBuf {
    const NAME: &str = "libWeWorkFinanceSdk_C.so";
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    for candidate in [deps.join(NAME), deps.parent().map(|p| p.join(NAME)).unwrap_or_default()] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the emulator library {NAME} was not built next to {}; run `cargo build -p wework-emulator`",
        deps.display()
    );
}

/// The real vendor SDK named by `WWF_REAL_SDK` (scripts/test.sh downloads it from PyPI and checks
/// its sha256). `None` (with a loud skip) when it is not configured outside CI.
///
/// The real SDK dials qyapi.weixin.qq.com when no proxy is set, so it may only be loaded inside a
/// private network namespace with nothing but loopback: this panics anywhere else.
pub fn real_sdk(test: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os("WWF_REAL_SDK").map(PathBuf::from) else {
        skip_or_fail(test, "WWF_REAL_SDK is not set (path of the real libWeWorkFinanceSdk_C_x86.so)");
        return None;
    };
    assert!(path.is_file(), "WWF_REAL_SDK={} is not a file", path.display());
    assert_network_isolated();
    Some(path)
}

/// Panics unless the only network interface is loopback (a private namespace, `unshare -n`).
pub fn assert_network_isolated() {
    // /proc/self/net/dev lists the interfaces of this process's namespace (/sys/class/net shows
    // the namespace that mounted sysfs, not ours).
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("read /proc/self/net/dev");
    let ifaces: Vec<String> =
        dev.lines().skip(2).filter_map(|l| l.split(':').next().map(|n| n.trim().to_string())).collect();
    assert!(
        ifaces.iter().all(|i| i == "lo"),
        "refusing to load the real SDK outside a loopback-only network namespace (interfaces: {ifaces:?}); \
         run the tests through scripts/test.sh, which uses `unshare -n`"
    );
}

/// Brings into the process what the daemon has there beside the SDK: FFmpeg's libavcodec (through
/// ffmpeg-next's codec API, as the transcoder uses it: never libavformat, see below) with its
/// libstdc++, and the system libssl/libcrypto loaded globally (as any host library linking OpenSSL
/// would), all before any SDK is loaded (sdk-facts.md §2). Returns the shared objects of interest
/// that are now mapped.
///
/// Why not libavformat: Debian's libavformat pulls in C++ libraries (libopenmpt, libchromaprint,
/// libsrt) whose static initialisers set up the system libstdc++'s locale; the vendor SDK's own
/// static libstdc++ then aborts in `std::locale::_Impl::_M_install_facet` ("free(): invalid
/// pointer") while it is being loaded, with or without RTLD_DEEPBIND (measured here; see
/// `sdk_loading_after_libavformat_aborts`). The daemon therefore never references libavformat.
pub fn link_ffmpeg_like_the_daemon() -> Vec<String> {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let amr = ffmpeg_next::codec::decoder::find(ffmpeg_next::codec::Id::AMR_NB);
        let mp3 = ffmpeg_next::codec::encoder::find(ffmpeg_next::codec::Id::MP3);
        assert!(amr.is_some() && mp3.is_some(), "FFmpeg has an AMR-NB decoder and an MP3 encoder");
        for lib in ["libcrypto.so.3", "libssl.so.3"] {
            wework_msgaudit::sdk::dynlib::open_global(lib).expect("load the system OpenSSL");
        }
    });
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|p| Path::new(p).file_name().map(|f| f.to_string_lossy().into_owned()))
        .filter(|f| ["libssl", "libcrypto", "libavcodec", "libavformat", "libstdc++"].iter().any(|p| f.starts_with(p)))
        .collect();
    libs.sort();
    libs.dedup();
    libs
}
