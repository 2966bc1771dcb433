/*
 * erpq_conn.h - one asynchronous Redis connection that heals itself.
 *
 * An erpq_conn wraps a hiredis redisAsyncContext attached to the libuv loop.
 * States: DOWN -> CONNECTING -> READY -> (error) -> DOWN -> ... A lost or
 * refused connection is retried after a jittered, doubling delay (50 ms up
 * to 5 s), forever, until erpq_conn_close(). On each READY the connection
 * authenticates and selects its database (pipelined ahead of everything
 * else), then on_ready() runs so the owner can restore its session (client
 * name, subscriptions) and resume work; on_down() runs when it is lost.
 *
 * Commands: erpq_conn_send() takes ownership of an erpq_cmd and calls cb
 * exactly once: with the reply (borrowed; it dies when cb returns), or with
 * NULL if the connection was lost first. A script call answered NOSCRIPT is
 * sent again as EVAL transparently. When the connection is not READY (nor
 * CONNECTING with send_while_connecting set), erpq_conn_send() fails with
 * -ENOTCONN and cb is never called.
 *
 * I/O: hiredis runs on the loop through this module's own adapter, which
 * writes every command queued during a loop turn in one write() just
 * before the loop polls (the stock adapters/libuv.h re-arms epoll for each
 * command). Used by the worker and by the HTTP API.
 *
 * All functions run on the loop thread.
 */
#ifndef ERPQ_CONN_H
#define ERPQ_CONN_H

#include <async.h>
#include <hiredis.h>
#include <uv.h>

#include "erpq_cmd.h"
#include "erpq_config.h"

typedef enum { ERPQ_CONN_DOWN, ERPQ_CONN_CONNECTING, ERPQ_CONN_READY, ERPQ_CONN_CLOSED } erpq_conn_state;

typedef struct erpq_conn erpq_conn;
typedef void (*erpq_reply_cb)(erpq_conn *c, redisReply *reply, void *priv);

struct erpq_conn {
  uv_loop_t *loop;
  erpq_redis_addr addr;
  char name[64];            /* For logs only. */
  redisAsyncContext *ac;
  erpq_conn_state state;
  uv_timer_t retry;
  int backoff_ms;
  int closing;
  int pending;              /* Commands sent and not yet answered. */
  int send_while_connecting; /* Accept commands while CONNECTING (sent once
                                connected, or answered NULL if the connect
                                fails); off by default. */
  void (*on_ready)(erpq_conn *c);
  void (*on_down)(erpq_conn *c);
  void (*on_closed)(erpq_conn *c);
  void *data;
};

/* Prepares c (no I/O yet). Returns 0 or a libuv error. */
int erpq_conn_init(erpq_conn *c, uv_loop_t *loop, const erpq_redis_addr *addr, const char *name);
/* Starts connecting; READY is reported through on_ready. */
void erpq_conn_start(erpq_conn *c);
/* Sends cmd (ownership taken, freed after the reply or on failure). */
int erpq_conn_send(erpq_conn *c, erpq_cmd *cmd, erpq_reply_cb cb, void *priv);
/* Sends a command whose callback hiredis keeps (SUBSCRIBE). */
int erpq_conn_send_raw(erpq_conn *c, erpq_cmd *cmd, redisCallbackFn *fn, void *priv);
/* Drops the current connection (pending callbacks get NULL) and reconnects
 * after the usual delay. */
void erpq_conn_reset(erpq_conn *c);
/* Closes for good, after the replies to commands already sent have come
 * back (a connection still connecting is dropped at once); on_closed runs
 * once every handle is closed. */
void erpq_conn_close(erpq_conn *c);

/* Closes for good at once, without waiting for replies (a Redis that does
 * not answer must not hold a shutdown open): pending callbacks get NULL;
 * on_closed runs once every handle is closed. Safe after erpq_conn_close(). */
void erpq_conn_abort(erpq_conn *c);

/* A deep copy of a reply (hiredis frees its replies after the callback),
 * for a thread that needs it later: free it with freeReplyObject(). NULL
 * when r is NULL or memory ran out. Thread-safe. */
redisReply *erpq_reply_dup(const redisReply *r);

#endif
