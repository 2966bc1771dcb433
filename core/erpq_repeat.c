#include "erpq_repeat.h"

#include "erpq_buf.h"
#include "erpq_cron.h"
#include "erpq_err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_JOB_NAME "__default__"

/* ---- JavaScript value semantics on JSON ----------------------------------- */

/* JavaScript truthiness; NULL stands for undefined. */
static int js_truthy(const json_t *v) {
  if (!v) return 0;
  switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0 && !isnan(json_real_value(v));
    case JSON_STRING: return json_string_length(v) != 0;
    default: return 1;
  }
}

/* JavaScript Number(v). */
static double js_number(const json_t *v) {
  if (!v) return NAN;
  switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return 0;
    case JSON_TRUE: return 1;
    case JSON_INTEGER: return (double)json_integer_value(v);
    case JSON_REAL: return json_real_value(v);
    case JSON_STRING: return erpq_js_string_to_number(json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
      if (json_array_size(v) == 0) return 0;
      if (json_array_size(v) == 1 && !json_is_array(json_array_get(v, 0)) &&
          !json_is_object(json_array_get(v, 0))) {
        const json_t *e = json_array_get(v, 0);
        return json_is_null(e) ? 0 : json_is_boolean(e) ? NAN : js_number(e);
      }
      return NAN;
    default: return NAN;
  }
}

/* Appends JavaScript String(v); NULL stands for undefined. */
static void js_string(erpq_buf *b, const json_t *v) {
  char num[40];
  if (!v) {
    erpq_buf_adds(b, "undefined");
    return;
  }
  switch (json_typeof(v)) {
    case JSON_NULL: erpq_buf_adds(b, "null"); break;
    case JSON_TRUE: erpq_buf_adds(b, "true"); break;
    case JSON_FALSE: erpq_buf_adds(b, "false"); break;
    case JSON_INTEGER: erpq_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL:
      erpq_js_number_to_string(json_real_value(v), num, sizeof num);
      erpq_buf_adds(b, num);
      break;
    case JSON_STRING: erpq_buf_add(b, json_string_value(v), json_string_length(v)); break;
    case JSON_ARRAY:
      for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        if (i) erpq_buf_adds(b, ",");
        if (!json_is_null(e)) js_string(b, e);
      }
      break;
    default: erpq_buf_adds(b, "[object Object]");
  }
}

static void js_number_str(double v, char *buf, size_t len) {
  erpq_js_number_to_string(v, buf, len);
}

/* ---- JSON.stringify --------------------------------------------------------- */

static void stringify_str(erpq_buf *b, const char *s, size_t n) {
  erpq_buf_adds(b, "\"");
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[8];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default:
        if (c < 0x20) {
          snprintf(u, sizeof u, "\\u%04x", c);
          esc = u;
        }
    }
    if (esc) {
      erpq_buf_add(b, s + i - run, run);
      run = 0;
      erpq_buf_adds(b, esc);
    } else {
      run++;
    }
  }
  erpq_buf_add(b, s + n - run, run);
  erpq_buf_adds(b, "\"");
}

static void stringify(erpq_buf *b, const json_t *v) {
  char num[40];
  switch (json_typeof(v)) {
    case JSON_NULL: erpq_buf_adds(b, "null"); break;
    case JSON_TRUE: erpq_buf_adds(b, "true"); break;
    case JSON_FALSE: erpq_buf_adds(b, "false"); break;
    case JSON_INTEGER: erpq_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL:
      if (!isfinite(json_real_value(v))) {
        erpq_buf_adds(b, "null");
      } else {
        js_number_str(json_real_value(v), num, sizeof num);
        erpq_buf_adds(b, num);
      }
      break;
    case JSON_STRING: stringify_str(b, json_string_value(v), json_string_length(v)); break;
    case JSON_ARRAY:
      erpq_buf_adds(b, "[");
      for (size_t i = 0; i < json_array_size(v); i++) {
        if (i) erpq_buf_adds(b, ",");
        stringify(b, json_array_get(v, i));
      }
      erpq_buf_adds(b, "]");
      break;
    case JSON_OBJECT: {
      erpq_buf_adds(b, "{");
      const char *k;
      json_t *e;
      int first = 1;
      json_object_foreach((json_t *)v, k, e) {
        if (!first) erpq_buf_adds(b, ",");
        first = 0;
        stringify_str(b, k, strlen(k));
        erpq_buf_adds(b, ":");
        stringify(b, e);
      }
      erpq_buf_adds(b, "}");
      break;
    }
  }
}

