/*
 * test_producer_cli.c - erpq-producer, the real binary, against a real Redis.
 *
 * Every test runs $ERPQ_BIN_DIR/erpq-producer with ERPQ_REDIS_URL set to
 * $ERPQ_TEST_REDIS_URL (both required: the suite fails, never skips, when
 * they are missing) on a queue of its own, then checks what Redis holds with
 * hiredis: the exact fields, encodings and structures bull 4.16.5 would
 * leave. Jobs are completed or failed, when a test needs it, by a "worker"
 * made of erpq_bull_step() calls, so no worker process is involved.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

/* ---- Environment ----------------------------------------------------------- */

static const char *redis_url(void) {
  const char *u = getenv("ERPQ_TEST_REDIS_URL");
  cr_assert(u && *u, "ERPQ_TEST_REDIS_URL is not set: run the suite through scripts/test or ctest "
                     "with a throwaway Redis");
  return u;
}

static const char *producer_path(void) {
  static char path[4096];
  const char *dir = getenv("ERPQ_BIN_DIR");
  cr_assert(dir && *dir, "ERPQ_BIN_DIR is not set (ctest sets it)");
  snprintf(path, sizeof path, "%s/erpq-producer", dir);
  cr_assert(access(path, X_OK) == 0, "%s is not executable", path);
  return path;
}

