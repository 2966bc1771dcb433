/*
 * test_reports_faults.c - the reports family when things go wrong, end to
 * end with the real worker: a CSV uploaded in parts is byte-identical to
 * the same report sent in one PUT; an S3 part answered 500 is retried
 * (lib/s3/tests/faultproxy.py in front of s3rver); S3 down fails the
 * attempt with a clear reason and no object; the job's MySQL connection
 * KILLed mid-stream fails it and leaves no object; a job cancelled by its
 * timeout aborts its upload and leaves no object and no temporary file;
 * bad input fails at once (no retry) with a readable reason and writes
 * nothing; a PDF above the row limit is refused before any work.
 *
 * The multi-part cases add 200,000 payments (about 21 MB of CSV) with one
 * INSERT ... SELECT from MariaDB's sequence engine; parts are 5 MiB (the
 * smallest ERPQ_S3_PART_SIZE).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reports_test_util.h"
#include "s3_test_util.h"

#define APRIL_CSV                                                                                  \
  "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"csv\"}"
#define APRIL_XLSX                                                                                 \
  "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"xlsx\"}"
#define BIG 200000

static rt_env E;

/* Objects under a key prefix of this test's own: job ids repeat across
 * tests (each has its own bull prefix) and the bucket is shared, so a
 * check that nothing was written must not see another test's object. */
static void setup(void) {
  rt_setup(&E, 100, 2);
  snprintf(E.key_prefix, sizeof E.key_prefix, "reports-%s", E.prefix);
}
static void teardown(void) { rt_teardown(&E); }

TestSuite(reports_faults, .init = setup, .fini = teardown, .timeout = 400);

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *reason(const json_t *v) {
  const char *r = json_string_value(json_object_get(v, "failedReason"));
  if (r)
    cr_log_info("job %s: %s", json_string_value(json_object_get(v, "id")), r);
  return r ? r : "";
}

/* The key a job of this id would have written. */
static void key_of(const json_t *v, const char *name, const char *ext, char *out, size_t n) {
  snprintf(out, n, "%s/1/2026-04/%s-%s.%s", E.key_prefix,
           json_string_value(json_object_get(v, "id")), name, ext);
}

static json_t *proxy_stats(const t_peer *p) {
  char url[128], *body = NULL;
  snprintf(url, sizeof url, "%s/__stats", p->url);
  cr_assert_eq(t_http_get(url, &body, NULL, NULL, 0), 200);
  json_t *s = json_loads(body, 0, NULL);
  cr_assert(s);
  free(body);
  return s;
}

