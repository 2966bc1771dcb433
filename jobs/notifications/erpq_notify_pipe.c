/*
 * erpq_notify_pipe.c - one dispatcher per channel: claimed sends wait here
 * for the provider gate (rate, daily limit, breaker: erpq_notify_limits.h),
 * go to the transport, and come back with the provider's answer, which is
 * reported to the breaker and handed to the ledger.
 *
 * The dispatcher keeps at most `cap` messages with the transport (a few
 * per connection), so a message is granted its rate slot only moments
 * before it goes out and never waits granted in a long queue. The gate is
 * asked for a batch at once (one Redis call per batch). Without a rate or
 * daily limit only the breaker matters: its state is then cached for
 * 250 ms while it is closed with no failures, so a healthy provider costs
 * no Redis call per message.
 *
 * What a refusal of the gate does to a message:
 *   rate / probe, wait <= 5 s   it stays first in the queue; the gate is
 *                               asked again when the wait is over;
 *   open / hold / day, longer   every message of the queue goes back to
 *                               bull's delayed set for the wait (plus up to
 *                               1 s of jitter) with erpq_job_delay(): no
 *                               attempt used, nothing failed; new sends of
 *                               the channel are delayed by their handler
 *                               until the open period ends.
 * Outcomes: accepted -> ledger (sent); a 429 -> the job is delayed by its
 * Retry-After and the whole fleet holds the provider for as long; a
 * failure of the provider (connection, timeout, 5xx, 421, authentication)
 * counts against the breaker and the job fails for a retry (bull's
 * attempts and backoff); a refusal of this message (SMTP 5xx for the
 * recipient or data, other HTTP 4xx) -> ledger (failed), job discarded.
 * Transport callbacks run on the curl runner thread: they only file the
 * outcome and wake the dispatcher.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notify_internal.h"
#include "erpq_util.h"

#define HOLD_MAX_MS 5000
#define BREAKER_CACHE_MS 250
#define MAX_BATCH 64

struct nt_pipe {
  nt_ctx *nc;
  nt_channel ch;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  nt_send *q, *q_tail, *done, *done_tail;
  int inflight, cap, stop, woken;
  int64_t next_try; /* monotonic ms: the gate said wait */
  int64_t stats_at;
  nt_limits lim;
  /* The breaker as last seen (dispatcher thread only). */
  char state[8];
  int64_t fails, checked;
  atomic_llong open_until; /* wall ms, read by handlers */
};

