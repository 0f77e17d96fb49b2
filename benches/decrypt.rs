//! Per-record decryption cost: RSA-2048 (aws-lc-rs, PKCS#1 v1.5) of `encrypt_random_key` plus the
//! native `DecryptData`, on 300 B and 5 KB records; RSA alone; native alone (criterion).
//!
//! Then, in the same run, the yardsticks:
//! - `openssl speed -elapsed -seconds 3 rsa2048` private-key ops/s (`sign/s`, one thread), and
//!   `ratio records/s ÷ openssl rsa2048 private ops/s` for one thread (goal ≥ 0.9);
//! - ARCHITECTURE.md decision 16: aws-lc-rs RSA-2048 decryptions/s with as many threads as cores (the
//!   decrypt pool), and records/s with the same threads ÷ that ceiling.
//!
//! Runs in about a minute: `cargo bench --bench decrypt`.

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use wework_msgaudit::crypto::{decrypt_record, native, parse_private_key, Keyring};

const VER: u32 = 1;
/// Records per pool: different keys and layouts, as in a real page of records.
const POOL: usize = 64;
/// Length of each hand-timed throughput measurement.
const RATE_TIME: Duration = Duration::from_secs(3);

/// One record as `GetChatData` returns it, plus the RSA-decrypted key for the native-only bench.
struct Rec {
    encrypt_random_key: String,
    encrypt_chat_msg: String,
    encrypt_key: String,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn plaintext(len: usize, seed: usize) -> Vec<u8> {
    let head = format!(
        "{{\"msgid\":\"{seed}_1700000000000\",\"action\":\"send\",\"from\":\"zhangsan\",\
         \"tolist\":[\"lisi\"],\"roomid\":\"\",\"msgtime\":1700000000000,\"msgtype\":\"text\",\
         \"text\":{{\"content\":\""
    );
    let mut s = head.into_bytes();
    while s.len() + 3 < len {
        s.extend_from_slice("会话内容存档 archive ".as_bytes());
    }
    s.truncate(len.saturating_sub(3));
    while std::str::from_utf8(&s).is_err() {
        s.pop();
    }
    s.extend_from_slice(b"\"}}");
    s
}

fn records(len: usize) -> Vec<Rec> {
    let pem = String::from_utf8(fixture("rsa2048.pkcs8.pem")).expect("PEM is text");
    let der = emulator::codec::pem_to_der(&pem).expect("PEM");
    let public = emulator::codec::public_key_from_pkcs8_der(&der).expect("public key");
    (0..POOL)
        .map(|i| {
            let sealed = emulator::codec::seal(&plaintext(len, i), i as u64);
            Rec {
                encrypt_random_key: emulator::codec::rsa_encrypt(&public, &sealed.encrypt_key).expect("RSA encrypt"),
                encrypt_chat_msg: sealed.encrypt_chat_msg,
                encrypt_key: sealed.encrypt_key,
            }
        })
        .collect()
}

fn keyring() -> Keyring {
    let mut ring = Keyring::default();
    ring.insert(VER, parse_private_key(&fixture("rsa2048.pkcs8.pem")).expect("key"));
    ring
}

fn record(ring: &Keyring, r: &Rec) -> Vec<u8> {
    decrypt_record(ring, VER, &r.encrypt_random_key, &r.encrypt_chat_msg).expect("decrypts")
}

fn rsa_only(ring: &Keyring, r: &Rec) -> usize {
    ring.decrypt_random_key(VER, &r.encrypt_random_key).expect("RSA").len()
}

fn native_only(r: &Rec) -> Vec<u8> {
    native::decrypt_data(r.encrypt_key.as_bytes(), r.encrypt_chat_msg.as_bytes()).expect("native")
}

fn criterion_benches(c: &mut Criterion, ring: &Keyring, small: &[Rec], large: &[Rec]) {
    let mut g = c.benchmark_group("decrypt");
    g.throughput(Throughput::Elements(1));
    for (name, recs) in [("300B", small), ("5KB", large)] {
        let mut i = 0;
        g.bench_function(format!("record rsa+native {name}"), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(record(ring, black_box(&recs[i])))
            })
        });
    }
    let mut i = 0;
    g.bench_function("rsa2048 aws-lc-rs only", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            black_box(rsa_only(ring, black_box(&small[i])))
        })
    });
    for (name, recs) in [("300B", small), ("5KB", large)] {
        let mut i = 0;
        g.bench_function(format!("native only {name}"), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                black_box(native_only(black_box(&recs[i])))
            })
        });
    }
    g.finish();
}

