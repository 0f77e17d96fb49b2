-- Corp leases across instances (several daemons share one database). Times are milliseconds of
-- the database's clock (so that the instances' clocks do not matter).
CREATE TABLE IF NOT EXISTS corp_lease (
  corpid VARCHAR(64) NOT NULL,
  holder VARCHAR(64) NOT NULL DEFAULT '',
  token BIGINT UNSIGNED NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS lease_instance (
  holder VARCHAR(64) NOT NULL,
  expires_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (holder)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS corp_lease_log (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  corpid VARCHAR(64) NOT NULL,
  holder VARCHAR(64) NOT NULL,
  token BIGINT UNSIGNED NOT NULL,
  event VARCHAR(16) NOT NULL,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (id),
  KEY idx_corpid (corpid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
