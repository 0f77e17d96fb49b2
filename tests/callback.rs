//! WeCom callbacks (`src/callback`):
//!
//! (a) the cryptography against vectors computed independently by Python's `cryptography`
//!     package (AES-256-CBC, SHA-1) — both directions, several lengths and keys — and against the
//!     emulator's own implementation (aws-lc-rs);
//! (b) the listener in process (no pipeline): URL verification answers the plain text exactly,
//!     `msgaudit_notify` reaches `EventSink::pull_now`, `msg_audit_approved` reaches
//!     `EventSink::consent_approved`, and every rejection (forged signature 401, stale 401,
//!     replay 409, wrong ReceiveId 403, oversized 413, unknown corp 404, corp without settings
//!     404, malformed 400) answers its status, counts its label and never reaches the sink;
//! (c) the pipeline, on SQLite and MariaDB: a corp with callbacks waits the long callback poll
//!     interval, `PullNow` ends that wait (new records stored without polling), and a burst of
//!     notifies gives one pull (two at most: one more after a pull in flight);
//! (d) the table source: `corp_callback` rows (sealed or not) give a corp its keys, a bad key
//!     leaves the corp out naming the column and never the value (SQLite and MariaDB).

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::pipeline::{keyring, open, Db};
use emulator::callback::{self as fake, CallbackTarget};
use wework_msgaudit::actors::supervisor::PullNow;
use wework_msgaudit::actors::{Pipeline, PipelineConfig, PullSettings};
use wework_msgaudit::callback::protocol::{self, AesKey};
use wework_msgaudit::callback::server::{self, CallbackState, Settings};
use wework_msgaudit::callback::{CallbackKeys, Counters, Directory, EventSink};
use wework_msgaudit::corps::{self, CorpSpec, Sources};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::CorpId;

const TOKEN: &str = "T0kenOfTheArchiveApp";
const KEY: &str = "Vq3r9Yk2Zx0mB7nC4dE1fG6hJ8kL5pQ2sT0uW9yA1bC";

/// A Python with the `cryptography` package: the venv scripts/setup.sh makes for moto, else the
/// system's python3. `None` (loud skip; a failure under CI) when neither has it.
fn python() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/moto-venv/bin/python");
    for candidate in [venv, "python3".into()] {
        let ok = std::process::Command::new(&candidate)
            .args(["-c", "import cryptography.hazmat.primitives.ciphers"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(candidate);
        }
    }
    common::skip_or_fail("the callback vectors", "no python3 with the `cryptography` package");
    None
}

/// The vector generator: for each case, Python encrypts with a given random prefix and signs;
/// and it decrypts what Rust encrypted. One JSON object per line.
const PY: &str = r#"
import base64, hashlib, json, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
def key_of(k): return base64.b64decode(k + "=")
def enc(k, rnd, msg, rid):
    key = key_of(k)
    plain = rnd + struct.pack(">I", len(msg)) + msg + rid
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    e = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(e.update(plain) + e.finalize()).decode()
def dec(k, ct):
    key = key_of(k)
    d = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    p = d.update(base64.b64decode(ct)) + d.finalize()
    p = p[:-p[-1]]
    n = struct.unpack(">I", p[16:20])[0]
    return p[20:20+n], p[20+n:]
