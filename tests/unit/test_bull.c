/*
 * test_bull.c - the bull protocol layer without Redis: key names, delayed
 * scores, failure decisions, event JSON, the argument vectors of our script
 * calls, reply parsing on hand-built redisReply trees, Redis URLs, numeric
 * arguments, and the worker's handler/backoff registry.
 *
 * Values that must match bull 4.16.5 byte for byte (event JSON, delayed
 * scores, backoff delays) come from tests/unit/bull_vectors.json, which
 * tests/unit/gen-bull-vectors.js produces with bull itself.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_registry.h"
#include "erpq_scripts.h"
#include "erpq_test_support.h"

#define NOW 1700000000123LL

static json_t *J(const char *text) {
  json_error_t je;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
  cr_assert_not_null(v, "bad test JSON %s: %s", text, je.text);
  return v;
}

static void init_scripts(void) { cr_assert_eq(erpq_scripts_init(), 0); }

/* The arguments of a built command, as NUL-terminated copies. */
typedef struct argv_copy {
  int argc;
  char **v;
} argv_copy;

static argv_copy copy_argv(erpq_cmd *c) {
  const char **argv;
  const size_t *lens;
  argv_copy a = {0, NULL};
  a.argc = erpq_cmd_argv(c, &argv, &lens);
  cr_assert_gt(a.argc, 0, "command build failed: %d", a.argc);
  a.v = calloc((size_t)a.argc, sizeof *a.v);
  for (int i = 0; i < a.argc; i++) a.v[i] = strndup(argv[i], lens[i]);
  return a;
}

static void free_argv(argv_copy *a) {
  for (int i = 0; i < a->argc; i++) free(a->v[i]);
  free(a->v);
}

static int is_sha(const char *s) {
  if (strlen(s) != 40) return 0;
  for (int i = 0; i < 40; i++)
    if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return 0;
  return 1;
}

/* ---- Keys ------------------------------------------------------------------ */

Test(keys, default_prefix_every_key) {
  erpq_keys k;
  cr_assert_eq(erpq_keys_init(&k, "bull", "fees"), 0);
  cr_expect_str_eq(k.queue, "fees");
  cr_expect_str_eq(k.prefix, "bull");
  cr_expect_str_eq(k.base, "bull:fees:");
  cr_expect_eq(k.base_len, strlen("bull:fees:"));
  struct {
    const char *got, *want;
  } t[] = {
      {k.wait, "bull:fees:wait"},
      {k.active, "bull:fees:active"},
      {k.paused, "bull:fees:paused"},
      {k.meta_paused, "bull:fees:meta-paused"},
      {k.meta, "bull:fees:meta"},
      {k.id, "bull:fees:id"},
      {k.delayed, "bull:fees:delayed"},
      {k.priority, "bull:fees:priority"},
      {k.completed, "bull:fees:completed"},
      {k.failed, "bull:fees:failed"},
      {k.stalled, "bull:fees:stalled"},
      {k.stalled_check, "bull:fees:stalled-check"},
      {k.limiter, "bull:fees:limiter"},
      {k.repeat, "bull:fees:repeat"},
      {k.progress, "bull:fees:progress"},
      {k.drained, "bull:fees:drained"},
      {k.waiting, "bull:fees:waiting"},
      {k.resumed, "bull:fees:resumed"},
      {k.paused_ch, "bull:fees:paused"},
      {k.de, "bull:fees:de"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) cr_expect_str_eq(t[i].got, t[i].want);
  char *j = erpq_keys_job(&k, "42", NULL);
  cr_expect_str_eq(j, "bull:fees:42");
  free(j);
  j = erpq_keys_job(&k, "42", ":lock");
  cr_expect_str_eq(j, "bull:fees:42:lock");
  free(j);
  j = erpq_keys_job(&k, "repeat:abc:1700", ":logs");
  cr_expect_str_eq(j, "bull:fees:repeat:abc:1700:logs");
  free(j);
  erpq_keys_free(&k);
  cr_expect_null(k.base);
  cr_expect_null(k.wait);
}

Test(keys, hash_tagged_prefix_keeps_every_key_in_the_tag) {
  erpq_keys k;
  cr_assert_eq(erpq_keys_init(&k, "{erp}", "reports"), 0);
  cr_expect_str_eq(k.base, "{erp}:reports:");
  const char *all[] = {k.wait,      k.active,  k.paused,        k.meta_paused, k.meta,
                       k.id,        k.delayed, k.priority,      k.completed,   k.failed,
                       k.stalled,   k.stalled_check, k.limiter, k.repeat,      k.progress,
                       k.drained,   k.waiting, k.resumed,       k.paused_ch,   k.de};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    cr_expect_eq(strncmp(all[i], "{erp}:reports:", 14), 0, "%s", all[i]);
  cr_expect_str_eq(k.stalled_check, "{erp}:reports:stalled-check");
  cr_expect_str_eq(k.meta_paused, "{erp}:reports:meta-paused");
  char *j = erpq_keys_job(&k, "7", ":lock");
  cr_expect_str_eq(j, "{erp}:reports:7:lock");
  free(j);
  erpq_keys_free(&k);
}

Test(keys, empty_prefix_or_queue_is_refused) {
  erpq_keys k;
  cr_expect_eq(erpq_keys_init(&k, "", "q"), ERPQ_E_ARG);
  cr_expect_eq(erpq_keys_init(&k, "bull", ""), ERPQ_E_ARG);
  cr_expect_eq(erpq_keys_init(&k, NULL, "q"), ERPQ_E_ARG);
  cr_expect_eq(erpq_keys_init(&k, "bull", NULL), ERPQ_E_ARG);
}

/* ---- Delayed scores ------------------------------------------------------------ */

Test(delay_score, matches_bull_move_to_delayed_args) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "scores"), i, c) {
    const char *id = json_string_value(json_object_get(c, "id"));
    int64_t due = json_integer_value(json_object_get(c, "due"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    char got[32];
    snprintf(got, sizeof got, "%lld", (long long)erpq_bull_delay_score(id, due));
    cr_expect_str_eq(got, want, "score(%s, %lld)", id, (long long)due);
  }
  json_decref(v);
}

Test(delay_score, low_twelve_bits_of_numeric_ids_non_numeric_zero) {
  cr_expect_eq(erpq_bull_delay_score("1", 1000), 1000 * 4096 + 1);
  cr_expect_eq(erpq_bull_delay_score("4095", 1000), 1000 * 4096 + 4095);
  cr_expect_eq(erpq_bull_delay_score("4096", 1000), 1000 * 4096);
  cr_expect_eq(erpq_bull_delay_score("8193", 1000), 1000 * 4096 + 1);
  cr_expect_eq(erpq_bull_delay_score("fee-run", 1000), 1000 * 4096);
  cr_expect_eq(erpq_bull_delay_score("12abc", 1000), 1000 * 4096);
  cr_expect_eq(erpq_bull_delay_score("", 1000), 1000 * 4096);
  cr_expect_eq(erpq_bull_delay_score("5", 0), 0, "bull sends 0 for no due time");
}

/* bull computes (jobId & 0xfff) with JavaScript's Number(): "1e3", "0x1f"
 * and " 42 " are numbers there. Only the tie-break inside one millisecond
 * depends on it. */
Test(delay_score, numeric_strings_as_javascript_reads_them) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "scoresJs"), i, c) {
    const char *id = json_string_value(json_object_get(c, "id"));
    int64_t due = json_integer_value(json_object_get(c, "due"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    char got[32];
    snprintf(got, sizeof got, "%lld", (long long)erpq_bull_delay_score(id, due));
    cr_expect_str_eq(got, want, "score(\"%s\", %lld)", id, (long long)due);
  }
  json_decref(v);
}

/* ---- Failure decisions and completion ----------------------------------------------- */

static erpq_job job_with(const char *id, const char *opts_text, int attempts_made) {
  erpq_job j;
  memset(&j, 0, sizeof j);
  j.id = (char *)id;
  j.name = (char *)"n";
  j.attempts_made = attempts_made;
  json_t *o = opts_text ? J(opts_text) : NULL;
  char err[128];
  cr_assert_eq(erpq_jobopts_parse(o, &j.o, err, sizeof err), 0, "%s", err);
  j.opts = o; /* Keeps backoff_options valid; released by release_job(). */
  return j;
}

static void release_job(erpq_job *j) { json_decref(j->opts); }

Test(fail_decision, retries_now_with_zero_backoff) {
  erpq_job j = job_with("12", "{\"attempts\":3,\"lifo\":true,\"removeOnFail\":4}", 0);
  erpq_finish f;
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 0, 0, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_RETRY);
  cr_expect_eq(f.attempts_made, 1);
  cr_expect_str_eq(f.id, "12");
  cr_expect_eq(f.lifo, 1);
  cr_expect_eq(f.keep.count, 4);
  cr_expect_eq(f.has_deid, 0);
  release_job(&j);
}

