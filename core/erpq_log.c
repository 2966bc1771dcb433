#include "erpq_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static erpq_log_level min_level = ERPQ_LOG_INFO;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const names[] = {"debug", "info", "warn", "error"};

void erpq_log_set_level(erpq_log_level level) { min_level = level; }

int erpq_log_parse_level(const char *s, erpq_log_level *out) {
  for (int i = 0; i < 4; i++)
    if (s && strcmp(s, names[i]) == 0) {
      *out = (erpq_log_level)i;
      return 0;
    }
  return -1;
}

typedef struct {
  char *buf;
  size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + n + 1) nc *= 2;
    char *p = realloc(b->buf, nc);
    if (!p) return;
    b->buf = p;
    b->cap = nc;
  }
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_str(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    switch (*p) {
    case '"': sb_put(b, "\\\"", 2); break;
    case '\\': sb_put(b, "\\\\", 2); break;
    case '\n': sb_put(b, "\\n", 2); break;
    case '\r': sb_put(b, "\\r", 2); break;
    case '\t': sb_put(b, "\\t", 2); break;
    default:
      if (*p < 0x20) {
        snprintf(esc, sizeof esc, "\\u%04x", *p);
        sb_str(b, esc);
      } else {
        sb_put(b, (const char *)p, 1);
      }
    }
  }
  sb_put(b, "\"", 1);
}

static void vlog(erpq_log_level level, const char *event, va_list ap) {
  if (level < min_level) return;
  sbuf b = {0};
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[64];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  sb_str(&b, "{\"ts\":\"");
  sb_str(&b, ts);
  sb_str(&b, "\",\"level\":\"");
  sb_str(&b, names[level]);
  sb_str(&b, "\",\"event\":");
  sb_json_str(&b, event);
  for (;;) {
    const char *k = va_arg(ap, const char *);
    if (!k) break;
    const char *v = va_arg(ap, const char *);
    if (!v) continue;
    int raw = k[0] == '#';
    if (raw) k++;
    sb_put(&b, ",", 1);
    sb_json_str(&b, k);
    sb_put(&b, ":", 1);
    if (raw)
      sb_str(&b, v);
    else
      sb_json_str(&b, v);
  }
  sb_str(&b, "}\n");
  if (!b.buf) return;
  erpq_log_write_lines(b.buf, b.len);
  free(b.buf);
}

void erpq_log_write_lines(const char *buf, size_t len) {
  pthread_mutex_lock(&mu);
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(STDOUT_FILENO, buf + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  pthread_mutex_unlock(&mu);
}

void erpq_log(erpq_log_level level, const char *event, ...) {
  va_list ap;
  va_start(ap, event);
  vlog(level, event, ap);
  va_end(ap);
}
