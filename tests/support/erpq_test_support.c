#include "erpq_test_support.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_config.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

/* ---- Redis ---------------------------------------------------------------- */

const char *test_redis_url(void) {
  const char *u = getenv("ERPQ_TEST_REDIS_URL");
  cr_assert(u && *u, "ERPQ_TEST_REDIS_URL is not set: run the suite through scripts/test or "
                     "export it for a throwaway Redis (integration tests fail, never skip)");
  return u;
}

redisContext *test_redis(void) {
  erpq_redis_addr a;
  char err[256];
  cr_assert_eq(erpq_redis_url_parse(test_redis_url(), &a, err, sizeof err), 0, "%s", err);
  struct timeval tv = {5, 0};
  redisContext *c = a.unix_path[0] ? redisConnectUnixWithTimeout(a.unix_path, tv)
                                   : redisConnectWithTimeout(a.host, a.port, tv);
  cr_assert(c && !c->err, "cannot connect to the test Redis at %s", test_redis_url());
  if (a.password[0]) {
    redisReply *r = a.user[0] ? redisCommand(c, "AUTH %s %s", a.user, a.password)
                              : redisCommand(c, "AUTH %s", a.password);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "AUTH failed");
    freeReplyObject(r);
  }
  if (a.db) {
    redisReply *r = redisCommand(c, "SELECT %d", a.db);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "SELECT failed");
    freeReplyObject(r);
  }
  cr_assert_eq(erpq_scripts_init(), 0);
  return c;
}

void test_queue_name(char *buf, size_t len, const char *stem) {
  static int n;
  char u[37];
  erpq_uuid4(u);
  snprintf(buf, len, "%s-%d-%d-%.8s", stem, (int)getpid(), ++n, u);
}

static int fallbacks;

int test_noscript_fallbacks(void) { return fallbacks; }

static redisReply *send_argv(redisContext *rc, erpq_cmd *c) {
  const char **argv;
  const size_t *lens;
  int argc = erpq_cmd_argv(c, &argv, &lens);
  cr_assert_gt(argc, 0, "building the command failed: %d", argc);
  redisReply *r = redisCommandArgv(rc, argc, argv, lens);
  cr_assert_not_null(r, "Redis connection error: %s", rc->errstr);
  return r;
}

redisReply *test_send(redisContext *rc, erpq_cmd *c) {
  redisReply *r = send_argv(rc, c);
  if (erpq_reply_noscript(r)) {
    freeReplyObject(r);
    erpq_cmd_use_eval(c);
    fallbacks++;
    r = send_argv(rc, c);
  }
  erpq_cmd_free(c);
  return r;
}

static redisReply *vcmd(redisContext *rc, const char *fmt, va_list ap) {
  redisReply *r = redisvCommand(rc, fmt, ap);
  cr_assert_not_null(r, "Redis connection error: %s", rc->errstr);
  return r;
}

redisReply *rd_cmd(redisContext *rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcmd(rc, fmt, ap);
  va_end(ap);
  return r;
}

long long rd_int(redisContext *rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcmd(rc, fmt, ap);
  va_end(ap);
  cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "'%s' did not return an integer (type %d: %s)", fmt,
               r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

char *rd_str(redisContext *rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcmd(rc, fmt, ap);
  va_end(ap);
  char *s = NULL;
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
    s = strndup(r->str, r->len);
  } else if (r->type == REDIS_REPLY_INTEGER) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", r->integer);
    s = strdup(tmp);
  } else {
    cr_assert_eq(r->type, REDIS_REPLY_NIL, "'%s' returned type %d (%s)", fmt, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
  }
  freeReplyObject(r);
  return s;
}

char *rd_join(redisContext *rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vcmd(rc, fmt, ap);
  va_end(ap);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "'%s' did not return an array (type %d: %s)", fmt,
               r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
  size_t cap = 1;
  for (size_t i = 0; i < r->elements; i++) cap += (r->element[i]->str ? r->element[i]->len : 4) + 1;
  char *s = calloc(1, cap);
  cr_assert_not_null(s);
  for (size_t i = 0; i < r->elements; i++) {
    if (i) strcat(s, ",");
    if (r->element[i]->type == REDIS_REPLY_STRING) strncat(s, r->element[i]->str, r->element[i]->len);
    else strcat(s, "nil");
  }
  freeReplyObject(r);
  return s;
}

void rd_wipe(redisContext *rc, const erpq_keys *k) {
  redisReply *r = rd_cmd(rc, "KEYS %s*", k->base);
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
    freeReplyObject(rd_cmd(rc, "DEL %b", r->element[i]->str, r->element[i]->len));
  freeReplyObject(r);
}

/* ---- Hand-built replies ------------------------------------------------------ */

static redisReply *rep_new(int type) {
  redisReply *r = calloc(1, sizeof *r);
  cr_assert_not_null(r);
  r->type = type;
  return r;
}

static redisReply *rep_text(int type, const char *s) {
  redisReply *r = rep_new(type);
  r->len = strlen(s);
  r->str = strdup(s);
  cr_assert_not_null(r->str);
  return r;
}

redisReply *rep_str(const char *s) { return rep_text(REDIS_REPLY_STRING, s); }
redisReply *rep_err(const char *s) { return rep_text(REDIS_REPLY_ERROR, s); }
redisReply *rep_status(const char *s) { return rep_text(REDIS_REPLY_STATUS, s); }
redisReply *rep_nil(void) { return rep_new(REDIS_REPLY_NIL); }

redisReply *rep_int(long long v) {
  redisReply *r = rep_new(REDIS_REPLY_INTEGER);
  r->integer = v;
  return r;
}

redisReply *rep_arr(size_t n, ...) {
  redisReply *r = rep_new(REDIS_REPLY_ARRAY);
  r->elements = n;
  r->element = n ? calloc(n, sizeof *r->element) : NULL;
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) r->element[i] = va_arg(ap, redisReply *);
  va_end(ap);
  return r;
}

redisReply *rep_strs(size_t n, const char *const *s) {
  redisReply *r = rep_new(REDIS_REPLY_ARRAY);
  r->elements = n;
  r->element = n ? calloc(n, sizeof *r->element) : NULL;
  for (size_t i = 0; i < n; i++) r->element[i] = s[i] ? rep_str(s[i]) : rep_nil();
  return r;
}

void rep_free(redisReply *r) {
  if (!r) return;
  for (size_t i = 0; i < r->elements; i++) rep_free(r->element[i]);
  free(r->element);
  free(r->str);
  free(r);
}

/* ---- Vectors ----------------------------------------------------------------- */

json_t *test_vectors(void) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  cr_assert(src && *src, "ERPQ_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/unit/bull_vectors.json", src);
  json_error_t je;
  json_t *v = json_load_file(path, 0, &je);
  cr_assert_not_null(v, "cannot load %s: %s", path, je.text);
  return v;
}
