-- Fixed tables of wework-msgaudit (MySQL / MariaDB / TiDB).
-- `corplist` has the Java version's columns and meanings; an existing Java table is kept as is
-- (CREATE TABLE IF NOT EXISTS) and its missing columns are added by the daemon after this
-- migration (MySQL has no portable ADD COLUMN IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS `corplist` (
  `id` INT NOT NULL AUTO_INCREMENT,
  `corpid` VARCHAR(64) NOT NULL,
  `secret` VARCHAR(128) NOT NULL DEFAULT '',
  `corpname` VARCHAR(100) NOT NULL DEFAULT '',
  `prikey` TEXT NULL,
  `limits` INT NOT NULL DEFAULT 100,
  `timeout` INT NOT NULL DEFAULT 5,
  `status` TINYINT NOT NULL DEFAULT 1,
  `update` TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_corpid` (`corpid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Further private key versions of a corp (corplist.prikey is the fallback for any version).
CREATE TABLE IF NOT EXISTS `corp_keys` (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `corpid` VARCHAR(64) NOT NULL,
  `publickey_ver` INT UNSIGNED NOT NULL,
  `prikey` TEXT NOT NULL,
  `created` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_corp_ver` (`corpid`, `publickey_ver`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Where each corp resumes; moved forward only, in the transaction that stored the records.
CREATE TABLE IF NOT EXISTS `corp_cursor` (
  `corpid` VARCHAR(64) NOT NULL,
  `seq` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  `updated` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`corpid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
