/*
 * test_worker_loop.c - the real worker library in-process against a real
 * Redis: a uv_loop_t, a registry with test handlers and the diag family,
 * erpq_worker_new/start, jobs added with the synchronous client. A 20 ms
 * uv_timer checks Redis and calls erpq_worker_stop() once the test's
 * condition holds (an overall deadline stops it otherwise); the loop must
 * then close with no live handle (uv_loop_close() == 0) and
 * erpq_worker_free() must report no handler thread left running.
 *
 * Requires ERPQ_TEST_REDIS_URL; the suite fails, never skips, without it.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "diag/erpq_diag.h"
#include "erpq_bull.h"
#include "erpq_err.h"
#include "erpq_job.h"
#include "erpq_log.h"
#include "erpq_registry.h"
#include "erpq_test_support.h"
#include "erpq_util.h"
#include "erpq_worker.h"

#define DEADLINE_MS 20000

typedef struct harness harness;
typedef int (*cond_fn)(harness *h);

struct harness {
  uv_loop_t loop;
  erpq_registry reg;
  erpq_worker_conf conf;
  erpq_queue_conf qc;
  erpq_worker *w;
  uv_timer_t check, deadline;
  redisContext *rc;
  erpq_keys k;
  char name[128];
  cond_fn done;
  int timed_out, stopped, closed;
  int64_t started_ms, stop_ms, end_ms;
};

/* What the test handlers saw, shared with the handler threads. */
static atomic_int calls;
static atomic_int saw_cancel;

static int h_sum(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                 size_t errlen) {
  atomic_fetch_add(&calls, 1);
  const json_t *a = json_object_get(data, "a"), *b = json_object_get(data, "b");
  if (!json_is_integer(a) || !json_is_integer(b))
    return erpq_fail(err, errlen, -EINVAL, "a and b must be integers");
  *result = json_pack("{s:I,s:s,s:s}", "sum",
                      (json_int_t)(json_integer_value(a) + json_integer_value(b)), "id",
                      erpq_job_id(ctx), "queue", erpq_job_queue(ctx));
  return 0;
}

static int h_reject(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  (void)data, (void)result;
  atomic_fetch_add(&calls, 1);
  erpq_job_discard(ctx);
  return erpq_fail(err, errlen, -EINVAL, "bad input: fee head %d is unknown",
                   erpq_job_attempts_made(ctx) + 41);
}

static int h_report(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  (void)data, (void)err, (void)errlen;
  json_t *p = json_pack("{s:i,s:s}", "pct", 50, "stage", "r\xc3\xa9sum\xc3\xa9");
  erpq_job_progress(ctx, p);
  json_decref(p);
  erpq_job_log(ctx, "rendering \"class 5\"");
  erpq_job_log(ctx, "uploading");
  p = json_integer(100);
  erpq_job_progress(ctx, p);
  json_decref(p);
  *result = json_string("s3://reports/5.pdf");
  return 0;
}

static int h_slow(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                  size_t errlen) {
  (void)data;
  int rc = erpq_job_sleep(ctx, 10000);
  if (rc == -ECANCELED || erpq_job_cancelled(ctx)) atomic_store(&saw_cancel, 1);
  if (rc) return erpq_fail(err, errlen, rc, "cancelled");
  *result = json_true();
  return 0;
}

/* postpone: the first run asks for 300 ms more without using an attempt
 * (erpq_job_delay); the second completes with what it saw. */
static atomic_int postpone_runs;
static int h_postpone(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                      size_t errlen) {
  (void)data, (void)err, (void)errlen;
  if (atomic_fetch_add(&postpone_runs, 1) == 0) return erpq_job_delay(ctx, 300, "provider busy");
  *result = json_pack("{s:i}", "attemptsMade", erpq_job_attempts_made(ctx));
  return 0;
}

/* ---- Async handlers: many jobs in flight on one pool thread ------------------------
 * The "async" handler parks its job and returns ERPQ_JOB_ASYNC; a completer
 * thread of the test (the stand-in for a family's I/O thread) waits until
 * as many jobs as the queue's concurrency are parked at once, then finishes
 * them all with erpq_job_finish(). With one pool thread, that many jobs in
 * flight at once shows that none of them holds a thread. */
