/*
 * erpq_test_support.h - helpers shared by the unit and integration tests.
 *
 * Redis: test_redis() connects to $ERPQ_TEST_REDIS_URL with hiredis's
 * synchronous API (the test fails, never skips, when the variable is
 * unset); test_send() sends an erpq_cmd built by the protocol layer as
 * EVALSHA and, on a NOSCRIPT error reply, calls erpq_cmd_use_eval() and
 * sends it again. The small rd_* helpers read Redis state in one line.
 *
 * Replies: rep_* build redisReply trees by hand (hiredis does not export
 * its reply constructors) for the parsers' unit tests; rep_free() releases
 * them.
 *
 * Vectors: test_vectors() loads tests/unit/bull_vectors.json (made by
 * tests/unit/gen-bull-vectors.js from bull 4.16.5) from $ERPQ_SOURCE_DIR.
 */
#ifndef ERPQ_TEST_SUPPORT_H
#define ERPQ_TEST_SUPPORT_H

#include <hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_bull.h"
#include "erpq_cmd.h"

/* ---- Redis ---------------------------------------------------------------- */

const char *test_redis_url(void);
redisContext *test_redis(void);
/* A queue name nobody else uses: "<stem>-<pid>-<n>-<random>". */
void test_queue_name(char *buf, size_t len, const char *stem);
/* Sends c (EVALSHA, then EVAL after NOSCRIPT) and frees it. The reply is
 * owned by the caller; the test fails if Redis cannot be reached. */
redisReply *test_send(redisContext *rc, erpq_cmd *c);
/* Counts NOSCRIPT fallbacks test_send() made in this process. */
int test_noscript_fallbacks(void);
/* Sends a plain command (printf-style, hiredis syntax) and asserts no
 * transport error. */
redisReply *rd_cmd(redisContext *rc, const char *fmt, ...);
/* Runs a command and returns its integer reply (asserts the type). */
long long rd_int(redisContext *rc, const char *fmt, ...);
/* Runs a command and returns its string reply, malloc'ed, or NULL for nil. */
char *rd_str(redisContext *rc, const char *fmt, ...);
/* Runs a command that returns an array of strings and joins them with ','
 * ("" for an empty array); malloc'ed. */
char *rd_join(redisContext *rc, const char *fmt, ...);
/* Deletes every key of the queue (KEYS <base>*). */
void rd_wipe(redisContext *rc, const erpq_keys *k);

/* ---- Hand-built replies ------------------------------------------------------ */

redisReply *rep_str(const char *s);
redisReply *rep_int(long long v);
redisReply *rep_nil(void);
redisReply *rep_err(const char *s);
redisReply *rep_status(const char *s);
/* An array of n replies (ownership taken); NULL-terminated variadic. */
redisReply *rep_arr(size_t n, ...);
/* An array of n string replies, NULL entries becoming nil. */
redisReply *rep_strs(size_t n, const char *const *s);
void rep_free(redisReply *r);

/* ---- Vectors ----------------------------------------------------------------- */

json_t *test_vectors(void);

#endif
