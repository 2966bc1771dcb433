/*
 * Unit tests of erpq_repeat against tests/unit/repeat_vectors.json, which
 * scripts/gen-repeat-vectors.js produces by running bull 4.16.5's own
 * Queue.add / nextRepeatableJob / removeRepeatable code with a fake Redis.
 * The vectors were made with TZ=UTC, so the tests run with TZ=UTC too.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_repeat.h"
#include "erpq_tz.h"

static void utc_env(void) {
  setenv("TZ", "UTC", 1);
  erpq_tz_cache_flush();
}

TestSuite(repeat, .init = utc_env);

static json_t *load_vectors(void) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/unit/repeat_vectors.json", src ? src : ".");
  json_error_t e;
  json_t *v = json_load_file(path, 0, &e);
  cr_assert_not_null(v, "cannot load %s: %s (is ERPQ_SOURCE_DIR set?)", path, e.text);
  cr_assert(json_is_array(v));
  return v;
}

/* Compares the key order of two equal JSON values; writes the first
 * difference into why. */
static int same_key_order(const json_t *a, const json_t *b, char *why, size_t len,
                          const char *at) {
  if (json_is_object(a) && json_is_object(b)) {
    void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
    while (ia && ib) {
      const char *ka = json_object_iter_key(ia), *kb = json_object_iter_key(ib);
      char sub[512];
      snprintf(sub, sizeof sub, "%s.%s", at, ka);
      if (strcmp(ka, kb) != 0) {
        snprintf(why, len, "at %s: key \"%s\" where bull has \"%s\"", at, kb, ka);
        return 0;
      }
      if (!same_key_order(json_object_iter_value(ia), json_object_iter_value(ib), why, len, sub)) {
        return 0;
      }
      ia = json_object_iter_next((json_t *)a, ia);
      ib = json_object_iter_next((json_t *)b, ib);
    }
    if (ia || ib) {
      snprintf(why, len, "at %s: different number of keys", at);
      return 0;
    }
  } else if (json_is_array(a) && json_is_array(b)) {
    for (size_t i = 0; i < json_array_size(a) && i < json_array_size(b); i++) {
      char sub[512];
      snprintf(sub, sizeof sub, "%s[%zu]", at, i);
      if (!same_key_order(json_array_get(a, i), json_array_get(b, i), why, len, sub)) return 0;
    }
  }
  return 1;
}

static const char *kind_name(int rc) { return rc > 0 ? "next" : rc == 0 ? "none" : "error"; }

static int check_compute(size_t i, const json_t *v) {
  const char *name = json_string_value(json_object_get(v, "name"));
  const char *opts_text = json_string_value(json_object_get(v, "opts"));
  int64_t now = json_integer_value(json_object_get(v, "now"));
  const json_t *ex = json_object_get(v, "expect");
  const char *kind = json_string_value(json_object_get(ex, "kind"));
  json_error_t je;
  json_t *opts = json_loads(opts_text, 0, &je);
  cr_assert_not_null(opts, "vector %zu: bad opts", i);
  erpq_repeat_next n;
  char err[512] = "";
  int rc = erpq_repeat_compute(name, opts, now, &n, err, sizeof err);
  int ok = 1;
  if (strcmp(kind, kind_name(rc)) != 0) {
    cr_expect_fail("vector %zu (%s, %s at %" PRId64 "): got %s (%s), bull: %s %s", i, name,
                   opts_text, now, kind_name(rc), err, kind,
                   json_string_value(json_object_get(ex, "message")) ?: "");
    ok = 0;
  } else if (rc > 0) {
    const char *key = json_string_value(json_object_get(ex, "key"));
    const char *job_id = json_string_value(json_object_get(ex, "jobId"));
    int64_t next = json_integer_value(json_object_get(ex, "next"));
    int64_t delay = json_integer_value(json_object_get(ex, "delay"));
    const char *want_text = json_string_value(json_object_get(ex, "opts"));
    if (strcmp(n.key, key) != 0) {
      cr_expect_fail("vector %zu (%s): key \"%s\", bull \"%s\"", i, name, n.key, key);
      ok = 0;
    }
    if (strcmp(n.job_id, job_id) != 0) {
      cr_expect_fail("vector %zu (%s): job id %s, bull %s", i, name, n.job_id, job_id);
      ok = 0;
    }
    if (n.next_ms != next || n.delay_ms != delay) {
      cr_expect_fail("vector %zu (%s, %s at %" PRId64 "): next %" PRId64 " delay %" PRId64
                     ", bull next %" PRId64 " delay %" PRId64,
                     i, name, opts_text, now, n.next_ms, n.delay_ms, next, delay);
      ok = 0;
    }
    json_t *want = json_loads(want_text, 0, &je);
    cr_assert_not_null(want);
    char why[600] = "";
    if (!json_equal(want, n.opts)) {
      char *got = json_dumps(n.opts, JSON_COMPACT);
      cr_expect_fail("vector %zu (%s): opts differ\n got:  %s\n bull: %s", i, name, got, want_text);
      free(got);
      ok = 0;
    } else if (!same_key_order(want, n.opts, why, sizeof why, "opts")) {
      cr_expect_fail("vector %zu (%s): opts key order: %s", i, name, why);
      ok = 0;
    }
    char *text = erpq_repeat_json_stringify(n.opts);
    if (strcmp(text, want_text) != 0) {
      cr_expect_fail("vector %zu (%s): JSON text\n got:  %s\n bull: %s", i, name, text, want_text);
      ok = 0;
    }
    free(text);
    json_decref(want);
  }
  erpq_repeat_next_clear(&n);
  json_decref(opts);
  return ok;
}

