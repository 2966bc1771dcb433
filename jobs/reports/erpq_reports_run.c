/* erpq_reports_run.c - one report job from data to result (the steps are
 * listed in erpq_reports.h; the run's state in erpq_reports_run.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_mysql_stream.h"
#include "reports/erpq_reports_run.h"

void rep_log(rep_run *r, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (r->job)
    erpq_job_log(r->job, line);
}

void rep_progress(rep_run *r, int pct) {
  if (pct == r->last_pct || !r->job)
    return;
  r->last_pct = pct;
  json_t *p = json_integer(pct);
  if (p)
    erpq_job_progress(r->job, p);
  json_decref(p);
}

int rep_row_done(rep_run *r, char *err, size_t errlen) {
  r->rows_done++;
  if (r->job && erpq_job_cancelled(r->job))
    return erpq_fail(err, errlen, -ECANCELED, "the job was cancelled");
  if (r->expected_rows) {
    /* CSV is uploaded as it is written; XLSX/PDF leave the last 10 % to
     * the upload. */
    uint64_t scale = r->q->format == ERPQ_RFORMAT_CSV ? 99 : 90;
    uint64_t done = r->rows_done < r->expected_rows ? r->rows_done : r->expected_rows;
    rep_progress(r, (int)(done * scale / r->expected_rows));
  }
  return 0;
}

static const rep_kind_ops *ops_of(rep_kind k) {
  switch (k) {
  case RK_COLLECTION: return &rep_collection_ops;
  case RK_DEFAULTERS: return &rep_defaulters_ops;
  default: return &rep_statement_ops;
  }
}

/* "2026-04-08T10:30:00Z" */
static void iso_utc(int64_t t, char out[21]) {
  rep_date d = rep_date_of(erpq_floor_div(t, 86400));
  int64_t s = erpq_floor_mod(t, 86400);
  snprintf(out, 21, "%04u-%02u-%02uT%02u:%02u:%02uZ", (unsigned)d.y % 10000u, (unsigned)d.m % 100u,
           (unsigned)d.d % 100u, (unsigned)(s / 3600) % 100u, (unsigned)(s / 60 % 60) % 100u,
           (unsigned)(s % 60) % 100u);
}

static int64_t clamp_ttl(int64_t ttl) {
  if (ttl <= 0)
    ttl = ERPQ_LINK_TTL_DEFAULT;
  return ttl > ERPQ_LINK_TTL_MAX ? ERPQ_LINK_TTL_MAX : ttl;
}

/* Everything up to the first byte written: bad input here is final. */
static int prepare(rep_run *r, char *err, size_t errlen) {
  char why[512];
  r->m = erpq_mysql_connect(&r->rc->db, 0, why, sizeof why);
  if (!r->m)
    return erpq_fail(err, errlen, -ENOTCONN, "%s", why);
  int rc = erpq_mysql_stream_session(r->m, r->rc->db_stall_s, 1, err, errlen);
  if (!rc)
    rc = rep_load_school(r, err, errlen);
  if (!rc)
    rc = ops_of(r->q->kind)->prepare(r, err, errlen);
  if (rc)
    return rc;
  uint64_t limit = r->rc->max_rows;
  if (limit && r->expected_rows > limit)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "the report would have %" PRIu64 " rows, more than the limit of %" PRIu64
                     " (ERPQ_REPORT_MAX_ROWS)",
                     r->expected_rows, limit);
  uint64_t pdf = r->rc->ropts.pdf_max_rows ? r->rc->ropts.pdf_max_rows : ERPQ_RW_PDF_MAX_ROWS;
  if (r->q->format == ERPQ_RFORMAT_PDF && r->expected_rows > pdf)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "the report would have %" PRIu64 " rows, more than a PDF may hold (%" PRIu64
                     ", ERPQ_REPORT_PDF_MAX_ROWS): ask for CSV or XLSX",
                     r->expected_rows, pdf);
  return 0;
}

static void close_db(rep_run *r) {
  if (!r->m)
    return;
  if (!r->conn_dead) {
    char ignore[128];
    erpq_mysql_exec(r->m, "ROLLBACK", ignore, sizeof ignore); /* A read-only snapshot. */
  }
  mysql_close(r->m);
  r->m = NULL;
}

