/*
 * core/erpq_log: lines go through a bounded buffer and a writer thread, so
 * a stdout that nobody reads never blocks erpq_log().
 *
 * Each test points file descriptor 1 at a pipe of its own and reads it
 * back (or, to fill it, does not). Criterion runs every test in a process
 * of its own, so each starts with a fresh log module. The exit test runs
 * this binary again (ERPQ_TEST_LOG_CHILD) so that its child exits through
 * exit() without Criterion's handlers.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_log.h"

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- stdout as a pipe, and a reader ------------------------------------ */

typedef struct {
  int fd;
  erpq_buf data;
  pthread_t t;
} reader;

static void *read_main(void *arg) {
  reader *r = arg;
  char buf[65536];
  for (;;) {
    ssize_t n = read(r->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    erpq_buf_add(&r->data, buf, (size_t)n);
  }
  return NULL;
}

/* Points fd 1 at a new pipe; returns its read end. */
static int stdout_to_pipe(int pipe_size) {
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  if (pipe_size)
    cr_assert_geq(fcntl(p[1], F_SETPIPE_SZ, pipe_size), pipe_size);
  cr_assert_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);
  close(p[1]);
  return p[0];
}

static void reader_start(reader *r, int fd) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
  cr_assert_eq(pthread_create(&r->t, NULL, read_main, r), 0);
}

/* Flushes, closes our end of the pipe (fd 1 becomes /dev/null) and waits
 * for the reader to see the end. */
static void reader_finish(reader *r) {
  cr_assert_eq(erpq_log_flush(20000), 0, "flush timed out");
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  cr_assert_eq(dup2(null, STDOUT_FILENO), STDOUT_FILENO);
  close(null);
  pthread_join(r->t, NULL);
  close(r->fd);
  cr_assert(!r->data.oom);
}

/* Splits text into lines (the last one must end in '\n'); returns how
 * many, the array malloc'ed, the lines pointing into text (modified). */
static size_t split_lines(char *text, size_t len, char ***out) {
  size_t n = 0, cap = 1024;
  char **v = malloc(cap * sizeof *v);
  char *p = text, *end = text + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    cr_assert(nl, "an incomplete last line: %.80s", p);
    *nl = '\0';
    if (n == cap)
      v = realloc(v, (cap *= 2) * sizeof *v);
    v[n++] = p;
    p = nl + 1;
  }
  *out = v;
  return n;
}

/* Checks the fixed part of a line byte for byte and returns it parsed. */
static json_t *parse_line(const char *line, const char *level) {
  /* {"ts":"2026-01-02T03:04:05.678Z","level":"... */
  cr_assert(strncmp(line, "{\"ts\":\"", 7) == 0, "line: %.120s", line);
  const char *t = line + 7;
  for (int i = 0; i < 24; i++) {
    char c = t[i];
    int ok = (i == 4 || i == 7)     ? c == '-'
             : i == 10              ? c == 'T'
             : (i == 13 || i == 16) ? c == ':'
             : i == 19              ? c == '.'
             : i == 23              ? c == 'Z'
                                    : (c >= '0' && c <= '9');
    cr_assert(ok, "bad timestamp in %.120s", line);
  }
  char want[64];
  snprintf(want, sizeof want, "\",\"level\":\"%s\",\"event\":", level);
  cr_assert(strncmp(t + 24, want, strlen(want)) == 0, "line: %.120s", line);
  json_error_t e;
  json_t *j = json_loads(line, 0, &e);
  cr_assert(j, "not JSON (%s): %.200s", e.text, line);
  return j;
}

static const char *event_of(const json_t *j) {
  return json_string_value(json_object_get(j, "event"));
}
static json_int_t int_of(const json_t *j, const char *k) {
  return json_integer_value(json_object_get(j, k));
}

/* A padding string of n bytes that needs JSON escaping now and then. */
static char *pad(size_t n, unsigned seed) {
  char *s = malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    s[i] = (char)('a' + (seed + i) % 26);
  if (n > 3)
    s[n / 2] = '"', s[n / 3] = '\\';
  s[n] = '\0';
  return s;
}

