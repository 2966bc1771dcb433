/* erpq_reports_statement.c - the fee-statement report: one student's
 * opening balance, the fees due and payments made in the period in date
 * order with a running balance, and the closing balance (see
 * erpq_reports.h).
 *
 * Fees carry a DATE (due_date) and payments a UTC DATETIME whose local
 * date depends on the school's time zone, so the two cannot be merged by
 * one ORDER BY without the server's zone tables. The student's fees of the
 * period (a few dozen a year; at most STMT_MAX_FEES, else the job is
 * refused) are read first into memory; the payments then stream in paid_at
 * order and are merged with them: on one day, fees come before payments.
 * Cancelled and waived fees are left out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_mysql_stream.h"
#include "reports/erpq_reports_run.h"

#define STMT_MAX_FEES 100000

#define FEE_LIVE " AND status NOT IN ('waived', 'cancelled')"

static const erpq_rcol STMT_COLS[] = {{"Date", ERPQ_RCOL_DATE, 0, 2},
                                      {"Description", ERPQ_RCOL_TEXT, 0, 6},
                                      {"Debit", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 2},
                                      {"Credit", ERPQ_RCOL_MONEY, ERPQ_RCOL_SUM, 2},
                                      {"Balance", ERPQ_RCOL_MONEY, 0, 2}};

typedef struct stmt_fee {
  int64_t day;
  int64_t amount;
  char *desc;
} stmt_fee;

static int one_row(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen) {
  int rc = erpq_mysql_stream_next(s, row, err, errlen);
  return rc < 0 ? rc : rc == 1 ? 0 : -ENOENT;
}

/* Reads the rest of a one-row result so the connection stays usable. */
static int finish(rep_run *r, erpq_mysql_stream *s, int rc, char *err, size_t errlen) {
  erpq_mysql_row row;
  char e2[64];
  if (!rc && erpq_mysql_stream_next(s, &row, e2, sizeof e2) != 0)
    rc = erpq_fail(err, errlen, -EPROTO, "a lookup returned more than one row");
  if (!erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  return rc;
}

static int load_student(rep_run *r, char *err, size_t errlen) {
  erpq_param p[] = {ERPQ_PI(r->q->student)};
  erpq_mysql_stream *s = NULL;
  int rc = erpq_mysql_stream_open(r->m,
                                  "SELECT s.school_id, s.admission_no,"
                                  " CONCAT_WS(' ', s.first_name, NULLIF(s.last_name, '')),"
                                  " CONCAT_WS(' ', c.name, NULLIF(c.section, ''))"
                                  " FROM students s JOIN classes c ON c.id = s.class_id"
                                  " WHERE s.id = @erpq_1",
                                  p, 1, &s, err, errlen);
  if (rc)
    return rc;
  erpq_mysql_row row;
  int64_t school = 0;
  rc = one_row(s, &row, err, errlen);
  if (rc == -ENOENT)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "unknown student %lld", (long long)r->q->student);
  if (!rc && erpq_mysql_parse_i64(row.v[0], row.len[0], &school))
    rc = erpq_fail(err, errlen, -EPROTO, "students.school_id is not an integer");
  if (!rc && school != r->q->school)
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "student %lld is not a student of school %lld",
                   (long long)r->q->student, (long long)r->q->school);
  if (!rc) {
    char adm[48], name[420], klass[100];
    snprintf(adm, sizeof adm, "%.*s", (int)row.len[1], row.v[1] ? row.v[1] : "");
    snprintf(name, sizeof name, "%.*s", (int)row.len[2], row.v[2] ? row.v[2] : "");
    snprintf(klass, sizeof klass, "%.*s", (int)row.len[3], row.v[3] ? row.v[3] : "");
    snprintf(r->title, sizeof r->title, "Fee statement – %s (%s)", name, adm);
    snprintf(r->period, sizeof r->period, "%s · ", klass);
    char safe[48], a[11], b[11];
    rep_safe_name(adm, safe, sizeof safe);
    rep_date_iso(r->q->from, a);
    rep_date_iso(r->q->to, b);
    snprintf(r->file_base, sizeof r->file_base, "fee-statement-%s-%s-to-%s", safe, a, b);
  }
  return finish(r, s, rc, err, errlen);
}

