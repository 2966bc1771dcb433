/* erpq_http_jobs.c - the job operations of the /v1 routes: job views,
 * enqueue (one job or a bulk), read, delete, retry, queue counts, pause and
 * resume. See erpq_http_private.h. */
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_files.h"
#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_opts.h"
#include "erpq_util.h"

/* ---- Job views -------------------------------------------------------------------- */

/* Starts reading job id's state; next parses the reply with http_parse_view(). */
int http_view_call(req *r, const char *id, step_fn next) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_state(&c, r->k, id);
  return http_redis_call(r, &c, next);
}

/* A state reply as a job view (NULL: no such job, or another school's when
 * p is scoped to a school). */
json_t *http_parse_view(const redisReply *reply, const char *id, const erpq_principal *p) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
    return NULL;
  json_t *o = erpq_bull_parse_state(reply, id);
  if (o && p && p->has_school) {
    const char *dtext = erpq_reply_hash_str(reply->element[1], "data");
    json_t *d = dtext ? json_loads(dtext, JSON_DECODE_ANY, NULL) : NULL;
    char school[64];
    erpq_http_data_school(d, school, sizeof school);
    json_decref(d);
    if (strcmp(school, p->school) != 0) {
      json_decref(o);
      o = NULL;
    }
  }
  return o;
}

int http_is_finished(const json_t *view) {
  const char *st = json_string_value(json_object_get(view, "state"));
  return st && (!strcmp(st, "completed") || !strcmp(st, "failed"));
}

void http_not_found(req *r) {
  http_answer_error(r, 404, "job_not_found", "no such job in this queue", NULL, 0);
}

/* ---- Enqueue ------------------------------------------------------------------------ */

static json_t *parse_body(req *r) {
  json_error_t je;
  json_t *v = r->body.len ? json_loadb(r->body.s, r->body.len, 0, &je) : NULL;
  if (!v) {
    char msg[300];
    if (!r->body.len)
      snprintf(msg, sizeof msg, "the request body must be JSON");
    else
      snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)", je.text, je.line,
               je.column);
    http_answer_error(r, 400, "malformed_json", msg, NULL, 0);
  }
  return v;
}

static void add_problem(json_t *problems, const char *path, const char *msg) {
  json_array_append_new(problems, json_pack("{s:s,s:s}", "path", path, "message", msg));
}

typedef enum { CHK_OK, CHK_FORBIDDEN, CHK_INVALID } chk;

/* Checks one job {name,data,opts} at base path; prepares it into *j when
 * valid. forbidden gets a message for 403. */
static chk check_job(req *r, const json_t *o, const char *base, json_t *problems, erpq_newjob *j,
                     int *prepared, char *forbidden, size_t flen, int bulk, const char *idem_id) {
  *prepared = 0;
  char path[600];
  if (!json_is_object(o)) {
    add_problem(problems, base[0] ? base : "/", "must be an object {\"name\",\"data\",\"opts\"}");
    return CHK_INVALID;
  }
  int before = (int)json_array_size(problems);
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)o, key, v) {
    if (strcmp(key, "name") && strcmp(key, "data") && strcmp(key, "opts")) {
      snprintf(path, sizeof path, "%s/%s", base, key);
      add_problem(problems, path, "is not an allowed property (name, data, opts)");
    }
  }
  const json_t *name = json_object_get(o, "name"), *data = json_object_get(o, "data"),
               *opts = json_object_get(o, "opts");
  snprintf(path, sizeof path, "%s/name", base);
  if (!json_is_string(name) || !json_string_length(name)) {
    add_problem(problems, path, "is required and must be a non-empty string");
    return CHK_INVALID;
  }
  const char *nm = json_string_value(name);
  const char *queue = r->m.queue;
  const server *srv = r->L->srv;
  if (!erpq_policy_allows(&srv->policy, r->p.role, "enqueue", queue, nm)) {
    snprintf(forbidden, flen, "role %s may not enqueue %s jobs on queue %s", r->p.role, nm, queue);
    return CHK_FORBIDDEN;
  }
  if (r->p.has_school) {
    char school[64];
    erpq_http_data_school(data, school, sizeof school);
    if (strcmp(school, r->p.school)) {
      snprintf(forbidden, flen, "data.schoolId must be your school's id");
      return CHK_FORBIDDEN;
    }
  }
  const erpq_schema *schema = NULL;
  if (!erpq_jobtypes_lookup(srv->jobtypes, queue, nm, &schema, NULL)) {
    add_problem(problems, path, "is not a job this queue serves");
    return CHK_INVALID;
  }
  snprintf(path, sizeof path, "%s/data", base);
  if (schema)
    erpq_schemas_validate(schema, data, path, problems);
  else if (data && !json_is_object(data))
    add_problem(problems, path, "must be an object");
  snprintf(path, sizeof path, "%s/opts", base);
  if (opts && !json_is_null(opts)) {
    if (!json_is_object(opts)) {
      add_problem(problems, path, "must be an object");
    } else {
      if (json_object_get(opts, "repeat") && bulk)
        add_problem(problems, path, "repeat is not allowed in bulk adds");
      if (idem_id && json_object_get(opts, "jobId"))
        add_problem(problems, path, "jobId cannot be combined with an Idempotency-Key");
      erpq_opts_check_keys(opts, path, problems);
    }
  }
  if ((int)json_array_size(problems) > before)
    return CHK_INVALID;
  json_t *o2 = NULL;
  if (idem_id) {
    o2 = opts && json_is_object(opts) ? json_deep_copy(opts) : json_object();
    json_object_set_new(o2, "jobId", json_string(idem_id));
  }
  char *dtext = data ? erpq_json_dump(data) : strdup("{}");
  char err[512] = "";
  int rc = dtext ? erpq_newjob_prepare(j, nm, dtext, o2 ? o2 : (json_is_object(opts) ? opts : NULL),
                                       erpq_now_ms(), err, sizeof err)
                 : -ENOMEM;
  free(dtext);
  json_decref(o2);
  if (rc) {
    add_problem(problems, path,
                rc == 1 ? "repeatable job has no occurrence left"
                        : (err[0] ? err : "invalid options"));
    if (rc == 1)
      erpq_newjob_free(j);
    return CHK_INVALID;
  }
  *prepared = 1;
  return CHK_OK;
}

