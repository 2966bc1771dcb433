#include "erpq_worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_conn.h"
#include "erpq_err.h"
#include "erpq_job.h"
#include "erpq_schemas.h"
#include "erpq_log.h"
#include "erpq_pool.h"
#include "erpq_util.h"

#define MAX_FINISH_PER_STEP 1000   /* Finishes carried by one step call. */
#define TRANSIENT_RETRY_MS 200     /* Delay after LOADING/READONLY/... */
#define MAX_STEPS_INFLIGHT 4       /* Step calls pipelined per queue. */
#define FINAL_MS 1000              /* After the grace period, the longest wait for
                                    * Redis before the worker leaves anyway. */

enum { MSG_DONE = 1, MSG_PROGRESS, MSG_LOG, MSG_CANCEL, MSG_CALL };

typedef struct wq wq;
typedef struct erpq_worker erpq_worker;

/* A job being processed. It is the handler's erpq_jobctx. */
struct erpq_jobctx {
  erpq_task task;             /* Runs the handler; posted back when done. */
  wq *q;
  erpq_job job;
  const erpq_handler *h;
  json_t *data;
  /* Written by the handler thread, read on the loop after MSG_DONE. */
  int rc;
  json_t *result;
  char err[1024];
  int discard;
  int64_t postpone_ms; /* erpq_job_delay(): back to delayed, no attempt used. */
  int pool;            /* The family pool that runs it. */
  /* Cancellation, shared between the threads. */
  atomic_int cancelled;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void (*on_cancel)(struct erpq_jobctx *c, void *ud); /* Guarded by mu. */
  void *cancel_ud;
  int cancel_called;   /* on_cancel ran (or is about to); guarded by mu. */
  /* Loop-thread state. */
  int lost;        /* Lock renewal failed: never finish it. */
  int handed_back; /* Given back to the queue at shutdown. */
  int finished;    /* A finish was already queued (timeout, handback). */
  uv_timer_t timeout;
  int64_t started_ms;
  struct erpq_jobctx *prev, *next;
};

/* A finish waiting to be sent, with what its log line needs: the line is
 * written once Redis has accepted the finish. */
typedef struct pend {
  erpq_finish f;
  char *id, *value, *stack, *name;
  int64_t ms; /* Handler run time, or -1. */
} pend;

typedef struct {
  erpq_msg msg;
  struct erpq_jobctx *ctx;
  char *payload;
} side_msg;

struct wq {
  erpq_worker *w;
  const erpq_queue_conf *conf;
  erpq_keys keys;
  char token[37];
  erpq_conn block;
  int64_t block_client_id;
  int block_inflight, drained;
  int step_inflight;          /* Step calls sent and not yet answered. */
  int reserved;               /* Slots promised to in-flight fetches. */
  char *explicit_id;
  pend *pend;
  size_t npend, cappend;
  struct erpq_jobctx *running;
  int nrunning;
  uv_timer_t t_renew, t_stalled, t_delayed, t_retry;
  int64_t delayed_due_ms;     /* When t_delayed fires; 0 = not armed. */
  int delayed_inflight;
};

struct erpq_worker {
  uv_loop_t *loop;
  const erpq_worker_conf *conf;
  const erpq_registry *reg;
  erpq_conn cmd, sub;
  wq *q;
  int nq;
  erpq_pool *pools; /* One per family pool of the registry (index = handler->pool). */
  int npools;
  uv_signal_t sigterm, sigint;
  uv_timer_t t_grace, t_final;
  int closing, finalizing, handed_back;
  int forced; /* Leaving without waiting for Redis (FINAL_MS, a second signal). */
  int delivering; /* Inside a batch of pool deliveries. */
  int grace_expired;
  uint64_t completed, failed;
};

static void pump(wq *q);
static void maybe_finalize(erpq_worker *w);
static void check_stalled(uv_timer_t *t);

static void noop_reply(erpq_conn *c, redisReply *r, void *priv) {
  (void)c;
  (void)priv;
  if (r && r->type == REDIS_REPLY_ERROR)
    erpq_log(ERPQ_LOG_WARN, "redis.error", "error", r->str, NULL);
}

/* ---- Configuration ------------------------------------------------------- */

void erpq_worker_conf_defaults(erpq_worker_conf *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->prefix, sizeof c->prefix, "%s", ERPQ_DEFAULT_PREFIX);
  c->lock_duration_ms = 30000;
  c->lock_renew_ms = 15000;
  c->stalled_interval_ms = 30000;
  c->max_stalled_count = 1;
  c->guard_interval_ms = 5000;
  c->drain_delay_s = 5;
  c->retry_process_delay_ms = 5000;
  c->grace_ms = 30000;
}

/* ---- The handler's context ----------------------------------------------- */

const char *erpq_job_id(const erpq_jobctx *c) { return c->job.id; }
const char *erpq_job_name(const erpq_jobctx *c) { return c->job.name; }
const char *erpq_job_queue(const erpq_jobctx *c) { return c->q->conf->name; }
const json_t *erpq_job_opts(const erpq_jobctx *c) { return c->job.opts; }
int erpq_job_attempts_made(const erpq_jobctx *c) { return c->job.attempts_made; }
void *erpq_job_userdata(const erpq_jobctx *c) { return c->h ? c->h->userdata : NULL; }
void erpq_job_discard(erpq_jobctx *c) { c->discard = 1; }
int erpq_job_cancelled(const erpq_jobctx *c) { return atomic_load(&c->cancelled); }

/* Runs the job's cancellation callback once (loop thread). */
static void run_on_cancel(erpq_jobctx *c) {
  pthread_mutex_lock(&c->mu);
  void (*fn)(erpq_jobctx *, void *) = c->cancel_called ? NULL : c->on_cancel;
  if (fn) c->cancel_called = 1;
  void *ud = c->cancel_ud;
  pthread_mutex_unlock(&c->mu);
  if (fn) fn(c, ud);
}

static void cancel_job(erpq_jobctx *c) {
  atomic_store(&c->cancelled, 1);
  pthread_mutex_lock(&c->mu);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  run_on_cancel(c);
}

int erpq_job_sleep(erpq_jobctx *c, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  while (!atomic_load(&c->cancelled)) {
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) break;
  }
  if (atomic_load(&c->cancelled)) rc = -ECANCELED;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

static int post_side(erpq_jobctx *c, int kind, char *payload) {
  side_msg *m = malloc(sizeof *m);
  if (!m) {
    free(payload);
    return -ENOMEM;
  }
  m->msg.kind = kind;
  m->ctx = c;
  m->payload = payload;
  /* The job's own pool: its messages reach the loop in the order posted,
   * and before the job's MSG_DONE. */
  erpq_pool_post(&c->q->w->pools[c->pool], &m->msg);
  return 0;
}

