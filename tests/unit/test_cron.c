/*
 * Unit tests of erpq_tz and erpq_cron.  The cron results are checked against
 * tests/unit/cron_vectors.tsv, which scripts/gen-cron-vectors.js produces
 * from the real cron-parser 4.9 that bull uses; every mismatching vector is
 * reported on its own.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_cron.h"
#include "erpq_err.h"
#include "erpq_tz.h"

/* Milliseconds of a UTC date and time. */
static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s) {
  return (erpq_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

static erpq_tz *load(const char *name) {
  erpq_tz *tz = NULL;
  char err[256] = "";
  int rc = erpq_tz_load(name, &tz, err, sizeof err);
  cr_assert_eq(rc, 0, "erpq_tz_load(%s) failed: %d %s", name, rc, err);
  return tz;
}

static int offset_at(const char *name, int64_t ms) {
  erpq_tz *tz = load(name);
  int off = erpq_tz_offset_at_ms(tz, ms);
  erpq_tz_free(tz);
  return off;
}

/* ---- Zones ----------------------------------------------------------------- */

Test(tz, known_offsets) {
  cr_expect_eq(offset_at("UTC", utc_ms(2025, 7, 1, 0, 0, 0)), 0);
  cr_expect_eq(offset_at("Etc/UTC", utc_ms(2025, 7, 1, 0, 0, 0)), 0);
  cr_expect_eq(offset_at("America/New_York", utc_ms(2025, 1, 15, 12, 0, 0)), -18000);
  cr_expect_eq(offset_at("America/New_York", utc_ms(2025, 7, 15, 12, 0, 0)), -14400);
  cr_expect_eq(offset_at("Asia/Kolkata", utc_ms(2025, 7, 15, 12, 0, 0)), 19800);
  cr_expect_eq(offset_at("Asia/Kathmandu", utc_ms(2025, 7, 15, 12, 0, 0)), 20700);
  cr_expect_eq(offset_at("Europe/London", utc_ms(2025, 1, 15, 12, 0, 0)), 0);
  cr_expect_eq(offset_at("Europe/London", utc_ms(2025, 7, 15, 12, 0, 0)), 3600);
  /* Lord Howe Island moves its clocks by half an hour. */
  cr_expect_eq(offset_at("Australia/Lord_Howe", utc_ms(2025, 1, 15, 12, 0, 0)), 39600);
  cr_expect_eq(offset_at("Australia/Lord_Howe", utc_ms(2025, 7, 15, 12, 0, 0)), 37800);
  /* Far beyond the last transition of the file: the POSIX footer rules. */
  cr_expect_eq(offset_at("America/New_York", utc_ms(2100, 7, 1, 12, 0, 0)), -14400);
  cr_expect_eq(offset_at("America/New_York", utc_ms(2100, 12, 1, 12, 0, 0)), -18000);
  cr_expect_eq(offset_at("Australia/Lord_Howe", utc_ms(2090, 1, 1, 0, 0, 0)), 39600);
  /* Before the first transition (local mean time). */
  cr_expect_eq(offset_at("America/New_York", utc_ms(1850, 1, 1, 0, 0, 0)), -17762);
}

Test(tz, transition_instants) {
  /* 2025-03-09 02:00 EST becomes 03:00 EDT at 07:00 UTC. */
  int64_t t = utc_ms(2025, 3, 9, 7, 0, 0);
  cr_expect_eq(offset_at("America/New_York", t - 1), -18000);
  cr_expect_eq(offset_at("America/New_York", t), -14400);
  /* 2025-11-02 02:00 EDT becomes 01:00 EST at 06:00 UTC. */
  t = utc_ms(2025, 11, 2, 6, 0, 0);
  cr_expect_eq(offset_at("America/New_York", t - 1), -14400);
  cr_expect_eq(offset_at("America/New_York", t), -18000);
  /* Europe/London 2025-03-30 01:00 UTC. */
  t = utc_ms(2025, 3, 30, 1, 0, 0);
  cr_expect_eq(offset_at("Europe/London", t - 1000), 0);
  cr_expect_eq(offset_at("Europe/London", t), 3600);
}

Test(tz, fixed_and_aliases) {
  cr_expect_eq(offset_at("utc", 0), 0);
  cr_expect_eq(offset_at("GMT", 0), 0);
  cr_expect_eq(offset_at("UTC+3", 0), 10800);
  cr_expect_eq(offset_at("utc-03:30", 0), -12600);
  cr_expect_eq(offset_at("america/new_york", utc_ms(2025, 1, 15, 12, 0, 0)), -18000);
  erpq_tz *tz = NULL;
  cr_assert_eq(erpq_tz_fixed(-34200, &tz, NULL, 0), 0);
  cr_expect_eq(erpq_tz_offset_at(tz, 123456789), -34200);
  cr_expect_str_eq(erpq_tz_name(tz), "UTC-9:30");
  erpq_tz_free(tz);
  cr_expect_eq(erpq_tz_offset_at(erpq_tz_utc(), 0), 0);
}

Test(tz, errors) {
  erpq_tz *tz = NULL;
  char err[256] = "";
  int rc = erpq_tz_load("Mars/Olympus_Mons", &tz, err, sizeof err);
  cr_expect_eq(rc, -ENOENT);
  cr_expect_null(tz);
  cr_expect(strstr(err, "Mars/Olympus_Mons") != NULL, "message: %s", err);
  cr_expect_eq(erpq_tz_load("../../etc/passwd", &tz, err, sizeof err), ERPQ_E_ARG);
  cr_expect_eq(erpq_tz_load("/etc/localtime", &tz, err, sizeof err), ERPQ_E_ARG);
  cr_expect_eq(erpq_tz_load("Europe/../Europe/Paris", &tz, err, sizeof err), ERPQ_E_ARG);
  /* A file of the zoneinfo directory that is not a zone. */
  rc = erpq_tz_load("zone.tab", &tz, err, sizeof err);
  cr_expect(rc < 0, "zone.tab loaded");
}

Test(tz, local_zone_from_env) {
  char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
  setenv("TZ", "Asia/Kolkata", 1);
  erpq_tz_cache_flush();
  cr_expect_eq(offset_at(NULL, 0), 19800);
  cr_expect_eq(offset_at("", 0), 19800);
  setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1);
  erpq_tz_cache_flush();
  cr_expect_eq(offset_at("local", utc_ms(2030, 7, 1, 0, 0, 0)), -14400);
  cr_expect_eq(offset_at("local", utc_ms(2030, 1, 1, 0, 0, 0)), -18000);
  setenv("TZ", "", 1);
  erpq_tz_cache_flush();
  cr_expect_eq(offset_at(NULL, utc_ms(2030, 7, 1, 0, 0, 0)), 0);
  if (saved) {
    setenv("TZ", saved, 1);
    free(saved);
  } else {
    unsetenv("TZ");
  }
  erpq_tz_cache_flush();
}

Test(tz, posix_rules) {
  erpq_tz *tz = NULL;
  /* Southern hemisphere: DST from October to April. */
  cr_assert_eq(erpq_tz_from_posix("AEST-10AEDT,M10.1.0,M4.1.0/3", &tz, NULL, 0), 0);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 1, 10, 0, 0, 0)), 39600);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 7, 10, 0, 0, 0)), 36000);
  erpq_tz_free(tz);
  /* Quoted names, Julian days and a half-hour DST. */
  cr_assert_eq(erpq_tz_from_posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", &tz, NULL, 0), 0);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 1, 10, 0, 0, 0)), 39600);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 7, 10, 0, 0, 0)), 37800);
  erpq_tz_free(tz);
  /* DST all year round, as zic writes it. */
  cr_assert_eq(erpq_tz_from_posix("XXX3EDT4,0/0,J365/25", &tz, NULL, 0), 0);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 1, 1, 12, 0, 0)), -4 * 3600);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2030, 7, 1, 12, 0, 0)), -4 * 3600);
  erpq_tz_free(tz);
  cr_expect_eq(erpq_tz_from_posix("EST5EDT,M3", &tz, NULL, 0), -EINVAL);
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* A "slim" TZif v2 file: one transition (2007-03-11 07:00 UTC, to EDT) and
 * the POSIX footer for everything after it. */
