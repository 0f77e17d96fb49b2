//! `src/wecom` against the emulator's fake WeCom API (lib/emulator/src/api/meta.rs), through its
//! CONNECT proxy with proxy credentials and its CA-signed DEMO-ONLY certificate (trusted through
//! `extra_ca_file`'s setting, never by turning verification off): every archive API with its
//! faults (token refresh on 42001, retries on HTTP 500 / 45009 / slow answers, 301052 marking the
//! corp failing with the reason), batches of at most 100 pairs, consent history on change, the
//! new-roomid trigger and the daily refresh, on SQLite and MariaDB.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emulator::api::{meta, ApiOptions, FakeApi, DEMO_TEST_CA_PEM};
use serde_json::json;
use wework_msgaudit::actors::Stats;
use wework_msgaudit::corps::{CorpSpec, Proxy};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::CorpId;
use wework_msgaudit::wecom::refresh::{seen_in, Service, Settings};
use wework_msgaudit::wecom::{Api, Client, ClientSettings, WecomError};

use crate::common::pipeline::{self, all_rows, ingest_corps, open, Db};

const PROXY_CREDENTIALS: &str = "wecom-user:DEMO-ONLY-proxy-pass";
const RECORDS: u64 = 200;

fn fake(corps: usize) -> FakeApi {
    let emu = emulator::Emulator::new(pipeline::scenario(corps, &[], RECORDS)).unwrap();
    FakeApi::start(
        emu,
        ApiOptions { proxy_auth: Some(PROXY_CREDENTIALS.into()), ca_signed: true, ..ApiOptions::default() },
    )
    .unwrap()
}

fn client_settings() -> ClientSettings {
    ClientSettings {
        timeout: Duration::from_secs(5),
        retries: 3,
        retry_delay: Duration::from_millis(10),
        extra_ca_pem: Some(DEMO_TEST_CA_PEM.as_bytes().to_vec()),
    }
}

fn proxy(api: &FakeApi) -> Proxy {
    Proxy { url: Some(api.proxy_url()), password: Some(Secret::new(PROXY_CREDENTIALS)) }
}

fn spec(api: &FakeApi, i: usize) -> CorpSpec {
    pipeline::specs(i + 1, 500).remove(i).with_proxy(&proxy(api))
}

fn client(api: &FakeApi) -> Client {
    let s = spec(api, 0);
    Client::new(s.corpid.clone(), s.secret.clone(), &s.proxy, client_settings()).unwrap()
}

fn settings() -> Settings {
    Settings { client: client_settings(), ..Settings::default() }
}

/// Requests of the fake whose call is `call`.
fn calls(api: &FakeApi, call: &str) -> usize {
    api.requests().iter().filter(|r| r.call == call).count()
}

fn corp0() -> CorpId {
    CorpId::new(&pipeline::corpid(0)).unwrap()
}

