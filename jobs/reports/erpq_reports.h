/*
 * erpq_reports.h - the reports job family: fee collection, defaulters and
 * fee statements as CSV, XLSX or PDF, streamed from MySQL into S3 or a
 * local directory, with download links.
 *
 * Jobs (queue `reports` by default; schemas in schemas/<job>.json):
 *   fee-collection {schoolId, from, to, classId?, method?, format, locale?, notify?}
 *       one row per payment paid in [from, to] (dates in the school's time
 *       zone): paid at (local time), receipt, admission no., student,
 *       class, fee head, period, method, amount; a total per method and a
 *       grand total;
 *   defaulters {schoolId, asOf, classId?, minOverdueDays?, format, locale?, notify?}
 *       one row per student owing money on fees due on or before
 *       asOf - minOverdueDays: admission no., student, class, parent name
 *       and phone, overdue fees, oldest due date, days overdue (asOf minus
 *       that date), outstanding (amount - paid); largest first; a total;
 *   fee-statement {schoolId, studentId, from, to, format? (pdf|xlsx, default pdf), locale?,
 *                  notify?}
 *       the student's opening balance, fees due and payments made in the
 *       period in date order with a running balance, and the closing one.
 * Unknown keys are refused by the schemas; the handlers check everything
 * again (a worker may run with --no-schemas).
 *
 * One job, step by step (erpq_reports_run.c):
 *   1. parse and check the data (erpq_reports_req.c); bad input fails at
 *      once with erpq_job_discard() and a readable reason;
 *   2. open a MySQL connection of the job's own (never a pooled one: an
 *      unbuffered result holds its connection for the whole report) and a
 *      read-only transaction WITH CONSISTENT SNAPSHOT, so the count, the
 *      sums and the rows agree; read the school (name, currency, time
 *      zone), check class / student belong to it (else discard: nothing
 *      is written);
 *   3. count the rows (fee-collection: an index-only count; defaulters and
 *      statement: their counts and sums, which are handed to the writer as
 *      the totals' values, and which it checks against its own sums of the
 *      rows: a report whose totals disagree with its rows fails); refuse
 *      (discard) a report above the row limits (ERPQ_REPORT_MAX_ROWS, and
 *      for PDF ERPQ_REPORT_PDF_MAX_ROWS) before anything is written;
 *   4. stream the rows (lib/mysql/erpq_mysql_stream.h, mysql_use_result,
 *      with a read-ahead thread so that MySQL sends the next rows while the
 *      writer formats these) into the writer (erpq_report_writer.h). CSV
 *      goes straight into the storage upload as it is produced (S3
 *      multipart parts of ERPQ_S3_PART_SIZE, one PUT when smaller); XLSX
 *      and PDF go to a private temporary directory under
 *      ERPQ_REPORT_TMPDIR and are uploaded when the library has assembled
 *      them (parallel parts). fee-collection picks its plan from the
 *      counts: the period's payments in paid_at order from their index (no
 *      sort; when the school has at least 1/8 of them) or the school's own
 *      payments sorted by the server (a small school among many);
 *   5. sign a download link, build the result, and with notify enqueue the
 *      report-ready e-mail (erpq_reports_notify.c).
 *
 * Progress is the percentage of the counted rows written (XLSX/PDF: rows
 * up to 90 %, the upload the rest), reported when it changes. The job log
 * gets a line per uploaded part, the row count, and a PDF's undrawable
 * characters; never a value from the rows (names are personal data).
 *
 * Cancellation (timeout, lost lock, shutdown: erpq_job_cancelled()) is
 * polled for every row and by the upload; the job then stops reading rows
 * (the result is cut, not drained), aborts the upload (a multipart upload
 * is aborted; nothing was completed, so no object exists) and removes its
 * temporary files. Any failure does the same. A stalled upload cannot hold
 * the MySQL result open without bound: an S3 request below 1 byte/s for
 * ERPQ_S3_STALL_TIMEOUT fails (and is retried a few times), and the
 * server drops a result nobody reads for ERPQ_REPORT_DB_STALL_TIMEOUT
 * seconds (net_write_timeout of the job's session).
 *
 * Storage and keys. The object key is fixed per job:
 *   reports/<schoolId>/<yyyy-mm>/<jobId>-<job name>.<ext>
 * where yyyy-mm is the month of the report's first day (from, or asOf for
 * defaulters) and the job id is escaped to [A-Za-z0-9._-] (other bytes as
 * ~XX), so a retry overwrites its own object instead of leaving a second
 * one. Job ids are unique within one queue of one bull prefix, so: a
 * queue other than `reports` bound to the family adds its name as a
 * segment before the file name, and ERPQ_REPORT_KEY_PREFIX replaces the
 * leading "reports" where several deployments (bull prefixes) share one
 * bucket or directory. A job id that would make the key longer than 1,024
 * bytes is refused.
 *
 * Money is int64 minor units end to end (BIGINT columns parsed as
 * integers, erpq_money.h for text; XLSX cells are doubles only inside the
 * writer). Times: payments.paid_at is UTC; the period's local days are
 * turned into UTC bounds, and each paid_at into local time, with
 * core/erpq_tz.h and the school's IANA zone (no CONVERT_TZ, which needs
 * the server's time zone tables).
 *
 * The result (bull returnvalue):
 *   {"format","rows","bytes","sha256","contentType","fileName","storage"
 *    ("s3"|"local"),"bucket" (null for local),"key","url","expiresAt",
 *    "totals":{...}}
 * url is a link signed when the job completed, valid ERPQ_REPORT_LINK_TTL
 * seconds (expiresAt, UTC): links are never stored, and a fresh one comes
 * from GET .../jobs/{id}/download or `erpq-producer download`. totals:
 *   fee-collection {"currency","rows","amountMinor","byMethod":{method:{"rows","amountMinor"}}}
 *   defaulters     {"currency","students","overdueFees","outstandingMinor"}
 *   fee-statement  {"currency","openingBalanceMinor","debitMinor","creditMinor",
 *                   "closingBalanceMinor"}
 *
 * Ownership and threads: the family context is made once at init and is
 * read-only afterwards (the storage object is thread-safe), so any number
 * of handler threads share it; everything else belongs to one job's run
 * on one thread. Settings strings point into the worker's erpq_args,
 * valid until shutdown().
 */