#define ASYNC_MAX 64
static pthread_mutex_t amu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t acv = PTHREAD_COND_INITIALIZER;
static erpq_jobctx *parked[ASYNC_MAX];
static int nparked, max_parked, async_target, async_stop;
static pthread_t async_thread;
static atomic_int cancels;

static int h_async(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                   size_t errlen) {
  (void)data, (void)result, (void)err, (void)errlen;
  pthread_mutex_lock(&amu);
  parked[nparked++] = ctx;
  if (nparked > max_parked) max_parked = nparked;
  pthread_cond_broadcast(&acv);
  pthread_mutex_unlock(&amu);
  return ERPQ_JOB_ASYNC;
}

static void *completer(void *arg) {
  (void)arg;
  pthread_mutex_lock(&amu);
  while (!async_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 3; /* Never wait forever: a failure must show as a test failure. */
    while (!async_stop && nparked < async_target && pthread_cond_timedwait(&acv, &amu, &ts) == 0) {
    }
    for (int i = 0; i < nparked; i++)
      erpq_job_finish(parked[i], 0, json_pack("{s:s}", "async", erpq_job_id(parked[i])), NULL);
    nparked = 0;
    if (!async_stop) pthread_cond_timedwait(&acv, &amu, &ts);
  }
  pthread_mutex_unlock(&amu);
  return NULL;
}

/* async-cancel: parks nothing; finishes the job from its cancellation
 * callback (the loop thread), as an I/O family aborts a transfer. */
static void on_cancel(erpq_jobctx *ctx, void *ud) {
  (void)ud;
  atomic_fetch_add(&cancels, 1);
  erpq_job_finish(ctx, -ECANCELED, NULL, "send aborted");
}

static int h_async_cancel(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                          size_t errlen) {
  (void)data, (void)result, (void)err, (void)errlen;
  erpq_job_on_cancel(ctx, on_cancel, NULL);
  return ERPQ_JOB_ASYNC;
}

/* fanout: adds three noop jobs with deterministic ids to the same queue,
 * twice, from the handler's thread (erpq_job_enqueue); the second add finds
 * them all there. Also one plain Redis call (erpq_job_redis). */
static int h_fanout(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  (void)data;
  erpq_newjob jobs[3];
  char id[64];
  int rc = 0;
  for (int i = 0; i < 3; i++) {
    json_t *o = json_pack("{s:s}", "jobId", (snprintf(id, sizeof id, "fan:%s:%d", erpq_job_id(ctx), i), id));
    rc = erpq_newjob_prepare(&jobs[i], "noop", "{}", o, erpq_now_ms(), err, errlen);
    json_decref(o);
    if (rc) return rc;
  }
  int first[3], second[3];
  char *ids[3];
  rc = erpq_job_enqueue(ctx, erpq_job_queue(ctx), jobs, 3, ids, first, err, errlen);
  for (int i = 0; !rc && i < 3; i++) free(ids[i]);
  if (!rc) rc = erpq_job_enqueue(ctx, erpq_job_queue(ctx), jobs, 3, ids, second, err, errlen);
  for (int i = 0; !rc && i < 3; i++) free(ids[i]);
  for (int i = 0; i < 3; i++) erpq_newjob_free(&jobs[i]);
  if (rc) return rc;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "PING");
  redisReply *r = NULL;
  rc = erpq_job_redis(ctx, &c, &r, 5000, err, errlen);
  if (rc) return rc;
  *result = json_pack("{s:[i,i,i],s:[i,i,i],s:s}", "first", first[0], first[1], first[2], "second",
                      second[0], second[1], second[2], "ping", r->str ? r->str : "");
  freeReplyObject(r);
  return 0;
}

/* ---- Harness ------------------------------------------------------------------ */

static void close_timers(harness *h) {
  if (h->closed) return;
  h->closed = 1;
  uv_timer_stop(&h->check);
  uv_timer_stop(&h->deadline);
  uv_close((uv_handle_t *)&h->check, NULL);
  uv_close((uv_handle_t *)&h->deadline, NULL);
}

static void stop_now(harness *h) {
  if (h->stopped) return;
  h->stopped = 1;
  h->stop_ms = erpq_mono_ms();
  erpq_worker_stop(h->w);
  close_timers(h);
}

static void on_check(uv_timer_t *t) {
  harness *h = t->data;
  if (h->done(h)) stop_now(h);
}

