//! The channels: which hits go where ([`Channel::routes`]) and how a batch is sent
//! ([`Channel::send`]), each kind with its robot's format and signing:
//!
//! - WeCom group robot: `POST url` `{"msgtype":"markdown","markdown":{"content":…}}` (4096 bytes
//!   at most), answer `{"errcode":0}`; errcode 45009 (too many) is retried.
//! - DingTalk robot: `POST url&timestamp=<ms>&sign=<urlencoded base64(HMAC-SHA256(key = secret,
//!   timestamp + "\n" + secret))>` `{"msgtype":"markdown","markdown":{"title","text"}}`, answer
//!   `{"errcode":0}`; 130101 (too fast) is retried.
//! - Feishu/Lark bot: `{"timestamp":"<s>","sign":<base64(HMAC-SHA256(key = timestamp + "\n" +
//!   secret, empty message))>,"msg_type":"interactive","card":…}` (a `lark_md` card), answer
//!   `{"code":0}`; 9499 and 11232 (rate limited) are retried.
//! - Generic webhook: `POST url` with the JSON of the batch, `Idempotency-Key: <batch key>` and
//!   `X-Msgaudit-Signature: sha256=<hex HMAC-SHA256(key = secret, body)>`; 2xx is success, 408,
//!   429 and 5xx are retried, another status gives up.
//! - E-mail over SMTP (`lettre`, tokio, rustls): one mail per batch, `Message-ID:
//!   <batch key@wework-msgaudit>`.
//!
//! The URL (a robot's holds its key) and the secret are [`Secret`](crate::secret::Secret)s: errors name the channel, never
//! the URL (`reqwest::Error::without_url`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

use super::template::{self, Style};
use super::AlertsError;
use crate::config::{AlertChannelConfig, AlertChannelKind};
use crate::store::AlertHit;

/// The header of the webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Msgaudit-Signature";
/// The header of the webhook's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A configured channel, ready to send.
pub struct Channel {
    /// Its configuration.
    pub cfg: AlertChannelConfig,
    public_url: String,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.cfg.name).field("kind", &self.cfg.kind).finish_non_exhaustive()
    }
}

/// `pattern` (`*`, `prefix*` or a name) matches `name`.
fn matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// The URL lettre is given: `smtp://…` requires STARTTLS unless it says `tls=none` (plain: a
/// local relay) or `tls=opportunistic`; `smtps://…` is TLS from the start.
pub fn smtp_url(url: &str) -> String {
    if !url.starts_with("smtp://") {
        return url.to_string();
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    match params.iter().position(|p| p.starts_with("tls=")) {
        Some(i) if params[i] == "tls=none" => {
            params.remove(i);
        }
        Some(_) => {}
        None => params.push("tls=required"),
    }
    if params.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

/// HMAC-SHA256 of `msg` with `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg).as_ref().to_vec()
}

/// DingTalk's `sign` (before URL encoding): base64(HMAC-SHA256(secret, "<ms>\n<secret>")).
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    B64.encode(hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes()))
}

/// Feishu's `sign`: base64(HMAC-SHA256(key = "<s>\n<secret>", empty message)).
pub fn feishu_sign(timestamp_s: i64, secret: &str) -> String {
    B64.encode(hmac_sha256(format!("{timestamp_s}\n{secret}").as_bytes(), b""))
}