void erpq_job_on_cancel(erpq_jobctx *c, void (*fn)(erpq_jobctx *, void *), void *ud) {
  pthread_mutex_lock(&c->mu);
  c->on_cancel = fn;
  c->cancel_ud = ud;
  int late = fn && atomic_load(&c->cancelled) && !c->cancel_called;
  pthread_mutex_unlock(&c->mu);
  /* Cancelled before the callback was set: run it on the loop. */
  if (late) post_side(c, MSG_CANCEL, NULL);
}

/* ---- Redis calls from handler threads ----------------------------------------------
 * A call is a message to the loop, which sends it on the command connection.
 * The handler's thread waits on the call's condition variable. Two parties
 * hold the call (refs): the waiting thread and the loop; whichever lets go
 * last frees it, so a handler that stops waiting (timeout, cancellation)
 * never frees a call the loop still answers into. */
typedef struct call_msg {
  erpq_msg msg;
  erpq_jobctx *ctx;
  erpq_cmd cmd;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs, done, rc;
  redisReply *reply;
} call_msg;

static void call_release(call_msg *m) {
  pthread_mutex_lock(&m->mu);
  int left = --m->refs;
  pthread_mutex_unlock(&m->mu);
  if (left) return;
  erpq_cmd_free(&m->cmd);
  if (m->reply) freeReplyObject(m->reply);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  free(m);
}

static void call_answer(call_msg *m, const redisReply *r, int rc) {
  pthread_mutex_lock(&m->mu);
  m->rc = rc;
  if (r && !(m->reply = erpq_reply_dup(r))) m->rc = -ENOMEM;
  m->done = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  call_release(m);
}

static void on_call_reply(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  call_answer(priv, r, r ? 0 : -ENOTCONN);
}

/* Loop thread: send the call, or answer it at once when Redis is down. */
static void deliver_call(erpq_worker *w, call_msg *m) {
  erpq_cmd cmd = m->cmd;
  memset(&m->cmd, 0, sizeof m->cmd);
  if (w->cmd.state != ERPQ_CONN_READY || erpq_conn_send(&w->cmd, &cmd, on_call_reply, m)) {
    if (w->cmd.state != ERPQ_CONN_READY) erpq_cmd_free(&cmd);
    call_answer(m, NULL, -ENOTCONN);
  }
}

const char *erpq_job_prefix(const erpq_jobctx *c) { return c->q->w->conf->prefix; }

