/* erpq_http_limits.c - the token check and the rate limits of a /v1
 * request, and the order in which they answer. See erpq_http_private.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

void http_rate_limited(req *r) {
  int64_t now = erpq_now_ms();
  int retry = (int)((60000 - now % 60000 + 999) / 1000);
  http_answer_error(r, 429, "rate_limited", "too many requests; retry later", NULL, retry);
}

static void rate_checked(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
    http_rate_limited(r);
  else
    http_v1_dispatch(r);
}

/* The count owed by a request answered without reaching its add: over the
 * limit it answers 429 instead of the held answer. */
static void held_checked(req *r, redisReply *reply) {
  struct MHD_Response *held = r->held;
  r->held = NULL;
  if ((!reply || reply->type == REDIS_REPLY_ERROR ||
       (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1))) {
    MHD_destroy_response(held);
    if (!http_reply_failed(r, reply))
      http_rate_limited(r);
    return;
  }
  r->resp = held;
  r->resp_status = r->held_status;
  http_resume(r);
}

static int rate_call(req *r, step_fn next) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_script_keys(&c, ERPQ_LUA_RATELIMIT, r->guard.keys, r->guard.n);
  for (int i = 0; i < r->guard.n; i++)
    erpq_cmd_push_i64(&c, r->guard.limits[i]);
  erpq_cmd_push_i64(&c, r->guard.ttl_s);
  return http_redis_call(r, &c, next);
}

/* Rate limits: fixed one-minute windows per client address (every request)
 * and per token subject (valid tokens), counted in Redis, before anything
 * else is answered. A plain enqueue (no Idempotency-Key) with a valid
 * token carries the count into its add script: one round trip. If it is
 * answered before the add (401 cannot happen; 403, 404, 400, 413, 422),
 * the answer waits for the count. Every other request counts first. */
void http_handle_v1(req *r) {
  const server *srv = r->L->srv;
  r->authed =
      erpq_auth_verify_cached(
          &srv->auth, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
          (long long)time(NULL), &r->p, r->aerr, sizeof r->aerr) == 0;
  const char *who[2] = {srv->rate_ip ? r->addr : NULL,
                        srv->rate_subject && r->authed ? r->p.sub : NULL};
  const char *kind[2] = {"ip", "sub"};
  int limit[2] = {srv->rate_ip, srv->rate_subject};
  long long window = (long long)(erpq_now_ms() / 60000);
  r->guard.n = 0;
  r->guard.ttl_s = 120;
  for (int i = 0; i < 2; i++) {
    if (!who[i])
      continue;
    int n = r->guard.n++;
    snprintf(r->guard_keys[n], sizeof r->guard_keys[n], "%s:erpq:rl:%s:%s:%lld", srv->prefix,
             kind[i], who[i], window);
    r->guard.keys[n] = r->guard_keys[n];
    r->guard.limits[n] = limit[i];
  }
  if (!r->guard.n) {
    http_v1_dispatch(r);
    return;
  }
  int enq = r->m.route == R_ADD || r->m.route == R_BULK;
  if (!enq || !r->authed ||
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key")) {
    rate_call(r, rate_checked);
    return;
  }
  r->guard_pending = 1;
  http_v1_dispatch(r);
  if (r->resp && r->guard_pending) {
    r->guard_pending = 0;
    r->held = r->resp;
    r->held_status = r->resp_status;
    r->resp = NULL;
    if (rate_call(r, held_checked)) { /* Not sent: it answered 503. */
      MHD_destroy_response(r->held);
      r->held = NULL;
    }
  }
}