Test(fail_decision, delays_with_positive_backoff) {
  erpq_job j = job_with("4097", "{\"attempts\":3}", 1);
  erpq_finish f;
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 5000, 0, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_DELAYED);
  cr_expect_eq(f.attempts_made, 2);
  cr_expect_eq(f.delay_score, (NOW + 5000) * 4096 + 1);
  release_job(&j);
}

Test(fail_decision, fails_when_attempts_are_used_up) {
  erpq_job j = job_with("1", "{\"attempts\":3}", 2);
  erpq_finish f;
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 1000, 0, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_FAILED, "attemptsMade 3 is not < attempts 3");
  cr_expect_eq(f.attempts_made, 3);
  release_job(&j);
  j = job_with("1", NULL, 0); /* attempts 1 */
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 0, 0, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_FAILED);
  cr_expect_eq(f.attempts_made, 1);
  release_job(&j);
}

Test(fail_decision, minus_one_backoff_and_discard_fail_for_good) {
  erpq_job j = job_with("9", "{\"attempts\":10,\"removeOnFail\":{\"age\":30}}", 0);
  erpq_finish f;
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, -1, 0, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_FAILED);
  cr_expect_eq(f.attempts_made, 1);
  cr_expect_eq(f.keep.has_age, 1);
  cr_expect_eq(f.keep.age_s, 30);
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 2000, 1, NOW, &f);
  cr_expect_eq(f.kind, ERPQ_FIN_FAILED, "a discarded job never retries");
  cr_expect_eq(f.attempts_made, 1);
  release_job(&j);
}

Test(fail_decision, debounce_id_is_flagged) {
  erpq_job j = job_with("5", "{\"attempts\":1}", 0);
  j.deid = (char *)"d1";
  erpq_finish f;
  memset(&f, 0, sizeof f);
  erpq_bull_fail_decision(&j, 0, 0, NOW, &f);
  cr_expect_eq(f.has_deid, 1);
  release_job(&j);
}

Test(complete, finish_of_a_completed_job) {
  erpq_job j = job_with("77", "{\"removeOnComplete\":{\"count\":2}}", 1);
  j.deid = (char *)"x";
  erpq_finish f;
  memset(&f, 0xab, sizeof f);
  erpq_bull_complete(&j, "{\"ok\":1}", &f);
  cr_expect_eq(f.kind, ERPQ_FIN_COMPLETED);
  cr_expect_str_eq(f.id, "77");
  cr_expect_str_eq(f.value, "{\"ok\":1}");
  cr_expect_eq(f.keep.count, 2);
  cr_expect_eq(f.keep.has_count, 1);
  cr_expect_eq(f.keep.has_age, 0);
  cr_expect_eq(f.has_deid, 1);
  cr_expect_null(f.stacktrace);
  cr_expect_eq(f.attempts_made, 0);
  release_job(&j);
}

/* ---- Event JSON ------------------------------------------------------------------- */

static void events_match(const char *section) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_t *arr = json_object_get(v, section);
  cr_assert_gt(json_array_size(arr), 0);
  json_array_foreach(arr, i, c) {
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *val = json_string_value(json_object_get(c, "val"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    char *got = erpq_bull_finish_event(id, val);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "event(%s, %s)", id, val);
    free(got);
  }
  json_decref(v);
}

Test(finish_event, matches_json_stringify) { events_match("events"); }

/* JSON.stringify escapes other control characters as \u00XX with lower-case
 * hex digits (ESC is \u001b), as ANSI-coloured error messages contain. */
Test(finish_event, control_characters_as_json_stringify) { events_match("eventsHex"); }

Test(finish_event, undefined_value_is_omitted) {
  char *s = erpq_bull_finish_event("8", NULL);
  cr_expect_str_eq(s, "{\"jobId\":\"8\"}");
  free(s);
}

/* A failure message cut inside a UTF-8 sequence (the worker keeps the
 * first 1023 bytes of a handler's message) must still be published: bull's
 * job.finished() rejects with Error(val), and without "val" Node sees an
 * Error with no message. */
Test(finish_event, invalid_utf8_value_is_still_published) {
  char *s = erpq_bull_finish_event("8", "caf\xc3");
  cr_assert_not_null(s);
  json_t *o = json_loads(s, 0, NULL);
  cr_assert_not_null(o, "not JSON: %s", s);
  cr_expect_str_eq(json_string_value(json_object_get(o, "jobId")), "8");
  const json_t *val = json_object_get(o, "val");
  cr_expect(json_is_string(val), "event without val: %s", s);
  if (json_is_string(val))
    cr_expect_eq(strncmp(json_string_value(val), "caf", 3), 0, "val %s", json_string_value(val));
  json_decref(o);
  free(s);
}

