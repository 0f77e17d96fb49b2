//! The callback listener: its own actix-web server on `[callback] listen` (one worker, no signal
//! handlers, stopped with the pipeline, like the review API's), answering
//! `GET /callback/{corpid}` (URL verification) and `POST /callback/{corpid}` (events).
//!
//! Per request: the corp's keys from the [`Directory`] (404 when the corp is unknown or has no
//! callback settings), the body read up to `[callback] max_body` (413 as soon as the
//! `Content-Length` or the bytes read exceed it, without reading further), then
//! [`super::endpoint`] decides, and an accepted event goes to the [`EventSink`]. Every request is
//! counted ([`super::Counters`]); rejections are logged at WARN at most once a minute per corp
//! and reason (the counters have them all), never with a parameter, body or key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use async_trait::async_trait;
use futures_util::StreamExt as _;

use super::endpoint::{self, Params, Rejection};
use super::event::Event;
use super::replay::ReplayGuard;
use super::{CallbackKeys, Counters};
use crate::actors::supervisor::{CallbackKeysOf, PullNow, Supervisor};
use crate::config::CallbackConfig;
use crate::store::CorpId;

/// How long reading one request's body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A rejection of the same corp and reason is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Where the keys of a corp come from.
#[async_trait]
pub trait Directory: Send + Sync {
    /// `None`: no such corp; `Some(None)`: the corp has no callback settings.
    async fn keys(&self, corpid: &CorpId) -> Option<Option<CallbackKeys>>;
}

/// What accepted events do. Called on the listener's event loop: must not block.
pub trait EventSink: Send + Sync {
    /// `msgaudit_notify`: pull the corp now (coalesced by its actor).
    fn pull_now(&self, corpid: &CorpId);
    /// `change_external_contact` / `msg_audit_approved`: `external_userid` agreed to the
    /// archiving of their chats with `userid`.
    fn consent_approved(&self, corpid: &CorpId, userid: &str, external_userid: &str);
}

/// The daemon's [`Directory`] and [`EventSink`]: the supervisor (keys of every corp the sources
/// give, `PullNow` to the running actor) and, with `[wecom_api] enabled`, the metadata service
/// that re-checks a consent (`crate::wecom::refresh::Service::refresh_consent`).
#[derive(Debug, Clone)]
pub struct PipelineSink {
    supervisor: Addr<Supervisor>,
    consent: Option<Arc<crate::wecom::refresh::Service>>,
}

impl PipelineSink {
    /// Over the pipeline's supervisor and, when the metadata APIs are on, their service.
    pub fn new(supervisor: Addr<Supervisor>, consent: Option<Arc<crate::wecom::refresh::Service>>) -> Self {
        Self { supervisor, consent }
    }
}

#[async_trait]
impl Directory for PipelineSink {
    async fn keys(&self, corpid: &CorpId) -> Option<Option<CallbackKeys>> {
        self.supervisor.send(CallbackKeysOf(corpid.clone())).await.ok().flatten()
    }
}

impl EventSink for PipelineSink {
    fn pull_now(&self, corpid: &CorpId) {
        self.supervisor.do_send(PullNow(corpid.clone()));
    }

    fn consent_approved(&self, corpid: &CorpId, userid: &str, external_userid: &str) {
        tracing::info!(corpid = %corpid, %userid, %external_userid, "an external contact approved archiving (msg_audit_approved)");
        // The consent is re-checked (check_single_agree) on a task of its own: the listener
        // answers at once. Without the metadata APIs, the next pass that sees the pair does it.
        let Some(service) = self.consent.clone() else { return };
        let (corpid, userid, external) = (corpid.clone(), userid.to_string(), external_userid.to_string());
        actix_rt::spawn(async move {
            if let Err(e) = service.refresh_consent(&corpid, &userid, &external).await {
                tracing::warn!(corpid = %corpid, error = %e, "re-checking a consent after msg_audit_approved failed; the next refresh pass retries it");
            }
        });
    }
}

/// Listener settings (`[callback]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The largest body accepted.
    pub max_body: usize,
    /// Allowed clock difference and replay window.
    pub window: Duration,
    /// Live replay entries at most.
    pub replay_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_body: 64 * 1024, window: Duration::from_secs(300), replay_capacity: 100_000 }
    }
}

/// What the handlers share.
pub struct CallbackState {
    directory: Arc<dyn Directory>,
    sink: Arc<dyn EventSink>,
    counters: Arc<Counters>,
    replay: ReplayGuard,
    max_body: usize,
    logged: Mutex<HashMap<(String, &'static str), Instant>>,
}

impl std::fmt::Debug for CallbackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackState").field("max_body", &self.max_body).finish_non_exhaustive()
    }
}

