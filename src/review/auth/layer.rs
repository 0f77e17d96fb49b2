//! The session middleware ([`layer`], for `actix_web::middleware::from_fn`): before any handler
//! runs it
//! 1. reads the `wwmsg_session` cookie and looks its token's hash up
//!    ([`ReviewRepo::review_session`](crate::store::ReviewRepo::review_session): not past
//!    `session_max`, used within `session_idle`, user enabled);
//! 2. for a live session, refuses a POST/PUT/PATCH/DELETE whose `X-CSRF-Token` is not the
//!    session's (403; sign-in itself is exempt, it has no session yet), then puts the
//!    [`Principal`] (role and, for reviewers, the [`Scope`](crate::review::Scope) of its grants,
//!    read on every request so that a revoked grant applies at once) and a [`SessionRef`] into
//!    the request's extensions;
//! 3. without one, refuses every `/api/…` request but sign-in and the OpenAPI document
//!    ([`OPEN_PATHS`]; 401): endpoints are closed unless opened here, whatever their extractors.
//!
//! Its errors answer JSON like the handlers' ([`AuthError`]). It needs the
//! `web::Data<AuthState>` of [`auth_state`](super::auth_state) in the app's data.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, ResponseError as _};

use super::{AuthError, AuthState};
use crate::review::session::{self, CSRF_HEADER};
use crate::review::{accounts, Principal, Role};
use crate::secret::Secret;

/// Sign-in: the one state-changing `/api/…` path open without a session.
pub const LOGIN_PATH: &str = "/api/login";

/// The `/api/…` paths open without a session: sign-in, and the OpenAPI document (it describes
/// the API, holds no data, and clients read it before they can sign in).
pub const OPEN_PATHS: &[&str] = &[LOGIN_PATH, "/api/openapi.json"];

/// The session a request came with (in its extensions beside the [`Principal`]): what sign-out
/// ends and `/api/me` shows.
#[derive(Debug, Clone)]
pub struct SessionRef {
    /// The key of its `review_session` row.
    pub token_hash: String,
    /// Its CSRF token.
    pub csrf_token: Secret,
}

/// Whether `method` changes state (and so needs the CSRF token).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The session middleware (see the module documentation).
pub async fn layer<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match resolve(&req).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// Steps 1 to 3: `Ok` to go on to the handler.
async fn resolve(req: &ServiceRequest) -> Result<(), AuthError> {
    let state = req
        .app_data::<web::Data<AuthState>>()
        .cloned()
        .ok_or_else(|| AuthError::Config("the review server has no AuthState (review::auth::auth_state)".into()))?;
    // The path as the router matches it (percent-encoded unreserved characters decoded, as in
    // `/%61pi/me`), not the raw one: else an encoded spelling would pass as "not /api/".
    let path = req.match_info().as_str().to_string();
    let is_login = path == LOGIN_PATH;
    let cookies = req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok());
    let found = match session::cookie_token(cookies) {
        Some(token) => {
            let token_hash = session::token_hash(&token);
            let idle_ms = i64::try_from(state.idle.as_millis()).unwrap_or(i64::MAX);
            state.store.review_session(&token_hash, idle_ms).await?.map(|s| (token_hash, s))
        }
        None => None,
    };
    let found = found.and_then(|(h, s)| s.user.role.parse::<Role>().ok().map(|role| (h, s, role)));
    let Some((token_hash, s, role)) = found else {
        let open = !path.starts_with("/api/") || OPEN_PATHS.contains(&path.as_str());
        return if open { Ok(()) } else { Err(AuthError::Unauthenticated) };
    };
    if changes_state(req.method()) && !is_login {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !session::same(sent, s.csrf_token.expose()) {
            return Err(AuthError::Csrf);
        }
    }
    let scope = accounts::scope_of(state.store.as_ref(), s.user.id, role).await?;
    let principal = Principal { user_id: s.user.id, username: s.user.username, role, scope };
    let mut ext = req.extensions_mut();
    ext.insert(principal);
    ext.insert(SessionRef { token_hash, csrf_token: s.csrf_token });
    Ok(())
}
