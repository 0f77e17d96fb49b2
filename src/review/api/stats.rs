//! The reply-time statistics (`crate::quality`): the daily rows of `reply_daily` per rule,
//! day and employee. A reviewer limited to userids reads only those employees' rows (the filter
//! is inside the query); a corp not granted is 404 like everywhere else; every read is logged.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{granted, reader, record, ApiError, ReviewState};
use crate::review::Principal;

/// Rows served at most.
pub const MAX_ROWS: u32 = 10_000;

/// Query of the statistics.
#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    /// First day (`YYYY-MM-DD`, in the rule's time zone), inclusive.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// Only this rule.
    pub rule: Option<String>,
}

/// `YYYY-MM-DD`, a real date.
fn day(s: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    match s {
        None => Ok(None),
        Some(d) => match d.parse::<jiff::civil::Date>() {
            Ok(date) if date.to_string() == d => Ok(Some(d.to_string())),
            _ => Err(ApiError::BadRequest(format!("{name}: expected YYYY-MM-DD"))),
        },
    }
}

/// `GET /api/corps/{corpid}/reply-stats`: per rule, day and employee: conversations, messages
/// sent, first replies, their median working-time wait (ms), late ones.
pub async fn reply_stats(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<String>,
    q: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let corpid = path.into_inner();
    let (corp, who) = granted(scope, &corpid)?;
    let (from, to) = (day(q.from.as_deref(), "from")?, day(q.to.as_deref(), "to")?);
    let mut rows = state
        .store
        .reply_daily(&corp, from.as_deref(), to.as_deref(), q.rule.as_deref(), who.as_deref(), MAX_ROWS + 1)
        .await?;
    let truncated = rows.len() > MAX_ROWS as usize;
    rows.truncate(MAX_ROWS as usize);
    record(
        &state,
        &p,
        "reply_stats",
        Some(&corpid),
        "",
        json!({ "from": from, "to": to, "rule": q.rule, "rows": rows.len() }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "days": rows, "truncated": truncated })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_checked() {
        assert_eq!(day(Some("2026-12-07"), "from").unwrap().as_deref(), Some("2026-12-07"));
        assert!(day(None, "from").unwrap().is_none());
        for bad in ["2026-13-01", "2026-2-1", "yesterday", "2026-12-07T00:00"] {
            assert!(day(Some(bad), "from").is_err(), "{bad}");
        }
    }
}
