-- What WeCom's archive APIs say about a corp (issue 16, src/wecom): see the MySQL migration for
-- the meaning of each table and column.
CREATE TABLE IF NOT EXISTS wecom_room (
  corpid TEXT NOT NULL,
  roomid TEXT NOT NULL,
  roomname TEXT NULL,
  creator TEXT NULL,
  room_create_time INTEGER NULL,
  notice TEXT NULL,
  first_seen_at INTEGER NOT NULL,
  fetched_at INTEGER NULL,
  fetch_error TEXT NULL,
  PRIMARY KEY (corpid, roomid)
);

CREATE TABLE IF NOT EXISTS wecom_room_member (
  corpid TEXT NOT NULL,
  roomid TEXT NOT NULL,
  memberid TEXT NOT NULL,
  jointime INTEGER NULL,
  present INTEGER NOT NULL DEFAULT 1,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (corpid, roomid, memberid)
);

CREATE TABLE IF NOT EXISTS wecom_permit_user (
  corpid TEXT NOT NULL,
  userid TEXT NOT NULL,
  types INTEGER NOT NULL,
  present INTEGER NOT NULL DEFAULT 1,
  first_seen_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  PRIMARY KEY (corpid, userid)
);

CREATE TABLE IF NOT EXISTS wecom_consent (
  corpid TEXT NOT NULL,
  roomid TEXT NOT NULL DEFAULT '',
  userid TEXT NOT NULL DEFAULT '',
  external_id TEXT NOT NULL,
  agree_status TEXT NOT NULL,
  status_change_time INTEGER NULL,
  checked_at INTEGER NOT NULL,
  PRIMARY KEY (corpid, roomid, userid, external_id)
);

CREATE TABLE IF NOT EXISTS wecom_consent_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  corpid TEXT NOT NULL,
  roomid TEXT NOT NULL DEFAULT '',
  userid TEXT NOT NULL DEFAULT '',
  external_id TEXT NOT NULL,
  agree_status TEXT NOT NULL,
  status_change_time INTEGER NULL,
  checked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_wecom_consent_history_ext ON wecom_consent_history (corpid, external_id);
