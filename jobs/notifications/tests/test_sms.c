/* The SMS client against the recording gateway stand-in (sms_gateway.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_sms.h"
#include "erpq_testkit.h"
#include "erpq_util.h"

#define SID "AC0123456789abcdef"
#define TOKEN "t0ken-Secret"
#define FROM "+15557654321"

static test_peer gw;
static char base[64];

static void start_gw(void) {
  char *script = test_source_path("jobs/notifications/tests/sms_gateway.py");
  char *argv[] = {(char *)"/usr/bin/python3",
                  script,
                  (char *)"--sid",
                  (char *)SID,
                  (char *)"--token",
                  (char *)TOKEN,
                  NULL};
  test_peer_start(&gw, argv, 20000);
  free(script);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", test_peer_port(&gw));
}

static void stop_gw(void) { test_peer_stop(&gw); }

TestSuite(sms, .init = start_gw, .fini = stop_gw, .timeout = 300);

/* ---- A client with a settings table ---------------------------------------------- */

typedef struct kv {
  const char *k, *v;
} kv;

static const char *lookup(void *ud, const char *name) {
  for (const kv *p = ud; p->k; p++)
    if (!strcmp(p->k, name))
      return p->v;
  return NULL;
}

typedef struct results results;
typedef struct slot {
  results *rs;
  erpq_sms_result r;
} slot;

struct results {
  pthread_mutex_t mu;
  slot *s;
  int n, done;
};

/* Runs on the runner thread; the result lives only during the call. */
static void on_result(const erpq_sms_result *r, void *ud) {
  slot *sl = ud;
  sl->r = *r;
  pthread_mutex_lock(&sl->rs->mu);
  sl->rs->done++;
  pthread_mutex_unlock(&sl->rs->mu);
}

typedef struct client {
  erpq_curl_async *a;
  erpq_sms *s;
  results rs;
} client;

static void client_new(client *c, const char *token, const char *conns, const char *timeout,
                       int n) {
  static char conns_s[16], timeout_s[16];
  memset(c, 0, sizeof *c);
  snprintf(conns_s, sizeof conns_s, "%s", conns);
  snprintf(timeout_s, sizeof timeout_s, "%s", timeout);
  kv conf[] = {{"ERPQ_SMS_URL", base},
               {"ERPQ_SMS_ACCOUNT_SID", SID},
               {"ERPQ_SMS_AUTH_TOKEN", token},
               {"ERPQ_SMS_FROM", FROM},
               {"ERPQ_SMS_CONNECTIONS", conns_s},
               {"ERPQ_SMS_TIMEOUT_MS", timeout_s},
               {"ERPQ_SMS_THROTTLE_DEFAULT_MS", "1500"},
               {NULL, NULL}};
  char err[256];
  erpq_curl_async_conf rc = {.max_total_connections = 16};
  cr_assert_eq(erpq_curl_async_start(&c->a, &rc, err, sizeof err), 0, "%s", err);
  erpq_conf_src src = {lookup, conf};
  cr_assert_eq(erpq_sms_new(&c->s, c->a, &src, err, sizeof err), 0, "%s", err);
  pthread_mutex_init(&c->rs.mu, NULL);
  c->rs.n = n;
  c->rs.s = calloc((size_t)n, sizeof *c->rs.s);
  cr_assert(c->rs.s);
  for (int i = 0; i < n; i++)
    c->rs.s[i].rs = &c->rs;
}

static void send_one(client *c, int i, const char *to, const char *body) {
  char err[256];
  cr_assert_eq(erpq_sms_send(c->s, to, NULL, body, on_result, &c->rs.s[i], NULL, err, sizeof err),
               0, "%s", err);
}

/* Drains the runner, frees the client; the results stay in c->rs. */
static void client_finish(client *c) {
  cr_assert_eq(erpq_curl_async_stop(c->a, -1), 0);
  cr_assert_eq(erpq_sms_free(c->s), 0);
  cr_assert_eq(c->rs.done, c->rs.n, "every send got its callback (%d of %d)", c->rs.done, c->rs.n);
}

static void client_free(client *c) {
  free(c->rs.s);
  pthread_mutex_destroy(&c->rs.mu);
}

static json_t *recorded(void) {
  char url[128];
  snprintf(url, sizeof url, "%s/__requests", base);
  long st;
  char *body = test_http("GET", url, NULL, NULL, &st);
  cr_assert_eq(st, 200);
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  cr_assert(json_is_array(j));
  return j;
}

static void inject(const char *mode, int count, const char *retry_after) {
  char url[128], body[256];
  snprintf(url, sizeof url, "%s/__next", base);
  if (retry_after)
    snprintf(body, sizeof body, "{\"mode\":\"%s\",\"count\":%d,\"retry_after\":\"%s\"}", mode,
             count, retry_after);
  else
    snprintf(body, sizeof body, "{\"mode\":\"%s\",\"count\":%d}", mode, count);
  long st;
  free(test_http("POST", url, "application/json", body, &st));
  cr_assert_eq(st, 200);
}