static int stmt_prepare(rep_run *r, char *err, size_t errlen) {
  const rep_req *q = r->q;
  int rc = load_student(r, err, errlen);
  if (rc)
    return rc;
  char a[16], b[16];
  rep_date_text(q->from, a);
  rep_date_text(q->to, b);
  size_t n = strlen(r->period);
  snprintf(r->period + n, sizeof r->period - n, "%s – %s", a, b);
  memcpy(r->cols, STMT_COLS, sizeof STMT_COLS);
  r->ncols = sizeof STMT_COLS / sizeof STMT_COLS[0];
  char from[11], to[11], lo[20], hi[20];
  rep_date_iso(q->from, from);
  rep_date_iso(q->to, to);
  rep_local_midnight_utc(r->s.tz, q->from, lo);
  rep_local_midnight_utc(r->s.tz, rep_date_of(rep_days(q->to) + 1), hi);
  /* @erpq_1 student, @erpq_2/3 the period's dates, @erpq_4/5 its UTC bounds. */
  erpq_param p[] = {ERPQ_PI(q->student), ERPQ_PS(from), ERPQ_PS(to), ERPQ_PS(lo), ERPQ_PS(hi)};
  if ((rc = erpq_mysql_set_vars(r->m, p, 5, err, errlen)))
    return rc;
  erpq_mysql_stream *s = NULL;
  rc = erpq_mysql_stream_open(
      r->m,
      "SELECT (SELECT COALESCE(SUM(amount_minor), 0) FROM fees WHERE student_id = @erpq_1" FEE_LIVE
      " AND due_date < @erpq_2),"
      " (SELECT COALESCE(SUM(amount_minor), 0) FROM payments WHERE student_id = @erpq_1"
      " AND paid_at < @erpq_4),"
      " (SELECT COUNT(*) FROM fees WHERE student_id = @erpq_1" FEE_LIVE
      " AND due_date BETWEEN @erpq_2 AND @erpq_3),"
      " (SELECT COALESCE(SUM(amount_minor), 0) FROM fees WHERE student_id = @erpq_1" FEE_LIVE
      " AND due_date BETWEEN @erpq_2 AND @erpq_3),"
      " (SELECT COUNT(*) FROM payments WHERE student_id = @erpq_1"
      " AND paid_at >= @erpq_4 AND paid_at < @erpq_5),"
      " (SELECT COALESCE(SUM(amount_minor), 0) FROM payments WHERE student_id = @erpq_1"
      " AND paid_at >= @erpq_4 AND paid_at < @erpq_5)",
      NULL, 0, &s, err, errlen);
  if (rc)
    return rc;
  erpq_mysql_row row;
  int64_t v[6] = {0};
  rc = one_row(s, &row, err, errlen);
  for (unsigned i = 0; i < 6 && !rc; i++)
    if (erpq_mysql_parse_i64(row.v[i], row.len[i], &v[i]))
      rc = erpq_fail(err, errlen, -EPROTO, "the statement's sums are not integers");
  if ((rc = finish(r, s, rc, err, errlen)))
    return rc;
  if (__builtin_sub_overflow(v[0], v[1], &r->sum_a))
    return erpq_fail(err, errlen, -ERANGE, "the opening balance overflows 64 bits");
  r->n_a = v[2];
  r->sum_b = v[3];
  r->n_b = v[4];
  r->sum_c = v[5];
  if (r->n_a > STMT_MAX_FEES)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "the statement has %lld fees in the period, more than %d: use a shorter "
                     "period",
                     (long long)r->n_a, STMT_MAX_FEES);
  r->expected_rows = 1 + (uint64_t)r->n_a + (uint64_t)r->n_b;
  return 0;
}

/* One statement line into the writer; *balance moves by debit - credit. */
static int line(rep_run *r, int64_t day, const char *desc, int64_t debit, int64_t credit,
                int64_t *balance, int opening, char *err, size_t errlen) {
  if (__builtin_add_overflow(*balance, debit, balance) ||
      __builtin_sub_overflow(*balance, credit, balance))
    return erpq_fail(err, errlen, -ERANGE, "the balance overflows 64 bits");
  rep_date d = rep_date_of(day);
  erpq_cell c[5] = {erpq_cell_date(d.y, d.m, d.d), erpq_cell_text(desc),
                    opening || !debit ? erpq_cell_null() : erpq_cell_money(debit),
                    opening || !credit ? erpq_cell_null() : erpq_cell_money(credit),
                    erpq_cell_money(*balance)};
  int rc = erpq_rw_row(r->w, c, err, errlen);
  return rc ? rc : rep_row_done(r, err, errlen);
}

