/*
 * erpq_report_writer.c - the writer front: validation, text repair, sums,
 * the state machine; the formats live in erpq_report_{csv,xlsx,pdf}.c.
 */
#include "erpq_report_writer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_report_internal.h"
#include "erpq_report_text.h"

enum { ST_OPEN, ST_TOTALS, ST_FAILED };

struct erpq_rgroup {
  size_t n;
  int overflow; /* more distinct values than ERPQ_RW_MAX_GROUPS were seen */
  char *value[ERPQ_RW_MAX_GROUPS];
  int64_t *sums[ERPQ_RW_MAX_GROUPS]; /* ncols each */
};

const char *erpq_rformat_name(erpq_rformat f) {
  switch (f) {
  case ERPQ_RFORMAT_CSV: return "csv";
  case ERPQ_RFORMAT_XLSX: return "xlsx";
  case ERPQ_RFORMAT_PDF: return "pdf";
  }
  return "?";
}

static const char *type_name(erpq_rcol_type t) {
  switch (t) {
  case ERPQ_RCOL_TEXT: return "TEXT";
  case ERPQ_RCOL_INT: return "INT";
  case ERPQ_RCOL_MONEY: return "MONEY";
  case ERPQ_RCOL_DATE: return "DATE";
  case ERPQ_RCOL_DATETIME: return "DATETIME";
  }
  return "?";
}

/* A copy of s (NULL -> ""), repaired if it is not UTF-8. */
static char *dup_text(const char *s) {
  if (!s)
    s = "";
  size_t n = strlen(s);
  if (erpq_utf8_valid(s, n))
    return strdup(s);
  erpq_buf b = {0};
  erpq_utf8_repair(&b, s, n);
  return erpq_buf_take(&b);
}

static int parse_uint(const char *name, const char *v, uint64_t max, uint64_t *out, char *err,
                      size_t errlen) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || x > max)
    return erpq_fail(err, errlen, -EINVAL, "%s must be a whole number from 0 to %" PRIu64, name,
                     max);
  *out = x;
  return 0;
}

int erpq_ropts_from_config(erpq_ropts *o, const char *(*get)(void *ud, const char *name), void *ud,
                           char *err, size_t errlen) {
  const char *v;
  uint64_t x = 0;
  int rc;
  if ((v = get(ud, "ERPQ_REPORT_CSV_BOM")) && *v) {
    if (strcmp(v, "0") && strcmp(v, "1"))
      return erpq_fail(err, errlen, -EINVAL, "ERPQ_REPORT_CSV_BOM must be 0 or 1");
    o->csv_no_bom = v[0] == '0';
  }
  if ((v = get(ud, "ERPQ_REPORT_CSV_BUFFER")) && *v) {
    if ((rc = parse_uint("ERPQ_REPORT_CSV_BUFFER", v, 64u << 20, &x, err, errlen)) < 0)
      return rc;
    o->csv_buffer = (size_t)x;
  }
  if ((v = get(ud, "ERPQ_REPORT_XLSX_ROWS_PER_SHEET")) && *v) {
    if ((rc = parse_uint("ERPQ_REPORT_XLSX_ROWS_PER_SHEET", v, ERPQ_RW_XLSX_MAX_ROWS_PER_SHEET, &x,
                         err, errlen)) < 0)
      return rc;
    o->xlsx_rows_per_sheet = (uint32_t)x;
  }
  if ((v = get(ud, "ERPQ_REPORT_PDF_MAX_ROWS")) && *v) {
    if ((rc = parse_uint("ERPQ_REPORT_PDF_MAX_ROWS", v, UINT32_MAX, &x, err, errlen)) < 0)
      return rc;
    o->pdf_max_rows = (uint32_t)x;
  }
  if ((v = get(ud, "ERPQ_REPORT_TMPDIR")) && *v)
    o->tmpdir = v;
  if ((v = get(ud, "ERPQ_REPORT_FONT_REGULAR")) && *v)
    o->font_regular = v;
  if ((v = get(ud, "ERPQ_REPORT_FONT_BOLD")) && *v)
    o->font_bold = v;
  return 0;
}

