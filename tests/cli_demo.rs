//! `wework-msgaudit demo` as a user runs it: the binary, the in-process emulator and through the
//! emulator's `.so`; every record of the demo corp is decrypted and every msgtype shows up.

mod common;

use std::process::Command;

const MSGTYPES: [&str; 32] = [
    "text",
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice",
    "video",
    "card",
    "location",
    "emotion",
    "file",
    "link",
    "weapp",
    "chatrecord",
    "todo",
    "vote",
    "collect",
    "redpacket",
    "external_redpacket",
    "meeting",
    "docmsg",
    "markdown",
    "news",
    "calendar",
    "mixed",
    "meeting_voice_call",
    "voip_doc_share",
    "sphfeed",
    "voiptext",
    "qydiskfile",
    "future_type",
    "switch",
];

fn run_demo(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["demo", "--show", "5"])
        .args(extra)
        .output()
        .expect("run wework-msgaudit demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn assert_complete(stdout: &str) {
    let summary = stdout.lines().last().expect("a summary line");
    // "300 records pulled up to seq 300 (300 decrypted, 0 undecryptable); ..."
    let numbers: Vec<u64> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(numbers.len() >= 4, "{summary}");
    let (records, last_seq, decrypted, failed) = (numbers[0], numbers[1], numbers[2], numbers[3]);
    assert!(records >= 300, "{summary}");
    assert_eq!(records, last_seq, "every seq once: {summary}");
    assert_eq!(decrypted, records, "{summary}");
    assert_eq!(failed, 0, "{summary}");
    for msgtype in MSGTYPES {
        assert!(stdout.lines().any(|l| l.split_whitespace().next() == Some(msgtype)), "{msgtype} missing:\n{stdout}");
    }
}

#[test]
fn demo_in_process_decrypts_every_record_of_every_msgtype() {
    assert_complete(&run_demo(&[]));
}

#[test]
fn demo_through_the_emulator_so() {
    let so = common::emulator_so();
    let stdout = run_demo(&["--sdk", so.to_str().unwrap()]);
    assert!(stdout.contains(&format!("vendor:{}", so.display())), "{stdout}");
    assert_complete(&stdout);
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
