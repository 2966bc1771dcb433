/* erpq_reports_req.c - the reports family's job data: parsing and checks,
 * object keys, dates (see erpq_reports.h). Messages name fields, never
 * their values. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "erpq_err.h"
#include "reports/erpq_reports.h"

#define MAX_OVERDUE_DAYS 3650

const char *rep_kind_name(rep_kind k) {
  switch (k) {
  case RK_COLLECTION: return "fee-collection";
  case RK_DEFAULTERS: return "defaulters";
  default: return "fee-statement";
  }
}

const char *rep_ext(erpq_rformat f) {
  return f == ERPQ_RFORMAT_CSV ? "csv" : f == ERPQ_RFORMAT_XLSX ? "xlsx" : "pdf";
}

const char *rep_content_type(erpq_rformat f) {
  switch (f) {
  case ERPQ_RFORMAT_CSV: return "text/csv; charset=utf-8";
  case ERPQ_RFORMAT_XLSX:
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
  default: return "application/pdf";
  }
}

/* ---- dates ----------------------------------------------------------------- */

int64_t rep_days(rep_date d) { return erpq_days_from_civil(d.y, d.m, d.d); }

rep_date rep_date_of(int64_t days) {
  int64_t y;
  int m, d;
  erpq_civil_from_days(days, &y, &m, &d);
  return (rep_date){(int)y, m, d};
}

void rep_date_iso(rep_date d, char out[11]) {
  snprintf(out, 11, "%04u-%02u-%02u", (unsigned)d.y % 10000u, (unsigned)d.m % 100u,
           (unsigned)d.d % 100u);
}

void rep_date_text(rep_date d, char out[16]) {
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  snprintf(out, 16, "%u %s %04u", (unsigned)d.d % 100u, mon[(unsigned)(d.m - 1) % 12u],
           (unsigned)d.y % 10000u);
}

void rep_local_midnight_utc(const erpq_tz *tz, rep_date d, char out[20]) {
  int64_t local_ms = rep_days(d) * 86400000;
  int64_t guess = erpq_tz_offset_at(tz, rep_days(d) * 86400);
  int64_t utc = erpq_floor_div(erpq_tz_local_to_utc(tz, local_ms, (int32_t)guess, NULL), 1000);
  rep_date u = rep_date_of(erpq_floor_div(utc, 86400));
  int64_t sec = erpq_floor_mod(utc, 86400);
  snprintf(out, 20, "%04u-%02u-%02u %02u:%02u:%02u", (unsigned)u.y % 10000u, (unsigned)u.m % 100u,
           (unsigned)u.d % 100u, (unsigned)(sec / 3600) % 100u, (unsigned)(sec / 60 % 60) % 100u,
           (unsigned)(sec % 60) % 100u);
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int rep_parse_date(const char *s, unsigned long len, rep_date *d) {
  if (!s || len != 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &d->y) ||
      digits(s + 5, 2, &d->m) || digits(s + 8, 2, &d->d) || d->y < 1 || d->m < 1 || d->m > 12 ||
      d->d < 1 || d->d > erpq_days_in_month(d->y, d->m))
    return -EINVAL;
  return 0;
}

int rep_parse_datetime(const char *s, unsigned long len, int64_t *epoch) {
  rep_date d;
  int hh, mi, ss;
  /* DATETIME may carry fractional seconds ("...:05.123"): ignored. */
  if (!s || len < 19 || rep_parse_date(s, 10, &d) || s[10] != ' ' || s[13] != ':' || s[16] != ':' ||
      digits(s + 11, 2, &hh) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &ss) || hh > 23 ||
      mi > 59 || ss > 59)
    return -EINVAL;
  *epoch = rep_days(d) * 86400 + hh * 3600 + mi * 60 + ss;
  return 0;
}

/* ---- names ----------------------------------------------------------------- */

static const char *const METHODS[][2] = {{"cash", "Cash"},     {"card", "Card"},
                                         {"upi", "UPI"},       {"bank_transfer", "Bank transfer"},
                                         {"cheque", "Cheque"}, {"online", "Online"}};

int rep_method_index(const char *method, unsigned long len) {
  for (size_t i = 0; method && i < sizeof METHODS / sizeof METHODS[0]; i++)
    if (strlen(METHODS[i][0]) == len && !memcmp(METHODS[i][0], method, len))
      return (int)i;
  return -1;
}

const char *rep_method_name(int i) { return i >= 0 && i < REP_METHODS ? METHODS[i][0] : NULL; }

