/*
 * test_opts.c - job options: bull's defaults on add (erpq_opts_defaults),
 * the worker's parsed view (erpq_jobopts_parse, erpq_keep_parse) and the
 * JSON serializer (erpq_json_dump).
 *
 * Expected strings for the defaults come from bull 4.16.5 itself:
 * tests/unit/gen-bull-vectors.js runs its Job constructor and writes
 * tests/unit/bull_vectors.json.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "erpq_err.h"
#include "erpq_opts.h"
#include "erpq_test_support.h"

#define NOW 1700000000123LL

static json_t *J(const char *text) {
  json_error_t je;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
  cr_assert_not_null(v, "bad test JSON %s: %s", text, je.text);
  return v;
}

/* Runs erpq_opts_defaults on text and returns the compact JSON (malloc'ed),
 * or NULL with the message in err. */
static char *defaults_of(const char *text, char *err, size_t errlen) {
  json_t *in = text ? J(text) : NULL;
  json_t *o = erpq_opts_defaults(in, NOW, err, errlen);
  json_decref(in);
  if (!o) return NULL;
  char *s = erpq_json_dump(o);
  json_decref(o);
  return s;
}

/* ---- erpq_opts_defaults ------------------------------------------------- */

Test(opts_defaults, matches_bull_job_constructor) {
  json_t *v = test_vectors();
  json_t *cases = json_object_get(v, "defaults");
  cr_assert_gt(json_array_size(cases), 10);
  size_t i;
  json_t *c;
  json_array_foreach(cases, i, c) {
    const char *in = json_string_value(json_object_get(c, "opts"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    char err[256] = "";
    char *got = defaults_of(in, err, sizeof err);
    cr_assert_not_null(got, "defaults(%s) failed: %s", in, err);
    cr_expect_str_eq(got, want, "defaults(%s)", in);
    free(got);
  }
  json_decref(v);
}

Test(opts_defaults, null_user_gets_attempts_delay_timestamp) {
  char err[128];
  char *s = defaults_of(NULL, err, sizeof err);
  cr_assert_str_eq(s, "{\"attempts\":1,\"delay\":0,\"timestamp\":1700000000123}");
  free(s);
  s = defaults_of("null", err, sizeof err);
  cr_assert_str_eq(s, "{\"attempts\":1,\"delay\":0,\"timestamp\":1700000000123}");
  free(s);
}

Test(opts_defaults, key_order_user_keys_then_defaults) {
  char err[128];
  char *s = defaults_of("{\"removeOnComplete\":5,\"jobId\":\"a\",\"lifo\":false}", err, sizeof err);
  cr_assert_str_eq(s, "{\"removeOnComplete\":5,\"jobId\":\"a\",\"lifo\":false,\"attempts\":1,"
                      "\"delay\":0,\"timestamp\":1700000000123}");
  free(s);
  /* A user attempts keeps its place and becomes an integer. */
  s = defaults_of("{\"x\":1,\"attempts\":\"3\",\"y\":2}", err, sizeof err);
  cr_assert_str_eq(s, "{\"x\":1,\"attempts\":3,\"y\":2,\"delay\":0,\"timestamp\":1700000000123}");
  free(s);
}

Test(opts_defaults, numeric_backoff_becomes_fixed_object_in_place) {
  char err[128];
  char *s = defaults_of("{\"attempts\":3,\"backoff\":2500,\"z\":0}", err, sizeof err);
  cr_assert_str_eq(s, "{\"attempts\":3,\"backoff\":{\"type\":\"fixed\",\"delay\":2500},\"z\":0,"
                      "\"delay\":0,\"timestamp\":1700000000123}");
  free(s);
}

Test(opts_defaults, user_object_is_not_modified) {
  json_t *in = J("{\"backoff\":10,\"attempts\":\"2\"}");
  char err[64];
  json_t *o = erpq_opts_defaults(in, NOW, err, sizeof err);
  cr_assert_not_null(o);
  cr_assert_neq(o, in);
  char *s = erpq_json_dump(in);
  cr_expect_str_eq(s, "{\"backoff\":10,\"attempts\":\"2\"}");
  free(s);
  json_decref(o);
  json_decref(in);
}

Test(opts_defaults, non_object_opts_are_refused) {
  const char *bad[] = {"[]", "\"fast\"", "3", "true"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[128] = "";
    char *s = defaults_of(bad[i], err, sizeof err);
    cr_expect_null(s, "opts %s accepted", bad[i]);
    free(s);
    cr_expect_str_eq(err, "opts must be a JSON object", "opts %s", bad[i]);
  }
}

Test(opts_defaults, bad_types_are_refused_with_the_option_named) {
  struct {
    const char *in, *msg;
  } t[] = {
      {"{\"attempts\":\"many\"}", "opts.attempts must be a number"},
      {"{\"attempts\":[3]}", "opts.attempts must be a number"},
      {"{\"delay\":\"soon\"}", "opts.delay must be a number of milliseconds"},
      {"{\"delay\":{}}", "opts.delay must be a number of milliseconds"},
      {"{\"backoff\":\"fast\"}", "opts.backoff must be a number or {type,delay}"},
      {"{\"backoff\":[1000]}", "opts.backoff must be a number or {type,delay}"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char err[128] = "";
    char *s = defaults_of(t[i].in, err, sizeof err);
    cr_expect_null(s, "%s accepted as %s", t[i].in, s ? s : "");
    free(s);
    cr_expect_str_eq(err, t[i].msg, "%s", t[i].in);
  }
}

Test(opts_defaults, string_delay_becomes_a_number_and_timestamp_is_kept) {
  char err[64];
  char *s = defaults_of("{\"delay\":\"750\",\"timestamp\":99}", err, sizeof err);
  cr_assert_str_eq(s, "{\"delay\":750,\"timestamp\":99,\"attempts\":1}");
  free(s);
}

/* ---- erpq_jobopts_parse ------------------------------------------------- */

static erpq_jobopts parse_ok(json_t *o) {
  erpq_jobopts jo;
  char err[256] = "";
  int rc = erpq_jobopts_parse(o, &jo, err, sizeof err);
  cr_assert_eq(rc, 0, "parse failed: %s", err);
  return jo;
}

static void parse_fails(const char *text, const char *msg) {
  json_t *o = J(text);
  erpq_jobopts jo;
  char err[256] = "";
  cr_expect_eq(erpq_jobopts_parse(o, &jo, err, sizeof err), ERPQ_E_JSON, "%s parsed", text);
  cr_expect_str_eq(err, msg, "%s", text);
  json_decref(o);
}

Test(jobopts, absent_opts_give_bull_defaults) {
  erpq_jobopts jo = parse_ok(NULL);
  cr_expect_eq(jo.attempts, 1);
  cr_expect_str_empty(jo.backoff_type);
  cr_expect_eq(jo.backoff_delay, 0);
  cr_expect_null(jo.backoff_options);
  cr_expect_eq(jo.timeout_ms, 0);
  cr_expect_eq(jo.lifo, 0);
  cr_expect_eq(jo.priority, 0);
  cr_expect_eq(jo.on_complete.count, -1);
  cr_expect_eq(jo.on_complete.has_count, 1);
  cr_expect_eq(jo.on_complete.has_age, 0);
  cr_expect_eq(jo.on_fail.count, -1);
  cr_expect_eq(jo.stacktrace_limit, 0);
  cr_expect_eq(jo.has_repeat, 0);
  json_t *empty = json_object();
  jo = parse_ok(empty);
  cr_expect_eq(jo.attempts, 1);
  cr_expect_eq(jo.on_fail.count, -1);
  json_decref(empty);
}

Test(jobopts, full_options) {
  json_t *o = J("{\"attempts\":4,\"backoff\":{\"type\":\"exponential\",\"delay\":250,"
                "\"options\":{\"cap\":9}},\"timeout\":1500,\"lifo\":true,\"priority\":7,"
                "\"removeOnComplete\":{\"age\":3600,\"count\":10},\"removeOnFail\":25,"
                "\"stackTraceLimit\":3,\"repeat\":{\"every\":1000}}");
  erpq_jobopts jo = parse_ok(o);
  cr_expect_eq(jo.attempts, 4);
  cr_expect_str_eq(jo.backoff_type, "exponential");
  cr_expect_eq(jo.backoff_delay, 250);
  cr_expect_eq(jo.backoff_options, json_object_get(json_object_get(o, "backoff"), "options"),
               "backoff_options must point into the opts");
  cr_expect_eq(json_integer_value(json_object_get(jo.backoff_options, "cap")), 9);
  cr_expect_eq(jo.timeout_ms, 1500);
  cr_expect_eq(jo.lifo, 1);
  cr_expect_eq(jo.priority, 7);
  cr_expect_eq(jo.on_complete.has_age, 1);
  cr_expect_eq(jo.on_complete.age_s, 3600);
  cr_expect_eq(jo.on_complete.has_count, 1);
  cr_expect_eq(jo.on_complete.count, 10);
  cr_expect_eq(jo.on_fail.count, 25);
  cr_expect_eq(jo.on_fail.has_count, 1);
  cr_expect_eq(jo.on_fail.has_age, 0);
  cr_expect_eq(jo.stacktrace_limit, 3);
  cr_expect_eq(jo.has_repeat, 1);
  json_decref(o);
}

Test(jobopts, attempts_as_string_and_real) {
  json_t *o = J("{\"attempts\":\"7\"}");
  cr_expect_eq(parse_ok(o).attempts, 7);
  json_decref(o);
  o = J("{\"attempts\":2.9}");
  cr_expect_eq(parse_ok(o).attempts, 2);
  json_decref(o);
  o = J("{\"attempts\":null}");
  cr_expect_eq(parse_ok(o).attempts, 1);
  json_decref(o);
}

Test(jobopts, backoff_number_object_and_options) {
  json_t *o = J("{\"backoff\":700}");
  erpq_jobopts jo = parse_ok(o);
  cr_expect_str_eq(jo.backoff_type, "fixed");
  cr_expect_eq(jo.backoff_delay, 700);
  json_decref(o);
  o = J("{\"backoff\":{\"type\":\"fixed\",\"delay\":\"1200\"}}");
  jo = parse_ok(o);
  cr_expect_str_eq(jo.backoff_type, "fixed");
  cr_expect_eq(jo.backoff_delay, 1200);
  cr_expect_null(jo.backoff_options);
  json_decref(o);
  o = J("{\"backoff\":{\"type\":\"jitter\",\"options\":[1,2]}}");
  jo = parse_ok(o);
  cr_expect_str_eq(jo.backoff_type, "jitter");
  cr_expect_eq(jo.backoff_delay, 0);
  cr_expect(json_is_array(jo.backoff_options));
  json_decref(o);
}

Test(jobopts, timeout_lifo_priority) {
  json_t *o = J("{\"timeout\":-3,\"lifo\":\"true\",\"priority\":\"2\"}");
  erpq_jobopts jo = parse_ok(o);
  cr_expect_eq(jo.timeout_ms, 0, "a negative timeout means none");
  cr_expect_eq(jo.lifo, 0, "only JSON true makes a job lifo");
  cr_expect_eq(jo.priority, 0, "a non-number priority is ignored");
  json_decref(o);
  o = J("{\"timeout\":\"250\",\"lifo\":true,\"priority\":3}");
  jo = parse_ok(o);
  cr_expect_eq(jo.timeout_ms, 250);
  cr_expect_eq(jo.lifo, 1);
  cr_expect_eq(jo.priority, 3);
  json_decref(o);
}

Test(jobopts, remove_on_complete_and_fail_forms) {
  struct {
    const char *text;
    int64_t count;
    int has_count;
    int64_t age;
    int has_age;
  } t[] = {
      {"{\"removeOnComplete\":true,\"removeOnFail\":true}", 0, 1, 0, 0},
      {"{\"removeOnComplete\":false,\"removeOnFail\":false}", -1, 1, 0, 0},
      {"{\"removeOnComplete\":12,\"removeOnFail\":12}", 12, 1, 0, 0},
      {"{\"removeOnComplete\":{\"age\":60},\"removeOnFail\":{\"age\":60}}", -1, 0, 60, 1},
      {"{\"removeOnComplete\":{\"count\":3},\"removeOnFail\":{\"count\":3}}", 3, 1, 0, 0},
      {"{\"removeOnComplete\":{\"age\":5,\"count\":2},\"removeOnFail\":{\"age\":5,\"count\":2}}",
       2, 1, 5, 1},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    json_t *o = J(t[i].text);
    erpq_jobopts jo = parse_ok(o);
    const erpq_keep *ks[2] = {&jo.on_complete, &jo.on_fail};
    for (int k = 0; k < 2; k++) {
      cr_expect_eq(ks[k]->count, t[i].count, "%s [%d] count", t[i].text, k);
      cr_expect_eq(ks[k]->has_count, t[i].has_count, "%s [%d] has_count", t[i].text, k);
      cr_expect_eq(ks[k]->has_age, t[i].has_age, "%s [%d] has_age", t[i].text, k);
      if (t[i].has_age) cr_expect_eq(ks[k]->age_s, t[i].age, "%s [%d] age", t[i].text, k);
    }
    json_decref(o);
  }
}

Test(jobopts, stacktrace_limit_and_repeat_flag) {
  json_t *o = J("{\"stackTraceLimit\":-1,\"repeat\":null}");
  erpq_jobopts jo = parse_ok(o);
  cr_expect_eq(jo.stacktrace_limit, 0);
  cr_expect_eq(jo.has_repeat, 0);
  json_decref(o);
  o = J("{\"stackTraceLimit\":\"5\",\"repeat\":{\"cron\":\"* * * * *\"}}");
  jo = parse_ok(o);
  cr_expect_eq(jo.stacktrace_limit, 0, "a string stackTraceLimit is ignored");
  cr_expect_eq(jo.has_repeat, 1);
  json_decref(o);
  o = J("{\"stackTraceLimit\":1}");
  cr_expect_eq(parse_ok(o).stacktrace_limit, 1);
  json_decref(o);
}

Test(jobopts, error_messages_name_the_option) {
  parse_fails("{\"attempts\":\"lots\"}", "opts.attempts is not a number");
  parse_fails("{\"attempts\":{}}", "opts.attempts is not a number");
  parse_fails("{\"backoff\":{\"delay\":5}}", "opts.backoff.type is not a string");
  parse_fails("{\"backoff\":{\"type\":7}}", "opts.backoff.type is not a string");
  parse_fails("{\"backoff\":{\"type\":\"fixed\",\"delay\":\"x\"}}",
              "opts.backoff.delay is not a number");
  parse_fails("{\"timeout\":\"later\"}", "opts.timeout is not a number");
  parse_fails("{\"removeOnComplete\":\"yes\"}",
              "opts.removeOnComplete is not a boolean, number or {age,count}");
  parse_fails("{\"removeOnComplete\":{\"count\":\"x\"}}",
              "opts.removeOnComplete is not a boolean, number or {age,count}");
  parse_fails("{\"removeOnFail\":[1]}", "opts.removeOnFail is not a boolean, number or {age,count}");
  parse_fails("{\"removeOnFail\":{\"age\":\"old\"}}",
              "opts.removeOnFail is not a boolean, number or {age,count}");
  parse_fails("[1,2]", "job opts are not a JSON object");
  parse_fails("\"opts\"", "job opts are not a JSON object");
}

/* ---- erpq_keep_parse ------------------------------------------------------- */

Test(keep, forms) {
  erpq_keep k;
  cr_expect_eq(erpq_keep_parse(NULL, &k), 0);
  cr_expect(k.count == -1 && k.has_count == 1 && !k.has_age);
  json_t *v = json_null();
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.count == -1 && k.has_count == 1 && !k.has_age);
  json_decref(v);
  v = json_true();
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.count == 0 && k.has_count == 1);
  json_decref(v);
  v = json_false();
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.count == -1 && k.has_count == 1);
  json_decref(v);
  v = J("100");
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.count == 100 && k.has_count == 1 && !k.has_age);
  json_decref(v);
  v = J("3.7");
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect_eq(k.count, 3);
  json_decref(v);
  v = J("{\"age\":86400}");
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.has_age == 1 && k.age_s == 86400 && k.has_count == 0 && k.count == -1);
  json_decref(v);
  v = J("{\"age\":null,\"count\":null}");
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(!k.has_age && !k.has_count);
  json_decref(v);
  v = J("{\"count\":0}");
  cr_expect_eq(erpq_keep_parse(v, &k), 0);
  cr_expect(k.has_count == 1 && k.count == 0);
  json_decref(v);
  v = J("\"5\"");
  cr_expect_lt(erpq_keep_parse(v, &k), 0);
  json_decref(v);
  v = J("[]");
  cr_expect_lt(erpq_keep_parse(v, &k), 0);
  json_decref(v);
  v = J("{\"count\":[]}");
  cr_expect_lt(erpq_keep_parse(v, &k), 0);
  json_decref(v);
}

