/*
 * erpq_report_xlsx.c - the XLSX back end, libxlsxwriter in constant_memory
 * mode.
 *
 * Memory: constant_memory keeps one row in memory and streams each sheet's
 * XML into a temp file (opts.tmpdir, or tmpfile()'s directory); the .xlsx is
 * zipped from those files at workbook_close(). We check the mode really is
 * on (workbook->options.constant_memory, and worksheet->optimize of each
 * sheet, which is what libxlsxwriter 1.1.4 acts on):
 * without it, libxlsxwriter keeps every cell in memory, about 100 bytes per
 * cell. Rows must be written top to bottom; nothing above the current row
 * can be touched again, which shapes the rest:
 *  - the autofilter is set on a sheet as soon as its last data row is
 *    written (before a total line or the next sheet), because
 *    worksheet_autofilter() checks its last row against the current row;
 *  - column widths: worksheet_set_column() only records the widths (the
 *    <cols> element is written when the sheet is assembled at close, ahead
 *    of the row data copied from the temp file), so widths measured over
 *    all rows are set at finish(). Verified in libxlsxwriter 1.1.4's
 *    worksheet.c (lxw_worksheet_assemble_xml_file) and by the tests.
 *
 * Cells are typed: TEXT as inline strings (constant_memory writes no
 * shared-string table), INT as numbers, MONEY as numbers with the
 * currency's number format (erpq_money_xlsx_format), DATE and DATETIME as
 * Excel serial dates with "yyyy-mm-dd" / "yyyy-mm-dd hh:mm:ss" formats (a
 * year before 1900, which Excel cannot hold, is written as ISO text).
 * MONEY becomes a double only here, at libxlsxwriter's API boundary, through
 * erpq_money_to_double(): exact below 10^15 minor units, refused above (the
 * writer fails with -ERANGE). INT likewise below 2^53.
 *
 * Sheets: after opts.xlsx_rows_per_sheet data rows (1,048,575 by default:
 * Excel's 1,048,576 rows less the header) the report continues on
 * "Report (2)", "Report (3)"... each with the header row, frozen and
 * filtered. Total lines follow the last data row after one empty row; if
 * the sheet is full they go to a further sheet. A total of a SUM column is
 * a formula over the data rows of every sheet: SUM('Report'!$I$2:$I$1048576,
 * 'Report (2)'!$I$2:$I$11) for all rows, or SUMPRODUCT(--EXACT(group range,
 * "value"), sum range) per sheet, added, for a group (EXACT: case-sensitive
 * and free of SUMIF's wildcards and operators, like the writer's own sums).
 * The writer's int64 sum is the formula's cached result, so a viewer that
 * does not recalculate shows it. A formula that would pass Excel's limits
 * (8,192 characters, string constants of 255) is replaced by its value.
 *
 * Every libxlsxwriter call that can fail is checked; its lxw_strerror() text
 * is put in the message. The temp files' write errors (a full disk) are
 * caught with ferror() when a sheet is finished, since libxlsxwriter 1.1.4
 * does not check its fprintf()s.
 *
 * Numbers are printed by libxlsxwriter with "%.16G" under the C library's
 * LC_NUMERIC: the process must keep the "C" numeric locale (erpq never calls
 * setlocale).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xlsxwriter.h>

#include "erpq_err.h"
#include "erpq_report_internal.h"
#include "erpq_report_text.h"

#define XLSX_STR_MAX 32767 /* Excel's characters per cell */
#define XLSX_FORMULA_MAX 8192
#define XLSX_WIDTH_MAX 80.0

typedef struct xsheet {
  lxw_worksheet *ws;
  char name[32];
  uint32_t rows;  /* data rows on this sheet */
  int filter_set; /* autofilter placed */
} xsheet;

typedef struct xlsx_impl {
  lxw_workbook *wb;
  lxw_format *f_head, *f_date, *f_dt, *f_money, *f_int, *f_label, *f_tmoney, *f_tint;
  xsheet *sheets;
  size_t nsheets, cap;
  uint32_t next_row; /* next free row on the current sheet (totals) */
  int totals_started;
  size_t *width; /* per column: widest content, in display columns */
  erpq_buf tmp;
} xlsx_impl;

