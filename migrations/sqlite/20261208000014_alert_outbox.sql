-- The alert outbox (issue 17, src/alerts): see the MySQL migration for the meaning of each column.
CREATE TABLE IF NOT EXISTS alert_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  hit_id INTEGER NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  batch_key TEXT NULL,
  claimed_by TEXT NULL,
  claimed_at INTEGER NULL,
  last_error TEXT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER NULL,
  UNIQUE (channel, hit_id)
);
CREATE INDEX IF NOT EXISTS idx_alert_outbox_due ON alert_outbox (channel, status, next_attempt_at);
CREATE INDEX IF NOT EXISTS idx_alert_outbox_batch ON alert_outbox (channel, batch_key);
