/* erpq_http_route.c - routes: matching a path and method, the queue key
 * cache, and the dispatch of a request to its handler. See
 * erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_util.h"

/* ---- Routing -------------------------------------------------------------------- */

static int seg(const char **p, char *out, size_t outlen) {
  const char *s = *p;
  if (*s != '/')
    return 0;
  s++;
  const char *e = strchr(s, '/');
  size_t n = e ? (size_t)(e - s) : strlen(s);
  if (n == 0 || n >= outlen)
    return 0;
  memcpy(out, s, n);
  out[n] = '\0';
  *p = s + n;
  return 1;
}

void http_match_route(const char *url, const char *method, route_match *m) {
  memset(m, 0, sizeof *m);
  int r = R_NONE;
  if (!strcmp(url, "/healthz"))
    r = R_HEALTHZ;
  else if (!strcmp(url, "/readyz"))
    r = R_READYZ;
  else if (!strcmp(url, "/metrics"))
    r = R_METRICS;
  else if (!strncmp(url, "/v1/files/", 10)) {
    size_t n = strlen(url + 10);
    if (n > 0 && n < sizeof m->key) {
      memcpy(m->key, url + 10, n + 1);
      r = R_FILES;
    }
  } else if (!strncmp(url, "/v1/queues/", 11)) {
    const char *p = url + 10;
    char a[256], b[256];
    if (seg(&p, m->queue, sizeof m->queue)) {
      if (!*p)
        r = R_QUEUE;
      else if (seg(&p, a, sizeof a)) {
        if (!*p && !strcmp(a, "pause"))
          r = R_PAUSE;
        else if (!*p && !strcmp(a, "resume"))
          r = R_RESUME;
        else if (!strcmp(a, "jobs")) {
          if (!*p)
            r = !strcmp(method, "GET") || !strcmp(method, "HEAD") ? R_LIST : R_ADD;
          else if (seg(&p, m->id, sizeof m->id)) {
            if (!*p)
              r = strcmp(m->id, "bulk") == 0 ? R_BULK : R_JOB;
            else if (seg(&p, b, sizeof b) && !*p) {
              if (!strcmp(b, "wait"))
                r = R_WAIT;
              else if (!strcmp(b, "retry"))
                r = R_RETRY;
              else if (!strcmp(b, "logs"))
                r = R_LOGS;
              else if (!strcmp(b, "download"))
                r = R_DOWNLOAD;
            }
          }
        }
      }
    }
  }
  m->route = r;
  if (r == R_NONE)
    return;
  if (r == R_JOB) {
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
      m->method_ok = 1;
    else if (!strcmp(method, "DELETE"))
      m->route = R_DELETE, m->method_ok = 1;
    return;
  }
  const char *want = erpq_route_method(r);
  m->method_ok = !strcmp(method, want) || (!strcmp(want, "GET") && !strcmp(method, "HEAD"));
}

/* The queue's keys, computed once per loop for the first KEYS_CACHE queues
 * (queues come from the roles file, so there are few) and per request
 * beyond that. NULL when out of memory or the name is bad. */
static const erpq_keys *loop_keys(req *r, const char *queue) {
  hloop *L = r->L;
  const server *srv = L->srv;
  for (int i = 0; i < L->nkeys; i++)
    if (!strcmp(L->keys[i].queue, queue))
      return &L->keys[i].k;
  if (L->nkeys == KEYS_CACHE) {
    if (erpq_keys_init(&r->own_k, srv->prefix, queue))
      return NULL;
    r->has_own_k = 1;
    return &r->own_k;
  }
  int i = L->nkeys;
  if (erpq_keys_init(&L->keys[i].k, srv->prefix, queue))
    return NULL;
  L->keys[i].queue = strdup(queue);
  if (!L->keys[i].queue) {
    erpq_keys_free(&L->keys[i].k);
    return NULL;
  }
  L->nkeys++;
  return &L->keys[i].k;
}

/* ---- /v1 ---------------------------------------------------------------------------- */

static const char *route_action(int route) {
  switch (route) {
  case R_ADD:
  case R_BULK: return "enqueue";
  case R_JOB:
  case R_WAIT:
  case R_LIST:
  case R_LOGS:
  case R_DOWNLOAD: return "read";
  case R_DELETE: return "delete";
  case R_RETRY: return "retry";
  case R_QUEUE: return "counts";
  default: return "pause";
  }
}