static redisContext *connect_redis(void) {
  erpq_redis_addr a;
  char err[256];
  cr_assert(erpq_redis_url_parse(redis_url(), &a, err, sizeof err) == 0, "%s", err);
  struct timeval tv = {5, 0};
  redisContext *c = a.unix_path[0] ? redisConnectUnixWithTimeout(a.unix_path, tv)
                                   : redisConnectWithTimeout(a.host, a.port, tv);
  cr_assert(c && !c->err, "cannot connect to the test Redis at %s", redis_url());
  if (a.password[0]) {
    redisReply *r = a.user[0] ? redisCommand(c, "AUTH %s %s", a.user, a.password)
                              : redisCommand(c, "AUTH %s", a.password);
    cr_assert(r && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
  }
  if (a.db) {
    redisReply *r = redisCommand(c, "SELECT %d", a.db);
    cr_assert(r && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
  }
  return c;
}

/* ---- Running the CLI ------------------------------------------------------- */

typedef struct result {
  int code;
  char *out, *err;
} result;

static void result_free(result *r) {
  free(r->out);
  free(r->err);
}

static void append(char **buf, size_t *len, const char *s, size_t n) {
  *buf = realloc(*buf, *len + n + 1);
  cr_assert(*buf);
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* Runs erpq-producer with args (NULL-terminated), feeding input (may be
 * NULL) on stdin. extra_env: "NAME=value" strings (NULL-terminated; NULL). */
static result run_cli_env(const char *input, const char *const *extra_env, const char *const *args) {
  const char *path = producer_path();
  const char *url = redis_url();
  int in[2], out[2], err[2];
  cr_assert(pipe(in) == 0 && pipe(out) == 0 && pipe(err) == 0);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    setenv("ERPQ_REDIS_URL", url, 1);
    unsetenv("ERPQ_PREFIX");
    for (size_t i = 0; extra_env && extra_env[i]; i++) putenv((char *)extra_env[i]);
    size_t n = 0;
    while (args[n]) n++;
    char **argv = calloc(n + 3, sizeof *argv);
    argv[0] = (char *)"erpq-producer";
    size_t k = 1;
    int skipped = 0;
    for (size_t i = 0; i < n; i++) {
      argv[k++] = (char *)args[i];
      /* These tests add to queues of their own that no job family serves
       * (the protocol is what they test): skip the pre-send checks, as a
       * user adding jobs for other workers does. */
      if (!skipped && (!strcmp(args[i], "add") || !strcmp(args[i], "add-bulk"))) {
        argv[k++] = (char *)"--no-validate";
        skipped = 1;
      }
    }
    execv(path, argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  signal(SIGPIPE, SIG_IGN);
  size_t in_len = input ? strlen(input) : 0, in_off = 0;
  if (!in_len) {
    close(in[1]);
    in[1] = -1;
  } else {
    fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  result r = {0, NULL, NULL};
  size_t ol = 0, el = 0;
  append(&r.out, &ol, "", 0);
  append(&r.err, &el, "", 0);
  int open_out = 1, open_err = 1;
  while (open_out || open_err) {
    struct pollfd p[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    p[0].fd = open_out ? out[0] : -1;
    p[1].fd = open_err ? err[0] : -1;
    cr_assert(poll(p, 3, 120000) > 0, "erpq-producer hung");
    char buf[8192];
    if (p[0].revents) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) open_out = 0;
      else append(&r.out, &ol, buf, (size_t)n);
    }
    if (p[1].revents) {
      ssize_t n = read(err[0], buf, sizeof buf);
      if (n <= 0) open_err = 0;
      else append(&r.err, &el, buf, (size_t)n);
    }
    if (in[1] >= 0 && p[2].revents) {
      ssize_t n = write(in[1], input + in_off, in_len - in_off);
      if (n > 0) in_off += (size_t)n;
      if (n < 0 || in_off >= in_len) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  if (in[1] >= 0) close(in[1]);
  close(out[0]);
  close(err[0]);
  int st;
  cr_assert(waitpid(pid, &st, 0) == pid);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

#define CLI(...) run_cli_env(NULL, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_IN(input, ...) run_cli_env(input, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_ENV(env, ...) run_cli_env(NULL, env, (const char *const[]){__VA_ARGS__, NULL})

/* Asserts exit 0 and returns stdout's first line (static buffer). */
static const char *ok_line(result r) {
  static char line[4096];
  cr_assert_eq(r.code, 0, "exit %d, stderr: %s", r.code, r.err);
  snprintf(line, sizeof line, "%s", r.out);
  line[strcspn(line, "\n")] = '\0';
  result_free(&r);
  return line;
}

/* Asserts an exit code and a one-line error on stderr that contains needle. */
static void expect_fail(result r, int code, const char *needle) {
  cr_assert_eq(r.code, code, "expected exit %d, got %d; stdout: %s; stderr: %s", code, r.code,
               r.out, r.err);
  cr_assert(strstr(r.err, "erpq-producer: ") == r.err, "stderr: %s", r.err);
  size_t len = strlen(r.err);
  cr_assert(len > 0 && r.err[len - 1] == '\n' && strchr(r.err, '\n') == r.err + len - 1,
            "the error is not one line: %s", r.err);
  if (needle) cr_assert(strstr(r.err, needle), "stderr lacks '%s': %s", needle, r.err);
  result_free(&r);
}

/* ---- Redis helpers --------------------------------------------------------- */

static redisContext *R;
static char Q[96];  /* This test's queue. */
static char P[160]; /* "bull:<Q>:" */

static void setup(void) {
  static int counter;
  R = connect_redis();
  snprintf(Q, sizeof Q, "cli-%d-%d-%" PRId64, (int)getpid(), ++counter, erpq_mono_ms());
  snprintf(P, sizeof P, "bull:%s:", Q);
  cr_assert(erpq_scripts_init() == 0);
}

static void teardown(void) {
  if (R) redisFree(R);
  R = NULL;
}

/* No per-test timeout: under valgrind one test execs some forty CLIs at a
 * few seconds each; ctest's TIMEOUT bounds the binary (600 s, valgrind 1800 s). */
TestSuite(cli, .init = setup, .fini = teardown);

static redisReply *cmd(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(R, fmt, ap);
  va_end(ap);
  cr_assert(r, "Redis connection error: %s", R->errstr);
  cr_assert(r->type != REDIS_REPLY_ERROR, "Redis error: %s", r->str);
  return r;
}

/* Key of this queue: "bull:<Q>:<suffix>" (static rotating buffers). */
static const char *K(const char *suffix) {
  static char bufs[8][256];
  static int i;
  char *b = bufs[i++ % 8];
  snprintf(b, 256, "%s%s", P, suffix);
  return b;
}

static long long integer(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(R, fmt, ap);
  va_end(ap);
  cr_assert(r && r->type == REDIS_REPLY_INTEGER, "not an integer reply");
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* A string reply (NULL for nil), malloc'ed. */
static char *str(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(R, fmt, ap);
  va_end(ap);
  cr_assert(r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL), "not a string reply");
  char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
  freeReplyObject(r);
  return s;
}

/* A list/zset range joined by commas. */
static char *joined(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(R, fmt, ap);
  va_end(ap);
  cr_assert(r && r->type == REDIS_REPLY_ARRAY);
  char *s = NULL;
  size_t len = 0;
  append(&s, &len, "", 0);
  for (size_t i = 0; i < r->elements; i++) {
    if (i) append(&s, &len, ",", 1);
    append(&s, &len, r->element[i]->str, r->element[i]->len);
  }
  freeReplyObject(r);
  return s;
}

static void expect_joined(const char *want, char *got) {
  cr_assert_str_eq(got, want);
  free(got);
}

static void expect_str(const char *want, char *got) {
  cr_assert(got, "missing value, wanted '%s'", want ? want : "(nil)");
  cr_assert_str_eq(got, want);
  free(got);
}

static json_t *parse(const char *s) {
  json_error_t je;
  json_t *v = json_loads(s, JSON_DECODE_ANY, &je);
  cr_assert(v, "not JSON (%s): %s", je.text, s);
  return v;
}

/* ---- A worker made of erpq_bull_step() calls ------------------------------- */

static redisReply *run_cmd(redisContext *c, erpq_cmd *e) {
  const char **argv;
  const size_t *lens;
  int argc = erpq_cmd_argv(e, &argv, &lens);
  cr_assert(argc > 0);
  redisReply *r = redisCommandArgv(c, argc, argv, lens);
  if (r && erpq_reply_noscript(r)) {
    freeReplyObject(r);
    erpq_cmd_use_eval(e);
    argc = erpq_cmd_argv(e, &argv, &lens);
    r = redisCommandArgv(c, argc, argv, lens);
  }
  cr_assert(r && r->type != REDIS_REPLY_ERROR, "step failed: %s", r ? r->str : c->errstr);
  return r;
}

#define TOKEN "11111111-2222-4333-8444-555555555555"

/* Fetches the next job of queue q (waiting up to 30 s); returns its id. */
static char *fetch_one(redisContext *c, const char *q) {
  erpq_keys k;
  cr_assert(erpq_keys_init(&k, "bull", q) == 0);
  char *id = NULL;
  for (int tries = 0; tries < 3000 && !id; tries++) {
    erpq_cmd e;
    erpq_cmd_init(&e);
    erpq_bull_step(&e, &k, TOKEN, 30000, erpq_now_ms(), 1, NULL, NULL, NULL, 0);
    redisReply *r = run_cmd(c, &e);
    erpq_step_result s;
    cr_assert(erpq_bull_parse_step(r, &s) == 0);
    if (s.njobs == 1) id = strdup(s.jobs[0].id);
    erpq_step_result_free(&s);
    freeReplyObject(r);
    erpq_cmd_free(&e);
    if (!id) usleep(10000);
  }
  erpq_keys_free(&k);
  cr_assert(id, "no job to fetch in %s", q);
  return id;
}

/* Finishes an active job held by TOKEN: completed with value as returnvalue
 * JSON, or failed for good with value as the reason. */
static void finish(redisContext *c, const char *q, const char *id, erpq_finish_kind kind,
                   const char *value) {
  erpq_keys k;
  cr_assert(erpq_keys_init(&k, "bull", q) == 0);
  erpq_finish f;
  memset(&f, 0, sizeof f);
  f.kind = kind;
  f.id = id;
  f.value = value;
  f.stacktrace = "[\"Error: boom\"]";
  f.attempts_made = 1;
  f.keep.count = -1;
  f.keep.has_count = 1;
  erpq_cmd e;
  erpq_cmd_init(&e);
  erpq_bull_step(&e, &k, TOKEN, 30000, erpq_now_ms(), 0, NULL, NULL, &f, 1);
  redisReply *r = run_cmd(c, &e);
  erpq_step_result s;
  cr_assert(erpq_bull_parse_step(r, &s) == 0);
  cr_assert_eq(s.ncodes, 1);
  cr_assert_eq(s.codes[0], 0, "finish code %d", s.codes[0]);
  erpq_step_result_free(&s);
  freeReplyObject(r);
  erpq_cmd_free(&e);
  erpq_keys_free(&k);
}

/* Adds a job with the CLI, fetches and finishes it; returns its id. */
static char *finished_job(erpq_finish_kind kind, const char *value) {
  char *id = strdup(ok_line(CLI("add", Q, "job")));
  char *got = fetch_one(R, Q);
  cr_assert_str_eq(got, id);
  free(got);
  finish(R, Q, id, kind, value);
  return id;
}

/* ---- add ------------------------------------------------------------------- */

Test(cli, add_plain_job_has_exactly_bulls_fields) {
  int64_t before = erpq_now_ms();
  const char *line = ok_line(CLI("add", Q, "report", "--data", "{\"user\": 7, \"tags\": [\"a\", \"é/x\"]}"));
  int64_t after = erpq_now_ms();
  cr_assert_str_eq(line, "1");
  expect_str("1", str("GET %s", K("id")));
  /* Exactly the six fields addJob writes. */
  redisReply *h = cmd("HGETALL %s", K("1"));
  cr_assert_eq(h->elements, 12, "fields: %zu", h->elements / 2);
  freeReplyObject(h);
  expect_str("report", str("HGET %s name", K("1")));
  expect_str("{\"user\":7,\"tags\":[\"a\",\"é/x\"]}", str("HGET %s data", K("1")));
  expect_str("0", str("HGET %s delay", K("1")));
  expect_str("0", str("HGET %s priority", K("1")));
  char *ts = str("HGET %s timestamp", K("1"));
  int64_t t = strtoll(ts, NULL, 10);
  cr_assert(t >= before && t <= after, "timestamp %s", ts);
  /* opts after bull's defaults, as JSON.stringify orders them. */
  char want[128];
  snprintf(want, sizeof want, "{\"attempts\":1,\"delay\":0,\"timestamp\":%s}", ts);
  expect_str(want, str("HGET %s opts", K("1")));
  free(ts);
  expect_joined("1", joined("LRANGE %s 0 -1", K("wait")));
  cr_assert_eq(integer("EXISTS %s", K("delayed")), 0);
  cr_assert_eq(integer("EXISTS %s", K("priority")), 0);
  /* A second add takes the next counter value. */
  cr_assert_str_eq(ok_line(CLI("add", Q, "report")), "2");
  expect_str("{}", str("HGET %s data", K("2")));
  expect_joined("2,1", joined("LRANGE %s 0 -1", K("wait")));
}

Test(cli, add_opts_after_defaults_match_node) {
  cr_assert_str_eq(ok_line(CLI("add", Q, "n", "--opts",
                               "{\"removeOnComplete\":true,\"attempts\":\"3\",\"backoff\":1000,"
                               "\"timeout\":5000,\"removeOnFail\":{\"age\":60,\"count\":5}}")),
                   "1");
  char *ts = str("HGET %s timestamp", K("1"));
  char want[512];
  snprintf(want, sizeof want,
           "{\"removeOnComplete\":true,\"attempts\":3,\"backoff\":{\"type\":\"fixed\",\"delay\":1000},"
           "\"timeout\":5000,\"removeOnFail\":{\"age\":60,\"count\":5},\"delay\":0,\"timestamp\":%s}",
           ts);
  expect_str(want, str("HGET %s opts", K("1")));
  free(ts);
}

Test(cli, add_data_and_opts_from_files) {
  char dpath[] = "/tmp/erpq-cli-data-XXXXXX";
  int fd = mkstemp(dpath);
  cr_assert(fd >= 0);
  const char *doc = "{\n  \"big\": [1, 2, 3]\n}\n";
  cr_assert_eq(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
  close(fd);
  char darg[64], oarg[16] = "@-";
  snprintf(darg, sizeof darg, "@%s", dpath);
  result r = CLI_IN("{\"jobId\":\"from-files\"}", "add", Q, "f", "--data", darg, "--opts", oarg);
  unlink(dpath);
  cr_assert_str_eq(ok_line(r), "from-files");
  expect_str("{\"big\":[1,2,3]}", str("HGET %s data", K("from-files")));
}

Test(cli, add_custom_id_and_duplicate) {
  cr_assert_str_eq(ok_line(CLI("add", Q, "a", "--data", "{\"v\":1}", "--opts", "{\"jobId\":\"order-17\"}")),
                   "order-17");
  char *ts = str("HGET %s timestamp", K("order-17"));
  char want[160];
  snprintf(want, sizeof want, "{\"jobId\":\"order-17\",\"attempts\":1,\"delay\":0,\"timestamp\":%s}", ts);
  expect_str(want, str("HGET %s opts", K("order-17")));
  free(ts);
  /* The duplicate returns the existing id and changes nothing but K(id). */
  cr_assert_str_eq(ok_line(CLI("add", Q, "b", "--data", "{\"v\":2}", "--opts", "{\"jobId\":\"order-17\"}")),
                   "order-17");
  expect_str("{\"v\":1}", str("HGET %s data", K("order-17")));
  expect_str("a", str("HGET %s name", K("order-17")));
  expect_str("2", str("GET %s", K("id")));
  expect_joined("order-17", joined("LRANGE %s 0 -1", K("wait")));
  /* A numeric jobId is stored as a string id. */
  cr_assert_str_eq(ok_line(CLI("add", Q, "c", "--opts", "{\"jobId\":9001}")), "9001");
}

Test(cli, add_delayed_score_and_event_structures) {
  freeReplyObject(cmd("SET %s 5000", K("id")));
  cr_assert_str_eq(ok_line(CLI("add", Q, "later", "--opts", "{\"delay\":60000}")), "5001");
  expect_str("60000", str("HGET %s delay", K("5001")));
  char *ts = str("HGET %s timestamp", K("5001"));
  long long t = strtoll(ts, NULL, 10);
  free(ts);
  char *score = str("ZSCORE %s 5001", K("delayed"));
  long long want = (t + 60000) * 4096 + (5001 & 0xfff);
  cr_assert_eq(strtoll(score, NULL, 10), want, "score %s, want %lld", score, want);
  free(score);
  cr_assert_eq(integer("LLEN %s", K("wait")), 0);
  char *st = strdup(ok_line(CLI("status", Q, "5001")));
  json_t *o = parse(st);
  cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "delayed");
  cr_assert_eq(json_integer_value(json_object_get(o, "delay")), 60000);
  json_decref(o);
  free(st);
}

Test(cli, add_lifo) {
  ok_line(CLI("add", Q, "a"));
  ok_line(CLI("add", Q, "b"));
  ok_line(CLI("add", Q, "c", "--opts", "{\"lifo\":true}"));
  /* LPUSH, LPUSH, RPUSH: the tail (next to run) is the lifo job. */
  expect_joined("2,1,3", joined("LRANGE %s 0 -1", K("wait")));
}

Test(cli, add_priority_ordering) {
  ok_line(CLI("add", Q, "p0"));                                   /* 1 */
  ok_line(CLI("add", Q, "p5", "--opts", "{\"priority\":5}"));     /* 2 */
  ok_line(CLI("add", Q, "p1", "--opts", "{\"priority\":1}"));     /* 3 */
  ok_line(CLI("add", Q, "p5b", "--opts", "{\"priority\":5}"));    /* 4 */
  ok_line(CLI("add", Q, "p1b", "--opts", "{\"priority\":1}"));    /* 5 */
  /* Workers pop the tail: 3, 5 (priority 1), 2, 4 (priority 5), then 1. */
  expect_joined("1,4,2,5,3", joined("LRANGE %s 0 -1", K("wait")));
  expect_joined("3,5,2,4", joined("ZRANGE %s 0 -1", K("priority")));
  expect_str("5", str("ZSCORE %s 2", K("priority")));
  expect_str("5", str("HGET %s priority", K("4")));
}

Test(cli, add_while_paused_lands_in_paused) {
  ok_line(CLI("add", Q, "before"));
  result r = CLI("pause", Q);
  json_t *o = parse(r.out);
  cr_assert(json_is_true(json_object_get(o, "paused")));
  json_decref(o);
  ok_line(r);
  expect_str("1", str("GET %s", K("meta-paused")));
  expect_str("1", str("HGET %s paused", K("meta")));
  cr_assert_str_eq(ok_line(CLI("add", Q, "during")), "2");
  cr_assert_str_eq(ok_line(CLI("add", Q, "prio", "--opts", "{\"priority\":2}")), "3");
  cr_assert_eq(integer("EXISTS %s", K("wait")), 0);
  expect_joined("2,1,3", joined("LRANGE %s 0 -1", K("paused")));
  result c = CLI("counts", Q);
  cr_assert_str_eq(ok_line(c),
                   "{\"waiting\":0,\"active\":0,\"completed\":0,\"failed\":0,\"delayed\":0,\"paused\":3}");
  ok_line(CLI("resume", Q));
  cr_assert_eq(integer("EXISTS %s", K("meta-paused")), 0);
  cr_assert_eq(integer("HEXISTS %s paused", K("meta")), 0);
  expect_joined("2,1,3", joined("LRANGE %s 0 -1", K("wait")));
  cr_assert_eq(integer("EXISTS %s", K("paused")), 0);
}

Test(cli, add_with_hash_tagged_prefix) {
  cr_assert_str_eq(ok_line(CLI("--prefix", "{erp}", "add", Q, "t")), "1");
  char key[256];
  snprintf(key, sizeof key, "{erp}:%s:wait", Q);
  expect_joined("1", joined("LRANGE %s 0 -1", key));
  snprintf(key, sizeof key, "{erp}:%s:1", Q);
  expect_str("t", str("HGET %s name", key));
  cr_assert_eq(integer("EXISTS %s", K("wait")), 0);
  /* ERPQ_PREFIX is the default prefix. */
  const char *env[] = {"ERPQ_PREFIX={erp}", NULL};
  cr_assert_str_eq(ok_line(CLI_ENV(env, "add", Q, "t")), "2");
  result c = CLI_ENV(env, "counts", Q);
  cr_assert_str_eq(ok_line(c),
                   "{\"waiting\":2,\"active\":0,\"completed\":0,\"failed\":0,\"delayed\":0,\"paused\":0}");
}

Test(cli, add_publishes_waiting_with_a_uuid_token) {
  redisContext *sub = connect_redis();
  char pattern[256];
  snprintf(pattern, sizeof pattern, "%swaiting@*", P);
  redisReply *r = redisCommand(sub, "PSUBSCRIBE %s", pattern);
  cr_assert(r);
  freeReplyObject(r);
  ok_line(CLI("add", Q, "x"));
  void *v = NULL;
  cr_assert(redisGetReply(sub, &v) == REDIS_OK && v);
  r = v;
  cr_assert_eq(r->elements, 4);
  cr_assert_str_eq(r->element[0]->str, "pmessage");
  const char *chan = r->element[2]->str;
  const char *at = strchr(chan, '@');
  cr_assert(at && strlen(at + 1) == 36 && at[15] == '4', "token is not a uuid v4: %s", chan);
  cr_assert_str_eq(r->element[3]->str, "1");
  freeReplyObject(r);
  redisFree(sub);
}

Test(cli, script_cache_flush_falls_back_to_eval) {
  freeReplyObject(cmd("SCRIPT FLUSH"));
  cr_assert_str_eq(ok_line(CLI("add", Q, "x")), "1");
}

/* ---- Repeatable jobs ------------------------------------------------------- */

Test(cli, add_repeatable_then_remove_repeatable) {
  int64_t before = erpq_now_ms();
  const char *line = ok_line(CLI("add", Q, "tick", "--data", "{\"r\":1}", "--opts",
                                 "{\"repeat\":{\"every\":60000}}"));
  /* The first occurrence: "repeat:<md5>:<next multiple of every>". */
  char *id = strdup(line);
  cr_assert(strncmp(id, "repeat:", 7) == 0 && strlen(id) > 7 + 32 + 1 && id[39] == ':', "id %s", id);
  int64_t ms = strtoll(id + 40, NULL, 10);
  cr_assert(ms % 60000 == 0 && ms > before && ms <= erpq_now_ms() + 60000, "next %s", id + 40);
  expect_joined("tick:::60000", joined("ZRANGE %s 0 -1", K("repeat")));
  char *score = str("ZSCORE %s tick:::60000", K("repeat"));
  cr_assert_eq(strtoll(score, NULL, 10), ms);
  free(score);
  expect_joined(id, joined("ZRANGE %s 0 -1", K("delayed")));
  char *opts = str("HGET %s opts", K(id));
  json_t *o = parse(opts);
  const json_t *rep = json_object_get(o, "repeat");
  cr_assert_eq(json_integer_value(json_object_get(rep, "count")), 1);
  cr_assert_str_eq(json_string_value(json_object_get(rep, "key")), "tick:::60000");
  cr_assert_str_eq(json_string_value(json_object_get(o, "jobId")), id);
  cr_assert_eq(json_integer_value(json_object_get(o, "prevMillis")), ms);
  json_decref(o);
  free(opts);
  /* Adding it again is idempotent. */
  cr_assert_str_eq(ok_line(CLI("add", Q, "tick", "--opts", "{\"repeat\":{\"every\":60000}}")), id);
  cr_assert_eq(integer("ZCARD %s", K("delayed")), 1);

  result r = CLI("remove-repeatable", Q, "tick", "--repeat", "{\"every\":60000}");
  json_t *res = parse(r.out);
  cr_assert(json_is_true(json_object_get(res, "removed")));
  json_decref(res);
  ok_line(r);
  cr_assert_eq(integer("EXISTS %s %s %s", K("repeat"), K("delayed"), K(id)), 0);
  free(id);
  /* A repeatable that has run out is not added. */
  expect_fail(CLI("add", Q, "old", "--opts", "{\"repeat\":{\"every\":1000,\"endDate\":1000}}"), 1,
              "no occurrence left");
}

/* ---- add-bulk -------------------------------------------------------------- */

Test(cli, add_bulk_adds_lines_in_order) {
  const char *in =
      "{\"name\":\"a\",\"data\":{\"n\":1}}\n"
      "\n"
      "{\"name\":\"b\",\"data\":{\"n\":2},\"opts\":{\"priority\":1}}\n"
      "{\"data\":[3],\"opts\":{\"jobId\":\"custom\",\"delay\":1000}}\n"
      "{\"name\":\"d\",\"opts\":{\"lifo\":true}}\n";
  result r = CLI_IN(in, "add-bulk", Q, "-");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  cr_assert_str_eq(r.out, "1\n2\ncustom\n4\n");
  result_free(&r);
  expect_str("a", str("HGET %s name", K("1")));
  expect_str("{\"n\":2}", str("HGET %s data", K("2")));
  expect_str("__default__", str("HGET %s name", K("custom")));
  expect_str("[3]", str("HGET %s data", K("custom")));
  expect_str("{}", str("HGET %s data", K("4")));
  expect_joined("1,2,4", joined("LRANGE %s 0 -1", K("wait")));
  expect_joined("custom", joined("ZRANGE %s 0 -1", K("delayed")));
  /* The custom id's delayed score uses the add counter (3). */
  char *score = str("ZSCORE %s custom", K("delayed"));
  cr_assert_eq(strtoll(score, NULL, 10) & 0xfff, 3);
  free(score);
}

Test(cli, add_bulk_from_file_in_batches) {
  char path[] = "/tmp/erpq-cli-bulk-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 2500; i++) fprintf(f, "{\"name\":\"j\",\"data\":{\"i\":%d}}\n", i);
  fclose(f);
  result r = CLI("add-bulk", Q, path);
  unlink(path);
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  int lines = 0;
  for (char *p = r.out; *p; p++) lines += *p == '\n';
  cr_assert_eq(lines, 2500);
  cr_assert(strncmp(r.out, "1\n2\n", 4) == 0);
  result_free(&r);
  cr_assert_eq(integer("LLEN %s", K("wait")), 2500);
  expect_str("{\"i\":2499}", str("HGET %s data", K("2500")));
}

Test(cli, add_bulk_bad_line_adds_nothing) {
  const char *bad[] = {
      "{\"name\":\"a\"}\n{\"name\":\"b\",\"data\":{oops}\n{\"name\":\"c\"}\n",
      "{\"name\":\"a\"}\n[1,2]\n",
      "{\"name\":\"a\"}\n{\"name\":5}\n",
      "{\"name\":\"a\"}\n{\"name\":\"b\",\"opts\":[]}\n",
      "{\"name\":\"a\"}\n{\"name\":\"b\",\"extra\":1}\n",
      "{\"name\":\"a\"}\n{\"opts\":{\"priority\":-1}}\n",
      "{\"name\":\"a\"}\n{\"opts\":{\"repeat\":{\"every\":1000}}}\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_fail(CLI_IN(bad[i], "add-bulk", Q, "-"), 2, "line 2");
  cr_assert_eq(integer("EXISTS %s %s %s", K("id"), K("wait"), K("1")), 0);
  expect_fail(CLI("add-bulk", Q, "/nonexistent/jobs.jsonl"), 2, "/nonexistent/jobs.jsonl");
}

/* ---- status / counts ------------------------------------------------------- */

Test(cli, status_shows_the_job_and_missing_is_exit_1) {
  char *id = finished_job(ERPQ_FIN_COMPLETED, "{\"total\":42}");
  result r = CLI("status", Q, id);
  cr_assert_eq(r.code, 0);
  json_t *o = parse(r.out);
  result_free(&r);
  cr_assert_str_eq(json_string_value(json_object_get(o, "id")), id);
  cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "job");
  cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "completed");
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "returnvalue"), "total")), 42);
  cr_assert(json_is_integer(json_object_get(o, "timestamp")));
  cr_assert(json_is_integer(json_object_get(o, "processedOn")));
  cr_assert(json_is_integer(json_object_get(o, "finishedOn")));
  cr_assert(json_is_null(json_object_get(o, "failedReason")));
  cr_assert_eq(json_integer_value(json_object_get(o, "attemptsMade")), 0);
  cr_assert(json_is_integer(json_object_get(o, "progress")));
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "opts"), "attempts")), 1);
  json_decref(o);
  free(id);

  id = finished_job(ERPQ_FIN_FAILED, "disk full");
  r = CLI("status", Q, id);
  o = parse(r.out);
  result_free(&r);
  cr_assert_str_eq(json_string_value(json_object_get(o, "state")), "failed");
  cr_assert_str_eq(json_string_value(json_object_get(o, "failedReason")), "disk full");
  cr_assert_eq(json_integer_value(json_object_get(o, "attemptsMade")), 1);
  json_decref(o);
  free(id);

  expect_fail(CLI("status", Q, "nope"), 1, "not found");
}

