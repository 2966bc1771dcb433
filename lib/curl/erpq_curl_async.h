/*
 * erpq_curl_async.h - one thread that runs many libcurl transfers at once.
 *
 * What it is for. A job handler that sends thousands of e-mails or SMS must
 * keep many of them in flight without one OS thread per send. A runner owns
 * one thread and one curl multi handle; any thread submits a transfer (an
 * easy handle it configured) and gets a completion callback later, on the
 * runner thread. The SMTP and SMS transports of jobs/notifications are
 * built on it; any other HTTP(S) client of the worker can share it.
 *
 * The loop. The runner thread waits in curl_multi_poll(); submit(),
 * cancel() and stop() wake it with curl_multi_wakeup() (one wakeup per
 * batch: a flag remembers that one is already on its way). Each turn it
 * (1) starts queued transfers while there is room, (2) removes transfers
 * whose cancellation was asked, (3) drives curl_multi_perform(), (4) calls
 * the completion callback of every finished transfer.
 *
 * Bounds and queues. Three limits, all fixed at start:
 *   - max_total_connections (CURLMOPT_MAX_TOTAL_CONNECTIONS, also used as
 *     CURLMOPT_MAXCONNECTS so that no more idle connections are cached than
 *     may be open): connections open at once in the multi handle's cache;
 *   - max_host_connections (CURLMOPT_MAX_HOST_CONNECTIONS, 0 = no bound);
 *   - max_active: transfers handed to the multi handle at once (default:
 *     max_total_connections, or 64 when that is unbounded). Submissions
 *     beyond it wait in the runner's own FIFO queues, outside libcurl, so a
 *     waiting transfer's CURLOPT_TIMEOUT does not run while it waits and a
 *     turn of curl_multi_perform() costs O(max_active), not O(submitted).
 * A group (erpq_curl_group_new) adds its own bound on its transfers'
 * concurrency and its own FIFO; groups with work are served round-robin.
 * The transports use one group each: the SMTP sender one slot per SMTP
 * connection it may hold, the SMS client ERPQ_SMS_CONNECTIONS slots.
 * Transfers whose easy handle uses a CURLSH with its own connection cache
 * (CURL_LOCK_DATA_CONNECT) are counted by libcurl against that cache, not
 * against max_total_connections (libcurl counts per cache); max_active and
 * the group bound still apply to them.
 *
 * Lifecycle of one transfer: QUEUED (in its group's FIFO) -> ACTIVE (added
 * to the multi handle; the group's start hook has run) -> completed: the
 * done callback runs exactly once, on the runner thread, and the record is
 * gone when it returns. Cancelled transfers and transfers still pending
 * when the runner is stopped without drain complete with
 * CURLE_ABORTED_BY_CALLBACK.
 *
 * Ownership.
 *   - The easy handle belongs to the runner from a successful submit until
 *     the done callback is called with it; the caller must not touch it in
 *     between (not even curl_easy_getinfo). In the callback and afterwards
 *     it is the caller's again: it was removed from the multi handle, and
 *     may be cleaned up, reconfigured or submitted again. A failed submit
 *     leaves it with the caller. A transfer submitted without a handle
 *     (lazy, see the start hook) gets one from its group's start hook; the
 *     done callback owns it (NULL if the transfer never started).
 *   - The runner uses CURLOPT_PRIVATE while it holds the handle; the
 *     caller's value is put back before the done callback runs.
 *   - The runner sets CURLOPT_NOSIGNAL=1 on every submitted handle (libcurl
 *     requires it in threaded programs) and blocks SIGPIPE in its thread;
 *     the caller sets every other option.
 *   - ud (and anything the easy handle points to: read buffers, header
 *     lists, error buffers) must stay valid until the done callback.
 *   - Groups belong to the runner and are freed by erpq_curl_async_stop().
 *
 * Threads.
 *   - erpq_curl_async_submit(), _cancel() and _stats() are thread-safe and
 *     may also be called from a done callback or a start hook.
 *   - Done callbacks and start hooks run on the runner thread, one at a
 *     time, with no runner lock held; a slow callback stalls every transfer
 *     of the runner, so keep them short (hand heavy work to another thread).
 *   - erpq_curl_async_stop() blocks until the thread is joined; calling it
 *     from the runner thread returns -EDEADLK and does nothing.
 *   - libcurl must be thread-safe to initialise (CURL_VERSION_THREADSAFE,
 *     libcurl >= 7.84): _start() calls curl_global_init() and _stop()
 *     curl_global_cleanup(); with an older libcurl the program must call
 *     curl_global_init() itself before it starts threads (start checks).
 *
 * Cancellation: erpq_curl_async_cancel(id) is asynchronous. A queued
 * transfer is taken off its queue at once; an active one is removed from
 * the multi handle by the runner's next turn, which closes its connection
 * if it was mid-transfer. Either way its done callback gets
 * CURLE_ABORTED_BY_CALLBACK - unless the transfer finished first, in which
 * case it gets its own result (the race is unavoidable; the callback still
 * runs exactly once). Ids are never reused, so cancelling an id that has
 * already completed is harmless (-ENOENT).
 *
 * Shutdown: erpq_curl_async_stop(a, drain_ms).
 *   - From then on, submissions from other threads fail with -ESHUTDOWN.
 *   - drain_ms < 0: every queued and active transfer runs to completion,
 *     however long that takes; done callbacks may still submit follow-up
 *     transfers (a transport dispatching its next message), which drain too.
 *   - drain_ms == 0: every queued and active transfer completes at once with
 *     CURLE_ABORTED_BY_CALLBACK (callbacks run on the runner thread before
 *     stop returns); submissions from callbacks then fail with -ESHUTDOWN.
 *   - drain_ms > 0: drain as above for at most drain_ms, then cancel the
 *     rest as with 0.
 *   Then the thread is joined, the multi handle cleaned up (which closes the
 *   connections of its cache) and the runner freed. Every done callback has
 *   run when stop returns.
 */
