//! Contract tests of the SDK binding, run against the REAL vendor library and against the
//! emulator's drop-in `.so`, both loaded by path through the same libloading code as production.
//!
//! This test binary links FFmpeg (ffmpeg-next's codec API, libavcodec + libstdc++) like the daemon,
//! and has the system libssl/libcrypto loaded globally, before any SDK is loaded, to prove the
//! vendor library works beside them (it is opened with RTLD_DEEPBIND). It does not link
//! libavformat: see `tests/sdk_vs_libavformat.rs` for why the daemon must not either.
//!
//! The real SDK is only loaded inside a loopback-only network namespace (scripts/test.sh runs the
//! suite under `unshare -n`); `common::real_sdk` refuses otherwise, and under CI=true a missing
//! real SDK fails the test instead of skipping it.

use crate::common;

use std::time::{Duration, Instant};

use emulator::codec;
use wework_msgaudit::crypto::{self, keyring::Keyring, native};
use wework_msgaudit::sdk::{dynlib::VendorSdk, FinanceSdk, NetOptions, SdkCode, SdkError, SdkTimeout};
use wework_msgaudit::secret::Secret;

/// Which library a test runs against.
#[derive(Clone, Copy, Debug)]
enum Peer {
    Real,
    Emulator,
}

fn load(peer: Peer, test: &str) -> Option<VendorSdk> {
    let mapped = common::link_ffmpeg_like_the_daemon();
    for lib in ["libavcodec", "libstdc++", "libssl", "libcrypto"] {
        assert!(mapped.iter().any(|m| m.starts_with(lib)), "{lib} should be mapped before the SDK: {mapped:?}");
    }
    let path = match peer {
        Peer::Real => common::real_sdk(test)?,
        Peer::Emulator => common::emulator_so(),
    };
    Some(VendorSdk::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display())))
}

fn both(test: &str, f: impl Fn(Peer, &VendorSdk)) {
    for peer in [Peer::Emulator, Peer::Real] {
        if let Some(sdk) = load(peer, test) {
            f(peer, &sdk);
        }
    }
}

#[test]
fn missing_file_and_missing_symbol_are_named() {
    let err = VendorSdk::load("/nonexistent/libWeWorkFinanceSdk_C.so").unwrap_err();
    assert!(matches!(err, SdkError::Load { .. }));
    assert!(err.to_string().contains("/nonexistent/libWeWorkFinanceSdk_C.so"), "{err}");
    // A real shared library that is not the SDK: libavcodec (mapped by FFmpeg already).
    common::link_ffmpeg_like_the_daemon();
    let avcodec = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .find(|p| p.contains("libavcodec"))
        .expect("libavcodec is mapped");
    let err = VendorSdk::load(&avcodec).unwrap_err();
    match &err {
        SdkError::MissingSymbol { symbol, .. } => assert_eq!(*symbol, "NewSdk"),
        other => panic!("expected MissingSymbol, got {other:?}"),
    }
    assert!(err.to_string().contains("symbol `NewSdk` is missing"), "{err}");
}

#[test]
fn init_accepts_bogus_values_and_rejects_empty_ones() {
    both("init_accepts_bogus_values_and_rejects_empty_ones", |peer, sdk| {
        assert_eq!(sdk.raw_init_code("wwbogus0000000000", "bogus-secret").unwrap(), 0, "{peer:?}");
        assert_eq!(sdk.raw_init_code("", "bogus-secret").unwrap(), 10000, "{peer:?}");
        assert_eq!(sdk.raw_init_code("wwbogus0000000000", "").unwrap(), 10000, "{peer:?}");
        // Through the safe API, an empty corpid never reaches the SDK.
        let err = sdk.open("", &Secret::new("x")).err().expect("refused");
        assert!(matches!(err, SdkError::InvalidInput { .. }), "{peer:?}: {err:?}");
    });
}

