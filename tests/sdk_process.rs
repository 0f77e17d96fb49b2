//! [`ProcessSdk`] against the emulator's drop-in `.so` run in `sdk-worker` children (the daemon's
//! own binary): the same answers as the library in-process, a crash that ends only the child
//! (restarted, handles reopened, counted per call site, quarantined at the limit), a hung call
//! cut off at its deadline, a file that is not the SDK refused at start. The lean worker binary
//! (`wework-msgaudit-sdk-worker`): run from a descriptor held open, so that a child started after
//! its file was replaced still runs the binary the daemon started with; named `sdk-worker`;
//! without FFmpeg's libraries; found beside the daemon's binary, or not used when unusable.
//!
//! The children are started through a wrapper script that names the scenario in their
//! environment (`WWF_EMULATOR_SCENARIO`), not in this process's: the tests of every file share the
//! process (tests/tests.rs), and the daemons of other tests must not see this scenario.

use crate::common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::process::{ProcessOptions, ProcessSdk};
use wework_msgaudit::sdk::{download_media, FinanceSdk, NetOptions, SdkError, SdkTimeout};
use wework_msgaudit::secret::Secret;

const GOOD: &str = "wwproc000000000001";
const CRASHES: &str = "wwproc000000000002";
const HANGS: &str = "wwproc000000000003";
const CRASH_SEQ: u64 = 30;

fn scenario_text(with_faults: bool) -> String {
    let pem = emulator::demo_private_key_pem(1).unwrap();
    let mut t = String::from("seed = 5\n");
    for (id, faults) in [
        (GOOD, String::new()),
        (CRASHES, format!("crash_seq = {CRASH_SEQ}\n")),
        (HANGS, format!("media_hang_seq = {}\n", hang_seq())),
    ] {
        t.push_str(&format!(
            "[[corp]]\ncorpid = \"{id}\"\nsecret = \"s-{id}\"\nrecords = 120\n\
             [[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n"
        ));
        if with_faults {
            t.push_str(&format!("[corp.faults]\n{faults}"));
        }
    }
    t
}

/// The emulator of the scenario without faults (ground truth), in-process.
fn truth() -> &'static emulator::Emulator {
    static T: OnceLock<emulator::Emulator> = OnceLock::new();
    T.get_or_init(|| emulator::Emulator::new(toml::from_str(&scenario_text(false)).unwrap()).unwrap())
}

/// The first record of HANGS with media (after seq 10).
fn hang_seq() -> u64 {
    static S: OnceLock<u64> = OnceLock::new();
    *S.get_or_init(|| {
        let pem = emulator::demo_private_key_pem(1).unwrap();
        let t = format!(
            "seed = 5\n[[corp]]\ncorpid = \"{HANGS}\"\nsecret = \"s\"\nrecords = 120\n\
             [[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n"
        );
        let emu = emulator::Emulator::new(toml::from_str(&t).unwrap()).unwrap();
        emu.truth(HANGS).into_iter().find(|r| r.seq > 10 && !r.media.is_empty()).unwrap().seq
    })
}

/// Writes the scenario and `worker.sh`, which starts the daemon binary with
/// `WWF_EMULATOR_SCENARIO` naming it (`exec`: the child is the daemon itself, same pid), once,
/// before any test of this file starts a process (every test calls this first).
fn setup() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, scenario_text(true)).unwrap();
        let worker = dir.path().join("worker.sh");
        std::fs::write(
            &worker,
            format!(
                "#!/bin/sh\nWWF_EMULATOR_SCENARIO='{}' exec '{}' \"$@\"\n",
                scenario.display(),
                env!("CARGO_BIN_EXE_wework-msgaudit")
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A child another test forked while the script was open for writing holds that fd until
        // it execs: running the script then fails with ETXTBSY. Once it ran, no such fd is left.
        for attempt in 1.. {
            match std::process::Command::new(&worker).arg("--help").output() {
                Ok(out) => {
                    assert!(out.status.success(), "{} --help: {out:?}", worker.display());
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 100 => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("run {}: {e}", worker.display()),
            }
        }
        dir
    })
}

fn sdk(opts: ProcessOptions) -> ProcessSdk {
    let worker = setup().path().join("worker.sh");
    ProcessSdk::start(common::emulator_so(), ProcessOptions { program: worker, ..opts }).unwrap()
}

