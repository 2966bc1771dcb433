/* erpq_curl_async.c - see erpq_curl_async.h. */
#include "erpq_curl_async.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_util.h"

enum { X_QUEUED, X_ACTIVE };

typedef struct xfer {
  uint64_t id;
  CURL *easy;
  erpq_curl_group *g;
  erpq_curl_done_fn done;
  void *ud;
  void *saved_private;
  int adopted; /* PRIVATE and NOSIGNAL are set on easy. */
  int state;
  int cancel;               /* Cancellation asked while ACTIVE. */
  int started;              /* Was added to the multi handle. */
  struct xfer *prev, *next; /* Group queue, or the active list. */
  struct xfer *hnext;       /* Id hash chain. */
} xfer;

struct erpq_curl_group {
  int limit; /* 0: no bound of its own. */
  int active;
  size_t queued;
  xfer *qhead, *qtail;
  erpq_curl_group_hooks hooks;
  erpq_curl_group *next; /* Ring of all groups. */
};

#define NBUCKETS 4096

struct erpq_curl_async {
  CURLM *multi;
  pthread_t thread;
  pthread_mutex_t mu;
  int max_active;
  int active;
  xfer *active_head;    /* ACTIVE transfers (doubly linked). */
  erpq_curl_group dflt; /* The default group; the ring starts here. */
  erpq_curl_group *rr;  /* Round-robin cursor. */
  xfer *buckets[NBUCKETS];
  uint64_t next_id;
  int woken;           /* A wakeup is on its way. */
  int cancel_active;   /* ACTIVE transfers with cancel set. */
  int stopping;        /* stop() was called. */
  int closed;          /* Past the drain: everything is cancelled. */
  int64_t deadline_ms; /* Monotonic end of the drain; INT64_MAX: none. */
  erpq_curl_async_stats st;
  int global_inited;
};

/* ---- Bookkeeping (under mu) ---------------------------------------------------- */

static void hash_add(erpq_curl_async *a, xfer *x) {
  xfer **b = &a->buckets[x->id % NBUCKETS];
  x->hnext = *b;
  *b = x;
}

static xfer *hash_find(erpq_curl_async *a, uint64_t id) {
  for (xfer *x = a->buckets[id % NBUCKETS]; x; x = x->hnext)
    if (x->id == id)
      return x;
  return NULL;
}

static void hash_del(erpq_curl_async *a, xfer *x) {
  for (xfer **p = &a->buckets[x->id % NBUCKETS]; *p; p = &(*p)->hnext)
    if (*p == x) {
      *p = x->hnext;
      return;
    }
}

static void q_push(erpq_curl_group *g, xfer *x) {
  x->next = NULL;
  x->prev = g->qtail;
  if (g->qtail)
    g->qtail->next = x;
  else
    g->qhead = x;
  g->qtail = x;
  g->queued++;
}

static void q_del(erpq_curl_group *g, xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    g->qhead = x->next;
  if (x->next)
    x->next->prev = x->prev;
  else
    g->qtail = x->prev;
  x->prev = x->next = NULL;
  g->queued--;
}

static void act_add(erpq_curl_async *a, xfer *x) {
  x->prev = NULL;
  x->next = a->active_head;
  if (a->active_head)
    a->active_head->prev = x;
  a->active_head = x;
  a->active++;
  x->g->active++;
}

static void act_del(erpq_curl_async *a, xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    a->active_head = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
  a->active--;
  x->g->active--;
}

static size_t queued_total(erpq_curl_async *a) {
  size_t n = 0;
  erpq_curl_group *g = &a->dflt;
  do {
    n += g->queued;
    g = g->next;
  } while (g != &a->dflt);
  return n;
}

/* ---- Runner thread ------------------------------------------------------------------ */

/* Hands x back to its owner: restores CURLOPT_PRIVATE, runs the callback,
 * frees the record. x is no longer in any list; called without mu. */
static void complete(erpq_curl_async *a, xfer *x, CURLcode rc) {
  long nconn = 0;
  if (!x->started || curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn) != CURLE_OK)
    nconn = 0;
  pthread_mutex_lock(&a->mu);
  hash_del(a, x);
  a->st.completed++;
  if (rc == CURLE_ABORTED_BY_CALLBACK)
    a->st.cancelled++;
  if (nconn > 0)
    a->st.connects += (uint64_t)nconn;
  pthread_mutex_unlock(&a->mu);
  /* Restoring a pointer option cannot fail; the result is checked anyway. */
  if (x->adopted && curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x->saved_private) != CURLE_OK) {
    /* Nothing better to do: the caller's private pointer is lost. */
  }
  x->done(x->easy, rc, x->id, x->ud);
  free(x);
}

