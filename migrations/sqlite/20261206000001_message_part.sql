-- Values too large for one row of message_<corpid> (see the MySQL migration): the message row
-- holds a small JSON marker in that column and the full value is here, in parts, written in the
-- same transaction as the row. Keyed by the record's seq (two's complement, like the rows).
CREATE TABLE IF NOT EXISTS message_part (
  corpid TEXT NOT NULL,
  seq INTEGER NOT NULL,
  col TEXT NOT NULL,
  part INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (corpid, seq, col, part)
);
