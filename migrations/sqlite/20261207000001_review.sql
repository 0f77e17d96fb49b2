-- The review API (src/review): its users, what each may read, their sessions, and the
-- tamper-evident access log (see the MySQL migration for the meaning of each table). Times are
-- milliseconds since the epoch of the database's clock.
CREATE TABLE IF NOT EXISTS review_user (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_login_at INTEGER NULL
);

CREATE TABLE IF NOT EXISTS review_grant (
  user_id INTEGER NOT NULL,
  corpid TEXT NOT NULL,
  userids TEXT NULL,
  PRIMARY KEY (user_id, corpid)
);

CREATE TABLE IF NOT EXISTS review_session (
  token_hash TEXT NOT NULL PRIMARY KEY,
  user_id INTEGER NOT NULL,
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_review_session_user ON review_session (user_id);

CREATE TABLE IF NOT EXISTS access_log (
  id INTEGER NOT NULL PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  username TEXT NOT NULL,
  role TEXT NOT NULL,
  action TEXT NOT NULL,
  corpid TEXT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_access_log_at ON access_log (at_ms);

CREATE TABLE IF NOT EXISTS access_log_head (
  id INTEGER NOT NULL PRIMARY KEY,
  n INTEGER NOT NULL,
  hash TEXT NOT NULL
);

INSERT OR IGNORE INTO access_log_head (id, n, hash)
  VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
