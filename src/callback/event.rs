//! The XML of callbacks: the envelope WeCom POSTs (`<xml><ToUserName/><Encrypt/><AgentID/></xml>`)
//! and the event inside it, read with quick-xml (no DTDs, no external entities: quick-xml does not
//! resolve them; only the five predefined entities and character references are).
//!
//! Only the direct children of the root element are read, as text or CDATA; nested elements are
//! skipped. What the daemon acts on ([`Event`]):
//!
//! - `MsgType = event`, `Event = msgaudit_notify`: new archive messages exist (sent at most every
//!   15 s, only when there are some) → pull the corp now;
//! - `Event = change_external_contact`, `ChangeType = msg_audit_approved`: an external contact
//!   (`ExternalUserID`) agreed to the archiving of their chats with `UserID` → refresh consent;
//! - anything else is counted and answered, and otherwise ignored.

use std::collections::BTreeMap;

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

/// The most distinct fields read from one document.
const MAX_FIELDS: usize = 64;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed (quick-xml's reason, which quotes no content).
    #[error("not well-formed XML: {0}")]
    Syntax(String),
    /// A required element is missing.
    #[error("no <{0}> element")]
    Missing(&'static str),
    /// More fields than [`MAX_FIELDS`].
    #[error("too many elements")]
    TooMany,
}

impl XmlError {
    /// Never: the same document fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The direct children of the root element: name → text (the first of each name).
pub fn fields(xml: &[u8]) -> Result<BTreeMap<String, String>, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut out = BTreeMap::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|e| XmlError::Syntax(short(&e.to_string())))?;
        match ev {
            XmlEvent::Start(e) => {
                depth += 1;
                if depth == 2 {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    current = Some((name, String::new()));
                }
            }
            XmlEvent::Empty(e) if depth == 1 => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                out.entry(name).or_insert_with(String::new);
            }
            XmlEvent::End(_) => {
                if depth == 2 {
                    if let Some((name, text)) = current.take() {
                        if out.len() >= MAX_FIELDS && !out.contains_key(&name) {
                            return Err(XmlError::TooMany);
                        }
                        out.entry(name).or_insert(text);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            XmlEvent::Text(t) if depth == 2 => {
                if let Some((_, text)) = current.as_mut() {
                    text.push_str(&t.decode().map_err(|e| XmlError::Syntax(short(&e.to_string())))?);
                }
            }
            XmlEvent::CData(c) if depth == 2 => {
                if let Some((_, text)) = current.as_mut() {
                    text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            XmlEvent::GeneralRef(r) if depth == 2 => {
                if let Some((_, text)) = current.as_mut() {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        _ => {
                            let name = String::from_utf8_lossy(&r).into_owned();
                            quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
                        }
                    };
                    text.push_str(&resolved.ok_or_else(|| XmlError::Syntax("unknown entity".into()))?);
                }
            }
            XmlEvent::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if depth != 0 {
        return Err(XmlError::Syntax("unclosed element".into()));
    }
    Ok(out)
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// The envelope of an event POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `<Encrypt>`: the base64 ciphertext.
    pub encrypt: String,
    /// `<ToUserName>` (the corpid; informative: the ReceiveId inside is what counts).
    pub to_user: Option<String>,
    /// `<AgentID>`.
    pub agent_id: Option<String>,
}

/// Reads the envelope.
pub fn envelope(xml: &[u8]) -> Result<Envelope, XmlError> {
    let mut f = fields(xml)?;
    let encrypt = f.remove("Encrypt").filter(|e| !e.trim().is_empty()).ok_or(XmlError::Missing("Encrypt"))?;
    Ok(Envelope { encrypt: encrypt.trim().to_string(), to_user: f.remove("ToUserName"), agent_id: f.remove("AgentID") })
}

/// What an event asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `msgaudit_notify`: new archive messages exist.
    MsgauditNotify,
    /// `change_external_contact` / `msg_audit_approved`: `external_userid` agreed to the archiving
    /// of their chats with `userid`.
    ConsentApproved {
        /// The member (`UserID`).
        userid: String,
        /// The external contact (`ExternalUserID`).
        external_userid: String,
    },
    /// Anything else: `Event` (or `MsgType` when not an event) and `ChangeType`, for the metric.
    Other {
        /// `Event`, or `MsgType` of a message.
        kind: String,
        /// `ChangeType`, if any.
        change_type: Option<String>,
    },
}

impl Event {
    /// The metric label of the event (bounded: unknown kinds are `other`).
    pub fn label(&self) -> &'static str {
        match self {
            Event::MsgauditNotify => "msgaudit_notify",
            Event::ConsentApproved { .. } => "msg_audit_approved",
            Event::Other { .. } => "other",
        }
    }
}

/// Reads the decrypted event.
pub fn event(xml: &[u8]) -> Result<Event, XmlError> {
    let mut f = fields(xml)?;
    let msg_type = f.remove("MsgType").unwrap_or_default();
    let event = f.remove("Event").unwrap_or_default();
    let change_type = f.remove("ChangeType");
    let trimmed = |s: &str| s.trim().to_string();
    match (msg_type.trim(), event.trim(), change_type.as_deref().map(str::trim)) {
        ("event", "msgaudit_notify", _) => Ok(Event::MsgauditNotify),
        ("event", "change_external_contact", Some("msg_audit_approved")) => Ok(Event::ConsentApproved {
            userid: f.remove("UserID").map(|s| trimmed(&s)).ok_or(XmlError::Missing("UserID"))?,
            external_userid: f
                .remove("ExternalUserID")
                .map(|s| trimmed(&s))
                .ok_or(XmlError::Missing("ExternalUserID"))?,
        }),
        (m, e, c) => Ok(Event::Other {
            kind: if e.is_empty() { m.to_string() } else { e.to_string() },
            change_type: c.map(str::to_string),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_events() {
        let env = envelope(
            b"<xml><ToUserName><![CDATA[ww1]]></ToUserName>\n<Encrypt><![CDATA[abc+/=]]></Encrypt><AgentID>218</AgentID></xml>",
        )
        .unwrap();
        assert_eq!(env.encrypt, "abc+/=");
        assert_eq!((env.to_user.as_deref(), env.agent_id.as_deref()), (Some("ww1"), Some("218")));
        assert_eq!(envelope(b"<xml><ToUserName>x</ToUserName></xml>"), Err(XmlError::Missing("Encrypt")));
        assert!(matches!(envelope(b"<xml><Encrypt>abc</xml>"), Err(XmlError::Syntax(_))));
        assert!(matches!(envelope(b"not xml at all"), Err(XmlError::Missing("Encrypt"))));

        let notify = b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
            <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
            <Event><![CDATA[msgaudit_notify]]></Event><AgentID>2000004</AgentID></xml>";
        assert_eq!(event(notify).unwrap(), Event::MsgauditNotify);
        let approved = b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
            <CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>\
            <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[msg_audit_approved]]></ChangeType>\
            <UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmEXT&amp;1]]></ExternalUserID></xml>";
        assert_eq!(
            event(approved).unwrap(),
            Event::ConsentApproved { userid: "zhangsan".into(), external_userid: "wmEXT&amp;1".into() }
        );
        let escaped = b"<xml><MsgType>event</MsgType><Event>change_external_contact</Event>\
            <ChangeType>msg_audit_approved</ChangeType><UserID>li&amp;si&#x4E2D;</UserID><ExternalUserID>wm1</ExternalUserID></xml>";
        assert_eq!(
            event(escaped).unwrap(),
            Event::ConsentApproved { userid: "li&si中".into(), external_userid: "wm1".into() }
        );
        let other = b"<xml><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType></xml>";
        assert_eq!(
            event(other).unwrap(),
            Event::Other { kind: "change_external_contact".into(), change_type: Some("add_external_contact".into()) }
        );
        assert_eq!(event(other).unwrap().label(), "other");
        let missing = b"<xml><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>msg_audit_approved</ChangeType></xml>";
        assert_eq!(event(missing), Err(XmlError::Missing("UserID")));
    }

    #[test]
    fn entities_beyond_the_predefined_ones_are_refused() {
        let doc = b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&e;</Encrypt></xml>";
        assert!(matches!(envelope(doc), Err(XmlError::Syntax(_))));
    }
}
