//! Private-key parsing, redaction, the keyring and `decrypt_record` end to end.

use crate::crypto_support;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use crypto_support::{fixture, rsa_encrypt_b64, SplitMix};
use wework_msgaudit::crypto::{decrypt_record, parse_private_key, CryptoError, KeyError, Keyring, PrivateKey};

const FORMS_2048: &[&str] = &[
    "rsa2048.pkcs8.pem",
    "rsa2048.pkcs1.pem",
    "rsa2048.pkcs8.der",
    "rsa2048.pkcs1.der",
    "rsa2048.pkcs8.body.b64",
    "rsa2048.pkcs1.body.b64",
    "rsa2048.pkcs8.oneline.b64",
    "rsa2048.pkcs1.json-escaped.txt",
    "rsa2048.pkcs8.crlf-indented.pem",
];

fn key2048() -> PrivateKey {
    parse_private_key(&fixture("rsa2048.pkcs8.pem")).unwrap()
}

fn key1024() -> PrivateKey {
    parse_private_key(&fixture("rsa1024.pkcs8.pem")).unwrap()
}

/// A different RSA-2048 key: the emulator's public demo key v1.
fn other2048() -> PrivateKey {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/lib/emulator/keys/DEMO-ONLY-v1.pem");
    parse_private_key(&std::fs::read(path).unwrap()).unwrap()
}

