#include "erpq_log.h"

#include "erpq_err.h"
#include "erpq_util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static erpq_log_level min_level = ERPQ_LOG_INFO;
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

/* ---- The buffer and its writer thread --------------------------------------
 * A ring of cap bytes holding [head, head + len) (mod cap): complete lines
 * only. Callers copy lines in under mu; the writer copies a chunk out
 * (ending at a line end) under mu, then writes it without holding mu. */

#define DEFAULT_CAP ((size_t)4 << 20)
#define MIN_CAP ((size_t)4096)
#define MAX_CAP ((size_t)1 << 30)
#define CHUNK ((size_t)64 << 10)
#define EXIT_FLUSH_MS 2000

static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake; /* writer: lines or a drop notice to write */
  pthread_cond_t idle; /* flushers: nothing left to write */
  char *ring;
  size_t cap, head, len;
  size_t want_cap;        /* capacity of the ring once it is allocated */
  uint64_t pending_drops; /* lines dropped since the last notice */
  uint64_t dropped_total;
  int started; /* a writer thread runs in this process */
  int direct;  /* no writer (none could start, or a forked child): callers write */
  int busy;    /* the writer has a chunk out */
  char *out;   /* the writer's chunk */
  size_t outcap;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .want_cap = DEFAULT_CAP};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void write_all(const char *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(STDOUT_FILENO, p + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break; /* stdout is gone: the lines are lost, as before */
    off += (size_t)w;
  }
}

static size_t count_lines(const char *p, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] == '\n')
      c++;
  return c ? c : 1;
}

static void ring_put(const char *s, size_t n) {
  size_t tail = (L.head + L.len) % L.cap, first = L.cap - tail;
  if (first > n)
    first = n;
  memcpy(L.ring + tail, s, first);
  memcpy(L.ring, s + first, n - first);
  L.len += n;
}

static void ring_get(char *dst, size_t n) {
  size_t first = L.cap - L.head;
  if (first > n)
    first = n;
  memcpy(dst, L.ring + L.head, first);
  memcpy(dst + first, L.ring, n - first);
  L.head = (L.head + n) % L.cap;
  L.len -= n;
}

static char ring_at(size_t i) { return L.ring[(L.head + i) % L.cap]; }

static void append_line(erpq_buf *b, erpq_log_level level, const char *event, ...) {
  va_list ap;
  va_start(ap, event);
  vappend(b, level, event, ap);
  va_end(ap);
}

/* Formats the drop notice for n lines into b (emptied first). */
static void drop_notice(erpq_buf *b, uint64_t n) {
  char num[32];
  snprintf(num, sizeof num, "%" PRIu64, n);
  erpq_buf_reset(b);
  append_line(b, ERPQ_LOG_WARN, "log.dropped", "#count", num, NULL);
}

/* Takes the next chunk out of the ring into L.out: at most CHUNK bytes
 * ending at a line end, or one whole line when it is longer. mu held. */
static size_t take_chunk(void) {
  size_t take = L.len < CHUNK ? L.len : CHUNK;
  size_t k = take;
  while (k > 0 && ring_at(k - 1) != '\n')
    k--;
  if (k == 0) {
    k = take;
    while (k < L.len && ring_at(k - 1) != '\n')
      k++;
  }
  if (k > L.outcap) {
    char *n = realloc(L.out, k);
    if (!n) { /* Write what fits; the rest follows in the next chunk. */
      k = L.outcap;
    } else {
      L.out = n;
      L.outcap = k;
    }
  }
  ring_get(L.out, k);
  return k;
}

static void *writer_main(void *arg) {
  (void)arg;
  erpq_buf notice = {0};
  pthread_mutex_lock(&L.mu);
  for (;;) {
    while (L.len == 0 && L.pending_drops == 0) {
      L.busy = 0;
      pthread_cond_broadcast(&L.idle);
      pthread_cond_wait(&L.wake, &L.mu);
    }
    L.busy = 1;
    if (L.len == 0) {
      /* Everything before the drops is out and nothing came after them:
       * the notice goes now, not with the next line. */
      drop_notice(&notice, L.pending_drops);
      L.pending_drops = 0;
      pthread_mutex_unlock(&L.mu);
      if (!notice.oom)
        write_all(notice.s, notice.len);
    } else {
      size_t n = take_chunk();
      pthread_mutex_unlock(&L.mu);
      write_all(L.out, n);
    }
    pthread_mutex_lock(&L.mu);
  }
  return NULL;
}

/* Starts the writer thread of this process, with every signal blocked so
 * that signals reach the threads that wait for them. mu held. */
