#include "erpq_cron.h"

#include "erpq_err.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The parser mirrors cron-parser's _parseField(): a field becomes a sorted
 * list of values, numbers first (ascending, duplicates kept) and then the
 * "L" strings (day of month and day of week only).  The list length matters
 * because cron-parser decides whether a day field is a wildcard by it.
 */

enum { F_SECOND, F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const int cmin[F_COUNT] = {0, 0, 0, 1, 1, 0};
static const int cmax[F_COUNT] = {59, 59, 23, 31, 12, 7};
static const char *const defaults[F_COUNT] = {"0", "*", "*", "*", "*", "*"};
/* cron-parser's table, with 29 days for February. */
static const int days_in_month_table[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

#define LOOP_LIMIT 10000

typedef struct {
  int *nums;
  size_t nnums, capnums;
  char **strs;
  size_t nstrs, capstrs;
} cron_field;

struct erpq_cron {
  cron_field f[F_COUNT];
  int nth_day_of_week;
  char *source;
};

/* ---- JavaScript number conversions --------------------------------------- */

static int js_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

double erpq_js_string_to_number(const char *s, size_t len) {
  size_t a = 0, b = len;
  while (a < b && js_space((unsigned char)s[a])) a++;
  while (b > a && js_space((unsigned char)s[b - 1])) b--;
  if (a == b) return 0;
  const char *p = s + a;
  size_t n = b - a;
  char buf[400];
  if (n >= sizeof buf) return NAN;
  memcpy(buf, p, n);
  buf[n] = '\0';
  if (n > 2 && buf[0] == '0' && strchr("xXoObB", buf[1])) {
    int base = (buf[1] == 'x' || buf[1] == 'X') ? 16 : (buf[1] == 'o' || buf[1] == 'O') ? 8 : 2;
    double v = 0;
    for (size_t i = 2; i < n; i++) {
      int c = (unsigned char)buf[i], d;
      if (isdigit(c)) {
        d = c - '0';
      } else if (isalpha(c)) {
        d = tolower(c) - 'a' + 10;
      } else {
        return NAN;
      }
      if (d >= base) return NAN;
      v = v * base + d;
    }
    return v;
  }
  size_t i = 0;
  int neg = 0;
  if (buf[i] == '+' || buf[i] == '-') neg = buf[i++] == '-';
  if (strcmp(buf + i, "Infinity") == 0) return neg ? -INFINITY : INFINITY;
  size_t digits = 0;
  while (isdigit((unsigned char)buf[i])) i++, digits++;
  if (buf[i] == '.') {
    i++;
    while (isdigit((unsigned char)buf[i])) i++, digits++;
  }
  if (!digits) return NAN;
  if (buf[i] == 'e' || buf[i] == 'E') {
    i++;
    if (buf[i] == '+' || buf[i] == '-') i++;
    if (!isdigit((unsigned char)buf[i])) return NAN;
    while (isdigit((unsigned char)buf[i])) i++;
  }
  if (buf[i]) return NAN;
  return strtod(buf, NULL);
}

void erpq_js_number_to_string(double v, char *buf, size_t buflen) {
  if (isnan(v)) {
    snprintf(buf, buflen, "NaN");
    return;
  }
  if (isinf(v)) {
    snprintf(buf, buflen, v < 0 ? "-Infinity" : "Infinity");
    return;
  }
  if (v == 0) {
    snprintf(buf, buflen, "0");
    return;
  }
  /* Shortest digits that read back as v, then JavaScript's layout. */
  char tmp[64];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
    if (strtod(tmp, NULL) == v) break;
  }
  char digits[32];
  size_t k = 0;
  const char *p = tmp;
  int neg = 0;
  if (*p == '-') neg = 1, p++;
  for (; *p && *p != 'e'; p++) {
    if (isdigit((unsigned char)*p)) digits[k++] = *p;
  }
  while (k > 1 && digits[k - 1] == '0') k--;
  digits[k] = '\0';
  int n = atoi(p + 1) + 1; /* Position of the decimal point. */
  char out[64];
  size_t o = 0;
  if (neg) out[o++] = '-';
  if ((int)k <= n && n <= 21) {
    memcpy(out + o, digits, k), o += k;
    for (int i = (int)k; i < n; i++) out[o++] = '0';
  } else if (0 < n && n <= 21) {
    memcpy(out + o, digits, (size_t)n), o += (size_t)n;
    out[o++] = '.';
    memcpy(out + o, digits + n, k - (size_t)n), o += k - (size_t)n;
  } else if (-6 < n && n <= 0) {
    out[o++] = '0';
    out[o++] = '.';
    for (int i = 0; i < -n; i++) out[o++] = '0';
    memcpy(out + o, digits, k), o += k;
  } else {
    out[o++] = digits[0];
    if (k > 1) {
      out[o++] = '.';
      memcpy(out + o, digits + 1, k - 1), o += k - 1;
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "e%c%d", n - 1 < 0 ? '-' : '+',
                          abs(n - 1));
  }
  out[o] = '\0';
  snprintf(buf, buflen, "%s", out);
}

/* ---- Parsing -------------------------------------------------------------- */

typedef struct {
  int field;
  char *err;
  size_t errlen;
  cron_field *out;
} parse_ctx;

static int push_num(cron_field *f, int v) {
  if (f->nnums == f->capnums) {
    size_t n = f->capnums ? f->capnums * 2 : 16;
    int *p = realloc(f->nums, n * sizeof *p);
    if (!p) return -ENOMEM;
    f->nums = p;
    f->capnums = n;
  }
  f->nums[f->nnums++] = v;
  return 0;
}

static int push_str(cron_field *f, const char *s, size_t len) {
  if (f->nstrs == f->capstrs) {
    size_t n = f->capstrs ? f->capstrs * 2 : 4;
    char **p = realloc(f->strs, n * sizeof *p);
    if (!p) return -ENOMEM;
    f->strs = p;
    f->capstrs = n;
  }
  char *c = strndup(s, len);
  if (!c) return -ENOMEM;
  f->strs[f->nstrs++] = c;
  return 0;
}

static void field_clear(cron_field *f) {
  free(f->nums);
  for (size_t i = 0; i < f->nstrs; i++) free(f->strs[i]);
  free(f->strs);
  memset(f, 0, sizeof *f);
}

static int has_constraint_char(int field, const char *s, size_t len) {
  return (field == F_DOM || field == F_DOW) && memchr(s, 'L', len) != NULL;
}

static int range_error(parse_ctx *c, double v) {
  char b[40];
  erpq_js_number_to_string(v, b, sizeof b);
  return erpq_fail(c->err, c->errlen, -EINVAL,
                   "Constraint error, got value %s expected range %d-%d", b,
                   cmin[c->field], cmax[c->field]);
}

/* A value produced by parseRange(): a list of numbers, a scalar number or a
 * scalar string. */
typedef struct {
  int kind; /* 0 list (already pushed), 1 number, 2 string */
  double num;
  const char *str;
  size_t len;
} range_result;

/* cron-parser's parseRange(val, repeatInterval).  A list is validated and
 * pushed straight away, which is what handleResult() would do with it. */
static int parse_range(parse_ctx *c, const char *val, size_t len, const char *rep,
                       size_t replen, range_result *res) {
  const char *dash = memchr(val, '-', len);
  if (!dash) {
    double n = erpq_js_string_to_number(val, len);
    if (isnan(n)) {
      res->kind = 2;
      res->str = val;
      res->len = len;
    } else {
      res->kind = 1;
      res->num = n;
    }
    return 0;
  }
  size_t l0 = (size_t)(dash - val);
  const char *a1 = dash + 1;
  const char *dash2 = memchr(a1, '-', (size_t)(val + len - a1));
  size_t l1 = dash2 ? (size_t)(dash2 - a1) : (size_t)(val + len - a1);
  if (l0 == 0) {
    if (l1 == 0) {
      return erpq_fail(c->err, c->errlen, -EINVAL, "Invalid range: %.*s", (int)len, val);
    }
    res->kind = 1;
    res->num = erpq_js_string_to_number(val, len);
    return 0;
  }
  double min = erpq_js_string_to_number(val, l0);
  double max = erpq_js_string_to_number(a1, l1);
  if (isnan(min) || isnan(max) || min < cmin[c->field] || max > cmax[c->field]) {
    char b0[40], b1[40];
    erpq_js_number_to_string(min, b0, sizeof b0);
    erpq_js_number_to_string(max, b1, sizeof b1);
    return erpq_fail(c->err, c->errlen, -EINVAL,
                     "Constraint error, got range %s-%s expected range %d-%d", b0, b1,
                     cmin[c->field], cmax[c->field]);
  }
  if (min > max) {
    return erpq_fail(c->err, c->errlen, -EINVAL, "Invalid range: %.*s", (int)len, val);
  }
  double interval = rep ? erpq_js_string_to_number(rep, replen) : 1;
  double repeat_index = interval;
  if (isnan(repeat_index) || repeat_index <= 0) {
    char b[40];
    erpq_js_number_to_string(repeat_index, b, sizeof b);
    return erpq_fail(c->err, c->errlen, -EINVAL,
                     "Constraint error, cannot repeat at every %s time.", b);
  }
  /* The list is built locally (its "exists" test only looks at itself) and
   * then checked and appended as handleResult() does. */
  int local[64];
  size_t nlocal = 0;
  if (c->field == F_DOW && fmod(max, 7) == 0) local[nlocal++] = 0;
  for (double index = min; index <= max; index++) {
    int exists = 0;
    for (size_t i = 0; i < nlocal; i++) exists |= local[i] == index;
    if (!exists && repeat_index > 0 && fmod(repeat_index, interval) == 0) {
      repeat_index = 1;
      local[nlocal++] = (int)index;
    } else {
      repeat_index++;
    }
  }
  for (size_t i = 0; i < nlocal; i++) {
    if (local[i] < cmin[c->field] || local[i] > cmax[c->field]) return range_error(c, local[i]);
    if (push_num(c->out, local[i]) < 0) return erpq_fail(c->err, c->errlen, -ENOMEM, "out of memory");
  }
  res->kind = 0;
  return 0;
}

/* cron-parser's parseRepeat() followed by handleResult(). */
static int parse_atom(parse_ctx *c, const char *val, size_t len) {
  const char *slash = memchr(val, '/', len);
  range_result r;
  int rc;
  char *tmp = NULL;
  if (slash) {
    const char *a1 = slash + 1;
    size_t l1 = (size_t)(val + len - a1);
    if (memchr(a1, '/', l1)) {
      return erpq_fail(c->err, c->errlen, -EINVAL, "Invalid repeat: %.*s", (int)len, val);
    }
    size_t l0 = (size_t)(slash - val);
    if (!isnan(erpq_js_string_to_number(val, l0))) {
      /* "5/15" means "5-max/15". */
      if (!(tmp = malloc(l0 + 8))) return erpq_fail(c->err, c->errlen, -ENOMEM, "out of memory");
      int n = snprintf(tmp, l0 + 8, "%.*s-%d", (int)l0, val, cmax[c->field]);
      rc = parse_range(c, tmp, (size_t)n, a1, l1, &r);
    } else {
      rc = parse_range(c, val, l0, a1, l1, &r);
    }
  } else {
    rc = parse_range(c, val, len, NULL, 0, &r);
  }
  if (rc == 0 && r.kind == 2) {
    if (has_constraint_char(c->field, r.str, r.len)) {
      if (push_str(c->out, r.str, r.len) < 0) rc = erpq_fail(c->err, c->errlen, -ENOMEM, "out of memory");
    } else {
      rc = erpq_fail(c->err, c->errlen, -EINVAL,
                     "Constraint error, got value %.*s expected range %d-%d", (int)r.len,
                     r.str, cmin[c->field], cmax[c->field]);
    }
  } else if (rc == 0 && r.kind == 1) {
    double n = r.num;
    if (isnan(n) || n < cmin[c->field] || n > cmax[c->field]) {
      rc = range_error(c, n);
    } else {
      if (c->field == F_DOW) n = fmod(n, 7);
      if (push_num(c->out, (int)n) < 0) rc = erpq_fail(c->err, c->errlen, -ENOMEM, "out of memory");
    }
  }
  free(tmp);
  return rc;
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void field_sort(cron_field *f) {
  if (f->nnums > 1) qsort(f->nums, f->nnums, sizeof *f->nums, cmp_int);
  if (f->nstrs > 1) qsort(f->strs, f->nstrs, sizeof *f->strs, cmp_str);
}

static int valid_chars(int field, const char *v) {
  const char *extra = field == F_DOM ? "?L" : field == F_DOW ? "?L#" : "";
  if (!*v) return 0;
  for (; *v; v++) {
    if (!isdigit((unsigned char)*v) && !strchr(",*/-", *v) && !strchr(extra, *v)) return 0;
  }
  return 1;
}

/* cron-parser's _parseField(). */
static int parse_field(int field, const char *value, cron_field *out, char *err,
                       size_t errlen) {
  static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
  static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  size_t vlen = strlen(value);
  char *v = malloc(vlen * 6 + 16), *w = NULL;
  if (!v) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = 0;
  /* Aliases: every run of three letters must be a month or weekday name. */
  size_t o = 0;
  for (size_t i = 0; i < vlen;) {
    if ((field == F_MONTH || field == F_DOW) && i + 2 < vlen && isalpha((unsigned char)value[i]) &&
        isalpha((unsigned char)value[i + 1]) && isalpha((unsigned char)value[i + 2])) {
      char low[4] = {(char)tolower((unsigned char)value[i]),
                     (char)tolower((unsigned char)value[i + 1]),
                     (char)tolower((unsigned char)value[i + 2]), 0};
      int found = -1;
      if (field == F_MONTH) {
        for (int k = 0; k < 12; k++) if (!strcmp(low, months[k])) found = k + 1;
      } else {
        for (int k = 0; k < 7; k++) if (!strcmp(low, days[k])) found = k;
      }
      if (found < 0) {
        rc = erpq_fail(err, errlen, -EINVAL, "Validation error, cannot resolve alias \"%s\"", low);
        goto done;
      }
      o += (size_t)sprintf(v + o, "%d", found);
      i += 3;
    } else {
      v[o++] = value[i++];
    }
  }
  v[o] = '\0';
  if (!valid_chars(field, v)) {
    rc = erpq_fail(err, errlen, -EINVAL, "Invalid characters, got value: %s", v);
    goto done;
  }
  /* "*" (or else "?") becomes "min-max". */
  char wild = strchr(v, '*') ? '*' : strchr(v, '?') ? '?' : 0;
  if (wild) {
    if (!(w = malloc(strlen(v) * 6 + 1))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      goto done;
    }
    size_t k = 0;
    for (const char *p = v; *p; p++) {
      if (*p == wild) {
        k += (size_t)sprintf(w + k, "%d-%d", cmin[field], cmax[field]);
      } else {
        w[k++] = *p;
      }
    }
    w[k] = '\0';
  }
  const char *s = w ? w : v;
  parse_ctx c = {field, err, errlen, out};
  /* parseSequence(): no empty list items. */
  size_t slen = strlen(s);
  for (size_t a = 0;;) {
    const char *comma = memchr(s + a, ',', slen - a);
    size_t e = comma ? (size_t)(comma - s) : slen;
    if (e == a) {
      rc = erpq_fail(err, errlen, -EINVAL, "Invalid list value format");
      goto done;
    }
    if (!comma) break;
    a = e + 1;
  }
  for (size_t a = 0;;) {
    const char *comma = memchr(s + a, ',', slen - a);
    size_t e = comma ? (size_t)(comma - s) : slen;
    if ((rc = parse_atom(&c, s + a, e - a)) < 0) goto done;
    if (!comma) break;
    a = e + 1;
  }
  field_sort(out);
done:
  free(v);
  free(w);
  return rc;
}

/* cron-parser's parseNthDay(): splits "d#k" off the day-of-week field. */
static int parse_nth(const char *val, char **out, int *nth, char *err, size_t errlen) {
  const char *hash = strchr(val, '#');
  if (!hash) {
    *out = strdup(val);
    return *out ? 0 : erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  const char *last = strrchr(val, '#') + 1;
  double n = erpq_js_string_to_number(last, strlen(last));
  if (strchr(val, ',')) {
    return erpq_fail(err, errlen, -EINVAL,
                     "Constraint error, invalid dayOfWeek `#` and `,` special characters are incompatible");
  }
  if (strchr(val, '/')) {
    return erpq_fail(err, errlen, -EINVAL,
                     "Constraint error, invalid dayOfWeek `#` and `/` special characters are incompatible");
  }
  if (strchr(val, '-')) {
    return erpq_fail(err, errlen, -EINVAL,
                     "Constraint error, invalid dayOfWeek `#` and `-` special characters are incompatible");
  }
  if (strchr(hash + 1, '#') || isnan(n) || n < 1 || n > 5) {
    return erpq_fail(err, errlen, -EINVAL,
                     "Constraint error, invalid dayOfWeek occurrence number (#)");
  }
  *nth = (int)n;
  *out = strndup(val, (size_t)(hash - val));
  return *out ? 0 : erpq_fail(err, errlen, -ENOMEM, "out of memory");
}

void erpq_cron_free(erpq_cron *cron) {
  if (!cron) return;
  for (int i = 0; i < F_COUNT; i++) field_clear(&cron->f[i]);
  free(cron->source);
  free(cron);
}

const char *erpq_cron_source(const erpq_cron *cron) { return cron->source; }

int erpq_cron_parse(const char *expr, erpq_cron **out, char *err, size_t errlen) {
  static const char *const predefined[][2] = {{"@yearly", "0 0 1 1 *"},
                                              {"@monthly", "0 0 1 * *"},
                                              {"@weekly", "0 0 * * 0"},
                                              {"@daily", "0 0 * * *"},
                                              {"@hourly", "0 * * * *"}};
  *out = NULL;
  if (!expr) return erpq_fail(err, errlen, -EINVAL, "Invalid cron expression");
  erpq_cron *cr = calloc(1, sizeof *cr);
  if (!cr || !(cr->source = strdup(expr))) {
    free(cr);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  const char *e = expr;
  for (size_t i = 0; i < sizeof predefined / sizeof predefined[0]; i++) {
    if (strcmp(expr, predefined[i][0]) == 0) e = predefined[i][1];
  }
  /* Trim, then split on runs of white space. */
  char *buf = strdup(e);
  if (!buf) {
    erpq_cron_free(cr);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  char *atoms[F_COUNT + 1];
  int natoms = 0, rc = 0;
  char *p = buf;
  while (js_space((unsigned char)*p)) p++;
  if (!*p) {
    atoms[natoms++] = p; /* "".split(/\s+/) is [""]. */
  }
  while (*p) {
    if (natoms == F_COUNT) {
      rc = erpq_fail(err, errlen, -EINVAL, "Invalid cron expression");
      goto done;
    }
    atoms[natoms++] = p;
    while (*p && !js_space((unsigned char)*p)) p++;
    if (*p) *p++ = '\0';
    while (js_space((unsigned char)*p)) p++;
  }
  int start = F_COUNT - natoms;
  for (int i = 0; i < F_COUNT; i++) {
    const char *value = i < start ? NULL : atoms[i - start];
    if (!value || !*value) value = defaults[i];
    if (i == F_DOW) {
      char *plain = NULL;
      int nth = 0;
      if ((rc = parse_nth(value, &plain, &nth, err, errlen)) < 0) goto done;
      if (nth) cr->nth_day_of_week = nth;
      rc = parse_field(i, plain, &cr->f[i], err, errlen);
      free(plain);
    } else {
      rc = parse_field(i, value, &cr->f[i], err, errlen);
    }
    if (rc < 0) goto done;
  }
  /* _handleMaxDaysInMonth(): with a single month, drop days it lacks. */
  cron_field *mon = &cr->f[F_MONTH], *dom = &cr->f[F_DOM];
  if (mon->nnums + mon->nstrs == 1 && mon->nnums == 1) {
    int dim = days_in_month_table[mon->nums[0] - 1];
    if (dom->nnums > 0 && dom->nums[0] > dim) {
      rc = erpq_fail(err, errlen, -EINVAL, "Invalid explicit day of month definition");
      goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < dom->nnums; i++) {
      if (dom->nums[i] <= dim) dom->nums[k++] = dom->nums[i];
    }
    dom->nnums = k;
    k = 0;
    for (size_t i = 0; i < dom->nstrs; i++) {
      if (strcmp(dom->strs[i], "L") == 0) {
        dom->strs[k++] = dom->strs[i];
      } else {
        free(dom->strs[i]);
      }
    }
    dom->nstrs = k;
  }
done:
  free(buf);
  if (rc < 0) {
    erpq_cron_free(cr);
    return rc;
  }
  *out = cr;
  return 0;
}

/* ---- Evaluation ----------------------------------------------------------- */

/*
 * A cdate is cron-parser's CronDate: an instant plus a zone, whose calendar
 * fields are those of luxon's DateTime (local time at the instant's
 * offset).  Calendar steps (days, months) rebuild the wall-clock time and
 * convert it back with the offset before the step as the guess; time steps
 * (hours, minutes, seconds) add milliseconds to the instant.
 */
typedef struct {
  int64_t ts;
  const erpq_tz *tz;
} cdate;

typedef struct {
  int64_t year;
  int month, day, hour, minute, second, ms, wday;
} cfields;

enum { U_MONTH, U_DAY, U_HOUR, U_MINUTE, U_SECOND };

static int32_t cd_offset(const cdate *d) { return erpq_tz_offset_at_ms(d->tz, d->ts); }

static void cd_fields(const cdate *d, cfields *f) {
  int64_t local = d->ts + (int64_t)cd_offset(d) * 1000;
  int64_t days = erpq_floor_div(local, 86400000);
  int64_t msday = local - days * 86400000;
  erpq_civil_from_days(days, &f->year, &f->month, &f->day);
  f->hour = (int)(msday / 3600000);
  f->minute = (int)(msday / 60000 % 60);
  f->second = (int)(msday / 1000 % 60);
  f->ms = (int)(msday % 1000);
  f->wday = (int)erpq_floor_mod(days + 4, 7);
}

static int64_t local_ms(int64_t y, int64_t mo, int64_t d, int h, int mi, int s, int ms) {
  return erpq_days_from_civil(y, mo, d) * 86400000 + (int64_t)h * 3600000 +
         (int64_t)mi * 60000 + (int64_t)s * 1000 + ms;
}

/* luxon plus({months, days}). */
static void cd_plus_cal(cdate *d, int months, int days) {
  cfields f;
  cd_fields(d, &f);
  int32_t o = cd_offset(d);
  int64_t month = f.month + months;
  int64_t ny = f.year + erpq_floor_div(month - 1, 12);
  int nm = (int)erpq_floor_mod(month - 1, 12) + 1;
  int dim = erpq_days_in_month(ny, nm);
  int64_t day = (f.day < dim ? f.day : dim) + days;
  d->ts = erpq_tz_local_to_utc(d->tz, local_ms(f.year, month, day, f.hour, f.minute, f.second, f.ms),
                               o, NULL);
}

/* luxon startOf(unit). */
static void cd_start_of(cdate *d, int unit) {
  cfields f;
  cd_fields(d, &f);
  switch (unit) {
    case U_MONTH: f.day = 1; /* fall through */
    case U_DAY: f.hour = 0; /* fall through */
    case U_HOUR: f.minute = 0; /* fall through */
    case U_MINUTE: f.second = 0; /* fall through */
    default: f.ms = 0;
  }
  d->ts = erpq_tz_local_to_utc(d->tz, local_ms(f.year, f.month, f.day, f.hour, f.minute, f.second, f.ms),
                               cd_offset(d), NULL);
}

static void cd_add_month(cdate *d) {
  cd_plus_cal(d, 1, 0);
  cd_start_of(d, U_MONTH);
}

static void cd_add_day(cdate *d) {
  cd_plus_cal(d, 0, 1);
  cd_start_of(d, U_DAY);
}

static void cd_add_hour(cdate *d) {
  int64_t prev = d->ts;
  d->ts += 3600000;
  cd_start_of(d, U_HOUR);
  if (d->ts <= prev) d->ts += 3600000;
}

static void cd_add_minute(cdate *d) {
  int64_t prev = d->ts;
  d->ts += 60000;
  cd_start_of(d, U_MINUTE);
  if (d->ts < prev) d->ts += 3600000;
}

static void cd_add_second(cdate *d) {
  int64_t prev = d->ts;
  d->ts += 1000;
  cd_start_of(d, U_SECOND);
  if (d->ts < prev) d->ts += 3600000;
}

static void cd_subtract_hour(cdate *d) {
  int64_t prev = d->ts;
  d->ts -= 3600000;
  /* endOf('hour') = plus 1 hour, startOf('hour'), minus 1 ms. */
  d->ts += 3600000;
  cd_start_of(d, U_HOUR);
  d->ts -= 1;
  cd_start_of(d, U_SECOND);
  if (d->ts >= prev) d->ts -= 3600000;
}

static int cd_is_last_day_of_month(const cdate *d) {
  cfields f, g;
  cd_fields(d, &f);
  cdate n = *d;
  cd_plus_cal(&n, 0, 1);
  cd_start_of(&n, U_DAY);
  cd_fields(&n, &g);
  return f.month != g.month;
}

static int cd_is_last_weekday_of_month(const cdate *d) {
  cfields f, g;
  cd_fields(d, &f);
  cdate n = *d;
  cd_plus_cal(&n, 0, 7);
  cd_start_of(&n, U_DAY);
  cd_fields(&n, &g);
  return f.month != g.month;
}

static size_t field_len(const cron_field *f) { return f->nnums + f->nstrs; }

static int field_match(const cron_field *f, int v) {
  for (size_t i = 0; i < f->nnums; i++) {
    if (f->nums[i] >= v) return f->nums[i] == v;
  }
  return 0;
}

typedef struct {
  const erpq_cron *cr;
  int dst_start, dst_end; /* -1 stands for cron-parser's null/undefined. */
} search;

/* cron-parser's _applyTimezoneShift() for the forward direction. */
static void shift(search *s, cdate *d, int unit) {
  if (unit == U_MONTH || unit == U_DAY) {
    int64_t prev = d->ts;
    if (unit == U_MONTH) {
      cd_add_month(d);
    } else {
      cd_add_day(d);
    }
    if (d->ts == prev) {
      cfields f;
      cd_fields(d, &f);
      if (f.minute == 0 && f.second == 0) {
        cd_add_hour(d);
      } else if (f.minute == 59 && f.second == 59) {
        cd_subtract_hour(d);
      }
    }
    return;
  }
  cfields f;
  cd_fields(d, &f);
  int prev_hour = f.hour;
  if (unit == U_HOUR) {
    cd_add_hour(d);
  } else if (unit == U_MINUTE) {
    cd_add_minute(d);
  } else {
    cd_add_second(d);
  }
  cd_fields(d, &f);
  int diff = f.hour - prev_hour;
  int restricted = field_len(&s->cr->f[F_HOUR]) != 24;
  if (diff == 2) {
    if (restricted) s->dst_start = f.hour;
  } else if (diff == 0 && f.minute == 0 && f.second == 0) {
    if (restricted) s->dst_end = f.hour;
  }
}

static int nth_day_match(int date, int nth) {
  if (nth < 6) {
    if (date < 8 && nth == 1) return 1;
    int offset = date % 7 ? 1 : 0;
    int adjusted = date - date % 7;
    return adjusted / 7 + offset == nth;
  }
  return 0;
}

/* isLastWeekdayOfMonthMatch(): 1, 0, or -EINVAL where cron-parser throws. */
static int last_weekday_match(const cron_field *dow, const cdate *d, int wday) {
  for (size_t i = 0; i < dow->nstrs; i++) {
    const char *s = dow->strs[i];
    if (!isdigit((unsigned char)s[0])) return -EINVAL;
    int weekday = (s[0] - '0') % 7;
    if (wday == weekday && cd_is_last_weekday_of_month(d)) return 1;
  }
  return 0;
}

int erpq_cron_next_opts(const erpq_cron *cr, const erpq_cron_opts *opts, int64_t after_ms,
                        int64_t *next_ms) {
  erpq_tz *local = NULL;
  const erpq_tz *tz = opts ? opts->tz : NULL;
  if (!tz) {
    if (erpq_tz_load(NULL, &local, NULL, 0) < 0) local = NULL;
    tz = local ? local : erpq_tz_utc();
  }
  int nth = cr->nth_day_of_week ? cr->nth_day_of_week : opts ? opts->nth_day_of_week : 0;
  const cron_field *dom = &cr->f[F_DOM], *dow = &cr->f[F_DOW];
  search s = {cr, -1, -1};
  cdate d = {after_ms, tz};
  int64_t start = after_ms;
  int steps = 0, rc = 0;
  while (steps < LOOP_LIMIT) {
    steps++;
    if (opts && opts->has_end && opts->end_ms - d.ts < 0) {
      rc = -ENOENT;
      goto out;
    }
    cfields f;
    cd_fields(&d, &f);
    int dom_match = field_match(dom, f.day);
    if (dom->nstrs) dom_match = dom_match || cd_is_last_day_of_month(&d);
    int dow_match = field_match(dow, f.wday);
    if (dow->nstrs && !dow_match) {
      int r = last_weekday_match(dow, &d, f.wday);
      if (r < 0) {
        rc = r;
        goto out;
      }
      dow_match = r;
    }
    int dom_wild = field_len(dom) >= (size_t)days_in_month_table[f.month - 1];
    int dow_wild = field_len(dow) == 8;
    int hour = f.hour;
    if (!dom_match && (!dow_match || dow_wild)) {
      shift(&s, &d, U_DAY);
      continue;
    }
    if (!dom_wild && dow_wild && !dom_match) {
      shift(&s, &d, U_DAY);
      continue;
    }
    if (dom_wild && !dow_wild && !dow_match) {
      shift(&s, &d, U_DAY);
      continue;
    }
    if (nth > 0 && !nth_day_match(f.day, nth)) {
      shift(&s, &d, U_DAY);
      continue;
    }
    if (!field_match(&cr->f[F_MONTH], f.month)) {
      shift(&s, &d, U_MONTH);
      continue;
    }
    if (!field_match(&cr->f[F_HOUR], hour)) {
      if (s.dst_start != hour) {
        s.dst_start = -1;
        shift(&s, &d, U_HOUR);
        continue;
      } else if (!field_match(&cr->f[F_HOUR], hour - 1)) {
        cd_add_hour(&d);
        continue;
      }
    } else if (s.dst_end == hour) {
      s.dst_end = -1;
      shift(&s, &d, U_HOUR);
      continue;
    }
    if (!field_match(&cr->f[F_MINUTE], f.minute)) {
      shift(&s, &d, U_MINUTE);
      continue;
    }
    if (!field_match(&cr->f[F_SECOND], f.second)) {
      shift(&s, &d, U_SECOND);
      continue;
    }
    if (start == d.ts) {
      shift(&s, &d, U_SECOND);
      continue;
    }
    break;
  }
  if (steps >= LOOP_LIMIT) {
    rc = -ENOENT;
  } else {
    *next_ms = d.ts;
  }
out:
  erpq_tz_free(local);
  return rc;
}

int erpq_cron_next(const erpq_cron *cr, const erpq_tz *tz, int64_t after_ms, int64_t *next_ms) {
  erpq_cron_opts o = {.tz = tz};
  return erpq_cron_next_opts(cr, &o, after_ms, next_ms);
}