/* Writes the report and stores it. */
static int produce(rep_run *r, json_t **totals, erpq_rstats *st, char *err, size_t errlen) {
  const rep_req *q = r->q;
  rep_generated_text(r);
  rep_log(r, "%s: %" PRIu64 " rows as %s", rep_kind_name(q->kind), r->expected_rows,
          rep_ext(q->format));
  rep_progress(r, 0);
  erpq_ropts opts = r->rc->ropts;
  opts.expected_rows = r->expected_rows;
  erpq_rdest dest;
  int rc = rep_out_open(r, &dest, &opts, err, errlen);
  if (rc)
    return rc;
  erpq_rmeta meta = {r->s.name, r->title, r->period, r->generated, r->s.cur.code, r->s.locale};
  if ((rc = erpq_rw_open(&r->w, q->format, &dest, r->cols, r->ncols, &meta, &opts, err, errlen)))
    return rc;
  const rep_kind_ops *ops = ops_of(q->kind);
  rc = ops->rows(r, err, errlen);
  if (!rc && r->job && erpq_job_cancelled(r->job))
    rc = erpq_fail(err, errlen, -ECANCELED, "the job was cancelled");
  if (!rc && r->rows_done != r->expected_rows)
    rc = erpq_fail(err, errlen, -EPROTO, "read %" PRIu64 " rows where the count said %" PRIu64,
                   r->rows_done, r->expected_rows);
  if (!rc)
    rc = ops->totals(r, totals, err, errlen);
  close_db(r); /* Every row is read: the database is not needed any more. */
  if (rc)
    return rc;
  erpq_rw *w = r->w;
  r->w = NULL; /* close() frees it in every case */
  if ((rc = erpq_rw_close(w, st, err, errlen)))
    return rc;
  if (st->undrawable)
    rep_log(r,
            "%" PRIu64 " characters could not be drawn in the PDF and show as '?' (scripts that "
            "need shaping, such as Devanagari, Arabic or CJK): use XLSX or CSV for those names",
            st->undrawable);
  if (st->repaired)
    rep_log(r, "%" PRIu64 " ill-formed UTF-8 sequences were replaced by U+FFFD", st->repaired);
  if (q->format != ERPQ_RFORMAT_CSV)
    rep_progress(r, 90);
  return rep_out_store(r, err, errlen);
}

static json_t *result_json(rep_run *r, const char *file_name, uint64_t rows, json_t *totals,
                           char *url, int64_t expires) {
  char exp[21];
  iso_utc(expires, exp);
  const rep_out *o = &r->out;
  int s3 = r->rc->sconf.kind == ERPQ_STORAGE_S3;
  return json_pack(
      "{s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:o}", "format", rep_ext(r->q->format), "rows",
      (json_int_t)rows, "bytes", (json_int_t)o->res.bytes, "sha256", o->res.sha256, "contentType",
      rep_content_type(r->q->format), "fileName", file_name, "storage", s3 ? "s3" : "local",
      "bucket", s3 ? json_string(r->rc->sconf.s3.bucket) : json_null(), "key", r->key, "url", url,
      "expiresAt", exp, "totals", totals);
}

/* The audit event of a stored report: one `report.completed` row in the
 * outbox (the relay of the notifications family copies it to MongoDB's
 * audit_log). It names the file, never a person: school, job, kind,
 * format, rows, bytes, SHA-256, storage and key. Written on a connection
 * of its own (the rows were read in a read-only snapshot, closed by now).
 * A job that runs again (a retry after a crash) writes a second event: the
 * report was made twice. */