static void start_writer(void) {
  L.started = 1;
  if (!L.ring) {
    L.ring = malloc(L.want_cap);
    L.cap = L.ring ? L.want_cap : 0;
    L.head = L.len = 0;
  }
  if (!L.out) {
    L.out = malloc(CHUNK);
    L.outcap = L.out ? CHUNK : 0;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t at;
  pthread_t t;
  int ok = L.ring && L.out && pthread_attr_init(&at) == 0;
  if (ok) {
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &at, writer_main, NULL) == 0;
    pthread_attr_destroy(&at);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!ok)
    L.direct = 1; /* No thread, no buffer: write as before, blocking. */
}

static void init_conds(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&L.wake, &ca);
  pthread_cond_init(&L.idle, &ca);
  pthread_condattr_destroy(&ca);
}

static void fork_prepare(void) { pthread_mutex_lock(&L.mu); }
static void fork_parent(void) { pthread_mutex_unlock(&L.mu); }

/* The child has no writer thread: it forgets what the parent had buffered
 * (the parent writes it) and writes its own lines directly. Starting a
 * thread in the child of a threaded process can hang it (a lock another
 * thread held at fork() time, in the C library or a sanitizer's runtime,
 * stays held forever). */
static void fork_child(void) {
  L.started = L.direct = 1;
  L.busy = 0;
  L.head = L.len = 0;
  L.pending_drops = 0;
  init_conds();
  pthread_mutex_unlock(&L.mu);
}

static void flush_at_exit(void) { erpq_log_flush(EXIT_FLUSH_MS); }

static void init(void) {
  init_conds();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  atexit(flush_at_exit);
}

/* Buffers n bytes holding nlines lines as one unit, or drops them. */
static void submit(const char *s, size_t n, size_t nlines) {
  pthread_once(&init_once, init);
  pthread_mutex_lock(&L.mu);
  if (!L.started)
    start_writer();
  if (L.direct) {
    write_all(s, n); /* Under mu, so lines still never interleave. */
    pthread_mutex_unlock(&L.mu);
    return;
  }
  if (L.pending_drops && n < L.cap - L.len) {
    erpq_buf notice = {0};
    drop_notice(&notice, L.pending_drops);
    if (!notice.oom && notice.len + n <= L.cap - L.len) {
      ring_put(notice.s, notice.len);
      L.pending_drops = 0;
    }
    erpq_buf_free(&notice);
  }
  if (L.pending_drops == 0 && n <= L.cap - L.len) {
    ring_put(s, n);
    pthread_cond_signal(&L.wake);
  } else {
    L.pending_drops += nlines;
    L.dropped_total += nlines;
  }
  pthread_mutex_unlock(&L.mu);
}

static void vlog(erpq_log_level level, const char *event, va_list ap) {
  if (level < min_level)
    return;
  erpq_buf b = {0};
  vappend(&b, level, event, ap);
  if (!b.oom)
    submit(b.s, b.len, 1);
  erpq_buf_free(&b);
}

void erpq_log_write_lines(const char *buf, size_t len) {
  if (len)
    submit(buf, len, count_lines(buf, len));
}

void erpq_log(erpq_log_level level, const char *event, ...) {
  va_list ap;
  va_start(ap, event);
  vlog(level, event, ap);
  va_end(ap);
}

int erpq_log_set_buffer_size(size_t bytes) {
  if (bytes < MIN_CAP || bytes > MAX_CAP)
    return ERPQ_E_ARG;
  pthread_once(&init_once, init);
  int rc = 0;
  pthread_mutex_lock(&L.mu);
  if (L.ring) {
    char *n = bytes < L.len ? NULL : malloc(bytes);
    if (!n) {
      rc = bytes < L.len ? -EBUSY : -ENOMEM;
    } else {
      size_t len = L.len;
      ring_get(n, len);
      free(L.ring);
      L.ring = n;
      L.cap = bytes;
      L.head = 0;
      L.len = len;
    }
  }
  if (!rc)
    L.want_cap = bytes;
  pthread_mutex_unlock(&L.mu);
  return rc;
}

int erpq_log_flush(int timeout_ms) {
  pthread_once(&init_once, init);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (timeout_ms < 0)
    timeout_ms = 0;
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  int rc = 0;
  pthread_mutex_lock(&L.mu);
  while (L.started && !L.direct && (L.len || L.busy || L.pending_drops)) {
    if (pthread_cond_timedwait(&L.idle, &L.mu, &dl) == ETIMEDOUT) {
      rc = (L.len || L.busy || L.pending_drops) ? ERPQ_E_TIMEOUT : 0;
      break;
    }
  }
  pthread_mutex_unlock(&L.mu);
  return rc;
}

uint64_t erpq_log_dropped_total(void) {
  pthread_mutex_lock(&L.mu);
  uint64_t n = L.dropped_total;
  pthread_mutex_unlock(&L.mu);
  return n;
}
