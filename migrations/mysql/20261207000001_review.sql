-- The review API (src/review): its users, what each may read, their sessions, and the
-- tamper-evident access log. Times are milliseconds since the epoch of the database's clock.

-- One row per person. `password_hash` is an Argon2id PHC string (never the password); `role` is
-- admin, reviewer or auditor.
CREATE TABLE IF NOT EXISTS review_user (
  id BIGINT NOT NULL AUTO_INCREMENT,
  username VARCHAR(64) NOT NULL,
  role VARCHAR(16) NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  disabled TINYINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  last_login_at BIGINT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_review_user_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- What a reviewer may read: a corp whole (`userids` NULL) or the conversations of the listed
-- userids (a JSON array of strings).
CREATE TABLE IF NOT EXISTS review_grant (
  user_id BIGINT NOT NULL,
  corpid VARCHAR(64) NOT NULL,
  userids TEXT NULL,
  PRIMARY KEY (user_id, corpid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Signed-in sessions, keyed by the SHA-256 (hex) of the cookie's token: the token itself is
-- never stored, so a copy of this table signs nobody in.
CREATE TABLE IF NOT EXISTS review_session (
  token_hash CHAR(64) NOT NULL,
  user_id BIGINT NOT NULL,
  csrf_token CHAR(64) NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (token_hash),
  KEY idx_review_session_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The access log: a hash chain. `id` is gapless (1, 2, …: given by access_log_head.n, not by
-- AUTO_INCREMENT), `hash` = SHA-256 over the canonical encoding of the entry's fields and
-- `prev_hash` (the previous entry's `hash`; 64 zeros for entry 1). `detail` is JSON text, hashed
-- as stored.
CREATE TABLE IF NOT EXISTS access_log (
  id BIGINT NOT NULL,
  at_ms BIGINT NOT NULL,
  username VARCHAR(128) NOT NULL,
  role VARCHAR(16) NOT NULL,
  action VARCHAR(64) NOT NULL,
  corpid VARCHAR(64) NULL,
  target TEXT NOT NULL,
  detail MEDIUMTEXT NOT NULL,
  prev_hash CHAR(64) NOT NULL,
  hash CHAR(64) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_access_log_at (at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The chain's head, one row: `n` entries so far and the last entry's hash. Every append first
-- bumps `n` in its transaction, which takes this row's lock: appends of several instances sharing
-- the database are serialised, and a log cut short at its end no longer matches the head.
CREATE TABLE IF NOT EXISTS access_log_head (
  id TINYINT NOT NULL,
  n BIGINT NOT NULL,
  hash CHAR(64) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO access_log_head (id, n, hash)
  VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
