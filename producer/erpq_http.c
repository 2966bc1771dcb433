#include "erpq_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "erpq_buf.h"
#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_conn.h"
#include "erpq_err.h"
#include "erpq_http_auth.h"
#include "erpq_http_client.h"
#include "erpq_http_metrics.h"
#include "erpq_catalog.h"
#include "erpq_datapath.h"
#include "erpq_jobtypes.h"
#include "erpq_jsonschema.h"
#include "erpq_schemas.h"
#include "erpq_tz.h"
#include "erpq_log.h"
#include "erpq_opts.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

#define MAX_BODY (1024 * 1024)
#define MAX_BULK 1000
#define DISCARD_MAX (8 * 1024 * 1024)
#define WAIT_MAX_S 60
#define WAIT_DEFAULT_S 30
#define WATCHDOG_MS 5000
#define SWEEP_MS 100
#define STOP_DRAIN_MS 2000
#define KEYS_CACHE 64
#define LOG_FLUSH_AT (64 * 1024)
/* libmicrohttpd's memory per connection (request line, headers, read and
 * write buffers). It clears it for every request, so its default (32 KiB)
 * costs a 32 KiB memset per request; 16 KiB still takes 8 KiB of headers. */
#define CONN_MEMORY (16 * 1024)

/* ---- Configuration -------------------------------------------------------------
 * Filled once by erpq_http_main() before any loop runs; read-only afterwards. */

typedef struct server {
  erpq_redis_addr addr;
  const char *prefix;
  int redis_timeout_ms;
  int rate_subject, rate_ip; /* Requests per minute; 0 = off. */
  int body_timeout_s;
  int header_timeout_s;
  erpq_auth auth;
  erpq_proxies proxies;
  erpq_policy policy;
  erpq_schemas *schemas;   /* NULL with --no-schemas. */
  erpq_jobtypes *jobtypes; /* Which jobs each queue takes, with their schemas. */
} server;

static server S;

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- Event loops and requests -------------------------------------------------- */

typedef struct hloop hloop;
typedef struct req req;

/* What to do with the reply of a request's Redis call. reply is NULL when the
 * connection was lost or the call timed out; it is borrowed (hiredis frees
 * it when the step returns). */
typedef void (*step_fn)(req *r, redisReply *reply);

/* A connection's header deadline (see the sweep). */
typedef struct conn_track {
  struct conn_track *next, *prev;
  int fd;
  int in_request;
  int64_t since_ms;
  struct sockaddr_storage peer;
  int has_peer;
  int peer_trusted; /* A trusted proxy: each request names its client. */
  char addr[64];    /* The peer's address, for the rate limit. */
  char net[64];     /* Its network (/24, /48), for the log. */
} conn_track;

typedef struct route_match {
  int route;
  int method_ok;
  char queue[256];
  char id[256];
} route_match;

struct req {
  hloop *L;
  struct MHD_Connection *conn;
  int64_t start_ms, start_us;
  erpq_buf body;
  int too_big, too_slow;
  int answered;              /* The status once queued, negated once logged. */
  struct MHD_Response *resp; /* A prepared answer not yet queued. */
  int resp_status;
  int suspended;
  int dead; /* MHD ended the request during a call: free on reply. */
  route_match m;
  char addr[64];
  char net[64]; /* The address masked to its network, for the log. */
  /* Rate limits: the request's counters, and whether the enqueue still
   * has to count them (it carries them into add.lua). */
  erpq_rate_guard guard;
  char guard_keys[ERPQ_GUARD_MAX][512];
  int guard_pending;
  struct MHD_Response *held; /* A local answer waiting for the count. */
  int held_status;
  /* The caller, once known. */
  int authed;
  erpq_principal p;
  char aerr[200];
  const erpq_keys *k;
  erpq_keys own_k; /* k points here when the loop's cache is full. */
  int has_own_k;
  /* The Redis call in flight, if any. */
  int calling;
  step_fn next;
  int64_t call_ms;
  req *cnext, *cprev;
  /* Handler state between steps. */
  json_t *name;
  erpq_newjob *jobs;
  int *prep;
  size_t njobs;
  char idem[80];
  int retry;
  /* Long-poll. */
  int waiting; /* Registered for finish events (in L->waiters). */
  int refire;  /* An event came while a check was in flight. */
  int64_t wait_deadline;
  req *wnext, *wprev;
};

struct hloop {
  int index;
  uv_loop_t loop;
  pthread_t thread;
  struct MHD_Daemon *d;
  uv_poll_t mhd_poll;
  uv_timer_t mhd_timer;
  uv_check_t check;
  uv_timer_t sweep;
  uv_async_t stop_async;
  erpq_conn redis;              /* Commands. */
  erpq_conn sub;                /* PSUBSCRIBE to finish events, for long-polls. */
  req *calls_head, *calls_tail; /* Requests with a call in flight, oldest first. */
  req *waiters;
  conn_track *tracks;
  int suspended; /* Connections suspended now. */
  int need_run;  /* A connection was resumed: run MHD before sleeping. */
  int stopping, quiesced, finished;
  int64_t stop_deadline, next_watchdog;
  struct {
    char *queue;
    erpq_keys k;
  } keys[KEYS_CACHE];
  int nkeys;
  char token[37]; /* This loop's client token, as a bull Queue has one. */
  erpq_buf log;    /* Access-log lines of this loop turn. */
};

/* ---- Access log ------------------------------------------------------------------
 * One JSON line per answered request: time, method, route template, path
 * (queue and job id; never the query string), status, duration and the
 * client's network. Never the token, the body or the full address. Lines
 * collect in the loop's buffer and are written once per loop iteration. */

static void log_flush(hloop *L) {
  if (L->log.len && !L->log.oom) /* Out of memory: a line may be cut; drop the batch. */
    erpq_log_write_lines(L->log.s, L->log.len);
  erpq_buf_reset(&L->log);
}

static void access_log(req *r, const char *method, const char *path, int status) {
  hloop *L = r->L;
  char st[16], ms[32];
  long long cs = (long long)(mono_us() - r->start_us) / 10; /* Hundredths of a millisecond. */
  snprintf(st, sizeof st, "%d", status);
  snprintf(ms, sizeof ms, "%lld.%02lld", cs / 100, cs % 100);
  erpq_log_append(&L->log, ERPQ_LOG_INFO, "http.request", "method", method, "route",
                  erpq_route_name(r->m.route), "#status", st, "#ms", ms, "client", r->net, "path",
                  path, NULL);
  if (L->log.len >= LOG_FLUSH_AT || L->log.oom)
    log_flush(L);
}

/* ---- Answers --------------------------------------------------------------------
 * A handler prepares its answer in r->resp; on_request() queues it, at once
 * when the handler answered without waiting, or when libmicrohttpd calls it
 * again after a resume. */

static void resume(req *r) {
  if (!r->suspended)
    return;
  r->suspended = 0;
  r->L->suspended--;
  r->L->need_run = 1;
  MHD_resume_connection(r->conn);
}

/* Prepares the answer (body malloc'ed, ownership taken) and resumes the
 * connection if it was waiting. */
static void answer_raw(req *r, int status, const char *ctype, char *body, size_t len,
                       int retry_after) {
  if (r->resp) { /* Answered twice: keep the first. */
    free(body);
    return;
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(body);
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    status = 500;
    if (!resp)
      return;
  }
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  if (status == 405 && r->m.route)
    MHD_add_response_header(resp, "Allow", erpq_route_method(r->m.route));
  r->resp = resp;
  r->resp_status = status;
  resume(r);
}

