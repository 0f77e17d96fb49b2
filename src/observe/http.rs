//! The HTTP endpoint (`[http] listen`, off by default): `/healthz`, `/metrics`, `/status`.
//!
//! - `/healthz`: 200 `ok` when the database answers and no corp is failing, else 503 with one
//!   line per reason (for load balancers, supervisors, uptime checks);
//! - `/metrics`: Prometheus text ([`super::metrics::render`]);
//! - `/status`: the [`Report`](super::Report) as JSON (read by `wework-msgaudit status`).
//!
//! The server runs on its own actix-web worker thread and asks the [`Observer`] for each
//! report; it installs no signal handlers (the daemon owns SIGTERM/SIGINT). No authentication:
//! bind it to loopback or a private network.

use std::net::SocketAddr;

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};

use super::observer::{GetReport, Observer};
use super::{metrics, Report};

async fn report(observer: &Addr<Observer>) -> Result<Report, HttpResponse> {
    observer
        .send(GetReport)
        .await
        .map_err(|e| HttpResponse::ServiceUnavailable().body(format!("the observer is gone: {e}\n")))
}

async fn healthz(observer: web::Data<Addr<Observer>>) -> HttpResponse {
    match report(&observer).await {
        Ok(r) if r.healthy => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        Ok(r) => {
            let mut body = String::new();
            if let Some(e) = &r.database_error {
                body.push_str(&format!("database: {e}\n"));
            }
            for c in r.failing() {
                body.push_str(&format!("corp {} failing: {}\n", c.corpid, c.last_error.as_deref().unwrap_or(&c.state)));
            }
            HttpResponse::ServiceUnavailable().content_type("text/plain").body(body)
        }
        Err(resp) => resp,
    }
}

async fn metrics_page(observer: web::Data<Addr<Observer>>) -> HttpResponse {
    match report(&observer).await {
        Ok(r) => HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(metrics::render(&r)),
        Err(resp) => resp,
    }
}

async fn status(observer: web::Data<Addr<Observer>>) -> HttpResponse {
    match report(&observer).await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(resp) => resp,
    }
}

/// Binds `addr` and serves until the returned server is stopped (or the process ends). Must be
/// called inside an actix `System`.
pub fn serve(addr: SocketAddr, observer: Addr<Observer>) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(observer);
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