Test(tz, slim_file) {
  unsigned char f[256];
  size_t n = 0;
  memset(f, 0, sizeof f);
  /* Version 1 header and a minimal data block (one type, one char). */
  memcpy(f, "TZif2", 5);
  put32(f + 36, 1);
  put32(f + 40, 1);
  n = 44 + 6 + 1;
  /* Version 2 header. */
  memcpy(f + n, "TZif2", 5);
  put32(f + n + 32, 1); /* timecnt */
  put32(f + n + 36, 2); /* typecnt */
  put32(f + n + 40, 8); /* charcnt */
  n += 44;
  int64_t t = 1173596400; /* 2007-03-11T07:00:00Z */
  put32(f + n, (uint32_t)(t >> 32));
  put32(f + n + 4, (uint32_t)t);
  n += 8;
  f[n++] = 1;
  put32(f + n, (uint32_t)-18000), f[n + 4] = 0, f[n + 5] = 0, n += 6;
  put32(f + n, (uint32_t)-14400), f[n + 4] = 1, f[n + 5] = 4, n += 6;
  memcpy(f + n, "EST\0EDT\0", 8), n += 8;
  const char *footer = "\nEST5EDT,M3.2.0,M11.1.0\n";
  memcpy(f + n, footer, strlen(footer)), n += strlen(footer);
  char path[] = "/tmp/erpq-slim-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, f, n), (ssize_t)n);
  close(fd);
  erpq_tz *tz = NULL;
  char err[256] = "";
  int rc = erpq_tz_load_file(path, "Slim/New_York", &tz, err, sizeof err);
  unlink(path);
  cr_assert_eq(rc, 0, "%s", err);
  cr_expect_str_eq(erpq_tz_name(tz), "Slim/New_York");
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2000, 7, 1, 0, 0, 0)), -18000);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2007, 3, 11, 7, 0, 0)), -14400);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2025, 1, 15, 0, 0, 0)), -18000);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2025, 3, 9, 7, 0, 0) - 1), -18000);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2025, 3, 9, 7, 0, 0)), -14400);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2025, 11, 2, 6, 0, 0) - 1), -14400);
  cr_expect_eq(erpq_tz_offset_at_ms(tz, utc_ms(2025, 11, 2, 6, 0, 0)), -18000);
  erpq_tz_free(tz);
}