static void log_seq(const char *event, long thread, long seq, const char *padding) {
  char t[24], q[24];
  snprintf(t, sizeof t, "%ld", thread);
  snprintf(q, sizeof q, "%ld", seq);
  erpq_log(ERPQ_LOG_INFO, event, "#thread", t, "#seq", q, "pad", padding, NULL);
}

/* ---- Order and completeness ------------------------------------------------ */

Test(log, lines_keep_order_and_are_complete, .timeout = 120) {
  reader r;
  reader_start(&r, stdout_to_pipe(0));
  enum { N = 6000 };
  for (long i = 0; i < N; i++) {
    /* Mostly short lines, some past PIPE_BUF, a few past the 64 KiB chunk. */
    size_t len = i % 1000 == 999 ? 100000 : i % 50 == 7 ? 9000 : (size_t)(i % 300);
    char *p = pad(len, (unsigned)i);
    log_seq("test.line", 0, i, p);
    free(p);
  }
  erpq_log(ERPQ_LOG_DEBUG, "test.below_level", NULL); /* dropped by level, not counted */
  reader_finish(&r);
  char **lines;
  size_t n = split_lines(r.data.s, r.data.len, &lines);
  cr_assert_eq(n, N);
  for (size_t i = 0; i < n; i++) {
    json_t *j = parse_line(lines[i], "info");
    cr_assert_str_eq(event_of(j), "test.line");
    cr_assert_eq(int_of(j, "seq"), (json_int_t)i);
    size_t len = i % 1000 == 999 ? 100000 : i % 50 == 7 ? 9000 : i % 300;
    char *p = pad(len, (unsigned)i);
    cr_assert_str_eq(json_string_value(json_object_get(j, "pad")), p, "line %zu", i);
    /* The key order and raw numbers of the format. */
    char want[128];
    snprintf(want, sizeof want, "\"event\":\"test.line\",\"thread\":0,\"seq\":%zu,\"pad\":\"", i);
    cr_assert(strstr(lines[i], want), "line %zu: %.120s", i, lines[i]);
    free(p);
    json_decref(j);
  }
  cr_assert_eq(erpq_log_dropped_total(), 0);
  free(lines);
  erpq_buf_free(&r.data);
}