static const char *new_state(const erpq_newjob *j) { return j->delay > 0 ? "delayed" : "waiting"; }

/* Answers 429 when a guarded add was refused by the rate limits. */
static int add_refused(req *r, const redisReply *reply) {
  if (erpq_bull_rate_limited(reply)) {
    http_rate_limited(r);
    return 1;
  }
  return 0;
}

static void add_done(req *r, redisReply *reply) {
  if (add_refused(r, reply) || http_reply_failed(r, reply))
    return;
  char *id = NULL;
  if (erpq_bull_parse_ids(reply, &id, 1) != 1 || !id) {
    free(id);
    http_answer_error(r, 500, "internal", "unexpected reply to the add", NULL, 0);
    return;
  }
  erpq_metrics_enqueued(r->m.queue, 1);
  http_answer_json(r, 201,
                   json_pack("{s:s,s:s,s:O,s:s}", "id", id, "queue", r->m.queue, "name", r->name,
                             "state", new_state(&r->jobs[0])),
                   0);
  free(id);
}

/* Sends the add of the request's prepared jobs; the rate limits ride
 * along when they have not been counted yet. */
static void add_send(req *r, step_fn done) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_add_guarded(&c, r->k, r->L->token, r->jobs, r->njobs, 0,
                        r->guard_pending ? &r->guard : NULL);
  r->guard_pending = 0;
  http_redis_call(r, &c, done);
}

/* Whether the job an Idempotency-Key names was added by the same request:
 * the same name and data, and every option the request gives (the stored
 * opts also hold bull's defaults and the key's jobId). */
static int same_request(const json_t *body, const json_t *view) {
  const json_t *name = json_object_get(body, "name"), *data = json_object_get(body, "data");
  if (!json_equal(name, json_object_get(view, "name")))
    return 0;
  json_t *empty = json_object();
  int same = json_equal(data ? data : empty, json_object_get(view, "data"));
  json_decref(empty);
  const json_t *opts = json_object_get(body, "opts"), *stored = json_object_get(view, "opts");
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)opts, k, v) {
    if (!same) break;
    same = json_equal(v, json_object_get(stored, k));
  }
  return same;
}

/* An Idempotency-Key's job, looked up before adding. The same key with a
 * different request is a client bug: 422, as payment APIs answer. */
static void add_idem_viewed(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  json_t *view = http_parse_view(reply, r->idem, NULL);
  if (!view) {
    add_send(r, add_done);
    return;
  }
  if (!same_request(r->idem_body, view)) {
    json_decref(view);
    http_answer_error(r, 422, "idempotency_key_reused",
                      "this Idempotency-Key was already used with a different request", NULL, 0);
    return;
  }
  http_answer_json(r, 200,
                   json_pack("{s:s,s:s,s:O,s:O}", "id", r->idem, "queue", r->m.queue, "name",
                             r->name, "state", json_object_get(view, "state")),
                   0);
  json_decref(view);
}

