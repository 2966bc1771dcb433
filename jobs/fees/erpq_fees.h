/*
 * erpq_fees.h - the fee family (queue bulk-operations) and the database
 * commands of erpq-worker (migrate, seed-demo).
 *
 * Jobs (data described by schemas/jobs/generate-fees.json and
 * create-fee.json):
 *
 *   generate-fees {"schoolId","classId"?,"period":"YYYY-MM","dueDate":"YYYY-MM-DD",
 *                  "feeStructureIds"?:[..]}
 *     One fee row per active student of the class (or of the whole school)
 *     and per applicable active fee structure (the class's own structures
 *     and the school-wide ones, class_id NULL; feeStructureIds narrows
 *     them). Students are read in id order in batches (ERPQ_FEES_BATCH,
 *     default 1000); each batch is written with multi-row INSERT ... ON
 *     DUPLICATE KEY UPDATE id=id (a row that exists is left alone and
 *     counted as skipped) inside one transaction, and progress
 *     {"students","done","created","skipped"} is reported after each. The
 *     last batch's transaction also writes the outbox event fees.generated.
 *     A deadlock (1213) or lock wait timeout (1205) rolls the batch back and
 *     retries it (5 tries, backoff); a lost connection fails the attempt so
 *     bull's attempts/backoff take over; since every row is keyed by
 *     (student, structure, period) a retried job finishes with exactly the
 *     rows of one clean run.
 *     Result {"students","created","skipped","totalAmountMinor"}:
 *     totalAmountMinor is the net amount of every fee the run covers,
 *     created or already there (as computed by this run), so a re-run
 *     reports the same total.
 *
 *   create-fee {"studentId","feeStructureId","period","dueDate","amount"}
 *     One fee of amount minor units (no concession applied: the caller
 *     computed it), idempotent on (student, structure, period).
 *     Result {"feeId","created":bool,"amountMinor"}.
 *
 * Concessions (generate-fees), in integer minor units: for each fee, every
 * concession of the student for the structure's fee head (or for all heads)
 * valid on dueDate counts: percent = round_half_up(gross * bp / 10000),
 * i.e. (gross * bp + 5000) / 10000; fixed = amount_minor. The concession is
 * the sum, capped at gross; the fee's amount_minor = gross - concession.
 *
 * Validation happens before any write: a missing or ill-typed field, an
 * unknown field, a bad period or date, a negative or fractional amount, an
 * unknown school/class/student/structure fail the job with a message
 * naming the field and the job is discarded (no retry).
 *
 * Settings: ERPQ_MYSQL_URL (--mysql-url; required once a queue is bound
 * to the family, and by its commands; also ERPQ_MYSQL_URL_FILE) and
 * ERPQ_FEES_BATCH (--fees-batch, students per transaction, 1000). The
 * family's context holds the parsed URL and, in the worker, a connection
 * pool of as many connections as its queues have concurrency slots.
 *
 * Commands: `erpq-worker migrate [--dir DIR]` applies the MySQL migrations
 * (the data directory's migrations/, see erpq_datapath.h), `erpq-worker
 * seed-demo [--students N] [--schools N]` builds idempotent demo schools.
 */
#ifndef ERPQ_FEES_H
#define ERPQ_FEES_H

#include "erpq_family.h"

/* The family descriptor (the build's family table points at it). */
extern const erpq_family erpq_family_fees;

#endif