Test(tz, local_to_utc) {
  erpq_tz *ny = load("America/New_York");
  int32_t off;
  /* 02:30 on 2025-03-09 does not exist; luxon moves it to 03:30 EDT. */
  int64_t local = utc_ms(2025, 3, 9, 2, 30, 0);
  cr_expect_eq(erpq_tz_local_to_utc(ny, local, -18000, &off), utc_ms(2025, 3, 9, 7, 30, 0));
  cr_expect_eq(off, -14400);
  /* 01:30 on 2025-11-02 happens twice; the guess picks one. */
  local = utc_ms(2025, 11, 2, 1, 30, 0);
  cr_expect_eq(erpq_tz_local_to_utc(ny, local, -14400, NULL), utc_ms(2025, 11, 2, 5, 30, 0));
  cr_expect_eq(erpq_tz_local_to_utc(ny, local, -18000, NULL), utc_ms(2025, 11, 2, 6, 30, 0));
  erpq_tz_free(ny);
}

Test(tz, civil) {
  cr_expect_eq(erpq_days_from_civil(1970, 1, 1), 0);
  cr_expect_eq(erpq_days_from_civil(2000, 3, 1), 11017);
  cr_expect_eq(erpq_days_from_civil(2024, 13, 1), erpq_days_from_civil(2025, 1, 1));
  cr_expect_eq(erpq_days_from_civil(2024, 2, 30), erpq_days_from_civil(2024, 3, 1));
  cr_expect_eq(erpq_days_from_civil(1969, 12, 31), -1);
  int64_t y;
  int m, d;
  erpq_civil_from_days(-1, &y, &m, &d);
  cr_expect(y == 1969 && m == 12 && d == 31);
  erpq_civil_from_days(erpq_days_from_civil(2100, 2, 28) + 1, &y, &m, &d);
  cr_expect(y == 2100 && m == 3 && d == 1);
  cr_expect_eq(erpq_days_in_month(2024, 2), 29);
  cr_expect_eq(erpq_days_in_month(2100, 2), 28);
}

