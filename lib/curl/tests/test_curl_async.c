/* The curl runner against a local HTTP/1.1 server (http_counter.py) that
 * counts the connections it sees. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_curl_async.h"
#include "erpq_testkit.h"
#include "erpq_util.h"

static test_peer srv;
static char base[64];

static void start_server(void) {
  char *script = test_source_path("lib/curl/tests/http_counter.py");
  char *argv[] = {(char *)"/usr/bin/python3", script, NULL};
  test_peer_start(&srv, argv, 20000);
  free(script);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", test_peer_port(&srv));
}

static void stop_server(void) { test_peer_stop(&srv); }

TestSuite(curl_async, .init = start_server, .fini = stop_server, .timeout = 300);

/* The server's counters. */
static json_int_t server_stat(const char *key) {
  char *line = test_peer_ask(&srv, "stats", 5000);
  json_t *j = json_loads(line, 0, NULL);
  cr_assert(j, "bad stats line %s", line);
  json_int_t v = json_integer_value(json_object_get(j, key));
  json_decref(j);
  free(line);
  return v;
}

/* One request: its easy handle, the body it got, what it expects. */
typedef struct req {
  CURL *easy;
  erpq_buf body;
  int index;
  char want[64];
  CURLcode rc;
  int calls;
  struct tally *t;
} req;

typedef struct tally {
  atomic_int done, ok, aborted, bad_body, other;
} tally;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  erpq_buf_add(ud, p, size * n);
  return size * n;
}

static req *new_req(tally *t, int index, const char *path) {
  req *r = calloc(1, sizeof *r);
  cr_assert(r);
  r->t = t;
  r->index = index;
  r->easy = curl_easy_init();
  cr_assert(r->easy);
  char url[256];
  snprintf(url, sizeof url, "%s%s", base, path);
  if (strncmp(path, "/echo/", 6) == 0)
    snprintf(r->want, sizeof r->want, "echo:%s", path + 6);
  cr_assert_eq(curl_easy_setopt(r->easy, CURLOPT_URL, url), CURLE_OK);
  curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 30000L);
  return r;
}

static void free_req(req *r) {
  curl_easy_cleanup(r->easy);
  erpq_buf_free(&r->body);
  free(r);
}

/* Records the outcome and frees the request. */
static void on_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  req *r = ud;
  cr_assert_eq(easy, r->easy);
  cr_assert(id > 0);
  tally *t = r->t;
  if (rc == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (code == 200 && (!r->want[0] || (r->body.s && strcmp(r->body.s, r->want) == 0)))
      atomic_fetch_add(&t->ok, 1);
    else
      atomic_fetch_add(&t->bad_body, 1);
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    atomic_fetch_add(&t->aborted, 1);
  } else {
    atomic_fetch_add(&t->other, 1);
  }
  atomic_fetch_add(&t->done, 1);
  free_req(r);
}

static erpq_curl_async *runner(long total, long host, int active) {
  erpq_curl_async *a;
  char err[256];
  erpq_curl_async_conf c = {
      .max_total_connections = total, .max_host_connections = host, .max_active = active};
  cr_assert_eq(erpq_curl_async_start(&a, &c, err, sizeof err), 0, "%s", err);
  return a;
}

static void submit(erpq_curl_async *a, erpq_curl_group *g, tally *t, int i, const char *path,
                   uint64_t *id) {
  req *r = new_req(t, i, path);
  cr_assert_eq(erpq_curl_async_submit(a, g, r->easy, on_done, r, id), 0);
}

typedef struct feeder {
  erpq_curl_async *a;
  tally *t;
  int from, to;
} feeder;

static void *feed(void *arg) {
  feeder *f = arg;
  for (int i = f->from; i < f->to; i++) {
    char path[64];
    snprintf(path, sizeof path, "/echo/%d", i);
    submit(f->a, NULL, f->t, i, path, NULL);
  }
  return NULL;
}