/* Answers JSON o (reference stolen). */
static void answer_json(req *r, int status, json_t *o, int retry_after) {
  char *s = o ? erpq_json_dump(o) : NULL;
  json_decref(o);
  if (!s) {
    static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
    char *b = strdup(oom);
    answer_raw(r, 500, "application/json", b, b ? sizeof oom - 1 : 0, 0);
    return;
  }
  size_t n = strlen(s);
  char *b = realloc(s, n + 2);
  if (b) {
    b[n++] = '\n';
    b[n] = '\0';
    s = b;
  }
  answer_raw(r, status, "application/json", s, n, retry_after);
}

/* Answers {"error":{code,message[,details]}}; details (stolen) may be NULL. */
static void answer_error(req *r, int status, const char *code, const char *msg, json_t *details,
                         int retry_after) {
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if (e && details)
    json_object_set_new(e, "details", details);
  else
    json_decref(details);
  answer_json(r, status, e ? json_pack("{s:o}", "error", e) : NULL, retry_after);
}

static void redis_unavailable(req *r) {
  answer_error(r, 503, "redis_unavailable", "the job store is unreachable; retry later", NULL, 1);
}

/* Answers a reply that is missing (503) or an error (500). Returns 1 when it
 * answered, 0 when the reply is a usable one. */
static int reply_failed(req *r, const redisReply *reply) {
  if (!reply) {
    redis_unavailable(r);
    return 1;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    erpq_log(ERPQ_LOG_ERROR, "http.redis_error", "route", erpq_route_name(r->m.route), "error",
             reply->str, NULL);
    answer_error(r, 500, "internal", "the job store answered an error", NULL, 0);
    return 1;
  }
  return 0;
}

/* ---- Redis calls ------------------------------------------------------------------
 * A request makes at most one call at a time; its connection stays suspended
 * until the reply's step answers. Calls from all requests of a loop share
 * one pipelined connection, so a burst of requests costs Redis one read and
 * the server one write. Calls are listed oldest first: the sweep resets the
 * connection when the oldest is older than --redis-timeout, which fails
 * every call in flight (503) instead of letting them wait forever. */

static void calls_unlink(req *r) {
  hloop *L = r->L;
  if (r->cprev)
    r->cprev->cnext = r->cnext;
  else
    L->calls_head = r->cnext;
  if (r->cnext)
    r->cnext->cprev = r->cprev;
  else
    L->calls_tail = r->cprev;
  r->cnext = r->cprev = NULL;
  r->calling = 0;
}

static void req_free(req *r);

static void on_reply(erpq_conn *c, redisReply *reply, void *priv) {
  (void)c;
  req *r = priv;
  calls_unlink(r);
  if (r->dead) {
    req_free(r);
    return;
  }
  r->next(r, reply);
}

static void ignore_reply(erpq_conn *c, redisReply *reply, void *priv) {
  (void)c, (void)reply, (void)priv;
}

/* Sends cmd (ownership taken) for r; next runs with the reply. Returns 0, or
 * answers 503 itself and returns -1 when Redis is not connected. */
static int redis_call(req *r, erpq_cmd *cmd, step_fn next) {
  hloop *L = r->L;
  if (erpq_conn_send(&L->redis, cmd, on_reply, r)) {
    redis_unavailable(r);
    return -1;
  }
  r->calling = 1;
  r->next = next;
  r->call_ms = erpq_mono_ms();
  r->cprev = L->calls_tail;
  r->cnext = NULL;
  if (L->calls_tail)
    L->calls_tail->cnext = r;
  else
    L->calls_head = r;
  L->calls_tail = r;
  return 0;
}

/* Sends n plain commands as MULTI ... EXEC: next gets EXEC's reply, an array
 * of their n replies. cmds are freed. */
