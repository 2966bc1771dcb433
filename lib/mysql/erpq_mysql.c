#include "erpq_mysql.h"

#include <errno.h>
#include <errmsg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"

#define IDLE_PING_S 5

/* ---- URL ------------------------------------------------------------------- */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Copies [s, s+n) percent-decoded into out; -1 on a bad escape or overflow. */
static int pct_copy(char *out, size_t outlen, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int ch = (unsigned char)s[i];
    if (ch == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0) return -1;
      ch = h * 16 + l;
      i += 2;
    }
    if (o + 1 >= outlen) return -1;
    out[o++] = (char)ch;
  }
  out[o] = '\0';
  return 0;
}

static int parse_uint(const char *s, size_t n, unsigned max, unsigned *out) {
  if (n == 0 || n > 9) return -1;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > max) return -1;
  *out = v;
  return 0;
}

int erpq_mysql_url_parse(const char *url, erpq_mysql_conf *c, char *err, size_t errlen) {
  memset(c, 0, sizeof *c);
  c->port = 3306;
  c->connect_timeout_s = 5;
  c->read_timeout_s = 60;
  c->write_timeout_s = 60;
  if (!url || strncmp(url, "mysql://", 8))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "MySQL URL must start with mysql://");
  const char *p = url + 8;
  const char *q = strchr(p, '?');
  const char *end = q ? q : p + strlen(p);
  const char *slash = memchr(p, '/', (size_t)(end - p));
  if (!slash) return erpq_fail(err, errlen, ERPQ_E_ARG, "MySQL URL needs a database: mysql://user:pass@host:port/db");
  const char *at = NULL;
  for (const char *s = p; s < slash; s++)
    if (*s == '@') at = s;
  const char *hp = p;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *ue = colon ? colon : at;
    if (pct_copy(c->user, sizeof c->user, p, (size_t)(ue - p)) ||
        (colon && pct_copy(c->pass, sizeof c->pass, colon + 1, (size_t)(at - colon - 1))))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "bad user or password in MySQL URL");
    hp = at + 1;
  }
  const char *hend = slash;
  const char *pc = NULL;
  if (*hp == '[') {
    const char *rb = memchr(hp, ']', (size_t)(hend - hp));
    if (!rb) return erpq_fail(err, errlen, ERPQ_E_ARG, "bad IPv6 host in MySQL URL");
    if ((size_t)(rb - hp - 1) >= sizeof c->host) return erpq_fail(err, errlen, ERPQ_E_ARG, "host too long");
    memcpy(c->host, hp + 1, (size_t)(rb - hp - 1));
    if (rb + 1 < hend && rb[1] == ':') pc = rb + 1;
  } else {
    pc = memchr(hp, ':', (size_t)(hend - hp));
    const char *he = pc ? pc : hend;
    if ((size_t)(he - hp) >= sizeof c->host) return erpq_fail(err, errlen, ERPQ_E_ARG, "host too long in MySQL URL");
    memcpy(c->host, hp, (size_t)(he - hp));
  }
  if (pc && parse_uint(pc + 1, (size_t)(hend - pc - 1), 65535, &c->port))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "bad port in MySQL URL");
  if (!c->port) return erpq_fail(err, errlen, ERPQ_E_ARG, "bad port in MySQL URL");
  if (pct_copy(c->db, sizeof c->db, slash + 1, (size_t)(end - slash - 1)) || !c->db[0] ||
      strchr(c->db, '/'))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "bad database name in MySQL URL");
  if (q) {
    const char *s = q + 1;
    while (*s) {
      const char *amp = strchr(s, '&');
      size_t n = amp ? (size_t)(amp - s) : strlen(s);
      const char *eq = memchr(s, '=', n);
      if (!eq) return erpq_fail(err, errlen, ERPQ_E_ARG, "bad query parameter in MySQL URL");
      size_t kn = (size_t)(eq - s), vn = n - kn - 1;
      const char *v = eq + 1;
      int bad = 0;
      if (kn == 6 && !memcmp(s, "socket", 6)) bad = pct_copy(c->socket, sizeof c->socket, v, vn) || !c->socket[0];
      else if (kn == 15 && !memcmp(s, "connect_timeout", 15)) bad = parse_uint(v, vn, 3600, &c->connect_timeout_s);
      else if (kn == 12 && !memcmp(s, "read_timeout", 12)) bad = parse_uint(v, vn, 86400, &c->read_timeout_s);
      else if (kn == 13 && !memcmp(s, "write_timeout", 13)) bad = parse_uint(v, vn, 86400, &c->write_timeout_s);
      else return erpq_fail(err, errlen, ERPQ_E_ARG, "unknown MySQL URL parameter '%.*s' (socket, connect_timeout, read_timeout, write_timeout)", (int)kn, s);
      if (bad) return erpq_fail(err, errlen, ERPQ_E_ARG, "bad value for '%.*s' in MySQL URL", (int)kn, s);
      s += n;
      if (*s == '&') s++;
    }
  }
  if (!c->host[0] && !c->socket[0]) return erpq_fail(err, errlen, ERPQ_E_ARG, "MySQL URL needs a host or ?socket=");
  if (!c->host[0]) snprintf(c->host, sizeof c->host, "localhost");
  return 0;
}