Test(curl_async, thousands_of_requests_through_four_connections) {
  free(test_peer_ask(&srv, "reset", 5000));
  tally t = {0};
  erpq_curl_async *a = runner(4, 0, 0);
  enum { N = 3000 };
  /* Two submitting threads besides this one. */
  feeder f1 = {a, &t, 0, N / 3}, f2 = {a, &t, N / 3, 2 * N / 3}, f3 = {a, &t, 2 * N / 3, N};
  pthread_t th1, th2;
  cr_assert_eq(pthread_create(&th1, NULL, feed, &f1), 0);
  cr_assert_eq(pthread_create(&th2, NULL, feed, &f2), 0);
  feed(&f3);
  pthread_join(th1, NULL);
  pthread_join(th2, NULL);
  /* Wait for all, then look at the runner's counters before stopping. */
  int64_t end = erpq_mono_ms() + 120000;
  while (atomic_load(&t.done) < N && erpq_mono_ms() < end)
    usleep(10000);
  erpq_curl_async_stats st;
  erpq_curl_async_stats_get(a, &st);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.done), N);
  cr_expect_eq(atomic_load(&t.ok), N, "ok %d bad %d other %d", atomic_load(&t.ok),
               atomic_load(&t.bad_body), atomic_load(&t.other));
  cr_expect_eq(st.submitted, N);
  cr_expect_eq(st.completed, N);
  cr_expect_eq(st.queued + st.active, 0);
  cr_expect(st.connects >= 1 && st.connects <= 4, "connects %lu", (unsigned long)st.connects);
  json_int_t max_open = server_stat("max_open"), accepted = server_stat("accepted");
  cr_expect(max_open >= 1 && max_open <= 4, "the server saw %lld connections at once",
            (long long)max_open);
  cr_expect(accepted <= 4, "the server accepted %lld connections", (long long)accepted);
  cr_expect_eq(server_stat("requests"), N);
}

Test(curl_async, the_per_host_bound_holds) {
  free(test_peer_ask(&srv, "reset", 5000));
  tally t = {0};
  erpq_curl_async *a = runner(8, 2, 8);
  for (int i = 0; i < 200; i++)
    submit(a, NULL, &t, i, "/slow/2", NULL);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 200);
  json_int_t max_open = server_stat("max_open");
  cr_expect(max_open >= 1 && max_open <= 2, "max_open %lld", (long long)max_open);
}

/* A group of at most 2 at once, whose start hook counts its calls. */
static atomic_int starts, in_group, max_in_group;

static CURLcode count_start(CURL **easy, void *ud, void *gud) {
  (void)easy, (void)ud;
  cr_assert_eq((intptr_t)gud, 42);
  atomic_fetch_add(&starts, 1);
  int now = atomic_fetch_add(&in_group, 1) + 1;
  int m = atomic_load(&max_in_group);
  while (now > m && !atomic_compare_exchange_weak(&max_in_group, &m, now)) {
  }
  return CURLE_OK;
}

static void group_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  atomic_fetch_sub(&in_group, 1);
  on_done(easy, rc, id, ud);
}

Test(curl_async, a_group_bounds_its_own_transfers) {
  free(test_peer_ask(&srv, "reset", 5000));
  tally t = {0};
  erpq_curl_async *a = runner(8, 0, 8);
  erpq_curl_group *g;
  char err[256];
  erpq_curl_group_hooks h = {.start = count_start, .ud = (void *)(intptr_t)42};
  cr_assert_eq(erpq_curl_group_new(a, 2, &h, &g, err, sizeof err), 0);
  for (int i = 0; i < 100; i++) {
    req *r = new_req(&t, i, "/slow/3");
    cr_assert_eq(erpq_curl_async_submit(a, g, r->easy, group_done, r, NULL), 0);
  }
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 100);
  cr_expect_eq(atomic_load(&starts), 100);
  cr_expect_eq(atomic_load(&max_in_group), 2);
  cr_expect(server_stat("max_open") <= 2);
}

Test(curl_async, a_queued_transfers_timeout_does_not_run_while_it_waits) {
  tally t = {0};
  erpq_curl_async *a = runner(1, 0, 0);
  /* Five requests of 300 ms through one connection take 1.5 s; each may
   * take 1 s from its start. */
  for (int i = 0; i < 5; i++) {
    req *r = new_req(&t, i, "/slow/300");
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 1000L);
    cr_assert_eq(erpq_curl_async_submit(a, NULL, r->easy, on_done, r, NULL), 0);
  }
  int64_t t0 = erpq_mono_ms();
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 5, "other %d", atomic_load(&t.other));
  cr_expect_geq(erpq_mono_ms() - t0, 1400);
}