#ifndef ERPQ_REPORTS_H
#define ERPQ_REPORTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_family.h"
#include "erpq_job.h"
#include "erpq_money.h"
#include "erpq_mysql.h"
#include "erpq_report_writer.h"
#include "erpq_storage.h"
#include "erpq_tz.h"

extern const erpq_family erpq_family_reports;

/* ---- The family context ---------------------------------------------------- */

typedef struct reports_ctx {
  erpq_mysql_conf db;
  erpq_storage_conf sconf; /* A copy (bucket, part size, kind); secrets wiped at shutdown. */
  erpq_storage *st;
  erpq_ropts ropts;       /* The writers' options from ERPQ_REPORT_*. */
  char tmpdir[512];       /* XLSX/PDF temporary files. */
  int64_t link_ttl_s;     /* The result's link. */
  uint64_t max_rows;      /* Any format; 0: no limit. */
  unsigned db_stall_s;    /* net_write_timeout of report sessions. */
  char notify_queue[128]; /* Where report-ready e-mails go. */
  char key_prefix[128];   /* First part of object keys ("reports"). */
} reports_ctx;

/* ---- Requests (erpq_reports_req.c) ----------------------------------------- */

typedef enum { RK_COLLECTION, RK_DEFAULTERS, RK_STATEMENT } rep_kind;

typedef struct rep_date {
  int y, m, d;
} rep_date;

typedef struct rep_req {
  rep_kind kind;
  int64_t school, student, klass; /* 0: not given */
  rep_date from, to;              /* collection, statement */
  rep_date as_of, cutoff;         /* defaulters: cutoff = asOf - minOverdueDays */
  int64_t min_overdue_days;
  char method[16]; /* "" or one of payments.method */
  erpq_rformat format;
  char locale[8]; /* "" = by currency: en-IN for INR, else en */
  int notify;
  char notify_email[256], notify_name[208], notify_locale[8];
} rep_req;

/* The job name of a kind ("fee-collection"...). */
const char *rep_kind_name(rep_kind k);
/* Parses and checks a job's data. Returns 0 or ERPQ_E_ARG with the reason
 * (field names, never values). */
int rep_parse(rep_kind kind, const json_t *data, rep_req *q, char *err, size_t errlen);
/* The object key <prefix>/<school>/<yyyy-mm>/[<queue>/]<jobId>-<name>.<ext>
 * into out (the queue segment only for a queue other than "reports").
 * Returns 0 or ERPQ_E_ARG (too long). */
int rep_object_key(const rep_req *q, const char *prefix, const char *queue, const char *job_id,
                   char *out, size_t outlen, char *err, size_t errlen);
/* Extension and content type of a format. */
const char *rep_ext(erpq_rformat f);
const char *rep_content_type(erpq_rformat f);

/* Date helpers: days since 1970-01-01, and back. */
int64_t rep_days(rep_date d);
rep_date rep_date_of(int64_t days);
/* "2026-04-01" (11 bytes). */
void rep_date_iso(rep_date d, char out[11]);
/* "1 Apr 2026" (16 bytes). */
void rep_date_text(rep_date d, char out[16]);
/* UTC "YYYY-MM-DD HH:MM:SS" of local midnight starting day d in tz. */
void rep_local_midnight_utc(const erpq_tz *tz, rep_date d, char out[20]);
/* Parses "YYYY-MM-DD HH:MM:SS" (a DATETIME column) into epoch seconds.
 * Returns 0 or -EINVAL. */
int rep_parse_datetime(const char *s, unsigned long len, int64_t *epoch);
/* Parses "YYYY-MM-DD" (a DATE column). Returns 0 or -EINVAL. */
int rep_parse_date(const char *s, unsigned long len, rep_date *d);
/* payments.method in the ENUM's order: cash, card, upi, bank_transfer,
 * cheque, online. Its index (-1 if unknown), its name by index (NULL out
 * of range), and its display label ("UPI", "Bank transfer"; NULL if
 * unknown). */
#define REP_METHODS 6
int rep_method_index(const char *method, unsigned long len);
const char *rep_method_name(int i);
const char *rep_method_label(const char *method, unsigned long len);
/* Copies s into out keeping [A-Za-z0-9._-], others '_' (file names). */
void rep_safe_name(const char *s, char *out, size_t outlen);

/* ---- One job's run (erpq_reports_run.c, _sql.c, _out.c) -------------------- */

typedef struct rep_school {
  int64_t id;
  char code[40];
  char name[808];
  char tzname[72];
  erpq_tz *tz; /* A reference: erpq_tz_free(). */
  erpq_currency cur;
  char locale[8]; /* The request's, or the default for the currency. */
} rep_school;

/* The handler of all three jobs: kind is the job's. */
int rep_handle(rep_kind kind, erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
               size_t errlen);

#endif
