/* erpq_reports_sql.c - the school lookup and the fee-collection and
 * defaulters reports: their SQL (fixed text; values in @erpq_N user
 * variables, erpq_mysql_stream.h), their counts and sums, and their rows
 * as writer cells (see erpq_reports.h and erpq_reports_run.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_mysql_stream.h"
#include "reports/erpq_reports_run.h"

/* ---- small helpers ------------------------------------------------------------ */

/* Copies a column into out (NULL: ""). */
static void col_copy(const erpq_mysql_row *row, unsigned i, char *out, size_t outlen) {
  size_t n = row->v[i] ? row->len[i] : 0;
  if (n >= outlen)
    n = outlen - 1;
  if (n)
    memcpy(out, row->v[i], n);
  out[n] = '\0';
}

static int col_i64(const erpq_mysql_row *row, unsigned i, int64_t *out, char *err, size_t errlen) {
  if (erpq_mysql_parse_i64(row->v[i], row->len[i], out))
    return erpq_fail(err, errlen, -EPROTO, "column %u of the result is not an integer", i + 1);
  return 0;
}

/* Runs a query whose rows are read by fn (at most a few: a lookup or a
 * GROUP BY), reading the result to its end. */
static int query_each(rep_run *r, const char *sql, const erpq_param *p, int np,
                      int (*fn)(rep_run *r, const erpq_mysql_row *row, char *err, size_t errlen),
                      char *err, size_t errlen) {
  erpq_mysql_stream *s = NULL;
  int rc = erpq_mysql_stream_open(r->m, sql, p, np, &s, err, errlen);
  if (rc)
    return rc;
  erpq_mysql_row row;
  while ((rc = erpq_mysql_stream_next(s, &row, err, errlen)) == 1)
    if ((rc = fn(r, &row, err, errlen)))
      break;
  if (!erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  return rc;
}

/* ---- the school ----------------------------------------------------------------- */

static int school_row(rep_run *r, const erpq_mysql_row *row, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  col_copy(row, 0, r->s.code, sizeof r->s.code);
  col_copy(row, 1, r->s.name, sizeof r->s.name);
  col_copy(row, 2, r->s.tzname, sizeof r->s.tzname);
  char cur[8];
  col_copy(row, 3, cur, sizeof cur);
  snprintf(r->s.locale, sizeof r->s.locale, "%s", cur); /* Parsed by the caller. */
  r->s.id = r->q->school;
  return 0;
}

int rep_load_school(rep_run *r, char *err, size_t errlen) {
  erpq_param p[] = {ERPQ_PI(r->q->school)};
  r->s.id = 0;
  int rc = query_each(r, "SELECT code, name, timezone, currency FROM schools WHERE id = @erpq_1", p,
                      1, school_row, err, errlen);
  if (rc)
    return rc;
  if (!r->s.id)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "unknown school %lld", (long long)r->q->school);
  char why[256];
  if (erpq_currency_lookup(r->s.locale, &r->s.cur, why, sizeof why))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "school %lld has an invalid currency code",
                     (long long)r->q->school);
  if ((rc = erpq_tz_load(r->s.tzname, &r->s.tz, why, sizeof why)))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "school %lld has an unknown time zone '%.64s'",
                     (long long)r->q->school, r->s.tzname);
  if (r->q->locale[0])
    snprintf(r->s.locale, sizeof r->s.locale, "%s", r->q->locale);
  else
    snprintf(r->s.locale, sizeof r->s.locale, "%s", strcmp(r->s.cur.code, "INR") ? "en" : "en-IN");
  return 0;
}

static int class_row(rep_run *r, const erpq_mysql_row *row, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  /* The class's display name goes to the period line. */
  size_t n = strlen(r->period);
  if (n + 4 < sizeof r->period) {
    snprintf(r->period + n, sizeof r->period - n, " · ");
    n = strlen(r->period);
    col_copy(row, 0, r->period + n, sizeof r->period - n);
  }
  return 0;
}

