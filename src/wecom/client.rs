//! [`Client`]: one corp's calls to the archive APIs of `qyapi.weixin.qq.com`, over reqwest
//! (rustls on aws-lc-rs) through the corp's `[sdk] proxy` (the proxy password `user:pass`
//! becomes `Proxy-Authorization: Basic`, as the vendor SDK sends it).
//!
//! - The access token comes from `gettoken` with the corp's archive secret, is cached until a
//!   margin before its `expires_in`, and is fetched again once when a call answers 42001
//!   (expired), 40014 (invalid) or 40001 (invalid credential: a token WeCom no longer accepts);
//!   the same errcode after the refresh is the call's error.
//! - HTTP 5xx, transport failures and the transient errcodes (45009 rate limit, -1 busy) are
//!   retried `retries` times with a doubling delay; 301052 (the archive service of the corp
//!   expired) is [`WecomError::ArchiveExpired`] at once.
//! - Every call first waits for the corp's [`RateLimiter`] of that API.
//! - Tokens and the secret are [`Secret`]s; reqwest errors are stripped of their URL (which
//!   carries the secret or the token) before they become a [`WecomError`].

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::limit::RateLimiter;
use super::{Api, WecomError};
use crate::corps::Proxy;
use crate::secret::Secret;
use crate::store::{ConsentCheck, CorpId, RoomInfo};

/// The API's root.
pub const BASE: &str = "https://qyapi.weixin.qq.com/cgi-bin/";

/// Most pairs `check_single_agree` takes in one call.
pub const SINGLE_AGREE_BATCH: usize = 100;

/// Largest response body read.
const MAX_BODY: usize = 16 << 20;

/// How a [`Client`] calls.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Per-request timeout (connect included).
    pub timeout: Duration,
    /// Retries of a transient failure (the token refresh is not counted).
    pub retries: u32,
    /// The first retry's delay (doubles).
    pub retry_delay: Duration,
    /// PEM certificates trusted besides the system's roots (`[wecom_api] extra_ca_file`: tests
    /// and private CAs; verification is never turned off).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
            retry_delay: Duration::from_millis(500),
            extra_ca_pem: None,
        }
    }
}

struct Token {
    value: Secret,
    valid_until: Instant,
}

/// One corp's API client.
pub struct Client {
    http: reqwest::Client,
    corpid: CorpId,
    secret: Secret,
    token: tokio::sync::Mutex<Option<Token>>,
    limiters: [RateLimiter; 4],
    settings: ClientSettings,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("corpid", &self.corpid).finish_non_exhaustive()
    }
}

/// A reqwest error without its URL (which carries the secret or the token), with its causes.
fn transport(e: reqwest::Error) -> WecomError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    WecomError::Transport(text)
}

/// The HTTP client of the settings and proxy.
pub fn http_client(proxy: &Proxy, settings: &ClientSettings) -> Result<reqwest::Client, WecomError> {
    let mut b = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .https_only(true)
        .user_agent(concat!("wework-msgaudit/", env!("CARGO_PKG_VERSION")));
    match &proxy.url {
        Some(url) => {
            let mut p = reqwest::Proxy::all(url.as_str()).map_err(|e| {
                WecomError::Config(format!("[sdk] proxy {}: {}", crate::secret::redact_url(url), e.without_url()))
            })?;
            if let Some(pw) = &proxy.password {
                let (user, pass) = pw.expose().split_once(':').unwrap_or((pw.expose(), ""));
                p = p.basic_auth(user, pass);
            }
            b = b.proxy(p);
        }
        None => b = b.no_proxy(),
    }
    if let Some(pem) = &settings.extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| WecomError::Config(format!("extra_ca_file: {e}")))?;
        if certs.is_empty() {
            return Err(WecomError::Config("extra_ca_file holds no certificate".into()));
        }
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| WecomError::Config(format!("HTTP client: {}", e.without_url())))
}

