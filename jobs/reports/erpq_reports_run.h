/*
 * erpq_reports_run.h - one report job's run, shared by the family's files:
 * the pipeline (erpq_reports_run.c), the three reports' SQL and rows
 * (erpq_reports_sql.c, erpq_reports_statement.c), the output side
 * (erpq_reports_out.c) and the report-ready e-mail
 * (erpq_reports_notify.c). Not for use outside jobs/reports.
 *
 * A rep_run lives on the handler's stack for one attempt and belongs to
 * its thread. It owns: the MySQL connection (m), the school's time zone
 * reference, the writer (w) until it is closed or aborted, and the output
 * (an upload or a temporary directory) until it is finished or aborted.
 * rep_run_cleanup() releases whatever is still held, in every outcome.
 *
 * Each report kind provides a rep_kind_ops:
 *   prepare(): checks that depend on the database (class and student
 *     belong to the school; ERPQ_E_ARG means bad input), counts the rows
 *     and sums the money in the job's snapshot (expected_rows), and fills
 *     the metadata text and the columns;
 *   rows(): streams the rows into r->w, calling rep_row_done() after each
 *     row (progress and cancellation);
 *   totals(): writes the total lines (with the prepare() sums as values:
 *     the writer checks them against its own) and returns the result's
 *     "totals" object.
 */
#ifndef ERPQ_REPORTS_RUN_H
#define ERPQ_REPORTS_RUN_H

#include "reports/erpq_reports.h"

/* The output of a run (erpq_reports_out.c). */
typedef struct rep_out {
  erpq_storage_upload *up; /* CSV: the streaming upload */
  uint64_t written;        /* CSV: bytes handed to the upload */
  int parts_logged;        /* CSV: parts reported in the job log */
  char dir[600];           /* XLSX/PDF: the private temporary directory ("" when none) */
  char path[700];          /* XLSX/PDF: the file the writer creates */
  erpq_storage_result res; /* After a successful store. */
} rep_out;

typedef struct rep_run rep_run;

typedef struct rep_kind_ops {
  int (*prepare)(rep_run *r, char *err, size_t errlen);
  int (*rows)(rep_run *r, char *err, size_t errlen);
  int (*totals)(rep_run *r, json_t **totals, char *err, size_t errlen);
} rep_kind_ops;

#define REP_MAX_GROUPS 8
/* Read-ahead of the big row streams (erpq_mysql_stream_prefetch): a
 * thread reads up to 4 batches of 1,024 rows (about 600 KB) ahead. */
#define REP_PREFETCH_ROWS 1024
#define REP_PREFETCH_BATCHES 4

struct rep_run {
  const reports_ctx *rc;
  erpq_jobctx *job; /* NULL outside a worker (never in practice). */
  const rep_req *q;
  char key[1100];
  MYSQL *m;
  int conn_dead; /* The connection was cut (unfinished stream): close, never reuse. */
  rep_school s;

  /* Filled by prepare(). */
  char title[768];
  char period[128];
  char generated[128];
  char file_base[200]; /* fileName without the extension */
  erpq_rcol cols[12];
  size_t ncols;
  uint64_t expected_rows;
  /* Counts and sums for totals(): from the database in prepare()
   * (defaulters, statement), or kept while the rows pass (fee-collection:
   * per payment method, in the ENUM's order). */
  int64_t sum_a, sum_b, sum_c;
  int64_t n_a, n_b;
  int64_t group_rows[REP_MAX_GROUPS], group_sum[REP_MAX_GROUPS];
  int ordered_scan; /* fee-collection: read payments in paid_at order (no sort) */

  erpq_rw *w;
  rep_out out;
  char out_err[256]; /* The storage's message when the CSV sink failed. */
  int last_pct;
  uint64_t rows_done;
};

/* Per kind (erpq_reports_sql.c, erpq_reports_statement.c). */
extern const rep_kind_ops rep_collection_ops;
extern const rep_kind_ops rep_defaulters_ops;
extern const rep_kind_ops rep_statement_ops;

/* After each data row: progress when the percentage changes; returns
 * -ECANCELED once the job is cancelled. */
int rep_row_done(rep_run *r, char *err, size_t errlen);
/* Reports progress pct (0..100) when it changed. */
void rep_progress(rep_run *r, int pct);
/* A job log line (no personal data); printf-style. */
void rep_log(rep_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The school row for r->q->school into r->s; ERPQ_E_ARG when unknown
 * (erpq_reports_sql.c). */
int rep_load_school(rep_run *r, char *err, size_t errlen);
/* Checks that class id belongs to the school (ERPQ_E_ARG if not). */
int rep_check_class(rep_run *r, int64_t klass, char *err, size_t errlen);
/* "Generated 8 Apr 2026 16:05 (Asia/Kolkata)" for now, into r->generated. */
void rep_generated_text(rep_run *r);
/* The local wall-clock time of a UTC instant in the school's zone. */
erpq_cell rep_local_cell(const rep_run *r, int64_t utc_s);

/* Output (erpq_reports_out.c). The writer's destination for r->q->format:
 * CSV begins the upload (dest->write feeds it); XLSX/PDF make the
 * temporary directory (dest->path, and opts->tmpdir for the library's own
 * temporary files). */
int rep_out_open(rep_run *r, erpq_rdest *dest, erpq_ropts *opts, char *err, size_t errlen);
/* After the writer closed successfully: completes the CSV upload, or
 * uploads the XLSX/PDF file; logs the parts. Fills r->out.res. */
int rep_out_store(rep_run *r, char *err, size_t errlen);
/* Aborts an unfinished upload and removes temporary files (any state). */
void rep_out_cleanup(rep_run *r);
/* The storage's cancel hook for this job. */
erpq_s3_cancel rep_out_cancel(rep_run *r);

/* The report-ready e-mail (erpq_reports_notify.c): enqueues send-email on
 * the notify queue with a deterministic job id, so a retry adds it once. */
int rep_notify(rep_run *r, const char *file_name, uint64_t rows, char *err, size_t errlen);

#endif