Test(cli, counts_every_state) {
  char *c1 = finished_job(ERPQ_FIN_COMPLETED, "1");
  char *f1 = finished_job(ERPQ_FIN_FAILED, "x");
  ok_line(CLI("add", Q, "active"));
  free(fetch_one(R, Q));
  ok_line(CLI("add", Q, "w1"));
  ok_line(CLI("add", Q, "w2"));
  ok_line(CLI("add", Q, "d", "--opts", "{\"delay\":100000}"));
  cr_assert_str_eq(ok_line(CLI("counts", Q)),
                   "{\"waiting\":2,\"active\":1,\"completed\":1,\"failed\":1,\"delayed\":1,\"paused\":0}");
  ok_line(CLI("pause", Q));
  cr_assert_str_eq(ok_line(CLI("counts", Q)),
                   "{\"waiting\":0,\"active\":1,\"completed\":1,\"failed\":1,\"delayed\":1,\"paused\":2}");
  free(c1);
  free(f1);
}

/* ---- remove / promote / retry / clean -------------------------------------- */

Test(cli, remove_job_locked_and_missing) {
  ok_line(CLI("add", Q, "a", "--opts", "{\"priority\":3}"));
  cr_assert_str_eq(ok_line(CLI("remove", Q, "1")), "{\"id\":\"1\",\"removed\":true}");
  cr_assert_eq(integer("EXISTS %s", K("1")), 0);
  cr_assert_eq(integer("LLEN %s", K("wait")), 0);
  cr_assert_eq(integer("ZCARD %s", K("priority")), 0);
  expect_fail(CLI("remove", Q, "1"), 1, "not found");
  /* A job a worker holds is locked. */
  ok_line(CLI("add", Q, "b"));
  char *id = fetch_one(R, Q);
  expect_fail(CLI("remove", Q, id), 1, "locked");
  cr_assert_eq(integer("EXISTS %s", K(id)), 1);
  free(id);
}

