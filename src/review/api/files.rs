//! Files: a media item's bytes ([`crate::review::media`]) and the exports
//! ([`crate::review::export`]) of a conversation or of a search, capped by
//! `[review] export_max_rows` (the manifest says when the cap cut one).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::browse::{readable_message, render_rows, select, token_of};
use super::find::{page, request, SearchQuery};
use super::{granted, reader, record, row_allowed, ApiError, ReviewState};
use crate::review::cursor::ConvKey;
use crate::review::export::{iso_time, DataFile, Format};
use crate::review::media::{content_disposition, serve};
use crate::review::render::summary_text;
use crate::review::Principal;
use crate::store::{Direction, Row, TimelinePos};

/// Query of a media request.
#[derive(Debug, Deserialize)]
pub struct MediaQuery {
    /// `mp3`: the MP3 made from a voice item.
    pub format: Option<String>,
}

/// `GET /api/corps/{corpid}/media/{msgid}/{item}`: the bytes of a downloaded media item, with
/// Range support.
pub async fn media(
    p: Principal,
    req: HttpRequest,
    state: web::Data<ReviewState>,
    path: web::Path<(String, String, String)>,
    q: web::Query<MediaQuery>,
) -> Result<HttpResponse, ApiError> {
    let (corpid, msgid, item) = path.into_inner();
    let item: u32 = item.parse().map_err(|_| ApiError::NotFound)?;
    let (corp, _row) = readable_message(&state, &p, &corpid, &msgid).await?;
    let m = state
        .store
        .review_media(&corp, std::slice::from_ref(&msgid))
        .await?
        .into_iter()
        .find(|m| m.item == item)
        .ok_or(ApiError::NotFound)?;
    let original = m.path.as_deref().filter(|_| m.status == 3).ok_or(ApiError::NotFound)?;
    let mp3 = match q.format.as_deref() {
        None => false,
        Some("mp3") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("format {other:?}: only mp3"))),
    };
    let rel = if mp3 { m.transcoded_path.as_deref().ok_or(ApiError::NotFound)? } else { original };
    let ext = rel.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.contains('/')).unwrap_or("bin");
    let name = match (&m.filename, mp3) {
        (Some(f), false) if !f.is_empty() => f.clone(),
        (Some(f), true) if !f.is_empty() => format!("{}.mp3", f.rsplit_once('.').map_or(f.as_str(), |(s, _)| s)),
        _ => format!("{msgid}_{item}.{ext}"),
    };
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    let response = serve(&state.media, rel, &name, range).await?;
    let detail = json!({ "item": item, "format": q.format, "range": range, "status": response.status().as_u16() });
    record(&state, &p, "fetch_media", Some(&corpid), msgid, detail).await?;
    Ok(response)
}

/// Query of a conversation export.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// `csv` (default) or `jsonl`.
    pub format: Option<String>,
}

/// The archive as a response.
fn zip_response(name: &str, zip: Vec<u8>, sha: &str, truncated: bool) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((header::CONTENT_DISPOSITION, content_disposition(name)))
        .insert_header(("X-Export-Sha256", sha.to_string()))
        .insert_header(("X-Export-Truncated", if truncated { "true" } else { "false" }))
        .body(zip)
}

/// What every manifest says.
fn manifest(p: &Principal, format: Format, max: u64, truncated: bool) -> Map<String, Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut m = Map::new();
    m.insert("exported_by".into(), json!(p.username));
    m.insert("exported_at".into(), json!(iso_time(now)));
    m.insert("format".into(), json!(format.file_name()));
    m.insert("max_rows".into(), json!(max));
    m.insert("truncated".into(), json!(truncated));
    m
}