fn secret(id: &str) -> Secret {
    Secret::new(format!("s-{id}"))
}

fn net(timeout: u64) -> NetOptions {
    NetOptions { timeout: SdkTimeout::from_secs(timeout), ..NetOptions::default() }
}

#[test]
fn answers_like_the_library_in_process() {
    let sdk = sdk(ProcessOptions::default());
    assert!(sdk.bounds_calls());
    assert!(sdk.describe().contains("sdk-worker"), "{}", sdk.describe());
    let inproc = EmulatedSdk::new(std::sync::Arc::new(
        emulator::Emulator::new(toml::from_str(&scenario_text(false)).unwrap()).unwrap(),
    ));
    let mut a = sdk.open(GOOD, &secret(GOOD)).unwrap();
    let mut b = inproc.open(GOOD, &secret(GOOD)).unwrap();
    for (seq, limit) in [(0, 50), (50, 50), (100, 50), (120, 10)] {
        let (pa, pb) = (a.get_chat_data(seq, limit, &net(5)).unwrap(), b.get_chat_data(seq, limit, &net(5)).unwrap());
        assert_eq!(pa.records.len(), pb.records.len(), "page after {seq}");
        for (x, y) in pa.records.iter().zip(&pb.records) {
            // encrypt_random_key differs on every pull (random PKCS#1 v1.5 padding).
            assert_eq!(
                (x.seq, &x.msgid, x.publickey_ver, &x.encrypt_chat_msg),
                (y.seq, &y.msgid, y.publickey_ver, &y.encrypt_chat_msg)
            );
        }
    }
    // Media, chunk by chunk through the child: byte-exact.
    let t = truth().truth(GOOD).into_iter().find(|r| !r.media.is_empty()).unwrap();
    let m = &t.media[0];
    let mut out = Vec::new();
    let n = download_media(a.as_mut(), &m.sdkfileid, &net(5), 0, &mut out).unwrap();
    assert_eq!(n, m.size);
    assert_eq!(out, truth().media_bytes(&m.sdkfileid).unwrap());
    // SDK codes come back as codes: a wrong secret is 10001 at the first call (Init never fails).
    let mut bad = sdk.open(GOOD, &Secret::new("wrong")).unwrap();
    let e = bad.get_chat_data(0, 10, &net(5)).unwrap_err();
    assert_eq!(e.code().map(|c| c.raw()), Some(10001), "{e}");
    // Inputs known to crash the SDK are refused before they reach the child.
    assert!(matches!(sdk.decrypt_data("==", "short"), Err(SdkError::InvalidInput { .. })));
}

