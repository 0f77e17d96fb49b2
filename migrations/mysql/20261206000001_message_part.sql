-- Values too large for one row of message_<corpid> within the server's max_allowed_packet (a
-- 30 MB chatrecord, a 5 MB text): the message row holds a small JSON marker in that column
-- ({"wwmsgaudit_part":{...}}) and the full value is here, cut into parts of at most a quarter
-- of the packet, written in the same transaction as the row. Keyed by the record's seq.
CREATE TABLE IF NOT EXISTS message_part (
  corpid VARCHAR(64) NOT NULL,
  seq BIGINT UNSIGNED NOT NULL,
  col VARCHAR(32) NOT NULL,
  part INT UNSIGNED NOT NULL,
  data LONGBLOB NOT NULL,
  PRIMARY KEY (corpid, seq, col, part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