int erpq_job_redis(erpq_jobctx *c, erpq_cmd *cmd, redisReply **reply, int64_t timeout_ms,
                   char *err, size_t errlen) {
  *reply = NULL;
  call_msg *m = calloc(1, sizeof *m);
  if (!m) {
    erpq_cmd_free(cmd);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  m->msg.kind = MSG_CALL;
  m->ctx = c;
  m->cmd = *cmd;
  memset(cmd, 0, sizeof *cmd);
  m->refs = 2;
  pthread_mutex_init(&m->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
  erpq_pool_post(&c->q->w->pools[c->pool], &m->msg);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t end_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + timeout_ms * 1000000;
  int rc;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    if (m->done) {
      rc = m->rc;
      *reply = m->reply;
      m->reply = NULL;
      break;
    }
    if (atomic_load(&c->cancelled)) {
      rc = -ECANCELED;
      break;
    }
    /* Wake every 50 ms to see a cancellation (it does not signal us). */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (now_ns >= end_ns) {
      rc = ERPQ_E_TIMEOUT;
      break;
    }
    int64_t until = now_ns + 50000000 < end_ns ? now_ns + 50000000 : end_ns;
    struct timespec abs = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
    pthread_cond_timedwait(&m->cv, &m->mu, &abs);
  }
  pthread_mutex_unlock(&m->mu);
  call_release(m);
  if (rc == -ENOTCONN) return erpq_fail(err, errlen, rc, "Redis is not reachable");
  if (rc == ERPQ_E_TIMEOUT)
    return erpq_fail(err, errlen, rc, "Redis did not answer within %lld ms", (long long)timeout_ms);
  if (rc == -ECANCELED) return erpq_fail(err, errlen, rc, "the job was cancelled");
  if (rc) return erpq_fail(err, errlen, rc, "%s", erpq_strerror(rc));
  return 0;
}

int erpq_job_enqueue(erpq_jobctx *c, const char *queue, const erpq_newjob *jobs, size_t n,
                     char **ids, int *added, char *err, size_t errlen) {
  if (!n) return 0;
  erpq_keys k;
  int rc = erpq_keys_init(&k, erpq_job_prefix(c), queue);
  if (rc) return erpq_fail(err, errlen, rc, "bad queue name '%s'", queue);
  erpq_cmd cmd;
  erpq_cmd_init(&cmd);
  rc = erpq_bull_add_report(&cmd, &k, c->q->token, jobs, n);
  erpq_keys_free(&k);
  if (rc) {
    erpq_cmd_free(&cmd);
    return erpq_fail(err, errlen, rc, "cannot build the add: %s", erpq_strerror(rc));
  }
  redisReply *r = NULL;
  rc = erpq_job_redis(c, &cmd, &r, 30000, err, errlen);
  if (rc) return rc;
  int tmp[1];
  int *flags = added ? added : (n == 1 ? tmp : malloc(n * sizeof *flags));
  int got = flags ? erpq_bull_parse_added(r, ids, flags, n) : -ENOMEM;
  if (!added && flags != tmp) free(flags);
  if (got != (int)n) {
    if (r->type == REDIS_REPLY_ERROR) erpq_fail(err, errlen, ERPQ_E_REDIS, "Redis: %s", r->str);
    else erpq_fail(err, errlen, got < 0 ? got : ERPQ_E_PROTOCOL, "unexpected answer to the add");
    for (int i = 0; i < got; i++) free(ids[i]);
    freeReplyObject(r);
    return got < 0 ? got : ERPQ_E_PROTOCOL;
  }
  freeReplyObject(r);
  return 0;
}

int erpq_job_delay(erpq_jobctx *c, int64_t ms, const char *reason) {
  c->postpone_ms = ms < 1 ? 1 : ms;
  if (reason && *reason) {
    char line[512];
    snprintf(line, sizeof line, "delayed %lld ms without using an attempt: %s", (long long)c->postpone_ms,
             reason);
    erpq_job_log(c, line);
  }
  return ERPQ_JOB_DELAYED;
}

void erpq_job_finish(erpq_jobctx *c, int rc, json_t *result, const char *err) {
  c->rc = rc;
  c->result = result;
  c->err[0] = '\0';
  if (rc < 0) snprintf(c->err, sizeof c->err, "%s", err && *err ? err : erpq_strerror(rc));
  if (rc < 0) erpq_utf8_fix(c->err);
  erpq_pool_post(&c->q->w->pools[c->pool], &c->task.msg);
}

int erpq_job_progress(erpq_jobctx *c, const json_t *progress) {
  char *s = erpq_json_dump(progress);
  if (!s) return -ENOMEM;
  return post_side(c, MSG_PROGRESS, s);
}

int erpq_job_log(erpq_jobctx *c, const char *line) {
  char *s = strdup(line ? line : "");
  if (!s) return -ENOMEM;
  return post_side(c, MSG_LOG, s);
}

/* ---- Finishes -------------------------------------------------------------- */

static void pend_free(pend *p) {
  free(p->name);
  free(p->id);
  free(p->value);
  free(p->stack);
}

static int pend_push(wq *q, const erpq_finish *f, const char *name, int64_t ms,
                     const char *value, const char *stack) {
  if (q->npend == q->cappend) {
    size_t nc = q->cappend ? q->cappend * 2 : 64;
    pend *n = realloc(q->pend, nc * sizeof *n);
    if (!n) return -ENOMEM;
    q->pend = n;
    q->cappend = nc;
  }
  pend *p = &q->pend[q->npend];
  p->f = *f;
  p->id = strdup(f->id);
  p->value = strdup(value ? value : "null");
  p->stack = stack ? strdup(stack) : NULL;
  p->name = strdup(name);
  p->ms = ms;
  if (!p->id || !p->value || !p->name) {
    pend_free(p);
    return -ENOMEM;
  }
  p->f.id = p->id;
  p->f.value = p->value;
  p->f.stacktrace = p->stack;
  q->npend++;
  return 0;
}

/* The stacktrace JSON after one more failure: the job's earlier entries plus
 * an Error-style entry, trimmed to stackTraceLimit. */
static char *stack_after(const erpq_job *j, const char *message) {
  json_t *arr = j->stacktrace ? json_loads(j->stacktrace, 0, NULL) : NULL;
  if (!json_is_array(arr)) {
    json_decref(arr);
    arr = json_array();
  }
  size_t n = strlen(message) + strlen(j->name) + 64;
  char *entry = malloc(n);
  if (entry) {
    snprintf(entry, n, "Error: %s\n    at %s (erpq-worker)", message, j->name);
    json_array_append_new(arr, json_string(entry));
    free(entry);
  }
  if (j->o.stacktrace_limit > 0)
    while (json_array_size(arr) > (size_t)j->o.stacktrace_limit) json_array_remove(arr, 0);
  char *s = erpq_json_dump(arr);
  json_decref(arr);
  return s;
}

static void queue_failure(wq *q, const erpq_job *j, const char *message, int discard) {
  erpq_finish f;
  memset(&f, 0, sizeof f);
  int64_t backoff = 0;
  char berr[256] = "";
  if (!discard && j->attempts_made + 1 < j->o.attempts && j->o.backoff_type[0]) {
    if (erpq_registry_backoff(q->w->reg, j->o.backoff_type, j->o.backoff_delay,
                              j->o.backoff_options, j->attempts_made + 1, message, &backoff, berr,
                              sizeof berr)) {
      /* bull leaves such a job active until it stalls; we fail it with the
       * reason instead, so the mistake is visible at once. */
      message = berr;
      discard = 1;
    }
  }
  int64_t now = erpq_now_ms();
  erpq_bull_fail_decision(j, backoff, discard, now, &f);
  char *stack = stack_after(j, message);
  pend_push(q, &f, j->name, -1, message, stack ? stack : "[]");
  free(stack);
}

static void queue_postpone(wq *q, erpq_jobctx *c) {
  erpq_finish f;
  erpq_bull_postpone(&c->job, erpq_now_ms() + c->postpone_ms, &f);
  char why[64];
  snprintf(why, sizeof why, "%lld", (long long)c->postpone_ms);
  pend_push(q, &f, c->job.name, erpq_mono_ms() - c->started_ms, why, NULL);
}

static void queue_success(wq *q, erpq_jobctx *c) {
  char *val = c->result ? erpq_json_dump(c->result) : strdup("null");
  erpq_finish f;
  erpq_bull_complete(&c->job, NULL, &f);
  pend_push(q, &f, c->job.name, erpq_mono_ms() - c->started_ms, val ? val : "null", NULL);
  free(val);
}

/* Logs a finish Redis has answered for: code 0 or bull's negative code. */
static void log_finish(wq *q, const pend *p, int code) {
  if (code < 0) {
    static const char *const why[] = {"", "job missing", "missing lock", "not in active list",
                                      "", "", "lock owned by another worker"};
    erpq_log(ERPQ_LOG_WARN, "job.finish_rejected", "queue", q->conf->name, "jobId", p->id, "name",
             p->name, "error", -code <= 6 && why[-code][0] ? why[-code] : "unexpected code", NULL);
    return;
  }
  if (p->f.kind == ERPQ_FIN_COMPLETED) {
    char ms[24];
    snprintf(ms, sizeof ms, "%" PRId64, p->ms);
    q->w->completed++;
    erpq_log(ERPQ_LOG_INFO, "job.completed", "queue", q->conf->name, "jobId", p->id, "name",
             p->name, "#ms", ms, NULL);
    return;
  }
  if (p->f.kind == ERPQ_FIN_POSTPONED) {
    erpq_log(ERPQ_LOG_INFO, "job.postponed", "queue", q->conf->name, "jobId", p->id, "name",
             p->name, "#delayMs", p->value, NULL);
    return;
  }
  q->w->failed += p->f.kind == ERPQ_FIN_FAILED;
  const char *what = p->f.kind == ERPQ_FIN_FAILED  ? "job.failed"
                     : p->f.kind == ERPQ_FIN_RETRY ? "job.retry"
                                                   : "job.delayed";
  /* A final failure is a warning: someone has to look at it. */
  erpq_log(p->f.kind == ERPQ_FIN_FAILED ? ERPQ_LOG_WARN : ERPQ_LOG_INFO, what, "queue",
           q->conf->name, "jobId", p->id, "name", p->name, "reason", p->value, NULL);
}

/* ---- Running jobs ---------------------------------------------------------- */

/* On the handler's thread: the data is parsed and checked against its
 * schema here, not on the loop (a 50,000-recipient payload must not hold up
 * lock renewal), then the handler runs. */
static int run_handler(erpq_task *t) {
  erpq_jobctx *c = (erpq_jobctx *)t;
  c->err[0] = '\0';
  json_error_t je;
  c->data = json_loads(c->job.data ? c->job.data : "null", JSON_DECODE_ANY, &je);
  if (!c->data) {
    snprintf(c->err, sizeof c->err, "job data is not valid JSON: %s", je.text);
    c->rc = -EINVAL;
    c->discard = 1;
    erpq_utf8_fix(c->err);
    return 0;
  }
  char *problems = erpq_schemas_problems(c->h->schema, c->data);
  if (problems) {
    snprintf(c->err, sizeof c->err, "%s", problems);
    free(problems);
    c->rc = -EINVAL;
    c->discard = 1;
    erpq_utf8_fix(c->err);
    return 0;
  }
  /* Until the handler returns or finishes the job, rc says "held by the
   * handler": erpq_worker_free() counts such jobs as never ended. */
  c->rc = ERPQ_JOB_ASYNC;
  int rc = c->h->fn(c, c->data, &c->result, c->err, sizeof c->err);
  /* ERPQ_JOB_ASYNC: ctx belongs to whoever will call erpq_job_finish(),
   * which may already have happened on another thread (the loop may even
   * have freed ctx): touch nothing of it from here on. */
  if (rc == ERPQ_JOB_ASYNC) return ERPQ_TASK_DETACHED;
  c->rc = rc;
  if (c->rc < 0 && !c->err[0]) snprintf(c->err, sizeof c->err, "%s", erpq_strerror(c->rc));
  /* The message becomes JSON (events, stacktrace): a handler's text may be
   * cut mid-character by the buffer, or not be UTF-8 at all. */
  if (c->rc < 0) erpq_utf8_fix(c->err);
  return 0;
}

static void ctx_free(erpq_jobctx *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  erpq_job_free(&c->job);
  json_decref(c->data);
  json_decref(c->result);
  free(c);
}

static void ctx_closed(uv_handle_t *h) { ctx_free(h->data); }

static void unlink_running(wq *q, erpq_jobctx *c) {
  if (c->prev) c->prev->next = c->next;
  else q->running = c->next;
  if (c->next) c->next->prev = c->prev;
  q->nrunning--;
}

static void on_timeout(uv_timer_t *t) {
  erpq_jobctx *c = t->data;
  if (c->finished || c->lost) return;
  char msg[96];
  snprintf(msg, sizeof msg, "Promise timed out after %" PRId64 " milliseconds", c->job.o.timeout_ms);
  c->finished = 1;
  cancel_job(c);
  queue_failure(c->q, &c->job, msg, 0);
  pump(c->q);
}

static void job_done(erpq_jobctx *c) {
  wq *q = c->q;
  unlink_running(q, c);
  uv_timer_stop(&c->timeout);
  if (c->handed_back) {
    /* Its result is ignored: the job is already back in the queue. */
  } else if (c->lost) {
    erpq_log(ERPQ_LOG_WARN, "job.lock_lost", "queue", q->conf->name, "jobId", c->job.id, "name",
             c->job.name, NULL);
  } else if (!c->finished) {
    c->finished = 1;
    if (c->rc == 0) {
      queue_success(q, c);
    } else if (c->rc == ERPQ_JOB_DELAYED) {
      if (c->postpone_ms <= 0) c->postpone_ms = 1000;
      queue_postpone(q, c);
    } else if (c->rc < 0) {
      queue_failure(q, &c->job, c->err, c->discard);
    } else {
      char why[96];
      snprintf(why, sizeof why, "handler returned an unexpected result (%d)", c->rc);
      queue_failure(q, &c->job, why, 0);
    }
  }
  uv_close((uv_handle_t *)&c->timeout, ctx_closed);
  /* Deliveries from the pool pump once per batch (after_deliveries). */
  if (!q->w->delivering) {
    pump(q);
    maybe_finalize(q->w);
  }
}

static void schedule_next_repeat(wq *q, const erpq_job *j);


static void start_job(wq *q, erpq_job *job) {
  erpq_jobctx *c = calloc(1, sizeof *c);
  if (!c) {
    /* The job stays locked until its lock expires, then the stalled check
     * gives it to another worker. */
    erpq_job_free(job);
    return;
  }
  c->q = q;
  c->job = *job;
  memset(job, 0, sizeof *job);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  uv_timer_init(q->w->loop, &c->timeout);
  c->timeout.data = c;
  c->started_ms = erpq_mono_ms();
  c->next = q->running;
  if (q->running) q->running->prev = c;
  q->running = c;
  q->nrunning++;
  erpq_log(ERPQ_LOG_INFO, "job.active", "queue", q->conf->name, "jobId", c->job.id, "name",
           c->job.name, NULL);
  if (c->job.o.has_repeat) schedule_next_repeat(q, &c->job);

  char buf[256];
  if (c->job.opts_err[0]) {
    c->finished = 1;
    queue_failure(q, &c->job, c->job.opts_err, 1);
    c->rc = -EINVAL;
    job_done(c);
    return;
  }
  /* The data is parsed and checked on the handler's thread (run_handler). */
  c->h = erpq_registry_find(q->w->reg, q->conf->name, c->job.name);
  if (!c->h) {
    snprintf(buf, sizeof buf, "Missing process handler for job type %s", c->job.name);
    c->finished = 1;
    queue_failure(q, &c->job, buf, 0);
    job_done(c);
    return;
  }
  if (c->job.o.timeout_ms > 0) uv_timer_start(&c->timeout, on_timeout, (uint64_t)c->job.o.timeout_ms, 0);
  c->task.msg.kind = MSG_DONE;
  c->task.run = run_handler;
  c->pool = c->h->pool;
  erpq_pool_submit(&q->w->pools[c->pool], &c->task);
}

/* ---- Redis replies ----------------------------------------------------------- */

static void retry_fire(uv_timer_t *t) { pump(t->data); }

static void retry_later(wq *q, int64_t ms) {
  if (!uv_is_active((uv_handle_t *)&q->t_retry)) uv_timer_start(&q->t_retry, retry_fire, (uint64_t)ms, 0);
}

typedef struct step_ctx {
  wq *q;
  pend *fin;
  size_t nfin;
  char *explicit_id;
  int nfetch;
} step_ctx;

static void restore_pend(wq *q, step_ctx *s) {
  /* Put the finishes back in front of any newer ones. */
  size_t need = q->npend + s->nfin;
  if (need > q->cappend) {
    pend *n = realloc(q->pend, need * sizeof *n);
    if (!n) {
      for (size_t i = 0; i < s->nfin; i++) pend_free(&s->fin[i]);
      return;
    }
    q->pend = n;
    q->cappend = need;
  }
  memmove(q->pend + s->nfin, q->pend, q->npend * sizeof *q->pend);
  memcpy(q->pend, s->fin, s->nfin * sizeof *s->fin);
  q->npend = need;
  s->nfin = 0;
}


static void on_step(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  step_ctx *s = priv;
  wq *q = s->q;
  q->step_inflight--;
  q->reserved -= s->nfetch;
  if (!r || r->type == REDIS_REPLY_ERROR) {
    if (r) {
      int transient = erpq_reply_transient(r);
      erpq_log(transient ? ERPQ_LOG_WARN : ERPQ_LOG_ERROR, "redis.step_error", "queue",
               q->conf->name, "error", r->str, NULL);
      retry_later(q, transient ? TRANSIENT_RETRY_MS : q->w->conf->retry_process_delay_ms);
    }
    restore_pend(q, s);
    if (s->explicit_id && !q->explicit_id) q->explicit_id = s->explicit_id;
    else free(s->explicit_id);
    free(s->fin);
    free(s);
    maybe_finalize(q->w);
    return;
  }
  erpq_step_result res;
  int rc = erpq_bull_parse_step(r, &res);
  if (rc) {
    erpq_log(ERPQ_LOG_ERROR, "redis.step_reply", "queue", q->conf->name, "error",
             erpq_strerror(rc), NULL);
    retry_later(q, q->w->conf->retry_process_delay_ms);
  } else {
    for (size_t i = 0; i < res.ncodes && i < s->nfin; i++) log_finish(q, &s->fin[i], res.codes[i]);
    for (size_t i = 0; i < res.njobs; i++) start_job(q, &res.jobs[i]);
    if (s->nfetch > 0) q->drained = res.drained;
    erpq_step_result_free(&res);
  }
  for (size_t i = 0; i < s->nfin; i++) pend_free(&s->fin[i]);
  free(s->fin);
  free(s->explicit_id);
  free(s);
  pump(q);
  maybe_finalize(q->w);
}

static void on_brpoplpush(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  wq *q = priv;
  q->block_inflight = 0;
  if (r && r->type == REDIS_REPLY_STRING) {
    char *id = strndup(r->str, r->len);
    if (q->w->closing) {
      /* Nobody will process it here: put it back at the front. */
      erpq_cmd c;
      erpq_cmd_init(&c);
      erpq_bull_unclaimed(&c, &q->keys, id);
      erpq_conn_send(&q->w->cmd, &c, noop_reply, NULL);
      free(id);
    } else {
      free(q->explicit_id);
      q->explicit_id = id;
      q->drained = 0;
    }
  } else if (r && r->type == REDIS_REPLY_ERROR) {
    int transient = erpq_reply_transient(r);
    erpq_log(transient ? ERPQ_LOG_INFO : ERPQ_LOG_ERROR, "redis.brpoplpush_error", "queue",
             q->conf->name, "error", r->str, NULL);
    retry_later(q, transient ? TRANSIENT_RETRY_MS : q->w->conf->retry_process_delay_ms);
    maybe_finalize(q->w);
    return;
  }
  pump(q);
  maybe_finalize(q->w);
}

/* ---- The fetch cycle ---------------------------------------------------------- */

static void maybe_block(wq *q) {
  erpq_worker *w = q->w;
  if (w->closing || !q->drained || q->block_inflight || q->explicit_id) return;
  if (q->nrunning >= q->conf->concurrency) return;
  if (q->block.state != ERPQ_CONN_READY) return;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_brpoplpush(&c, &q->keys, w->conf->drain_delay_s);
  if (erpq_conn_send(&q->block, &c, on_brpoplpush, q) == 0) q->block_inflight = 1;
}

static void pump(wq *q) {
  erpq_worker *w = q->w;
  if (q->step_inflight >= MAX_STEPS_INFLIGHT || w->cmd.state != ERPQ_CONN_READY) return;
  if (uv_is_active((uv_handle_t *)&q->t_retry)) return;
  int free_slots = q->conf->concurrency - q->nrunning - q->reserved;
  int nfetch = 0;
  if (!w->closing && free_slots > 0 && (q->explicit_id || !q->drained)) nfetch = free_slots;
  /* Fetch at most half the slots per call, so that two calls alternate:
   * Redis serves one half while the other half's jobs run and report. */
  int half = (q->conf->concurrency + 1) / 2;
  if (nfetch > half) nfetch = half;
  if (q->npend == 0 && nfetch == 0) {
    maybe_block(q);
    return;
  }
  /* While other steps are on their way, wait until a worthwhile batch has
   * gathered: one call for many jobs is what keeps Redis's cost per job
   * low. Their replies call pump() again. */
  if (q->step_inflight > 0 && !w->closing) {
    int min_batch = q->conf->concurrency / 2;
    if ((int)q->npend < min_batch && nfetch < min_batch) return;
  }
  /* The explicit id from a blocking pop is fetched first and alone in a
   * step, so only one step ever carries it. */
  if (q->explicit_id && q->step_inflight > 0) nfetch = 0;
  if (q->npend == 0 && nfetch == 0) return;
  step_ctx *s = calloc(1, sizeof *s);
  if (!s) return;
  s->q = q;
  s->nfetch = nfetch;
  size_t n = q->npend < MAX_FINISH_PER_STEP ? q->npend : MAX_FINISH_PER_STEP;
  if (n) {
    s->fin = malloc(n * sizeof *s->fin);
    if (!s->fin) {
      free(s);
      return;
    }
    memcpy(s->fin, q->pend, n * sizeof *s->fin);
    memmove(q->pend, q->pend + n, (q->npend - n) * sizeof *q->pend);
    q->npend -= n;
    s->nfin = n;
  }
  if (nfetch) {
    s->explicit_id = q->explicit_id;
    q->explicit_id = NULL;
  }
  erpq_finish *f = n ? malloc(n * sizeof *f) : NULL;
  for (size_t i = 0; i < n && f; i++) f[i] = s->fin[i].f;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_step(&c, &q->keys, q->token, w->conf->lock_duration_ms, erpq_now_ms(), nfetch,
                 s->explicit_id, &q->conf->limiter, f, f ? n : 0);
  free(f);
  if (erpq_conn_send(&w->cmd, &c, on_step, s)) {
    restore_pend(q, s);
    if (s->explicit_id) q->explicit_id = s->explicit_id;
    free(s->fin);
    free(s);
    return;
  }
  q->step_inflight++;
  q->reserved += nfetch;
}

/* ---- Timers ---------------------------------------------------------------------- */

typedef struct extend_ctx {
  wq *q;
  size_t n;
  char *ids[];
} extend_ctx;

static void on_extend(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  extend_ctx *x = priv;
  wq *q = x->q;
  for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && i < x->n; i++) {
    if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer != 0) continue;
    for (erpq_jobctx *c = q->running; c; c = c->next) {
      if (c->finished || c->lost || strcmp(c->job.id, x->ids[i])) continue;
      c->lost = 1;
      cancel_job(c);
      erpq_log(ERPQ_LOG_WARN, "job.lock_extension_failed", "queue", q->conf->name, "jobId",
               c->job.id, NULL);
    }
  }
  for (size_t i = 0; i < x->n; i++) free(x->ids[i]);
  free(x);
}