/* ---- CLIENT SETNAME ----------------------------------------------------------------- */

static void setname_is(const char *prefix, const char *queue, const char *want) {
  erpq_keys k;
  cr_assert_eq(erpq_keys_init(&k, prefix, queue), 0);
  erpq_cmd c;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_setname(&c, &k), 0);
  argv_copy a = copy_argv(&c);
  cr_assert_eq(a.argc, 3);
  cr_expect_str_eq(a.v[0], "CLIENT");
  cr_expect_str_eq(a.v[1], "SETNAME");
  cr_expect_str_eq(a.v[2], want);
  free_argv(&a);
  erpq_cmd_free(&c);
  erpq_keys_free(&k);
}

Test(setname, prefix_colon_base64_of_queue) {
  setname_is("bull", "erpq-diag", "bull:ZXJwcS1kaWFn");
  setname_is("bull", "\xc3\xa9l\xc3\xa8ves 2024", "bull:w6lsw6h2ZXMgMjAyNA==");
  setname_is("bull", "ab", "bull:YWI=");
  setname_is("{erp}", "a", "{erp}:YQ==");
}

/* ---- erpq_newjob_prepare -------------------------------------------------------------- */

static erpq_newjob prepare_ok(const char *name, const char *data, const char *opts_text) {
  erpq_newjob j;
  json_t *o = opts_text ? J(opts_text) : NULL;
  char err[256] = "";
  int rc = erpq_newjob_prepare(&j, name, data, o, NOW, err, sizeof err);
  json_decref(o);
  cr_assert_eq(rc, 0, "prepare(%s, %s) = %d: %s", data ? data : "NULL",
               opts_text ? opts_text : "NULL", rc, err);
  return j;
}

static void prepare_fails(const char *data, const char *opts_text, int code, const char *msg) {
  erpq_newjob j;
  json_t *o = opts_text ? J(opts_text) : NULL;
  char err[256] = "";
  int rc = erpq_newjob_prepare(&j, "n", data, o, NOW, err, sizeof err);
  json_decref(o);
  cr_expect_eq(rc, code, "prepare(%s, %s) = %d (%s)", data ? data : "NULL",
               opts_text ? opts_text : "NULL", rc, err);
  cr_expect_eq(strncmp(err, msg, strlen(msg)), 0, "message '%s', wanted '%s...'", err, msg);
  if (rc == 0) erpq_newjob_free(&j);
}

Test(newjob, defaults) {
  erpq_newjob j = prepare_ok(NULL, NULL, NULL);
  cr_expect_str_eq(j.name, "__default__");
  cr_expect_str_eq(j.data, "{}");
  cr_expect_str_eq(j.opts, "{\"attempts\":1,\"delay\":0,\"timestamp\":1700000000123}");
  cr_expect_null(j.custom_id);
  cr_expect_eq(j.timestamp, NOW);
  cr_expect_eq(j.delay, 0);
  cr_expect_eq(j.due, 0);
  cr_expect_eq(j.priority, 0);
  cr_expect_eq(j.lifo, 0);
  cr_expect_null(j.debounce_id);
  cr_expect_eq(j.debounce_ttl, -1);
  cr_expect_null(j.repeat_key);
  erpq_newjob_free(&j);
  j = prepare_ok("", NULL, NULL);
  cr_expect_str_eq(j.name, "__default__");
  erpq_newjob_free(&j);
}

Test(newjob, data_is_reserialized_compactly) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "data"), i, c) {
    const char *in = json_string_value(json_object_get(c, "text"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    erpq_newjob j = prepare_ok("fees", in, NULL);
    cr_expect_str_eq(j.data, want, "data %s", in);
    cr_expect_str_eq(j.name, "fees");
    erpq_newjob_free(&j);
  }
  json_decref(v);
}

Test(newjob, invalid_data_json_is_refused) {
  prepare_fails("{a:1}", NULL, ERPQ_E_JSON, "data is not valid JSON: ");
  prepare_fails("{\"a\":1", NULL, ERPQ_E_JSON, "data is not valid JSON: ");
  prepare_fails("", NULL, ERPQ_E_JSON, "data is not valid JSON: ");
}

Test(newjob, custom_job_id_string_or_number) {
  erpq_newjob j = prepare_ok("n", NULL, "{\"jobId\":\"fee-2024-07\"}");
  cr_expect_str_eq(j.custom_id, "fee-2024-07");
  cr_expect_str_eq(j.opts, "{\"jobId\":\"fee-2024-07\",\"attempts\":1,\"delay\":0,"
                           "\"timestamp\":1700000000123}");
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"jobId\":31337}");
  cr_expect_str_eq(j.custom_id, "31337");
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"jobId\":null}");
  cr_expect_null(j.custom_id);
  erpq_newjob_free(&j);
  prepare_fails(NULL, "{\"jobId\":\"\"}", ERPQ_E_ARG, "opts.jobId must not be empty");
  prepare_fails(NULL, "{\"jobId\":true}", ERPQ_E_ARG, "opts.jobId must be a string");
  prepare_fails(NULL, "{\"jobId\":[1]}", ERPQ_E_ARG, "opts.jobId must be a string");
}

Test(newjob, priority_and_lifo) {
  erpq_newjob j = prepare_ok("n", NULL, "{\"priority\":5,\"lifo\":true}");
  cr_expect_eq(j.priority, 5);
  cr_expect_eq(j.lifo, 1);
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"priority\":0}");
  cr_expect_eq(j.priority, 0);
  erpq_newjob_free(&j);
  prepare_fails(NULL, "{\"priority\":-1}", ERPQ_E_ARG,
                "opts.priority must be a non-negative integer");
  prepare_fails(NULL, "{\"priority\":\"high\"}", ERPQ_E_ARG,
                "opts.priority must be a non-negative integer");
}

Test(newjob, delay_and_due) {
  erpq_newjob j = prepare_ok("n", NULL, "{\"delay\":5000}");
  cr_expect_eq(j.delay, 5000);
  cr_expect_eq(j.timestamp, NOW);
  cr_expect_eq(j.due, NOW + 5000);
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"delay\":50,\"timestamp\":1000}");
  cr_expect_eq(j.due, 1050, "due is timestamp + delay");
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"delay\":-10}");
  cr_expect_eq(j.delay, 0, "bull clamps a negative delay to 0");
  cr_expect_eq(j.due, 0);
  cr_expect_str_eq(j.opts, "{\"delay\":-10,\"attempts\":1,\"timestamp\":1700000000123}");
  erpq_newjob_free(&j);
  prepare_fails(NULL, "{\"delay\":\"later\"}", ERPQ_E_ARG, "opts.delay must be a number");
  prepare_fails(NULL, "[]", ERPQ_E_ARG, "opts must be a JSON object");
}