Test(repeat, vectors) {
  json_t *all = load_vectors();
  size_t i;
  json_t *v;
  int total = 0, bad = 0, computes = 0, removals = 0;
  json_array_foreach(all, i, v) {
    const char *op = json_string_value(json_object_get(v, "op"));
    total++;
    if (strcmp(op, "compute") == 0) {
      computes++;
      bad += !check_compute(i, v);
    } else if (strcmp(op, "remove") == 0) {
      removals++;
      json_t *repeat = json_loads(json_string_value(json_object_get(v, "repeat")), 0, NULL);
      char *key = NULL, *id = NULL, err[256] = "";
      const char *name = json_string_value(json_object_get(v, "name"));
      int rc = erpq_repeat_removal(name, repeat, &key, &id, err, sizeof err);
      cr_expect_eq(rc, 0, "vector %zu: %s", i, err);
      if (rc == 0) {
        const char *wk = json_string_value(json_object_get(v, "key"));
        const char *wi = json_string_value(json_object_get(v, "jobId"));
        if (strcmp(key, wk) != 0 || strcmp(id, wi) != 0) {
          bad++;
          cr_expect_fail("vector %zu: removal %s / %s, bull %s / %s", i, key, id, wk, wi);
        }
        char *k2 = NULL;
        cr_expect_eq(erpq_repeat_key(name, repeat, &k2, NULL, 0), 0);
        cr_expect_str_eq(k2, wk);
        free(k2);
      }
      free(key);
      free(id);
      json_decref(repeat);
    } else {
      removals++;
      char *id = NULL;
      const char *key = json_string_value(json_object_get(v, "key"));
      cr_expect_eq(erpq_repeat_removal_by_key(key, &id, NULL, 0), 0);
      const char *wi = json_string_value(json_object_get(v, "jobId"));
      if (!id || strcmp(id, wi) != 0) {
        bad++;
        cr_expect_fail("vector %zu: removal by key %s: %s, bull %s", i, key, id, wi);
      }
      free(id);
    }
  }
  json_decref(all);
  cr_expect_gt(computes, 100);
  cr_expect_gt(removals, 5);
  cr_log_info("repeat vectors: %d checked, %d mismatches", total, bad);
}

Test(repeat, md5) {
  char h[33];
  erpq_md5_hex("", 0, h);
  cr_expect_str_eq(h, "d41d8cd98f00b204e9800998ecf8427e");
  erpq_md5_hex("rep:::1000", 10, h);
  cr_expect_eq(strlen(h), 32);
}

