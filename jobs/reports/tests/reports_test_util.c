/* reports_test_util.c - see reports_test_util.h. */
#include "reports_test_util.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "erpq_mysql.h"
#include "s3_test_util.h"

#define STORAGE_SECRET "reports-test-secret-0123456789abcdef"

static const char *need(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v, "%s is not set: run the suite through scripts/test", name);
  return v;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rt_sh(char **out, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *f = popen(cmd, "r");
  cr_assert(f, "popen %s", cmd);
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char tmp[8192];
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
    if (len + n + 1 > cap) {
      cap = (len + n + 1) * 2;
      buf = realloc(buf, cap);
      cr_assert(buf);
    }
    memcpy(buf + len, tmp, n);
    len += n;
  }
  if (!buf)
    buf = calloc(1, 1);
  buf[len] = '\0';
  int st = pclose(f);
  if (out)
    *out = buf;
  else
    free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void rt_exec(rt_env *e, const char *fmt, ...) {
  char sql[8192], err[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  cr_assert_eq(erpq_mysql_exec(e->m, sql, err, sizeof err), 0, "%s: %s", sql, err);
}

int64_t rt_q64(rt_env *e, const char *fmt, ...) {
  char sql[8192], err[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  int64_t v = 0;
  int found = 0;
  cr_assert_eq(erpq_mysql_i64(e->m, sql, NULL, 0, &v, &found, err, sizeof err), 0, "%s: %s", sql,
               err);
  return found ? v : 0;
}

/* The database of a test whose setup failed half-way (an assertion skips
 * teardown): dropped when the test process exits. */
static char g_drop_url[1024], g_drop_db[64];
static void drop_at_exit(void) {
  if (!g_drop_db[0])
    return;
  erpq_mysql_conf c;
  char err[256], sql[128];
  if (erpq_mysql_url_parse(g_drop_url, &c, err, sizeof err))
    return;
  MYSQL *m = erpq_mysql_connect(&c, 0, err, sizeof err);
  if (!m)
    return;
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`", g_drop_db);
  erpq_mysql_exec(m, sql, err, sizeof err);
  mysql_close(m);
}

void rt_setup(rt_env *e, int students, int schools) {
  memset(e, 0, sizeof *e);
  const char *base = need("ERPQ_TEST_MYSQL_URL");
  need("ERPQ_TEST_REDIS_URL");
  need("ERPQ_TEST_S3_URL");
  snprintf(e->bin, sizeof e->bin, "%s", need("ERPQ_BIN_DIR"));
  snprintf(e->src, sizeof e->src, "%s", need("ERPQ_SOURCE_DIR"));
  erpq_mysql_conf c;
  char err[512];
  cr_assert_eq(erpq_mysql_url_parse(base, &c, err, sizeof err), 0, "%s", err);
  srand((unsigned)(getpid() ^ now_ms()));
  snprintf(e->db, sizeof e->db, "erp_rt%d_%06x", (int)getpid(), rand() & 0xffffff);
  snprintf(e->prefix, sizeof e->prefix, "rt%d%06x", (int)getpid(), rand() & 0xffffff);
  MYSQL *adm = erpq_mysql_connect(&c, 0, err, sizeof err);
  cr_assert(adm, "%s", err);
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
           e->db);
  cr_assert_eq(erpq_mysql_exec(adm, sql, err, sizeof err), 0, "%s", err);
  mysql_close(adm);
  snprintf(g_drop_url, sizeof g_drop_url, "%s", base);
  snprintf(g_drop_db, sizeof g_drop_db, "%s", e->db);
  atexit(drop_at_exit);
  snprintf(e->url, sizeof e->url, "mysql://%s:%s@%s:%u/%s", c.user, c.pass, c.host, c.port, e->db);
  snprintf(c.db, sizeof c.db, "%s", e->db);
  e->m = erpq_mysql_connect(&c, 0, err, sizeof err);
  cr_assert(e->m, "%s", err);
  snprintf(e->dir, sizeof e->dir, "/tmp/erpq-rt-XXXXXX");
  cr_assert(mkdtemp(e->dir));
  snprintf(e->tmpdir, sizeof e->tmpdir, "%s/tmp", e->dir);
  snprintf(e->storedir, sizeof e->storedir, "%s/store", e->dir);
  cr_assert_eq(mkdir(e->tmpdir, 0700), 0);
  char *out;
  int rc = rt_sh(&out, "ERPQ_MYSQL_URL='%s' %s/erpq-worker migrate 2>&1", e->url, e->bin);
  cr_assert_eq(rc, 0, "migrate: %s", out);
  free(out);
  rc = rt_sh(&out, "ERPQ_MYSQL_URL='%s' %s/erpq-worker seed-demo --students %d --schools %d 2>&1",
             e->url, e->bin, students, schools);
  cr_assert_eq(rc, 0, "seed-demo: %s", out);
  free(out);
  erpq_s3_conf sc;
  t_s3_conf(&sc, NULL);
  e->s3 = t_s3_new(&sc);
}

void rt_teardown(rt_env *e) {
  rt_worker_stop(e);
  if (e->m) {
    char sql[128], err[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS `%s`", e->db);
    erpq_mysql_exec(e->m, sql, err, sizeof err);
    mysql_close(e->m);
    e->m = NULL;
    g_drop_db[0] = '\0';
  }
  erpq_s3_free(e->s3);
  e->s3 = NULL;
  if (e->dir[0]) {
    char *out;
    rt_sh(&out, "rm -rf '%s'", e->dir);
    free(out);
  }
}

void rt_worker_start(rt_env *e, const char *endpoint, const char *const *env) {
  rt_worker_stop(e);
  e->local = endpoint && !strcmp(endpoint, "local");
  char log[400];
  snprintf(log, sizeof log, "%s/worker.log", e->dir);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(126);
    static const char *const drop[] = {"ERPQ_S3_BUCKET", "ERPQ_STORAGE_DIR", "ERPQ_QUEUES",
                                       "ERPQ_S3_PART_SIZE", "ERPQ_REPORT_PDF_MAX_ROWS"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
      unsetenv(drop[i]);
    setenv("ERPQ_MYSQL_URL", e->url, 1);
    setenv("ERPQ_REPORT_TMPDIR", e->tmpdir, 1);
    setenv("ERPQ_S3_CONNECT_TIMEOUT", "3", 1);
    if (e->key_prefix[0])
      setenv("ERPQ_REPORT_KEY_PREFIX", e->key_prefix, 1);
    else
      unsetenv("ERPQ_REPORT_KEY_PREFIX");
    if (e->local) {
      setenv("ERPQ_STORAGE_DIR", e->storedir, 1);
      setenv("ERPQ_STORAGE_SECRET", STORAGE_SECRET, 1);
      setenv("ERPQ_PUBLIC_URL", "http://127.0.0.1:1", 1);
    } else {
      setenv("ERPQ_S3_BUCKET", getenv("ERPQ_TEST_S3_BUCKET"), 1);
      setenv("ERPQ_S3_ENDPOINT", endpoint ? endpoint : getenv("ERPQ_TEST_S3_URL"), 1);
      setenv("ERPQ_S3_REGION", getenv("ERPQ_TEST_S3_REGION"), 1);
      setenv("ERPQ_S3_ACCESS_KEY_ID", getenv("ERPQ_TEST_S3_ACCESS_KEY"), 1);
      setenv("ERPQ_S3_SECRET_ACCESS_KEY", getenv("ERPQ_TEST_S3_SECRET_KEY"), 1);
    }
    for (int i = 0; env && env[i]; i++) {
      char kv[1024];
      snprintf(kv, sizeof kv, "%s", env[i]);
      char *eq = strchr(kv, '=');
      if (eq) {
        *eq = '\0';
        setenv(kv, eq + 1, 1);
      }
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    char bin[1100];
    snprintf(bin, sizeof bin, "%s/erpq-worker", e->bin);
    execl(bin, bin, "--redis", getenv("ERPQ_TEST_REDIS_URL"), "--prefix", e->prefix, "--queue",
          "reports:2", "--log-level", "info", "--grace", "5", (char *)NULL);
    _exit(127);
  }
  e->worker = pid;
  /* Up once its blocking connection is: the log says so. */
  int64_t end = now_ms() + 15000;
  for (;;) {
    char *out;
    rt_sh(&out, "grep -c 'blocking:reports' '%s' 2>/dev/null", log);
    int up = atoi(out) > 0;
    free(out);
    if (up)
      break;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      e->worker = 0;
      rt_sh(&out, "cat '%s'", log);
      cr_assert_fail("erpq-worker exited at start: %s", out);
    }
    cr_assert(now_ms() < end, "erpq-worker did not connect");
    usleep(50000);
  }
}

/* Stops the worker with SIGTERM: it must exit 0, and (in a sanitizer
 * build) its log must hold no sanitizer report. */
void rt_worker_stop(rt_env *e) {
  if (e->worker <= 0)
    return;
  kill(e->worker, SIGTERM);
  int64_t end = now_ms() + 15000;
  int st = 0, killed = 0;
  while (waitpid(e->worker, &st, WNOHANG) == 0) {
    if (now_ms() > end) {
      kill(e->worker, SIGKILL);
      waitpid(e->worker, &st, 0);
      killed = 1;
      break;
    }
    usleep(20000);
  }
  e->worker = 0;
  char *out;
  rt_sh(&out, "grep -c -E 'Sanitizer|runtime error' '%s/worker.log'", e->dir);
  int reports = atoi(out);
  free(out);
  cr_assert_eq(reports, 0, "the worker's log has sanitizer reports (%s/worker.log)", e->dir);
  cr_assert(!killed && WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "erpq-worker did not exit cleanly on SIGTERM (status %d)", st);
}

char *rt_add(rt_env *e, const char *name, const char *data, const char *opts) {
  char dpath[400], opath[400];
  snprintf(dpath, sizeof dpath, "%s/data.json", e->dir);
  snprintf(opath, sizeof opath, "%s/opts.json", e->dir);
  FILE *f = fopen(dpath, "w");
  cr_assert(f);
  fputs(data, f);
  fclose(f);
  f = fopen(opath, "w");
  cr_assert(f);
  fputs(opts ? opts : "{}", f);
  fclose(f);
  char *out;
  /* --no-validate: the tests hand the worker bad data on purpose (the CLI
   * would refuse it before sending); the worker's checks are under test. */
  int rc = rt_sh(&out,
                 "%s/erpq-producer --redis '%s' --prefix %s add reports %s --no-validate --data @%s "
                 "--opts @%s 2>&1",
                 e->bin, getenv("ERPQ_TEST_REDIS_URL"), e->prefix, name, dpath, opath);
  cr_assert_eq(rc, 0, "add failed: %s", out);
  out[strcspn(out, "\n")] = '\0';
  return out;
}

static json_t *status(rt_env *e, const char *queue, const char *id);

json_t *rt_status(rt_env *e, const char *id) { return status(e, "reports", id); }

static json_t *status(rt_env *e, const char *queue, const char *id) {
  char *out;
  int rc = rt_sh(&out, "%s/erpq-producer --redis '%s' --prefix %s status %s '%s'", e->bin,
                 getenv("ERPQ_TEST_REDIS_URL"), e->prefix, queue, id);
  json_t *j = rc == 0 ? json_loads(out, 0, NULL) : NULL;
  cr_assert(j, "status %s %s: %s", queue, id, out);
  free(out);
  return j;
}

json_t *rt_wait(rt_env *e, const char *id, int timeout_s) {
  int64_t end = now_ms() + (int64_t)timeout_s * 1000;
  for (;;) {
    json_t *s = status(e, "reports", id);
    const char *st = rt_state(s);
    if (st && (!strcmp(st, "completed") || !strcmp(st, "failed")))
      return s;
    json_decref(s);
    if (now_ms() > end) {
      char *out;
      char log[400];
      snprintf(log, sizeof log, "%s/worker.log", e->dir);
      rt_sh(&out, "tail -5 '%s'", log);
      cr_assert_fail("job %s not finished after %d s; worker: %s", id, timeout_s, out);
    }
    usleep(50000);
  }
}

json_t *rt_job(rt_env *e, const char *name, const char *data, const char *opts, int timeout_s) {
  char *id = rt_add(e, name, data, opts);
  json_t *v = rt_wait(e, id, timeout_s);
  free(id);
  return v;
}

char *rt_logs(rt_env *e, const char *id) {
  char *out;
  rt_sh(&out, "redis-cli -u '%s' LRANGE '%s:reports:%s:logs' 0 -1", getenv("ERPQ_TEST_REDIS_URL"),
        e->prefix, id);
  return out;
}

void rt_add_payments(rt_env *e, int64_t school, int n) {
  int64_t lo = rt_q64(e, "SELECT MIN(id) FROM fees WHERE school_id = %lld AND period = '2026-04'",
                      (long long)school);
  int64_t cnt = rt_q64(e, "SELECT COUNT(*) FROM fees WHERE school_id = %lld AND period = '2026-04'",
                       (long long)school);
  cr_assert_gt(cnt, 0);
  /* Fee ids of one school's April run are consecutive (one generate run). */
  rt_exec(e,
          "INSERT INTO payments (fee_id, student_id, amount_minor, method, external_ref, paid_at)"
          " SELECT f.id, f.student_id, 100 + MOD(q.seq * 7919, 500000),"
          " ELT(1 + MOD(q.seq, 6), 'cash', 'card', 'upi', 'bank_transfer', 'cheque', 'online'),"
          " CONCAT('GEN-%lld-', q.seq), '2026-04-01 00:00:00' + INTERVAL MOD(q.seq * 37, 2500000) "
          "SECOND"
          " FROM seq_1_to_%d q JOIN fees f ON f.id = %lld + MOD(q.seq, %lld)",
          (long long)school, n, (long long)lo, (long long)cnt);
}

char *rt_fetch(rt_env *e, const json_t *result) {
  const char *key = json_string_value(json_object_get(result, "key"));
  cr_assert(key, "no key in the result");
  const char *ext = strrchr(key, '.');
  char path[400];
  snprintf(path, sizeof path, "%s/fetch-XXXXXX%s", e->dir, ext ? ext : "");
  int fd = mkstemps(path, ext ? (int)strlen(ext) : 0);
  cr_assert(fd >= 0);
  close(fd);
  if (!strcmp(json_string_value(json_object_get(result, "storage")), "local")) {
    char *out;
    cr_assert_eq(rt_sh(&out, "cp '%s/%s' '%s'", e->storedir, key, path), 0);
    free(out);
  } else {
    char err[512];
    cr_assert_eq(erpq_s3_get_to_file(e->s3, key, path, NULL, NULL, err, sizeof err), 0, "%s", err);
  }
  return strdup(path);
}

int rt_exists(rt_env *e, const char *key) {
  if (e->local) {
    char p[1500];
    snprintf(p, sizeof p, "%s/%s", e->storedir, key);
    return access(p, F_OK) == 0;
  }
  erpq_s3_info info;
  char err[512];
  cr_assert_eq(erpq_s3_head(e->s3, key, &info, err, sizeof err), 0, "%s", err);
  return info.exists;
}

int rt_tmp_left(rt_env *e) {
  char *out;
  rt_sh(&out, "{ find '%s' -mindepth 1; find '%s' -name '.*' 2>/dev/null; } | wc -l", e->tmpdir,
        e->storedir);
  int n = atoi(out);
  free(out);
  return n;
}

void rt_sha256_file(const char *path, char out[65]) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s", path);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  cr_assert(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    EVP_DigestUpdate(md, buf, n);
  fclose(f);
  unsigned char d[32];
  unsigned int dl = 0;
  EVP_DigestFinal_ex(md, d, &dl);
  EVP_MD_CTX_free(md);
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

json_t *rt_read(const char *format, const char *path, const char *kind, const char *const *finds) {
  char cmd[4096];
  int n = snprintf(cmd, sizeof cmd,
                   "/usr/bin/python3 '%s/jobs/reports/tests/read_report.py' %s '%s' %s",
                   need("ERPQ_SOURCE_DIR"), format, path, kind);
  for (int i = 0; finds && finds[i]; i++)
    n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --find '%s'", finds[i]);
  char *out;
  int rc = rt_sh(&out, "%s", cmd);
  cr_assert_eq(rc, 0, "read_report.py failed on %s", path);
  json_error_t je;
  json_t *j = json_loads(out, 0, &je);
  cr_assert(j, "read_report.py said %s (%s)", out, je.text);
  free(out);
  return j;
}

const char *rt_state(const json_t *view) {
  return json_string_value(json_object_get(view, "state"));
}

const json_t *rt_rv(const json_t *view) { return json_object_get(view, "returnvalue"); }

int64_t rt_int(const json_t *o, const char *path) {
  char p[256];
  snprintf(p, sizeof p, "%s", path);
  const json_t *v = o;
  for (char *tok = strtok(p, "."); tok && v; tok = strtok(NULL, "."))
    v = json_object_get(v, tok);
  cr_assert(json_is_integer(v), "%s is not an integer", path);
  return json_integer_value(v);
}