static void on_deadline(uv_timer_t *t) {
  harness *h = t->data;
  h->timed_out = 1;
  stop_now(h);
}

static void h_init(harness *h, const char *stem, int concurrency, int64_t grace_ms) {
  memset(h, 0, sizeof *h);
  erpq_log_set_level(ERPQ_LOG_WARN);
  atomic_store(&calls, 0);
  atomic_store(&saw_cancel, 0);
  h->rc = test_redis();
  test_queue_name(h->name, sizeof h->name, stem);
  cr_assert_eq(erpq_keys_init(&h->k, "bull", h->name), 0);
  cr_assert_eq(uv_loop_init(&h->loop), 0);
  erpq_registry_init(&h->reg);
  cr_assert_eq(erpq_diag_register(&h->reg, h->name, 0), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "sum", h_sum, NULL), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "reject", h_reject, NULL), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "report", h_report, NULL), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "slow", h_slow, NULL), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "postpone", h_postpone, NULL), 0);
  cr_assert_eq(erpq_registry_add(&h->reg, h->name, "fanout", h_fanout, NULL), 0);
  /* The async jobs run on a pool of their own with a single thread. */
  int pool = erpq_registry_family_pool(&h->reg, "async-test", 1);
  cr_assert_geq(pool, 1);
  cr_assert_eq(erpq_registry_add_in(&h->reg, pool, h->name, "async", h_async, NULL, NULL, NULL), 0);
  cr_assert_eq(erpq_registry_add_in(&h->reg, pool, h->name, "async-cancel", h_async_cancel, NULL,
                                    NULL, NULL),
               0);
  erpq_worker_conf_defaults(&h->conf);
  char err[256] = "";
  cr_assert_eq(erpq_redis_url_parse(test_redis_url(), &h->conf.redis, err, sizeof err), 0, "%s",
               err);
  snprintf(h->qc.name, sizeof h->qc.name, "%s", h->name);
  h->qc.concurrency = concurrency;
  h->conf.queues = &h->qc;
  h->conf.nqueues = 1;
  h->conf.drain_delay_s = 1;
  h->conf.guard_interval_ms = 200;
  h->conf.grace_ms = grace_ms;
  cr_assert_eq(erpq_worker_new(&h->w, &h->loop, &h->conf, &h->reg, err, sizeof err), 0, "%s", err);
}

/* Starts the worker and runs the loop until done() holds and the worker
 * has shut down; then checks that nothing is left behind. */
static void h_run(harness *h, cond_fn done) {
  h->done = done;
  uv_timer_init(&h->loop, &h->check);
  uv_timer_init(&h->loop, &h->deadline);
  h->check.data = h->deadline.data = h;
  uv_timer_start(&h->check, on_check, 20, 20);
  uv_timer_start(&h->deadline, on_deadline, DEADLINE_MS, 0);
  h->started_ms = erpq_mono_ms();
  cr_assert_eq(erpq_worker_start(h->w), 0);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->end_ms = erpq_mono_ms();
  cr_expect_eq(h->timed_out, 0, "the condition was not met within %d ms", DEADLINE_MS);
  cr_expect_eq(uv_loop_close(&h->loop), 0, "live handles remain after the worker stopped");
  cr_expect_eq(erpq_worker_free(h->w), 0, "handler threads were still running");
  h->w = NULL;
}

static void h_free(harness *h) {
  rd_wipe(h->rc, &h->k);
  erpq_keys_free(&h->k);
  erpq_registry_free(&h->reg);
  redisFree(h->rc);
}

static char *add_job(harness *h, const char *name, const char *data, const char *opts_text) {
  json_t *o = opts_text ? json_loads(opts_text, 0, NULL) : NULL;
  cr_assert(!opts_text || o, "bad opts %s", opts_text);
  erpq_newjob j;
  char err[256] = "";
  cr_assert_eq(erpq_newjob_prepare(&j, name, data, o, erpq_now_ms(), err, sizeof err), 0, "%s", err);
  json_decref(o);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_add(&c, &h->k, "test-producer", &j, 1, 0);
  redisReply *r = test_send(h->rc, &c);
  char *id = NULL;
  cr_assert_eq(erpq_bull_parse_ids(r, &id, 1), 1);
  freeReplyObject(r);
  erpq_newjob_free(&j);
  return id;
}