/* ---- Connections ------------------------------------------------------------ */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mysql_library_init(0, NULL, NULL); }

static int my_err(MYSQL *m, char *err, size_t errlen, const char *what) {
  unsigned e = mysql_errno(m);
  return erpq_fail(err, errlen, e ? -(int)e : -EIO, "%s: %s", what, e ? mysql_error(m) : "unknown error");
}

MYSQL *erpq_mysql_connect(const erpq_mysql_conf *c, unsigned long flags, char *err, size_t errlen) {
  pthread_once(&lib_once, lib_init);
  MYSQL *m = mysql_init(NULL);
  if (!m) {
    erpq_fail(err, errlen, -ENOMEM, "mysql_init failed");
    return NULL;
  }
  my_bool off = 0;
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &c->connect_timeout_s);
  mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &c->read_timeout_s);
  mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &c->write_timeout_s);
  mysql_options(m, MYSQL_OPT_RECONNECT, &off); /* we replace lost connections ourselves */
  mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  mysql_options(m, MYSQL_INIT_COMMAND,
                "SET time_zone='+00:00', sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,"
                "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'");
  const char *sock = c->socket[0] ? c->socket : NULL;
  const char *host = sock ? "localhost" : c->host;
  if (!mysql_real_connect(m, host, c->user, c->pass[0] ? c->pass : NULL, c->db, sock ? 0 : c->port,
                          sock, flags)) {
    my_err(m, err, errlen, "cannot connect to MySQL");
    mysql_close(m);
    return NULL;
  }
  return m;
}

typedef struct idle_conn {
  MYSQL *m;
  time_t since;
} idle_conn;

struct erpq_mysql_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  erpq_mysql_conf conf;
  int max, open;
  idle_conn *idle;
  int nidle;
};

int erpq_mysql_pool_new(erpq_mysql_pool **out, const erpq_mysql_conf *c, int max) {
  pthread_once(&lib_once, lib_init);
  erpq_mysql_pool *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  if (max < 1) max = 1;
  p->idle = calloc((size_t)max, sizeof *p->idle);
  if (!p->idle) {
    free(p);
    return -ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->conf = *c;
  p->max = max;
  *out = p;
  return 0;
}

MYSQL *erpq_mysql_acquire(erpq_mysql_pool *p, char *err, size_t errlen) {
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (!p->nidle && p->open >= p->max) pthread_cond_wait(&p->cv, &p->mu);
    if (p->nidle) {
      idle_conn ic = p->idle[--p->nidle];
      pthread_mutex_unlock(&p->mu);
      if (time(NULL) - ic.since < IDLE_PING_S || mysql_ping(ic.m) == 0) return ic.m;
      mysql_close(ic.m); /* closed by the server meanwhile: replace it */
      pthread_mutex_lock(&p->mu);
      p->open--;
      pthread_mutex_unlock(&p->mu);
      continue;
    }
    p->open++;
    pthread_mutex_unlock(&p->mu);
    MYSQL *m = erpq_mysql_connect(&p->conf, 0, err, errlen);
    if (!m) {
      pthread_mutex_lock(&p->mu);
      p->open--;
      pthread_cond_signal(&p->cv);
      pthread_mutex_unlock(&p->mu);
    }
    return m;
  }
}

