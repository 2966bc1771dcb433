#include "erpq_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <time.h>

/* Posts a chain of messages (first..last, linked) with one wakeup. */
static void post_chain(erpq_pool *p, erpq_msg *first, erpq_msg *last) {
  last->next = NULL;
  pthread_mutex_lock(&p->mmu);
  int was_empty = p->mhead == NULL;
  if (p->mtail)
    p->mtail->next = first;
  else
    p->mhead = first;
  p->mtail = last;
  pthread_mutex_unlock(&p->mmu);
  if (was_empty) uv_async_send(&p->async);
}

#define SPIN_NS 100000 /* How long a thread that ran tasks looks for more before sleeping. */
#define QUICK_TASK_NS 200000 /* Tasks shorter than this are reported in batches, */
#define QUICK_BATCH_MAX 64     /* of at most this many, so the loop can start
                                * finishing them while the rest run. */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *thread_main(void *arg) {
  erpq_pool *p = arg;
  /* Finished tasks not yet posted: a burst of quick tasks is reported to
   * the loop in one go, which then finishes them in one Redis call. */
  erpq_msg *done_first = NULL, *done_last = NULL;
  int ran = 0, done_n = 0, hot = 0;
  for (;;) {
    pthread_mutex_lock(&p->tmu);
    p->busy -= ran;
    ran = 0;
    if (!p->thead && done_first) {
      pthread_mutex_unlock(&p->tmu);
      post_chain(p, done_first, done_last);
      done_first = done_last = NULL;
      done_n = 0;
      continue;
    }
    if (!p->thead && !p->stopping && hot) {
      /* A thread that just ran tasks stays hot for a moment: under load
       * the next batch arrives within about a hundred microseconds, and
       * finding it without sleeping saves two context switches. */
      int64_t until = now_ns() + SPIN_NS;
      while (!p->thead && !p->stopping && now_ns() < until) {
        pthread_mutex_unlock(&p->tmu);
        sched_yield();
        pthread_mutex_lock(&p->tmu);
      }
    }
    hot = 0;
    while (!p->thead && !p->stopping) {
      p->idle++;
      pthread_cond_wait(&p->tcv, &p->tmu);
      p->idle--;
      if (p->wakes) p->wakes--;
    }
    erpq_task *t = p->thead;
    if (!t) {
      pthread_mutex_unlock(&p->tmu);
      return NULL;
    }
    p->thead = t->next;
    if (!p->thead) p->ttail = NULL;
    p->queued--;
    p->taken++;
    hot = 1;
    p->busy++;
    pthread_mutex_unlock(&p->tmu);
    int64_t t0 = now_ns();
    int detached = t->run(t) == ERPQ_TASK_DETACHED;
    int64_t took = now_ns() - t0;
    ran = 1;
    if (detached) continue; /* Its owner posts it later. */
    t->msg.next = NULL;
    if (done_last)
      done_last->next = &t->msg;
    else
      done_first = &t->msg;
    done_last = &t->msg;
    if (++done_n >= QUICK_BATCH_MAX || took >= QUICK_TASK_NS) {
      post_chain(p, done_first, done_last);
      done_first = done_last = NULL;
      done_n = 0;
    }
  }
}

static void on_async(uv_async_t *a) {
  erpq_pool *p = a->data;
  pthread_mutex_lock(&p->mmu);
  erpq_msg *m = p->mhead;
  p->mhead = p->mtail = NULL;
  pthread_mutex_unlock(&p->mmu);
  while (m) {
    erpq_msg *next = m->next;
    p->deliver(p, m);
    m = next;
  }
  if (p->after) p->after(p);
}

/* Wakes n idle threads; tmu held. */
static void wake(erpq_pool *p, int n) {
  int sleeping = p->idle - p->wakes;
  if (n > sleeping) n = sleeping;
  for (int i = 0; i < n; i++) pthread_cond_signal(&p->tcv);
  if (n > 0) p->wakes += n;
}

