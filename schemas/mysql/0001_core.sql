-- 0001_core.sql: schools, classes, students.
-- Applied by `erpq-worker migrate` (recorded in schema_migrations with the
-- file's SHA-256). Never edit an applied migration: add a new file.
CREATE TABLE schools (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code        VARCHAR(32)  NOT NULL,
  name        VARCHAR(200) NOT NULL,
  timezone    VARCHAR(64)  NOT NULL DEFAULT 'Asia/Kolkata',
  currency    CHAR(3)      NOT NULL DEFAULT 'INR',
  created_at  TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_schools_code (code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE classes (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  school_id      BIGINT UNSIGNED NOT NULL,
  name           VARCHAR(64) NOT NULL,
  section        VARCHAR(16) NOT NULL DEFAULT '',
  grade          TINYINT     NOT NULL DEFAULT 0,
  academic_year  CHAR(9)     NOT NULL,
  UNIQUE KEY uq_classes (school_id, academic_year, name, section),
  CONSTRAINT fk_classes_school FOREIGN KEY (school_id) REFERENCES schools (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE students (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  school_id      BIGINT UNSIGNED NOT NULL,
  class_id       BIGINT UNSIGNED NOT NULL,
  admission_no   VARCHAR(32)  NOT NULL,
  first_name     VARCHAR(100) NOT NULL,
  last_name      VARCHAR(100) NOT NULL DEFAULT '',
  status         ENUM('active','inactive','graduated','withdrawn') NOT NULL DEFAULT 'active',
  parent_name    VARCHAR(200) NULL,
  parent_email   VARCHAR(254) NULL,
  parent_phone   VARCHAR(32)  NULL,
  admitted_on    DATE NULL,
  created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_students_admission (school_id, admission_no),
  -- the fee run pages through active students of a class or a school by id
  KEY ix_students_class_status (class_id, status, id),
  KEY ix_students_school_status (school_id, status, id),
  CONSTRAINT fk_students_school FOREIGN KEY (school_id) REFERENCES schools (id),
  CONSTRAINT fk_students_class FOREIGN KEY (class_id) REFERENCES classes (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