void erpq_mysql_release(erpq_mysql_pool *p, MYSQL *m, int broken) {
  if (!m) return;
  pthread_mutex_lock(&p->mu);
  if (broken || p->nidle >= p->max) {
    p->open--;
    pthread_mutex_unlock(&p->mu);
    mysql_close(m);
    pthread_mutex_lock(&p->mu);
  } else {
    p->idle[p->nidle].m = m;
    p->idle[p->nidle].since = time(NULL);
    p->nidle++;
  }
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void erpq_mysql_pool_free(erpq_mysql_pool *p) {
  if (!p) return;
  for (int i = 0; i < p->nidle; i++) mysql_close(p->idle[i].m);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->idle);
  free(p);
}

int erpq_mysql_lost(int code) {
  if (code < 0) code = -code;
  return code == CR_SERVER_GONE_ERROR || code == CR_SERVER_LOST || code == 2055 ||
         code == CR_CONNECTION_ERROR || code == CR_CONN_HOST_ERROR || code == 1927 /* killed */ ||
         code == 1053 /* shutdown */;
}

int erpq_mysql_retryable(int code) {
  if (code < 0) code = -code;
  return code == 1213 || code == 1205;
}

int erpq_mysql_exec(MYSQL *m, const char *sql, char *err, size_t errlen) {
  if (mysql_real_query(m, sql, strlen(sql))) return my_err(m, err, errlen, sql);
  MYSQL_RES *r = mysql_store_result(m);
  if (r) mysql_free_result(r);
  return 0;
}

/* ---- Prepared statements ----------------------------------------------------- */

struct erpq_stmt {
  MYSQL_STMT *st;
  const char *sql;
};

static int st_err(MYSQL_STMT *st, char *err, size_t errlen, const char *what) {
  unsigned e = mysql_stmt_errno(st);
  return erpq_fail(err, errlen, e ? -(int)e : -EIO, "%s: %s", what, e ? mysql_stmt_error(st) : "unknown error");
}