/// `GET /api/corps/{corpid}/conversations/{key}/export`: the whole conversation (up to the
/// cap), oldest first.
pub async fn export_conversation(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<(String, String)>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let (corpid, token) = path.into_inner();
    let (corp, who) = granted(scope, &corpid)?;
    let key = ConvKey::from_token(&token).ok_or(ApiError::NotFound)?;
    let format =
        Format::parse(q.format.as_deref()).ok_or_else(|| ApiError::BadRequest("format: csv or jsonl".into()))?;
    let sel = select(&state, &corp, who.as_deref(), &key).await?;
    let max = state.export_max_rows.max(1);
    let mut file = DataFile::new(format);
    let mut from: Option<TimelinePos> = None;
    let mut truncated = false;
    loop {
        let want = u32::try_from((max - file.rows()).min(500)).unwrap_or(500);
        let rows = state.store.review_timeline(&corp, &sel, who.as_deref(), from, Direction::After, want).await?;
        let Some(last) = rows.last() else { break };
        from = Some(TimelinePos { msgtime: last.msgtime, seq: last.seq });
        let got = rows.len();
        let rows: Vec<Row> = rows.into_iter().filter(|r| who.is_none() || row_allowed(who.as_deref(), r)).collect();
        for (m, r) in render_rows(&state, &corp, &token, &rows).await?.iter().zip(&rows) {
            file.push(m, &summary_text(corp.as_str(), r));
        }
        if file.rows() >= max || file.is_full() {
            let more = state.store.review_timeline(&corp, &sel, who.as_deref(), from, Direction::After, 1).await?;
            truncated = !more.is_empty();
            break;
        }
        if got < want as usize {
            break;
        }
    }
    if file.rows() == 0 {
        return Err(ApiError::NotFound);
    }
    let mut m = manifest(&p, format, max, truncated);
    m.insert("corp".into(), json!(corpid));
    m.insert("conversation".into(), json!(key.raw()));
    let rows = file.rows();
    let (zip, sha) = file.finish(m);
    let detail = json!({ "format": format.file_name(), "rows": rows, "sha256": sha, "truncated": truncated });
    record(&state, &p, "export", Some(&corpid), key.raw(), detail).await?;
    let name = format!("export-{corpid}-{}.zip", iso_time(now_ms()).replace(':', ""));
    Ok(zip_response(&name, zip, &sha, truncated))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /api/search/export`: the hits of a search (up to the cap), in the search's order.
pub async fn export_search(
    p: Principal,
    state: web::Data<ReviewState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let format =
        Format::parse(q.format.as_deref()).ok_or_else(|| ApiError::BadRequest("format: csv or jsonl".into()))?;
    let base = request(scope, &q)?;
    let max = state.export_max_rows.max(1);
    let mut file = DataFile::new(format);
    let mut at = None;
    let mut truncated = false;
    loop {
        let want = usize::try_from((max - file.rows()).min(500)).unwrap_or(500);
        let (hits, _, next) = page(&state, base.clone(), at.take(), want).await?;
        for h in &hits {
            let Ok((corp, who)) = granted(scope, &h.corp) else { continue };
            let Some(row) = state.store.review_message(&corp, &h.msgid).await? else { continue };
            if !row_allowed(who.as_deref(), &row) {
                continue;
            }
            let token = token_of(&row);
            for m in render_rows(&state, &corp, &token, std::slice::from_ref(&row)).await? {
                file.push(&m, &summary_text(corp.as_str(), &row));
            }
        }
        if file.rows() >= max || file.is_full() {
            truncated = next.is_some();
            break;
        }
        match next {
            Some(n) => at = Some(n),
            None => break,
        }
    }
    let mut m = manifest(&p, format, max, truncated);
    m.insert("query".into(), serde_json::to_value(&*q).unwrap_or(Value::Null));
    let rows = file.rows();
    let (zip, sha) = file.finish(m);
    let detail =
        json!({ "filters": &*q, "format": format.file_name(), "rows": rows, "sha256": sha, "truncated": truncated });
    record(&state, &p, "export", q.corp.as_deref(), q.q.clone(), detail).await?;
    let name = format!("export-search-{}.zip", iso_time(now_ms()).replace(':', ""));
    Ok(zip_response(&name, zip, &sha, truncated))
}
