#include "erpq_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "erpq_log.h"

#define BACKOFF_MIN_MS 50    /* First reconnect delay. */
#define BACKOFF_MAX_MS 5000  /* Longest reconnect delay. */

typedef struct req {
  erpq_cmd cmd;
  erpq_reply_cb cb;
  void *priv;
  erpq_conn *conn;
  int retried;
} req;

static void connect_now(erpq_conn *c);

/* ---- hiredis on libuv ----------------------------------------------------------
 * Our own adapter instead of hiredis's adapters/libuv.h, which re-arms the
 * poll handle (uv_poll_start: an epoll_ctl each time) for every command
 * queued. Here a command queued on a connected context only marks the
 * context dirty; a prepare handle writes everything queued in this loop
 * turn once, just before the loop polls (and so before it can sleep), so a
 * burst of commands costs one write() and no epoll change. Write readiness is polled only while
 * connecting (hiredis learns of the connect that way) and when a write was
 * partial. The events struct outlives the context: hiredis calls cleanup()
 * when it frees the context, and the struct is freed once both handles
 * have closed. */
typedef struct uv_events {
  redisAsyncContext *ac; /* NULL once hiredis has freed the context. */
  uv_poll_t poll;
  uv_prepare_t flush;
  int events;   /* What poll watches now. */
  int flushing; /* Inside flush_cb: a new write request means a partial write. */
  int open;     /* Handles not yet closed. */
} uv_events;

static void ev_set(uv_events *e, int events);

