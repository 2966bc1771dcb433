/*
 * test_mysql_stream.c - unbuffered streaming reads against the test
 * MariaDB (ERPQ_TEST_MYSQL_URL; fails, never skips, without it): values
 * and NULLs through user-variable parameters, flat memory over a million
 * wide rows, closing mid-way without reading the rest, a connection
 * KILLed from another session mid-stream, and the server giving up on a
 * client that stops reading (net_write_timeout). Each test works in its
 * own database erp_ms<pid>_<random>, dropped afterwards. Rows come from
 * MariaDB's SEQUENCE engine (seq_1_to_N).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_mysql.h"
#include "erpq_mysql_stream.h"

static erpq_mysql_conf g_conf;
static char g_db[64];
static MYSQL *g_admin;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
  const char *url = getenv("ERPQ_TEST_MYSQL_URL");
  cr_assert(url && *url, "ERPQ_TEST_MYSQL_URL is not set: run the suite through scripts/test");
  char err[512];
  cr_assert_eq(erpq_mysql_url_parse(url, &g_conf, err, sizeof err), 0, "%s", err);
  srand((unsigned)(getpid() ^ now_ms()));
  snprintf(g_db, sizeof g_db, "erp_ms%d_%06x", (int)getpid(), rand() & 0xffffff);
  g_admin = erpq_mysql_connect(&g_conf, 0, err, sizeof err);
  cr_assert(g_admin, "%s", err);
  char sql[200];
  snprintf(sql, sizeof sql, "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
           g_db);
  cr_assert_eq(erpq_mysql_exec(g_admin, sql, err, sizeof err), 0, "%s", err);
  snprintf(g_conf.db, sizeof g_conf.db, "%s", g_db);
  mysql_close(g_admin);
  g_admin = erpq_mysql_connect(&g_conf, 0, err, sizeof err);
  cr_assert(g_admin, "%s", err);
}

static void teardown(void) {
  if (!g_admin)
    return;
  char sql[128], err[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`", g_db);
  erpq_mysql_exec(g_admin, sql, err, sizeof err);
  mysql_close(g_admin);
  g_admin = NULL;
}

static MYSQL *conn(void) {
  char err[512];
  MYSQL *m = erpq_mysql_connect(&g_conf, 0, err, sizeof err);
  cr_assert(m, "%s", err);
  return m;
}

/* Peak resident set (VmHWM) of this process in KiB. */
static long vm_hwm_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert(f);
  char line[256];
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6))
      v = atol(line + 6);
  fclose(f);
  return v;
}

/* Whether thread id still runs a statement on the server. */
static int server_busy(unsigned long id) {
  char err[256];
  int64_t n = 0;
  int found = 0;
  erpq_param p[] = {ERPQ_PI(id)};
  cr_assert_eq(erpq_mysql_i64(g_admin,
                              "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                              " WHERE ID = ? AND COMMAND = 'Query'",
                              p, 1, &n, &found, err, sizeof err),
               0, "%s", err);
  return n > 0;
}

TestSuite(mysql_stream, .init = setup, .fini = teardown, .timeout = 120);