def sig(*parts): return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
for line in sys.stdin:
    c = json.loads(line)
    if c["op"] == "enc":
        ct = enc(c["key"], bytes.fromhex(c["random"]), bytes.fromhex(c["msg"]), c["rid"].encode())
        print(json.dumps({"ct": ct, "sig": sig(c["token"], c["ts"], c["nonce"], ct)}))
    else:
        m, rid = dec(c["key"], c["ct"])
        print(json.dumps({"msg": m.hex(), "rid": rid.decode()}))
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn vectors_from_python_cryptography() {
    let Some(py) = python() else { return };
    let keys = [KEY, "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"];
    let messages: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"1616140317555161061".to_vec(),
        fake::notify_xml("wwcb0000000000001", 1_800_000_000).into_bytes(),
        "<xml><Content><![CDATA[中文 ✓]]></Content></xml>".as_bytes().to_vec(),
        vec![b'z'; 12],
        vec![b'q'; 300],
    ];
    let mut cases = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        for (j, msg) in messages.iter().enumerate() {
            let random: [u8; 16] = std::array::from_fn(|k| (i * 31 + j * 7 + k) as u8);
            cases.push((key.to_string(), random, msg.clone(), format!("wwcorp{i}{j}")));
        }
    }
    let mut input = String::new();
    for (key, random, msg, rid) in &cases {
        input.push_str(
            &serde_json::json!({"op": "enc", "key": key, "random": hex(random), "msg": hex(msg), "rid": rid,
                "token": TOKEN, "ts": "1800000000", "nonce": "42"})
            .to_string(),
        );
        input.push('\n');
        let ours = protocol::encrypt(&AesKey::from_encoding(key).unwrap(), random, msg, rid);
        input.push_str(&serde_json::json!({"op": "dec", "key": key, "ct": ours}).to_string());
        input.push('\n');
    }
    let out = {
        use std::io::Write as _;
        let mut child = std::process::Command::new(&py)
            .args(["-c", PY])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "python failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), cases.len() * 2);
    for (n, (key, random, msg, rid)) in cases.iter().enumerate() {
        let (theirs, back) = (&lines[2 * n], &lines[2 * n + 1]);
        let ct = theirs["ct"].as_str().unwrap();
        let aes = AesKey::from_encoding(key).unwrap();
        // Python's ciphertext is ours, byte for byte, and the emulator's too.
        assert_eq!(ct, protocol::encrypt(&aes, random, msg, rid), "case {n}");
        assert_eq!(Some(ct.to_string()), fake::encrypt(key, random, msg, rid), "case {n}: emulator");
        let plain = protocol::decrypt(&aes, ct).unwrap();
        assert_eq!((&plain.message, plain.receive_id.as_str()), (msg, rid.as_str()), "case {n}");
        let sig = theirs["sig"].as_str().unwrap();
        assert_eq!(sig, protocol::signature(TOKEN, "1800000000", "42", ct), "case {n}");
        assert_eq!(sig, fake::signature(TOKEN, "1800000000", "42", ct), "case {n}: emulator");
        protocol::verify_signature(TOKEN, "1800000000", "42", ct, sig).unwrap();
        // Python reads what we wrote.
        assert_eq!(back["msg"].as_str().unwrap(), hex(msg), "case {n}");
        assert_eq!(back["rid"].as_str().unwrap(), rid, "case {n}");
    }
    common::report(&format!("callback vectors: {} cases agree with Python's cryptography", cases.len()));
}

/// The keys of the test corps: `wwcb…1` and `wwcb…2` have callbacks, `wwcb…3` has none.
struct Fixed(BTreeMap<String, Option<CallbackKeys>>);

#[async_trait]
impl Directory for Fixed {
    async fn keys(&self, corpid: &CorpId) -> Option<Option<CallbackKeys>> {
        self.0.get(corpid.as_str()).cloned()
    }
}

#[derive(Default)]
struct Recorder {
    pulls: Mutex<Vec<String>>,
    consents: Mutex<Vec<(String, String, String)>>,
}

impl EventSink for Recorder {
    fn pull_now(&self, corpid: &CorpId) {
        self.pulls.lock().unwrap().push(corpid.to_string());
    }

    fn consent_approved(&self, corpid: &CorpId, userid: &str, external_userid: &str) {
        self.consents.lock().unwrap().push((corpid.to_string(), userid.into(), external_userid.into()));
    }
}

