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