Test(newjob, debounce) {
  erpq_newjob j = prepare_ok("n", NULL, "{\"debounce\":{\"id\":\"fee-run\",\"ttl\":5000}}");
  cr_expect_str_eq(j.debounce_id, "fee-run");
  cr_expect_eq(j.debounce_ttl, 5000);
  erpq_newjob_free(&j);
  j = prepare_ok("n", NULL, "{\"debounce\":{\"id\":\"d2\"}}");
  cr_expect_str_eq(j.debounce_id, "d2");
  cr_expect_eq(j.debounce_ttl, -1);
  erpq_newjob_free(&j);
  prepare_fails(NULL, "{\"debounce\":{\"id\":3}}", ERPQ_E_ARG, "opts.debounce.id must be a string");
  prepare_fails(NULL, "{\"debounce\":{\"id\":\"x\",\"ttl\":\"soon\"}}", ERPQ_E_ARG,
                "opts.debounce.ttl must be a number");
}

/* ---- Argument vectors ------------------------------------------------------------------- */

static erpq_keys test_keys(void) {
  erpq_keys k;
  cr_assert_eq(erpq_keys_init(&k, "bull", "q"), 0);
  return k;
}

Test(argv, add_positions) {
  init_scripts();
  erpq_keys k = test_keys();
  erpq_newjob jobs[2];
  jobs[0] = prepare_ok("a", "{\"x\":1}", "{\"priority\":2,\"lifo\":true,\"jobId\":\"c1\"}");
  jobs[1] = prepare_ok("b", NULL, "{\"delay\":100,\"debounce\":{\"id\":\"dd\",\"ttl\":70}}");
  erpq_cmd c;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_add(&c, &k, "tok", jobs, 2, 0), 0);
  argv_copy a = copy_argv(&c);
  cr_assert_eq(a.argc, 3 + 7 + 3 + 2 * 12, "argc %d", a.argc);
  cr_expect_str_eq(a.v[0], "EVALSHA");
  cr_expect(is_sha(a.v[1]), "not a sha: %s", a.v[1]);
  cr_expect_str_eq(a.v[1], erpq_script_sha(ERPQ_LUA_ADD));
  cr_expect_str_eq(a.v[2], "7");
  const char *keys[] = {"bull:q:wait",    "bull:q:paused",   "bull:q:meta-paused", "bull:q:id",
                        "bull:q:delayed", "bull:q:priority", "bull:q:repeat"};
  for (int i = 0; i < 7; i++) cr_expect_str_eq(a.v[3 + i], keys[i]);
  cr_expect_str_eq(a.v[10], "bull:q:");
  cr_expect_str_eq(a.v[11], "tok");
  cr_expect_str_eq(a.v[12], "2");
  const char *j0[] = {"c1", "a", "{\"x\":1}", jobs[0].opts, "1700000000123", "0", "0", "2",
                      "RPUSH", "", "", ""};
  for (int i = 0; i < 12; i++) cr_expect_str_eq(a.v[13 + i], j0[i], "job 0 field %d", i);
  const char *j1[] = {"", "b", "{}", jobs[1].opts, "1700000000123", "100", "1700000000223", "0",
                      "LPUSH", "bull:q:de:dd", "dd", "70"};
  for (int i = 0; i < 12; i++) cr_expect_str_eq(a.v[25 + i], j1[i], "job 1 field %d", i);
  free_argv(&a);
  erpq_cmd_free(&c);
  for (int i = 0; i < 2; i++) erpq_newjob_free(&jobs[i]);
  erpq_keys_free(&k);
}

Test(argv, add_repeat_mode_trailer) {
  init_scripts();
  erpq_keys k = test_keys();
  erpq_newjob j = prepare_ok("r", NULL, NULL);
  j.repeat_key = strdup("r:::1000");
  j.repeat_ms = 1700000001000LL;
  for (int check = 0; check < 2; check++) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    cr_assert_eq(erpq_bull_add(&c, &k, "tok", &j, 1, check), 0);
    argv_copy a = copy_argv(&c);
    cr_assert_eq(a.argc, 13 + 12 + 3);
    cr_expect_str_eq(a.v[25], check ? "next" : "add");
    cr_expect_str_eq(a.v[26], "r:::1000");
    cr_expect_str_eq(a.v[27], "1700000001000");
    free_argv(&a);
    erpq_cmd_free(&c);
  }
  erpq_newjob_free(&j);
  erpq_keys_free(&k);
}

Test(argv, use_eval_swaps_in_eval_and_source) {
  init_scripts();
  erpq_keys k = test_keys();
  erpq_newjob j = prepare_ok("a", NULL, NULL);
  erpq_cmd c;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_add(&c, &k, "tok", &j, 1, 0), 0);
  argv_copy before = copy_argv(&c);
  erpq_cmd_use_eval(&c);
  argv_copy after = copy_argv(&c);
  cr_assert_eq(after.argc, before.argc);
  cr_expect_str_eq(after.v[0], "EVAL");
  cr_expect_str_eq(after.v[1], erpq_script_src(ERPQ_LUA_ADD));
  cr_expect_neq(strstr(after.v[1], "local function erpqPushPriority"), NULL,
                "the source carries the prelude");
  for (int i = 2; i < after.argc; i++) cr_expect_str_eq(after.v[i], before.v[i], "arg %d", i);
  free_argv(&before);
  free_argv(&after);
  /* A plain command is left alone. */
  erpq_cmd p;
  erpq_cmd_init(&p);
  erpq_cmd_push_str(&p, "PING");
  erpq_cmd_use_eval(&p);
  argv_copy a = copy_argv(&p);
  cr_expect_eq(a.argc, 1);
  cr_expect_str_eq(a.v[0], "PING");
  free_argv(&a);
  erpq_cmd_free(&p);
  erpq_cmd_free(&c);
  erpq_newjob_free(&j);
  erpq_keys_free(&k);
}

Test(argv, step_without_finishes_or_limiter) {
  init_scripts();
  erpq_keys k = test_keys();
  erpq_cmd c;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_step(&c, &k, "tok", 30000, NOW, 4, NULL, NULL, NULL, 0), 0);
  argv_copy a = copy_argv(&c);
  cr_assert_eq(a.argc, 3 + 10 + 11);
  cr_expect_str_eq(a.v[0], "EVALSHA");
  cr_expect_str_eq(a.v[1], erpq_script_sha(ERPQ_LUA_STEP));
  cr_expect(is_sha(a.v[1]));
  cr_expect_str_eq(a.v[2], "10");
  const char *keys[] = {"bull:q:active", "bull:q:wait",
                        "bull:q:priority", "bull:q:stalled", "bull:q:delayed", "bull:q:paused",
                        "bull:q:meta-paused", "bull:q:completed", "bull:q:failed",
                        "bull:q:limiter"};
  for (int i = 0; i < 10; i++) cr_expect_str_eq(a.v[3 + i], keys[i], "key %d", i);
  const char *args[] = {"bull:q:", "tok", "30000", "1700000000123", "4", "", "", "0", "false",
                        "", "0"};
  for (int i = 0; i < 11; i++) cr_expect_str_eq(a.v[13 + i], args[i], "arg %d", i);
  free_argv(&a);
  erpq_cmd_free(&c);
  erpq_keys_free(&k);
}