static int lxw_fail(char *err, size_t errlen, lxw_error e, const char *what) {
  return erpq_fail(err, errlen, e == LXW_ERROR_MEMORY_MALLOC_FAILED ? -ENOMEM : -EIO,
                   "XLSX: %s failed: %s", what, lxw_strerror(e));
}

static void see_width(xlsx_impl *x, size_t col, size_t w) {
  if (w > x->width[col])
    x->width[col] = w;
}

static int finish_sheet(erpq_rw *w, xsheet *s, char *err, size_t errlen) {
  xlsx_impl *x = w->impl;
  (void)x;
  if (!s->filter_set) {
    lxw_error e = worksheet_autofilter(s->ws, 0, 0, s->rows, (lxw_col_t)(w->ncols - 1));
    if (e)
      return lxw_fail(err, errlen, e, "setting the autofilter");
    s->filter_set = 1;
  }
  if (s->ws->optimize_tmpfile && ferror(s->ws->optimize_tmpfile))
    return erpq_fail(err, errlen, -EIO, "XLSX: writing the temp file of sheet %s failed", s->name);
  return 0;
}

static int new_sheet(erpq_rw *w, char *err, size_t errlen) {
  xlsx_impl *x = w->impl;
  if (x->nsheets == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 4;
    xsheet *n = realloc(x->sheets, cap * sizeof *n);
    if (!n)
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    x->sheets = n;
    x->cap = cap;
  }
  xsheet *s = &x->sheets[x->nsheets];
  memset(s, 0, sizeof *s);
  if (x->nsheets == 0)
    snprintf(s->name, sizeof s->name, "Report");
  else
    snprintf(s->name, sizeof s->name, "Report (%zu)", x->nsheets + 1);
  s->ws = workbook_add_worksheet(x->wb, s->name);
  if (!s->ws)
    return erpq_fail(err, errlen, -ENOMEM, "XLSX: adding sheet %s failed", s->name);
  x->nsheets++;
  if (!s->ws->optimize)
    return erpq_fail(err, errlen, -EINVAL, "XLSX: sheet %s is not in constant_memory mode",
                     s->name);
  for (size_t c = 0; c < w->ncols; c++) {
    lxw_error e = worksheet_write_string(s->ws, 0, (lxw_col_t)c, w->headers[c], x->f_head);
    if (e)
      return lxw_fail(err, errlen, e, "writing the header row");
  }
  worksheet_freeze_panes(s->ws, 1, 0); /* void in libxlsxwriter */
  x->next_row = 1;
  return 0;
}

/* The cell value as a double for libxlsxwriter; -ERANGE when inexact. */
static int to_double(erpq_rw *w, size_t col, int64_t v, double *out) {
  if (w->cols[col].type == ERPQ_RCOL_MONEY)
    return erpq_money_to_double(v, w->cur.exponent, out);
  if (v <= -(INT64_C(1) << 53) || v >= (INT64_C(1) << 53))
    return -ERANGE;
  *out = (double)v;
  return 0;
}

static int range_error(erpq_rw *w, size_t col, char *err, size_t errlen) {
  return erpq_fail(err, errlen, -ERANGE,
                   "XLSX: a value in column %zu (%s) is too large to be stored exactly", col + 1,
                   w->cols[col].title);
}

