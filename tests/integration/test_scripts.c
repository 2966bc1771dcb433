/*
 * test_scripts.c - our Lua scripts (core/lua) driven through the protocol
 * layer (erpq_bull_*) against a real Redis, with hiredis's synchronous API.
 *
 * Every command goes out as EVALSHA and, on NOSCRIPT, is rebuilt with
 * erpq_cmd_use_eval() and sent again (test_send). Each test works on a queue
 * of its own and checks the exact Redis state bull 4.16.5's scripts would
 * leave: lists and their order, sorted-set scores, job hash fields, locks
 * and their TTLs, the stalled set and the limiter's keys. Pub/sub messages
 * are not checked here (the interop suite covers them with Node clients).
 *
 * Requires ERPQ_TEST_REDIS_URL; the suite fails, never skips, without it.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_bull.h"
#include "erpq_err.h"
#include "erpq_scripts.h"
#include "erpq_test_support.h"
#include "erpq_util.h"

#define TOK "11111111-2222-4333-8444-555555555555"
#define OTHER "99999999-8888-4777-8666-555555555555"
#define LOCK_MS 30000

typedef struct qctx {
  redisContext *rc;
  erpq_keys k;
  char name[128];
} qctx;

static void q_open(qctx *q, const char *stem) {
  q->rc = test_redis();
  test_queue_name(q->name, sizeof q->name, stem);
  cr_assert_eq(erpq_keys_init(&q->k, "bull", q->name), 0);
}

static void q_close(qctx *q) {
  rd_wipe(q->rc, &q->k);
  erpq_keys_free(&q->k);
  redisFree(q->rc);
}

static char *jkey(qctx *q, const char *id, const char *suffix) {
  char *s = erpq_keys_job(&q->k, id, suffix);
  cr_assert_not_null(s);
  return s;
}

/* ---- State assertions ----------------------------------------------------- */

static void expect_field(qctx *q, const char *id, const char *field, const char *want) {
  char *key = jkey(q, id, NULL);
  char *got = rd_str(q->rc, "HGET %s %s", key, field);
  if (want)
    cr_expect(got && strcmp(got, want) == 0, "%s %s = '%s', wanted '%s'", key, field,
              got ? got : "(nil)", want);
  else
    cr_expect_null(got, "%s %s = '%s', wanted no field", key, field, got ? got : "");
  free(got);
  free(key);
}

static void expect_field_i64(qctx *q, const char *id, const char *field, int64_t want) {
  char w[32];
  snprintf(w, sizeof w, "%" PRId64, want);
  expect_field(q, id, field, w);
}

static void expect_string(qctx *q, const char *key, const char *want) {
  char *got = rd_str(q->rc, "GET %s", key);
  cr_expect(got && strcmp(got, want) == 0, "GET %s = '%s', wanted '%s'", key, got ? got : "(nil)",
            want);
  free(got);
}

static void expect_key_exists(qctx *q, const char *key, int want) {
  cr_expect_eq(rd_int(q->rc, "EXISTS %s", key), want, "EXISTS %s", key);
}

static void expect_job_exists(qctx *q, const char *id, int want) {
  char *key = jkey(q, id, NULL);
  expect_key_exists(q, key, want);
  free(key);
}

/* A list, head to tail, as "a,b,c". */
static void expect_list(qctx *q, const char *key, const char *want) {
  char *got = rd_join(q->rc, "LRANGE %s 0 -1", key);
  cr_expect_str_eq(got, want, "LRANGE %s = '%s', wanted '%s'", key, got, want);
  free(got);
}

/* A sorted set's members by ascending score. */
static void expect_zset(qctx *q, const char *key, const char *want) {
  char *got = rd_join(q->rc, "ZRANGE %s 0 -1", key);
  cr_expect_str_eq(got, want, "ZRANGE %s = '%s', wanted '%s'", key, got, want);
  free(got);
}

static void expect_set(qctx *q, const char *key, const char *want) {
  char *got = rd_join(q->rc, "SORT %s ALPHA", key);
  cr_expect_str_eq(got, want, "SMEMBERS %s = '%s', wanted '%s'", key, got, want);
  free(got);
}

/* ZSCORE as an exact integer (scores stay below 2^53). */
static int64_t zscore(qctx *q, const char *key, const char *member) {
  char *s = rd_str(q->rc, "ZSCORE %s %s", key, member);
  cr_assert_not_null(s, "%s is not in %s", member, key);
  double d = strtod(s, NULL);
  free(s);
  return (int64_t)d;
}

static void expect_lock(qctx *q, const char *id, const char *token) {
  char *key = jkey(q, id, ":lock");
  char *got = rd_str(q->rc, "GET %s", key);
  if (token)
    cr_expect(got && strcmp(got, token) == 0, "%s = '%s', wanted '%s'", key, got ? got : "(nil)",
              token);
  else
    cr_expect_null(got, "%s = '%s', wanted no lock", key, got ? got : "");
  free(got);
  free(key);
}

static long long lock_pttl(qctx *q, const char *id) {
  char *key = jkey(q, id, ":lock");
  long long t = rd_int(q->rc, "PTTL %s", key);
  free(key);
  return t;
}

/* ---- Operations ------------------------------------------------------------- */

static redisReply *send_ok(qctx *q, erpq_cmd *c) {
  cr_assert_eq(c->err, 0, "building the command failed");
  redisReply *r = test_send(q->rc, c);
  cr_assert_neq(r->type, REDIS_REPLY_ERROR, "script error: %s", r->str);
  return r;
}

static long long send_int(qctx *q, erpq_cmd *c) {
  redisReply *r = send_ok(q, c);
  cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "reply type %d", r->type);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* Adds one job as Queue.add(name, data, opts) at time now and returns its
 * id (malloc'ed). */
static char *add_at(qctx *q, const char *name, const char *data, const char *opts_text,
                    int64_t now) {
  json_t *o = NULL;
  if (opts_text) {
    json_error_t je;
    o = json_loads(opts_text, 0, &je);
    cr_assert_not_null(o, "bad opts %s", opts_text);
  }
  erpq_newjob j;
  char err[256] = "";
  int rc = erpq_newjob_prepare(&j, name, data, o, now, err, sizeof err);
  json_decref(o);
  cr_assert_eq(rc, 0, "prepare: %s", err);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_add(&c, &q->k, TOK, &j, 1, 0);
  redisReply *r = send_ok(q, &c);
  char *id = NULL;
  cr_assert_eq(erpq_bull_parse_ids(r, &id, 1), 1);
  freeReplyObject(r);
  erpq_newjob_free(&j);
  return id;
}

static char *add(qctx *q, const char *opts_text) {
  return add_at(q, "job", "{\"n\":1}", opts_text, erpq_now_ms());
}

static void step(qctx *q, const char *token, int64_t now, int nfetch, const char *explicit_id,
                 const erpq_limiter *lim, const erpq_finish *fin, size_t nfin,
                 erpq_step_result *out) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_step(&c, &q->k, token, LOCK_MS, now, nfetch, explicit_id, lim, fin, nfin);
  redisReply *r = send_ok(q, &c);
  cr_assert_eq(erpq_bull_parse_step(r, out), 0);
  freeReplyObject(r);
}

