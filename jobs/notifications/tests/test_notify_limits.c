/*
 * test_notify_limits.c - the provider gate and circuit breaker
 * (erpq_notify_limits.h, lua/gate.lua, lua/report.lua) against a real
 * Redis (ERPQ_TEST_REDIS_URL): sliding-window rate limit, also with four
 * threads hammering it, the daily limit, the breaker's closed -> open ->
 * half-open (one probe) -> closed / reopened-for-longer cycle, a
 * provider's hold (429), the NOSCRIPT fallback and key separation.
 */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_notify_limits.h"
#include "erpq_util.h"
#include "notify_test_util.h"

static redisContext *connect_redis(void) {
  erpq_redis_addr a;
  char err[256];
  cr_assert_eq(erpq_redis_url_parse(nt_env("ERPQ_TEST_REDIS_URL"), &a, err, sizeof err), 0, "%s",
               err);
  redisContext *c = a.unix_path[0] ? redisConnectUnix(a.unix_path) : redisConnect(a.host, a.port);
  cr_assert(c && !c->err, "cannot connect to Redis");
  if (a.db)
    freeReplyObject(redisCommand(c, "SELECT %d", a.db));
  return c;
}

static int hr_call(void *ud, erpq_cmd *cmd, redisReply **reply, char *err, size_t errlen) {
  const char **argv;
  const size_t *lens;
  int argc = erpq_cmd_argv(cmd, &argv, &lens);
  if (argc < 0) {
    erpq_cmd_free(cmd);
    return erpq_fail(err, errlen, argc, "bad command");
  }
  *reply = redisCommandArgv(ud, argc, argv, lens);
  erpq_cmd_free(cmd);
  return *reply ? 0 : erpq_fail(err, errlen, -ENOTCONN, "Redis went away");
}

static char g_prefix[64];

static void setup(void) {
  snprintf(g_prefix, sizeof g_prefix, "lt%d_%06x", (int)getpid(),
           (unsigned)(erpq_mono_ms() & 0xffffff));
}

