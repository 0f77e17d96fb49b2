-- src/wecom's own bookkeeping per corp: see the MySQL migration.
CREATE TABLE IF NOT EXISTS wecom_scan (
  corpid TEXT NOT NULL PRIMARY KEY,
  last_seq INTEGER NOT NULL DEFAULT 0,
  permit_refreshed_at INTEGER NULL,
  updated_at INTEGER NOT NULL
);