/* After the rate limits: token, permission, queue, then the route. */
void http_v1_dispatch(req *r) {
  const server *srv = r->L->srv;
  route_match *m = &r->m;
  if (m->route == R_FILES) { /* The signature of the link is its authorisation. */
    http_h_file(r);
    return;
  }
  if (!r->authed) {
    http_answer_error(r, 401, "unauthorized", r->aerr, NULL, 0);
    return;
  }
  if (r->too_big) {
    http_answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
    return;
  }
  const erpq_principal *p = &r->p;
  /* Enqueue permission depends on the job name: checked with the body. */
  int enq = m->route == R_ADD || m->route == R_BULK;
  if (enq ? !erpq_policy_allows(&srv->policy, p->role, "enqueue", m->queue, NULL) &&
                !erpq_policy_allows(&srv->policy, p->role, "enqueue", m->queue, "")
          : !erpq_policy_allows(&srv->policy, p->role, route_action(m->route), m->queue, NULL)) {
    /* The first test is for grants without a job; a job-specific grant
     * (accountant: generate-fees only) still lets the request through to the
     * per-job check. */
    int any = 0;
    if (enq) {
      const json_t *grants = json_object_get(json_object_get(srv->policy.doc, "roles"), p->role);
      size_t i;
      const json_t *g;
      json_array_foreach(grants, i, g) {
        const char *a = json_string_value(json_object_get(g, "action"));
        const char *q = json_string_value(json_object_get(g, "queue"));
        if (a && q && (!strcmp(a, "*") || !strcmp(a, "enqueue")) &&
            (!strcmp(q, "*") || !strcmp(q, m->queue)))
          any = 1;
      }
    }
    if (!any) {
      http_answer_error(r, 403, "forbidden", "your role may not do this on this queue", NULL, 0);
      return;
    }
  }
  if (!erpq_jobtypes_queue_known(srv->jobtypes, m->queue) || !(r->k = loop_keys(r, m->queue))) {
    http_answer_error(r, 404, "queue_not_found", "no such queue", NULL, 0);
    return;
  }
  switch (m->route) {
  case R_ADD: http_h_add(r); break;
  case R_BULK: http_h_bulk(r); break;
  case R_JOB: http_view_call(r, m->id, http_job_viewed); break;
  case R_WAIT: http_h_wait(r); break;
  case R_DELETE:
  case R_RETRY:
    r->retry = m->route == R_RETRY;
    http_view_call(r, m->id, http_dr_viewed);
    break;
  case R_QUEUE: http_h_queue(r); break;
  case R_LIST: http_h_list(r); break;
  case R_LOGS: http_h_logs(r); break;
  case R_DOWNLOAD: http_h_download(r); break;
  default: {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_pause(&c, r->k, m->route == R_PAUSE);
    http_redis_call(r, &c, http_paused_done);
  }
  }
}

/* /metrics: the server's own counters, then the outbox backlog gauge the
 * notifications family's relay keeps in Redis (<prefix>:erpq:outbox,
 * erpq_notify_relay.c), when there is one and Redis answers; without it
 * the page still answers, without those lines. */
static void metrics_answer(req *r, const redisReply *outbox) {
  size_t len;
  char *t = erpq_metrics_text(&len);
  if (!t) {
    http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
    return;
  }
  const char *rows = erpq_reply_hash_str(outbox, "rows");
  const char *mongo = erpq_reply_hash_str(outbox, "mongo");
  const char *at = erpq_reply_hash_str(outbox, "at");
  if (rows && mongo && at) {
    erpq_buf b = {0};
    erpq_buf_add(&b, t, len);
    free(t);
    double age = (double)(erpq_now_ms() - strtoll(at, NULL, 10)) / 1000.0;
    erpq_buf_addf(&b,
                  "# HELP erpq_outbox_backlog_rows Outbox rows not yet copied to MongoDB, as the "
                  "active relay last counted them.\n"
                  "# TYPE erpq_outbox_backlog_rows gauge\n"
                  "erpq_outbox_backlog_rows %lld\n"
                  "# HELP erpq_outbox_mongo_up Whether the relay's last write to MongoDB worked.\n"
                  "# TYPE erpq_outbox_mongo_up gauge\n"
                  "erpq_outbox_mongo_up %d\n"
                  "# HELP erpq_outbox_backlog_age_seconds How long ago the relay counted.\n"
                  "# TYPE erpq_outbox_backlog_age_seconds gauge\n"
                  "erpq_outbox_backlog_age_seconds %.3f\n",
                  strtoll(rows, NULL, 10), atoi(mongo) ? 1 : 0, age < 0 ? 0.0 : age);
    if (b.oom) {
      erpq_buf_free(&b);
      http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
      return;
    }
    t = b.s;
    len = b.len;
  }
  http_answer_raw(r, 200, "text/plain; version=0.0.4", t, len, 0);
}

static void metrics_read(req *r, redisReply *reply) {
  metrics_answer(r, reply && reply->type == REDIS_REPLY_ARRAY ? reply : NULL);
}

static void readyz_done(req *r, redisReply *reply) {
  if (!reply || reply->type == REDIS_REPLY_ERROR)
    http_redis_unavailable(r);
  else
    http_answer_json(r, 200, json_pack("{s:s}", "status", "ready"), 0);
}

void http_handle(req *r, const char *url, const char *method) {
  route_match *m = &r->m;
  http_match_route(url, method, m);
  if (m->route == R_NONE)
    return http_answer_error(r, 404, "not_found", "no such route", NULL, 0);
  if (!m->method_ok)
    return http_answer_error(r, 405, "method_not_allowed", "method not allowed on this route", NULL,
                             0);
  if (r->too_slow)
    return http_answer_error(r, 408, "request_timeout", "the request body took too long", NULL, 0);
  if (m->route == R_HEALTHZ)
    return http_answer_json(r, 200, json_pack("{s:s}", "status", "ok"), 0);
  if (m->route == R_METRICS) {
    if (r->L->redis.state != ERPQ_CONN_READY)
      return metrics_answer(r, NULL); /* Never a 503 for the server's own counters. */
    char key[300];
    snprintf(key, sizeof key, "%s:erpq:outbox", r->L->srv->prefix);
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_cmd_push_str(&c, "HGETALL");
    erpq_cmd_push_str(&c, key);
    http_redis_call(r, &c, metrics_read);
    return;
  }
  if (m->route == R_READYZ) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_cmd_push_str(&c, "PING");
    http_redis_call(r, &c, readyz_done);
    return;
  }
  http_handle_v1(r);
}