Test(repeat, every_alignment) {
  json_t *opts = json_pack("{s:{s:i}}", "repeat", "every", 1000);
  erpq_repeat_next n;
  cr_assert_eq(erpq_repeat_compute("rep", opts, 1700000000500, &n, NULL, 0), 1);
  cr_expect_str_eq(n.key, "rep:::1000");
  cr_expect_eq(n.next_ms, 1700000001000);
  cr_expect_eq(n.delay_ms, 500);
  cr_expect_eq(n.count, 1);
  cr_expect_eq(json_integer_value(json_object_get(n.opts, "prevMillis")), 1700000001000);
  erpq_repeat_next_clear(&n);
  /* The first run is not immediate even on an exact multiple. */
  cr_assert_eq(erpq_repeat_compute("rep", opts, 1700000000000, &n, NULL, 0), 1);
  cr_expect_eq(n.next_ms, 1700000001000);
  erpq_repeat_next_clear(&n);
  json_decref(opts);
}

Test(repeat, errors_and_ends) {
  erpq_repeat_next n;
  char err[256] = "";
  json_t *o = json_pack("{s:{s:s, s:i}}", "repeat", "cron", "* * * * *", "every", 5);
  cr_expect_eq(erpq_repeat_compute("x", o, 0, &n, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "Both .cron and .every") != NULL, "%s", err);
  json_decref(o);
  o = json_pack("{s:{s:s, s:s}}", "repeat", "cron", "* * * * *", "tz", "No/Such_Zone");
  cr_expect_lt(erpq_repeat_compute("x", o, 0, &n, err, sizeof err), 0);
  cr_expect(strstr(err, "No/Such_Zone") != NULL, "%s", err);
  json_decref(o);
  o = json_pack("{s:{s:i, s:i, s:i}}", "repeat", "every", 1000, "limit", 3, "count", 3);
  cr_expect_eq(erpq_repeat_compute("x", o, 0, &n, err, sizeof err), 0);
  cr_expect_null(n.opts);
  json_decref(o);
  o = json_pack("{s:{s:i, s:s}}", "repeat", "every", 1000, "endDate", "not a date");
  cr_expect_eq(erpq_repeat_compute("x", o, 0, &n, err, sizeof err), ERPQ_E_ARG);
  json_decref(o);
  o = json_pack("{s:i}", "attempts", 1);
  cr_expect_eq(erpq_repeat_compute("x", o, 0, &n, err, sizeof err), ERPQ_E_ARG);
  json_decref(o);
}

Test(repeat, dates) {
  int64_t ms = 0;
  json_t *v = json_string("2025-01-31");
  cr_expect_eq(erpq_js_date_ms(v, NULL, &ms, NULL, 0), 0);
  cr_expect_eq(ms, 1738281600000);
  json_decref(v);
  v = json_string("2025-01-31T10:00:00.5+02:00");
  cr_expect_eq(erpq_js_date_ms(v, NULL, &ms, NULL, 0), 0);
  cr_expect_eq(ms, 1738310400500);
  json_decref(v);
  erpq_tz *ny = NULL;
  cr_assert_eq(erpq_tz_load("America/New_York", &ny, NULL, 0), 0);
  v = json_string("2025-01-31T10:00");
  cr_expect_eq(erpq_js_date_ms(v, ny, &ms, NULL, 0), 0);
  cr_expect_eq(ms, 1738335600000);
  json_decref(v);
  /* 02:30 on the spring-forward day does not exist: 03:30 EDT. */
  v = json_string("2025-03-09 02:30:00");
  cr_expect_eq(erpq_js_date_ms(v, ny, &ms, NULL, 0), 0);
  cr_expect_eq(ms, 1741505400000);
  json_decref(v);
  erpq_tz_free(ny);
  v = json_integer(1234);
  cr_expect_eq(erpq_js_date_ms(v, NULL, &ms, NULL, 0), 0);
  cr_expect_eq(ms, 1234);
  json_decref(v);
  v = json_string("next tuesday");
  cr_expect_eq(erpq_js_date_ms(v, NULL, &ms, NULL, 0), ERPQ_E_ARG);
  json_decref(v);
}

Test(repeat, stringify) {
  json_t *v = json_loads("{\"a\":1.0,\"b\":0.1,\"c\":\"x\\u0001\\\"/\",\"d\":[true,null,1e21]}",
                         0, NULL);
  char *s = erpq_repeat_json_stringify(v);
  cr_expect_str_eq(s, "{\"a\":1,\"b\":0.1,\"c\":\"x\\u0001\\\"/\",\"d\":[true,null,1e+21]}");
  free(s);
  json_decref(v);
}