/* Keeps n job slots on the request (freed with it). */
static int jobs_alloc(req *r, size_t n) {
  r->jobs = calloc(n, sizeof *r->jobs);
  r->prep = calloc(n, sizeof *r->prep);
  r->njobs = n;
  if (r->jobs && r->prep)
    return 0;
  http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
  return -1;
}

void http_h_add(req *r) {
  json_t *body = parse_body(r);
  if (!body)
    return;
  const char *ik = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
  if (ik) {
    size_t n = strlen(ik);
    int ok = n > 0 && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
      ok = ik[i] > 0x20 && ik[i] < 0x7f;
    if (!ok) {
      json_decref(body);
      http_answer_error(r, 400, "bad_idempotency_key",
                        "Idempotency-Key must be 1-255 visible ASCII characters", NULL, 0);
      return;
    }
    /* The key is scoped to the caller and the queue. */
    size_t bl = strlen(r->p.sub) + strlen(r->m.queue) + n + 2;
    char *buf = malloc(bl + 1);
    if (!buf) {
      json_decref(body);
      http_answer_error(r, 500, "internal", "out of memory", NULL, 0);
      return;
    }
    snprintf(buf, bl + 1, "%s\n%s\n%s", r->p.sub, r->m.queue, ik);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)buf, bl, md);
    free(buf);
    strcpy(r->idem, "idem-");
    for (int i = 0; i < 20; i++)
      sprintf(r->idem + 5 + 2 * i, "%02x", md[i]);
  }
  if (jobs_alloc(r, 1)) {
    json_decref(body);
    return;
  }
  json_t *problems = json_array();
  char forbidden[1024];
  chk ck = check_job(r, body, "", problems, &r->jobs[0], &r->prep[0], forbidden, sizeof forbidden,
                     0, ik ? r->idem : NULL);
  r->name = json_incref(json_object_get(body, "name"));
  if (ik)
    r->idem_body = json_incref(body);
  json_decref(body);
  if (ck == CHK_FORBIDDEN) {
    json_decref(problems);
    http_answer_error(r, 403, "forbidden", forbidden, NULL, 0);
  } else if (ck == CHK_INVALID) {
    http_answer_error(r, 422, "invalid_job", "the job is not valid", problems, 0);
  } else {
    json_decref(problems);
    if (ik)
      http_view_call(r, r->idem, add_idem_viewed);
    else
      add_send(r, add_done);
  }
}

static void bulk_done(req *r, redisReply *reply) {
  if (add_refused(r, reply) || http_reply_failed(r, reply))
    return;
  char **ids = calloc(r->njobs, sizeof *ids);
  int got = ids ? erpq_bull_parse_ids(reply, ids, r->njobs) : 0;
  if (got != (int)r->njobs) {
    http_answer_error(r, 500, "internal", "unexpected reply to the add", NULL, 0);
  } else {
    json_t *a = json_array();
    for (size_t i = 0; i < r->njobs; i++)
      json_array_append_new(a, json_string(ids[i]));
    erpq_metrics_enqueued(r->m.queue, r->njobs);
    http_answer_json(r, 201, json_pack("{s:s,s:o}", "queue", r->m.queue, "ids", a), 0);
  }
  for (int i = 0; ids && i < got; i++)
    free(ids[i]);
  free(ids);
}

void http_h_bulk(req *r) {
  json_t *body = parse_body(r);
  if (!body)
    return;
  const json_t *arr = json_is_object(body) ? json_object_get(body, "jobs") : body;
  if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_BULK) {
    json_decref(body);
    json_t *pr = json_array();
    add_problem(pr, "/", "must be an array of 1 to 1000 jobs");
    http_answer_error(r, 422, "invalid_job", "the bulk request is not valid", pr, 0);
    return;
  }
  size_t n = json_array_size(arr);
  if (jobs_alloc(r, n)) {
    json_decref(body);
    return;
  }
  json_t *problems = json_array();
  int forbidden_seen = 0;
  char forbidden[1024] = "";
  for (size_t i = 0; i < n; i++) {
    char base[32];
    snprintf(base, sizeof base, "/%zu", i);
    char fb[700];
    chk ck = check_job(r, json_array_get(arr, i), base, problems, &r->jobs[i], &r->prep[i], fb,
                       sizeof fb, 1, NULL);
    if (ck == CHK_FORBIDDEN && !forbidden_seen) {
      forbidden_seen = 1;
      snprintf(forbidden, sizeof forbidden, "job %zu: %s", i, fb);
    }
  }
  json_decref(body);
  if (forbidden_seen) {
    json_decref(problems);
    http_answer_error(r, 403, "forbidden", forbidden, NULL, 0);
  } else if (json_array_size(problems)) {
    http_answer_error(r, 422, "invalid_job", "some jobs are not valid; nothing was added", problems,
                      0);
  } else {
    json_decref(problems);
    add_send(r, bulk_done);
  }
}