Test(argv, step_with_limiter_explicit_id_and_finishes) {
  init_scripts();
  erpq_keys k = test_keys();
  erpq_limiter lim = {.max = 5, .duration_ms = 1000, .bounce_back = 0};
  snprintf(lim.group_key, sizeof lim.group_key, "school");
  erpq_finish f[4];
  memset(f, 0, sizeof f);
  f[0].kind = ERPQ_FIN_COMPLETED;
  f[0].id = "1";
  f[0].value = "{\"ok\":true}";
  f[0].keep = (erpq_keep){.count = 10, .has_count = 1};
  f[0].has_deid = 1;
  f[1].kind = ERPQ_FIN_FAILED;
  f[1].id = "2";
  f[1].value = "boom \"x\"";
  f[1].stacktrace = "[\"Error: boom\"]";
  f[1].attempts_made = 3;
  f[1].keep = (erpq_keep){.count = -1, .has_count = 0, .age_s = 60, .has_age = 1};
  f[2].kind = ERPQ_FIN_RETRY;
  f[2].id = "3";
  f[2].value = "again";
  f[2].stacktrace = "[]";
  f[2].attempts_made = 1;
  f[2].lifo = 1;
  f[3].kind = ERPQ_FIN_DELAYED;
  f[3].id = "4";
  f[3].value = "later";
  f[3].stacktrace = "[\"e\"]";
  f[3].attempts_made = 2;
  f[3].delay_score = 6963200020480004LL;
  erpq_cmd c;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_step(&c, &k, "tok", 15000, NOW, 2, "99", &lim, f, 4), 0);
  argv_copy a = copy_argv(&c);
  cr_assert_eq(a.argc, 24 + 4 * 9, "argc %d", a.argc);
  const char *args[] = {"bull:q:", "tok", "15000", "1700000000123", "2", "99", "5", "1000",
                        "false", "true", "4"};
  for (int i = 0; i < 11; i++) cr_expect_str_eq(a.v[13 + i], args[i], "arg %d", i);
  const char *fin[4][9] = {
      {"C", "1", "{\"ok\":true}", "10", "", "{\"jobId\":\"1\",\"val\":\"{\\\"ok\\\":true}\"}", "",
       "0", ""},
      {"f", "2", "boom \"x\"", "", "60", "{\"jobId\":\"2\",\"val\":\"boom \\\"x\\\"\"}",
       "[\"Error: boom\"]", "3", ""},
      {"r", "3", "again", "", "", "", "[]", "1", "RPUSH"},
      {"d", "4", "later", "", "", "", "[\"e\"]", "2", "6963200020480004"},
  };
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 9; j++)
      cr_expect_str_eq(a.v[24 + 9 * i + j], fin[i][j], "finish %d field %d", i, j);
  free_argv(&a);
  erpq_cmd_free(&c);
  /* bounceBack and no group key; a FIFO retry pushes with LPUSH. */
  lim.bounce_back = 1;
  lim.group_key[0] = '\0';
  f[2].lifo = 0;
  erpq_cmd_init(&c);
  cr_assert_eq(erpq_bull_step(&c, &k, "tok", 15000, NOW, 0, NULL, &lim, &f[2], 1), 0);
  a = copy_argv(&c);
  cr_assert_eq(a.argc, 24 + 9);
  cr_expect_str_eq(a.v[21], "true");
  cr_expect_str_eq(a.v[22], "");
  cr_expect_str_eq(a.v[23], "1");
  cr_expect_str_eq(a.v[32], "LPUSH");
  free_argv(&a);
  erpq_cmd_free(&c);
  erpq_keys_free(&k);
}

Test(argv, housekeeping_commands) {
  init_scripts();
  erpq_keys k = test_keys();
  const char *ids[] = {"1", "2", "3"};
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_extend(&c, &k, "tok", 30000, ids, 3);
  argv_copy a = copy_argv(&c);
  cr_assert_eq(a.argc, 3 + 1 + 3 + 3);
  cr_expect_str_eq(a.v[1], erpq_script_sha(ERPQ_LUA_EXTEND));
  cr_expect_str_eq(a.v[2], "1");
  cr_expect_str_eq(a.v[3], "bull:q:stalled");
  cr_expect_str_eq(a.v[6], "30000");
  cr_expect_str_eq(a.v[9], "3");
  free_argv(&a);
  erpq_cmd_free(&c);

  erpq_cmd_init(&c);
  erpq_bull_brpoplpush(&c, &k, 5);
  a = copy_argv(&c);
  cr_assert_eq(a.argc, 4);
  cr_expect_str_eq(a.v[0], "BRPOPLPUSH");
  cr_expect_str_eq(a.v[1], "bull:q:wait");
  cr_expect_str_eq(a.v[2], "bull:q:active");
  cr_expect_str_eq(a.v[3], "5");
  free_argv(&a);
  erpq_cmd_free(&c);

  erpq_cmd_init(&c);
  erpq_bull_progress(&c, &k, "7", "{\"pct\":50}");
  a = copy_argv(&c);
  cr_assert_eq(a.argc, 3 + 2 + 2);
  cr_expect_str_eq(a.v[3], "bull:q:7");
  cr_expect_str_eq(a.v[4], "bull:q:progress");
  cr_expect_str_eq(a.v[5], "{\"pct\":50}");
  cr_expect_str_eq(a.v[6], "{\"jobId\":\"7\",\"progress\":{\"pct\":50}}");
  free_argv(&a);
  erpq_cmd_free(&c);
  erpq_keys_free(&k);
}

/* ---- Reply parsing ------------------------------------------------------------------ */

static redisReply *fields(const char *name, const char *data, const char *opts,
                          const char *attempts, const char *ts, const char *delay,
                          const char *prio, const char *progress, const char *stalled,
                          const char *deid, const char *stack) {
  const char *f[11] = {name, data, opts, attempts, ts, delay, prio, progress, stalled, deid, stack};
  return rep_strs(11, f);
}

