//! The review API's users, sessions and access log, on a SQLite temp file and on a fresh MariaDB
//! database per test (`per_db!`):
//!
//! - `user add | list | disable | grant` and `audit verify` through the real binary: passwords
//!   from a file and from stdin, never a hash in the output, every change in the access log;
//! - sign-in through `actix_web::test` over the real store: ok (the cookie's flags), wrong
//!   password, unknown and disabled users (the same 401), then 429 with `Retry-After` once the
//!   failures are used up; the password never reaches the access log; without a writable log
//!   nobody signs in (503);
//! - roles and CSRF: a POST without the token is 403, a reviewer gets 403 on `/api/users`, an
//!   auditor reads and verifies the access log, a disabled user's session ends;
//! - a session used every 1.2 s outlives its 2 s idle time but not its 5 s end; one left alone
//!   ends after its idle time;
//! - tampering: one row's target edited, a middle row deleted, the last rows deleted: `audit
//!   verify` exits 1 naming the entry each time;
//! - a password typed on a terminal (the binary under `script`, a pty) is not echoed and is asked
//!   twice (a mismatch changes nothing, exit 2);
//! - the last enabled admin cannot be disabled or demoted: the CLI exits 2, the API answers 400;
//! - a log rewritten and rehashed whole passes a plain `audit verify` but fails `--expect-head`
//!   with the head printed before; an export verifies offline (`--file`), an edited line named;
//! - appends from 2 store connections in 4 concurrent tasks × 50 leave one intact chain.

use crate::common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::test as web_test;
use actix_web::App;
use serde_json::{json, Value};
use wework_msgaudit::config::ReviewConfig;
use wework_msgaudit::review::{self, accounts, recorder, AccessEvent, Role};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, Store};

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");
const PW: &str = "correct horse battery staple";

/// A test database plus a directory for the config and password files.
struct Db(common::cli_db::CliDb);

