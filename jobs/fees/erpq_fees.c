#include "erpq_fees.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "fees/erpq_fees_internal.h"
#include "erpq_mysql.h"

#define ROWS_PER_INSERT 500
#define FEE_COLS 9
#define TX_TRIES 5

/* ---- Validation ---------------------------------------------------------------- */

int erpq_fees_valid_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || m < 1 || m > 12 || d < 1) return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= mdays[m - 1] + (m == 2 && leap);
}

int erpq_fees_valid_period(const char *s) {
  if (strlen(s) != 7 || s[4] != '-') return 0;
  for (int i = 0; i < 7; i++)
    if (i != 4 && (s[i] < '0' || s[i] > '9')) return 0;
  int y = atoi(s), m = atoi(s + 5);
  return y >= 1970 && m >= 1 && m <= 12;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *field) {
  return erpq_fail(err, errlen, -EINVAL, fmt, field);
}

static int check_fields(const json_t *data, const char *const *known, char *err, size_t errlen) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)data, key, v) {
    int ok = 0;
    for (int i = 0; known[i]; i++)
      if (!strcmp(known[i], key)) ok = 1;
    if (!ok) return erpq_fail(err, errlen, -EINVAL, "data.%s is not a known field", key);
  }
  return 0;
}

static int req_id(const json_t *data, const char *f, int required, int64_t *out, char *err,
                  size_t errlen) {
  const json_t *v = json_object_get(data, f);
  *out = 0;
  if (!v) return required ? bad(err, errlen, "data.%s is required", f) : 0;
  if (!json_is_integer(v) || json_integer_value(v) <= 0)
    return bad(err, errlen, "data.%s must be a positive integer", f);
  *out = json_integer_value(v);
  return 0;
}

static int req_str(const json_t *data, const char *f, int (*valid)(const char *), const char *what,
                   char *out, size_t outlen, char *err, size_t errlen) {
  const json_t *v = json_object_get(data, f);
  if (!v) return bad(err, errlen, "data.%s is required", f);
  if (!json_is_string(v)) return erpq_fail(err, errlen, -EINVAL, "data.%s must be a string (%s)", f, what);
  const char *s = json_string_value(v);
  if (strlen(s) >= outlen || !valid(s))
    return erpq_fail(err, errlen, -EINVAL, "data.%s must be %s; got '%.40s'", f, what, s);
  snprintf(out, outlen, "%s", s);
  return 0;
}

int erpq_fees_parse_gen(const json_t *data, fees_gen_req *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  static const char *const known[] = {"schoolId", "classId", "period", "dueDate", "feeStructureIds", NULL};
  if (!json_is_object(data)) return erpq_fail(err, errlen, -EINVAL, "data must be a JSON object");
  int rc = check_fields(data, known, err, errlen);
  if (!rc) rc = req_id(data, "schoolId", 1, &r->school, err, errlen);
  if (!rc) rc = req_id(data, "classId", 0, &r->klass, err, errlen);
  if (!rc) rc = req_str(data, "period", erpq_fees_valid_period, "a month YYYY-MM", r->period, sizeof r->period, err, errlen);
  if (!rc) rc = req_str(data, "dueDate", erpq_fees_valid_date, "a date YYYY-MM-DD", r->due, sizeof r->due, err, errlen);
  if (rc) return rc;
  const json_t *fs = json_object_get(data, "feeStructureIds");
  if (fs) {
    if (!json_is_array(fs) || json_array_size(fs) == 0 || json_array_size(fs) > 1000)
      return erpq_fail(err, errlen, -EINVAL, "data.feeStructureIds must be a non-empty array of at most 1000 positive integers");
    r->nfs = json_array_size(fs);
    r->fs = calloc(r->nfs, sizeof *r->fs);
    if (!r->fs) return -ENOMEM;
    for (size_t i = 0; i < r->nfs; i++) {
      const json_t *v = json_array_get(fs, i);
      if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return erpq_fail(err, errlen, -EINVAL, "data.feeStructureIds[%zu] must be a positive integer", i);
      r->fs[i] = json_integer_value(v);
      for (size_t k = 0; k < i; k++)
        if (r->fs[k] == r->fs[i])
          return erpq_fail(err, errlen, -EINVAL, "data.feeStructureIds lists %" PRId64 " twice", r->fs[i]);
    }
  }
  return 0;
}