Test(parse_step, codes_jobs_and_drained) {
  redisReply *r = rep_arr(
      3, rep_arr(3, rep_int(0), rep_int(-6), rep_int(-2)),
      rep_arr(4, rep_str("12"),
              fields("fees", "{\"a\":1}",
                     "{\"attempts\":3,\"backoff\":{\"type\":\"fixed\",\"delay\":9},\"timeout\":50}",
                     "2", "1700000000000", "0", "4", "33", "1", "dd", "[\"Error: x\"]"),
              rep_int(13), fields(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)),
      rep_int(1));
  erpq_step_result s;
  cr_assert_eq(erpq_bull_parse_step(r, &s), 0);
  cr_assert_eq(s.ncodes, 3);
  cr_expect_eq(s.codes[0], 0);
  cr_expect_eq(s.codes[1], -6);
  cr_expect_eq(s.codes[2], -2);
  cr_assert_eq(s.njobs, 2);
  cr_expect_eq(s.drained, 1);
  erpq_job *a = &s.jobs[0];
  cr_expect_str_eq(a->id, "12");
  cr_expect_str_eq(a->name, "fees");
  cr_expect_str_eq(a->data, "{\"a\":1}");
  cr_expect_eq(a->attempts_made, 2);
  cr_expect_eq(a->timestamp, 1700000000000LL);
  cr_expect_eq(a->priority, 4);
  cr_expect_eq(a->stalled_counter, 1);
  cr_expect_str_eq(a->deid, "dd");
  cr_expect_str_eq(a->stacktrace, "[\"Error: x\"]");
  cr_expect_not_null(a->opts);
  cr_expect_str_empty(a->opts_err);
  cr_expect_eq(a->o.attempts, 3);
  cr_expect_str_eq(a->o.backoff_type, "fixed");
  cr_expect_eq(a->o.backoff_delay, 9);
  cr_expect_eq(a->o.timeout_ms, 50);
  erpq_job *b = &s.jobs[1];
  cr_expect_str_eq(b->id, "13", "an integer id reply becomes a string");
  cr_expect_str_eq(b->name, "__default__");
  cr_expect_str_eq(b->data, "{}");
  cr_expect_str_eq(b->opts_json, "{}");
  cr_expect_null(b->deid);
  cr_expect_null(b->stacktrace);
  cr_expect_eq(b->attempts_made, 0);
  cr_expect_eq(b->o.attempts, 1);
  erpq_step_result_free(&s);
  cr_expect_null(s.jobs);
  cr_expect_null(s.codes);
  rep_free(r);
}

Test(parse_step, bad_opts_are_reported_on_the_job) {
  redisReply *r = rep_arr(
      3, rep_arr(0),
      rep_arr(4, rep_str("1"),
              fields("n", "{}", "{not json", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
              rep_str("2"),
              fields("n", "{}", "{\"attempts\":5,\"removeOnFail\":\"x\"}", NULL, NULL, NULL, NULL,
                     NULL, NULL, NULL, NULL)),
      rep_int(0));
  erpq_step_result s;
  cr_assert_eq(erpq_bull_parse_step(r, &s), 0);
  cr_assert_eq(s.njobs, 2);
  cr_expect_eq(s.ncodes, 0);
  cr_expect_eq(s.drained, 0);
  cr_expect_null(s.jobs[0].opts);
  cr_expect_eq(strncmp(s.jobs[0].opts_err, "job opts are not valid JSON: ", 29), 0, "%s",
               s.jobs[0].opts_err);
  cr_expect_eq(s.jobs[0].o.attempts, 1);
  cr_expect_str_eq(s.jobs[1].opts_err,
                   "opts.removeOnFail is not a boolean, number or {age,count}");
  cr_expect_eq(s.jobs[1].o.attempts, 1, "options fall back to the defaults");
  cr_expect_eq(s.jobs[1].o.on_fail.count, -1);
  erpq_step_result_free(&s);
  rep_free(r);
}

Test(parse_step, malformed_replies) {
  erpq_step_result s;
  cr_expect_eq(erpq_bull_parse_step(NULL, &s), ERPQ_E_CONN);
  redisReply *r = rep_err("ERR something");
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_REDIS);
  rep_free(r);
  r = rep_int(0);
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_PROTOCOL);
  rep_free(r);
  r = rep_arr(2, rep_arr(0), rep_arr(0));
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_PROTOCOL, "three elements are needed");
  rep_free(r);
  r = rep_arr(3, rep_arr(0), rep_arr(1, rep_str("1")), rep_int(0));
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_PROTOCOL, "odd fetched list");
  rep_free(r);
  r = rep_arr(3, rep_int(0), rep_arr(0), rep_int(0));
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_PROTOCOL, "codes must be an array");
  rep_free(r);
  const char *few[3] = {"n", "{}", "{}"};
  r = rep_arr(3, rep_arr(1, rep_int(0)), rep_arr(2, rep_str("1"), rep_strs(3, few)), rep_int(0));
  cr_expect_eq(erpq_bull_parse_step(r, &s), ERPQ_E_PROTOCOL, "short field list");
  cr_expect_null(s.codes, "nothing is left allocated after a failure");
  cr_expect_eq(s.njobs, 0);
  rep_free(r);
}

Test(reply, transient_and_noscript) {
  const char *transient[] = {"LOADING Redis is loading the dataset in memory",
                             "READONLY You can't write against a read only replica.",
                             "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                             "BUSY Redis is busy running a script.",
                             "TRYAGAIN Multiple keys request during rehashing of slot",
                             "MASTERDOWN Link with MASTER is down",
                             "CLUSTERDOWN The cluster is down"};
  for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
    redisReply *r = rep_err(transient[i]);
    cr_expect_eq(erpq_reply_transient(r), 1, "%s", transient[i]);
    cr_expect_eq(erpq_reply_noscript(r), 0);
    rep_free(r);
  }
  const char *other[] = {"ERR unknown command", "WRONGTYPE Operation against a key",
                         "NOSCRIPT No matching script. Please use EVAL.", "LOAD"};
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    redisReply *r = rep_err(other[i]);
    cr_expect_eq(erpq_reply_transient(r), 0, "%s", other[i]);
    rep_free(r);
  }
  redisReply *r = rep_err("NOSCRIPT No matching script. Please use EVAL.");
  cr_expect_eq(erpq_reply_noscript(r), 1);
  rep_free(r);
  r = rep_str("NOSCRIPT");
  cr_expect_eq(erpq_reply_noscript(r), 0, "only an error reply counts");
  cr_expect_eq(erpq_reply_transient(r), 0);
  rep_free(r);
  r = rep_status("LOADING");
  cr_expect_eq(erpq_reply_transient(r), 0);
  rep_free(r);
  cr_expect_eq(erpq_reply_transient(NULL), 0);
  cr_expect_eq(erpq_reply_noscript(NULL), 0);
}