static int write_cell(erpq_rw *w, xsheet *s, lxw_row_t r, size_t c, const erpq_cell *v, char *err,
                      size_t errlen) {
  xlsx_impl *x = w->impl;
  lxw_col_t col = (lxw_col_t)c;
  lxw_error e = LXW_NO_ERROR;
  char buf[ERPQ_MONEY_BUF];
  double d;
  switch (w->cols[c].type) {
  case ERPQ_RCOL_TEXT: {
    const char *t = v->text;
    size_t n = strlen(t);
    if (n > XLSX_STR_MAX) { /* bytes >= characters: only then can it be too long */
      size_t cut = erpq_utf8_prefix(t, n, XLSX_STR_MAX);
      if (cut < n) {
        erpq_buf_reset(&x->tmp);
        erpq_buf_add(&x->tmp, t, cut);
        if (x->tmp.oom)
          return erpq_fail(err, errlen, -ENOMEM, "out of memory");
        t = x->tmp.s;
        n = cut;
        w->st.truncated++;
      }
    }
    see_width(x, c, erpq_utf8_columns(t, n < 400 ? n : erpq_utf8_prefix(t, n, 100)));
    e = worksheet_write_string(s->ws, r, col, t, NULL);
    break;
  }
  case ERPQ_RCOL_INT:
  case ERPQ_RCOL_MONEY:
    if (to_double(w, c, v->num, &d) < 0)
      return range_error(w, c, err, errlen);
    if (w->cols[c].type == ERPQ_RCOL_MONEY)
      see_width(x, c, erpq_utf8_columns(buf, erpq_money_display(v->num, &w->cur, w->indian, buf)));
    else
      see_width(x, c, (size_t)snprintf(buf, sizeof buf, "%" PRId64, v->num));
    e = worksheet_write_number(s->ws, r, col, d,
                               w->cols[c].type == ERPQ_RCOL_MONEY ? x->f_money : x->f_int);
    break;
  case ERPQ_RCOL_DATE:
  case ERPQ_RCOL_DATETIME: {
    int with_time = w->cols[c].type == ERPQ_RCOL_DATETIME;
    if (v->t.y < 1900) { /* before Excel's epoch: ISO text */
      if (with_time)
        snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", v->t.y, v->t.m, v->t.d, v->t.hh,
                 v->t.mi, v->t.ss);
      else
        snprintf(buf, sizeof buf, "%04d-%02d-%02d", v->t.y, v->t.m, v->t.d);
      e = worksheet_write_string(s->ws, r, col, buf, NULL);
    } else {
      lxw_datetime dt = {v->t.y,
                         v->t.m,
                         v->t.d,
                         with_time ? v->t.hh : 0,
                         with_time ? v->t.mi : 0,
                         with_time ? v->t.ss : 0};
      e = worksheet_write_datetime(s->ws, r, col, &dt, with_time ? x->f_dt : x->f_date);
    }
    see_width(x, c, with_time ? 19 : 10);
    break;
  }
  }
  if (e)
    return lxw_fail(err, errlen, e, "writing a cell");
  return 0;
}

static int xlsx_row(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen) {
  xlsx_impl *x = w->impl;
  xsheet *s = &x->sheets[x->nsheets - 1];
  int rc;
  if (s->rows >= w->opts.xlsx_rows_per_sheet) {
    if ((rc = finish_sheet(w, s, err, errlen)) < 0 || (rc = new_sheet(w, err, errlen)) < 0)
      return rc;
    s = &x->sheets[x->nsheets - 1];
  }
  lxw_row_t r = s->rows + 1;
  for (size_t c = 0; c < w->ncols; c++) {
    if (cells[c].null)
      continue;
    if ((rc = write_cell(w, s, r, c, &cells[c], err, errlen)) < 0)
      return rc;
  }
  s->rows++;
  x->next_row = r + 1;
  return 0;
}