int erpq_fees_parse_create(const json_t *data, fees_create_req *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  static const char *const known[] = {"studentId", "feeStructureId", "period", "dueDate", "amount", NULL};
  if (!json_is_object(data)) return erpq_fail(err, errlen, -EINVAL, "data must be a JSON object");
  int rc = check_fields(data, known, err, errlen);
  if (!rc) rc = req_id(data, "studentId", 1, &r->student, err, errlen);
  if (!rc) rc = req_id(data, "feeStructureId", 1, &r->structure, err, errlen);
  if (!rc) rc = req_str(data, "period", erpq_fees_valid_period, "a month YYYY-MM", r->period, sizeof r->period, err, errlen);
  if (!rc) rc = req_str(data, "dueDate", erpq_fees_valid_date, "a date YYYY-MM-DD", r->due, sizeof r->due, err, errlen);
  if (rc) return rc;
  const json_t *a = json_object_get(data, "amount");
  if (!a) return bad(err, errlen, "data.%s is required", "amount");
  if (json_is_real(a))
    return erpq_fail(err, errlen, -EINVAL, "data.amount must be an integer number of minor units (paise/cents), not a fraction");
  if (!json_is_integer(a)) return erpq_fail(err, errlen, -EINVAL, "data.amount must be an integer number of minor units");
  if (json_integer_value(a) < 0) return erpq_fail(err, errlen, -EINVAL, "data.amount must not be negative");
  if (json_integer_value(a) > ERPQ_FEES_MAX_AMOUNT)
    return erpq_fail(err, errlen, -EINVAL, "data.amount is too large");
  r->amount = json_integer_value(a);
  return 0;
}

/* ---- Concessions ------------------------------------------------------------------ */

int64_t erpq_fees_percent_of(int64_t gross, int64_t bp) { return (gross * bp + 5000) / 10000; }

int64_t erpq_fees_concession(int64_t gross, const int64_t *pct_bp, size_t npct,
                             const int64_t *fixed, size_t nfixed) {
  int64_t c = 0;
  for (size_t i = 0; i < npct; i++) c += erpq_fees_percent_of(gross, pct_bp[i]);
  for (size_t i = 0; i < nfixed; i++) c += fixed[i];
  return c > gross ? gross : c;
}

/* ---- The fee run --------------------------------------------------------------------- */

typedef struct structure {
  int64_t id, klass, head, amount; /* klass INT64_MIN: school-wide */
} structure;

static const char *const SQL_STUDENTS_CLASS =
    "SELECT id, class_id FROM students WHERE school_id = ? AND class_id = ? AND status = 'active'"
    " AND id > ? ORDER BY id LIMIT ?";
static const char *const SQL_STUDENTS_SCHOOL =
    "SELECT id, class_id FROM students WHERE school_id = ? AND status = 'active'"
    " AND id > ? ORDER BY id LIMIT ?";
static const char *const SQL_CONCESSIONS =
    "SELECT student_id, fee_head_id, kind = 'percent', percent_bp, amount_minor"
    " FROM student_concessions WHERE student_id BETWEEN ? AND ?"
    " AND (valid_from IS NULL OR valid_from <= ?) AND (valid_to IS NULL OR valid_to >= ?)"
    " ORDER BY student_id";

/* "INSERT ... VALUES (?,..),(?,..) ON DUPLICATE KEY UPDATE id = id" for n
 * rows: the text depends only on n, never on data. */
static char *insert_sql(int n) {
  static const char head[] =
      "INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor,"
      " concession_minor, amount_minor, due_date, created_by_job) VALUES ";
  static const char row[] = "(?,?,?,?,?,?,?,?,?)";
  static const char tail[] = " ON DUPLICATE KEY UPDATE id = id";
  size_t len = sizeof head + (size_t)n * (sizeof row) + sizeof tail;
  char *s = malloc(len), *p = s;
  if (!s) return NULL;
  p += sprintf(p, "%s", head);
  for (int i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? "," : "", row);
  sprintf(p, "%s", tail);
  return s;
}

