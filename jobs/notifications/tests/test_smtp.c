#define _GNU_SOURCE
/* The SMTP sender against maildev (the suite's, and a private one with
 * AUTH) and postfix's smtp-sink (error injection), with a counting TCP
 * proxy to see the SMTP sessions from the server side. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_smtp.h"
#include "erpq_testkit.h"
#include "erpq_util.h"

TestSuite(smtp, .timeout = 600);

/* ---- Peers ---------------------------------------------------------------------------- */

static void peer(test_peer *p, const char *mode, const char *const *extra) {
  char *script = test_source_path("jobs/notifications/tests/smtp_peers.py");
  char *argv[16] = {(char *)"/usr/bin/python3", script, (char *)mode};
  int n = 3;
  if (!strcmp(mode, "sink")) {
    argv[n++] = (char *)"--cache";
    argv[n++] = (char *)ERPQ_TEST_CACHE;
  }
  for (; extra && *extra && n < 15; extra++)
    argv[n++] = (char *)*extra;
  argv[n] = NULL;
  test_peer_start(p, argv, 180000); /* the first sink start downloads postfix */
  free(script);
}

static void sink(test_peer *p, const char *opt, const char *arg) {
  const char *extra[] = {opt, arg, NULL};
  peer(p, "sink", opt ? extra : NULL);
}

static json_t *peer_stats(test_peer *p) {
  char *line = test_peer_ask(p, "stats", 5000);
  json_t *j = json_loads(line, 0, NULL);
  cr_assert(j, "bad stats %s", line);
  free(line);
  return j;
}

static const char *need_env(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v, "%s is not set: start the test servers (scripts/lib/services.sh)", name);
  return v;
}

/* ---- A sender with a settings table ------------------------------------------------------ */

typedef struct kv {
  const char *k, *v;
} kv;

static const char *lookup(void *ud, const char *name) {
  for (const kv *p = ud; p->k; p++)
    if (!strcmp(p->k, name))
      return p->v;
  return NULL;
}

typedef struct sender sender;
typedef struct slot {
  sender *s;
  erpq_smtp_result r;
} slot;

struct sender {
  erpq_curl_async *a;
  erpq_smtp *smtp;
  pthread_mutex_t mu;
  slot *slots;
  int n, done;
};

static void on_result(const erpq_smtp_result *r, void *ud) {
  slot *sl = ud;
  sl->r = *r;
  pthread_mutex_lock(&sl->s->mu);
  sl->s->done++;
  pthread_mutex_unlock(&sl->s->mu);
}

static void sender_new(sender *s, kv *conf, int n) {
  memset(s, 0, sizeof *s);
  char err[256];
  erpq_curl_async_conf rc = {.max_total_connections = 16};
  cr_assert_eq(erpq_curl_async_start(&s->a, &rc, err, sizeof err), 0, "%s", err);
  erpq_conf_src src = {lookup, conf};
  cr_assert_eq(erpq_smtp_new(&s->smtp, s->a, &src, err, sizeof err), 0, "%s", err);
  pthread_mutex_init(&s->mu, NULL);
  s->n = n;
  s->slots = calloc((size_t)n, sizeof *s->slots);
  cr_assert(s->slots);
  for (int i = 0; i < n; i++)
    s->slots[i].s = s;
}

static char *message(int i, const char *tag) {
  char *m = NULL;
  cr_assert(asprintf(&m,
                     "From: School office <office@school.example>\r\n"
                     "To: <parent%d@example.org>\r\n"
                     "Subject: Fee reminder %s #%d\r\n"
                     "MIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "\r\n"
                     "Dear parent,\r\n"
                     ".a line that starts with a dot\r\n"
                     "body %d: the fee is due.\r\n",
                     i, tag, i, i) > 0);
  return m;
}

