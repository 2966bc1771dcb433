#include "notify_test_util.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *nt_source_dir(void) { return nt_env("ERPQ_SOURCE_DIR"); }

const char *nt_env(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v, "%s is not set (run the test through ctest / scripts/test)", name);
  return v;
}

char *nt_temp_file(const void *data, size_t len, const char *suffix) {
  char path[256];
  snprintf(path, sizeof path, "/tmp/erpq-notify-XXXXXX%s", suffix ? suffix : "");
  int fd = mkstemps(path, suffix ? (int)strlen(suffix) : 0);
  cr_assert(fd >= 0, "mkstemps failed");
  const char *p = data;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, p + off, len - off);
    cr_assert(w > 0, "write to %s failed", path);
    off += (size_t)w;
  }
  close(fd);
  return strdup(path);
}

char *nt_run(const char *cmd, const void *input, size_t inlen, size_t *outlen, int *status) {
  char *in = nt_temp_file(input ? input : "", input ? inlen : 0, NULL);
  size_t cl = strlen(cmd) + strlen(in) + 16;
  char *full = malloc(cl);
  cr_assert(full);
  snprintf(full, cl, "( %s ) < '%s'", cmd, in);
  FILE *f = popen(full, "r");
  cr_assert(f, "popen failed: %s", cmd);
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  cr_assert(buf);
  for (;;) {
    if (cap - len < 4096) {
      cap *= 2;
      buf = realloc(buf, cap);
      cr_assert(buf);
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    if (n == 0)
      break;
    len += n;
  }
  buf[len] = '\0';
  int rc = pclose(f);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
  if (outlen)
    *outlen = len;
  unlink(in);
  free(in);
  free(full);
  return buf;
}

uint64_t nt_seed(const char *test) {
  const char *s = getenv("ERPQ_TEST_SEED");
  uint64_t seed;
  if (s && *s) {
    seed = strtoull(s, NULL, 0);
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 20;
  }
  fprintf(stderr, "%s: seed %" PRIu64 " (replay with ERPQ_TEST_SEED=%" PRIu64 ")\n", test, seed,
          seed);
  return seed;
}

uint64_t nt_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

size_t nt_below(uint64_t *state, size_t n) { return n ? (size_t)(nt_rand(state) % n) : 0; }