char *erpq_repeat_json_stringify(const json_t *v) {
  erpq_buf b = {0};
  if (v) stringify(&b, v);
  return erpq_buf_take(&b);
}

/* ---- MD5 -------------------------------------------------------------------- */

void erpq_md5_hex(const void *data, size_t len, char out[33]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data, len, md, &n, EVP_md5(), NULL) || n != 16) {
    memset(out, '0', 32);
    out[32] = '\0';
    return;
  }
  static const char hex[] = "0123456789abcdef";
  for (unsigned i = 0; i < 16; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[32] = '\0';
}

/* ---- Dates ------------------------------------------------------------------ */

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

/* Local wall-clock time to UTC as JavaScript's Date does: a repeated time
 * takes its earlier instant, a skipped one the offset in force before it. */
static int64_t js_local_to_utc(const erpq_tz *tz, int64_t local) {
  int32_t before = erpq_tz_offset_at_ms(tz, local - 86400000);
  int32_t after = erpq_tz_offset_at_ms(tz, local + 86400000);
  int64_t t1 = local - (int64_t)before * 1000, t2 = local - (int64_t)after * 1000;
  int ok1 = erpq_tz_offset_at_ms(tz, t1) == before;
  int ok2 = erpq_tz_offset_at_ms(tz, t2) == after;
  if (ok1 && ok2) return t1 < t2 ? t1 : t2;
  if (ok1) return t1;
  if (ok2) return t2;
  return t1;
}

/* Parses the ISO-8601 subset described in the header.  date_only_utc:
 * JavaScript reads a bare date as UTC, luxon in the zone. */
static int parse_date_string(const char *s, const erpq_tz *zone, int date_only_utc,
                             int64_t *ms) {
  int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, msec = 0;
  size_t n = strlen(s);
  const char *p = s;
  if (n < 4 || !digits(p, 4, &y)) return -1;
  p += 4;
  int has_time = 0, has_offset = 0;
  int32_t off = 0;
  if (*p == '-') {
    if (!digits(p + 1, 2, &mo)) return -1;
    p += 3;
    if (*p == '-') {
      if (!digits(p + 1, 2, &d)) return -1;
      p += 3;
    }
  }
  if (*p == 'T' || *p == 't' || (*p == ' ' && isdigit((unsigned char)p[1]))) {
    has_time = 1;
    if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi)) return -1;
    p += 6;
    if (*p == ':') {
      if (!digits(p + 1, 2, &sec)) return -1;
      p += 3;
      if (*p == '.' || *p == ',') {
        p++;
        if (!isdigit((unsigned char)*p)) return -1;
        int scale = 100;
        while (isdigit((unsigned char)*p)) {
          msec += (*p - '0') * scale;
          scale /= 10;
          p++;
        }
      }
    }
    if (*p == ' ' && (p[1] == 'Z' || p[1] == '+' || p[1] == '-')) p++;
    if (*p == 'Z' || *p == 'z') {
      has_offset = 1;
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p == '-' ? -1 : 1, oh, om = 0;
      if (!digits(p + 1, 2, &oh)) return -1;
      p += 3;
      if (*p == ':') p++;
      if (isdigit((unsigned char)*p)) {
        if (!digits(p, 2, &om)) return -1;
        p += 2;
      }
      if (oh > 23 || om > 59) return -1;
      has_offset = 1;
      off = sign * (oh * 3600 + om * 60);
    }
  }
  if (*p) return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > erpq_days_in_month(y, mo) || h > 23 || mi > 59 ||
      sec > 59) {
    return -1;
  }
  int64_t local = (erpq_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + msec;
  if (has_offset) {
    *ms = local - (int64_t)off * 1000;
  } else if (!has_time && date_only_utc) {
    *ms = local;
  } else {
    erpq_tz *loc = NULL;
    if (!zone && erpq_tz_load(NULL, &loc, NULL, 0) < 0) loc = NULL;
    *ms = js_local_to_utc(zone ? zone : loc ? loc : erpq_tz_utc(), local);
    erpq_tz_free(loc);
  }
  return 0;
}