static void send_msg(sender *s, int i, const char *tag, uint64_t *id) {
  char rcpt[64], err[256];
  snprintf(rcpt, sizeof rcpt, "parent%d@example.org", i);
  const char *rcpts[] = {rcpt};
  char *m = message(i, tag);
  cr_assert_eq(erpq_smtp_send(s->smtp, "office@school.example", rcpts, 1, m, strlen(m), on_result,
                              &s->slots[i], id, err, sizeof err),
               0, "%s", err);
  free(m);
}

static void sender_finish(sender *s, erpq_smtp_stats *st) {
  cr_assert_eq(erpq_curl_async_stop(s->a, -1), 0);
  if (st)
    erpq_smtp_stats_get(s->smtp, st);
  cr_assert_eq(erpq_smtp_free(s->smtp), 0);
  cr_assert_eq(s->done, s->n, "every send got its callback (%d of %d)", s->done, s->n);
}

static void sender_free(sender *s) {
  free(s->slots);
  pthread_mutex_destroy(&s->mu);
}

/* Sends n messages through url with the given pool, returns the ms taken. */
static int64_t send_many(sender *s, const char *url, const char *conns, const char *per, int n,
                         const char *tag, erpq_smtp_stats *st) {
  kv conf[] = {{"ERPQ_SMTP_URL", url},
               {"ERPQ_SMTP_CONNECTIONS", conns},
               {"ERPQ_SMTP_MESSAGES_PER_CONNECTION", per},
               {NULL, NULL}};
  sender_new(s, conf, n);
  int64_t t0 = erpq_mono_ms();
  for (int i = 0; i < n; i++)
    send_msg(s, i, tag, NULL);
  sender_finish(s, st);
  return erpq_mono_ms() - t0;
}

/* ---- maildev -------------------------------------------------------------------------------- */

static char *maildev_url(const char *api, const char *path) {
  char *u = NULL;
  cr_assert(asprintf(&u, "%s%s", api, path) > 0);
  return u;
}

static void maildev_clear(const char *api) {
  char *u = maildev_url(api, "/email/all");
  long st;
  free(test_http("DELETE", u, NULL, NULL, &st));
  free(u);
  cr_assert_eq(st, 200);
}

static json_t *maildev_mails(const char *api) {
  char *u = maildev_url(api, "/email");
  long st;
  char *body = test_http("GET", u, NULL, NULL, &st);
  free(u);
  cr_assert_eq(st, 200);
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  cr_assert(json_is_array(j));
  return j;
}

/* Every message i of tag is in maildev once, with its envelope, subject
 * and body. */
static void check_maildev(const char *api, int n, const char *tag) {
  json_t *mails = maildev_mails(api);
  char *seen = calloc((size_t)n, 1);
  char want[128];
  int found = 0;
  size_t k;
  json_t *m;
  json_array_foreach(mails, k, m) {
    const char *subject = json_string_value(json_object_get(m, "subject"));
    snprintf(want, sizeof want, "Fee reminder %s #", tag);
    if (!subject || strncmp(subject, want, strlen(want)))
      continue;
    int i = atoi(subject + strlen(want));
    cr_assert(i >= 0 && i < n && !seen[i], "message %d twice or unknown", i);
    seen[i] = 1;
    found++;
    json_t *env = json_object_get(m, "envelope");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(env, "from"), "address")),
                     "office@school.example");
    json_t *to = json_object_get(env, "to");
    cr_assert_eq(json_array_size(to), 1);
    snprintf(want, sizeof want, "parent%d@example.org", i);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(to, 0), "address")), want);
    snprintf(want, sizeof want,
             "Dear parent,\n.a line that starts with a dot\nbody %d: the fee is due.\n", i);
    cr_assert_str_eq(json_string_value(json_object_get(m, "text")), want);
  }
  cr_assert_eq(found, n, "maildev holds %d of the %d messages", found, n);
  free(seen);
  json_decref(mails);
}

