/* erpq_notify_limits.c - the provider gate and breaker scripts
 * (erpq_notify_limits.h). */
#include "erpq_notify_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"

extern const char nt_lua_gate[];
extern const char nt_lua_report[];

static char sha_gate[41], sha_report[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha1_hex(const char *s, char out[41]) {
  unsigned char md[20];
  unsigned int n = 0;
  EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL);
  for (int i = 0; i < 20; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

static void init_shas(void) {
  sha1_hex(nt_lua_gate, sha_gate);
  sha1_hex(nt_lua_report, sha_report);
}

static int provider_ok(const char *p) {
  if (!*p)
    return 0;
  for (; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_' || *p == '.' || *p == ':'))
      return 0;
  return 1;
}

int nt_limits_init(nt_limits *l, const char *prefix, const char *provider,
                   const nt_limits_conf *c) {
  memset(l, 0, sizeof *l);
  pthread_once(&sha_once, init_shas);
  if (!provider_ok(provider) || !prefix || !*prefix)
    return -EINVAL;
  if (snprintf(l->key_rate, sizeof l->key_rate, "%s:erpq:notify:%s:rate", prefix, provider) >=
          (int)sizeof l->key_rate ||
      snprintf(l->key_day, sizeof l->key_day, "%s:erpq:notify:%s:day:", prefix, provider) >=
          (int)sizeof l->key_day ||
      snprintf(l->key_brk, sizeof l->key_brk, "%s:erpq:notify:%s:breaker", prefix, provider) >=
          (int)sizeof l->key_brk)
    return -ENOSPC;
  l->conf = *c;
  if (l->conf.window_ms < 1)
    l->conf.window_ms = 1000;
  if (l->conf.threshold < 1)
    l->conf.threshold = 1;
  if (l->conf.open_ms < 1)
    l->conf.open_ms = 1;
  if (l->conf.max_open_ms < l->conf.open_ms)
    l->conf.max_open_ms = l->conf.open_ms;
  if (l->conf.probe_ms < 1)
    l->conf.probe_ms = 1;
  unsigned char r[8];
  if (RAND_bytes(r, sizeof r) != 1) {
    uint64_t v = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)l;
    memcpy(r, &v, sizeof r);
  }
  for (int i = 0; i < 8; i++)
    sprintf(l->tag + 2 * i, "%02x", r[i]);
  atomic_init(&l->seq, 0);
  return 0;
}

int nt_limits_counting(const nt_limits *l) { return l->conf.per_window > 0 || l->conf.per_day > 0; }

/* Builds EVALSHA (or EVAL src when eval) of a script with its keys and
 * string arguments. */
static void build(erpq_cmd *c, int eval, const char *sha, const char *src, const char *const *keys,
                  int nkeys, const char *const *args, int nargs) {
  erpq_cmd_init(c);
  erpq_cmd_push_str(c, eval ? "EVAL" : "EVALSHA");
  erpq_cmd_push_str(c, eval ? src : sha);
  erpq_cmd_push_i64(c, nkeys);
  for (int i = 0; i < nkeys; i++)
    erpq_cmd_push_str(c, keys[i]);
  for (int i = 0; i < nargs; i++)
    erpq_cmd_push_str(c, args[i]);
}

static int run(const char *sha, const char *src, const char *const *keys, int nkeys,
               const char *const *args, int nargs, nt_redis_fn call, void *ud, redisReply **out,
               char *err, size_t errlen) {
  *out = NULL;
  for (int eval = 0; eval < 2; eval++) {
    erpq_cmd c;
    build(&c, eval, sha, src, keys, nkeys, args, nargs);
    if (c.err) {
      erpq_cmd_free(&c);
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    }
    redisReply *r = NULL;
    int rc = call(ud, &c, &r, err, errlen);
    if (rc)
      return rc;
    if (r && r->type == REDIS_REPLY_ERROR && !eval && r->str && !strncmp(r->str, "NOSCRIPT", 8)) {
      freeReplyObject(r);
      continue;
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
      rc = erpq_fail(err, errlen, ERPQ_E_REDIS, "Redis refused the provider script: %.200s",
                     r && r->str ? r->str : "no reply");
      if (r)
        freeReplyObject(r);
      return rc;
    }
    *out = r;
    return 0;
  }
  return erpq_fail(err, errlen, ERPQ_E_REDIS, "Redis does not keep the provider script");
}

static int64_t rint64(const redisReply *r) {
  if (!r)
    return 0;
  if (r->type == REDIS_REPLY_INTEGER)
    return r->integer;
  if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str)
    return strtoll(r->str, NULL, 10);
  return 0;
}

static void rstr(const redisReply *r, char *out, size_t n) {
  out[0] = '\0';
  if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str)
    snprintf(out, n, "%s", r->str);
}