Test(mysql_stream, values_nulls_and_parameters) {
  MYSQL *m = conn();
  char err[512];
  cr_assert_eq(
      erpq_mysql_exec(m,
                      "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50), v BIGINT NULL)"
                      " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
                      err, sizeof err),
      0, "%s", err);
  cr_assert_eq(erpq_mysql_exec(m,
                               "INSERT INTO t VALUES (1,'Zoë',-9223372036854775808),"
                               "(2,'Дмитрий',NULL),(3,'李明',42),(4,'=1+1',9223372036854775807)",
                               err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_session(m, 30, 1, err, sizeof err), 0, "%s", err);
  /* A string variable compared with a utf8mb4_unicode_ci column: no
   * "illegal mix of collations", and a case-insensitive match as the
   * column's collation says. */
  erpq_param p[] = {ERPQ_PI(1), ERPQ_PS("дмитрий"), ERPQ_PN};
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m,
                                      "SELECT id, name, v, @erpq_3 IS NULL FROM t"
                                      " WHERE id >= @erpq_1 OR name = @erpq_2 ORDER BY id",
                                      p, 3, &s, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_ncols(s), 4);
  erpq_mysql_row r;
  const char *names[] = {"Zoë", "Дмитрий", "李明", "=1+1"};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
    cr_assert_eq(r.n, 4);
    cr_assert_str_eq(r.v[1], names[i]);
    cr_assert_eq(r.len[1], strlen(names[i]));
    cr_assert_str_eq(r.v[3], "1");
    int64_t v;
    if (i == 1) {
      cr_assert_null(r.v[2]);
      cr_assert_eq(erpq_mysql_parse_i64(r.v[2], r.len[2], &v), -EINVAL);
    } else {
      cr_assert_eq(erpq_mysql_parse_i64(r.v[2], r.len[2], &v), 0);
      cr_assert_eq(v, i == 0 ? INT64_MIN : i == 2 ? 42 : INT64_MAX);
    }
  }
  cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 0);
  cr_assert_eq(erpq_mysql_stream_rows(s), 4);
  cr_assert_eq(erpq_mysql_stream_close(s), 1, "read to the end: the connection is usable");
  /* Usable indeed: the same variables serve another statement. */
  int64_t n = 0;
  int found = 0;
  cr_assert_eq(erpq_mysql_i64(m, "SELECT COUNT(*) FROM t WHERE id >= @erpq_1", NULL, 0, &n, &found,
                              err, sizeof err),
               0, "%s", err);
  cr_assert_eq(n, 4);
  mysql_close(m);
}

Test(mysql_stream, bad_arguments) {
  MYSQL *m = conn();
  char err[512];
  erpq_param p[ERPQ_STREAM_MAX_PARAMS + 1];
  for (int i = 0; i <= ERPQ_STREAM_MAX_PARAMS; i++)
    p[i] = ERPQ_PI(i);
  cr_assert_eq(erpq_mysql_set_vars(m, p, ERPQ_STREAM_MAX_PARAMS + 1, err, sizeof err), -EINVAL);
  cr_assert_eq(erpq_mysql_set_vars(m, p, ERPQ_STREAM_MAX_PARAMS, err, sizeof err), 0, "%s", err);
  erpq_mysql_stream *s = NULL;
  cr_assert_lt(erpq_mysql_stream_open(m, "SELECT nope FROM nowhere", NULL, 0, &s, err, sizeof err),
               0);
  cr_assert_null(s);
  cr_assert(strstr(err, "nowhere"), "%s", err);
  cr_assert_eq(erpq_mysql_stream_open(m, "DO 1", NULL, 0, &s, err, sizeof err), -EINVAL);
  cr_assert_eq(erpq_mysql_stream_session(m, 0, 0, err, sizeof err), -EINVAL);
  int64_t v;
  cr_assert_eq(erpq_mysql_parse_i64("9223372036854775808", 19, &v), -EINVAL);
  cr_assert_eq(erpq_mysql_parse_i64("-9223372036854775809", 20, &v), -EINVAL);
  cr_assert_eq(erpq_mysql_parse_i64("12a", 3, &v), -EINVAL);
  cr_assert_eq(erpq_mysql_parse_i64("-", 1, &v), -EINVAL);
  cr_assert_eq(erpq_mysql_parse_i64("007", 3, &v), 0);
  cr_assert_eq(v, 7);
  mysql_close(m);
}

/* A million rows of ~120 bytes (120 MB if held) stream in flat memory. */
Test(mysql_stream, million_rows_flat_memory) {
  MYSQL *m = conn();
  char err[512];
  cr_assert_eq(erpq_mysql_stream_session(m, 60, 0, err, sizeof err), 0, "%s", err);
  erpq_param p[] = {ERPQ_PI(100)};
  erpq_mysql_stream *s = NULL;
  long before = vm_hwm_kib();
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('x', @erpq_1) FROM seq_1_to_1000000",
                                      p, 1, &s, err, sizeof err),
               0, "%s", err);
  erpq_mysql_row r;
  int rc;
  int64_t sum = 0, v;
  uint64_t bytes = 0;
  while ((rc = erpq_mysql_stream_next(s, &r, err, sizeof err)) == 1) {
    cr_assert_eq(erpq_mysql_parse_i64(r.v[0], r.len[0], &v), 0);
    sum += v;
    bytes += r.len[1];
  }
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_rows(s), 1000000);
  cr_assert_eq(sum, (int64_t)1000000 * 1000001 / 2);
  cr_assert_eq(bytes, 100000000u);
  cr_assert_eq(erpq_mysql_stream_close(s), 1);
  long grew = vm_hwm_kib() - before;
  cr_assert_lt(grew, 8 * 1024, "peak RSS grew by %ld KiB while streaming 100 MB", grew);
  mysql_close(m);
}