static int load_fees(rep_run *r, stmt_fee **out, size_t *n, char *err, size_t errlen) {
  erpq_mysql_stream *s = NULL;
  int rc = erpq_mysql_stream_open(
      r->m,
      "SELECT f.due_date, h.name, f.period, f.amount_minor FROM fees f"
      " JOIN fee_structures fs ON fs.id = f.fee_structure_id JOIN fee_heads h ON h.id = "
      "fs.fee_head_id"
      " WHERE f.student_id = @erpq_1 AND f.status NOT IN ('waived', 'cancelled')"
      " AND f.due_date BETWEEN @erpq_2 AND @erpq_3 ORDER BY f.due_date, f.id",
      NULL, 0, &s, err, errlen);
  if (rc)
    return rc;
  size_t cap = (size_t)r->n_a + 1;
  stmt_fee *fees = calloc(cap, sizeof *fees);
  if (!fees)
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  erpq_mysql_row row;
  while (!rc && (rc = erpq_mysql_stream_next(s, &row, err, errlen)) == 1) {
    rep_date d;
    if (*n == cap || rep_parse_date(row.v[0], row.len[0], &d) ||
        erpq_mysql_parse_i64(row.v[3], row.len[3], &fees[*n].amount)) {
      rc = erpq_fail(err, errlen, -EPROTO, "fee row %zu is unexpected", *n + 1);
      break;
    }
    fees[*n].day = rep_days(d);
    size_t dl = row.len[1] + row.len[2] + 4;
    if (!(fees[*n].desc = malloc(dl))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      break;
    }
    snprintf(fees[*n].desc, dl, "%.*s (%.*s)", (int)row.len[1], row.v[1] ? row.v[1] : "",
             (int)row.len[2], row.v[2] ? row.v[2] : "");
    (*n)++;
    rc = 0;
  }
  if (!erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  *out = fees;
  return rc;
}

static int stmt_rows(rep_run *r, char *err, size_t errlen) {
  int64_t balance = 0;
  int rc = line(r, rep_days(r->q->from), "Opening balance", r->sum_a, 0, &balance, 1, err, errlen);
  stmt_fee *fees = NULL;
  size_t nfees = 0, next = 0;
  if (!rc)
    rc = load_fees(r, &fees, &nfees, err, errlen);
  erpq_mysql_stream *s = NULL;
  if (!rc)
    rc = erpq_mysql_stream_open(r->m,
                                "SELECT p.paid_at, p.method, p.external_ref, p.amount_minor"
                                " FROM payments p WHERE p.student_id = @erpq_1"
                                " AND p.paid_at >= @erpq_4 AND p.paid_at < @erpq_5"
                                " ORDER BY p.paid_at, p.id",
                                NULL, 0, &s, err, errlen);
  erpq_mysql_row row;
  while (!rc && (rc = erpq_mysql_stream_next(s, &row, err, errlen)) == 1) {
    int64_t paid, amount;
    const char *method = rep_method_label(row.v[1], row.len[1]);
    if (rep_parse_datetime(row.v[0], row.len[0], &paid) || !method ||
        erpq_mysql_parse_i64(row.v[3], row.len[3], &amount)) {
      rc = erpq_fail(err, errlen, -EPROTO, "payment row %llu is unexpected",
                     (unsigned long long)erpq_mysql_stream_rows(s));
      break;
    }
    erpq_cell lc = rep_local_cell(r, paid);
    int64_t day = rep_days((rep_date){lc.t.y, lc.t.m, lc.t.d});
    rc = 0;
    while (!rc && next < nfees && fees[next].day <= day) {
      rc = line(r, fees[next].day, fees[next].desc, fees[next].amount, 0, &balance, 0, err, errlen);
      next++;
    }
    char desc[200];
    snprintf(desc, sizeof desc, "Payment · %s · receipt %.*s", method, (int)row.len[2],
             row.v[2] ? row.v[2] : "");
    if (!rc)
      rc = line(r, day, desc, 0, amount, &balance, 0, err, errlen);
  }
  if (s && !erpq_mysql_stream_close(s))
    r->conn_dead = 1;
  while (!rc && next < nfees) {
    rc = line(r, fees[next].day, fees[next].desc, fees[next].amount, 0, &balance, 0, err, errlen);
    next++;
  }
  for (size_t i = 0; i < nfees; i++)
    free(fees[i].desc);
  free(fees);
  return rc;
}

static int stmt_totals(rep_run *r, json_t **totals, char *err, size_t errlen) {
  int64_t closing;
  if (__builtin_add_overflow(r->sum_a, r->sum_b, &closing) ||
      __builtin_sub_overflow(closing, r->sum_c, &closing))
    return erpq_fail(err, errlen, -ERANGE, "the closing balance overflows 64 bits");
  erpq_cell v[5] = {erpq_cell_null(), erpq_cell_null(), erpq_cell_money(r->sum_b),
                    erpq_cell_money(r->sum_c), erpq_cell_money(closing)};
  erpq_rtotal t = {"Closing balance", -1, NULL, v};
  int rc = erpq_rw_total(r->w, &t, err, errlen);
  if (rc)
    return rc;
  *totals = json_pack("{s:s,s:I,s:I,s:I,s:I}", "currency", r->s.cur.code, "openingBalanceMinor",
                      (json_int_t)r->sum_a, "debitMinor", (json_int_t)r->sum_b, "creditMinor",
                      (json_int_t)r->sum_c, "closingBalanceMinor", (json_int_t)closing);
  return *totals ? 0 : -ENOMEM;
}

const rep_kind_ops rep_statement_ops = {stmt_prepare, stmt_rows, stmt_totals};
