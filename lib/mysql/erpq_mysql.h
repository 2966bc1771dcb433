/*
 * erpq_mysql.h - MariaDB/MySQL access for job families: URL parsing, a
 * small thread-safe connection pool, and prepared-statement helpers.
 *
 * URL: mysql://user:pass@host[:port]/db[?socket=/path&connect_timeout=S
 *      &read_timeout=S&write_timeout=S]
 *   - user and password may be percent-encoded;
 *   - ?socket=/path (or host "localhost" with ?socket=) connects over a unix
 *     socket; host "localhost" without a socket uses the client's default
 *     socket, so prefer 127.0.0.1 for TCP;
 *   - timeouts default to connect 5 s, read 60 s, write 60 s.
 *
 * Every connection uses utf8mb4, time_zone '+00:00' and strict SQL mode.
 *
 * Pool: connections are made on demand up to max and kept idle for reuse;
 * erpq_mysql_acquire() blocks while all are in use. A connection idle for
 * more than a few seconds is pinged before it is handed out and replaced
 * if the server has closed it (wait_timeout, restart), so a lost idle
 * connection never fails a job. A connection that broke while in use must
 * be released with broken=1: it is closed, not reused.
 *
 * Errors: the helpers return 0 or a negative code; a server or client
 * error is returned as -(MySQL error number) (e.g. -1213 for a deadlock,
 * -2013 for a lost connection), with the message in err.
 *
 * Statements: every value goes through a prepared statement's bound
 * parameters (erpq_param); SQL text is never built from data.
 */
#ifndef ERPQ_MYSQL_H
#define ERPQ_MYSQL_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

typedef struct erpq_mysql_conf {
  char user[128];
  char pass[256];
  char host[256];
  char db[128];
  char socket[512];
  unsigned port;
  unsigned connect_timeout_s, read_timeout_s, write_timeout_s;
} erpq_mysql_conf;

int erpq_mysql_url_parse(const char *url, erpq_mysql_conf *c, char *err, size_t errlen);

/* A fresh connection (mysql_close() it). flags: extra client flags such as
 * CLIENT_MULTI_STATEMENTS. */
MYSQL *erpq_mysql_connect(const erpq_mysql_conf *c, unsigned long flags, char *err,
                          size_t errlen);

typedef struct erpq_mysql_pool erpq_mysql_pool;
int erpq_mysql_pool_new(erpq_mysql_pool **out, const erpq_mysql_conf *c, int max);
/* Returns a connection or NULL with err set (connecting failed). */
MYSQL *erpq_mysql_acquire(erpq_mysql_pool *p, char *err, size_t errlen);
void erpq_mysql_release(erpq_mysql_pool *p, MYSQL *m, int broken);
void erpq_mysql_pool_free(erpq_mysql_pool *p);

/* Client errors meaning the connection is gone (2006, 2013, 2055, ...). */
int erpq_mysql_lost(int code);
/* Deadlock (1213) or lock wait timeout (1205): retry the transaction. */
int erpq_mysql_retryable(int code);

typedef struct erpq_param {
  char type; /* 'i' int64, 's' string, 'n' NULL */
  int64_t i;
  const char *s;
} erpq_param;
#define ERPQ_PI(v) ((erpq_param){'i', (int64_t)(v), NULL})
#define ERPQ_PS(v) ((erpq_param){'s', 0, (v)})
#define ERPQ_PN ((erpq_param){'n', 0, NULL})

/* Runs fixed SQL text with no parameters (BEGIN, COMMIT, DDL). */
int erpq_mysql_exec(MYSQL *m, const char *sql, char *err, size_t errlen);

/* A prepared statement, for repeated executions. */
typedef struct erpq_stmt erpq_stmt;
int erpq_stmt_prepare(MYSQL *m, const char *sql, erpq_stmt **out, char *err, size_t errlen);
/* Executes with np parameters; *affected (may be NULL) gets the affected
 * rows, *insert_id (may be NULL) the last insert id. */
int erpq_stmt_exec(erpq_stmt *s, const erpq_param *p, int np, uint64_t *affected,
                   uint64_t *insert_id, char *err, size_t errlen);
/* Executes a SELECT whose ncols columns are all integers (or NULL) and
 * returns the rows as a malloc'ed nrows*ncols array (NULL cells are
 * INT64_MIN). */
int erpq_stmt_rows(erpq_stmt *s, const erpq_param *p, int np, int ncols, int64_t **rows,
                   size_t *nrows, char *err, size_t errlen);
void erpq_stmt_close(erpq_stmt *s);
/* Binds np parameters to a statement prepared elsewhere and executes it
 * (what erpq_stmt_exec does, for code that keeps its own MYSQL_STMT).
 * Returns 0 or a negative code with the server's message in err. */
int erpq_mysql_stmt_run(MYSQL_STMT *st, const erpq_param *p, int np, char *err, size_t errlen);

/* One-shot forms of the above (prepare, run, close). */
int erpq_mysql_run(MYSQL *m, const char *sql, const erpq_param *p, int np, uint64_t *affected,
                   uint64_t *insert_id, char *err, size_t errlen);
int erpq_mysql_rows(MYSQL *m, const char *sql, const erpq_param *p, int np, int ncols,
                    int64_t **rows, size_t *nrows, char *err, size_t errlen);
/* The first column of the first row (*found = 0 when there is no row). */
int erpq_mysql_i64(MYSQL *m, const char *sql, const erpq_param *p, int np, int64_t *out,
                   int *found, char *err, size_t errlen);

#endif