typedef struct run {
  MYSQL *m;
  erpq_jobctx *ctx;
  const fees_gen_req *req;
  const char *job_id;
  structure *st;
  size_t nst;
  erpq_stmt *ins_full;
  int64_t students, created, skipped, total_amount, expected;
  int lost;
} run;

static int fail_db(run *r, int rc) {
  if (erpq_mysql_lost(rc)) r->lost = 1;
  return rc;
}

static int load_structures(run *r, char *err, size_t errlen) {
  const fees_gen_req *q = r->req;
  int64_t *rows;
  size_t n;
  erpq_param p[] = {ERPQ_PI(q->school)};
  int rc = erpq_mysql_rows(r->m,
                           "SELECT id, class_id, fee_head_id, amount_minor FROM fee_structures"
                           " WHERE school_id = ? AND active = 1 ORDER BY id",
                           p, 1, 4, &rows, &n, err, errlen);
  if (rc) return fail_db(r, rc);
  r->st = calloc(n ? n : 1, sizeof *r->st);
  if (!r->st) {
    free(rows);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    structure s = {rows[4 * i], rows[4 * i + 1], rows[4 * i + 2], rows[4 * i + 3]};
    if (q->klass && s.klass != INT64_MIN && s.klass != q->klass) continue;
    if (q->nfs) {
      int want = 0;
      for (size_t k = 0; k < q->nfs; k++) want |= q->fs[k] == s.id;
      if (!want) continue;
    }
    r->st[r->nst++] = s;
  }
  free(rows);
  for (size_t k = 0; k < q->nfs; k++) {
    int found = 0;
    for (size_t i = 0; i < r->nst; i++) found |= r->st[i].id == q->fs[k];
    if (!found) {
      if (q->klass)
        return erpq_fail(err, errlen, -ENOENT,
                         "data.feeStructureIds: %" PRId64 " is not an active fee structure of school %" PRId64
                         " for class %" PRId64, q->fs[k], q->school, q->klass);
      return erpq_fail(err, errlen, -ENOENT,
                       "data.feeStructureIds: %" PRId64 " is not an active fee structure of school %" PRId64,
                       q->fs[k], q->school);
    }
  }
  return 0;
}

/* Checks the school/class and loads the structures; -ENOENT = bad input. */
static int check_refs(run *r, char *err, size_t errlen) {
  const fees_gen_req *q = r->req;
  int64_t v;
  int found, rc;
  erpq_param p1[] = {ERPQ_PI(q->school)};
  rc = erpq_mysql_i64(r->m, "SELECT id FROM schools WHERE id = ?", p1, 1, &v, &found, err, errlen);
  if (rc) return fail_db(r, rc);
  if (!found) return erpq_fail(err, errlen, -ENOENT, "data.schoolId: school %" PRId64 " does not exist", q->school);
  if (q->klass) {
    erpq_param p2[] = {ERPQ_PI(q->klass)};
    rc = erpq_mysql_i64(r->m, "SELECT school_id FROM classes WHERE id = ?", p2, 1, &v, &found, err, errlen);
    if (rc) return fail_db(r, rc);
    if (!found || v != q->school)
      return erpq_fail(err, errlen, -ENOENT, "data.classId: class %" PRId64 " does not exist in school %" PRId64,
                       q->klass, q->school);
  }
  rc = load_structures(r, err, errlen);
  if (rc) return rc;
  if (q->klass) {
    erpq_param p3[] = {ERPQ_PI(q->school), ERPQ_PI(q->klass)};
    rc = erpq_mysql_i64(r->m, "SELECT COUNT(*) FROM students WHERE school_id = ? AND class_id = ? AND status = 'active'",
                        p3, 2, &r->expected, &found, err, errlen);
  } else {
    rc = erpq_mysql_i64(r->m, "SELECT COUNT(*) FROM students WHERE school_id = ? AND status = 'active'",
                        p1, 1, &r->expected, &found, err, errlen);
  }
  return rc ? fail_db(r, rc) : 0;
}