Test(cli, promote_delayed_and_refuse_others) {
  ok_line(CLI("add", Q, "d", "--opts", "{\"delay\":600000}"));
  cr_assert_str_eq(ok_line(CLI("promote", Q, "1")), "{\"id\":\"1\",\"promoted\":true}");
  cr_assert_eq(integer("ZCARD %s", K("delayed")), 0);
  expect_joined("1", joined("LRANGE %s 0 -1", K("wait")));
  expect_str("0", str("HGET %s delay", K("1")));
  expect_fail(CLI("promote", Q, "1"), 1, "not delayed");
  expect_fail(CLI("promote", Q, "404"), 1, "not found");
}

Test(cli, retry_failed_and_completed) {
  char *id = finished_job(ERPQ_FIN_FAILED, "boom");
  cr_assert_eq(integer("ZCARD %s", K("failed")), 1);
  result r = CLI("retry", Q, id);
  json_t *o = parse(r.out);
  cr_assert(json_is_true(json_object_get(o, "retried")));
  json_decref(o);
  ok_line(r);
  cr_assert_eq(integer("ZCARD %s", K("failed")), 0);
  expect_joined(id, joined("LRANGE %s 0 -1", K("wait")));
  cr_assert_eq(integer("HEXISTS %s failedReason", K(id)), 0);
  cr_assert_eq(integer("HEXISTS %s finishedOn", K(id)), 0);
  cr_assert_eq(integer("HEXISTS %s retriedOn", K(id)), 1);
  /* attemptsMade is kept, as bull does. */
  expect_str("1", str("HGET %s attemptsMade", K(id)));
  /* Now waiting: not failed, and the hash is left alone. */
  expect_fail(CLI("retry", Q, id), 1, "not failed");
  cr_assert_eq(integer("HEXISTS %s finishedOn", K(id)), 0);
  free(id);
  free(fetch_one(R, Q)); /* Take it out of the way. */

  id = finished_job(ERPQ_FIN_COMPLETED, "7");
  expect_fail(CLI("retry", Q, id), 1, "not failed");
  cr_assert_eq(integer("ZCARD %s", K("completed")), 1);
  char want[64];
  snprintf(want, sizeof want, "{\"id\":\"%s\",\"retried\":true}", id);
  cr_assert_str_eq(ok_line(CLI("retry", Q, id, "--state", "completed")), want);
  cr_assert_eq(integer("ZCARD %s", K("completed")), 0);
  expect_joined(id, joined("LRANGE %s 0 -1", K("wait")));
  free(id);
  expect_fail(CLI("retry", Q, "missing"), 1, "not found");
}

