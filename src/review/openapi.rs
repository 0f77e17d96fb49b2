//! The OpenAPI document of the review API: `docs/review-api.openapi.json`, kept by hand, built
//! into the binary and served at `GET /api/openapi.json`. The test below proves that it and
//! [`ROUTES`](super::server::ROUTES) (what [`configure`](super::server::configure) registers)
//! list the same routes, and that every route reaches a handler.

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

    use actix_web::{test, web, App};

    use super::*;
    use crate::review::api::ReviewState;
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
            ROUTES.iter().map(|(m, p)| ((*m).to_string(), (*p).to_string())).collect();
        routes.sort();
        assert_eq!(operations(), routes, "docs/review-api.openapi.json and server::ROUTES differ");

        let store = crate::store::SqliteStore::connect("sqlite::memory:", 1).await.unwrap();
        let state = ReviewState {
            store: Arc::new(store),
            search: None,
            media: MediaSource { root: std::env::temp_dir(), object_store: None },
            export_max_rows: 10,
            recorder: Arc::new(Refuse),
        };
        let app = test::init_service(
            App::new().configure(|c| configure(c, web::Data::new(state))).default_service(web::route().to(no_route)),
        )
        .await;
        for (_, path) in ROUTES {
            let uri =
                path.replace("{corpid}", "wwa").replace("{key}", "k").replace("{msgid}", "m").replace("{item}", "0");
            let resp = test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
            assert!(resp.headers().get("X-No-Route").is_none(), "{path} reaches no handler");
            let want = if *path == "/api/openapi.json" { 200 } else { 401 };
            assert_eq!(resp.status().as_u16(), want, "{path} without a session");
            assert_eq!(resp.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{path}");
        }
        let resp = test::call_service(&app, test::TestRequest::get().uri("/api/nothing").to_request()).await;
        assert!(resp.headers().get("X-No-Route").is_some());
    }
}
