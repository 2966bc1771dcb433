/*
 * erpq_job.h - what a job handler sees.
 *
 * Job families (jobs/<family>/) register handlers by queue and job name in
 * an erpq_registry. The worker runs each handler on a thread of its pool,
 * never on the event loop thread, so a handler may block (SQL, PDF, SMTP)
 * or spin on the CPU for as long as it needs: lock renewal, stalled checks
 * and delayed promotion carry on meanwhile on the loop.
 *
 * A handler gets an erpq_jobctx and the job's data (parsed JSON, borrowed
 * for the duration of the call). It returns 0 and sets *result (a new
 * reference the worker takes over; NULL means JSON null), or a negative
 * code with a message in err, which becomes the job's failedReason.
 * Calling erpq_job_discard() before failing makes the failure final (bull's
 * job.discard()): use it for input that can never succeed.
 *
 * Before the handler runs, on the same thread, the job's data has been
 * parsed and checked against its schema (jobs/<family>/schemas/<name>.json):
 * a job whose data breaks it never reaches the handler; it fails at once,
 * with no retry and every problem in its failedReason.
 *
 * Two more ways to end a job:
 *   - return erpq_job_delay(ctx, ms): the job goes back to bull's delayed
 *     set for ms milliseconds WITHOUT using an attempt (a provider said
 *     "slow down", a circuit is open); any worker, Node or C, runs it again
 *     once it is due;
 *   - return ERPQ_JOB_ASYNC: the handler has started the work elsewhere
 *     (an I/O thread of its family) and will end the job later, from any
 *     thread, with erpq_job_finish(). The pool thread is free at once, so
 *     a few threads can keep thousands of jobs in flight. Until the finish,
 *     ctx, its data and its strings stay valid. The finish may come before
 *     the handler has even returned (another thread was quick): once ctx
 *     is handed off, the handler touches neither ctx nor its result and
 *     err arguments again, and returns ERPQ_JOB_ASYNC at once.
 *
 * Cancellation: when the job's timeout passes, its lock is lost, or the
 * worker's shutdown grace runs out, erpq_job_cancelled() turns true,
 * erpq_job_sleep() returns early, and the callback set with
 * erpq_job_on_cancel() runs (once, on the worker's loop thread: it must not
 * block; an async family aborts its transfer there). A handler should then
 * stop soon; whatever it returns afterwards is ignored.
 *
 * The context functions are thread-safe. They may be called from the
 * handler's thread while it runs, or, for an ERPQ_JOB_ASYNC job, from any
 * one thread at a time until erpq_job_finish() (which hands ctx back).
 */
#ifndef ERPQ_JOB_H
#define ERPQ_JOB_H

#include <hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_bull.h"
#include "erpq_cmd.h"

typedef struct erpq_jobctx erpq_jobctx;

/* Handler results other than 0 (done) and a negative error. */
#define ERPQ_JOB_ASYNC 1   /* Will end with erpq_job_finish(). */
#define ERPQ_JOB_DELAYED 2 /* Returned by erpq_job_delay(). */

typedef int (*erpq_handler_fn)(erpq_jobctx *ctx, const json_t *data, json_t **result,
                               char *err, size_t errlen);

/* Identity of the job; strings are owned by the worker and valid while the
 * handler runs. */
const char *erpq_job_id(const erpq_jobctx *ctx);
const char *erpq_job_name(const erpq_jobctx *ctx);
const char *erpq_job_queue(const erpq_jobctx *ctx);
/* The options the job was added with (borrowed; may be NULL). */
const json_t *erpq_job_opts(const erpq_jobctx *ctx);
/* Attempts already made before this one (bull's job.attemptsMade): 0 on the
 * first run. */
int erpq_job_attempts_made(const erpq_jobctx *ctx);
/* The handler's registration data. */
void *erpq_job_userdata(const erpq_jobctx *ctx);