/* One batch's rows: FEE_COLS params per row. */
typedef struct rowbuf {
  erpq_param *p;
  size_t n, cap;
} rowbuf;

static int build_rows(run *r, const int64_t *stu, size_t nstu, const int64_t *conc, size_t nconc,
                      rowbuf *b) {
  const fees_gen_req *q = r->req;
  b->n = 0;
  size_t need = nstu * (r->nst ? r->nst : 1) * FEE_COLS;
  if (need > b->cap) {
    erpq_param *np = realloc(b->p, need * sizeof *np);
    if (!np) return -ENOMEM;
    b->p = np;
    b->cap = need;
  }
  size_t ci = 0;
  for (size_t i = 0; i < nstu; i++) {
    int64_t sid = stu[2 * i], cls = stu[2 * i + 1];
    while (ci < nconc && conc[5 * ci] < sid) ci++;
    for (size_t k = 0; k < r->nst; k++) {
      const structure *s = &r->st[k];
      if (s->klass != INT64_MIN && s->klass != cls) continue;
      int64_t pct[16], fix[16];
      size_t np = 0, nf = 0;
      for (size_t c = ci; c < nconc && conc[5 * c] == sid; c++) {
        const int64_t *row = &conc[5 * c];
        if (row[1] != INT64_MIN && row[1] != s->head) continue;
        if (row[2] == 1 && np < 16) pct[np++] = row[3];
        else if (row[2] != 1 && nf < 16) fix[nf++] = row[4];
      }
      int64_t cval = erpq_fees_concession(s->amount, pct, np, fix, nf);
      int64_t net = s->amount - cval;
      erpq_param *p = &b->p[b->n * FEE_COLS];
      p[0] = ERPQ_PI(q->school);
      p[1] = ERPQ_PI(sid);
      p[2] = ERPQ_PI(s->id);
      p[3] = ERPQ_PS(q->period);
      p[4] = ERPQ_PI(s->amount);
      p[5] = ERPQ_PI(cval);
      p[6] = ERPQ_PI(net);
      p[7] = ERPQ_PS(q->due);
      p[8] = r->job_id ? ERPQ_PS(r->job_id) : ERPQ_PN;
      r->total_amount += net;
      b->n++;
    }
  }
  return 0;
}

static int write_outbox(run *r, int64_t created, int64_t skipped, char *err, size_t errlen) {
  const fees_gen_req *q = r->req;
  json_t *pl = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:I}", "schoolId", (json_int_t)q->school,
                         "period", q->period, "dueDate", q->due, "students", (json_int_t)r->students,
                         "created", (json_int_t)created, "skipped", (json_int_t)skipped,
                         "totalAmountMinor", (json_int_t)r->total_amount);
  if (!pl) return -ENOMEM;
  if (q->klass) json_object_set_new(pl, "classId", json_integer(q->klass));
  if (r->job_id) json_object_set_new(pl, "jobId", json_string(r->job_id));
  char *text = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(pl);
  if (!text) return -ENOMEM;
  char agg[64];
  snprintf(agg, sizeof agg, "%" PRId64 ":%s", q->school, q->period);
  erpq_param p[] = {ERPQ_PS(agg), ERPQ_PS(text)};
  int rc = erpq_mysql_run(r->m,
                          "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)"
                          " VALUES ('fee_run', ?, 'fees.generated', ?)",
                          p, 2, NULL, NULL, err, errlen);
  free(text);
  return rc;
}

/* Writes one batch in one transaction (retrying deadlocks); last: also the
 * outbox event. */