static void on_backlog(uv_timer_t *timer) {
  erpq_pool *p = timer->data;
  pthread_mutex_lock(&p->tmu);
  int empty = p->queued == 0;
  if (!empty) {
    /* No task taken for a whole tick: the awake threads are stuck in long
     * jobs, so every waiting task gets a thread. Otherwise the hot
     * threads are keeping up; add one more in case the backlog grows. */
    if (p->taken == p->taken_seen)
      wake(p, p->queued);
    else
      wake(p, 1);
  }
  p->taken_seen = p->taken;
  pthread_mutex_unlock(&p->tmu);
  if (empty) uv_timer_stop(timer);
}

int erpq_pool_start(erpq_pool *p, uv_loop_t *loop, int nthreads,
                    void (*deliver)(erpq_pool *p, erpq_msg *m)) {
  void *data = p->data;
  void (*after)(erpq_pool *) = p->after;
  memset(p, 0, sizeof *p);
  p->data = data;
  p->after = after;
  p->deliver = deliver;
  /* The critical sections are a few pointer moves: spinning briefly on
   * contention beats sleeping in the kernel. */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&p->tmu, &ma);
  pthread_mutex_init(&p->mmu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_cond_init(&p->tcv, NULL);
  int rc = uv_async_init(loop, &p->async, on_async);
  if (rc) return rc;
  p->async.data = p;
  uv_timer_init(loop, &p->backlog);
  p->backlog.data = p;
  p->threads = calloc((size_t)nthreads, sizeof *p->threads);
  if (!p->threads) return -ENOMEM;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  /* Handlers get 2 MiB of stack: enough for libharu and MariaDB, and only
   * the touched pages count towards RSS. */
  pthread_attr_setstacksize(&attr, 2u << 20);
  p->nthreads = nthreads;
  for (int i = 0; i < nthreads; i++) {
    rc = pthread_create(&p->threads[i], &attr, thread_main, p);
    if (rc) {
      pthread_mutex_lock(&p->tmu);
      p->nthreads = i;
      pthread_mutex_unlock(&p->tmu);
      pthread_attr_destroy(&attr);
      return -rc;
    }
    p->started++;
  }
  pthread_attr_destroy(&attr);
  return 0;
}

void erpq_pool_submit(erpq_pool *p, erpq_task *t) {
  t->next = NULL;
  pthread_mutex_lock(&p->tmu);
  if (p->ttail)
    p->ttail->next = t;
  else
    p->thead = t;
  p->ttail = t;
  p->queued++;
  /* Wake a thread only if none is awake or about to be; see the header. */
  if (p->idle - p->wakes == p->nthreads) wake(p, 1);
  pthread_mutex_unlock(&p->tmu);
  if (!uv_is_active((uv_handle_t *)&p->backlog)) uv_timer_start(&p->backlog, on_backlog, 1, 1);
}

void erpq_pool_post(erpq_pool *p, erpq_msg *m) { post_chain(p, m, m); }

void erpq_pool_stop(erpq_pool *p) {
  pthread_mutex_lock(&p->tmu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->tcv);
  pthread_mutex_unlock(&p->tmu);
  if (!uv_is_closing((uv_handle_t *)&p->async)) uv_close((uv_handle_t *)&p->async, NULL);
  if (!uv_is_closing((uv_handle_t *)&p->backlog)) uv_close((uv_handle_t *)&p->backlog, NULL);
}

int erpq_pool_join(erpq_pool *p) {
  pthread_mutex_lock(&p->tmu);
  int busy = p->busy + (p->thead != NULL);
  pthread_mutex_unlock(&p->tmu);
  if (busy) return busy;
  for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  p->threads = NULL;
  p->started = 0;
  pthread_mutex_destroy(&p->tmu);
  pthread_cond_destroy(&p->tcv);
  pthread_mutex_destroy(&p->mmu);
  return 0;
}

erpq_msg *erpq_pool_take_undelivered(erpq_pool *p) {
  erpq_msg *m = p->mhead;
  p->mhead = p->mtail = NULL;
  return m;
}