static void msleep(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static nt_limits_conf conf(int64_t per_window, int64_t per_day) {
  nt_limits_conf c = {per_window, 1050, per_day, 3, 400, 1600, 300};
  return c;
}

static nt_gate gate(redisContext *rc, nt_limits *l, int64_t n) {
  nt_gate g;
  char err[256];
  cr_assert_eq(nt_limits_gate(l, n, erpq_now_ms(), hr_call, rc, &g, err, sizeof err), 0, "%s", err);
  return g;
}

static nt_report report(redisContext *rc, nt_limits *l, const char *o, int64_t hold) {
  nt_report r;
  char err[256];
  cr_assert_eq(nt_limits_report(l, o, hold, hr_call, rc, &r, err, sizeof err), 0, "%s", err);
  return r;
}

TestSuite(limits, .init = setup);

Test(limits, rate_is_a_sliding_window) {
  redisContext *rc = connect_redis();
  nt_limits l;
  nt_limits_conf c = conf(5, 0);
  cr_assert_eq(nt_limits_init(&l, g_prefix, "sms-a", &c), 0);
  cr_assert(nt_limits_counting(&l));
  nt_gate g = gate(rc, &l, 3);
  cr_expect_eq(g.granted, 3);
  g = gate(rc, &l, 3);
  cr_expect_eq(g.granted, 2, "only 5 per window");
  cr_expect_str_eq(g.reason, "rate", "a cut batch says why");
  cr_expect(g.wait_ms > 900 && g.wait_ms <= 1050, "and for how long: %" PRId64, g.wait_ms);
  g = gate(rc, &l, 1);
  cr_expect_eq(g.granted, 0);
  cr_expect_str_eq(g.reason, "rate");
  cr_expect(g.wait_ms > 900 && g.wait_ms <= 1050, "wait %" PRId64, g.wait_ms);
  msleep(g.wait_ms + 5);
  g = gate(rc, &l, 10);
  cr_expect_eq(g.granted, 5, "the window slid past the first grants");
  redisFree(rc);
}

typedef struct hammer {
  nt_limits *l;
  int64_t times[4000];
  int n;
} hammer;

static void *hammer_main(void *arg) {
  hammer *h = arg;
  redisContext *rc = connect_redis();
  int64_t end = erpq_mono_ms() + 2500;
  while (erpq_mono_ms() < end && h->n < 3900) {
    nt_gate g;
    char err[256];
    if (nt_limits_gate(h->l, 1 + (h->n % 3), erpq_now_ms(), hr_call, rc, &g, err, sizeof err))
      break;
    int64_t t = erpq_mono_ms();
    for (int64_t i = 0; i < g.granted; i++)
      h->times[h->n++] = t;
    if (!g.granted)
      msleep(g.wait_ms < 20 ? g.wait_ms : 20);
  }
  redisFree(rc);
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

Test(limits, four_clients_together_stay_under_the_rate) {
  nt_limits l;
  nt_limits_conf c = conf(20, 0);
  cr_assert_eq(nt_limits_init(&l, g_prefix, "smtp-b", &c), 0);
  static hammer h[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    h[i].l = &l;
    h[i].n = 0;
    pthread_create(&th[i], NULL, hammer_main, &h[i]);
  }
  int64_t all[16000];
  int n = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    for (int k = 0; k < h[i].n; k++)
      all[n++] = h[i].times[k];
  }
  qsort(all, (size_t)n, sizeof *all, cmp64);
  /* 2.5 s at 20 per 1.05 s: about 3 windows' worth, never more in any 1 s. */
  cr_expect(n >= 40 && n <= 60, "%d grants", n);
  int worst = 0;
  for (int i = 0, j = 0; i < n; i++) {
    while (all[i] - all[j] >= 1000)
      j++;
    if (i - j + 1 > worst)
      worst = i - j + 1;
  }
  cr_expect_leq(worst, 20, "%d grants within one second", worst);
  cr_expect_eq(worst, 20, "the limit is reached, not only approached");
}

Test(limits, daily_limit) {
  redisContext *rc = connect_redis();
  nt_limits l;
  nt_limits_conf c = conf(0, 4);
  cr_assert_eq(nt_limits_init(&l, g_prefix, "sms-day", &c), 0);
  cr_expect_eq(gate(rc, &l, 3).granted, 3);
  nt_gate g = gate(rc, &l, 3);
  cr_expect_eq(g.granted, 1);
  cr_expect_str_eq(g.reason, "day");
  g = gate(rc, &l, 1);
  cr_expect_eq(g.granted, 0);
  cr_expect_str_eq(g.reason, "day");
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  int64_t left = (86400 - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec)) * 1000LL;
  cr_expect(g.wait_ms <= left && g.wait_ms > left - 5000, "wait %" PRId64 " vs %" PRId64, g.wait_ms,
            left);
  /* The day's counter is a key of its own, with an expiry. */
  char key[300];
  snprintf(key, sizeof key, "%s%04d%02d%02d", l.key_day, tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday);
  redisReply *r = redisCommand(rc, "GET %s", key);
  cr_expect_str_eq(r->str, "4");
  freeReplyObject(r);
  r = redisCommand(rc, "TTL %s", key);
  cr_expect(r->integer > 86400 && r->integer <= 2 * 86400);
  freeReplyObject(r);
  redisFree(rc);
}

