#include "erpq_log.h"

#include "erpq_util.h"

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

/* Appends s as a JSON string: quotes, escapes, and invalid UTF-8 repaired
 * (a log line must stay valid JSON whatever a path or a message holds). */
static void json_str(erpq_buf *b, const char *s) {
  char *fixed = NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p >= 0x80) {
      fixed = strdup(s);
      if (fixed) s = erpq_utf8_fix(fixed);
      break;
    }
  erpq_buf_add(b, "\"", 1);
  const char *run = s;
  for (const unsigned char *p = (const unsigned char *)s;; p++) {
    if (*p && *p >= 0x20 && *p != '"' && *p != '\\') continue;
    erpq_buf_add(b, run, (size_t)((const char *)p - run));
    if (!*p) break;
    char esc[8];
    switch (*p) {
    case '"': erpq_buf_add(b, "\\\"", 2); break;
    case '\\': erpq_buf_add(b, "\\\\", 2); break;
    case '\n': erpq_buf_add(b, "\\n", 2); break;
    case '\r': erpq_buf_add(b, "\\r", 2); break;
    case '\t': erpq_buf_add(b, "\\t", 2); break;
    default:
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      erpq_buf_adds(b, esc);
    }
    run = (const char *)p + 1;
  }
  erpq_buf_add(b, "\"", 1);
  free(fixed);
}

static void vappend(erpq_buf *b, erpq_log_level level, const char *event, va_list ap) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  erpq_buf_addf(b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"event\":",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                (int)(tv.tv_usec / 1000), names[level]);
  json_str(b, event);
  for (;;) {
    const char *k = va_arg(ap, const char *);
    if (!k) break;
    const char *v = va_arg(ap, const char *);
    if (!v) continue;
    int raw = k[0] == '#';
    if (raw) k++;
    erpq_buf_add(b, ",", 1);
    json_str(b, k);
    erpq_buf_add(b, ":", 1);
    if (raw)
      erpq_buf_adds(b, v);
    else
      json_str(b, v);
  }
  erpq_buf_add(b, "}\n", 2);
}

void erpq_log_append(erpq_buf *b, erpq_log_level level, const char *event, ...) {
  if (level < min_level) return;
  va_list ap;
  va_start(ap, event);
  vappend(b, level, event, ap);
  va_end(ap);
}

static void vlog(erpq_log_level level, const char *event, va_list ap) {
  if (level < min_level) return;
  erpq_buf b = {0};
  vappend(&b, level, event, ap);
  if (!b.oom) erpq_log_write_lines(b.s, b.len);
  erpq_buf_free(&b);
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