static char *field(harness *h, const char *id, const char *f) {
  char *key = erpq_keys_job(&h->k, id, NULL);
  char *v = rd_str(h->rc, "HGET %s %s", key, f);
  free(key);
  return v;
}

static void expect_field(harness *h, const char *id, const char *f, const char *want) {
  char *got = field(h, id, f);
  if (want)
    cr_expect(got && strcmp(got, want) == 0, "job %s %s = '%s', wanted '%s'", id, f,
              got ? got : "(nil)", want);
  else
    cr_expect_null(got, "job %s %s = '%s', wanted none", id, f, got ? got : "");
  free(got);
}

static long long finished_count(harness *h) {
  return rd_int(h->rc, "ZCARD %s", h->k.completed) + rd_int(h->rc, "ZCARD %s", h->k.failed);
}

static void expect_empty(harness *h, const char *key) {
  cr_expect_eq(rd_int(h->rc, "EXISTS %s", key), 0, "%s is not empty", key);
}

/* ---- Tests ----------------------------------------------------------------------- */

static int three_finished(harness *h) { return finished_count(h) >= 3; }

Test(worker_loop, completes_with_the_handlers_result) {
  harness h;
  h_init(&h, "wl-complete", 2, 5000);
  char *a = add_job(&h, "sum", "{\"a\":2,\"b\":40}", NULL);
  char *b = add_job(&h, "echo", "{\"school\":\"St. Mary's\",\"n\":[1,2]}", NULL);
  char *c = add_job(&h, "no-such-handler", NULL, NULL);
  h_run(&h, three_finished);
  char want[256];
  snprintf(want, sizeof want, "{\"sum\":42,\"id\":\"%s\",\"queue\":\"%s\"}", a, h.name);
  expect_field(&h, a, "returnvalue", want);
  expect_field(&h, b, "returnvalue", "{\"school\":\"St. Mary's\",\"n\":[1,2]}");
  cr_expect_eq(rd_int(h.rc, "ZCARD %s", h.k.completed), 2);
  char *fin = field(&h, a, "finishedOn");
  cr_expect_not_null(fin);
  free(fin);
  /* bull's dispatch failure for a job nobody handles. */
  expect_field(&h, c, "failedReason", "Missing process handler for job type no-such-handler");
  cr_expect_eq(rd_int(h.rc, "ZCARD %s", h.k.failed), 1);
  cr_expect_eq(atomic_load(&calls), 1);
  char *lock = erpq_keys_job(&h.k, a, ":lock");
  cr_expect_eq(rd_int(h.rc, "EXISTS %s", lock), 0);
  free(lock);
  expect_empty(&h, h.k.active);
  expect_empty(&h, h.k.wait);
  free(a);
  free(b);
  free(c);
  h_free(&h);
}

static int one_failed(harness *h) { return rd_int(h->rc, "ZCARD %s", h->k.failed) >= 1; }

Test(worker_loop, discarded_failure_does_not_retry) {
  harness h;
  h_init(&h, "wl-discard", 1, 5000);
  char *a = add_job(&h, "reject", "{}", "{\"attempts\":5,\"backoff\":{\"type\":\"fixed\",\"delay\":10}}");
  h_run(&h, one_failed);
  cr_expect_eq(atomic_load(&calls), 1, "the handler ran %d times", atomic_load(&calls));
  expect_field(&h, a, "attemptsMade", "1");
  expect_field(&h, a, "failedReason", "bad input: fee head 41 is unknown");
  char *st = field(&h, a, "stacktrace");
  json_t *arr = st ? json_loads(st, 0, NULL) : NULL;
  cr_expect(json_is_array(arr) && json_array_size(arr) == 1, "stacktrace %s", st ? st : "(nil)");
  json_decref(arr);
  free(st);
  expect_empty(&h, h.k.delayed);
  expect_empty(&h, h.k.wait);
  expect_empty(&h, h.k.active);
  free(a);
  h_free(&h);
}

static int report_done(harness *h) {
  if (rd_int(h->rc, "ZCARD %s", h->k.completed) < 2) return 0;
  return 1;
}

