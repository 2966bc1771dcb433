/* erpq_mysql_stream.c - unbuffered result reading (see erpq_mysql_stream.h). */
#include "erpq_mysql_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "erpq_err.h"

/* A batch of rows copied by the read-ahead thread: n rows of ncols cells,
 * each cell's text at off[] in one arena (NO_CELL for SQL NULL), NUL-
 * terminated, and its length. */
#define NO_CELL SIZE_MAX
typedef struct pf_batch {
  size_t n;
  size_t *off;
  unsigned long *len;
  char *arena;
  size_t used, cap;
  int full; /* Handed to the consumer (or being served). */
} pf_batch;

typedef struct pf {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pf_batch *b;
  unsigned nb, rows_per;
  unsigned fill, serve; /* Next batch the reader fills / the consumer serves. */
  size_t pos;           /* Next row of b[serve]. */
  int done;             /* The reader stopped: 1 end of result, 2 failed. */
  int quit;             /* The consumer closes. */
  int err_code;
  char err[256];
} pf;

struct erpq_mysql_stream {
  MYSQL *m;
  MYSQL_RES *res;
  unsigned ncols;
  uint64_t rows;
  int state;   /* 0 open, 1 end, 2 failed */
  pf *pf;      /* Read-ahead, or NULL. */
  char **rowv; /* Read-ahead: the row handed out (ncols pointers). */
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
    return erpq_fail(err, errlen, -EINVAL, "at most %d stream parameters", ERPQ_STREAM_MAX_PARAMS);
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

static int pf_next(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen);

int erpq_mysql_stream_next(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen) {
  if (s->pf)
    return pf_next(s, row, err, errlen);
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

static void pf_stop(erpq_mysql_stream *s);

int erpq_mysql_stream_close(erpq_mysql_stream *s) {
  if (!s)
    return 1;
  if (s->pf)
    pf_stop(s); /* Sets s->state from how the reader ended. */
  int usable = s->state == 1;
  if (!usable) {
    /* mysql_free_result() on an unfinished unbuffered result reads every
     * remaining row first: cut the socket so that it cannot. */
    cut_socket(s->m);
  }
  mysql_free_result(s->res);
  free(s->rowv);
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

/* ---- read-ahead --------------------------------------------------------------- */

static int pf_copy(pf_batch *b, unsigned ncols, MYSQL_ROW r, const unsigned long *len) {
  size_t need = 0;
  for (unsigned i = 0; i < ncols; i++)
    need += r[i] ? len[i] + 1 : 0;
  if (b->used + need > b->cap) {
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->used + need)
      cap *= 2;
    char *a = realloc(b->arena, cap);
    if (!a)
      return -ENOMEM;
    b->arena = a;
    b->cap = cap;
  }
  size_t *o = b->off + b->n * ncols;
  unsigned long *l = b->len + b->n * ncols;
  for (unsigned i = 0; i < ncols; i++) {
    l[i] = r[i] ? len[i] : 0;
    if (!r[i]) {
      o[i] = NO_CELL;
      continue;
    }
    o[i] = b->used;
    memcpy(b->arena + b->used, r[i], len[i]);
    b->arena[b->used + len[i]] = '\0';
    b->used += len[i] + 1;
  }
  b->n++;
  return 0;
}

static void *pf_reader(void *arg) {
  erpq_mysql_stream *s = arg;
  pf *p = s->pf;
  mysql_thread_init();
  int done = 0, code = 0;
  char msg[256] = "";
  while (!done) {
    pthread_mutex_lock(&p->mu);
    while (!p->quit && p->b[p->fill].full)
      pthread_cond_wait(&p->cv, &p->mu);
    int quit = p->quit;
    pthread_mutex_unlock(&p->mu);
    if (quit)
      break;
    pf_batch *b = &p->b[p->fill];
    b->n = 0;
    b->used = 0;
    while (b->n < p->rows_per) {
      MYSQL_ROW r = mysql_fetch_row(s->res);
      if (!r) {
        if (mysql_errno(s->m)) {
          done = 2;
          code = -(int)mysql_errno(s->m);
          snprintf(msg, sizeof msg, "reading rows: %s", mysql_error(s->m));
        } else {
          done = 1;
        }
        break;
      }
      unsigned long *len = mysql_fetch_lengths(s->res);
      int rc = len ? pf_copy(b, s->ncols, r, len) : -EIO;
      if (rc) {
        done = 2;
        code = rc;
        snprintf(msg, sizeof msg, "reading rows: %s",
                 rc == -ENOMEM ? "out of memory" : "no lengths");
        break;
      }
    }
    pthread_mutex_lock(&p->mu);
    b->full = 1;
    p->fill = (p->fill + 1) % p->nb;
    if (done) {
      p->done = done;
      p->err_code = code;
      snprintf(p->err, sizeof p->err, "%s", msg);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  mysql_thread_end();
  return NULL;
}

static void pf_free(pf *p) {
  for (unsigned i = 0; p->b && i < p->nb; i++) {
    free(p->b[i].off);
    free(p->b[i].len);
    free(p->b[i].arena);
  }
  free(p->b);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int erpq_mysql_stream_prefetch(erpq_mysql_stream *s, unsigned rows_per_batch, unsigned batches,
                               char *err, size_t errlen) {
  if (s->pf || s->rows || s->state)
    return erpq_fail(err, errlen, -EINVAL, "read-ahead must start before the first row");
  if (rows_per_batch < 1 || rows_per_batch > 65536 || batches < 2 || batches > 64)
    return erpq_fail(err, errlen, -EINVAL, "read-ahead: 1-65536 rows per batch, 2-64 batches");
  pf *p = calloc(1, sizeof *p);
  if (!p)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->nb = batches;
  p->rows_per = rows_per_batch;
  p->b = calloc(batches, sizeof *p->b);
  int ok = p->b != NULL;
  size_t cells = (size_t)rows_per_batch * (s->ncols ? s->ncols : 1);
  for (unsigned i = 0; ok && i < batches; i++) {
    p->b[i].off = calloc(cells, sizeof *p->b[i].off);
    p->b[i].len = calloc(cells, sizeof *p->b[i].len);
    ok = p->b[i].off && p->b[i].len;
  }
  s->rowv = ok ? calloc(s->ncols ? s->ncols : 1, sizeof *s->rowv) : NULL;
  if (!s->rowv) {
    pf_free(p);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  s->pf = p;
  if (pthread_create(&p->thread, NULL, pf_reader, s)) {
    s->pf = NULL;
    pf_free(p);
    free(s->rowv);
    s->rowv = NULL;
    return erpq_fail(err, errlen, -EAGAIN, "cannot start the read-ahead thread");
  }
  return 0;
}

static int pf_next(erpq_mysql_stream *s, erpq_mysql_row *row, char *err, size_t errlen) {
  pf *p = s->pf;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    pf_batch *b = &p->b[p->serve];
    if (b->full && p->pos < b->n) {
      const size_t *o = b->off + p->pos * s->ncols;
      for (unsigned i = 0; i < s->ncols; i++)
        s->rowv[i] = o[i] == NO_CELL ? NULL : b->arena + o[i];
      row->n = s->ncols;
      row->v = s->rowv;
      row->len = b->len + p->pos * s->ncols;
      p->pos++;
      s->rows++;
      pthread_mutex_unlock(&p->mu);
      return 1;
    }
    if (b->full) { /* Served: hand it back to the reader. */
      b->full = 0;
      p->pos = 0;
      p->serve = (p->serve + 1) % p->nb;
      pthread_cond_broadcast(&p->cv);
      continue;
    }
    if (p->done) { /* Nothing more will come. */
      int done = p->done, code = p->err_code;
      pthread_mutex_unlock(&p->mu);
      if (done == 1)
        return 0;
      return erpq_fail(err, errlen, code ? code : -EIO, "%s", p->err);
    }
    pthread_cond_wait(&p->cv, &p->mu);
  }
}

static void pf_stop(erpq_mysql_stream *s) {
  pf *p = s->pf;
  pthread_mutex_lock(&p->mu);
  int running = !p->done;
  p->quit = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (running)
    cut_socket(s->m); /* A reader inside mysql_fetch_row() returns at once. */
  pthread_join(p->thread, NULL);
  s->state = p->done == 1 ? 1 : 2;
  s->pf = NULL;
  pf_free(p);
}