/* Fetches up to n jobs with token and returns how many came. */
static size_t fetch(qctx *q, const char *token, int n, erpq_step_result *out) {
  step(q, token, erpq_now_ms(), n, NULL, NULL, NULL, 0, out);
  return out->njobs;
}

/* Fetches exactly one job, expected to be want_id, and returns it (owned
 * by the caller, release with erpq_job_free). */
static erpq_job fetch_one(qctx *q, const char *token, const char *want_id) {
  erpq_step_result s;
  cr_assert_eq(fetch(q, token, 1, &s), 1, "no job fetched");
  cr_assert_str_eq(s.jobs[0].id, want_id);
  erpq_job j = s.jobs[0];
  memset(&s.jobs[0], 0, sizeof s.jobs[0]);
  s.njobs = 0;
  erpq_step_result_free(&s);
  return j;
}

/* Sends one finish and returns its code. */
static int finish(qctx *q, const char *token, int64_t now, const erpq_finish *f) {
  erpq_step_result s;
  step(q, token, now, 0, NULL, NULL, f, 1, &s);
  cr_assert_eq(s.ncodes, 1);
  int code = s.codes[0];
  erpq_step_result_free(&s);
  return code;
}

static erpq_finish completion(const char *id, const char *val, erpq_keep keep) {
  erpq_finish f;
  memset(&f, 0, sizeof f);
  f.kind = ERPQ_FIN_COMPLETED;
  f.id = id;
  f.value = val;
  f.keep = keep;
  return f;
}

static erpq_finish failure(erpq_finish_kind kind, const char *id, const char *reason,
                           const char *stack, int attempts) {
  erpq_finish f;
  memset(&f, 0, sizeof f);
  f.kind = kind;
  f.id = id;
  f.value = reason;
  f.stacktrace = stack;
  f.attempts_made = attempts;
  f.keep = (erpq_keep){.count = -1, .has_count = 1};
  return f;
}

static const erpq_keep KEEP_ALL = {.count = -1, .has_count = 1};

/* ---- EVALSHA / EVAL -------------------------------------------------------------- */

Test(scripts, noscript_falls_back_to_eval) {
  qctx q;
  q_open(&q, "noscript");
  freeReplyObject(rd_cmd(q.rc, "SCRIPT FLUSH"));
  int before = test_noscript_fallbacks();
  char *id = add(&q, NULL);
  cr_expect_str_eq(id, "1");
  cr_expect_eq(test_noscript_fallbacks(), before + 1, "the first call after a flush is EVAL");
  /* EVAL loaded the script, so the next EVALSHA is answered directly. */
  char *id2 = add(&q, NULL);
  cr_expect_str_eq(id2, "2");
  cr_expect_eq(test_noscript_fallbacks(), before + 1);
  free(id);
  free(id2);
  q_close(&q);
}

/* ---- Adding -------------------------------------------------------------------------- */

Test(add, automatic_ids_follow_the_counter) {
  qctx q;
  q_open(&q, "add-auto");
  int64_t now = erpq_now_ms();
  char *a = add_at(&q, "fees", "{ \"school\" : 7 }", "{\"attempts\":2}", now);
  char *b = add_at(&q, NULL, NULL, NULL, now);
  cr_expect_str_eq(a, "1");
  cr_expect_str_eq(b, "2");
  expect_list(&q, q.k.wait, "2,1");
  expect_string(&q, q.k.id, "2");
  char *key = jkey(&q, "1", NULL);
  cr_expect_eq(rd_int(q.rc, "HLEN %s", key), 6, "name data opts timestamp delay priority");
  free(key);
  expect_field(&q, "1", "name", "fees");
  expect_field(&q, "1", "data", "{\"school\":7}");
  char opts[128];
  snprintf(opts, sizeof opts, "{\"attempts\":2,\"delay\":0,\"timestamp\":%" PRId64 "}", now);
  expect_field(&q, "1", "opts", opts);
  expect_field_i64(&q, "1", "timestamp", now);
  expect_field(&q, "1", "delay", "0");
  expect_field(&q, "1", "priority", "0");
  expect_field(&q, "2", "name", "__default__");
  expect_field(&q, "2", "data", "{}");
  /* The id counter is the only source of automatic ids. */
  freeReplyObject(rd_cmd(q.rc, "SET %s 56", q.k.id));
  char *c = add(&q, NULL);
  cr_expect_str_eq(c, "57");
  free(a);
  free(b);
  free(c);
  q_close(&q);
}

Test(add, custom_and_duplicate_ids) {
  qctx q;
  q_open(&q, "add-custom");
  char *a = add_at(&q, "inv", "{\"v\":1}", "{\"jobId\":\"inv-2024-07\"}", erpq_now_ms());
  cr_expect_str_eq(a, "inv-2024-07");
  expect_string(&q, q.k.id, "1"); /* INCR on a custom id too */
  char *b = add_at(&q, "inv", "{\"v\":2}", "{\"jobId\":\"inv-2024-07\"}", erpq_now_ms());
  cr_expect_str_eq(b, "inv-2024-07", "a duplicate returns the existing id");
  expect_string(&q, q.k.id, "2"); /* INCR on a duplicate too */
  expect_field(&q, "inv-2024-07", "data", "{\"v\":1}");
  expect_list(&q, q.k.wait, "inv-2024-07");
  char *c = add(&q, NULL);
  cr_expect_str_eq(c, "3");
  free(a);
  free(b);
  free(c);
  q_close(&q);
}

Test(add, delayed_score_and_state) {
  qctx q;
  q_open(&q, "add-delayed");
  int64_t now = erpq_now_ms();
  freeReplyObject(rd_cmd(q.rc, "SET %s 4096", q.k.id));
  char *a = add_at(&q, "d", NULL, "{\"delay\":5000}", now);
  char *b = add_at(&q, "d", NULL, "{\"delay\":5000,\"jobId\":\"custom\"}", now);
  cr_expect_str_eq(a, "4097");
  cr_expect_eq(zscore(&q, q.k.delayed, "4097"), (now + 5000) * 4096 + 1,
               "score = due*4096 + (counter & 0xfff)");
  cr_expect_eq(zscore(&q, q.k.delayed, "custom"), (now + 5000) * 4096 + 2,
               "a custom id uses the add counter (4098)");
  expect_key_exists(&q, q.k.wait, 0);
  expect_field(&q, "4097", "delay", "5000");
  expect_field_i64(&q, "4097", "timestamp", now);
  free(a);
  free(b);
  q_close(&q);
}

Test(add, priority_order_mixed_with_lifo) {
  qctx q;
  q_open(&q, "add-prio");
  const char *opts[] = {NULL, "{\"lifo\":true}", "{\"priority\":2}", "{\"priority\":1}",
                        "{\"priority\":2}", NULL};
  for (int i = 0; i < 6; i++) free(add(&q, opts[i]));
  /* bull: 1 LPUSH, 2 RPUSH, 3 (p2) RPUSH, 4 (p1) RPUSH, 5 (p2) LINSERT
   * BEFORE 3, 6 LPUSH. The tail is the front of the line. */
  expect_list(&q, q.k.wait, "6,1,2,5,3,4");
  expect_zset(&q, q.k.priority, "4,3,5");
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 6, &s), 6);
  const char *order[] = {"4", "3", "5", "2", "1", "6"};
  for (int i = 0; i < 6; i++) cr_expect_str_eq(s.jobs[i].id, order[i], "fetch %d", i);
  cr_expect_eq(s.jobs[0].priority, 1);
  erpq_step_result_free(&s);
  expect_key_exists(&q, q.k.priority, 0);
  q_close(&q);
}

