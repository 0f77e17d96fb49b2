//! The admin's user endpoints, over `accounts` (which checks, logs and applies every change):
//! `GET /api/users`, `POST /api/users` {username, role, password, grants?} and
//! `PATCH /api/users/{username}` {role?, disabled?, password?, grants?} (`grants` replaces every
//! grant; `[{"corpid": "wwA", "userids": null}, {"corpid": "wwB", "userids": ["zhangsan"]}]`).
//! Other roles get 403.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{require, AuthError, AuthState};
use crate::review::accounts::{self, Actor, Change};
use crate::review::{Principal, Role};
use crate::secret::Secret;
use crate::store::ReviewGrant;

/// `POST /api/users`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    username: String,
    role: Role,
    password: Secret,
    #[serde(default)]
    grants: Vec<ReviewGrant>,
}

/// `PATCH /api/users/{username}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatch {
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<Secret>,
    grants: Option<Vec<ReviewGrant>>,
}

pub(super) async fn list(p: Principal, state: web::Data<AuthState>) -> Result<HttpResponse, AuthError> {
    require(&p, Role::Admin)?;
    Ok(HttpResponse::Ok().json(json!({ "users": accounts::list(state.store.as_ref()).await? })))
}

pub(super) async fn add(
    p: Principal,
    state: web::Data<AuthState>,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, AuthError> {
    require(&p, Role::Admin)?;
    let u = body.into_inner();
    let view =
        accounts::add(state.store.as_ref(), &Actor::user(&p), &u.username, u.role, &u.password, u.grants).await?;
    Ok(HttpResponse::Created().json(view))
}

pub(super) async fn change(
    p: Principal,
    state: web::Data<AuthState>,
    path: web::Path<String>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, AuthError> {
    require(&p, Role::Admin)?;
    let b = body.into_inner();
    let c = Change { role: b.role, disabled: b.disabled, password: b.password, grants: b.grants, ..Change::default() };
    let view = accounts::change(state.store.as_ref(), &Actor::user(&p), &path.into_inner(), c).await?;
    Ok(HttpResponse::Ok().json(view))
}