static void free_writer(erpq_rw *w) {
  if (!w)
    return;
  if (w->ops && w->ops->destroy)
    w->ops->destroy(w);
  for (size_t c = 0; c < w->ncols; c++) {
    if (w->cols)
      free((char *)w->cols[c].title);
    if (w->headers)
      free(w->headers[c]);
    if (w->groups && w->groups[c].n) {
      for (size_t g = 0; g < w->groups[c].n; g++) {
        free(w->groups[c].value[g]);
        free(w->groups[c].sums[g]);
      }
    }
  }
  free(w->cols);
  free(w->headers);
  free(w->groups);
  free(w->sums);
  free(w->clean);
  free((char *)w->meta.school);
  free((char *)w->meta.title);
  free((char *)w->meta.period);
  free((char *)w->meta.generated);
  free((char *)w->meta.currency);
  free((char *)w->meta.locale);
  free((char *)w->opts.tmpdir);
  free((char *)w->opts.font_regular);
  free((char *)w->opts.font_bold);
  free((char *)w->dest.path);
  erpq_buf_free(&w->scratch);
  free(w);
}

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

int erpq_rw_open(erpq_rw **out, erpq_rformat format, const erpq_rdest *dest, const erpq_rcol *cols,
                 size_t ncols, const erpq_rmeta *meta, const erpq_ropts *opts, char *err,
                 size_t errlen) {
  *out = NULL;
  if (!dest || !cols || !meta)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "report writer: dest, columns and meta are required");
  if (format != ERPQ_RFORMAT_CSV && format != ERPQ_RFORMAT_XLSX && format != ERPQ_RFORMAT_PDF)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "report writer: unknown format %d", (int)format);
  if (format == ERPQ_RFORMAT_CSV ? !dest->write : (!dest->path || !*dest->path))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "report writer: a %s report needs %s",
                     erpq_rformat_name(format), format == ERPQ_RFORMAT_CSV ? "a sink" : "a path");
  if (ncols == 0 || ncols > ERPQ_RW_MAX_COLS)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "report writer: %zu columns (1 to %d allowed)", ncols,
                     ERPQ_RW_MAX_COLS);
  for (size_t c = 0; c < ncols; c++) {
    erpq_rcol_type t = cols[c].type;
    if (t != ERPQ_RCOL_TEXT && t != ERPQ_RCOL_INT && t != ERPQ_RCOL_MONEY && t != ERPQ_RCOL_DATE &&
        t != ERPQ_RCOL_DATETIME)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "column %zu has an unknown type", c + 1);
    if ((cols[c].flags & ERPQ_RCOL_SUM) && t != ERPQ_RCOL_INT && t != ERPQ_RCOL_MONEY)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "column %zu is %s and cannot be summed", c + 1,
                       type_name(t));
    if ((cols[c].flags & ERPQ_RCOL_GROUP) && t != ERPQ_RCOL_TEXT)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "column %zu is %s and cannot group totals", c + 1,
                       type_name(t));
    if (cols[c].flags & ~(ERPQ_RCOL_SUM | ERPQ_RCOL_GROUP))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "column %zu has unknown flags", c + 1);
  }
  if (cols[0].flags & ERPQ_RCOL_SUM)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "column 1 holds the labels of total lines and cannot be summed");

  erpq_rw *w = calloc(1, sizeof *w);
  if (!w)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = erpq_currency_lookup(meta->currency, &w->cur, err, errlen);
  if (rc < 0) {
    free(w);
    return rc;
  }
  w->format = format;
  w->ncols = ncols;
  w->indian = erpq_money_indian_grouping(meta->locale);
  w->cols = calloc(ncols, sizeof *w->cols);
  w->headers = calloc(ncols, sizeof *w->headers);
  w->groups = calloc(ncols, sizeof *w->groups);
  w->sums = calloc(ncols, sizeof *w->sums);
  w->clean = calloc(ncols, sizeof *w->clean);
  int oom = !w->cols || !w->headers || !w->groups || !w->sums || !w->clean;
  for (size_t c = 0; !oom && c < ncols; c++) {
    w->cols[c] = cols[c];
    w->cols[c].title = dup_text(cols[c].title);
    if (!w->cols[c].title) {
      oom = 1;
      break;
    }
    erpq_buf h = {0};
    erpq_buf_adds(&h, w->cols[c].title);
    if (cols[c].type == ERPQ_RCOL_MONEY)
      erpq_buf_addf(&h, " (%s)", w->cur.code);
    w->headers[c] = erpq_buf_take(&h);
    oom = !w->headers[c];
  }
  w->meta.school = dup_text(meta->school);
  w->meta.title = dup_text(meta->title);
  w->meta.period = dup_text(meta->period);
  w->meta.generated = dup_text(meta->generated);
  w->meta.currency = strdup(w->cur.code);
  w->meta.locale = dup_text(meta->locale && *meta->locale ? meta->locale : "en");
  oom = oom || !w->meta.school || !w->meta.title || !w->meta.period || !w->meta.generated ||
        !w->meta.currency || !w->meta.locale;
  if (opts)
    w->opts = *opts;
  w->opts.tmpdir = dup_opt(w->opts.tmpdir);
  w->opts.font_regular = dup_opt(w->opts.font_regular);
  w->opts.font_bold = dup_opt(w->opts.font_bold);
  oom = oom || (opts && opts->tmpdir && !w->opts.tmpdir) ||
        (opts && opts->font_regular && !w->opts.font_regular) ||
        (opts && opts->font_bold && !w->opts.font_bold);
  w->dest = *dest;
  w->dest.path = dup_opt(dest->path);
  oom = oom || (dest->path && !w->dest.path);
  if (oom) {
    free_writer(w);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  if (w->opts.csv_buffer == 0)
    w->opts.csv_buffer = 16384;
  if (w->opts.xlsx_rows_per_sheet == 0 ||
      w->opts.xlsx_rows_per_sheet > ERPQ_RW_XLSX_MAX_ROWS_PER_SHEET)
    w->opts.xlsx_rows_per_sheet = ERPQ_RW_XLSX_MAX_ROWS_PER_SHEET;
  if (w->opts.pdf_max_rows == 0)
    w->opts.pdf_max_rows = ERPQ_RW_PDF_MAX_ROWS;

  switch (format) {
  case ERPQ_RFORMAT_CSV: rc = erpq_rw_csv_init(w, err, errlen); break;
  case ERPQ_RFORMAT_XLSX: rc = erpq_rw_xlsx_init(w, err, errlen); break;
  case ERPQ_RFORMAT_PDF: rc = erpq_rw_pdf_init(w, err, errlen); break;
  }
  if (rc < 0) {
    free_writer(w);
    return rc;
  }
  w->state = ST_OPEN;
  *out = w;
  return 0;
}

