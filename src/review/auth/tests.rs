//! The middleware and sign-in over an in-memory SQLite store: CSRF, the closed-by-default
//! `/api/…`, the cookie's flags. (Both databases, roles, rate limits and the access log are
//! exercised by `tests/review_auth.rs`.)

use actix_web::http::{header, StatusCode};
use actix_web::{test, web, App, HttpResponse};

use super::*;
use crate::review::accounts::{self, Actor};
use crate::secret::Secret;

const PW: &str = "a long enough password";

async fn state() -> web::Data<AuthState> {
    let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
    store.migrate().await.unwrap();
    accounts::add(store.as_ref(), &Actor::cli(), "alice", Role::Reviewer, &Secret::new(PW), vec![]).await.unwrap();
    let cfg = ReviewConfig { cookie_secure: "auto".into(), ..ReviewConfig::default() };
    auth_state(store, &cfg).unwrap()
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(
            App::new()
                .app_data($state.clone())
                .wrap(actix_web::middleware::from_fn(layer))
                .configure(configure)
                .route("/api/echo", web::post().to(|p: Principal| async move { HttpResponse::Ok().body(p.username) }))
                .route("/static/x", web::get().to(|| async { HttpResponse::Ok().body("open") })),
        )
        .await
    };
}

fn login_req(https: bool) -> test::TestRequest {
    let r =
        test::TestRequest::post().uri("/api/login").set_json(serde_json::json!({"username": "alice", "password": PW}));
    if https {
        r.insert_header(("X-Forwarded-Proto", "https"))
    } else {
        r
    }
}

fn session_cookie<B>(res: &actix_web::dev::ServiceResponse<B>) -> String {
    let c = res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    c.split(';').next().unwrap().to_string()
}

#[actix_web::test]
async fn state_changing_requests_need_the_csrf_token() {
    let state = state().await;
    let app = app!(state);
    let res = test::call_service(&app, login_req(false).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = session_cookie(&res);
    let body: serde_json::Value = test::read_body_json(res).await;
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(body["username"], "alice");
    assert_eq!(body["role"], "reviewer");

    let post = |csrf: Option<&str>| {
        let r = test::TestRequest::post().uri("/api/echo").insert_header((header::COOKIE, cookie.clone()));
        match csrf {
            Some(c) => r.insert_header(("X-CSRF-Token", c.to_string())).to_request(),
            None => r.to_request(),
        }
    };
    for bad in [None, Some("wrong"), Some(&csrf[..csrf.len() - 1])] {
        let res = test::call_service(&app, post(bad)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{bad:?}");
        let err: serde_json::Value = test::read_body_json(res).await;
        assert!(err["error"].as_str().unwrap().contains("X-CSRF-Token"), "{err}");
    }
    let res = test::call_service(&app, post(Some(&csrf))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(test::read_body(res).await, "alice");
    // GET needs none; /api/me gives the token back (a reloaded page gets it there).
    let me = test::TestRequest::get().uri("/api/me").insert_header((header::COOKIE, cookie.clone())).to_request();
    let me: serde_json::Value = test::read_body_json(test::call_service(&app, me).await).await;
    assert_eq!(me["csrf_token"], csrf.as_str());
}

#[actix_web::test]
async fn api_paths_are_closed_without_a_session_and_others_are_left_alone() {
    let state = state().await;
    let app = app!(state);
    for req in [
        test::TestRequest::get().uri("/api/me").to_request(),
        test::TestRequest::post().uri("/api/echo").to_request(),
        test::TestRequest::get().uri("/api/users").to_request(),
        test::TestRequest::get().uri("/api/anything-else").to_request(),
        // Percent-encoded spellings the router decodes: closed all the same.
        test::TestRequest::get().uri("/%61pi/me").to_request(),
        test::TestRequest::post().uri("/%61pi/echo").to_request(),
        test::TestRequest::get().uri("/api/%6De").to_request(),
        test::TestRequest::get()
            .uri("/api/me")
            .insert_header((header::COOKIE, format!("wwmsg_session={}", crate::review::session::new_token().expose())))
            .to_request(),
    ] {
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), "application/json");
        let err: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(err["error"], "sign in first");
    }
    let res = test::call_service(&app, test::TestRequest::get().uri("/static/x").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn the_cookie_is_httponly_strict_and_secure_behind_https() {
    let state = state().await;
    let app = app!(state);
    let plain = test::call_service(&app, login_req(false).to_request()).await;
    let c = plain.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(c.starts_with("wwmsg_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    assert!(c.contains("Path=/") && !c.contains("Secure"), "{c}");
    let tls = test::call_service(&app, login_req(true).to_request()).await;
    let c = tls.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(c.ends_with("; Secure"), "X-Forwarded-Proto: https gives Secure: {c}");
    // The body never holds the session token.
    let cookie = session_cookie(&tls);
    let body = test::read_body(tls).await;
    assert!(!String::from_utf8_lossy(&body).contains(cookie.trim_start_matches("wwmsg_session=")));
}

#[actix_web::test]
async fn a_bad_cookie_secure_setting_is_refused() {
    let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
    let cfg = ReviewConfig { cookie_secure: "sometimes".into(), ..ReviewConfig::default() };
    assert!(matches!(auth_state(store, &cfg), Err(AuthError::Config(_))));
}

#[actix_web::test]
async fn the_client_address_is_the_peer_unless_a_trusted_proxy_forwards() {
    let state = state().await;
    let req = |peer: &str, xff: Option<&str>| {
        let r = test::TestRequest::default().peer_addr(peer.parse().unwrap());
        match xff {
            Some(x) => r.insert_header(("X-Forwarded-For", x)).to_http_request(),
            None => r.to_http_request(),
        }
    };
    let addr = |peer: &str, xff: Option<&str>| login::client_addr(&req(peer, xff), &state.trusted_proxies);
    // A direct client cannot pick its address.
    assert_eq!(addr("203.0.113.9:5000", Some("10.1.1.1")), "203.0.113.9");
    assert_eq!(addr("203.0.113.9:5000", None), "203.0.113.9");
    // Through the local proxy: what it appended, not what the client wrote before it.
    assert_eq!(addr("127.0.0.1:5000", Some("10.1.1.1, 198.51.100.7")), "198.51.100.7");
    assert_eq!(addr("[::1]:5000", Some("198.51.100.7, 127.0.0.1")), "198.51.100.7", "a chain of proxies");
    assert_eq!(addr("127.0.0.1:5000", None), "127.0.0.1");
    assert_eq!(addr("127.0.0.1:5000", Some("garbage")), "127.0.0.1");
    let cfg = ReviewConfig { trusted_proxies: vec!["proxy.local".into()], ..ReviewConfig::default() };
    let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
    assert!(matches!(auth_state(store, &cfg), Err(AuthError::Config(_))));
}

#[actix_web::test]
async fn a_forged_forwarded_for_does_not_escape_the_address_limit() {
    let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
    store.migrate().await.unwrap();
    let cfg = ReviewConfig { login_max_failures: 2, ..ReviewConfig::default() };
    let state = auth_state(store, &cfg).unwrap();
    let app = app!(state);
    let guess = |name: &str, i: u32| {
        test::TestRequest::post()
            .uri("/api/login")
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", format!("10.0.0.{i}")))
            .set_json(serde_json::json!({"username": name, "password": "guess guess guess"}))
            .to_request()
    };
    for (i, name) in ["x1", "x2"].iter().enumerate() {
        assert_eq!(test::call_service(&app, guess(name, i as u32)).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(test::call_service(&app, guess("x3", 9)).await.status(), StatusCode::TOO_MANY_REQUESTS);
}