impl CallbackState {
    /// The state of a listener.
    pub fn new(
        directory: Arc<dyn Directory>,
        sink: Arc<dyn EventSink>,
        counters: Arc<Counters>,
        settings: &Settings,
    ) -> Self {
        Self {
            directory,
            sink,
            counters,
            replay: ReplayGuard::new(settings.window, settings.replay_capacity),
            max_body: settings.max_body,
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// The corp and its keys, or the rejection (with the corpid label to count it under).
    async fn lookup(&self, corpid: &str) -> Result<(CorpId, CallbackKeys), (String, Rejection)> {
        let Ok(corp) = CorpId::new(corpid) else { return Err((String::new(), Rejection::UnknownCorp)) };
        match self.directory.keys(&corp).await {
            None => Err((String::new(), Rejection::UnknownCorp)),
            Some(None) => Err((corp.to_string(), Rejection::NotConfigured)),
            Some(Some(keys)) => Ok((corp, keys)),
        }
    }

    fn reject(&self, corpid: &str, why: Rejection, method: &'static str) -> HttpResponse {
        self.counters.request(corpid, why.label());
        let due = self.logged.lock().is_ok_and(|mut m| {
            let now = Instant::now();
            match m.get(&(corpid.to_string(), why.label())) {
                Some(at) if now.duration_since(*at) < LOG_EVERY => false,
                _ => {
                    if m.len() > 10_000 {
                        m.clear();
                    }
                    m.insert((corpid.to_string(), why.label()), now);
                    true
                }
            }
        });
        if due {
            tracing::warn!(corpid, method, outcome = why.label(), status = why.status(), "callback rejected (logged once a minute per corp and reason; see wework_msgaudit_callback_requests_total)");
        }
        let status =
            actix_web::http::StatusCode::from_u16(why.status()).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(why.label())
    }

    /// Acts on an accepted event.
    fn deliver(&self, corpid: &CorpId, event: &Event) {
        self.counters.request(corpid.as_str(), "accepted");
        self.counters.event(corpid.as_str(), event.label());
        match event {
            Event::MsgauditNotify => {
                tracing::debug!(corpid = %corpid, "msgaudit_notify: pulling now");
                self.sink.pull_now(corpid);
            }
            Event::ConsentApproved { userid, external_userid } => {
                self.sink.consent_approved(corpid, userid, external_userid);
            }
            Event::Other { kind, change_type } => {
                tracing::debug!(corpid = %corpid, %kind, change_type = change_type.as_deref().unwrap_or(""), "callback event ignored");
            }
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn params(req: &HttpRequest) -> Params {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string()).map(|q| q.into_inner());
    let pairs = pairs.unwrap_or_default();
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

async fn verify(path: web::Path<String>, req: HttpRequest, st: web::Data<CallbackState>) -> HttpResponse {
    let (corp, keys) = match st.lookup(&path).await {
        Ok(found) => found,
        Err((label, why)) => return st.reject(&label, why, "GET"),
    };
    match endpoint::verify_url(&keys, corp.as_str(), &params(&req), &st.replay, now_unix()) {
        Ok(plain) => {
            st.counters.request(corp.as_str(), "verified");
            tracing::info!(corpid = %corp, "callback URL verified");
            // The plain text exactly: no quotes, no BOM, no newline.
            HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(plain)
        }
        Err(why) => st.reject(corp.as_str(), why, "GET"),
    }
}

async fn receive(
    path: web::Path<String>,
    req: HttpRequest,
    mut payload: web::Payload,
    st: web::Data<CallbackState>,
) -> HttpResponse {
    let (corp, keys) = match st.lookup(&path).await {
        Ok(found) => found,
        Err((label, why)) => return st.reject(&label, why, "POST"),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_body as u64) {
        return st.reject(corp.as_str(), Rejection::TooLarge, "POST");
    }
    let mut body: Vec<u8> = Vec::new();
    let read = tokio::time::timeout(BODY_TIMEOUT, async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| Rejection::Malformed)?;
            if body.len() + chunk.len() > st.max_body {
                return Err(Rejection::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return st.reject(corp.as_str(), why, "POST"),
        Err(_) => return st.reject(corp.as_str(), Rejection::Malformed, "POST"),
    }
    match endpoint::open_event(&keys, corp.as_str(), &params(&req), &body, &st.replay, now_unix(), Instant::now()) {
        Ok(event) => {
            st.deliver(&corp, &event);
            HttpResponse::Ok().content_type("text/plain; charset=utf-8").finish()
        }
        Err(why) => st.reject(corp.as_str(), why, "POST"),
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found")
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "GET, POST")).finish()
}

/// Binds `addr` and serves the callbacks on the current actix system.
pub fn serve(addr: SocketAddr, state: CallbackState) -> std::io::Result<actix_web::dev::Server> {
    serve_on(std::net::TcpListener::bind(addr)?, state)
}

/// [`serve`] on a listener already bound.
pub fn serve_on(listener: std::net::TcpListener, state: CallbackState) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(
                web::resource("/callback/{corpid}")
                    .route(web::get().to(verify))
                    .route(web::post().to(receive))
                    .default_service(web::route().to(method_not_allowed)),
            )
            .default_service(web::route().to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Starts the listener of `[callback]` for `pipeline` on the current actix system, stopped with
/// the pipeline (requests in flight get the server's shutdown timeout). `Ok(None)`: `listen` is
/// empty, callbacks are off.
pub fn start(
    cfg: &CallbackConfig,
    pipeline: &crate::actors::Pipeline,
    consent: Option<Arc<crate::wecom::refresh::Service>>,
) -> std::io::Result<Option<SocketAddr>> {
    if cfg.listen.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr =
        cfg.listen.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let sink = Arc::new(PipelineSink::new(pipeline.supervisor.clone(), consent));
    let settings = Settings { max_body: cfg.max_body, window: cfg.max_age, ..Settings::default() };
    let state = CallbackState::new(sink.clone(), sink, Arc::clone(&pipeline.stats.callback), &settings);
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let server = serve_on(listener, state)?;
    let handle = server.handle();
    actix_rt::spawn(server);
    let stop = pipeline.stop_token();
    actix_rt::spawn(async move {
        stop.cancelled().await;
        handle.stop(true).await;
    });
    Ok(Some(bound))
}
