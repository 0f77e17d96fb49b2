-- Corp leases across instances (several daemons share one database). Times are milliseconds of
-- the database's clock.
CREATE TABLE IF NOT EXISTS corp_lease (
  corpid TEXT NOT NULL PRIMARY KEY,
  holder TEXT NOT NULL DEFAULT '',
  token INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS lease_instance (
  holder TEXT NOT NULL PRIMARY KEY,
  expires_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS corp_lease_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  corpid TEXT NOT NULL,
  holder TEXT NOT NULL,
  token INTEGER NOT NULL,
  event TEXT NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_corp_lease_log_corpid ON corp_lease_log (corpid);
