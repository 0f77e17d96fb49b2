//! One callback request → its answer, without a server (the server in `server.rs` only reads the
//! request, looks up the keys and acts on the [`Event`]).
//!
//! Checks, in this order; the first that fails decides the answer (and the metric label):
//!
//! | check | status | label |
//! |---|---|---|
//! | `msg_signature`, `timestamp`, `nonce` (and `echostr` for GET) present; the POST body an envelope with `<Encrypt>` | 400 | `malformed` |
//! | the signature over token, timestamp, nonce and the ciphertext | **401** | `bad_signature` |
//! | `timestamp` within 5 minutes of the clock | 401 | `stale` |
//! | `(timestamp, nonce)` not seen in the last 5 minutes (POST) | 409 | `replay` |
//! | the replay table has room (POST; full only under a flood of valid requests) | 503 | `busy` |
//! | the ciphertext decrypts (padding, length) | 400 | `malformed` |
//! | the ReceiveId is the corpid of the path | 403 | `wrong_receive_id` |
//! | the event XML reads | 400 | `malformed` |
//!
//! 401 rather than 403 for a bad signature: the request did not prove who sent it (nothing to
//! do with permissions); 403 is kept for a request that is authentic but addressed to another
//! corp (a token and key shared by two corps' apps). A URL verification answers the echostr's
//! plain text as is (no quotes, BOM or newline); an accepted event answers an empty 200.

use std::time::Instant;

use super::event::{self, Event};
use super::protocol;
use super::replay::{Freshness, ReplayGuard};
use super::CallbackKeys;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Parameters missing, not an envelope, undecryptable, or unreadable event XML.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// The timestamp is not within the window.
    Stale,
    /// Seen before.
    Replay,
    /// The replay table is full.
    Busy,
    /// Authentic, but for another ReceiveId.
    WrongReceiver,
    /// The body is larger than `[callback] max_body`.
    TooLarge,
    /// No corp of that id (or an invalid corpid).
    UnknownCorp,
    /// The corp has no callback settings.
    NotConfigured,
}

impl Rejection {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Rejection::Malformed => 400,
            Rejection::BadSignature | Rejection::Stale => 401,
            Rejection::WrongReceiver => 403,
            Rejection::UnknownCorp | Rejection::NotConfigured => 404,
            Rejection::Replay => 409,
            Rejection::TooLarge => 413,
            Rejection::Busy => 503,
        }
    }

    /// The metric label (`outcome`).
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadSignature => "bad_signature",
            Rejection::Stale => "stale",
            Rejection::Replay => "replay",
            Rejection::Busy => "busy",
            Rejection::WrongReceiver => "wrong_receive_id",
            Rejection::TooLarge => "too_large",
            Rejection::UnknownCorp => "unknown_corp",
            Rejection::NotConfigured => "not_configured",
        }
    }
}

/// The query parameters of a callback (already URL-decoded).
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// `msg_signature`.
    pub msg_signature: Option<String>,
    /// `timestamp`.
    pub timestamp: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `echostr` (URL verification only).
    pub echostr: Option<String>,
}

impl Params {
    /// From decoded `(key, value)` pairs. A `+` that a decoder turned into a space in `echostr` is
    /// put back (base64 has no spaces).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            let slot = match k {
                "msg_signature" => &mut p.msg_signature,
                "timestamp" => &mut p.timestamp,
                "nonce" => &mut p.nonce,
                "echostr" => &mut p.echostr,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.to_string());
        }
        if let Some(e) = p.echostr.as_mut() {
            *e = e.replace(' ', "+");
        }
        p
    }

    fn signed(&self) -> Result<(&str, &str, &str), Rejection> {
        match (&self.msg_signature, &self.timestamp, &self.nonce) {
            (Some(s), Some(t), Some(n)) => Ok((s, t, n)),
            _ => Err(Rejection::Malformed),
        }
    }
}

/// A URL verification (GET): the echostr's plain text to answer.
pub fn verify_url(
    keys: &CallbackKeys,
    corpid: &str,
    params: &Params,
    replay: &ReplayGuard,
    now_unix: u64,
) -> Result<Vec<u8>, Rejection> {
    let (sig, ts, nonce) = params.signed()?;
    let echostr = params.echostr.as_deref().ok_or(Rejection::Malformed)?;
    protocol::verify_signature(keys.token.expose(), ts, nonce, echostr, sig).map_err(|_| Rejection::BadSignature)?;
    if !replay.timely(ts, now_unix) {
        return Err(Rejection::Stale);
    }
    let plain = protocol::decrypt(&keys.aes, echostr).map_err(|_| Rejection::Malformed)?;
    if plain.receive_id != corpid {
        return Err(Rejection::WrongReceiver);
    }
    Ok(plain.message)
}