impl std::ops::Deref for Db {
    type Target = common::cli_db::CliDb;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Db {
    async fn sqlite() -> Db {
        Db::with(common::cli_db::CliDb::sqlite("review.db"))
    }

    async fn mysql() -> Option<Db> {
        common::cli_db::CliDb::mysql("wwr", "the MariaDB review auth tests").await.map(Db::with)
    }

    fn with(db: common::cli_db::CliDb) -> Db {
        db.write("config.toml", "[log]\nlevel = \"warn\"\n");
        db.write("pw", &format!("{PW}\n"));
        Db(db)
    }

    /// Runs the binary, asserts its exit code, returns stdout + stderr.
    fn expect(&self, args: &[&str], stdin: &str, code: i32) -> String {
        self.expect_in(args, stdin, code)
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

/// Every access-log entry.
async fn entries(store: &dyn Store) -> Vec<store::AccessEntry> {
    store.access_log_after(0, 10_000).await.unwrap()
}

async fn users_through_the_cli(db: Db) {
    let pw_file = db.path("pw").display().to_string();
    let out = db.expect(
        &[
            "user",
            "add",
            "Alice",
            "--role",
            "reviewer",
            "--corp",
            "wwA",
            "--corp",
            "wwB:u2,u1",
            "--password-file",
            &pw_file,
        ],
        "",
        0,
    );
    assert!(out.contains("added alice (reviewer)"), "{out}");
    // From stdin, one line.
    db.expect(&["user", "add", "bob", "--role", "auditor"], &format!("{PW}\n"), 0);
    // Refused before the database: short password, bad role, bad grant; and a taken name.
    db.expect(&["user", "add", "carol", "--role", "admin"], "short\n", 2);
    db.expect(&["user", "add", "carol", "--role", "root", "--password-file", &pw_file], "", 2);
    db.expect(&["user", "add", "carol", "--role", "reviewer", "--corp", "ww-x", "--password-file", &pw_file], "", 2);
    let out = db.expect(&["user", "add", "alice", "--role", "admin", "--password-file", &pw_file], "", 2);
    assert!(out.contains("already exists"), "{out}");

    db.expect(&["user", "disable", "alice"], "", 0);
    db.expect(&["user", "revoke", "alice", "--corp", "wwA"], "", 0);
    db.expect(&["user", "grant", "bob", "--corp", "wwC"], "", 0);
    db.expect(&["user", "disable", "nobody"], "", 2);
    let list = db.expect(&["user", "list"], "", 0);
    let line =
        |name: &str| list.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {list}")).to_string();
    let alice = line("alice");
    assert!(alice.contains("reviewer") && alice.contains(" yes ") && alice.contains("never"), "{alice}");
    assert!(alice.ends_with("wwB:u1,u2"), "grants normalised, wwA revoked: {alice}");
    let bob = line("bob");
    assert!(bob.contains("auditor") && bob.contains(" no ") && bob.ends_with("wwC"), "{bob}");
    assert!(!list.contains("argon2") && !list.contains(PW), "no hash or password in: {list}");

    // The store agrees, and keeps only an Argon2id hash.
    let store = db.store().await;
    let a = store.review_user("alice").await.unwrap().unwrap();
    assert!(a.disabled);
    assert!(a.password_hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(store.review_user("carol").await.unwrap().is_none());

    // Every change is in the access log, by the CLI's actor, without the password.
    let log = entries(store.as_ref()).await;
    let admin: Vec<_> = log.iter().filter(|e| e.action == "user_admin").collect();
    assert_eq!(admin.len(), 5, "{log:#?}");
    assert!(admin.iter().all(|e| e.username.starts_with("cli:tester(uid ") && e.role == "cli"), "{admin:#?}");
    assert_eq!(admin[0].target, "alice");
    assert!(log.iter().all(|e| !e.detail.contains(PW) && !e.detail.contains("argon2")));
    let out = db.expect(&["audit", "verify"], "", 0);
    assert!(out.contains(&format!("{} entries checked", log.len())), "{out}");
    assert!(out.contains(&log.last().unwrap().hash), "{out}");
    db.finish().await;
}

/// An app like the review server's: the auth layer, its state and routes.
macro_rules! app {
    ($state:expr) => {
        web_test::init_service(
            App::new()
                .app_data($state.clone())
                .wrap(actix_web::middleware::from_fn(review::auth::layer))
                .configure(review::auth::configure),
        )
        .await
    };
}

fn login(name: &str, pw: &str, addr: &str) -> web_test::TestRequest {
    web_test::TestRequest::post()
        .uri("/api/login")
        // Through the proxy on 127.0.0.1 (a trusted one by default), which appended `addr`.
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("X-Forwarded-For", format!("6.6.6.6, {addr}")))
        .set_json(json!({ "username": name, "password": pw }))
}

/// The cookie (`name=value`) and CSRF token of a successful sign-in.
async fn signed_in<B: actix_web::body::MessageBody>(res: actix_web::dev::ServiceResponse<B>) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    let cookie =
        res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let body: Value = web_test::read_body_json(res).await;
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

async fn add(store: &dyn Store, name: &str, role: Role, grants: &[&str]) {
    let grants = grants.iter().map(|g| accounts::parse_grant(g).unwrap()).collect();
    accounts::add(store, &accounts::Actor::cli(), name, role, &Secret::new(PW), grants).await.unwrap();
}

async fn sign_in_and_rate_limit(db: Db) {
    let store = db.store().await;
    add(store.as_ref(), "alice", Role::Reviewer, &["wwA", "wwB:u1"]).await;
    add(store.as_ref(), "dave", Role::Reviewer, &[]).await;
    accounts::change(
        store.as_ref(),
        &accounts::Actor::cli(),
        "dave",
        accounts::Change { disabled: Some(true), ..Default::default() },
    )
    .await
    .unwrap();
    let cfg = ReviewConfig { login_max_failures: 3, cookie_secure: "auto".into(), ..ReviewConfig::default() };
    let state = review::auth::auth_state(store.clone(), &cfg).unwrap();
    let app = app!(state);

    // OK: the cookie's flags, the role and scope in the answer.
    let res = web_test::call_service(&app, login("ALICE", PW, "10.0.0.1").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let set = res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(
        set.starts_with("wwmsg_session=") && set.contains("; HttpOnly") && set.contains("; SameSite=Strict"),
        "{set}"
    );
    assert!(set.contains("; Path=/") && !set.contains("Secure"), "plain http, auto: {set}");
    let body: Value = web_test::read_body_json(res).await;
    assert_eq!((body["username"].as_str(), body["role"].as_str()), (Some("alice"), Some("reviewer")));
    assert_eq!(body["scope"]["corps"], json!({ "wwA": null, "wwB": ["u1"] }));
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 43);

    // Wrong password, unknown user, disabled user (with its right password): one answer.
    for (name, pw, addr) in
        [("alice", "wrong password!!", "10.0.0.2"), ("zed", PW, "10.0.0.3"), ("dave", PW, "10.0.0.4")]
    {
        let res = web_test::call_service(&app, login(name, pw, addr).to_request()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        let err: Value = web_test::read_body_json(res).await;
        assert_eq!(err, json!({ "error": "wrong user name or password" }), "{name}");
    }
    // alice has 1 failure; 2 more from other addresses use up 3, then even her right password
    // is refused with 429 and Retry-After.
    for addr in ["10.0.0.5", "10.0.0.6"] {
        assert_eq!(
            web_test::call_service(&app, login("alice", "still wrong!!!", addr).to_request()).await.status(),
            401
        );
    }
    let res = web_test::call_service(&app, login("alice", PW, "10.0.0.7").to_request()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers().get(header::RETRY_AFTER).unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // Per address too: one address guessing 3 names is stopped for a 4th.
    for name in ["x1", "x2", "x3"] {
        assert_eq!(
            web_test::call_service(&app, login(name, "guess guess guess", "10.9.9.9").to_request()).await.status(),
            401
        );
    }
    assert_eq!(
        web_test::call_service(&app, login("bob", PW, "10.9.9.9").to_request()).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // The log has each attempt with its reason, and never the password.
    let log = entries(store.as_ref()).await;
    let reasons: Vec<String> = log
        .iter()
        .filter(|e| e.action.starts_with("login"))
        .map(|e| {
            let d: Value = serde_json::from_str(&e.detail).unwrap();
            format!("{}:{}:{}", e.action, e.target, d["reason"].as_str().unwrap_or("-"))
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "login:alice:-",
            "login_failed:alice:wrong_password",
            "login_failed:zed:unknown_user",
            "login_failed:dave:disabled",
            "login_failed:alice:wrong_password",
            "login_failed:alice:wrong_password",
            "login_failed:alice:rate_limited",
            "login_failed:x1:unknown_user",
            "login_failed:x2:unknown_user",
            "login_failed:x3:unknown_user",
            "login_failed:bob:rate_limited",
        ]
    );
    assert_eq!(log.iter().find(|e| e.action == "login").unwrap().username, "alice");
    assert!(log
        .iter()
        .all(|e| !e.detail.contains(PW) && !e.target.contains(PW) && !e.detail.contains("wrong password")));
    assert!(recorder::verify_stored(store.as_ref()).await.is_ok());

    // Fail closed: when the log cannot be written, nobody signs in.
    add(store.as_ref(), "erin", Role::Reviewer, &[]).await;
    db.exec("DELETE FROM access_log_head").await;
    let res = web_test::call_service(&app, login("erin", PW, "10.0.0.8").to_request()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get(header::SET_COOKIE).is_none(), "no session without its log entry");
    db.finish().await;
}

async fn roles_and_csrf(db: Db) {
    let store = db.store().await;
    add(store.as_ref(), "root", Role::Admin, &[]).await;
    add(store.as_ref(), "audrey", Role::Auditor, &[]).await;
    let state = review::auth::auth_state(store.clone(), &ReviewConfig::default()).unwrap();
    let app = app!(state);
    let (admin, admin_csrf) =
        signed_in(web_test::call_service(&app, login("root", PW, "10.0.0.1").to_request()).await).await;

    // The admin adds a reviewer: without the CSRF token 403, with it 201.
    let new_user = json!({ "username": "rita", "role": "reviewer", "password": PW, "grants": [{ "corpid": "wwA", "userids": null }] });
    let post = |csrf: Option<&str>| {
        let r = web_test::TestRequest::post()
            .uri("/api/users")
            .insert_header((header::COOKIE, admin.clone()))
            .set_json(&new_user);
        match csrf {
            Some(c) => r.insert_header(("X-CSRF-Token", c.to_string())).to_request(),
            None => r.to_request(),
        }
    };
    let res = web_test::call_service(&app, post(None)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(store.review_user("rita").await.unwrap().is_none(), "nothing added without the token");
    let res = web_test::call_service(&app, post(Some(&admin_csrf))).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let view: Value = web_test::read_body_json(res).await;
    assert_eq!(view["grants"], json!([{ "corpid": "wwA", "userids": null }]));
    assert!(!view.to_string().contains("argon2"));
    assert_eq!(web_test::call_service(&app, post(Some(&admin_csrf))).await.status(), StatusCode::CONFLICT);
    let users =
        web_test::TestRequest::get().uri("/api/users").insert_header((header::COOKIE, admin.clone())).to_request();
    let users: Value = web_test::read_body_json(web_test::call_service(&app, users).await).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 3);

    // An empty change, and an admin locking themselves out, are refused.
    for (who, body) in
        [("rita", json!({})), ("root", json!({ "disabled": true })), ("root", json!({ "role": "reviewer" }))]
    {
        let req = web_test::TestRequest::patch()
            .uri(&format!("/api/users/{who}"))
            .insert_header((header::COOKIE, admin.clone()))
            .insert_header(("X-CSRF-Token", admin_csrf.clone()))
            .set_json(&body)
            .to_request();
        let res = web_test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{who} {body}");
    }
    assert!(!store.review_user("root").await.unwrap().unwrap().disabled);

    // The reviewer: 403 (JSON) on the admin's and the auditor's endpoints.
    let (rita, rita_csrf) =
        signed_in(web_test::call_service(&app, login("rita", PW, "10.0.0.2").to_request()).await).await;
    for uri in ["/api/users", "/api/access-log", "/api/access-log/verify"] {
        let req = web_test::TestRequest::get().uri(uri).insert_header((header::COOKIE, rita.clone())).to_request();
        let res = web_test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{uri}");
        let err: Value = web_test::read_body_json(res).await;
        assert!(err["error"].as_str().unwrap().starts_with("this needs the"), "{err}");
    }
    let me = web_test::TestRequest::get().uri("/api/me").insert_header((header::COOKIE, rita.clone())).to_request();
    let me: Value = web_test::read_body_json(web_test::call_service(&app, me).await).await;
    assert_eq!((me["role"].as_str(), me["scope"]["corps"].clone()), (Some("reviewer"), json!({ "wwA": null })));

    // The auditor pages through the log and verifies it; both reads are logged.
    let (audrey, _) = signed_in(web_test::call_service(&app, login("audrey", PW, "10.0.0.3").to_request()).await).await;
    let page = |after: u64| {
        web_test::TestRequest::get()
            .uri(&format!("/api/access-log?after={after}&limit=3"))
            .insert_header((header::COOKIE, audrey.clone()))
            .to_request()
    };
    let first: Value = web_test::read_body_json(web_test::call_service(&app, page(0)).await).await;
    let ids: Vec<u64> = first["entries"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(first["next_after"], 3);
    assert_eq!(first["entries"][0]["prev_hash"], review::access_log::GENESIS);
    let second: Value = web_test::read_body_json(web_test::call_service(&app, page(3)).await).await;
    assert_eq!(second["entries"][0]["id"], 4);
    let verify =
        web_test::TestRequest::get().uri("/api/access-log/verify").insert_header((header::COOKIE, audrey.clone()));
    let v: Value = web_test::read_body_json(web_test::call_service(&app, verify.to_request()).await).await;
    assert_eq!(v["intact"], true, "{v}");
    let log = entries(store.as_ref()).await;
    assert_eq!(log.iter().filter(|e| e.action == "read_access_log" && e.username == "audrey").count(), 2);
    assert!(log.iter().any(|e| e.action == "verify_access_log"));
    assert!(log
        .iter()
        .any(|e| e.action == "user_admin" && e.username == "root" && e.role == "admin" && e.target == "rita"));

    // Disabling rita (PATCH, with the token) ends her session at once; logout ends the admin's.
    let patch = web_test::TestRequest::patch()
        .uri("/api/users/rita")
        .insert_header((header::COOKIE, admin.clone()))
        .insert_header(("X-CSRF-Token", admin_csrf.clone()))
        .set_json(json!({ "disabled": true }))
        .to_request();
    assert_eq!(web_test::call_service(&app, patch).await.status(), StatusCode::OK);
    let me = web_test::TestRequest::get().uri("/api/me").insert_header((header::COOKIE, rita.clone())).to_request();
    assert_eq!(web_test::call_service(&app, me).await.status(), StatusCode::UNAUTHORIZED);
    let _ = rita_csrf;
    let logout = web_test::TestRequest::post()
        .uri("/api/logout")
        .insert_header((header::COOKIE, admin.clone()))
        .insert_header(("X-CSRF-Token", admin_csrf.clone()))
        .to_request();
    let res = web_test::call_service(&app, logout).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
    let me = web_test::TestRequest::get().uri("/api/me").insert_header((header::COOKIE, admin.clone())).to_request();
    assert_eq!(web_test::call_service(&app, me).await.status(), StatusCode::UNAUTHORIZED);
    assert!(entries(store.as_ref()).await.iter().any(|e| e.action == "logout" && e.username == "root"));
    db.finish().await;
}

async fn sessions_end_when_idle_and_at_their_end(db: Db) {
    let store = db.store().await;
    add(store.as_ref(), "alice", Role::Reviewer, &[]).await;
    let cfg = ReviewConfig {
        session_idle: Duration::from_secs(2),
        session_max: Duration::from_secs(5),
        ..ReviewConfig::default()
    };
    let state = review::auth::auth_state(store.clone(), &cfg).unwrap();
    let app = app!(state);
    let me =
        |cookie: &str| web_test::TestRequest::get().uri("/api/me").insert_header((header::COOKIE, cookie.to_string()));
    // Used every 1.2 s: alive past the idle time, until its absolute end.
    let start = Instant::now();
    let (cookie, _) = signed_in(web_test::call_service(&app, login("alice", PW, "10.0.0.1").to_request()).await).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(web_test::call_service(&app, me(&cookie).to_request()).await.status(), 200, "{:?}", start.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(start.elapsed()) + Duration::from_millis(300)).await;
    assert_eq!(web_test::call_service(&app, me(&cookie).to_request()).await.status(), 401, "past session_max");
    // Left alone longer than the idle time.
    let (cookie, _) = signed_in(web_test::call_service(&app, login("alice", PW, "10.0.0.1").to_request()).await).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(web_test::call_service(&app, me(&cookie).to_request()).await.status(), 401, "past session_idle");
    db.finish().await;
}

async fn append(store: &dyn Store, target: String) {
    let event = AccessEvent {
        action: "read_message".into(),
        corpid: Some("wwA".into()),
        detail: json!({ "target": target }),
        target,
    };
    recorder::append(store, "rita", "reviewer", event).await.unwrap();
}

async fn tampering_is_named(db: Db) {
    let store = db.store().await;
    for i in 1..=8 {
        append(store.as_ref(), format!("msg{i}")).await;
    }
    db.expect(&["audit", "verify"], "", 0);
    // Export: every field, hashes included, one JSON object per line (and the export is logged).
    let out = db.path("log.jsonl");
    db.expect(&["audit", "export", "--out", &out.display().to_string()], "", 0);
    let lines: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[2]["target"], "msg3");
    assert_eq!(lines[3]["prev_hash"], lines[2]["hash"]);
    assert_eq!(lines[8]["action"], "export_access_log");

    // A row inserted by hand beyond the head.
    db.exec(&format!(
        "INSERT INTO access_log (id, at_ms, username, role, action, corpid, target, detail, prev_hash, hash) \
         VALUES (50, 0, 'x', 'x', 'x', NULL, 'x', '{{}}', '{h}', '{h}')",
        h = review::access_log::GENESIS
    ))
    .await;
    let err = db.expect(&["audit", "verify"], "", 1);
    assert!(err.contains("broken at entry 50: entry 50 lies beyond the head"), "{err}");
    db.exec("DELETE FROM access_log WHERE id = 50").await;

    // An edited target.
    assert_eq!(db.exec("UPDATE access_log SET target = 'msg-forged' WHERE id = 3").await, 1);
    let err = db.expect(&["audit", "verify"], "", 1);
    assert!(err.contains("broken at entry 3: entry 3 was edited"), "{err}");
    db.exec("UPDATE access_log SET target = 'msg3' WHERE id = 3").await;
    db.expect(&["audit", "verify"], "", 0);
    // A middle row deleted.
    assert_eq!(db.exec("DELETE FROM access_log WHERE id = 5").await, 1);
    let err = db.expect(&["audit", "verify"], "", 1);
    assert!(err.contains("broken at entry 5: entry 5 is missing"), "{err}");
    // The last rows deleted (and the gap put back as if 5 were the end).
    db.exec("DELETE FROM access_log WHERE id >= 5").await;
    let err = db.expect(&["audit", "verify"], "", 1);
    assert!(err.contains("broken at entry 5: entries 5..=9 are missing"), "{err}");
    db.finish().await;
}

async fn concurrent_appends_keep_one_chain(db: Db) {
    // Two stores: two pools, as two daemon instances would have.
    let (a, b) = (db.store().await, db.store().await);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                append(s.as_ref(), format!("t{t}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ok = recorder::verify_stored(a.as_ref()).await.unwrap();
    assert_eq!((ok.checked, ok.last_id), (200, 200));
    let log = entries(b.as_ref()).await;
    assert_eq!(log.iter().map(|e| e.id).collect::<Vec<_>>(), (1..=200).collect::<Vec<u64>>());
    for t in 0..4 {
        assert_eq!(log.iter().filter(|e| e.target.starts_with(&format!("t{t}-"))).count(), 50, "task {t}");
    }
    db.expect(&["audit", "verify"], "", 0);
    db.finish().await;
}

per_db!(
    users_through_the_cli,
    sign_in_and_rate_limit,
    roles_and_csrf,
    sessions_end_when_idle_and_at_their_end,
    tampering_is_named,
    passwords_typed_on_a_terminal_are_not_echoed,
    the_last_enabled_admin_stays,
    a_rewritten_log_fails_its_anchor
);
per_db!(tokio: concurrent_appends_keep_one_chain);

/// Runs `args` of the binary under `script` (a pseudo-terminal: standard input is a TTY),
/// answering each prompt containing `prompts[i]` with `answers[i]` once it is shown; returns the
/// exit code and everything the terminal showed (what the pty echoed included).
fn on_a_terminal(db: &Db, args: &str, prompts: &[&str], answers: &[&str]) -> (Option<i32>, String) {
    use std::io::{Read as _, Write as _};
    let cmd = format!("'{BIN}' {args} --config '{}'", db.path("config.toml").display());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("WEWORK_MSGAUDIT__DATABASE__URL", &db.url)
        .env("WEWORK_MSGAUDIT_LOG", "warn")
        .env("USER", "tester")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let shown = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let mut out = child.stdout.take().unwrap();
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text = |shown: &std::sync::Mutex<Vec<u8>>| String::from_utf8_lossy(&shown.lock().unwrap()).to_string();
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = 0;
    for (prompt, answer) in prompts.iter().zip(answers) {
        let start = Instant::now();
        loop {
            let t = text(&shown);
            if let Some(at) = t[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no prompt {prompt:?} in: {t:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The prompt is written just before the terminal's echo is turned off.
        std::thread::sleep(Duration::from_millis(400));
        stdin.write_all(format!("{answer}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "still running: {:?}", text(&shown));
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    reader.join().unwrap();
    (status.code(), text(&shown))
}

async fn passwords_typed_on_a_terminal_are_not_echoed(db: Db) {
    let (code, shown) = on_a_terminal(&db, "user add tina --role reviewer", &["password", "again"], &[PW, PW]);
    assert_eq!(code, Some(0), "{shown:?}");
    assert!(shown.contains("added tina (reviewer)"), "{shown:?}");
    assert!(!shown.contains("correct horse"), "the password was echoed: {shown:?}");
    let store = db.store().await;
    let tina = store.review_user("tina").await.unwrap().unwrap();
    assert!(review::password::verify(Some(&tina.password_hash), &Secret::new(PW)).await);
    // The confirmation differs: nothing changes, exit 2.
    let other = "another long passphrase";
    let (code, shown) = on_a_terminal(&db, "user passwd tina", &["password", "again"], &[other, PW]);
    assert_eq!(code, Some(2), "{shown:?}");
    assert!(shown.contains("differ"), "{shown:?}");
    assert!(!shown.contains("another long") && !shown.contains("correct horse"), "{shown:?}");
    let tina = store.review_user("tina").await.unwrap().unwrap();
    assert!(review::password::verify(Some(&tina.password_hash), &Secret::new(PW)).await, "unchanged");
    // Typed twice alike: changed.
    let (code, shown) = on_a_terminal(&db, "user passwd tina", &["password", "again"], &[other, other]);
    assert_eq!(code, Some(0), "{shown:?}");
    let tina = store.review_user("tina").await.unwrap().unwrap();
    assert!(review::password::verify(Some(&tina.password_hash), &Secret::new(other)).await);
    db.finish().await;
}

async fn the_last_enabled_admin_stays(db: Db) {
    let pw_file = db.path("pw").display().to_string();
    db.expect(&["user", "add", "root", "--role", "admin", "--password-file", &pw_file], "", 0);
    db.expect(&["user", "add", "rita", "--role", "reviewer", "--password-file", &pw_file], "", 0);
    // The command line: refused, exit 2, named; nothing changed or logged.
    let store = db.store().await;
    let logged = entries(store.as_ref()).await.len();
    let err = db.expect(&["user", "disable", "root"], "", 2);
    assert!(err.contains("root is the last enabled admin"), "{err}");
    assert!(!store.review_user("root").await.unwrap().unwrap().disabled);
    assert_eq!(entries(store.as_ref()).await.len(), logged, "a refused change is not logged");
    // Demoting through the shared rules: the same.
    let demote = accounts::Change { role: Some(Role::Auditor), ..Default::default() };
    let e = accounts::change(store.as_ref(), &accounts::Actor::cli(), "root", demote).await.unwrap_err();
    assert!(matches!(e, accounts::AccountError::LastAdmin(ref n) if n == "root"), "{e}");
    // A reviewer may still be disabled; with a second admin, the first may go.
    db.expect(&["user", "disable", "rita"], "", 0);
    db.expect(&["user", "add", "ann", "--role", "admin", "--password-file", &pw_file], "", 0);
    db.expect(&["user", "disable", "root"], "", 0);
    let err = db.expect(&["user", "disable", "ann"], "", 2);
    assert!(err.contains("ann is the last enabled admin"), "{err}");
    db.expect(&["user", "enable", "root"], "", 0);

    // The API: ann demotes root (not the last), then is the last herself: 400, named.
    let state = review::auth::auth_state(store.clone(), &ReviewConfig::default()).unwrap();
    let app = app!(state);
    let (ann, csrf) = signed_in(web_test::call_service(&app, login("ann", PW, "10.0.0.1").to_request()).await).await;
    let patch = |who: &str, body: Value| {
        web_test::TestRequest::patch()
            .uri(&format!("/api/users/{who}"))
            .insert_header((header::COOKIE, ann.clone()))
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .set_json(body)
            .to_request()
    };
    let res = web_test::call_service(&app, patch("root", json!({ "role": "auditor" }))).await;
    assert_eq!(res.status(), StatusCode::OK);
    for body in [json!({ "disabled": true }), json!({ "role": "reviewer" })] {
        let res = web_test::call_service(&app, patch("ann", body.clone())).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = web_test::read_body_json(res).await;
        assert!(err["error"].as_str().unwrap().contains("ann is the last enabled admin"), "{err}");
    }
    let ann_row = store.review_user("ann").await.unwrap().unwrap();
    assert!(!ann_row.disabled && ann_row.role == "admin");

    // The store checks again inside the change's transaction: what a race past the first check
    // meets. Rolled back, ann unchanged.
    let off = store::ReviewUserChange { disabled: Some(true), ..Default::default() };
    assert_eq!(store.review_user_change("ann", &off).await.unwrap(), store::UserChangeOutcome::LastAdmin);
    let demote = store::ReviewUserChange { role: Some("reviewer".into()), ..Default::default() };
    assert_eq!(store.review_user_change("ann", &demote).await.unwrap(), store::UserChangeOutcome::LastAdmin);
    assert!(!store.review_user("ann").await.unwrap().unwrap().disabled);
    // Two admins disabled at once through two pools: at least one stays enabled.
    let promote = accounts::Change { role: Some(Role::Admin), ..Default::default() };
    accounts::change(store.as_ref(), &accounts::Actor::cli(), "root", promote).await.unwrap();
    let (a, b) = (db.store().await, db.store().await);
    let disable = || accounts::Change { disabled: Some(true), ..Default::default() };
    let cli = accounts::Actor::cli();
    let (ra, rb) = tokio::join!(
        accounts::change(a.as_ref(), &cli, "ann", disable()),
        accounts::change(b.as_ref(), &cli, "root", disable())
    );
    assert!(ra.is_err() || rb.is_err(), "both admins disabled");
    let admins = accounts::list(store.as_ref()).await.unwrap();
    assert!(admins.iter().any(|u| u.role == "admin" && !u.disabled), "{admins:?}");
    db.finish().await;
}

/// The `head: <id>:<hash>` line of an intact verify's output.
fn head_line(out: &str) -> String {
    let line = out.lines().find_map(|l| l.strip_prefix("head: ")).unwrap_or_else(|| panic!("no head line: {out}"));
    line.trim().to_string()
}

async fn a_rewritten_log_fails_its_anchor(db: Db) {
    let store = db.store().await;
    for i in 1..=5 {
        append(store.as_ref(), format!("msg{i}")).await;
    }
    let out = db.expect(&["audit", "verify"], "", 0);
    let anchor = head_line(&out);
    let head = store.access_log_head().await.unwrap();
    assert_eq!(anchor, format!("5:{}", head.hash));
    db.expect(&["audit", "verify", "--expect-head", &anchor], "", 0);
    let err = db.expect(&["audit", "verify", "--expect-head", "5:zz"], "", 2);
    assert!(err.contains("<id>:<hash>"), "{err}");

    // Whoever can write the database rewrites entry 3 and rehashes everything after it, the
    // head too: the chain alone is intact again.
    let mut log = entries(store.as_ref()).await;
    log[2].target = "msg-forged".into();
    for i in 2..log.len() {
        log[i].prev_hash = log[i - 1].hash.clone();
        log[i].hash = review::access_log::seal(&log[i]);
        let e = &log[i];
        db.exec(&format!(
            "UPDATE access_log SET target = '{}', prev_hash = '{}', hash = '{}' WHERE id = {}",
            e.target, e.prev_hash, e.hash, e.id
        ))
        .await;
    }
    db.exec(&format!("UPDATE access_log_head SET hash = '{}'", log[4].hash)).await;
    let out = db.expect(&["audit", "verify"], "", 0);
    assert_ne!(head_line(&out), anchor);
    let err = db.expect(&["audit", "verify", "--expect-head", &anchor], "", 1);
    assert!(err.contains("broken at entry 5: entry 5 does not have the hash expected"), "{err}");

    // An export verifies offline (the database gone), against the anchor it no longer has too.
    let file = db.path("log.jsonl").display().to_string();
    db.expect(&["audit", "export", "--out", &file], "", 0);
    let offline = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify", "--file", &file])
            .args(args)
            .env("WEWORK_MSGAUDIT__DATABASE__URL", "mysql://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, out) = offline(&[]);
    assert_eq!(code, Some(0), "{out}");
    let exported_head = head_line(&out);
    assert!(exported_head.starts_with("6:"), "the export's own entry is the 6th: {out}");
    let (code, out) = offline(&["--expect-head", &exported_head]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = offline(&["--expect-head", &anchor]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("broken at entry 5 (line 5)"), "{out}");
    // An edited line is named.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"msg2\"", "\"msg-edited\"", 1)).unwrap();
    let (code, out) = offline(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("broken at entry 2 (line 2): entry 2 was edited"), "{out}");
    db.finish().await;
}
