//! The sending side of WeCom's callbacks (回调): what WeCom's servers do when they tell an app's
//! callback URL that something happened, for tests and drills of the daemon's endpoint.
//!
//! Written from WeCom's published description, independently of the daemon's implementation (its
//! own primitives: aws-lc-rs for AES-256-CBC and SHA-1): `msg_signature` = hex SHA-1 of the sorted
//! concatenation of token, timestamp, nonce and ciphertext; the ciphertext = base64 of
//! AES-256-CBC (key = Base64(EncodingAESKey + "="), IV = its first 16 bytes) over
//! `16 random bytes ‖ u32 BE length ‖ message ‖ ReceiveId`, PKCS#7-padded to a multiple of 32.
//!
//! [`CallbackTarget`] is one app's URL and settings; [`CallbackTarget::notify`] POSTs a
//! `msgaudit_notify` event like WeCom does, [`CallbackTarget::verify_url`] the URL check, and
//! [`CallbackTarget::signed`] builds any request (forged, replayed, oversized) for [`send`].
//! Plain HTTP/1.1 over a `TcpStream` (the daemon sits behind a TLS proxy in production).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::iv::FixedLength;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::rng::{seed_of, Rng};

/// Base64 as WeCom's keys need it (non-zero trailing bits allowed).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An app's callback URL and settings, as entered in the admin console.
#[derive(Clone)]
pub struct CallbackTarget {
    /// `http://host:port/path` (the daemon's `/callback/<corpid>`).
    pub url: String,
    /// The Token.
    pub token: String,
    /// The EncodingAESKey (43 characters).
    pub encoding_aes_key: String,
    /// The ReceiveId: the corpid.
    pub corpid: String,
}

impl std::fmt::Debug for CallbackTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackTarget").field("url", &self.url).field("corpid", &self.corpid).finish_non_exhaustive()
    }
}

/// A request ready to send: `GET|POST url?query` with `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The query string (`msg_signature=…&timestamp=…&nonce=…[&echostr=…]`, URL-encoded).
    pub query: String,
    /// The body (the XML envelope for POST).
    pub body: Vec<u8>,
}

/// `msg_signature` of the four values.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    let d = digest(&SHA1_FOR_LEGACY_USE_ONLY, parts.concat().as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Encrypts `message` for `receive_id` with the EncodingAESKey; `None` when the key is not 43
/// characters of base64.
pub fn encrypt(encoding_aes_key: &str, random: &[u8; 16], message: &[u8], receive_id: &str) -> Option<String> {
    if encoding_aes_key.len() != 43 {
        return None;
    }
    let key = LENIENT.decode(format!("{encoding_aes_key}=")).ok()?;
    let iv: [u8; 16] = key.get(..16)?.try_into().ok()?;
    let mut buf = Vec::with_capacity(20 + message.len() + receive_id.len() + 32);
    buf.extend_from_slice(random);
    buf.extend_from_slice(&u32::try_from(message.len()).ok()?.to_be_bytes());
    buf.extend_from_slice(message);
    buf.extend_from_slice(receive_id.as_bytes());
    let pad = 32 - buf.len() % 32;
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let cipher = EncryptingKey::cbc(UnboundCipherKey::new(&AES_256, &key).ok()?).ok()?;
    cipher.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(FixedLength::from(iv))).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The `msgaudit_notify` event WeCom sends when new archive messages exist.
pub fn notify_xml(corpid: &str, create_time: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{corpid}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[msgaudit_notify]]></Event><AgentID>2000004</AgentID></xml>"
    )
}

