/*
 * test_s3_faults.c - the S3 client when things go wrong, with
 * tests/faultproxy.py in front of s3rver: a part answered 500 (or 503) is
 * retried and the object is still right; a 403 is final; a "200 OK"
 * to CompleteMultipartUpload carrying an <Error> is a failure (retried
 * when its code says so); a part the server never answers fails after
 * the stall timeout and is retried; put_file keeps
 * several parts in flight; S3 down (a closed port) fails clearly and
 * leaves no object; a cancelled upload (streaming or file) stops within a
 * fraction of a second, is aborted and leaves no object.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_s3.h"
#include "erpq_util.h"
#include "s3_test_util.h"

#define PART (64 * 1024)

/* Lines the client logged (retries, refused aborts). */
static char logged[8192];
static void log_line(void *ud, const char *msg) {
  (void)ud;
  strncat(logged, msg, sizeof logged - strlen(logged) - 2);
  strcat(logged, "\n");
}

static erpq_s3 *via(const t_peer *proxy, uint64_t part) {
  erpq_s3_conf c;
  t_s3_conf(&c, proxy ? proxy->url : NULL);
  c.part_size = part;
  c.log = log_line;
  return t_s3_new(&c);
}

static json_t *proxy_stats(const t_peer *p) {
  char url[128], *body = NULL;
  snprintf(url, sizeof url, "%s/__stats", p->url);
  cr_assert_eq(t_http_get(url, &body, NULL, NULL, 0), 200);
  json_error_t je;
  json_t *s = json_loads(body, 0, &je);
  cr_assert_not_null(s, "%s", je.text);
  free(body);
  return s;
}

static long stat_of(json_t *s, const char *name) {
  return (long)json_integer_value(json_object_get(s, name));
}

static void assert_object(const erpq_s3 *direct, const char *key, const unsigned char *data,
                          size_t n) {
  size_t got;
  unsigned char *back = t_get(direct, key, &got);
  cr_assert_eq(got, n);
  cr_assert_eq(memcmp(back, data, n), 0, "the object differs from what was uploaded");
  free(back);
}

static void assert_no_object(const char *key) {
  erpq_s3 *direct = via(NULL, PART);
  erpq_s3_info h;
  char err[256];
  cr_assert_eq(erpq_s3_head(direct, key, &h, err, sizeof err), 0, "%s", err);
  cr_assert_eq(h.exists, 0, "an object was left behind");
  erpq_s3_free(direct);
}

static int stream(const erpq_s3 *s3, const char *key, const unsigned char *data, size_t n,
                  const erpq_s3_cancel *cancel, erpq_s3_result *r, char *err, size_t errlen) {
  erpq_s3_upload *u = NULL;
  int rc = erpq_s3_upload_begin(s3, key, "text/csv", NULL, cancel, &u, err, errlen);
  cr_assert_eq(rc, 0, "%s", err);
  for (size_t off = 0; off < n; off += 10000) {
    size_t k = n - off < 10000 ? n - off : 10000;
    if ((rc = erpq_s3_upload_write(u, data + off, k, err, errlen))) {
      erpq_s3_upload_abort(u);
      return rc;
    }
  }
  return erpq_s3_upload_finish(u, r, err, errlen);
}

static void retried_part(const char *status) {
  t_peer proxy;
  const char *up = getenv("ERPQ_TEST_S3_URL");
  cr_assert(up && *up, "ERPQ_TEST_S3_URL is not set");
  const char *args[] = {"--upstream", up, "--fail-part", "2", "--fail-status", status, NULL};
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, PART);
  size_t n = 5 * PART + 99;
  unsigned char *data = t_data(n, 5);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/retry");
  erpq_s3_result r;
  logged[0] = '\0';
  cr_assert_eq(stream(s3, key, data, n, NULL, &r, err, sizeof err), 0, "%s", err);
  cr_assert_eq(r.parts, 6);
  json_t *s = proxy_stats(&proxy);
  cr_assert_eq(stat_of(s, "injected"), 1);
  cr_assert_eq(stat_of(s, "parts"), 7, "six parts and one retry");
  json_decref(s);
  cr_assert(strstr(logged, "UploadPart 2: attempt 1 of 5 failed") != NULL, "log: %s", logged);
  cr_assert(strstr(logged, status) != NULL, "the log gives the status: %s", logged);
  cr_assert(strstr(logged, "X-Amz-Signature") == NULL && strstr(logged, key) == NULL,
            "no URL or key in the log: %s", logged);
  assert_object(s3, key, data, n);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

Test(s3_faults, part_500_is_retried, .timeout = 60) { retried_part("500"); }

Test(s3_faults, part_503_is_retried, .timeout = 60) { retried_part("503"); }