static void ev_poll_cb(uv_poll_t *h, int status, int events) {
  uv_events *e = h->data;
  if (status < 0) events = UV_READABLE; /* Let hiredis meet the error on read. */
  if (e->ac && (events & UV_READABLE)) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void ev_flush_cb(uv_prepare_t *h) {
  uv_events *e = h->data;
  uv_prepare_stop(h);
  if (!e->ac) return;
  e->flushing = 1;
  redisAsyncHandleWrite(e->ac); /* May free the context (e->ac = NULL). */
  e->flushing = 0;
}

static void ev_set(uv_events *e, int events) {
  if (events == e->events || !e->ac) return;
  e->events = events;
  if (events) uv_poll_start(&e->poll, events, ev_poll_cb);
  else uv_poll_stop(&e->poll);
}

static void ev_add_read(void *p) {
  uv_events *e = p;
  ev_set(e, e->events | UV_READABLE);
}

static void ev_del_read(void *p) {
  uv_events *e = p;
  ev_set(e, e->events & ~UV_READABLE);
}

static void ev_add_write(void *p) {
  uv_events *e = p;
  if (!e->ac) return;
  if ((e->ac->c.flags & REDIS_CONNECTED) && !e->flushing) uv_prepare_start(&e->flush, ev_flush_cb);
  else ev_set(e, e->events | UV_WRITABLE);
}

static void ev_del_write(void *p) {
  uv_events *e = p;
  ev_set(e, e->events & ~UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h) {
  uv_events *e = h->data;
  if (--e->open == 0) free(e);
}

static void ev_cleanup(void *p) {
  uv_events *e = p;
  e->ac = NULL;
  uv_close((uv_handle_t *)&e->poll, ev_closed);
  uv_close((uv_handle_t *)&e->flush, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return REDIS_ERR;
  uv_events *e = calloc(1, sizeof *e);
  if (!e) return REDIS_ERR;
  if (uv_poll_init(loop, &e->poll, ac->c.fd)) {
    free(e);
    return REDIS_ERR;
  }
  uv_prepare_init(loop, &e->flush);
  e->poll.data = e->flush.data = e;
  e->ac = ac;
  e->open = 2;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  ac->ev.data = e;
  return REDIS_OK;
}

static unsigned jitter(unsigned max) {
  unsigned r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = (unsigned)rand();
  return max ? r % max : 0;
}

static void retry_fire(uv_timer_t *t) { connect_now(t->data); }

static void schedule_retry(erpq_conn *c) {
  if (c->closing) return;
  int base = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;
  /* Full delay in [base/2, base), then double. */
  unsigned delay = (unsigned)base / 2 + jitter((unsigned)base / 2 + 1);
  c->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
  uv_timer_start(&c->retry, retry_fire, delay, 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  erpq_conn *c = ac->data;
  if (status != REDIS_OK) {
    erpq_log(ERPQ_LOG_WARN, "redis.connect_failed", "conn", c->name, "error", ac->errstr, NULL);
    /* hiredis frees the context after a failed connect. */
    c->ac = NULL;
    c->state = ERPQ_CONN_DOWN;
    schedule_retry(c);
    return;
  }
  c->state = ERPQ_CONN_READY;
  c->backoff_ms = 0;
  erpq_log(ERPQ_LOG_INFO, "redis.connected", "conn", c->name, NULL);
  if (c->on_ready) c->on_ready(c);
}

static void retry_closed(uv_handle_t *h) {
  erpq_conn *c = h->data;
  if (c->on_closed) c->on_closed(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  erpq_conn *c = ac->data;
  c->ac = NULL;
  int was_ready = c->state == ERPQ_CONN_READY;
  c->state = ERPQ_CONN_DOWN;
  if (c->closing) {
    if (!uv_is_closing((uv_handle_t *)&c->retry)) uv_close((uv_handle_t *)&c->retry, retry_closed);
    return;
  }
  if (status != REDIS_OK || was_ready)
    erpq_log(ERPQ_LOG_WARN, "redis.disconnected", "conn", c->name, "error",
             ac->errstr[0] ? ac->errstr : "connection closed", NULL);
  if (c->on_down) c->on_down(c);
  schedule_retry(c);
}

static void auth_cb(redisAsyncContext *ac, void *r, void *priv) {
  (void)priv;
  redisReply *reply = r;
  erpq_conn *c = ac->data;
  if (reply && reply->type == REDIS_REPLY_ERROR)
    erpq_log(ERPQ_LOG_ERROR, "redis.auth_failed", "conn", c->name, "error", reply->str, NULL);
}

static void connect_now(erpq_conn *c) {
  if (c->closing || c->ac) return;
  redisAsyncContext *ac = c->addr.unix_path[0] ? redisAsyncConnectUnix(c->addr.unix_path)
                                               : redisAsyncConnect(c->addr.host, c->addr.port);
  if (!ac) {
    schedule_retry(c);
    return;
  }
  if (ac->err) {
    erpq_log(ERPQ_LOG_WARN, "redis.connect_failed", "conn", c->name, "error", ac->errstr, NULL);
    redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  ac->data = c;
  if (ev_attach(ac, c->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c->ac = ac;
  c->state = ERPQ_CONN_CONNECTING;
  /* AUTH and SELECT go first in the pipeline, before on_ready's commands. */
  if (c->addr.password[0]) {
    if (c->addr.user[0])
      redisAsyncCommand(ac, auth_cb, NULL, "AUTH %s %s", c->addr.user, c->addr.password);
    else
      redisAsyncCommand(ac, auth_cb, NULL, "AUTH %s", c->addr.password);
  }
  if (c->addr.db) redisAsyncCommand(ac, auth_cb, NULL, "SELECT %d", c->addr.db);
}

int erpq_conn_init(erpq_conn *c, uv_loop_t *loop, const erpq_redis_addr *addr, const char *name) {
  void *data = c->data;
  memset(c, 0, sizeof *c);
  c->data = data;
  c->loop = loop;
  c->addr = *addr;
  snprintf(c->name, sizeof c->name, "%s", name);
  int rc = uv_timer_init(loop, &c->retry);
  c->retry.data = c;
  return rc;
}

void erpq_conn_start(erpq_conn *c) { connect_now(c); }

/* Writes v in decimal at p; returns the end. */
static char *put_len(char *p, size_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

/* Queues cmd on ac, encoded in RESP here (one pass, into a stack buffer
 * for the usual small command): hiredis's argv encoder formats every
 * argument with sdscatfmt, which showed up at 4% of the HTTP server's
 * profile.
 *
 * What hiredis 0.14's redisAsyncFormattedCommand() assumes of the buffer
 * (__redisAsyncCommand and nextArgument in async.c), and how we keep it:
 *   - it is a multi-bulk command ("*N\r\n" then N "$len\r\n<bytes>\r\n"
 *     arguments) with at least one argument: erpq_cmd_argv() never gives
 *     argc 0, and we write every length from the real argument size;
 *   - it is NUL-terminated one byte past len: nextArgument() reads the byte
 *     after the last argument and calls strchr() from there, and the
 *     (P)SUBSCRIBE branch walks every argument that way until strchr()
 *     finds no '$'. Without the NUL it reads whatever follows the buffer
 *     (the stack's old bytes) and asserts when it meets a stray '$' with no
 *     '\r' before a NUL (the worker abort after a Redis restart);
 *   - the command name is followed by "\r\n" (it is compared with
 *     strncasecmp against "subscribe\r\n" and the like);
 *   - the bytes are copied (sdscatlen) before it returns, so the buffer is
 *     ours again on return and may live on the stack.
 * Returns 0, a build error of cmd, or -ENOTCONN. */
static int queue_cmd(redisAsyncContext *ac, redisCallbackFn *fn, void *priv, erpq_cmd *cmd) {
  const char **argv;
  const size_t *lens;
  int argc = erpq_cmd_argv(cmd, &argv, &lens);
  if (argc <= 0) return argc < 0 ? argc : -EINVAL;
  /* "*<argc>\r\n", then per argument "$<len>\r\n<bytes>\r\n" (a length has
   * at most 20 digits), then the NUL hiredis reads. */
  size_t need = 24 + 1;
  for (int i = 0; i < argc; i++) need += 1 + 20 + 2 + lens[i] + 2;
  char stackbuf[4096];
  char *buf = need <= sizeof stackbuf ? stackbuf : malloc(need);
  if (!buf) return -ENOMEM;
  char *p = buf;
  *p++ = '*';
  p = put_len(p, (size_t)argc);
  *p++ = '\r', *p++ = '\n';
  for (int i = 0; i < argc; i++) {
    *p++ = '$';
    p = put_len(p, lens[i]);
    *p++ = '\r', *p++ = '\n';
    memcpy(p, argv[i], lens[i]);
    p += lens[i];
    *p++ = '\r', *p++ = '\n';
  }
  *p = '\0'; /* Not part of the command: hiredis reads it (see above). */
  int rc = redisAsyncFormattedCommand(ac, fn, priv, buf, (size_t)(p - buf)) == REDIS_OK ? 0 : -ENOTCONN;
  if (buf != stackbuf) free(buf);
  return rc;
}

static void req_cb(redisAsyncContext *ac, void *r, void *priv) {
  req *q = priv;
  erpq_conn *c = q->conn;
  redisReply *reply = r;
  c->pending--;
  if (reply && !q->retried && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
      !strncmp(reply->str, "NOSCRIPT", 8) && q->cmd.is_script) {
    q->retried = 1;
    erpq_cmd_use_eval(&q->cmd);
    if (queue_cmd(ac, req_cb, q, &q->cmd) == 0) {
      c->pending++;
      return;
    }
    reply = NULL;
  }
  q->cb(c, reply, q->priv);
  erpq_cmd_free(&q->cmd);
  free(q);
}

int erpq_conn_send(erpq_conn *c, erpq_cmd *cmd, erpq_reply_cb cb, void *priv) {
  int open = c->state == ERPQ_CONN_READY || (c->state == ERPQ_CONN_CONNECTING && c->send_while_connecting);
  if (!open || !c->ac) {
    erpq_cmd_free(cmd);
    return -ENOTCONN;
  }
  req *q = malloc(sizeof *q);
  if (!q) {
    erpq_cmd_free(cmd);
    return -ENOMEM;
  }
  q->cmd = *cmd;
  memset(cmd, 0, sizeof *cmd);
  q->cb = cb;
  q->priv = priv;
  q->conn = c;
  q->retried = 0;
  int rc = queue_cmd(c->ac, req_cb, q, &q->cmd);
  if (rc) {
    erpq_cmd_free(&q->cmd);
    free(q);
    return rc;
  }
  c->pending++;
  return 0;
}

int erpq_conn_send_raw(erpq_conn *c, erpq_cmd *cmd, redisCallbackFn *fn, void *priv) {
  int rc = -ENOTCONN;
  if (c->state == ERPQ_CONN_READY && c->ac) rc = queue_cmd(c->ac, fn, priv, cmd);
  erpq_cmd_free(cmd);
  return rc;
}

void erpq_conn_reset(erpq_conn *c) {
  redisAsyncContext *ac = c->ac;
  if (!ac) return;
  if (ac->c.flags & REDIS_CONNECTED) {
    /* redisAsyncFree calls pending callbacks with NULL and then our
     * disconnect callback, which schedules the reconnect. */
    redisAsyncFree(ac);
    return;
  }
  /* Still connecting (commands may be queued with send_while_connecting):
   * hiredis calls no disconnect callback for a context that never
   * connected, so forget it here before its callbacks run. */
  c->ac = NULL;
  c->state = ERPQ_CONN_DOWN;
  redisAsyncFree(ac);
  schedule_retry(c);
}

void erpq_conn_close(erpq_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  c->state = ERPQ_CONN_CLOSED;
  uv_timer_stop(&c->retry);
  if (c->ac && (c->ac->c.flags & REDIS_CONNECTED)) {
    /* Graceful: hiredis sends what is queued, waits for the pending
     * replies, then closes; on_disconnect then closes the timer. */
    redisAsyncDisconnect(c->ac);
  } else if (c->ac) {
    redisAsyncFree(c->ac); /* Not connected yet: no disconnect callback. */
    c->ac = NULL;
    if (!uv_is_closing((uv_handle_t *)&c->retry)) uv_close((uv_handle_t *)&c->retry, retry_closed);
  } else {
    uv_close((uv_handle_t *)&c->retry, retry_closed);
  }
}

void erpq_conn_abort(erpq_conn *c) {
  c->closing = 1;
  c->state = ERPQ_CONN_CLOSED;
  uv_timer_stop(&c->retry);
  redisAsyncContext *ac = c->ac;
  if (ac && (ac->c.flags & REDIS_CONNECTED)) {
    /* What is queued goes out if the socket takes it now (one
     * non-blocking write: a hand-back must not be dropped unsent); a write
     * error frees the context itself (c->ac is then NULL). Pending
     * callbacks get NULL, then on_disconnect closes the timer. */
    redisAsyncHandleWrite(ac);
    if (c->ac) redisAsyncFree(c->ac);
    return;
  }
  if (ac) {
    c->ac = NULL;
    redisAsyncFree(ac); /* Never connected: no disconnect callback. */
  }
  if (!uv_is_closing((uv_handle_t *)&c->retry)) uv_close((uv_handle_t *)&c->retry, retry_closed);
}

redisReply *erpq_reply_dup(const redisReply *r) {
  if (!r) return NULL;
  redisReply *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->type = r->type;
  c->integer = r->integer;
  c->len = r->len;
  if (r->str) {
    c->str = malloc(r->len + 1);
    if (!c->str) {
      free(c);
      return NULL;
    }
    memcpy(c->str, r->str, r->len);
    c->str[r->len] = '\0';
  }
  if (r->type == REDIS_REPLY_ARRAY && r->elements) {
    c->element = calloc(r->elements, sizeof *c->element);
    if (!c->element) {
      freeReplyObject(c);
      return NULL;
    }
    c->elements = r->elements;
    for (size_t i = 0; i < r->elements; i++)
      if (!(c->element[i] = erpq_reply_dup(r->element[i]))) {
        freeReplyObject(c);
        return NULL;
      }
  }
  return c;
}
