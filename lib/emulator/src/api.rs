//! A fake of the WeCom HTTPS API (`qyapi.weixin.qq.com`), for running the **real** vendor SDK
//! against the emulator's scenario (docs/sdk-facts.md §4).
//!
//! The real SDK cannot be pointed at another host, but it honours a proxy: with
//! `proxy = "http://127.0.0.1:PORT"` it sends `CONNECT qyapi.weixin.qq.com:443` to this server,
//! which answers 200 and then terminates TLS itself with a DEMO-ONLY self-signed certificate for
//! that host name (the SDK checks the name, not the chain). Behind TLS it speaks the three calls
//! the SDK makes:
//!
//! - `GET /cgi-bin/gettoken?corpid=…&corpsecret=…`: a token per call, checked against the
//!   scenario's secret (errcode 40001 otherwise);
//! - `POST /cgi-bin/message/getchatdata?access_token=…`: `{"seq","limit","version","encrypt_sign"}`,
//!   answered with [`Emulator::chat_page`] after checking the token and the sign;
//! - `POST /cgi-bin/message/getchatmediadata?access_token=…` with `Range: bytes=A-B`: a slice of the
//!   AES-128-ECB/PKCS#7 encryption of the file, base64 in `content`, with the header
//!   `CONTENT-RANGE: BYTES a-b/total` spelled as the SDK expects.
//!
//! Faults ([`ApiFaults`]) are decided per request from a counter, so a run is repeatable: HTTP 500,
//! errcodes, slow answers, dropped connections, tokens that expire on the server before the SDK
//! thinks they do, and per-file media errcodes. Every request is recorded ([`Recorded`]), in
//! memory and optionally as JSON lines in a file, so tests can check what the SDK sent
//! (`Proxy-Authorization`, `encrypt_sign`) and which faults really happened.
//!
//! The archive metadata APIs (`msgaudit/groupchat/get`, `get_permit_user_list`,
//! `check_single_agree`, `check_room_agree`) are in [`meta`].
//!
//! Plain threads, one per connection; the server binds where it is told (tests: 127.0.0.1 only).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_lc_rs::cipher::{EncryptingKey, UnboundCipherKey, AES_128};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rng::{seed_of, Rng};
use crate::Emulator;

pub mod meta;

/// The DEMO-ONLY certificate for `qyapi.weixin.qq.com` (self-signed, valid until 2126).
pub const DEMO_CERT_PEM: &str = include_str!("../tls/DEMO-ONLY-qyapi.cert.pem");
const DEMO_KEY_PEM: &str = include_str!("../tls/DEMO-ONLY-qyapi.key.pem");
/// A DEMO-ONLY test CA, for clients that verify the chain (rustls: `[wecom_api] extra_ca_file`);
/// the server presents [`DEMO_CA_SIGNED_CERT_PEM`] with [`ApiOptions::ca_signed`].
pub const DEMO_TEST_CA_PEM: &str = include_str!("../tls/DEMO-ONLY-test-ca.cert.pem");
/// A DEMO-ONLY certificate for `qyapi.weixin.qq.com` issued by [`DEMO_TEST_CA_PEM`] (not a CA
/// itself, which a verifying client requires of a server certificate).
pub const DEMO_CA_SIGNED_CERT_PEM: &str = include_str!("../tls/DEMO-ONLY-qyapi-ca-signed.cert.pem");
const DEMO_CA_SIGNED_KEY_PEM: &str = include_str!("../tls/DEMO-ONLY-qyapi-ca-signed.key.pem");