Test(curl_async, cancelling_a_queued_and_an_active_transfer) {
  tally t = {0};
  erpq_curl_async *a = runner(1, 0, 0);
  uint64_t hung, queued;
  submit(a, NULL, &t, 0, "/hang", &hung);
  submit(a, NULL, &t, 1, "/echo/q", &queued);
  usleep(200000); /* the hung one is on the wire by now */
  cr_assert_eq(erpq_curl_async_cancel(a, queued), 0);
  cr_assert_eq(erpq_curl_async_cancel(a, queued), -ENOENT, "a second cancel finds nothing");
  cr_assert_eq(erpq_curl_async_cancel(a, hung), 0);
  cr_assert_eq(erpq_curl_async_cancel(a, 999999), -ENOENT);
  int64_t end = erpq_mono_ms() + 5000;
  while (atomic_load(&t.done) < 2 && erpq_mono_ms() < end)
    usleep(5000);
  cr_expect_eq(atomic_load(&t.aborted), 2);
  /* The runner goes on: the connection of the cancelled transfer was
   * closed and a new one serves the next request. */
  submit(a, NULL, &t, 2, "/echo/after", NULL);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 1);
  cr_expect_eq(atomic_load(&t.done), 3);
}

Test(curl_async, stop_without_drain_aborts_everything_pending) {
  tally t = {0};
  erpq_curl_async *a = runner(2, 0, 0);
  submit(a, NULL, &t, 0, "/hang", NULL);
  submit(a, NULL, &t, 1, "/hang", NULL);
  for (int i = 0; i < 10; i++)
    submit(a, NULL, &t, 2 + i, "/echo/x", NULL);
  usleep(100000);
  int64_t t0 = erpq_mono_ms();
  cr_assert_eq(erpq_curl_async_stop(a, 0), 0);
  cr_expect_lt(erpq_mono_ms() - t0, 2000);
  cr_expect_eq(atomic_load(&t.done), 12, "every callback ran before stop returned");
  cr_expect_eq(atomic_load(&t.aborted), 12);
}

Test(curl_async, a_drain_deadline_cancels_what_is_left) {
  tally t = {0};
  erpq_curl_async *a = runner(2, 0, 0);
  submit(a, NULL, &t, 0, "/hang", NULL);
  submit(a, NULL, &t, 1, "/slow/50", NULL);
  int64_t t0 = erpq_mono_ms();
  cr_assert_eq(erpq_curl_async_stop(a, 400), 0);
  int64_t took = erpq_mono_ms() - t0;
  cr_expect(took >= 380 && took < 3000, "took %lld ms", (long long)took);
  cr_expect_eq(atomic_load(&t.ok), 1);
  cr_expect_eq(atomic_load(&t.aborted), 1);
}

/* A callback that submits a follow-up transfer, as a transport does when
 * it dispatches its next message from a completion. */
typedef struct chain {
  erpq_curl_async *a;
  tally *t;
  int left;
  int refused;
} chain;

static chain the_chain;

static void chain_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  on_done(easy, rc, id, ud);
  if (the_chain.left-- > 0) {
    req *r = new_req(the_chain.t, 0, "/echo/next");
    int e = erpq_curl_async_submit(the_chain.a, NULL, r->easy, chain_done, r, NULL);
    if (e) {
      cr_assert_eq(e, -ESHUTDOWN);
      the_chain.refused++;
      free_req(r);
    }
  }
}

Test(curl_async, a_drain_runs_follow_ups_submitted_by_callbacks) {
  tally t = {0};
  erpq_curl_async *a = runner(2, 0, 0);
  the_chain = (chain){a, &t, 5, 0};
  req *r = new_req(&t, 0, "/slow/20");
  cr_assert_eq(erpq_curl_async_submit(a, NULL, r->easy, chain_done, r, NULL), 0);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 6);
  cr_expect_eq(the_chain.refused, 0);
}