Test(smtp, a_thousand_mails_to_maildev_over_reused_sessions) {
  const char *url = need_env("ERPQ_TEST_SMTP_URL"), *api = need_env("ERPQ_TEST_MAILDEV_API");
  cr_assert_eq(strncmp(url, "smtp://", 7), 0);
  const char *target[] = {"--target", url + 7, NULL};
  test_peer proxy;
  peer(&proxy, "proxy", target);
  char purl[64];
  snprintf(purl, sizeof purl, "smtp://127.0.0.1:%d", test_peer_port(&proxy));
  maildev_clear(api);
  enum { N = 1000 };
  sender s;
  erpq_smtp_stats st;
  int64_t ms = send_many(&s, purl, "4", "100", N, "K1000", &st);
  fprintf(stderr, "smtp: %d mails to maildev through the proxy in %lld ms\n", N, (long long)ms);
  for (int i = 0; i < N; i++)
    cr_assert_eq(s.slots[i].r.outcome, ERPQ_SMTP_ACCEPTED, "mail %d: %s", i, s.slots[i].r.message);
  cr_expect_eq(st.accepted, N);
  cr_expect(st.sessions_open >= 1 && st.sessions_open <= 4, "%d idle sessions", st.sessions_open);
  /* The server side: at most 4 sessions at once, about N/100 in all, no
   * session carrying more than 100 messages. */
  json_t *ps = peer_stats(&proxy);
  json_int_t accepted = json_integer_value(json_object_get(ps, "accepted"));
  json_int_t max_open = json_integer_value(json_object_get(ps, "max_open"));
  json_t *mails = json_object_get(ps, "mails");
  json_int_t total = 0, most = 0;
  size_t k;
  json_t *v;
  json_array_foreach(mails, k, v) {
    total += json_integer_value(v);
    if (json_integer_value(v) > most)
      most = json_integer_value(v);
  }
  fprintf(stderr, "smtp: %lld sessions, at most %lld at once, at most %lld mails per session\n",
          (long long)accepted, (long long)max_open, (long long)most);
  cr_expect(accepted >= 10 && accepted <= 14, "%lld sessions", (long long)accepted);
  /* The client never holds more than 4 sessions; the proxy sees a closing
   * session and its successor at once for an instant at most. */
  cr_expect(st.sessions_max >= 1 && st.sessions_max <= 4, "%d sessions at once", st.sessions_max);
  cr_expect(max_open >= 1 && max_open <= 5, "%lld sessions at once", (long long)max_open);
  cr_expect_eq(total, N);
  cr_expect_eq(most, 100);
  cr_expect_eq((json_int_t)st.sessions_opened, accepted);
  json_decref(ps);
  /* erpq_smtp_free() closed the idle sessions (QUIT): none is left open. */
  int64_t end = erpq_mono_ms() + 5000;
  json_int_t open_now;
  do {
    ps = peer_stats(&proxy);
    open_now = json_integer_value(json_object_get(ps, "open"));
    json_decref(ps);
  } while (open_now > 0 && erpq_mono_ms() < end && usleep(20000) == 0);
  cr_expect_eq(open_now, 0);
  test_peer_stop(&proxy);
  check_maildev(api, N, "K1000");
  sender_free(&s);
}

Test(smtp, starttls_required_fails_when_the_server_offers_none) {
  const char *url = need_env("ERPQ_TEST_SMTP_URL");
  char u[128];
  snprintf(u, sizeof u, "%s?starttls=required", url);
  kv conf[] = {{"ERPQ_SMTP_URL", u}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 1);
  send_msg(&s, 0, "TLS", NULL);
  sender_finish(&s, NULL);
  erpq_smtp_result *r = &s.slots[0].r;
  cr_expect_eq(r->outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r->stage, "STARTTLS");
  cr_expect_eq(r->server_wide, 1);
  sender_free(&s);
}

/* ---- STARTTLS (aiosmtpd with a self-signed certificate) ------------------------------------ */