static void extend_locks(uv_timer_t *t) {
  wq *q = t->data;
  if (!q->nrunning || q->w->cmd.state != ERPQ_CONN_READY) return;
  extend_ctx *x = malloc(sizeof *x + (size_t)q->nrunning * sizeof(char *));
  if (!x) return;
  x->q = q;
  x->n = 0;
  for (erpq_jobctx *c = q->running; c; c = c->next)
    if (!c->finished && !c->lost && c->task.run) {
      x->ids[x->n] = strdup(c->job.id);
      if (x->ids[x->n]) x->n++;
    }
  if (!x->n) {
    free(x);
    return;
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_extend(&c, &q->keys, q->token, q->w->conf->lock_duration_ms,
                   (const char *const *)x->ids, x->n);
  if (erpq_conn_send(&q->w->cmd, &c, on_extend, x)) {
    for (size_t i = 0; i < x->n; i++) free(x->ids[i]);
    free(x);
  }
}

static void on_stalled(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  wq *q = priv;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return;
  for (int k = 0; k < 2; k++) {
    const redisReply *a = r->element[k];
    for (size_t i = 0; a->type == REDIS_REPLY_ARRAY && i < a->elements; i++)
      erpq_log(ERPQ_LOG_WARN, k == 0 ? "job.stalled_failed" : "job.stalled", "queue",
               q->conf->name, "jobId", a->element[i]->str, NULL);
  }
}

static void check_stalled(uv_timer_t *t) {
  wq *q = t->data;
  if (q->w->cmd.state != ERPQ_CONN_READY) return;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_stalled(&c, &q->keys, q->w->conf->max_stalled_count, erpq_now_ms(),
                    q->w->conf->stalled_interval_ms);
  erpq_conn_send(&q->w->cmd, &c, on_stalled, q);
}

static void run_delayed(uv_timer_t *t);

static void arm_delayed(wq *q, int64_t due_ms) {
  if (q->w->closing) return;
  int64_t now = erpq_now_ms();
  int64_t guard = now + q->w->conf->guard_interval_ms;
  if (due_ms <= 0 || due_ms > guard) due_ms = guard;
  if (q->delayed_due_ms && uv_is_active((uv_handle_t *)&q->t_delayed) && q->delayed_due_ms <= due_ms)
    return;
  q->delayed_due_ms = due_ms;
  int64_t wait = due_ms - now;
  uv_timer_start(&q->t_delayed, run_delayed, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static void on_delayed(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  wq *q = priv;
  q->delayed_inflight = 0;
  int64_t next = 0;
  if (r && r->type == REDIS_REPLY_STRING) {
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.*s", (int)r->len, r->str);
    next = (int64_t)(strtod(tmp, NULL) / 4096.0);
    next += 1; /* ceil: the score's low 12 bits are below one ms. */
  }
  q->delayed_due_ms = 0;
  arm_delayed(q, next);
}

static void run_delayed(uv_timer_t *t) {
  wq *q = t->data;
  q->delayed_due_ms = 0;
  if (q->w->cmd.state != ERPQ_CONN_READY || q->delayed_inflight) {
    arm_delayed(q, 0);
    return;
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_delayed(&c, &q->keys, q->token, erpq_now_ms());
  if (erpq_conn_send(&q->w->cmd, &c, on_delayed, q) == 0)
    q->delayed_inflight = 1;
  else
    arm_delayed(q, 0);
}

/* ---- Repeatable jobs ---------------------------------------------------------------- */

static void on_repeat_added(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  char *key = priv;
  if (r && r->type == REDIS_REPLY_ERROR)
    erpq_log(ERPQ_LOG_ERROR, "repeat.add_failed", "repeatKey", key, "error", r->str, NULL);
  free(key);
}

static void schedule_next_repeat(wq *q, const erpq_job *j) {
  erpq_newjob nj;
  char err[256] = "";
  int rc = erpq_bull_repeat_next(j, erpq_now_ms(), &nj, err, sizeof err);
  if (rc < 0) {
    erpq_log(ERPQ_LOG_ERROR, "repeat.next_failed", "queue", q->conf->name, "jobId", j->id, "error",
             err[0] ? err : erpq_strerror(rc), NULL);
    return;
  }
  if (rc == 0) return;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_add(&c, &q->keys, q->token, &nj, 1, 1);
  char *key = strdup(nj.repeat_key ? nj.repeat_key : "");
  if (erpq_conn_send(&q->w->cmd, &c, on_repeat_added, key)) free(key);
  erpq_newjob_free(&nj);
}

/* ---- Connections ------------------------------------------------------------------ */

static void on_client_id(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  wq *q = priv;
  if (r && r->type == REDIS_REPLY_INTEGER) q->block_client_id = r->integer;
}

static void block_ready(erpq_conn *conn) {
  wq *q = conn->data;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_setname(&c, &q->keys);
  erpq_conn_send(conn, &c, noop_reply, NULL);
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "CLIENT");
  erpq_cmd_push_str(&c, "ID");
  erpq_conn_send(conn, &c, on_client_id, q);
  /* After a reconnect, look at the queue afresh. */
  q->drained = 0;
  pump(q);
}

static void block_down(erpq_conn *conn) {
  wq *q = conn->data;
  q->block_inflight = 0;
  q->block_client_id = 0;
}

static void cmd_ready(erpq_conn *conn) {
  erpq_worker *w = conn->data;
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    q->delayed_inflight = 0;
    pump(q);
    arm_delayed(q, 1);
    if (w->conf->stalled_interval_ms > 0 && !w->closing) check_stalled(&q->t_stalled);
  }
}

static void cmd_down(erpq_conn *conn) {
  erpq_worker *w = conn->data;
  for (int i = 0; i < w->nq; i++) w->q[i].delayed_inflight = 0;
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  erpq_worker *w = priv;
  redisReply *r = reply;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  if (r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message")) return;
  const char *ch = r->element[1]->str;
  for (int i = 0; i < w->nq; i++) {
    if (strcmp(ch, w->q[i].keys.delayed)) continue;
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.*s", (int)r->element[2]->len, r->element[2]->str);
    double due = strtod(tmp, NULL);
    if (due > 0) arm_delayed(&w->q[i], (int64_t)due + 1);
  }
}

static void sub_ready(erpq_conn *conn) {
  erpq_worker *w = conn->data;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "SUBSCRIBE");
  for (int i = 0; i < w->nq; i++) erpq_cmd_push_str(&c, w->q[i].keys.delayed);
  erpq_conn_send_raw(conn, &c, on_sub_message, w);
}

/* ---- Deliveries from the pool --------------------------------------------------------- */

static void after_deliveries(erpq_pool *p) {
  erpq_worker *w = p->data;
  w->delivering = 0;
  for (int i = 0; i < w->nq; i++) pump(&w->q[i]);
  maybe_finalize(w);
}

static void deliver(erpq_pool *p, erpq_msg *m) {
  erpq_worker *w = p->data;
  w->delivering = 1;
  if (m->kind == MSG_DONE) {
    job_done((erpq_jobctx *)m);
    return;
  }
  side_msg *s = (side_msg *)m;
  erpq_jobctx *c = s->ctx;
  wq *q = c->q;
  if (m->kind == MSG_CANCEL) {
    run_on_cancel(c);
    free(s);
    return;
  }
  if (m->kind == MSG_CALL) {
    deliver_call(w, (call_msg *)m);
    return;
  }
  if (!c->finished && !c->lost && w->cmd.state == ERPQ_CONN_READY) {
    erpq_cmd cmd;
    erpq_cmd_init(&cmd);
    if (m->kind == MSG_PROGRESS)
      erpq_bull_progress(&cmd, &q->keys, c->job.id, s->payload);
    else
      erpq_bull_log(&cmd, &q->keys, c->job.id, s->payload);
    erpq_conn_send(&w->cmd, &cmd, noop_reply, NULL);
  }
  free(s->payload);
  free(s);
}

/* ---- Lifecycle -------------------------------------------------------------------------- */

int erpq_worker_new(erpq_worker **out, uv_loop_t *loop, const erpq_worker_conf *conf,
                    const erpq_registry *reg, char *err, size_t errlen) {
  int rc = erpq_scripts_init();
  if (rc) return erpq_fail(err, errlen, rc, "cannot load the Lua scripts: %s", erpq_strerror(rc));
  if (conf->nqueues <= 0) return erpq_fail(err, errlen, ERPQ_E_ARG, "no queue to serve");
  erpq_worker *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->loop = loop;
  w->conf = conf;
  w->reg = reg;
  w->q = calloc((size_t)conf->nqueues, sizeof *w->q);
  if (!w->q) {
    free(w);
    return -ENOMEM;
  }
  w->nq = conf->nqueues;
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    q->w = w;
    q->conf = &conf->queues[i];
    rc = erpq_keys_init(&q->keys, conf->prefix, q->conf->name);
    if (rc) {
      erpq_worker_free(w);
      return erpq_fail(err, errlen, rc, "bad queue name '%s'", q->conf->name);
    }
    /* One token per queue, as bull uses one per Queue instance. */
    erpq_uuid4(q->token);
    q->drained = 0;
  }
  *out = w;
  return 0;
}

static void on_signal(uv_signal_t *s, int signum) {
  erpq_worker *w = s->data;
  erpq_log(ERPQ_LOG_INFO, "worker.signal", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
  erpq_worker_stop(w);
}

static void init_timer(erpq_worker *w, uv_timer_t *t, void *data) {
  uv_timer_init(w->loop, t);
  t->data = data;
}

/* Threads of registry pool i: its family's fixed number, or one per
 * concurrency slot of every queue it has a handler on (0: unused pool). */
static int pool_threads(const erpq_worker *w, int i) {
  const erpq_registry *r = w->reg;
  int threads = 0;
  for (int k = 0; k < w->nq; k++) {
    int uses = 0;
    for (size_t h = 0; h < r->n && !uses; h++)
      uses = r->h[h].pool == i && !strcmp(r->h[h].queue, w->q[k].conf->name);
    if (uses) threads += w->q[k].conf->concurrency;
  }
  if (threads && r->pools[i].threads > 0) threads = r->pools[i].threads;
  return threads;
}

int erpq_worker_start(erpq_worker *w) {
  const erpq_worker_conf *conf = w->conf;
  w->npools = w->reg->npools;
  w->pools = w->npools ? calloc((size_t)w->npools, sizeof *w->pools) : NULL;
  if (w->npools && !w->pools) return -ENOMEM;
  for (int i = 0; i < w->npools; i++) {
    int threads = pool_threads(w, i);
    if (!threads) continue;
    w->pools[i].data = w;
    w->pools[i].after = after_deliveries;
    int rc = erpq_pool_start(&w->pools[i], w->loop, threads, deliver);
    if (rc) return rc;
    char n[16];
    snprintf(n, sizeof n, "%d", threads);
    erpq_log(ERPQ_LOG_DEBUG, "worker.pool", "family", w->reg->pools[i].family, "#threads", n, NULL);
  }
  w->cmd.data = w;
  erpq_conn_init(&w->cmd, w->loop, &conf->redis, "command");
  w->cmd.on_ready = cmd_ready;
  w->cmd.on_down = cmd_down;
  w->sub.data = w;
  erpq_conn_init(&w->sub, w->loop, &conf->redis, "subscriber");
  w->sub.on_ready = sub_ready;
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    char name[160];
    snprintf(name, sizeof name, "blocking:%s", q->conf->name);
    q->block.data = q;
    erpq_conn_init(&q->block, w->loop, &conf->redis, name);
    q->block.on_ready = block_ready;
    q->block.on_down = block_down;
    init_timer(w, &q->t_renew, q);
    init_timer(w, &q->t_stalled, q);
    init_timer(w, &q->t_delayed, q);
    init_timer(w, &q->t_retry, q);
    uv_timer_start(&q->t_renew, extend_locks, (uint64_t)conf->lock_renew_ms,
                   (uint64_t)conf->lock_renew_ms);
    if (conf->stalled_interval_ms > 0)
      uv_timer_start(&q->t_stalled, check_stalled, (uint64_t)conf->stalled_interval_ms,
                     (uint64_t)conf->stalled_interval_ms);
  }
  uv_signal_init(w->loop, &w->sigterm);
  uv_signal_init(w->loop, &w->sigint);
  w->sigterm.data = w->sigint.data = w;
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  init_timer(w, &w->t_grace, w);
  init_timer(w, &w->t_final, w);
  erpq_conn_start(&w->cmd);
  erpq_conn_start(&w->sub);
  for (int i = 0; i < w->nq; i++) erpq_conn_start(&w->q[i].block);
  for (int i = 0; i < w->nq; i++) {
    char conc[16];
    snprintf(conc, sizeof conc, "%d", w->q[i].conf->concurrency);
    erpq_log(ERPQ_LOG_INFO, "worker.serving", "queue", w->q[i].conf->name, "#concurrency", conc,
             NULL);
  }
  erpq_log(ERPQ_LOG_INFO, "worker.started", "version", ERPQ_VERSION, "prefix", conf->prefix,
           NULL);
  return 0;
}

static int busy(erpq_worker *w) {
  /* After the grace period, results that cannot reach Redis no longer hold
   * the worker: close_all() logs them and the stalled check recovers them. */
  if (w->grace_expired && w->cmd.state != ERPQ_CONN_READY) return 0;
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    /* After the grace period, running jobs have been handed back and no
     * longer hold the worker open. */
    if ((q->nrunning && !w->grace_expired) || q->npend || q->step_inflight) return 1;
  }
  return 0;
}