#[test]
fn get_chat_data_offline_is_a_typed_network_error_within_the_timeout() {
    both("get_chat_data_offline_is_a_typed_network_error_within_the_timeout", |peer, sdk| {
        let mut session = sdk.open("wwbogus0000000000", &Secret::new("bogus-secret")).expect("open");
        let net = NetOptions { timeout: SdkTimeout::from_secs(2), ..NetOptions::default() };
        let started = Instant::now();
        let err = session.get_chat_data(0, 10, &net).expect_err("no network, no corp");
        let took = started.elapsed();
        assert_eq!(err.code(), Some(SdkCode::Network), "{peer:?}: {err:?}");
        assert!(err.is_retryable());
        assert!(took <= Duration::from_secs(2 + 11), "{peer:?}: took {took:?}");
        eprintln!("{peer:?}: offline GetChatData -> {err} in {took:?}");
    });
}

#[test]
fn limit_outside_1_to_1000_is_a_bad_argument() {
    both("limit_outside_1_to_1000_is_a_bad_argument", |peer, sdk| {
        let mut session = sdk.open("wwbogus0000000000", &Secret::new("bogus-secret")).expect("open");
        let net = NetOptions { timeout: SdkTimeout::from_secs(1), ..NetOptions::default() };
        for limit in [0, 1001, u32::MAX] {
            let err = session.get_chat_data(0, limit, &net).expect_err("bad limit");
            assert_eq!(err.code(), Some(SdkCode::BadArgument), "{peer:?} limit {limit}: {err:?}");
        }
    });
}