#[tokio::test]
async fn each_api_answers_through_the_proxy_with_a_verified_certificate() {
    let api = fake(1);
    let c = client(&api);
    let room = c.group_chat("wr0123456789abcdef").await.unwrap();
    assert_eq!(room.roomname, "模拟群 012345");
    assert_eq!(room.members.len(), 4);
    assert!(room.members.iter().any(|(m, t)| m == meta::ROOM_EXTERNAL && *t == Some(meta::META_TIME + 3)));
    assert_eq!(room.room_create_time, Some(meta::META_TIME));
    assert!(!room.creator.is_empty() && !room.notice.is_empty());
    assert_eq!(c.permit_users(None).await.unwrap().len(), 6);
    assert_eq!(c.permit_users(Some(3)).await.unwrap(), ["zhouba"]);
    let single = c.check_single_agree(&[("zhangsan".into(), "wmX".into())]).await.unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!((single[0].userid.as_str(), single[0].external_id.as_str()), ("zhangsan", "wmX"));
    assert_eq!(single[0].agree_status, api.consent_of("", "zhangsan", "wmX").0);
    let room_agree = c.check_room_agree("wr0123456789abcdef").await.unwrap();
    assert_eq!(room_agree[0].roomid, "wr0123456789abcdef");
    assert_eq!(room_agree[0].external_id, meta::ROOM_EXTERNAL);
    // One token for all of it; every CONNECT carried the proxy credentials.
    assert_eq!(calls(&api, "gettoken"), 1);
    let connects: Vec<_> = api.requests().into_iter().filter(|r| r.call == "connect").collect();
    assert!(!connects.is_empty() && connects.iter().all(|r| r.status == 200), "{connects:?}");
    // An unknown room is the room's error, not a retry.
    match c.group_chat("not-a-room").await {
        Err(e @ WecomError::Api { errcode: 40058, .. }) => assert!(e.is_about_the_object()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn without_the_extra_ca_the_fake_is_not_trusted() {
    let api = fake(1);
    let s = spec(&api, 0);
    let settings = ClientSettings { extra_ca_pem: None, retries: 0, ..client_settings() };
    let c = Client::new(s.corpid.clone(), s.secret.clone(), &s.proxy, settings).unwrap();
    let err = c.permit_users(None).await.unwrap_err();
    assert!(matches!(err, WecomError::Transport(_)), "{err}");
}

#[tokio::test]
async fn single_agree_goes_in_batches_of_at_most_100() {
    let api = fake(1);
    let c = client(&api);
    let pairs: Vec<(String, String)> = (0..250).map(|i| ("zhangsan".to_string(), format!("wm{i:05}"))).collect();
    let got = c.check_single_agree(&pairs).await.unwrap();
    assert_eq!(got.len(), 250);
    assert_eq!(calls(&api, "check_single_agree"), 3, "250 pairs = 100 + 100 + 50");
    // The fake refuses more than 100 in one call: proof that the limit is real.
    let too_many: Vec<_> = pairs.iter().map(|(u, e)| json!({"userid": u, "exteranalopenid": e})).collect();
    match c.call(Api::SingleAgree, &json!({ "info": too_many })).await {
        Err(WecomError::Api { errcode: 40058, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_call_retried() {
    let api = fake(1);
    let c = client(&api);
    c.permit_users(None).await.unwrap();
    api.push_meta_faults(&["errcode:42001"]);
    c.permit_users(None).await.unwrap();
    assert_eq!(calls(&api, "gettoken"), 2, "42001 → a new token");
    // 42001 again right after the refresh: the call's error (no refresh loop).
    api.push_meta_faults(&["errcode:42001", "errcode:42001"]);
    let err = c.permit_users(None).await.unwrap_err();
    assert!(matches!(err, WecomError::Api { errcode: 42001, .. }), "{err}");
    // A token that the server expires before its expires_in (token_ttl_ms) is renewed the same
    // way: the renewed one is used at once, well within the second it lives.
    let before = calls(&api, "gettoken");
    api.set_faults(emulator::api::ApiFaults { token_ttl_ms: 1_000, ..Default::default() });
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    c.permit_users(None).await.unwrap();
    assert_eq!(calls(&api, "gettoken"), before + 1);
}

#[tokio::test]
async fn http_500_45009_and_slow_answers_are_retried() {
    let api = fake(1);
    let c = client(&api);
    api.push_meta_faults(&["500", "errcode:45009", "drop"]);
    assert_eq!(c.permit_users(Some(1)).await.unwrap().len(), 4, "the 4th attempt succeeds");
    assert_eq!(calls(&api, "get_permit_user_list"), 4);
    api.push_meta_faults(&["500", "500", "500", "500"]);
    assert!(matches!(c.permit_users(None).await, Err(WecomError::Status(500))), "retries are bounded");
    // A slow answer is cut by the timeout and asked again.
    let s = spec(&api, 0);
    let quick = ClientSettings { timeout: Duration::from_millis(500), ..client_settings() };
    let c = Client::new(s.corpid.clone(), s.secret.clone(), &s.proxy, quick).unwrap();
    api.push_meta_faults(&["slow:1500"]);
    assert_eq!(c.permit_users(None).await.unwrap().len(), 6);
}

#[tokio::test]
async fn errors_name_no_secret_token_or_proxy_password() {
    let api = fake(1);
    let s = spec(&api, 0);
    let wrong = Client::new(s.corpid.clone(), Secret::new("DEMO-ONLY-wrong-secret-value"), &s.proxy, client_settings())
        .unwrap();
    let err = wrong.permit_users(None).await.unwrap_err();
    assert!(matches!(err, WecomError::Api { errcode: 40001, .. }), "{err}");
    let closed = Proxy { url: Some("http://127.0.0.1:9".into()), password: Some(Secret::new(PROXY_CREDENTIALS)) };
    let unreachable = Client::new(s.corpid.clone(), s.secret.clone(), &closed, client_settings()).unwrap();
    let transport = unreachable.permit_users(None).await.unwrap_err();
    for text in [format!("{err} {err:?}"), format!("{transport} {transport:?}"), format!("{wrong:?} {unreachable:?}")] {
        for secret in
            ["DEMO-ONLY-wrong-secret-value", s.secret.expose(), "DEMO-ONLY-proxy-pass", "FAKE_TOKEN_", "corpsecret"]
        {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

/// The logs of a run with token renewals and retries, at TRACE, hold neither the secret nor a
/// token nor the proxy password.
#[test]
fn logs_name_no_secret_or_token() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let api = fake(1);
    let s = spec(&api, 0);
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let c = client(&api);
            api.push_meta_faults(&["errcode:42001", "500", "errcode:45009"]);
            c.permit_users(None).await.unwrap();
            c.check_single_agree(&[("zhangsan".into(), "wmX".into())]).await.unwrap();
        });
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token refused") && logs.contains("retrying"), "the run logged: {logs}");
    for secret in [s.secret.expose(), "DEMO-ONLY-proxy-pass", "FAKE_TOKEN_"] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

per_db!(
    a_pass_fills_every_table_from_the_stored_messages,
    an_expired_archive_service_marks_the_corp_failing_with_the_reason,
    one_failing_corp_does_not_stop_the_others,
);

async fn a_pass_fills_every_table_from_the_stored_messages(db: Db) {
    let store = open(&db).await;
    ingest_corps(&store, 1, RECORDS).await;
    let api = fake(1);
    let corp = corp0();
    let rows = all_rows(&store, &corp).await;
    let seen = seen_in(&rows);
    assert!(seen.rooms.len() > 20 && seen.pairs.len() > 1, "the scenario has rooms and 1:1 pairs: {seen:?}");
    // A room WeCom does not know: its error is stored, the pass goes on.
    store.wecom_rooms_seen(&corp, &["badroom".to_string()]).await.unwrap();

    let service = Service::new(Arc::clone(&store), None, settings());
    let results = service.pass(&[spec(&api, 0)]).await;
    let p = results[0].1.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.scanned, RECORDS);
    assert_eq!(p.new_rooms as usize, seen.rooms.len());
    assert_eq!((p.rooms_fetched as usize, p.room_errors), (seen.rooms.len(), 1));
    assert_eq!(p.permit_users, Some(6));
    assert_eq!(store.wecom_scan_cursor(&corp).await.unwrap(), RECORDS);

    // Rooms: every roomid of the messages, named, with members (the external one too).
    let rooms = store.wecom_rooms(&corp).await.unwrap();
    assert_eq!(rooms.len(), seen.rooms.len() + 1);
    for r in &rooms {
        if r.roomid == "badroom" {
            assert!(r.fetch_error.as_deref().is_some_and(|e| e.contains("40058")), "{r:?}");
            assert!(r.roomname.is_none());
            continue;
        }
        assert_eq!(r.roomname.as_deref(), Some(format!("模拟群 {}", &r.roomid[2..8]).as_str()), "{r:?}");
        assert!(r.fetched_at_ms.is_some() && r.fetch_error.is_none(), "{r:?}");
        assert_eq!(r.room_create_time, Some(meta::META_TIME));
    }
    let some_room = seen.rooms.iter().next().unwrap();
    let members = store.wecom_room_members(&corp, some_room).await.unwrap();
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|m| m.present && m.jointime.is_some()));

    // Archived members with their licence types as bits.
    let users = store.wecom_permit_users(&corp).await.unwrap();
    let types: Vec<(&str, i64)> = users.iter().map(|u| (u.userid.as_str(), u.types)).collect();
    assert_eq!(
        types,
        [("lisi", 1), ("sunqi", 2), ("wangwu", 3), ("zhangsan", 1), ("zhaoliu", 3), ("zhouba", 6)],
        "type 1: the first four, type 2: the last four, type 3: the last one"
    );
    assert!(users.iter().all(|u| u.present && u.first_seen_at_ms == u.last_seen_at_ms));

    // Consent: every 1:1 pair of the messages, and the room's external contact.
    let consents = store.wecom_consents(&corp).await.unwrap();
    let pairs: BTreeSet<(String, String)> = consents
        .iter()
        .filter(|c| c.check.roomid.is_empty())
        .map(|c| (c.check.userid.clone(), c.check.external_id.clone()))
        .collect();
    assert_eq!(pairs, seen.pairs);
    for c in &consents {
        let (status, time) = api.consent_of(&c.check.roomid, &c.check.userid, &c.check.external_id);
        assert_eq!((c.check.agree_status.as_str(), c.check.status_change_time), (status.as_str(), Some(time)));
    }
    let rooms_with_consent: BTreeSet<&str> =
        consents.iter().filter(|c| !c.check.roomid.is_empty()).map(|c| c.check.roomid.as_str()).collect();
    assert_eq!(rooms_with_consent.len(), seen.rooms.len(), "each fetched room's consent");

    // A second pass right away asks nothing: everything is fresh.
    let before = api.requests().len();
    let again = service.pass(&[spec(&api, 0)]).await;
    assert_eq!(again[0].1.as_ref().unwrap(), &Default::default());
    let asked: Vec<_> = api.requests()[before..].iter().map(|r| r.call.clone()).collect();
    assert!(asked.iter().all(|c| c == "connect" || c == "gettoken"), "{asked:?}");

    // The on-demand consent check (msg_audit_approved): a change is appended to the history.
    let (user, ext) = seen.pairs.iter().next().unwrap().clone();
    let flipped = if api.consent_of("", &user, &ext).0 == "Agree" { "Disagree" } else { "Agree" };
    api.set_consent("", &user, &ext, flipped, meta::META_TIME + 100);
    let got = service.refresh_consent(&corp, &user, &ext).await.unwrap();
    assert_eq!(got[0].agree_status, flipped);
    let history = store.wecom_consent_history(&corp, &ext).await.unwrap();
    let of_pair: Vec<_> = history.iter().filter(|h| h.check.userid == user && h.check.roomid.is_empty()).collect();
    assert_eq!(of_pair.len(), 2, "{history:?}");
    assert_eq!(of_pair[1].check.agree_status, flipped);
    assert_eq!(of_pair[1].check.status_change_time, Some(meta::META_TIME + 100));
    // The same answer again: no history row.
    service.refresh_consent(&corp, &user, &ext).await.unwrap();
    assert_eq!(store.wecom_consent_history(&corp, &ext).await.unwrap().len(), history.len());
    // Unknown corp: refused, not guessed.
    let other = CorpId::new("wwnotheld000001").unwrap();
    assert!(matches!(service.refresh_consent(&other, &user, &ext).await, Err(WecomError::UnknownCorp(_))));

    // The daily refresh (here: everything older than 1 ms): rooms, members, archived members and
    // consents asked again; a member gone from the list is kept as not present.
    api.remove_permit_user("zhouba");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let daily = Service::new(Arc::clone(&store), None, Settings { refresh: Duration::from_millis(1), ..settings() });
    let p = daily.pass(&[spec(&api, 0)]).await.remove(0).1.unwrap();
    assert_eq!(p.scanned, 0, "no new messages");
    assert_eq!(p.rooms_fetched as usize, seen.rooms.len());
    assert_eq!(p.permit_users, Some(5));
    assert!(p.consents_checked as usize >= seen.pairs.len() + seen.rooms.len());
    let zhouba = store.wecom_permit_users(&corp).await.unwrap().into_iter().find(|u| u.userid == "zhouba").unwrap();
    assert!(!zhouba.present);
    let lisi = store.wecom_permit_users(&corp).await.unwrap().into_iter().find(|u| u.userid == "lisi").unwrap();
    assert!(lisi.present && lisi.last_seen_at_ms > lisi.first_seen_at_ms);
    db.finish().await;
}

async fn an_expired_archive_service_marks_the_corp_failing_with_the_reason(db: Db) {
    let store = open(&db).await;
    let api = fake(1);
    let stats = Arc::new(Stats::default());
    let service = Service::new(Arc::clone(&store), Some(Arc::clone(&stats)), settings());
    let corp = corp0();
    api.push_meta_faults(&["errcode:301052"]);
    let r = service.pass(&[spec(&api, 0)]).await.remove(0).1;
    assert!(matches!(r, Err(WecomError::ArchiveExpired)), "{r:?}");
    let status = stats.snapshot().remove(&corp).unwrap();
    let report = wework_msgaudit::observe::corp_report(&corp, &status, 3, std::time::SystemTime::now());
    assert!(report.failing);
    assert!(report.failing_reason().contains("301052"), "{}", report.failing_reason());
    let text = wework_msgaudit::observe::metrics::render(&wework_msgaudit::observe::Report {
        corps: vec![report],
        ..Default::default()
    });
    assert!(text.contains(&format!("wework_msgaudit_corp_failing{{corpid=\"{corp}\"}} 1")), "{text}");
    // Renewed: the next pass works and the mark goes.
    let r = service.pass(&[spec(&api, 0)]).await.remove(0).1;
    assert!(r.is_ok(), "{r:?}");
    assert!(stats.snapshot().remove(&corp).unwrap().wecom_api_error.is_none());
    db.finish().await;
}

async fn one_failing_corp_does_not_stop_the_others(db: Db) {
    let store = open(&db).await;
    let api = fake(2);
    let good = spec(&api, 1);
    let s = spec(&api, 0);
    let bad = CorpSpec::new(
        s.corpid.clone(),
        "bad",
        Secret::new("DEMO-ONLY-wrong"),
        500,
        wework_msgaudit::sdk::SdkTimeout::from_secs(5),
        pipeline::keyring(),
    )
    .with_proxy(&proxy(&api));
    let service = Service::new(Arc::clone(&store), None, settings());
    let results = service.pass(&[bad, good.clone()]).await;
    assert!(matches!(results[0].1, Err(WecomError::Api { errcode: 40001, .. })), "{:?}", results[0]);
    assert_eq!(results[1].1.as_ref().unwrap().permit_users, Some(6));
    assert_eq!(store.wecom_permit_users(&good.corpid).await.unwrap().len(), 6);
    db.finish().await;
}