Test(add, while_paused_lands_in_paused) {
  qctx q;
  q_open(&q, "add-paused");
  free(add(&q, NULL));
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &q.k, 1);
  cr_expect_eq(send_int(&q, &c), 0);
  free(add(&q, NULL));
  free(add(&q, "{\"priority\":3}"));
  expect_key_exists(&q, q.k.wait, 0);
  expect_list(&q, q.k.paused, "2,1,3");
  expect_zset(&q, q.k.priority, "3");
  erpq_step_result s;
  cr_expect_eq(fetch(&q, TOK, 3, &s), 0, "nothing is fetched from paused");
  cr_expect_eq(s.drained, 1);
  erpq_step_result_free(&s);
  q_close(&q);
}

/* ---- Fetching ---------------------------------------------------------------------------- */

Test(step, fetch_locks_and_moves_in_bull_order) {
  qctx q;
  q_open(&q, "step-fetch");
  for (int i = 0; i < 3; i++) free(add(&q, NULL));
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1", q.k.stalled));
  int64_t now = erpq_now_ms();
  erpq_step_result s;
  step(&q, TOK, now, 2, NULL, NULL, NULL, 0, &s);
  cr_assert_eq(s.njobs, 2);
  cr_expect_eq(s.drained, 0);
  cr_expect_str_eq(s.jobs[0].id, "1");
  cr_expect_str_eq(s.jobs[1].id, "2");
  cr_expect_str_eq(s.jobs[0].name, "job");
  cr_expect_str_eq(s.jobs[0].data, "{\"n\":1}");
  cr_expect_eq(s.jobs[0].o.attempts, 1);
  erpq_step_result_free(&s);
  /* As two RPOPLPUSH: 1 then 2 at the head of active. */
  expect_list(&q, q.k.active, "2,1");
  expect_list(&q, q.k.wait, "3");
  for (int i = 1; i <= 2; i++) {
    char id[4];
    snprintf(id, sizeof id, "%d", i);
    expect_lock(&q, id, TOK);
    long long ttl = lock_pttl(&q, id);
    cr_expect(ttl > LOCK_MS - 2000 && ttl <= LOCK_MS, "lock PTTL %lld", ttl);
    expect_field_i64(&q, id, "processedOn", now);
  }
  expect_set(&q, q.k.stalled, "1"); /* fetching does not touch the stalled set */
  step(&q, TOK, now, 5, NULL, NULL, NULL, 0, &s);
  cr_expect_eq(s.njobs, 1);
  cr_expect_eq(s.drained, 1, "fewer jobs than asked for: drained");
  erpq_step_result_free(&s);
  expect_list(&q, q.k.active, "3,2,1");
  expect_key_exists(&q, q.k.wait, 0);
  q_close(&q);
}

Test(step, explicit_id_from_blocking_pop) {
  qctx q;
  q_open(&q, "step-explicit");
  free(add(&q, NULL));
  free(add(&q, NULL));
  char *moved = rd_str(q.rc, "BRPOPLPUSH %s %s 1", q.k.wait, q.k.active);
  cr_assert_str_eq(moved, "1");
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1", q.k.stalled));
  erpq_step_result s;
  step(&q, TOK, erpq_now_ms(), 1, moved, NULL, NULL, 0, &s);
  cr_assert_eq(s.njobs, 1);
  cr_expect_str_eq(s.jobs[0].id, "1");
  erpq_step_result_free(&s);
  expect_lock(&q, "1", TOK);
  expect_set(&q, q.k.stalled, ""); /* the explicit id leaves the stalled set */
  expect_list(&q, q.k.active, "1");
  expect_list(&q, q.k.wait, "2");
  free(moved);
  q_close(&q);
}

/* ---- Completion ------------------------------------------------------------------------------ */

Test(complete, keep_everything) {
  qctx q;
  q_open(&q, "done-keep");
  free(add(&q, NULL));
  erpq_job j = fetch_one(&q, TOK, "1");
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1", q.k.stalled));
  int64_t now = erpq_now_ms();
  erpq_finish f = completion("1", "{\"total\":12}", KEEP_ALL);
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  expect_field(&q, "1", "returnvalue", "{\"total\":12}");
  expect_field_i64(&q, "1", "finishedOn", now);
  expect_field(&q, "1", "attemptsMade", NULL);
  expect_field(&q, "1", "failedReason", NULL);
  cr_expect_eq(zscore(&q, q.k.completed, "1"), now);
  expect_lock(&q, "1", NULL);
  expect_key_exists(&q, q.k.active, 0);
  expect_set(&q, q.k.stalled, "");
  erpq_job_free(&j);
  q_close(&q);
}

Test(complete, keep_none_deletes_hash_and_logs) {
  qctx q;
  q_open(&q, "done-none");
  free(add(&q, NULL));
  erpq_job j = fetch_one(&q, TOK, "1");
  char *logs = jkey(&q, "1", ":logs");
  freeReplyObject(rd_cmd(q.rc, "RPUSH %s line", logs));
  erpq_finish f = completion("1", "null", (erpq_keep){.count = 0, .has_count = 1});
  cr_expect_eq(finish(&q, TOK, erpq_now_ms(), &f), 0);
  expect_job_exists(&q, "1", 0);
  expect_key_exists(&q, logs, 0);
  expect_key_exists(&q, q.k.completed, 0);
  expect_lock(&q, "1", NULL);
  expect_key_exists(&q, q.k.active, 0);
  free(logs);
  erpq_job_free(&j);
  q_close(&q);
}

Test(complete, keep_newest_n) {
  qctx q;
  q_open(&q, "done-count");
  for (int i = 0; i < 4; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 4, &s), 4);
  int64_t now = erpq_now_ms();
  for (size_t i = 0; i < 4; i++) {
    erpq_finish f = completion(s.jobs[i].id, "1", (erpq_keep){.count = 2, .has_count = 1});
    cr_expect_eq(finish(&q, TOK, now + (int64_t)i, &f), 0);
  }
  erpq_step_result_free(&s);
  expect_zset(&q, q.k.completed, "3,4");
  expect_job_exists(&q, "1", 0);
  expect_job_exists(&q, "2", 0);
  expect_job_exists(&q, "3", 1);
  expect_job_exists(&q, "4", 1);
  q_close(&q);
}