int erpq_js_date_ms(const json_t *v, const erpq_tz *local, int64_t *ms, char *err,
                    size_t errlen) {
  double x;
  if (!v) return 1;
  switch (json_typeof(v)) {
    case JSON_STRING:
      if (parse_date_string(json_string_value(v), local, 1, ms) < 0) {
        return erpq_fail(err, errlen, ERPQ_E_ARG, "unsupported date string \"%s\"",
                         json_string_value(v));
      }
      return 0;
    case JSON_NULL:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_INTEGER:
    case JSON_REAL:
      x = js_number(v);
      if (isnan(x) || fabs(x) > 8.64e15) return 1;
      *ms = (int64_t)trunc(x);
      return 0;
    default: return 1;
  }
}

/* luxon's reading of a date option (cron-parser's CronDate): numbers and
 * strings only; strings without an offset are in the zone. */
static int luxon_date_ms(const json_t *v, const erpq_tz *zone, const char *what, int64_t *ms,
                         char *err, size_t errlen) {
  if (json_is_number(v)) {
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > 8.64e15) {
      return erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.%s is not a valid date", what);
    }
    *ms = (int64_t)trunc(x);
    return 0;
  }
  if (json_is_string(v) && parse_date_string(json_string_value(v), zone, 0, ms) == 0) return 0;
  char *s = erpq_repeat_json_stringify(v);
  int rc = erpq_fail(err, errlen, ERPQ_E_ARG, "CronDate: unhandled timestamp: %s (repeat.%s)",
                     s ? s : "?", what);
  free(s);
  return rc;
}

/* ---- Next millis ------------------------------------------------------------ */

/* The zone cron-parser evaluates in: "UTC" with repeat.utc, else repeat.tz
 * as luxon's normalizeZone() reads it.  *tz is a new reference. */
static int repeat_zone(const json_t *repeat, erpq_tz **tz, char *err, size_t errlen) {
  const json_t *v = json_object_get(repeat, "tz");
  if (js_truthy(json_object_get(repeat, "utc"))) return erpq_tz_load("UTC", tz, err, errlen);
  if (!v || json_is_null(v)) return erpq_tz_load(NULL, tz, err, errlen);
  if (json_is_number(v)) {
    double m = json_number_value(v);
    if (!isfinite(m) || fabs(m) > 24 * 60) {
      return erpq_fail(err, errlen, ERPQ_E_ARG, "invalid repeat.tz offset");
    }
    return erpq_tz_fixed((int32_t)llround(m * 60), tz, err, errlen);
  }
  if (!json_is_string(v) || json_string_length(v) == 0) {
    return erpq_fail(err, errlen, ERPQ_E_ARG, "invalid repeat.tz");
  }
  return erpq_tz_load(json_string_value(v), tz, err, errlen);
}

