-- WeCom callback settings of the corps of `corplist` (src/callback): a side table, so that the
-- Java version's corplist keeps exactly its columns. `token` and `encoding_aes_key` are secrets,
-- sealed like corplist.secret when a master key is configured ([security]).
CREATE TABLE IF NOT EXISTS corp_callback (
  corpid VARCHAR(64) NOT NULL,
  token TEXT NOT NULL,
  encoding_aes_key TEXT NOT NULL,
  updated_at BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (corpid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
