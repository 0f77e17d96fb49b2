-- Rules and their hits (issue 17, src/rules): see the MySQL migration for the meaning of each
-- table and column.
CREATE TABLE IF NOT EXISTS rule_def (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS rule_hit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  corpid TEXT NOT NULL,
  msgid TEXT NOT NULL,
  rule TEXT NOT NULL,
  kind TEXT NOT NULL,
  matched TEXT NOT NULL,
  context TEXT NOT NULL,
  sender TEXT NOT NULL DEFAULT '',
  conversation TEXT NOT NULL DEFAULT '',
  msgtime INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  alert_state INTEGER NOT NULL DEFAULT 0,
  UNIQUE (corpid, msgid, rule)
);
CREATE INDEX IF NOT EXISTS idx_rule_hit_alert ON rule_hit (alert_state, id);
CREATE INDEX IF NOT EXISTS idx_rule_hit_time ON rule_hit (corpid, msgtime);
