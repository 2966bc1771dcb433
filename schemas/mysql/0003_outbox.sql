-- 0003_outbox.sql: events for other services, written in the same
-- transaction as the change they describe; readers poll unpublished rows
-- in id order and set published_at.
CREATE TABLE outbox (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  aggregate_type  VARCHAR(32)  NOT NULL,
  aggregate_id    VARCHAR(64)  NOT NULL,
  event_type      VARCHAR(64)  NOT NULL,
  payload         LONGTEXT     NOT NULL CHECK (JSON_VALID(payload)),
  created_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  published_at    DATETIME(3)  NULL,
  KEY ix_outbox_unpublished (published_at, id),
  KEY ix_outbox_event (event_type, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