/* Reports progress (any JSON value, borrowed) as bull's job.progress(). */
int erpq_job_progress(erpq_jobctx *ctx, const json_t *progress);
/* Appends one line to the job's log, as bull's job.log(). */
int erpq_job_log(erpq_jobctx *ctx, const char *line);
/* Makes a failure final: no further attempts. */
void erpq_job_discard(erpq_jobctx *ctx);

/* Asks for the job to go back to delayed for ms milliseconds (at least 1)
 * without using an attempt; returns ERPQ_JOB_DELAYED for the handler (or
 * erpq_job_finish) to return. reason (may be NULL) goes to the job's log. */
int erpq_job_delay(erpq_jobctx *ctx, int64_t ms, const char *reason);

/* Ends an ERPQ_JOB_ASYNC job: rc, *result and err exactly as a handler
 * would have returned them (result: a new reference taken over, may be
 * NULL; err may be NULL when rc is not negative). Thread-safe; ctx must
 * not be used afterwards. */
void erpq_job_finish(erpq_jobctx *ctx, int rc, json_t *result, const char *err);

/* Sets the cancellation callback (see above); fn(ctx, ud) runs at most once,
 * on the loop thread. If the job is already cancelled it runs at the next
 * loop turn. */
void erpq_job_on_cancel(erpq_jobctx *ctx, void (*fn)(erpq_jobctx *ctx, void *ud), void *ud);

/* True once the job should stop (timeout, lost lock, shutdown). */
int erpq_job_cancelled(const erpq_jobctx *ctx);
/* Sleeps up to ms milliseconds; returns early (-ECANCELED) on cancellation,
 * 0 otherwise. */
int erpq_job_sleep(erpq_jobctx *ctx, int64_t ms);

/* ---- Redis from a handler ----------------------------------------------------
 * Blocking calls for a handler's thread (never the loop's): they go out on
 * the worker's own command connection, through the loop, so a family needs
 * no Redis connection of its own. */

/* The key prefix the worker serves (bull's `prefix`). */
const char *erpq_job_prefix(const erpq_jobctx *ctx);
/* Sends cmd (ownership taken) and waits up to timeout_ms for the answer;
 * *reply is a copy (free it with freeReplyObject()), which may be an error
 * reply. Returns 0, -ENOTCONN (Redis down, or the connection lost before the
 * answer), ERPQ_E_TIMEOUT, or -ECANCELED (the job was cancelled while it
 * waited), with err set. */
int erpq_job_redis(erpq_jobctx *ctx, erpq_cmd *cmd, redisReply **reply, int64_t timeout_ms,
                   char *err, size_t errlen);
/* Adds n prepared jobs (erpq_newjob_prepare(), bull's Queue.add) to queue
 * in one script call, all or nothing. ids[i] gets each id (malloc'ed, the
 * caller frees them); added[i] (may be NULL) 1 if the job was added now, 0
 * if a job with its custom id was already there (so a retried fan-out with
 * deterministic ids adds nothing twice). Returns 0 or a negative error. */
int erpq_job_enqueue(erpq_jobctx *ctx, const char *queue, const erpq_newjob *jobs, size_t n,
                     char **ids, int *added, char *err, size_t errlen);

/* ---- Registration ---------------------------------------------------------- */

typedef struct erpq_registry erpq_registry;

/* Registers fn for jobs called name ("*" = any name nobody else handles) on
 * queue. The strings are copied; userdata is borrowed and must outlive the
 * registry. Returns 0, -EEXIST or -ENOMEM. */
int erpq_registry_add(erpq_registry *r, const char *queue, const char *name,
                      erpq_handler_fn fn, void *userdata);

/* A custom backoff strategy, as bull's settings.backoffStrategies[name]:
 * returns the delay in ms, 0 to retry at once, or -1 to stop retrying.
 * options is backoff.options (borrowed, may be NULL). Called on the loop
 * thread: it must not block. */
typedef int64_t (*erpq_backoff_fn)(int attempts_made, const char *err_message,
                                   const json_t *options, void *userdata);
int erpq_registry_add_backoff(erpq_registry *r, const char *name, erpq_backoff_fn fn,
                              void *userdata);

#endif
