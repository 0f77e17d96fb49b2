//! The performance ceiling of ARCHITECTURE.md decision 16, shared by the benchmarks: aws-lc-rs
//! RSA-2048 PKCS#1 v1.5 decryptions per second on a number of threads, through the keyring's own
//! path, measured in the same run as the benchmark it scales.
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wework_msgaudit::crypto::{parse_private_key, Keyring};

/// Length of the ceiling measurement.
pub const CEILING_TIME: Duration = Duration::from_secs(5);

/// aws-lc-rs RSA-2048 PKCS#1 v1.5 decryptions/s on `threads` threads (the keyring's own path).
pub fn rsa_ceiling(threads: usize) -> f64 {
    let mut ring = Keyring::new();
    for ver in 1..=3 {
        ring.insert(
            ver,
            parse_private_key(emulator::demo_private_key_pem(ver).expect("demo key").as_bytes()).expect("key"),
        );
    }
    let pem = emulator::demo_private_key_pem(1).expect("demo key");
    let der = emulator::codec::pem_to_der(pem).expect("PEM");
    let public = emulator::codec::public_key_from_pkcs8_der(&der).expect("public key");
    let wrapped: Vec<String> =
        (0..64).map(|i| emulator::codec::rsa_encrypt(&public, &format!("{i:032x}")).expect("RSA encrypt")).collect();
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ring, wrapped, total) = (&ring, &wrapped, &total);
            s.spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < CEILING_TIME {
                    let w = &wrapped[(t + n as usize) % wrapped.len()];
                    black_box(ring.decrypt_random_key(1, black_box(w)).expect("RSA decrypts"));
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