/* Closes a connection gracefully, or at once when the worker is forced. */
static void conn_end(erpq_worker *w, erpq_conn *c) {
  if (w->forced) erpq_conn_abort(c);
  else erpq_conn_close(c);
}

static void close_all(erpq_worker *w) {
  if (w->finalizing) return;
  w->finalizing = 1;
  /* Results Redis never got: the jobs stay active under our lock until it
   * expires, then any worker's stalled check (Node or C) recovers them. */
  for (int i = 0; i < w->nq; i++)
    for (size_t k = 0; k < w->q[i].npend; k++)
      erpq_log(ERPQ_LOG_WARN, "job.unreported", "queue", w->q[i].conf->name, "jobId",
               w->q[i].pend[k].id, "name", w->q[i].pend[k].name, "note",
               "its result could not reach Redis; the stalled check gives it to a worker", NULL);
  uv_timer_stop(&w->t_grace);
  uv_timer_stop(&w->t_final);
  uv_close((uv_handle_t *)&w->t_grace, NULL);
  uv_close((uv_handle_t *)&w->t_final, NULL);
  uv_close((uv_handle_t *)&w->sigterm, NULL);
  uv_close((uv_handle_t *)&w->sigint, NULL);
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    uv_timer_t *ts[] = {&q->t_renew, &q->t_stalled, &q->t_delayed, &q->t_retry};
    for (int k = 0; k < 4; k++) uv_close((uv_handle_t *)ts[k], NULL);
    conn_end(w, &q->block);
    /* Jobs handed back after the grace period: their timers close now;
     * the contexts are freed by erpq_worker_free() once their threads are
     * done (or left behind at exit if they never are). */
    for (erpq_jobctx *c = q->running; c; c = c->next)
      if (!uv_is_closing((uv_handle_t *)&c->timeout)) uv_close((uv_handle_t *)&c->timeout, NULL);
  }
  conn_end(w, &w->sub);
  conn_end(w, &w->cmd);
  for (int i = 0; i < w->npools; i++)
    if (w->pools[i].threads) erpq_pool_stop(&w->pools[i]);
  char done[48];
  snprintf(done, sizeof done, "%" PRIu64, w->completed);
  char failed[48];
  snprintf(failed, sizeof failed, "%" PRIu64, w->failed);
  erpq_log(ERPQ_LOG_INFO, "worker.stopped", "#completed", done, "#failed", failed, NULL);
}