/* ---- A stdout that nobody reads --------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

Test(log, stuck_stdout_never_blocks_and_drops_are_counted, .timeout = 120) {
  cr_assert_eq(erpq_log_set_buffer_size(64 * 1024), 0);
  int rfd = stdout_to_pipe(4096);
  enum { N = 20000 };
  int64_t *took = malloc(N * sizeof *took);
  char *p = pad(80, 1);
  for (long i = 0; i < N; i++) {
    int64_t t0 = now_us();
    log_seq("test.stuck", 0, i, p);
    took[i] = now_us() - t0;
  }
  free(p);
  uint64_t dropped = erpq_log_dropped_total();
  qsort(took, N, sizeof *took, cmp_i64);
  cr_log_info("erpq_log() into a stuck pipe: median %" PRId64 " us, p99 %" PRId64
              " us, max %" PRId64 " us; %" PRIu64 " of %d lines dropped",
              took[N / 2], took[N * 99 / 100], took[N - 1], dropped, N);
  /* Blocking would mean forever (nobody reads); the bounds only leave room
   * for a busy machine's scheduling. */
  cr_expect_lt(took[N / 2], 100, "median %" PRId64 " us", took[N / 2]);
  cr_expect_lt(took[N - 1], 500000, "max %" PRId64 " us", took[N - 1]);
  free(took);
  /* 64 KiB of buffer, a 64 KiB chunk out and 4 KiB of pipe hold about
   * 1200 of these ~110-byte lines: most of the 20000 were dropped. */
  cr_assert_gt(dropped, N / 2);
  cr_assert_lt(dropped, N);

  /* A flush with a timeout comes back in bounded time. */
  int64_t t0 = now_us();
  cr_expect_eq(erpq_log_flush(300), ERPQ_E_TIMEOUT);
  int64_t waited = now_us() - t0;
  cr_expect(waited >= 290000 && waited < 1300000, "flush(300) took %" PRId64 " us", waited);

  /* The reader resumes: the buffered lines arrive, then the notice, then
   * what comes after. */
  reader r;
  reader_start(&r, rfd);
  /* Once the buffer is empty the writer reports the drops by itself. */
  cr_assert_eq(erpq_log_flush(20000), 0);
  log_seq("test.after", 0, N, "x");
  reader_finish(&r);
  cr_assert_eq(erpq_log_dropped_total(), dropped, "nothing more was dropped");

  char **lines;
  size_t n = split_lines(r.data.s, r.data.len, &lines);
  long expect = 0;
  uint64_t noticed = 0, received = 0;
  size_t notices = 0;
  for (size_t i = 0; i < n; i++) {
    const char *lvl = strstr(lines[i], "\"level\":\"warn\"") ? "warn" : "info";
    json_t *j = parse_line(lines[i], lvl);
    if (!strcmp(event_of(j), "log.dropped")) {
      /* Byte for byte: ts, level, event, count and nothing else. */
      char want[96];
      snprintf(want, sizeof want,
               "\",\"level\":\"warn\",\"event\":\"log.dropped\",\"count\":%" PRId64 "}",
               (int64_t)int_of(j, "count"));
      cr_assert_str_eq(lines[i] + 7 + 24, want);
      cr_assert_gt(int_of(j, "count"), 0);
      /* Exactly count lines are missing right here. */
      cr_assert_lt(i + 1, n, "the notice must be followed by the lines after the gap");
      json_t *next = parse_line(lines[i + 1], "info");
      cr_assert_eq(int_of(next, "seq") - expect, int_of(j, "count"),
                   "notice of %" PRId64 " lines before seq %" PRId64 " (expected %ld)",
                   (int64_t)int_of(j, "count"), (int64_t)int_of(next, "seq"), expect);
      expect = (long)int_of(next, "seq");
      noticed += (uint64_t)int_of(j, "count");
      notices++;
      json_decref(next);
    } else {
      cr_assert_eq(int_of(j, "seq"), expect, "line %zu: seq %" PRId64 ", expected %ld", i,
                   (int64_t)int_of(j, "seq"), expect);
      expect++;
      received++;
    }
    json_decref(j);
  }
  cr_log_info("%" PRIu64 " lines received, %zu log.dropped notices for %" PRIu64 " lines", received,
              notices, noticed);
  cr_assert_geq(notices, 1);
  cr_assert_eq(expect, N + 1, "the last line is the one logged after the reader resumed");
  cr_assert_eq(noticed, dropped);
  cr_assert_eq(received + dropped, (uint64_t)N + 1);
  free(lines);
  erpq_buf_free(&r.data);
}

/* ---- Many threads -------------------------------------------------------------- */

enum { THREADS = 8, PER_THREAD = 3000, BATCHES = 2000 };

static void *log_thread(void *arg) {
  long id = (long)(intptr_t)arg;
  for (long i = 0; i < PER_THREAD; i++) {
    size_t len = (size_t)((i * 37 + id * 11) % (i % 97 == 0 ? 6000 : 200));
    char *p = pad(len, (unsigned)(id * 1000 + i));
    log_seq("test.thread", id, i, p);
    free(p);
  }
  return NULL;
}

/* The HTTP access log's way: a batch of three lines written at once. */
static void *batch_thread(void *arg) {
  (void)arg;
  erpq_buf b = {0};
  for (long i = 0; i < BATCHES; i++) {
    erpq_buf_reset(&b);
    char q[24];
    snprintf(q, sizeof q, "%ld", i);
    erpq_log_append(&b, ERPQ_LOG_INFO, "test.batch", "#batch", q, "#part", "0", NULL);
    erpq_log_append(&b, ERPQ_LOG_INFO, "test.batch", "#batch", q, "#part", "1", NULL);
    erpq_log_append(&b, ERPQ_LOG_INFO, "test.batch", "#batch", q, "#part", "2", NULL);
    erpq_log_write_lines(b.s, b.len);
  }
  erpq_buf_free(&b);
  return NULL;
}