/// The `change_external_contact` / `msg_audit_approved` event.
pub fn approved_xml(corpid: &str, userid: &str, external_userid: &str, create_time: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{corpid}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[msg_audit_approved]]></ChangeType>\
         <UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>\
         <WelcomeCode><![CDATA[]]></WelcomeCode></xml>"
    )
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn encode_query(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

impl CallbackTarget {
    /// An event POST of `xml` signed with `timestamp` and `nonce` (for ReceiveId `receive_id`,
    /// normally the corpid), the random prefix from `seed`.
    pub fn signed_event(&self, xml: &str, timestamp: u64, nonce: &str, receive_id: &str, seed: u64) -> Option<Signed> {
        let mut rng = Rng::new(seed_of(&[seed, timestamp, 0xCA11]));
        let mut random = [0u8; 16];
        for b in &mut random {
            *b = b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.below(36) as usize];
        }
        let enc = encrypt(&self.encoding_aes_key, &random, xml.as_bytes(), receive_id)?;
        let ts = timestamp.to_string();
        let sig = signature(&self.token, &ts, nonce, &enc);
        let body = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt><AgentID><![CDATA[2000004]]></AgentID></xml>",
            self.corpid
        );
        Some(Signed {
            method: "POST",
            query: encode_query(&[("msg_signature", &sig), ("timestamp", &ts), ("nonce", nonce)]),
            body: body.into_bytes(),
        })
    }

    /// [`CallbackTarget::signed_event`] for this corp, now, with a fresh nonce from `seed`.
    pub fn signed(&self, xml: &str, seed: u64) -> Option<Signed> {
        let nonce = (seed_of(&[seed, 0x0ACE]) % 10_000_000_000).to_string();
        self.signed_event(xml, now_unix(), &nonce, &self.corpid, seed)
    }

    /// The URL verification GET for the plain text `echo`.
    pub fn signed_verification(&self, echo: &str, timestamp: u64, nonce: &str) -> Option<Signed> {
        let enc = encrypt(&self.encoding_aes_key, b"0123456789abcdef", echo.as_bytes(), &self.corpid)?;
        let ts = timestamp.to_string();
        let sig = signature(&self.token, &ts, nonce, &enc);
        Some(Signed {
            method: "GET",
            query: encode_query(&[("msg_signature", &sig), ("timestamp", &ts), ("nonce", nonce), ("echostr", &enc)]),
            body: Vec::new(),
        })
    }

    /// POSTs a `msgaudit_notify` (nonce from `seed`); the HTTP status.
    pub fn notify(&self, seed: u64) -> std::io::Result<u16> {
        let req = self
            .signed(&notify_xml(&self.corpid, now_unix()), seed)
            .ok_or_else(|| std::io::Error::other("the EncodingAESKey is not 43 characters of base64"))?;
        send(&self.url, &req).map(|(status, _)| status)
    }

    /// The URL verification: the status and body of the answer (the body must be `echo`).
    pub fn verify_url(&self, echo: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let nonce = (seed_of(&[now_unix(), 0x7E57]) % 1_000_000_000).to_string();
        let req = self
            .signed_verification(echo, now_unix(), &nonce)
            .ok_or_else(|| std::io::Error::other("the EncodingAESKey is not 43 characters of base64"))?;
        send(&self.url, &req)
    }
}

/// Sends `req` to `url` (`http://host:port/path`) over HTTP/1.1 with `Connection: close`; the
/// status and body of the answer.
pub fn send(url: &str, req: &Signed) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut tcp = TcpStream::connect(host)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{} {path}?{} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/4.0\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        req.method,
        req.query,
        req.body.len()
    );
    tcp.write_all(head.as_bytes())?;
    // A large body: give the server a moment to answer early (413) before sending it, as a
    // client honouring early answers does (sending it anyway could make the server reset the
    // connection before the answer is read).
    let early = req.body.len() > 4096 && {
        tcp.set_read_timeout(Some(Duration::from_millis(300)))?;
        let answered = tcp.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        answered
    };
    if !early {
        // An error here (the server closed early) still leaves its answer to read.
        let _ = tcp.write_all(&req.body);
    }
    let _ = tcp.flush();
    let mut answer = Vec::new();
    // A server that answers early (413) may close before reading the whole body.
    let _ = tcp.read_to_end(&mut answer);
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no HTTP answer"))?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no HTTP status"))?;
    let mut body = answer[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_sample_signature_and_a_known_ciphertext_length() {
        // WeCom's published URL-verification sample.
        let echo = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        assert_eq!(signature("QDG6eK", "1409659589", "263014780", echo), "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3");
        let key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
        let ct = encrypt(key, &[0; 16], b"1616140317555161061", "wx5823bf96d3bd56c7").unwrap();
        // 16 + 4 + 19 + 18 = 57 → 64 bytes → 88 base64 characters, like the sample's.
        assert_eq!(ct.len(), echo.len());
        assert!(encrypt("short", &[0; 16], b"x", "ww").is_none());
        assert_eq!(encode_query(&[("a", "b+/=")]), "a=b%2B%2F%3D");
    }
}