int rep_check_class(rep_run *r, int64_t klass, char *err, size_t errlen) {
  erpq_param p[] = {ERPQ_PI(klass), ERPQ_PI(r->q->school)};
  size_t before = strlen(r->period);
  int rc = query_each(r,
                      "SELECT CONCAT_WS(' ', name, NULLIF(section, '')) FROM classes"
                      " WHERE id = @erpq_1 AND school_id = @erpq_2",
                      p, 2, class_row, err, errlen);
  if (!rc && strlen(r->period) == before)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "class %lld is not a class of school %lld",
                   (long long)klass, (long long)r->q->school);
  return rc;
}

void rep_generated_text(rep_run *r) {
  int64_t now = (int64_t)time(NULL);
  int64_t local = now + erpq_tz_offset_at(r->s.tz, now);
  rep_date d = rep_date_of(erpq_floor_div(local, 86400));
  int64_t sec = erpq_floor_mod(local, 86400);
  char day[16];
  rep_date_text(d, day);
  snprintf(r->generated, sizeof r->generated, "Generated %s %02d:%02d (%s)", day, (int)(sec / 3600),
           (int)(sec / 60 % 60), r->s.tzname);
}

erpq_cell rep_local_cell(const rep_run *r, int64_t utc_s) {
  int64_t local = utc_s + erpq_tz_offset_at(r->s.tz, utc_s);
  rep_date d = rep_date_of(erpq_floor_div(local, 86400));
  int64_t sec = erpq_floor_mod(local, 86400);
  return erpq_cell_datetime(d.y, d.m, d.d, (int)(sec / 3600), (int)(sec / 60 % 60),
                            (int)(sec % 60));
}

static void period_range(rep_run *r) {
  char a[16], b[16];
  rep_date_text(r->q->from, a);
  rep_date_text(r->q->to, b);
  snprintf(r->period, sizeof r->period, "%s – %s", a, b);
}

/* ---- fee collection --------------------------------------------------------------- */

/* Two plans for the same rows (@erpq_1 school, @erpq_2/3 the UTC bounds
 * [from, to), @erpq_4 class, @erpq_5 method):
 *  - ordered: payments in paid_at order straight from ix_payments_paid_at
 *    (whose entries end with the primary key, so (paid_at, id) is the
 *    index order): no sort at all, the first row streams at once; every
 *    payment of the period is looked at, the school's kept. Chosen when
 *    the school has at least 1/8 of the period's payments (one school per
 *    database, or a big one);
 *  - sorted: the school's students, then their payments through
 *    ix_payments_student_paid, sorted by the server: reads only the
 *    school's rows; for a small school among many.
 * Payments have no school_id: a payment's school is its student's. The
 * counts use payments(student_id, paid_at) alone (an index-only count
 * without a method filter): every payment has its fee, structure, head and
 * the student's class (NOT NULL foreign keys), so the join adds no rows. */
#define COLL_STUDENTS                                                                              \
  " FROM students s JOIN payments p ON p.student_id = s.id"                                        \
  " AND p.paid_at >= @erpq_2 AND p.paid_at < @erpq_3"
#define COLL_ORDERED                                                                               \
  " FROM payments p FORCE INDEX (ix_payments_paid_at) JOIN students s ON s.id = p.student_id"
#define COLL_JOINS                                                                                 \
  " JOIN fees f ON f.id = p.fee_id JOIN fee_structures fs ON fs.id = f.fee_structure_id"           \
  " JOIN fee_heads h ON h.id = fs.fee_head_id JOIN classes c ON c.id = s.class_id"
#define COLL_WHERE " WHERE s.school_id = @erpq_1"
#define COLL_WHERE_ORDERED                                                                         \
  " WHERE p.paid_at >= @erpq_2 AND p.paid_at < @erpq_3 AND s.school_id = @erpq_1"
