//! Helpers shared by the integration tests: where the SDK libraries are, and the rules for
//! loading the real one.
#![allow(dead_code)]

pub mod daemon;
pub mod pipeline;

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
