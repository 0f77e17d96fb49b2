use std::collections::{BTreeSet, HashMap};

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde_json::Value;
use WeWorkFinanceSdk_C::codec;
use WeWorkFinanceSdk_C::{
    demo_private_key_pem, Emulator, Faults, Scenario, Session, TruthRecord, DEMO_CORPID, DEMO_SECRET,
};

fn keys() -> HashMap<u32, Pkcs1PrivateDecryptingKey> {
    (1..=3)
        .map(|v| {
            let der = codec::pem_to_der(demo_private_key_pem(v).unwrap()).unwrap();
            (v, Pkcs1PrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&der).unwrap()).unwrap())
        })
        .collect()
}

fn scenario(records: u64, faults: Faults) -> Scenario {
    let mut s = Scenario::demo();
    s.corp[0].records = records;
    s.corp[0].growth_per_sec = 0.0;
    s.corp[0].faults = faults;
    s
}

fn session(e: &Emulator) -> Session {
    let mut s = e.new_session();
    assert_eq!(e.init(&mut s, Some(DEMO_CORPID.as_bytes()), Some(DEMO_SECRET.as_bytes())), 0);
    s
}

fn hex_md5(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Pulls everything from seq 0 and decrypts it natively.
fn pull_all(e: &Emulator, s: &mut Session) -> Vec<(u64, u32, Result<Vec<u8>, i32>)> {
    let keys = keys();
    let mut out = Vec::new();
    let mut seq = 0;
    loop {
        let body = e.get_chat_data(s, seq, 1000, None, None, 5).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errcode"], 0);
        let items = v["chatdata"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        for it in items {
            let seq_i = it["seq"].as_u64().unwrap();
            let ver = it["publickey_ver"].as_u64().unwrap() as u32;
            let r = match keys.get(&ver) {
                None => Err(10007),
                Some(k) => {
                    let ct = STANDARD.decode(it["encrypt_random_key"].as_str().unwrap()).unwrap();
                    let mut buf = vec![0u8; k.min_output_size()];
                    let ek = k.decrypt(&ct, &mut buf).unwrap().to_vec();
                    codec::open(&ek, it["encrypt_chat_msg"].as_str().unwrap().as_bytes())
                }
            };
            assert_eq!(seq_i, seq + 1, "contiguous seqs");
            seq = seq_i;
            out.push((seq_i, ver, r));
        }
    }
}

#[test]
fn every_msgtype_in_the_first_records() {
    let e = Emulator::new(scenario(80, Faults::default())).unwrap();
    let truth = e.truth(DEMO_CORPID);
    assert_eq!(truth.len(), 80);
    let types: BTreeSet<&str> = truth.iter().map(|t| t.msgtype.as_str()).collect();
    let want = WeWorkFinanceSdk_C::truth::ALL_MSGTYPES;
    for w in want {
        assert!(types.contains(w), "missing msgtype {w}");
    }
    let actions: BTreeSet<&str> = truth.iter().map(|t| t.action.as_str()).collect();
    assert_eq!(actions, ["recall", "send", "switch"].into_iter().collect());
    assert!(truth.iter().any(|t| t.msgid.ends_with("_external")));
    assert!(truth.iter().any(|t| t.plaintext.len() >= 20 * 1024), "a long text");
    assert!(truth.iter().any(|t| t.plaintext.bytes().any(|b| b < 0x20)), "raw control characters");
    let msgids: BTreeSet<&str> = truth.iter().map(|t| t.msgid.as_str()).collect();
    assert_eq!(msgids.len(), truth.len(), "msgid unique");
    // Voice comes as AMR and as both SILK layouts; emotion as gif and png.
    let exts: BTreeSet<(String, String)> =
        truth.iter().flat_map(|t| t.media.iter().map(|m| (m.kind.clone(), m.ext.clone()))).collect();
    for (k, x) in [
        ("voice", "amr"),
        ("voice", "silk"),
        ("emotion", "gif"),
        ("emotion", "png"),
        ("image", "jpg"),
        ("video", "mp4"),
    ] {
        assert!(exts.contains(&(k.to_string(), x.to_string())), "{k}/{x}");
    }
    // Every record other than the control-character one is valid JSON with the documented shape.
    for t in &truth {
        let Ok(v) = serde_json::from_str::<Value>(&t.plaintext) else {
            assert!(t.plaintext.bytes().any(|b| b < 0x20));
            continue;
        };
        assert_eq!(v["msgid"], t.msgid.as_str());
        if t.action == "switch" {
            assert!(v.get("msgtype").is_none() && v["time"].is_u64() && v["user"].is_string());
            continue;
        }
        assert!(v["tolist"].is_array() && v["msgtime"].is_u64());
        let key = match t.msgtype.as_str() {
            "docmsg" => "doc",
            "markdown" | "news" | "voiptext" | "qydiskfile" => "info",
            "external_redpacket" => "redpacket",
            m => m,
        };
        if t.msgtype == "vote" && v.get("vote").is_none() {
            assert!(v["votetitle"].is_string(), "top-level vote fields");
            continue;
        }
        assert!(v.get(key).is_some(), "payload key {key} of {}", t.msgtype);
        match t.msgtype.as_str() {
            "meeting" => assert!(v["meeting"]["meetingid"].as_u64().unwrap() > i64::MAX as u64),
            "collect" => assert!(v["collect"]["details"][0]["id"].as_u64().unwrap() > i64::MAX as u64),
            "meeting_voice_call" => {
                assert!(v["voiceid"].is_string());
                assert!(v["meeting_voice_call"].get("md5sum").is_none());
            }
            "voip_doc_share" => assert!(v["voipid"].is_string()),
            "chatrecord" => {
                let items = v["chatrecord"]["item"].as_array().unwrap();
                assert!(items.iter().all(|i| i["content"].is_string()));
                assert!(items.iter().any(|i| i["type"] == "ChatRecordMixed"));
                // top-level item 0 does not exist for chatrecord: media are nested, 1..
                assert!(t.media.len() >= 10);
            }
            "mixed" => assert!(v["mixed"]["item"].as_array().unwrap().iter().all(|i| i["content"].is_string())),
            _ => {}
        }
    }
    // Determinism.
    let e2 = Emulator::new(scenario(80, Faults::default())).unwrap();
    assert_eq!(e2.truth(DEMO_CORPID), truth);
}

#[test]
fn chat_data_decrypts_to_truth() {
    let e = Emulator::new(scenario(120, Faults::default())).unwrap();
    let mut s = session(&e);
    let got = pull_all(&e, &mut s);
    let truth = e.truth(DEMO_CORPID);
    assert_eq!(got.len(), truth.len());
    let mut vers = BTreeSet::new();
    for ((seq, ver, pt), t) in got.iter().zip(&truth) {
        assert_eq!((*seq, *ver), (t.seq, t.publickey_ver));
        assert_eq!(pt.as_ref().unwrap(), t.plaintext.as_bytes(), "seq {seq}");
        vers.insert(*ver);
        // DecryptData through the emulator's own API agrees.
    }
    assert_eq!(vers, [1, 2, 3].into_iter().collect(), "all key versions used");
    // Pulling from the middle starts at seq + 1 and honours limit.
    let body = e.get_chat_data(&mut s, 50, 7, None, None, 5).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let seqs: Vec<u64> = v["chatdata"].as_array().unwrap().iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (51..=57).collect::<Vec<_>>());
}

fn download(e: &Emulator, s: &mut Session, sdkfileid: &str) -> Result<(Vec<u8>, usize), i32> {
    let mut idx: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut chunks = 0;
    loop {
        let c = e.get_media_data(s, Some(&idx), Some(sdkfileid.as_bytes()), None, None, 5)?;
        assert!(c.data.len() as u64 <= WeWorkFinanceSdk_C::MEDIA_CHUNK);
        out.extend_from_slice(&c.data);
        chunks += 1;
        if c.is_finish {
            return Ok((out, chunks));
        }
        assert!(std::str::from_utf8(&c.outindexbuf).unwrap().starts_with("Range:bytes="));
        idx = c.outindexbuf;
    }
}

#[test]
fn media_md5_matches_served_bytes() {
    let e = Emulator::new(scenario(80, Faults::default())).unwrap();
    let mut s = session(&e);
    let truth: Vec<TruthRecord> = e.truth(DEMO_CORPID);
    let mut n = 0;
    let mut saw_big = false;
    for t in &truth {
        let first = if matches!(t.msgtype.as_str(), "chatrecord" | "mixed") { 1 } else { 0 };
        for (i, m) in t.media.iter().enumerate() {
            assert_eq!(m.item as usize, i + first, "items numbered in document order");
            let (bytes, chunks) = download(&e, &mut s, &m.sdkfileid).unwrap();
            assert_eq!(bytes.len() as u64, m.size);
            assert_eq!(hex_md5(&bytes), m.md5, "seq {} item {}", t.seq, m.item);
            assert_eq!(e.media_bytes(&m.sdkfileid).unwrap(), bytes);
            if m.size == 3 * 1024 * 1024 {
                assert_eq!(chunks, 6);
                saw_big = true;
            }
            n += 1;
        }
        // md5sum / filesize in the record are the true values (top-level payloads).
        if let Ok(v) = serde_json::from_str::<Value>(&t.plaintext) {
            if let Some(m0) = t.media.first() {
                let p = &v[t.msgtype.as_str()];
                if let Some(md5) = p.get("md5sum") {
                    assert_eq!(md5, m0.md5.as_str());
                }
            }
        }
    }
    assert!(n > 30, "{n} media items");
    assert!(saw_big, "the big file");
    // Magic numbers of the fixtures.
    let by_ext = |ext: &str| {
        truth
            .iter()
            .flat_map(|t| &t.media)
            .find(|m| m.ext == ext)
            .map(|m| e.media_bytes(&m.sdkfileid).unwrap())
            .unwrap()
    };
    assert!(by_ext("jpg").starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(by_ext("png").starts_with(b"\x89PNG"));
    assert!(by_ext("gif").starts_with(b"GIF8"));
    assert!(by_ext("amr").starts_with(b"#!AMR\n"));
    assert_eq!(&by_ext("mp4")[4..8], b"ftyp");
    let silks: BTreeSet<bool> = truth
        .iter()
        .flat_map(|t| &t.media)
        .filter(|m| m.ext == "silk")
        .map(|m| e.media_bytes(&m.sdkfileid).unwrap().starts_with(b"\x02#!SILK_V3"))
        .collect();
    assert_eq!(silks.len(), 2, "both SILK layouts");

    // Bad sdkfileids: 10005, never a crash.
    for bad in ["", "!!!", "AAAA", "Cgdmb28vYmFy", &STANDARD.encode(b"\x0a\x10emu/nobody/1/0")] {
        let r = e.get_media_data(&mut s, None, Some(bad.as_bytes()), None, None, 5);
        assert!(matches!(r, Err(10005) | Err(10000)), "{bad}: {r:?}");
    }
    assert_eq!(e.get_media_data(&mut s, None, None, None, None, 5), Err(10000));
}

#[test]
fn argument_and_secret_checks() {
    let e = Emulator::new(scenario(10, Faults::default())).unwrap();
    let mut s = e.new_session();
    assert_eq!(e.init(&mut s, None, Some(b"x")), 10000);
    assert_eq!(e.init(&mut s, Some(b""), Some(b"x")), 10000);
    assert_eq!(e.init(&mut s, Some(DEMO_CORPID.as_bytes()), Some(b"")), 10000);
    // Wrong secret: Init succeeds, GetChatData says 10001.
    assert_eq!(e.init(&mut s, Some(DEMO_CORPID.as_bytes()), Some(b"wrong")), 0);
    assert_eq!(e.get_chat_data(&mut s, 0, 10, None, None, 5), Err(10001));
    let mut u = e.new_session();
    assert_eq!(e.init(&mut u, Some(b"wwunknown"), Some(DEMO_SECRET.as_bytes())), 0);
    assert_eq!(e.get_chat_data(&mut u, 0, 10, None, None, 5), Err(10001));
    let mut s = session(&e);
    assert_eq!(e.get_chat_data(&mut s, 0, 0, None, None, 5), Err(10000));
    assert_eq!(e.get_chat_data(&mut s, 0, 1001, None, None, 5), Err(10000));
    let body = e.get_chat_data(&mut s, 10, 1000, None, None, 5).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["chatdata"].as_array().unwrap().len(), 0, "nothing after the last seq");
    assert_eq!(e.decrypt_data(None, Some(b"x")), Err(10000));
    assert_eq!(e.corpids(), vec![DEMO_CORPID.to_string()]);
}

#[test]
fn faults_fire_at_the_configured_rate_deterministically() {
    let f = Faults { chat_rc_rate: 0.2, errcode_rate: 0.2, empty_body_rate: 0.2, ..Faults::default() };
    let run = || {
        let e = Emulator::new(scenario(5, f.clone())).unwrap();
        let mut s = session(&e);
        (0..1000)
            .map(|_| match e.get_chat_data(&mut s, 0, 1, None, None, 5) {
                Err(rc) => rc.to_string(),
                Ok(b) if b.is_empty() => "empty".to_string(),
                Ok(b) => serde_json::from_slice::<Value>(&b).unwrap()["errcode"].to_string(),
            })
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run(), "deterministic");
    let count = |k: &str| a.iter().filter(|x| *x == k).count();
    // rc fault 0.2; errcode 0.2 of the rest (0.16); empty 0.2 of the rest (0.128).
    assert!((150..=250).contains(&count("10001")), "{}", count("10001"));
    assert!((110..=210).contains(&count("45009")), "{}", count("45009"));
    assert!((80..=180).contains(&count("empty")), "{}", count("empty"));

    let f = Faults { corrupt_rate: 0.1, unknown_key_ver_rate: 0.1, ..Faults::default() };
    let e = Emulator::new(scenario(400, f)).unwrap();
    let truth = e.truth(DEMO_CORPID);
    let corrupt = truth.iter().filter(|t| t.corrupt).count();
    let unknown = truth.iter().filter(|t| t.publickey_ver == 99).count();
    assert!((20..=60).contains(&corrupt), "{corrupt}");
    assert!((20..=60).contains(&unknown), "{unknown}");
    let mut s = session(&e);
    for ((seq, ver, r), t) in pull_all(&e, &mut s).into_iter().zip(&truth) {
        assert_eq!((seq, ver), (t.seq, t.publickey_ver));
        if ver == 99 {
            assert_eq!(r, Err(10007));
        } else if t.corrupt {
            assert_eq!(r, Err(10006), "seq {seq}");
        } else {
            assert_eq!(r.unwrap(), t.plaintext.as_bytes());
        }
    }

    let f = Faults { media_rc_rate: 0.5, media_rc: 10002, ..Faults::default() };
    let e = Emulator::new(scenario(10, f)).unwrap();
    let id = e.truth(DEMO_CORPID)[1].media[0].sdkfileid.clone();
    let mut s = session(&e);
    let fails =
        (0..400).filter(|_| e.get_media_data(&mut s, None, Some(id.as_bytes()), None, None, 5) == Err(10002)).count();
    assert!((140..=260).contains(&fails), "{fails}");

    let f = Faults { bad_secret: true, ..Faults::default() };
    let e = Emulator::new(scenario(10, f)).unwrap();
    let mut s = session(&e);
    assert_eq!(e.get_chat_data(&mut s, 0, 10, None, None, 5), Err(10001));
}

#[test]
fn live_growth() {
    let mut sc = scenario(10, Faults::default());
    sc.corp[0].growth_per_sec = 200.0;
    let e = Emulator::new(sc).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while e.truth(DEMO_CORPID).len() <= 12 {
        assert!(std::time::Instant::now() < deadline, "no growth");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn scenario_files_toml_and_json() {
    let dir = std::env::temp_dir().join(format!("wwf-emu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("k.pem");
    std::fs::write(&pem, demo_private_key_pem(2).unwrap()).unwrap();
    let toml = format!(
        r#"seed = 7
base_msgtime_ms = 1767225600000
[[corp]]
corpid = "ww0000000000000001"
secret = "s1"
records = 50
[[corp.key]]
ver = 2
private_key_file = "{}"
[corp.faults]
errcode_rate = 0.5
errcode = 42001
"#,
        pem.display()
    );
    let p = dir.join("s.toml");
    std::fs::write(&p, &toml).unwrap();
    let sc = Scenario::load(&p).unwrap();
    assert_eq!(sc.seed, 7);
    assert_eq!(sc.corp[0].faults.errcode, 42001);
    let e = Emulator::new(sc.clone()).unwrap();
    assert_eq!(e.truth("ww0000000000000001").len(), 50);
    assert!(e.truth("ww0000000000000001").iter().all(|t| t.publickey_ver == 2));
    let pj = dir.join("s.json");
    std::fs::write(&pj, serde_json::to_string(&sc).unwrap()).unwrap();
    assert_eq!(Scenario::load(&pj).unwrap().corp[0].records, 50);
    // Unknown keys are rejected.
    std::fs::write(&p, toml.replace("records = 50", "records = 50\nrecord = 1")).unwrap();
    assert!(Scenario::load(&p).is_err());
    // Secrets are redacted in Debug.
    assert!(!format!("{sc:?}").contains("s1\""));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn c_abi_smoke() {
    use std::ffi::{CStr, CString};
    use WeWorkFinanceSdk_C::*;
    // SAFETY (test): every pointer passed below is valid or deliberately NULL.
    unsafe {
        let sdk = NewSdk();
        assert!(!sdk.is_null());
        let corp = CString::new(DEMO_CORPID).unwrap();
        let secret = CString::new(DEMO_SECRET).unwrap();
        let empty = CString::new("").unwrap();
        assert_eq!(Init(sdk, empty.as_ptr(), secret.as_ptr()), 10000);
        assert_eq!(Init(sdk, std::ptr::null(), secret.as_ptr()), 10000);
        assert_eq!(Init(std::ptr::null_mut(), corp.as_ptr(), secret.as_ptr()), 10000);
        assert_eq!(Init(sdk, corp.as_ptr(), secret.as_ptr()), 0);

        let sl = NewSlice();
        assert_eq!(GetChatData(sdk, 0, 0, std::ptr::null(), std::ptr::null(), 5, sl), 10000);
        assert_eq!(GetChatData(sdk, 0, 1001, std::ptr::null(), std::ptr::null(), 5, sl), 10000);
        assert_eq!(GetChatData(sdk, 0, 10, std::ptr::null(), std::ptr::null(), 5, std::ptr::null_mut()), 10000);
        assert_eq!(GetChatData(std::ptr::null_mut(), 0, 10, std::ptr::null(), std::ptr::null(), 5, sl), 10000);
        assert_eq!(GetChatData(sdk, 0, 10, std::ptr::null(), std::ptr::null(), 5, sl), 0);
        let len = GetSliceLen(sl) as usize;
        let buf = GetContentFromSlice(sl);
        assert!(len > 0);
        assert_eq!(*buf.add(len), 0, "NUL-terminated");
        assert_eq!(CStr::from_ptr(buf).to_bytes().len(), len, "exact len");
        let body: Value = serde_json::from_slice(std::slice::from_raw_parts(buf as *const u8, len)).unwrap();
        FreeSlice(sl);
        let items = body["chatdata"].as_array().unwrap();
        assert_eq!(items.len(), 10);

        // DecryptData through the C ABI.
        let keys = keys();
        let it = &items[0];
        let k = &keys[&(it["publickey_ver"].as_u64().unwrap() as u32)];
        let ct = STANDARD.decode(it["encrypt_random_key"].as_str().unwrap()).unwrap();
        let mut b = vec![0u8; k.min_output_size()];
        let ek = CString::new(k.decrypt(&ct, &mut b).unwrap().to_vec()).unwrap();
        let em = CString::new(it["encrypt_chat_msg"].as_str().unwrap()).unwrap();
        let sl = NewSlice();
        assert_eq!(DecryptData(ek.as_ptr(), em.as_ptr(), std::ptr::null_mut()), 10000);
        assert_eq!(DecryptData(ek.as_ptr(), em.as_ptr(), sl), 0);
        let pt = std::slice::from_raw_parts(GetContentFromSlice(sl) as *const u8, GetSliceLen(sl) as usize);
        assert_eq!(pt, Emulator::global().truth(DEMO_CORPID)[0].plaintext.as_bytes());
        FreeSlice(sl);

        // A media download through the C ABI (record 2 is an image).
        let m = &Emulator::global().truth(DEMO_CORPID)[1].media[0];
        let fid = CString::new(m.sdkfileid.clone()).unwrap();
        let mut index = CString::new("").unwrap();
        let mut bytes = Vec::new();
        loop {
            let md = NewMediaData();
            assert_eq!(GetMediaData(sdk, index.as_ptr(), fid.as_ptr(), std::ptr::null(), std::ptr::null(), 5, md), 0);
            bytes.extend_from_slice(std::slice::from_raw_parts(GetData(md) as *const u8, GetDataLen(md) as usize));
            let fin = IsMediaDataFinish(md);
            index = CString::new(std::slice::from_raw_parts(GetOutIndexBuf(md) as *const u8, GetIndexLen(md) as usize))
                .unwrap();
            FreeMediaData(md);
            if fin == 1 {
                break;
            }
        }
        assert_eq!(hex_md5(&bytes), m.md5);
        let md = NewMediaData();
        let bad = CString::new("garbage").unwrap();
        assert_eq!(GetMediaData(sdk, std::ptr::null(), bad.as_ptr(), std::ptr::null(), std::ptr::null(), 5, md), 10005);
        assert_eq!(
            GetMediaData(
                sdk,
                std::ptr::null(),
                fid.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                5,
                std::ptr::null_mut()
            ),
            10000
        );
        FreeMediaData(md);
        DestroySdk(sdk);
        DestroySdk(std::ptr::null_mut());
        FreeSlice(std::ptr::null_mut());
        FreeMediaData(std::ptr::null_mut());
    }
}

#[test]
fn emulator_is_send_sync_and_sessions_work_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Emulator>();
    assert_send_sync::<Session>();
    let e = std::sync::Arc::new(Emulator::new(scenario(100, Faults::default())).unwrap());
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut s = session(&e);
                let body = e.get_chat_data(&mut s, i * 10, 10, None, None, 5).unwrap();
                serde_json::from_slice::<Value>(&body).unwrap()["chatdata"].as_array().unwrap().len()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 10);
    }
}

#[test]
fn slow_fault_respects_timeout() {
    let f = Faults { slow_rate: 1.0, slow_ms: 5_000, ..Faults::default() };
    let e = Emulator::new(scenario(5, f)).unwrap();
    let mut s = session(&e);
    let t = std::time::Instant::now();
    assert_eq!(e.get_chat_data(&mut s, 0, 5, None, None, 1), Err(10001));
    assert!(t.elapsed() >= std::time::Duration::from_millis(900));
}

#[test]
fn withheld_seqs_are_never_served_and_pages_stay_full() {
    let mut sc = scenario(30, Faults::default());
    sc.corp[0].withheld_seqs = vec![3, 4, 5, 6, 20];
    let e = Emulator::new(sc).unwrap();
    let mut s = session(&e);
    let seqs = |from: u64, limit: u32| -> Vec<u64> {
        let body = e.chat_page(DEMO_CORPID, from, limit).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["chatdata"].as_array().unwrap().iter().map(|it| it["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs(0, 4), [1, 2, 7, 8], "a page holds `limit` served records, past the withheld ones");
    assert_eq!(seqs(2, 2), [7, 8], "a page of only withheld seqs does not come back empty");
    assert_eq!(seqs(18, 5), [19, 21, 22, 23, 24]);
    assert_eq!(seqs(28, 10), [29, 30], "the end");
    // Through the SDK entry point too, and the ground truth leaves them out.
    let body = e.get_chat_data(&mut s, 0, 1000, None, None, 5).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let served: Vec<u64> = v["chatdata"].as_array().unwrap().iter().map(|it| it["seq"].as_u64().unwrap()).collect();
    let truth: Vec<u64> = e.truth(DEMO_CORPID).iter().map(|t| t.seq).collect();
    assert_eq!(served.len(), 25);
    assert_eq!(served, truth);
    assert!(!served.iter().any(|s| [3, 4, 5, 6, 20].contains(s)));
}