int erpq_repeat_next_millis(const json_t *repeat, int64_t millis, int64_t *next_ms, char *err,
                            size_t errlen) {
  if (!json_is_object(repeat)) return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.repeat is not an object");
  const json_t *cron = json_object_get(repeat, "cron");
  const json_t *every = json_object_get(repeat, "every");
  if (js_truthy(cron) && js_truthy(every)) {
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "Both .cron and .every options are defined for this repeatable job");
  }
  if (js_truthy(every)) {
    if (!json_is_number(every)) {
      return erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.every must be a number");
    }
    double e = json_number_value(every), m = (double)millis;
    double next = floor(m / e) * e + e;
    if (!isfinite(next) || next != floor(next) || fabs(next) > 9.0e15) {
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "repeat.every gives a next time that is not a whole millisecond");
    }
    if (next == 0) return 0;
    *next_ms = (int64_t)next;
    return 1;
  }
  /* The cron path: parseExpression(cron, defaults({currentDate}, repeat)). */
  int64_t current = millis;
  const json_t *start = json_object_get(repeat, "startDate");
  if (js_truthy(start)) {
    int64_t s;
    int rc = erpq_js_date_ms(start, NULL, &s, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0 && s > millis) current = s;
  }
  erpq_buf expr = {0};
  if (cron && (json_is_object(cron) || json_is_array(cron))) {
    return erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.cron must be a string");
  }
  js_string(&expr, cron);
  char *ex = erpq_buf_take(&expr);
  if (!ex) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  erpq_cron *c = NULL;
  erpq_tz *tz = NULL;
  int rc = erpq_cron_parse(ex, &c, err, errlen);
  free(ex);
  if (rc < 0) return rc;
  if ((rc = repeat_zone(repeat, &tz, err, errlen)) < 0) goto out;
  erpq_cron_opts o = {.tz = tz};
  int64_t ignored;
  if (js_truthy(start) && (rc = luxon_date_ms(start, tz, "startDate", &ignored, err, errlen)) < 0) {
    goto out;
  }
  const json_t *end = json_object_get(repeat, "endDate");
  if (js_truthy(end)) {
    if ((rc = luxon_date_ms(end, tz, "endDate", &o.end_ms, err, errlen)) < 0) goto out;
    o.has_end = 1;
  }
  const json_t *nth = json_object_get(repeat, "nthDayOfWeek");
  if (js_truthy(nth)) {
    double n = js_number(nth);
    o.nth_day_of_week = isnan(n) ? 0 : n > 1000 ? 1000 : n < -1000 ? -1000 : (int)n;
    if (n != floor(n)) o.nth_day_of_week = 1000; /* Never matches, as in JS. */
  }
  /* With the iterator option next() returns {value, done}, whose getTime()
   * throws inside bull's try: no next time. */
  if (js_truthy(json_object_get(repeat, "iterator"))) {
    rc = 0;
    goto out;
  }
  int64_t n;
  rc = erpq_cron_next_opts(c, &o, current, &n) == 0 ? 1 : 0;
  if (rc == 1) {
    if (n == 0) {
      rc = 0;
    } else {
      *next_ms = n;
    }
  }
out:
  erpq_cron_free(c);
  erpq_tz_free(tz);
  return rc;
}

/* ---- Keys and ids ----------------------------------------------------------- */

static int job_id_part(erpq_buf *b, const json_t *repeat) {
  const json_t *id = json_object_get(repeat, "jobId");
  if (js_truthy(id)) {
    if (json_is_object(id)) return -1;
    js_string(b, id);
  }
  erpq_buf_adds(b, ":");
  return 0;
}

/* getRepeatKey(name, repeat, jobIdPart). */
static int build_key(const char *name, const json_t *repeat, const char *id_part, char **key,
                     char *err, size_t errlen) {
  erpq_buf b = {0};
  erpq_buf_adds(&b, name);
  erpq_buf_adds(&b, ":");
  erpq_buf_adds(&b, id_part);
  const json_t *end = json_object_get(repeat, "endDate");
  if (js_truthy(end)) {
    int64_t ms;
    int rc = erpq_js_date_ms(end, NULL, &ms, err, errlen);
    if (rc < 0) {
      erpq_buf_free(&b);
      return rc;
    }
    if (rc == 1) {
      erpq_buf_adds(&b, "NaN");
    } else {
      erpq_buf_addf(&b, "%" PRId64, ms);
    }
  }
  erpq_buf_adds(&b, ":");
  const json_t *cron = json_object_get(repeat, "cron");
  if (js_truthy(cron)) {
    const json_t *tz = json_object_get(repeat, "tz");
    if (js_truthy(tz)) js_string(&b, tz);
    erpq_buf_adds(&b, ":");
    js_string(&b, cron);
  } else {
    js_string(&b, json_object_get(repeat, "every"));
  }
  *key = erpq_buf_take(&b);
  return *key ? 0 : erpq_fail(err, errlen, -ENOMEM, "out of memory");
}