/// Operations per second of `op(i)` on `threads` threads for [`RATE_TIME`].
fn rate(threads: usize, op: impl Fn(usize) + Sync) -> f64 {
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, total) = (&op, &total);
            s.spawn(move || {
                let mut n = 0u64;
                let mut i = t;
                while start.elapsed() < RATE_TIME {
                    op(i % POOL);
                    i += 1;
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed -elapsed -seconds 3 rsa2048`: private-key (sign) operations per second.
fn openssl_rsa2048_private_ops() -> Result<f64, String> {
    let out = Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", "3", "rsa2048"])
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // OpenSSL 3:   "                  sign    verify    sign/s verify/s"
    //              "rsa 2048 bits 0.000630s 0.000018s   1586.3  54575.7"
    let header = text.lines().find(|l| l.contains("sign/s")).ok_or_else(|| format!("no sign/s column in: {text}"))?;
    let col = header.split_whitespace().position(|w| w == "sign/s").ok_or("no sign/s column")?;
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("rsa") && l.contains("2048"))
        .ok_or_else(|| format!("no rsa 2048 row in: {text}"))?;
    let values: Vec<&str> = row.split_whitespace().skip_while(|w| *w != "bits").skip(1).collect();
    values.get(col).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| format!("cannot parse {row:?}"))
}

fn main() {
    let ring = keyring();
    let small = records(300);
    let large = records(5 * 1024);
    // Sanity: every record decrypts to what was sealed.
    for (i, r) in small.iter().enumerate() {
        assert_eq!(record(&ring, r), plaintext(300, i));
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    criterion_benches(&mut c, &ring, &small, &large);
    c.final_summary();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n== throughput (hand-timed, {} s each) ==", RATE_TIME.as_secs());
    let st_small = rate(1, |i| {
        black_box(record(&ring, &small[i]));
    });
    let st_large = rate(1, |i| {
        black_box(record(&ring, &large[i]));
    });
    println!("records/s, 1 thread:        300 B {st_small:9.1}   5 KB {st_large:9.1}");

    match openssl_rsa2048_private_ops() {
        Ok(ossl) => {
            println!("openssl speed rsa2048 private ops/s (sign/s, 1 thread): {ossl:.1}");
            for (name, r) in [("300 B", st_small), ("5 KB", st_large)] {
                println!(
                    "ratio records/s ÷ openssl rsa2048 private ops/s = {:.2} (goal ≥ 0.9) [{name} records]",
                    r / ossl
                );
            }
        }
        Err(e) => println!("openssl speed unavailable ({e}): no ratio"),
    }

    let ceiling = rate(cores, |i| {
        black_box(rsa_only(&ring, &small[i]));
    });
    let mt_small = rate(cores, |i| {
        black_box(record(&ring, &small[i]));
    });
    let mt_large = rate(cores, |i| {
        black_box(record(&ring, &large[i]));
    });
    println!("aws-lc-rs RSA-2048 decryptions/s, {cores} threads (ceiling, ARCHITECTURE.md decision 16): {ceiling:.1}");
    println!("records/s, {cores} threads:       300 B {mt_small:9.1}   5 KB {mt_large:9.1}");
    println!(
        "records/s ÷ ceiling ({cores} threads) = {:.2} [300 B], {:.2} [5 KB]",
        mt_small / ceiling,
        mt_large / ceiling
    );
}