fn keys(token: &str, key: &str) -> CallbackKeys {
    CallbackKeys::from_settings(Some(&Secret::new(token)), Some(&Secret::new(key))).unwrap().unwrap()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_listener_verifies_delivers_and_rejects() {
    common::block_on(async {
        let (a, b, c) = ("wwcb00000000000001", "wwcb00000000000002", "wwcb00000000000003");
        let dir = Fixed(BTreeMap::from([
            (a.to_string(), Some(keys(TOKEN, KEY))),
            (b.to_string(), Some(keys("OtherToken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"))),
            (c.to_string(), None),
        ]));
        let sink = Arc::new(Recorder::default());
        let counters = Arc::new(Counters::default());
        let settings = Settings { max_body: 4096, ..Settings::default() };
        let state = CallbackState::new(Arc::new(dir), sink.clone(), Arc::clone(&counters), &settings);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let srv = server::serve_on(listener, state).unwrap();
        let handle = srv.handle();
        actix_rt::spawn(srv);
        let target = |corp: &str, token: &str, key: &str| CallbackTarget {
            url: format!("http://127.0.0.1:{port}/callback/{corp}"),
            token: token.into(),
            encoding_aes_key: key.into(),
            corpid: corp.into(),
        };
        let ta = target(a, TOKEN, KEY);
        let blocking = |f: Box<dyn FnOnce() -> (u16, Vec<u8>) + Send>| tokio::task::spawn_blocking(f);

        // URL verification: the plain text, byte for byte.
        let t = ta.clone();
        let (status, body) = blocking(Box::new(move || t.verify_url("8271650394812736451").unwrap())).await.unwrap();
        assert_eq!((status, body.as_slice()), (200, b"8271650394812736451".as_slice()));

        // msgaudit_notify → pull_now; msg_audit_approved → consent_approved.
        let t = ta.clone();
        let (status, _) = blocking(Box::new(move || (t.notify(1).unwrap(), Vec::new()))).await.unwrap();
        assert_eq!(status, 200);
        let approved = ta.signed(&fake::approved_xml(a, "zhangsan", "wmEXT001", now_unix()), 2).unwrap();
        let (url, req) = (ta.url.clone(), approved.clone());
        let (status, _) = blocking(Box::new(move || fake::send(&url, &req).unwrap())).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(*sink.pulls.lock().unwrap(), [a]);
        assert_eq!(*sink.consents.lock().unwrap(), [(a.to_string(), "zhangsan".into(), "wmEXT001".into())]);

        // Rejections: each with its status and label, none reaching the sink.
        let notify = fake::notify_xml(a, now_unix());
        let mut cases: Vec<(&str, String, fake::Signed, u16, &str)> =
            vec![("replay", ta.url.clone(), approved, 409, "replay")];
        let mut forged = ta.signed(&notify, 3).unwrap();
        forged.query = forged.query.replace("msg_signature=", "msg_signature=0");
        cases.push(("forged signature", ta.url.clone(), forged, 401, "bad_signature"));
        let wrong_token = target(a, "NotTheToken", KEY).signed(&notify, 4).unwrap();
        cases.push(("wrong token", ta.url.clone(), wrong_token, 401, "bad_signature"));
        let stale = ta.signed_event(&notify, now_unix() - 3600, "5", a, 5).unwrap();
        cases.push(("an hour old", ta.url.clone(), stale, 401, "stale"));
        let future = ta.signed_event(&notify, now_unix() + 3600, "6", a, 6).unwrap();
        cases.push(("an hour ahead", ta.url.clone(), future, 401, "stale"));
        let elsewhere = ta.signed_event(&notify, now_unix(), "7", b, 7).unwrap();
        cases.push(("ReceiveId of another corp", ta.url.clone(), elsewhere, 403, "wrong_receive_id"));
        let mut big = ta.signed(&notify, 8).unwrap();
        big.body.extend(std::iter::repeat_n(b' ', 5000));
        cases.push(("oversized", ta.url.clone(), big, 413, "too_large"));
        let mut garbled = ta.signed(&notify, 9).unwrap();
        garbled.body = b"<xml><Encrypt>".to_vec();
        cases.push(("not XML", ta.url.clone(), garbled, 400, "malformed"));
        let other_corp = ta.signed(&notify, 10).unwrap();
        cases.push((
            "unknown corp",
            format!("http://127.0.0.1:{port}/callback/wwnobody0000000001"),
            other_corp.clone(),
            404,
            "unknown_corp",
        ));
        cases.push((
            "invalid corpid",
            format!("http://127.0.0.1:{port}/callback/..%2Fetc"),
            other_corp.clone(),
            404,
            "unknown_corp",
        ));
        cases.push((
            "corp without callbacks",
            format!("http://127.0.0.1:{port}/callback/{c}"),
            other_corp,
            404,
            "not_configured",
        ));
        let no_params = fake::Signed { method: "POST", query: String::new(), body: b"<xml/>".to_vec() };
        cases.push(("no parameters", ta.url.clone(), no_params, 400, "malformed"));
        // The key of corp b with corp a's token and ReceiveId: signed right, decrypts to garbage.
        let other_key = target(a, TOKEN, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").signed(&notify, 11).unwrap();
        cases.push(("another key", ta.url.clone(), other_key, 400, "malformed"));
        for (what, url, req, want, label) in cases {
            let (status, body) = blocking(Box::new(move || fake::send(&url, &req).unwrap())).await.unwrap();
            assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&body));
            assert_eq!(String::from_utf8_lossy(&body), label, "{what}");
        }
        assert_eq!(sink.pulls.lock().unwrap().len(), 1, "no rejected request reached the sink");
        assert_eq!(sink.consents.lock().unwrap().len(), 1);
        for (corp, label, n) in [
            (a, "verified", 1),
            (a, "accepted", 2),
            (a, "replay", 1),
            (a, "bad_signature", 2),
            (a, "stale", 2),
            (a, "wrong_receive_id", 1),
            (a, "too_large", 1),
            (a, "malformed", 3),
            ("", "unknown_corp", 2),
            (c, "not_configured", 1),
        ] {
            assert_eq!(counters.requests_of(corp, label), n, "{corp} {label}");
        }
        assert_eq!(counters.events_of(a, "msgaudit_notify"), 1);
        assert_eq!(counters.events_of(a, "msg_audit_approved"), 1);

        // A flood of valid notifies: each accepted (the coalescing is the corp actor's, test (c)).
        let t = ta.clone();
        let statuses =
            tokio::task::spawn_blocking(move || (100..150).map(|i| t.notify(i).unwrap()).collect::<Vec<_>>())
                .await
                .unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(counters.requests_of(a, "accepted"), 52);
        // The counters as Prometheus text.
        let report = wework_msgaudit::observe::Report { callback: counters.snapshot(), ..Default::default() };
        let text = wework_msgaudit::observe::metrics::render(&report);
        assert!(
            text.contains(&format!("wework_msgaudit_callback_requests_total{{corpid=\"{a}\",outcome=\"replay\"}} 1\n")),
            "{text}"
        );
        assert!(text.contains("wework_msgaudit_callback_requests_total{corpid=\"\",outcome=\"unknown_corp\"} 2\n"));
        assert!(text.contains(&format!(
            "wework_msgaudit_callback_events_total{{corpid=\"{a}\",event=\"msgaudit_notify\"}} 51\n"
        )));
        assert!(!text.contains(TOKEN) && !text.contains(KEY));
        handle.stop(true).await;
    });
}

