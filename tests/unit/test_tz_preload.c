/*
 * erpq_tz_preload(): every zone of the zoneinfo directory is loaded before
 * an event loop runs, and afterwards erpq_tz_load() never reads a file.
 *
 * The reference is Python's zoneinfo module (the stdlib, Debian's
 * /usr/bin/python3): the list of zones it finds in the same directory and
 * their UTC offsets at a few instants, before, inside and after the
 * transition tables.  Each Criterion test runs in its own process, so the
 * process-wide cache starts open in each.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_tz.h"

static const int64_t instants[] = {0, 946684800, 1736899200, 1752537600, 2224915200};
#define NINST (sizeof instants / sizeof instants[0])

/* Python's zones and offsets: "name\toffset0 offset1 ...". */
static FILE *python_zones(void) {
  static const char script[] = "import zoneinfo, datetime\n"
                               "T = [0, 946684800, 1736899200, 1752537600, 2224915200]\n"
                               "for n in sorted(zoneinfo.available_timezones()):\n"
                               "    if n == 'localtime': continue\n"
                               "    z = zoneinfo.ZoneInfo(n)\n"
                               "    offs = [int(datetime.datetime.fromtimestamp(t, "
                               "z).utcoffset().total_seconds()) for t in T]\n"
                               "    print(n + '\\t' + ' '.join(map(str, offs)))\n";
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"%s\"", script);
  FILE *f = popen(cmd, "r");
  cr_assert(f, "cannot run /usr/bin/python3");
  return f;
}

Test(tz_preload, every_python_zone_is_cached_with_its_offsets) {
  erpq_tz_preload_stats st;
  char err[256] = "";
  cr_assert_eq(erpq_tz_preload(&st, err, sizeof err), 0, "%s", err);
  cr_log_info("preload: %zu zones from %zu files (%zu links, %zu skipped), %zu bytes of tables "
              "from %zu bytes of files, %" PRId64 " us",
              st.zones, st.files, st.aliases, st.skipped, st.bytes, st.file_bytes, st.micros);
  cr_assert_gt(st.files, 300);
  cr_assert_gt(st.aliases, 50, "links should share tables");
  cr_assert_eq(st.zones, st.files + st.aliases);

  FILE *f = python_zones();
  char line[512];
  size_t n = 0, bad = 0;
  while (fgets(line, sizeof line, f)) {
    char *tab = strchr(line, '\t');
    cr_assert(tab, "bad python line %s", line);
    *tab = '\0';
    erpq_tz *tz = NULL;
    int rc = erpq_tz_load(line, &tz, err, sizeof err);
    if (rc) {
      cr_log_error("%s: %s", line, err);
      bad++;
      continue;
    }
    char *p = tab + 1;
    for (size_t i = 0; i < NINST; i++) {
      long want = strtol(p, &p, 10);
      int got = erpq_tz_offset_at(tz, instants[i]);
      if (got != want) {
        cr_log_error("%s at %" PRId64 ": %d, python says %ld", line, instants[i], got, want);
        bad++;
      }
    }
    cr_expect_str_eq(erpq_tz_name(tz), line);
    erpq_tz_free(tz);
    n++;
  }
  cr_assert_eq(pclose(f), 0, "python failed");
  cr_assert_gt(n, 300, "python listed only %zu zones", n);
  cr_assert_eq(bad, 0, "%zu mismatches", bad);
  cr_assert_eq(n, st.zones - 1,
               "python has %zu zones (without localtime), we %zu (with posixrules)", n, st.zones);
  erpq_tz_cache_flush();
}

/* A private zoneinfo directory: two zones, a symbolic link and a hard
 * link to one of them, a text file, and the right/ and posix/ copies that
 * the preload skips. */
static void make_dir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/erpq-tzdir-XXXXXX");
  cr_assert(mkdtemp(dir));
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "set -e; cd %s; mkdir -p Europe Asia right/Europe posix/Europe;"
           "cp /usr/share/zoneinfo/Europe/Paris Europe/Paris;"
           "cp /usr/share/zoneinfo/Asia/Kolkata Asia/Kolkata;"
           "ln -s Paris Europe/Monaco; ln Asia/Kolkata Asia/Calcutta;"
           "cp /usr/share/zoneinfo/Europe/Paris right/Europe/Paris;"
           "cp /usr/share/zoneinfo/Europe/Paris posix/Europe/Paris;"
           "cp /usr/share/zoneinfo/Europe/Paris right/Europe/Rome;"
           "echo 'FR +4852+00220 Europe/Paris' > zone.tab",
           dir);
  cr_assert_eq(system(cmd), 0);
}