/// The host the SDK talks to.
pub const HOST: &str = "qyapi.weixin.qq.com";
/// Ciphertext bytes per media chunk, as the real server sends them.
pub const MEDIA_CHUNK: u64 = 524_288;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// An error starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Fault injection. Rates are probabilities in 0..=1, decided from a per-server request counter;
/// they apply to `getchatdata` and `getchatmediadata` (never to `gettoken`, whose failures the
/// SDK does not report in a way the daemon can tell apart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiFaults {
    /// Answer HTTP 500 (the SDK returns 10001).
    pub http_500_rate: f64,
    /// Answer HTTP 200 with an errcode taken in turn from `errcodes` (default 45009).
    pub errcode_rate: f64,
    pub errcodes: Vec<i64>,
    /// Wait `slow_ms` before answering.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Close the connection after reading the request: with no answer, or inside the headers.
    pub drop_rate: f64,
    /// A token answers 42001 this long after it was issued (0 = never), although `gettoken`
    /// says `expires_in: 7200`: the SDK keeps using it until its handle is replaced.
    pub token_ttl_ms: u64,
    /// The first this many `getchatdata` calls answer errcode 40001 (a secret that was wrong for
    /// a while), then all is well.
    pub bad_secret_calls: u64,
    /// `fileid` → errcode for every `getchatmediadata` of that file (301042 IP not whitelisted,
    /// 301048 expired).
    pub media_errcodes: HashMap<String, i64>,
}

/// What the server did with one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recorded {
    /// `connect` (the proxy step), `gettoken`, `getchatdata`, `getchatmediadata`, or the path.
    pub call: String,
    /// The `Proxy-Authorization` header of the CONNECT, if any.
    pub proxy_authorization: Option<String>,
    /// The corp of the token (or of the gettoken request).
    pub corpid: String,
    /// `getchatdata`: requested seq and limit; whether `encrypt_sign` matched the token.
    pub seq: Option<u64>,
    pub limit: Option<u64>,
    pub sign_ok: Option<bool>,
    /// `getchatmediadata`: the `Range` header and the fileid.
    pub range: Option<String>,
    pub fileid: Option<String>,
    /// HTTP status sent (0 if the connection was dropped), errcode in the body, fault applied.
    pub status: u16,
    pub errcode: i64,
    pub fault: Option<String>,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub listen: SocketAddr,
    /// `user:pass` that every CONNECT must carry as `Proxy-Authorization: Basic …` (else 407).
    pub proxy_auth: Option<String>,
    pub faults: ApiFaults,
    /// Append every [`Recorded`] as a JSON line here.
    pub log_file: Option<PathBuf>,
    /// Present [`DEMO_CA_SIGNED_CERT_PEM`] (with the CA) instead of the self-signed certificate.
    pub ca_signed: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            proxy_auth: None,
            faults: ApiFaults::default(),
            log_file: None,
            ca_signed: false,
        }
    }
}

struct Token {
    corpid: String,
    issued: Instant,
}

struct State {
    emu: Emulator,
    proxy_auth: Option<String>,
    faults: Mutex<ApiFaults>,
    tokens: Mutex<HashMap<String, Token>>,
    requests: Mutex<Vec<Recorded>>,
    log: Option<Mutex<File>>,
    counter: AtomicU64,
    chat_calls: AtomicU64,
    drops: AtomicU64,
    tls: Arc<rustls::ServerConfig>,
    stop: AtomicBool,
    meta: meta::MetaState,
}