Test(curl_async, follow_ups_are_refused_once_pending_work_is_cancelled) {
  tally t = {0};
  erpq_curl_async *a = runner(2, 0, 0);
  the_chain = (chain){a, &t, 5, 0};
  req *r = new_req(&t, 0, "/hang");
  cr_assert_eq(erpq_curl_async_submit(a, NULL, r->easy, chain_done, r, NULL), 0);
  usleep(100000);
  cr_assert_eq(erpq_curl_async_stop(a, 0), 0);
  cr_expect_eq(atomic_load(&t.aborted), 1);
  cr_expect_eq(the_chain.refused, 1);
}

static void stop_in_callback(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  cr_expect_eq(erpq_curl_async_stop(the_chain.a, 0), -EDEADLK);
  on_done(easy, rc, id, ud);
}

Test(curl_async, stop_from_a_callback_is_refused) {
  tally t = {0};
  erpq_curl_async *a = runner(1, 0, 0);
  the_chain = (chain){a, &t, 0, 0};
  req *r = new_req(&t, 0, "/echo/1");
  cr_assert_eq(erpq_curl_async_submit(a, NULL, r->easy, stop_in_callback, r, NULL), 0);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 1);
}

static atomic_int private_ok;

static void private_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  void *p = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
  if (p == ud)
    atomic_fetch_add(&private_ok, 1);
  on_done(easy, rc, id, ud);
}

Test(curl_async, the_callers_private_pointer_comes_back) {
  tally t = {0};
  erpq_curl_async *a = runner(1, 0, 0);
  req *r = new_req(&t, 0, "/echo/p");
  curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (void *)r);
  cr_assert_eq(erpq_curl_async_submit(a, NULL, r->easy, private_done, r, NULL), 0);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.ok), 1);
  cr_expect_eq(atomic_load(&private_ok), 1);
}

/* Transfers submitted without an easy handle: the group's start hook makes
 * it; one cancelled while queued completes with no handle at all. */
static atomic_int lazy_made, lazy_null;

static CURLcode lazy_start(CURL **easy, void *ud, void *gud) {
  req *r = ud;
  (void)gud;
  cr_assert_null(*easy);
  req *made = new_req(r->t, r->index, "/echo/lazy");
  r->easy = *easy = made->easy; /* r takes the handle over. */
  snprintf(r->want, sizeof r->want, "%s", made->want);
  curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->body);
  free(made);
  atomic_fetch_add(&lazy_made, 1);
  return CURLE_OK;
}

static void lazy_done(CURL *easy, CURLcode rc, uint64_t id, void *ud) {
  req *r = ud;
  if (!easy) {
    atomic_fetch_add(&lazy_null, 1);
    cr_assert_eq(rc, CURLE_ABORTED_BY_CALLBACK);
    atomic_fetch_add(&r->t->aborted, 1);
    atomic_fetch_add(&r->t->done, 1);
    erpq_buf_free(&r->body);
    free(r);
    return;
  }
  on_done(easy, rc, id, ud);
}

Test(curl_async, a_start_hook_makes_the_easy_handle_of_a_lazy_submission) {
  tally t = {0};
  erpq_curl_async *a = runner(2, 0, 0);
  erpq_curl_group *g;
  char err[256];
  erpq_curl_group_hooks h = {.start = lazy_start};
  cr_assert_eq(erpq_curl_group_new(a, 1, &h, &g, err, sizeof err), 0);
  cr_assert_eq(erpq_curl_async_submit(a, NULL, NULL, lazy_done, NULL, NULL), -EINVAL,
               "no handle and no start hook");
  uint64_t ids[50];
  for (int i = 0; i < 50; i++) {
    req *r = calloc(1, sizeof *r);
    cr_assert(r);
    r->t = &t;
    r->index = i;
    cr_assert_eq(erpq_curl_async_submit(a, g, NULL, lazy_done, r, &ids[i]), 0);
  }
  cr_assert_eq(erpq_curl_async_cancel(a, ids[49]), 0);
  cr_assert_eq(erpq_curl_async_stop(a, -1), 0);
  cr_expect_eq(atomic_load(&t.done), 50);
  cr_expect_eq(atomic_load(&t.ok) + atomic_load(&t.aborted), 50);
  cr_expect_geq(atomic_load(&t.ok), 48);
  cr_expect_eq(atomic_load(&lazy_made), atomic_load(&t.ok));
  cr_expect_eq(atomic_load(&lazy_null), atomic_load(&t.aborted));
}
