/*
 * test_fees.c - the fee family against a real MariaDB and Redis: the
 * migration runner, seed-demo, generate-fees (class, school, concessions,
 * idempotency, crash and retry, two workers), create-fee and every
 * validation failure. Each test makes its own database erp_<random> and
 * uses its own key prefix, and runs the real erpq-worker / erpq-producer
 * binaries ($ERPQ_BIN_DIR).
 *
 * Requires ERPQ_TEST_MYSQL_URL and ERPQ_TEST_REDIS_URL; fails, never skips,
 * without them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fees/erpq_fees_internal.h"
#include "erpq_mysql.h"

static char g_db[64], g_url[1024], g_prefix[64], g_bin[1024];
static MYSQL *g_m;
static pid_t g_workers[4];
static int g_nworkers;
static int g_lowered_lock_wait; /* restore innodb_lock_wait_timeout in teardown */

static const char *env_req(const char *n) {
  const char *v = getenv(n);
  cr_assert(v && *v, "%s is not set: run the suite through scripts/test", n);
  return v;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
  const char *base = env_req("ERPQ_TEST_MYSQL_URL");
  env_req("ERPQ_TEST_REDIS_URL");
  snprintf(g_bin, sizeof g_bin, "%s", env_req("ERPQ_BIN_DIR"));
  erpq_mysql_conf c;
  char err[512];
  cr_assert_eq(erpq_mysql_url_parse(base, &c, err, sizeof err), 0, "%s", err);
  srand((unsigned)(getpid() ^ now_ms()));
  snprintf(g_db, sizeof g_db, "erp_t%d_%06x", (int)getpid(), rand() & 0xffffff);
  snprintf(g_prefix, sizeof g_prefix, "ft%d%06x", (int)getpid(), rand() & 0xffffff);
  MYSQL *adm = erpq_mysql_connect(&c, 0, err, sizeof err);
  cr_assert(adm, "%s", err);
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", g_db);
  cr_assert_eq(erpq_mysql_exec(adm, sql, err, sizeof err), 0, "%s", err);
  mysql_close(adm);
  snprintf(g_url, sizeof g_url, "mysql://%s:%s@%s:%u/%s", c.user, c.pass, c.host, c.port, g_db);
  setenv("ERPQ_MYSQL_URL", g_url, 1);
  snprintf(c.db, sizeof c.db, "%s", g_db);
  g_m = erpq_mysql_connect(&c, 0, err, sizeof err);
  cr_assert(g_m, "%s", err);
  g_nworkers = 0;
}

