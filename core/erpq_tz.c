#include "erpq_tz.h"

#include "erpq_err.h"
#include "erpq_tz_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* One transition rule of a POSIX TZ string: the day it falls on (a Julian
 * day 1..365 without leap days, a zero-based day of the year, or the d-th
 * weekday of week w of month m) and the local time of day in seconds. */
typedef struct {
  char kind; /* 'J', 'N' or 'M'. */
  int n, m, w, d;
  int32_t time;
} tz_rule_date;

/* A parsed POSIX TZ string.  Offsets are seconds east of UTC. */
typedef struct {
  int32_t std_off, dst_off;
  int has_dst;
  tz_rule_date start, end;
} tz_posix;

struct erpq_tz {
  char *name;
  int refs;
  int is_static;
  size_t ntrans;
  int64_t *trans;  /* Transition instants, ascending. */
  uint8_t *idx;    /* Local time type of each transition. */
  size_t ntypes;
  int32_t *offs;   /* UTC offset of each local time type. */
  int has_rule;    /* Whether rule governs instants after the last transition. */
  tz_posix rule;
  erpq_tz *owner;  /* An alias: trans, idx and offs belong to owner (a reference). */
};

static int32_t utc_off0 = 0;
static erpq_tz utc_zone = {.name = (char *)"UTC", .refs = 1, .is_static = 1,
                           .ntypes = 1, .offs = &utc_off0};

/* ---- Calendar helpers ---------------------------------------------------- */

int64_t erpq_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

int64_t erpq_floor_mod(int64_t a, int64_t b) { return a - erpq_floor_div(a, b) * b; }

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int erpq_days_in_month(int64_t year, int month) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12) return 0;
  return month == 2 && is_leap(year) ? 29 : dim[month - 1];
}

int64_t erpq_days_from_civil(int64_t year, int64_t month, int64_t day) {
  /* Normalise the month first, then count from the first of that month. */
  year += erpq_floor_div(month - 1, 12);
  month = erpq_floor_mod(month - 1, 12) + 1;
  int64_t y = month <= 2 ? year - 1 : year;
  int64_t era = erpq_floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t mp = (month + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 + (day - 1);
}

void erpq_civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
  int64_t z = days + 719468;
  int64_t era = erpq_floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int d = (int)(doy - (153 * mp + 2) / 5 + 1);
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (m <= 2);
  *month = m;
  *day = d;
}

/* ---- POSIX TZ strings ---------------------------------------------------- */

/* Skips a zone abbreviation: "<...>" or a run of letters. */
static const char *posix_name(const char *s) {
  if (*s == '<') {
    const char *e = strchr(s, '>');
    if (!e || e == s + 1) return NULL;
    return e + 1;
  }
  const char *p = s;
  while (isalpha((unsigned char)*p)) p++;
  return p - s >= 3 ? p : NULL;
}

/* Parses [+-]h[h[h]][:mm[:ss]] into seconds; max_hours bounds the hours. */
static const char *posix_hms(const char *s, int max_hours, int32_t *out) {
  int sign = 1;
  if (*s == '+' || *s == '-') {
    if (*s == '-') sign = -1;
    s++;
  }
  if (!isdigit((unsigned char)*s)) return NULL;
  int h = 0, n = 0;
  while (isdigit((unsigned char)*s) && n < 3) {
    h = h * 10 + (*s++ - '0');
    n++;
  }
  if (h > max_hours) return NULL;
  int mm = 0, ss = 0;
  if (*s == ':') {
    s++;
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1])) return NULL;
    mm = (s[0] - '0') * 10 + (s[1] - '0');
    s += 2;
    if (*s == ':') {
      s++;
      if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1])) return NULL;
      ss = (s[0] - '0') * 10 + (s[1] - '0');
      s += 2;
    }
  }
  if (mm > 59 || ss > 59) return NULL;
  *out = sign * (h * 3600 + mm * 60 + ss);
  return s;
}

static const char *posix_num(const char *s, int *out) {
  if (!isdigit((unsigned char)*s)) return NULL;
  long v = 0;
  while (isdigit((unsigned char)*s)) {
    v = v * 10 + (*s++ - '0');
    if (v > 100000) return NULL;
  }
  *out = (int)v;
  return s;
}