/* Takes an ACTIVE transfer out of the multi handle and out of the active
 * list (under mu), then completes it. */
static void finish_active(erpq_curl_async *a, xfer *x, CURLcode rc) {
  if (x->started && rc == CURLE_ABORTED_BY_CALLBACK && x->g->hooks.abort)
    x->g->hooks.abort(x->easy, x->ud, x->g->hooks.ud);
  if (x->started)
    (void)curl_multi_remove_handle(a->multi, x->easy);
  pthread_mutex_lock(&a->mu);
  act_del(a, x);
  if (x->cancel)
    a->cancel_active--;
  pthread_mutex_unlock(&a->mu);
  complete(a, x, rc);
}

/* Takes the easy handle over: the caller's CURLOPT_PRIVATE is kept aside,
 * ours set, and NOSIGNAL. Returns 0 or -1. */
static int adopt(xfer *x) {
  if (curl_easy_getinfo(x->easy, CURLINFO_PRIVATE, &x->saved_private) != CURLE_OK ||
      curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x) != CURLE_OK ||
      curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK)
    return -1;
  x->adopted = 1;
  return 0;
}

/* Starts queued transfers while there is room. Returns how many it
 * started (or completed at once because their start failed). */
static int start_some(erpq_curl_async *a) {
  int n = 0;
  for (;;) {
    xfer *x = NULL;
    pthread_mutex_lock(&a->mu);
    if (!a->closed && a->active < a->max_active) {
      erpq_curl_group *g = a->rr;
      do {
        if (g->qhead && (g->limit == 0 || g->active < g->limit)) {
          x = g->qhead;
          q_del(g, x);
          x->state = X_ACTIVE;
          act_add(a, x);
          a->rr = g->next;
          break;
        }
        g = g->next;
      } while (g != a->rr);
    }
    pthread_mutex_unlock(&a->mu);
    if (!x)
      return n;
    n++;
    CURLcode rc = CURLE_OK;
    if (x->g->hooks.start)
      rc = x->g->hooks.start(&x->easy, x->ud, x->g->hooks.ud);
    if (rc == CURLE_OK && !x->easy)
      rc = CURLE_FAILED_INIT;
    if (rc == CURLE_OK && !x->adopted && adopt(x))
      rc = CURLE_FAILED_INIT;
    if (rc == CURLE_OK) {
      if (curl_multi_add_handle(a->multi, x->easy) != CURLM_OK)
        rc = CURLE_FAILED_INIT;
      else
        x->started = 1;
    }
    if (rc != CURLE_OK) {
      pthread_mutex_lock(&a->mu);
      act_del(a, x);
      if (x->cancel)
        a->cancel_active--;
      pthread_mutex_unlock(&a->mu);
      complete(a, x, rc);
    }
  }
}

/* Removes the ACTIVE transfers whose cancellation was asked. */
static int reap_cancelled(erpq_curl_async *a) {
  int n = 0;
  for (;;) {
    xfer *x = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->cancel_active > 0)
      for (x = a->active_head; x && !x->cancel; x = x->next) {
      }
    pthread_mutex_unlock(&a->mu);
    if (!x)
      return n;
    finish_active(a, x, CURLE_ABORTED_BY_CALLBACK);
    n++;
  }
}

/* Past the drain: every queued and active transfer is aborted. */
static void abort_all(erpq_curl_async *a) {
  for (;;) {
    xfer *x = NULL;
    pthread_mutex_lock(&a->mu);
    erpq_curl_group *g = &a->dflt;
    do {
      if (g->qhead) {
        x = g->qhead;
        q_del(g, x);
        break;
      }
      g = g->next;
    } while (g != &a->dflt);
    pthread_mutex_unlock(&a->mu);
    if (!x)
      break;
    complete(a, x, CURLE_ABORTED_BY_CALLBACK);
  }
  for (;;) {
    pthread_mutex_lock(&a->mu);
    xfer *x = a->active_head;
    pthread_mutex_unlock(&a->mu);
    if (!x)
      break;
    finish_active(a, x, CURLE_ABORTED_BY_CALLBACK);
  }
}