Test(log, threads_never_interleave, .timeout = 180) {
  cr_assert_eq(erpq_log_set_buffer_size(256u << 20), 0); /* no drops, whatever the reader does */
  reader r;
  reader_start(&r, stdout_to_pipe(0));
  pthread_t t[THREADS + 1];
  for (long i = 0; i < THREADS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i), 0);
  cr_assert_eq(pthread_create(&t[THREADS], NULL, batch_thread, NULL), 0);
  for (int i = 0; i <= THREADS; i++)
    pthread_join(t[i], NULL);
  reader_finish(&r);
  cr_assert_eq(erpq_log_dropped_total(), 0);

  char **lines;
  size_t n = split_lines(r.data.s, r.data.len, &lines);
  cr_assert_eq(n, (size_t)THREADS * PER_THREAD + 3 * BATCHES);
  long next[THREADS] = {0}, next_batch = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *j = parse_line(lines[i], "info");
    if (!strcmp(event_of(j), "test.batch")) {
      cr_assert_eq(int_of(j, "batch"), next_batch);
      cr_assert_eq(int_of(j, "part"), 0, "a batch starts with its first line");
      for (int k = 1; k <= 2; k++) {
        cr_assert_lt(i + (size_t)k, n);
        json_t *b = parse_line(lines[i + (size_t)k], "info");
        cr_assert_str_eq(event_of(b), "test.batch", "batch %ld was split", next_batch);
        cr_assert_eq(int_of(b, "batch"), next_batch);
        cr_assert_eq(int_of(b, "part"), k);
        json_decref(b);
      }
      i += 2;
      next_batch++;
    } else {
      long id = (long)int_of(j, "thread");
      cr_assert(id >= 0 && id < THREADS);
      long seq = (long)int_of(j, "seq");
      cr_assert_eq(seq, next[id], "thread %ld: seq %ld, expected %ld", id, seq, next[id]);
      size_t len = (size_t)((seq * 37 + id * 11) % (seq % 97 == 0 ? 6000 : 200));
      char *p = pad(len, (unsigned)(id * 1000 + seq));
      cr_assert_str_eq(json_string_value(json_object_get(j, "pad")), p);
      free(p);
      next[id]++;
    }
    json_decref(j);
  }
  for (int i = 0; i < THREADS; i++)
    cr_assert_eq(next[i], PER_THREAD);
  cr_assert_eq(next_batch, BATCHES);
  free(lines);
  erpq_buf_free(&r.data);
}

/* ---- fork() ------------------------------------------------------------------------ */

static volatile int hammering = 1;

static void *hammer(void *arg) {
  (void)arg;
  long i = 0;
  while (hammering) {
    log_seq("test.parent", 0, i++, "");
    if (i % 16 == 0)
      usleep(100);
  }
  return NULL;
}