static json_int_t gw_stat(const char *key) {
  char *line = test_peer_ask(&gw, "stats", 5000);
  json_t *j = json_loads(line, 0, NULL);
  cr_assert(j);
  json_int_t v = json_integer_value(json_object_get(j, key));
  json_decref(j);
  free(line);
  return v;
}

/* ---- Tests ---------------------------------------------------------------------------- */

Test(sms, thousands_of_sends_arrive_once_each_and_intact) {
  const char *env_n = getenv("ERPQ_TEST_SMS_N"); /* for measurements */
  int n = env_n ? atoi(env_n) : 2000;
  cr_assert(n > 0);
  client c;
  client_new(&c, TOKEN, "4", "30000", n);
  char to[32], body[160];
  double cpu0 = test_cpu_ms();
  int64_t t0 = erpq_mono_ms();
  for (int i = 0; i < n; i++) {
    snprintf(to, sizeof to, "+1555%07d", i);
    snprintf(body, sizeof body, "Fee #%d due: 1+1=2 & more %% ünï €, école=ok", i);
    send_one(&c, i, to, body);
  }
  client_finish(&c);
  int64_t ms = erpq_mono_ms() - t0;
  fprintf(stderr, "sms: %d requests in %lld ms = %.0f/s, CPU %.1f us/request, peak RSS %ld KiB\n",
          n, (long long)ms, n * 1000.0 / (ms ? ms : 1), (test_cpu_ms() - cpu0) * 1000.0 / n,
          test_peak_rss_kib());
  for (int i = 0; i < n; i++) {
    cr_assert_eq(c.rs.s[i].r.outcome, ERPQ_SMS_ACCEPTED, "send %d: %s", i, c.rs.s[i].r.message);
    cr_assert_eq(strncmp(c.rs.s[i].r.sid, "SM", 2), 0);
    cr_assert_eq(c.rs.s[i].r.http_status, 201);
  }
  json_t *recs = recorded();
  cr_assert_eq(json_array_size(recs), (size_t)n);
  char *seen = calloc((size_t)n, 1);
  size_t k;
  json_t *rec;
  json_array_foreach(recs, k, rec) {
    json_t *form = json_object_get(rec, "form");
    const char *rto = json_string_value(json_object_get(form, "To"));
    cr_assert(rto && strncmp(rto, "+1555", 5) == 0, "To arrived as '%s'", rto ? rto : "(none)");
    int i = atoi(rto + 5);
    cr_assert(i >= 0 && i < n && !seen[i], "To %s twice or unknown", rto);
    seen[i] = 1;
    snprintf(body, sizeof body, "Fee #%d due: 1+1=2 & more %% ünï €, école=ok", i);
    cr_assert_str_eq(json_string_value(json_object_get(form, "Body")), body);
    cr_assert_str_eq(json_string_value(json_object_get(form, "From")), FROM);
    cr_assert_str_eq(json_string_value(json_object_get(rec, "auth_user")), SID);
    cr_assert(json_is_true(json_object_get(rec, "auth_ok")));
    cr_assert_str_eq(json_string_value(json_object_get(rec, "content_type")),
                     "application/x-www-form-urlencoded");
    /* The sid the client reported is the one the gateway gave. */
    cr_assert_str_eq(json_string_value(json_object_get(rec, "sid")), c.rs.s[i].r.sid);
  }
  free(seen);
  json_decref(recs);
  json_int_t max_open = gw_stat("max_open");
  cr_expect(max_open >= 1 && max_open <= 4, "the gateway saw %lld connections at once",
            (long long)max_open);
  client_free(&c);
}

Test(sms, throttled_with_the_delay_the_gateway_asks_for) {
  inject("429", 1, "3");
  char date[64];
  time_t later = time(NULL) + 20;
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&later));
  client c;
  client_new(&c, TOKEN, "1", "30000", 1);
  send_one(&c, 0, "+15550000001", "a");
  client_finish(&c);
  inject("429", 1, date);
  inject("429", 1, NULL);
  client c2;
  client_new(&c2, TOKEN, "1", "30000", 2);
  send_one(&c2, 0, "+15550000002", "b");
  send_one(&c2, 1, "+15550000003", "c");
  client_finish(&c2);
  slot *r = c.rs.s;
  cr_expect_eq(r[0].r.outcome, ERPQ_SMS_THROTTLED);
  cr_expect_eq(r[0].r.http_status, 429);
  cr_expect_eq(r[0].r.error_code, 20429);
  cr_expect_eq(r[0].r.retry_after_ms, 3000);
  r = c2.rs.s;
  cr_expect_eq(r[0].r.outcome, ERPQ_SMS_THROTTLED);
  cr_expect(r[0].r.retry_after_ms > 15000 && r[0].r.retry_after_ms <= 20000, "date gave %lld ms",
            (long long)r[0].r.retry_after_ms);
  cr_expect_eq(r[1].r.outcome, ERPQ_SMS_THROTTLED);
  cr_expect_eq(r[1].r.retry_after_ms, 1500, "no header: the configured default");
  client_free(&c);
  client_free(&c2);
}