static int redis_call_tx(req *r, erpq_cmd *cmds, size_t n, step_fn next) {
  erpq_cmd m;
  erpq_cmd_init(&m);
  erpq_cmd_push_str(&m, "MULTI");
  if (erpq_conn_send(&r->L->redis, &m, ignore_reply, NULL)) {
    for (size_t i = 0; i < n; i++)
      erpq_cmd_free(&cmds[i]);
    redis_unavailable(r);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    if (bad)
      erpq_cmd_free(&cmds[i]);
    else
      bad = erpq_conn_send(&r->L->redis, &cmds[i], ignore_reply, NULL) != 0;
  erpq_cmd_init(&m);
  erpq_cmd_push_str(&m, "EXEC");
  if (bad) {
    /* Cannot happen once MULTI went out (same loop turn), but a connection
     * left inside MULTI must not be reused. */
    erpq_cmd_free(&m);
    erpq_conn_reset(&r->L->redis);
    redis_unavailable(r);
    return -1;
  }
  return redis_call(r, &m, next);
}

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

static void match_route(const char *url, const char *method, route_match *m) {
  memset(m, 0, sizeof *m);
  int r = R_NONE;
  if (!strcmp(url, "/healthz"))
    r = R_HEALTHZ;
  else if (!strcmp(url, "/readyz"))
    r = R_READYZ;
  else if (!strcmp(url, "/metrics"))
    r = R_METRICS;
  else if (!strncmp(url, "/v1/queues/", 11)) {
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
            r = R_ADD;
          else if (seg(&p, m->id, sizeof m->id)) {
            if (!*p)
              r = strcmp(m->id, "bulk") == 0 ? R_BULK : R_JOB;
            else if (seg(&p, b, sizeof b) && !*p) {
              if (!strcmp(b, "wait"))
                r = R_WAIT;
              else if (!strcmp(b, "retry"))
                r = R_RETRY;
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
  for (int i = 0; i < L->nkeys; i++)
    if (!strcmp(L->keys[i].queue, queue))
      return &L->keys[i].k;
  if (L->nkeys == KEYS_CACHE) {
    if (erpq_keys_init(&r->own_k, S.prefix, queue))
      return NULL;
    r->has_own_k = 1;
    return &r->own_k;
  }
  int i = L->nkeys;
  if (erpq_keys_init(&L->keys[i].k, S.prefix, queue))
    return NULL;
  L->keys[i].queue = strdup(queue);
  if (!L->keys[i].queue) {
    erpq_keys_free(&L->keys[i].k);
    return NULL;
  }
  L->nkeys++;
  return &L->keys[i].k;
}

/* ---- Job views -------------------------------------------------------------------- */

static const char *hash_field(const redisReply *h, const char *name) {
  if (!h || h->type != REDIS_REPLY_ARRAY)
    return NULL;
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0 &&
        h->element[i + 1]->type == REDIS_REPLY_STRING)
      return h->element[i + 1]->str;
  return NULL;
}

/* The school of a job's data as a decimal string, or "" when none. */
static void data_school(const json_t *data, char *out, size_t n) {
  const json_t *s = json_object_get(data, "schoolId");
  out[0] = '\0';
  if (json_is_integer(s))
    snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(s));
  else if (json_is_string(s))
    snprintf(out, n, "%s", json_string_value(s));
}

/* Starts reading job id's state; next parses the reply with parse_view(). */
static int view_call(req *r, const char *id, step_fn next) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_state(&c, r->k, id);
  return redis_call(r, &c, next);
}

/* A state reply as a job view (NULL: no such job, or another school's when
 * p is scoped to a school). */
static json_t *parse_view(const redisReply *reply, const char *id, const erpq_principal *p) {
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
    return NULL;
  json_t *o = erpq_bull_parse_state(reply, id);
  if (o && p && p->has_school) {
    const char *dtext = hash_field(reply->element[1], "data");
    json_t *d = dtext ? json_loads(dtext, JSON_DECODE_ANY, NULL) : NULL;
    char school[64];
    data_school(d, school, sizeof school);
    json_decref(d);
    if (strcmp(school, p->school) != 0) {
      json_decref(o);
      o = NULL;
    }
  }
  return o;
}

static int is_finished(const json_t *view) {
  const char *st = json_string_value(json_object_get(view, "state"));
  return st && (!strcmp(st, "completed") || !strcmp(st, "failed"));
}

static void not_found(req *r) {
  answer_error(r, 404, "job_not_found", "no such job in this queue", NULL, 0);
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
    answer_error(r, 400, "malformed_json", msg, NULL, 0);
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
  if (!erpq_policy_allows(&S.policy, r->p.role, "enqueue", queue, nm)) {
    snprintf(forbidden, flen, "role %s may not enqueue %s jobs on queue %s", r->p.role, nm, queue);
    return CHK_FORBIDDEN;
  }
  if (r->p.has_school) {
    char school[64];
    data_school(data, school, sizeof school);
    if (strcmp(school, r->p.school)) {
      snprintf(forbidden, flen, "data.schoolId must be your school's id");
      return CHK_FORBIDDEN;
    }
  }
  const erpq_schema *schema = NULL;
  if (!erpq_jobtypes_lookup(S.jobtypes, queue, nm, &schema, NULL)) {
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

static void rate_limited(req *r) {
  int64_t now = erpq_now_ms();
  int retry = (int)((60000 - now % 60000 + 999) / 1000);
  answer_error(r, 429, "rate_limited", "too many requests; retry later", NULL, retry);
}

/* Answers 429 when a guarded add was refused by the rate limits. */
static int add_refused(req *r, const redisReply *reply) {
  if (erpq_bull_rate_limited(reply)) {
    rate_limited(r);
    return 1;
  }
  return 0;
}

static void add_done(req *r, redisReply *reply) {
  if (add_refused(r, reply) || reply_failed(r, reply))
    return;
  char *id = NULL;
  if (erpq_bull_parse_ids(reply, &id, 1) != 1 || !id) {
    free(id);
    answer_error(r, 500, "internal", "unexpected reply to the add", NULL, 0);
    return;
  }
  erpq_metrics_enqueued(r->m.queue, 1);
  answer_json(r, 201,
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
  redis_call(r, &c, done);
}

/* An Idempotency-Key's job, looked up before adding. */
static void add_idem_viewed(req *r, redisReply *reply) {
  if (reply_failed(r, reply))
    return;
  json_t *view = parse_view(reply, r->idem, NULL);
  if (!view) {
    add_send(r, add_done);
    return;
  }
  answer_json(r, 200,
              json_pack("{s:s,s:s,s:O,s:O}", "id", r->idem, "queue", r->m.queue, "name", r->name,
                        "state", json_object_get(view, "state")),
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
  answer_error(r, 500, "internal", "out of memory", NULL, 0);
  return -1;
}

static void h_add(req *r) {
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
      answer_error(r, 400, "bad_idempotency_key",
                   "Idempotency-Key must be 1-255 visible ASCII characters", NULL, 0);
      return;
    }
    /* The key is scoped to the caller and the queue. */
    size_t bl = strlen(r->p.sub) + strlen(r->m.queue) + n + 2;
    char *buf = malloc(bl + 1);
    if (!buf) {
      json_decref(body);
      answer_error(r, 500, "internal", "out of memory", NULL, 0);
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
  json_decref(body);
  if (ck == CHK_FORBIDDEN) {
    json_decref(problems);
    answer_error(r, 403, "forbidden", forbidden, NULL, 0);
  } else if (ck == CHK_INVALID) {
    answer_error(r, 422, "invalid_job", "the job is not valid", problems, 0);
  } else {
    json_decref(problems);
    if (ik)
      view_call(r, r->idem, add_idem_viewed);
    else
      add_send(r, add_done);
  }
}

static void bulk_done(req *r, redisReply *reply) {
  if (add_refused(r, reply) || reply_failed(r, reply))
    return;
  char **ids = calloc(r->njobs, sizeof *ids);
  int got = ids ? erpq_bull_parse_ids(reply, ids, r->njobs) : 0;
  if (got != (int)r->njobs) {
    answer_error(r, 500, "internal", "unexpected reply to the add", NULL, 0);
  } else {
    json_t *a = json_array();
    for (size_t i = 0; i < r->njobs; i++)
      json_array_append_new(a, json_string(ids[i]));
    erpq_metrics_enqueued(r->m.queue, r->njobs);
    answer_json(r, 201, json_pack("{s:s,s:o}", "queue", r->m.queue, "ids", a), 0);
  }
  for (int i = 0; ids && i < got; i++)
    free(ids[i]);
  free(ids);
}

static void h_bulk(req *r) {
  json_t *body = parse_body(r);
  if (!body)
    return;
  const json_t *arr = json_is_object(body) ? json_object_get(body, "jobs") : body;
  if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_BULK) {
    json_decref(body);
    json_t *pr = json_array();
    add_problem(pr, "/", "must be an array of 1 to 1000 jobs");
    answer_error(r, 422, "invalid_job", "the bulk request is not valid", pr, 0);
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
    answer_error(r, 403, "forbidden", forbidden, NULL, 0);
  } else if (json_array_size(problems)) {
    answer_error(r, 422, "invalid_job", "some jobs are not valid; nothing was added", problems, 0);
  } else {
    json_decref(problems);
    add_send(r, bulk_done);
  }
}

/* ---- Reading, deleting, retrying ------------------------------------------------------ */

/* The job view of a state reply for r's job, or NULL once it has answered
 * (503/500 for a failed call, 404 for no job or another school's). */
static json_t *view_or_answer(req *r, const redisReply *reply) {
  if (reply_failed(r, reply))
    return NULL;
  json_t *view = parse_view(reply, r->m.id, &r->p);
  if (!view)
    not_found(r);
  return view;
}

static void job_viewed(req *r, redisReply *reply) {
  json_t *view = view_or_answer(r, reply);
  if (!view)
    return;
  json_object_set_new(view, "queue", json_string(r->m.queue));
  answer_json(r, 200, view, 0);
}

static void dr_done(req *r, redisReply *reply) {
  if (reply_failed(r, reply))
    return;
  if (reply->type != REDIS_REPLY_INTEGER) {
    answer_error(r, 500, "internal", "unexpected reply", NULL, 0);
    return;
  }
  long long code = reply->integer;
  if (code == 1)
    answer_json(r, 200,
                json_pack("{s:s,s:s,s:b}", "id", r->m.id, "queue", r->m.queue,
                          r->retry ? "retried" : "removed", 1),
                0);
  else if (code == 0 && r->retry)
    not_found(r);
  else
    answer_error(r, 409, "conflict",
                 code == -1 || !r->retry ? "the job is locked by a worker"
                                         : "the job is not in the expected state",
                 NULL, 0);
}

static void dr_viewed(req *r, redisReply *reply) {
  json_t *view = view_or_answer(r, reply);
  if (!view)
    return;
  const char *st = json_string_value(json_object_get(view, "state"));
  char state[32];
  snprintf(state, sizeof state, "%s", st ? st : "");
  int lifo = json_is_true(json_object_get(json_object_get(view, "opts"), "lifo"));
  json_decref(view);
  if (r->retry && strcmp(state, "failed") && strcmp(state, "completed")) {
    answer_error(r, 409, "conflict", "only a failed or completed job can be retried", NULL, 0);
    return;
  }
  erpq_cmd c;
  erpq_cmd_init(&c);
  if (r->retry)
    erpq_bull_reprocess(&c, r->k, r->L->token, r->m.id, state, lifo, erpq_now_ms());
  else
    erpq_bull_remove(&c, r->k, r->m.id);
  redis_call(r, &c, dr_done);
}

static void queue_counted(req *r, redisReply *reply) {
  if (reply_failed(r, reply))
    return;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 7) {
    answer_error(r, 500, "internal", "unexpected reply", NULL, 0);
    return;
  }
  json_t *counts = json_object();
  for (int i = 0; i < 6; i++)
    json_object_set_new(counts, erpq_bull_count_names[i],
                        json_integer(reply->element[i]->type == REDIS_REPLY_INTEGER
                                         ? reply->element[i]->integer
                                         : 0));
  const redisReply *p = reply->element[6];
  answer_json(r, 200,
              json_pack("{s:s,s:o,s:b}", "queue", r->m.queue, "counts", counts, "paused",
                        p->type == REDIS_REPLY_INTEGER && p->integer == 1),
              0);
}

static void h_queue(req *r) {
  erpq_cmd cmds[7];
  for (int i = 0; i < 7; i++)
    erpq_cmd_init(&cmds[i]);
  erpq_bull_counts(cmds, r->k);
  erpq_cmd_push_str(&cmds[6], "HEXISTS");
  erpq_cmd_push_str(&cmds[6], r->k->meta);
  erpq_cmd_push_str(&cmds[6], "paused");
  redis_call_tx(r, cmds, 7, queue_counted);
}

static void paused_done(req *r, redisReply *reply) {
  if (reply_failed(r, reply))
    return;
  answer_json(r, 200, json_pack("{s:s,s:b}", "queue", r->m.queue, "paused", r->m.route == R_PAUSE),
              0);
}

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

static void waiter_remove(req *r) {
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
  if (view_call(r, r->m.id, wait_viewed))
    waiter_remove(r);
}

static void wait_viewed(req *r, redisReply *reply) {
  json_t *view =
      reply && reply->type != REDIS_REPLY_ERROR ? parse_view(reply, r->m.id, &r->p) : NULL;
  if (!reply || reply->type == REDIS_REPLY_ERROR || !view || is_finished(view) || !can_wait(r)) {
    waiter_remove(r);
    if (reply_failed(r, reply))
      return;
    if (!view) {
      not_found(r);
      return;
    }
    json_object_set_new(view, "queue", json_string(r->m.queue));
    json_object_set_new(view, "finished", json_boolean(is_finished(view)));
    answer_json(r, 200, view, 0);
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
static void fire_all(hloop *L, int only_due) {
  int64_t now = erpq_mono_ms();
  req *due = NULL;
  for (req *r = L->waiters, *nx; r; r = nx) {
    nx = r->wnext;
    if (only_due && r->wait_deadline > now)
      continue;
    waiter_remove(r);
    r->wnext = due;
    due = r;
  }
  fire_list(due);
}

static void h_wait(req *r) {
  const char *t = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "timeout");
  double secs = WAIT_DEFAULT_S;
  if (t) {
    char *end;
    secs = strtod(t, &end);
    if (end == t || *end || !(secs >= 0 && secs <= WAIT_MAX_S)) {
      answer_error(r, 400, "bad_timeout", "timeout must be a number of seconds from 0 to 60", NULL,
                   0);
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
  redisReply *rep = reply_;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING)
    return;
  if (!strcmp(rep->element[0]->str, "psubscribe")) {
    /* Subscribed again after a reconnect: events may have been missed while
     * we were away, so every waiter reads its job once more. */
    if (rep->element[2]->type == REDIS_REPLY_INTEGER && rep->element[2]->integer == 2)
      fire_all(L, 0);
    return;
  }
  if (strcmp(rep->element[0]->str, "pmessage") || rep->elements != 4 ||
      rep->element[2]->type != REDIS_REPLY_STRING || rep->element[3]->type != REDIS_REPLY_STRING ||
      !L->waiters)
    return;
  const char *channel = rep->element[2]->str;
  size_t plen = strlen(S.prefix);
  if (strncmp(channel, S.prefix, plen) || channel[plen] != ':')
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
        waiter_remove(w);
        w->wnext = hits;
        hits = w;
      }
    }
    fire_list(hits);
  }
  json_decref(ev);
}

static void sub_ready(erpq_conn *c) {
  hloop *L = c->data;
  erpq_cmd cmd;
  erpq_cmd_init(&cmd);
  erpq_cmd_push_str(&cmd, "PSUBSCRIBE");
  erpq_cmd_pushf(&cmd, "%s:*:completed", S.prefix);
  erpq_cmd_pushf(&cmd, "%s:*:failed", S.prefix);
  if (erpq_conn_send_raw(c, &cmd, on_pmessage, L))
    erpq_conn_reset(c);
}

/* ---- /v1 ---------------------------------------------------------------------------- */

static const char *route_action(int route) {
  switch (route) {
  case R_ADD:
  case R_BULK: return "enqueue";
  case R_JOB:
  case R_WAIT: return "read";
  case R_DELETE: return "delete";
  case R_RETRY: return "retry";
  case R_QUEUE: return "counts";
  default: return "pause";
  }
}

/* After the rate limits: token, permission, queue, then the route. */
static void v1_dispatch(req *r) {
  route_match *m = &r->m;
  if (!r->authed) {
    answer_error(r, 401, "unauthorized", r->aerr, NULL, 0);
    return;
  }
  if (r->too_big) {
    answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
    return;
  }
  const erpq_principal *p = &r->p;
  /* Enqueue permission depends on the job name: checked with the body. */
  int enq = m->route == R_ADD || m->route == R_BULK;
  if (enq ? !erpq_policy_allows(&S.policy, p->role, "enqueue", m->queue, NULL) &&
                !erpq_policy_allows(&S.policy, p->role, "enqueue", m->queue, "")
          : !erpq_policy_allows(&S.policy, p->role, route_action(m->route), m->queue, NULL)) {
    /* The first test is for grants without a job; a job-specific grant
     * (accountant: generate-fees only) still lets the request through to the
     * per-job check. */
    int any = 0;
    if (enq) {
      const json_t *grants = json_object_get(json_object_get(S.policy.doc, "roles"), p->role);
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
      answer_error(r, 403, "forbidden", "your role may not do this on this queue", NULL, 0);
      return;
    }
  }
  if (!erpq_jobtypes_queue_known(S.jobtypes, m->queue) || !(r->k = loop_keys(r, m->queue))) {
    answer_error(r, 404, "queue_not_found", "no such queue", NULL, 0);
    return;
  }
  switch (m->route) {
  case R_ADD: h_add(r); break;
  case R_BULK: h_bulk(r); break;
  case R_JOB: view_call(r, m->id, job_viewed); break;
  case R_WAIT: h_wait(r); break;
  case R_DELETE:
  case R_RETRY:
    r->retry = m->route == R_RETRY;
    view_call(r, m->id, dr_viewed);
    break;
  case R_QUEUE: h_queue(r); break;
  default: {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_pause(&c, r->k, m->route == R_PAUSE);
    redis_call(r, &c, paused_done);
  }
  }
}

static void rate_checked(req *r, redisReply *reply) {
  if (reply_failed(r, reply))
    return;
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
    rate_limited(r);
  else
    v1_dispatch(r);
}

/* The count owed by a request answered without reaching its add: over the
 * limit it answers 429 instead of the held answer. */
static void held_checked(req *r, redisReply *reply) {
  struct MHD_Response *held = r->held;
  r->held = NULL;
  if ((!reply || reply->type == REDIS_REPLY_ERROR ||
       (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1))) {
    MHD_destroy_response(held);
    if (!reply_failed(r, reply))
      rate_limited(r);
    return;
  }
  r->resp = held;
  r->resp_status = r->held_status;
  resume(r);
}

static int rate_call(req *r, step_fn next) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_script_keys(&c, ERPQ_LUA_RATELIMIT, r->guard.keys, r->guard.n);
  for (int i = 0; i < r->guard.n; i++)
    erpq_cmd_push_i64(&c, r->guard.limits[i]);
  erpq_cmd_push_i64(&c, r->guard.ttl_s);
  return redis_call(r, &c, next);
}

/* Rate limits: fixed one-minute windows per client address (every request)
 * and per token subject (valid tokens), counted in Redis, before anything
 * else is answered. A plain enqueue (no Idempotency-Key) with a valid
 * token carries the count into its add script: one round trip. If it is
 * answered before the add (401 cannot happen; 403, 404, 400, 413, 422),
 * the answer waits for the count. Every other request counts first. */
static void handle_v1(req *r) {
  r->authed = erpq_auth_verify_cached(
                  &S.auth, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
                  (long long)time(NULL), &r->p, r->aerr, sizeof r->aerr) == 0;
  const char *who[2] = {S.rate_ip ? r->addr : NULL, S.rate_subject && r->authed ? r->p.sub : NULL};
  const char *kind[2] = {"ip", "sub"};
  int limit[2] = {S.rate_ip, S.rate_subject};
  long long window = (long long)(erpq_now_ms() / 60000);
  r->guard.n = 0;
  r->guard.ttl_s = 120;
  for (int i = 0; i < 2; i++) {
    if (!who[i])
      continue;
    int n = r->guard.n++;
    snprintf(r->guard_keys[n], sizeof r->guard_keys[n], "%s:erpq:rl:%s:%s:%lld", S.prefix, kind[i],
             who[i], window);
    r->guard.keys[n] = r->guard_keys[n];
    r->guard.limits[n] = limit[i];
  }
  if (!r->guard.n) {
    v1_dispatch(r);
    return;
  }
  int enq = r->m.route == R_ADD || r->m.route == R_BULK;
  if (!enq || !r->authed ||
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key")) {
    rate_call(r, rate_checked);
    return;
  }
  r->guard_pending = 1;
  v1_dispatch(r);
  if (r->resp && r->guard_pending) {
    r->guard_pending = 0;
    r->held = r->resp;
    r->held_status = r->resp_status;
    r->resp = NULL;
    if (rate_call(r, held_checked)) { /* Not sent: it answered 503. */
      MHD_destroy_response(r->held);
      r->held = NULL;
    }
  }
}

static void readyz_done(req *r, redisReply *reply) {
  if (!reply || reply->type == REDIS_REPLY_ERROR)
    redis_unavailable(r);
  else
    answer_json(r, 200, json_pack("{s:s}", "status", "ready"), 0);
}

static void handle(req *r, const char *url, const char *method) {
  route_match *m = &r->m;
  match_route(url, method, m);
  if (m->route == R_NONE)
    return answer_error(r, 404, "not_found", "no such route", NULL, 0);
  if (!m->method_ok)
    return answer_error(r, 405, "method_not_allowed", "method not allowed on this route", NULL, 0);
  if (r->too_slow)
    return answer_error(r, 408, "request_timeout", "the request body took too long", NULL, 0);
  if (m->route == R_HEALTHZ)
    return answer_json(r, 200, json_pack("{s:s}", "status", "ok"), 0);
  if (m->route == R_METRICS) {
    size_t len;
    char *t = erpq_metrics_text(&len);
    if (!t)
      return answer_error(r, 500, "internal", "out of memory", NULL, 0);
    return answer_raw(r, 200, "text/plain; version=0.0.4", t, len, 0);
  }
  if (m->route == R_READYZ) {
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_cmd_push_str(&c, "PING");
    redis_call(r, &c, readyz_done);
    return;
  }
  handle_v1(r);
}

/* ---- Connections and their header deadline ------------------------------------------
 * libmicrohttpd closes idle connections, but a client that sends its
 * headers one byte a second is never idle. Every connection is tracked from
 * its start (and again after each answered request, for keep-alive); the
 * sweep shuts down the socket of one whose request headers are not complete
 * --header-timeout seconds later. shutdown() only makes the library's next
 * read fail: the library still closes the descriptor itself, and the entry
 * leaves the list (on this same thread) before that happens. */

static conn_track *track_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void track_request(struct MHD_Connection *c, int in_request) {
  conn_track *t = track_of(c);
  if (!t)
    return;
  t->in_request = in_request;
  t->since_ms = erpq_mono_ms();
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  hloop *L = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn_track *t = calloc(1, sizeof *t);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!t || !ci) {
      free(t);
      return;
    }
    t->fd = ci->connect_fd;
    t->since_ms = erpq_mono_ms();
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ai ? ai->client_addr : NULL;
    if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
      memcpy(&t->peer, sa,
             sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
      t->has_peer = 1;
      t->peer_trusted = erpq_proxies_trust(&S.proxies, sa);
    }
    erpq_client_of(&S.proxies, t->has_peer ? (const struct sockaddr *)&t->peer : NULL, NULL,
                   t->addr, sizeof t->addr, t->net, sizeof t->net);
    t->next = L->tracks;
    if (L->tracks)
      L->tracks->prev = t;
    L->tracks = t;
    *socket_context = t;
  } else if (*socket_context) {
    conn_track *t = *socket_context;
    if (t->prev)
      t->prev->next = t->next;
    else
      L->tracks = t->next;
    if (t->next)
      t->next->prev = t->prev;
    free(t);
    *socket_context = NULL;
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------ */

static void req_free(req *r) {
  for (size_t i = 0; r->jobs && r->prep && i < r->njobs; i++)
    if (r->prep[i])
      erpq_newjob_free(&r->jobs[i]);
  free(r->jobs);
  free(r->prep);
  json_decref(r->name);
  if (r->resp)
    MHD_destroy_response(r->resp);
  if (r->held)
    MHD_destroy_response(r->held);
  if (r->has_own_k)
    erpq_keys_free(&r->own_k);
  erpq_buf_free(&r->body);
  free(r);
}

/* Queues the prepared answer, counts and logs it. */
static enum MHD_Result send_prepared(struct MHD_Connection *c, req *r, const char *url,
                                     const char *method) {
  struct MHD_Response *resp = r->resp;
  r->resp = NULL;
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->resp_status, resp);
  MHD_destroy_response(resp);
  r->answered = -r->resp_status;
  erpq_metrics_request(r->m.route, r->resp_status, (double)(mono_us() - r->start_us) / 1e6);
  access_log(r, method, url, r->resp_status);
  return ok;
}

