//! The auditor's endpoints: `GET /api/access-log?after=<id>&limit=<n>` (entries by id, every
//! field, hashes included; `next_after` to page on) and `GET /api/access-log/verify` (the whole
//! chain, as `audit verify` checks it). Each read is itself appended to the access log first
//! (`read_access_log`, `verify_access_log`): no entry, no answer. Other roles get 403.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{require, AuthError, AuthState};
use crate::review::recorder::{self, VerifyError};
use crate::review::{AccessEvent, Principal, Role};

/// Entries per page when `limit` is not given, and the most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

#[derive(serde::Deserialize)]
pub(super) struct Page {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

async fn record(state: &AuthState, p: &Principal, action: &str, detail: serde_json::Value) -> Result<(), AuthError> {
    let event = AccessEvent { action: action.into(), corpid: None, target: "access_log".into(), detail };
    state.recorder().record(Some(p), event).await.map_err(|_| AuthError::Log)
}

pub(super) async fn read(
    p: Principal,
    state: web::Data<AuthState>,
    q: web::Query<Page>,
) -> Result<HttpResponse, AuthError> {
    require(&p, Role::Auditor)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    record(&state, &p, "read_access_log", json!({ "after": q.after, "limit": limit })).await?;
    let entries = state.store.access_log_after(q.after, limit).await?;
    let next_after = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    let head = state.store.access_log_head().await?;
    Ok(HttpResponse::Ok().json(json!({ "entries": entries, "next_after": next_after, "head": head })))
}

pub(super) async fn verify(p: Principal, state: web::Data<AuthState>) -> Result<HttpResponse, AuthError> {
    require(&p, Role::Auditor)?;
    record(&state, &p, "verify_access_log", json!({})).await?;
    Ok(HttpResponse::Ok().json(match recorder::verify_stored(state.store.as_ref()).await {
        Ok(ok) => json!({ "intact": true, "checked": ok.checked, "last_id": ok.last_id, "head_hash": ok.head_hash }),
        Err(VerifyError::Broken(b)) => {
            json!({ "intact": false, "broken_id": b.id(), "reason": b.to_string(), "broken": b })
        }
        Err(VerifyError::Store(e)) => return Err(e.into()),
    }))
}