Test(cli, retry_lifo_job_goes_to_the_front) {
  ok_line(CLI("add", Q, "x"));
  ok_line(CLI("add", Q, "y"));
  char *a = fetch_one(R, Q);
  finish(R, Q, a, ERPQ_FIN_FAILED, "err");
  cr_assert_str_eq(a, "1");
  free(a);
  ok_line(CLI("add", Q, "l", "--opts", "{\"lifo\":true}"));
  a = fetch_one(R, Q); /* 3 (lifo) is at the tail */
  cr_assert_str_eq(a, "3");
  finish(R, Q, a, ERPQ_FIN_FAILED, "err");
  free(a);
  ok_line(CLI("retry", Q, "1"));
  ok_line(CLI("retry", Q, "3"));
  /* 1 is LPUSHed (back of the line), 3 RPUSHed (front). */
  expect_joined("1,2,3", joined("LRANGE %s 0 -1", K("wait")));
}

Test(cli, clean_removes_old_jobs) {
  char *a = finished_job(ERPQ_FIN_COMPLETED, "1");
  char *b = finished_job(ERPQ_FIN_COMPLETED, "2");
  usleep(20000);
  /* Too young for a 60 s grace. */
  cr_assert_str_eq(ok_line(CLI("clean", Q, "--state", "completed", "--grace", "60000")), "[]");
  cr_assert_str_eq(ok_line(CLI("clean", Q, "--state", "completed", "--limit", "1")), "[\"1\"]");
  cr_assert_eq(integer("EXISTS %s", K(a)), 0);
  cr_assert_eq(integer("EXISTS %s", K(b)), 1);
  cr_assert_str_eq(ok_line(CLI("clean", Q, "--state=completed")), "[\"2\"]");
  cr_assert_eq(integer("EXISTS %s", K("completed")), 0);
  free(a);
  free(b);
  ok_line(CLI("add", Q, "w1"));
  ok_line(CLI("add", Q, "w2", "--opts", "{\"priority\":4}"));
  usleep(20000);
  result r = CLI("clean", Q, "--state", "wait");
  json_t *arr = parse(r.out);
  cr_assert_eq(json_array_size(arr), 2);
  json_decref(arr);
  ok_line(r);
  cr_assert_eq(integer("EXISTS %s %s %s", K("wait"), K("priority"), K("4")), 0);
  cr_assert_str_eq(ok_line(CLI("clean", Q, "--state", "failed")), "[]");
}