/* ---- erpq_json_dump ---------------------------------------------------------- */

static void dump_is(const char *in, const char *want) {
  json_t *v = J(in);
  char *s = erpq_json_dump(v);
  cr_expect_str_eq(s, want, "dump(%s)", in);
  free(s);
  json_decref(v);
}

Test(json_dump, compact_ordered_no_slash_escape_utf8_kept) {
  dump_is("{ \"b\" : 1,\n \"a\" : [ 1 , 2 ] }", "{\"b\":1,\"a\":[1,2]}");
  dump_is("{\"url\":\"https://example.org/a/b?c=d\"}", "{\"url\":\"https://example.org/a/b?c=d\"}");
  dump_is("{\"s\":\"\\u00e9l\\u00e8ve \\u2603 \\ud83d\\ude00\"}",
          "{\"s\":\"\xc3\xa9l\xc3\xa8ve \xe2\x98\x83 \xf0\x9f\x98\x80\"}");
  dump_is("\"a/b\"", "\"a/b\"");
  dump_is("null", "null");
  dump_is("42", "42");
  dump_is("[true,false,{}]", "[true,false,{}]");
  dump_is("{\"q\":\"say \\\"hi\\\"\\n\"}", "{\"q\":\"say \\\"hi\\\"\\n\"}");
}

Test(json_dump, data_vectors_match_json_stringify) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "data"), i, c) {
    const char *in = json_string_value(json_object_get(c, "text"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    dump_is(in, want);
  }
  json_decref(v);
}

/* JSON.stringify writes the shortest form that reads back as the same
 * double (1234.56, 0.1, 1e+21); a job's data and returnvalue written by us
 * should read the same in Redis as when a Node producer/worker wrote them. */
Test(json_dump, reals_as_json_stringify) {
  json_t *v = test_vectors();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(v, "dataFloat"), i, c) {
    const char *in = json_string_value(json_object_get(c, "text"));
    const char *want = json_string_value(json_object_get(c, "expected"));
    dump_is(in, want);
  }
  json_decref(v);
}