/// Plaintexts of every shape: every record of the emulator's demo corp (all msgtypes), plus
/// sizes from 0 B to 1 MB of Chinese, emoji, control characters and binary-ish text.
fn corpus() -> Vec<Vec<u8>> {
    let demo = emulator::Emulator::demo();
    let mut out: Vec<Vec<u8>> =
        demo.truth(emulator::DEMO_CORPID).into_iter().map(|r| r.plaintext.into_bytes()).collect();
    assert!(out.len() >= 300, "demo corp has {} records", out.len());
    let alphabet: Vec<char> = "会话内容存档企业微信😀🎉👍 abcXYZ019\u{1}\u{1f}\"\\{}\n\t".chars().collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sizes: Vec<usize> = (0..=48).collect();
    sizes.extend([63, 64, 65, 255, 256, 257, 1000, 4096, 65_536, 300_000, 1_000_000]);
    while out.len() + sizes.len() < 1_100 {
        sizes.push((next() % 20_000) as usize);
    }
    for size in sizes {
        let mut s = String::with_capacity(size + 4);
        while s.len() < size {
            s.push(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        out.push(s.into_bytes());
    }
    out
}

#[test]
fn native_decryption_equals_the_sdk_byte_for_byte() {
    both("native_decryption_equals_the_sdk_byte_for_byte", |peer, sdk| {
        let corpus = corpus();
        let mut max = 0;
        for (i, plaintext) in corpus.iter().enumerate() {
            let sealed = codec::seal(plaintext, i as u64 + 1);
            let by_sdk = sdk
                .decrypt_data(&sealed.encrypt_key, &sealed.encrypt_chat_msg)
                .unwrap_or_else(|e| panic!("{peer:?} record {i}: {e}"));
            let by_native = native::decrypt_data(sealed.encrypt_key.as_bytes(), sealed.encrypt_chat_msg.as_bytes())
                .unwrap_or_else(|e| panic!("native record {i}: {e}"));
            assert_eq!(by_sdk, by_native, "{peer:?} record {i} ({} bytes)", plaintext.len());
            assert_eq!(&by_native, plaintext, "record {i}");
            max = max.max(plaintext.len());
        }
        assert!(corpus.len() >= 1000 && max >= 1_000_000);
        eprintln!("{peer:?}: {} records (0 B to {max} B) decrypted identically", corpus.len());
    });
}

/// The records as the server would send them: RSA-encrypted keys, through the keyring first.
#[test]
fn records_pulled_from_the_emulator_decrypt_identically_after_rsa() {
    let emu = emulator::Emulator::demo();
    let mut keyring = Keyring::default();
    for ver in 1..=3 {
        keyring.insert(
            ver,
            crypto::keys::parse_private_key(emulator::demo_private_key_pem(ver).unwrap().as_bytes()).unwrap(),
        );
    }
    let sdk = wework_msgaudit::sdk::emulated::EmulatedSdk::new(std::sync::Arc::new(emu));
    let mut session = sdk.open(emulator::DEMO_CORPID, &Secret::new(emulator::DEMO_SECRET)).unwrap();
    let page = session.get_chat_data(0, 1000, &NetOptions::default()).unwrap();
    assert!(page.records.len() >= 300);
    let truth = sdk.emulator().truth(emulator::DEMO_CORPID);
    both("records_pulled_from_the_emulator_decrypt_identically_after_rsa", |peer, vendor| {
        for record in &page.records {
            let t = truth.iter().find(|t| t.seq == record.seq).expect("truth for every seq");
            if t.corrupt {
                continue;
            }
            let key = keyring.decrypt_random_key(record.publickey_ver, &record.encrypt_random_key).unwrap();
            let by_sdk = vendor.decrypt_data(&key, &record.encrypt_chat_msg).unwrap();
            let by_native = native::decrypt_data(key.as_bytes(), record.encrypt_chat_msg.as_bytes()).unwrap();
            assert_eq!(by_sdk, by_native, "{peer:?} seq {}", record.seq);
            assert_eq!(by_native, t.plaintext.as_bytes(), "seq {}", record.seq);
        }
    });
}

#[test]
fn inputs_that_crash_the_sdk_never_reach_it() {
    both("inputs_that_crash_the_sdk_never_reach_it", |peer, sdk| {
        let good = codec::seal("会话内容存档".as_bytes(), 7);
        let truncated: String = good.encrypt_chat_msg.chars().take(good.encrypt_chat_msg.len() / 2).collect();
        let long_msg = "A".repeat(200);
        let cases: Vec<(&str, &str)> = vec![
            ("=", &long_msg),
            ("==", &long_msg),
            ("A==", &long_msg),
            ("====", &long_msg),
            (&good.encrypt_key, "short"),
            (&good.encrypt_key, "123456789012"),
            (&good.encrypt_key, &truncated),
            (&good.encrypt_key, ""),
            ("", &good.encrypt_chat_msg),
        ];
        for (key, msg) in &cases {
            let err = sdk.decrypt_data(key, msg).expect_err("refused");
            assert!(matches!(err, SdkError::InvalidInput { call: "DecryptData", .. }), "{peer:?} {key:?}: {err:?}");
        }
        // Still alive, and the SDK still works.
        assert_eq!(sdk.decrypt_data(&good.encrypt_key, &good.encrypt_chat_msg).unwrap(), "会话内容存档".as_bytes());
        // A NULL MediaData cannot be expressed; a garbage sdkfileid is refused before the call.
        let mut session = sdk.open("wwbogus0000000000", &Secret::new("s")).unwrap();
        let err = session.get_media_chunk("../../etc/passwd", "", &NetOptions::default()).unwrap_err();
        assert!(matches!(err, SdkError::InvalidInput { .. }), "{peer:?}: {err:?}");
    });
}

#[test]
fn emulator_so_exports_exactly_the_c_api() {
    // The drop-in replacement must export the vendor's 17 functions and nothing else.
    let so = common::emulator_so();
    let out = std::process::Command::new("nm").args(["-D", "--defined-only"]).arg(&so).output().expect("run nm");
    assert!(out.status.success(), "nm failed on {}", so.display());
    let mut exported: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("T"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    exported.sort();
    let mut expected: Vec<String> = wework_msgaudit::sdk::dynlib::SYMBOLS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(exported, expected);
    // The real library exports the same 17 (among its ~17,000 OpenSSL/curl/protobuf symbols).
    if let Some(real) = load(Peer::Real, "emulator_so_exports_exactly_the_c_api") {
        let out =
            std::process::Command::new("nm").args(["-D", "--defined-only"]).arg(real.path()).output().expect("run nm");
        let text = String::from_utf8_lossy(&out.stdout);
        for symbol in &expected {
            assert!(text.lines().any(|l| l.ends_with(&format!(" T {symbol}"))), "real SDK lacks {symbol}");
        }
    }
}
