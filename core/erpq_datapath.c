#include "erpq_datapath.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_err.h"

#ifndef ERPQ_DATADIR
#define ERPQ_DATADIR "/usr/local/share/erpq"
#endif

static char exe_data[PATH_MAX];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* <dir of /proc/self/exe>/../share/erpq, normalised. */
static void find_exe_data(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return;
  *slash = '\0';
  slash = strrchr(exe, '/');
  if (slash) *slash = '\0'; /* The binary's directory's parent. */
  char cand[PATH_MAX];
  if ((size_t)snprintf(cand, sizeof cand, "%s/share/erpq", exe[0] ? exe : "") >= sizeof cand) return;
  char real[PATH_MAX];
  if (realpath(cand, real)) snprintf(exe_data, sizeof exe_data, "%s", real);
  else snprintf(exe_data, sizeof exe_data, "%s", cand);
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

int erpq_datadir(char *out, size_t outlen, char *err, size_t errlen) {
  pthread_once(&once, find_exe_data);
  if (exe_data[0] && exists(exe_data)) {
    snprintf(out, outlen, "%s", exe_data);
    return 0;
  }
  if (exists(ERPQ_DATADIR)) {
    snprintf(out, outlen, "%s", ERPQ_DATADIR);
    return 0;
  }
  return erpq_fail(err, errlen, -ENOENT, "erpq's data directory is missing: looked in %s and %s",
                   exe_data[0] ? exe_data : "(binary path unknown)", ERPQ_DATADIR);
}

int erpq_datapath(const char *rel, const char *override, const char *origin, char *out,
                  size_t outlen, char *err, size_t errlen) {
  if (override && *override) {
    if (!exists(override))
      return erpq_fail(err, errlen, -ENOENT, "%s: %s does not exist", origin ? origin : rel,
                       override);
    snprintf(out, outlen, "%s", override);
    return 0;
  }
  pthread_once(&once, find_exe_data);
  const char *dirs[] = {exe_data, ERPQ_DATADIR};
  for (size_t i = 0; i < 2; i++) {
    if (!dirs[i][0]) continue;
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dirs[i], rel) >= sizeof p) continue;
    if (exists(p)) {
      snprintf(out, outlen, "%s", p);
      return 0;
    }
  }
  return erpq_fail(err, errlen, -ENOENT, "%s not found: looked in %s/%s and %s/%s%s%s%s", rel,
                   exe_data[0] ? exe_data : "(binary path unknown)", rel, ERPQ_DATADIR, rel,
                   origin ? " (set " : "", origin ? origin : "", origin ? " to name it)" : "");
}