const CB_CORP: &str = "wwcbpipe0000000001";
const POLL_CORP: &str = "wwcbpipe0000000002";

fn scenario(records: u64) -> emulator::Scenario {
    let mut toml = String::from("seed = 11\n");
    for (i, c) in [CB_CORP, POLL_CORP].iter().enumerate() {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{c}\"\nsecret = \"secret-{i}\"\nrecords = {records}\n"));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
    }
    toml::from_str(&toml).unwrap()
}

fn spec(corp: &str, i: usize, callback: bool) -> CorpSpec {
    let spec = CorpSpec::new(
        CorpId::new(corp).unwrap(),
        corp,
        Secret::new(format!("secret-{i}")),
        100,
        SdkTimeout::from_secs(5),
        keyring(),
    );
    spec.with_callback(callback.then(|| keys(TOKEN, KEY)))
}

fn cursor(p: &Pipeline, corp: &str) -> u64 {
    p.stats.snapshot().get(&CorpId::new(corp).unwrap()).map_or(0, |s| s.cursor)
}

async fn until(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < deadline, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pull_now_ends_the_long_wait_and_coalesces(db: Db) {
    let emu = Arc::new(emulator::Emulator::new(scenario(150)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let config = PipelineConfig {
        sdk_threads: 2,
        pull: PullSettings {
            poll_interval: Duration::from_millis(100),
            callback_poll_interval: Some(Duration::from_secs(3600)),
            ..PullSettings::default()
        },
        reload_interval: Duration::from_secs(3600),
        ..PipelineConfig::default()
    };
    let sources = Sources { fixed: vec![spec(CB_CORP, 0, true), spec(POLL_CORP, 1, false)], ..Sources::default() };
    let p = Pipeline::start(open(&db).await, sdk, sources, &config).unwrap();
    until("both corps caught up", Duration::from_secs(120), || {
        cursor(&p, CB_CORP) == 150 && cursor(&p, POLL_CORP) == 150
    })
    .await;
    // Without callbacks a corp keeps polling; with them it waits the hour.
    emu.grow(CB_CORP, 5).unwrap();
    emu.grow(POLL_CORP, 5).unwrap();
    until("the polling corp got its new records", Duration::from_secs(30), || cursor(&p, POLL_CORP) == 155).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(cursor(&p, CB_CORP), 150, "the corp with callbacks did not poll");
    // One PullNow: the new records, at once.
    let t0 = Instant::now();
    assert!(p.supervisor.send(PullNow(CorpId::new(CB_CORP).unwrap())).await.unwrap(), "its actor runs here");
    until("PullNow pulled", Duration::from_secs(30), || cursor(&p, CB_CORP) == 155).await;
    let took = t0.elapsed();
    // A burst of 200: one pull, two at most (a wake-up stored during that pull).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = emu.chat_calls(CB_CORP);
    emu.grow(CB_CORP, 3).unwrap();
    for _ in 0..200 {
        p.supervisor.do_send(PullNow(CorpId::new(CB_CORP).unwrap()));
    }
    until("the burst pulled", Duration::from_secs(30), || cursor(&p, CB_CORP) == 158).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let extra = emu.chat_calls(CB_CORP) - before;
    assert!((1..=2).contains(&extra), "a burst of 200 notifies made {extra} GetChatData calls");
    // Nothing more while it waits its hour.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(emu.chat_calls(CB_CORP) - before, extra, "no polling of the callback corp");
    assert!(!p.supervisor.send(PullNow(CorpId::new("wwnotrunning00001").unwrap())).await.unwrap());
    p.shutdown().await;
    common::report(&format!(
        "callback pipeline ({}): PullNow → stored in {took:?}; a burst of 200 notifies = {extra} GetChatData call(s)",
        db.name()
    ));
    db.finish().await;
}

per_db!(pull_now => pull_now_ends_the_long_wait_and_coalesces);

async fn table_source_gives_callback_keys(db: Db) {
    use wework_msgaudit::security::{AtRest, MasterKey};
    let store = open(&db).await;
    let pem = emulator::demo_private_key_pem(1).unwrap();
    for (i, corp) in ["wwcbtable000000001", "wwcbtable000000002", "wwcbtable000000003"].iter().enumerate() {
        store
            .upsert_corp(&wework_msgaudit::store::CorpRow {
                corpid: corp.to_string(),
                secret: Secret::new(format!("s{i}")),
                corpname: String::new(),
                prikey: Secret::new(pem),
                limits: 100,
                timeout: 5,
                status: 1,
                update: 0,
            })
            .await
            .unwrap();
    }
    let master = AtRest::with_key(MasterKey::parse(&"ab".repeat(32), "test").unwrap());
    let id = |c: &str| CorpId::new(c).unwrap();
    // 1: sealed values; 2: a key of 42 characters; 3: none.
    let sealed_token =
        master.protect(&wework_msgaudit::callback::token_place("wwcbtable000000001"), &Secret::new(TOKEN)).unwrap();
    let sealed_key =
        master.protect(&wework_msgaudit::callback::aes_key_place("wwcbtable000000001"), &Secret::new(KEY)).unwrap();
    assert!(!sealed_key.expose().contains(KEY));
    store.put_corp_callback(&id("wwcbtable000000001"), &sealed_token, &sealed_key).await.unwrap();
    store.put_corp_callback(&id("wwcbtable000000002"), &Secret::new(TOKEN), &Secret::new(&KEY[..42])).await.unwrap();
    // Replacing works; so does deleting.
    store.put_corp_callback(&id("wwcbtable000000003"), &Secret::new(TOKEN), &Secret::new(KEY)).await.unwrap();
    assert!(store.delete_corp_callback(&id("wwcbtable000000003")).await.unwrap());
    assert!(!store.delete_corp_callback(&id("wwcbtable000000003")).await.unwrap());
    assert_eq!(store.list_corp_callbacks().await.unwrap().len(), 2);
    let sources = Sources { table: Some(Arc::clone(&store)), at_rest: master, ..Sources::default() };
    let desired = corps::load(&sources).await.unwrap();
    let one = &desired.corps[&id("wwcbtable000000001")];
    assert_eq!(one.callback, Some(keys(TOKEN, KEY)), "sealed values opened");
    assert!(desired.corps[&id("wwcbtable000000003")].callback.is_none());
    let (corp, error) = desired.errors.iter().find(|(c, _)| c == "wwcbtable000000002").expect("left out");
    assert!(error.starts_with("corp_callback.encoding_aes_key: must be 43 characters"), "{corp}: {error}");
    assert!(!error.contains(&KEY[..42]), "{error}");
    // Without the master key the sealed corp is left out, naming the place.
    let plain = Sources { table: Some(Arc::clone(&store)), ..Sources::default() };
    let desired = corps::load(&plain).await.unwrap();
    let (_, error) = desired.errors.iter().find(|(c, _)| c == "wwcbtable000000001").expect("left out");
    assert!(error.contains("corp_callback.token/wwcbtable000000001"), "{error}");
    db.finish().await;
}

per_db!(corp_callback_table => table_source_gives_callback_keys);

#[test]
fn corps_file_settings_are_validated_without_showing_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corps.toml");
    let pem = emulator::demo_private_key_pem(1).unwrap();
    let entry = |corp: &str, extra: &str| {
        format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"s\"\n{extra}[[corp.key]]\nver = 1\npem = '''{pem}'''\n")
    };
    let text = [
        entry("wwfile000000000001", &format!("callback_token = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\n")),
        entry("wwfile000000000002", &format!("callback_token = \"{TOKEN}\"\nencoding_aes_key = \"{}\"\n", &KEY[..40])),
        entry("wwfile000000000003", &format!("callback_token = \"{TOKEN}\"\n")),
        entry("wwfile000000000004", ""),
    ]
    .concat();
    std::fs::write(&path, text).unwrap();
    let defaults = corps::Defaults { limit: 100, timeout: SdkTimeout::from_secs(5) };
    let got = corps::from_file(&path, defaults).unwrap();
    assert_eq!(got[0].spec.as_ref().unwrap().callback, Some(keys(TOKEN, KEY)));
    let e = got[1].spec.as_ref().unwrap_err();
    assert!(e.contains("corp[2].encoding_aes_key: must be 43 characters of base64"), "{e}");
    assert!(e.contains(":10:") || e.contains(&format!("{}:", path.display())), "{e}");
    assert!(!e.contains(&KEY[..40]) && !e.contains(TOKEN), "{e}");
    let e = got[2].spec.as_ref().unwrap_err();
    assert!(e.contains("corp[3].callback_token: callback_token is set but encoding_aes_key is not"), "{e}");
    assert!(got[3].spec.as_ref().unwrap().callback.is_none());
    // Debug output of a spec with callbacks shows neither value.
    let shown = format!("{:?}", got[0].spec.as_ref().unwrap());
    assert!(shown.contains("callback: true") && !shown.contains(TOKEN) && !shown.contains(&KEY[..20]), "{shown}");
}

/// (e) End to end with the REAL vendor SDK through the fake API (like `e2e_real_sdk`): 20
/// callbacks from the fake server, each a new record stored well within the generous bound (the
/// goal, 1 s at p99, is measured by `cargo bench --bench callback`); a forged callback answers
/// 401 and pulls nothing; polling is the baseline of the same run.
async fn real_sdk_freshness(db: Db) {
    use common::freshness::{self, quantile};
    let Some(sdk) = common::real_sdk("the callback freshness test") else { return };
    let dir = tempfile::tempdir().unwrap();
    let f = freshness::run(dir.path(), &db, &sdk, 20, 3, Duration::from_secs(2)).await;
    let (p50, p99) = (quantile(&f.callback, 0.5), quantile(&f.callback, 0.99));
    let (q50, q99) = (quantile(&f.polling, 0.5), quantile(&f.polling, 0.99));
    assert_eq!(f.callback.len(), 20);
    assert!(p99 < Duration::from_secs(5), "{}: callback → stored p99 {p99:?} ({:?})", db.name(), f.callback);
    assert_eq!(f.forged, (401, false), "a forged callback is refused and pulls nothing");
    let accepted = format!(
        "wework_msgaudit_callback_requests_total{{corpid=\"{}\",outcome=\"accepted\"}} 20\n",
        freshness::CB_CORP
    );
    assert!(f.metrics.contains(&accepted), "{}", f.metrics);
    assert!(f.metrics.contains(&format!(
        "wework_msgaudit_callback_requests_total{{corpid=\"{}\",outcome=\"bad_signature\"}} 1\n",
        freshness::CB_CORP
    )));
    assert!(!f.metrics.contains(freshness::TOKEN) && !f.metrics.contains(freshness::AES_KEY));
    common::report(&format!(
        "callback freshness, real SDK ({}): callback → stored p50 {p50:.0?} p99 {p99:.0?} over {}; \
         polling every {:?} → stored p50 {q50:.0?} p99 {q99:.0?} over {}",
        db.name(),
        f.callback.len(),
        f.poll_interval,
        f.polling.len()
    ));
    db.finish().await;
}

per_db!(tokio: callback_freshness_real_sdk => real_sdk_freshness);

/// (f) `corp set-callback`: validated before the database is touched (errors name the setting,
/// never the value), stored (sealed with a master key), removed with `--clear`; SQLite and
/// MariaDB.
mod cli {
    use super::*;
    use common::cli_db::CliDb;

    struct Db(CliDb);

    impl Db {
        async fn sqlite() -> Db {
            Db(CliDb::sqlite("callback.db"))
        }

        async fn mysql() -> Option<Db> {
            CliDb::mysql("wwcb", "the MariaDB callback CLI test").await.map(Db)
        }
    }

    async fn set_callback(db: Db) {
        let db = db.0;
        db.write("config.toml", "");
        db.write("secret.txt", "corp-secret\n");
        db.write("key.pem", emulator::demo_private_key_pem(1).unwrap());
        db.write("token.txt", &format!("{TOKEN}\n"));
        db.write("aes.txt", &format!("{KEY}\n"));
        db.write("bad.txt", &KEY[..41]);
        let corp = "wwcbcli00000000001";
        let (secret, key) = (db.path("secret.txt"), db.path("key.pem"));
        db.ok(&[
            "corp",
            "add",
            "--corpid",
            corp,
            "--secret-file",
            secret.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
            "--key-ver",
            "1",
        ]);
        let (token, aes, bad) = (db.path("token.txt"), db.path("aes.txt"), db.path("bad.txt"));
        let set = |aes: &std::path::Path| {
            vec![
                "corp".to_string(),
                "set-callback".into(),
                corp.into(),
                "--token-file".into(),
                token.display().to_string(),
                "--aes-key-file".into(),
                aes.display().to_string(),
            ]
        };
        let args = set(&bad);
        let out = db.expect(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        assert!(out.contains("encoding_aes_key: must be 43 characters of base64"), "{out}");
        assert!(!out.contains(&KEY[..41]) && !out.contains(TOKEN), "{out}");
        let store = db.store().await;
        assert!(store.list_corp_callbacks().await.unwrap().is_empty(), "nothing stored");
        let args = set(&aes);
        let out = db.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.contains("stored as plaintext") && !out.contains(TOKEN), "{out}");
        let rows = store.list_corp_callbacks().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].token.expose(), rows[0].encoding_aes_key.expose()), (TOKEN, KEY));
        let desired = corps::load(&Sources { table: Some(Arc::clone(&store)), ..Sources::default() }).await.unwrap();
        assert_eq!(desired.corps[&CorpId::new(corp).unwrap()].callback, Some(keys(TOKEN, KEY)));
        let out = db.expect(&["corp", "set-callback", "wwcbnobody00000001", "--clear"], 2);
        assert!(out.contains("no corp wwcbnobody00000001"), "{out}");
        assert!(db.ok(&["corp", "set-callback", corp, "--clear"]).contains("removed"));
        assert!(store.list_corp_callbacks().await.unwrap().is_empty());
        db.finish().await;
    }

    per_db!(set_callback_cli => set_callback);
}
