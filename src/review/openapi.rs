//! The OpenAPI document of the review API: `docs/review-api.openapi.json`, kept by hand, built
//! into the binary and served at `GET /api/openapi.json` (open without a session). The test below
//! proves that it lists exactly the read endpoints' [`ROUTES`](super::server::ROUTES) (what
//! [`configure`](super::server::configure) registers) and the session layer's
//! [`auth::ROUTES`](super::auth::ROUTES) (what [`auth::configure`](super::auth::configure)
//! registers), and that every route reaches a handler behind the real session layer.

use actix_web::HttpResponse;

/// The document.
pub const DOCUMENT: &str = include_str!("../../docs/review-api.openapi.json");

/// `GET /api/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT)
}

/// `(method, path)` of every operation of the document.
pub fn operations() -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                out.push((method.clone(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::http::Method;
    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App};

    use super::*;
    use crate::config::ReviewConfig;
    use crate::review::api::ReviewState;
    use crate::review::auth;
    use crate::review::media::MediaSource;
    use crate::review::server::{configure, no_route, ROUTES};
    use crate::review::{AccessEvent, AccessRecorder, Principal};

    struct Refuse;

    #[async_trait::async_trait]
    impl AccessRecorder for Refuse {
        async fn record(&self, _: Option<&Principal>, _: AccessEvent) -> Result<(), String> {
            Err("no log".into())
        }
    }

    #[actix_web::test]
    async fn the_document_and_the_routes_agree() {
        let mut routes: Vec<(String, String)> =
            ROUTES.iter().chain(auth::ROUTES).map(|(m, p)| ((*m).to_string(), (*p).to_string())).collect();
        routes.sort();
        let n = routes.len();
        routes.dedup();
        assert_eq!(routes.len(), n, "a route listed twice (server::ROUTES and auth::ROUTES)");
        assert_eq!(operations(), routes, "docs/review-api.openapi.json and server::ROUTES + auth::ROUTES differ");

        // The app as `server::serve` builds it: the real session layer, its routes, the reads.
        let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let auth = auth::auth_state(store.clone(), &ReviewConfig::default()).unwrap();
        let state = ReviewState {
            store,
            search: None,
            media: MediaSource { root: std::env::temp_dir(), object_store: None },
            export_max_rows: 10,
            recorder: Arc::new(Refuse),
        };
        let data = web::Data::new(state);
        let app = test::init_service(
            App::new()
                .app_data(auth)
                .wrap(from_fn(auth::layer))
                .configure(auth::configure)
                .configure(|c| configure(c, data))
                .default_service(web::route().to(no_route)),
        )
        .await;
        for (method, path) in ROUTES.iter().chain(auth::ROUTES) {
            let uri = path
                .replace("{corpid}", "wwa")
                .replace("{key}", "k")
                .replace("{msgid}", "m")
                .replace("{item}", "0")
                .replace("{username}", "bob");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let req = test::TestRequest::default().method(method).uri(&uri);
            // Sign-in with a body that does not parse: its handler's JSON 400.
            let req = if *path == auth::LOGIN_PATH {
                req.set_payload("{").insert_header(("content-type", "application/json"))
            } else {
                req
            };
            let resp = test::call_service(&app, req.to_request()).await;
            assert!(resp.headers().get("X-No-Route").is_none(), "{path} reaches no handler");
            let want = match *path {
                "/api/openapi.json" => 200,
                auth::LOGIN_PATH => 400,
                _ => 401,
            };
            assert_eq!(resp.status().as_u16(), want, "{path} without a session");
            assert_eq!(resp.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{path}");
        }
        let resp = test::call_service(&app, test::TestRequest::get().uri("/api/nothing").to_request()).await;
        assert_eq!(resp.status().as_u16(), 401, "closed without a session, routes or not");
        let resp = test::call_service(&app, test::TestRequest::get().uri("/nothing").to_request()).await;
        assert!(resp.headers().get("X-No-Route").is_some());
    }

    /// Signed in, every session-layer route reaches its handler (a route registered under the
    /// wrong method or path would answer 404/405 here instead of the handler's answer).
    #[actix_web::test]
    async fn every_auth_route_reaches_its_handler_signed_in() {
        use crate::review::accounts::{self, Actor};
        use crate::review::Role;
        use crate::secret::Secret;
        let store = crate::store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let pw = "a long enough password";
        accounts::add(store.as_ref(), &Actor::cli(), "root", Role::Admin, &Secret::new(pw), vec![]).await.unwrap();
        let auth = auth::auth_state(store, &ReviewConfig::default()).unwrap();
        let app = test::init_service(
            App::new()
                .app_data(auth)
                .wrap(from_fn(auth::layer))
                .configure(auth::configure)
                .default_service(web::route().to(no_route)),
        )
        .await;
        let login = test::TestRequest::post()
            .uri(auth::LOGIN_PATH)
            .set_json(serde_json::json!({"username": "root", "password": pw}))
            .to_request();
        let resp = test::call_service(&app, login).await;
        assert_eq!(resp.status().as_u16(), 200);
        let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
        let body: serde_json::Value = test::read_body_json(resp).await;
        let csrf = body["csrf_token"].as_str().unwrap().to_string();
        // (method, uri, JSON body, the handler's answer for an admin). Sign-out comes last.
        let calls = [
            ("GET", "/api/me", None, 200),
            ("GET", "/api/users", None, 200),
            (
                "POST",
                "/api/users",
                Some(serde_json::json!({"username": "bob", "role": "auditor", "password": pw})),
                201,
            ),
            ("PATCH", "/api/users/bob", Some(serde_json::json!({"disabled": true})), 200),
            ("GET", "/api/access-log", None, 403),
            ("GET", "/api/access-log/verify", None, 403),
            ("POST", "/api/logout", None, 200),
        ];
        let mut covered: Vec<(String, String)> = Vec::new();
        for (method, uri, body, want) in calls {
            let mut req = test::TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(uri)
                .insert_header(("cookie", cookie.as_str()))
                .insert_header(("X-CSRF-Token", csrf.as_str()));
            if let Some(b) = body {
                req = req.set_json(b);
            }
            let resp = test::call_service(&app, req.to_request()).await;
            assert!(resp.headers().get("X-No-Route").is_none(), "{method} {uri} reaches no handler");
            assert_eq!(resp.status().as_u16(), want, "{method} {uri}");
            let path = if uri == "/api/users/bob" { "/api/users/{username}" } else { uri };
            covered.push((method.to_lowercase(), path.to_string()));
        }
        covered.push(("post".into(), auth::LOGIN_PATH.into()));
        covered.sort();
        let mut listed: Vec<(String, String)> = auth::ROUTES.iter().map(|(m, p)| ((*m).into(), (*p).into())).collect();
        listed.sort();
        assert_eq!(covered, listed, "every auth route is called above");
    }
}
