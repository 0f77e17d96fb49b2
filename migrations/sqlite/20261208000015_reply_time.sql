-- Reply-time checks (issue 17, src/quality): see the MySQL migration for the meaning of each
-- table and column.
CREATE TABLE IF NOT EXISTS reply_cursor (
  corpid TEXT NOT NULL,
  rule TEXT NOT NULL,
  seq INTEGER NOT NULL,
  since_ms INTEGER NOT NULL DEFAULT 0,
  watermark INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (corpid, rule)
);

CREATE TABLE IF NOT EXISTS reply_open (
  corpid TEXT NOT NULL,
  rule TEXT NOT NULL,
  conv TEXT NOT NULL,
  conversation TEXT NOT NULL,
  msgid TEXT NOT NULL,
  msgtime INTEGER NOT NULL,
  sender TEXT NOT NULL,
  employee TEXT NOT NULL DEFAULT '',
  context TEXT NOT NULL,
  is_group INTEGER NOT NULL DEFAULT 0,
  decided INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, conv)
);

CREATE TABLE IF NOT EXISTS reply_activity (
  corpid TEXT NOT NULL,
  rule TEXT NOT NULL,
  day TEXT NOT NULL,
  userid TEXT NOT NULL,
  conv TEXT NOT NULL,
  messages INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, day, userid, conv)
);

CREATE TABLE IF NOT EXISTS reply_sample (
  corpid TEXT NOT NULL,
  rule TEXT NOT NULL,
  msgid TEXT NOT NULL,
  day TEXT NOT NULL,
  userid TEXT NOT NULL,
  wait_ms INTEGER NOT NULL,
  late INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, msgid)
);
CREATE INDEX IF NOT EXISTS idx_reply_sample_day ON reply_sample (corpid, rule, day, userid);

CREATE TABLE IF NOT EXISTS reply_daily (
  corpid TEXT NOT NULL,
  rule TEXT NOT NULL,
  day TEXT NOT NULL,
  userid TEXT NOT NULL,
  conversations INTEGER NOT NULL DEFAULT 0,
  messages INTEGER NOT NULL DEFAULT 0,
  replies INTEGER NOT NULL DEFAULT 0,
  median_reply_ms INTEGER NULL,
  late INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (corpid, rule, day, userid)
);
CREATE INDEX IF NOT EXISTS idx_reply_daily_day ON reply_daily (corpid, day);
