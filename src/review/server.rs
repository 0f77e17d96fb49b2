//! The review API's HTTP server: its own actix-web listener on `[review] listen` (like
//! `observe::http`: one worker thread, no signal handlers, stopped with the daemon).
//!
//! [`ROUTES`] is the one list of routes: [`configure`] registers exactly these, the OpenAPI
//! document `docs/review-api.openapi.json` (served at `/api/openapi.json`) describes exactly these,
//! and a test holds the three together ([`super::openapi`]).
//!
//! The session layer (users, cookies, CSRF, rate limits: [`super::auth`]) is a middleware that
//! puts the [`Principal`](super::Principal) into each request's extensions; the access log is
//! the [`ReviewState`]'s recorder (the same [`AccessRecorder`](super::AccessRecorder) as the
//! session layer's).

use std::net::SocketAddr;

use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpResponse, HttpServer};

use super::api::{browse, files, find, stats, ReviewState};
use super::auth;

/// Every route: (method, path pattern). All are GET.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/openapi.json"),
    ("get", "/api/corps"),
    ("get", "/api/corps/{corpid}/people"),
    ("get", "/api/corps/{corpid}/conversations"),
    ("get", "/api/corps/{corpid}/conversations/{key}/messages"),
    ("get", "/api/corps/{corpid}/conversations/{key}/export"),
    ("get", "/api/corps/{corpid}/messages/{msgid}"),
    ("get", "/api/corps/{corpid}/media/{msgid}/{item}"),
    ("get", "/api/corps/{corpid}/reply-stats"),
    ("get", "/api/search"),
    ("get", "/api/search/export"),
];

/// Registers [`ROUTES`] with their handlers and `state`. Each is a resource of its own (no
/// catch-all `/api` scope: the session layer's own routes, e.g. sign-in, can live in the same
/// app), whose responses are never cached (`Cache-Control: no-store`: chat content must not stay
/// in a proxy or a browser cache) nor sniffed. The app's default service is the caller's
/// ([`no_route`] in [`serve`]).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<ReviewState>) {
    cfg.app_data(state);
    cfg.app_data(web::Data::new(browse::ConversationCache::default()));
    for (_, path) in ROUTES {
        let route = match *path {
            "/api/openapi.json" => web::get().to(super::openapi::document),
            "/api/corps" => web::get().to(browse::corps),
            "/api/corps/{corpid}/people" => web::get().to(browse::people),
            "/api/corps/{corpid}/conversations" => web::get().to(browse::conversations),
            "/api/corps/{corpid}/conversations/{key}/messages" => web::get().to(browse::timeline),
            "/api/corps/{corpid}/conversations/{key}/export" => web::get().to(files::export_conversation),
            "/api/corps/{corpid}/messages/{msgid}" => web::get().to(browse::message),
            "/api/corps/{corpid}/media/{msgid}/{item}" => web::get().to(files::media),
            "/api/corps/{corpid}/reply-stats" => web::get().to(stats::reply_stats),
            "/api/search" => web::get().to(find::search_messages),
            "/api/search/export" => web::get().to(files::export_search),
            // A route listed without a handler: the route test finds it answering this.
            _ => web::route().to(no_route),
        };
        cfg.service(
            web::resource(*path)
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .route(route),
        );
    }
}

/// Anything that is not a route: a JSON 404 (marked, for the route test).
pub async fn no_route() -> HttpResponse {
    HttpResponse::NotFound().insert_header(("X-No-Route", "1")).json(serde_json::json!({ "error": "no such route" }))
}

/// Binds `addr` and serves the review API on the current actix system: the session layer
/// ([`auth::layer`]: the `Principal` of a valid session into each request's extensions, 401 for
/// `/api/…` without one, CSRF on state-changing calls), the session layer's own routes (sign-in,
/// users, the access log: [`auth::configure`]), [`ROUTES`] and the console's pages
/// ([`super::console`]: `/` and `/assets/…`, open without a session, they hold no data).
pub fn serve(
    addr: SocketAddr,
    state: ReviewState,
    auth: web::Data<auth::AuthState>,
) -> std::io::Result<actix_web::dev::Server> {
    serve_on(std::net::TcpListener::bind(addr)?, state, auth)
}

/// [`serve`] on a listener already bound (e.g. to port 0, whose port the caller then knows).
pub fn serve_on(
    listener: std::net::TcpListener,
    state: ReviewState,
    auth: web::Data<auth::AuthState>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        let data = data.clone();
        App::new()
            .app_data(auth.clone())
            .wrap(from_fn(auth::layer))
            .configure(auth::configure)
            .configure(move |cfg| configure(cfg, data))
            .configure(super::console::configure)
            .default_service(web::route().to(no_route))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}
