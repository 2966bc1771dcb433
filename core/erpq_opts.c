#include "erpq_opts.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_repeat.h"

int erpq_json_i64(const json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 0;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d)) return -1;
    *out = (int64_t)d;
    return 0;
  }
  return -1;
}

/* Numbers, and numeric strings (as JavaScript's Number() would read them in
 * the options bull coerces). */
static int as_i64(const json_t *v, int64_t *out) {
  if (json_is_string(v)) {
    char *end;
    double d = strtod(json_string_value(v), &end);
    if (end == json_string_value(v) || !isfinite(d)) return -1;
    *out = (int64_t)d;
    return 0;
  }
  return erpq_json_i64(v, out);
}

int erpq_keep_parse(const json_t *v, erpq_keep *out) {
  memset(out, 0, sizeof *out);
  out->count = -1;
  out->has_count = 1;
  if (!v || json_is_null(v) || json_is_false(v)) return 0;
  if (json_is_true(v)) {
    out->count = 0;
    return 0;
  }
  if (json_is_number(v)) return as_i64(v, &out->count);
  if (json_is_object(v)) {
    const json_t *c = json_object_get(v, "count");
    const json_t *a = json_object_get(v, "age");
    out->has_count = 0;
    out->count = -1;
    if (c && !json_is_null(c)) {
      if (as_i64(c, &out->count)) return -1;
      out->has_count = 1;
    }
    if (a && !json_is_null(a)) {
      if (as_i64(a, &out->age_s)) return -1;
      out->has_age = 1;
    }
    return 0;
  }
  return -1;
}

int erpq_jobopts_parse(const json_t *opts, erpq_jobopts *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  out->attempts = 1;
  out->on_complete.count = out->on_fail.count = -1;
  out->on_complete.has_count = out->on_fail.has_count = 1;
  if (!opts || json_is_null(opts)) return 0;
  if (!json_is_object(opts))
    return erpq_fail(err, errlen, ERPQ_E_JSON, "job opts are not a JSON object");
  int64_t v;
  const json_t *a = json_object_get(opts, "attempts");
  if (a && !json_is_null(a)) {
    if (as_i64(a, &v)) return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.attempts is not a number");
    out->attempts = v > 1000000 ? 1000000 : (int)v;
  }
  const json_t *b = json_object_get(opts, "backoff");
  if (b && json_is_number(b)) {
    strcpy(out->backoff_type, "fixed");
    as_i64(b, &out->backoff_delay);
  } else if (b && json_is_object(b)) {
    const json_t *t = json_object_get(b, "type");
    if (!json_is_string(t))
      return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.backoff.type is not a string");
    snprintf(out->backoff_type, sizeof out->backoff_type, "%s", json_string_value(t));
    const json_t *d = json_object_get(b, "delay");
    if (d && !json_is_null(d) && as_i64(d, &out->backoff_delay))
      return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.backoff.delay is not a number");
    out->backoff_options = json_object_get(b, "options");
  }
  const json_t *t = json_object_get(opts, "timeout");
  if (t && !json_is_null(t) && as_i64(t, &out->timeout_ms))
    return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.timeout is not a number");
  if (out->timeout_ms < 0) out->timeout_ms = 0;
  out->lifo = json_is_true(json_object_get(opts, "lifo"));
  const json_t *p = json_object_get(opts, "priority");
  if (p && json_is_number(p)) as_i64(p, &out->priority);
  if (erpq_keep_parse(json_object_get(opts, "removeOnComplete"), &out->on_complete))
    return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.removeOnComplete is not a boolean, number or {age,count}");
  if (erpq_keep_parse(json_object_get(opts, "removeOnFail"), &out->on_fail))
    return erpq_fail(err, errlen, ERPQ_E_JSON, "opts.removeOnFail is not a boolean, number or {age,count}");
  const json_t *s = json_object_get(opts, "stackTraceLimit");
  if (s && json_is_number(s) && !as_i64(s, &v)) out->stacktrace_limit = v > 0 ? (int)v : 0;
  const json_t *r = json_object_get(opts, "repeat");
  out->has_repeat = r && json_is_object(r);
  return 0;
}

