//! Sign-in, sessions and the user and access-log endpoints of the review API.
//!
//! How the parts connect:
//! - [`auth_state`] builds the [`AuthState`] from the store and `[review]`: the store, the
//!   access-log recorder, the session settings and the in-memory sign-in limiter;
//! - [`layer`] (the middleware, `actix_web::middleware::from_fn`) resolves the session cookie
//!   into a [`Principal`](super::Principal) in the request's extensions, checks the CSRF token of
//!   state-changing requests and refuses `/api/…` requests without a session (401), except
//!   sign-in and the OpenAPI document;
//! - [`configure`] mounts [`ROUTES`] (the one list of this module's routes, documented in the
//!   OpenAPI document beside the read endpoints'), whose handlers live in `login` (sign-in,
//!   sign-out, `/api/me`), `users` (admin) and `audit` (auditor).
//!
//! Wiring, in the review server (the other endpoints take a `Principal` argument and append
//! through [`AuthState::recorder`]):
//!
//! ```ignore
//! let auth = review::auth::auth_state(store.clone(), &cfg.review)?;
//! HttpServer::new(move || {
//!     App::new()
//!         .app_data(auth.clone())
//!         .wrap(actix_web::middleware::from_fn(review::auth::layer))
//!         .configure(review::auth::configure)
//!         .configure(/* the read endpoints */)
//! })
//! ```
//!
//! Every error answers JSON `{"error": "..."}` ([`AuthError`]).

mod audit;
mod layer;
mod login;
mod users;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};

pub use layer::{layer, SessionRef, LOGIN_PATH, OPEN_PATHS};

use super::ratelimit::LoginLimiter;
use super::recorder::StoreRecorder;
use super::session::CookieSecure;
use super::{AccessRecorder, Principal, Role};
use crate::config::ReviewConfig;
use crate::store::{Store, StoreError};

/// What the middleware and the handlers share (one per server, `web::Data`).
pub struct AuthState {
    store: Arc<dyn Store>,
    recorder: Arc<dyn AccessRecorder>,
    idle: Duration,
    max: Duration,
    secure: CookieSecure,
    limiter: LoginLimiter,
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("store", &self.store)
            .field("idle", &self.idle)
            .field("max", &self.max)
            .field("secure", &self.secure)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// The access log, for the other endpoints to append through.
    pub fn recorder(&self) -> Arc<dyn AccessRecorder> {
        self.recorder.clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// The [`AuthState`] of a server over `store`, with `[review]`'s session and sign-in settings.
pub fn auth_state(store: Arc<dyn Store>, cfg: &ReviewConfig) -> Result<web::Data<AuthState>, AuthError> {
    let secure: CookieSecure = cfg.cookie_secure.parse().map_err(AuthError::Config)?;
    if cfg.session_idle.is_zero() || cfg.session_max.is_zero() {
        return Err(AuthError::Config("[review] session_idle and session_max must be above 0".into()));
    }
    let proxies = &cfg.trusted_proxies;
    let trusted_proxies = proxies
        .iter()
        .map(|a| a.parse().map_err(|_| AuthError::Config(format!("[review] trusted_proxies: {a:?} is no IP address"))))
        .collect::<Result<Vec<std::net::IpAddr>, _>>()?;
    Ok(web::Data::new(AuthState {
        recorder: Arc::new(StoreRecorder::new(store.clone())),
        store,
        idle: cfg.session_idle,
        max: cfg.session_max,
        secure,
        limiter: LoginLimiter::new(cfg.login_max_failures, cfg.login_window),
        trusted_proxies,
    }))
}

/// Every route of the session layer: (method, path pattern). [`configure`] registers exactly
/// these (one resource per path, its methods as routes); the OpenAPI document describes them
/// beside [`server::ROUTES`](super::server::ROUTES), and a test holds them together
/// ([`super::openapi`]).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", LOGIN_PATH),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("patch", "/api/users/{username}"),
    ("get", "/api/access-log"),
    ("get", "/api/access-log/verify"),
];

/// The handler of one of [`ROUTES`].
fn route(method: &str, path: &str) -> actix_web::Route {
    match (method, path) {
        ("post", LOGIN_PATH) => web::post().to(login::login),
        ("post", "/api/logout") => web::post().to(login::logout),
        ("get", "/api/me") => web::get().to(login::me),
        ("get", "/api/users") => web::get().to(users::list),
        ("post", "/api/users") => web::post().to(users::add),
        ("patch", "/api/users/{username}") => web::patch().to(users::change),
        ("get", "/api/access-log") => web::get().to(audit::read),
        ("get", "/api/access-log/verify") => web::get().to(audit::verify),
        // A route listed without a handler: the route test finds it answering this.
        _ => web::route().to(super::server::no_route),
    }
}

/// Registers [`ROUTES`] (paths are absolute: `/api/…`): one resource per path, whose bodies and
/// queries that do not parse answer JSON 400 ([`AuthError`]), and whose answers are never cached nor sniffed.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&str> = Vec::new();
    for (_, path) in ROUTES {
        if !paths.contains(path) {
            paths.push(path);
        }
    }
    for path in paths {
        let query =
            web::QueryConfig::default().error_handler(|e, _| AuthError::BadRequest(format!("bad query: {e}")).into());
        let mut resource = web::resource(path).app_data(json_config()).app_data(query).wrap(
            actix_web::middleware::DefaultHeaders::new()
                .add((header::CACHE_CONTROL, "no-store"))
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
        );
        for (method, _) in ROUTES.iter().filter(|(_, p)| *p == path) {
            resource = resource.route(route(method, path));
        }
        cfg.service(resource);
    }
}