/* ---- add --wait ------------------------------------------------------------ */

typedef struct worker_arg {
  char queue[96];
  erpq_finish_kind kind;
  const char *value;
  int remove; /* Instead of finishing: delete the waiting job. */
} worker_arg;

static void *worker_thread(void *p) {
  worker_arg *w = p;
  redisContext *c = connect_redis();
  if (w->remove) {
    char wait[200];
    snprintf(wait, sizeof wait, "bull:%s:wait", w->queue);
    for (int i = 0; i < 3000; i++) {
      redisReply *r = redisCommand(c, "RPOP %s", wait);
      if (r && r->type == REDIS_REPLY_STRING) {
        redisReply *d = redisCommand(c, "DEL bull:%s:%s", w->queue, r->str);
        freeReplyObject(d);
        freeReplyObject(r);
        break;
      }
      if (r) freeReplyObject(r);
      usleep(10000);
    }
  } else {
    usleep(300000); /* Let the CLI settle into its wait. */
    char *id = fetch_one(c, w->queue);
    finish(c, w->queue, id, w->kind, w->value);
    free(id);
  }
  redisFree(c);
  return NULL;
}

static result add_wait_with_worker(worker_arg *w, const char *const *args) {
  snprintf(w->queue, sizeof w->queue, "%s", Q);
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, worker_thread, w) == 0);
  result r = run_cli_env(NULL, NULL, args);
  pthread_join(t, NULL);
  return r;
}

