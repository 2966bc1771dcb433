#include "erpq_jsonschema.h"

#include "erpq_buf.h"
#include "erpq_jsonschema_regex.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"

/* ---- Problems ----------------------------------------------------------- */

static int problem(json_t *problems, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int problem(json_t *problems, const char *path, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_array_append_new(problems, json_pack("{s:s,s:s}", "path", path[0] ? path : "/", "message", msg));
  return 1;
}

/* path + "/" + key, with JSON Pointer escaping (~0, ~1). */
static char *child_path(const char *base, const char *key) {
  size_t n = strlen(base), k = strlen(key);
  char *p = malloc(n + 2 * k + 2);
  if (!p) return NULL;
  memcpy(p, base, n);
  size_t o = n;
  p[o++] = '/';
  for (size_t i = 0; i < k; i++) {
    if (key[i] == '~') {
      p[o++] = '~';
      p[o++] = '0';
    } else if (key[i] == '/') {
      p[o++] = '~';
      p[o++] = '1';
    } else {
      p[o++] = key[i];
    }
  }
  p[o] = '\0';
  return p;
}

/* ---- Types -------------------------------------------------------------- */

static int is_integral(const json_t *v) {
  if (json_is_integer(v)) return 1;
  if (json_is_real(v)) {
    double d = json_real_value(v);
    return isfinite(d) && d == floor(d);
  }
  return 0;
}

static int type_matches(const char *t, const json_t *v) {
  if (!strcmp(t, "object")) return json_is_object(v);
  if (!strcmp(t, "array")) return json_is_array(v);
  if (!strcmp(t, "string")) return json_is_string(v);
  if (!strcmp(t, "integer")) return is_integral(v);
  if (!strcmp(t, "number")) return json_is_number(v);
  if (!strcmp(t, "boolean")) return json_is_boolean(v);
  if (!strcmp(t, "null")) return json_is_null(v);
  return 0;
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  default: return "null";
  }
}

static int known_type(const char *t) {
  static const char *const all[] = {"object", "array", "string", "integer", "number", "boolean", "null"};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (!strcmp(all[i], t)) return 1;
  return 0;
}

/* ---- Strings ------------------------------------------------------------ */

static size_t utf8_len(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int valid_date(const char *s, size_t n) {
  if (n != 10 || s[4] != '-' || s[7] != '-') return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
  int y = atoi(s), m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return 0;
  int dm = days[m - 1] + (m == 2 && leap(y));
  return d <= dm;
}

static int two(const char *s) {
  if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return -1;
  return (s[0] - '0') * 10 + (s[1] - '0');
}

static int valid_datetime(const char *s, size_t n) {
  if (n < 20 || !valid_date(s, 10) || (s[10] != 'T' && s[10] != 't')) return 0;
  const char *t = s + 11;
  int hh = two(t), mm = two(t + 3), ss = two(t + 6);
  if (hh < 0 || hh > 23 || t[2] != ':' || mm < 0 || mm > 59 || t[5] != ':' || ss < 0 || ss > 60) return 0;
  const char *p = t + 8, *end = s + n;
  if (p < end && *p == '.') {
    p++;
    const char *q = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == q) return 0;
  }
  if (p < end && (*p == 'Z' || *p == 'z')) return p + 1 == end;
  if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':') return 0;
  int oh = two(p + 1), om = two(p + 4);
  return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}

/* ---- Validation ---------------------------------------------------------- */

static int num_kw(const json_t *schema, const char *kw, double *out) {
  const json_t *v = json_object_get(schema, kw);
  if (!json_is_number(v)) return 0;
  *out = json_number_value(v);
  return 1;
}