Test(complete, keep_by_age_and_by_count_object) {
  qctx q;
  q_open(&q, "done-age");
  for (int i = 0; i < 4; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 4, &s), 4);
  erpq_step_result_free(&s);
  int64_t now = erpq_now_ms();
  /* 1 finished two minutes ago, 2 thirty seconds ago, both kept. */
  erpq_finish f = completion("1", "1", KEEP_ALL);
  cr_expect_eq(finish(&q, TOK, now - 120000, &f), 0);
  f = completion("2", "2", KEEP_ALL);
  cr_expect_eq(finish(&q, TOK, now - 30000, &f), 0);
  /* {age: 60}: jobs finished 60 s or more before this one go. */
  f = completion("3", "3", (erpq_keep){.count = -1, .has_count = 0, .age_s = 60, .has_age = 1});
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  expect_zset(&q, q.k.completed, "2,3");
  expect_job_exists(&q, "1", 0);
  expect_job_exists(&q, "2", 1);
  /* {count: 1}: only the newest stays. */
  f = completion("4", "4", (erpq_keep){.count = 1, .has_count = 1});
  cr_expect_eq(finish(&q, TOK, now + 1, &f), 0);
  expect_zset(&q, q.k.completed, "4");
  expect_job_exists(&q, "2", 0);
  expect_job_exists(&q, "3", 0);
  expect_field(&q, "4", "returnvalue", "4");
  q_close(&q);
}

/* ---- Failures ------------------------------------------------------------------------------------ */

Test(fail, final_failure) {
  qctx q;
  q_open(&q, "fail-final");
  free(add(&q, "{\"attempts\":2}"));
  erpq_job j = fetch_one(&q, TOK, "1");
  int64_t now = erpq_now_ms();
  erpq_finish f = failure(ERPQ_FIN_FAILED, "1", "SMTP \"down\"\nretry later",
                          "[\"Error: a\",\"Error: b\"]", 2);
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  expect_field(&q, "1", "failedReason", "SMTP \"down\"\nretry later");
  expect_field(&q, "1", "stacktrace", "[\"Error: a\",\"Error: b\"]");
  expect_field(&q, "1", "attemptsMade", "2");
  expect_field_i64(&q, "1", "finishedOn", now);
  expect_field(&q, "1", "returnvalue", NULL);
  cr_expect_eq(zscore(&q, q.k.failed, "1"), now);
  expect_lock(&q, "1", NULL);
  expect_key_exists(&q, q.k.active, 0);
  erpq_job_free(&j);
  q_close(&q);
}

Test(fail, final_failure_remove_on_fail_true) {
  qctx q;
  q_open(&q, "fail-remove");
  free(add(&q, NULL));
  erpq_job j = fetch_one(&q, TOK, "1");
  erpq_finish f = failure(ERPQ_FIN_FAILED, "1", "bad", "[]", 1);
  f.keep = (erpq_keep){.count = 0, .has_count = 1};
  cr_expect_eq(finish(&q, TOK, erpq_now_ms(), &f), 0);
  expect_job_exists(&q, "1", 0);
  expect_key_exists(&q, q.k.failed, 0);
  erpq_job_free(&j);
  q_close(&q);
}

Test(fail, retry_now_fifo_lifo_and_priority) {
  qctx q;
  q_open(&q, "fail-retry");
  free(add(&q, "{\"attempts\":3}"));              /* 1 */
  free(add(&q, "{\"attempts\":3,\"lifo\":true}")); /* 2 */
  free(add(&q, "{\"attempts\":3,\"priority\":4}")); /* 3 */
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 3, &s), 3);
  erpq_step_result_free(&s);
  free(add(&q, NULL)); /* 4, waiting */
  free(add(&q, "{\"priority\":9}")); /* 5, waiting, prioritized */
  expect_list(&q, q.k.wait, "4,5");
  erpq_finish f[3];
  f[0] = failure(ERPQ_FIN_RETRY, "1", "e1", "[\"Error: e1\"]", 1);
  f[1] = failure(ERPQ_FIN_RETRY, "2", "e2", "[\"Error: e2\"]", 1);
  f[1].lifo = 1;
  f[2] = failure(ERPQ_FIN_RETRY, "3", "e3", "[\"Error: e3\"]", 2);
  step(&q, TOK, erpq_now_ms(), 0, NULL, NULL, f, 3, &s);
  cr_assert_eq(s.ncodes, 3);
  for (int i = 0; i < 3; i++) cr_expect_eq(s.codes[i], 0, "code %d", i);
  erpq_step_result_free(&s);
  /* 1: LPUSH (back of the line); 2: RPUSH (front); 3: bull's priority
   * insert counts 1 prioritized job up to priority 4 and so lands at the
   * very tail, ahead of 2 and of 5 (priority 9). */
  expect_list(&q, q.k.wait, "1,4,5,2,3");
  expect_zset(&q, q.k.priority, "3,5");
  expect_field(&q, "1", "attemptsMade", "1");
  expect_field(&q, "1", "failedReason", "e1");
  expect_field(&q, "1", "stacktrace", "[\"Error: e1\"]");
  expect_field(&q, "3", "attemptsMade", "2");
  expect_field(&q, "1", "finishedOn", NULL);
  for (int i = 1; i <= 3; i++) {
    char id[4];
    snprintf(id, sizeof id, "%d", i);
    expect_lock(&q, id, NULL);
  }
  expect_key_exists(&q, q.k.active, 0);
  expect_key_exists(&q, q.k.failed, 0);
  q_close(&q);
}

Test(fail, delayed_retry) {
  qctx q;
  q_open(&q, "fail-delay");
  free(add(&q, "{\"attempts\":3,\"backoff\":1000}"));
  erpq_job j = fetch_one(&q, TOK, "1");
  int64_t now = erpq_now_ms();
  erpq_finish f = failure(ERPQ_FIN_DELAYED, "1", "later", "[\"Error: later\"]", 1);
  f.delay_score = erpq_bull_delay_score("1", now + 1000);
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  cr_expect_eq(zscore(&q, q.k.delayed, "1"), (now + 1000) * 4096 + 1);
  expect_field(&q, "1", "attemptsMade", "1");
  expect_field(&q, "1", "failedReason", "later");
  expect_field(&q, "1", "delay", "0"); /* moveToDelayed leaves the delay field alone */
  expect_lock(&q, "1", NULL);
  expect_key_exists(&q, q.k.active, 0);
  expect_key_exists(&q, q.k.wait, 0);
  erpq_job_free(&j);
  q_close(&q);
}

/* ---- Lock errors ------------------------------------------------------------------------------------ */

Test(lock_errors, wrong_token_completion_changes_nothing) {
  qctx q;
  q_open(&q, "lock-wrong-c");
  free(add(&q, NULL));
  erpq_job j = fetch_one(&q, TOK, "1");
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1", q.k.stalled));
  erpq_finish f = completion("1", "{}", KEEP_ALL);
  cr_expect_eq(finish(&q, OTHER, erpq_now_ms(), &f), -6);
  expect_lock(&q, "1", TOK);
  expect_list(&q, q.k.active, "1");
  expect_set(&q, q.k.stalled, "1");
  expect_field(&q, "1", "returnvalue", NULL);
  expect_field(&q, "1", "finishedOn", NULL);
  expect_key_exists(&q, q.k.completed, 0);
  erpq_job_free(&j);
  q_close(&q);
}

/* bull fails a job in one MULTI: saveStacktrace (stacktrace, failedReason,
 * attemptsMade on any existing job) and then moveToFinished / retryJob /
 * moveToDelayed, which refuse with -6/-2/-3. The hash thus carries the
 * attempt even when the lock check refuses the move. */
