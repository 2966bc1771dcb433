/* erpq_notify_sql.c - prepared SELECTs with text columns (erpq_notify_sql.h). */
#include "erpq_notify_sql.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

struct nt_stmt {
  MYSQL_STMT *st;
};

static int stmt_fail(MYSQL_STMT *st, const char *what, char *err, size_t errlen) {
  unsigned e = mysql_stmt_errno(st);
  return erpq_fail(err, errlen, e ? -(int)e : -EIO, "%s: %s", what,
                   e ? mysql_stmt_error(st) : "unknown error");
}

int nt_stmt_prepare(MYSQL *m, const char *sql, nt_stmt **out, char *err, size_t errlen) {
  *out = NULL;
  nt_stmt *s = calloc(1, sizeof *s);
  if (!s)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  s->st = mysql_stmt_init(m);
  if (!s->st) {
    free(s);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory (statement)");
  }
  if (mysql_stmt_prepare(s->st, sql, strlen(sql))) {
    int rc = stmt_fail(s->st, "prepare", err, errlen);
    mysql_stmt_close(s->st);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void nt_stmt_close(nt_stmt *s) {
  if (!s)
    return;
  mysql_stmt_close(s->st);
  free(s);
}

void nt_rows_free(nt_rows *r) {
  if (!r || !r->cells)
    return;
  for (size_t i = 0; i < r->nrows * r->ncols; i++)
    free(r->cells[i]);
  free(r->cells);
  memset(r, 0, sizeof *r);
}

const char *nt_cell(const nt_rows *r, size_t row, size_t col) {
  if (!r || row >= r->nrows || col >= r->ncols)
    return NULL;
  return r->cells[row * r->ncols + col];
}

/* Binds the parameters and executes (lib/mysql). */
static int bind_exec(MYSQL_STMT *st, const erpq_param *p, int np, char *err, size_t errlen) {
  return erpq_mysql_stmt_run(st, p, np, err, errlen);
}

/* Fetches every row of a stored result as text. */
static int fetch_all(MYSQL_STMT *st, nt_rows *out, char *err, size_t errlen) {
  MYSQL_RES *meta = mysql_stmt_result_metadata(st);
  if (!meta)
    return 0;
  size_t nc = mysql_num_fields(meta);
  mysql_free_result(meta);
  if (mysql_stmt_store_result(st))
    return stmt_fail(st, "store", err, errlen);
  enum { CELL = 512 };
  MYSQL_BIND *b = calloc(nc ? nc : 1, sizeof *b);
  char *bufs = malloc((nc ? nc : 1) * CELL);
  unsigned long *lens = calloc(nc ? nc : 1, sizeof *lens);
  my_bool *nulls = calloc(nc ? nc : 1, sizeof *nulls);
  size_t cap = (size_t)mysql_stmt_num_rows(st) * nc;
  char **cells = calloc(cap ? cap : 1, sizeof *cells);
  int rc = 0;
  if (!b || !bufs || !lens || !nulls || !cells)
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < nc; i++) {
    b[i].buffer_type = MYSQL_TYPE_STRING;
    b[i].buffer = bufs + i * CELL;
    b[i].buffer_length = CELL;
    b[i].length = &lens[i];
    b[i].is_null = &nulls[i];
  }
  if (!rc && mysql_stmt_bind_result(st, b))
    rc = stmt_fail(st, "bind result", err, errlen);
  size_t n = 0;
  while (!rc) {
    int f = mysql_stmt_fetch(st);
    if (f == MYSQL_NO_DATA)
      break;
    if (f == 1) {
      rc = stmt_fail(st, "fetch", err, errlen);
      break;
    }
    if ((n + 1) * nc > cap) {
      rc = erpq_fail(err, errlen, -EIO, "more rows than the result said");
      break;
    }
    for (size_t i = 0; i < nc && !rc; i++) {
      if (nulls[i])
        continue;
      char *cell = malloc(lens[i] + 1);
      if (!cell) {
        rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
        break;
      }
      if (lens[i] <= CELL) {
        memcpy(cell, bufs + i * CELL, lens[i]);
      } else {
        /* Truncated into the fixed buffer: fetch the whole value. */
        MYSQL_BIND one = {0};
        unsigned long l2 = 0;
        one.buffer_type = MYSQL_TYPE_STRING;
        one.buffer = cell;
        one.buffer_length = lens[i];
        one.length = &l2;
        if (mysql_stmt_fetch_column(st, &one, (unsigned)i, 0)) {
          free(cell);
          rc = stmt_fail(st, "fetch column", err, errlen);
          break;
        }
      }
      cell[lens[i]] = '\0';
      cells[n * nc + i] = cell;
    }
    n++;
  }
  mysql_stmt_free_result(st);
  free(b);
  free(bufs);
  free(lens);
  free(nulls);
  if (rc) {
    for (size_t i = 0; i < cap; i++)
      free(cells ? cells[i] : NULL);
    free(cells);
    return rc;
  }
  if (out) {
    out->nrows = n;
    out->ncols = nc;
    out->cells = cells;
  } else {
    for (size_t i = 0; i < cap; i++)
      free(cells[i]);
    free(cells);
  }
  return 0;
}

int nt_stmt_rows(nt_stmt *s, const erpq_param *p, int np, nt_rows *rows, char *err, size_t errlen) {
  if (rows)
    memset(rows, 0, sizeof *rows);
  int rc = bind_exec(s->st, p, np, err, errlen);
  if (rc)
    return rc;
  return fetch_all(s->st, rows, err, errlen);
}

int nt_sql_rows(MYSQL *m, const char *sql, const erpq_param *p, int np, nt_rows *rows, char *err,
                size_t errlen) {
  nt_stmt *s;
  if (rows)
    memset(rows, 0, sizeof *rows);
  int rc = nt_stmt_prepare(m, sql, &s, err, errlen);
  if (rc)
    return rc;
  rc = nt_stmt_rows(s, p, np, rows, err, errlen);
  nt_stmt_close(s);
  return rc;
}