static int collect_done(erpq_curl_async *a) {
  int n = 0, left;
  CURLMsg *m;
  while ((m = curl_multi_info_read(a->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result; /* m dies at remove_handle. */
    void *p = NULL;
    if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &p) != CURLE_OK || !p)
      continue;
    finish_active(a, (xfer *)p, rc);
    n++;
  }
  return n;
}

static void *runner_main(void *arg) {
  erpq_curl_async *a = arg;
  sigset_t ss;
  sigemptyset(&ss);
  sigaddset(&ss, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &ss, NULL);
  for (;;) {
    pthread_mutex_lock(&a->mu);
    a->woken = 0;
    int stopping = a->stopping;
    int64_t deadline = a->deadline_ms;
    pthread_mutex_unlock(&a->mu);
    if (stopping && deadline != INT64_MAX && erpq_mono_ms() >= deadline) {
      pthread_mutex_lock(&a->mu);
      a->closed = 1;
      pthread_mutex_unlock(&a->mu);
      abort_all(a);
    }
    int work = start_some(a);
    work += reap_cancelled(a);
    int running = 0;
    if (curl_multi_perform(a->multi, &running) != CURLM_OK)
      running = 0;
    work += collect_done(a);
    pthread_mutex_lock(&a->mu);
    int idle = a->active == 0 && queued_total(a) == 0;
    int done = a->stopping && idle;
    pthread_mutex_unlock(&a->mu);
    if (done)
      break;
    if (work)
      continue;
    int wait = 1000;
    if (stopping && deadline != INT64_MAX) {
      int64_t left = deadline - erpq_mono_ms();
      wait = left < 0 ? 0 : left < wait ? (int)left : wait;
    }
    (void)curl_multi_poll(a->multi, NULL, 0, wait, NULL);
  }
  return NULL;
}

/* ---- Public API -------------------------------------------------------------------- */

static void wake(erpq_curl_async *a) {
  /* Called with mu held: at most one wakeup per runner turn. */
  if (!a->woken) {
    a->woken = 1;
    (void)curl_multi_wakeup(a->multi);
  }
}

int erpq_curl_async_start(erpq_curl_async **out, const erpq_curl_async_conf *conf, char *err,
                          size_t errlen) {
  *out = NULL;
  erpq_curl_async_conf c = {.max_total_connections = 16};
  if (conf)
    c = *conf;
  if (c.max_total_connections < 0 || c.max_host_connections < 0 || c.max_active < 0)
    return erpq_fail(err, errlen, -EINVAL, "curl runner: negative limit");
  const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
  if (vi->version_num < 0x074400)
    return erpq_fail(err, errlen, -ENOTSUP,
                     "curl runner: libcurl %s is too old (7.68 or later needed)", vi->version);
  erpq_curl_async *a = calloc(1, sizeof *a);
  if (!a)
    return erpq_fail(err, errlen, -ENOMEM, "curl runner: out of memory");
  if (vi->features & CURL_VERSION_THREADSAFE) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      free(a);
      return erpq_fail(err, errlen, -ENOMEM, "curl runner: curl_global_init failed");
    }
    a->global_inited = 1;
  }
  a->max_active = c.max_active              ? c.max_active
                  : c.max_total_connections ? (int)c.max_total_connections
                                            : 64;
  a->dflt.next = &a->dflt;
  a->rr = &a->dflt;
  a->next_id = 1;
  a->deadline_ms = INT64_MAX;
  int rc = -ENOMEM;
  a->multi = curl_multi_init();
  if (!a->multi)
    goto fail;
  if (curl_multi_setopt(a->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c.max_total_connections) ||
      curl_multi_setopt(a->multi, CURLMOPT_MAX_HOST_CONNECTIONS, c.max_host_connections) ||
      (c.max_total_connections > 0 &&
       curl_multi_setopt(a->multi, CURLMOPT_MAXCONNECTS, c.max_total_connections))) {
    rc = -EINVAL;
    goto fail;
  }
  if (pthread_mutex_init(&a->mu, NULL))
    goto fail;
  int e = pthread_create(&a->thread, NULL, runner_main, a);
  if (e) {
    pthread_mutex_destroy(&a->mu);
    rc = -e;
    goto fail;
  }
  *out = a;
  return 0;