/* bull's moveToFailed saves the attempt (stacktrace, failedReason,
 * attemptsMade) in the same MULTI even when the move itself is refused for
 * the lock, i.e. it writes into a job another worker now owns. erpq does not
 * touch a job whose lock is not ours (README, "Differences, on purpose"). */
Test(lock_errors, wrong_token_failure_writes_nothing) {
  qctx q;
  q_open(&q, "lock-wrong-f");
  free(add(&q, "{\"attempts\":3}"));
  erpq_job j = fetch_one(&q, TOK, "1");
  erpq_finish f = failure(ERPQ_FIN_RETRY, "1", "oops", "[\"Error: oops\"]", 1);
  cr_expect_eq(finish(&q, OTHER, erpq_now_ms(), &f), -6);
  expect_lock(&q, "1", TOK);
  expect_list(&q, q.k.active, "1");
  expect_key_exists(&q, q.k.wait, 0);
  expect_field(&q, "1", "attemptsMade", NULL);
  expect_field(&q, "1", "failedReason", NULL);
  expect_field(&q, "1", "stacktrace", NULL);
  erpq_job_free(&j);
  q_close(&q);
}

Test(lock_errors, lost_lock_not_active_and_missing_job) {
  qctx q;
  q_open(&q, "lock-codes");
  for (int i = 0; i < 3; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 2, &s), 2);
  erpq_step_result_free(&s);
  /* 1: lock expired. */
  char *lock1 = jkey(&q, "1", ":lock");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock1));
  /* 3: waiting, yet holding our token (not in active). */
  char *lock3 = jkey(&q, "3", ":lock");
  freeReplyObject(rd_cmd(q.rc, "SET %s %s", lock3, TOK));
  erpq_finish f[4];
  f[0] = completion("1", "1", KEEP_ALL);
  f[1] = completion("3", "3", KEEP_ALL);
  f[2] = completion("nope", "x", KEEP_ALL);
  f[3] = completion("2", "2", KEEP_ALL);
  step(&q, TOK, erpq_now_ms(), 0, NULL, NULL, f, 4, &s);
  cr_assert_eq(s.ncodes, 4);
  cr_expect_eq(s.codes[0], -2);
  cr_expect_eq(s.codes[1], -3);
  cr_expect_eq(s.codes[2], -1);
  cr_expect_eq(s.codes[3], 0, "one refused finish does not stop the others");
  erpq_step_result_free(&s);
  expect_list(&q, q.k.active, "1");
  expect_field(&q, "1", "returnvalue", NULL);
  expect_list(&q, q.k.wait, "3");
  expect_field(&q, "3", "returnvalue", NULL);
  expect_key_exists(&q, lock3, 0); /* bull's removeLock runs before the -3 check */
  expect_job_exists(&q, "nope", 0);
  expect_zset(&q, q.k.completed, "2");
  free(lock1);
  free(lock3);
  q_close(&q);
}

/* ---- Lock renewal ---------------------------------------------------------------------------------------- */

Test(extend, renews_only_our_locks) {
  qctx q;
  q_open(&q, "extend");
  for (int i = 0; i < 3; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 3, &s), 3);
  erpq_step_result_free(&s);
  char *lock2 = jkey(&q, "2", ":lock"), *lock3 = jkey(&q, "3", ":lock");
  freeReplyObject(rd_cmd(q.rc, "SET %s %s PX 5000", lock2, OTHER));
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock3));
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1 2 3", q.k.stalled));
  const char *ids[] = {"1", "2", "3"};
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_extend(&c, &q.k, TOK, 90000, ids, 3);
  redisReply *r = send_ok(&q, &c);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 3);
  cr_expect_eq(r->element[0]->integer, 1);
  cr_expect_eq(r->element[1]->integer, 0);
  cr_expect_eq(r->element[2]->integer, 0);
  freeReplyObject(r);
  long long ttl = lock_pttl(&q, "1");
  cr_expect(ttl > 88000 && ttl <= 90000, "renewed PTTL %lld", ttl);
  expect_lock(&q, "2", OTHER);
  cr_expect_leq(lock_pttl(&q, "2"), 5000, "another worker's lock is not touched");
  expect_lock(&q, "3", NULL);
  expect_set(&q, q.k.stalled, "2,3");
  free(lock2);
  free(lock3);
  q_close(&q);
}

/* ---- Stalled jobs --------------------------------------------------------------------------------------- */

static redisReply *stalled_check(qctx *q, int max_stalled, int64_t interval) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_stalled(&c, &q->k, max_stalled, erpq_now_ms(), interval);
  redisReply *r = send_ok(q, &c);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 2);
  return r;
}

static void expect_stalled_reply(qctx *q, int max_stalled, const char *failed,
                                 const char *stalled) {
  redisReply *r = stalled_check(q, max_stalled, 60000);
  char got[2][256] = {"", ""};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < r->element[k]->elements; i++) {
      if (i) strcat(got[k], ",");
      strncat(got[k], r->element[k]->element[i]->str, 64);
    }
  cr_expect_str_eq(got[0], failed, "failed ids '%s', wanted '%s'", got[0], failed);
  cr_expect_str_eq(got[1], stalled, "stalled ids '%s', wanted '%s'", got[1], stalled);
  freeReplyObject(r);
}

Test(stalled, requeue_then_fail_after_max_stalled_count) {
  qctx q;
  q_open(&q, "stalled");
  free(add(&q, NULL)); /* 1: the job that will stall */
  erpq_job j = fetch_one(&q, TOK, "1");
  erpq_job_free(&j);
  free(add(&q, NULL)); /* 2: waiting */
  char *lock1 = jkey(&q, "1", ":lock");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock1)); /* the worker died */
  /* First check: nothing marked yet; marks the active jobs. */
  expect_stalled_reply(&q, 1, "", "");
  expect_set(&q, q.k.stalled, "1");
  long long ttl = rd_int(q.rc, "PTTL %s", q.k.stalled_check);
  cr_expect(ttl > 55000 && ttl <= 60000, "stalled-check PTTL %lld", ttl);
  /* Within the interval the throttle key blocks another check. */
  expect_stalled_reply(&q, 1, "", "");
  expect_list(&q, q.k.active, "1");
  expect_set(&q, q.k.stalled, "1");
  /* The interval passes: 1 goes back to the front of the line. */
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.stalled_check));
  expect_stalled_reply(&q, 1, "", "1");
  expect_list(&q, q.k.wait, "2,1");
  expect_key_exists(&q, q.k.active, 0);
  expect_field(&q, "1", "stalledCounter", "1");
  expect_set(&q, q.k.stalled, "");
  /* It runs again and its worker dies again: it fails for good. */
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 1, &s), 1);
  cr_expect_str_eq(s.jobs[0].id, "1");
  cr_expect_eq(s.jobs[0].stalled_counter, 1);
  erpq_step_result_free(&s);
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock1));
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.stalled_check));
  expect_stalled_reply(&q, 1, "", "");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.stalled_check));
  int64_t before = erpq_now_ms();
  expect_stalled_reply(&q, 1, "1", "");
  expect_field(&q, "1", "failedReason", "job stalled more than allowable limit");
  expect_field(&q, "1", "stalledCounter", "2");
  int64_t fin = zscore(&q, q.k.failed, "1");
  cr_expect(fin >= before && fin <= erpq_now_ms(), "failed score %" PRId64, fin);
  expect_field_i64(&q, "1", "finishedOn", fin);
  expect_key_exists(&q, q.k.active, 0);
  expect_list(&q, q.k.wait, "2");
  free(lock1);
  q_close(&q);
}