json_t *erpq_opts_defaults(const json_t *user, int64_t now_ms, char *err, size_t errlen) {
  if (user && !json_is_object(user) && !json_is_null(user)) {
    erpq_fail(err, errlen, ERPQ_E_ARG, "opts must be a JSON object");
    return NULL;
  }
  json_t *o = (user && json_is_object(user)) ? json_deep_copy(user) : json_object();
  if (!o) {
    erpq_fail(err, errlen, -ENOMEM, "out of memory");
    return NULL;
  }
  int64_t v;
  const json_t *a = json_object_get(o, "attempts");
  if (!a || json_is_null(a)) {
    json_object_set_new(o, "attempts", json_integer(1));
  } else if (as_i64(a, &v)) {
    erpq_fail(err, errlen, ERPQ_E_ARG, "opts.attempts must be a number");
    json_decref(o);
    return NULL;
  } else {
    json_object_set_new(o, "attempts", json_integer(v));
  }
  const json_t *d = json_object_get(o, "delay");
  if (!d || json_is_null(d)) {
    json_object_set_new(o, "delay", json_integer(0));
  } else if (!json_is_number(d)) {
    if (as_i64(d, &v)) {
      erpq_fail(err, errlen, ERPQ_E_ARG, "opts.delay must be a number of milliseconds");
      json_decref(o);
      return NULL;
    }
    json_object_set_new(o, "delay", json_integer(v));
  }
  const json_t *ts = json_object_get(o, "timestamp");
  if (!ts || json_is_null(ts)) json_object_set_new(o, "timestamp", json_integer(now_ms));
  const json_t *b = json_object_get(o, "backoff");
  if (b && json_is_number(b)) {
    as_i64(b, &v);
    json_object_set_new(o, "backoff", json_pack("{s:s,s:I}", "type", "fixed", "delay", (json_int_t)v));
  } else if (b && !json_is_object(b) && !json_is_null(b) && !json_is_false(b)) {
    erpq_fail(err, errlen, ERPQ_E_ARG, "opts.backoff must be a number or {type,delay}");
    json_decref(o);
    return NULL;
  }
  return o;
}

char *erpq_json_dump(const json_t *v) {
  /* Numbers as JavaScript prints them (0.1, not 0.10000000000000001). */
  return erpq_repeat_json_stringify(v);
}

static const char *const known_opts[] = {
    "priority", "delay",        "attempts",         "repeat",          "backoff",
    "lifo",     "timeout",      "jobId",            "removeOnComplete", "removeOnFail",
    "stackTraceLimit", "preventParsingData", "debounce", "timestamp", NULL};

/* Edit distance (insertions, deletions, substitutions), capped at 9. */
static int distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 30 || lb > 30) return 9;
  int d[31][31];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  return d[la][lb] > 9 ? 9 : d[la][lb];
}

int erpq_opts_check_keys(const json_t *user, const char *base, json_t *problems) {
  int n = 0;
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)user, key, v) {
    int known = 0;
    const char *best = NULL;
    int bestd = 3; /* Suggest only close names. */
    for (int i = 0; known_opts[i]; i++) {
      if (!strcmp(key, known_opts[i])) known = 1;
      int dd = distance(key, known_opts[i]);
      if (dd < bestd) bestd = dd, best = known_opts[i];
    }
    if (known) continue;
    char path[300], msg[200];
    snprintf(path, sizeof path, "%s/%.200s", base, key);
    if (best)
      snprintf(msg, sizeof msg, "is not a job option (did you mean %s?)", best);
    else
      snprintf(msg, sizeof msg, "is not a job option");
    json_array_append_new(problems, json_pack("{s:s,s:s}", "path", path, "message", msg));
    n++;
  }
  return n;
}