#ifndef ERPQ_CURL_ASYNC_H
#define ERPQ_CURL_ASYNC_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

typedef struct erpq_curl_async erpq_curl_async;
typedef struct erpq_curl_group erpq_curl_group;

/* Called once per transfer, on the runner thread, with its result, the
 * easy handle (the caller's again; NULL for a transfer submitted without
 * one that never started) and the id submit gave it. */
typedef void (*erpq_curl_done_fn)(CURL *easy, CURLcode rc, uint64_t id, void *ud);

/* A group's hooks, all optional, run on the runner thread.
 *   start: just before a transfer of the group is added to the multi
 *     handle; may still set options on *easy (the SMTP sender picks the
 *     connection lane here). A transfer submitted without an easy handle
 *     (easy NULL: allowed in a group with a start hook) gets it here: the
 *     hook creates and configures it and stores it in *easy, so that a
 *     queued transfer costs no easy handle (several KiB each) while it
 *     waits. A result other than CURLE_OK, or *easy still NULL, completes
 *     the transfer at once (with CURLE_FAILED_INIT for the latter); the
 *     done callback gets whatever *easy holds then, to clean up.
 *   abort: just before an active transfer is taken out of the multi handle
 *     by a cancellation or a stop without drain. curl_multi_remove_handle()
 *     runs the protocol's "done" step, and libcurl's SMTP one (7.88) then
 *     sends the end-of-data mark and waits for the reply even for a
 *     transfer cut short, which would deliver a truncated message: the
 *     SMTP sender's abort hook shuts the session's socket down first.
 *   ud: passed to both as group_ud. */
typedef struct erpq_curl_group_hooks {
  CURLcode (*start)(CURL **easy, void *ud, void *group_ud);
  void (*abort)(CURL *easy, void *ud, void *group_ud);
  void *ud;
} erpq_curl_group_hooks;

typedef struct erpq_curl_async_conf {
  long max_total_connections; /* 0: no bound */
  long max_host_connections;  /* 0: no bound */
  int max_active;             /* 0: max_total_connections, or 64 if unbounded */
} erpq_curl_async_conf;

typedef struct erpq_curl_async_stats {
  uint64_t submitted, completed, cancelled; /* cancelled: of completed */
  uint64_t connects;                        /* sum of CURLINFO_NUM_CONNECTS */
  size_t queued, active;
} erpq_curl_async_stats;

/* Starts the runner thread. conf may be NULL (defaults: 16 connections). */
int erpq_curl_async_start(erpq_curl_async **out, const erpq_curl_async_conf *conf, char *err,
                          size_t errlen);

/* A group whose transfers run at most max_active at a time (> 0), with
 * optional hooks (hooks may be NULL; it is copied). */
int erpq_curl_group_new(erpq_curl_async *a, int max_active, const erpq_curl_group_hooks *hooks,
                        erpq_curl_group **out, char *err, size_t errlen);

/* Submits easy (configured, not in any multi handle; or NULL, to be made
 * by g's start hook) in group g (NULL: the runner's default group, bounded
 * only by max_active); done(easy, rc, id, ud)
 * runs once it completes. *id (may be NULL) gets the transfer's id, > 0
 * (it may already have completed when submit returns).
 * Returns 0, -EINVAL, -ENOMEM, or -ESHUTDOWN once the runner is stopping. */
int erpq_curl_async_submit(erpq_curl_async *a, erpq_curl_group *g, CURL *easy,
                           erpq_curl_done_fn done, void *ud, uint64_t *id);

/* Asks for transfer id to be cancelled. Returns 0 when it was still queued
 * or active (its callback will follow), -ENOENT when no such transfer is
 * pending. */
int erpq_curl_async_cancel(erpq_curl_async *a, uint64_t id);

void erpq_curl_async_stats_get(erpq_curl_async *a, erpq_curl_async_stats *st);

/* Drains and/or cancels (see above), joins the thread and frees a.
 * Returns 0, or -EDEADLK (called from the runner thread; nothing done). */
int erpq_curl_async_stop(erpq_curl_async *a, int64_t drain_ms);

#endif