int erpq_schema_validate(const json_t *schema, const erpq_schema_patterns *pats, const json_t *v,
                         const char *base, json_t *problems) {
  if (json_is_true(schema) || !schema) return 0;
  if (json_is_false(schema)) return problem(problems, base, "is not allowed");
  if (!json_is_object(schema)) return 0;
  int n = 0;

  const json_t *type = json_object_get(schema, "type");
  if (json_is_string(type)) {
    if (!type_matches(json_string_value(type), v))
      return problem(problems, base, "must be of type %s, not %s", json_string_value(type), type_name(v));
  } else if (json_is_array(type)) {
    size_t i;
    const json_t *t;
    int ok = 0;
    char list[256] = "";
    json_array_foreach(type, i, t) {
      if (json_is_string(t) && type_matches(json_string_value(t), v)) ok = 1;
      if (json_is_string(t))
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " or " : "",
                 json_string_value(t));
    }
    if (!ok) return problem(problems, base, "must be of type %s, not %s", list, type_name(v));
  }

  const json_t *en = json_object_get(schema, "enum");
  if (json_is_array(en)) {
    size_t i;
    const json_t *e;
    int ok = 0;
    json_array_foreach(en, i, e) if (json_equal((json_t *)e, (json_t *)v)) ok = 1;
    if (!ok) {
      char *allowed = json_dumps(en, JSON_COMPACT);
      n += problem(problems, base, "must be one of %s", allowed ? allowed : "the allowed values");
      free(allowed);
    }
  }
  const json_t *cn = json_object_get(schema, "const");
  if (cn && !json_equal((json_t *)cn, (json_t *)v)) n += problem(problems, base, "must equal the constant value");

  if (json_is_number(v)) {
    double d = json_number_value(v), lim;
    if (num_kw(schema, "minimum", &lim) && d < lim) n += problem(problems, base, "must be >= %.17g", lim);
    if (num_kw(schema, "maximum", &lim) && d > lim) n += problem(problems, base, "must be <= %.17g", lim);
    if (num_kw(schema, "exclusiveMinimum", &lim) && d <= lim) n += problem(problems, base, "must be > %.17g", lim);
    if (num_kw(schema, "exclusiveMaximum", &lim) && d >= lim) n += problem(problems, base, "must be < %.17g", lim);
  }

  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v), len = utf8_len(s, bytes);
    double lim;
    if (num_kw(schema, "minLength", &lim) && (double)len < lim)
      n += problem(problems, base, "must be at least %.0f characters long", lim);
    if (num_kw(schema, "maxLength", &lim) && (double)len > lim)
      n += problem(problems, base, "must be at most %.0f characters long", lim);
    const json_t *pat = json_object_get(schema, "pattern");
    if (json_is_string(pat)) {
      int m = strlen(s) != bytes ? 0 : erpq_schema_patterns_match(pats, json_string_value(pat), s);
      if (m < 0)
        n += problem(problems, base, "cannot be checked against the pattern %s (not compiled with the schema)",
                     json_string_value(pat));
      else if (!m)
        n += problem(problems, base, "must match the pattern %s", json_string_value(pat));
    }
    const json_t *fmt = json_object_get(schema, "format");
    if (json_is_string(fmt)) {
      const char *f = json_string_value(fmt);
      if (!strcmp(f, "date") && !valid_date(s, bytes))
        n += problem(problems, base, "must be a date (YYYY-MM-DD)");
      else if (!strcmp(f, "date-time") && !valid_datetime(s, bytes))
        n += problem(problems, base, "must be an RFC 3339 date-time");
    }
  }

  if (json_is_array(v)) {
    double lim;
    size_t sz = json_array_size(v);
    if (num_kw(schema, "minItems", &lim) && (double)sz < lim)
      n += problem(problems, base, "must have at least %.0f items", lim);
    if (num_kw(schema, "maxItems", &lim) && (double)sz > lim)
      n += problem(problems, base, "must have at most %.0f items", lim);
    const json_t *items = json_object_get(schema, "items");
    if (items) {
      size_t i;
      const json_t *e;
      json_array_foreach(v, i, e) {
        char idx[32];
        snprintf(idx, sizeof idx, "%zu", i);
        char *p = child_path(base, idx);
        if (p) n += erpq_schema_validate(items, pats, e, p, problems);
        free(p);
      }
    }
  }

  if (json_is_object(v)) {
    const json_t *req = json_object_get(schema, "required");
    if (json_is_array(req)) {
      size_t i;
      const json_t *r;
      json_array_foreach(req, i, r) {
        if (json_is_string(r) && !json_object_get(v, json_string_value(r))) {
          char *p = child_path(base, json_string_value(r));
          n += problem(problems, p ? p : base, "is required");
          free(p);
        }
      }
    }
    const json_t *props = json_object_get(schema, "properties");
    const json_t *addl = json_object_get(schema, "additionalProperties");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val) {
      const json_t *ps = json_is_object(props) ? json_object_get(props, key) : NULL;
      char *p = child_path(base, key);
      if (!p) continue;
      if (ps)
        n += erpq_schema_validate(ps, pats, val, p, problems);
      else if (json_is_false(addl))
        n += problem(problems, p, "is not an allowed property");
      else if (json_is_object(addl))
        n += erpq_schema_validate(addl, pats, val, p, problems);
      free(p);
    }
  }
  return n;
}

/* ---- Schema checks -----------------------------------------------------------
 * Every keyword of every (sub)schema must be implemented or an annotation,
 * with a value of the type its rule needs; paths in errors are JSON
 * pointers into the schema document. */

static const char *const annotations[] = {"$schema",     "$id",      "$comment", "title",
                                          "description", "examples", "default",  "deprecated",
                                          "readOnly",    "writeOnly"};

static int in_list(const char *k, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(list[i], k))
      return 1;
  return 0;
}

static const char *shown(const char *path) { return path[0] ? path : "(the root)"; }

static int nonneg_int(const json_t *v) {
  return is_integral(v) && json_number_value(v) >= 0 && json_number_value(v) <= 9007199254740991.0;
}

static int check(const json_t *s, const char *path, erpq_schema_patterns *pats, char *err,
                 size_t errlen);