/* Closing an unfinished stream does not read the rest (a huge result),
 * and the server stops the query. */
Test(mysql_stream, close_midway_cuts_the_query) {
  MYSQL *m = conn();
  char err[512];
  unsigned long id = mysql_thread_id(m);
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('y', 200) FROM seq_1_to_100000000",
                                      NULL, 0, &s, err, sizeof err),
               0, "%s", err);
  erpq_mysql_row r;
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
  cr_assert(server_busy(id));
  int64_t t0 = now_ms();
  cr_assert_eq(erpq_mysql_stream_close(s), 0, "cut: the connection is dead");
  cr_assert_lt(now_ms() - t0, 1000, "close read the remaining rows");
  mysql_close(m);
  int64_t end = now_ms() + 10000;
  while (server_busy(id) && now_ms() < end)
    usleep(50000);
  cr_assert_not(server_busy(id), "the server still runs the abandoned query");
}

/* KILL from another session mid-stream: next() fails with a lost-
 * connection error before the end, never a silent short result. */
Test(mysql_stream, killed_midway_fails) {
  MYSQL *m = conn();
  char err[512];
  unsigned long id = mysql_thread_id(m);
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('z', 200) FROM seq_1_to_5000000", NULL,
                                      0, &s, err, sizeof err),
               0, "%s", err);
  erpq_mysql_row r;
  for (int i = 0; i < 100; i++)
    cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
  erpq_param p[] = {ERPQ_PI(id)};
  cr_assert_eq(erpq_mysql_run(g_admin, "KILL ?", p, 1, NULL, NULL, err, sizeof err), 0, "%s", err);
  int rc;
  while ((rc = erpq_mysql_stream_next(s, &r, err, sizeof err)) == 1)
    ;
  cr_assert_lt(rc, 0, "a killed stream must fail, not end");
  cr_assert(erpq_mysql_lost(rc) || rc == -1317, "rc %d: %s", rc, err);
  cr_assert_lt(erpq_mysql_stream_rows(s), 5000000);
  cr_assert_eq(erpq_mysql_stream_close(s), 0);
  mysql_close(m);
}

/* A client that stops reading (a stalled upload) does not hold the result
 * open for ever: after net_write_timeout the server gives up, and the
 * client's next reads fail once the buffered rows are consumed. */
Test(mysql_stream, stalled_reader_is_dropped) {
  MYSQL *m = conn();
  char err[512];
  unsigned long id = mysql_thread_id(m);
  cr_assert_eq(erpq_mysql_stream_session(m, 2, 0, err, sizeof err), 0, "%s", err);
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('w', 1000) FROM seq_1_to_2000000",
                                      NULL, 0, &s, err, sizeof err),
               0, "%s", err);
  erpq_mysql_row r;
  cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
  int64_t end = now_ms() + 15000;
  while (server_busy(id) && now_ms() < end)
    usleep(100000);
  cr_assert_not(server_busy(id), "the server kept the query of a stalled reader");
  int rc;
  while ((rc = erpq_mysql_stream_next(s, &r, err, sizeof err)) == 1)
    ;
  cr_assert_lt(rc, 0, "rows after the server gave up: %s", err);
  cr_assert_lt(erpq_mysql_stream_rows(s), 2000000);
  cr_assert_eq(erpq_mysql_stream_close(s), 0);
  mysql_close(m);
}

/* ---- read-ahead ---------------------------------------------------------------- */

/* The same rows and values with read-ahead; NULLs stay NULL; memory stays
 * bounded over a million rows (small batches, so the arena is reused). */