const char *rep_method_label(const char *method, unsigned long len) {
  int i = rep_method_index(method, len);
  return i < 0 ? NULL : METHODS[i][1];
}

void rep_safe_name(const char *s, char *out, size_t outlen) {
  size_t o = 0;
  for (; s && *s && o + 1 < outlen; s++) {
    char ch = *s;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || (ch == '.' && o > 0);
    out[o++] = ok ? ch : '_';
  }
  if (outlen)
    out[o] = '\0';
}

int rep_object_key(const rep_req *q, const char *prefix, const char *queue, const char *job_id,
                   char *out, size_t outlen, char *err, size_t errlen) {
  /* The job id, escaped: [A-Za-z0-9_-] and a '.' that is not first stay,
   * every other byte is ~XX, so two ids never share a key. */
  char id[1100];
  size_t o = 0;
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)job_id; *p; p++) {
    int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-' || *p == '_' || (*p == '.' && o > 0);
    if (o + 4 >= sizeof id)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "the job id is too long for a storage key");
    if (ok) {
      id[o++] = (char)*p;
    } else {
      id[o++] = '~';
      id[o++] = hex[*p >> 4];
      id[o++] = hex[*p & 15];
    }
  }
  id[o] = '\0';
  if (!o)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "the job has no id");
  rep_date first = q->kind == RK_DEFAULTERS ? q->as_of : q->from;
  int other = queue && strcmp(queue, "reports");
  int n = snprintf(out, outlen, "%s/%lld/%04u-%02u/%s%s%s-%s.%s", prefix, (long long)q->school,
                   (unsigned)first.y % 10000u, (unsigned)first.m % 100u, other ? queue : "",
                   other ? "/" : "", id, rep_kind_name(q->kind), rep_ext(q->format));
  if (n < 0 || (size_t)n >= outlen || n > 1024)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "the job id is too long: the storage key would pass 1024 bytes");
  return 0;
}

/* ---- parsing --------------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *fmt, const char *what) {
  return erpq_fail(err, errlen, ERPQ_E_ARG, fmt, what);
}

static int get_id(const json_t *data, const char *name, int required, int64_t *out, char *err,
                  size_t errlen) {
  const json_t *v = json_object_get(data, name);
  *out = 0;
  if (!v) {
    if (required)
      return bad(err, errlen, "data.%s is required", name);
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 1)
    return bad(err, errlen, "data.%s must be a positive integer id", name);
  *out = json_integer_value(v);
  return 0;
}

static int get_date(const json_t *data, const char *name, rep_date *out, char *err, size_t errlen) {
  const json_t *v = json_object_get(data, name);
  if (!v)
    return bad(err, errlen, "data.%s is required", name);
  const char *s = json_string_value(v);
  if (!s || rep_parse_date(s, strlen(s), out) || out->y < 1900)
    return bad(err, errlen, "data.%s must be a date YYYY-MM-DD (year 1900 or later)", name);
  return 0;
}

static int valid_locale(const char *s) {
  size_t n = strlen(s);
  if (n != 2 && n != 5)
    return 0;
  if (s[0] < 'a' || s[0] > 'z' || s[1] < 'a' || s[1] > 'z')
    return 0;
  return n == 2 || (s[2] == '-' && s[3] >= 'A' && s[3] <= 'Z' && s[4] >= 'A' && s[4] <= 'Z');
}

static int get_locale(const json_t *obj, const char *field, char out[8], char *err, size_t errlen) {
  const json_t *v = json_object_get(obj, "locale");
  out[0] = '\0';
  if (!v)
    return 0;
  const char *s = json_string_value(v);
  if (!s || !valid_locale(s))
    return bad(err, errlen, "%s must be a language tag such as en or en-IN", field);
  snprintf(out, 8, "%s", s);
  return 0;
}

/* A plausible address (the notifications family checks it properly): one
 * '@' with text on both sides, no spaces or control characters. */
static int plausible_email(const char *s) {
  size_t n = strlen(s);
  const char *at = strchr(s, '@');
  if (n < 3 || n > 254 || !at || at == s || !at[1] || strchr(at + 1, '@'))
    return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == 0x7f)
      return 0;
  return 1;
}