/// The webhook's signature header value: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes(), body);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Channel {
    /// The channel of `cfg`; links point at `public_url` ("" = none); every request is bounded
    /// by `timeout`.
    pub fn new(cfg: &AlertChannelConfig, public_url: &str, timeout: Duration) -> Result<Self, AlertsError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("wework-msgaudit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertsError::Config { channel: cfg.name.clone(), message: e.without_url().to_string() })?;
        let smtp = match cfg.kind {
            AlertChannelKind::Email => {
                let mut b =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp_url(cfg.url.expose())).map_err(|e| {
                        AlertsError::Config { channel: cfg.name.clone(), message: format!("the SMTP url: {e}") }
                    })?;
                if !cfg.username.is_empty() {
                    b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                        cfg.username.clone(),
                        cfg.secret.expose().to_string(),
                    ));
                }
                Some(b.timeout(Some(timeout)).build())
            }
            _ => None,
        };
        Ok(Self { cfg: cfg.clone(), public_url: public_url.to_string(), http, smtp })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Whether `hit` goes to this channel (its rule and corp are routed here).
    pub fn routes(&self, hit: &AlertHit) -> bool {
        matches(&self.cfg.rules, &hit.rule) && matches(&self.cfg.corps, &hit.corpid)
    }

    /// The messages allowed per `rate_window` (0: no limit).
    pub fn rate_limit(&self) -> u32 {
        match (self.cfg.rate_limit, self.cfg.kind) {
            (0, AlertChannelKind::Wecom | AlertChannelKind::Dingtalk) => 20,
            (0, AlertChannelKind::Feishu) => 100,
            (n, _) => n,
        }
    }

    /// The body's style, its byte limit and the built-in template.
    fn format(&self) -> (Style, usize, &'static str) {
        match self.cfg.kind {
            AlertChannelKind::Wecom => (Style::Markdown, 4096, template::MARKDOWN),
            AlertChannelKind::Dingtalk => (Style::Markdown, 18_000, template::MARKDOWN),
            AlertChannelKind::Feishu => (Style::Markdown, 25_000, template::MARKDOWN),
            AlertChannelKind::Webhook => (Style::Text, 0, template::TEXT),
            AlertChannelKind::Email => (Style::Text, 0, template::TEXT),
        }
    }

    /// The text of a batch.
    pub fn render(&self, hits: &[AlertHit]) -> template::Rendered {
        let (style, max, builtin) = self.format();
        let tpl = if self.cfg.template.is_empty() { builtin } else { self.cfg.template.as_str() };
        template::render(tpl, style, hits, &self.public_url, max)
    }

    /// Sends `hits` as one message with idempotency key `key`.
    pub async fn send(&self, hits: &[AlertHit], key: &str) -> Result<(), AlertsError> {
        let text = self.render(hits);
        match self.cfg.kind {
            AlertChannelKind::Wecom => {
                let body = json!({"msgtype": "markdown", "markdown": {"content": text.body}});
                let answer = self.post_json(self.cfg.url.expose(), &body, &[]).await?;
                self.robot_answer(&answer, "errcode", "errmsg", &[45009, -1])
            }
            AlertChannelKind::Dingtalk => {
                let mut url = self.cfg.url.expose().to_string();
                if !self.cfg.secret.is_empty() {
                    let ts = now_ms();
                    let sign = template::encode(&dingtalk_sign(ts, self.cfg.secret.expose()));
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&format!("timestamp={ts}&sign={sign}"));
                }
                let body = json!({"msgtype": "markdown", "markdown": {"title": text.title, "text": text.body}});
                let answer = self.post_json(&url, &body, &[]).await?;
                self.robot_answer(&answer, "errcode", "errmsg", &[130101, -1])
            }
            AlertChannelKind::Feishu => {
                let mut body = json!({
                    "msg_type": "interactive",
                    "card": {
                        "header": {"title": {"tag": "plain_text", "content": text.title}},
                        "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": text.body}}],
                    },
                });
                if !self.cfg.secret.is_empty() {
                    let ts = now_ms() / 1000;
                    body["timestamp"] = Value::String(ts.to_string());
                    body["sign"] = Value::String(feishu_sign(ts, self.cfg.secret.expose()));
                }
                let answer = self.post_json(self.cfg.url.expose(), &body, &[]).await?;
                // Older answers say StatusCode, newer code.
                let key = if answer.get("code").is_some() { "code" } else { "StatusCode" };
                self.robot_answer(&answer, key, "msg", &[9499, 11232])
            }
            AlertChannelKind::Webhook => {
                let body = webhook_body(&self.cfg.name, key, hits, &text, &self.public_url);
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                let mut headers = vec![(IDEMPOTENCY_HEADER, key.to_string())];
                if !self.cfg.secret.is_empty() {
                    headers.push((SIGNATURE_HEADER, webhook_signature(self.cfg.secret.expose(), &bytes)));
                }
                self.post_bytes(self.cfg.url.expose(), bytes, &headers).await.map(|_| ())
            }
            AlertChannelKind::Email => self.mail(&text, key).await,
        }
    }

    async fn post_json(&self, url: &str, body: &Value, headers: &[(&str, String)]) -> Result<Value, AlertsError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let text = self.post_bytes(url, bytes, headers).await?;
        serde_json::from_str(&text).map_err(|_| AlertsError::Answer {
            channel: self.cfg.name.clone(),
            code: 0,
            message: format!("not JSON: {}", snippet(&text)),
            retryable: true,
        })
    }

    /// POSTs JSON `bytes`; the answer's text on 2xx.
    async fn post_bytes(&self, url: &str, bytes: Vec<u8>, headers: &[(&str, String)]) -> Result<String, AlertsError> {
        let mut req = self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.map_err(|e| AlertsError::Transport {
            channel: self.cfg.name.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            Err(AlertsError::Http { channel: self.cfg.name.clone(), status: status.as_u16(), body: snippet(&text) })
        }
    }

    /// A robot's JSON answer: `code_key` 0 is success; the codes of `retry` are worth retrying.
    fn robot_answer(&self, answer: &Value, code_key: &str, msg_key: &str, retry: &[i64]) -> Result<(), AlertsError> {
        let code = answer.get(code_key).and_then(Value::as_i64).unwrap_or(0);
        if code == 0 {
            return Ok(());
        }
        Err(AlertsError::Answer {
            channel: self.cfg.name.clone(),
            code,
            message: snippet(answer.get(msg_key).and_then(Value::as_str).unwrap_or("")),
            retryable: retry.contains(&code),
        })
    }

    async fn mail(&self, text: &template::Rendered, key: &str) -> Result<(), AlertsError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| AlertsError::Config {
            channel: self.cfg.name.clone(),
            message: format!("{what}: {e}"),
        };
        let from = self.cfg.from.parse().map_err(|e| bad("from", &e))?;
        let mut m = Message::builder()
            .from(from)
            .subject(text.title.clone())
            .message_id(Some(format!("<{key}@wework-msgaudit>")));
        for to in &self.cfg.to {
            m = m.to(to.parse().map_err(|e| bad("to", &e))?);
        }
        let message = m.header(ContentType::TEXT_PLAIN).body(text.body.clone()).map_err(|e| bad("the mail", &e))?;
        let Some(smtp) = &self.smtp else {
            return Err(bad("smtp", &"no transport"));
        };
        smtp.send(message).await.map(|_| ()).map_err(|e| AlertsError::Smtp {
            channel: self.cfg.name.clone(),
            message: e.to_string(),
            retryable: !e.is_permanent(),
        })
    }
}

