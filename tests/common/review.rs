//! The review API's test session layer, shared by the tests that mount `review::server::configure`
//! in an actix test service without the daemon's login.

use std::collections::BTreeSet;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use wework_msgaudit::review::{Principal, Role, Scope};

/// `X-Test-Principal: <role>;<corp>=*;<corp>=<id>,<id>` becomes the request's `Principal`.
pub async fn test_sessions(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let header = req.headers().get("X-Test-Principal").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(h) = header {
        let mut parts = h.split(';');
        let role: Role = parts.next().unwrap().parse().unwrap();
        let mut scope = Scope::none();
        for grant in parts {
            let (corp, ids) = grant.split_once('=').unwrap();
            let ids = (ids != "*").then(|| ids.split(',').map(str::to_string).collect::<BTreeSet<_>>());
            scope.corps.insert(corp.to_string(), ids);
        }
        req.extensions_mut().insert(Principal { user_id: 1, username: format!("u-{h}"), role, scope });
    }
    next.call(req).await
}
