-- 0005_notifications.sql: the notifications family's send records (the
-- "no double sends" state) and reminder opt-outs.
--
-- notifications: one row per send, keyed by the SHA-256 of its dedup key
-- (given by the producer, or "<queue>:<jobId>"). A worker claims the row
-- (status 'pending', owner = the job, lease_until) before it hands the
-- message to the provider and marks it 'sent' (or 'failed') after the
-- provider's answer, in the same transaction as the outbox rows that carry
-- the record to MongoDB. A retry of a job whose row is 'sent' sends
-- nothing. recipient_masked never holds an address or number in clear
-- (p***@example.org, +91********01). record_version counts the final
-- states written to the outbox (the MongoDB document of version 1 has
-- _id = dedup_hash, later ones dedup_hash.vN).
CREATE TABLE notifications (
  dedup_hash        CHAR(64)     NOT NULL PRIMARY KEY,
  school_id         BIGINT UNSIGNED NOT NULL,
  channel           ENUM('email','sms') NOT NULL,
  template          VARCHAR(64)  NOT NULL,
  locale            VARCHAR(35)  NOT NULL,
  recipient_masked  VARCHAR(600) NOT NULL,
  status            ENUM('pending','sent','failed') NOT NULL,
  owner             VARCHAR(520) NULL,
  lease_until       DATETIME(3)  NULL,
  attempts          INT UNSIGNED NOT NULL DEFAULT 0,
  record_version    INT UNSIGNED NOT NULL DEFAULT 0,
  provider_id       VARCHAR(255) NULL,
  segments          SMALLINT UNSIGNED NULL,
  encoding          VARCHAR(8)   NULL,
  last_error        VARCHAR(512) NULL,
  job_queue         VARCHAR(128) NOT NULL,
  job_id            VARCHAR(255) NOT NULL,
  created_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  sent_at           DATETIME(3)  NULL,
  KEY ix_notifications_school_created (school_id, created_at),
  KEY ix_notifications_status_updated (status, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A parent who followed a reminder's unsubscribe link (the HTTP API checks
-- the link's signature and inserts the row): fee-reminders skips that
-- student's channel and counts it as skipped.optedOut.
CREATE TABLE notification_optouts (
  school_id   BIGINT UNSIGNED NOT NULL,
  student_id  BIGINT UNSIGNED NOT NULL,
  channel     ENUM('email','sms') NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (school_id, student_id, channel),
  CONSTRAINT fk_optouts_student FOREIGN KEY (student_id) REFERENCES students (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