static erpq_smtp_result tls_send(const char *url, const char *ca) {
  kv conf[] = {{"ERPQ_SMTP_URL", url}, {"ERPQ_SMTP_CA_FILE", ca}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 1);
  send_msg(&s, 0, "TLS", NULL);
  sender_finish(&s, NULL);
  erpq_smtp_result r = s.slots[0].r;
  sender_free(&s);
  return r;
}

Test(smtp, starttls_is_used_when_the_server_offers_it) {
  test_peer p;
  peer(&p, "tls", NULL);
  char *ca = test_peer_field(&p, "ca");
  cr_assert(ca);
  char url[96], req[128];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", test_peer_port(&p));
  snprintf(req, sizeof req, "%s?starttls=required", url);
  erpq_smtp_result r = tls_send(url, ca);
  cr_expect_eq(r.outcome, ERPQ_SMTP_ACCEPTED, "%s", r.message);
  r = tls_send(req, ca);
  cr_expect_eq(r.outcome, ERPQ_SMTP_ACCEPTED, "%s", r.message);
  /* A certificate nobody vouches for: a server-wide TLS failure. */
  r = tls_send(url, NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY, "%s", r.message);
  cr_expect_eq(r.server_wide, 1);
  json_t *st = peer_stats(&p);
  cr_expect_eq(json_integer_value(json_object_get(st, "mails")), 2);
  cr_expect_eq(json_integer_value(json_object_get(st, "tls")), 2, "both went over TLS");
  json_decref(st);
  free(ca);
  test_peer_stop(&p);
}

/* ---- SMTP AUTH (a private maildev) ------------------------------------------------------------
 */

#define AUTH_PASS "s3cr:t@x"

static void auth_send(const char *url, const char *user, const char *passfile,
                      erpq_smtp_result *out) {
  kv conf[] = {{"ERPQ_SMTP_URL", url},
               {"ERPQ_SMTP_USER", user},
               {"ERPQ_SMTP_PASSWORD_FILE", passfile},
               {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 1);
  send_msg(&s, 0, "AUTH", NULL);
  sender_finish(&s, NULL);
  *out = s.slots[0].r;
  sender_free(&s);
}

Test(smtp, auth_with_the_right_password_and_a_clear_error_with_a_wrong_one) {
  const char *extra[] = {"--user", "mailer", "--password", AUTH_PASS, NULL};
  test_peer md;
  peer(&md, "maildev", extra);
  int port = test_peer_port(&md);
  char *api = test_peer_field(&md, "api");
  char url[128];
  erpq_smtp_result r;
  /* The password in the URL, percent-encoded. */
  snprintf(url, sizeof url, "smtp://mailer:s3cr%%3At%%40x@127.0.0.1:%d", port);
  auth_send(url, NULL, NULL, &r);
  cr_expect_eq(r.outcome, ERPQ_SMTP_ACCEPTED, "%s", r.message);
  /* User and password file. */
  char path[] = "/tmp/erpq-smtp-pw-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, AUTH_PASS "\n", strlen(AUTH_PASS) + 1), (ssize_t)strlen(AUTH_PASS) + 1);
  close(fd);
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);
  auth_send(url, "mailer", path, &r);
  cr_expect_eq(r.outcome, ERPQ_SMTP_ACCEPTED, "%s", r.message);
  unlink(path);
  /* A wrong password. */
  snprintf(url, sizeof url, "smtp://mailer:wrong-pass@127.0.0.1:%d", port);
  auth_send(url, NULL, NULL, &r);
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT, "%s", r.message);
  cr_expect_str_eq(r.stage, "AUTH");
  cr_expect_eq(r.reply_code, 535);
  cr_expect_eq(r.server_wide, 1);
  cr_expect(strncmp(r.message, "authentication failed (535", 26) == 0, "%s", r.message);
  cr_expect_null(strstr(r.message, "wrong-pass"));
  /* No credentials: the server wants AUTH before MAIL. */
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);
  auth_send(url, NULL, NULL, &r);
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT, "%s", r.message);
  cr_expect_str_eq(r.stage, "MAIL");
  cr_expect_eq(r.reply_code, 530);
  /* Two accepted, stored by the server. */
  char *u = maildev_url(api, "/email");
  long st;
  char *body = test_http("GET", u, NULL, NULL, &st);
  json_t *j = json_loads(body, 0, NULL);
  cr_expect_eq(json_array_size(j), 2);
  json_decref(j);
  free(body);
  free(u);
  free(api);
  test_peer_stop(&md);
}

