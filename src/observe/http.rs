//! The HTTP endpoint (`[http] listen`, off by default): `/healthz`, `/metrics`, `/status`.
//!
//! - `/healthz`: 200 `ok` when the database answers and no corp is failing, else 503 with one
//!   line per reason (for load balancers, supervisors, uptime checks); a corp whose recent
//!   records are undecryptable is named with the failing `publickey_ver`;
//! - `/metrics`: Prometheus text ([`super::metrics::render`]);
//! - `/status`: the [`Report`](super::Report) as JSON (read by `wework-msgaudit status`).
//!
//! Every endpoint serves the observer's shared snapshot ([`super::snapshot::Snapshots`]): at most
//! one report build a second, whatever the request rate. With `[http] token_file`, every request
//! must carry `Authorization: Bearer <token>` (compared in constant time; 401 otherwise; the
//! token is never logged). The server runs on its own actix-web worker thread and installs no
//! signal handlers (the daemon owns SIGTERM/SIGINT).

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use super::observer::{GetReport, Observer};
use super::{metrics, Report};
use crate::secret::Secret;

/// What the handlers share.
struct State {
    observer: Addr<Observer>,
    token: Option<Secret>,
}

/// Why a request gets no report.
enum Refusal {
    /// No or a wrong bearer token.
    Unauthorized,
    /// The observer actor is gone.
    ObserverGone(String),
}

impl Refusal {
    fn response(self) -> HttpResponse {
        match self {
            Refusal::Unauthorized => HttpResponse::Unauthorized()
                .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain")
                .body("401 unauthorized: send Authorization: Bearer <the token of [http] token_file>\n"),
            Refusal::ObserverGone(e) => HttpResponse::ServiceUnavailable().body(format!("the observer is gone: {e}\n")),
        }
    }
}

/// Whether the request carries the configured bearer token (always, without one).
fn authorized(req: &HttpRequest, state: &State) -> bool {
    let Some(token) = &state.token else { return true };
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|given| {
            aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), token.expose().as_bytes()).is_ok()
        })
}

async fn report(req: &HttpRequest, state: &State) -> Result<Arc<Report>, Refusal> {
    if !authorized(req, state) {
        return Err(Refusal::Unauthorized);
    }
    state.observer.send(GetReport).await.map_err(|e| Refusal::ObserverGone(e.to_string()))
}

/// The `/healthz` body of an unhealthy report: one line per reason.
pub fn unhealthy_lines(r: &Report) -> String {
    let mut body = String::new();
    if let Some(e) = &r.database_error {
        body.push_str(&format!("database: {e}\n"));
    }
    for c in r.failing() {
        body.push_str(&format!("corp {} failing: {}\n", c.corpid, c.failing_reason()));
    }
    body
}

async fn healthz(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match report(&req, &state).await {
        Ok(r) if r.healthy => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        Ok(r) => HttpResponse::ServiceUnavailable().content_type("text/plain").body(unhealthy_lines(&r)),
        Err(refusal) => refusal.response(),
    }
}

async fn metrics_page(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match report(&req, &state).await {
        Ok(r) => HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(metrics::render(&r)),
        Err(refusal) => refusal.response(),
    }
}

async fn status(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match report(&req, &state).await {
        Ok(r) => HttpResponse::Ok().json(&*r),
        Err(refusal) => refusal.response(),
    }
}

/// The token of `[http] token_file` (`None` when unset). The error names the file, never its
/// content.
pub fn read_token(path: &std::path::Path) -> Result<Option<Secret>, String> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("http.token_file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("http.token_file {}: the file is empty", path.display()));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("http.token_file {}: the token must be one line without spaces", path.display()));
    }
    Ok(Some(Secret::new(token)))
}

/// Binds `addr` and serves until the returned server is stopped (or the process ends); with
/// `token`, every request needs it as a bearer token. Must be called inside an actix `System`.
pub fn serve(
    addr: SocketAddr,
    observer: Addr<Observer>,
    token: Option<Secret>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(State { observer, token });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics_page))
            .route("/status", web::get().to(status))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?
    .run();
    Ok(server)
}