static void teardown(void) {
  if (g_lowered_lock_wait) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mariadb --no-defaults -S '%s' -uroot -e 'SET GLOBAL innodb_lock_wait_timeout = 50'",
             getenv("ERPQ_TEST_MYSQL_SOCKET"));
    if (system(cmd) != 0) fprintf(stderr, "could not restore innodb_lock_wait_timeout\n");
    g_lowered_lock_wait = 0;
  }
  for (int i = 0; i < g_nworkers; i++)
    if (g_workers[i] > 0) {
      kill(g_workers[i], SIGKILL);
      waitpid(g_workers[i], NULL, 0);
    }
  if (g_m) {
    char sql[128], err[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`", g_db);
    erpq_mysql_exec(g_m, sql, err, sizeof err);
    mysql_close(g_m);
    g_m = NULL;
  }
}

/* Runs a shell command line; returns its exit status; output to *out
 * (malloc'ed) when out is given. */
static int sh(char **out, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *f = popen(cmd, "r");
  cr_assert(f, "popen %s", cmd);
  char *buf = NULL;
  size_t len = 0, cap = 0;
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      buf = realloc(buf, cap);
    }
    memcpy(buf + len, tmp, n);
    len += n;
  }
  if (!buf) buf = calloc(1, 1);
  buf[len] = '\0';
  int st = pclose(f);
  if (out) *out = buf;
  else free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int64_t q64(const char *sql) {
  char err[512];
  int64_t v = 0;
  int found = 0;
  cr_assert_eq(erpq_mysql_i64(g_m, sql, NULL, 0, &v, &found, err, sizeof err), 0, "%s: %s", sql, err);
  return found ? v : 0;
}

static void migrate_ok(void) {
  char *out;
  int rc = sh(&out, "%s/erpq-worker migrate 2>&1", g_bin);
  cr_assert_eq(rc, 0, "migrate failed: %s", out);
  free(out);
}

static void seed(int students, int schools) {
  char *out;
  int rc = sh(&out, "%s/erpq-worker seed-demo --students %d --schools %d 2>&1", g_bin, students, schools);
  cr_assert_eq(rc, 0, "seed-demo failed: %s", out);
  free(out);
}

static pid_t start_worker(const char *extra, const char *batch) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    char cmd[2048];
    if (batch) setenv("ERPQ_FEES_BATCH", batch, 1);
    snprintf(cmd, sizeof cmd,
             "exec %s/erpq-worker --redis %s --prefix %s --queue bulk-operations:2 --log-level warn %s "
             ">/dev/null",
             g_bin, getenv("ERPQ_TEST_REDIS_URL"), g_prefix, extra ? extra : "");
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  g_workers[g_nworkers++] = pid;
  return pid;
}

/* Adds a job; returns its id (malloc'ed). --no-validate: the worker is
 * what is tested, so bad data must reach it as a Node producer would send it. */
static char *add_job(const char *name, const char *data, const char *opts) {
  char *out;
  int rc = sh(&out, "%s/erpq-producer --redis %s --prefix %s add --no-validate bulk-operations %s --data '%s' --opts '%s'",
              g_bin, getenv("ERPQ_TEST_REDIS_URL"), g_prefix, name, data, opts ? opts : "{}");
  cr_assert_eq(rc, 0, "add failed: %s", out);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

static json_t *status(const char *id) {
  char *out;
  int rc = sh(&out, "%s/erpq-producer --redis %s --prefix %s status bulk-operations %s", g_bin,
              getenv("ERPQ_TEST_REDIS_URL"), g_prefix, id);
  cr_assert_eq(rc, 0, "status failed: %s", out);
  json_t *j = json_loads(out, 0, NULL);
  cr_assert(j, "status output: %s", out);
  free(out);
  return j;
}

/* Waits for the job to be completed or failed; returns its status. */
static json_t *wait_job(const char *id, int timeout_ms) {
  int64_t end = now_ms() + timeout_ms;
  for (;;) {
    json_t *s = status(id);
    const char *st = json_string_value(json_object_get(s, "state"));
    if (st && (!strcmp(st, "completed") || !strcmp(st, "failed"))) return s;
    json_decref(s);
    cr_assert(now_ms() < end, "job %s not finished after %d ms", id, timeout_ms);
    usleep(50000);
  }
}

static int64_t rv(json_t *s, const char *k) {
  return json_integer_value(json_object_get(json_object_get(s, "returnvalue"), k));
}

static int64_t class_id(int grade, const char *section) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT id FROM classes WHERE school_id = 1 AND name = 'Class %d' AND section = '%s'",
           grade, section);
  return q64(sql);
}

/* The seed's concession rules re-stated, as the spec of the amounts. */
static void expected_school(int n, int only_class_idx, int64_t *students, int64_t *total) {
  *students = 0;
  *total = 0;
  for (int i = 1; i <= n; i++) {
    if (i % 97 == 0 || i % 40 == 0) continue;
    int c = (i - 1) % 20;
    if (only_class_idx >= 0 && c != only_class_idx) continue;
    int64_t tuition = 250000 + 25000 * (c / 2 + 1), act = 45050, tc = 0, ac = 0;
    if (i % 10 == 3) tc += (tuition * 2500 + 5000) / 10000;
    if (i % 15 == 0) tc += 50000;
    if (i % 30 == 0) tc += (tuition * 1000 + 5000) / 10000;
    if (tc > tuition) tc = tuition;
    if (i % 10 == 7) ac += (act * 3333 + 5000) / 10000;
    (*students)++;
    *total += tuition - tc + act - ac;
  }
}

static void fingerprint(char *out, size_t len, const char *period) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT CONCAT_WS('/', COUNT(*), SUM(f.amount_minor), SUM(f.concession_minor), BIT_XOR(CRC32(CONCAT_WS('|',"
           " s.admission_no, h.code, f.period, f.gross_minor, f.concession_minor, f.amount_minor, f.due_date,"
           " f.status, f.school_id)))) FROM fees f JOIN students s ON s.id = f.student_id"
           " JOIN fee_structures fs ON fs.id = f.fee_structure_id JOIN fee_heads h ON h.id = fs.fee_head_id"
           " WHERE f.period = '%s'", period);
  cr_assert_eq(mysql_query(g_m, sql), 0, "%s", mysql_error(g_m));
  MYSQL_RES *r = mysql_store_result(g_m);
  MYSQL_ROW row = mysql_fetch_row(r);
  snprintf(out, len, "%s", row && row[0] ? row[0] : "");
  mysql_free_result(r);
}

TestSuite(fees, .init = setup, .fini = teardown, .timeout = 300);

/* ---- Pure parts ---- */

Test(fees, rounding_rule) {
  cr_assert_eq(erpq_fees_percent_of(45050, 3333), 15015); /* 15015.165 */
  cr_assert_eq(erpq_fees_percent_of(1, 5000), 1);         /* half rounds up */
  cr_assert_eq(erpq_fees_percent_of(3, 3333), 1);         /* 0.9999 */
  cr_assert_eq(erpq_fees_percent_of(10001, 5000), 5001);  /* 5000.5 */
  int64_t pct[] = {6000, 6000}, fix[] = {100};
  cr_assert_eq(erpq_fees_concession(1000, pct, 2, fix, 1), 1000); /* capped at gross */
  cr_assert_eq(erpq_fees_concession(1000, pct, 1, fix, 1), 700);
}

Test(fees, url_parse) {
  erpq_mysql_conf c;
  char err[256];
  cr_assert_eq(erpq_mysql_url_parse("mysql://u:p%40ss@127.0.0.1:3307/erp?connect_timeout=2", &c, err, sizeof err), 0);
  cr_assert_str_eq(c.pass, "p@ss");
  cr_assert_eq(c.port, 3307);
  cr_assert_eq(c.connect_timeout_s, 2);
  cr_assert_eq(erpq_mysql_url_parse("mysql://u:p@localhost/erp?socket=/tmp/x.sock", &c, err, sizeof err), 0);
  cr_assert_str_eq(c.socket, "/tmp/x.sock");
  cr_assert_eq(erpq_mysql_url_parse("mysql://u:p@/erp?socket=/tmp/x.sock", &c, err, sizeof err), 0);
  cr_assert_neq(erpq_mysql_url_parse("mysql://u:p@h:99999/erp", &c, err, sizeof err), 0);
  cr_assert_neq(erpq_mysql_url_parse("mysql://u:p@h:3306", &c, err, sizeof err), 0);
  cr_assert_neq(erpq_mysql_url_parse("postgres://u@h/erp", &c, err, sizeof err), 0);
  cr_assert_neq(erpq_mysql_url_parse("mysql://u@h/erp?bogus=1", &c, err, sizeof err), 0);
}

/* How many migrations the source tree has (schemas/mysql/NNNN_*.sql). */
static int n_migrations(void) {
  char *out;
  cr_assert_eq(sh(&out, "ls %s/schemas/mysql/[0-9][0-9][0-9][0-9]_*.sql | wc -l",
                  env_req("ERPQ_SOURCE_DIR")), 0);
  int n = atoi(out);
  free(out);
  return n;
}

Test(fees, unix_socket_url) {
  const char *sock = env_req("ERPQ_TEST_MYSQL_SOCKET");
  erpq_mysql_conf base;
  char err[512], url[1024];
  cr_assert_eq(erpq_mysql_url_parse(getenv("ERPQ_TEST_MYSQL_URL"), &base, err, sizeof err), 0);
  snprintf(url, sizeof url, "mysql://%s:%s@localhost/%s?socket=%s", base.user, base.pass, g_db, sock);
  char *out;
  int rc = sh(&out, "ERPQ_MYSQL_URL='%s' %s/erpq-worker migrate 2>&1", url, g_bin);
  cr_assert_eq(rc, 0, "%s", out);
  free(out);
  cr_assert_eq(q64("SELECT COUNT(*) FROM schema_migrations"), n_migrations());
}

/* ---- Migrations ---- */

Test(fees, migrate_fresh_rerun_changed) {
  char *out, want[64];
  int n = n_migrations();
  cr_assert_gt(n, 2);
  cr_assert_eq(sh(&out, "%s/erpq-worker migrate 2>&1", g_bin), 0);
  snprintf(want, sizeof want, "%d applied now", n);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  cr_assert_eq(q64("SELECT COUNT(*) FROM schema_migrations WHERE LENGTH(checksum) = 64"), n);
  cr_assert_eq(q64("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                   "AND table_name IN ('schools', 'classes', 'students', 'fee_heads', "
                   "'fee_structures', 'student_concessions', 'fees', 'payments', 'outbox', "
                   "'schema_migrations')"),
               10);
  cr_assert_eq(sh(&out, "%s/erpq-worker migrate 2>&1", g_bin), 0);
  snprintf(want, sizeof want, "0 applied now, %d already applied", n);
  cr_assert(strstr(out, want), "%s", out);
  free(out);
  /* A copy of the files with one applied file changed is refused. */
  char dir[] = "/tmp/erpq-mig-XXXXXX";
  cr_assert(mkdtemp(dir));
  cr_assert_eq(sh(NULL, "cp %s/schemas/mysql/*.sql %s/ && echo '-- edited' >> %s/0002_fees.sql",
                  env_req("ERPQ_SOURCE_DIR"), dir, dir), 0);
  int rc = sh(&out, "%s/erpq-worker migrate --dir %s 2>&1", g_bin, dir);
  cr_assert_eq(rc, 1, "changed file: exit %d: %s", rc, out);
  cr_assert(strstr(out, "0002_fees.sql was changed after it was applied"), "%s", out);
  free(out);
  /* A new file is applied after the others. */
  cr_assert_eq(sh(NULL, "cp %s/schemas/mysql/0002_fees.sql %s/ && printf 'CREATE TABLE t_extra (id INT PRIMARY KEY);\\n' > %s/9000_extra.sql",
                  env_req("ERPQ_SOURCE_DIR"), dir, dir), 0);
  cr_assert_eq(sh(&out, "%s/erpq-worker migrate --dir %s 2>&1", g_bin, dir), 0, "%s", out);
  cr_assert(strstr(out, "applied 9000_extra.sql"), "%s", out);
  free(out);
  cr_assert_eq(q64("SELECT MAX(version) FROM schema_migrations"), 9000);
  sh(NULL, "rm -rf %s", dir);
}

/* ---- Seeding ---- */

Test(fees, seed_demo_idempotent) {
  migrate_ok();
  seed(300, 2);
  int64_t students = q64("SELECT COUNT(*) FROM students"), fees = q64("SELECT COUNT(*) FROM fees"),
          pays = q64("SELECT COUNT(*) FROM payments"), conc = q64("SELECT COUNT(*) FROM student_concessions"),
          outbox = q64("SELECT COUNT(*) FROM outbox");
  cr_assert_eq(students, 600);
  cr_assert_eq(q64("SELECT COUNT(*) FROM schools"), 2);
  cr_assert_eq(q64("SELECT COUNT(*) FROM classes"), 40);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fee_structures"), 80);
  cr_assert_eq(q64("SELECT COUNT(DISTINCT kind) FROM student_concessions"), 2);
  cr_assert_gt(pays, 0);
  cr_assert_gt(q64("SELECT COUNT(*) FROM fees WHERE status = 'partially_paid'"), 0);
  cr_assert_gt(q64("SELECT COUNT(*) FROM students WHERE first_name <> CONVERT(first_name USING ascii)"), 0);
  cr_assert_eq(q64("SELECT COUNT(*) FROM students WHERE first_name = 'Zoë'"), q64("SELECT COUNT(*) FROM students WHERE first_name LIKE 'Zo_' AND CHAR_LENGTH(first_name) = 3 AND LENGTH(first_name) = 4"));
  seed(300, 2);
  cr_assert_eq(q64("SELECT COUNT(*) FROM students"), students);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees"), fees);
  cr_assert_eq(q64("SELECT COUNT(*) FROM payments"), pays);
  cr_assert_eq(q64("SELECT COUNT(*) FROM student_concessions"), conc);
  cr_assert_eq(q64("SELECT COUNT(*) FROM outbox"), outbox);
}

/* ---- generate-fees ---- */

Test(fees, generate_class_exact_amounts_and_rerun) {
  migrate_ok();
  seed(200, 1);
  start_worker(NULL, "4");
  int64_t cls = class_id(5, "B"); /* admission numbers 10, 30, 50, ... */
  char data[256];
  snprintf(data, sizeof data, "{\"schoolId\":1,\"classId\":%" PRId64 ",\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}", cls);
  char *id = add_job("generate-fees", data, NULL);
  json_t *s = wait_job(id, 30000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                   json_string_value(json_object_get(s, "failedReason")));
  /* 10 students x 2 structures; A000030, A000090, A000150: 500.00 fixed +
   * 10 % of 3750.00 off tuition. */
  cr_assert_eq(rv(s, "students"), 10);
  cr_assert_eq(rv(s, "created"), 20);
  cr_assert_eq(rv(s, "skipped"), 0);
  cr_assert_eq(rv(s, "totalAmountMinor"), 10 * (375000 + 45050) - 3 * 87500);
  int64_t st, tot;
  expected_school(200, 9, &st, &tot);
  cr_assert_eq(tot, rv(s, "totalAmountMinor"));
  cr_assert_eq(q64("SELECT f.amount_minor FROM fees f JOIN students s ON s.id = f.student_id JOIN fee_structures fs"
                   " ON fs.id = f.fee_structure_id JOIN fee_heads h ON h.id = fs.fee_head_id WHERE s.admission_no ="
                   " 'A000030' AND h.code = 'TUITION' AND f.period = '2026-12'"), 287500);
  cr_assert_eq(q64("SELECT f.concession_minor FROM fees f JOIN students s ON s.id = f.student_id JOIN fee_structures fs"
                   " ON fs.id = f.fee_structure_id JOIN fee_heads h ON h.id = fs.fee_head_id WHERE s.admission_no ="
                   " 'A000030' AND h.code = 'TUITION' AND f.period = '2026-12'"), 87500);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12' AND due_date = '2026-12-10' AND status = 'pending'"), 20);
  json_t *prog = json_object_get(s, "progress");
  cr_assert_eq(json_integer_value(json_object_get(prog, "done")), 10, "progress");
  json_decref(s);
  free(id);
  cr_assert_eq(q64("SELECT COUNT(*) FROM outbox WHERE event_type = 'fees.generated'"), 1);
  cr_assert_eq(q64("SELECT JSON_VALUE(payload, '$.created') FROM outbox WHERE event_type = 'fees.generated'"), 20);
  /* Again: nothing created, same total. */
  id = add_job("generate-fees", data, NULL);
  s = wait_job(id, 30000);
  cr_assert_eq(rv(s, "created"), 0);
  cr_assert_eq(rv(s, "skipped"), 20);
  cr_assert_eq(rv(s, "totalAmountMinor"), tot);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'"), 20);
  cr_assert_eq(q64("SELECT COUNT(*) FROM outbox WHERE event_type = 'fees.generated'"), 2);
  json_decref(s);
  free(id);
}

Test(fees, generate_school_with_concessions) {
  migrate_ok();
  seed(1000, 1);
  start_worker(NULL, "128");
  char *id = add_job("generate-fees", "{\"schoolId\":1,\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}", NULL);
  json_t *s = wait_job(id, 60000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
  int64_t st, tot;
  expected_school(1000, -1, &st, &tot);
  cr_assert_eq(rv(s, "students"), st);
  cr_assert_eq(rv(s, "created"), 2 * st);
  cr_assert_eq(rv(s, "totalAmountMinor"), tot);
  cr_assert_eq(q64("SELECT SUM(amount_minor) FROM fees WHERE period = '2026-12'"), tot);
  cr_assert_eq(q64("SELECT SUM(gross_minor - concession_minor - amount_minor) FROM fees WHERE period = '2026-12'"), 0);
  /* Inactive and withdrawn students get nothing. */
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees f JOIN students s ON s.id = f.student_id WHERE f.period = '2026-12' AND s.status <> 'active'"), 0);
  json_decref(s);
  free(id);
  /* feeStructureIds narrows the run. */
  int64_t fs = q64("SELECT MIN(id) FROM fee_structures");
  char data[256];
  snprintf(data, sizeof data, "{\"schoolId\":1,\"period\":\"2027-01\",\"dueDate\":\"2027-01-10\",\"feeStructureIds\":[%" PRId64 "]}", fs);
  id = add_job("generate-fees", data, NULL);
  s = wait_job(id, 30000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
  cr_assert_eq(q64("SELECT COUNT(DISTINCT fee_structure_id) FROM fees WHERE period = '2027-01'"), 1);
  /* The first structure is class 1 A's tuition: only that class is billed. */
  int64_t st0, tot0;
  expected_school(1000, 0, &st0, &tot0);
  cr_assert_eq(rv(s, "created"), st0);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2027-01'"), st0);
  json_decref(s);
  free(id);
}

Test(fees, crash_and_retry_equals_clean_run, .timeout = 600) {
  migrate_ok();
  seed(30000, 1);
  /* Clean run, fingerprinted, then removed. */
  start_worker(NULL, "100");
  const char *data = "{\"schoolId\":1,\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}";
  char *id = add_job("generate-fees", data, NULL);
  json_t *s = wait_job(id, 300000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed");
  int64_t clean_created = rv(s, "created");
  json_decref(s);
  free(id);
  char clean[256], crashed[256];
  fingerprint(clean, sizeof clean, "2026-12");
  char err[256];
  cr_assert_eq(erpq_mysql_exec(g_m, "DELETE FROM fees WHERE period = '2026-12'", err, sizeof err), 0, "%s", err);
  kill(g_workers[0], SIGKILL);
  waitpid(g_workers[0], NULL, 0);
  g_workers[0] = -1;
  /* Crash: kill -9 the worker once some batches are in. */
  pid_t w = start_worker("--lock-duration 1500 --stalled-interval 500", "100");
  id = add_job("generate-fees", data, "{\"attempts\":3,\"backoff\":100}");
  int64_t end = now_ms() + 60000;
  while (q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'") < 2000) {
    cr_assert(now_ms() < end, "the fee run did not start");
    usleep(5000);
  }
  kill(w, SIGKILL);
  waitpid(w, NULL, 0);
  g_workers[g_nworkers - 1] = -1;
  /* Count once the server has finished with the dead worker's connection
   * (a COMMIT in flight at the kill may still land or roll back). */
  end = now_ms() + 20000;
  while (q64("SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()") > 0) {
    cr_assert(now_ms() < end, "the killed worker's connections linger");
    usleep(10000);
  }
  int64_t at_kill = q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'");
  cr_assert_lt(at_kill, clean_created, "the run finished before the kill; nothing tested");
  /* Another worker's stalled check recovers the job and reruns it. */
  start_worker("--lock-duration 1500 --stalled-interval 500", "100");
  s = wait_job(id, 300000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                   json_string_value(json_object_get(s, "failedReason")));
  cr_assert_eq(rv(s, "created") + at_kill, clean_created);
  fingerprint(crashed, sizeof crashed, "2026-12");
  cr_assert_str_eq(crashed, clean);
  /* One outbox event per finished run: the clean one and the retried one. */
  cr_assert_eq(q64("SELECT COUNT(*) FROM outbox WHERE event_type = 'fees.generated'"), 2);
  json_decref(s);
  free(id);
}

Test(fees, two_workers_duplicate_jobs) {
  migrate_ok();
  seed(3000, 1);
  start_worker(NULL, "50");
  start_worker(NULL, "50");
  const char *data = "{\"schoolId\":1,\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}";
  char *ids[4];
  for (int i = 0; i < 4; i++) ids[i] = add_job("generate-fees", data, NULL);
  int64_t created = 0, skipped = 0, st, tot;
  expected_school(3000, -1, &st, &tot);
  for (int i = 0; i < 4; i++) {
    json_t *s = wait_job(ids[i], 120000);
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                     json_string_value(json_object_get(s, "failedReason")));
    created += rv(s, "created");
    skipped += rv(s, "skipped");
    cr_assert_eq(rv(s, "totalAmountMinor"), tot);
    json_decref(s);
    free(ids[i]);
  }
  cr_assert_eq(created, 2 * st);
  cr_assert_eq(skipped, 3 * 2 * st);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'"), 2 * st);
  cr_assert_eq(q64("SELECT SUM(amount_minor) FROM fees WHERE period = '2026-12'"), tot);
}

/* ---- create-fee ---- */

Test(fees, create_fee_idempotent) {
  migrate_ok();
  seed(50, 1);
  start_worker(NULL, NULL);
  int64_t fs = q64("SELECT id FROM fee_structures WHERE class_id = (SELECT class_id FROM students WHERE admission_no = 'A000005') LIMIT 1");
  int64_t sid = q64("SELECT id FROM students WHERE admission_no = 'A000005'");
  char data[256];
  snprintf(data, sizeof data, "{\"studentId\":%" PRId64 ",\"feeStructureId\":%" PRId64 ",\"period\":\"2027-02\",\"dueDate\":\"2027-02-10\",\"amount\":123456}", sid, fs);
  char *a = add_job("create-fee", data, NULL), *b = add_job("create-fee", data, NULL);
  json_t *sa = wait_job(a, 30000), *sb = wait_job(b, 30000);
  cr_assert_str_eq(json_string_value(json_object_get(sa, "state")), "completed");
  cr_assert_str_eq(json_string_value(json_object_get(sb, "state")), "completed");
  /* Both may run at once (the worker's concurrency): whichever commits
   * first creates the fee, the other finds it. */
  int ca = json_is_true(json_object_get(json_object_get(sa, "returnvalue"), "created"));
  int cb = json_is_true(json_object_get(json_object_get(sb, "returnvalue"), "created"));
  cr_assert_eq(ca + cb, 1, "exactly one of the two created the fee (a %d, b %d)", ca, cb);
  cr_assert_eq(rv(sa, "feeId"), rv(sb, "feeId"));
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2027-02'"), 1);
  cr_assert_eq(q64("SELECT amount_minor FROM fees WHERE period = '2027-02'"), 123456);
  json_decref(sa);
  json_decref(sb);
  free(a);
  free(b);
}

/* ---- Validation ---- */

typedef struct bad_case {
  const char *name, *data, *reason;
} bad_case;

/* The reason is our handler's message, or, when the worker checks job data
 * against schemas/jobs/<name>.json before the handler runs, a schema
 * message naming the same field. */
static int reason_ok(const char *got, const bad_case *c) {
  if (!got) return 0;
  if (strstr(got, c->reason)) return 1;
  if (!strstr(got, "schema")) return 0;
  const char *f = strncmp(c->reason, "data.", 5) ? c->reason : c->reason + 5;
  char field[64];
  size_t n = strcspn(f, " .:[");
  snprintf(field, sizeof field, "%.*s", (int)n, f);
  return strstr(got, field) != NULL;
}

Test(fees, validation_failures_discard_and_write_nothing) {
  migrate_ok();
  seed(40, 2);
  start_worker(NULL, NULL);
  int64_t other_class = q64("SELECT MAX(id) FROM classes"); /* school 2's */
  int64_t other_fs = q64("SELECT MAX(id) FROM fee_structures");
  int64_t fs1 = q64("SELECT MIN(id) FROM fee_structures");
  char c_other_class[200], c_other_fs[200], c_fs_school[200], c_fs_gen[200];
  snprintf(c_other_class, sizeof c_other_class, "{\"schoolId\":1,\"classId\":%" PRId64 ",\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", other_class);
  snprintf(c_other_fs, sizeof c_other_fs, "{\"studentId\":1,\"feeStructureId\":%" PRId64 ",\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":5}", other_fs);
  snprintf(c_fs_school, sizeof c_fs_school, "{\"studentId\":1,\"feeStructureId\":%" PRId64 ",\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":-5}", fs1);
  snprintf(c_fs_gen, sizeof c_fs_gen, "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"feeStructureIds\":[%" PRId64 "]}", other_fs);
  const bad_case cases[] = {
      {"generate-fees", "{\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.schoolId is required"},
      {"generate-fees", "{\"schoolId\":\"1\",\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.schoolId must be a positive integer"},
      {"generate-fees", "{\"schoolId\":-1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.schoolId must be a positive integer"},
      {"generate-fees", "{\"schoolId\":1,\"classId\":2.5,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.classId must be a positive integer"},
      {"generate-fees", "{\"schoolId\":999,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.schoolId: school 999 does not exist"},
      {"generate-fees", "{\"schoolId\":1,\"classId\":99999,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.classId: class 99999 does not exist"},
      {"generate-fees", c_other_class, "data.classId: class"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-13\",\"dueDate\":\"2031-01-10\"}", "data.period must be a month YYYY-MM"},
      {"generate-fees", "{\"schoolId\":1,\"period\":202101,\"dueDate\":\"2031-01-10\"}", "data.period must be a string"},
      {"generate-fees", "{\"schoolId\":1,\"dueDate\":\"2031-01-10\"}", "data.period is required"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-02-30\"}", "data.dueDate must be a date YYYY-MM-DD"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"10/01/2031\"}", "data.dueDate must be a date YYYY-MM-DD"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\"}", "data.dueDate is required"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"feeStructureIds\":[]}", "data.feeStructureIds must be a non-empty array"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"feeStructureIds\":[\"x\"]}", "data.feeStructureIds[0] must be a positive integer"},
      {"generate-fees", c_fs_gen, "is not an active fee structure of school 1"},
      {"generate-fees", "{\"schoolId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"extra\":1}", "data.extra is not a known field"},
      {"generate-fees", "[1,2]", "data must be a JSON object"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":-5}", "data.amount must not be negative"},
      {"create-fee", c_fs_school, "data.amount must not be negative"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":12.5}", "data.amount must be an integer number of minor units"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":\"100\"}", "data.amount must be an integer number of minor units"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\"}", "data.amount is required"},
      {"create-fee", "{\"studentId\":99999,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-10\",\"amount\":5}", "data.studentId: student 99999 does not exist"},
      {"create-fee", c_other_fs, "data.feeStructureId: fee structure"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"31-01\",\"dueDate\":\"2031-01-10\",\"amount\":5}", "data.period must be a month YYYY-MM"},
      {"create-fee", "{\"studentId\":1,\"feeStructureId\":1,\"period\":\"2031-01\",\"dueDate\":\"2031-01-32\",\"amount\":5}", "data.dueDate must be a date YYYY-MM-DD"},
  };
  int64_t fees0 = q64("SELECT COUNT(*) FROM fees"), outbox0 = q64("SELECT COUNT(*) FROM outbox");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *id = add_job(cases[i].name, cases[i].data, "{\"attempts\":3,\"backoff\":10}");
    json_t *s = wait_job(id, 30000);
    const char *reason = json_string_value(json_object_get(s, "failedReason"));
    cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "failed", "case %zu %s", i, cases[i].data);
    cr_assert(reason_ok(reason, &cases[i]), "case %zu: reason '%s', want '%s'", i, reason, cases[i].reason);
    cr_assert_eq(json_integer_value(json_object_get(s, "attemptsMade")), 1, "case %zu retried", i);
    json_decref(s);
    free(id);
  }
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees"), fees0);
  cr_assert_eq(q64("SELECT COUNT(*) FROM outbox"), outbox0);
}

/* A connection lost mid-run fails the attempt (not discarded); bull's retry
 * finishes the run with the rows of one clean run. */
Test(fees, lost_connection_fails_attempt_then_retry_completes, .timeout = 300) {
  migrate_ok();
  seed(20000, 1);
  start_worker(NULL, "50");
  char *id = add_job("generate-fees", "{\"schoolId\":1,\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}",
                     "{\"attempts\":3,\"backoff\":200}");
  int64_t end = now_ms() + 60000;
  while (q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'") < 1000) {
    cr_assert(now_ms() < end, "the fee run did not start");
    usleep(5000);
  }
  char err[256], sql[256];
  int64_t *rows;
  size_t n;
  snprintf(sql, sizeof sql, "SELECT id FROM information_schema.processlist WHERE db = '%s' AND id <> CONNECTION_ID()", g_db);
  cr_assert_eq(erpq_mysql_rows(g_m, sql, NULL, 0, 1, &rows, &n, err, sizeof err), 0, "%s", err);
  cr_assert_gt(n, 0);
  for (size_t i = 0; i < n; i++) {
    snprintf(sql, sizeof sql, "KILL CONNECTION %" PRId64, rows[i]);
    erpq_mysql_exec(g_m, sql, err, sizeof err);
  }
  free(rows);
  json_t *s = wait_job(id, 120000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                   json_string_value(json_object_get(s, "failedReason")));
  cr_assert_eq(json_integer_value(json_object_get(s, "attemptsMade")), 1, "one failed attempt before the retry");
  int64_t st, tot;
  expected_school(20000, -1, &st, &tot);
  cr_assert_eq(q64("SELECT COUNT(*) FROM fees WHERE period = '2026-12'"), 2 * st);
  cr_assert_eq(q64("SELECT SUM(amount_minor) FROM fees WHERE period = '2026-12'"), tot);
  cr_assert_eq(rv(s, "totalAmountMinor"), tot);
  json_decref(s);
  free(id);
}

/* A lock wait timeout (1205) rolls the batch back and retries it inside the
 * same attempt: a row lock held by another transaction for a while delays
 * the run but does not fail it. (innodb_lock_wait_timeout is lowered for
 * the worker's connections with root over the socket, then restored.) */
Test(fees, lock_wait_timeout_retries_the_batch, .timeout = 120) {
  migrate_ok();
  seed(200, 1);
  const char *sock = env_req("ERPQ_TEST_MYSQL_SOCKET");
  char *out;
  cr_assert_eq(sh(&out, "mariadb --no-defaults -S '%s' -uroot -e 'SET GLOBAL innodb_lock_wait_timeout = 1' 2>&1", sock), 0, "%s", out);
  free(out);
  g_lowered_lock_wait = 1;
  char err[256];
  /* Hold the lock the run's first insert needs. */
  int64_t sid = q64("SELECT MIN(id) FROM students WHERE status = 'active'");
  int64_t fs = q64("SELECT MIN(fs.id) FROM fee_structures fs JOIN students s ON s.class_id = fs.class_id WHERE s.id = (SELECT MIN(id) FROM students WHERE status = 'active')");
  cr_assert_eq(erpq_mysql_exec(g_m, "START TRANSACTION", err, sizeof err), 0, "%s", err);
  erpq_param p[] = {ERPQ_PI(sid), ERPQ_PI(fs)};
  cr_assert_eq(erpq_mysql_run(g_m, "INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor,"
                                   " concession_minor, amount_minor, due_date) VALUES (1, ?, ?, '2026-12', 1, 0, 1, '2026-12-10')",
                              p, 2, NULL, NULL, err, sizeof err), 0, "%s", err);
  start_worker(NULL, NULL);
  char *id = add_job("generate-fees", "{\"schoolId\":1,\"period\":\"2026-12\",\"dueDate\":\"2026-12-10\"}", NULL);
  usleep(2500000); /* at least one lock wait timeout */
  json_t *s = status(id);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "active");
  json_decref(s);
  cr_assert_eq(erpq_mysql_exec(g_m, "ROLLBACK", err, sizeof err), 0, "%s", err);
  s = wait_job(id, 60000);
  cr_assert_str_eq(json_string_value(json_object_get(s, "state")), "completed", "%s",
                   json_string_value(json_object_get(s, "failedReason")));
  cr_assert_eq(json_integer_value(json_object_get(s, "attemptsMade")), 0);
  int64_t st, tot;
  expected_school(200, -1, &st, &tot);
  cr_assert_eq(rv(s, "created"), 2 * st);
  cr_assert_eq(q64("SELECT SUM(amount_minor) FROM fees WHERE period = '2026-12'"), tot);
  json_decref(s);
  free(id);
}