/* ---- Error injection with smtp-sink --------------------------------------------------------- */

static erpq_smtp_result sink_send(const char *opt, const char *arg, const char *timeout_ms) {
  test_peer p;
  sink(&p, opt, arg);
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", test_peer_port(&p));
  kv conf[] = {{"ERPQ_SMTP_URL", url}, {"ERPQ_SMTP_TIMEOUT_MS", timeout_ms}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 1);
  send_msg(&s, 0, "SINK", NULL);
  sender_finish(&s, NULL);
  erpq_smtp_result r = s.slots[0].r;
  sender_free(&s);
  test_peer_stop(&p);
  cr_expect_null(strchr(r.message, '@'), "an address in '%s'", r.message);
  return r;
}

Test(smtp, a_rejected_recipient_is_permanent) {
  erpq_smtp_result r = sink_send("-f", "RCPT", NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT, "%s", r.message);
  cr_expect_str_eq(r.stage, "RCPT");
  cr_expect(r.reply_code >= 500 && r.reply_code < 600, "code %d", r.reply_code);
  cr_expect_eq(r.server_wide, 0);
}

Test(smtp, a_rejected_message_body_is_permanent) {
  erpq_smtp_result r = sink_send("-f", ".", NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT, "%s", r.message);
  cr_expect_str_eq(r.stage, "MESSAGE");
  cr_expect(r.reply_code >= 500 && r.reply_code < 600, "code %d", r.reply_code);
}

Test(smtp, a_421_is_temporary_and_server_wide) {
  erpq_smtp_result r = sink_send("-Q", "DATA", NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY, "%s", r.message);
  cr_expect_str_eq(r.stage, "DATA");
  cr_expect_eq(r.reply_code, 421);
  cr_expect_eq(r.server_wide, 1);
}

Test(smtp, a_dropped_connection_is_temporary) {
  erpq_smtp_result r = sink_send("-q", "MAIL", NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY, "%s", r.message);
  cr_expect_str_eq(r.stage, "CONNECTION");
  cr_expect(r.reply_code < 400, "code %d", r.reply_code);
  cr_expect_eq(r.server_wide, 1);
}

Test(smtp, a_slow_server_times_out_as_temporary) {
  int64_t t0 = erpq_mono_ms();
  erpq_smtp_result r = sink_send("-w", "4", "1000");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY, "%s", r.message);
  cr_expect_eq(r.curl_code, 28 /* CURLE_OPERATION_TIMEDOUT */, "%s", r.message);
  cr_expect_lt(erpq_mono_ms() - t0, 4000);
}

Test(smtp, a_refused_connection_is_temporary) {
  /* A sink's port after the sink stopped: nobody listens there. */
  test_peer p;
  sink(&p, NULL, NULL);
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", test_peer_port(&p));
  test_peer_stop(&p);
  kv conf[] = {{"ERPQ_SMTP_URL", url}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 1);
  send_msg(&s, 0, "REFUSED", NULL);
  sender_finish(&s, NULL);
  cr_expect_eq(s.slots[0].r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_eq(s.slots[0].r.curl_code, 7 /* CURLE_COULDNT_CONNECT */);
  cr_expect_str_eq(s.slots[0].r.stage, "CONNECTION");
  sender_free(&s);
}

Test(smtp, a_cancelled_send_completes_once) {
  test_peer p;
  sink(&p, "-w", "10");
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", test_peer_port(&p));
  kv conf[] = {{"ERPQ_SMTP_URL", url}, {"ERPQ_SMTP_CONNECTIONS", "1"}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 2);
  uint64_t id0, id1;
  send_msg(&s, 0, "C", &id0);
  send_msg(&s, 1, "C", &id1);
  usleep(300000);
  cr_assert_eq(erpq_smtp_cancel(s.smtp, id1), 0);
  cr_assert_eq(erpq_smtp_cancel(s.smtp, id0), 0);
  int64_t t0 = erpq_mono_ms();
  sender_finish(&s, NULL);
  cr_expect_lt(erpq_mono_ms() - t0, 2000, "cancelling does not wait for the slow server");
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(s.slots[i].r.outcome, ERPQ_SMTP_TEMPORARY);
    cr_expect_str_eq(s.slots[i].r.stage, "CANCELLED");
  }
  cr_expect_eq(s.slots[0].r.id, id0);
  sender_free(&s);
  test_peer_stop(&p);
}

