/* erpq_http_wait.c - long-polls: the loop's waiter list and the
 * subscriber to finish events that fires it. See erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_util.h"

/* ---- Long-poll ------------------------------------------------------------------------
 * A wait registers in its loop's waiter list before it reads the job, so a
 * finish between the read and the registration cannot be missed. The
 * connection then stays suspended with no call in flight until it is fired:
 * by a finish event of its job, by its deadline, by the 5 s watchdog, or
 * when the subscriber reconnects or the server stops. A fired waiter reads
 * its job again and either answers or registers again. */

static void waiter_add(req *r) {
  if (r->waiting)
    return;
  hloop *L = r->L;
  r->waiting = 1;
  r->wprev = NULL;
  r->wnext = L->waiters;
  if (L->waiters)
    L->waiters->wprev = r;
  L->waiters = r;
}

void http_waiter_remove(req *r) {
  if (!r->waiting)
    return;
  if (r->wprev)
    r->wprev->wnext = r->wnext;
  else
    r->L->waiters = r->wnext;
  if (r->wnext)
    r->wnext->wprev = r->wprev;
  r->wnext = r->wprev = NULL;
  r->waiting = 0;
}

static int can_wait(const req *r) { return !r->L->stopping && erpq_mono_ms() < r->wait_deadline; }

static void wait_viewed(req *r, redisReply *reply);

static void wait_check(req *r) {
  if (can_wait(r))
    waiter_add(r);
  r->refire = 0;
  if (http_view_call(r, r->m.id, wait_viewed))
    http_waiter_remove(r);
}

static void wait_viewed(req *r, redisReply *reply) {
  json_t *view =
      reply && reply->type != REDIS_REPLY_ERROR ? http_parse_view(reply, r->m.id, &r->p) : NULL;
  if (!reply || reply->type == REDIS_REPLY_ERROR || !view || http_is_finished(view) ||
      !can_wait(r)) {
    http_waiter_remove(r);
    if (http_reply_failed(r, reply))
      return;
    if (!view) {
      http_not_found(r);
      return;
    }
    json_object_set_new(view, "queue", json_string(r->m.queue));
    json_object_set_new(view, "finished", json_boolean(http_is_finished(view)));
    http_answer_json(r, 200, view, 0);
    return;
  }
  json_decref(view);
  /* Fired while we were reading: read again, the job may have finished
   * after our read. */
  if (r->refire || !r->waiting)
    wait_check(r);
}

/* Fires a list of waiters already taken off L->waiters (linked by wnext). */
static void fire_list(req *list) {
  for (req *r = list, *nx; r; r = nx) {
    nx = r->wnext;
    r->wnext = NULL;
    if (r->calling)
      r->refire = 1; /* Its reply registers and reads again. */
    else
      wait_check(r);
  }
}

/* Fires every waiter, or only those past their deadline. */
void http_fire_all(hloop *L, int only_due) {
  int64_t now = erpq_mono_ms();
  req *due = NULL;
  for (req *r = L->waiters, *nx; r; r = nx) {
    nx = r->wnext;
    if (only_due && r->wait_deadline > now)
      continue;
    http_waiter_remove(r);
    r->wnext = due;
    due = r;
  }
  fire_list(due);
}

void http_h_wait(req *r) {
  const char *t = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "timeout");
  double secs = WAIT_DEFAULT_S;
  if (t) {
    char *end;
    secs = strtod(t, &end);
    if (end == t || *end || !(secs >= 0 && secs <= WAIT_MAX_S)) {
      http_answer_error(r, 400, "bad_timeout", "timeout must be a number of seconds from 0 to 60",
                        NULL, 0);
      return;
    }
  }
  r->wait_deadline = erpq_mono_ms() + (int64_t)(secs * 1000);
  wait_check(r);
}

/* A finish event: "<prefix>:<queue>:completed|failed" with {"jobId":..}. */
static void on_pmessage(redisAsyncContext *ac, void *reply_, void *priv) {
  (void)ac;
  hloop *L = priv;
  const server *srv = L->srv;
  redisReply *rep = reply_;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING)
    return;
  if (!strcmp(rep->element[0]->str, "psubscribe")) {
    /* Subscribed again after a reconnect: events may have been missed while
     * we were away, so every waiter reads its job once more. */
    if (rep->element[2]->type == REDIS_REPLY_INTEGER && rep->element[2]->integer == 2)
      http_fire_all(L, 0);
    return;
  }
  if (strcmp(rep->element[0]->str, "pmessage") || rep->elements != 4 ||
      rep->element[2]->type != REDIS_REPLY_STRING || rep->element[3]->type != REDIS_REPLY_STRING ||
      !L->waiters)
    return;
  const char *channel = rep->element[2]->str;
  size_t plen = strlen(srv->prefix);
  if (strncmp(channel, srv->prefix, plen) || channel[plen] != ':')
    return;
  const char *q = channel + plen + 1;
  const char *end = strrchr(q, ':');
  if (!end)
    return;
  size_t qlen = (size_t)(end - q);
  json_t *ev = json_loads(rep->element[3]->str, 0, NULL);
  const json_t *jid = json_object_get(ev, "jobId");
  char idbuf[64];
  const char *id = NULL;
  if (json_is_string(jid))
    id = json_string_value(jid);
  else if (json_is_integer(jid)) {
    snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
    id = idbuf;
  }
  if (id) {
    req *hits = NULL;
    for (req *w = L->waiters, *nx; w; w = nx) {
      nx = w->wnext;
      if (!strcmp(w->m.id, id) && strlen(w->m.queue) == qlen && !strncmp(w->m.queue, q, qlen)) {
        http_waiter_remove(w);
        w->wnext = hits;
        hits = w;
      }
    }
    fire_list(hits);
  }
  json_decref(ev);
}

void http_sub_ready(erpq_conn *c) {
  hloop *L = c->data;
  const server *srv = L->srv;
  erpq_cmd cmd;
  erpq_cmd_init(&cmd);
  erpq_cmd_push_str(&cmd, "PSUBSCRIBE");
  erpq_cmd_pushf(&cmd, "%s:*:completed", srv->prefix);
  erpq_cmd_pushf(&cmd, "%s:*:failed", srv->prefix);
  if (erpq_conn_send_raw(c, &cmd, on_pmessage, L))
    erpq_conn_reset(c);
}