#[test]
fn a_crash_ends_only_the_child_and_is_permanent_after_three_in_a_row() {
    let sdk = sdk(ProcessOptions::default());
    let mut poisoned = sdk.open(CRASHES, &secret(CRASHES)).unwrap();
    let mut good = sdk.open(GOOD, &secret(GOOD)).unwrap();
    assert_eq!(good.get_chat_data(0, 10, &net(5)).unwrap().records.len(), 10);
    let first = sdk.child_pid().expect("this thread's child runs");
    // The page before the poison is fine.
    assert_eq!(poisoned.get_chat_data(0, CRASH_SEQ as u32 - 1, &net(5)).unwrap().records.len(), 29);
    for n in 1..=3u32 {
        let started = sdk.children_started();
        let e = poisoned.get_chat_data(10, 50, &net(5)).unwrap_err();
        match &e {
            SdkError::Crashed { crashes, limit, how, at, .. } => {
                assert_eq!((*crashes, *limit), (n, 3), "{e}");
                assert!(how.contains("signal 6") && how.contains("SIGABRT"), "{how}");
                assert_eq!(at, "the page after seq 10");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.is_retryable(), n < 3, "{e}");
        assert!(e.needs_new_handle());
        assert_eq!(sdk.child_pid(), None, "the crashed child is gone");
        // The other corp's handle on the same thread: reopened in a new child, transparently.
        assert_eq!(good.get_chat_data(10, 10, &net(5)).unwrap().records[0].seq, 11);
        assert_eq!(sdk.children_started(), started + 1, "one new child for the next call");
        assert_ne!(sdk.child_pid(), Some(first));
    }
    assert!(e_text(&mut *poisoned).contains("crashed 3 times in a row at the page after seq 10"));
    // Quarantined: the poisonous call is not made again (no new child, no new crash).
    let started = sdk.children_started();
    let pid = sdk.child_pid();
    for _ in 0..3 {
        match poisoned.get_chat_data(10, 50, &net(5)).unwrap_err() {
            SdkError::Crashed { crashes: 3, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((sdk.children_started(), sdk.child_pid()), (started, pid));
    // Another page of the same corp is another call site.
    assert_eq!(poisoned.get_chat_data(0, 5, &net(5)).unwrap().records.len(), 5);
}

fn e_text(s: &mut dyn wework_msgaudit::sdk::SdkSession) -> String {
    s.get_chat_data(10, 50, &net(5)).unwrap_err().to_string()
}

#[test]
fn a_hung_call_is_cut_off_at_its_deadline_and_the_child_replaced() {
    let sdk = sdk(ProcessOptions { hang_grace: Duration::ZERO, ..ProcessOptions::default() });
    let mut s = sdk.open(HANGS, &secret(HANGS)).unwrap();
    let records = truth().truth(HANGS);
    let hung = records.iter().find(|r| r.seq == hang_seq()).unwrap();
    let other = records.iter().find(|r| r.seq > hang_seq() && !r.media.is_empty()).unwrap();
    let before = sdk.children_started();
    let t0 = Instant::now();
    let e = s.get_media_chunk(&hung.media[0].sdkfileid, "", &net(1)).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(&e, SdkError::Hung { call: "GetMediaData", .. }), "{e:?}");
    assert!(e.is_retryable() && e.needs_new_handle());
    // The deadline: timeout 1 s + the SDK's 10 s + no grace.
    assert!(took >= Duration::from_secs(11) && took < Duration::from_secs(20), "{took:?}");
    assert_eq!(sdk.child_pid(), None, "the hung child was killed");
    let mut out = Vec::new();
    download_media(s.as_mut(), &other.media[0].sdkfileid, &net(1), 0, &mut out).unwrap();
    assert_eq!(out, truth().media_bytes(&other.media[0].sdkfileid).unwrap());
    assert_eq!(sdk.children_started(), before + 1);
}

#[test]
fn a_file_that_is_not_the_sdk_is_refused_at_start() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libWeWorkFinanceSdk_C.so");
    std::fs::write(&fake, "not a library\n").unwrap();
    let opts = ProcessOptions { program: env!("CARGO_BIN_EXE_wework-msgaudit").into(), ..ProcessOptions::default() };
    match ProcessSdk::start(&fake, opts.clone()) {
        Err(SdkError::Load { path, reason }) => {
            assert!(path.ends_with("libWeWorkFinanceSdk_C.so"), "{path:?}");
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(ProcessSdk::start(dir.path().join("missing.so"), opts), Err(SdkError::Load { .. })));
}

/// The shared libraries mapped by process `pid` (distinct paths).
fn libraries(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .map(str::to_string)
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// The first page of the demo corp through `sdk` (the children have no scenario in their
/// environment, so the emulator `.so` serves its built-in demo), the pid of the child, and the
/// session, which keeps the child alive (it ends with the thread's last session).
fn demo_page(sdk: &ProcessSdk) -> (usize, u32, Box<dyn wework_msgaudit::sdk::SdkSession>) {
    let secret = Secret::new(emulator::DEMO_SECRET.to_string());
    let mut s = sdk.open(emulator::DEMO_CORPID, &secret).unwrap();
    let n = s.get_chat_data(0, 20, &net(5)).unwrap().records.len();
    (n, sdk.child_pid().unwrap(), s)
}

#[test]
fn the_lean_worker_runs_from_its_held_descriptor_and_outlives_an_upgrade_of_its_file() {
    use std::os::unix::fs::PermissionsExt as _;
    use wework_msgaudit::sdk::process::{HeldProgram, WORKER_BINARY};
    setup();
    // A hard link, not a copy: a copy is written through a descriptor that a child forked by
    // another test meanwhile would hold until its exec, and exec'ing the copy then fails with
    // ETXTBSY. The link is in the binary's directory (the same file system).
    let built = std::path::Path::new(env!("CARGO_BIN_EXE_wework-msgaudit-sdk-worker"));
    let dir = tempfile::tempdir_in(built.parent().unwrap()).unwrap();
    let bin = dir.path().join(WORKER_BINARY);
    std::fs::hard_link(built, &bin).unwrap();
    let held = std::sync::Arc::new(HeldProgram::open(&bin).unwrap());
    assert_eq!(held.path(), bin);
    let sdk =
        ProcessSdk::start(common::emulator_so(), ProcessOptions { held: Some(held), ..ProcessOptions::default() })
            .unwrap();
    let (n, pid, _session) = demo_page(&sdk);
    assert_eq!(n, 20, "a page of the demo corp");
    // The child is the lean binary, named for what it is, without the daemon's libraries.
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(), bin);
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sdk-worker");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(format!("{}\0sdk-worker\0--library\0", bin.display()).as_bytes()), "{cmdline:?}");
    let lean = libraries(pid);
    assert!(!lean.iter().any(|l| l.contains("libav") || l.contains("libswresample")), "{lean:#?}");
    // The same child from the daemon's binary, for comparison.
    let daemon_bin =
        ProcessOptions { program: env!("CARGO_BIN_EXE_wework-msgaudit").into(), ..ProcessOptions::default() };
    let fat_sdk = ProcessSdk::start(common::emulator_so(), daemon_bin).unwrap();
    let (_, fat_pid, _fat_session) = demo_page(&fat_sdk);
    let fat = libraries(fat_pid);
    assert!(fat.iter().any(|l| l.contains("libavcodec")), "{fat:#?}");
    assert!(lean.len() * 3 < fat.len(), "lean {} libraries, the daemon's binary {}", lean.len(), fat.len());

    // An upgrade replaces the file (a new inode renamed over it), here by one that would fail;
    // the held inode is cargo's binary, which stays where it is.
    let new = dir.path().join("new");
    std::fs::write(&new, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, &bin).unwrap();
    // A new thread gets a new child: exec'd from the held descriptor, the binary it started with.
    let (n2, pid2, exe2) = std::thread::scope(|s| {
        s.spawn(|| {
            let (n, pid, _session) = demo_page(&sdk);
            (n, pid, std::fs::read_link(format!("/proc/{pid}/exe")).unwrap())
        })
        .join()
        .unwrap()
    });
    assert_eq!(n2, 20);
    assert_ne!(pid2, pid, "a second child");
    assert_eq!(exe2.to_string_lossy(), format!("{} (deleted)", bin.display()), "the replaced inode");
    common::report(&format!(
        "lean sdk-worker: {} shared libraries mapped against {} for the daemon's binary; a child started after \
         its file was replaced runs the held binary",
        lean.len(),
        fat.len()
    ));
}

#[test]
fn the_daemon_finds_the_lean_worker_beside_its_binary_or_runs_itself() {
    use std::os::unix::fs::PermissionsExt as _;
    use wework_msgaudit::sdk::process::WORKER_BINARY;
    // Beside the daemon's binary as cargo builds it (target/<profile>/).
    let daemon = std::path::Path::new(env!("CARGO_BIN_EXE_wework-msgaudit"));
    let found = ProcessOptions::beside(daemon);
    assert_eq!(found.held.as_ref().map(|h| h.path().to_path_buf()), Some(daemon.with_file_name(WORKER_BINARY)));
    // Not installed: the daemon's own binary.
    let dir = tempfile::tempdir().unwrap();
    let alone = ProcessOptions::beside(&dir.path().join("wework-msgaudit"));
    assert!(alone.held.is_none());
    assert_eq!(alone.program, std::path::Path::new("/proc/self/exe"));
    // Installed but unusable (a script, or not executable): the daemon's own binary too.
    let worker = dir.path().join(WORKER_BINARY);
    std::fs::write(&worker, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(ProcessOptions::beside(&dir.path().join("wework-msgaudit")).held.is_none(), "a script");
    std::fs::copy(env!("CARGO_BIN_EXE_wework-msgaudit-sdk-worker"), &worker).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(ProcessOptions::beside(&dir.path().join("wework-msgaudit")).held.is_none(), "not executable");
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(ProcessOptions::beside(&dir.path().join("wework-msgaudit")).held.is_some(), "a copy of the real one");
}
