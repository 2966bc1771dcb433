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
 * The pool reads ERPQ_MYSQL_URL (erpq_mysql.h) when the family is
 * registered; without it, jobs fail with a message saying so.
 */
#ifndef ERPQ_FEES_H
#define ERPQ_FEES_H

#include "erpq_job.h"

/* Registers generate-fees and create-fee on queue; concurrency sizes the
 * connection pool. Returns 0, or a negative error with err set (a bad
 * ERPQ_MYSQL_URL). */
int erpq_fees_register(erpq_registry *r, const char *queue, int concurrency, char *err,
                       size_t errlen);
/* Closes the pool (after the worker stopped). */
void erpq_fees_shutdown(void);

/* `erpq-worker migrate [--dir DIR] [--url URL]`: exit status. */
int erpq_fees_migrate_main(int argc, char **argv);
/* `erpq-worker seed-demo [--students N] [--schools N] [--url URL]`. */
int erpq_fees_seed_main(int argc, char **argv);

#endif