/* getRepeatJobId(name, jobIdPart, millis, md5(key)); millis may be "". */
static char *build_job_id(const char *name, const char *id_part, const char *key,
                          const char *millis) {
  char kh[33], h[33];
  erpq_md5_hex(key, strlen(key), kh);
  erpq_buf b = {0};
  erpq_buf_adds(&b, name);
  erpq_buf_adds(&b, id_part);
  erpq_buf_adds(&b, kh);
  char *ns = erpq_buf_take(&b);
  if (!ns) return NULL;
  erpq_md5_hex(ns, strlen(ns), h);
  free(ns);
  erpq_buf r = {0};
  erpq_buf_adds(&r, "repeat:");
  erpq_buf_adds(&r, h);
  erpq_buf_adds(&r, ":");
  erpq_buf_adds(&r, millis);
  return erpq_buf_take(&r);
}

int erpq_repeat_key(const char *name, const json_t *repeat, char **key_out, char *err,
                    size_t errlen) {
  *key_out = NULL;
  if (!json_is_object(repeat)) return erpq_fail(err, errlen, ERPQ_E_ARG, "repeat options are not an object");
  erpq_buf id = {0};
  if (job_id_part(&id, repeat) < 0) {
    erpq_buf_free(&id);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.jobId is an object");
  }
  char *idp = erpq_buf_take(&id);
  if (!idp) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = build_key(name ? name : DEFAULT_JOB_NAME, repeat, idp, key_out, err, errlen);
  free(idp);
  return rc;
}

int erpq_repeat_removal(const char *name, const json_t *repeat, char **key_out,
                        char **job_id_out, char *err, size_t errlen) {
  *job_id_out = NULL;
  if (!name) name = DEFAULT_JOB_NAME;
  int rc = erpq_repeat_key(name, repeat, key_out, err, errlen);
  if (rc < 0) return rc;
  erpq_buf id = {0};
  job_id_part(&id, repeat);
  char *idp = erpq_buf_take(&id);
  *job_id_out = idp ? build_job_id(name, idp, *key_out, "") : NULL;
  free(idp);
  if (!*job_id_out) {
    free(*key_out);
    *key_out = NULL;
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  return 0;
}

int erpq_repeat_removal_by_key(const char *key, char **job_id_out, char *err, size_t errlen) {
  *job_id_out = NULL;
  if (!key) return erpq_fail(err, errlen, ERPQ_E_ARG, "no repeat key");
  /* _keyToData(): name = data[0] || default, id = data[1] || null. */
  const char *c1 = strchr(key, ':');
  size_t nlen = c1 ? (size_t)(c1 - key) : strlen(key);
  char *name = nlen ? strndup(key, nlen) : strdup(DEFAULT_JOB_NAME);
  char *idp = NULL;
  if (c1) {
    const char *c2 = strchr(c1 + 1, ':');
    size_t ilen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    idp = malloc(ilen + 2);
    if (idp) {
      memcpy(idp, c1 + 1, ilen);
      idp[ilen] = ':';
      idp[ilen + 1] = '\0';
    }
  } else {
    idp = strdup(":");
  }
  if (name && idp) *job_id_out = build_job_id(name, idp, key, "");
  free(name);
  free(idp);
  return *job_id_out ? 0 : erpq_fail(err, errlen, -ENOMEM, "out of memory");
}

/* ---- The new opts ----------------------------------------------------------- */

/* lodash defaultsDeep(target, source): keys of source that target lacks are
 * copied (deeply, after target's keys); where both hold objects (or both
 * arrays) the merge recurses; otherwise target's value stays. */
static int merge_defaults(json_t *target, const json_t *source) {
  if (json_is_object(target) && json_is_object(source)) {
    const char *k;
    json_t *sv;
    json_object_foreach((json_t *)source, k, sv) {
      json_t *tv = json_object_get(target, k);
      if (!tv) {
        if (json_object_set_new(target, k, json_deep_copy(sv)) < 0) return -ENOMEM;
      } else if ((json_is_object(tv) && json_is_object(sv)) ||
                 (json_is_array(tv) && json_is_array(sv))) {
        if (merge_defaults(tv, sv) < 0) return -ENOMEM;
      }
    }
  } else if (json_is_array(target) && json_is_array(source)) {
    for (size_t i = 0; i < json_array_size(source); i++) {
      json_t *sv = json_array_get(source, i);
      json_t *tv = json_array_get(target, i);
      if (!tv) {
        if (json_array_append_new(target, json_deep_copy(sv)) < 0) return -ENOMEM;
      } else if ((json_is_object(tv) && json_is_object(sv)) ||
                 (json_is_array(tv) && json_is_array(sv))) {
        if (merge_defaults(tv, sv) < 0) return -ENOMEM;
      }
    }
  }
  return 0;
}

/* JavaScript parseInt(v) as a JSON value (NaN becomes null, as
 * JSON.stringify writes it). */
static json_t *js_parse_int(const json_t *v) {
  erpq_buf b = {0};
  js_string(&b, v);
  char *s = erpq_buf_take(&b);
  if (!s) return NULL;
  const char *p = s;
  while (*p == ' ' || (*p >= '\t' && *p <= '\r')) p++;
  int neg = 0;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  int base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) base = 16, p += 2;
  double r = 0;
  int any = 0;
  for (;; p++) {
    int d;
    if (isdigit((unsigned char)*p)) {
      d = *p - '0';
    } else if (base == 16 && isxdigit((unsigned char)*p)) {
      d = tolower((unsigned char)*p) - 'a' + 10;
    } else {
      break;
    }
    r = r * base + d;
    any = 1;
  }
  free(s);
  if (!any) return json_null();
  if (neg) r = -r;
  if (fabs(r) < 9007199254740992.0) return json_integer((json_int_t)r);
  return json_real(r);
}

