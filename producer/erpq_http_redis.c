/* erpq_http_redis.c - a request's Redis calls: sent on its loop's command
 * connection, listed oldest first for the sweep's deadline, and their
 * replies handed to the request's next step. See erpq_http_private.h. */
#include <stddef.h>

#include "erpq_http_private.h"
#include "erpq_util.h"

/* ---- Redis calls ------------------------------------------------------------------
 * A request makes at most one call at a time; its connection stays suspended
 * until the reply's step answers. Calls from all requests of a loop share
 * one pipelined connection, so a burst of requests costs Redis one read and
 * the server one write. Calls are listed oldest first: the sweep resets the
 * connection when the oldest is older than --redis-timeout, which fails
 * every call in flight (503) instead of letting them wait forever. */

static void calls_unlink(req *r) {
  hloop *L = r->L;
  if (r->cprev)
    r->cprev->cnext = r->cnext;
  else
    L->calls_head = r->cnext;
  if (r->cnext)
    r->cnext->cprev = r->cprev;
  else
    L->calls_tail = r->cprev;
  r->cnext = r->cprev = NULL;
  r->calling = 0;
}

static void on_reply(erpq_conn *c, redisReply *reply, void *priv) {
  (void)c;
  req *r = priv;
  calls_unlink(r);
  if (r->dead) {
    http_req_free(r);
    return;
  }
  r->next(r, reply);
}

static void ignore_reply(erpq_conn *c, redisReply *reply, void *priv) {
  (void)c, (void)reply, (void)priv;
}

/* Sends cmd (ownership taken) for r; next runs with the reply. Returns 0, or
 * answers 503 itself and returns -1 when Redis is not connected. */
int http_redis_call(req *r, erpq_cmd *cmd, step_fn next) {
  hloop *L = r->L;
  if (erpq_conn_send(&L->redis, cmd, on_reply, r)) {
    http_redis_unavailable(r);
    return -1;
  }
  r->calling = 1;
  r->next = next;
  r->call_ms = erpq_mono_ms();
  r->cprev = L->calls_tail;
  r->cnext = NULL;
  if (L->calls_tail)
    L->calls_tail->cnext = r;
  else
    L->calls_head = r;
  L->calls_tail = r;
  return 0;
}

/* Sends n plain commands as MULTI ... EXEC: next gets EXEC's reply, an array
 * of their n replies. cmds are freed. */
int http_redis_call_tx(req *r, erpq_cmd *cmds, size_t n, step_fn next) {
  erpq_cmd m;
  erpq_cmd_init(&m);
  erpq_cmd_push_str(&m, "MULTI");
  if (erpq_conn_send(&r->L->redis, &m, ignore_reply, NULL)) {
    for (size_t i = 0; i < n; i++)
      erpq_cmd_free(&cmds[i]);
    http_redis_unavailable(r);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    if (bad)
      erpq_cmd_free(&cmds[i]);
    else
      bad = erpq_conn_send(&r->L->redis, &cmds[i], ignore_reply, NULL) != 0;
  erpq_cmd_init(&m);
  erpq_cmd_push_str(&m, "EXEC");
  if (bad) {
    /* Cannot happen once MULTI went out (same loop turn), but a connection
     * left inside MULTI must not be reused. */
    erpq_cmd_free(&m);
    erpq_conn_reset(&r->L->redis);
    http_redis_unavailable(r);
    return -1;
  }
  return http_redis_call(r, &m, next);
}