/// An event (POST): the event inside.
pub fn open_event(
    keys: &CallbackKeys,
    corpid: &str,
    params: &Params,
    body: &[u8],
    replay: &ReplayGuard,
    now_unix: u64,
    now: Instant,
) -> Result<Event, Rejection> {
    let (sig, ts, nonce) = params.signed()?;
    let envelope = event::envelope(body).map_err(|_| Rejection::Malformed)?;
    protocol::verify_signature(keys.token.expose(), ts, nonce, &envelope.encrypt, sig)
        .map_err(|_| Rejection::BadSignature)?;
    match replay.check(corpid, ts, nonce, now_unix, now) {
        Freshness::Fresh => {}
        Freshness::Stale => return Err(Rejection::Stale),
        Freshness::Replay => return Err(Rejection::Replay),
        Freshness::Full => return Err(Rejection::Busy),
    }
    let plain = protocol::decrypt(&keys.aes, &envelope.encrypt).map_err(|_| Rejection::Malformed)?;
    if plain.receive_id != corpid {
        return Err(Rejection::WrongReceiver);
    }
    event::event(&plain.message).map_err(|_| Rejection::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const NOTIFY: &str = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><MsgType><![CDATA[event]]></MsgType>\
        <Event><![CDATA[msgaudit_notify]]></Event><AgentID>2000004</AgentID></xml>";

    fn keys() -> CallbackKeys {
        CallbackKeys::from_settings(Some(&Secret::new("tok3n")), Some(&Secret::new(KEY))).unwrap().unwrap()
    }

    fn post(keys: &CallbackKeys, receive_id: &str, ts: &str, nonce: &str, xml: &str) -> (Params, Vec<u8>) {
        let enc = protocol::encrypt(&keys.aes, &[1; 16], xml.as_bytes(), receive_id);
        let sig = protocol::signature(keys.token.expose(), ts, nonce, &enc);
        let body = format!("<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>");
        let params = Params::from_pairs([("msg_signature", sig.as_str()), ("timestamp", ts), ("nonce", nonce)]);
        (params, body.into_bytes())
    }

    #[test]
    fn every_rejection_in_order() {
        let k = keys();
        let g = ReplayGuard::new(Duration::from_secs(300), 100);
        let now = Instant::now();
        let ts = "1800000000";
        let t = 1_800_000_000;
        let (p, body) = post(&k, "ww1", ts, "n1", NOTIFY);
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t, now), Ok(Event::MsgauditNotify));
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t, now), Err(Rejection::Replay));
        let mut forged = p.clone();
        forged.nonce = Some("n2".into());
        assert_eq!(open_event(&k, "ww1", &forged, &body, &g, t, now), Err(Rejection::BadSignature));
        let (p, body) = post(&k, "ww1", ts, "n3", NOTIFY);
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t + 301, now), Err(Rejection::Stale));
        let (p, body) = post(&k, "wwother", ts, "n4", NOTIFY);
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t, now), Err(Rejection::WrongReceiver));
        let (p, body) = post(&k, "ww1", ts, "n5", "<xml><MsgType>");
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t, now), Err(Rejection::Malformed));
        assert_eq!(open_event(&k, "ww1", &Params::default(), &body, &g, t, now), Err(Rejection::Malformed));
        assert_eq!(open_event(&k, "ww1", &p, b"<xml></xml>", &g, t, now), Err(Rejection::Malformed));
        let other = CallbackKeys::from_settings(Some(&Secret::new("tok3n")), Some(&Secret::new("a".repeat(43))))
            .unwrap()
            .unwrap();
        let (p, body) = post(&other, "ww1", ts, "n6", NOTIFY);
        assert_eq!(open_event(&k, "ww1", &p, &body, &g, t, now), Err(Rejection::Malformed), "same token, other key");
        let statuses: Vec<u16> = [
            Rejection::Malformed,
            Rejection::BadSignature,
            Rejection::Stale,
            Rejection::Replay,
            Rejection::Busy,
            Rejection::WrongReceiver,
            Rejection::TooLarge,
            Rejection::UnknownCorp,
            Rejection::NotConfigured,
        ]
        .iter()
        .map(|r| r.status())
        .collect();
        assert_eq!(statuses, [400, 401, 401, 409, 503, 403, 413, 404, 404]);
    }

    #[test]
    fn url_verification_answers_the_plain_text() {
        let k = keys();
        let g = ReplayGuard::new(Duration::from_secs(300), 100);
        let enc = protocol::encrypt(&k.aes, &[9; 16], b"8837481763524", "ww1");
        let sig = protocol::signature(k.token.expose(), "1800000000", "77", &enc);
        // A decoder that turned the `+` of the echostr into spaces.
        let spaced = enc.replace('+', " ");
        let p = Params::from_pairs([
            ("msg_signature", sig.as_str()),
            ("timestamp", "1800000000"),
            ("nonce", "77"),
            ("echostr", spaced.as_str()),
        ]);
        assert_eq!(verify_url(&k, "ww1", &p, &g, 1_800_000_000).unwrap(), b"8837481763524");
        assert_eq!(verify_url(&k, "ww1", &p, &g, 1_800_000_000).unwrap(), b"8837481763524", "repeatable");
        assert_eq!(verify_url(&k, "ww2", &p, &g, 1_800_000_000), Err(Rejection::WrongReceiver));
        assert_eq!(verify_url(&k, "ww1", &p, &g, 1_900_000_000), Err(Rejection::Stale));
        let mut no_echo = p.clone();
        no_echo.echostr = None;
        assert_eq!(verify_url(&k, "ww1", &no_echo, &g, 1_800_000_000), Err(Rejection::Malformed));
    }
}
