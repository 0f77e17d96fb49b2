//! The storage role of `crate::wecom` ([`WecomRepo`], implemented in `wecom_sql.rs`): what WeCom's
//! archive APIs say about a corp, in the tables of migration `20261208000001_wecom_meta.sql`
//! (`wecom_room`, `wecom_room_member`, `wecom_permit_user`, `wecom_consent`,
//! `wecom_consent_history`), plus `crate::wecom`'s own per-corp bookkeeping (`wecom_scan`:
//! how far the messages were scanned, when the archived members were last listed).
//!
//! Every `*_at` value is written with the database's clock (ms), so that the instances sharing a
//! database agree on what is due; "due" questions take an age in ms, never a time of the caller.

use async_trait::async_trait;

use super::{CorpId, StoreError};

/// A group chat as `msgaudit/groupchat/get` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomInfo {
    /// `roomname`.
    pub roomname: String,
    /// `creator` (the owner's userid).
    pub creator: String,
    /// `room_create_time`, WeCom's seconds.
    pub room_create_time: Option<i64>,
    /// `notice`.
    pub notice: String,
    /// `members`: (memberid, jointime in WeCom's seconds).
    pub members: Vec<(String, Option<i64>)>,
}

/// One `wecom_room` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WecomRoom {
    /// The roomid.
    pub roomid: String,
    /// Its name (`None` until fetched).
    pub roomname: Option<String>,
    /// Owner.
    pub creator: Option<String>,
    /// WeCom's seconds.
    pub room_create_time: Option<i64>,
    /// Group notice.
    pub notice: Option<String>,
    /// First seen in a message (ms).
    pub first_seen_at_ms: i64,
    /// Last fetched (ms); `None`: never.
    pub fetched_at_ms: Option<i64>,
    /// The last failure, `None` once a fetch succeeded.
    pub fetch_error: Option<String>,
}

/// One `wecom_room_member` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WecomRoomMember {
    /// userid or external userid.
    pub memberid: String,
    /// WeCom's seconds.
    pub jointime: Option<i64>,
    /// In the room's last member list.
    pub present: bool,
}

/// One `wecom_permit_user` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermitUser {
    /// The userid.
    pub userid: String,
    /// Bit 1: type 1, bit 2: type 2, bit 4: type 3.
    pub types: i64,
    /// In a list at the last refresh.
    pub present: bool,
    /// First listed (ms).
    pub first_seen_at_ms: i64,
    /// Last listed (ms).
    pub last_seen_at_ms: i64,
}

/// A consent as WeCom answered it: of a 1:1 pair (`roomid` empty, `userid` the employee) or in a
/// group chat (`roomid` set, `userid` empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsentCheck {
    /// `""` for a 1:1 pair.
    pub roomid: String,
    /// `""` inside a group chat.
    pub userid: String,
    /// The external contact (`exteranalopenid`).
    pub external_id: String,
    /// `Agree`, `Disagree`, `Default_Agree`.
    pub agree_status: String,
    /// WeCom's seconds.
    pub status_change_time: Option<i64>,
}

/// One `wecom_consent` or `wecom_consent_history` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// What WeCom answered.
    pub check: ConsentCheck,
    /// When it was checked (ms; in the history: when the change was seen).
    pub checked_at_ms: i64,
}

/// `crate::wecom`'s tables.
#[async_trait]
pub trait WecomRepo: Send + Sync {
    /// Notes roomids seen in messages (new ones with `fetched_at` NULL); returns how many were new.
    async fn wecom_rooms_seen(&self, corpid: &CorpId, roomids: &[String]) -> Result<u64, StoreError>;

    /// Up to `limit` rooms to fetch: never fetched (first), or fetched more than `age_ms` ago.
    async fn wecom_rooms_due(&self, corpid: &CorpId, age_ms: i64, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Stores a fetched room and its members (members not in `info` stay with `present` 0).
    async fn wecom_room_fetched(&self, corpid: &CorpId, roomid: &str, info: &RoomInfo) -> Result<(), StoreError>;

    /// Notes a failed fetch (`fetched_at` set too, so that the room waits for the next refresh
    /// rather than being asked again at every pass).
    async fn wecom_room_failed(&self, corpid: &CorpId, roomid: &str, error: &str) -> Result<(), StoreError>;

    /// Every room of the corp, by roomid.
    async fn wecom_rooms(&self, corpid: &CorpId) -> Result<Vec<WecomRoom>, StoreError>;

    /// The members of a room, by memberid.
    async fn wecom_room_members(&self, corpid: &CorpId, roomid: &str) -> Result<Vec<WecomRoomMember>, StoreError>;

    /// Replaces the archived members with `users` (userid, types bits): listed ones are present
    /// with `last_seen_at` now (`first_seen_at` kept), the others not present. Also notes the
    /// refresh in `wecom_scan.permit_refreshed_at`.
    async fn wecom_permit_replace(&self, corpid: &CorpId, users: &[(String, i64)]) -> Result<(), StoreError>;

    /// Every archived member (present or not), by userid.
    async fn wecom_permit_users(&self, corpid: &CorpId) -> Result<Vec<PermitUser>, StoreError>;

    /// Whether the archived members were listed within `age_ms`.
    async fn wecom_permit_fresh(&self, corpid: &CorpId, age_ms: i64) -> Result<bool, StoreError>;

    /// Stores what WeCom answered; a check whose status or change time differs from the latest
    /// (or that has none yet) is also appended to the history. Returns how many were appended.
    async fn wecom_consent_put(&self, corpid: &CorpId, checks: &[ConsentCheck]) -> Result<u64, StoreError>;

    /// Whether a consent of (roomid, userid, external_id) is stored.
    async fn wecom_consent_known(
        &self,
        corpid: &CorpId,
        roomid: &str,
        userid: &str,
        external_id: &str,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` 1:1 pairs (userid, external_id) checked more than `age_ms` ago, oldest first.
    async fn wecom_consent_due(
        &self,
        corpid: &CorpId,
        age_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// The latest consents of the corp.
    async fn wecom_consents(&self, corpid: &CorpId) -> Result<Vec<Consent>, StoreError>;

    /// The history of one external contact, oldest first.
    async fn wecom_consent_history(&self, corpid: &CorpId, external_id: &str) -> Result<Vec<Consent>, StoreError>;

    /// The seq up to which the corp's messages were scanned (0: none).
    async fn wecom_scan_cursor(&self, corpid: &CorpId) -> Result<u64, StoreError>;

    /// Moves the scan cursor forward (never back).
    async fn wecom_scan_advance(&self, corpid: &CorpId, seq: u64) -> Result<(), StoreError>;
}