int nt_limits_gate(nt_limits *l, int64_t n, int64_t now_ms, nt_redis_fn call, void *ud,
                   nt_gate *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (n < 1)
    n = 1;
  time_t secs = (time_t)(now_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char day_key[300], a[7][48];
  snprintf(day_key, sizeof day_key, "%s%04d%02d%02d", l->key_day, tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday);
  int64_t into_day =
      (int64_t)(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) * 1000 + now_ms % 1000;
  snprintf(a[0], sizeof a[0], "%" PRId64, n);
  snprintf(a[1], sizeof a[1], "%" PRId64, l->conf.per_window);
  snprintf(a[2], sizeof a[2], "%" PRId64, l->conf.window_ms);
  snprintf(a[3], sizeof a[3], "%" PRId64, l->conf.per_day);
  snprintf(a[4], sizeof a[4], "%" PRId64, 86400000 - into_day);
  snprintf(a[5], sizeof a[5], "%" PRId64, l->conf.probe_ms);
  snprintf(a[6], sizeof a[6], "%s:%llu", l->tag, (unsigned long long)atomic_fetch_add(&l->seq, 1));
  const char *keys[3] = {l->key_rate, day_key, l->key_brk};
  const char *args[7] = {a[0], a[1], a[2], a[3], a[4], a[5], a[6]};
  redisReply *r;
  int rc = run(sha_gate, nt_lua_gate, keys, 3, args, 7, call, ud, &r, err, errlen);
  if (rc)
    return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 6) {
    freeReplyObject(r);
    return erpq_fail(err, errlen, ERPQ_E_PROTOCOL, "unexpected answer from the provider gate");
  }
  out->granted = rint64(r->element[0]);
  out->wait_ms = rint64(r->element[1]);
  rstr(r->element[2], out->reason, sizeof out->reason);
  out->fails = rint64(r->element[3]);
  rstr(r->element[4], out->state, sizeof out->state);
  out->probe = (int)rint64(r->element[5]);
  freeReplyObject(r);
  return 0;
}

int nt_limits_report(nt_limits *l, const char *outcomes, int64_t hold_ms, nt_redis_fn call,
                     void *ud, nt_report *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  char a[4][32];
  snprintf(a[0], sizeof a[0], "%" PRId64, l->conf.threshold);
  snprintf(a[1], sizeof a[1], "%" PRId64, l->conf.open_ms);
  snprintf(a[2], sizeof a[2], "%" PRId64, l->conf.max_open_ms);
  snprintf(a[3], sizeof a[3], "%" PRId64, hold_ms > 0 ? hold_ms : 0);
  const char *keys[1] = {l->key_brk};
  const char *args[5] = {outcomes ? outcomes : "", a[0], a[1], a[2], a[3]};
  redisReply *r;
  int rc = run(sha_report, nt_lua_report, keys, 1, args, 5, call, ud, &r, err, errlen);
  if (rc)
    return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 4) {
    freeReplyObject(r);
    return erpq_fail(err, errlen, ERPQ_E_PROTOCOL, "unexpected answer from the breaker report");
  }
  rstr(r->element[0], out->state, sizeof out->state);
  out->fails = rint64(r->element[1]);
  out->open_left_ms = rint64(r->element[2]);
  rstr(r->element[3], out->changed, sizeof out->changed);
  freeReplyObject(r);
  return 0;
}