Test(mysql_stream, prefetch_same_rows_flat_memory) {
  MYSQL *m = conn();
  char err[512];
  erpq_mysql_stream *s = NULL;
  long before = vm_hwm_kib();
  cr_assert_eq(erpq_mysql_stream_open(m,
                                      "SELECT seq, IF(MOD(seq, 7) = 0, NULL, REPEAT('x', 100))"
                                      " FROM seq_1_to_1000000",
                                      NULL, 0, &s, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_prefetch(s, 1000, 4, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_prefetch(s, 1000, 4, err, sizeof err), -EINVAL, "only once");
  erpq_mysql_row r;
  int rc;
  int64_t expect = 0, v;
  uint64_t nulls = 0;
  while ((rc = erpq_mysql_stream_next(s, &r, err, sizeof err)) == 1) {
    cr_assert_eq(erpq_mysql_parse_i64(r.v[0], r.len[0], &v), 0);
    cr_assert_eq(v, ++expect, "rows out of order");
    if (v % 7 == 0) {
      cr_assert_null(r.v[1]);
      nulls++;
    } else {
      cr_assert_eq(r.len[1], 100);
      cr_assert_eq(strlen(r.v[1]), 100);
    }
  }
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(expect, 1000000);
  cr_assert_eq(nulls, 142857);
  cr_assert_eq(erpq_mysql_stream_rows(s), 1000000);
  cr_assert_eq(erpq_mysql_stream_close(s), 1, "read to the end: usable");
  long grew = vm_hwm_kib() - before;
  cr_assert_lt(grew, 8 * 1024, "peak RSS grew by %ld KiB", grew);
  int64_t n = 0;
  int found = 0;
  cr_assert_eq(erpq_mysql_i64(m, "SELECT 41 + 1", NULL, 0, &n, &found, err, sizeof err), 0, "%s",
               err);
  cr_assert_eq(n, 42);
  mysql_close(m);
}

/* Closed mid-way with the reader waiting for room, or inside a read: it
 * stops at once, the query is cut on the server. */
Test(mysql_stream, prefetch_close_midway) {
  MYSQL *m = conn();
  char err[512];
  unsigned long id = mysql_thread_id(m);
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('y', 200) FROM seq_1_to_100000000",
                                      NULL, 0, &s, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_prefetch(s, 500, 3, err, sizeof err), 0, "%s", err);
  erpq_mysql_row r;
  for (int i = 0; i < 700; i++)
    cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
  usleep(200000); /* The reader fills its batches and waits. */
  int64_t t0 = now_ms();
  cr_assert_eq(erpq_mysql_stream_close(s), 0);
  cr_assert_lt(now_ms() - t0, 1000);
  mysql_close(m);
  int64_t end = now_ms() + 10000;
  while (server_busy(id) && now_ms() < end)
    usleep(50000);
  cr_assert_not(server_busy(id));
}

/* A KILL while the reader runs: the rows read before it, then the error. */
Test(mysql_stream, prefetch_killed_fails) {
  MYSQL *m = conn();
  char err[512];
  unsigned long id = mysql_thread_id(m);
  erpq_mysql_stream *s = NULL;
  cr_assert_eq(erpq_mysql_stream_open(m, "SELECT seq, REPEAT('z', 200) FROM seq_1_to_5000000", NULL,
                                      0, &s, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_mysql_stream_prefetch(s, 256, 4, err, sizeof err), 0, "%s", err);
  erpq_mysql_row r;
  for (int i = 0; i < 100; i++)
    cr_assert_eq(erpq_mysql_stream_next(s, &r, err, sizeof err), 1, "%s", err);
  erpq_param p[] = {ERPQ_PI(id)};
  cr_assert_eq(erpq_mysql_run(g_admin, "KILL ?", p, 1, NULL, NULL, err, sizeof err), 0, "%s", err);
  int rc;
  while ((rc = erpq_mysql_stream_next(s, &r, err, sizeof err)) == 1)
    ;
  cr_assert_lt(rc, 0, "a killed stream must fail, not end");
  cr_assert(strstr(err, "reading rows"), "%s", err);
  cr_assert_lt(erpq_mysql_stream_rows(s), 5000000);
  cr_assert_eq(erpq_mysql_stream_close(s), 0);
  mysql_close(m);
}