static const char *posix_date(const char *s, tz_rule_date *r) {
  memset(r, 0, sizeof *r);
  if (*s == 'J') {
    r->kind = 'J';
    if (!(s = posix_num(s + 1, &r->n)) || r->n < 1 || r->n > 365) return NULL;
  } else if (*s == 'M') {
    r->kind = 'M';
    if (!(s = posix_num(s + 1, &r->m)) || *s != '.') return NULL;
    if (!(s = posix_num(s + 1, &r->w)) || *s != '.') return NULL;
    if (!(s = posix_num(s + 1, &r->d))) return NULL;
    if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d > 6) return NULL;
  } else {
    r->kind = 'N';
    if (!(s = posix_num(s, &r->n)) || r->n > 365) return NULL;
  }
  r->time = 7200;
  if (*s == '/') {
    /* RFC 8536 allows -167..167 hours here. */
    if (!(s = posix_hms(s + 1, 167, &r->time))) return NULL;
  }
  return s;
}

static int posix_parse(const char *s, tz_posix *p) {
  memset(p, 0, sizeof *p);
  int32_t v;
  if (!(s = posix_name(s)) || !(s = posix_hms(s, 24, &v))) return -EINVAL;
  p->std_off = -v;
  if (!*s) return 0;
  if (!(s = posix_name(s))) return -EINVAL;
  p->has_dst = 1;
  p->dst_off = p->std_off + 3600;
  if (*s && *s != ',') {
    if (!(s = posix_hms(s, 24, &v))) return -EINVAL;
    p->dst_off = -v;
  }
  if (!*s) {
    /* No rule: use the US rule, as the C library does by default. */
    p->start = (tz_rule_date){.kind = 'M', .m = 3, .w = 2, .d = 0, .time = 7200};
    p->end = (tz_rule_date){.kind = 'M', .m = 11, .w = 1, .d = 0, .time = 7200};
    return 0;
  }
  if (*s != ',' || !(s = posix_date(s + 1, &p->start))) return -EINVAL;
  if (*s != ',' || !(s = posix_date(s + 1, &p->end))) return -EINVAL;
  return *s ? -EINVAL : 0;
}