impl Client {
    /// A client of `corpid` with its archive `secret`, through `proxy`.
    pub fn new(corpid: CorpId, secret: Secret, proxy: &Proxy, settings: ClientSettings) -> Result<Self, WecomError> {
        let http = http_client(proxy, &settings)?;
        let limiters = [
            RateLimiter::per_minute(Api::GroupChat.per_minute()),
            RateLimiter::per_minute(Api::PermitUsers.per_minute()),
            RateLimiter::per_minute(Api::SingleAgree.per_minute()),
            RateLimiter::per_minute(Api::RoomAgree.per_minute()),
        ];
        Ok(Self { http, corpid, secret, token: tokio::sync::Mutex::new(None), limiters, settings })
    }

    /// The corp.
    pub fn corpid(&self) -> &CorpId {
        &self.corpid
    }

    fn limiter(&self, api: Api) -> &RateLimiter {
        &self.limiters[api as usize]
    }

    /// The cached token, or a new one from `gettoken`.
    async fn token(&self) -> Result<Secret, WecomError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.valid_until) {
            return Ok(t.value.clone());
        }
        let resp = self
            .http
            .get(format!("{BASE}gettoken"))
            .query(&[("corpid", self.corpid.as_str()), ("corpsecret", self.secret.expose())])
            .send()
            .await
            .map_err(transport)?;
        let v = Self::body(resp).await?;
        let code = errcode(&v);
        if code != 0 {
            return Err(WecomError::from_errcode(code, errmsg(&v), "gettoken"));
        }
        let Some(token) = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            return Err(WecomError::Decode("gettoken: no access_token".into()));
        };
        let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(7200);
        // Renew before WeCom's end: 5 minutes early, or halfway for short lifetimes.
        let margin = (expires_in / 2).min(300);
        let value = Secret::new(token.to_string());
        *slot = Some(Token {
            value: value.clone(),
            valid_until: Instant::now() + Duration::from_secs(expires_in - margin),
        });
        tracing::debug!(corpid = %self.corpid, expires_in, "access token obtained");
        Ok(value)
    }

    /// Forgets `token` (if it is still the cached one: a concurrent call may have renewed it).
    async fn forget(&self, token: &Secret) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value.expose() == token.expose()) {
            *slot = None;
        }
    }

    async fn body(resp: reqwest::Response) -> Result<Value, WecomError> {
        let status = resp.status();
        if !status.is_success() {
            return Err(WecomError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(WecomError::Decode("response body too large".into()));
        }
        let bytes = resp.bytes().await.map_err(transport)?;
        if bytes.len() > MAX_BODY {
            return Err(WecomError::Decode("response body too large".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| WecomError::Decode(format!("not JSON: {e}")))
    }

    /// One call of `api` with `body`: limiter, token, retries (see the module docs).
    pub async fn call(&self, api: Api, body: &Value) -> Result<Value, WecomError> {
        let mut refreshed = false;
        let mut attempt = 0u32;
        let mut delay = self.settings.retry_delay;
        loop {
            self.limiter(api).acquire().await;
            let outcome = match self.token().await {
                Ok(token) => {
                    let sent = self
                        .http
                        .post(format!("{BASE}{}", api.path()))
                        .query(&[("access_token", token.expose())])
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .map_err(transport);
                    match sent {
                        Ok(resp) => Self::body(resp).await.map(|v| (v, token)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let err = match outcome {
                Ok((v, token)) => match errcode(&v) {
                    0 => return Ok(v),
                    42001 | 40014 | 40001 if !refreshed => {
                        tracing::debug!(corpid = %self.corpid, api = api.path(), errcode = errcode(&v), "token refused: renewing it");
                        self.forget(&token).await;
                        refreshed = true;
                        continue;
                    }
                    // Refused again right after a renewal: the secret or the token API is wrong;
                    // retrying with the same token would not help.
                    code @ (42001 | 40014 | 40001) => {
                        return Err(WecomError::from_errcode(code, errmsg(&v), api.path()));
                    }
                    code => WecomError::from_errcode(code, errmsg(&v), api.path()),
                },
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.settings.retries {
                return Err(err);
            }
            attempt += 1;
            tracing::debug!(corpid = %self.corpid, api = api.path(), error = %err, attempt, "retrying");
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }

    /// `msgaudit/groupchat/get`.
    pub async fn group_chat(&self, roomid: &str) -> Result<RoomInfo, WecomError> {
        let v = self.call(Api::GroupChat, &json!({ "roomid": roomid })).await?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let members = v
            .get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|m| {
                        let id = m.get("memberid").and_then(Value::as_str).filter(|s| !s.is_empty())?;
                        Some((id.to_string(), m.get("jointime").and_then(Value::as_i64)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(RoomInfo {
            roomname: text("roomname"),
            creator: text("creator"),
            room_create_time: v.get("room_create_time").and_then(Value::as_i64),
            notice: text("notice"),
            members,
        })
    }

    /// `msgaudit/get_permit_user_list` of licence type `kind` (1, 2, 3), or of every type.
    pub async fn permit_users(&self, kind: Option<u8>) -> Result<Vec<String>, WecomError> {
        let body = match kind {
            Some(t) => json!({ "type": t }),
            None => json!({}),
        };
        let v = self.call(Api::PermitUsers, &body).await?;
        Ok(v.get("ids")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// `msgaudit/check_single_agree` for (userid, external userid) pairs, in calls of at most
    /// [`SINGLE_AGREE_BATCH`] pairs.
    pub async fn check_single_agree(&self, pairs: &[(String, String)]) -> Result<Vec<ConsentCheck>, WecomError> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(SINGLE_AGREE_BATCH) {
            let info: Vec<Value> = chunk.iter().map(|(u, e)| json!({ "userid": u, "exteranalopenid": e })).collect();
            let v = self.call(Api::SingleAgree, &json!({ "info": info })).await?;
            out.extend(agreeinfo(&v, ""));
        }
        Ok(out)
    }

    /// `msgaudit/check_room_agree`.
    pub async fn check_room_agree(&self, roomid: &str) -> Result<Vec<ConsentCheck>, WecomError> {
        let v = self.call(Api::RoomAgree, &json!({ "roomid": roomid })).await?;
        Ok(agreeinfo(&v, roomid))
    }
}

/// The `agreeinfo` entries (WeCom spells the external id `exteranalopenid`).
fn agreeinfo(v: &Value, roomid: &str) -> Vec<ConsentCheck> {
    v.get("agreeinfo")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    let ext = i.get("exteranalopenid").and_then(Value::as_str).filter(|s| !s.is_empty())?;
                    let status = i.get("agree_status").and_then(Value::as_str).filter(|s| !s.is_empty())?;
                    Some(ConsentCheck {
                        roomid: roomid.to_string(),
                        userid: if roomid.is_empty() {
                            i.get("userid").and_then(Value::as_str).unwrap_or_default().to_string()
                        } else {
                            String::new()
                        },
                        external_id: ext.to_string(),
                        agree_status: status.to_string(),
                        status_change_time: i.get("status_change_time").and_then(Value::as_i64),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn errcode(v: &Value) -> i64 {
    v.get("errcode").and_then(Value::as_i64).unwrap_or(0)
}

fn errmsg(v: &Value) -> String {
    v.get("errmsg").and_then(Value::as_str).unwrap_or_default().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeinfo_reads_wecoms_spelling() {
        let v = json!({"errcode": 0, "agreeinfo": [
            {"userid": "zhangsan", "exteranalopenid": "wmA", "agree_status": "Agree", "status_change_time": 1_700_000_000},
            {"userid": "lisi", "exteranalopenid": "", "agree_status": "Agree"}
        ]});
        let got = agreeinfo(&v, "");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].userid, "zhangsan");
        assert_eq!(got[0].external_id, "wmA");
        assert_eq!(got[0].status_change_time, Some(1_700_000_000));
        let room = agreeinfo(&json!({"agreeinfo": [{"exteranalopenid": "wmB", "agree_status": "Disagree"}]}), "wr1");
        assert_eq!((room[0].roomid.as_str(), room[0].userid.as_str()), ("wr1", ""));
    }

    #[test]
    fn a_bad_extra_ca_is_a_configuration_error() {
        let settings =
            ClientSettings { extra_ca_pem: Some(b"not a certificate".to_vec()), ..ClientSettings::default() };
        assert!(matches!(http_client(&Proxy::default(), &settings), Err(WecomError::Config(_))));
    }
}
