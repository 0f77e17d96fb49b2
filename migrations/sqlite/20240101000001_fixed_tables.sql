-- Fixed tables of wework-msgaudit (SQLite). Same columns as the MySQL dialect.
-- Unsigned 64-bit values (seq, msgtime, size) are stored as INTEGER in two's complement: values
-- up to 2^63-1 (every real one) read as themselves; the store compares them as unsigned.
CREATE TABLE IF NOT EXISTS "corplist" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "corpid" TEXT NOT NULL UNIQUE,
  "secret" TEXT NOT NULL DEFAULT '',
  "corpname" TEXT NOT NULL DEFAULT '',
  "prikey" TEXT NULL,
  "limits" INTEGER NOT NULL DEFAULT 100,
  "timeout" INTEGER NOT NULL DEFAULT 5,
  "status" INTEGER NOT NULL DEFAULT 1,
  "update" INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS "corp_keys" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "corpid" TEXT NOT NULL,
  "publickey_ver" INTEGER NOT NULL,
  "prikey" TEXT NOT NULL,
  "created" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE ("corpid", "publickey_ver")
);

CREATE TABLE IF NOT EXISTS "corp_cursor" (
  "corpid" TEXT NOT NULL PRIMARY KEY,
  "seq" INTEGER NOT NULL DEFAULT 0,
  "updated" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