static int write_audit(rep_run *r, uint64_t rows, char *err, size_t errlen) {
  const rep_out *o = &r->out;
  json_t *pl = json_pack(
      "{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "schoolId", (json_int_t)r->q->school, "queue",
      r->job ? erpq_job_queue(r->job) : "", "jobId", r->job ? erpq_job_id(r->job) : "", "report",
      rep_kind_name(r->q->kind), "format", rep_ext(r->q->format), "rows", (json_int_t)rows, "bytes",
      (json_int_t)o->res.bytes, "sha256", o->res.sha256, "storage",
      r->rc->sconf.kind == ERPQ_STORAGE_S3 ? "s3" : "local", "key", r->key);
  char *text = pl ? json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(pl);
  if (!text)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  char why[512], agg[64];
  snprintf(agg, sizeof agg, "%s", r->job ? erpq_job_id(r->job) : "");
  int rc;
  MYSQL *m = erpq_mysql_connect(&r->rc->db, 0, why, sizeof why);
  if (!m) {
    rc = erpq_fail(err, errlen, -ENOTCONN, "the report's audit event: %s", why);
  } else {
    erpq_param p[] = {ERPQ_PS(agg), ERPQ_PS(text)};
    rc = erpq_mysql_run(m,
                        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)"
                        " VALUES ('report', ?, 'report.completed', ?)",
                        p, 2, NULL, NULL, why, sizeof why);
    if (rc)
      erpq_fail(err, errlen, rc, "the report's audit event: %s", why);
    mysql_close(m);
  }
  free(text);
  return rc;
}

static int run(rep_run *r, json_t **result, char *err, size_t errlen) {
  int rc = prepare(r, err, errlen);
  if (rc) {
    if (rc == ERPQ_E_ARG && r->job)
      erpq_job_discard(r->job); /* Bad input: nothing was written. */
    return rc;
  }
  json_t *totals = NULL;
  erpq_rstats st = {0};
  rc = produce(r, &totals, &st, err, errlen);
  if (rc) {
    if (r->out_err[0] && !strstr(err, r->out_err)) {
      char first[512];
      snprintf(first, sizeof first, "%s", err);
      erpq_fail(err, errlen, rc, "%s (%s)", first, r->out_err);
    }
    json_decref(totals);
    return rc;
  }
  char file_name[256];
  snprintf(file_name, sizeof file_name, "%s.%s", r->file_base, rep_ext(r->q->format));
  int64_t now = (int64_t)time(NULL), ttl = clamp_ttl(r->rc->link_ttl_s);
  char *url = NULL;
  if ((rc = erpq_storage_link(r->rc->st, r->key, file_name, ttl, now, &url, err, errlen))) {
    json_decref(totals);
    return rc;
  }
  *result = result_json(r, file_name, st.rows, totals, url, now + ttl);
  free(url);
  if (!*result)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  if ((rc = write_audit(r, st.rows, err, errlen)) ||
      (r->q->notify && (rc = rep_notify(r, file_name, st.rows, err, errlen)))) {
    json_decref(*result);
    *result = NULL;
    return rc;
  }
  rep_progress(r, 100);
  return 0;
}

int rep_handle(rep_kind kind, erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
               size_t errlen) {
  const reports_ctx *rc = erpq_job_userdata(ctx);
  rep_req q;
  int ret = rep_parse(kind, data, &q, err, errlen);
  rep_run *r = ret ? NULL : calloc(1, sizeof *r);
  if (!ret && !r)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  if (!ret) {
    r->rc = rc;
    r->job = ctx;
    r->q = &q;
    r->last_pct = -1;
    ret = rep_object_key(&q, rc->key_prefix, erpq_job_queue(ctx), erpq_job_id(ctx), r->key,
                         sizeof r->key, err, errlen);
  }
  if (!ret) {
    char why[160];
    if (erpq_storage_key_check(r->key, strlen(r->key), why, sizeof why))
      ret = erpq_fail(err, errlen, ERPQ_E_ARG,
                      "the job id or queue name cannot make a storage key: %s", why);
  }
  if (ret) {
    erpq_job_discard(ctx);
    free(r);
    return ret;
  }
  ret = run(r, result, err, errlen);
  /* Whatever is still held: an unclosed writer (creates nothing), an
   * unfinished upload (aborted), temporary files, the connection. */
  erpq_rw_abort(r->w);
  rep_out_cleanup(r);
  close_db(r);
  erpq_tz_free(r->s.tz);
  free(r);
  return ret;
}
