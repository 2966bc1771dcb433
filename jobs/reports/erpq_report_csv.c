/*
 * erpq_report_csv.c - the CSV back end (RFC 4180), streamed to a sink.
 *
 * Bytes: an optional UTF-8 BOM (Excel needs it to read UTF-8), the header
 * row of column titles, one record per row, then, after one empty line,
 * the total lines. Records end in CRLF. A field is quoted only when it
 * holds ',', '"', CR or LF; quotes inside are doubled.
 *
 * CSV injection (CWE-1236): a spreadsheet runs a field that starts with
 * '=', '+', '-' or '@' (and some treat TAB and CR the same) as a formula.
 * TEXT fields (and titles and labels) that start with one of those six
 * get a single quote in front, as OWASP advises; numbers are written by us
 * (INT as digits, MONEY in plain form "-12.50") and are never prefixed, so a
 * negative amount stays a number.
 *
 * Buffering: a buffer of opts.csv_buffer bytes is handed to the sink when
 * the next piece would not fit, and at finish(); a piece larger than the
 * whole buffer goes to the sink directly. Memory is constant whatever the
 * number of rows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_report_internal.h"

typedef struct csv_impl {
  char *buf;
  size_t len, cap;
  int totals_started;
} csv_impl;

static int flush(erpq_rw *w, char *err, size_t errlen) {
  csv_impl *c = w->impl;
  if (c->len == 0)
    return 0;
  int rc = w->dest.write(w->dest.ud, c->buf, c->len);
  if (rc < 0)
    return erpq_fail(err, errlen, rc, "CSV sink failed: %s", erpq_strerror(rc));
  w->st.bytes += c->len;
  c->len = 0;
  return 0;
}

static int put(erpq_rw *w, const char *s, size_t n, char *err, size_t errlen) {
  csv_impl *c = w->impl;
  if (c->len + n > c->cap) {
    int rc = flush(w, err, errlen);
    if (rc < 0)
      return rc;
    if (n > c->cap) {
      rc = w->dest.write(w->dest.ud, s, n);
      if (rc < 0)
        return erpq_fail(err, errlen, rc, "CSV sink failed: %s", erpq_strerror(rc));
      w->st.bytes += n;
      return 0;
    }
  }
  memcpy(c->buf + c->len, s, n);
  c->len += n;
  return 0;
}

/* A text field: neutralised, quoted when needed. */
static int put_text(erpq_rw *w, const char *s, char *err, size_t errlen) {
  size_t n = strlen(s);
  int inject = n > 0 && strchr("=+-@\t\r", s[0]) != NULL;
  int quote = strpbrk(s, ",\"\r\n") != NULL;
  int rc = 0;
  if (quote)
    rc = put(w, "\"", 1, err, errlen);
  if (rc == 0 && inject)
    rc = put(w, "'", 1, err, errlen);
  if (!quote) {
    return rc < 0 ? rc : put(w, s, n, err, errlen);
  }
  const char *p = s;
  while (rc == 0) {
    const char *q = strchr(p, '"');
    if (!q) {
      rc = put(w, p, strlen(p), err, errlen);
      break;
    }
    rc = put(w, p, (size_t)(q - p) + 1, err, errlen); /* up to and with the quote */
    if (rc == 0)
      rc = put(w, "\"", 1, err, errlen); /* doubled */
    p = q + 1;
  }
  return rc < 0 ? rc : put(w, "\"", 1, err, errlen);
}

static int put_cell(erpq_rw *w, size_t col, const erpq_cell *v, char *err, size_t errlen) {
  char tmp[ERPQ_MONEY_BUF];
  int n;
  if (v->null)
    return 0;
  switch (w->cols[col].type) {
  case ERPQ_RCOL_TEXT: return put_text(w, v->text, err, errlen);
  case ERPQ_RCOL_INT: n = snprintf(tmp, sizeof tmp, "%" PRId64, v->num); break;
  case ERPQ_RCOL_MONEY: n = (int)erpq_money_plain(v->num, w->cur.exponent, tmp); break;
  case ERPQ_RCOL_DATE:
    n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", v->t.y, v->t.m, v->t.d);
    break;
  case ERPQ_RCOL_DATETIME:
    n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02d %02d:%02d:%02d", v->t.y, v->t.m, v->t.d, v->t.hh,
                 v->t.mi, v->t.ss);
    break;
  default: return 0;
  }
  return put(w, tmp, (size_t)n, err, errlen);
}

static int csv_row(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen) {
  int rc = 0;
  for (size_t c = 0; rc == 0 && c < w->ncols; c++) {
    if (c > 0)
      rc = put(w, ",", 1, err, errlen);
    if (rc == 0)
      rc = put_cell(w, c, &cells[c], err, errlen);
  }
  return rc < 0 ? rc : put(w, "\r\n", 2, err, errlen);
}

static int csv_total(erpq_rw *w, const erpq_rtl *t, char *err, size_t errlen) {
  csv_impl *c = w->impl;
  int rc = 0;
  if (!c->totals_started) {
    c->totals_started = 1;
    if ((rc = put(w, "\r\n", 2, err, errlen)) < 0)
      return rc;
  }
  rc = put_text(w, t->label, err, errlen);
  for (size_t col = 1; rc == 0 && col < w->ncols; col++) {
    rc = put(w, ",", 1, err, errlen);
    if (rc == 0 && t->kind[col] != ERPQ_RTL_NONE) {
      erpq_cell v = erpq_cell_int(t->value[col]);
      rc = put_cell(w, col, &v, err, errlen);
    }
  }
  return rc < 0 ? rc : put(w, "\r\n", 2, err, errlen);
}

static int csv_finish(erpq_rw *w, char *err, size_t errlen) { return flush(w, err, errlen); }

static void csv_destroy(erpq_rw *w) {
  csv_impl *c = w->impl;
  if (c)
    free(c->buf);
  free(c);
  w->impl = NULL;
}

static const erpq_rw_ops CSV_OPS = {csv_row, csv_total, csv_finish, csv_destroy};

int erpq_rw_csv_init(erpq_rw *w, char *err, size_t errlen) {
  csv_impl *c = calloc(1, sizeof *c);
  if (!c || !(c->buf = malloc(w->opts.csv_buffer))) {
    free(c);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  c->cap = w->opts.csv_buffer;
  w->impl = c;
  w->ops = &CSV_OPS;
  int rc = 0;
  if (!w->opts.csv_no_bom)
    rc = put(w, "\xEF\xBB\xBF", 3, err, errlen);
  for (size_t col = 0; rc == 0 && col < w->ncols; col++) {
    if (col > 0)
      rc = put(w, ",", 1, err, errlen);
    if (rc == 0)
      rc = put_text(w, w->headers[col], err, errlen);
  }
  if (rc == 0)
    rc = put(w, "\r\n", 2, err, errlen);
  return rc;
}