Test(reply, bull_codes) {
  cr_expect_eq(erpq_bull_code(0), 0);
  cr_expect_eq(erpq_bull_code(1), 0);
  cr_expect_eq(erpq_bull_code(-1), ERPQ_E_JOB_MISSING);
  cr_expect_eq(erpq_bull_code(-2), ERPQ_E_LOCK_MISSING);
  cr_expect_eq(erpq_bull_code(-3), ERPQ_E_NOT_ACTIVE);
  cr_expect_eq(erpq_bull_code(-6), ERPQ_E_LOCK_MISMATCH);
  cr_expect_eq(erpq_bull_code(-4), ERPQ_E_PROTOCOL);
}

/* ---- Redis URLs --------------------------------------------------------------------- */

static erpq_redis_addr url_ok(const char *url) {
  erpq_redis_addr a;
  char err[256] = "";
  cr_assert_eq(erpq_redis_url_parse(url, &a, err, sizeof err), 0, "%s: %s", url, err);
  return a;
}

static void url_bad(const char *url, const char *msg) {
  erpq_redis_addr a;
  char err[256] = "";
  cr_expect_eq(erpq_redis_url_parse(url, &a, err, sizeof err), ERPQ_E_ARG, "%s accepted",
               url ? url : "NULL");
  cr_expect_neq(strstr(err, msg), NULL, "%s: message '%s' lacks '%s'", url ? url : "NULL", err,
                msg);
}

Test(redis_url, host_port_db) {
  erpq_redis_addr a = url_ok("redis://10.0.0.5:6380/3");
  cr_expect_str_eq(a.host, "10.0.0.5");
  cr_expect_eq(a.port, 6380);
  cr_expect_eq(a.db, 3);
  cr_expect_str_empty(a.unix_path);
  cr_expect_str_empty(a.user);
  cr_expect_str_empty(a.password);
  a = url_ok("redis://cache.school.local");
  cr_expect_str_eq(a.host, "cache.school.local");
  cr_expect_eq(a.port, 6379);
  cr_expect_eq(a.db, 0);
  a = url_ok("redis://:7000/");
  cr_expect_str_eq(a.host, "127.0.0.1");
  cr_expect_eq(a.port, 7000);
  cr_expect_eq(a.db, 0);
}

Test(redis_url, credentials_with_percent_escapes) {
  erpq_redis_addr a = url_ok("redis://erp:p%40ss%3Aw%2Fd@db.local:6390/2");
  cr_expect_str_eq(a.user, "erp");
  cr_expect_str_eq(a.password, "p@ss:w/d");
  cr_expect_str_eq(a.host, "db.local");
  cr_expect_eq(a.port, 6390);
  cr_expect_eq(a.db, 2);
  a = url_ok("redis://:secret@localhost");
  cr_expect_str_empty(a.user);
  cr_expect_str_eq(a.password, "secret");
  a = url_ok("redis://onlypass@localhost:6379/0");
  cr_expect_str_empty(a.user);
  cr_expect_str_eq(a.password, "onlypass");
  a = url_ok("redis://u:a@b@h:1/0");
  cr_expect_str_eq(a.user, "u");
  cr_expect_str_eq(a.password, "a@b", "the last @ ends the credentials");
  cr_expect_str_eq(a.host, "h");
}

Test(redis_url, ipv6) {
  erpq_redis_addr a = url_ok("redis://[::1]:6381/4");
  cr_expect_str_eq(a.host, "::1");
  cr_expect_eq(a.port, 6381);
  cr_expect_eq(a.db, 4);
  a = url_ok("redis://[fe80::1:2]/1");
  cr_expect_str_eq(a.host, "fe80::1:2");
  cr_expect_eq(a.port, 6379);
  cr_expect_eq(a.db, 1);
}

Test(redis_url, unix_sockets) {
  erpq_redis_addr a = url_ok("unix:///run/redis/redis.sock?db=5");
  cr_expect_str_eq(a.unix_path, "/run/redis/redis.sock");
  cr_expect_eq(a.db, 5);
  a = url_ok("unix:///tmp/r.sock");
  cr_expect_str_eq(a.unix_path, "/tmp/r.sock");
  cr_expect_eq(a.db, 0);
  a = url_ok("redis+unix:///var/run/r.sock?password=p%26w&db=2");
  cr_expect_str_eq(a.unix_path, "/var/run/r.sock");
  cr_expect_str_eq(a.password, "p&w");
  cr_expect_eq(a.db, 2);
}

Test(redis_url, errors) {
  url_bad("", "empty Redis URL");
  url_bad(NULL, "empty Redis URL");
  url_bad("http://localhost:6379", "must start with redis:// or unix://");
  url_bad("localhost:6379", "must start with redis:// or unix://");
  url_bad("redis://localhost:0/1", "bad port");
  url_bad("redis://localhost:65536", "bad port");
  url_bad("redis://localhost:63x9/0", "bad port");
  url_bad("redis://localhost:6379/abc", "bad database number");
  url_bad("redis://localhost:6379/-1", "bad database number");
  url_bad("redis://[::1:6379/0", "bad IPv6 host");
  url_bad("unix://", "bad unix socket path");
  url_bad("unix://?db=1", "bad unix socket path");
}

/* ---- Numeric arguments ---------------------------------------------------------------- */

Test(int_arg, accepts_plain_numbers_within_range) {
  int64_t v = -1;
  char err[128];
  cr_expect_eq(erpq_parse_int_arg("--grace", "30", 0, 3600, &v, err, sizeof err), 0);
  cr_expect_eq(v, 30);
  cr_expect_eq(erpq_parse_int_arg("--grace", "0", 0, 3600, &v, err, sizeof err), 0);
  cr_expect_eq(v, 0);
  cr_expect_eq(erpq_parse_int_arg("--grace", "3600", 0, 3600, &v, err, sizeof err), 0);
  cr_expect_eq(v, 3600);
}