/* Local (wall clock as UTC) seconds at which a rule date falls in a year. */
static int64_t rule_local_seconds(const tz_rule_date *r, int64_t year) {
  int64_t jan1 = erpq_days_from_civil(year, 1, 1), days;
  if (r->kind == 'J') {
    days = jan1 + r->n - 1 + (is_leap(year) && r->n >= 60 ? 1 : 0);
  } else if (r->kind == 'N') {
    days = jan1 + r->n;
  } else {
    int64_t first = erpq_days_from_civil(year, r->m, 1);
    int wd = (int)erpq_floor_mod(first + 4, 7); /* 1970-01-01 was a Thursday. */
    int64_t day = (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
    int dim = erpq_days_in_month(year, r->m);
    while (day >= dim) day -= 7;
    days = first + day;
  }
  return days * 86400 + r->time;
}

static int32_t posix_offset(const tz_posix *p, int64_t t) {
  if (!p->has_dst) return p->std_off;
  int64_t y;
  int m, d;
  erpq_civil_from_days(erpq_floor_div(t + p->std_off, 86400), &y, &m, &d);
  int64_t s = rule_local_seconds(&p->start, y) - p->std_off;
  int64_t e = rule_local_seconds(&p->end, y) - p->dst_off;
  int dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
  return dst ? p->dst_off : p->std_off;
}

/* ---- Zone objects -------------------------------------------------------- */

static erpq_tz *tz_new(const char *name) {
  erpq_tz *tz = calloc(1, sizeof *tz);
  if (!tz) return NULL;
  tz->name = strdup(name ? name : "");
  if (!tz->name) {
    free(tz);
    return NULL;
  }
  tz->refs = 1;
  return tz;
}

static void tz_destroy(erpq_tz *tz) {
  free(tz->name);
  if (tz->owner) {
    erpq_tz_free(tz->owner);
  } else {
    free(tz->trans);
    free(tz->idx);
    free(tz->offs);
  }
  free(tz);
}

erpq_tz *erpq_tz_alias(erpq_tz *src, const char *name) {
  erpq_tz *tz = tz_new(name);
  if (!tz) return NULL;
  erpq_tz *owner = src->owner ? src->owner : src;
  tz->ntrans = owner->ntrans;
  tz->trans = owner->trans;
  tz->idx = owner->idx;
  tz->ntypes = owner->ntypes;
  tz->offs = owner->offs;
  tz->has_rule = owner->has_rule;
  tz->rule = owner->rule;
  tz->owner = erpq_tz_ref(owner);
  return tz;
}

size_t erpq_tz_table_bytes(const erpq_tz *tz) {
  size_t n = sizeof *tz + strlen(tz->name) + 1;
  if (!tz->owner && !tz->is_static)
    n += tz->ntrans * (sizeof *tz->trans + sizeof *tz->idx) + tz->ntypes * sizeof *tz->offs;
  return n;
}

erpq_tz *erpq_tz_ref(erpq_tz *tz) {
  if (tz && !tz->is_static) __atomic_add_fetch(&tz->refs, 1, __ATOMIC_RELAXED);
  return tz;
}

void erpq_tz_free(erpq_tz *tz) {
  if (!tz || tz->is_static) return;
  if (__atomic_sub_fetch(&tz->refs, 1, __ATOMIC_ACQ_REL) == 0) tz_destroy(tz);
}

const erpq_tz *erpq_tz_utc(void) { return &utc_zone; }

const char *erpq_tz_name(const erpq_tz *tz) { return tz ? tz->name : "UTC"; }

int erpq_tz_offset_at(const erpq_tz *tz, int64_t t) {
  if (!tz) return 0;
  size_t n = tz->ntrans;
  if (n == 0) return tz->has_rule ? posix_offset(&tz->rule, t) : tz->offs[0];
  if (t < tz->trans[0]) return tz->offs[0];
  if (t >= tz->trans[n - 1]) {
    return tz->has_rule ? posix_offset(&tz->rule, t) : tz->offs[tz->idx[n - 1]];
  }
  size_t lo = 0, hi = n - 1; /* trans[lo] <= t < trans[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->trans[mid] <= t) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return tz->offs[tz->idx[lo]];
}

int erpq_tz_offset_at_ms(const erpq_tz *tz, int64_t utc_ms) {
  return erpq_tz_offset_at(tz, erpq_floor_div(utc_ms, 1000));
}

int64_t erpq_tz_local_to_utc(const erpq_tz *tz, int64_t local_ms, int32_t o,
                             int32_t *offset_out) {
  int64_t guess = local_ms - (int64_t)o * 1000;
  int32_t o2 = erpq_tz_offset_at_ms(tz, guess);
  if (o == o2) {
    if (offset_out) *offset_out = o;
    return guess;
  }
  guess -= (int64_t)(o2 - o) * 1000;
  int32_t o3 = erpq_tz_offset_at_ms(tz, guess);
  if (o2 == o3) {
    if (offset_out) *offset_out = o2;
    return guess;
  }
  /* A local time inside a gap: keep the wall clock, take the earlier
   * offset, which lands after the gap. */
  if (offset_out) *offset_out = o2 > o3 ? o2 : o3;
  return local_ms - (int64_t)(o2 < o3 ? o2 : o3) * 1000;
}

int erpq_tz_fixed(int32_t offset, erpq_tz **out, char *err, size_t errlen) {
  if (offset < -86400 || offset > 86400) {
    return erpq_fail(err, errlen, ERPQ_E_ARG, "fixed offset %d s is out of range",
                     (int)offset);
  }
  char name[32];
  int a = offset < 0 ? -offset : offset;
  if (a % 60) {
    snprintf(name, sizeof name, "UTC%c%d:%02d:%02d", offset < 0 ? '-' : '+', a / 3600,
             a / 60 % 60, a % 60);
  } else if (a % 3600) {
    snprintf(name, sizeof name, "UTC%c%d:%02d", offset < 0 ? '-' : '+', a / 3600,
             a / 60 % 60);
  } else if (a) {
    snprintf(name, sizeof name, "UTC%c%d", offset < 0 ? '-' : '+', a / 3600);
  } else {
    snprintf(name, sizeof name, "UTC");
  }
  erpq_tz *tz = tz_new(name);
  if (!tz || !(tz->offs = malloc(sizeof *tz->offs))) {
    if (tz) tz_destroy(tz);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  tz->ntypes = 1;
  tz->offs[0] = offset;
  *out = tz;
  return 0;
}

int erpq_tz_from_posix(const char *rule, erpq_tz **out, char *err, size_t errlen) {
  tz_posix p;
  if (!rule || posix_parse(rule, &p) < 0) {
    return erpq_fail(err, errlen, -EINVAL, "invalid POSIX TZ string \"%s\"",
                     rule ? rule : "(null)");
  }
  erpq_tz *tz = tz_new(rule);
  if (!tz || !(tz->offs = malloc(sizeof *tz->offs))) {
    if (tz) tz_destroy(tz);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  tz->ntypes = 1;
  tz->offs[0] = p.std_off;
  tz->has_rule = 1;
  tz->rule = p;
  *out = tz;
  return 0;
}

/* ---- TZif files ---------------------------------------------------------- */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct {
  uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_counts;

static int tzif_header(const unsigned char *p, size_t len, char *version,
                       tzif_counts *c) {
  if (len < 44 || memcmp(p, "TZif", 4) != 0) return -EINVAL;
  *version = (char)p[4];
  c->isutcnt = be32(p + 20);
  c->isstdcnt = be32(p + 24);
  c->leapcnt = be32(p + 28);
  c->timecnt = be32(p + 32);
  c->typecnt = be32(p + 36);
  c->charcnt = be32(p + 40);
  if (c->typecnt == 0 || c->typecnt > 256 || c->timecnt > 1000000 ||
      c->leapcnt > 100000 || c->charcnt > 100000 ||
      (c->isutcnt && c->isutcnt != c->typecnt) ||
      (c->isstdcnt && c->isstdcnt != c->typecnt)) {
    return -EINVAL;
  }
  return 0;
}

static size_t tzif_block_size(const tzif_counts *c, int tsize) {
  return (size_t)c->timecnt * (size_t)tsize + c->timecnt + (size_t)c->typecnt * 6 +
         c->charcnt + (size_t)c->leapcnt * (size_t)(tsize + 4) + c->isstdcnt +
         c->isutcnt;
}

/* Fills tz from TZif bytes.  Returns 0 or -EINVAL / -ENOMEM. */
static int tzif_parse(const unsigned char *buf, size_t len, erpq_tz *tz) {
  char version;
  tzif_counts c;
  if (tzif_header(buf, len, &version, &c) < 0) return -EINVAL;
  size_t v1 = tzif_block_size(&c, 4);
  if (44 + v1 > len) return -EINVAL;
  const unsigned char *p = buf + 44;
  int tsize = 4;
  const unsigned char *end = buf + len;
  if (version >= '2') {
    p = buf + 44 + v1;
    if (tzif_header(p, (size_t)(end - p), &version, &c) < 0) return -EINVAL;
    p += 44;
    tsize = 8;
    if (tzif_block_size(&c, 8) > (size_t)(end - p)) return -EINVAL;
  }
  tz->ntrans = c.timecnt;
  tz->ntypes = c.typecnt;
  tz->trans = calloc(c.timecnt ? c.timecnt : 1, sizeof *tz->trans);
  tz->idx = calloc(c.timecnt ? c.timecnt : 1, 1);
  tz->offs = calloc(c.typecnt, sizeof *tz->offs);
  if (!tz->trans || !tz->idx || !tz->offs) return -ENOMEM;
  for (uint32_t i = 0; i < c.timecnt; i++) {
    tz->trans[i] = tsize == 8 ? be64(p + 8 * (size_t)i) : (int32_t)be32(p + 4 * (size_t)i);
    if (i && tz->trans[i] <= tz->trans[i - 1]) return -EINVAL;
  }
  p += (size_t)c.timecnt * (size_t)tsize;
  for (uint32_t i = 0; i < c.timecnt; i++) {
    tz->idx[i] = p[i];
    if (p[i] >= c.typecnt) return -EINVAL;
  }
  p += c.timecnt;
  for (uint32_t i = 0; i < c.typecnt; i++) {
    int32_t off = (int32_t)be32(p + 6 * (size_t)i);
    if (off < -93600 || off > 93600) return -EINVAL;
    tz->offs[i] = off;
  }
  p += (size_t)c.typecnt * 6;
  p += c.charcnt + (size_t)c.leapcnt * (size_t)(tsize + 4) + c.isstdcnt + c.isutcnt;
  if (tsize == 8 && p < end && *p == '\n') {
    const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
    if (nl && nl > p + 1 && nl - p < 256) {
      char rule[256];
      memcpy(rule, p + 1, (size_t)(nl - p - 1));
      rule[nl - p - 1] = '\0';
      if (posix_parse(rule, &tz->rule) < 0) return -EINVAL;
      tz->has_rule = 1;
    }
  }
  return 0;
}

static int read_file(const char *path, unsigned char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return -EISDIR;
  }
  if (st.st_size > 4 * 1024 * 1024) {
    close(fd);
    return -EFBIG;
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  unsigned char *b = malloc(cap);
  if (!b) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = -errno;
      free(b);
      close(fd);
      return e;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == cap) break;
  }
  close(fd);
  *out = b;
  *len = n;
  return 0;
}

int erpq_tz_load_file(const char *path, const char *name, erpq_tz **out, char *err,
                      size_t errlen) {
  unsigned char *buf = NULL;
  size_t len = 0;
  int rc = read_file(path, &buf, &len);
  if (rc < 0) {
    return erpq_fail(err, errlen, rc, "cannot read time zone file %s: %s", path,
                     strerror(-rc));
  }
  erpq_tz *tz = tz_new(name ? name : path);
  if (!tz) {
    free(buf);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  rc = tzif_parse(buf, len, tz);
  free(buf);
  if (rc < 0) {
    tz_destroy(tz);
    return erpq_fail(err, errlen, rc, "%s is not a valid TZif time zone file", path);
  }
  *out = tz;
  return 0;
}