static int parse_notify(const json_t *n, rep_req *q, char *err, size_t errlen) {
  if (!json_is_object(n))
    return bad(err, errlen, "data.%s must be an object {email, name?, locale?}", "notify");
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)n, key, v) {
    if (strcmp(key, "email") && strcmp(key, "name") && strcmp(key, "locale"))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "data.notify has an unknown field '%.40s'", key);
  }
  const char *email = json_string_value(json_object_get(n, "email"));
  if (!email || !plausible_email(email))
    return bad(err, errlen, "data.%s must be an e-mail address", "notify.email");
  snprintf(q->notify_email, sizeof q->notify_email, "%s", email);
  v = json_object_get(n, "name");
  if (v) {
    const char *name = json_string_value(v);
    if (!name || !*name || strlen(name) > 200)
      return bad(err, errlen, "data.%s must be text of 1 to 200 bytes", "notify.name");
    snprintf(q->notify_name, sizeof q->notify_name, "%s", name);
  }
  int rc = get_locale(n, "data.notify.locale", q->notify_locale, err, errlen);
  if (rc)
    return rc;
  q->notify = 1;
  return 0;
}

int rep_parse(rep_kind kind, const json_t *data, rep_req *q, char *err, size_t errlen) {
  memset(q, 0, sizeof *q);
  q->kind = kind;
  if (!json_is_object(data))
    return bad(err, errlen, "the job data must be a JSON object%s", "");
  static const char *const allowed[3][9] = {
      {"schoolId", "from", "to", "classId", "method", "format", "locale", "notify", NULL},
      {"schoolId", "asOf", "classId", "minOverdueDays", "format", "locale", "notify", NULL, NULL},
      {"schoolId", "studentId", "from", "to", "format", "locale", "notify", NULL, NULL}};
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)data, key, v) {
    int ok = 0;
    for (int i = 0; allowed[kind][i] && !ok; i++)
      ok = !strcmp(allowed[kind][i], key);
    if (!ok)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "data has an unknown field '%.40s'", key);
  }
  int rc = get_id(data, "schoolId", 1, &q->school, err, errlen);
  if (!rc && kind == RK_STATEMENT)
    rc = get_id(data, "studentId", 1, &q->student, err, errlen);
  if (!rc && kind != RK_STATEMENT)
    rc = get_id(data, "classId", 0, &q->klass, err, errlen);
  if (rc)
    return rc;
  if (kind == RK_DEFAULTERS) {
    if ((rc = get_date(data, "asOf", &q->as_of, err, errlen)))
      return rc;
    v = json_object_get(data, "minOverdueDays");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
              json_integer_value(v) > MAX_OVERDUE_DAYS))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "data.minOverdueDays must be 0 to %d",
                       MAX_OVERDUE_DAYS);
    q->min_overdue_days = v ? json_integer_value(v) : 0;
    q->cutoff = rep_date_of(rep_days(q->as_of) - q->min_overdue_days);
  } else {
    if ((rc = get_date(data, "from", &q->from, err, errlen)) ||
        (rc = get_date(data, "to", &q->to, err, errlen)))
      return rc;
    if (rep_days(q->from) > rep_days(q->to))
      return bad(err, errlen, "data.from must not be after data.to%s", "");
  }
  if (kind == RK_COLLECTION && (v = json_object_get(data, "method"))) {
    const char *m = json_string_value(v);
    if (!m || !rep_method_label(m, strlen(m)))
      return bad(err, errlen, "data.method must be one of %s",
                 "cash, card, upi, bank_transfer, cheque, online");
    snprintf(q->method, sizeof q->method, "%s", m);
  }
  const json_t *fv = json_object_get(data, "format");
  const char *f = fv ? json_string_value(fv) : kind == RK_STATEMENT ? "pdf" : NULL;
  if (!f)
    return bad(err, errlen, "data.format is required (%s)",
               kind == RK_STATEMENT ? "pdf or xlsx" : "csv, xlsx or pdf");
  if (!strcmp(f, "xlsx"))
    q->format = ERPQ_RFORMAT_XLSX;
  else if (!strcmp(f, "pdf"))
    q->format = ERPQ_RFORMAT_PDF;
  else if (!strcmp(f, "csv") && kind != RK_STATEMENT)
    q->format = ERPQ_RFORMAT_CSV;
  else
    return bad(err, errlen, "data.format must be %s",
               kind == RK_STATEMENT ? "pdf or xlsx" : "csv, xlsx or pdf");
  if ((rc = get_locale(data, "data.locale", q->locale, err, errlen)))
    return rc;
  if ((v = json_object_get(data, "notify")) && (rc = parse_notify(v, q, err, errlen)))
    return rc;
  return 0;
}
