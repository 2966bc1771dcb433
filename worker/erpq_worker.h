/*
 * erpq_worker.h - the worker daemon: a libuv loop serving bull queues.
 *
 * One erpq_worker serves several queues over three kinds of Redis
 * connection: one command connection shared by all queues (scripts,
 * pipelined), one blocking connection per queue (BRPOPLPUSH, named as bull
 * names its workers so getWorkers() counts us), and one subscriber
 * connection (the delayed channels). Handlers run on the pool's threads;
 * everything that talks to Redis runs on the loop thread.
 *
 * Per queue, the fetch cycle is a small state machine:
 *   FETCHING: a step script finishes what is done and fetches up to the
 *             free slots in one call; when it finds the wait list empty the
 *             queue is DRAINED.
 *   DRAINED:  one BRPOPLPUSH (drainDelay seconds) waits on the blocking
 *             connection; an id it returns is fetched by the next step.
 * Finished jobs queue up while a step is in flight and all go in the next
 * one, so under load a single script call finishes and fetches many jobs.
 *
 * Invariants: at most one step and one BRPOPLPUSH per queue in flight; a
 * job's finish is kept until a step reply accounts for it (so a lost
 * connection re-sends it; the lock check makes that harmless); a job whose
 * lock renewal failed is never finished by us; running jobs never exceed
 * the queue's concurrency.
 *
 * Timers per queue: lock renewal (lockRenewTime), stalled check
 * (stalledInterval) and delayed promotion (next due time, at most
 * guardInterval, earlier on a delayed-channel message).
 *
 * Shutdown (erpq_worker_stop, SIGTERM/SIGINT): stop fetching, unblock the
 * blocking pops, let running jobs finish for up to grace seconds, then hand
 * the rest back to the front of the wait list and close every handle.
 */
#ifndef ERPQ_WORKER_H
#define ERPQ_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_registry.h"

typedef struct erpq_queue_conf {
  char name[128];
  int concurrency;
  erpq_limiter limiter;
} erpq_queue_conf;

typedef struct erpq_worker_conf {
  erpq_redis_addr redis;
  char prefix[128];
  erpq_queue_conf *queues;
  int nqueues;
  int64_t lock_duration_ms;   /* 30000 */
  int64_t lock_renew_ms;      /* lockDuration / 2 */
  int64_t stalled_interval_ms;/* 30000; 0 disables the check */
  int max_stalled_count;      /* 1 */
  int64_t guard_interval_ms;  /* 5000 */
  double drain_delay_s;       /* 5 */
  int64_t retry_process_delay_ms; /* 5000 */
  int64_t grace_ms;           /* 30000 */
} erpq_worker_conf;

/* Fills bull's defaults. */
void erpq_worker_conf_defaults(erpq_worker_conf *c);

typedef struct erpq_worker erpq_worker;

/* Creates a worker on loop. conf and reg are borrowed and must outlive it.
 * Returns 0 or a negative error with a message. */
int erpq_worker_new(erpq_worker **out, uv_loop_t *loop, const erpq_worker_conf *conf,
                    const erpq_registry *reg, char *err, size_t errlen);
/* Connects and starts serving. */
int erpq_worker_start(erpq_worker *w);
/* Begins the graceful shutdown; the loop returns once it is complete. */
void erpq_worker_stop(erpq_worker *w);
/* Frees the worker after the loop has returned. Returns the number of
 * handler threads that were still running (their jobs were handed back). */
int erpq_worker_free(erpq_worker *w);

#endif
