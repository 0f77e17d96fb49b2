//! Why the daemon never links libavformat, kept as tests: Debian's libavformat pulls in C++
//! libraries (libopenmpt, libchromaprint, libsrt) whose static initialisers set up the system
//! libstdc++'s locale, and the vendor SDK — which carries its own static libstdc++ — then aborts
//! while being loaded ("free(): invalid pointer" in `std::locale::_Impl::_M_install_facet`), with or
//! without RTLD_DEEPBIND. This binary links libavformat on purpose; the SDK contract tests live in
//! another binary that does not.

mod common;

use wework_msgaudit::sdk::dynlib::VendorSdk;

/// The daemon binary must not depend on libavformat (nor on the C++ libraries it drags in): with
/// them in the process the vendor SDK aborts while loading (see `common::link_ffmpeg_like_the_daemon`).
#[test]
fn the_daemon_binary_does_not_link_libavformat() {
    let out = std::process::Command::new("ldd").arg(env!("CARGO_BIN_EXE_wework-msgaudit")).output().expect("run ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    for lib in ["libavformat", "libopenmpt", "libchromaprint", "libsrt"] {
        assert!(!text.contains(lib), "the daemon links {lib}:\n{text}");
    }
}

/// Characterises the vendor bug behind that rule: a process that has loaded libavformat aborts
/// when it loads the real SDK. Runs in a child process (the abort would kill this one).
#[test]
fn sdk_loading_after_libavformat_aborts() {
    let Some(path) = common::real_sdk("sdk_loading_after_libavformat_aborts") else { return };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_load_sdk_after_libavformat", "--ignored", "--nocapture", "--test-threads=1"])
        .env("WWF_CHILD_SDK", &path)
        .output()
        .expect("spawn child");
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "expected SIGABRT while loading the SDK after libavformat; got {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("free(): invalid pointer"), "{stderr}");
}

#[test]
#[ignore = "child process of sdk_loading_after_libavformat_aborts"]
fn child_load_sdk_after_libavformat() {
    let path = std::env::var_os("WWF_CHILD_SDK").expect("run by sdk_loading_after_libavformat_aborts");
    ffmpeg_next::init().expect("init libavformat");
    assert!(ffmpeg_next::format::version() > 0);
    let _ = VendorSdk::load(path);
}