Test(stalled, locked_jobs_are_not_stalled) {
  qctx q;
  q_open(&q, "stalled-locked");
  free(add(&q, NULL));
  erpq_job j = fetch_one(&q, TOK, "1");
  erpq_job_free(&j);
  expect_stalled_reply(&q, 1, "", "");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.stalled_check));
  expect_stalled_reply(&q, 1, "", "");
  expect_list(&q, q.k.active, "1");
  expect_field(&q, "1", "stalledCounter", NULL);
  expect_set(&q, q.k.stalled, "1");
  q_close(&q);
}

Test(stalled, remove_on_fail_applies_to_stalled_failures) {
  qctx q;
  q_open(&q, "stalled-rof");
  free(add(&q, "{\"removeOnFail\":true}"));
  erpq_job j = fetch_one(&q, TOK, "1");
  erpq_job_free(&j);
  char *lock1 = jkey(&q, "1", ":lock");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock1));
  expect_stalled_reply(&q, 0, "", "");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.stalled_check));
  expect_stalled_reply(&q, 0, "1", "");
  expect_job_exists(&q, "1", 0);
  expect_key_exists(&q, q.k.failed, 0);
  free(lock1);
  q_close(&q);
}

/* ---- Delayed jobs ------------------------------------------------------------------------------------------ */

Test(delayed, promotes_only_due_jobs) {
  qctx q;
  q_open(&q, "delayed");
  int64_t now = erpq_now_ms();
  /* Due 1 s ago, 0.5 s ago, and in a minute (timestamps in the past). */
  free(add_at(&q, "d", NULL, "{\"delay\":1000}", now - 2000));
  free(add_at(&q, "d", NULL, "{\"delay\":1000}", now - 1500));
  free(add_at(&q, "d", NULL, "{\"delay\":60000}", now));
  free(add_at(&q, "d", NULL, "{\"delay\":1000,\"priority\":2}", now - 3000));
  free(add(&q, NULL)); /* 5, waiting */
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_delayed(&c, &q.k, TOK, now);
  redisReply *r = send_ok(&q, &c);
  cr_assert_eq(r->type, REDIS_REPLY_STRING, "the next score");
  int64_t next = (int64_t)strtod(r->str, NULL);
  cr_expect_eq(next, (now + 60000) * 4096 + 3);
  freeReplyObject(r);
  /* 4 (due first, prioritized) to the priority position; then 1 and 2
   * LPUSHed in due order. */
  expect_list(&q, q.k.wait, "2,1,5,4");
  expect_zset(&q, q.k.delayed, "3");
  expect_zset(&q, q.k.priority, "4");
  expect_field(&q, "1", "delay", "0");
  expect_field(&q, "2", "delay", "0");
  expect_field(&q, "4", "delay", "0");
  expect_field(&q, "3", "delay", "60000");
  /* Nothing left due: nil when the set is empty. */
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.delayed));
  erpq_cmd_init(&c);
  erpq_bull_delayed(&c, &q.k, TOK, now);
  r = send_ok(&q, &c);
  cr_expect_eq(r->type, REDIS_REPLY_NIL);
  freeReplyObject(r);
  q_close(&q);
}

Test(delayed, promotion_while_paused_goes_to_paused) {
  qctx q;
  q_open(&q, "delayed-paused");
  int64_t now = erpq_now_ms();
  free(add_at(&q, "d", NULL, "{\"delay\":10}", now - 100));
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &q.k, 1);
  cr_expect_eq(send_int(&q, &c), 0);
  erpq_cmd_init(&c);
  erpq_bull_delayed(&c, &q.k, TOK, now);
  redisReply *r = send_ok(&q, &c);
  cr_expect_eq(r->type, REDIS_REPLY_NIL);
  freeReplyObject(r);
  expect_list(&q, q.k.paused, "1");
  expect_key_exists(&q, q.k.wait, 0);
  q_close(&q);
}

/* ---- Pause, promote, remove, reprocess ------------------------------------------------------------------------ */

Test(admin, pause_and_resume) {
  qctx q;
  q_open(&q, "pause");
  free(add(&q, NULL));
  free(add(&q, NULL));
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &q.k, 1);
  cr_expect_eq(send_int(&q, &c), 0);
  expect_key_exists(&q, q.k.wait, 0);
  expect_list(&q, q.k.paused, "2,1");
  char *mp = rd_str(q.rc, "GET %s", q.k.meta_paused);
  cr_expect_str_eq(mp, "1");
  free(mp);
  char *mf = rd_str(q.rc, "HGET %s paused", q.k.meta);
  cr_expect_str_eq(mf, "1");
  free(mf);
  /* Pausing again (nothing to rename) is harmless. */
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &q.k, 1);
  cr_expect_eq(send_int(&q, &c), 0);
  expect_list(&q, q.k.paused, "2,1");
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &q.k, 0);
  cr_expect_eq(send_int(&q, &c), 0);
  expect_list(&q, q.k.wait, "2,1");
  expect_key_exists(&q, q.k.paused, 0);
  expect_key_exists(&q, q.k.meta_paused, 0);
  cr_expect_eq(rd_int(q.rc, "HEXISTS %s paused", q.k.meta), 0);
  q_close(&q);
}

Test(admin, promote) {
  qctx q;
  q_open(&q, "promote");
  free(add(&q, "{\"delay\":60000}"));
  free(add(&q, NULL));
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_promote(&c, &q.k, TOK, "1");
  cr_expect_eq(send_int(&q, &c), 0);
  expect_list(&q, q.k.wait, "1,2");
  expect_key_exists(&q, q.k.delayed, 0);
  expect_field(&q, "1", "delay", "0");
  erpq_cmd_init(&c);
  erpq_bull_promote(&c, &q.k, TOK, "2");
  cr_expect_eq(send_int(&q, &c), -1, "only a delayed job can be promoted");
  erpq_cmd_init(&c);
  erpq_bull_promote(&c, &q.k, TOK, "1");
  cr_expect_eq(send_int(&q, &c), -1);
  expect_list(&q, q.k.wait, "1,2");
  q_close(&q);
}