Test(limits, breaker_opens_probes_and_closes) {
  redisContext *rc = connect_redis();
  nt_limits l;
  nt_limits_conf c = conf(0, 0);
  cr_assert_eq(nt_limits_init(&l, g_prefix, "smtp-brk", &c), 0);
  cr_assert(!nt_limits_counting(&l));
  nt_report r = report(rc, &l, "FF", 0);
  cr_expect_str_eq(r.state, "closed");
  cr_expect_eq(r.fails, 2);
  r = report(rc, &l, "S", 0);
  cr_expect_eq(r.fails, 0, "an accepted message resets the count");
  r = report(rc, &l, "FFF", 0);
  cr_expect_str_eq(r.state, "open");
  cr_expect_str_eq(r.changed, "opened");
  cr_expect(r.open_left_ms > 300 && r.open_left_ms <= 400);
  nt_gate g = gate(rc, &l, 5);
  cr_expect_eq(g.granted, 0);
  cr_expect_str_eq(g.reason, "open");
  cr_expect(g.wait_ms > 0 && g.wait_ms <= 400);
  msleep(g.wait_ms + 5);
  /* Half-open: one probe for the first caller, the others wait. */
  g = gate(rc, &l, 5);
  cr_expect_eq(g.granted, 1);
  cr_expect_eq(g.probe, 1);
  cr_expect_str_eq(g.state, "half");
  cr_expect_str_eq(g.reason, "probe", "the rest waits for the probe");
  nt_gate g2 = gate(rc, &l, 5);
  cr_expect_eq(g2.granted, 0);
  cr_expect_str_eq(g2.reason, "probe");
  /* The probe fails: open again, twice as long. */
  r = report(rc, &l, "F", 0);
  cr_expect_str_eq(r.state, "open");
  cr_expect(r.open_left_ms > 700 && r.open_left_ms <= 800, "%" PRId64, r.open_left_ms);
  msleep(r.open_left_ms + 5);
  g = gate(rc, &l, 5);
  cr_expect_eq(g.probe, 1);
  r = report(rc, &l, "S", 0);
  cr_expect_str_eq(r.state, "closed");
  cr_expect_str_eq(r.changed, "closed");
  g = gate(rc, &l, 5);
  cr_expect_eq(g.granted, 5);
  cr_expect_eq(g.probe, 0);
  /* Closed with no failures: the hash is gone. */
  redisReply *x = redisCommand(rc, "EXISTS %s", l.key_brk);
  cr_expect_eq(x->integer, 0);
  freeReplyObject(x);
  redisFree(rc);
}

Test(limits, a_lost_probe_expires) {
  redisContext *rc = connect_redis();
  nt_limits l;
  nt_limits_conf c = conf(0, 0);
  c.threshold = 1;
  c.open_ms = 100;
  c.probe_ms = 200;
  cr_assert_eq(nt_limits_init(&l, g_prefix, "sms-lost", &c), 0);
  report(rc, &l, "F", 0);
  msleep(110);
  cr_expect_eq(gate(rc, &l, 3).probe, 1);
  cr_expect_eq(gate(rc, &l, 3).granted, 0, "the probe is out");
  msleep(210); /* its worker died: no report ever comes */
  nt_gate g = gate(rc, &l, 3);
  cr_expect_eq(g.granted, 1);
  cr_expect_eq(g.probe, 1, "another caller probes");
  redisFree(rc);
}

Test(limits, a_hold_stops_everybody) {
  redisContext *rc = connect_redis();
  nt_limits l;
  nt_limits_conf c = conf(0, 0);
  cr_assert_eq(nt_limits_init(&l, g_prefix, "sms-hold", &c), 0);
  nt_report r = report(rc, &l, "", 300);
  cr_expect_str_eq(r.state, "closed");
  nt_gate g = gate(rc, &l, 2);
  cr_expect_eq(g.granted, 0);
  cr_expect_str_eq(g.reason, "hold");
  cr_expect(g.wait_ms > 200 && g.wait_ms <= 300);
  msleep(g.wait_ms + 5);
  cr_expect_eq(gate(rc, &l, 2).granted, 2);
  redisFree(rc);
}

Test(limits, noscript_falls_back_to_eval_and_keys_are_separate) {
  redisContext *rc = connect_redis();
  nt_limits a, b;
  nt_limits_conf c = conf(2, 0);
  cr_assert_eq(nt_limits_init(&a, g_prefix, "smtp-x", &c), 0);
  cr_assert_eq(nt_limits_init(&b, g_prefix, "smtp-y", &c), 0);
  freeReplyObject(redisCommand(rc, "SCRIPT FLUSH"));
  cr_expect_eq(gate(rc, &a, 2).granted, 2);
  cr_expect_eq(gate(rc, &b, 2).granted, 2, "another provider has its own window");
  cr_expect_eq(gate(rc, &a, 1).granted, 0);
  nt_limits bad;
  cr_expect_neq(nt_limits_init(&bad, g_prefix, "smtp x", &c), 0);
  cr_expect_neq(nt_limits_init(&bad, g_prefix, "", &c), 0);
  redisFree(rc);
}