static req *req_new(hloop *L, struct MHD_Connection *c) {
  req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->L = L;
  r->conn = c;
  r->start_ms = erpq_mono_ms();
  r->start_us = mono_us();
  const conn_track *t = track_of(c);
  const char *xff =
      t && t->peer_trusted ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For") : NULL;
  if (xff) {
    erpq_client_of(&S.proxies, (const struct sockaddr *)&t->peer, xff, r->addr, sizeof r->addr,
                   r->net, sizeof r->net);
  } else {
    snprintf(r->addr, sizeof r->addr, "%s", t ? t->addr : "unknown");
    snprintf(r->net, sizeof r->net, "%s", t ? t->net : "unknown");
  }
  return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
  (void)version;
  hloop *L = cls;
  req *r = *con_cls;
  if (!r) {
    r = req_new(L, c);
    if (!r)
      return MHD_NO;
    *con_cls = r;
    track_request(c, 1);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    /* An oversized body up to DISCARD_MAX is read and dropped (within the
     * body deadline) so that the client is sure to read our 413; a larger
     * one is refused at once and the connection closed. */
    if (cl && strtoull(cl, NULL, 10) > MAX_BODY)
      r->too_big = 1;
    if (cl && strtoull(cl, NULL, 10) > DISCARD_MAX) {
      match_route(url, method, &r->m);
      answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
      return send_prepared(c, r, url, method);
    }
    return MHD_YES;
  }
  if (r->resp)
    return send_prepared(c, r, url, method); /* Resumed with its answer. */
  if (r->answered) {
    *upload_size = 0; /* An early answer: drop the rest of the body. */
    return MHD_YES;
  }
  if (*upload_size) {
    if (erpq_mono_ms() - r->start_ms > (int64_t)S.body_timeout_s * 1000) {
      /* libmicrohttpd cannot answer in the middle of an upload: the
       * connection is closed, and counted and logged as a 408. */
      r->too_slow = 1;
      *upload_size = 0;
      match_route(url, method, &r->m);
      erpq_metrics_request(r->m.route, 408, (double)(mono_us() - r->start_us) / 1e6);
      access_log(r, method, url, 408);
      return MHD_NO;
    }
    if (r->too_big || r->body.len + *upload_size > MAX_BODY) {
      r->too_big = 1;
      *upload_size = 0;
      return MHD_YES;
    }
    erpq_buf_add(&r->body, upload_data, *upload_size);
    *upload_size = 0;
    return r->body.oom ? MHD_NO : MHD_YES;
  }
  if (r->calling || r->waiting)
    return MHD_YES; /* Not expected: still working. */
  if (r->too_big) {
    match_route(url, method, &r->m);
    answer_error(r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
  } else {
    handle(r, url, method);
  }
  if (r->resp)
    return send_prepared(c, r, url, method);
  if (r->calling || r->waiting) {
    MHD_suspend_connection(c);
    r->suspended = 1;
    L->suspended++;
    return MHD_YES;
  }
  answer_error(r, 500, "internal", "the request was not answered", NULL, 0);
  return r->resp ? send_prepared(c, r, url, method) : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)toe;
  req *r = *con_cls;
  if (!r)
    return;
  track_request(c, 0); /* Keep-alive: the next request's headers are timed from now. */
  *con_cls = NULL;
  waiter_remove(r);
  if (r->suspended) { /* Only at shutdown. */
    r->suspended = 0;
    r->L->suspended--;
  }
  if (r->calling) {
    r->dead = 1; /* on_reply frees it. */
    return;
  }
  req_free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  erpq_log(ERPQ_LOG_WARN, "http.server", "message", msg, NULL);
}

