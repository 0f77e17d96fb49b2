-- Reply-time checks (issue 17, src/quality): the evaluator's state and the daily statistics per
-- employee. Times are milliseconds since the epoch; `day` is a date (YYYY-MM-DD) in the rule's
-- time zone; `conv` is the SHA-256 (hex) of the conversation key (`room:<roomid>` or
-- `pair:<a>|<b>`), which keeps the keys under InnoDB's index length. Every row belongs to one
-- `[[reply_time]]` rule (`rule` = its name) of one corp.

-- Where each rule's evaluation of a corp's message table stands: the last seq evaluated, the
-- newest msgtime seen (the rule's "now": deadlines pass by message time, not the wall clock),
-- and `since_ms` (rows with an older msgtime are skipped: the start of a backfill). The
-- evaluator moves it with a compare-and-set in the transaction that writes the batch's results,
-- so a batch is counted once however many processes evaluate.
CREATE TABLE IF NOT EXISTS reply_cursor (
  corpid VARCHAR(64) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  seq BIGINT NOT NULL,
  since_ms BIGINT NOT NULL DEFAULT 0,
  watermark BIGINT NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (corpid, rule)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The unanswered run of customer messages of each conversation: its first message (the clock
-- starts there), `decided` once its hit was written.
CREATE TABLE IF NOT EXISTS reply_open (
  corpid VARCHAR(64) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  conv CHAR(64) NOT NULL,
  conversation VARCHAR(512) NOT NULL,
  msgid VARCHAR(128) NOT NULL,
  msgtime BIGINT NOT NULL,
  sender VARCHAR(128) NOT NULL,
  employee VARCHAR(128) NOT NULL DEFAULT '',
  context TEXT NOT NULL,
  is_group TINYINT NOT NULL DEFAULT 0,
  decided TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, conv)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Messages an employee sent per day and conversation (the daily `conversations` and `messages`).
CREATE TABLE IF NOT EXISTS reply_activity (
  corpid VARCHAR(64) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  day CHAR(10) NOT NULL,
  userid VARCHAR(128) NOT NULL,
  conv CHAR(64) NOT NULL,
  messages BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, day, userid, conv)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One first reply: the run it answered (its first customer message), who answered, on which day,
-- after how much working time, and whether that was late.
CREATE TABLE IF NOT EXISTS reply_sample (
  corpid VARCHAR(64) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  msgid VARCHAR(128) NOT NULL,
  day CHAR(10) NOT NULL,
  userid VARCHAR(128) NOT NULL,
  wait_ms BIGINT NOT NULL,
  late TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid, rule, msgid),
  KEY idx_reply_sample_day (corpid, rule, day, userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The daily statistics per employee, recomputed from reply_activity and reply_sample for every
-- (day, employee) a batch touched, in the batch's transaction. `median_reply_ms` is NULL on a day
-- without first replies.
CREATE TABLE IF NOT EXISTS reply_daily (
  corpid VARCHAR(64) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  day CHAR(10) NOT NULL,
  userid VARCHAR(128) NOT NULL,
  conversations BIGINT NOT NULL DEFAULT 0,
  messages BIGINT NOT NULL DEFAULT 0,
  replies BIGINT NOT NULL DEFAULT 0,
  median_reply_ms BIGINT NULL,
  late BIGINT NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (corpid, rule, day, userid),
  KEY idx_reply_daily_day (corpid, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
