/* erpq_http_list.c - seeing what happened over HTTP: the jobs of one state
 * (GET /v1/queues/{queue}/jobs?state=&limit=) and a job's log lines
 * (GET /v1/queues/{queue}/jobs/{id}/logs). Both are tenant-scoped as the
 * status route is: a token with school_id sees only its school's jobs (the
 * list filters them in Redis; another school's job's logs are 404). See
 * erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_private.h"

#define LIST_DEFAULT 20    /* Jobs per list answer without ?limit. */
#define LIST_MAX 1000      /* The largest ?limit. */
#define LIST_SCAN_MAX 20000 /* Entries of a state a tenant's list looks at. */

static void list_done(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  json_t *jobs = erpq_bull_parse_list(reply);
  if (!jobs) {
    http_answer_error(r, 500, "internal", "unexpected reply to the list", NULL, 0);
    return;
  }
  http_answer_json(r, 200, json_pack("{s:s,s:o}", "queue", r->m.queue, "jobs", jobs), 0);
}

void http_h_list(req *r) {
  const char *state = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "state");
  const char *lim = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
  if (!state || !erpq_bull_list_state_ok(state)) {
    http_answer_error(r, 400, "bad_state",
                      "state must be waiting, paused, active, delayed, completed or failed", NULL,
                      0);
    return;
  }
  long limit = LIST_DEFAULT;
  if (lim) {
    char *end;
    limit = strtol(lim, &end, 10);
    if (!*lim || *end || limit < 1 || limit > LIST_MAX) {
      http_answer_error(r, 400, "bad_limit", "limit must be an integer from 1 to 1000", NULL, 0);
      return;
    }
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_list(&c, r->k, state, limit, r->p.has_school ? r->p.school : NULL,
                 r->p.has_school ? LIST_SCAN_MAX : LIST_MAX);
  http_redis_call(r, &c, list_done);
}

static void logs_done(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  if (reply->type != REDIS_REPLY_ARRAY) {
    http_answer_error(r, 500, "internal", "unexpected reply to LRANGE", NULL, 0);
    return;
  }
  json_t *lines = json_array();
  for (size_t i = 0; lines && i < reply->elements; i++)
    if (reply->element[i]->type == REDIS_REPLY_STRING)
      json_array_append_new(lines, json_stringn(reply->element[i]->str, reply->element[i]->len));
  http_answer_json(r, 200, json_pack("{s:s,s:o}", "id", r->m.id, "logs", lines), 0);
}

/* The view first: a job that is not there, or another school's, is 404. */
static void logs_viewed(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  json_t *view = http_parse_view(reply, r->m.id, &r->p);
  if (!view) {
    http_not_found(r);
    return;
  }
  json_decref(view);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "LRANGE");
  erpq_cmd_pushf(&c, "%s%s:logs", r->k->base, r->m.id);
  erpq_cmd_push_str(&c, "0");
  erpq_cmd_push_str(&c, "-1");
  http_redis_call(r, &c, logs_done);
}

void http_h_logs(req *r) { http_view_call(r, r->m.id, logs_viewed); }
