-- The alert outbox (issue 17, src/alerts). Times are milliseconds since the epoch.
--
-- One row per (rule hit, channel) that routes it: the dispatcher inserts the rows of a hit and
-- sets rule_hit.alert_state = 1 in ONE transaction (INSERT IGNORE against uk_alert_outbox makes
-- a repeated hand-over idempotent). A channel's sender claims pending rows (status 0 -> 1, with
-- claimed_by/claimed_at and attempts + 1) before sending, sends them as one message whose
-- idempotency key is `batch_key` (kept across retries and restarts, so a re-sent batch carries
-- the same key), and records the result: 2 sent (sent_at), back to 0 with next_attempt_at and
-- last_error after a retryable failure, 3 failed. A claim older than [alerts] claim_ttl (the
-- process died mid-send) goes back to 0.
CREATE TABLE IF NOT EXISTS alert_outbox (
  id BIGINT NOT NULL AUTO_INCREMENT,
  channel VARCHAR(128) NOT NULL,
  hit_id BIGINT NOT NULL,
  status TINYINT NOT NULL DEFAULT 0,
  attempts INT NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0,
  batch_key VARCHAR(128) NULL,
  claimed_by VARCHAR(128) NULL,
  claimed_at BIGINT NULL,
  last_error TEXT NULL,
  created_at BIGINT NOT NULL,
  sent_at BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_alert_outbox (channel, hit_id),
  KEY idx_alert_outbox_due (channel, status, next_attempt_at),
  KEY idx_alert_outbox_batch (channel, batch_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