/// Everything an auth request can fail with; answered as JSON `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No (live) session.
    #[error("sign in first")]
    Unauthenticated,
    /// Sign-in refused: unknown name, wrong password or disabled user alike.
    #[error("wrong user name or password")]
    BadCredentials,
    /// A state-changing request without the session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    Csrf,
    /// The signed-in user's role may not do this.
    #[error("this needs the {0} role")]
    Forbidden(Role),
    /// Too many failed sign-ins: retry after these seconds.
    #[error("too many failed sign-ins: try again in {0} s")]
    RateLimited(u64),
    /// Bad input.
    #[error("{0}")]
    BadRequest(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// The access log could not be written: what was asked is refused.
    #[error("the access log could not be written; try again later")]
    Log,
    /// A `[review]` setting is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// The database failed (details in the server's log, not in the answer).
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// Worth trying again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Log | Self::RateLimited(_) => true,
            Self::Store(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<super::accounts::AccountError> for AuthError {
    fn from(e: super::accounts::AccountError) -> Self {
        use super::accounts::AccountError as A;
        match e {
            A::Exists(_) => Self::Conflict(e.to_string()),
            A::NoSuchUser(_) => Self::NotFound(e.to_string()),
            A::Log(source) => {
                tracing::error!(error = %source, "appending to the access log failed");
                Self::Log
            }
            A::Store(source) => Self::Store(source),
            other if other.is_client_error() => Self::BadRequest(other.to_string()),
            other => {
                tracing::error!(error = %other, "changing a review user failed");
                Self::Store(StoreError::InvalidData(other.to_string()))
            }
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Csrf | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Log => StatusCode::SERVICE_UNAVAILABLE,
            Self::Config(_) | Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Store(e) = self {
            tracing::error!(error = %e, "review API: database error");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Self::RateLimited(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// `Ok` when `p` has `role`, else [`AuthError::Forbidden`].
pub fn require(p: &Principal, role: Role) -> Result<(), AuthError> {
    if p.role == role {
        Ok(())
    } else {
        Err(AuthError::Forbidden(role))
    }
}

/// The JSON body settings of these routes: a body that does not parse answers JSON 400 too.
fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| AuthError::BadRequest(format!("bad request body: {e}")).into())
}

#[cfg(test)]
mod tests;