static void start_proxy(t_peer *p, const char *opt, const char *val) {
  const char *args[] = {"--upstream", getenv("ERPQ_TEST_S3_URL"), opt, val, NULL};
  t_peer_start(p, "faultproxy.py", args);
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

Test(reports_faults, multipart_csv_equals_single_put) {
  rt_add_payments(&E, 1, BIG);
  const char *small[] = {"ERPQ_S3_PART_SIZE=5242880", NULL};
  rt_worker_start(&E, NULL, small);
  json_t *a = rt_job(&E, "fee-collection", APRIL_CSV, NULL, 300);
  cr_assert_str_eq(rt_state(a), "completed", "%s", reason(a));
  char *logs = rt_logs(&E, json_string_value(json_object_get(a, "id")));
  int parts = count(logs, "uploaded part ");
  cr_assert_geq(parts, 4, "one log line per part: %s", logs);
  cr_assert(strstr(logs, "uploaded part 1 (5.0 MiB)"), "%s", logs);
  free(logs);
  const char *big[] = {"ERPQ_S3_PART_SIZE=67108864", NULL};
  rt_worker_start(&E, NULL, big);
  json_t *b = rt_job(&E, "fee-collection", APRIL_CSV, NULL, 300);
  cr_assert_str_eq(rt_state(b), "completed", "%s", reason(b));
  logs = rt_logs(&E, json_string_value(json_object_get(b, "id")));
  cr_assert(strstr(logs, "uploaded in one request"), "%s", logs);
  cr_assert_eq(count(logs, "uploaded part "), 0);
  free(logs);
  cr_assert_gt(rt_int(rt_rv(a), "bytes"), 4 * 5242880);
  char *pa = rt_fetch(&E, rt_rv(a)), *pb = rt_fetch(&E, rt_rv(b));
  char *out;
  cr_assert_eq(rt_sh(&out, "cmp '%s' '%s'", pa, pb), 0, "the two CSV files differ: %s", out);
  free(out);
  cr_assert_str_eq(json_string_value(json_object_get(rt_rv(a), "sha256")),
                   json_string_value(json_object_get(rt_rv(b), "sha256")));
  int64_t rows = rt_q64(&E, "SELECT COUNT(*) FROM payments p JOIN students s ON s.id = p.student_id"
                            " WHERE s.school_id = 1 AND p.paid_at >= '2026-03-31 18:30:00'"
                            " AND p.paid_at < '2026-04-30 18:30:00'");
  cr_assert_geq(rows, BIG);
  json_t *s = rt_read("csv", pa, "fee-collection", NULL);
  cr_assert_eq(rt_int(s, "rows"), rows);
  json_decref(s);
  free(pa);
  free(pb);
  json_decref(a);
  json_decref(b);
}

Test(reports_faults, part_answered_500_is_retried) {
  rt_add_payments(&E, 1, BIG);
  t_peer proxy;
  start_proxy(&proxy, "--fail-part", "2");
  const char *env[] = {"ERPQ_S3_PART_SIZE=5242880", NULL};
  rt_worker_start(&E, proxy.url, env);
  json_t *v = rt_job(&E, "fee-collection", APRIL_CSV, NULL, 300);
  cr_assert_str_eq(rt_state(v), "completed", "%s", reason(v));
  json_t *st = proxy_stats(&proxy);
  cr_assert_eq(rt_int(st, "injected"), 1);
  cr_assert_gt(rt_int(st, "parts"), 4);
  json_decref(st);
  char *p = rt_fetch(&E, rt_rv(v));
  char sha[65];
  rt_sha256_file(p, sha);
  cr_assert_str_eq(sha, json_string_value(json_object_get(rt_rv(v), "sha256")));
  free(p);
  json_decref(v);
  rt_worker_stop(&E);
  t_peer_stop(&proxy);
}

Test(reports_faults, s3_down_fails_without_object) {
  rt_worker_start(&E, "http://127.0.0.1:1", NULL);
  json_t *v = rt_job(&E, "fee-collection", APRIL_CSV, NULL, 120);
  cr_assert_str_eq(rt_state(v), "failed");
  cr_assert(strstr(reason(v), "S3") && strstr(reason(v), "connect"), "reason: %s", reason(v));
  char key[256];
  key_of(v, "fee-collection", "csv", key, sizeof key);
  cr_assert_not(rt_exists(&E, key));
  cr_assert_eq(rt_tmp_left(&E), 0);
  json_decref(v);
}

/* The thread id of the job's rows query once the server is sending rows
 * faster than the job takes them (its upload is slow), or 0. */
static int64_t streaming_thread(void) {
  return rt_q64(
      &E,
      "SELECT COALESCE(MAX(ID), 0) FROM information_schema.PROCESSLIST WHERE DB = '%s'"
      " AND INFO LIKE 'SELECT %%p.paid_at, p.external_ref%%' AND STATE = 'Writing to net'",
      E.db);
}

Test(reports_faults, mysql_killed_midstream_leaves_no_object) {
  rt_add_payments(&E, 1, BIG);
  t_peer proxy;
  start_proxy(&proxy, "--slow-bps", "2000000");
  const char *env[] = {"ERPQ_S3_PART_SIZE=5242880", NULL};
  rt_worker_start(&E, proxy.url, env);
  char *id = rt_add(&E, "fee-collection", APRIL_CSV, NULL);
  int64_t tid = 0, end = now_ms() + 30000;
  while (!(tid = streaming_thread()) && now_ms() < end)
    usleep(20000);
  cr_assert_gt(tid, 0, "the job's query never showed up");
  rt_exec(&E, "KILL %lld", (long long)tid);
  json_t *v = rt_wait(&E, id, 120);
  cr_assert_str_eq(rt_state(v), "failed", "the job completed despite the KILL");
  const char *why = reason(v);
  cr_assert(strstr(why, "reading rows"), "not killed mid-stream: %s", why);
  char key[256];
  key_of(v, "fee-collection", "csv", key, sizeof key);
  cr_assert_not(rt_exists(&E, key));
  free(id);
  json_decref(v);
  rt_worker_stop(&E);
  t_peer_stop(&proxy);
}

static void wait_clean(void) {
  int64_t end = now_ms() + 15000;
  while (rt_tmp_left(&E) && now_ms() < end)
    usleep(50000);
  cr_assert_eq(rt_tmp_left(&E), 0, "temporary files left after the cancelled job");
}

Test(reports_faults, timeout_aborts_csv_upload) {
  rt_add_payments(&E, 1, BIG);
  t_peer proxy;
  start_proxy(&proxy, "--slow-bps", "400000");
  const char *env[] = {"ERPQ_S3_PART_SIZE=5242880", NULL};
  rt_worker_start(&E, proxy.url, env);
  json_t *v = rt_job(&E, "fee-collection", APRIL_CSV, "{\"timeout\":3000}", 120);
  cr_assert_str_eq(rt_state(v), "failed");
  cr_assert(strstr(reason(v), "timed out after 3000"), "reason: %s", reason(v));
  /* The handler stops soon after (its slot frees): give it a moment, then
   * nothing may exist. */
  usleep(1500000);
  char key[256];
  key_of(v, "fee-collection", "csv", key, sizeof key);
  cr_assert_not(rt_exists(&E, key));
  json_t *st = proxy_stats(&proxy);
  cr_assert_lt(rt_int(st, "parts"), 4, "the upload went on after the timeout");
  json_decref(st);
  wait_clean();
  json_decref(v);
  rt_worker_stop(&E);
  t_peer_stop(&proxy);
}

Test(reports_faults, timeout_aborts_xlsx_upload_and_removes_temp_files) {
  rt_add_payments(&E, 1, BIG);
  t_peer proxy;
  start_proxy(&proxy, "--slow-bps", "300000");
  const char *env[] = {"ERPQ_S3_PART_SIZE=5242880", NULL};
  rt_worker_start(&E, proxy.url, env);
  json_t *v = rt_job(&E, "fee-collection", APRIL_XLSX, "{\"timeout\":9000}", 120);
  cr_assert_str_eq(rt_state(v), "failed");
  cr_assert(strstr(reason(v), "timed out after 9000"), "reason: %s", reason(v));
  wait_clean();
  char key[256];
  key_of(v, "fee-collection", "xlsx", key, sizeof key);
  cr_assert_not(rt_exists(&E, key));
  json_decref(v);
  rt_worker_stop(&E);
  t_peer_stop(&proxy);
}

/* Bad input: failed at once although 3 attempts were allowed, a reason a
 * person can act on, and nothing written. */
static void bad(const char *name, const char *data, const char *want, const char *ext) {
  json_t *v = rt_job(&E, name, data, "{\"attempts\":3,\"backoff\":10}", 60);
  cr_assert_str_eq(rt_state(v), "failed", "%s completed", data);
  cr_assert_eq(rt_int(v, "attemptsMade"), 1, "%s was retried", data);
  cr_assert(strstr(reason(v), want), "%s: reason '%s' lacks '%s'", data, reason(v), want);
  char key[256];
  int64_t school = rt_int(json_object_get(v, "data"), "schoolId");
  snprintf(key, sizeof key, "%s/%lld/2026-04/%s-%s.%s", E.key_prefix, (long long)school,
           json_string_value(json_object_get(v, "id")), name, ext);
  cr_assert_not(rt_exists(&E, key), "%s wrote %s", data, key);
  json_decref(v);
}

Test(reports_faults, bad_input_fails_at_once_and_writes_nothing) {
  rt_worker_start(&E, NULL, NULL);
  bad("fee-collection",
      "{\"schoolId\":999,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"csv\"}",
      "unknown school 999", "csv");
  bad("fee-collection",
      "{\"schoolId\":1,\"from\":\"2026-04-30\",\"to\":\"2026-04-01\",\"format\":\"csv\"}",
      "from must not be after", "csv");
  bad("fee-collection",
      "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"docx\"}",
      "format", "docx");
  bad("fee-collection",
      "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-31\",\"format\":\"csv\"}", "date",
      "csv");
  bad("fee-collection",
      "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"csv\","
      "\"colour\":\"red\"}",
      "colour", "csv");
  int64_t other_class = rt_q64(&E, "SELECT MIN(id) FROM classes WHERE school_id = 2");
  int64_t other_student = rt_q64(&E, "SELECT MIN(id) FROM students WHERE school_id = 2");
  char data[256];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"asOf\":\"2026-04-30\",\"classId\":%lld,\"format\":\"csv\"}",
           (long long)other_class);
  bad("defaulters", data, "is not a class of school 1", "csv");
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"studentId\":%lld,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\","
           "\"format\":\"pdf\"}",
           (long long)other_student);
  bad("fee-statement", data, "is not a student of school 1", "pdf");
  bad("fee-statement",
      "{\"schoolId\":1,\"studentId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\","
      "\"format\":\"csv\"}",
      "format", "csv");
  cr_assert_eq(rt_tmp_left(&E), 0);
}