#define COLL_CLASS " AND s.class_id = @erpq_4"
#define COLL_METHOD " AND p.method = @erpq_5"
#define COLL_COLUMNS                                                                               \
  " p.paid_at, p.external_ref, s.admission_no,"                                                    \
  " CONCAT_WS(' ', s.first_name, NULLIF(s.last_name, '')),"                                        \
  " CONCAT_WS(' ', c.name, NULLIF(c.section, '')), h.name, f.period, p.method, p.amount_minor"
#define SCAN_RATIO 8

static const erpq_rcol COLL_COLS[] = {{"Paid at", ERPQ_RCOL_DATETIME, 0, 7},
                                      {"Receipt", ERPQ_RCOL_TEXT, 0, 5},
                                      {"Admission no.", ERPQ_RCOL_TEXT, 0, 4},
                                      {"Student", ERPQ_RCOL_TEXT, 0, 8},
                                      {"Class", ERPQ_RCOL_TEXT, 0, 4},
                                      {"Fee head", ERPQ_RCOL_TEXT, 0, 6},
                                      {"Period", ERPQ_RCOL_TEXT, 0, 3},
                                      {"Method", ERPQ_RCOL_TEXT, ERPQ_RCOL_GROUP, 5},
                                      {"Amount", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 5}};

static int coll_set_vars(rep_run *r, char *err, size_t errlen) {
  char lo[20], hi[20];
  rep_local_midnight_utc(r->s.tz, r->q->from, lo);
  rep_local_midnight_utc(r->s.tz, rep_date_of(rep_days(r->q->to) + 1), hi);
  erpq_param p[] = {ERPQ_PI(r->q->school), ERPQ_PS(lo), ERPQ_PS(hi),
                    r->q->klass ? ERPQ_PI(r->q->klass) : ERPQ_PN,
                    r->q->method[0] ? ERPQ_PS(r->q->method) : ERPQ_PN};
  return erpq_mysql_set_vars(r->m, p, 5, err, errlen);
}

static int count_row(rep_run *r, const erpq_mysql_row *row, char *err, size_t errlen) {
  return col_i64(row, 0, &r->n_a, err, errlen);
}

static int coll_prepare(rep_run *r, char *err, size_t errlen) {
  const rep_req *q = r->q;
  period_range(r);
  if (q->klass) {
    int rc = rep_check_class(r, q->klass, err, errlen);
    if (rc)
      return rc;
  }
  if (q->method[0]) {
    size_t n = strlen(r->period);
    snprintf(r->period + n, sizeof r->period - n, " · %s",
             rep_method_label(q->method, strlen(q->method)));
  }
  snprintf(r->title, sizeof r->title, "Fee collection");
  char a[11], b[11], code[48];
  rep_date_iso(q->from, a);
  rep_date_iso(q->to, b);
  rep_safe_name(r->s.code, code, sizeof code);
  snprintf(r->file_base, sizeof r->file_base, "fee-collection-%s-%s-to-%s", code, a, b);
  memcpy(r->cols, COLL_COLS, sizeof COLL_COLS);
  r->ncols = sizeof COLL_COLS / sizeof COLL_COLS[0];
  int rc = coll_set_vars(r, err, errlen);
  if (rc)
    return rc;
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT COUNT(*)" COLL_STUDENTS COLL_WHERE "%s%s",
           q->klass ? COLL_CLASS : "", q->method[0] ? COLL_METHOD : "");
  if ((rc = query_each(r, sql, NULL, 0, count_row, err, errlen)))
    return rc;
  r->expected_rows = (uint64_t)r->n_a;
  r->n_a = 0;
  if ((rc = query_each(r,
                       "SELECT COUNT(*) FROM payments p"
                       " WHERE p.paid_at >= @erpq_2 AND p.paid_at < @erpq_3",
                       NULL, 0, count_row, err, errlen)))
    return rc;
  r->ordered_scan = (uint64_t)r->n_a <= SCAN_RATIO * r->expected_rows;
  rep_log(r, r->ordered_scan ? "plan: the period's payments in paid_at order"
                             : "plan: the school's payments, sorted by the database");
  return 0;
}