Test(admin, remove_refused_while_locked) {
  qctx q;
  q_open(&q, "remove");
  free(add(&q, NULL));
  free(add(&q, "{\"priority\":3,\"debounce\":{\"id\":\"deb\"}}"));
  erpq_job j = fetch_one(&q, TOK, "2");
  erpq_job_free(&j);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_remove(&c, &q.k, "2");
  cr_expect_eq(send_int(&q, &c), 0, "a locked job is not removed");
  expect_job_exists(&q, "2", 1);
  expect_list(&q, q.k.active, "2");
  /* Once unlocked it goes, with its debounce key. */
  char *lock2 = jkey(&q, "2", ":lock");
  freeReplyObject(rd_cmd(q.rc, "DEL %s", lock2));
  char dek[256];
  snprintf(dek, sizeof dek, "%s:deb", q.k.de);
  expect_key_exists(&q, dek, 1);
  erpq_cmd_init(&c);
  erpq_bull_remove(&c, &q.k, "2");
  cr_expect_eq(send_int(&q, &c), 1);
  expect_job_exists(&q, "2", 0);
  expect_key_exists(&q, q.k.active, 0);
  expect_key_exists(&q, dek, 0);
  /* A waiting job: out of wait, its hash and logs gone. */
  char *logs = jkey(&q, "1", ":logs");
  freeReplyObject(rd_cmd(q.rc, "RPUSH %s row", logs));
  erpq_cmd_init(&c);
  erpq_bull_remove(&c, &q.k, "1");
  cr_expect_eq(send_int(&q, &c), 1);
  expect_job_exists(&q, "1", 0);
  expect_key_exists(&q, logs, 0);
  expect_key_exists(&q, q.k.wait, 0);
  free(logs);
  free(lock2);
  q_close(&q);
}

Test(admin, reprocess_completed_and_failed) {
  qctx q;
  q_open(&q, "reprocess");
  free(add(&q, NULL));
  free(add(&q, "{\"lifo\":true}"));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 2, &s), 2);
  erpq_step_result_free(&s);
  int64_t now = erpq_now_ms();
  erpq_finish f = completion("1", "{\"ok\":1}", KEEP_ALL);
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  f = failure(ERPQ_FIN_FAILED, "2", "bad", "[\"Error: bad\"]", 1);
  cr_expect_eq(finish(&q, TOK, now, &f), 0);
  free(add(&q, NULL)); /* 3 waiting */
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_reprocess(&c, &q.k, TOK, "1", "completed", 0, now + 5);
  cr_expect_eq(send_int(&q, &c), 1);
  erpq_cmd_init(&c);
  erpq_bull_reprocess(&c, &q.k, TOK, "2", "failed", 1, now + 6);
  cr_expect_eq(send_int(&q, &c), 1);
  expect_list(&q, q.k.wait, "1,3,2");
  expect_key_exists(&q, q.k.completed, 0);
  expect_key_exists(&q, q.k.failed, 0);
  expect_field(&q, "1", "finishedOn", NULL);
  expect_field(&q, "1", "processedOn", NULL);
  expect_field_i64(&q, "1", "retriedOn", now + 5);
  expect_field(&q, "1", "returnvalue", "{\"ok\":1}");
  expect_field(&q, "2", "failedReason", NULL);
  expect_field(&q, "2", "attemptsMade", "1"); /* reprocess keeps attemptsMade */
  expect_field_i64(&q, "2", "retriedOn", now + 6);
  /* Not in that state: -2; missing: 0; locked: -1. */
  erpq_cmd_init(&c);
  erpq_bull_reprocess(&c, &q.k, TOK, "3", "failed", 0, now);
  cr_expect_eq(send_int(&q, &c), -2);
  erpq_cmd_init(&c);
  erpq_bull_reprocess(&c, &q.k, TOK, "404", "failed", 0, now);
  cr_expect_eq(send_int(&q, &c), 0);
  char *lock3 = jkey(&q, "3", ":lock");
  freeReplyObject(rd_cmd(q.rc, "SET %s %s", lock3, OTHER));
  erpq_cmd_init(&c);
  erpq_bull_reprocess(&c, &q.k, TOK, "3", "completed", 0, now);
  cr_expect_eq(send_int(&q, &c), -1);
  expect_list(&q, q.k.wait, "1,3,2");
  free(lock3);
  q_close(&q);
}

/* ---- Clean --------------------------------------------------------------------------------------------------- */

static char *clean(qctx *q, const char *state, int64_t grace, int64_t limit, int64_t now) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_clean(&c, &q->k, state, grace, limit, now);
  redisReply *r = send_ok(q, &c);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  char *s = calloc(1, 1024);
  for (size_t i = 0; i < r->elements; i++) {
    if (i) strcat(s, ",");
    strncat(s, r->element[i]->str, 64);
  }
  freeReplyObject(r);
  return s;
}

Test(admin, clean_completed_with_grace_and_limit) {
  qctx q;
  q_open(&q, "clean");
  for (int i = 0; i < 5; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 5, &s), 5);
  erpq_step_result_free(&s);
  int64_t now = erpq_now_ms();
  /* Finished 50, 40, 30, 20 s ago and now. */
  for (int i = 0; i < 5; i++) {
    char id[4];
    snprintf(id, sizeof id, "%d", i + 1);
    erpq_finish f = completion(id, "0", KEEP_ALL);
    cr_expect_eq(finish(&q, TOK, i < 4 ? now - (50 - 10 * i) * 1000 : now, &f), 0);
  }
  char *got = clean(&q, "completed", 25000, 2, now);
  cr_expect_str_eq(got, "1,2", "the oldest two of those past the grace");
  free(got);
  expect_zset(&q, q.k.completed, "3,4,5");
  expect_job_exists(&q, "1", 0);
  expect_job_exists(&q, "2", 0);
  got = clean(&q, "completed", 25000, 0, now);
  cr_expect_str_eq(got, "3");
  free(got);
  expect_zset(&q, q.k.completed, "4,5");
  expect_job_exists(&q, "4", 1);
  q_close(&q);
}

Test(admin, clean_wait_list_skips_locked_and_recent) {
  qctx q;
  q_open(&q, "clean-wait");
  int64_t now = erpq_now_ms();
  free(add_at(&q, "x", NULL, NULL, now - 60000));
  free(add_at(&q, "x", NULL, "{\"priority\":1}", now - 60000));
  free(add_at(&q, "x", NULL, NULL, now));
  free(add_at(&q, "x", NULL, NULL, now - 60000));
  char *lock4 = jkey(&q, "4", ":lock");
  freeReplyObject(rd_cmd(q.rc, "SET %s %s", lock4, OTHER));
  char *got = clean(&q, "wait", 10000, 0, now);
  cr_expect_str_eq(got, "1,2");
  free(got);
  expect_list(&q, q.k.wait, "4,3");
  expect_key_exists(&q, q.k.priority, 0);
  expect_job_exists(&q, "1", 0);
  expect_job_exists(&q, "2", 0);
  free(lock4);
  q_close(&q);
}

/* ---- Handback ------------------------------------------------------------------------------------------------ */

Test(handback, only_our_locked_jobs_go_to_the_front) {
  qctx q;
  q_open(&q, "handback");
  for (int i = 0; i < 3; i++) free(add(&q, NULL));
  erpq_step_result s;
  cr_assert_eq(fetch(&q, TOK, 2, &s), 2); /* 1, 2 */
  erpq_step_result_free(&s);
  cr_assert_eq(fetch(&q, OTHER, 1, &s), 1); /* 3 */
  erpq_step_result_free(&s);
  free(add(&q, NULL)); /* 4 waiting */
  freeReplyObject(rd_cmd(q.rc, "SADD %s 1 2 3", q.k.stalled));
  const char *ids[] = {"1", "2", "3"};
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_handback(&c, &q.k, TOK, ids, 3);
  redisReply *r = send_ok(&q, &c);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 3);
  cr_expect_eq(r->element[0]->integer, 1);
  cr_expect_eq(r->element[1]->integer, 1);
  cr_expect_eq(r->element[2]->integer, 0);
  freeReplyObject(r);
  expect_list(&q, q.k.wait, "4,1,2");
  expect_list(&q, q.k.active, "3");
  expect_lock(&q, "1", NULL);
  expect_lock(&q, "2", NULL);
  expect_lock(&q, "3", OTHER);
  expect_set(&q, q.k.stalled, "3");
  q_close(&q);
}