Test(sms, server_errors_are_temporary_and_bad_requests_permanent) {
  inject("500", 1, NULL);
  inject("400", 1, NULL);
  client c;
  client_new(&c, TOKEN, "1", "30000", 3);
  send_one(&c, 0, "+15550000010", "x");
  send_one(&c, 1, "+15550000011", "y");
  send_one(&c, 2, "+15550000012", "z");
  client_finish(&c);
  slot *r = c.rs.s;
  cr_expect_eq(r[0].r.outcome, ERPQ_SMS_TEMPORARY);
  cr_expect_eq(r[0].r.http_status, 500);
  cr_expect_eq(r[1].r.outcome, ERPQ_SMS_PERMANENT);
  cr_expect_eq(r[1].r.http_status, 400);
  cr_expect_eq(r[1].r.error_code, 21211);
  cr_expect(strstr(r[1].r.message, "is not a valid phone number"), "%s", r[1].r.message);
  cr_expect_null(strstr(r[1].r.message, "5550000011"), "the number leaked: %s", r[1].r.message);
  cr_expect_eq(r[2].r.outcome, ERPQ_SMS_ACCEPTED, "the gateway is fine again: %s", r[2].r.message);
  client_free(&c);
}

Test(sms, a_hung_gateway_times_out_as_temporary) {
  inject("hang", 1, NULL);
  client c;
  client_new(&c, TOKEN, "1", "1000", 1);
  int64_t t0 = erpq_mono_ms();
  send_one(&c, 0, "+15550000020", "hang");
  client_finish(&c);
  int64_t took = erpq_mono_ms() - t0;
  cr_expect_eq(c.rs.s[0].r.outcome, ERPQ_SMS_TEMPORARY);
  cr_expect_eq(c.rs.s[0].r.curl_code, 28 /* CURLE_OPERATION_TIMEDOUT */);
  cr_expect(took >= 950 && took < 5000, "took %lld ms", (long long)took);
  client_free(&c);
}

Test(sms, a_wrong_token_is_permanent_and_server_wide) {
  client c;
  client_new(&c, "not-the-token", "2", "30000", 2);
  send_one(&c, 0, "+15550000030", "a");
  send_one(&c, 1, "+15550000031", "b");
  client_finish(&c);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(c.rs.s[i].r.outcome, ERPQ_SMS_PERMANENT);
    cr_expect_eq(c.rs.s[i].r.http_status, 401);
    cr_expect_eq(c.rs.s[i].r.error_code, 20003);
    cr_expect_eq(c.rs.s[i].r.server_wide, 1);
    cr_expect_null(strstr(c.rs.s[i].r.message, "not-the-token"));
  }
  client_free(&c);
}

Test(sms, no_gateway_is_temporary) {
  /* A port nobody listens on: the gateway's, after it stopped. */
  stop_gw();
  client c;
  client_new(&c, TOKEN, "1", "5000", 1);
  send_one(&c, 0, "+15550000040", "a");
  client_finish(&c);
  cr_expect_eq(c.rs.s[0].r.outcome, ERPQ_SMS_TEMPORARY);
  cr_expect_eq(c.rs.s[0].r.curl_code, 7 /* CURLE_COULDNT_CONNECT */);
  cr_expect_eq(c.rs.s[0].r.server_wide, 1);
  client_free(&c);
  start_gw(); /* for the fini */
}

Test(sms, a_cancelled_send_completes_once_as_temporary) {
  inject("hang", 1, NULL);
  client c;
  client_new(&c, TOKEN, "1", "30000", 2);
  char err[256];
  uint64_t id1, id2;
  cr_assert_eq(
      erpq_sms_send(c.s, "+15550000050", NULL, "a", on_result, &c.rs.s[0], &id1, err, sizeof err),
      0);
  cr_assert_eq(
      erpq_sms_send(c.s, "+15550000051", NULL, "b", on_result, &c.rs.s[1], &id2, err, sizeof err),
      0);
  usleep(200000);
  cr_assert_eq(erpq_sms_cancel(c.s, id2), 0); /* queued behind the hung one */
  cr_assert_eq(erpq_sms_cancel(c.s, id1), 0);
  client_finish(&c);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(c.rs.s[i].r.outcome, ERPQ_SMS_TEMPORARY);
    cr_expect_str_eq(c.rs.s[i].r.message, "send cancelled");
  }
  cr_expect_eq(c.rs.s[0].r.id, id1);
  cr_expect_eq(c.rs.s[1].r.id, id2);
  client_free(&c);
}