/* ---- The event loop ------------------------------------------------------------------
 * libmicrohttpd runs in "external" mode on its own epoll descriptor, which
 * the loop watches; hiredis runs on the same loop. One iteration reads
 * every ready connection, starts all their Redis calls (written together),
 * and answers every reply that came back, without a thread switch. */

static void run_mhd(hloop *L);

static void mhd_timer_cb(uv_timer_t *t) { run_mhd(t->data); }

static void run_mhd(hloop *L) {
  L->need_run = 0;
  if (!L->d)
    return;
  MHD_run(L->d);
  /* MHD's next connection timeout; 0 when it has work left over. */
  MHD_UNSIGNED_LONG_LONG to = 0;
  if (MHD_get_timeout(L->d, &to) == MHD_YES)
    uv_timer_start(&L->mhd_timer, mhd_timer_cb, to > 60000 ? 60000 : (uint64_t)to, 0);
  else
    uv_timer_stop(&L->mhd_timer);
}

static void mhd_poll_cb(uv_poll_t *p, int status, int events) {
  (void)status, (void)events;
  run_mhd(p->data);
}

/* After each poll phase: answer what the replies resumed, write the log. */
static void check_cb(uv_check_t *c) {
  hloop *L = c->data;
  if (L->need_run)
    run_mhd(L);
  log_flush(L);
}

