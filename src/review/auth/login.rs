//! `POST /api/login`, `POST /api/logout`, `GET /api/me`.
//!
//! Sign-in checks the limiter first (429 with `Retry-After`, see `ratelimit`), then the password
//! (Argon2id; an unknown name is verified against a dummy hash, so the answer takes as long), and
//! answers the same 401 for an unknown name, a wrong password and a disabled user. Every attempt
//! is appended to the access log (`login` or `login_failed` with the reason and the client
//! address; never the password) before the answer; a session starts only once its `login` entry
//! is written. A session cookie the browser already had is ended first (no session fixation).

use std::net::IpAddr;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use serde_json::json;

use super::{AuthError, AuthState, SessionRef};
use crate::review::{accounts, password, session, AccessEvent, Principal, Role};
use crate::secret::Secret;

/// The sign-in body.
#[derive(serde::Deserialize)]
pub(super) struct Credentials {
    username: String,
    password: Secret,
}

/// The client's address as the limiter and the access log count it: the peer's, unless the peer
/// is one of `[review] trusted_proxies`; then the last `X-Forwarded-For` address that is not a
/// trusted proxy's (the one the proxy appended: whatever comes before it, the client wrote).
pub(super) fn client_addr(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return "unknown".into() };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).filter(|h| !h.is_empty()).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>().or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip())) {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip.to_string(),
            // Not an address: nothing further left can be believed either.
            Err(_) => break,
        }
    }
    client.to_string()
}

fn event(action: &str, target: &str, detail: serde_json::Value) -> AccessEvent {
    AccessEvent { action: action.into(), corpid: None, target: target.into(), detail }
}

pub(super) async fn login(
    req: HttpRequest,
    state: web::Data<AuthState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AuthError> {
    let Credentials { username, password } = body.into_inner();
    let valid = accounts::username(&username).ok();
    // An invalid name is refused like an unknown one (after the same work).
    let name = valid.clone().unwrap_or_else(|| username.chars().take(64).collect::<String>().to_lowercase());
    let addr = client_addr(&req, &state.trusted_proxies);
    let (user_key, addr_key) = (format!("user:{name}"), format!("addr:{addr}"));
    let keys = [user_key.as_str(), addr_key.as_str()];
    let now = Instant::now();
    let log = |e: AccessEvent, who: Option<Principal>| {
        let recorder = state.recorder();
        async move { recorder.record(who.as_ref(), e).await.map_err(|_| AuthError::Log) }
    };

    // Counted as a failure from here on, unless it succeeds (see `ratelimit`).
    if let Err(wait) = state.limiter.attempt(&keys, now) {
        log(event("login_failed", &name, json!({ "reason": "rate_limited", "addr": addr })), None).await?;
        return Err(AuthError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)));
    }
    let user = match &valid {
        Some(n) => state.store.review_user(n).await?,
        None => None,
    };
    let matched = password::verify(user.as_ref().map(|u| &u.password_hash), &password).await;
    let role = user.as_ref().and_then(|u| u.role.parse::<Role>().ok());
    let refused = match (&user, role) {
        (None, _) => Some("unknown_user"),
        (Some(_), _) if !matched => Some("wrong_password"),
        (Some(u), _) if u.disabled => Some("disabled"),
        (Some(_), None) => Some("unknown_role"),
        _ => None,
    };
    let (Some(user), Some(role), None) = (user, role, refused) else {
        let reason = refused.unwrap_or("refused");
        log(event("login_failed", &name, json!({ "reason": reason, "addr": addr })), None).await?;
        return Err(AuthError::BadCredentials);
    };
    state.limiter.succeeded(&user_key, &[&addr_key], now);

    let scope = accounts::scope_of(state.store.as_ref(), user.id, role).await?;
    let principal = Principal { user_id: user.id, username: user.username.clone(), role, scope };
    log(event("login", &user.username, json!({ "addr": addr })), Some(principal.clone())).await?;
    let cookies = req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok());
    if let Some(old) = session::cookie_token(cookies) {
        state.store.review_session_end(&session::token_hash(&old)).await?;
    }
    let token = session::new_token();
    let csrf = session::new_token();
    let max_ms = i64::try_from(state.max.as_millis()).unwrap_or(i64::MAX);
    state.store.review_session_start(&session::token_hash(&token), user.id, &csrf, max_ms).await?;
    let secure = state.secure.secure(req.connection_info().scheme());
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, session::set_cookie(&token, secure)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "username": principal.username,
            "role": role,
            "csrf_token": csrf.expose(),
            "scope": principal.scope,
        })))
}

/// The request's principal and session (the middleware put them there).
fn signed_in(req: &HttpRequest) -> Result<(Principal, SessionRef), AuthError> {
    let ext = req.extensions();
    match (ext.get::<Principal>(), ext.get::<SessionRef>()) {
        (Some(p), Some(s)) => Ok((p.clone(), s.clone())),
        _ => Err(AuthError::Unauthenticated),
    }
}

pub(super) async fn logout(req: HttpRequest, state: web::Data<AuthState>) -> Result<HttpResponse, AuthError> {
    let (p, s) = signed_in(&req)?;
    // The session ends even when the log cannot be written (then the answer says so).
    state.store.review_session_end(&s.token_hash).await?;
    let secure = state.secure.secure(req.connection_info().scheme());
    state.recorder().record(Some(&p), event("logout", &p.username, json!({}))).await.map_err(|_| AuthError::Log)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, session::clear_cookie(secure)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "signed_out": p.username })))
}

pub(super) async fn me(req: HttpRequest) -> Result<HttpResponse, AuthError> {
    let (p, s) = signed_in(&req)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({
        "username": p.username,
        "role": p.role,
        "csrf_token": s.csrf_token.expose(),
        "scope": p.scope,
    })))
}