Test(reports_faults, pdf_over_the_row_limit_is_refused_first) {
  const char *env[] = {"ERPQ_REPORT_PDF_MAX_ROWS=10", NULL};
  rt_worker_start(&E, NULL, env);
  bad("fee-collection",
      "{\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\",\"format\":\"pdf\"}",
      "more than a PDF may hold", "pdf");
  /* The same report as CSV is fine. */
  json_t *v = rt_job(&E, "fee-collection", APRIL_CSV, NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", reason(v));
  json_decref(v);
}

/* The upload stalls (an S3 part never answered): the database does not
 * keep the job's result open meanwhile. After ERPQ_REPORT_DB_STALL_TIMEOUT
 * (2 s here) of nobody reading, the server drops the query, long before
 * the S3 stall limit (20 s) ends the part; then the job fails, and no
 * object exists. */
Test(reports_faults, stalled_upload_does_not_hold_the_result) {
  rt_add_payments(&E, 1, BIG);
  t_peer proxy;
  start_proxy(&proxy, "--stall-part", "1");
  const char *env[] = {"ERPQ_S3_PART_SIZE=5242880", "ERPQ_REPORT_DB_STALL_TIMEOUT=2",
                       "ERPQ_S3_STALL_TIMEOUT=20", NULL};
  rt_worker_start(&E, proxy.url, env);
  char *id = rt_add(&E, "fee-collection", APRIL_CSV, NULL);
  int64_t end = now_ms() + 30000, tid = 0;
  while (!(tid = streaming_thread()) && now_ms() < end)
    usleep(20000);
  cr_assert_gt(tid, 0, "the job's query never waited on the client");
  int64_t t0 = now_ms();
  while (rt_q64(&E, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %lld",
                (long long)tid) > 0 &&
         now_ms() - t0 < 15000)
    usleep(100000);
  int64_t held = now_ms() - t0;
  cr_assert_lt(held, 15000, "the server kept the stalled job's result for %lld ms",
               (long long)held);
  json_t *mid = rt_status(&E, id);
  cr_assert_str_eq(rt_state(mid), "active", "the job ended before the server dropped its query");
  json_decref(mid);
  json_t *v = rt_wait(&E, id, 120);
  cr_assert_str_eq(rt_state(v), "failed");
  cr_log_info("dropped after %lld ms; job: %s", (long long)held, reason(v));
  char key[256];
  key_of(v, "fee-collection", "csv", key, sizeof key);
  cr_assert_not(rt_exists(&E, key));
  free(id);
  json_decref(v);
  rt_worker_stop(&E);
  t_peer_stop(&proxy);
}