Test(smtp, bad_envelope_addresses_are_refused_without_echo) {
  kv conf[] = {{"ERPQ_SMTP_URL", "smtp://127.0.0.1:9"}, {NULL, NULL}};
  sender s;
  sender_new(&s, conf, 0);
  char err[256];
  const char *bad[] = {"ok@example.org", "evil@example.org>\r\nRCPT TO:<x@y.z"};
  cr_expect_eq(erpq_smtp_send(s.smtp, "office@school.example", bad, 2, "x", 1, on_result, NULL,
                              NULL, err, sizeof err),
               -EINVAL);
  cr_expect_null(strchr(err, '@'), "%s", err);
  cr_expect(strstr(err, "recipient 2"), "%s", err);
  cr_expect_eq(erpq_smtp_send(s.smtp, "a b@example.org", bad, 1, "x", 1, on_result, NULL, NULL, err,
                              sizeof err),
               -EINVAL);
  sender_finish(&s, NULL);
  sender_free(&s);
}

/* ---- Throughput ------------------------------------------------------------------------------ */

static int bench_n(void) {
  const char *v = getenv("ERPQ_TEST_SMTP_BENCH_N"); /* 10000 for the measurements */
  return v ? atoi(v) : 2000;
}

static void report(const char *what, int n, int64_t ms, double cpu_ms, const erpq_smtp_stats *st) {
  fprintf(stderr,
          "smtp: %d mails to %s in %lld ms = %.0f/s, CPU %.1f us/mail, %llu sessions, peak RSS "
          "%ld KiB\n",
          n, what, (long long)ms, n * 1000.0 / (ms ? ms : 1), cpu_ms * 1000.0 / n,
          (unsigned long long)st->sessions_opened, test_peak_rss_kib());
}

Test(smtp, throughput_to_smtp_sink) {
  test_peer p;
  sink(&p, NULL, NULL);
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", test_peer_port(&p));
  int n = bench_n();
  sender s;
  erpq_smtp_stats st;
  double cpu0 = test_cpu_ms();
  int64_t ms = send_many(&s, url, "4", "100", n, "B", &st);
  report("smtp-sink", n, ms, test_cpu_ms() - cpu0, &st);
  cr_expect_eq(st.accepted, (uint64_t)n);
  cr_expect(st.sessions_opened >= (uint64_t)n / 100 && st.sessions_opened <= (uint64_t)n / 100 + 4);
  sender_free(&s);
  test_peer_stop(&p);
}

Test(smtp, throughput_to_maildev) {
  const char *url = need_env("ERPQ_TEST_SMTP_URL"), *api = need_env("ERPQ_TEST_MAILDEV_API");
  maildev_clear(api);
  int n = bench_n();
  sender s;
  erpq_smtp_stats st;
  double cpu0 = test_cpu_ms();
  int64_t ms = send_many(&s, url, "4", "100", n, "B", &st);
  report("maildev", n, ms, test_cpu_ms() - cpu0, &st);
  cr_expect_eq(st.accepted, (uint64_t)n);
  maildev_clear(api);
  sender_free(&s);
}
