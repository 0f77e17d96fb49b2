-- What WeCom's archive APIs say about a corp (issue 16, src/wecom): group chats and their
-- members (msgaudit/groupchat/get), the archived members (msgaudit/get_permit_user_list) and the
-- consent of external contacts (msgaudit/check_single_agree, check_room_agree). Ids are WeCom's
-- (userid, external userid `wo…`/`wm…`, roomid `wr…`). Times: `*_at` are milliseconds of the
-- database's clock; `*_time` are WeCom's seconds, as WeCom sends them.

-- One row per group chat seen in a message of the corp. `fetched_at` NULL: not fetched yet;
-- `fetch_error`: the last failure (errcode and errmsg), NULL once a fetch succeeded.
CREATE TABLE IF NOT EXISTS wecom_room (
  corpid VARCHAR(64) NOT NULL,
  roomid VARCHAR(128) NOT NULL,
  roomname VARCHAR(255) NULL,
  creator VARCHAR(128) NULL,
  room_create_time BIGINT NULL,
  notice TEXT NULL,
  first_seen_at BIGINT NOT NULL,
  fetched_at BIGINT NULL,
  fetch_error VARCHAR(512) NULL,
  PRIMARY KEY (corpid, roomid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The members of a group chat as of its last fetch; `present` 0: gone from the last list.
CREATE TABLE IF NOT EXISTS wecom_room_member (
  corpid VARCHAR(64) NOT NULL,
  roomid VARCHAR(128) NOT NULL,
  memberid VARCHAR(128) NOT NULL,
  jointime BIGINT NULL,
  present TINYINT NOT NULL DEFAULT 1,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (corpid, roomid, memberid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The archived members (会话存档开启成员). `types`: a bit per licence type the API listed the
-- user under (bit 1: type 1 办公版, bit 2: type 2 服务版, bit 4: type 3 企业版); `present` 0: in no
-- list at the last refresh.
CREATE TABLE IF NOT EXISTS wecom_permit_user (
  corpid VARCHAR(64) NOT NULL,
  userid VARCHAR(128) NOT NULL,
  types INT NOT NULL,
  present TINYINT NOT NULL DEFAULT 1,
  first_seen_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  PRIMARY KEY (corpid, userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The latest consent of an external contact: of a 1:1 pair (`roomid` '', `userid` the employee)
-- or inside a group chat (`roomid` set, `userid` ''). `agree_status` as WeCom spells it: Agree,
-- Disagree, Default_Agree.
CREATE TABLE IF NOT EXISTS wecom_consent (
  corpid VARCHAR(64) NOT NULL,
  roomid VARCHAR(128) NOT NULL DEFAULT '',
  userid VARCHAR(128) NOT NULL DEFAULT '',
  external_id VARCHAR(128) NOT NULL,
  agree_status VARCHAR(32) NOT NULL,
  status_change_time BIGINT NULL,
  checked_at BIGINT NOT NULL,
  PRIMARY KEY (corpid, roomid, userid, external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Every change of a consent (a row when the status or its change time differs from the latest).
CREATE TABLE IF NOT EXISTS wecom_consent_history (
  id BIGINT NOT NULL AUTO_INCREMENT,
  corpid VARCHAR(64) NOT NULL,
  roomid VARCHAR(128) NOT NULL DEFAULT '',
  userid VARCHAR(128) NOT NULL DEFAULT '',
  external_id VARCHAR(128) NOT NULL,
  agree_status VARCHAR(32) NOT NULL,
  status_change_time BIGINT NULL,
  checked_at BIGINT NOT NULL,
  PRIMARY KEY (id),
  KEY idx_wecom_consent_history_ext (corpid, external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