int erpq_stmt_prepare(MYSQL *m, const char *sql, erpq_stmt **out, char *err, size_t errlen) {
  *out = NULL;
  erpq_stmt *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->st = mysql_stmt_init(m);
  if (!s->st) {
    free(s);
    return my_err(m, err, errlen, "mysql_stmt_init");
  }
  s->sql = sql;
  if (mysql_stmt_prepare(s->st, sql, strlen(sql))) {
    int rc = st_err(s->st, err, errlen, "prepare");
    mysql_stmt_close(s->st);
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void erpq_stmt_close(erpq_stmt *s) {
  if (!s) return;
  mysql_stmt_close(s->st);
  free(s);
}

int erpq_mysql_stmt_run(MYSQL_STMT *st, const erpq_param *p, int np, char *err, size_t errlen) {
  /* Bind and execute in one go: libmariadb reads the bind buffers and the
   * length array at execute time, so they live until then. */
  if ((unsigned long)np != mysql_stmt_param_count(st))
    return erpq_fail(err, errlen, -EINVAL, "statement wants %lu parameters, got %d",
                     mysql_stmt_param_count(st), np);
  MYSQL_BIND *b = np ? calloc((size_t)np, sizeof *b) : NULL;
  unsigned long *lens = np ? calloc((size_t)np, sizeof *lens) : NULL;
  if (np && (!b || !lens)) {
    free(b);
    free(lens);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  for (int i = 0; i < np; i++) {
    switch (p[i].type) {
    case 'i':
      b[i].buffer_type = MYSQL_TYPE_LONGLONG;
      b[i].buffer = (void *)&p[i].i;
      break;
    case 's':
      b[i].buffer_type = MYSQL_TYPE_STRING;
      b[i].buffer = (void *)p[i].s;
      lens[i] = strlen(p[i].s);
      b[i].buffer_length = lens[i];
      b[i].length = &lens[i];
      break;
    default: b[i].buffer_type = MYSQL_TYPE_NULL; break;
    }
  }
  int rc = 0;
  if (np && mysql_stmt_bind_param(st, b)) rc = st_err(st, err, errlen, "bind");
  if (!rc && mysql_stmt_execute(st)) rc = st_err(st, err, errlen, "execute");
  free(b);
  free(lens);
  return rc;
}

int erpq_stmt_exec(erpq_stmt *s, const erpq_param *p, int np, uint64_t *affected,
                   uint64_t *insert_id, char *err, size_t errlen) {
  int rc = erpq_mysql_stmt_run(s->st, p, np, err, errlen);
  if (!rc) {
    if (affected) *affected = mysql_stmt_affected_rows(s->st);
    if (insert_id) *insert_id = mysql_stmt_insert_id(s->st);
  }
  return rc;
}

int erpq_stmt_rows(erpq_stmt *s, const erpq_param *p, int np, int ncols, int64_t **rows,
                   size_t *nrows, char *err, size_t errlen) {
  *rows = NULL;
  *nrows = 0;
  int rc = erpq_stmt_exec(s, p, np, NULL, NULL, err, errlen);
  if (rc) return rc;
  if ((int)mysql_stmt_field_count(s->st) != ncols) {
    mysql_stmt_free_result(s->st);
    return erpq_fail(err, errlen, -EINVAL, "query returns %u columns, expected %d",
                     mysql_stmt_field_count(s->st), ncols);
  }
  MYSQL_BIND *b = calloc((size_t)ncols, sizeof *b);
  int64_t *vals = calloc((size_t)ncols, sizeof *vals);
  my_bool *nulls = calloc((size_t)ncols, sizeof *nulls);
  size_t cap = 64, n = 0;
  int64_t *out = malloc(cap * (size_t)ncols * sizeof *out);
  if (!b || !vals || !nulls || !out) {
    rc = -ENOMEM;
    goto done;
  }
  for (int i = 0; i < ncols; i++) {
    b[i].buffer_type = MYSQL_TYPE_LONGLONG;
    b[i].buffer = &vals[i];
    b[i].is_null = &nulls[i];
  }
  if (mysql_stmt_bind_result(s->st, b)) {
    rc = st_err(s->st, err, errlen, "bind result");
    goto done;
  }
  for (;;) {
    int f = mysql_stmt_fetch(s->st);
    if (f == MYSQL_NO_DATA) break;
    if (f == 1) {
      rc = st_err(s->st, err, errlen, "fetch");
      goto done;
    }
    if (n == cap) {
      cap *= 2;
      int64_t *nb = realloc(out, cap * (size_t)ncols * sizeof *out);
      if (!nb) {
        rc = -ENOMEM;
        goto done;
      }
      out = nb;
    }
    for (int i = 0; i < ncols; i++) out[n * (size_t)ncols + (size_t)i] = nulls[i] ? INT64_MIN : vals[i];
    n++;
  }
done:
  mysql_stmt_free_result(s->st);
  free(b);
  free(vals);
  free(nulls);
  if (rc) {
    free(out);
    return rc;
  }
  *rows = out;
  *nrows = n;
  return 0;
}

int erpq_mysql_run(MYSQL *m, const char *sql, const erpq_param *p, int np, uint64_t *affected,
                   uint64_t *insert_id, char *err, size_t errlen) {
  erpq_stmt *s = NULL;
  int rc = erpq_stmt_prepare(m, sql, &s, err, errlen);
  if (rc) return rc;
  rc = erpq_stmt_exec(s, p, np, affected, insert_id, err, errlen);
  erpq_stmt_close(s);
  return rc;
}

int erpq_mysql_rows(MYSQL *m, const char *sql, const erpq_param *p, int np, int ncols,
                    int64_t **rows, size_t *nrows, char *err, size_t errlen) {
  erpq_stmt *s = NULL;
  int rc = erpq_stmt_prepare(m, sql, &s, err, errlen);
  if (rc) return rc;
  rc = erpq_stmt_rows(s, p, np, ncols, rows, nrows, err, errlen);
  erpq_stmt_close(s);
  return rc;
}

int erpq_mysql_i64(MYSQL *m, const char *sql, const erpq_param *p, int np, int64_t *out,
                   int *found, char *err, size_t errlen) {
  int64_t *rows;
  size_t n;
  int rc = erpq_mysql_rows(m, sql, p, np, 1, &rows, &n, err, errlen);
  if (rc) return rc;
  *found = n > 0;
  *out = n ? rows[0] : 0;
  free(rows);
  return 0;
}
