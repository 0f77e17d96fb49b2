//! The archive metadata APIs of the fake WeCom API (for `wework-msgaudit`'s `src/wecom`), with
//! data derived from the scenario so that the daemon's scan of the stored messages finds them:
//!
//! - `POST /cgi-bin/msgaudit/groupchat/get` `{"roomid"}`: any `wr…` roomid (the generator makes
//!   them at random) is a group named `模拟群 <first 6 characters>`, created by one of the
//!   generator's users, with three users and the external contact `wmAbCdEf0123456789` (who
//!   appears in the generated `tolist`s) as members; another roomid answers errcode 40058;
//! - `POST /cgi-bin/msgaudit/get_permit_user_list` `{"type"}`: the generator's users (type 1: the
//!   first four, type 2: the last four, type 3: the last one, no type: all), less those removed
//!   with [`FakeApi::remove_permit_user`](super::FakeApi::remove_permit_user);
//! - `POST /cgi-bin/msgaudit/check_single_agree` `{"info":[{"userid","exteranalopenid"}]}`:
//!   `agreeinfo` per pair (Agree, or Disagree for one pair in five, or what
//!   [`FakeApi::set_consent`](super::FakeApi::set_consent) says); more than 100 pairs answer
//!   errcode 40058;
//! - `POST /cgi-bin/msgaudit/check_room_agree` `{"roomid"}`: `agreeinfo` of the room's external
//!   member.
//!
//! Faults: the token checks of the data calls (40014 unknown token, 42001 after
//! [`ApiFaults::token_ttl_ms`](super::ApiFaults::token_ttl_ms)), and a script of faults consumed one
//! per metadata call ([`FakeApi::push_meta_faults`](super::FakeApi::push_meta_faults)): `500`,
//! `drop`, `slow:<ms>`, `errcode:<n>` (e.g. 45009 rate limit, 42001 expired token, 301052
//! archive service expired).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use super::{errbody, Answer, Recorded, Request, State};
use crate::rng::hash_bytes;

/// The external contact every fake room has.
pub const ROOM_EXTERNAL: &str = "wmAbCdEf0123456789";
/// WeCom's seconds of every fake `status_change_time`, `room_create_time` and `jointime` base.
pub const META_TIME: i64 = 1_767_225_600;
const USERS: &[&str] = crate::gen::USERS;

/// The metadata calls (the path after `/cgi-bin/`).
pub fn call_of(path: &str) -> Option<&'static str> {
    match path.strip_prefix("/cgi-bin/")? {
        "msgaudit/groupchat/get" => Some("groupchat/get"),
        "msgaudit/get_permit_user_list" => Some("get_permit_user_list"),
        "msgaudit/check_single_agree" => Some("check_single_agree"),
        "msgaudit/check_room_agree" => Some("check_room_agree"),
        _ => None,
    }
}

/// (roomid, userid, external userid): who a consent is for; "" where a part does not apply.
type ConsentKey = (String, String, String);

/// The metadata state of a fake API.
#[derive(Default)]
pub(super) struct MetaState {
    script: Mutex<VecDeque<String>>,
    consent: Mutex<HashMap<ConsentKey, (String, i64)>>,
    removed: Mutex<HashSet<String>>,
}

impl MetaState {
    pub(super) fn push_faults(&self, faults: &[&str]) {
        self.script.lock().unwrap_or_else(PoisonError::into_inner).extend(faults.iter().map(|f| (*f).to_string()));
    }

    pub(super) fn set_consent(&self, roomid: &str, userid: &str, external: &str, status: &str, time: i64) {
        self.consent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((roomid.into(), userid.into(), external.into()), (status.into(), time));
    }

    pub(super) fn remove_permit_user(&self, userid: &str) {
        self.removed.lock().unwrap_or_else(PoisonError::into_inner).insert(userid.into());
    }

    /// The consent the fake answers for (roomid, userid, external).
    pub(super) fn consent_of(&self, roomid: &str, userid: &str, external: &str) -> (String, i64) {
        if let Some(c) = self.consent.lock().unwrap_or_else(PoisonError::into_inner).get(&(
            roomid.into(),
            userid.into(),
            external.into(),
        )) {
            return c.clone();
        }
        let h = hash_bytes(format!("{roomid}\0{userid}\0{external}").as_bytes());
        ((if h % 5 == 0 { "Disagree" } else { "Agree" }).into(), META_TIME)
    }
}