Test(worker_loop, progress_and_logs_reach_redis) {
  harness h;
  h_init(&h, "wl-progress", 2, 5000);
  char *a = add_job(&h, "report", "{}", NULL);
  char *b = add_job(&h, "progress", "{\"steps\":3}", NULL);
  h_run(&h, report_done);
  expect_field(&h, a, "progress", "100");
  expect_field(&h, a, "returnvalue", "\"s3://reports/5.pdf\"");
  char *logs = erpq_keys_job(&h.k, a, ":logs");
  char *rows = rd_join(h.rc, "LRANGE %s 0 -1", logs);
  cr_expect_str_eq(rows, "rendering \"class 5\",uploading");
  free(rows);
  free(logs);
  expect_field(&h, b, "progress", "3");
  expect_field(&h, b, "returnvalue", "{\"steps\":3}");
  logs = erpq_keys_job(&h.k, b, ":logs");
  rows = rd_join(h.rc, "LRANGE %s 0 -1", logs);
  cr_expect_str_eq(rows, "step 1 of 3,step 2 of 3,step 3 of 3");
  free(rows);
  free(logs);
  free(a);
  free(b);
  h_free(&h);
}

static int two_failed(harness *h) { return rd_int(h->rc, "ZCARD %s", h->k.failed) >= 2; }

Test(worker_loop, timeout_cancels_a_sleeping_handler) {
  harness h;
  /* A short grace: were the handlers not cancelled, shutdown would hand
   * them back and erpq_worker_free() would report threads still running. */
  h_init(&h, "wl-timeout", 2, 300);
  char *a = add_job(&h, "slow", "{}", "{\"timeout\":200}");
  char *b = add_job(&h, "sleep", "{\"ms\":10000}", "{\"timeout\":250}");
  h_run(&h, two_failed);
  expect_field(&h, a, "failedReason", "Promise timed out after 200 milliseconds");
  expect_field(&h, b, "failedReason", "Promise timed out after 250 milliseconds");
  expect_field(&h, a, "attemptsMade", "1");
  expect_field(&h, a, "returnvalue", NULL);
  cr_expect_eq(atomic_load(&saw_cancel), 1, "the handler was not told to stop");
  cr_expect_lt(h.end_ms - h.started_ms, 5000, "the run took %" PRId64 " ms",
               h.end_ms - h.started_ms);
  expect_empty(&h, h.k.active);
  cr_expect_eq(rd_int(h.rc, "ZCARD %s", h.k.completed), 0);
  free(a);
  free(b);
  h_free(&h);
}

static const char *running_id;

/* True once the job is running: locked by the worker. */
static int job_running(harness *h) {
  char *lock = erpq_keys_job(&h->k, running_id, ":lock");
  long long n = rd_int(h->rc, "EXISTS %s", lock);
  free(lock);
  return n == 1;
}

Test(worker_loop, shutdown_completes_a_running_job_within_grace) {
  harness h;
  h_init(&h, "wl-shutdown", 1, 10000);
  char *a = add_job(&h, "sleep", "{\"ms\":800}", NULL);
  char *b = add_job(&h, "noop", NULL, NULL);
  running_id = a;
  h_run(&h, job_running);
  cr_expect_eq(h.stopped, 1);
  cr_expect_geq(h.end_ms - h.stop_ms, 300, "the loop did not wait for the running job (%" PRId64
                " ms)", h.end_ms - h.stop_ms);
  cr_expect_lt(h.end_ms - h.stop_ms, 5000, "shutdown took %" PRId64 " ms", h.end_ms - h.stop_ms);
  expect_field(&h, a, "returnvalue", "{\"slept\":800}");
  char *score = rd_str(h.rc, "ZSCORE %s %s", h.k.completed, a);
  cr_expect_not_null(score, "job %s is not in completed", a);
  free(score);
  char *lock = erpq_keys_job(&h.k, a, ":lock");
  cr_expect_eq(rd_int(h.rc, "EXISTS %s", lock), 0);
  free(lock);
  /* Nothing new was fetched after the stop: the other job still waits,
   * unlocked and untouched. */
  char *rows = rd_join(h.rc, "LRANGE %s 0 -1", h.k.wait);
  cr_expect_str_eq(rows, b);
  free(rows);
  expect_empty(&h, h.k.active);
  expect_field(&h, b, "processedOn", NULL);
  free(a);
  free(b);
  h_free(&h);
}

static int postponed_done(harness *h) { return rd_int(h->rc, "ZCARD %s", h->k.completed) >= 1; }