/* ---- Reading, deleting, retrying ------------------------------------------------------ */

/* The job view of a state reply for r's job, or NULL once it has answered
 * (503/500 for a failed call, 404 for no job or another school's). */
static json_t *view_or_answer(req *r, const redisReply *reply) {
  if (http_reply_failed(r, reply))
    return NULL;
  json_t *view = http_parse_view(reply, r->m.id, &r->p);
  if (!view)
    http_not_found(r);
  return view;
}

void http_job_viewed(req *r, redisReply *reply) {
  json_t *view = view_or_answer(r, reply);
  if (!view)
    return;
  json_object_set_new(view, "queue", json_string(r->m.queue));
  http_answer_json(r, 200, view, 0);
}

static void dr_done(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  if (reply->type != REDIS_REPLY_INTEGER) {
    http_answer_error(r, 500, "internal", "unexpected reply", NULL, 0);
    return;
  }
  long long code = reply->integer;
  if (code == 1)
    http_answer_json(r, 200,
                     json_pack("{s:s,s:s,s:b}", "id", r->m.id, "queue", r->m.queue,
                               r->retry ? "retried" : "removed", 1),
                     0);
  else if (code == 0 && r->retry)
    http_not_found(r);
  else
    http_answer_error(r, 409, "conflict",
                      code == -1 || !r->retry ? "the job is locked by a worker"
                                              : "the job is not in the expected state",
                      NULL, 0);
}

void http_dr_viewed(req *r, redisReply *reply) {
  json_t *view = view_or_answer(r, reply);
  if (!view)
    return;
  const char *st = json_string_value(json_object_get(view, "state"));
  char state[32];
  snprintf(state, sizeof state, "%s", st ? st : "");
  int lifo = json_is_true(json_object_get(json_object_get(view, "opts"), "lifo"));
  json_decref(view);
  if (r->retry && strcmp(state, "failed") && strcmp(state, "completed")) {
    http_answer_error(r, 409, "conflict", "only a failed or completed job can be retried", NULL, 0);
    return;
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  if (r->retry)
    erpq_bull_reprocess(&c, r->k, r->L->token, r->m.id, state, lifo, erpq_now_ms());
  else
    erpq_bull_remove(&c, r->k, r->m.id);
  http_redis_call(r, &c, dr_done);
}

static void queue_counted(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 7) {
    http_answer_error(r, 500, "internal", "unexpected reply", NULL, 0);
    return;
  }
  json_t *counts = json_object();
  for (int i = 0; i < 6; i++)
    json_object_set_new(counts, erpq_bull_count_names[i],
                        json_integer(reply->element[i]->type == REDIS_REPLY_INTEGER
                                         ? reply->element[i]->integer
                                         : 0));
  const redisReply *p = reply->element[6];
  http_answer_json(r, 200,
                   json_pack("{s:s,s:o,s:b}", "queue", r->m.queue, "counts", counts, "paused",
                             p->type == REDIS_REPLY_INTEGER && p->integer == 1),
                   0);
}

void http_h_queue(req *r) {
  erpq_cmd cmds[7];
  for (int i = 0; i < 7; i++)
    erpq_cmd_init(&cmds[i]);
  erpq_bull_counts(cmds, r->k);
  erpq_cmd_push_str(&cmds[6], "HEXISTS");
  erpq_cmd_push_str(&cmds[6], r->k->meta);
  erpq_cmd_push_str(&cmds[6], "paused");
  http_redis_call_tx(r, cmds, 7, queue_counted);
}

void http_paused_done(req *r, redisReply *reply) {
  if (http_reply_failed(r, reply))
    return;
  http_answer_json(r, 200,
                   json_pack("{s:s,s:b}", "queue", r->m.queue, "paused", r->m.route == R_PAUSE), 0);
}