/* ---- Rate limiter -------------------------------------------------------------------------------------------- */

Test(limiter, max_per_duration_then_delayed_and_limited) {
  qctx q;
  q_open(&q, "limiter");
  for (int i = 0; i < 5; i++) free(add(&q, NULL));
  erpq_limiter lim = {.max = 2, .duration_ms = 10000, .bounce_back = 0};
  int64_t now = erpq_now_ms();
  erpq_step_result s;
  step(&q, TOK, now, 5, NULL, &lim, NULL, 0, &s);
  cr_assert_eq(s.njobs, 2, "max 2 jobs per duration");
  cr_expect_str_eq(s.jobs[0].id, "1");
  cr_expect_str_eq(s.jobs[1].id, "2");
  cr_expect_eq(s.drained, 0);
  erpq_step_result_free(&s);
  char *counter = rd_str(q.rc, "GET %s", q.k.limiter);
  cr_expect_str_eq(counter, "2");
  free(counter);
  long long ttl = rd_int(q.rc, "PTTL %s", q.k.limiter);
  cr_expect(ttl > 8000 && ttl <= 10000, "limiter PTTL %lld", ttl);
  /* 3 was taken and put in delayed until the window ends. */
  expect_list(&q, q.k.active, "2,1");
  expect_list(&q, q.k.wait, "5,4");
  int64_t score = zscore(&q, q.k.delayed, "3");
  int64_t lo = (now + 8000) * 4096, hi = (now + 10000) * 4096 + 4095;
  cr_expect(score >= lo && score <= hi, "delayed score %" PRId64 " not in [%" PRId64 ", %" PRId64 "]",
            score, lo, hi);
  cr_expect_eq(score & 0xfff, 2, "low bits carry the limiter counter");
  char limited[256];
  snprintf(limited, sizeof limited, "%s:limited", q.k.limiter);
  expect_set(&q, limited, "3");
  char *idx = rd_str(q.rc, "HGET %s:index 3", q.k.limiter);
  cr_expect_str_eq(idx, limited);
  free(idx);
  expect_lock(&q, "3", NULL);
  /* The next one waits behind the limited job: card*duration*1.1/max+PTTL. */
  step(&q, TOK, now, 1, NULL, &lim, NULL, 0, &s);
  cr_expect_eq(s.njobs, 0);
  erpq_step_result_free(&s);
  int64_t s4 = zscore(&q, q.k.delayed, "4");
  cr_expect(s4 >= (now + 5500 + 8000) * 4096 && s4 <= (now + 5500 + 10000) * 4096 + 4095,
            "second limited score %" PRId64, s4);
  expect_set(&q, limited, "3,4");
  expect_list(&q, q.k.wait, "5");
  /* Once due, a previously limited job runs without further delay. */
  freeReplyObject(rd_cmd(q.rc, "DEL %s", q.k.limiter));
  freeReplyObject(rd_cmd(q.rc, "ZREM %s 3", q.k.delayed));
  freeReplyObject(rd_cmd(q.rc, "RPUSH %s 3", q.k.wait));
  step(&q, TOK, now, 1, NULL, &lim, NULL, 0, &s);
  cr_assert_eq(s.njobs, 1);
  cr_expect_str_eq(s.jobs[0].id, "3");
  erpq_step_result_free(&s);
  expect_set(&q, limited, "4");
  cr_expect_eq(rd_int(q.rc, "HEXISTS %s:index 3", q.k.limiter), 0);
  q_close(&q);
}

/* The HTTP API's rate guard on add: counters are bumped (with a TTL) on
 * every call, an add over either limit adds nothing and answers
 * ERPQ_RATE_LIMITED, and ratelimit.lua counts the same keys. */
Test(add, rate_guard_counts_then_refuses_without_adding) {
  qctx q;
  q_open(&q, "rateguard");
  char kip[300], ksub[300];
  snprintf(kip, sizeof kip, "bull:erpq:rl:ip:%s", q.name);
  snprintf(ksub, sizeof ksub, "bull:erpq:rl:sub:%s", q.name);
  erpq_rate_guard g = {.n = 2, .keys = {kip, ksub}, .limits = {3, 2}, .ttl_s = 120};
  erpq_newjob j;
  char err[256] = "";
  cr_assert_eq(erpq_newjob_prepare(&j, "job", "{}", NULL, erpq_now_ms(), err, sizeof err), 0, "%s", err);
  for (int i = 0; i < 3; i++) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    cr_assert_eq(erpq_bull_add_guarded(&c, &q.k, TOK, &j, 1, 0, &g), 0);
    redisReply *r = test_send(q.rc, &c);
    if (i < 2) {
      char *id = NULL;
      cr_assert_eq(erpq_bull_parse_ids(r, &id, 1), 1, "add %d: type %d %s", i, r->type, r->str ? r->str : "");
      free(id);
    } else {
      /* The subject's limit (2) is passed on the third call. */
      cr_assert_eq(erpq_bull_rate_limited(r), 1, "type %d: %s", r->type, r->str ? r->str : "");
    }
    freeReplyObject(r);
  }
  erpq_newjob_free(&j);
  expect_list(&q, q.k.wait, "2,1");
  cr_expect_eq(rd_int(q.rc, "INCRBY %s 0", kip), 3, "refused calls are counted too");
  cr_expect_eq(rd_int(q.rc, "INCRBY %s 0", ksub), 3);
  long long ttl = rd_int(q.rc, "TTL %s", kip);
  cr_expect(ttl > 100 && ttl <= 120, "a new counter gets the TTL (%lld)", ttl);
  /* ratelimit.lua on the same keys: over (1) now, and under with a fresh key. */
  erpq_cmd c;
  erpq_cmd_init(&c);
  const char *keys[1] = {kip};
  erpq_cmd_script_keys(&c, ERPQ_LUA_RATELIMIT, keys, 1);
  erpq_cmd_push_i64(&c, 3);
  erpq_cmd_push_i64(&c, 120);
  cr_expect_eq(send_int(&q, &c), 1); /* test_send frees the command. */
  freeReplyObject(rd_cmd(q.rc, "DEL %s %s", kip, ksub));
  erpq_cmd_init(&c);
  erpq_cmd_script_keys(&c, ERPQ_LUA_RATELIMIT, keys, 1);
  erpq_cmd_push_i64(&c, 3);
  erpq_cmd_push_i64(&c, 120);
  cr_expect_eq(send_int(&q, &c), 0);
  freeReplyObject(rd_cmd(q.rc, "DEL %s", kip));
  q_close(&q);
}