/* Column letters of a 0-based column: A..XFD. */
static void col_name(size_t c, char out[4]) {
  char tmp[4];
  size_t n = 0;
  c++;
  while (c && n < 3) {
    tmp[n++] = (char)('A' + (c - 1) % 26);
    c = (c - 1) / 26;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

/* Appends 'Sheet name'!$C$2:$C$n+1 for sheet s, column c. */
static void add_range(erpq_buf *f, const xsheet *s, size_t c) {
  char cn[4];
  col_name(c, cn);
  erpq_buf_addf(f, "'%s'!$%s$2:$%s$%" PRIu32, s->name, cn, cn, s->rows + 1);
}

/* Builds the formula of a SUM column of a total line into f; returns 0, or
 * 1 when no formula fits (the value is written instead). */
static int build_formula(erpq_rw *w, const erpq_rtl *t, size_t c, erpq_buf *f) {
  xlsx_impl *x = w->impl;
  int any = 0;
  erpq_buf_reset(f);
  if (t->group_col >= 0) {
    const char *v = t->group_value;
    if (erpq_utf8_columns(v, strlen(v)) > 255 || strlen(v) > 1000)
      return 1;
    erpq_buf lit = {0}; /* "value" with quotes doubled */
    erpq_buf_adds(&lit, "\"");
    for (const char *p = v; *p; p++) {
      if (*p == '"')
        erpq_buf_adds(&lit, "\"\"");
      else
        erpq_buf_add(&lit, p, 1);
    }
    erpq_buf_adds(&lit, "\"");
    for (size_t i = 0; i < x->nsheets; i++) {
      if (!x->sheets[i].rows)
        continue;
      erpq_buf_adds(f, any ? "+SUMPRODUCT(--EXACT(" : "=SUMPRODUCT(--EXACT(");
      add_range(f, &x->sheets[i], (size_t)t->group_col);
      erpq_buf_add(f, ",", 1);
      erpq_buf_add(f, lit.s ? lit.s : "", lit.len);
      erpq_buf_adds(f, "),");
      add_range(f, &x->sheets[i], c);
      erpq_buf_adds(f, ")");
      any = 1;
    }
    int oom = lit.oom;
    erpq_buf_free(&lit);
    if (oom)
      f->oom = 1;
  } else {
    for (size_t i = 0; i < x->nsheets; i++) {
      if (!x->sheets[i].rows)
        continue;
      erpq_buf_adds(f, any ? "," : "=SUM(");
      add_range(f, &x->sheets[i], c);
      any = 1;
    }
    if (any)
      erpq_buf_adds(f, ")");
  }
  return !any || f->oom || f->len > XLSX_FORMULA_MAX;
}

static int xlsx_total(erpq_rw *w, const erpq_rtl *t, char *err, size_t errlen) {
  xlsx_impl *x = w->impl;
  int rc;
  if (!x->totals_started) {
    if ((rc = finish_sheet(w, &x->sheets[x->nsheets - 1], err, errlen)) < 0)
      return rc;
    x->totals_started = 1;
    x->next_row++; /* one empty row */
  }
  if (x->next_row >= LXW_ROW_MAX) { /* the sheet is full: totals go on */
    if ((rc = new_sheet(w, err, errlen)) < 0 ||
        (rc = finish_sheet(w, &x->sheets[x->nsheets - 1], err, errlen)) < 0)
      return rc;
  }
  xsheet *s = &x->sheets[x->nsheets - 1];
  lxw_row_t r = x->next_row;
  lxw_error e = worksheet_write_string(s->ws, r, 0, t->label, x->f_label);
  if (e)
    return lxw_fail(err, errlen, e, "writing a total line");
  see_width(x, 0, erpq_utf8_columns(t->label, strlen(t->label)));
  erpq_buf f = {0};
  for (size_t c = 1; c < w->ncols; c++) {
    if (t->kind[c] == ERPQ_RTL_NONE)
      continue;
    double d;
    if (to_double(w, c, t->value[c], &d) < 0) {
      erpq_buf_free(&f);
      return range_error(w, c, err, errlen);
    }
    lxw_format *fmt = w->cols[c].type == ERPQ_RCOL_MONEY ? x->f_tmoney : x->f_tint;
    if (t->kind[c] == ERPQ_RTL_SUM && build_formula(w, t, c, &f) == 0)
      e = worksheet_write_formula_num(s->ws, r, (lxw_col_t)c, f.s, fmt, d);
    else
      e = worksheet_write_number(s->ws, r, (lxw_col_t)c, d, fmt);
    if (e) {
      erpq_buf_free(&f);
      return lxw_fail(err, errlen, e, "writing a total");
    }
    char buf[ERPQ_MONEY_BUF];
    if (w->cols[c].type == ERPQ_RCOL_MONEY)
      see_width(x, c,
                erpq_utf8_columns(buf, erpq_money_display(t->value[c], &w->cur, w->indian, buf)));
    else
      see_width(x, c, (size_t)snprintf(buf, sizeof buf, "%" PRId64, t->value[c]));
  }
  erpq_buf_free(&f);
  x->next_row = r + 1;
  return 0;
}

static int xlsx_finish(erpq_rw *w, char *err, size_t errlen) {
  xlsx_impl *x = w->impl;
  int rc;
  for (size_t i = 0; i < x->nsheets; i++) {
    if ((rc = finish_sheet(w, &x->sheets[i], err, errlen)) < 0)
      return rc;
    for (size_t c = 0; c < w->ncols; c++) {
      double width = (double)x->width[c] * 1.1 + 2.0;
      if (width > XLSX_WIDTH_MAX)
        width = XLSX_WIDTH_MAX;
      lxw_error e = worksheet_set_column(x->sheets[i].ws, (lxw_col_t)c, (lxw_col_t)c, width, NULL);
      if (e)
        return lxw_fail(err, errlen, e, "setting a column width");
    }
  }
  lxw_workbook *wb = x->wb;
  x->wb = NULL; /* workbook_close() frees it whatever happens */
  lxw_error e = workbook_close(wb);
  if (e)
    return lxw_fail(err, errlen, e, "saving the workbook");
  struct stat sb;
  if (stat(w->dest.path, &sb) < 0)
    return erpq_fail(err, errlen, -errno, "XLSX: the saved file cannot be read: %s",
                     erpq_strerror(-errno));
  w->st.bytes = (uint64_t)sb.st_size;
  w->st.sheets = (uint32_t)x->nsheets;
  return 0;
}

static void xlsx_destroy(erpq_rw *w) {
  xlsx_impl *x = w->impl;
  if (!x)
    return;
  if (x->wb) {
    /* Abandoned: libxlsxwriter 1.1.4 has no discard, and lxw_workbook_free()
     * leaves the sheets' temp files open; close them first. */
    for (size_t i = 0; i < x->nsheets; i++) {
      if (x->sheets[i].ws->optimize_tmpfile) {
        fclose(x->sheets[i].ws->optimize_tmpfile);
        x->sheets[i].ws->optimize_tmpfile = NULL;
        x->sheets[i].ws->file = NULL;
      }
    }
    lxw_workbook_free(x->wb);
  }
  free(x->sheets);
  free(x->width);
  erpq_buf_free(&x->tmp);
  free(x);
  w->impl = NULL;
}

static const erpq_rw_ops XLSX_OPS = {xlsx_row, xlsx_total, xlsx_finish, xlsx_destroy};

static lxw_format *fmt(xlsx_impl *x, int bold, const char *num) {
  lxw_format *f = workbook_add_format(x->wb);
  if (!f)
    return NULL;
  if (bold)
    format_set_bold(f);
  if (num)
    format_set_num_format(f, num);
  return f;
}

int erpq_rw_xlsx_init(erpq_rw *w, char *err, size_t errlen) {
  xlsx_impl *x = calloc(1, sizeof *x);
  if (!x)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  w->impl = x;
  w->ops = &XLSX_OPS;
  if (!(x->width = calloc(w->ncols, sizeof *x->width)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  lxw_workbook_options o = {.constant_memory = LXW_TRUE, .tmpdir = (char *)w->opts.tmpdir};
  x->wb = workbook_new_opt(w->dest.path, &o);
  if (!x->wb)
    return erpq_fail(err, errlen, -ENOMEM, "XLSX: creating the workbook failed");
  if (!x->wb->options.constant_memory)
    return erpq_fail(err, errlen, -EINVAL, "XLSX: constant_memory mode did not take effect");
  char money[64];
  erpq_money_xlsx_format(&w->cur, money);
  x->f_head = fmt(x, 1, NULL);
  x->f_date = fmt(x, 0, "yyyy-mm-dd");
  x->f_dt = fmt(x, 0, "yyyy-mm-dd hh:mm:ss");
  x->f_money = fmt(x, 0, money);
  x->f_int = fmt(x, 0, "0");
  x->f_label = fmt(x, 1, NULL);
  x->f_tmoney = fmt(x, 1, money);
  x->f_tint = fmt(x, 1, "0");
  if (!x->f_head || !x->f_date || !x->f_dt || !x->f_money || !x->f_int || !x->f_label ||
      !x->f_tmoney || !x->f_tint)
    return erpq_fail(err, errlen, -ENOMEM, "XLSX: adding formats failed");
  lxw_doc_properties props = {
      .title = (char *)w->meta.title,
      .subject = (char *)w->meta.period,
      .company = (char *)w->meta.school,
      .comments = (char *)w->meta.generated,
  };
  lxw_error e = workbook_set_properties(x->wb, &props);
  if (e)
    return lxw_fail(err, errlen, e, "setting the document properties");
  for (size_t c = 0; c < w->ncols; c++) /* room for the filter button too */
    see_width(x, c, erpq_utf8_columns(w->headers[c], strlen(w->headers[c])) + 3);
  return new_sheet(w, err, errlen);
}