Test(cli, add_wait_prints_the_returnvalue) {
  worker_arg w = {.kind = ERPQ_FIN_COMPLETED, .value = "{\"ok\":1,\"list\":[1,2]}"};
  result r = add_wait_with_worker(&w, (const char *const[]){"add", Q, "w", "--wait", "--timeout", "30", NULL});
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  cr_assert_str_eq(r.out, "1\n{\"ok\":1,\"list\":[1,2]}\n");
  result_free(&r);
}

Test(cli, add_wait_failed_job_exits_1) {
  worker_arg w = {.kind = ERPQ_FIN_FAILED, .value = "payment declined"};
  result r = add_wait_with_worker(&w, (const char *const[]){"add", Q, "w", "--wait", NULL});
  cr_assert_str_eq(r.out, "1\n");
  expect_fail(r, 1, "payment declined");
}

Test(cli, add_wait_timeout_exits_3) {
  int64_t t0 = erpq_mono_ms();
  result r = CLI("add", Q, "w", "--wait", "--timeout", "1.2");
  int64_t took = erpq_mono_ms() - t0;
  cr_assert_str_eq(r.out, "1\n");
  expect_fail(r, 3, "timed out");
  cr_assert(took >= 1100 && took < 5000, "took %" PRId64 " ms", took);
  /* The job stays queued. */
  expect_joined("1", joined("LRANGE %s 0 -1", K("wait")));
}

Test(cli, add_wait_on_an_already_finished_duplicate) {
  char *id = finished_job(ERPQ_FIN_COMPLETED, "\"done\"");
  freeReplyObject(cmd("RENAME %s %s", K(id), K("dup")));
  freeReplyObject(cmd("ZREM %s %s", K("completed"), id));
  freeReplyObject(cmd("ZADD %s 1 dup", K("completed")));
  result r = CLI("add", Q, "w", "--opts", "{\"jobId\":\"dup\"}", "--wait", "--timeout", "5");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  cr_assert_str_eq(r.out, "dup\n\"done\"\n");
  result_free(&r);
  free(id);
  id = finished_job(ERPQ_FIN_FAILED, "old failure");
  freeReplyObject(cmd("RENAME %s %s", K(id), K("dupf")));
  freeReplyObject(cmd("ZADD %s 1 dupf", K("failed")));
  expect_fail(CLI("add", Q, "w", "--opts", "{\"jobId\":\"dupf\"}", "--wait"), 1, "old failure");
  free(id);
}

Test(cli, add_wait_removed_job_exits_1) {
  worker_arg w = {.remove = 1};
  result r = add_wait_with_worker(&w, (const char *const[]){"add", Q, "w", "--wait", "--timeout", "30", NULL});
  expect_fail(r, 1, "removed");
}

Test(cli, add_wait_refuses_repeatable) {
  expect_fail(CLI("add", Q, "r", "--opts", "{\"repeat\":{\"every\":1000}}", "--wait"), 2, "repeatable");
  cr_assert_eq(integer("EXISTS %s", K("id")), 0);
}

/* ---- Usage errors and exit codes ------------------------------------------- */