static int offset_of(const char *name, int64_t t, int *off) {
  erpq_tz *tz = NULL;
  char err[256];
  int rc = erpq_tz_load(name, &tz, err, sizeof err);
  if (rc == 0) {
    *off = erpq_tz_offset_at(tz, t);
    erpq_tz_free(tz);
  }
  return rc;
}

Test(tz_preload, sealed_cache_never_reads_files) {
  char dir[64], cmd[256];
  make_dir(dir, sizeof dir);
  setenv("TZDIR", dir, 1);
  setenv("TZ", "Asia/Kolkata", 1);
  erpq_tz_preload_stats st;
  char err[256] = "";
  cr_assert_eq(erpq_tz_preload(&st, err, sizeof err), 0, "%s", err);
  cr_expect_eq(st.files, 2);
  cr_expect_eq(st.aliases, 2);
  cr_expect_eq(st.zones, 4);
  cr_expect_eq(st.skipped, 1); /* zone.tab */

  /* The files go away: lookups are answered from memory alone. */
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
  setenv("TZ", "Europe/Paris", 1); /* Too late: the local zone was loaded. */
  int off = 0;
  const int64_t july = 1752537600, jan = 1736899200;
  cr_assert_eq(offset_of("Europe/Paris", july, &off), 0);
  cr_expect_eq(off, 7200);
  cr_assert_eq(offset_of("Europe/Monaco", jan, &off), 0);
  cr_expect_eq(off, 3600);
  cr_assert_eq(offset_of("Asia/Calcutta", july, &off), 0);
  cr_expect_eq(off, 19800);
  cr_assert_eq(offset_of("local", july, &off), 0);
  cr_expect_eq(off, 19800);
  cr_assert_eq(offset_of(NULL, jan, &off), 0);
  cr_expect_eq(off, 19800);
  /* Another letter case: an alias under the name asked for. */
  erpq_tz *tz = NULL;
  cr_assert_eq(erpq_tz_load("europe/paris", &tz, err, sizeof err), 0, "%s", err);
  cr_expect_str_eq(erpq_tz_name(tz), "europe/paris");
  cr_expect_eq(erpq_tz_offset_at(tz, july), 7200);
  erpq_tz_free(tz);
  /* Fixed offsets need no file. */
  cr_assert_eq(offset_of("UTC+5", july, &off), 0);
  cr_expect_eq(off, 18000);
  cr_assert_eq(offset_of("Etc/UTC", july, &off), 0);
  cr_expect_eq(off, 0);

  /* Not loaded: unknown, and never looked for on disk. */
  cr_expect_eq(erpq_tz_load("America/New_York", &tz, err, sizeof err), -ENOENT);
  cr_expect(strstr(err, "unknown time zone \"America/New_York\""), "%s", err);
  cr_expect_eq(erpq_tz_load("right/Europe/Rome", &tz, err, sizeof err), -ENOENT);
  cr_expect_eq(erpq_tz_load("posix/Europe/Paris", &tz, err, sizeof err), -ENOENT);
  cr_expect_eq(erpq_tz_load("zone.tab", &tz, err, sizeof err), -ENOENT);
  cr_expect_eq(erpq_tz_load("../etc/passwd", &tz, err, sizeof err), ERPQ_E_ARG);

  /* A flush opens the cache again: files are read on demand. */
  erpq_tz_cache_flush();
  unsetenv("TZDIR");
  cr_assert_eq(offset_of("America/New_York", july, &off), 0);
  cr_expect_eq(off, -14400);
  cr_assert_eq(offset_of("local", july, &off), 0);
  cr_expect_eq(off, 7200); /* TZ=Europe/Paris now */
  erpq_tz_cache_flush();
}

Test(tz_preload, missing_directory_seals_an_empty_cache) {
  setenv("TZDIR", "/nonexistent-zoneinfo", 1);
  setenv("TZ", "UTC", 1);
  char err[256] = "";
  int rc = erpq_tz_preload(NULL, err, sizeof err);
  cr_expect_eq(rc, -ENOENT);
  cr_expect(strstr(err, "/nonexistent-zoneinfo"), "%s", err);
  unsetenv("TZDIR");
  erpq_tz *tz = NULL;
  cr_expect_eq(erpq_tz_load("Europe/Paris", &tz, err, sizeof err), -ENOENT);
  cr_assert_eq(erpq_tz_load("UTC", &tz, err, sizeof err), 0);
  erpq_tz_free(tz);
  erpq_tz_cache_flush();
}