fail:
  if (a->multi)
    curl_multi_cleanup(a->multi);
  if (a->global_inited)
    curl_global_cleanup();
  free(a);
  return erpq_fail(err, errlen, rc, "curl runner: cannot start: %s", erpq_strerror(rc));
}

int erpq_curl_group_new(erpq_curl_async *a, int max_active, const erpq_curl_group_hooks *hooks,
                        erpq_curl_group **out, char *err, size_t errlen) {
  *out = NULL;
  if (max_active <= 0)
    return erpq_fail(err, errlen, -EINVAL, "curl group: max_active must be > 0");
  erpq_curl_group *g = calloc(1, sizeof *g);
  if (!g)
    return erpq_fail(err, errlen, -ENOMEM, "curl group: out of memory");
  g->limit = max_active;
  if (hooks)
    g->hooks = *hooks;
  pthread_mutex_lock(&a->mu);
  g->next = a->dflt.next;
  a->dflt.next = g;
  pthread_mutex_unlock(&a->mu);
  *out = g;
  return 0;
}

int erpq_curl_async_submit(erpq_curl_async *a, erpq_curl_group *g, CURL *easy,
                           erpq_curl_done_fn done, void *ud, uint64_t *id) {
  if (!a || !done || (!easy && !(g && g->hooks.start)))
    return -EINVAL;
  xfer *x = calloc(1, sizeof *x);
  if (!x)
    return -ENOMEM;
  x->easy = easy;
  x->g = g ? g : &a->dflt;
  x->done = done;
  x->ud = ud;
  if (easy && adopt(x)) {
    free(x);
    return -EINVAL;
  }
  pthread_mutex_lock(&a->mu);
  int on_runner = pthread_equal(pthread_self(), a->thread);
  if (a->closed || (a->stopping && !on_runner)) {
    pthread_mutex_unlock(&a->mu);
    if (easy)
      (void)curl_easy_setopt(easy, CURLOPT_PRIVATE, x->saved_private);
    free(x);
    return -ESHUTDOWN;
  }
  x->id = a->next_id++;
  x->state = X_QUEUED;
  hash_add(a, x);
  q_push(x->g, x);
  a->st.submitted++;
  if (id)
    *id = x->id;
  if (!on_runner)
    wake(a);
  pthread_mutex_unlock(&a->mu);
  return 0;
}

int erpq_curl_async_cancel(erpq_curl_async *a, uint64_t id) {
  pthread_mutex_lock(&a->mu);
  xfer *x = hash_find(a, id);
  if (!x || x->cancel) {
    pthread_mutex_unlock(&a->mu);
    return -ENOENT;
  }
  if (x->state == X_QUEUED) {
    /* Completed by the runner through the active path: it is put on the
     * active list with cancel set, never added to the multi handle. */
    q_del(x->g, x);
    x->state = X_ACTIVE;
    act_add(a, x);
  }
  x->cancel = 1;
  a->cancel_active++;
  if (!pthread_equal(pthread_self(), a->thread))
    wake(a);
  pthread_mutex_unlock(&a->mu);
  return 0;
}

void erpq_curl_async_stats_get(erpq_curl_async *a, erpq_curl_async_stats *st) {
  pthread_mutex_lock(&a->mu);
  *st = a->st;
  st->queued = queued_total(a);
  st->active = (size_t)a->active;
  pthread_mutex_unlock(&a->mu);
}

int erpq_curl_async_stop(erpq_curl_async *a, int64_t drain_ms) {
  if (pthread_equal(pthread_self(), a->thread))
    return -EDEADLK;
  pthread_mutex_lock(&a->mu);
  a->stopping = 1;
  a->deadline_ms = drain_ms < 0 ? INT64_MAX : erpq_mono_ms() + drain_ms;
  wake(a);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->thread, NULL);
  curl_multi_cleanup(a->multi);
  erpq_curl_group *g = a->dflt.next;
  while (g != &a->dflt) {
    erpq_curl_group *n = g->next;
    free(g);
    g = n;
  }
  pthread_mutex_destroy(&a->mu);
  if (a->global_inited)
    curl_global_cleanup();
  free(a);
  return 0;
}
