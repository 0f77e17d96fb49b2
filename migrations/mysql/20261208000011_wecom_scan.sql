-- src/wecom's own bookkeeping per corp (issue 16): how far the stored messages were scanned for
-- new roomids and external contacts (`last_seq`, the message seq), and when the archived-member
-- list was last refreshed (`permit_refreshed_at`, ms of the database's clock; NULL: never).
-- Shared by the instances of one database, so a takeover continues where the other stopped.
CREATE TABLE IF NOT EXISTS wecom_scan (
  corpid VARCHAR(64) NOT NULL,
  last_seq BIGINT NOT NULL DEFAULT 0,
  permit_refreshed_at BIGINT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (corpid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
