/* erpq_mysql_stream.c - unbuffered result reading (see erpq_mysql_stream.h). */
#include "erpq_mysql_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "erpq_err.h"

struct erpq_mysql_stream {
  MYSQL *m;
  MYSQL_RES *res;
  unsigned ncols;
  uint64_t rows;
  int state; /* 0 open, 1 end, 2 failed */
};

static int my_err(MYSQL *m, char *err, size_t errlen, const char *what) {
  unsigned e = mysql_errno(m);
  return erpq_fail(err, errlen, e ? -(int)e : -EIO, "%s: %s", what,
                   e ? mysql_error(m) : "unknown error");
}

/* Makes m's socket end the result now: reads see end-of-file once what is
 * already buffered locally is consumed (so mysql_free_result() cannot read
 * the rest of a big result), and the close that follows resets the
 * connection (SO_LINGER 0) instead of a polite FIN. A FIN is not enough:
 * the server, blocked writing rows into a full window, may wait for its
 * whole net_write_timeout before it notices; a reset fails its write at
 * once, and it stops the query. */
static void cut_socket(MYSQL *m) {
  int fd = (int)mysql_get_socket(m);
  if (fd < 0)
    return;
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  (void)shutdown(fd, SHUT_RD);
}

int erpq_mysql_stream_session(MYSQL *m, unsigned net_write_timeout_s, int snapshot, char *err,
                              size_t errlen) {
  if (net_write_timeout_s < 1 || net_write_timeout_s > 86400)
    return erpq_fail(err, errlen, -EINVAL, "net_write_timeout must be 1 to 86400 seconds");
  int rc = erpq_mysql_exec(m, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", err, errlen);
  erpq_param p[] = {ERPQ_PI(net_write_timeout_s)};
  if (!rc)
    rc = erpq_mysql_run(m, "SET SESSION net_write_timeout = ?", p, 1, NULL, NULL, err, errlen);
  if (!rc && snapshot)
    rc = erpq_mysql_exec(m, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", err, errlen);
  return rc;
}

int erpq_mysql_set_vars(MYSQL *m, const erpq_param *p, int np, char *err, size_t errlen) {
  if (np < 0 || np > ERPQ_STREAM_MAX_PARAMS)
    return erpq_fail(err, errlen, -EINVAL, "at most %d stream parameters",
                     ERPQ_STREAM_MAX_PARAMS);
  if (np == 0)
    return 0;
  /* The text depends on np only: "SET @erpq_1 = ?, @erpq_2 = ?". */
  char sql[32 + ERPQ_STREAM_MAX_PARAMS * 20];
  size_t o = (size_t)snprintf(sql, sizeof sql, "SET");
  for (int i = 0; i < np; i++)
    o += (size_t)snprintf(sql + o, sizeof sql - o, "%s @erpq_%d = ?", i ? "," : "", i + 1);
  return erpq_mysql_run(m, sql, p, np, NULL, NULL, err, errlen);
}

int erpq_mysql_stream_open(MYSQL *m, const char *sql, const erpq_param *p, int np,
                           erpq_mysql_stream **out, char *err, size_t errlen) {
  *out = NULL;
  int rc = erpq_mysql_set_vars(m, p, np, err, errlen);
  if (rc)
    return rc;
  if (mysql_real_query(m, sql, strlen(sql)))
    return my_err(m, err, errlen, "query");
  MYSQL_RES *res = mysql_use_result(m);
  if (!res) {
    if (mysql_errno(m))
      return my_err(m, err, errlen, "query");
    return erpq_fail(err, errlen, -EINVAL, "the statement returned no rows to stream");
  }
  erpq_mysql_stream *s = calloc(1, sizeof *s);
  if (!s) {
    /* Cannot keep the result: cut it rather than read it to the end. */
    cut_socket(m);
    mysql_free_result(res);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  s->m = m;
  s->res = res;
  s->ncols = mysql_num_fields(res);
  *out = s;
  return 0;
}

unsigned erpq_mysql_stream_ncols(const erpq_mysql_stream *s) { return s->ncols; }

uint64_t erpq_mysql_stream_rows(const erpq_mysql_stream *s) { return s->rows; }

int erpq_mysql_stream_next(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen) {
  if (s->state == 1)
    return 0;
  if (s->state == 2)
    return erpq_fail(err, errlen, -EIO, "the result stream has failed");
  MYSQL_ROW r = mysql_fetch_row(s->res);
  if (!r) {
    if (mysql_errno(s->m)) {
      s->state = 2;
      return my_err(s->m, err, errlen, "reading rows");
    }
    s->state = 1;
    return 0;
  }
  unsigned long *len = mysql_fetch_lengths(s->res);
  if (!len) {
    s->state = 2;
    return erpq_fail(err, errlen, -EIO, "reading rows: no column lengths");
  }
  row->n = s->ncols;
  row->v = r;
  row->len = len;
  s->rows++;
  return 1;
}

int erpq_mysql_stream_close(erpq_mysql_stream *s) {
  if (!s)
    return 1;
  int usable = s->state == 1;
  if (!usable) {
    /* mysql_free_result() on an unfinished unbuffered result reads every
     * remaining row first: cut the socket so that it cannot. */
    cut_socket(s->m);
  }
  mysql_free_result(s->res);
  free(s);
  return usable;
}

int erpq_mysql_parse_i64(const char *s, unsigned long len, int64_t *out) {
  if (!s || !len)
    return -EINVAL;
  int neg = s[0] == '-';
  unsigned long i = (unsigned long)neg;
  if (i == len)
    return -EINVAL;
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)s[i] - '0';
    if (d > 9)
      return -EINVAL;
    if (v > (lim - d) / 10)
      return -EINVAL;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}