static void handle_closed(uv_handle_t *h) { (void)h; }

/* Ends the loop: stops the daemon (every connection is closed), closes both
 * Redis connections gracefully and every handle; uv_run() then returns. */
static void loop_finish(hloop *L) {
  L->finished = 1;
  if (!L->quiesced)
    MHD_quiesce_daemon(L->d); /* The listening socket is shared: keep it open. */
  L->quiesced = 1;
  /* Fail what is still in flight and answer what still waits, so that no
   * connection is suspended when the daemon stops. */
  if (L->calls_head)
    erpq_conn_reset(&L->redis);
  for (req *r = L->waiters, *nx; r; r = nx) {
    nx = r->wnext;
    waiter_remove(r);
    redis_unavailable(r);
  }
  if (L->need_run)
    run_mhd(L);
  log_flush(L);
  MHD_stop_daemon(L->d);
  L->d = NULL;
  erpq_conn_close(&L->redis);
  erpq_conn_close(&L->sub);
  uv_close((uv_handle_t *)&L->mhd_poll, handle_closed);
  uv_close((uv_handle_t *)&L->mhd_timer, handle_closed);
  uv_close((uv_handle_t *)&L->check, handle_closed);
  uv_close((uv_handle_t *)&L->sweep, handle_closed);
  uv_close((uv_handle_t *)&L->stop_async, handle_closed);
}

/* Every 100 ms: Redis call deadline, header deadlines, long-poll deadlines
 * and watchdog, and the progress of a stop. */
static void sweep_cb(uv_timer_t *t) {
  hloop *L = t->data;
  if (L->finished)
    return;
  int64_t now = erpq_mono_ms();
  if (L->calls_head && now - L->calls_head->call_ms > S.redis_timeout_ms) {
    char ms[32];
    snprintf(ms, sizeof ms, "%d", S.redis_timeout_ms);
    erpq_log(ERPQ_LOG_WARN, "http.redis_timeout", "#timeout_ms", ms, NULL);
    erpq_conn_reset(&L->redis); /* Every call in flight answers 503. */
  }
  int64_t limit = now - (int64_t)S.header_timeout_s * 1000;
  for (conn_track *c = L->tracks; c; c = c->next)
    if (!c->in_request && c->since_ms < limit && c->fd >= 0) {
      shutdown(c->fd, SHUT_RDWR);
      c->fd = -1;
    }
  fire_all(L, 1);
  if (now >= L->next_watchdog) {
    L->next_watchdog = now + WATCHDOG_MS;
    fire_all(L, 0);
  }
  if (L->stopping && (L->suspended == 0 || now >= L->stop_deadline))
    loop_finish(L);
}

/* SIGTERM: stop accepting, let waiters answer with the state they see now,
 * let calls in flight finish (at most STOP_DRAIN_MS), then end the loop. */
static void stop_cb(uv_async_t *a) {
  hloop *L = a->data;
  if (L->stopping)
    return;
  L->stopping = 1;
  L->stop_deadline = erpq_mono_ms() + STOP_DRAIN_MS;
  MHD_quiesce_daemon(L->d);
  L->quiesced = 1;
  fire_all(L, 0);
  uv_timer_start(&L->sweep, sweep_cb, 10, 10);
}