/* Rewrites integral reals as integers (JavaScript has one number type, so
 * JSON.stringify(1.0) is "1"), and orders object keys as JavaScript does:
 * array-index keys first, ascending, then the others in insertion order.
 * Returns a new reference. */
static json_t *js_normalize(json_t *v) {
  if (json_is_real(v)) {
    double x = json_real_value(v);
    if (x == floor(x) && fabs(x) < 9007199254740992.0) return json_integer((json_int_t)x);
    return json_incref(v);
  }
  if (json_is_array(v)) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < json_array_size(v); i++) {
      if (json_array_append_new(a, js_normalize(json_array_get(v, i))) < 0) {
        json_decref(a);
        return NULL;
      }
    }
    return a;
  }
  if (!json_is_object(v)) return json_incref(v);
  json_t *o = json_object();
  if (!o) return NULL;
  /* Collect the array-index keys. */
  size_t n = json_object_size(v), ni = 0;
  const char **idx = calloc(n ? n : 1, sizeof *idx);
  unsigned long *vals = calloc(n ? n : 1, sizeof *vals);
  const char *k;
  json_t *e;
  if (!idx || !vals) goto fail;
  json_object_foreach(v, k, e) {
    size_t l = strlen(k);
    int is_index = l > 0 && l <= 10 && (l == 1 || k[0] != '0');
    for (size_t i = 0; is_index && i < l; i++) is_index = isdigit((unsigned char)k[i]);
    if (is_index) {
      unsigned long x = strtoul(k, NULL, 10);
      if (x < 4294967295UL) {
        size_t j = ni++;
        while (j > 0 && vals[j - 1] > x) {
          vals[j] = vals[j - 1];
          idx[j] = idx[j - 1];
          j--;
        }
        vals[j] = x;
        idx[j] = k;
      }
    }
  }
  for (size_t i = 0; i < ni; i++) {
    if (json_object_set_new(o, idx[i], js_normalize(json_object_get(v, idx[i]))) < 0) goto fail;
  }
  json_object_foreach(v, k, e) {
    if (json_object_get(o, k)) continue;
    if (json_object_set_new(o, k, js_normalize(e)) < 0) goto fail;
  }
  free(idx);
  free(vals);
  return o;
fail:
  free(idx);
  free(vals);
  json_decref(o);
  return NULL;
}

/* bull's setDefaultOpts() on the merged opts. */
static int set_default_opts(json_t *o) {
  if (!json_object_get(o, "attempts") && json_object_set_new(o, "attempts", json_integer(1)) < 0) {
    return -ENOMEM;
  }
  json_t *a = js_parse_int(json_object_get(o, "attempts"));
  if (!a || json_object_set_new(o, "attempts", a) < 0) return -ENOMEM;
  json_t *b = json_object_get(o, "backoff");
  if (b) {
    if (json_is_number(b) && isfinite(json_number_value(b))) {
      json_t *nb = json_pack("{s:s, s:O}", "type", "fixed", "delay", b);
      if (!nb || json_object_set_new(o, "backoff", nb) < 0) return -ENOMEM;
    } else if (!js_truthy(b)) {
      json_object_del(o, "backoff");
    }
  }
  return 0;
}

