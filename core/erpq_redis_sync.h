/*
 * erpq_redis_sync.h - a small synchronous Redis client, for the CLI and for
 * background threads that are not on an event loop (the outbox relay).
 *
 * A thin layer over hiredis's blocking API: it connects from an
 * erpq_redis_addr (TCP or unix socket, then AUTH and SELECT from the URL),
 * applies a command timeout, and runs erpq_cmd commands, turning a NOSCRIPT
 * reply into the EVAL fallback (erpq_cmd_use_eval()). Every failure comes
 * back as an erpq error code with one readable sentence in err:
 *   ERPQ_E_CONN   the server cannot be reached, refused our credentials, or
 *                 the connection broke or timed out mid-command;
 *   ERPQ_E_REDIS  Redis answered with an error reply (the text is quoted);
 *   -ENOMEM / the erpq_cmd's own error when a command could not be built.
 *
 * A connection can also be turned into a subscriber: erpq_sync_subscribe()
 * sends SUBSCRIBE and erpq_sync_next_message() waits (with poll(), so a
 * quiet channel never breaks the connection) for the next published message.
 */
#ifndef ERPQ_REDIS_SYNC_H
#define ERPQ_REDIS_SYNC_H

#include <hiredis.h>
#include <stddef.h>

#include "erpq_cmd.h"
#include "erpq_config.h"

typedef struct erpq_sync {
  redisContext *c;
  char where[300]; /* "host:port" or the socket path, for messages. */
} erpq_sync;

/* Connects (timeout_ms bounds the connect and every later command), then
 * sends AUTH and SELECT as the address asks. Returns 0 or ERPQ_E_CONN. */
int erpq_sync_connect(erpq_sync *s, const erpq_redis_addr *a, int timeout_ms, char *err,
                      size_t errlen);
void erpq_sync_close(erpq_sync *s);

/* Sends c and reads its reply into *out (owned by the caller: release it
 * with freeReplyObject()). A script call that meets NOSCRIPT is resent as
 * EVAL (c is rewritten in place). An error reply is not returned: it fails
 * with ERPQ_E_REDIS (or ERPQ_E_CONN for NOAUTH / WRONGPASS). */
int erpq_sync_run(erpq_sync *s, erpq_cmd *c, redisReply **out, char *err, size_t errlen);

/* Sends n plain (non-script) commands in one pipeline and reads their n
 * replies into out[0..n). On failure every reply already read is freed and
 * out[] is zeroed. */
int erpq_sync_pipeline(erpq_sync *s, erpq_cmd *cmds, size_t n, redisReply **out, char *err,
                       size_t errlen);

/* SUBSCRIBEs to n channels and reads the n confirmations. */
int erpq_sync_subscribe(erpq_sync *s, const char *const *channels, size_t n, char *err,
                        size_t errlen);

/* Waits up to timeout_ms (-1: forever) for the next "message" on a
 * subscribed connection. Returns 1 with *channel and *payload (malloc'ed,
 * owned by the caller), 0 when the time ran out, or ERPQ_E_CONN. */
int erpq_sync_next_message(erpq_sync *s, int timeout_ms, char **channel, char **payload,
                           char *err, size_t errlen);

#endif