Test(int_arg, refuses_signs_text_and_out_of_range) {
  struct {
    const char *s, *msg;
  } t[] = {
      {"-1", "--lock-duration must be a number, got '-1'"},
      {"+5", "--lock-duration must be a number, got '+5'"},
      {"", "--lock-duration must be a number, got ''"},
      {"12ms", "--lock-duration must be a number, got '12ms'"},
      {" 12", "--lock-duration must be a number, got ' 12'"},
      {"99999999999999999999", "--lock-duration must be a number, got '99999999999999999999'"},
      {"5", "--lock-duration must be between 10 and 100, got 5"},
      {"101", "--lock-duration must be between 10 and 100, got 101"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int64_t v = 77;
    char err[128] = "";
    cr_expect_eq(erpq_parse_int_arg("--lock-duration", t[i].s, 10, 100, &v, err, sizeof err),
                 ERPQ_E_ARG, "'%s' accepted", t[i].s);
    cr_expect_str_eq(err, t[i].msg);
    cr_expect_eq(v, 77, "out is untouched on error");
  }
  int64_t v;
  char err[128] = "";
  cr_expect_eq(erpq_parse_int_arg("n", NULL, 0, 1, &v, err, sizeof err), ERPQ_E_ARG);
  cr_expect_str_eq(err, "n must be a number, got ''");
}

/* ---- Registry ------------------------------------------------------------------------- */

static int h_a(erpq_jobctx *c, const json_t *d, json_t **r, char *e, size_t n) {
  (void)c, (void)d, (void)r, (void)e, (void)n;
  return 0;
}
static int h_b(erpq_jobctx *c, const json_t *d, json_t **r, char *e, size_t n) {
  (void)c, (void)d, (void)r, (void)e, (void)n;
  return 1;
}
static int h_star(erpq_jobctx *c, const json_t *d, json_t **r, char *e, size_t n) {
  (void)c, (void)d, (void)r, (void)e, (void)n;
  return 2;
}

Test(registry, find_exact_star_and_other_queue) {
  erpq_registry r;
  erpq_registry_init(&r);
  int ud = 5;
  cr_assert_eq(erpq_registry_add(&r, "reports", "*", h_star, NULL), 0);
  cr_assert_eq(erpq_registry_add(&r, "reports", "pdf", h_a, &ud), 0);
  cr_assert_eq(erpq_registry_add(&r, "mail", "send", h_b, NULL), 0);
  cr_expect_eq(erpq_registry_add(&r, "reports", "pdf", h_b, NULL), -EEXIST);
  const erpq_handler *h = erpq_registry_find(&r, "reports", "pdf");
  cr_assert_not_null(h);
  cr_expect_eq(h->fn, h_a, "an exact name wins over '*' registered before it");
  cr_expect_eq(h->userdata, &ud);
  cr_expect_str_eq(h->queue, "reports");
  h = erpq_registry_find(&r, "reports", "csv");
  cr_assert_not_null(h);
  cr_expect_eq(h->fn, h_star);
  h = erpq_registry_find(&r, "mail", "send");
  cr_assert_not_null(h);
  cr_expect_eq(h->fn, h_b);
  cr_expect_null(erpq_registry_find(&r, "mail", "pdf"), "'*' of another queue does not apply");
  cr_expect_null(erpq_registry_find(&r, "sms", "send"));
  cr_expect_eq(erpq_registry_serves(&r, "mail"), 1);
  cr_expect_eq(erpq_registry_serves(&r, "sms"), 0);
  erpq_registry_free(&r);
  cr_expect_eq(r.n, 0);
}

typedef struct seen {
  int attempts;
  char msg[64];
  const json_t *options;
} seen;

static int64_t custom_backoff(int attempts_made, const char *err_message, const json_t *options,
                              void *userdata) {
  seen *s = userdata;
  s->attempts = attempts_made;
  snprintf(s->msg, sizeof s->msg, "%s", err_message ? err_message : "");
  s->options = options;
  return 4242;
}

static int64_t stop_backoff(int a, const char *m, const json_t *o, void *u) {
  (void)a, (void)m, (void)o, (void)u;
  return -1;
}

Test(registry, builtin_backoffs_match_bull) {
  erpq_registry r;
  erpq_registry_init(&r);
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "backoff"), i, c) {
    const char *type = json_string_value(json_object_get(c, "type"));
    int64_t delay = json_integer_value(json_object_get(c, "delay"));
    int n = (int)json_integer_value(json_object_get(c, "attemptsMade"));
    int64_t want = json_integer_value(json_object_get(c, "expected"));
    int64_t got = -99;
    char err[256] = "";
    cr_expect_eq(erpq_registry_backoff(&r, type, delay, NULL, n, "e", &got, err, sizeof err), 0);
    cr_expect_eq(got, want, "%s(%lld) after %d attempts", type, (long long)delay, n);
  }
  json_decref(v);
  /* exponential = round((2^n - 1) * delay), n = 1..5 */
  int64_t want[5] = {1000, 3000, 7000, 15000, 31000};
  for (int n = 1; n <= 5; n++) {
    int64_t got = 0;
    cr_expect_eq(erpq_registry_backoff(&r, "exponential", 1000, NULL, n, "e", &got, NULL, 0), 0);
    cr_expect_eq(got, want[n - 1]);
  }
  int64_t got = -5;
  cr_expect_eq(erpq_registry_backoff(&r, "", 1000, NULL, 1, "e", &got, NULL, 0), 0);
  cr_expect_eq(got, 0, "no backoff type means retry now");
  got = -5;
  cr_expect_eq(erpq_registry_backoff(&r, NULL, 1000, NULL, 1, "e", &got, NULL, 0), 0);
  cr_expect_eq(got, 0);
  erpq_registry_free(&r);
}

Test(registry, custom_strategy_takes_precedence) {
  erpq_registry r;
  erpq_registry_init(&r);
  seen s;
  memset(&s, 0, sizeof s);
  cr_assert_eq(erpq_registry_add_backoff(&r, "exponential", custom_backoff, &s), 0);
  cr_assert_eq(erpq_registry_add_backoff(&r, "never", stop_backoff, NULL), 0);
  cr_expect_eq(erpq_registry_add_backoff(&r, "never", stop_backoff, NULL), -EEXIST);
  json_t *opt = J("{\"base\":3}");
  int64_t got = 0;
  char err[256] = "";
  cr_expect_eq(erpq_registry_backoff(&r, "exponential", 1000, opt, 3, "smtp down", &got, err,
                                     sizeof err),
               0);
  cr_expect_eq(got, 4242, "the custom strategy named like a built-in wins");
  cr_expect_eq(s.attempts, 3);
  cr_expect_str_eq(s.msg, "smtp down");
  cr_expect_eq(s.options, opt);
  cr_expect_eq(erpq_registry_backoff(&r, "never", 0, NULL, 1, "x", &got, err, sizeof err), 0);
  cr_expect_eq(got, -1);
  cr_expect_eq(erpq_registry_backoff(&r, "fixed", 250, NULL, 2, "x", &got, err, sizeof err), 0);
  cr_expect_eq(got, 250);
  json_decref(opt);
  erpq_registry_free(&r);
}

Test(registry, unknown_strategy_is_enoent_with_bulls_message) {
  erpq_registry r;
  erpq_registry_init(&r);
  int64_t got = 12;
  char err[256] = "";
  cr_expect_eq(erpq_registry_backoff(&r, "jitter", 100, NULL, 1, "x", &got, err, sizeof err),
               -ENOENT);
  cr_expect_str_eq(err, "Unknown backoff strategy jitter. If a custom backoff strategy is used, "
                        "specify it when the queue is created.");
  erpq_registry_free(&r);
}
