//! Media in an S3-compatible object store (`[media] backend = "s3"`), against `moto_server`
//! (PyPI `moto[server]`, installed by scripts/setup.sh) on loopback:
//! - a 40 MB file goes up in 5 MiB parts (the object's ETag says `-8`) while the process's peak
//!   memory grows by far less than the file; the object's bytes equal the file's;
//! - the daemon with the emulator stores every media item as an object whose key is `media_path`
//!   and whose MD5 is the emulator's, voice with its MP3 object; nothing stays under the local
//!   root; the S3 secret is never logged.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use wework_msgaudit::media::object_store::{ObjectStore, ObjectStoreSettings};
use wework_msgaudit::secret::Secret;

/// (msgid, item, status, path, transcoded_path, kind)
type MediaRow = (String, String, i64, Option<String>, Option<String>, String);

const S3_SECRET: &str = "s3-SeCrEt-9a7b6c5d4e";

/// `moto_server` on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto(bucket: &str) -> Option<Moto> {
    let port = common::daemon::free_port();
    // On PATH, or where scripts/setup.sh installs it.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/moto-venv/bin/moto_server");
    let program = if venv.exists() { venv.display().to_string() } else { "moto_server".to_string() };
    let child = match Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            common::skip_or_fail(
                "the S3 tests",
                &format!("moto_server cannot start ({e}); pip install 'moto[server]'"),
            );
            return None;
        }
    };
    let m = Moto { child, port };
    let until = Instant::now() + Duration::from_secs(60);
    // CreateBucket: PUT /<bucket> (moto does not check signatures).
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            write!(s, "PUT /{bucket} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                return Some(m);
            }
        }
        assert!(Instant::now() < until, "moto_server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn settings(port: u16, bucket: &str, prefix: &str) -> ObjectStoreSettings {
    ObjectStoreSettings {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: bucket.into(),
        region: String::new(),
        access_key_id: Secret::new("testing-key-id"),
        secret_access_key: Secret::new(S3_SECRET),
        prefix: prefix.into(),
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The two tests run one at a time: the peak resident memory that the first one measures is the
/// whole process's, and the other one reads objects of 12 MB into memory.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss() -> u64 {
    common::rss::peak_kb("self").expect("VmHWM of this process") * 1024
}

#[test]
fn a_40_mb_file_goes_up_in_parts_without_being_held_in_memory() {
    let _alone = one_at_a_time();
    let Some(m) = moto("bigfiles") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    // 40 MB of pseudo-random bytes, written 1 MiB at a time (never whole in memory).
    let mut f = std::fs::File::create(&path).unwrap();
    let mut md5 = Md5::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..40 {
        let chunk: Vec<u8> = (0..(1 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        md5.update(&chunk);
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let want_md5: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let store = ObjectStore::new(&settings(m.port, "bigfiles", "t/")).unwrap();
    common::rss::reset_peak().expect("reset VmHWM");
    let before = peak_rss();
    let key = store.key("corp/2026/11/29/big.bin");
    assert_eq!(key, "t/corp/2026/11/29/big.bin");
    assert_eq!(store.upload_file(&path, &key).unwrap(), 40 << 20);
    let grew = peak_rss().saturating_sub(before);
    let etag = store.etag(&key).unwrap().unwrap_or_default();
    eprintln!("40 MiB uploaded: ETag {etag}, peak RSS grew by {:.1} MiB", grew as f64 / 1048576.0);
    assert!(etag.trim_matches('"').ends_with("-8"), "multipart upload in 8 parts of 5 MiB: {etag}");
    assert!(grew < 25 << 20, "peak memory grew by {grew} bytes for a 40 MiB file");
    assert_eq!(md5_hex(&store.get(&key).unwrap()), want_md5);
    // Ranged reads (the review API streams media by ranges): the exact bytes, up to the end.
    assert_eq!(store.size(&key).unwrap(), 40 << 20);
    let mut f = std::fs::File::open(&path).unwrap();
    for (off, len) in [(0u64, 100u64), (12_345_678, 262_144), ((40 << 20) - 10, 10)] {
        let mut want = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut want).unwrap();
        assert_eq!(store.read_range(&key, off, len).unwrap(), want, "range {off}+{len}");
    }
    store.probe("test").unwrap();
    // The review API's media responses from the object store: 206 with the exact bytes.
    use wework_msgaudit::review::media::{serve, MediaSource};
    let source = MediaSource { root: dir.path().to_path_buf(), object_store: Some(std::sync::Arc::new(store)) };
    actix_rt::System::new().block_on(async {
        for (range, off, len) in [("bytes=1000-263143", 1000u64, 262_144u64), ("bytes=-300", (40 << 20) - 300, 300)] {
            let resp = serve(&source, "corp/2026/11/29/big.bin", "big.bin", Some(range)).await.unwrap();
            assert_eq!(resp.status().as_u16(), 206);
            let cr = format!("bytes {off}-{}/{}", off + len - 1, 40u64 << 20);
            assert_eq!(resp.headers().get("content-range").unwrap().to_str().unwrap(), cr);
            let body = actix_web::body::to_bytes(resp.into_body()).await.unwrap();
            let mut want = vec![0u8; len as usize];
            f.seek(SeekFrom::Start(off)).unwrap();
            f.read_exact(&mut want).unwrap();
            assert_eq!(body.as_ref(), want.as_slice(), "{range}");
        }
    });
}

#[test]
fn the_daemon_stores_media_as_objects() {
    let _alone = one_at_a_time();
    let Some(m) = moto("msgaudit") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const CORP: &str = "wws3corp0000000001";
    let pem = emulator::demo_private_key_pem(1).unwrap();
    std::fs::write(
        d.join("scenario.toml"),
        format!(
            "seed = 3\n[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"s\"\nrecords = 150\nbig_file_bytes = 12000000\n\
             [[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("v1.pem"), pem).unwrap();
    std::fs::write(
        d.join("corps.toml"),
        format!("[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\nfile = \"v1.pem\"\n"),
    )
    .unwrap();
    let db = d.join("s3.db");
    let root = d.join("msgfile");
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"emulator\"\n\
             [pull]\npoll_interval = \"200ms\"\n[corps]\ntable = false\nfile = \"{corps}\"\n\
             [media]\nroot = \"{root}\"\nsweep_interval = \"300ms\"\nbackend = \"s3\"\n\
             s3_endpoint = \"http://127.0.0.1:{port}\"\ns3_bucket = \"msgaudit\"\ns3_access_key_id = \"testing-key-id\"\n\
             s3_prefix = \"archive/\"\n[log]\nlevel = \"debug\"\n",
            db = db.display(),
            corps = d.join("corps.toml").display(),
            root = root.display(),
            port = m.port,
        ),
    )
    .unwrap();
    let mut daemon =
        common::daemon::Daemon::start(d, &config, 1, &[("WEWORK_MSGAUDIT__MEDIA__S3_SECRET_ACCESS_KEY", S3_SECRET)]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = format!("sqlite://{}", db.display());
    let q = |sql: String| {
        rt.block_on(async {
            let Ok(pool) = sqlx::SqlitePool::connect(&url).await else { return Vec::new() };
            let rows: Vec<MediaRow> = sqlx::query_as(&sql).fetch_all(&pool).await.unwrap_or_default();
            pool.close().await;
            rows
        })
    };
    let sql =
        format!("SELECT msgid, CAST(item AS TEXT), status, path, transcoded_path, kind FROM media_{CORP} ORDER BY id");
    let emu =
        emulator::Emulator::new(toml::from_str(&std::fs::read_to_string(d.join("scenario.toml")).unwrap()).unwrap())
            .unwrap();
    let truth: std::collections::HashMap<(String, String), String> = emu
        .truth(CORP)
        .iter()
        .filter(|t| !t.corrupt)
        .flat_map(|t| t.media.iter().map(|m| ((t.msgid.clone(), m.item.to_string()), m.md5.clone())))
        .collect();
    let expected = truth.len();
    let until = Instant::now() + Duration::from_secs(180);
    let rows = loop {
        daemon.alive();
        let rows = q(sql.clone());
        if rows.len() == expected && rows.iter().all(|r| r.2 == 3) {
            break rows;
        }
        assert!(Instant::now() < until, "media not all stored: {} of {expected} rows", rows.len());
        std::thread::sleep(Duration::from_millis(300));
    };
    let (status, _) = daemon.terminate(Duration::from_secs(60));
    assert!(status.success(), "{}", daemon.log());
    let store = ObjectStore::new(&settings(m.port, "msgaudit", "archive/")).unwrap();
    let mut voice_mp3 = 0;
    let mut big_parts = None;
    for (msgid, item, _, path, mp3, kind) in &rows {
        let key = path.as_deref().unwrap();
        assert!(key.starts_with(&format!("archive/{CORP}/")), "{key}");
        let bytes = store.get(key).unwrap_or_else(|e| panic!("{msgid} {kind}: {e}"));
        assert_eq!(&md5_hex(&bytes), &truth[&(msgid.clone(), item.clone())], "{key}: the emulator's bytes");
        if bytes.len() == 12_000_000 {
            big_parts = store.etag(key).unwrap();
        }
        if let Some(mp3) = mp3 {
            assert!(mp3.starts_with("archive/") && mp3.ends_with(".mp3"), "{mp3}");
            let audio = store.get(mp3).unwrap();
            assert!(audio.len() > 100, "{mp3}");
            voice_mp3 += 1;
        }
    }
    eprintln!(
        "{} media objects verified by MD5, {voice_mp3} MP3 objects; the 12 MB file's ETag {big_parts:?}",
        rows.len()
    );
    assert!(voice_mp3 > 0, "voice is transcoded before the upload");
    assert!(big_parts.is_some_and(|e| e.trim_matches('"').ends_with("-3")), "the 12 MB file went up in 3 parts");
    // Nothing left locally but the (empty) temp area.
    let leftovers: Vec<_> = walk(&root).into_iter().filter(|p| !p.contains("/.tmp/")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // doctor checks the object store with a probe object (and shows no secret).
    let (out, text, line) = doctor(&config);
    assert!(line.starts_with("ok") && line.contains("probe object"), "{line}");
    assert!(!text.contains(S3_SECRET));
    assert_eq!(out.status.code(), Some(0), "{text}");
    drop(m);
    let (out, text, line) = doctor(&config);
    assert!(line.starts_with("FAIL"), "a stopped object store is a FAIL: {line}");
    assert!(!text.contains(S3_SECRET));
    assert_eq!(out.status.code(), Some(1));
    let logs = daemon.log();
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(S3_SECRET)).take(3).collect();
    assert!(leaks.is_empty(), "the S3 secret is in the logs:\n{}", leaks.join("\n"));
}

/// `doctor` on `config`: its status, its output, and its object-store line.
fn doctor(config: &Path) -> (std::process::Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["doctor", "--config", config.to_str().unwrap()])
        .env("WEWORK_MSGAUDIT__MEDIA__S3_SECRET_ACCESS_KEY", S3_SECRET)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("object store")).unwrap_or_else(|| panic!("{text}")).to_string();
    (out, text, line)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