/// The key material of an input: its base64 body (header lines dropped) and the hex of its DER.
fn secret_windows(input: &[u8]) -> Vec<String> {
    const W: usize = 9;
    let mut texts = Vec::new();
    if let Ok(s) = std::str::from_utf8(input) {
        let body: String = s
            .split(['\n', '\r'])
            .filter(|l| !l.contains("-----"))
            .flat_map(|l| l.split("\\n"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("");
        texts.push(body);
    }
    texts.push(STANDARD.encode(input));
    texts.push(input.iter().map(|b| format!("{b:02x}")).collect());
    let mut out = Vec::new();
    for t in texts {
        let chars: Vec<char> = t.chars().collect();
        for w in chars.windows(W) {
            let w: String = w.iter().collect();
            // Skip windows that are plain words/labels rather than key material.
            if w.chars().all(|c| c.is_ascii_uppercase() || c == ' ' || c == '"') {
                continue;
            }
            out.push(w);
        }
    }
    out
}

fn assert_no_echo(input: &[u8], shown: &str) {
    for w in secret_windows(input) {
        assert!(!shown.contains(&w), "output {shown:?} echoes key material {w:?}");
    }
}

fn expect_err(input: &[u8]) -> KeyError {
    let err = parse_private_key(input).expect_err("input must be rejected");
    let shown = format!("{err} / {err:?} / {}", CryptoError::from(err.clone()));
    assert_no_echo(input, &shown);
    err
}

#[test]
fn every_form_of_the_2048_key_parses_to_the_same_public_key() {
    let spki = fixture("rsa2048.spki.der");
    for name in FORMS_2048 {
        let key = parse_private_key(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.public_key_der(), spki, "{name}");
        assert_eq!(key.bits(), 2048, "{name}");
        assert_eq!(key.backend_name(), "aws-lc-rs", "{name}");
        assert_eq!(key.fingerprint(), key2048().fingerprint(), "{name}");
    }
}

#[test]
fn mangled_pastes_parse() {
    let spki = fixture("rsa2048.spki.der");
    let pem1 = String::from_utf8(fixture("rsa2048.pkcs1.pem")).unwrap();
    let pem8 = String::from_utf8(fixture("rsa2048.pkcs8.pem")).unwrap();
    let body8 = String::from_utf8(fixture("rsa2048.pkcs8.oneline.b64")).unwrap();
    let variants: Vec<(&str, String)> = vec![
        ("single-line PEM", pem8.replace('\n', "")),
        ("spaces for newlines", pem1.replace('\n', " ")),
        ("single quotes", format!("'{pem8}'")),
        ("nested quotes and blanks", format!("  \"'{body8}'\"\n\n")),
        ("escaped \\r\\n", pem1.replace('\n', "\\r\\n")),
        ("double-escaped \\\\n", pem8.replace('\n', "\\\\n")),
        ("JSON \\/ escapes", format!("\"{}\"", body8.replace('/', "\\/"))),
        ("URL-safe alphabet", body8.replace('+', "-").replace('/', "_")),
        ("no padding", body8.trim_end_matches('=').to_owned()),
        ("tabs and CRLF", pem1.replace('\n', "\r\n\t")),
        (
            "preceded by a certificate-ish block",
            format!("{}\n{pem8}", String::from_utf8(fixture("rsa2048.public.pem")).unwrap()),
        ),
    ];
    for (what, text) in variants {
        let key = parse_private_key(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(key.public_key_der(), spki, "{what}");
    }
}

#[test]
fn small_key_falls_back_to_the_rsa_crate() {
    for name in ["rsa1024.pkcs8.pem", "rsa1024.pkcs1.pem"] {
        let key = parse_private_key(&fixture(name)).unwrap();
        assert_eq!(key.bits(), 1024);
        assert_eq!(key.backend_name(), "rsa");
        assert_eq!(key.public_key_der(), fixture("rsa1024.spki.der"));
        let b64 = rsa_encrypt_b64(&key.public_key_der(), b"hello fallback", 1);
        let pt = key.decrypt_pkcs1(&STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(&pt[..], b"hello fallback");
    }
}

#[test]
fn rejections_say_what_was_wrong_and_never_echo_the_key() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("encrypted PEM", fixture("rsa2048.encrypted.pkcs8.pem"), "encrypted private keys are not supported"),
        ("encrypted DER", fixture("rsa2048.encrypted.pkcs8.der"), "encrypted private keys are not supported"),
        ("public key", fixture("rsa2048.public.pem"), "public key, not a private key"),
        ("EC key", fixture("ec-p256.pkcs8.pem"), "not an RSA key"),
        ("512-bit key", fixture("rsa512.pkcs8.pem"), "key too small: 512 bits"),
        ("truncated DER", fixture("rsa2048.pkcs8.truncated.der"), "DER parse failed"),
        ("garbage text", fixture("garbage.txt"), "not base64"),
        ("garbage bytes", fixture("garbage.bin"), "neither DER nor UTF-8"),
        ("empty", Vec::new(), "empty"),
        ("only quotes", b" \"\" ".to_vec(), "empty"),
        (
            "PEM without END",
            {
                let pem = String::from_utf8(fixture("rsa2048.pkcs8.pem")).unwrap();
                pem.replace("-----END PRIVATE KEY-----", "").into_bytes()
            },
            "no matching END",
        ),
        (
            "base64 with a bad character",
            {
                let mut b = fixture("rsa2048.pkcs8.oneline.b64");
                b[700] = b'*';
                b
            },
            "not base64: invalid character at byte 700",
        ),
        (
            "base64 truncated mid-group",
            {
                let b = fixture("rsa2048.pkcs8.oneline.b64");
                b[..b.len() - 3].to_vec()
            },
            "not base64: invalid length",
        ),
        (
            "base64 of random bytes",
            STANDARD.encode(SplitMix(5).bytes(900)).into_bytes(),
            "neither PKCS#1 RSAPrivateKey nor PKCS#8",
        ),
        (
            "legacy encrypted PKCS#1",
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n".to_vec(),
            "encrypted private keys are not supported",
        ),
        (
            "OpenSSH key",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n".to_vec(),
            "unsupported PEM block `OPENSSH PRIVATE KEY`",
        ),
        ("bad escape", b"MIIE\\qAAA".to_vec(), "unexpected backslash escape"),
    ];
    for (what, input, expected) in cases {
        let err = expect_err(&input);
        let shown = err.to_string();
        assert!(shown.contains(expected), "{what}: expected {expected:?} in {shown:?}");
    }
}

#[test]
fn pkcs1_der_truncated_at_every_length_is_rejected_without_panic() {
    let der = fixture("rsa2048.pkcs1.der");
    for len in 0..der.len() {
        let _ = expect_err(&der[..len]);
    }
    let der8 = fixture("rsa2048.pkcs8.der");
    for len in (0..der8.len()).step_by(7) {
        let _ = expect_err(&der8[..len]);
    }
}

#[test]
fn a_flipped_component_is_rejected() {
    // Flip one bit in the middle of the private exponent: structurally fine DER, inconsistent key.
    let mut der = fixture("rsa2048.pkcs1.der");
    let n = der.len();
    der[n / 2] ^= 0x01;
    let err = expect_err(&der);
    assert!(matches!(err, KeyError::Rejected(_)), "{err}");
}

#[test]
fn debug_and_display_are_redacted() {
    let key = key2048();
    assert_eq!(format!("{key:?}"), "PrivateKey { bits: 2048, .. }");
    let shown = format!("{key} {key:?} {:?}", Arc::new(key1024()));
    assert!(shown.starts_with("RSA-2048 sha256:"), "{shown}");
    assert_no_echo(&fixture("rsa2048.pkcs8.pem"), &shown);
    assert_no_echo(&fixture("rsa1024.pkcs8.pem"), &shown);

    let mut ring = Keyring::new();
    ring.insert(1, key2048()).set_fallback(key1024());
    let shown = format!("{ring:?}");
    assert!(shown.contains(&key2048().fingerprint()), "{shown}");
    assert_no_echo(&fixture("rsa2048.pkcs8.pem"), &shown);
    assert_no_echo(&fixture("rsa1024.pkcs8.pem"), &shown);
}

#[test]
fn fingerprint_is_short_and_differs_between_keys() {
    let a = key2048().fingerprint();
    assert_eq!(a.len(), "sha256:".len() + 16);
    assert_ne!(a, key1024().fingerprint());
    assert_ne!(a, other2048().fingerprint());
}

#[test]
fn decrypt_pkcs1_checks_the_ciphertext_length() {
    let key = key2048();
    let err = key.decrypt_pkcs1(&[0u8; 255]).unwrap_err();
    assert!(matches!(err, CryptoError::CorruptCiphertext { .. }), "{err}");
    let err = key.decrypt_pkcs1(&[0u8; 256]).unwrap_err();
    assert_eq!(err, CryptoError::RsaDecrypt);
}

// ---- keyring ----------------------------------------------------------------------------------

fn random_key_text(seed: u64) -> String {
    // What the server RSA-encrypts: an 88-char base64 string.
    STANDARD.encode(SplitMix(seed).bytes(64))
}

#[test]
fn keyring_looks_up_the_version() {
    let k2048 = key2048();
    let k1024 = key1024();
    let (p2048, p1024) = (k2048.public_key_der(), k1024.public_key_der());
    let mut ring = Keyring::new();
    ring.insert(1, k2048).insert(7, k1024);
    assert_eq!(ring.versions(), vec![1, 7]);
    assert!(!ring.has_fallback());
    let t = random_key_text(1);
    assert_eq!(&*ring.decrypt_random_key(1, &rsa_encrypt_b64(&p2048, t.as_bytes(), 2)).unwrap(), &t);
    assert_eq!(&*ring.decrypt_random_key(7, &rsa_encrypt_b64(&p1024, t.as_bytes(), 3)).unwrap(), &t);
    // Line-wrapped base64 is fine too.
    let wrapped = rsa_encrypt_b64(&p2048, t.as_bytes(), 4)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(&*ring.decrypt_random_key(1, &wrapped).unwrap(), &t);
}

#[test]
fn keyring_uses_the_fallback_only_for_absent_versions() {
    let p2048 = key2048().public_key_der();
    let mut ring = Keyring::new();
    ring.insert(2, other2048()).set_fallback(key2048());
    let t = random_key_text(9);
    let erk = rsa_encrypt_b64(&p2048, t.as_bytes(), 10);
    // ver 5 is absent: the fallback decrypts it.
    assert_eq!(&*ring.decrypt_random_key(5, &erk).unwrap(), &t);
    // ver 2 is present with another key: WrongKey, the fallback is not tried.
    assert_eq!(ring.decrypt_random_key(2, &erk).unwrap_err(), CryptoError::WrongKey { ver: 2 });
}

#[test]
fn keyring_missing_version_and_wrong_key() {
    let mut ring = Keyring::new();
    let t = random_key_text(11);
    let erk = rsa_encrypt_b64(&key2048().public_key_der(), t.as_bytes(), 12);
    let err = ring.decrypt_random_key(3, &erk).unwrap_err();
    assert_eq!(err, CryptoError::MissingKeyVersion(3));
    assert_eq!(err.sdk_code(), Some(10007));
    assert!(err.to_string().contains("publickey_ver 3"), "{err}");

    ring.insert(3, other2048());
    // Padding fails for (almost) every wrong-key decryption; try several ciphertexts.
    for seed in 0..20 {
        let erk = rsa_encrypt_b64(&key2048().public_key_der(), t.as_bytes(), seed);
        let err = ring.decrypt_random_key(3, &erk).unwrap_err();
        assert!(matches!(err, CryptoError::WrongKey { ver: 3 } | CryptoError::RandomKeyNotText { ver: 3 }), "{err}");
        assert_eq!(err.sdk_code(), None);
    }
    // A key of another size: the ciphertext length does not match.
    ring.insert(4, key1024());
    let err = ring.decrypt_random_key(4, &erk).unwrap_err();
    assert!(matches!(err, CryptoError::CorruptCiphertext { .. }), "{err}");
}

#[test]
fn keyring_corrupt_ciphertext_and_non_text_plaintext() {
    let key = key2048();
    let pubder = key.public_key_der();
    let mut ring = Keyring::new();
    ring.insert(1, key);
    for bad in ["", "not base64!", "QUJD", "@@@@"] {
        let err = ring.decrypt_random_key(1, bad).unwrap_err();
        assert!(matches!(err, CryptoError::CorruptCiphertext { .. }), "{bad:?}: {err}");
    }
    // Decrypts fine but is not base64 text.
    for pt in [&b"hello world"[..], b"\x00\x01\x02", "中文".as_bytes()] {
        let err = ring.decrypt_random_key(1, &rsa_encrypt_b64(&pubder, pt, 1)).unwrap_err();
        assert_eq!(err, CryptoError::RandomKeyNotText { ver: 1 });
    }
}

#[test]
fn decrypt_record_end_to_end_with_the_emulator() {
    let der = emulator::codec::pem_to_der(&String::from_utf8(fixture("rsa2048.pkcs8.pem")).unwrap()).unwrap();
    let public = emulator::codec::public_key_from_pkcs8_der(&der).unwrap();
    let mut ring = Keyring::new();
    ring.insert(1, key2048());
    ring.set_fallback(key1024());
    let plaintext = "{\"msgid\":\"m1\",\"content\":\"你好 😀\"}".as_bytes();
    for seed in 0..10u64 {
        let sealed = emulator::codec::seal(plaintext, seed);
        let erk = emulator::codec::rsa_encrypt(&public, &sealed.encrypt_key).unwrap();
        let got = decrypt_record(&ring, 1, &erk, &sealed.encrypt_chat_msg).unwrap();
        assert_eq!(got, plaintext);
        // Fallback (1024-bit key, rsa crate) for an unknown version.
        let erk_small = rsa_encrypt_b64(&key1024().public_key_der(), sealed.encrypt_key.as_bytes(), seed);
        let got = decrypt_record(&ring, 99, &erk_small, &sealed.encrypt_chat_msg).unwrap();
        assert_eq!(got, plaintext);
        // A truncated message: a native error with its SDK code.
        let msg = &sealed.encrypt_chat_msg[..50];
        let err = decrypt_record(&ring, 1, &erk, msg).unwrap_err();
        assert_eq!(err.sdk_code(), Some(10005), "{err}");
        assert!(matches!(err, CryptoError::Native(_)));
    }
}

#[test]
fn keys_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PrivateKey>();
    assert_send_sync::<Keyring>();
}

#[test]
fn mutated_keys_never_panic_and_errors_never_echo_them() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let sources: Vec<Vec<u8>> = [
        "rsa2048.pkcs8.pem",
        "rsa2048.pkcs1.pem",
        "rsa2048.pkcs8.der",
        "rsa2048.pkcs1.der",
        "rsa2048.pkcs8.oneline.b64",
        "rsa2048.pkcs1.json-escaped.txt",
        "rsa1024.pkcs1.pem",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    // (source, [(position, operation, byte)]): flip a bit, overwrite, insert, delete, truncate.
    let strategy = (0..sources.len(), prop::collection::vec((any::<prop::sample::Index>(), 0u8..5, any::<u8>()), 1..4));
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    let result = runner.run(&strategy, |(src, ops)| {
        let mut input = sources[src].clone();
        for (at, op, byte) in ops {
            if input.is_empty() {
                break;
            }
            let i = at.index(input.len());
            match op {
                0 => input[i] ^= 1 << (byte % 8),
                1 => input[i] = byte,
                2 => input.insert(i, byte),
                3 => {
                    input.remove(i);
                }
                _ => input.truncate(i),
            }
        }
        if let Err(err) = parse_private_key(&input) {
            let shown = format!("{err} / {err:?}");
            for w in secret_windows(&input) {
                prop_assert!(!shown.contains(&w), "{shown:?} echoes {w:?}");
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