void erpq_repeat_next_clear(erpq_repeat_next *n) {
  if (!n) return;
  free(n->key);
  free(n->job_id);
  json_decref(n->opts);
  memset(n, 0, sizeof *n);
}

int erpq_repeat_compute(const char *name, const json_t *opts, int64_t now_ms,
                        erpq_repeat_next *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!name) name = DEFAULT_JOB_NAME;
  if (!json_is_object(opts)) return erpq_fail(err, errlen, ERPQ_E_ARG, "job opts are not an object");
  if (!json_is_object(json_object_get(opts, "repeat"))) {
    return erpq_fail(err, errlen, ERPQ_E_ARG, "job opts have no repeat object");
  }
  int rc = 0;
  char *idp = NULL;
  json_t *target = NULL;
  json_t *work = json_deep_copy(opts);
  if (!work) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  json_t *repeat = json_object_get(work, "repeat");

  const json_t *pm = json_object_get(work, "prevMillis");
  double prev = 0;
  if (js_truthy(pm)) {
    if (!json_is_number(pm)) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "opts.prevMillis is not a number");
      goto out;
    }
    prev = json_number_value(pm);
  }
  const json_t *job_id = json_object_get(work, "jobId");
  if (!prev && js_truthy(job_id)) {
    if (json_object_set(repeat, "jobId", (json_t *)job_id) < 0) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
  }
  const json_t *count = json_object_get(repeat, "count");
  double current_count = 1;
  if (js_truthy(count)) {
    if (!json_is_number(count)) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.count is not a number");
      goto out;
    }
    current_count = json_number_value(count) + 1;
  }
  const json_t *limit = json_object_get(repeat, "limit");
  if (limit && current_count > js_number(limit)) goto out; /* rc = 0: the chain ends. */
  const json_t *end = json_object_get(repeat, "endDate");
  if (end) {
    int64_t end_ms;
    int r = erpq_js_date_ms(end, NULL, &end_ms, err, errlen);
    if (r < 0) {
      rc = r;
      goto out;
    }
    if (r == 0 && now_ms > end_ms) goto out;
  }
  int64_t now = prev < (double)now_ms ? now_ms : (int64_t)prev;
  int64_t next = 0;
  if ((rc = erpq_repeat_next_millis(repeat, now, &next, err, errlen)) <= 0) goto out;

  erpq_buf id = {0};
  if (job_id_part(&id, repeat) < 0) {
    erpq_buf_free(&id);
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "repeat.jobId is an object");
    goto out;
  }
  if (!(idp = erpq_buf_take(&id))) goto oom;
  if ((rc = build_key(name, repeat, idp, &out->key, err, errlen)) < 0) goto out;
  char millis[32];
  snprintf(millis, sizeof millis, "%" PRId64, next);
  if (!(out->job_id = build_job_id(name, idp, out->key, millis))) goto oom;
  out->next_ms = next;
  out->delay_ms = next - now_ms < 0 ? 0 : next - now_ms;
  out->timestamp_ms = now_ms;
  out->count = (int64_t)current_count;

  json_t *count_v = current_count == floor(current_count) && fabs(current_count) < 9.0e15
                        ? json_integer((json_int_t)current_count)
                        : json_real(current_count);
  target = json_pack("{s:{s:o, s:s}, s:s, s:I, s:I, s:I}", "repeat", "count", count_v, "key",
                     out->key, "jobId", out->job_id, "delay", (json_int_t)out->delay_ms,
                     "timestamp", (json_int_t)now_ms, "prevMillis", (json_int_t)next);
  if (!target || merge_defaults(target, work) < 0 || set_default_opts(target) < 0) goto oom;
  if (!(out->opts = js_normalize(target))) goto oom;
  rc = 1;
  goto out;
oom:
  rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
out:
  if (rc <= 0) erpq_repeat_next_clear(out);
  free(idp);
  json_decref(target);
  json_decref(work);
  return rc;
}
