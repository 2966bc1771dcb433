/*
 * erpq_pool.h - the threads that run job handlers, and the way back to the
 * event loop.
 *
 * The pool owns N threads (the sum of the queues' concurrency) and two FIFO
 * queues guarded by one mutex each: tasks waiting for a thread, and
 * messages waiting for the loop. A thread runs a task's run() and then posts
 * the task itself back; handlers post progress and log messages the same
 * way. One uv_async_t wakes the loop, which calls deliver() for every
 * message in order, so a job's progress always reaches Redis before its
 * finish.
 *
 * Waking threads costs a context switch each, which for short jobs costs
 * more than the job. So a submit wakes a thread only when none is awake;
 * an awake thread keeps taking tasks until the queue is empty, and a 1 ms
 * backlog timer on the loop checks the queue: if no task was taken during
 * the last tick (the awake threads are stuck in long jobs), every waiting
 * task gets a thread; if tasks are being taken, one more thread joins.
 * Short jobs thus run on one or two hot threads, and blocking jobs still
 * get a thread each within a millisecond or two.
 *
 * A task may detach (run() answers ERPQ_TASK_DETACHED): its thread is free
 * at once and whoever holds the task posts it back later (an async job
 * family's I/O thread). Detached tasks are not counted as busy.
 *
 * Lifecycle: erpq_pool_start() (loop thread) -> submit/post ->
 * erpq_pool_stop() asks the threads to exit once the task queue is empty
 * and closes the async handle; erpq_pool_join() waits for the threads
 * (only when no handler is still running). Ownership: a task or message is
 * owned by whoever holds it in the pipeline; deliver() receives it back.
 */
#ifndef ERPQ_POOL_H
#define ERPQ_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

typedef struct erpq_msg {
  struct erpq_msg *next;
  int kind; /* Set by the poster; the pool does not look at it. */
} erpq_msg;

#define ERPQ_TASK_DETACHED 1 /* run()'s answer: someone posts msg later. */

typedef struct erpq_task {
  erpq_msg msg; /* Posted back to the loop when run() returns 0. */
  struct erpq_task *next;
  /* Returns 0 (post msg back now) or ERPQ_TASK_DETACHED (the task's owner
   * posts msg itself later with erpq_pool_post(), from any thread). */
  int (*run)(struct erpq_task *t);
} erpq_task;

typedef struct erpq_pool {
  uv_async_t async;
  void (*deliver)(struct erpq_pool *p, erpq_msg *m);
  /* Called once after each batch of deliveries (may be NULL). */
  void (*after)(struct erpq_pool *p);
  void *data;
  pthread_t *threads;
  int nthreads, started;
  pthread_mutex_t tmu;
  pthread_cond_t tcv;
  erpq_task *thead, *ttail;
  int stopping;
  pthread_mutex_t mmu;
  erpq_msg *mhead, *mtail;
  int busy;   /* Threads inside run(); guarded by tmu. */
  int idle;   /* Threads waiting for a task; guarded by tmu. */
  int queued; /* Tasks waiting for a thread; guarded by tmu. */
  int wakes;  /* Signals sent that no thread has woken from yet; tmu. */
  uint64_t taken, taken_seen; /* Tasks taken, in all and at the last tick. */
  uv_timer_t backlog;
} erpq_pool;

/* Starts nthreads threads; deliver is called on the loop thread. Returns 0
 * or a negative error. */
int erpq_pool_start(erpq_pool *p, uv_loop_t *loop, int nthreads,
                    void (*deliver)(erpq_pool *p, erpq_msg *m));
void erpq_pool_submit(erpq_pool *p, erpq_task *t);
/* Thread-safe: queues m for deliver() on the loop thread. */
void erpq_pool_post(erpq_pool *p, erpq_msg *m);
/* Asks threads to exit when idle and closes the async handle and the
 * backlog timer (their memory is the pool's, so the pool must live until
 * the loop has run the closes). */
void erpq_pool_stop(erpq_pool *p);
/* Joins the threads; returns the number still busy if it cannot (then it
 * does not wait). */
int erpq_pool_join(erpq_pool *p);
/* After a successful join: the messages posted but never delivered (the
 * loop had closed), as a list the caller now owns. */
erpq_msg *erpq_pool_take_undelivered(erpq_pool *p);

#endif