/// A running fake API; stops when dropped.
pub struct FakeApi {
    state: Arc<State>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Binds and starts serving `emu`'s scenario.
    pub fn start(emu: Emulator, opts: ApiOptions) -> Result<FakeApi, ApiError> {
        let listener = TcpListener::bind(opts.listen)
            .map_err(|source| ApiError::Io { what: format!("bind {}", opts.listen), source })?;
        let addr = listener.local_addr().map_err(|source| ApiError::Io { what: "local_addr".into(), source })?;
        let log = match &opts.log_file {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| ApiError::Io { what: format!("open {}", p.display()), source })?,
            )),
            None => None,
        };
        let state = Arc::new(State {
            emu,
            proxy_auth: opts.proxy_auth,
            faults: Mutex::new(opts.faults),
            tokens: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            log,
            counter: AtomicU64::new(0),
            chat_calls: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            tls: Arc::new(tls_config(opts.ca_signed)?),
            stop: AtomicBool::new(false),
            meta: meta::MetaState::default(),
        });
        let st = Arc::clone(&state);
        let accept = std::thread::Builder::new()
            .name("fake-wecom-accept".into())
            .spawn(move || accept_loop(&listener, &st))
            .map_err(|source| ApiError::Io { what: "spawn".into(), source })?;
        Ok(FakeApi { state, addr, accept: Some(accept) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy URL to give the SDK.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults (takes effect with the next request).
    pub fn set_faults(&self, faults: ApiFaults) {
        *self.state.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The scenario being served.
    pub fn emulator(&self) -> &Emulator {
        &self.state.emu
    }

    /// What WeCom does when a corp has new archive messages: `n` new records of `target.corpid`
    /// appear ([`Emulator::grow`]), then a signed, encrypted `msgaudit_notify` is POSTed to the
    /// target's URL ([`crate::callback`]; nonce from `seed`). Returns the highest seq now available
    /// and the HTTP status of the callback.
    pub fn grow_and_notify(
        &self,
        target: &crate::callback::CallbackTarget,
        n: u64,
        seed: u64,
    ) -> std::io::Result<(u64, u16)> {
        let seq = self
            .state
            .emu
            .grow(&target.corpid, n)
            .ok_or_else(|| std::io::Error::other(format!("corp {} is not in the scenario", target.corpid)))?;
        Ok((seq, target.notify(seed)?))
    }

    /// Faults for the next metadata calls, one each, in order ([`meta`]).
    pub fn push_meta_faults(&self, faults: &[&str]) {
        self.state.meta.push_faults(faults);
    }

    /// What the consent APIs answer for (roomid or "", userid or "", external) from now on.
    pub fn set_consent(&self, roomid: &str, userid: &str, external: &str, status: &str, time: i64) {
        self.state.meta.set_consent(roomid, userid, external, status, time);
    }

    /// What the consent APIs answer for (roomid or "", userid or "", external) now.
    pub fn consent_of(&self, roomid: &str, userid: &str, external: &str) -> (String, i64) {
        self.state.meta.consent_of(roomid, userid, external)
    }

    /// Leaves `userid` out of the archived-member lists from now on.
    pub fn remove_permit_user(&self, userid: &str) {
        self.state.meta.remove_permit_user(userid);
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn tls_config(ca_signed: bool) -> Result<rustls::ServerConfig, ApiError> {
    let (cert, key) =
        if ca_signed { (DEMO_CA_SIGNED_CERT_PEM, DEMO_CA_SIGNED_KEY_PEM) } else { (DEMO_CERT_PEM, DEMO_KEY_PEM) };
    let cert = CertificateDer::from_pem_slice(cert.as_bytes()).map_err(|e| ApiError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| ApiError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| ApiError::Tls(e.to_string()))
}

fn accept_loop(listener: &TcpListener, st: &Arc<State>) {
    for conn in listener.incoming() {
        if st.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let st = Arc::clone(st);
        let _ = std::thread::Builder::new().name("fake-wecom-conn".into()).spawn(move || {
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            if let Err(e) = serve_connection(stream, &st) {
                if !st.stop.load(Ordering::SeqCst) {
                    eprintln!("fake-wecom: connection ended: {e}");
                }
            }
        });
    }
}

/// A parsed HTTP request head (and body).
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn query(&self, key: &str) -> Option<String> {
        let (_, q) = self.target.split_once('?')?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }

    fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one request; `Ok(None)` on a clean end of stream before any byte.
fn read_request(r: &mut impl BufRead, with_body: bool) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take(MAX_HEAD as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "request head cut short"));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too long"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut req = Request { method, target, headers, body: Vec::new() };
    if with_body {
        let len: usize = req.header("Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if len > MAX_BODY {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request body too long"));
        }
        req.body = vec![0; len];
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn serve_connection(mut tcp: TcpStream, st: &State) -> std::io::Result<()> {
    // 1. The proxy step: CONNECT qyapi.weixin.qq.com:443.
    let connect = {
        let mut r = BufReader::new(&mut tcp);
        let Some(req) = read_request(&mut r, false)? else { return Ok(()) };
        if !r.buffer().is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "bytes after CONNECT"));
        }
        req
    };
    let auth = connect.header("Proxy-Authorization").map(str::to_string);
    let mut rec = blank("connect");
    rec.proxy_authorization.clone_from(&auth);
    if connect.method != "CONNECT" || !connect.target.starts_with(HOST) {
        rec.status = 400;
        st.record(rec);
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    }
    if let Some(want) = &st.proxy_auth {
        let expected = format!("Basic {}", STANDARD.encode(want));
        if auth.as_deref() != Some(expected.as_str()) {
            rec.status = 407;
            st.record(rec);
            tcp.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"fake-wecom\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
    }
    rec.status = 200;
    st.record(rec);
    tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;

    // 2. TLS, then HTTP requests until the client closes.
    let conn = rustls::ServerConnection::new(Arc::clone(&st.tls)).map_err(std::io::Error::other)?;
    let tls = rustls::StreamOwned::new(conn, tcp);
    let mut r = BufReader::new(tls);
    while let Some(req) = read_request(&mut r, true)? {
        let keep = req.header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"));
        let answer = st.answer(&req);
        let tls = r.get_mut();
        match answer {
            Answer::Drop { half_headers } => {
                if half_headers {
                    tls.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: applic")?;
                    tls.flush()?;
                }
                // Abrupt: no close_notify, straight to the socket.
                let _ = tls.sock.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            Answer::Http { status, body, content_range } => {
                let reason = if status == 200 { "OK" } else { "Internal Server Error" };
                let mut head = format!(
                    "HTTP/1.0 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: {}\r\n",
                    body.len()
                );
                if let Some(cr) = content_range {
                    head.push_str(&format!("CONTENT-RANGE: {cr}\r\n"));
                }
                head.push_str(if keep { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
                tls.write_all(head.as_bytes())?;
                tls.write_all(&body)?;
                tls.flush()?;
                if !keep {
                    tls.conn.send_close_notify();
                    let _ = tls.conn.complete_io(&mut tls.sock);
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

enum Answer {
    Http { status: u16, body: Vec<u8>, content_range: Option<String> },
    Drop { half_headers: bool },
}

fn blank(call: &str) -> Recorded {
    Recorded {
        call: call.into(),
        proxy_authorization: None,
        corpid: String::new(),
        seq: None,
        limit: None,
        sign_ok: None,
        range: None,
        fileid: None,
        status: 200,
        errcode: 0,
        fault: None,
    }
}

fn errbody(errcode: i64, errmsg: &str) -> Vec<u8> {
    json!({"errcode": errcode, "errmsg": errmsg}).to_string().into_bytes()
}

/// The `encrypt_sign` the SDK sends for `token` (docs/sdk-facts.md §4).
pub fn encrypt_sign(token: &str) -> u32 {
    let mut h: u64 = 0;
    for &c in token.as_bytes() {
        // The SDK adds each byte as a signed char.
        h = h.wrapping_mul(1313).wrapping_add(i64::from(c as i8) as u64);
    }
    (h ^ (h >> 32)) as u32
}

impl State {
    fn record(&self, r: Recorded) {
        if let Some(log) = &self.log {
            if let Ok(line) = serde_json::to_string(&r) {
                let mut f = log.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = f.write_all(format!("{line}\n").as_bytes());
            }
        }
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).push(r);
    }

    fn answer(&self, req: &Request) -> Answer {
        let call = req.path().rsplit('/').next().unwrap_or_default().to_string();
        let mut rec = blank(&call);
        let answer = match (req.method.as_str(), call.as_str()) {
            ("GET", "gettoken") => self.gettoken(req, &mut rec),
            ("POST", "getchatdata" | "getchatmediadata") => self.data_call(req, &call, &mut rec),
            ("POST", _) if meta::call_of(req.path()).is_some() => {
                let m = meta::call_of(req.path()).unwrap_or_default();
                rec.call = m.to_string();
                self.meta_call(req, m, &mut rec)
            }
            _ => {
                rec.status = 404;
                Answer::Http { status: 404, body: errbody(404, "not found"), content_range: None }
            }
        };
        if let Answer::Http { status, body, .. } = &answer {
            rec.status = *status;
            rec.errcode = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("errcode").and_then(Value::as_i64))
                .unwrap_or(0);
        } else {
            rec.status = 0;
        }
        self.record(rec);
        answer
    }

    fn gettoken(&self, req: &Request, rec: &mut Recorded) -> Answer {
        let corpid = req.query("corpid").unwrap_or_default();
        let secret = req.query("corpsecret").unwrap_or_default();
        rec.corpid.clone_from(&corpid);
        if !self.emu.secret_ok(&corpid, secret.as_bytes()) {
            return Answer::Http { status: 200, body: errbody(40001, "invalid credential"), content_range: None };
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let token = format!("FAKE_TOKEN_{n}_{:016x}", seed_of(&[n, 0x70CE]));
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), Token { corpid, issued: Instant::now() });
        let body = json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200});
        Answer::Http { status: 200, body: body.to_string().into_bytes(), content_range: None }
    }

    fn data_call(&self, req: &Request, call: &str, rec: &mut Recorded) -> Answer {
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let token = req.query("access_token").unwrap_or_default();
        let corp = {
            let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            tokens.get(&token).map(|t| (t.corpid.clone(), t.issued.elapsed()))
        };
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if call == "getchatdata" {
            rec.seq = body.get("seq").and_then(Value::as_u64);
            rec.limit = body.get("limit").and_then(Value::as_u64);
            let sign = body
                .get("encrypt_sign")
                .and_then(|v| v.as_str().map(str::to_string).or(v.as_u64().map(|n| n.to_string())));
            rec.sign_ok = Some(sign.as_deref() == Some(encrypt_sign(&token).to_string().as_str()));
        } else {
            rec.range = req.header("Range").map(str::to_string);
            rec.fileid = body.get("fileid").and_then(Value::as_str).map(str::to_string);
        }
        let Some((corpid, age)) = corp else {
            return Answer::Http { status: 200, body: errbody(40014, "invalid access_token"), content_range: None };
        };
        rec.corpid.clone_from(&corpid);
        if faults.token_ttl_ms > 0 && age > Duration::from_millis(faults.token_ttl_ms) {
            rec.fault = Some("token_expired".into());
            return Answer::Http { status: 200, body: errbody(42001, "access_token expired"), content_range: None };
        }

        // Random faults, from the request counter.
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut r = Rng::new(seed_of(&[n, 0xFA_0175]));
        let (slow, e500, drop, errc) = (
            r.chance(faults.slow_rate),
            r.chance(faults.http_500_rate),
            r.chance(faults.drop_rate),
            r.chance(faults.errcode_rate),
        );
        if slow && faults.slow_ms > 0 {
            rec.fault = Some("slow".into());
            std::thread::sleep(Duration::from_millis(faults.slow_ms));
        }
        if e500 {
            rec.fault = Some("http_500".into());
            return Answer::Http { status: 500, body: b"internal error".to_vec(), content_range: None };
        }
        if drop {
            // The two ways alternate: nothing at all, then a response cut inside its headers.
            let half_headers = self.drops.fetch_add(1, Ordering::SeqCst) % 2 == 1;
            rec.fault = Some(if half_headers { "drop_in_headers" } else { "drop" }.into());
            return Answer::Drop { half_headers };
        }
        if errc {
            let list = if faults.errcodes.is_empty() { vec![45009] } else { faults.errcodes.clone() };
            let code = list[(r.below(list.len() as u64)) as usize];
            rec.fault = Some(format!("errcode_{code}"));
            return Answer::Http { status: 200, body: errbody(code, "injected"), content_range: None };
        }
        if call == "getchatdata" {
            self.chat(&corpid, &body, rec, &faults)
        } else {
            self.media(&corpid, req, &body, rec, &faults)
        }
    }

    fn chat(&self, corpid: &str, body: &Value, rec: &mut Recorded, faults: &ApiFaults) -> Answer {
        let n = self.chat_calls.fetch_add(1, Ordering::SeqCst);
        if n < faults.bad_secret_calls {
            rec.fault = Some("errcode_40001".into());
            return Answer::Http { status: 200, body: errbody(40001, "invalid credential"), content_range: None };
        }
        if rec.sign_ok != Some(true) {
            return Answer::Http { status: 200, body: errbody(301001, "invalid encrypt_sign"), content_range: None };
        }
        let seq = body.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(0);
        match self.emu.chat_page(corpid, seq, u32::try_from(limit).unwrap_or(0)) {
            Ok(page) => Answer::Http { status: 200, body: page, content_range: None },
            Err(rc) => Answer::Http {
                status: 200,
                body: errbody(301000 + i64::from(rc % 1000), "bad request"),
                content_range: None,
            },
        }
    }

    fn media(&self, corpid: &str, req: &Request, body: &Value, rec: &mut Recorded, faults: &ApiFaults) -> Answer {
        let fileid = body.get("fileid").and_then(Value::as_str).unwrap_or_default();
        let authkey = body.get("authkey").and_then(Value::as_str).unwrap_or_default();
        if let Some(code) = faults.media_errcodes.get(fileid) {
            rec.fault = Some(format!("errcode_{code}"));
            return Answer::Http { status: 200, body: errbody(*code, "injected for this file"), content_range: None };
        }
        let Some(file) = self.emu.media_file(corpid, fileid, authkey) else {
            return Answer::Http { status: 200, body: errbody(301010, "invalid fileid"), content_range: None };
        };
        let Some((a, b)) = req.header("Range").and_then(parse_range) else {
            return Answer::Http { status: 200, body: errbody(301011, "invalid Range"), content_range: None };
        };
        let size = file.size();
        // ECB/PKCS#7 always pads: the ciphertext is the next multiple of 16 above the size.
        let total = (size / 16 + 1) * 16;
        if a >= total || b < a || a % 16 != 0 {
            return Answer::Http { status: 200, body: errbody(301011, "invalid Range"), content_range: None };
        }
        let end = b.min(total - 1).min(a + MEDIA_CHUNK - 1); // inclusive
        let Some(content) = encrypt_range(&file, a, end + 1, size) else {
            return Answer::Http { status: 500, body: b"encryption failed".to_vec(), content_range: None };
        };
        let body = json!({"errcode": 0, "errmsg": "ok", "content": STANDARD.encode(content)});
        Answer::Http {
            status: 200,
            body: body.to_string().into_bytes(),
            content_range: Some(format!("BYTES {a}-{end}/{total}")),
        }
    }
}

/// `bytes=A-B` → (A, B).
fn parse_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes=")?;
    let (a, b) = rest.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Ciphertext bytes `from..to` (block-aligned `from`) of AES-128-ECB/PKCS#7 over the whole file.
fn encrypt_range(file: &crate::MediaFile, from: u64, to: u64, size: u64) -> Option<Vec<u8>> {
    let mut buf = file.read(from, to - from);
    let total = (size / 16 + 1) * 16;
    if to == total {
        let pad = (total - size) as u8; // 1..=16
        buf.extend(std::iter::repeat_n(pad, pad as usize));
    }
    let key = EncryptingKey::ecb(UnboundCipherKey::new(&AES_128, &file.aes_key()).ok()?).ok()?;
    key.encrypt(&mut buf).ok()?;
    Some(buf)
}

/// The `fileid` inside a sdkfileid (what the SDK sends, and what
/// [`ApiFaults::media_errcodes`] is keyed by).
pub fn fileid_of(sdkfileid: &str) -> Option<String> {
    sdkfileid_parts(sdkfileid).map(|(fileid, _, _)| fileid)
}

/// (fileid, authkey, AES-128 key) inside a sdkfileid: what the SDK sends to
/// `getchatmediadata`, and the key of the content it gets back.
pub fn sdkfileid_parts(sdkfileid: &str) -> Option<(String, String, [u8; 16])> {
    crate::gen::sdkfileid_parts(sdkfileid.as_bytes())
}

/// Reads [`ApiFaults`] from a TOML file (for the `fake-wecom` binary).
pub fn load_faults(path: &Path) -> Result<ApiFaults, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_measured_value() {
        assert_eq!(encrypt_sign("FAKE_TOKEN_0123456789"), 3_268_821_504);
    }

    #[test]
    fn ranges_and_percent_decoding() {
        assert_eq!(parse_range("bytes=0-524287"), Some((0, 524_287)));
        assert_eq!(parse_range("bytes=5"), None);
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b c%zz");
    }
}
