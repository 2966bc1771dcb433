-- 0002_fees.sql: fee heads and structures, concessions, fees, payments.
-- Money is integer minor units (paise, cents) in BIGINT, never floating point.
CREATE TABLE fee_heads (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  school_id  BIGINT UNSIGNED NOT NULL,
  code       VARCHAR(32)  NOT NULL,
  name       VARCHAR(100) NOT NULL,
  UNIQUE KEY uq_fee_heads (school_id, code),
  CONSTRAINT fk_fee_heads_school FOREIGN KEY (school_id) REFERENCES schools (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- class_id NULL: the structure applies to every class of the school.
CREATE TABLE fee_structures (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  school_id     BIGINT UNSIGNED NOT NULL,
  class_id      BIGINT UNSIGNED NULL,
  fee_head_id   BIGINT UNSIGNED NOT NULL,
  amount_minor  BIGINT NOT NULL,
  frequency     ENUM('monthly','quarterly','termly','annual','one_time') NOT NULL DEFAULT 'monthly',
  due_day       TINYINT UNSIGNED NOT NULL DEFAULT 10,
  active        TINYINT(1) NOT NULL DEFAULT 1,
  UNIQUE KEY uq_fee_structures (school_id, class_id, fee_head_id, frequency),
  KEY ix_fee_structures_class (class_id, active),
  CONSTRAINT ck_fee_structures_amount CHECK (amount_minor >= 0),
  CONSTRAINT ck_fee_structures_due_day CHECK (due_day BETWEEN 1 AND 31),
  CONSTRAINT fk_fs_school FOREIGN KEY (school_id) REFERENCES schools (id),
  CONSTRAINT fk_fs_class FOREIGN KEY (class_id) REFERENCES classes (id),
  CONSTRAINT fk_fs_head FOREIGN KEY (fee_head_id) REFERENCES fee_heads (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- kind 'percent': percent_bp basis points (2500 = 25 %) of the gross amount;
-- kind 'fixed': amount_minor off. fee_head_id NULL: every head.
CREATE TABLE student_concessions (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  student_id    BIGINT UNSIGNED NOT NULL,
  fee_head_id   BIGINT UNSIGNED NULL,
  kind          ENUM('percent','fixed') NOT NULL,
  percent_bp    INT    NOT NULL DEFAULT 0,
  amount_minor  BIGINT NOT NULL DEFAULT 0,
  reason        VARCHAR(200) NULL,
  valid_from    DATE NULL,
  valid_to      DATE NULL,
  UNIQUE KEY uq_concessions (student_id, fee_head_id, kind),
  CONSTRAINT ck_conc_percent CHECK (percent_bp BETWEEN 0 AND 10000),
  CONSTRAINT ck_conc_amount CHECK (amount_minor >= 0),
  CONSTRAINT fk_conc_student FOREIGN KEY (student_id) REFERENCES students (id),
  CONSTRAINT fk_conc_head FOREIGN KEY (fee_head_id) REFERENCES fee_heads (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- amount_minor is what the student owes (gross - concession_minor).
CREATE TABLE fees (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  school_id         BIGINT UNSIGNED NOT NULL,
  student_id        BIGINT UNSIGNED NOT NULL,
  fee_structure_id  BIGINT UNSIGNED NOT NULL,
  period            VARCHAR(7) NOT NULL,
  gross_minor       BIGINT NOT NULL,
  concession_minor  BIGINT NOT NULL DEFAULT 0,
  amount_minor      BIGINT NOT NULL,
  paid_minor        BIGINT NOT NULL DEFAULT 0,
  due_date          DATE NOT NULL,
  status            ENUM('pending','partially_paid','paid','waived','cancelled') NOT NULL DEFAULT 'pending',
  created_by_job    VARCHAR(128) NULL,
  created_at        TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_fees_student_structure_period (student_id, fee_structure_id, period),
  -- reports: dues by school and period, overdue lists, collections per structure
  KEY ix_fees_school_period_status (school_id, period, status),
  KEY ix_fees_status_due (status, due_date),
  KEY ix_fees_structure_period (fee_structure_id, period),
  CONSTRAINT ck_fees_amounts CHECK (gross_minor >= 0 AND concession_minor >= 0 AND amount_minor >= 0 AND paid_minor >= 0),
  CONSTRAINT fk_fees_school FOREIGN KEY (school_id) REFERENCES schools (id),
  CONSTRAINT fk_fees_student FOREIGN KEY (student_id) REFERENCES students (id),
  CONSTRAINT fk_fees_structure FOREIGN KEY (fee_structure_id) REFERENCES fee_structures (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE payments (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  fee_id         BIGINT UNSIGNED NOT NULL,
  student_id     BIGINT UNSIGNED NOT NULL,
  amount_minor   BIGINT NOT NULL,
  method         ENUM('cash','card','upi','bank_transfer','cheque','online') NOT NULL,
  external_ref   VARCHAR(100) NOT NULL,
  paid_at        DATETIME NOT NULL,
  created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_payments_external_ref (external_ref),
  KEY ix_payments_fee (fee_id),
  KEY ix_payments_student_paid (student_id, paid_at),
  KEY ix_payments_paid_at (paid_at),
  CONSTRAINT ck_payments_amount CHECK (amount_minor > 0),
  CONSTRAINT fk_payments_fee FOREIGN KEY (fee_id) REFERENCES fees (id),
  CONSTRAINT fk_payments_student FOREIGN KEY (student_id) REFERENCES students (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
