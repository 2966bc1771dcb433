/* erpq_testkit.c - see erpq_testkit.h. */
#define _GNU_SOURCE
#include "erpq_testkit.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_util.h"

char *test_source_path(const char *rel) {
  const char *root = getenv("ERPQ_SOURCE_DIR");
  cr_assert(root && *root, "ERPQ_SOURCE_DIR is not set (run the test through ctest)");
  erpq_buf b = {0};
  erpq_buf_addf(&b, "%s/%s", root, rel);
  char *s = erpq_buf_take(&b);
  cr_assert(s);
  return s;
}

/* Reads one line from the child's stdout within timeout_ms (NULL on
 * timeout or end of file). */
static char *read_line(test_peer *p, int timeout_ms) {
  int64_t end = erpq_mono_ms() + timeout_ms;
  for (;;) {
    char *nl = memchr(p->buf, '\n', p->buflen);
    if (nl) {
      size_t n = (size_t)(nl - p->buf);
      char *line = strndup(p->buf, n);
      memmove(p->buf, nl + 1, p->buflen - n - 1);
      p->buflen -= n + 1;
      return line;
    }
    int64_t left = end - erpq_mono_ms();
    if (left <= 0 || p->buflen == sizeof p->buf)
      return NULL;
    struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
    int r = poll(&pf, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return NULL;
    ssize_t got = read(p->out_fd, p->buf + p->buflen, sizeof p->buf - p->buflen);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return NULL;
    p->buflen += (size_t)got;
  }
}

void test_peer_start(test_peer *p, char *const argv[], int timeout_ms) {
  memset(p, 0, sizeof *p);
  int in[2], out[2];
  cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  p->pid = pid;
  p->in_fd = in[1];
  p->out_fd = out[0];
  char *line = read_line(p, timeout_ms);
  if (!line || strncmp(line, "READY", 5) != 0) {
    test_peer_stop(p);
    cr_assert_fail("peer %s did not get ready within %d ms (said: %s)", argv[0], timeout_ms,
                   line ? line : "nothing");
  }
  snprintf(p->ready, sizeof p->ready, "%s", line);
  free(line);
}

char *test_peer_field(const test_peer *p, const char *key) {
  size_t kl = strlen(key);
  for (const char *s = p->ready; (s = strstr(s, key)); s += kl) {
    if ((s == p->ready || s[-1] == ' ') && s[kl] == '=') {
      const char *v = s + kl + 1;
      return strndup(v, strcspn(v, " "));
    }
  }
  return NULL;
}

int test_peer_port(const test_peer *p) {
  char *v = test_peer_field(p, "port");
  cr_assert(v, "no port in '%s'", p->ready);
  int port = atoi(v);
  free(v);
  cr_assert(port > 0 && port < 65536);
  return port;
}

char *test_peer_ask(test_peer *p, const char *line, int timeout_ms) {
  size_t n = strlen(line);
  char *msg = malloc(n + 2);
  cr_assert(msg);
  memcpy(msg, line, n);
  msg[n] = '\n';
  cr_assert_eq(write(p->in_fd, msg, n + 1), (ssize_t)(n + 1));
  free(msg);
  char *r = read_line(p, timeout_ms);
  cr_assert(r, "peer gave no answer to '%s'", line);
  return r;
}

void test_peer_stop(test_peer *p) {
  if (p->pid <= 0)
    return;
  close(p->in_fd);
  int64_t end = erpq_mono_ms() + 10000;
  int status;
  while (waitpid(p->pid, &status, WNOHANG) == 0) {
    if (erpq_mono_ms() > end) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &status, 0);
      break;
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  close(p->out_fd);
  p->pid = 0;
}

static size_t collect(char *ptr, size_t size, size_t n, void *ud) {
  erpq_buf_add(ud, ptr, size * n);
  return size * n;
}

char *test_http(const char *method, const char *url, const char *ctype, const char *body,
                long *status) {
  CURL *e = curl_easy_init();
  cr_assert(e);
  erpq_buf b = {0};
  struct curl_slist *h = NULL;
  if (ctype) {
    char hdr[256];
    snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype);
    h = curl_slist_append(h, hdr);
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  *status = 0;
  if (curl_easy_perform(e) == CURLE_OK)
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  char *s = erpq_buf_take(&b);
  cr_assert(s);
  return s;
}

long test_peak_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

double test_cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}