static void *loop_main(void *arg) {
  hloop *L = arg;
  uv_run(&L->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Connection limits, per loop. */
typedef struct loop_limits {
  unsigned max_conn, per_ip, idle_s;
} loop_limits;

/* Sets up loop L around listening socket fd (nothing runs until uv_run).
 * Returns 0, or -1 with err and nothing left to free. */
static int loop_init(hloop *L, int index, int fd, const loop_limits *lim, char *err,
                     size_t errlen) {
  L->index = index;
  if (uv_loop_init(&L->loop))
    return snprintf(err, errlen, "cannot create an event loop"), -1;
  L->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
                          NULL, on_request, L, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                          MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, lim->max_conn,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim->per_ip,
                          MHD_OPTION_CONNECTION_TIMEOUT, lim->idle_s, MHD_OPTION_NOTIFY_COMPLETED,
                          on_completed, L, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, L, MHD_OPTION_END);
  const union MHD_DaemonInfo *di =
      L->d ? MHD_get_daemon_info(L->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
  if (!di) {
    if (L->d) {
      MHD_quiesce_daemon(L->d); /* The listening socket is shared: keep it open. */
      MHD_stop_daemon(L->d);
      L->d = NULL;
    }
    uv_loop_close(&L->loop);
    return snprintf(err, errlen, "cannot start the HTTP daemon"), -1;
  }
  uv_poll_init(&L->loop, &L->mhd_poll, di->epoll_fd);
  L->mhd_poll.data = L;
  uv_poll_start(&L->mhd_poll, UV_READABLE, mhd_poll_cb);
  uv_timer_init(&L->loop, &L->mhd_timer);
  L->mhd_timer.data = L;
  uv_check_init(&L->loop, &L->check);
  L->check.data = L;
  uv_check_start(&L->check, check_cb);
  uv_timer_init(&L->loop, &L->sweep);
  L->sweep.data = L;
  uv_timer_start(&L->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
  uv_async_init(&L->loop, &L->stop_async, stop_cb);
  L->stop_async.data = L;
  L->next_watchdog = erpq_mono_ms() + WATCHDOG_MS;
  erpq_uuid4(L->token);
  char name[32];
  snprintf(name, sizeof name, "http-%d", index);
  erpq_conn_init(&L->redis, &L->loop, &S.addr, name);
  L->redis.send_while_connecting = 1;
  snprintf(name, sizeof name, "http-sub-%d", index);
  L->sub.data = L;
  erpq_conn_init(&L->sub, &L->loop, &S.addr, name);
  L->sub.on_ready = sub_ready;
  erpq_conn_start(&L->redis);
  erpq_conn_start(&L->sub);
  run_mhd(L);
  return 0;
}

/* Frees what the loop kept once it has ended. Returns uv_loop_close()'s
 * result: 0 when no handle was left open. */
static int loop_free(hloop *L) {
  for (int i = 0; i < L->nkeys; i++) {
    erpq_keys_free(&L->keys[i].k);
    free(L->keys[i].queue);
  }
  L->nkeys = 0;
  erpq_buf_free(&L->log);
  return uv_loop_close(&L->loop);
}

/* ---- main ----------------------------------------------------------------------- */

static const char serve_usage[] =
    "Usage: erpq-producer [--redis URL] [--prefix P] serve [OPTIONS]\n"
    "\n"
    "Runs the HTTP API (see schemas/openapi.yaml) until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen HOST:PORT       (env ERPQ_HTTP_ADDR; default 127.0.0.1:8080)\n"
    "  --roles FILE             roles and queues (env ERPQ_ROLES_FILE; default: roles.json\n"
    "                           of the data directory, <bin>/../share/erpq)\n"
    "  --schemas DIR            job data schemas DIR/<family>/<job>.json (env ERPQ_SCHEMA_DIR;\n"
    "                           default: the ones built in)\n"
    "  --no-schemas             do not check job data (not recommended; also ERPQ_NO_SCHEMAS=1)\n"
    "  --queue SPEC             a queue binding as the worker takes it (NAME[:N]@FAMILY,...),\n"
    "                           so that the API knows its jobs (env ERPQ_QUEUES)\n"
    "  --jwt-rs256-key FILE     also accept RS256 tokens signed for this PEM public key\n"
    "                           (env ERPQ_JWT_PUBLIC_KEY_FILE); HS256 uses the secret in\n"
    "                           ERPQ_JWT_SECRET_FILE (or ERPQ_JWT_SECRET), at least 32 bytes\n"
    "  --jwt-leeway S           clock skew allowed on exp/nbf (default 30)\n"
    "  --threads N              event loops, one thread and one Redis connection each\n"
    "                           (env ERPQ_HTTP_THREADS; default 1)\n"
    "  --max-connections N      open connections in all (default 1024)\n"
    "  --per-ip-connections N   open connections per client address and event loop\n"
    "                           (default 256; 0 = no limit)\n"
    "  --client-timeout S       close a connection idle this long (default 10)\n"
    "  --header-timeout S       the request line and headers must arrive within S (default 10)\n"
    "  --body-timeout S         the whole request body must arrive within S (default 10)\n"
    "  --rate-subject N         requests per minute per token subject (env ERPQ_RATE_SUBJECT;\n"
    "                           default 6000; 0 = off)\n"
    "  --rate-ip N              requests per minute per client address (env ERPQ_RATE_IP;\n"
    "                           default 12000; 0 = off)\n"
    "  --redis-timeout MS       a Redis call not answered within MS fails with 503 (default 1000)\n"
    "  --trusted-proxies LIST   reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For\n"
    "                           names the client (env ERPQ_TRUSTED_PROXIES; default none)\n";

static int parse_listen(const char *s, struct sockaddr_in *sa) {
  const char *colon = strrchr(s, ':');
  if (!colon)
    return -1;
  char host[128];
  size_t hl = (size_t)(colon - s);
  if (hl >= sizeof host)
    return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535)
    return -1;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (!hl || !strcmp(host, "*"))
    sa->sin_addr.s_addr = htonl(INADDR_ANY);
  else if (!strcmp(host, "localhost"))
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    return -1;
  return 0;
}

static int int_opt(const char *name, const char *v, long min, long max, long *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < min || x > max) {
    fprintf(stderr, "erpq-producer serve: %s must be an integer from %ld to %ld, got '%s'\n", name,
            min, max, v);
    return -1;
  }
  *out = x;
  return 0;
}

/* The listening socket all loops accept from (non-blocking: they race). */
static int listen_socket(const struct sockaddr_in *sa) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) || listen(fd, 1024)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv) {
  const char *listen = erpq_env("ERPQ_HTTP_ADDR", "127.0.0.1:8080");
  const char *roles = getenv("ERPQ_ROLES_FILE"), *schemas = getenv("ERPQ_SCHEMA_DIR");
  const char *queues_env = getenv("ERPQ_QUEUES");
  const char *no_schemas = getenv("ERPQ_NO_SCHEMAS");
  const char *roles_origin = roles ? "ERPQ_ROLES_FILE" : NULL;
  const char *queue_flags[64];
  int nqueue_flags = 0;
  const char *rs_key = getenv("ERPQ_JWT_PUBLIC_KEY_FILE");
  const char *proxies = getenv("ERPQ_TRUSTED_PROXIES");
  long threads = 1, maxconn = 1024, perip = 256, client_to = 10, body_to = 10, header_to = 10,
       leeway = 30, rto = 1000, rate_sub = 6000, rate_ip = 12000;
  /* Integer options: flag, environment variable (or NULL), range, value. */
  const struct {
    const char *flag, *env;
    long min, max;
    long *v;
  } ints[] = {
      {"--threads", "ERPQ_HTTP_THREADS", 1, 64, &threads},
      {"--max-connections", NULL, 1, 100000, &maxconn},
      {"--per-ip-connections", NULL, 0, 100000, &perip},
      {"--client-timeout", NULL, 1, 3600, &client_to},
      {"--body-timeout", NULL, 1, 3600, &body_to},
      {"--header-timeout", NULL, 1, 3600, &header_to},
      {"--jwt-leeway", NULL, 0, 300, &leeway},
      {"--redis-timeout", NULL, 10, 60000, &rto},
      {"--rate-subject", "ERPQ_RATE_SUBJECT", 0, 100000000, &rate_sub},
      {"--rate-ip", "ERPQ_RATE_IP", 0, 100000000, &rate_ip},
  };
  const size_t nints = sizeof ints / sizeof ints[0];
  for (size_t k = 0; k < nints; k++)
    if (ints[k].env && getenv(ints[k].env) &&
        int_opt(ints[k].env, getenv(ints[k].env), ints[k].min, ints[k].max, ints[k].v))
      return 2;
  /* String options: flag, value. */
  const struct {
    const char *flag;
    const char **v;
  } strs[] = {{"--listen", &listen},          {"--roles", &roles},
              {"--schemas", &schemas},        {"--jwt-rs256-key", &rs_key},
              {"--trusted-proxies", &proxies}};
  const size_t nstrs = sizeof strs / sizeof strs[0];
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(serve_usage, stdout);
      return 0;
    }
    if (!strcmp(a, "--no-schemas")) {
      no_schemas = "1";
      continue;
    }
    if (!strcmp(a, "--queue") && i + 1 < argc) {
      if (nqueue_flags == 64) {
        fprintf(stderr, "erpq-producer serve: too many --queue flags\n");
        return 2;
      }
      queue_flags[nqueue_flags++] = argv[++i];
      continue;
    }
    if (!strcmp(a, "--roles")) roles_origin = "--roles";
    if (i + 1 >= argc) {
      fprintf(stderr, "erpq-producer serve: unknown option or missing value: %s\n", a);
      return 2;
    }
    const char *v = argv[++i];
    int known = 0;
    for (size_t k = 0; k < nstrs && !known; k++)
      if (!strcmp(a, strs[k].flag)) {
        *strs[k].v = v;
        known = 1;
      }
    for (size_t k = 0; k < nints && !known; k++)
      if (!strcmp(a, ints[k].flag)) {
        if (int_opt(a, v, ints[k].min, ints[k].max, ints[k].v))
          return 2;
        known = 1;
      }
    if (!known) {
      fprintf(stderr, "erpq-producer serve: unknown option %s (see serve --help)\n", a);
      return 2;
    }
  }
  char err[1024];
  memset(&S, 0, sizeof S);
  if (erpq_redis_url_parse(redis_url, &S.addr, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  struct sockaddr_in sa;
  if (parse_listen(listen, &sa)) {
    fprintf(stderr, "erpq-producer serve: --listen must be IPV4:PORT, got '%s'\n", listen);
    return 2;
  }
  S.prefix = prefix;
  S.redis_timeout_ms = (int)rto;
  S.rate_subject = (int)rate_sub;
  S.rate_ip = (int)rate_ip;
  S.body_timeout_s = (int)body_to;
  S.header_timeout_s = (int)header_to;
  if (erpq_proxies_parse(&S.proxies, proxies, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  if (erpq_auth_init(&S.auth, rs_key, (int)leeway, err, sizeof err)) {
    erpq_proxies_free(&S.proxies);
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  int rc = 2;
  int fd = -1;
  hloop *loops = NULL;
  int nloops = 0, nstarted = 0;
  char roles_path[4096];
  erpq_bindings binds;
  erpq_bindings_init(&binds, erpq_catalog);
  int brc = 0;
  for (int i = 0; i < nqueue_flags && !brc; i++)
    brc = erpq_bindings_add(&binds, queue_flags[i], NULL, err, sizeof err);
  if (!nqueue_flags && queues_env && *queues_env)
    brc = erpq_bindings_add_list(&binds, queues_env, NULL, err, sizeof err);
  if (!brc) brc = erpq_bindings_check(&binds, err, sizeof err);
  if (brc) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    erpq_bindings_free(&binds);
    return 2;
  }
  int use_schemas = !(no_schemas && *no_schemas && strcmp(no_schemas, "0"));
  if (erpq_datapath("roles.json", roles, roles_origin, roles_path, sizeof roles_path, err,
                    sizeof err) ||
      erpq_policy_load(&S.policy, roles_path, err, sizeof err) ||
      (use_schemas && erpq_schemas_load(&S.schemas, erpq_catalog, schemas, err, sizeof err)) ||
      erpq_jobtypes_build(&S.jobtypes, &binds, S.schemas,
                          json_object_get(S.policy.doc, "queues"), err, sizeof err)) {
    erpq_bindings_free(&binds);
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    goto out;
  }
  erpq_bindings_free(&binds);
  if (!use_schemas)
    erpq_log(ERPQ_LOG_WARN, "http.no_schemas", "note",
             "--no-schemas: job data is not checked against the job schemas", NULL);
  int src = erpq_scripts_init();
  if (src) {
    fprintf(stderr, "erpq-producer serve: cannot load the Lua scripts: %s\n", erpq_strerror(src));
    rc = 5;
    goto out;
  }
  erpq_metrics_init();
  /* Repeat schedules with a tz are computed on the loops: every zone now. */
  erpq_tz_preload(NULL, NULL, 0);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  fd = listen_socket(&sa);
  if (fd < 0) {
    fprintf(stderr, "erpq-producer serve: cannot listen on %s: %s\n", listen, strerror(errno));
    rc = 4;
    goto out;
  }
  nloops = (int)threads;
  loops = calloc((size_t)nloops, sizeof *loops);
  if (!loops)
    goto out;
  loop_limits lim = {(unsigned)((maxconn + nloops - 1) / nloops), (unsigned)perip,
                     (unsigned)client_to};
  for (; nstarted < nloops; nstarted++) {
    if (loop_init(&loops[nstarted], nstarted, fd, &lim, err, sizeof err)) {
      fprintf(stderr, "erpq-producer serve: %s\n", err);
      rc = 4;
      break;
    }
  }
  if (nstarted == nloops) {
    for (int i = 0; i < nloops; i++)
      pthread_create(&loops[i].thread, NULL, loop_main, &loops[i]);
    char th[16], ns[16];
    snprintf(th, sizeof th, "%d", nloops);
    size_t nq = 0;
    while (erpq_jobtypes_queue(S.jobtypes, nq)) nq++;
    snprintf(ns, sizeof ns, "%zu", nq);
    erpq_log(ERPQ_LOG_INFO, "http.listening", "addr", listen, "#threads", th, "#queues", ns, NULL);
    int sig = 0;
    sigwait(&set, &sig);
    for (int i = 0; i < nloops; i++)
      uv_async_send(&loops[i].stop_async);
    for (int i = 0; i < nloops; i++)
      pthread_join(loops[i].thread, NULL);
    rc = 0;
    for (int i = 0; i < nloops; i++)
      if (loop_free(&loops[i])) {
        erpq_log(ERPQ_LOG_ERROR, "http.loop_not_closed", NULL);
        rc = 1;
      }
    erpq_log(ERPQ_LOG_INFO, "http.stopped", NULL);
  } else {
    /* A loop failed to start: none runs yet; close those that were made. */
    for (int i = 0; i < nstarted; i++) {
      loops[i].stopping = 1;
      loop_finish(&loops[i]);
      uv_run(&loops[i].loop, UV_RUN_DEFAULT);
      loop_free(&loops[i]);
    }
  }
out:
  if (fd >= 0)
    close(fd);
  free(loops);
  erpq_metrics_free();
  erpq_jobtypes_free(S.jobtypes);
  erpq_schemas_free(S.schemas);
  erpq_policy_free(&S.policy);
  erpq_auth_free(&S.auth);
  erpq_proxies_free(&S.proxies);
  return rc;
}