static int fail(erpq_rw *w, int code) {
  w->state = ST_FAILED;
  w->failed_code = code;
  return code;
}

static int failed(erpq_rw *w, char *err, size_t errlen) {
  return erpq_fail(err, errlen, w->failed_code,
                   "the report writer failed earlier and accepts nothing more");
}

static int days_in_month(int y, int m) {
  static const int D[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return D[m - 1];
}

static int check_time(const erpq_rtime *t, int with_time) {
  if (t->y < 1 || t->y > 9999 || t->m < 1 || t->m > 12 || t->d < 1 ||
      t->d > days_in_month(t->y, t->m))
    return 0;
  if (with_time && (t->hh < 0 || t->hh > 23 || t->mi < 0 || t->mi > 59 || t->ss < 0 || t->ss > 59))
    return 0;
  return 1;
}

/* The index of the group entry for value in g, adding it when there is
 * room; -1 when not tracked (overflow), -2 when memory ran out. */
static int group_slot(erpq_rw *w, struct erpq_rgroup *g, const char *value, int add) {
  for (size_t i = 0; i < g->n; i++)
    if (strcmp(g->value[i], value) == 0)
      return (int)i;
  if (!add)
    return -1;
  if (g->n == ERPQ_RW_MAX_GROUPS) {
    g->overflow = 1;
    return -1;
  }
  char *v = strdup(value);
  int64_t *s = calloc(w->ncols, sizeof *s);
  if (!v || !s) {
    free(v);
    free(s);
    return -2;
  }
  g->value[g->n] = v;
  g->sums[g->n] = s;
  return (int)g->n++;
}

static int add_checked(int64_t *acc, int64_t v) { return __builtin_add_overflow(*acc, v, acc); }

int erpq_rw_row(erpq_rw *w, const erpq_cell *cells, char *err, size_t errlen) {
  if (w->state == ST_FAILED)
    return failed(w, err, errlen);
  if (w->state != ST_OPEN)
    return fail(w, erpq_fail(err, errlen, ERPQ_E_ARG, "a row came after the total lines"));
  uint64_t rowno = w->st.rows + 1;
  erpq_buf_reset(&w->scratch);
  for (size_t c = 0; c < w->ncols; c++) {
    const erpq_cell *in = &cells[c];
    erpq_cell *o = &w->clean[c];
    *o = *in;
    o->num = in->num;
    if (in->null || (w->cols[c].type == ERPQ_RCOL_TEXT && !in->text)) {
      *o = erpq_cell_null();
      continue;
    }
    switch (w->cols[c].type) {
    case ERPQ_RCOL_TEXT: {
      size_t n = strlen(in->text);
      if (!erpq_utf8_valid(in->text, n)) {
        /* Remember the offset now; the buffer may move as it grows. */
        o->num = (int64_t)w->scratch.len;
        o->text = NULL;
        w->st.repaired += erpq_utf8_repair(&w->scratch, in->text, n);
        erpq_buf_add(&w->scratch, "", 1);
      } else {
        o->num = -1;
      }
      break;
    }
    case ERPQ_RCOL_DATE:
    case ERPQ_RCOL_DATETIME:
      if (!check_time(&in->t, w->cols[c].type == ERPQ_RCOL_DATETIME))
        return fail(w, erpq_fail(err, errlen, ERPQ_E_ARG,
                                 "row %" PRIu64 ", column %zu (%s): not a valid %s", rowno, c + 1,
                                 w->cols[c].title, type_name(w->cols[c].type)));
      break;
    default: break;
    }
  }
  if (w->scratch.oom)
    return fail(w, erpq_fail(err, errlen, -ENOMEM, "out of memory"));
  for (size_t c = 0; c < w->ncols; c++)
    if (w->cols[c].type == ERPQ_RCOL_TEXT && !w->clean[c].null && !w->clean[c].text)
      w->clean[c].text = w->scratch.s + w->clean[c].num;

  /* Sums: all rows, then each GROUP column's entry for this row. */
  for (size_t c = 0; c < w->ncols; c++) {
    if (!(w->cols[c].flags & ERPQ_RCOL_SUM) || w->clean[c].null)
      continue;
    if (add_checked(&w->sums[c], w->clean[c].num))
      return fail(w, erpq_fail(err, errlen, -ERANGE,
                               "row %" PRIu64 ": the total of column %zu (%s) overflows", rowno,
                               c + 1, w->cols[c].title));
  }
  for (size_t g = 0; g < w->ncols; g++) {
    if (!(w->cols[g].flags & ERPQ_RCOL_GROUP))
      continue;
    const char *v = w->clean[g].null ? "" : w->clean[g].text;
    int slot = group_slot(w, &w->groups[g], v, 1);
    if (slot == -2)
      return fail(w, erpq_fail(err, errlen, -ENOMEM, "out of memory"));
    if (slot < 0)
      continue;
    for (size_t c = 0; c < w->ncols; c++)
      if ((w->cols[c].flags & ERPQ_RCOL_SUM) && !w->clean[c].null &&
          add_checked(&w->groups[g].sums[slot][c], w->clean[c].num))
        return fail(w, erpq_fail(err, errlen, -ERANGE,
                                 "row %" PRIu64 ": a group total of column %zu (%s) overflows",
                                 rowno, c + 1, w->cols[c].title));
  }

  int rc = w->ops->row(w, w->clean, err, errlen);
  if (rc < 0)
    return fail(w, rc);
  w->st.rows++;
  return 0;
}

int erpq_rw_total(erpq_rw *w, const erpq_rtotal *t, char *err, size_t errlen) {
  if (w->state == ST_FAILED)
    return failed(w, err, errlen);
  if (!t)
    return fail(w, erpq_fail(err, errlen, ERPQ_E_ARG, "total line missing"));
  const struct erpq_rgroup *grp = NULL;
  int slot = -1;
  char *label = dup_text(t->label), *gval = NULL;
  erpq_rtl_kind kind[ERPQ_RW_MAX_COLS];
  int64_t value[ERPQ_RW_MAX_COLS];
  int rc = 0;
  if (!label) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  if (t->group_col >= 0) {
    if ((size_t)t->group_col >= w->ncols || !(w->cols[t->group_col].flags & ERPQ_RCOL_GROUP)) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "total line: column %d is not a GROUP column",
                     t->group_col + 1);
      goto out;
    }
    if (!(gval = dup_text(t->group_value))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
    grp = &w->groups[t->group_col];
    slot = group_slot(w, &w->groups[t->group_col], gval, 0);
  }
  for (size_t c = 0; c < w->ncols; c++) {
    const erpq_cell *given = t->values && !t->values[c].null ? &t->values[c] : NULL;
    erpq_rcol_type ty = w->cols[c].type;
    kind[c] = ERPQ_RTL_NONE;
    value[c] = 0;
    if (c == 0)
      continue; /* the label */
    if (ty != ERPQ_RCOL_INT && ty != ERPQ_RCOL_MONEY) {
      if (given && !(ty == ERPQ_RCOL_TEXT && !given->text)) {
        rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                       "total line: column %zu (%s) is %s; totals hold numbers only", c + 1,
                       w->cols[c].title, type_name(ty));
        goto out;
      }
      continue;
    }
    if (!(w->cols[c].flags & ERPQ_RCOL_SUM)) {
      if (given) {
        kind[c] = ERPQ_RTL_VALUE;
        value[c] = given->num;
      }
      continue;
    }
    int known = 1;
    int64_t own = 0;
    if (!grp)
      own = w->sums[c];
    else if (slot >= 0)
      own = grp->sums[slot][c];
    else if (grp->overflow)
      known = 0; /* the value may have been among those not tracked */
    if (!known && !given) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                     "total line: column %zu (%s) has more than %d groups; give its value", c + 1,
                     w->cols[c].title, ERPQ_RW_MAX_GROUPS);
      goto out;
    }
    if (known && given && given->num != own) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                     "total line: column %zu (%s) was given a value that differs from the sum "
                     "of its rows",
                     c + 1, w->cols[c].title);
      goto out;
    }
    kind[c] = ERPQ_RTL_SUM;
    value[c] = known ? own : given->num;
  }
  erpq_rtl line = {label, grp ? t->group_col : -1, gval, kind, value};
  rc = w->ops->total(w, &line, err, errlen);
out:
  free(label);
  free(gval);
  if (rc < 0)
    return fail(w, rc);
  w->state = ST_TOTALS;
  return 0;
}

void erpq_rw_stats(const erpq_rw *w, erpq_rstats *stats) { *stats = w->st; }

int erpq_rw_close(erpq_rw *w, erpq_rstats *stats, char *err, size_t errlen) {
  int rc;
  if (w->state == ST_FAILED) {
    rc = failed(w, err, errlen);
  } else {
    rc = w->ops->finish(w, err, errlen);
    if (rc < 0 && w->dest.path)
      unlink(w->dest.path); /* a half-written file must not be uploaded */
  }
  if (stats)
    *stats = w->st;
  free_writer(w);
  return rc;
}

void erpq_rw_abort(erpq_rw *w) { free_writer(w); }