impl State {
    /// A metadata call (`call` from [`call_of`]).
    pub(super) fn meta_call(&self, req: &Request, call: &'static str, rec: &mut Recorded) -> Answer {
        let http = |body: Value| Answer::Http { status: 200, body: body.to_string().into_bytes(), content_range: None };
        let token = req.query("access_token").unwrap_or_default();
        let corp = {
            let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            tokens.get(&token).map(|t| (t.corpid.clone(), t.issued.elapsed()))
        };
        let Some((corpid, age)) = corp else {
            return Answer::Http { status: 200, body: errbody(40014, "invalid access_token"), content_range: None };
        };
        rec.corpid = corpid;
        let ttl = self.faults.lock().unwrap_or_else(PoisonError::into_inner).token_ttl_ms;
        if ttl > 0 && age > Duration::from_millis(ttl) {
            rec.fault = Some("token_expired".into());
            return Answer::Http { status: 200, body: errbody(42001, "access_token expired"), content_range: None };
        }
        let fault = self.meta.script.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        if let Some(f) = fault {
            rec.fault = Some(f.clone());
            if let Some(ms) = f.strip_prefix("slow:").and_then(|m| m.parse().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            } else if f == "500" {
                return Answer::Http { status: 500, body: b"internal error".to_vec(), content_range: None };
            } else if f == "drop" {
                return Answer::Drop { half_headers: false };
            } else if let Some(code) = f.strip_prefix("errcode:").and_then(|c| c.parse::<i64>().ok()) {
                return Answer::Http { status: 200, body: errbody(code, "injected"), content_range: None };
            }
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        match call {
            "groupchat/get" => {
                let roomid = text("roomid");
                if !roomid.starts_with("wr") {
                    return Answer::Http { status: 200, body: errbody(40058, "invalid roomid"), content_range: None };
                }
                let h = hash_bytes(roomid.as_bytes()) as usize;
                let mut members: Vec<Value> = (0..3)
                    .map(|i| json!({"memberid": USERS[(h + i) % USERS.len()], "jointime": META_TIME + i as i64}))
                    .collect();
                members.push(json!({"memberid": ROOM_EXTERNAL, "jointime": META_TIME + 3}));
                http(json!({
                    "errcode": 0, "errmsg": "ok",
                    "roomname": format!("模拟群 {}", roomid.chars().skip(2).take(6).collect::<String>()),
                    "creator": USERS[h % USERS.len()],
                    "room_create_time": META_TIME,
                    "notice": "DEMO-ONLY 群公告",
                    "members": members,
                }))
            }
            "get_permit_user_list" => {
                let removed = self.meta.removed.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let n = USERS.len();
                let ids: Vec<&str> = match body.get("type").and_then(Value::as_u64) {
                    Some(1) => USERS[..4.min(n)].to_vec(),
                    Some(2) => USERS[n.saturating_sub(4)..].to_vec(),
                    Some(3) => USERS[n.saturating_sub(1)..].to_vec(),
                    Some(_) => Vec::new(),
                    None => USERS.to_vec(),
                };
                let ids: Vec<&str> = ids.into_iter().filter(|u| !removed.contains(*u)).collect();
                http(json!({"errcode": 0, "errmsg": "ok", "ids": ids}))
            }
            "check_single_agree" => {
                let info = body.get("info").and_then(Value::as_array).cloned().unwrap_or_default();
                if info.len() > 100 {
                    return Answer::Http {
                        status: 200,
                        body: errbody(40058, "info: at most 100"),
                        content_range: None,
                    };
                }
                let agree: Vec<Value> = info
                    .iter()
                    .map(|i| {
                        let u = i.get("userid").and_then(Value::as_str).unwrap_or_default();
                        let e = i.get("exteranalopenid").and_then(Value::as_str).unwrap_or_default();
                        let (status, time) = self.meta.consent_of("", u, e);
                        json!({"userid": u, "exteranalopenid": e, "agree_status": status, "status_change_time": time})
                    })
                    .collect();
                http(json!({"errcode": 0, "errmsg": "ok", "agreeinfo": agree}))
            }
            _ => {
                let roomid = text("roomid");
                if !roomid.starts_with("wr") {
                    return Answer::Http { status: 200, body: errbody(40058, "invalid roomid"), content_range: None };
                }
                let (status, time) = self.meta.consent_of(&roomid, "", ROOM_EXTERNAL);
                http(json!({"errcode": 0, "errmsg": "ok", "agreeinfo": [
                    {"status_change_time": time, "agree_status": status, "exteranalopenid": ROOM_EXTERNAL}
                ]}))
            }
        }
    }
}