/* One keyword k (value v, at pointer kp) of a schema object. */
static int check_keyword(const char *k, const json_t *v, const char *kp, erpq_schema_patterns *pats,
                         char *err, size_t errlen) {
  if (in_list(k, annotations, sizeof annotations / sizeof annotations[0]))
    return 0;
  if (!strcmp(k, "type")) {
    if (json_is_string(v)) {
      if (!known_type(json_string_value(v)))
        return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: unknown type '%s'", kp,
                         json_string_value(v));
      return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: type must be a string or a non-empty array",
                       kp);
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t) if (!json_is_string(t) ||
                                    !known_type(json_string_value(
                                        t))) return erpq_fail(err, errlen, ERPQ_E_ARG,
                                                              "%s/%zu: bad type in the type list",
                                                              kp, i);
    return 0;
  }
  if (!strcmp(k, "required")) {
    size_t i;
    const json_t *r;
    if (!json_is_array(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: required must be an array", kp);
    json_array_foreach(v, i, r) if (!json_is_string(r)) return erpq_fail(
        err, errlen, ERPQ_E_ARG, "%s/%zu: required must list strings", kp, i);
    return 0;
  }
  if (!strcmp(k, "properties")) {
    if (!json_is_object(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: properties must be an object", kp);
    const char *name;
    const json_t *ps;
    json_object_foreach((json_t *)v, name, ps) {
      char *p = child_path(kp, name);
      int rc =
          p ? check(ps, p, pats, err, errlen) : erpq_fail(err, errlen, -ENOMEM, "out of memory");
      free(p);
      if (rc)
        return rc;
    }
    return 0;
  }
  if (!strcmp(k, "additionalProperties"))
    return check(v, kp, pats, err, errlen);
  if (!strcmp(k, "items")) {
    if (json_is_array(v))
      return erpq_fail(
          err, errlen, ERPQ_E_ARG,
          "%s: items as an array (the tuple form, prefixItems in 2020-12) is not supported", kp);
    return check(v, kp, pats, err, errlen);
  }
  if (!strcmp(k, "minItems") || !strcmp(k, "maxItems") || !strcmp(k, "minLength") ||
      !strcmp(k, "maxLength")) {
    if (!nonneg_int(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: %s must be a non-negative integer", kp, k);
    return 0;
  }
  if (!strcmp(k, "minimum") || !strcmp(k, "maximum") || !strcmp(k, "exclusiveMinimum") ||
      !strcmp(k, "exclusiveMaximum")) {
    if (!json_is_number(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: %s must be a number", kp, k);
    return 0;
  }
  if (!strcmp(k, "pattern")) {
    if (!json_is_string(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: pattern must be a string", kp);
    if (strlen(json_string_value(v)) != json_string_length(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: the pattern contains a NUL character", kp);
    char why[400];
    int rc;
    if (pats) {
      rc = erpq_schema_patterns_add(pats, json_string_value(v), why, sizeof why);
    } else {
      erpq_buf ere = {0};
      rc = erpq_regex_translate(json_string_value(v), &ere, why, sizeof why);
      erpq_buf_free(&ere);
    }
    return rc ? erpq_fail(err, errlen, rc, "%s: %s", kp, why) : 0;
  }
  if (!strcmp(k, "enum")) {
    if (!json_is_array(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: enum must be an array", kp);
    return 0;
  }
  if (!strcmp(k, "const"))
    return 0;
  if (!strcmp(k, "format")) {
    if (!json_is_string(v))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: format must be a string", kp);
    const char *f = json_string_value(v);
    if (strcmp(f, "date") && strcmp(f, "date-time"))
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "%s: format \"%s\" is not supported (only date and date-time are checked)",
                       kp, f);
    return 0;
  }
  return erpq_fail(err, errlen, ERPQ_E_ARG,
                   "%s: keyword \"%s\" is not supported (it would be ignored, not enforced)", kp,
                   k);
}

static int check(const json_t *s, const char *path, erpq_schema_patterns *pats, char *err,
                 size_t errlen) {
  if (json_is_boolean(s))
    return 0;
  if (!json_is_object(s))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: a schema must be an object or a boolean",
                     shown(path));
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)s, k, v) {
    char *kp = child_path(path, k);
    int rc = kp ? check_keyword(k, v, kp, pats, err, errlen)
                : erpq_fail(err, errlen, -ENOMEM, "out of memory");
    free(kp);
    if (rc)
      return rc;
  }
  return 0;
}

int erpq_schema_check(const json_t *schema, char *err, size_t errlen) {
  return check(schema, "", NULL, err, errlen);
}

int erpq_schema_compile(const json_t *schema, erpq_schema_patterns *pats, char *err,
                        size_t errlen) {
  return check(schema, "", pats, err, errlen);
}
char *erpq_schema_problems_text(const json_t *problems) {
  erpq_buf b = {0};
  size_t i;
  const json_t *p;
  json_array_foreach(problems, i, p) {
    const char *path = json_string_value(json_object_get(p, "path"));
    const char *msg = json_string_value(json_object_get(p, "message"));
    if (i) erpq_buf_add(&b, "; ", 2);
    erpq_buf_adds(&b, path ? path : "");
    erpq_buf_add(&b, ": ", 2);
    erpq_buf_adds(&b, msg ? msg : "");
  }
  return erpq_buf_take(&b);
}