static void maybe_finalize(erpq_worker *w) {
  if (!w->closing || w->finalizing) return;
  if (busy(w) || w->handed_back) return;
  for (int i = 0; i < w->nq; i++)
    if (w->q[i].block_inflight) return;
  close_all(w);
}

static void on_handback(erpq_conn *conn, redisReply *r, void *priv) {
  (void)conn;
  erpq_worker *w = priv;
  if (!r || r->type != REDIS_REPLY_ARRAY)
    erpq_log(ERPQ_LOG_ERROR, "worker.handback_failed", "error",
             r && r->type == REDIS_REPLY_ERROR ? r->str : "connection lost", NULL);
  for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
    if (r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 0)
      erpq_log(ERPQ_LOG_WARN, "worker.handback_skipped", "note",
               "a job's lock was no longer ours; the stalled check recovers it", NULL);
  if (--w->handed_back == 0) maybe_finalize(w);
}

/* FINAL_MS after the grace period (or at a second signal): Redis has had
 * its chance to take the results and hand-backs; leave now. */
static void force_close(erpq_worker *w) {
  if (w->finalizing) return;
  w->forced = 1;
  erpq_log(ERPQ_LOG_WARN, "worker.forced_stop", "note",
           "leaving without waiting for Redis any longer", NULL);
  close_all(w);
}

