#include "s3_test_util.h"

#include <criterion/criterion.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "erpq_util.h"

static const char *need(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v, "%s is not set: start the test servers (scripts/test does)", name);
  return v;
}

struct table {
  const char *names[16];
  const char *values[16];
};

static const char *table_get(void *ud, const char *name) {
  struct table *t = ud;
  for (int i = 0; i < 16 && t->names[i]; i++)
    if (strcmp(t->names[i], name) == 0)
      return t->values[i];
  return NULL;
}

void t_s3_conf(erpq_s3_conf *c, const char *endpoint) {
  struct table t = {{"ERPQ_S3_BUCKET", "ERPQ_S3_ENDPOINT", "ERPQ_S3_ACCESS_KEY_ID",
                     "ERPQ_S3_SECRET_ACCESS_KEY", "ERPQ_S3_REGION", "ERPQ_S3_CONNECT_TIMEOUT",
                     "ERPQ_S3_STALL_TIMEOUT"},
                    {need("ERPQ_TEST_S3_BUCKET"), endpoint ? endpoint : need("ERPQ_TEST_S3_URL"),
                     need("ERPQ_TEST_S3_ACCESS_KEY"), need("ERPQ_TEST_S3_SECRET_KEY"),
                     need("ERPQ_TEST_S3_REGION"), "5", "10"}};
  char err[256];
  cr_assert_eq(erpq_s3_conf_read(c, table_get, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c->addressing, ERPQ_S3_PATH, "a custom endpoint defaults to path style");
  c->retry_base_ms = 50;
  c->retry_cap_ms = 400;
}

erpq_s3 *t_s3_new(const erpq_s3_conf *c) {
  erpq_s3 *s3 = NULL;
  char err[256];
  cr_assert_eq(erpq_s3_new(&s3, c, err, sizeof err), 0, "%s", err);
  return s3;
}

void t_peer_start(t_peer *p, const char *script, const char *const *args) {
  const char *src = need("ERPQ_SOURCE_DIR");
  const char *base = getenv("ERPQ_TEST_PORT_BASE"), *max = getenv("ERPQ_TEST_PORT_MAX");
  char path[1024];
  snprintf(path, sizeof path, "%s/lib/s3/tests/%s", src, script);
  const char *argv[32] = {"/usr/bin/python3", path,
                          "--port-min",       base && *base ? base : "16400",
                          "--port-max",       max && *max ? max : "16999"};
  int n = 6;
  for (int i = 0; args && args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    /* A failed assertion ends the test process without t_peer_stop: the
     * helper must not outlive it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(126);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  memset(p, 0, sizeof *p);
  p->pid = pid;
  char line[64] = "";
  size_t got = 0;
  int64_t deadline = erpq_mono_ms() + 10000;
  while (got < sizeof line - 1 && !strchr(line, '\n')) {
    struct pollfd pf = {fds[0], POLLIN, 0};
    int left = (int)(deadline - erpq_mono_ms());
    cr_assert(left > 0 && poll(&pf, 1, left) == 1, "%s did not start", script);
    ssize_t r = read(fds[0], line + got, sizeof line - 1 - got);
    cr_assert(r > 0, "%s exited before listening", script);
    got += (size_t)r;
    line[got] = '\0';
  }
  close(fds[0]);
  cr_assert_eq(sscanf(line, "PORT %d", &p->port), 1, "%s said %s", script, line);
  snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->port);
}

void t_peer_stop(t_peer *p) {
  if (p->pid <= 0)
    return;
  kill(p->pid, SIGTERM);
  int64_t deadline = erpq_mono_ms() + 5000;
  while (waitpid(p->pid, NULL, WNOHANG) == 0) {
    if (erpq_mono_ms() > deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, NULL, 0);
      break;
    }
    struct timespec ts = {0, 20000000L};
    nanosleep(&ts, NULL);
  }
  p->pid = 0;
}

struct fetch {
  unsigned char *body;
  size_t len;
  char *disp;
  size_t displen;
};

static size_t fetch_body(char *d, size_t sz, size_t n, void *ud) {
  struct fetch *f = ud;
  unsigned char *b = realloc(f->body, f->len + sz * n + 1);
  cr_assert_not_null(b);
  memcpy(b + f->len, d, sz * n);
  f->body = b;
  f->len += sz * n;
  f->body[f->len] = '\0';
  return sz * n;
}

static size_t fetch_header(char *d, size_t sz, size_t n, void *ud) {
  struct fetch *f = ud;
  size_t len = sz * n;
  const char *name = "content-disposition:";
  if (f->disp && len > strlen(name) && strncasecmp(d, name, strlen(name)) == 0) {
    size_t a = strlen(name);
    while (a < len && d[a] == ' ')
      a++;
    size_t b = len;
    while (b > a && (d[b - 1] == '\r' || d[b - 1] == '\n'))
      b--;
    snprintf(f->disp, f->displen, "%.*s", (int)(b - a), d + a);
  }
  return len;
}

long t_http_get(const char *url, char **body, size_t *len, char *disposition, size_t displen) {
  struct fetch f = {NULL, 0, disposition, displen};
  if (disposition && displen)
    disposition[0] = '\0';
  CURL *c = curl_easy_init();
  cr_assert_not_null(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, fetch_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  CURLcode rc = curl_easy_perform(c);
  cr_assert_eq(rc, CURLE_OK, "GET failed: %s", curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (body)
    *body = (char *)f.body;
  else
    free(f.body);
  if (len)
    *len = f.len;
  return status;
}

unsigned char *t_data(size_t n, unsigned seed) {
  unsigned char *p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (unsigned char)(x >> 24);
  }
  return p;
}

void t_sha256(const void *p, size_t n, char out[65]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(p, n, md);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

unsigned char *t_read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  struct stat st;
  cr_assert_eq(fstat(fileno(f), &st), 0);
  unsigned char *p = malloc((size_t)st.st_size + 1);
  cr_assert_not_null(p);
  cr_assert_eq(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
  fclose(f);
  *n = (size_t)st.st_size;
  return p;
}

char *t_write_temp(const void *p, size_t n) {
  char *path = strdup("/tmp/erpq-s3-test-XXXXXX");
  cr_assert_not_null(path);
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, (const char *)p + done, n - done);
    cr_assert(w > 0);
    done += (size_t)w;
  }
  close(fd);
  return path;
}

void t_key(char *out, size_t outlen, const char *prefix) {
  char id[37];
  erpq_uuid4(id);
  snprintf(out, outlen, "%s/%s", prefix, id);
}

unsigned char *t_get(const erpq_s3 *s3, const char *key, size_t *n) {
  char path[] = "/tmp/erpq-s3-get-XXXXXX", err[256];
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  uint64_t bytes = 0;
  cr_assert_eq(erpq_s3_get_to_file(s3, key, path, NULL, &bytes, err, sizeof err), 0, "%s", err);
  unsigned char *p = t_read_file(path, n);
  cr_assert_eq(bytes, *n);
  unlink(path);
  return p;
}