Test(cli, usage_errors_exit_2_and_touch_nothing) {
  expect_fail(CLI("add"), 2, "missing arguments");
  expect_fail(CLI("add", Q), 2, "missing arguments");
  expect_fail(CLI("add", Q, "n", "extra"), 2, "too many arguments");
  expect_fail(CLI("add", "", "n"), 2, "empty argument");
  expect_fail(CLI("frobnicate", Q), 2, "unknown command");
  expect_fail(CLI("--bogus", "counts", Q), 2, "unknown option");
  expect_fail(CLI("counts", Q, "--bogus"), 2, "unknown option");
  expect_fail(CLI("counts", Q, "-x"), 2, "unknown option");
  expect_fail(CLI("--redis"), 2, "needs a value");
  expect_fail(CLI("--prefix", "", "counts", Q), 2, "prefix");
  expect_fail(CLI("--command-timeout", "soon", "counts", Q), 2, "--command-timeout");
  expect_fail(CLI(NULL), 2, "missing command");
  expect_fail(CLI("add", Q, "n", "--data", "{\"a\":"), 2, "--data is not valid JSON");
  expect_fail(CLI("add", Q, "n", "--data"), 2, "needs a value");
  expect_fail(CLI("add", Q, "n", "--opts", "{nope}"), 2, "--opts is not valid JSON");
  expect_fail(CLI("add", Q, "n", "--opts", "[1]"), 2, "JSON object");
  expect_fail(CLI("add", Q, "n", "--opts", "{\"priority\":-2}"), 2, "priority");
  expect_fail(CLI("add", Q, "n", "--opts", "{\"attempts\":\"many\"}"), 2, "attempts");
  expect_fail(CLI("add", Q, "n", "--opts", "{\"delay\":\"soon\"}"), 2, "delay");
  expect_fail(CLI("add", Q, "n", "--opts", "{\"jobId\":\"\"}"), 2, "jobId");
  expect_fail(CLI("add", Q, "n", "--opts", "{\"backoff\":\"x\"}"), 2, "backoff");
  expect_fail(CLI("add", Q, "n", "--data", "@/nonexistent/file.json"), 2, "/nonexistent/file.json");
  expect_fail(CLI("add", Q, "n", "--data", "@"), 2, "file name");
  expect_fail(CLI("add", Q, "n", "--timeout", "5"), 2, "--timeout needs --wait");
  expect_fail(CLI("add", Q, "n", "--wait", "--timeout", "0"), 2, "--timeout");
  expect_fail(CLI("add", Q, "n", "--wait", "--timeout", "-1"), 2, "--timeout");
  expect_fail(CLI("add", Q, "n", "--wait", "--timeout", "3x"), 2, "--timeout");
  expect_fail(CLI("add", Q, "n", "--wait=yes"), 2, "takes no value");
  expect_fail(CLI("add", Q, "n", "--data", "1", "--data", "2"), 2, "given twice");
  expect_fail(CLI("status", Q), 2, "missing arguments");
  expect_fail(CLI("retry", Q, "1", "--state", "waiting"), 2, "--state");
  expect_fail(CLI("clean", Q), 2, "--state");
  expect_fail(CLI("clean", Q, "--state", "done"), 2, "--state");
  expect_fail(CLI("clean", Q, "--state", "completed", "--grace", "-5"), 2, "--grace");
  expect_fail(CLI("clean", Q, "--state", "completed", "--grace", "1.5"), 2, "--grace");
  expect_fail(CLI("clean", Q, "--state", "completed", "--limit", "ten"), 2, "--limit");
  expect_fail(CLI("remove-repeatable", Q, "n"), 2, "--repeat");
  expect_fail(CLI("remove-repeatable", Q, "n", "--repeat", "{bad"), 2, "--repeat is not valid JSON");
  expect_fail(CLI("remove-repeatable", Q, "n", "--repeat", "5"), 2, "--repeat");
  expect_fail(CLI("--redis", "http://localhost", "counts", Q), 2, "redis://");
  expect_fail(CLI("--redis", "redis://localhost:99999/0", "counts", Q), 2, "port");
  /* Nothing reached Redis. */
  redisReply *r = cmd("KEYS %s*", P);
  cr_assert_eq(r->elements, 0);
  freeReplyObject(r);
}

Test(cli, unreachable_redis_exits_4) {
  expect_fail(CLI("--redis", "redis://127.0.0.1:1/0", "counts", Q), 4, "127.0.0.1:1");
  expect_fail(CLI("--redis", "unix:///nonexistent/redis.sock", "add", Q, "n"), 4, "redis.sock");
  const char *env[] = {"ERPQ_REDIS_URL=redis://127.0.0.1:1/0", NULL};
  expect_fail(CLI_ENV(env, "status", Q, "1"), 4, "cannot connect");
}

Test(cli, url_credentials_and_database) {
  erpq_redis_addr a;
  char err[256];
  cr_assert(erpq_redis_url_parse(redis_url(), &a, err, sizeof err) == 0);
  int db = a.db == 2 ? 3 : 2;
  char url[600], bad[600];
  if (a.unix_path[0]) {
    snprintf(url, sizeof url, "unix://%s?db=%d", a.unix_path, db);
    bad[0] = '\0';
  } else {
    /* A user of our own (ACL, Redis 6+) with a password that needs %-escapes. */
    freeReplyObject(cmd("ACL SETUSER erpq-cli-test on >p@ss:w/rd ~* &* +@all"));
    snprintf(url, sizeof url, "redis://erpq-cli-test:p%%40ss%%3Aw%%2Frd@%s:%d/%d", a.host, a.port, db);
    snprintf(bad, sizeof bad, "redis://erpq-cli-test:wrong@%s:%d/%d", a.host, a.port, db);
  }
  cr_assert_str_eq(ok_line(CLI("--redis", url, "add", Q, "in-db")), "1");
  cr_assert_eq(integer("EXISTS %s", K("1")), 0, "the job went to the default database");
  freeReplyObject(cmd("SELECT %d", db));
  expect_str("in-db", str("HGET %s name", K("1")));
  freeReplyObject(cmd("DEL %s %s %s", K("1"), K("id"), K("wait")));
  if (bad[0]) {
    expect_fail(CLI("--redis", bad, "counts", Q), 4, "AUTH");
    freeReplyObject(cmd("ACL DELUSER erpq-cli-test"));
  }
}

Test(cli, help_and_version) {
  result r = CLI("--help");
  cr_assert_eq(r.code, 0);
  cr_assert(strstr(r.out, "Exit codes"));
  cr_assert(strstr(r.out, "add-bulk QUEUE"));
  cr_assert(strstr(r.out, "  4  Redis unreachable"));
  result_free(&r);
  r = CLI("add", "--help");
  cr_assert_eq(r.code, 0);
  result_free(&r);
  r = CLI("--version");
  cr_assert_eq(r.code, 0);
  cr_assert(strncmp(r.out, "erpq-producer ", 14) == 0);
  result_free(&r);
}