/* ---- Cron -------------------------------------------------------------------- */

static int64_t next_of(const char *expr, const char *zone, int64_t after) {
  erpq_cron *c = NULL;
  char err[256] = "";
  cr_assert_eq(erpq_cron_parse(expr, &c, err, sizeof err), 0, "%s: %s", expr, err);
  erpq_tz *tz = load(zone);
  int64_t n = -1;
  int rc = erpq_cron_next(c, tz, after, &n);
  erpq_tz_free(tz);
  erpq_cron_free(c);
  return rc == 0 ? n : rc;
}

Test(cron, basics) {
  int64_t t = utc_ms(2025, 1, 1, 0, 0, 0);
  cr_expect_eq(next_of("* * * * *", "UTC", t), t + 60000);
  cr_expect_eq(next_of("* * * * *", "UTC", t + 500), t + 60000);
  cr_expect_eq(next_of("* * * * * *", "UTC", t), t + 1000);
  cr_expect_eq(next_of("* * * * * *", "UTC", t + 999), t + 1000);
  cr_expect_eq(next_of("0 9 * * *", "Asia/Kolkata", t), utc_ms(2025, 1, 1, 3, 30, 0));
  cr_expect_eq(next_of("0 0 29 2 *", "UTC", t), utc_ms(2028, 2, 29, 0, 0, 0));
  cr_expect_eq(next_of("0 0 31 4,6 *", "UTC", t), -ENOENT);
  cr_expect_eq(next_of("0 0 * * L", "UTC", t), -EINVAL);
}

Test(cron, parse_errors) {
  static const char *const bad[] = {"60 * * * *", "* * * * * * *", "0 0 30 2 *",
                                    "* * * FOO *", "*/0 * * * *", "1,,2 * * * *",
                                    "* * * * 1#6", "5-3 * * * *"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    erpq_cron *c = NULL;
    char err[256] = "";
    cr_expect_eq(erpq_cron_parse(bad[i], &c, err, sizeof err), -EINVAL, "%s parsed", bad[i]);
    cr_expect_null(c);
    cr_expect(err[0] != '\0', "no message for %s", bad[i]);
  }
}

Test(cron, end_date) {
  erpq_cron *c = NULL;
  cr_assert_eq(erpq_cron_parse("0 * * * *", &c, NULL, 0), 0);
  int64_t t = utc_ms(2025, 1, 1, 0, 30, 0), n = 0;
  erpq_cron_opts o = {.tz = erpq_tz_utc(), .has_end = 1, .end_ms = utc_ms(2025, 1, 1, 1, 0, 0)};
  cr_expect_eq(erpq_cron_next_opts(c, &o, t, &n), 0);
  cr_expect_eq(n, o.end_ms);
  o.end_ms -= 1;
  cr_expect_eq(erpq_cron_next_opts(c, &o, t, &n), -ENOENT);
  erpq_cron_free(c);
}

Test(cron, js_numbers) {
  char b[40];
  erpq_js_number_to_string(1e21, b, sizeof b);
  cr_expect_str_eq(b, "1e+21");
  erpq_js_number_to_string(1e20, b, sizeof b);
  cr_expect_str_eq(b, "100000000000000000000");
  erpq_js_number_to_string(0.1, b, sizeof b);
  cr_expect_str_eq(b, "0.1");
  erpq_js_number_to_string(1e-7, b, sizeof b);
  cr_expect_str_eq(b, "1e-7");
  erpq_js_number_to_string(-1500.5, b, sizeof b);
  cr_expect_str_eq(b, "-1500.5");
  cr_expect(erpq_js_string_to_number("", 0) == 0);
  cr_expect(erpq_js_string_to_number("0x1f", 4) == 31);
  cr_expect(erpq_js_string_to_number(" 12 ", 4) == 12);
  cr_expect(erpq_js_string_to_number("1e3", 3) == 1000);
  cr_expect(erpq_js_string_to_number("-0x1", 4) != erpq_js_string_to_number("-0x1", 4));
  cr_expect(erpq_js_string_to_number("5L", 2) != erpq_js_string_to_number("5L", 2));
}

