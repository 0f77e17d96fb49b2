//! Ground truth: what the emulator serves, so tests can check the daemon stored exactly that.

use serde::{Deserialize, Serialize};

/// One record as the emulator generated it (before encryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecord {
    pub seq: u64,
    pub msgid: String,
    /// The key version the record is labelled with (99 = a throwaway key nobody has).
    pub publickey_ver: u32,
    /// `msgtype` of the record (`"switch"` for switch records, which have none).
    pub msgtype: String,
    pub action: String,
    /// `encrypt_chat_msg` was mangled so that it cannot be decrypted.
    pub corrupt: bool,
    /// The kind of a hostile record (`hostile::KINDS`), for a corp with `hostile = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostile: Option<String>,
    /// The exact record JSON that was encrypted (may contain raw control characters).
    pub plaintext: String,
    pub media: Vec<TruthMedia>,
}

/// One downloadable media item of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthMedia {
    /// 0 = the top-level attachment, 1.. = nested items in document order.
    pub item: u32,
    pub sdkfileid: String,
    /// Hex MD5 of the served bytes.
    pub md5: String,
    pub size: u64,
    /// image|voice|video|emotion|file|meeting_voice_call|voip_doc_share
    pub kind: String,
    /// The true format of the bytes: jpg/png/gif/amr/silk/mp4/bin...
    pub ext: String,
}

/// Every msgtype of `docs/message-format.md`, plus `switch` records and one unknown type
/// (`future_type`): what a scenario's records cover (the demo corp within its first 80 records).
/// Tests check coverage against this list rather than against the generator's own.
pub const ALL_MSGTYPES: [&str; 32] = [
    "text",
    "image",
    "revoke",
    "agree",
    "disagree",
    "voice",
    "video",
    "card",
    "location",
    "emotion",
    "file",
    "link",
    "weapp",
    "chatrecord",
    "todo",
    "vote",
    "collect",
    "redpacket",
    "external_redpacket",
    "meeting",
    "docmsg",
    "markdown",
    "news",
    "calendar",
    "mixed",
    "meeting_voice_call",
    "voip_doc_share",
    "sphfeed",
    "voiptext",
    "qydiskfile",
    "future_type",
    "switch",
];