/// The generic webhook's JSON: `{"id": key, "channel", "sent_at": ms, "title", "text", "hits":
/// [{"id", "corpid", "msgid", "rule", "kind", "matched", "context", "sender", "conversation",
/// "msgtime", "link"}]}`.
pub fn webhook_body(channel: &str, key: &str, hits: &[AlertHit], text: &template::Rendered, public_url: &str) -> Value {
    json!({
        "id": key,
        "channel": channel,
        "sent_at": now_ms(),
        "title": text.title,
        "text": text.body,
        "hits": hits.iter().map(|h| json!({
            "id": h.id,
            "corpid": h.corpid,
            "msgid": h.msgid,
            "rule": h.rule,
            "kind": h.kind,
            "matched": h.matched,
            "context": h.context,
            "sender": h.sender,
            "conversation": h.conversation,
            "msgtime": h.msgtime,
            "link": template::link(public_url, h),
        })).collect::<Vec<_>>(),
    })
}

/// At most 200 characters of an answer, on one line.
fn snippet(s: &str) -> String {
    s.chars().take(200).collect::<String>().replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_sign_matches_the_documented_algorithm() {
        // Python: base64(hmac.new(b"this is secret", b"1700000000000\nthis is secret", sha256).digest())
        let s = dingtalk_sign(1_700_000_000_000, "this is secret");
        let again = B64.encode(hmac_sha256(b"this is secret", b"1700000000000\nthis is secret"));
        assert_eq!(s, again);
        assert_eq!(B64.decode(&s).unwrap().len(), 32);
        assert_ne!(s, dingtalk_sign(1_700_000_000_001, "this is secret"));
    }

    #[test]
    fn smtp_requires_starttls_unless_told_otherwise() {
        assert_eq!(smtp_url("smtp://mail.example.com:587"), "smtp://mail.example.com:587?tls=required");
        assert_eq!(smtp_url("smtp://127.0.0.1:2525?tls=none"), "smtp://127.0.0.1:2525");
        assert_eq!(smtp_url("smtp://h?tls=opportunistic"), "smtp://h?tls=opportunistic");
        assert_eq!(smtp_url("smtps://h:465"), "smtps://h:465");
    }

    #[test]
    fn routing_by_rule_and_corp() {
        let cfg: AlertChannelConfig = toml::from_str(
            "name = \"x\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nrules = [\"leak-*\", \"exact\"]\ncorps = [\"wwa\"]",
        )
        .unwrap();
        let ch = Channel::new(&cfg, "", Duration::from_secs(1)).unwrap();
        let hit = |rule: &str, corp: &str| AlertHit { rule: rule.into(), corpid: corp.into(), ..AlertHit::default() };
        assert!(ch.routes(&hit("leak-id", "wwa")));
        assert!(ch.routes(&hit("exact", "wwa")));
        assert!(!ch.routes(&hit("exactly", "wwa")));
        assert!(!ch.routes(&hit("leak-id", "wwb")));
        assert_eq!(ch.rate_limit(), 0);
        assert!(!format!("{ch:?}").contains("127.0.0.1"));
    }
}
