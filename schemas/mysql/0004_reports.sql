-- 0004_reports.sql: an index for the reports family's defaulters report.
-- It reads a school's fees still owing (status pending or partially_paid)
-- due on or before a date. With only (school_id, period, status) that is a
-- scan of every fee the school ever had (EXPLAIN on 1M fees, 13 months of 2
-- schools: a full scan for the count, 28 s for the rows); with this index
-- both are a range over the owing fees alone (0.8 s and 0.9 s).
-- The fee-collection and fee-statement reports use existing indexes
-- (payments.ix_payments_paid_at, ix_payments_student_paid; fees by student).
ALTER TABLE fees ADD KEY ix_fees_school_status_due (school_id, status, due_date);