/* Waits for pid at most ms milliseconds; kills it when it hangs. */
static int wait_child(pid_t pid, int ms, int *status) {
  for (int waited = 0; waited < ms; waited += 5) {
    pid_t w = waitpid(pid, status, WNOHANG);
    if (w == pid)
      return 0;
    usleep(5000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, status, 0);
  return -1;
}

Test(log, forked_children_do_not_deadlock, .timeout = 180) {
  cr_assert_eq(erpq_log_set_buffer_size(64u << 20), 0);
  reader r;
  reader_start(&r, stdout_to_pipe(0));
  log_seq("test.parent_start", 0, 0, "");
  pthread_t h;
  cr_assert_eq(pthread_create(&h, NULL, hammer, NULL), 0);
  enum { CHILDREN = 40 };
  for (long c = 0; c < CHILDREN; c++) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
      /* The only thread here; the buffer mutex must be usable. */
      log_seq("test.child", c, 0, "");
      log_seq("test.child", c, 1, "");
      _exit(erpq_log_flush(5000) == 0 ? 0 : 3);
    }
    int st = 0;
    cr_assert_eq(wait_child(pid, 10000, &st), 0, "child %ld hung (deadlock)", c);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %ld: status %d", c, st);
  }
  hammering = 0;
  pthread_join(h, NULL);
  reader_finish(&r);

  char **lines;
  size_t n = split_lines(r.data.s, r.data.len, &lines);
  long next_parent = 0;
  int child_lines[CHILDREN] = {0};
  for (size_t i = 0; i < n; i++) {
    json_t *j = parse_line(lines[i], "info");
    const char *ev = event_of(j);
    if (!strcmp(ev, "test.parent")) {
      /* Each parent line once: no child wrote what the parent had buffered. */
      cr_assert_eq(int_of(j, "seq"), next_parent);
      next_parent++;
    } else if (!strcmp(ev, "test.child")) {
      long c = (long)int_of(j, "thread");
      cr_assert_eq(int_of(j, "seq"), child_lines[c]);
      child_lines[c]++;
    } else {
      cr_assert_str_eq(ev, "test.parent_start");
    }
    json_decref(j);
  }
  for (int c = 0; c < CHILDREN; c++)
    cr_assert_eq(child_lines[c], 2, "child %d", c);
  cr_assert_gt(next_parent, 0);
  free(lines);
  erpq_buf_free(&r.data);
}

/* ---- exit() without a flush ------------------------------------------------------ */

/* The child role of the exit tests: runs before Criterion's main. */
__attribute__((constructor)) static void log_child(void) {
  const char *role = getenv("ERPQ_TEST_LOG_CHILD");
  if (!role)
    return;
  long n = atol(role);
  for (long i = 0; i < n; i++)
    log_seq("test.exit", 0, i, "some text to make the line longer");
  exit(0); /* no erpq_log_flush(): the atexit handler must write the rest */
}

static pid_t spawn_child(long lines, int out_fd) {
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    char n[24];
    snprintf(n, sizeof n, "%ld", lines);
    setenv("ERPQ_TEST_LOG_CHILD", n, 1);
    dup2(out_fd, STDOUT_FILENO);
    execl("/proc/self/exe", "test_log", (char *)NULL);
    _exit(127);
  }
  return pid;
}

Test(log, exit_writes_what_is_buffered, .timeout = 120) {
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  enum { N = 30000 };
  pid_t pid = spawn_child(N, p[1]);
  close(p[1]);
  reader r;
  memset(&r, 0, sizeof r);
  r.fd = p[0];
  read_main(&r);
  close(p[0]);
  int st = 0;
  cr_assert_eq(wait_child(pid, 20000, &st), 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  char **lines;
  size_t n = split_lines(r.data.s, r.data.len, &lines);
  cr_assert_eq(n, N, "%zu of %d lines arrived", n, N);
  for (size_t i = 0; i < n; i++) {
    json_t *j = parse_line(lines[i], "info");
    cr_assert_eq(int_of(j, "seq"), (json_int_t)i);
    json_decref(j);
  }
  free(lines);
  erpq_buf_free(&r.data);
}

Test(log, exit_with_a_stuck_stdout_ends_in_bounded_time, .timeout = 60) {
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  cr_assert_geq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
  int64_t t0 = now_us();
  pid_t pid = spawn_child(20000, p[1]); /* nobody reads p[0] */
  close(p[1]);
  int st = 0;
  cr_assert_eq(wait_child(pid, 15000, &st), 0, "exit hung on a stuck stdout");
  int64_t took = now_us() - t0;
  cr_log_info("exit with a stuck stdout took %" PRId64 " ms", took / 1000);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  cr_expect_geq(took, 1900000, "the exit flush gives up after about 2 s, not at once");
  close(p[0]);
}