void nt_pipe_push(nt_pipe *p, nt_send *s) {
  nt_send_stage(s, NT_STAGE_READY);
  s->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->stop) {
    pthread_mutex_unlock(&p->mu);
    nt_send_finish(s, -ECANCELED, NULL, "the worker is stopping");
    return;
  }
  /* A wake-up only when the queue was empty: with sends already queued
   * the dispatcher is awake or waits for room or time, not for this one. */
  int was_empty = !p->q;
  if (p->q_tail)
    p->q_tail->next = s;
  else
    p->q = s;
  p->q_tail = s;
  if (was_empty)
    pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void nt_pipe_wake(nt_pipe *p) {
  pthread_mutex_lock(&p->mu);
  p->woken = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

int64_t nt_pipe_open_until(nt_pipe *p) { return atomic_load(&p->open_until); }

static void done_push(nt_pipe *p, nt_send *s) {
  s->next = NULL;
  pthread_mutex_lock(&p->mu);
  int was_empty = !p->done;
  if (p->done_tail)
    p->done_tail->next = s;
  else
    p->done = s;
  p->done_tail = s;
  if (was_empty)
    pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* ---- Transport callbacks (runner thread) ------------------------------------------------ */

static void smtp_done(const erpq_smtp_result *r, void *ud) {
  nt_send *s = ud;
  s->sent_ms = erpq_now_ms();
  if (r->outcome == ERPQ_SMTP_ACCEPTED) {
    s->out = NT_OUT_ACCEPTED;
    snprintf(s->provider_id, sizeof s->provider_id, "%s", s->message_id);
  } else if (r->stage && !strcmp(r->stage, "CANCELLED")) {
    s->out = NT_OUT_CANCELLED;
  } else {
    /* A failure of the server as a whole (connection, TLS, authentication,
     * 421) is the provider's, whatever its code: retry, count it. */
    s->breaker_fail = r->server_wide;
    s->out =
        r->outcome == ERPQ_SMTP_PERMANENT && !r->server_wide ? NT_OUT_PERMANENT : NT_OUT_TEMPORARY;
    if (r->reply_code)
      snprintf(s->error, sizeof s->error, "SMTP %s %d%s%s: %s", r->stage ? r->stage : "?",
               r->reply_code, r->enhanced[0] ? " " : "", r->enhanced, r->message);
    else
      snprintf(s->error, sizeof s->error, "SMTP %s: %s", r->stage ? r->stage : "?", r->message);
  }
  done_push(s->nc->pipe[NT_EMAIL], s);
}

static void sms_done(const erpq_sms_result *r, void *ud) {
  nt_send *s = ud;
  s->sent_ms = erpq_now_ms();
  switch (r->outcome) {
  case ERPQ_SMS_ACCEPTED:
    s->out = NT_OUT_ACCEPTED;
    snprintf(s->provider_id, sizeof s->provider_id, "%s", r->sid);
    break;
  case ERPQ_SMS_THROTTLED:
    s->out = NT_OUT_THROTTLED;
    s->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 1000;
    break;
  default:
    if (r->curl_code == CURLE_ABORTED_BY_CALLBACK && !r->http_status) {
      s->out = NT_OUT_CANCELLED;
      break;
    }
    s->breaker_fail = r->outcome == ERPQ_SMS_TEMPORARY || r->server_wide;
    s->out =
        r->outcome == ERPQ_SMS_PERMANENT && !r->server_wide ? NT_OUT_PERMANENT : NT_OUT_TEMPORARY;
    /* The client's sentence names the status and the provider's code. */
    snprintf(s->error, sizeof s->error, "%s", r->message);
  }
  done_push(s->nc->pipe[NT_SMS], s);
}

/* ---- Redis through the worker's connection -------------------------------------------- */

static int job_redis(void *ud, erpq_cmd *cmd, redisReply **reply, char *err, size_t errlen) {
  return erpq_job_redis(ud, cmd, reply, 5000, err, errlen);
}

static erpq_jobctx *live_job(nt_send *list) {
  for (nt_send *s = list; s; s = s->next)
    if (!atomic_load(&s->cancelled))
      return s->job;
  return NULL;
}

static void note_state(nt_pipe *p, const char *state, int64_t fails, int64_t open_left) {
  snprintf(p->state, sizeof p->state, "%s", state);
  p->fails = fails;
  p->checked = erpq_mono_ms();
  atomic_store(&p->open_until,
               !strcmp(state, "open") && open_left > 0 ? erpq_now_ms() + open_left : 0);
}

/* ---- Sending -------------------------------------------------------------------------- */

static void submit(nt_pipe *p, nt_send *s) {
  nt_ctx *nc = p->nc;
  if (nt_send_stage(s, NT_STAGE_FLIGHT)) {
    s->out = NT_OUT_CANCELLED;
    done_push(p, s);
    return;
  }
  char err[256] = "";
  uint64_t tid = 0;
  int rc;
  if (p->ch == NT_EMAIL)
    rc = erpq_smtp_send(nc->smtp, nc->conf.mail_from_addr, (const char *const *)s->rcpt, s->nrcpt,
                        s->msg, s->msg_len, smtp_done, s, &tid, err, sizeof err);
  else
    rc = erpq_sms_send(nc->sms, s->to, NULL, s->body, sms_done, s, &tid, err, sizeof err);
  if (rc) {
    s->out = rc == -EINVAL ? NT_OUT_PERMANENT : NT_OUT_TEMPORARY;
    snprintf(s->error, sizeof s->error, "the transport refused the message: %s",
             rc == -EINVAL ? "invalid envelope" : erpq_strerror(rc));
    done_push(p, s);
    return;
  }
  /* The callback may already have run; tid is only for cancelling. */
  pthread_mutex_lock(&nc->reg_mu);
  int cancelled = atomic_load(&s->cancelled);
  if (s->stage == NT_STAGE_FLIGHT)
    s->tid = tid;
  pthread_mutex_unlock(&nc->reg_mu);
  if (cancelled) {
    if (p->ch == NT_EMAIL)
      erpq_smtp_cancel(nc->smtp, tid);
    else
      erpq_sms_cancel(nc->sms, tid);
  }
}

/* Returns the sends not sent now (to go back to the front of the queue)
 * and sets *wait_ms; sends to delay or fail are ended here. */
static nt_send *dispatch(nt_pipe *p, nt_send *list, int k, int *sent, int64_t *wait_ms,
                         int *delay_all, int64_t *delay_ms, char *why, size_t whylen) {
  *sent = 0;
  *wait_ms = 0;
  *delay_all = 0;
  int64_t granted = k;
  int probe = 0;
  int64_t now_mono = erpq_mono_ms();
  int need = nt_limits_counting(&p->lim) || strcmp(p->state, "closed") || p->fails > 0 ||
             now_mono - p->checked > BREAKER_CACHE_MS;
  if (need) {
    erpq_jobctx *job = live_job(list);
    if (!job) {
      /* Every one of them was cancelled. */
      for (nt_send *s = list, *next; s; s = next) {
        next = s->next;
        nt_send_finish(s, -ECANCELED, NULL, "cancelled before the send");
      }
      return NULL;
    }
    nt_gate g;
    char err[400] = "";
    int rc = nt_limits_gate(&p->lim, k, erpq_now_ms(), job_redis, job, &g, err, sizeof err);
    if (rc == -ECANCELED)
      return list;
    if (rc) {
      char red[300];
      nt_redact(err, red, sizeof red);
      erpq_log(ERPQ_LOG_WARN, "notify.gate_failed", "channel", nt_channel_name(p->ch), "error", red,
               NULL);
      *delay_all = 1;
      *delay_ms = 2000;
      snprintf(why, whylen, "the provider gate in Redis did not answer");
      return list;
    }
    note_state(p, g.state, g.fails, !strcmp(g.reason, "open") ? g.wait_ms : 0);
    granted = g.granted;
    probe = g.probe;
    if (granted < k) {
      *wait_ms = g.wait_ms > 0 ? g.wait_ms : 1;
      if (strcmp(g.reason, "rate") && strcmp(g.reason, "probe"))
        *delay_all = 1;
      else if (*wait_ms > HOLD_MAX_MS)
        *delay_all = 1;
      if (*delay_all) {
        *delay_ms = *wait_ms;
        snprintf(why, whylen, "%s",
                 !strcmp(g.reason, "open")   ? "the provider's circuit breaker is open"
                 : !strcmp(g.reason, "hold") ? "the provider asked to slow down"
                 : !strcmp(g.reason, "day")  ? "the provider's daily limit is reached"
                                             : "the provider's rate limit is reached");
      }
    }
  }
  nt_send *s = list;
  for (int64_t i = 0; i < granted && s; i++) {
    nt_send *next = s->next;
    s->next = NULL;
    s->probe = probe && i == 0;
    submit(p, s);
    (*sent)++;
    s = next;
  }
  return s;
}

/* Outcomes back from the transport: breaker report, then the ledger. */
static void handle_done(nt_pipe *p, nt_send *list) {
  char outc[MAX_BATCH * 4 + 1];
  size_t no = 0;
  int64_t hold = 0;
  int probe = 0;
  for (nt_send *s = list; s; s = s->next) {
    if (s->out == NT_OUT_ACCEPTED && no < sizeof outc - 1)
      outc[no++] = 'S';
    else if (s->breaker_fail && no < sizeof outc - 1)
      outc[no++] = 'F';
    if (s->out == NT_OUT_THROTTLED && s->retry_after_ms > hold)
      hold = s->retry_after_ms;
    probe |= s->probe;
  }
  outc[no] = '\0';
  int fails = strchr(outc, 'F') != NULL, ok = strchr(outc, 'S') != NULL;
  int need = fails || hold || probe || (ok && (strcmp(p->state, "closed") || p->fails > 0));
  erpq_jobctx *job = need && !atomic_load(&p->nc->stopping) ? live_job(list) : NULL;
  if (job) {
    nt_report r;
    char err[400] = "";
    if (nt_limits_report(&p->lim, outc, hold, job_redis, job, &r, err, sizeof err) == 0) {
      note_state(p, r.state, r.fails, r.open_left_ms);
      char ms[24], nf[24];
      snprintf(ms, sizeof ms, "%" PRId64, r.open_left_ms);
      snprintf(nf, sizeof nf, "%" PRId64, r.fails);
      if (!strcmp(r.changed, "opened"))
        erpq_log(ERPQ_LOG_WARN, "notify.breaker_opened", "channel", nt_channel_name(p->ch),
                 "provider", p->nc->conf.provider[p->ch], "#failures", nf, "#openMs", ms, NULL);
      else if (!strcmp(r.changed, "closed"))
        erpq_log(ERPQ_LOG_INFO, "notify.breaker_closed", "channel", nt_channel_name(p->ch),
                 "provider", p->nc->conf.provider[p->ch], NULL);
    } else {
      char red[300];
      nt_redact(err, red, sizeof red);
      erpq_log(ERPQ_LOG_WARN, "notify.report_failed", "channel", nt_channel_name(p->ch), "error",
               red, NULL);
    }
  }
  for (nt_send *s = list, *next; s; s = next) {
    next = s->next;
    s->next = NULL;
    if (s->out == NT_OUT_THROTTLED)
      nt_send_delay(s, s->retry_after_ms, "the provider answered 429 Too Many Requests");
    else if (s->out == NT_OUT_CANCELLED)
      nt_send_finish(s, -ECANCELED, NULL, "the send was cancelled");
    else
      nt_ledger_outcome(p->nc->ledger, s);
  }
}

static int64_t mono_to_abs(int64_t mono_ms, struct timespec *ts) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t d = mono_ms - erpq_mono_ms();
  if (d < 0)
    d = 0;
  int64_t ns = now.tv_nsec + (d % 1000) * 1000000;
  ts->tv_sec = now.tv_sec + (time_t)(d / 1000) + (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
  return d;
}

static void *pipe_main(void *arg) {
  nt_pipe *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && !p->done && !p->woken &&
           !(p->q && p->inflight < p->cap && erpq_mono_ms() >= p->next_try)) {
      struct timespec ts;
      mono_to_abs(p->q && p->inflight < p->cap ? p->next_try : erpq_mono_ms() + 1000, &ts);
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    int sweep = p->woken; /* a cancellation asked for it */
    p->woken = 0;
    if (p->stop)
      break;
    if (erpq_mono_ms() - p->stats_at >= 1000) {
      /* A debug line a second: how many sends wait here and are out. */
      p->stats_at = erpq_mono_ms();
      size_t nq = 0;
      for (nt_send *s = p->q; s; s = s->next)
        nq++;
      char a[24], b[24];
      snprintf(a, sizeof a, "%zu", nq);
      snprintf(b, sizeof b, "%d", p->inflight);
      erpq_log(ERPQ_LOG_DEBUG, "notify.dispatcher", "channel", nt_channel_name(p->ch), "#queued", a,
               "#inFlight", b, NULL);
    }
    nt_send *done = p->done;
    int ndone = 0;
    for (nt_send *s = done; s; s = s->next)
      ndone++;
    p->done = p->done_tail = NULL;
    p->inflight -= ndone;
    /* Cancelled sends leave the queue now (a batch skips them too). */
    nt_send *gone = NULL, **pp = &p->q;
    if (sweep)
      p->q_tail = NULL;
    while (sweep && *pp) {
      nt_send *s = *pp;
      if (atomic_load(&s->cancelled)) {
        *pp = s->next;
        s->next = gone;
        gone = s;
      } else {
        p->q_tail = s;
        pp = &s->next;
      }
    }
    /* A batch to send. */
    nt_send *batch = NULL;
    int k = 0;
    if (p->q && p->inflight < p->cap && erpq_mono_ms() >= p->next_try) {
      int room = p->cap - p->inflight;
      if (room > MAX_BATCH)
        room = MAX_BATCH;
      batch = p->q;
      nt_send *last = NULL, *s = p->q;
      while (s && k < room) {
        last = s;
        s = s->next;
        k++;
      }
      p->q = s;
      if (!s)
        p->q_tail = NULL;
      last->next = NULL;
      p->inflight += k;
    }
    pthread_mutex_unlock(&p->mu);
    for (nt_send *s = gone, *next; s; s = next) {
      next = s->next;
      nt_send_finish(s, -ECANCELED, NULL, "cancelled before the send");
    }
    if (done)
      handle_done(p, done);
    nt_send *back = NULL;
    int sent = 0, delay_all = 0;
    int64_t wait = 0, delay_ms = 0;
    char why[128] = "";
    if (batch)
      back = dispatch(p, batch, k, &sent, &wait, &delay_all, &delay_ms, why, sizeof why);
    nt_send *delayed = NULL;
    pthread_mutex_lock(&p->mu);
    p->inflight -= k - sent;
    if (delay_all) {
      /* This batch's rest and the whole queue go back to bull. */
      nt_send *t = back;
      while (t && t->next)
        t = t->next;
      if (t) {
        t->next = p->q;
        delayed = back;
      } else {
        delayed = p->q;
      }
      p->q = p->q_tail = NULL;
    } else if (back) {
      nt_send *t = back;
      while (t->next)
        t = t->next;
      t->next = p->q;
      if (!p->q)
        p->q_tail = t;
      p->q = back;
      p->next_try = erpq_mono_ms() + (wait > 0 ? wait : 1);
    }
    if (delayed) {
      pthread_mutex_unlock(&p->mu);
      for (nt_send *s = delayed, *next; s; s = next) {
        next = s->next;
        nt_send_delay(s, delay_ms, why);
      }
      pthread_mutex_lock(&p->mu);
    }
  }
  /* Stopping (after the runner stopped: every transfer has called back). */
  nt_send *q = p->q, *done = p->done;
  p->q = p->q_tail = p->done = p->done_tail = NULL;
  pthread_mutex_unlock(&p->mu);
  for (nt_send *s = q, *next; s; s = next) {
    next = s->next;
    nt_send_finish(s, -ECANCELED, NULL, "the worker is stopping");
  }
  if (done)
    handle_done(p, done);
  return NULL;
}

int nt_pipe_start(nt_pipe **out, nt_ctx *nc, nt_channel ch, char *err, size_t errlen) {
  nt_pipe *p = calloc(1, sizeof *p);
  if (!p)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  p->nc = nc;
  p->ch = ch;
  p->cap = nc->conf.in_flight[ch] > 0 ? nc->conf.in_flight[ch] : 8;
  snprintf(p->state, sizeof p->state, "closed");
  p->checked = -1000000;
  atomic_init(&p->open_until, 0);
  int rc = nt_limits_init(&p->lim, nc->conf.prefix, nc->conf.provider[ch], &nc->conf.lim[ch]);
  if (rc) {
    free(p);
    return erpq_fail(err, errlen, rc, "bad provider name or key prefix for the %s limits",
                     nt_channel_name(ch));
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&p->th, NULL, pipe_main, p)) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return erpq_fail(err, errlen, -EAGAIN, "cannot start the %s dispatcher", nt_channel_name(ch));
  }
  *out = p;
  return 0;
}

void nt_pipe_stop(nt_pipe *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
}

void nt_pipe_free(nt_pipe *p) {
  if (!p)
    return;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}
