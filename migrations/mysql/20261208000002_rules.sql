-- Rules and their hits (issue 17, src/rules). Times are milliseconds since the epoch.

-- Rules managed in the database (`rule add`, the admin API), beside those of rules.toml. `body`
-- is the rule as TOML, in the same form as one [[rule]] of rules.toml.
CREATE TABLE IF NOT EXISTS rule_def (
  id BIGINT NOT NULL AUTO_INCREMENT,
  name VARCHAR(128) NOT NULL,
  body MEDIUMTEXT NOT NULL,
  enabled TINYINT NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_rule_def_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per (message, rule) that matched. Content rules write it in the transaction that
-- stores the message, so a hit is neither lost nor reported twice (the unique key makes a
-- retried batch idempotent); reply-time rules write it when the wait is over, `msgid` being the
-- unanswered customer message. `kind`: keyword, regex, builtin, behaviour, reply_time.
-- `alert_state` 0: not yet handed to the alert outbox, 1: handed (the outbox sets it in the
-- transaction that creates its rows).
CREATE TABLE IF NOT EXISTS rule_hit (
  id BIGINT NOT NULL AUTO_INCREMENT,
  corpid VARCHAR(64) NOT NULL,
  msgid VARCHAR(128) NOT NULL,
  rule VARCHAR(128) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  matched TEXT NOT NULL,
  context TEXT NOT NULL,
  sender VARCHAR(128) NOT NULL DEFAULT '',
  conversation VARCHAR(512) NOT NULL DEFAULT '',
  msgtime BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  alert_state TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uk_rule_hit (corpid, msgid, rule),
  KEY idx_rule_hit_alert (alert_state, id),
  KEY idx_rule_hit_time (corpid, msgtime)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