/* Splits line in place on tabs into at most max fields. */
static int split_tabs(char *line, char **f, int max) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++) {
    if (*p == '\t') {
      *p = '\0';
      f[n++] = p + 1;
    }
  }
  return n;
}

static FILE *open_vectors(const char *name) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/unit/%s", src ? src : ".", name);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "cannot open %s (is ERPQ_SOURCE_DIR set?)", path);
  return f;
}

Test(cron, vectors, .timeout = 300) {
  FILE *f = open_vectors("cron_vectors.tsv");
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int total = 0, bad = 0, lineno = 0;
  while ((len = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (line[len - 1] == '\n') line[--len] = '\0';
    if (!len || line[0] == '#') continue;
    char *fld[6] = {0};
    int n = split_tabs(line, fld, 6);
    total++;
    char err[512] = "";
    erpq_cron *c = NULL;
    int rc = erpq_cron_parse(fld[1], &c, err, sizeof err);
    if (strcmp(fld[0], "error") == 0) {
      cr_assert_eq(n, 3, "line %d malformed", lineno);
      if (rc == 0) {
        bad++;
        cr_expect_fail("line %d: \"%s\" parsed, cron-parser says: %s", lineno, fld[1], fld[2]);
      } else if (strcmp(err, fld[2]) != 0) {
        bad++;
        cr_expect_fail("line %d: \"%s\": message \"%s\", cron-parser says \"%s\"", lineno, fld[1],
                       err, fld[2]);
      }
      erpq_cron_free(c);
      continue;
    }
    cr_assert_eq(n, 6, "line %d malformed", lineno);
    if (rc < 0) {
      bad++;
      cr_expect_fail("line %d: \"%s\" failed to parse: %s", lineno, fld[1], err);
      continue;
    }
    erpq_tz *tz = NULL;
    if (erpq_tz_load(fld[2], &tz, err, sizeof err) < 0) {
      bad++;
      cr_expect_fail("line %d: zone %s: %s", lineno, fld[2], err);
      erpq_cron_free(c);
      continue;
    }
    erpq_cron_opts o = {.tz = tz};
    if (strcmp(fld[4], "-") != 0) {
      o.has_end = 1;
      o.end_ms = strtoll(fld[4], NULL, 10);
    }
    int64_t cur = strtoll(fld[3], NULL, 10);
    char got[256] = "";
    size_t g = 0;
    int steps = 1;
    for (const char *p = fld[5]; *p; p++) steps += *p == ',';
    for (int i = 0; i < steps; i++) {
      int64_t next = 0;
      int r = erpq_cron_next_opts(c, &o, cur, &next);
      if (r < 0) {
        g += (size_t)snprintf(got + g, sizeof got - g, "%snone", i ? "," : "");
        break;
      }
      g += (size_t)snprintf(got + g, sizeof got - g, "%s%" PRId64, i ? "," : "", next);
      cur = next;
    }
    if (strcmp(got, fld[5]) != 0) {
      bad++;
      cr_expect_fail("line %d: \"%s\" tz %s from %s end %s: got %s, cron-parser %s", lineno,
                     fld[1], fld[2], fld[3], fld[4], got, fld[5]);
    }
    erpq_tz_free(tz);
    erpq_cron_free(c);
  }
  free(line);
  fclose(f);
  cr_expect_gt(total, 400, "only %d vectors", total);
  cr_log_info("cron vectors: %d checked, %d mismatches", total, bad);
}