static int coll_rows(rep_run *r, char *err, size_t errlen) {
  const rep_req *q = r->q;
  char sql[1400];
  snprintf(sql, sizeof sql,
           "SELECT %s" COLL_COLUMNS "%s" COLL_JOINS "%s%s%s ORDER BY p.paid_at, p.id",
           r->ordered_scan ? "STRAIGHT_JOIN" : "", r->ordered_scan ? COLL_ORDERED : COLL_STUDENTS,
           r->ordered_scan ? COLL_WHERE_ORDERED : COLL_WHERE, q->klass ? COLL_CLASS : "",
           q->method[0] ? COLL_METHOD : "");
  erpq_mysql_stream *s = NULL;
  int rc = erpq_mysql_stream_open(r->m, sql, NULL, 0, &s, err, errlen);
  if (rc)
    return rc;
  /* The rows come in while the writer formats the previous ones. */
  if ((rc = erpq_mysql_stream_prefetch(s, REP_PREFETCH_ROWS, REP_PREFETCH_BATCHES, err, errlen))) {
    if (!erpq_mysql_stream_close(s))
      r->conn_dead = 1;
    return rc;
  }
  erpq_mysql_row row;
  while ((rc = erpq_mysql_stream_next(s, &row, err, errlen)) == 1) {
    int64_t paid, amount;
    int mi = rep_method_index(row.v[7], row.len[7]);
    if (rep_parse_datetime(row.v[0], row.len[0], &paid) || mi < 0 ||
        erpq_mysql_parse_i64(row.v[8], row.len[8], &amount)) {
      rc = erpq_fail(err, errlen, -EPROTO, "payment row %llu has an unexpected value",
                     (unsigned long long)erpq_mysql_stream_rows(s));
      break;
    }
    if (__builtin_add_overflow(r->group_sum[mi], amount, &r->group_sum[mi]) ||
        __builtin_add_overflow(r->sum_a, amount, &r->sum_a)) {
      rc = erpq_fail(err, errlen, -ERANGE, "the total amount overflows 64 bits");
      break;
    }
    r->group_rows[mi]++;
    erpq_cell c[9] = {
        rep_local_cell(r, paid),  erpq_cell_text(row.v[1]),
        erpq_cell_text(row.v[2]), erpq_cell_text(row.v[3]),
        erpq_cell_text(row.v[4]), erpq_cell_text(row.v[5]),
        erpq_cell_text(row.v[6]), erpq_cell_text(rep_method_label(row.v[7], row.len[7])),
        erpq_cell_money(amount)};
    if ((rc = erpq_rw_row(r->w, c, err, errlen)) || (rc = rep_row_done(r, err, errlen)))
      break;
  }
  if (!erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  return rc;
}

/* The total lines: one per method that has payments, in the ENUM's order,
 * then the grand total. The writer sums the rows itself; the values given
 * here (kept while the rows passed) must equal its sums. */
static int coll_totals(rep_run *r, json_t **totals, char *err, size_t errlen) {
  json_t *by = json_object();
  int rc = by ? 0 : -ENOMEM;
  erpq_cell v[9];
  for (int i = 0; i < 9; i++)
    v[i] = erpq_cell_null();
  for (int g = 0; g < REP_METHODS && !rc; g++) {
    if (!r->group_rows[g])
      continue;
    const char *name = rep_method_name(g);
    const char *label = rep_method_label(name, strlen(name));
    char text[64];
    snprintf(text, sizeof text, "Total (%s)", label);
    v[8] = erpq_cell_money(r->group_sum[g]);
    erpq_rtotal t = {text, 7, label, v};
    rc = erpq_rw_total(r->w, &t, err, errlen);
    json_object_set_new(by, name,
                        json_pack("{s:I,s:I}", "rows", (json_int_t)r->group_rows[g], "amountMinor",
                                  (json_int_t)r->group_sum[g]));
  }
  if (!rc) {
    v[8] = erpq_cell_money(r->sum_a);
    erpq_rtotal t = {"Grand total", -1, NULL, v};
    rc = erpq_rw_total(r->w, &t, err, errlen);
  }
  if (rc) {
    json_decref(by);
    return rc;
  }
  *totals =
      json_pack("{s:s,s:I,s:I,s:o}", "currency", r->s.cur.code, "rows", (json_int_t)r->rows_done,
                "amountMinor", (json_int_t)r->sum_a, "byMethod", by);
  return *totals ? 0 : -ENOMEM;
}

const rep_kind_ops rep_collection_ops = {coll_prepare, coll_rows, coll_totals};

/* ---- defaulters ---------------------------------------------------------------- */

/* @erpq_1 school, @erpq_2 the cutoff date (asOf - minOverdueDays),
 * @erpq_3 class. Fees still owing: pending or partly paid, amount above
 * what was paid. The fees are read first (STRAIGHT_JOIN), through
 * ix_fees_school_status_due (migration 0004): a range over the owing fees
 * only; left to itself the optimizer may start from classes and read every
 * fee of every student. The server groups and sorts the students (one row
 * each). */
#define DEF_WHERE                                                                                  \
  " WHERE f.school_id = @erpq_1 AND f.due_date <= @erpq_2"                                         \
  " AND f.status IN ('pending', 'partially_paid') AND f.amount_minor > f.paid_minor"
#define DEF_CLASS " AND s.class_id = @erpq_3"

static const erpq_rcol DEF_COLS[] = {{"Admission no.", ERPQ_RCOL_TEXT, 0, 4},
                                     {"Student", ERPQ_RCOL_TEXT, 0, 7},
                                     {"Class", ERPQ_RCOL_TEXT, 0, 4},
                                     {"Parent", ERPQ_RCOL_TEXT, 0, 7},
                                     {"Parent phone", ERPQ_RCOL_TEXT, 0, 6},
                                     {"Overdue fees", ERPQ_RCOL_INT, ERPQ_RCOL_SUM, 4},
                                     {"Oldest due date", ERPQ_RCOL_DATE, 0, 5},
                                     {"Days overdue", ERPQ_RCOL_INT, 0, 4},
                                     {"Outstanding", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 5}};

static int def_count_row(rep_run *r, const erpq_mysql_row *row, char *err, size_t errlen) {
  int64_t students;
  int rc = col_i64(row, 0, &students, err, errlen);
  if (!rc)
    rc = col_i64(row, 1, &r->sum_a, err, errlen); /* overdue fees */
  if (!rc)
    rc = col_i64(row, 2, &r->sum_b, err, errlen); /* outstanding */
  r->expected_rows = (uint64_t)students;
  return rc;
}

static int def_prepare(rep_run *r, char *err, size_t errlen) {
  const rep_req *q = r->q;
  char a[16], b[16];
  rep_date_text(q->as_of, a);
  rep_date_text(q->cutoff, b);
  if (q->min_overdue_days)
    snprintf(r->period, sizeof r->period, "As of %s (fees due on or before %s)", a, b);
  else
    snprintf(r->period, sizeof r->period, "As of %s", a);
  if (q->klass) {
    int rc = rep_check_class(r, q->klass, err, errlen);
    if (rc)
      return rc;
  }
  snprintf(r->title, sizeof r->title, "Defaulters");
  char iso[11], code[48];
  rep_date_iso(q->as_of, iso);
  rep_safe_name(r->s.code, code, sizeof code);
  snprintf(r->file_base, sizeof r->file_base, "defaulters-%s-%s", code, iso);
  memcpy(r->cols, DEF_COLS, sizeof DEF_COLS);
  r->ncols = sizeof DEF_COLS / sizeof DEF_COLS[0];
  char cutoff[11];
  rep_date_iso(q->cutoff, cutoff);
  erpq_param p[] = {ERPQ_PI(q->school), ERPQ_PS(cutoff), q->klass ? ERPQ_PI(q->klass) : ERPQ_PN};
  int rc = erpq_mysql_set_vars(r->m, p, 3, err, errlen);
  if (rc)
    return rc;
  char sql[768];
  snprintf(sql, sizeof sql,
           "SELECT COUNT(DISTINCT f.student_id), COUNT(*),"
           " COALESCE(SUM(f.amount_minor - f.paid_minor), 0) FROM fees f%s" DEF_WHERE "%s",
           q->klass ? " JOIN students s ON s.id = f.student_id" : "", q->klass ? DEF_CLASS : "");
  return query_each(r, sql, NULL, 0, def_count_row, err, errlen);
}

static int def_rows(rep_run *r, char *err, size_t errlen) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT STRAIGHT_JOIN s.admission_no,"
           " CONCAT_WS(' ', s.first_name, NULLIF(s.last_name, '')),"
           " CONCAT_WS(' ', c.name, NULLIF(c.section, '')), s.parent_name, s.parent_phone,"
           " COUNT(*), MIN(f.due_date), SUM(f.amount_minor - f.paid_minor) AS outstanding"
           " FROM fees f JOIN students s ON s.id = f.student_id JOIN classes c ON c.id = "
           "s.class_id" DEF_WHERE
           "%s GROUP BY s.id ORDER BY outstanding DESC, s.admission_no, s.id",
           r->q->klass ? DEF_CLASS : "");
  erpq_mysql_stream *s = NULL;
  int rc = erpq_mysql_stream_open(r->m, sql, NULL, 0, &s, err, errlen);
  if (rc)
    return rc;
  if ((rc = erpq_mysql_stream_prefetch(s, REP_PREFETCH_ROWS, REP_PREFETCH_BATCHES, err, errlen))) {
    if (!erpq_mysql_stream_close(s))
      r->conn_dead = 1;
    return rc;
  }
  int64_t as_of = rep_days(r->q->as_of);
  erpq_mysql_row row;
  while ((rc = erpq_mysql_stream_next(s, &row, err, errlen)) == 1) {
    int64_t n, owed;
    rep_date oldest;
    if (erpq_mysql_parse_i64(row.v[5], row.len[5], &n) ||
        rep_parse_date(row.v[6], row.len[6], &oldest) ||
        erpq_mysql_parse_i64(row.v[7], row.len[7], &owed)) {
      rc = erpq_fail(err, errlen, -EPROTO, "defaulter row %llu has an unexpected value",
                     (unsigned long long)erpq_mysql_stream_rows(s));
      break;
    }
    erpq_cell c[9] = {erpq_cell_text(row.v[0]),
                      erpq_cell_text(row.v[1]),
                      erpq_cell_text(row.v[2]),
                      erpq_cell_text(row.v[3]),
                      erpq_cell_text(row.v[4]),
                      erpq_cell_int(n),
                      erpq_cell_date(oldest.y, oldest.m, oldest.d),
                      erpq_cell_int(as_of - rep_days(oldest)),
                      erpq_cell_money(owed)};
    if ((rc = erpq_rw_row(r->w, c, err, errlen)) || (rc = rep_row_done(r, err, errlen)))
      break;
  }
  if (!erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  return rc;
}

static int def_totals(rep_run *r, json_t **totals, char *err, size_t errlen) {
  erpq_cell v[9];
  for (int i = 0; i < 9; i++)
    v[i] = erpq_cell_null();
  v[5] = erpq_cell_int(r->sum_a);
  v[8] = erpq_cell_money(r->sum_b);
  erpq_rtotal t = {"Total", -1, NULL, v};
  int rc = erpq_rw_total(r->w, &t, err, errlen);
  if (rc)
    return rc;
  *totals = json_pack("{s:s,s:I,s:I,s:I}", "currency", r->s.cur.code, "students",
                      (json_int_t)r->expected_rows, "overdueFees", (json_int_t)r->sum_a,
                      "outstandingMinor", (json_int_t)r->sum_b);
  return *totals ? 0 : -ENOMEM;
}

const rep_kind_ops rep_defaulters_ops = {def_prepare, def_rows, def_totals};