static void final_fire(uv_timer_t *t) { force_close(t->data); }

static void grace_over(uv_timer_t *t) {
  erpq_worker *w = t->data;
  if (w->grace_expired) return;
  w->grace_expired = 1;
  uv_timer_start(&w->t_final, final_fire, FINAL_MS, 0);
  /* Jobs still running go back to the front of the line for another
   * worker; their results, if they ever come, are ignored. */
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    size_t n = 0;
    const char **ids = malloc((size_t)(q->nrunning + 1) * sizeof *ids);
    for (erpq_jobctx *c = q->running; c && ids; c = c->next) {
      cancel_job(c);
      if (!c->finished && !c->lost) ids[n++] = c->job.id;
      c->handed_back = 1;
      c->lost = 1;
    }
    if (n && ids) {
      erpq_cmd c;
      erpq_cmd_init(&c);
      erpq_bull_handback(&c, &q->keys, q->token, ids, n);
      int sent = erpq_conn_send(&w->cmd, &c, on_handback, w) == 0;
      if (sent) w->handed_back++;
      for (size_t k = 0; k < n; k++)
        erpq_log(ERPQ_LOG_WARN, sent ? "job.handed_back" : "job.left_active", "queue",
                 q->conf->name, "jobId", ids[k], "note",
                 sent ? NULL : "Redis is unreachable; the stalled check recovers it", NULL);
    }
    free(ids);
  }
  /* The worker closes once the hand-back is answered, without waiting for
   * handlers that ignore cancellation (their threads are left at exit). */
  maybe_finalize(w);
}

