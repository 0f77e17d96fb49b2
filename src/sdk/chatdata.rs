//! Parsing the body that `GetChatData` returns.
//!
//! The SDK hands back the server's HTTP body verbatim, with return code 0 even when the JSON says
//! `errcode != 0`, and sometimes with an empty body (sdk-facts.md §2). [`parse_chat_page`] turns
//! the body into a [`ChatPage`] or an [`SdkError`]: an empty or non-JSON body is a retryable error,
//! never "no new records".

use serde::Deserialize;

use super::SdkError;

const CALL: &str = "GetChatData";

/// One encrypted record as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EncryptedRecord {
    /// Position in the corp's archive; the next pull starts after the largest one stored.
    pub seq: u64,
    /// Unique id of the message.
    pub msgid: String,
    /// Which of the corp's key pairs encrypted `encrypt_random_key`.
    pub publickey_ver: u32,
    /// RSA-encrypted (PKCS#1 v1.5, base64) key blob.
    pub encrypt_random_key: String,
    /// The encrypted record.
    pub encrypt_chat_msg: String,
}

/// One page of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPage {
    /// The records, in the order the server sent them.
    pub records: Vec<EncryptedRecord>,
}

impl ChatPage {
    /// The largest seq on the page.
    pub fn max_seq(&self) -> Option<u64> {
        self.records.iter().map(|r| r.seq).max()
    }
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    chatdata: Option<Vec<EncryptedRecord>>,
}

/// The longest errmsg kept in an error (server messages can carry hints and request ids).
const MAX_ERRMSG: usize = 200;

/// Parses a `GetChatData` body.
pub fn parse_chat_page(body: &[u8]) -> Result<ChatPage, SdkError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SdkError::EmptyBody { call: CALL });
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| SdkError::BadBody {
        call: CALL,
        reason: format!("{} at line {} column {}", e.classify_kind(), e.line(), e.column()),
    })?;
    let Some(errcode) = parsed.errcode else {
        return Err(SdkError::BadBody { call: CALL, reason: "no errcode field".into() });
    };
    if errcode != 0 {
        let mut errmsg = parsed.errmsg.unwrap_or_default();
        if let Some((cut, _)) = errmsg.char_indices().nth(MAX_ERRMSG) {
            errmsg.truncate(cut);
        }
        return Err(SdkError::Api { call: CALL, errcode, errmsg });
    }
    Ok(ChatPage { records: parsed.chatdata.unwrap_or_default() })
}

trait ClassifyKind {
    fn classify_kind(&self) -> &'static str;
}

impl ClassifyKind for serde_json::Error {
    fn classify_kind(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected JSON shape",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let body = br#"{"errcode":0,"errmsg":"ok","chatdata":[{"seq":18446744073709551615,"msgid":"m1","publickey_ver":3,"encrypt_random_key":"a","encrypt_chat_msg":"b"}]}"#;
        let page = parse_chat_page(body).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].seq, u64::MAX);
        assert_eq!(page.records[0].publickey_ver, 3);
        assert_eq!(page.max_seq(), Some(u64::MAX));
    }

    #[test]
    fn no_chatdata_is_an_empty_page() {
        let page = parse_chat_page(br#"{"errcode":0,"errmsg":"ok","chatdata":[]}"#).unwrap();
        assert!(page.records.is_empty());
        assert_eq!(parse_chat_page(br#"{"errcode":0}"#).unwrap(), ChatPage::default());
    }

    #[test]
    fn nonzero_errcode_is_an_error_even_with_rc_zero() {
        let err = parse_chat_page(br#"{"errcode":48002,"errmsg":"api forbidden"}"#).unwrap_err();
        assert!(matches!(err, SdkError::Api { errcode: 48002, .. }), "{err:?}");
        assert!(!err.is_retryable());
        let err = parse_chat_page(br#"{"errcode":45009,"errmsg":"freq"}"#).unwrap_err();
        assert!(err.is_retryable());
    }

    #[test]
    fn empty_or_garbage_body_is_retryable_never_empty_page() {
        for body in [&b""[..], b"  \n", b"<html>502</html>", b"{\"errcode\":0,\"chatdata\":[{", b"[]"] {
            let err = parse_chat_page(body).unwrap_err();
            assert!(err.is_retryable(), "{body:?} -> {err:?}");
        }
        assert!(matches!(parse_chat_page(b"").unwrap_err(), SdkError::EmptyBody { .. }));
    }

    #[test]
    fn long_errmsg_is_truncated_on_a_char_boundary() {
        let body = format!(r#"{{"errcode":1,"errmsg":"{}"}}"#, "错".repeat(500));
        match parse_chat_page(body.as_bytes()).unwrap_err() {
            SdkError::Api { errmsg, .. } => assert_eq!(errmsg.chars().count(), MAX_ERRMSG),
            other => panic!("{other:?}"),
        }
    }
}