Test(worker_loop, erpq_job_delay_postpones_without_using_an_attempt) {
  harness h;
  h_init(&h, "wl-postpone", 1, 5000);
  atomic_store(&postpone_runs, 0);
  char *a = add_job(&h, "postpone", "{}", "{\"attempts\":1}");
  int64_t t0 = erpq_now_ms();
  h_run(&h, postponed_done);
  cr_expect_eq(atomic_load(&postpone_runs), 2, "ran %d times", atomic_load(&postpone_runs));
  /* The second run saw no attempt used: attempts 1 would otherwise have
   * failed the job for good. */
  expect_field(&h, a, "returnvalue", "{\"attemptsMade\":0}");
  expect_field(&h, a, "failedReason", NULL);
  expect_field(&h, a, "stacktrace", NULL);
  char *fin = field(&h, a, "finishedOn");
  cr_expect(fin && atoll(fin) - t0 >= 300, "finished %s ms after the add, before its delay",
            fin ? fin : "(nil)");
  free(fin);
  char *logs = erpq_keys_job(&h.k, a, ":logs");
  char *rows = rd_join(h.rc, "LRANGE %s 0 -1", logs);
  cr_expect(strstr(rows, "without using an attempt: provider busy"), "logs: %s", rows);
  free(rows);
  free(logs);
  expect_empty(&h, h.k.delayed);
  expect_empty(&h, h.k.active);
  free(a);
  h_free(&h);
}

#define ASYNC_JOBS 120
#define ASYNC_CONC 40
static int async_done(harness *h) { return rd_int(h->rc, "ZCARD %s", h->k.completed) >= ASYNC_JOBS; }

Test(worker_loop, async_jobs_many_in_flight_on_one_thread) {
  harness h;
  h_init(&h, "wl-async", ASYNC_CONC, 5000);
  nparked = max_parked = 0;
  async_stop = 0;
  async_target = ASYNC_CONC;
  cr_assert_eq(pthread_create(&async_thread, NULL, completer, NULL), 0);
  char *ids[ASYNC_JOBS];
  for (int i = 0; i < ASYNC_JOBS; i++) ids[i] = add_job(&h, "async", "{}", NULL);
  h_run(&h, async_done);
  pthread_mutex_lock(&amu);
  async_stop = 1;
  pthread_cond_broadcast(&acv);
  pthread_mutex_unlock(&amu);
  pthread_join(async_thread, NULL);
  cr_expect_eq(max_parked, ASYNC_CONC,
               "%d jobs were in flight at once on one pool thread (concurrency %d)", max_parked,
               ASYNC_CONC);
  for (int i = 0; i < ASYNC_JOBS; i++) {
    char want[96];
    snprintf(want, sizeof want, "{\"async\":\"%s\"}", ids[i]);
    expect_field(&h, ids[i], "returnvalue", want);
    free(ids[i]);
  }
  expect_empty(&h, h.k.active);
  h_free(&h);
}

Test(worker_loop, async_job_timeout_runs_the_cancel_callback) {
  harness h;
  h_init(&h, "wl-async-cancel", 2, 300);
  atomic_store(&cancels, 0);
  char *a = add_job(&h, "async-cancel", "{}", "{\"timeout\":200}");
  h_run(&h, one_failed);
  cr_expect_eq(atomic_load(&cancels), 1);
  expect_field(&h, a, "failedReason", "Promise timed out after 200 milliseconds");
  expect_empty(&h, h.k.active);
  free(a);
  h_free(&h);
}

static int fanout_done(harness *h) { return rd_int(h->rc, "ZCARD %s", h->k.completed) >= 4; }

Test(worker_loop, handlers_enqueue_jobs_and_call_redis) {
  harness h;
  h_init(&h, "wl-fanout", 2, 5000);
  char *a = add_job(&h, "fanout", "{}", NULL);
  h_run(&h, fanout_done);
  expect_field(&h, a, "returnvalue", "{\"first\":[1,1,1],\"second\":[0,0,0],\"ping\":\"PONG\"}");
  for (int i = 0; i < 3; i++) {
    char id[64];
    snprintf(id, sizeof id, "fan:%s:%d", a, i);
    expect_field(&h, id, "returnvalue", "{\"ok\":true}");
  }
  cr_expect_eq(rd_int(h.rc, "ZCARD %s", h.k.completed), 4, "three jobs added once each");
  free(a);
  h_free(&h);
}
