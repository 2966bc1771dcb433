/*
 * erpq_notify_limits.h - provider limits and the circuit breaker, shared by
 * every worker process through Redis.
 *
 * A provider (the SMTP relay, the SMS gateway) has limits of its own: so
 * many messages per second, so many per day, and it fails as a whole now
 * and then. Counting in each process would let N workers send N times the
 * rate (listmonk#2184, nodemailer#768), so the counts live in Redis and two
 * small scripts of ours (lua/gate.lua, lua/report.lua, embedded in the
 * binary) read and change them atomically:
 *
 *   gate(n)     "may I send n messages now?" -> granted g <= n, and when
 *               g < n how long to wait and why (rate, day, open, probe,
 *               hold). Checks, in order: a hold the provider asked for
 *               (429 Retry-After), the breaker, the per-window count, the
 *               per-day count; then records the g messages in both.
 *   report(o)   the outcomes of sent messages in order ('S' accepted, 'F'
 *               a provider failure), and a hold to set: drives the breaker.
 *
 * The rate limit is a sliding log: a ZSET with one member per message
 * granted, scored by Redis's own clock (TIME, so skewed worker clocks
 * agree); a grant needs fewer than `per_window` members younger than
 * window_ms. window_ms is one second plus a margin (ERPQ_NOTIFY_RATE_
 * MARGIN_MS): the provider counts arrivals, which trail our grants by a
 * few varying milliseconds, so a slot is held a little longer than the
 * provider's second to keep its own count under the limit too. The daily
 * limit is a counter per UTC day (the key carries the date; it expires
 * after two days); once reached the gate answers "day" and the time until
 * the next UTC midnight.
 *
 * The breaker (a HASH): closed -> open after `threshold` consecutive
 * failures (any accepted message resets the count) -> after open_ms the
 * next gate call gets exactly one message, the probe (half-open; other
 * callers are told "probe" and wait) -> the probe's success closes it, its
 * failure opens it again for twice as long (at most max_open_ms). A probe
 * whose outcome never comes (the worker died) expires after probe_ms and
 * the next caller probes.
 *
 * Keys: <prefix>:erpq:notify:<provider>:{rate,day:<YYYYMMDD>,breaker}. On
 * Redis Cluster the prefix must carry a hash tag (as for the queues).
 *
 * Redis calls go through a caller's function (nt_redis_fn): the worker
 * passes one that uses erpq_job_redis() (the worker's own connection,
 * from a family thread); tests pass a hiredis connection. The scripts are
 * sent as EVALSHA and, after NOSCRIPT, as EVAL.
 *
 * Threads: an nt_limits is immutable after nt_limits_init() except for an
 * atomic counter; gate and report may be called from any thread.
 */
#ifndef ERPQ_NOTIFY_LIMITS_H
#define ERPQ_NOTIFY_LIMITS_H

#include <hiredis.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_cmd.h"

/* Sends cmd (ownership taken: the function frees it) and returns the reply
 * in *reply (freeReplyObject() it; may be an error reply). */
typedef int (*nt_redis_fn)(void *ud, erpq_cmd *cmd, redisReply **reply, char *err, size_t errlen);

typedef struct nt_limits_conf {
  int64_t per_window;  /* messages per window, 0: no rate limit */
  int64_t window_ms;   /* the window: 1000 + margin */
  int64_t per_day;     /* messages per UTC day, 0: none */
  int64_t threshold;   /* consecutive failures that open the breaker (>= 1) */
  int64_t open_ms;     /* first open period */
  int64_t max_open_ms; /* longest open period */
  int64_t probe_ms;    /* how long a probe may take before another may try */
} nt_limits_conf;

typedef struct nt_limits {
  char key_rate[256], key_day[256], key_brk[256]; /* key_day: without the date */
  nt_limits_conf conf;
  char tag[24];
  atomic_ullong seq;
} nt_limits;

typedef struct nt_gate {
  int64_t granted, wait_ms, fails;
  char reason[8]; /* "", rate, day, open, probe, hold */
  char state[8];  /* closed, open, half */
  int probe;
} nt_gate;

typedef struct nt_report {
  char state[8];
  int64_t fails, open_left_ms;
  char changed[8]; /* "", opened, closed */
} nt_report;

/* Sets l up for provider (letters, digits, '-', '_', '.', ':') under
 * prefix. Returns 0 or -EINVAL / -ENOSPC. */
int nt_limits_init(nt_limits *l, const char *prefix, const char *provider, const nt_limits_conf *c);

/* Asks for n (>= 1) messages at wall time now_ms (used only to name the
 * day's key and to compute the time to midnight). */
int nt_limits_gate(nt_limits *l, int64_t n, int64_t now_ms, nt_redis_fn call, void *ud,
                   nt_gate *out, char *err, size_t errlen);

/* Reports outcomes ("SSF...", may be "" with a hold) and a hold of hold_ms
 * (0: none). */
int nt_limits_report(nt_limits *l, const char *outcomes, int64_t hold_ms, nt_redis_fn call,
                     void *ud, nt_report *out, char *err, size_t errlen);

/* Whether the limits need a gate call for every batch (a rate or daily
 * limit is set); without them only the breaker matters and its state may
 * be cached for a short while. */
int nt_limits_counting(const nt_limits *l);

#endif