static int write_batch(run *r, rowbuf *b, int last, char *err, size_t errlen) {
  for (int attempt = 1;; attempt++) {
    int64_t created = 0;
    int rc = erpq_mysql_exec(r->m, "START TRANSACTION", err, errlen);
    for (size_t off = 0; !rc && off < b->n; off += ROWS_PER_INSERT) {
      size_t n = b->n - off < ROWS_PER_INSERT ? b->n - off : ROWS_PER_INSERT;
      uint64_t aff = 0;
      if (n == ROWS_PER_INSERT) {
        rc = erpq_stmt_exec(r->ins_full, &b->p[off * FEE_COLS], (int)(n * FEE_COLS), &aff, NULL, err, errlen);
      } else {
        char *sql = insert_sql((int)n);
        if (!sql) rc = -ENOMEM;
        else rc = erpq_mysql_run(r->m, sql, &b->p[off * FEE_COLS], (int)(n * FEE_COLS), &aff, NULL, err, errlen);
        free(sql);
      }
      created += (int64_t)aff;
    }
    if (!rc && last && !r->req->no_outbox) {
      rc = write_outbox(r, r->created + created, r->skipped + (int64_t)b->n - created, err, errlen);
    }
    if (!rc) rc = erpq_mysql_exec(r->m, "COMMIT", err, errlen);
    if (!rc) {
      r->created += created;
      r->skipped += (int64_t)b->n - created;
      return 0;
    }
    if (erpq_mysql_lost(rc)) {
      r->lost = 1;
      return rc;
    }
    char ignore[64];
    erpq_mysql_exec(r->m, "ROLLBACK", ignore, sizeof ignore);
    if (!erpq_mysql_retryable(rc) || attempt >= TX_TRIES) return rc;
    erpq_log(ERPQ_LOG_WARN, "fees.tx_retry", "error", err, NULL);
    if (r->ctx && erpq_job_sleep(r->ctx, 20LL << attempt)) return erpq_fail(err, errlen, -ECANCELED, "cancelled");
  }
}

static void progress(run *r, int64_t done) {
  if (!r->ctx) return;
  json_t *p = json_pack("{s:I,s:I,s:I,s:I}", "students", (json_int_t)r->expected, "done", (json_int_t)done,
                        "created", (json_int_t)r->created, "skipped", (json_int_t)r->skipped);
  erpq_job_progress(r->ctx, p);
  json_decref(p);
}

int erpq_fees_generate(MYSQL *m, erpq_jobctx *ctx, const char *job_id, const fees_gen_req *q,
                       json_t **result, int *bad_input, int *lost, char *err, size_t errlen) {
  run r = {.m = m, .ctx = ctx, .req = q, .job_id = job_id};
  *bad_input = 0;
  *lost = 0;
  int rc = check_refs(&r, err, errlen);
  if (rc == -ENOENT) *bad_input = 1;
  rowbuf b = {0};
  int64_t *stu = NULL, *conc = NULL;
  erpq_stmt *sel = NULL, *csel = NULL;
  char *full = NULL;
  int bs = q->batch > 0 ? q->batch : 1000;
  if (!rc) rc = erpq_stmt_prepare(m, q->klass ? SQL_STUDENTS_CLASS : SQL_STUDENTS_SCHOOL, &sel, err, errlen);
  if (!rc) rc = erpq_stmt_prepare(m, SQL_CONCESSIONS, &csel, err, errlen);
  if (!rc && !(full = insert_sql(ROWS_PER_INSERT))) rc = -ENOMEM;
  if (!rc) rc = erpq_stmt_prepare(m, full, &r.ins_full, err, errlen);
  int64_t last_id = 0, done = 0;
  while (!rc) {
    if (ctx && erpq_job_cancelled(ctx)) {
      rc = erpq_fail(err, errlen, -ECANCELED, "fee run cancelled after %" PRId64 " students", done);
      break;
    }
    size_t nstu = 0, nconc = 0;
    free(stu);
    stu = NULL;
    if (q->klass) {
      erpq_param p[] = {ERPQ_PI(q->school), ERPQ_PI(q->klass), ERPQ_PI(last_id), ERPQ_PI(bs)};
      rc = erpq_stmt_rows(sel, p, 4, 2, &stu, &nstu, err, errlen);
    } else {
      erpq_param p[] = {ERPQ_PI(q->school), ERPQ_PI(last_id), ERPQ_PI(bs)};
      rc = erpq_stmt_rows(sel, p, 3, 2, &stu, &nstu, err, errlen);
    }
    if (rc) break;
    free(conc);
    conc = NULL;
    if (nstu) {
      erpq_param p[] = {ERPQ_PI(stu[0]), ERPQ_PI(stu[2 * (nstu - 1)]), ERPQ_PS(q->due), ERPQ_PS(q->due)};
      rc = erpq_stmt_rows(csel, p, 4, 5, &conc, &nconc, err, errlen);
      if (rc) break;
      last_id = stu[2 * (nstu - 1)];
    }
    rc = build_rows(&r, stu, nstu, conc, nconc, &b);
    if (rc) break;
    r.students += (int64_t)nstu;
    int last = nstu < (size_t)bs;
    rc = write_batch(&r, &b, last, err, errlen);
    if (rc) break;
    done += (int64_t)nstu;
    progress(&r, done);
    if (last) break;
  }
  if (rc && erpq_mysql_lost(rc)) r.lost = 1;
  free(stu);
  free(conc);
  free(b.p);
  free(full);
  free(r.st);
  erpq_stmt_close(sel);
  erpq_stmt_close(csel);
  erpq_stmt_close(r.ins_full);
  *lost = r.lost;
  if (rc) return rc;
  *result = json_pack("{s:I,s:I,s:I,s:I}", "students", (json_int_t)r.students, "created",
                      (json_int_t)r.created, "skipped", (json_int_t)r.skipped, "totalAmountMinor",
                      (json_int_t)r.total_amount);
  return 0;
}