void erpq_worker_stop(erpq_worker *w) {
  if (w->closing) {
    /* A second signal: hand back what Redis still takes and leave now. */
    if (!w->finalizing) {
      grace_over(&w->t_grace);
      force_close(w);
    }
    return;
  }
  w->closing = 1;
  erpq_log(ERPQ_LOG_INFO, "worker.closing", NULL);
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    uv_timer_stop(&q->t_delayed);
    uv_timer_stop(&q->t_stalled);
    if (q->block_inflight && q->block_client_id && w->cmd.state == ERPQ_CONN_READY) {
      erpq_cmd c;
      erpq_cmd_init(&c);
      erpq_cmd_push_str(&c, "CLIENT");
      erpq_cmd_push_str(&c, "UNBLOCK");
      erpq_cmd_push_i64(&c, q->block_client_id);
      erpq_conn_send(&w->cmd, &c, noop_reply, NULL);
    } else if (q->block_inflight) {
      erpq_conn_reset(&q->block);
    }
    if (q->explicit_id) {
      erpq_cmd c;
      erpq_cmd_init(&c);
      erpq_bull_unclaimed(&c, &q->keys, q->explicit_id);
      erpq_conn_send(&w->cmd, &c, noop_reply, NULL);
      free(q->explicit_id);
      q->explicit_id = NULL;
    }
    pump(q); /* Flush finishes. */
  }
  uv_timer_start(&w->t_grace, grace_over, (uint64_t)w->conf->grace_ms, 0);
  maybe_finalize(w);
}

int erpq_worker_free(erpq_worker *w) {
  if (!w) return 0;
  int left = 0;
  for (int i = 0; i < w->npools; i++)
    if (w->pools[i].threads) left += erpq_pool_join(&w->pools[i]);
  if (left) return left; /* The caller exits without freeing. */
  /* Jobs that ended after the loop: their messages were never delivered.
   * An async job whose finish never came is still held by its family
   * (its quiesce() did not end it): leave without freeing. */
  for (int i = 0; i < w->npools; i++) {
    for (erpq_msg *m = erpq_pool_take_undelivered(&w->pools[i]), *next; m; m = next) {
      next = m->next;
      if (m->kind == MSG_CALL) {
        call_answer((call_msg *)m, NULL, -ENOTCONN);
      } else if (m->kind != MSG_DONE) {
        free(((side_msg *)m)->payload);
        free(m);
      } else {
        ((erpq_jobctx *)m)->task.run = NULL; /* Done: safe to free. */
      }
    }
  }
  for (int i = 0; i < w->nq; i++)
    for (erpq_jobctx *c = w->q[i].running; c; c = c->next)
      if (c->rc == ERPQ_JOB_ASYNC && c->task.run) left++;
  if (left) return left;
  free(w->pools);
  for (int i = 0; i < w->nq; i++) {
    wq *q = &w->q[i];
    for (erpq_jobctx *c = q->running, *next; c; c = next) {
      next = c->next;
      ctx_free(c);
    }
    erpq_keys_free(&q->keys);
    for (size_t k = 0; k < q->npend; k++) pend_free(&q->pend[k]);
    free(q->pend);
    free(q->explicit_id);
  }
  free(w->q);
  free(w);
  return left;
}