Test(s3_faults, part_403_is_final, .timeout = 60) {
  t_peer proxy;
  const char *args[] = {
      "--upstream", getenv("ERPQ_TEST_S3_URL"), "--fail-part", "1", "--fail-status", "403", NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, PART);
  size_t n = 3 * PART;
  unsigned char *data = t_data(n, 6);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/forbidden");
  cr_assert_eq(stream(s3, key, data, n, NULL, NULL, err, sizeof err), -EACCES);
  cr_assert(strstr(err, "UploadPart 1") && strstr(err, "403"), "%s", err);
  json_t *s = proxy_stats(&proxy);
  cr_assert_eq(stat_of(s, "parts"), 1, "a 403 is not retried");
  json_decref(s);
  assert_no_object(key);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

Test(s3_faults, put_file_parallel_parts_and_retry, .timeout = 60) {
  t_peer proxy;
  const char *args[] = {
      "--upstream", getenv("ERPQ_TEST_S3_URL"), "--part-delay-ms", "150", "--fail-part", "3", NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, PART);
  size_t n = 11 * PART + 1;
  unsigned char *data = t_data(n, 9);
  char *path = t_write_temp(data, n);
  char key[128], err[256], sha[65];
  t_key(key, sizeof key, "reports/parallel");
  erpq_s3_result r;
  int64_t t0 = erpq_mono_ms();
  cr_assert_eq(erpq_s3_put_file(s3, key, path, "application/pdf", NULL, NULL, &r, err, sizeof err),
               0, "%s", err);
  int64_t ms = erpq_mono_ms() - t0;
  cr_log_info("12 parts of 150 ms in %lld ms", (long long)ms);
  cr_assert_eq(r.parts, 12);
  t_sha256(data, n, sha);
  cr_assert_str_eq(r.sha256, sha);
  json_t *s = proxy_stats(&proxy);
  long par = stat_of(s, "max_parallel");
  cr_assert(par >= 2 && par <= 4, "parts in flight at once: %ld", par);
  cr_assert_eq(stat_of(s, "parts"), 13, "twelve parts and one retry");
  json_decref(s);
  /* Twelve parts of 150 ms one by one would take 1.8 s. */
  cr_assert_lt(ms, 1500, "took %lld ms: the parts did not overlap", (long long)ms);
  assert_object(s3, key, data, n);
  unlink(path);
  free(path);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

Test(s3_faults, stalled_part_times_out_and_is_retried, .timeout = 60) {
  t_peer proxy;
  const char *args[] = {"--upstream", getenv("ERPQ_TEST_S3_URL"), "--stall-part", "2", NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3_conf c;
  t_s3_conf(&c, proxy.url);
  c.part_size = PART;
  c.stall_timeout_s = 1;
  c.log = log_line;
  erpq_s3 *s3 = t_s3_new(&c);
  size_t n = 3 * PART + 5;
  unsigned char *data = t_data(n, 12);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/stalled");
  logged[0] = '\0';
  int64_t t0 = erpq_mono_ms();
  cr_assert_eq(stream(s3, key, data, n, NULL, NULL, err, sizeof err), 0, "%s", err);
  int64_t ms = erpq_mono_ms() - t0;
  cr_assert(strstr(logged, "UploadPart 2: attempt 1 of 5 failed") && strstr(logged, "timed out"),
            "log: %s", logged);
  /* curl averages the speed over about five seconds: a stall is noticed
   * between stall_timeout_s and stall_timeout_s + 5 s. */
  cr_log_info("stalled part given up and retried; upload took %lld ms", (long long)ms);
  cr_assert(ms >= 1000 && ms < 10000, "took %lld ms", (long long)ms);
  json_t *s = proxy_stats(&proxy);
  cr_assert_eq(stat_of(s, "injected"), 1);
  json_decref(s);
  assert_object(s3, key, data, n);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

/* "200 OK" with an <Error> body to CompleteMultipartUpload. */
static void complete_error(const char *code, int want_rc) {
  t_peer proxy;
  const char *args[] = {"--upstream", getenv("ERPQ_TEST_S3_URL"), "--complete-error", code, NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, PART);
  size_t n = 2 * PART + 10;
  unsigned char *data = t_data(n, 8);
  char key[128], err[256] = "";
  t_key(key, sizeof key, "reports/complete");
  int rc = stream(s3, key, data, n, NULL, NULL, err, sizeof err);
  cr_assert_eq(rc, want_rc, "rc %d: %s", rc, err);
  json_t *s = proxy_stats(&proxy);
  cr_assert_eq(stat_of(s, "injected"), 1);
  if (want_rc == 0) {
    cr_assert_eq(stat_of(s, "completes"), 2, "retried after the <Error>");
    assert_object(s3, key, data, n);
  } else {
    cr_assert(strstr(err, "CompleteMultipartUpload") && strstr(err, code), "%s", err);
    cr_assert_eq(stat_of(s, "completes"), 1, "a final error is not retried");
    assert_no_object(key);
  }
  json_decref(s);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

Test(s3_faults, complete_200_with_error_is_a_failure, .timeout = 60) {
  complete_error("InvalidPart", -EIO);
}

Test(s3_faults, complete_200_with_internal_error_is_retried, .timeout = 60) {
  complete_error("InternalError", 0);
}

/* A port of the task's range that nothing listens on. */
static int closed_port(void) {
  const char *b = getenv("ERPQ_TEST_PORT_BASE"), *m = getenv("ERPQ_TEST_PORT_MAX");
  int base = b ? atoi(b) : 16400, max = m ? atoi(m) : 16999;
  for (int port = max; port >= base; port--) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok)
      return port;
  }
  cr_assert_fail("no free port");
  return 0;
}

Test(s3_faults, s3_down_fails_clearly, .timeout = 60) {
  t_peer dead = {0};
  dead.port = closed_port();
  snprintf(dead.url, sizeof dead.url, "http://127.0.0.1:%d", dead.port);
  erpq_s3 *s3 = via(&dead, PART);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/down");
  logged[0] = '\0';
  int64_t t0 = erpq_mono_ms();
  int rc = stream(s3, key, (const unsigned char *)"a,b\n", 4, NULL, NULL, err, sizeof err);
  cr_assert_eq(rc, -ECONNREFUSED, "rc %d: %s", rc, err);
  cr_assert(strstr(err, "PutObject") && strstr(err, "cannot connect"), "%s", err);
  cr_assert(strstr(logged, "attempt 4 of 5 failed") != NULL, "retried before giving up: %s",
            logged);
  cr_assert_lt(erpq_mono_ms() - t0, 10000);
  /* A multipart upload fails at CreateMultipartUpload the same way. */
  size_t n = 2 * PART + 1;
  unsigned char *data = t_data(n, 1);
  rc = stream(s3, key, data, n, NULL, NULL, err, sizeof err);
  cr_assert_eq(rc, -ECONNREFUSED, "rc %d: %s", rc, err);
  cr_assert(strstr(err, "CreateMultipartUpload") != NULL, "%s", err);
  assert_no_object(key);
  free(data);
  erpq_s3_free(s3);
}

/* A cancel flag raised by a timer thread; cancelled_at records when. */
static atomic_int flag;
static atomic_llong cancelled_at;
static int is_cancelled(void *ud) {
  (void)ud;
  return atomic_load(&flag);
}
static void *raise_later(void *ud) {
  struct timespec ts = {0, (long)(intptr_t)ud * 1000000L};
  nanosleep(&ts, NULL);
  atomic_store(&cancelled_at, (long long)erpq_mono_ms());
  atomic_store(&flag, 1);
  return NULL;
}

Test(s3_faults, cancelled_stream_stops_fast, .timeout = 60) {
  t_peer proxy;
  const char *args[] = {"--upstream", getenv("ERPQ_TEST_S3_URL"), "--slow-bps", "200000", NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, 256 * 1024);
  size_t n = 4 * 1024 * 1024; /* 20 s at 200 kB/s. */
  unsigned char *data = t_data(n, 2);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/cancelled");
  atomic_store(&flag, 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, raise_later, (void *)(intptr_t)700), 0);
  erpq_s3_cancel cancel = {is_cancelled, NULL};
  logged[0] = '\0';
  int rc = stream(s3, key, data, n, &cancel, NULL, err, sizeof err);
  int64_t stopped = erpq_mono_ms();
  pthread_join(th, NULL);
  cr_assert_eq(rc, -ECANCELED, "rc %d: %s", rc, err);
  long long lag = stopped - atomic_load(&cancelled_at);
  cr_log_info("stopped %lld ms after the cancel", lag);
  cr_assert_lt(lag, 500, "stopped %lld ms after the cancel (abort included)", lag);
  cr_assert(strstr(logged, "AbortMultipartUpload refused") != NULL,
            "s3rver refuses the abort (405) and we only log it: %s", logged);
  assert_no_object(key);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}

Test(s3_faults, cancelled_put_file_stops_fast, .timeout = 60) {
  t_peer proxy;
  const char *args[] = {"--upstream", getenv("ERPQ_TEST_S3_URL"), "--slow-bps", "200000", NULL};
  cr_assert_not_null(args[1], "ERPQ_TEST_S3_URL is not set");
  t_peer_start(&proxy, "faultproxy.py", args);
  erpq_s3 *s3 = via(&proxy, 512 * 1024);
  size_t n = 4 * 1024 * 1024;
  unsigned char *data = t_data(n, 4);
  char *path = t_write_temp(data, n);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/cancelled-file");
  atomic_store(&flag, 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, raise_later, (void *)(intptr_t)500), 0);
  erpq_s3_cancel cancel = {is_cancelled, NULL};
  int rc = erpq_s3_put_file(s3, key, path, NULL, NULL, &cancel, NULL, err, sizeof err);
  int64_t stopped = erpq_mono_ms();
  pthread_join(th, NULL);
  cr_assert_eq(rc, -ECANCELED, "rc %d: %s", rc, err);
  long long lag = stopped - atomic_load(&cancelled_at);
  cr_log_info("stopped %lld ms after the cancel", lag);
  cr_assert_lt(lag, 500, "stopped %lld ms after the cancel (abort included)", lag);
  assert_no_object(key);
  unlink(path);
  free(path);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&proxy);
}