int erpq_fees_create(MYSQL *m, const char *job_id, const fees_create_req *q, json_t **result,
                     int *bad_input, int *lost, char *err, size_t errlen) {
  *bad_input = 0;
  *lost = 0;
  int64_t *rows;
  size_t n;
  erpq_param ps[] = {ERPQ_PI(q->student)};
  int rc = erpq_mysql_rows(m, "SELECT school_id, status = 'active' FROM students WHERE id = ?", ps, 1, 2, &rows, &n,
                           err, errlen);
  if (rc) goto dberr;
  if (!n) {
    *bad_input = 1;
    return erpq_fail(err, errlen, -ENOENT, "data.studentId: student %" PRId64 " does not exist", q->student);
  }
  int64_t school = rows[0];
  free(rows);
  erpq_param pf[] = {ERPQ_PI(q->structure)};
  int64_t fs_school;
  int found;
  rc = erpq_mysql_i64(m, "SELECT school_id FROM fee_structures WHERE id = ?", pf, 1, &fs_school, &found, err, errlen);
  if (rc) goto dberr;
  if (!found || fs_school != school) {
    *bad_input = 1;
    return erpq_fail(err, errlen, -ENOENT,
                     "data.feeStructureId: fee structure %" PRId64 " does not exist in school %" PRId64
                     " of student %" PRId64, q->structure, school, q->student);
  }
  erpq_param p[] = {ERPQ_PI(school), ERPQ_PI(q->student), ERPQ_PI(q->structure), ERPQ_PS(q->period),
                    ERPQ_PI(q->amount), ERPQ_PI(q->amount), ERPQ_PS(q->due),
                    job_id ? ERPQ_PS(job_id) : ERPQ_PN};
  uint64_t aff = 0, id = 0;
  for (int attempt = 1;; attempt++) {
    rc = erpq_mysql_run(m,
                        "INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor,"
                        " concession_minor, amount_minor, due_date, created_by_job)"
                        " VALUES (?,?,?,?,?,0,?,?,?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
                        p, 8, &aff, &id, err, errlen);
    if (!rc || !erpq_mysql_retryable(rc) || attempt >= TX_TRIES) break;
  }
  if (rc) goto dberr;
  *result = json_pack("{s:I,s:b,s:I}", "feeId", (json_int_t)id, "created", aff == 1, "amountMinor",
                      (json_int_t)q->amount);
  return 0;
dberr:
  *lost = erpq_mysql_lost(rc);
  return rc;
}
