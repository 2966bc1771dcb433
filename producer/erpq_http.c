#include "erpq_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>

#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_http_auth.h"
#include "erpq_jsonschema.h"
#include "erpq_opts.h"
#include "erpq_redis_sync.h"
#include "erpq_scripts.h"
#include "erpq_util.h"

#define MAX_BODY (1024 * 1024)
#define MAX_BULK 1000
#define DISCARD_MAX (8 * 1024 * 1024)
#define WAIT_MAX_S 60
#define WAIT_DEFAULT_S 30
#define WATCHDOG_MS 5000
#define REDIS_BACKOFF_MS 1000

/* ---- Configuration and shared state ------------------------------------------ */

typedef struct server {
  erpq_redis_addr addr;
  const char *prefix;
  int redis_timeout_ms;
  int rate_subject, rate_ip; /* Requests per minute; 0 = off. */
  int body_timeout_s;
  int header_timeout_s;
  erpq_auth auth;
  erpq_policy policy;
  erpq_schema_set *schemas;
  struct MHD_Daemon *d;
  atomic_int stopping;
} server;

static server S;

/* ---- Metrics ---------------------------------------------------------------- */

enum route {
  R_NONE, R_HEALTHZ, R_READYZ, R_METRICS, R_QUEUE, R_PAUSE, R_RESUME, R_ADD, R_BULK,
  R_JOB, R_DELETE, R_WAIT, R_RETRY, R_COUNT
};
static const char *const route_names[R_COUNT] = {
    "unmatched", "/healthz", "/readyz", "/metrics", "/v1/queues/{queue}",
    "/v1/queues/{queue}/pause", "/v1/queues/{queue}/resume", "/v1/queues/{queue}/jobs",
    "/v1/queues/{queue}/jobs/bulk", "/v1/queues/{queue}/jobs/{id}", "/v1/queues/{queue}/jobs/{id}",
    "/v1/queues/{queue}/jobs/{id}/wait", "/v1/queues/{queue}/jobs/{id}/retry"};
static const char *const route_methods[R_COUNT] = {"", "GET", "GET", "GET", "GET", "POST", "POST",
                                                   "POST", "POST", "GET", "DELETE", "GET", "POST"};
static const int statuses[] = {200, 201, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429, 500, 503};
#define NSTATUS (sizeof statuses / sizeof statuses[0])
static atomic_ulong m_requests[R_COUNT][NSTATUS + 1];
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
static atomic_ulong m_bucket[R_COUNT][NBUCKETS + 1];
static atomic_ulong m_dur_us[R_COUNT], m_dur_count[R_COUNT];
static pthread_mutex_t m_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *m_enqueued; /* queue -> count, under m_mu. */

static void metrics_record(int route, int status, double secs) {
  size_t si = NSTATUS;
  for (size_t i = 0; i < NSTATUS; i++)
    if (statuses[i] == status) si = i;
  atomic_fetch_add(&m_requests[route][si], 1);
  size_t b = NBUCKETS;
  for (size_t i = 0; i < NBUCKETS; i++)
    if (secs <= buckets[i]) {
      b = i;
      break;
    }
  atomic_fetch_add(&m_bucket[route][b], 1);
  atomic_fetch_add(&m_dur_us[route], (unsigned long)(secs * 1e6));
  atomic_fetch_add(&m_dur_count[route], 1);
}

static void metrics_enqueued(const char *queue, size_t n) {
  pthread_mutex_lock(&m_mu);
  json_t *v = json_object_get(m_enqueued, queue);
  json_int_t cur = v ? json_integer_value(v) : 0;
  if (v || json_object_size(m_enqueued) < 256) json_object_set_new(m_enqueued, queue, json_integer(cur + (json_int_t)n));
  pthread_mutex_unlock(&m_mu);
}

typedef struct sbuf {
  char *b;
  size_t len, cap;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->b ? s->b + s->len : NULL, s->b ? s->cap - s->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (s->b && s->len + (size_t)n < s->cap) {
      s->len += (size_t)n;
      return;
    }
    size_t nc = s->cap ? s->cap * 2 : 4096;
    while (nc < s->len + (size_t)n + 1) nc *= 2;
    char *nb = realloc(s->b, nc);
    if (!nb) return;
    s->b = nb;
    s->cap = nc;
  }
}

static void prom_label(sbuf *s, const char *v) {
  for (; *v; v++) {
    if (*v == '"' || *v == '\\') sb_printf(s, "\\%c", *v);
    else if (*v == '\n') sb_printf(s, "\\n");
    else sb_printf(s, "%c", *v);
  }
}

static char *metrics_text(size_t *len) {
  sbuf s = {0};
  sb_printf(&s, "# HELP erpq_http_requests_total HTTP requests by route and status.\n"
                "# TYPE erpq_http_requests_total counter\n");
  for (int r = 0; r < R_COUNT; r++)
    for (size_t i = 0; i <= NSTATUS; i++) {
      unsigned long v = atomic_load(&m_requests[r][i]);
      if (!v) continue;
      sb_printf(&s, "erpq_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s%d\"} %lu\n",
                route_names[r], r ? route_methods[r] : "any", i < NSTATUS ? "" : "other",
                i < NSTATUS ? statuses[i] : 0, v);
    }
  sb_printf(&s, "# HELP erpq_http_request_duration_seconds Time from request start to response.\n"
                "# TYPE erpq_http_request_duration_seconds histogram\n");
  for (int r = 0; r < R_COUNT; r++) {
    if (!atomic_load(&m_dur_count[r])) continue;
    const char *m = r ? route_methods[r] : "any";
    unsigned long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
      cum += atomic_load(&m_bucket[r][i]);
      sb_printf(&s, "erpq_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %lu\n",
                route_names[r], m, buckets[i], cum);
    }
    cum += atomic_load(&m_bucket[r][NBUCKETS]);
    sb_printf(&s, "erpq_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %lu\n",
              route_names[r], m, cum);
    sb_printf(&s, "erpq_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n", route_names[r], m,
              (double)atomic_load(&m_dur_us[r]) / 1e6);
    sb_printf(&s, "erpq_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %lu\n", route_names[r], m,
              atomic_load(&m_dur_count[r]));
  }
  sb_printf(&s, "# HELP erpq_jobs_enqueued_total Jobs enqueued over HTTP by queue.\n"
                "# TYPE erpq_jobs_enqueued_total counter\n");
  pthread_mutex_lock(&m_mu);
  const char *k;
  json_t *v;
  json_object_foreach(m_enqueued, k, v) {
    sb_printf(&s, "erpq_jobs_enqueued_total{queue=\"");
    prom_label(&s, k);
    sb_printf(&s, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
  }
  pthread_mutex_unlock(&m_mu);
  *len = s.len;
  return s.b;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- Per-thread Redis --------------------------------------------------------- */

static __thread erpq_sync *tl_redis;
static __thread int64_t tl_down_until;
/* Closes a pool thread's connection when libmicrohttpd ends the thread. */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void tl_close(void *p) {
  erpq_sync *s = p;
  erpq_sync_close(s);
  free(s);
}

static void tl_init(void) { pthread_key_create(&tl_key, tl_close); }

/* Returns the thread's connection, or NULL (Redis down: answer 503). */
static erpq_sync *redis_get(void) {
  if (tl_redis) return tl_redis;
  int64_t now = erpq_mono_ms();
  if (now < tl_down_until) return NULL;
  erpq_sync *s = calloc(1, sizeof *s);
  char err[512];
  if (!s || erpq_sync_connect(s, &S.addr, S.redis_timeout_ms, err, sizeof err)) {
    free(s);
    tl_down_until = now + REDIS_BACKOFF_MS;
    return NULL;
  }
  tl_redis = s;
  pthread_once(&tl_once, tl_init);
  pthread_setspecific(tl_key, s);
  return s;
}

/* Forgets a connection after a failure; rc is the error of the call. */
static void redis_failed(int rc) {
  if (rc != ERPQ_E_CONN || !tl_redis) return;
  pthread_setspecific(tl_key, NULL);
  erpq_sync_close(tl_redis);
  free(tl_redis);
  tl_redis = NULL;
  tl_down_until = erpq_mono_ms() + REDIS_BACKOFF_MS;
}

/* ---- Requests and responses ---------------------------------------------------- */

typedef struct waiter waiter;

typedef struct req {
  int64_t start_ms, start_us;
  struct timespec start_ts;
  char *body;
  size_t len, cap;
  int too_big, too_slow, answered;
  int route;
  char addr[64];
  char net[64]; /* The address masked to its network (/24, /48), for the log. */
  /* Long-poll. */
  waiter *w;
  int64_t wait_deadline;
  struct MHD_Connection *conn;
} req;

struct waiter {
  waiter *next, *prev;
  char *queue, *id;
  int64_t deadline;
  int fired;
  struct MHD_Connection *conn;
};

static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static waiter *w_head;
static int w_count;

static void access_log(const req *r, const char *method, const char *path, int status) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:s}", "ts", "", "level", "info", "event",
                        "http.request", "method", method, "route", route_names[r->route], "status", status,
                        "ms", (double)((mono_us() - r->start_us) / 10) / 100.0, "client", r->net);
  char ts[64];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  json_object_set_new(o, "ts", json_string(ts));
  /* The path names queue and job id only; the query string is dropped. */
  json_object_set_new(o, "path", json_string(path));
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  json_decref(o);
  if (line) {
    flockfile(stdout);
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
    free(line);
  }
}

static enum MHD_Result send_raw(struct MHD_Connection *c, req *r, int status, const char *ctype,
                                char *body, size_t len, int retry_after) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  if (status == 405 && r->route) MHD_add_response_header(resp, "Allow", route_methods[r->route]);
  enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  r->answered = status;
  return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req *r, int status, json_t *o, int retry_after) {
  char *s = erpq_json_dump(o);
  json_decref(o);
  if (!s) return MHD_NO;
  size_t n = strlen(s);
  char *b = realloc(s, n + 2);
  if (b) {
    b[n++] = '\n';
    b[n] = '\0';
    s = b;
  }
  return send_raw(c, r, status, "application/json", s, n, retry_after);
}

static enum MHD_Result send_error(struct MHD_Connection *c, req *r, int status, const char *code,
                                  const char *msg, json_t *details, int retry_after) {
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if (details) json_object_set_new(e, "details", details);
  return send_json(c, r, status, json_pack("{s:o}", "error", e), retry_after);
}

static enum MHD_Result redis_unavailable(struct MHD_Connection *c, req *r) {
  return send_error(c, r, 503, "redis_unavailable", "the job store is unreachable; retry later", NULL, 1);
}

static enum MHD_Result redis_error(struct MHD_Connection *c, req *r, int rc) {
  redis_failed(rc);
  if (rc == ERPQ_E_CONN) return redis_unavailable(c, r);
  return send_error(c, r, 500, "internal", "the job store answered an error", NULL, 0);
}

/* ---- Routing ------------------------------------------------------------------- */

typedef struct route_match {
  int route;
  int method_ok;
  char queue[256];
  char id[256];
} route_match;

static int seg(const char **p, char *out, size_t outlen) {
  const char *s = *p;
  if (*s != '/') return 0;
  s++;
  const char *e = strchr(s, '/');
  size_t n = e ? (size_t)(e - s) : strlen(s);
  if (n == 0 || n >= outlen) return 0;
  memcpy(out, s, n);
  out[n] = '\0';
  *p = s + n;
  return 1;
}

static void match_route(const char *url, const char *method, route_match *m) {
  memset(m, 0, sizeof *m);
  int r = R_NONE;
  if (!strcmp(url, "/healthz")) r = R_HEALTHZ;
  else if (!strcmp(url, "/readyz")) r = R_READYZ;
  else if (!strcmp(url, "/metrics")) r = R_METRICS;
  else if (!strncmp(url, "/v1/queues/", 11)) {
    const char *p = url + 10;
    char a[256], b[256];
    if (seg(&p, m->queue, sizeof m->queue)) {
      if (!*p) r = R_QUEUE;
      else if (seg(&p, a, sizeof a)) {
        if (!*p && !strcmp(a, "pause")) r = R_PAUSE;
        else if (!*p && !strcmp(a, "resume")) r = R_RESUME;
        else if (!strcmp(a, "jobs")) {
          if (!*p) r = R_ADD;
          else if (seg(&p, m->id, sizeof m->id)) {
            if (!*p) r = strcmp(m->id, "bulk") == 0 ? R_BULK : R_JOB;
            else if (seg(&p, b, sizeof b) && !*p) {
              if (!strcmp(b, "wait")) r = R_WAIT;
              else if (!strcmp(b, "retry")) r = R_RETRY;
            }
          }
        }
      }
    }
  }
  m->route = r;
  if (r == R_NONE) return;
  if (r == R_JOB) {
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) m->method_ok = 1;
    else if (!strcmp(method, "DELETE")) m->route = R_DELETE, m->method_ok = 1;
    return;
  }
  m->method_ok = !strcmp(method, route_methods[r]) || (!strcmp(route_methods[r], "GET") && !strcmp(method, "HEAD"));
}

/* ---- Redis helpers --------------------------------------------------------------- */

/* Rate limits: fixed one-minute windows. Returns 0 = allowed, >0 = seconds
 * to wait, <0 = Redis error code. */
static int rate_check(erpq_sync *rs, const char *sub, const char *addr) {
  if (!S.rate_ip && !(sub && S.rate_subject)) return 0;
  int64_t now = erpq_now_ms();
  int64_t window = now / 60000;
  int retry = (int)((60000 - now % 60000 + 999) / 1000);
  erpq_cmd cmds[4];
  redisReply *rep[4] = {0};
  size_t n = 0;
  for (int i = 0; i < 4; i++) erpq_cmd_init(&cmds[i]);
  const char *who[2] = {S.rate_ip ? addr : NULL, S.rate_subject ? sub : NULL};
  const char *kind[2] = {"ip", "sub"};
  int limit[2] = {S.rate_ip, S.rate_subject};
  int idx[2] = {-1, -1};
  for (int i = 0; i < 2; i++) {
    if (!who[i]) continue;
    char key[512];
    snprintf(key, sizeof key, "%s:erpq:rl:%s:%s:%lld", S.prefix, kind[i], who[i], (long long)window);
    idx[i] = (int)n;
    erpq_cmd_push_str(&cmds[n], "INCR");
    erpq_cmd_push_str(&cmds[n++], key);
    erpq_cmd_push_str(&cmds[n], "EXPIRE");
    erpq_cmd_push_str(&cmds[n], key);
    erpq_cmd_push_str(&cmds[n++], "120");
  }
  char err[512];
  int rc = erpq_sync_pipeline(rs, cmds, n, rep, err, sizeof err);
  int out = 0;
  if (rc) out = rc;
  for (int i = 0; !rc && i < 2; i++) {
    if (idx[i] < 0) continue;
    redisReply *x = rep[idx[i]];
    if (x->type == REDIS_REPLY_INTEGER && x->integer > limit[i]) out = retry;
  }
  for (size_t i = 0; i < n; i++) {
    if (rep[i]) freeReplyObject(rep[i]);
  }
  for (int i = 0; i < 4; i++) erpq_cmd_free(&cmds[i]);
  return out;
}

static const char *hash_field(const redisReply *h, const char *name) {
  if (!h || h->type != REDIS_REPLY_ARRAY) return NULL;
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
  if (json_is_integer(s)) snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(s));
  else if (json_is_string(s)) snprintf(out, n, "%s", json_string_value(s));
}

/* Reads a job's view. Returns 0 with *view (NULL = not found, or another
 * school's), or a Redis error code. */
static int job_view(erpq_sync *rs, const erpq_keys *k, const char *id, const erpq_principal *p,
                    json_t **view) {
  *view = NULL;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_state(&c, k, id);
  redisReply *r = NULL;
  char err[512];
  int rc = erpq_sync_run(rs, &c, &r, err, sizeof err);
  erpq_cmd_free(&c);
  if (rc) return rc;
  if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
    json_t *o = erpq_bull_parse_state(r, id);
    if (o && p && p->has_school) {
      const char *dtext = hash_field(r->element[1], "data");
      json_t *d = dtext ? json_loads(dtext, JSON_DECODE_ANY, NULL) : NULL;
      char school[64];
      data_school(d, school, sizeof school);
      json_decref(d);
      if (strcmp(school, p->school) != 0) {
        json_decref(o);
        o = NULL;
      }
    }
    *view = o;
  }
  freeReplyObject(r);
  return 0;
}

static int is_finished(const json_t *view) {
  const char *st = json_string_value(json_object_get(view, "state"));
  return st && (!strcmp(st, "completed") || !strcmp(st, "failed"));
}

/* ---- Waiters ------------------------------------------------------------------------ */

static void waiter_fire_locked(waiter *w) {
  if (w->fired) return;
  w->fired = 1;
  if (w->prev) w->prev->next = w->next;
  else w_head = w->next;
  if (w->next) w->next->prev = w->prev;
  w->next = w->prev = NULL;
  w_count--;
  MHD_resume_connection(w->conn);
}

static void fire_matching(const char *channel, const char *payload) {
  size_t plen = strlen(S.prefix);
  if (strncmp(channel, S.prefix, plen) || channel[plen] != ':') return;
  const char *q = channel + plen + 1;
  const char *end = strrchr(q, ':');
  if (!end) return;
  json_t *ev = json_loads(payload, 0, NULL);
  const json_t *jid = json_object_get(ev, "jobId");
  char idbuf[64];
  const char *id = NULL;
  if (json_is_string(jid)) id = json_string_value(jid);
  else if (json_is_integer(jid)) {
    snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
    id = idbuf;
  }
  if (id) {
    size_t qlen = (size_t)(end - q);
    pthread_mutex_lock(&w_mu);
    for (waiter *w = w_head, *nx; w; w = nx) {
      nx = w->next;
      if (!strcmp(w->id, id) && strlen(w->queue) == qlen && !strncmp(w->queue, q, qlen)) waiter_fire_locked(w);
    }
    pthread_mutex_unlock(&w_mu);
  }
  json_decref(ev);
}

static void fire_all(int only_due) {
  int64_t now = erpq_mono_ms();
  pthread_mutex_lock(&w_mu);
  for (waiter *w = w_head, *nx; w; w = nx) {
    nx = w->next;
    if (!only_due || w->deadline <= now) waiter_fire_locked(w);
  }
  pthread_mutex_unlock(&w_mu);
}

static void *subscriber_main(void *arg) {
  (void)arg;
  int64_t next_watchdog = erpq_mono_ms() + WATCHDOG_MS;
  while (!atomic_load(&S.stopping)) {
    erpq_sync s;
    char err[512];
    if (erpq_sync_connect(&s, &S.addr, 2000, err, sizeof err)) {
      fire_all(1);
      usleep(200000);
      continue;
    }
    char pc[300], pf[300];
    snprintf(pc, sizeof pc, "%s:*:completed", S.prefix);
    snprintf(pf, sizeof pf, "%s:*:failed", S.prefix);
    if (redisAppendCommand(s.c, "PSUBSCRIBE %s %s", pc, pf) != REDIS_OK) {
      erpq_sync_close(&s);
      continue;
    }
    int wdone = 0;
    while (!wdone && redisBufferWrite(s.c, &wdone) == REDIS_OK) {
    }
    /* Events may have been missed while we were away: re-check everyone. */
    fire_all(0);
    int ok = 1;
    while (ok && !atomic_load(&S.stopping)) {
      void *v = NULL;
      while (ok && redisGetReplyFromReader(s.c, &v) == REDIS_OK && v) {
        redisReply *r = v;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 && r->element[0]->type == REDIS_REPLY_STRING &&
            !strcmp(r->element[0]->str, "pmessage") && r->element[2]->type == REDIS_REPLY_STRING &&
            r->element[3]->type == REDIS_REPLY_STRING)
          fire_matching(r->element[2]->str, r->element[3]->str);
        freeReplyObject(r);
        v = NULL;
      }
      struct pollfd p = {.fd = s.c->fd, .events = POLLIN};
      int n = poll(&p, 1, 200);
      if (n > 0 && redisBufferRead(s.c) != REDIS_OK) ok = 0;
      if (n < 0 && errno != EINTR) ok = 0;
      fire_all(1);
      int64_t now = erpq_mono_ms();
      if (now >= next_watchdog) {
        next_watchdog = now + WATCHDOG_MS;
        fire_all(0);
      }
    }
    erpq_sync_close(&s);
  }
  fire_all(0);
  return NULL;
}

/* ---- Handlers ----------------------------------------------------------------------- */

typedef struct ctx {
  struct MHD_Connection *c;
  req *r;
  route_match *m;
  erpq_principal *p;
  erpq_sync *rs;
  erpq_keys k;
} ctx;

static json_t *parse_body(ctx *x, enum MHD_Result *res) {
  json_error_t je;
  json_t *v = x->r->len ? json_loadb(x->r->body, x->r->len, 0, &je) : NULL;
  if (!v) {
    char msg[300];
    if (!x->r->len) snprintf(msg, sizeof msg, "the request body must be JSON");
    else snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    *res = send_error(x->c, x->r, 400, "malformed_json", msg, NULL, 0);
  }
  return v;
}

static void add_problem(json_t *problems, const char *path, const char *msg) {
  json_array_append_new(problems, json_pack("{s:s,s:s}", "path", path, "message", msg));
}

typedef enum { CHK_OK, CHK_FORBIDDEN, CHK_INVALID } chk;

/* Checks one job {name,data,opts} at base path; prepares it into *j when
 * valid. forbidden gets a message for 403. */
static chk check_job(ctx *x, const json_t *o, const char *base, json_t *problems, erpq_newjob *j,
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
  if (!erpq_policy_allows(&S.policy, x->p->role, "enqueue", x->m->queue, nm)) {
    snprintf(forbidden, flen, "role %s may not enqueue %s jobs on queue %s", x->p->role, nm, x->m->queue);
    return CHK_FORBIDDEN;
  }
  if (x->p->has_school) {
    char school[64];
    data_school(data, school, sizeof school);
    if (strcmp(school, x->p->school)) {
      snprintf(forbidden, flen, "data.schoolId must be your school's id");
      return CHK_FORBIDDEN;
    }
  }
  if (!erpq_policy_queue_serves(&S.policy, x->m->queue, nm)) {
    add_problem(problems, path, "is not a job this queue serves");
    return CHK_INVALID;
  }
  snprintf(path, sizeof path, "%s/data", base);
  const json_t *schema = erpq_schema_set_get(S.schemas, nm);
  if (schema) erpq_schema_validate(schema, data ? data : json_null(), path, problems);
  else if (data && !json_is_object(data)) add_problem(problems, path, "must be an object");
  snprintf(path, sizeof path, "%s/opts", base);
  json_t *o2 = NULL;
  if (opts && !json_is_null(opts)) {
    if (!json_is_object(opts)) {
      add_problem(problems, path, "must be an object");
    } else {
      if (json_object_get(opts, "repeat") && bulk) add_problem(problems, path, "repeat is not allowed in bulk adds");
      if (idem_id && json_object_get(opts, "jobId")) add_problem(problems, path, "jobId cannot be combined with an Idempotency-Key");
    }
  }
  if ((int)json_array_size(problems) > before) return CHK_INVALID;
  if (idem_id) {
    o2 = opts && json_is_object(opts) ? json_deep_copy(opts) : json_object();
    json_object_set_new(o2, "jobId", json_string(idem_id));
  }
  char *dtext = data ? erpq_json_dump(data) : strdup("{}");
  char err[512] = "";
  int rc = dtext ? erpq_newjob_prepare(j, nm, dtext, o2 ? o2 : (json_is_object(opts) ? opts : NULL), erpq_now_ms(),
                                       err, sizeof err)
                 : -ENOMEM;
  free(dtext);
  json_decref(o2);
  if (rc) {
    add_problem(problems, path, rc == 1 ? "repeatable job has no occurrence left" : (err[0] ? err : "invalid options"));
    if (rc == 0 || rc == 1) erpq_newjob_free(j);
    return CHK_INVALID;
  }
  *prepared = 1;
  return CHK_OK;
}

static const char *new_state(const erpq_newjob *j) { return j->delay > 0 ? "delayed" : "waiting"; }

static enum MHD_Result h_add(ctx *x) {
  enum MHD_Result res;
  json_t *body = parse_body(x, &res);
  if (!body) return res;
  const char *ik = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "Idempotency-Key");
  char idem[80] = "";
  if (ik) {
    size_t n = strlen(ik);
    int ok = n > 0 && n <= 255;
    for (size_t i = 0; ok && i < n; i++) ok = ik[i] > 0x20 && ik[i] < 0x7f;
    if (!ok) {
      json_decref(body);
      return send_error(x->c, x->r, 400, "bad_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters", NULL, 0);
    }
    /* The key is scoped to the caller and the queue. */
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t bl = strlen(x->p->sub) + strlen(x->m->queue) + n + 2;
    char *buf = malloc(bl + 1);
    if (!buf) {
      json_decref(body);
      return send_error(x->c, x->r, 500, "internal", "out of memory", NULL, 0);
    }
    snprintf(buf, bl + 1, "%s\n%s\n%s", x->p->sub, x->m->queue, ik);
    SHA256((const unsigned char *)buf, bl, md);
    free(buf);
    strcpy(idem, "idem-");
    for (int i = 0; i < 20; i++) sprintf(idem + 5 + 2 * i, "%02x", md[i]);
  }
  json_t *problems = json_array();
  erpq_newjob j;
  int prepared = 0;
  char forbidden[1024];
  chk ck = check_job(x, body, "", problems, &j, &prepared, forbidden, sizeof forbidden, 0, ik ? idem : NULL);
  json_t *name = json_incref(json_object_get(body, "name"));
  json_decref(body);
  if (ck == CHK_FORBIDDEN) {
    json_decref(problems);
    json_decref(name);
    return send_error(x->c, x->r, 403, "forbidden", forbidden, NULL, 0);
  }
  if (ck == CHK_INVALID) {
    json_decref(name);
    return send_error(x->c, x->r, 422, "invalid_job", "the job is not valid", problems, 0);
  }
  json_decref(problems);
  if (ik) {
    json_t *view = NULL;
    int rc = job_view(x->rs, &x->k, idem, NULL, &view);
    if (rc) {
      erpq_newjob_free(&j);
      json_decref(name);
      return redis_error(x->c, x->r, rc);
    }
    if (view) {
      erpq_newjob_free(&j);
      json_t *o = json_pack("{s:s,s:s,s:O,s:O}", "id", idem, "queue", x->m->queue, "name", name, "state",
                            json_object_get(view, "state"));
      json_decref(view);
      json_decref(name);
      return send_json(x->c, x->r, 200, o, 0);
    }
  }
  char token[37];
  erpq_uuid4(token);
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_add(&c, &x->k, token, &j, 1, 0);
  redisReply *r = NULL;
  char err[512];
  int rc = erpq_sync_run(x->rs, &c, &r, err, sizeof err);
  erpq_cmd_free(&c);
  const char *st = new_state(&j);
  char *id = NULL;
  if (!rc && (erpq_bull_parse_ids(r, &id, 1) != 1 || !id)) rc = ERPQ_E_PROTOCOL;
  if (r) freeReplyObject(r);
  if (rc) {
    erpq_newjob_free(&j);
    json_decref(name);
    free(id);
    return redis_error(x->c, x->r, rc);
  }
  metrics_enqueued(x->m->queue, 1);
  json_t *o = json_pack("{s:s,s:s,s:O,s:s}", "id", id, "queue", x->m->queue, "name", name, "state", st);
  erpq_newjob_free(&j);
  json_decref(name);
  free(id);
  return send_json(x->c, x->r, 201, o, 0);
}

static enum MHD_Result h_bulk(ctx *x) {
  enum MHD_Result res;
  json_t *body = parse_body(x, &res);
  if (!body) return res;
  const json_t *arr = json_is_object(body) ? json_object_get(body, "jobs") : body;
  if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_BULK) {
    json_decref(body);
    json_t *pr = json_array();
    add_problem(pr, "/", "must be an array of 1 to 1000 jobs");
    return send_error(x->c, x->r, 422, "invalid_job", "the bulk request is not valid", pr, 0);
  }
  size_t n = json_array_size(arr);
  erpq_newjob *jobs = calloc(n, sizeof *jobs);
  int *prep = calloc(n, sizeof *prep);
  json_t *problems = json_array();
  int forbidden_seen = 0;
  char forbidden[1024] = "";
  for (size_t i = 0; i < n && jobs && prep; i++) {
    char base[32];
    snprintf(base, sizeof base, "/%zu", i);
    char fb[700];
    chk ck = check_job(x, json_array_get(arr, i), base, problems, &jobs[i], &prep[i], fb, sizeof fb, 1, NULL);
    if (ck == CHK_FORBIDDEN && !forbidden_seen) {
      forbidden_seen = 1;
      snprintf(forbidden, sizeof forbidden, "job %zu: %s", i, fb);
    }
  }
  json_decref(body);
  enum MHD_Result out;
  if (!jobs || !prep) {
    out = send_error(x->c, x->r, 500, "internal", "out of memory", NULL, 0);
  } else if (forbidden_seen) {
    out = send_error(x->c, x->r, 403, "forbidden", forbidden, NULL, 0);
  } else if (json_array_size(problems)) {
    out = send_error(x->c, x->r, 422, "invalid_job", "some jobs are not valid; nothing was added",
                     json_incref(problems), 0);
  } else {
    char token[37];
    erpq_uuid4(token);
    erpq_cmd c;
    erpq_cmd_init(&c);
    erpq_bull_add(&c, &x->k, token, jobs, n, 0);
    redisReply *r = NULL;
    char err[512];
    int rc = erpq_sync_run(x->rs, &c, &r, err, sizeof err);
    erpq_cmd_free(&c);
    char **ids = calloc(n, sizeof *ids);
    int got = 0;
    if (!rc && ids) got = erpq_bull_parse_ids(r, ids, n);
    if (r) freeReplyObject(r);
    if (rc) {
      out = redis_error(x->c, x->r, rc);
    } else if (got != (int)n) {
      out = send_error(x->c, x->r, 500, "internal", "unexpected reply to the add", NULL, 0);
    } else {
      json_t *a = json_array();
      for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(ids[i]));
      metrics_enqueued(x->m->queue, n);
      out = send_json(x->c, x->r, 201, json_pack("{s:s,s:o}", "queue", x->m->queue, "ids", a), 0);
    }
    for (int i = 0; ids && i < got; i++) free(ids[i]);
    free(ids);
  }
  json_decref(problems);
  for (size_t i = 0; jobs && prep && i < n; i++)
    if (prep[i]) erpq_newjob_free(&jobs[i]);
  free(jobs);
  free(prep);
  return out;
}

static enum MHD_Result not_found(ctx *x) {
  return send_error(x->c, x->r, 404, "job_not_found", "no such job in this queue", NULL, 0);
}

static enum MHD_Result h_job(ctx *x) {
  json_t *view;
  int rc = job_view(x->rs, &x->k, x->m->id, x->p, &view);
  if (rc) return redis_error(x->c, x->r, rc);
  if (!view) return not_found(x);
  json_object_set_new(view, "queue", json_string(x->m->queue));
  return send_json(x->c, x->r, 200, view, 0);
}

static enum MHD_Result h_wait(ctx *x) {
  req *r = x->r;
  if (!r->w) {
    /* First pass: parse the timeout. */
    const char *t = MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, "timeout");
    double secs = WAIT_DEFAULT_S;
    if (t) {
      char *end;
      secs = strtod(t, &end);
      if (end == t || *end || !(secs >= 0 && secs <= WAIT_MAX_S))
        return send_error(x->c, r, 400, "bad_timeout", "timeout must be a number of seconds from 0 to 60", NULL, 0);
    }
    r->wait_deadline = erpq_mono_ms() + (int64_t)(secs * 1000);
  }
  /* Register before checking, so that no finish slips between the two. */
  waiter *w = r->w;
  if (!w) {
    w = calloc(1, sizeof *w);
    if (!w) return send_error(x->c, r, 500, "internal", "out of memory", NULL, 0);
    w->queue = strdup(x->m->queue);
    w->id = strdup(x->m->id);
    w->conn = x->c;
    w->deadline = r->wait_deadline;
    w->fired = 1;
    r->w = w;
  }
  int can_wait = !atomic_load(&S.stopping) && erpq_mono_ms() < r->wait_deadline;
  if (can_wait) {
    pthread_mutex_lock(&w_mu);
    w->fired = 0;
    w->next = w_head;
    w->prev = NULL;
    if (w_head) w_head->prev = w;
    w_head = w;
    w_count++;
    pthread_mutex_unlock(&w_mu);
  }
  json_t *view;
  int rc = job_view(x->rs, &x->k, x->m->id, x->p, &view);
  int done = rc || !view || is_finished(view) || !can_wait;
  if (done) {
    pthread_mutex_lock(&w_mu);
    if (!w->fired) {
      w->fired = 1;
      if (w->prev) w->prev->next = w->next;
      else w_head = w->next;
      if (w->next) w->next->prev = w->prev;
      w_count--;
    }
    pthread_mutex_unlock(&w_mu);
    if (rc) return redis_error(x->c, r, rc);
    if (!view) return not_found(x);
    json_object_set_new(view, "queue", json_string(x->m->queue));
    json_object_set_new(view, "finished", json_boolean(is_finished(view)));
    return send_json(x->c, r, 200, view, 0);
  }
  json_decref(view);
  /* Suspend until the subscriber (or the deadline) resumes us. The waiter
   * may already have fired: then resume comes at once. */
  pthread_mutex_lock(&w_mu);
  MHD_suspend_connection(x->c);
  int already = w->fired;
  pthread_mutex_unlock(&w_mu);
  if (already) MHD_resume_connection(x->c);
  return MHD_YES;
}

static int int_reply(const redisReply *r, long long *v) {
  if (!r || r->type != REDIS_REPLY_INTEGER) return -1;
  *v = r->integer;
  return 0;
}

static enum MHD_Result h_delete_retry(ctx *x, int retry) {
  json_t *view;
  int rc = job_view(x->rs, &x->k, x->m->id, x->p, &view);
  if (rc) return redis_error(x->c, x->r, rc);
  if (!view) return not_found(x);
  const char *st = json_string_value(json_object_get(view, "state"));
  char state[32];
  snprintf(state, sizeof state, "%s", st ? st : "");
  int lifo = json_is_true(json_object_get(json_object_get(view, "opts"), "lifo"));
  json_decref(view);
  if (retry && strcmp(state, "failed") && strcmp(state, "completed"))
    return send_error(x->c, x->r, 409, "conflict", "only a failed or completed job can be retried", NULL, 0);
  erpq_cmd c;
  erpq_cmd_init(&c);
  char token[37];
  erpq_uuid4(token);
  if (retry) erpq_bull_reprocess(&c, &x->k, token, x->m->id, state, lifo, erpq_now_ms());
  else erpq_bull_remove(&c, &x->k, x->m->id);
  redisReply *r = NULL;
  char err[512];
  rc = erpq_sync_run(x->rs, &c, &r, err, sizeof err);
  erpq_cmd_free(&c);
  if (rc) return redis_error(x->c, x->r, rc);
  long long code = -99;
  int bad = int_reply(r, &code);
  freeReplyObject(r);
  if (bad) return send_error(x->c, x->r, 500, "internal", "unexpected reply", NULL, 0);
  if (code == 1)
    return send_json(x->c, x->r, 200, json_pack("{s:s,s:s,s:b}", "id", x->m->id, "queue", x->m->queue,
                                                retry ? "retried" : "removed", 1), 0);
  if (code == 0 && retry) return not_found(x);
  return send_error(x->c, x->r, 409, "conflict",
                    code == -1 || !retry ? "the job is locked by a worker" : "the job is not in the expected state",
                    NULL, 0);
}

static enum MHD_Result h_queue(ctx *x) {
  erpq_cmd cmds[7];
  redisReply *rs[7] = {0};
  for (int i = 0; i < 7; i++) erpq_cmd_init(&cmds[i]);
  erpq_bull_counts(cmds, &x->k);
  erpq_cmd_push_str(&cmds[6], "HEXISTS");
  erpq_cmd_push_str(&cmds[6], x->k.meta);
  erpq_cmd_push_str(&cmds[6], "paused");
  char err[512];
  int rc = erpq_sync_pipeline(x->rs, cmds, 7, rs, err, sizeof err);
  enum MHD_Result out;
  if (rc) {
    out = redis_error(x->c, x->r, rc);
  } else {
    json_t *counts = json_object();
    for (int i = 0; i < 6; i++)
      json_object_set_new(counts, erpq_bull_count_names[i], json_integer(rs[i]->type == REDIS_REPLY_INTEGER ? rs[i]->integer : 0));
    out = send_json(x->c, x->r, 200,
                    json_pack("{s:s,s:o,s:b}", "queue", x->m->queue, "counts", counts, "paused",
                              rs[6]->type == REDIS_REPLY_INTEGER && rs[6]->integer == 1),
                    0);
  }
  for (int i = 0; i < 7; i++) {
    if (rs[i]) freeReplyObject(rs[i]);
    erpq_cmd_free(&cmds[i]);
  }
  return out;
}

static enum MHD_Result h_pause(ctx *x, int pause) {
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_bull_pause(&c, &x->k, pause);
  redisReply *r = NULL;
  char err[512];
  int rc = erpq_sync_run(x->rs, &c, &r, err, sizeof err);
  erpq_cmd_free(&c);
  if (rc) return redis_error(x->c, x->r, rc);
  freeReplyObject(r);
  return send_json(x->c, x->r, 200, json_pack("{s:s,s:b}", "queue", x->m->queue, "paused", pause), 0);
}

/* ---- Token cache -------------------------------------------------------------------
 * A backend sends the same token thousands of times. Each pool thread keeps
 * the last TOKEN_CACHE tokens it verified (the whole string, signature
 * included, compared byte for byte) with their claims; a hit re-checks only
 * exp and nbf against the clock. Only tokens that passed full verification
 * are stored, so the cache cannot make a bad token good. */
#define TOKEN_CACHE 64

typedef struct tok_entry {
  char *token;
  erpq_principal p;
  long long exp, nbf; /* nbf 0 = none. */
} tok_entry;

static __thread tok_entry tl_tokens[TOKEN_CACHE];
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

/* Frees a pool thread's cached tokens when the thread ends. */
static void tok_free(void *arg) {
  tok_entry *t = arg;
  for (int i = 0; i < TOKEN_CACHE; i++) {
    free(t[i].token);
    t[i].token = NULL;
  }
}

static void tok_init(void) { pthread_key_create(&tok_key, tok_free); }

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* exp/nbf of a verified token, read back from its payload. */
static void token_times(const char *tok, long long *exp, long long *nbf) {
  *exp = 0, *nbf = 0;
  const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d2) return;
  size_t n = (size_t)(d2 - d1 - 1);
  char *b64 = malloc(n + 4), *bin = malloc(n + 4);
  if (b64 && bin) {
    /* base64url to base64 with padding, for OpenSSL's decoder. */
    for (size_t i = 0; i < n; i++) b64[i] = d1[1 + i] == '-' ? '+' : d1[1 + i] == '_' ? '/' : d1[1 + i];
    size_t m = n;
    while (m % 4) b64[m++] = '=';
    int len = EVP_DecodeBlock((unsigned char *)bin, (const unsigned char *)b64, (int)m);
    if (len > 0) {
      json_t *c = json_loadb(bin, (size_t)len, JSON_DISABLE_EOF_CHECK, NULL);
      if (!c) c = json_loadb(bin, strlen(bin) < (size_t)len ? strlen(bin) : (size_t)len, 0, NULL);
      *exp = (long long)json_number_value(json_object_get(c, "exp"));
      *nbf = (long long)json_number_value(json_object_get(c, "nbf"));
      json_decref(c);
    }
  }
  free(b64);
  free(bin);
}

static int verify_cached(const char *authz, erpq_principal *p, char *err, size_t errlen) {
  long long now = (long long)time(NULL);
  const char *tok = authz && !strncasecmp(authz, "Bearer ", 7) ? authz + 7 : NULL;
  tok_entry *e = NULL;
  if (tok && strlen(tok) <= 8192) {
    e = &tl_tokens[fnv1a(tok) % TOKEN_CACHE];
    if (e->token && !strcmp(e->token, tok)) {
      if (now > e->exp + S.auth.leeway_s) return snprintf(err, errlen, "token expired"), -1;
      if (e->nbf && now + S.auth.leeway_s < e->nbf) return snprintf(err, errlen, "token not yet valid"), -1;
      *p = e->p;
      return 0;
    }
  }
  if (erpq_auth_verify(&S.auth, authz, now, p, err, errlen)) return -1;
  if (e) {
    pthread_once(&tok_once, tok_init);
    if (!pthread_getspecific(tok_key)) pthread_setspecific(tok_key, tl_tokens);
    free(e->token);
    e->token = strdup(tok);
    e->p = *p;
    token_times(tok, &e->exp, &e->nbf);
    if (!e->exp) { /* Could not read it back: do not cache. */
      free(e->token);
      e->token = NULL;
    }
  }
  return 0;
}

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

static enum MHD_Result handle_v1(struct MHD_Connection *c, req *r, route_match *m) {
  erpq_principal p;
  char aerr[200];
  const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  int authed = verify_cached(authz, &p, aerr, sizeof aerr) == 0;
  erpq_sync *rs = redis_get();
  if (!rs) return redis_unavailable(c, r);
  /* A long-poll resumed after a suspension was counted when it arrived. */
  int rl = r->w ? 0 : rate_check(rs, authed ? p.sub : NULL, r->addr);
  if (rl < 0) return redis_error(c, r, rl);
  if (rl > 0) return send_error(c, r, 429, "rate_limited", "too many requests; retry later", NULL, rl);
  if (!authed) return send_error(c, r, 401, "unauthorized", aerr, NULL, 0);
  if (r->too_big) return send_error(c, r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
  const char *action = route_action(m->route);
  /* Enqueue permission depends on the job name: checked with the body. */
  int enq = m->route == R_ADD || m->route == R_BULK;
  if (enq ? !erpq_policy_allows(&S.policy, p.role, "enqueue", m->queue, NULL) &&
                !erpq_policy_allows(&S.policy, p.role, "enqueue", m->queue, "")
          : !erpq_policy_allows(&S.policy, p.role, action, m->queue, NULL)) {
    /* The first test is for grants without a job; a job-specific grant
     * (accountant: generate-fees only) still lets the request through to the
     * per-job check. */
    int any = 0;
    if (enq) {
      const json_t *grants = json_object_get(json_object_get(S.policy.doc, "roles"), p.role);
      size_t i;
      const json_t *g;
      json_array_foreach(grants, i, g) {
        const char *a = json_string_value(json_object_get(g, "action"));
        const char *q = json_string_value(json_object_get(g, "queue"));
        if (a && q && (!strcmp(a, "*") || !strcmp(a, "enqueue")) && (!strcmp(q, "*") || !strcmp(q, m->queue))) any = 1;
      }
    }
    if (!any) return send_error(c, r, 403, "forbidden", "your role may not do this on this queue", NULL, 0);
  }
  if (!erpq_policy_queue_known(&S.policy, m->queue))
    return send_error(c, r, 404, "queue_not_found", "no such queue", NULL, 0);
  ctx x = {.c = c, .r = r, .m = m, .p = &p, .rs = rs};
  if (erpq_keys_init(&x.k, S.prefix, m->queue))
    return send_error(c, r, 404, "queue_not_found", "no such queue", NULL, 0);
  enum MHD_Result out;
  switch (m->route) {
  case R_ADD: out = h_add(&x); break;
  case R_BULK: out = h_bulk(&x); break;
  case R_JOB: out = h_job(&x); break;
  case R_WAIT: out = h_wait(&x); break;
  case R_DELETE: out = h_delete_retry(&x, 0); break;
  case R_RETRY: out = h_delete_retry(&x, 1); break;
  case R_QUEUE: out = h_queue(&x); break;
  case R_PAUSE: out = h_pause(&x, 1); break;
  default: out = h_pause(&x, 0); break;
  }
  erpq_keys_free(&x.k);
  return out;
}

static enum MHD_Result handle(struct MHD_Connection *c, req *r, const char *url, const char *method) {
  route_match m;
  match_route(url, method, &m);
  r->route = m.route;
  if (m.route == R_NONE) return send_error(c, r, 404, "not_found", "no such route", NULL, 0);
  if (!m.method_ok) return send_error(c, r, 405, "method_not_allowed", "method not allowed on this route", NULL, 0);
  if (r->too_slow) return send_error(c, r, 408, "request_timeout", "the request body took too long", NULL, 0);
  if (m.route == R_HEALTHZ) return send_json(c, r, 200, json_pack("{s:s}", "status", "ok"), 0);
  if (m.route == R_METRICS) {
    size_t len;
    char *t = metrics_text(&len);
    if (!t) return MHD_NO;
    return send_raw(c, r, 200, "text/plain; version=0.0.4", t, len, 0);
  }
  if (m.route == R_READYZ) {
    erpq_sync *rs = redis_get();
    if (!rs) return send_error(c, r, 503, "redis_unavailable", "Redis is unreachable", NULL, 1);
    erpq_cmd cmd;
    erpq_cmd_init(&cmd);
    erpq_cmd_push_str(&cmd, "PING");
    redisReply *rep = NULL;
    char err[512];
    int rc = erpq_sync_pipeline(rs, &cmd, 1, &rep, err, sizeof err);
    erpq_cmd_free(&cmd);
    if (rep) freeReplyObject(rep);
    if (rc) {
      redis_failed(rc);
      return send_error(c, r, 503, "redis_unavailable", "Redis is unreachable", NULL, 1);
    }
    return send_json(c, r, 200, json_pack("{s:s}", "status", "ready"), 0);
  }
  return handle_v1(c, r, &m);
}

/* ---- Header deadline ----------------------------------------------------------------
 * libmicrohttpd closes idle connections, but a client that sends its
 * headers one byte a second is never idle. Every connection is tracked from
 * its start (and again after each answered request, for keep-alive); a
 * reaper thread shuts down the socket of one whose request headers are not
 * complete --header-timeout seconds later. shutdown() only makes the
 * library's next read fail: the library still closes the descriptor itself,
 * and an entry leaves the list (under the lock) before that happens, so a
 * reused descriptor number is never touched. */
typedef struct conn_track {
  struct conn_track *next, *prev;
  int fd;
  int in_request;
  int64_t since_ms;
} conn_track;

static pthread_mutex_t ct_mu = PTHREAD_MUTEX_INITIALIZER;
static conn_track *ct_head;

static conn_track *track_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void track_request(struct MHD_Connection *c, int in_request) {
  conn_track *t = track_of(c);
  if (!t) return;
  pthread_mutex_lock(&ct_mu);
  t->in_request = in_request;
  t->since_ms = erpq_mono_ms();
  pthread_mutex_unlock(&ct_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  (void)cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn_track *t = calloc(1, sizeof *t);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!t || !ci) {
      free(t);
      return;
    }
    t->fd = ci->connect_fd;
    t->since_ms = erpq_mono_ms();
    pthread_mutex_lock(&ct_mu);
    t->next = ct_head;
    if (ct_head) ct_head->prev = t;
    ct_head = t;
    pthread_mutex_unlock(&ct_mu);
    *socket_context = t;
  } else if (*socket_context) {
    conn_track *t = *socket_context;
    pthread_mutex_lock(&ct_mu);
    if (t->prev) t->prev->next = t->next;
    else ct_head = t->next;
    if (t->next) t->next->prev = t->prev;
    pthread_mutex_unlock(&ct_mu);
    free(t);
    *socket_context = NULL;
  }
}

static void *reaper_main(void *arg) {
  (void)arg;
  while (!atomic_load(&S.stopping)) {
    usleep(250000);
    int64_t limit = erpq_mono_ms() - (int64_t)S.header_timeout_s * 1000;
    pthread_mutex_lock(&ct_mu);
    for (conn_track *t = ct_head; t; t = t->next)
      if (!t->in_request && t->since_ms < limit && t->fd >= 0) {
        shutdown(t->fd, SHUT_RDWR);
        t->fd = -1;
      }
    pthread_mutex_unlock(&ct_mu);
  }
  return NULL;
}

/* The client's network for the access log: an address can be personal
 * data, its /24 (IPv4) or /48 (IPv6) network tells operations enough. */
static void mask_addr(const struct sockaddr *sa, char *out, size_t n) {
  snprintf(out, n, "unknown");
  if (!sa) return;
  char buf[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    struct in_addr a = ((const struct sockaddr_in *)sa)->sin_addr;
    a.s_addr &= htonl(0xFFFFFF00u);
    if (inet_ntop(AF_INET, &a, buf, sizeof buf)) snprintf(out, n, "%s/24", buf);
  } else if (sa->sa_family == AF_INET6) {
    struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
    memset(a.s6_addr + 6, 0, 10);
    if (inet_ntop(AF_INET6, &a, buf, sizeof buf)) snprintf(out, n, "%s/48", buf);
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls) {
  (void)cls, (void)version;
  req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->start_ms = erpq_mono_ms();
    r->start_us = mono_us();
    track_request(c, 1);
    r->conn = c;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->addr, sizeof r->addr);
      else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->addr, sizeof r->addr);
    }
    if (!r->addr[0]) strcpy(r->addr, "unknown");
    mask_addr(ci ? ci->client_addr : NULL, r->net, sizeof r->net);
    *con_cls = r;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    /* An oversized body up to DISCARD_MAX is read and dropped (within the
     * body deadline) so that the client is sure to read our 413; a larger
     * one is refused at once and the connection closed. */
    if (cl && strtoull(cl, NULL, 10) > MAX_BODY) r->too_big = 1;
    if (cl && strtoull(cl, NULL, 10) > DISCARD_MAX) {
      route_match m;
      match_route(url, method, &m);
      r->route = m.route;
      return send_error(c, r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
    }
    return MHD_YES;
  }
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
      route_match m;
      match_route(url, method, &m);
      r->route = m.route;
      metrics_record(r->route, 408, (double)(mono_us() - r->start_us) / 1e6);
      access_log(r, method, url, 408);
      return MHD_NO;
    }
    if (r->too_big || r->len + *upload_size > MAX_BODY) {
      r->too_big = 1;
      *upload_size = 0;
      return MHD_YES;
    }
    if (r->len + *upload_size + 1 > r->cap) {
      size_t nc = r->cap ? r->cap : 4096;
      while (nc < r->len + *upload_size + 1) nc *= 2;
      char *nb = realloc(r->body, nc);
      if (!nb) return MHD_NO;
      r->body = nb;
      r->cap = nc;
    }
    memcpy(r->body + r->len, upload_data, *upload_size);
    r->len += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->too_big) {
    route_match m;
    match_route(url, method, &m);
    r->route = m.route;
    return send_error(c, r, 413, "payload_too_large", "the request body is over 1 MiB", NULL, 0);
  }
  return handle(c, r, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)toe;
  req *r = *con_cls;
  if (!r) return;
  track_request(c, 0); /* Keep-alive: the next request's headers are timed from now. */
  *con_cls = NULL;
  if (r->w) {
    pthread_mutex_lock(&w_mu);
    if (!r->w->fired) {
      waiter *w = r->w;
      if (w->prev) w->prev->next = w->next;
      else w_head = w->next;
      if (w->next) w->next->prev = w->prev;
      w_count--;
    }
    pthread_mutex_unlock(&w_mu);
    free(r->w->queue);
    free(r->w->id);
    free(r->w);
  }
  free(r->body);
  free(r);
}

/* The access log runs from the URI callback's context at completion: MHD
 * gives the method and URL to the request handler only, so we log there via
 * this wrapper. */
static enum MHD_Result on_request_logged(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                         const char *version, const char *upload_data, size_t *upload_size,
                                         void **con_cls) {
  enum MHD_Result res = on_request(cls, c, url, method, version, upload_data, upload_size, con_cls);
  req *r = *con_cls;
  if (r && r->answered > 0) {
    metrics_record(r->route, r->answered, (double)(mono_us() - r->start_us) / 1e6);
    access_log(r, method, url, r->answered);
    r->answered = -r->answered; /* Logged; still answered. */
  }
  return res;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  json_t *o = json_pack("{s:s,s:s,s:s}", "level", "warn", "event", "http.server", "message", msg);
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (line) {
    flockfile(stdout);
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
    free(line);
  }
}

/* ---- main ----------------------------------------------------------------------- */

static const char serve_usage[] =
    "Usage: erpq-producer [--redis URL] [--prefix P] serve [OPTIONS]\n"
    "\n"
    "Runs the HTTP API (see schemas/openapi.yaml) until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen HOST:PORT       (env ERPQ_HTTP_ADDR; default 127.0.0.1:8080)\n"
    "  --roles FILE             roles and queues (env ERPQ_ROLES_FILE; default schemas/roles.json)\n"
    "  --schemas DIR            job data schemas (env ERPQ_SCHEMA_DIR; default schemas/jobs)\n"
    "  --jwt-rs256-key FILE     also accept RS256 tokens signed for this PEM public key\n"
    "                           (env ERPQ_JWT_PUBLIC_KEY_FILE); HS256 uses the secret in\n"
    "                           ERPQ_JWT_SECRET_FILE (or ERPQ_JWT_SECRET), at least 32 bytes\n"
    "  --jwt-leeway S           clock skew allowed on exp/nbf (default 30)\n"
    "  --threads N              event-loop threads (env ERPQ_HTTP_THREADS; default 8)\n"
    "  --max-connections N      open connections in all (default 1024)\n"
    "  --per-ip-connections N   open connections per client address (default 256)\n"
    "  --client-timeout S       close a connection idle this long (default 10)\n"
    "  --header-timeout S       the request line and headers must arrive within S (default 10)\n"
    "  --body-timeout S         the whole request body must arrive within S (default 10)\n"
    "  --rate-subject N         requests per minute per token subject (env ERPQ_RATE_SUBJECT;\n"
    "                           default 6000; 0 = off)\n"
    "  --rate-ip N              requests per minute per client address (env ERPQ_RATE_IP;\n"
    "                           default 12000; 0 = off)\n"
    "  --redis-timeout MS       connect and command timeout per Redis call (default 1000)\n";

static int parse_listen(const char *s, struct sockaddr_in *sa) {
  const char *colon = strrchr(s, ':');
  if (!colon) return -1;
  char host[128];
  size_t hl = (size_t)(colon - s);
  if (hl >= sizeof host) return -1;
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) return -1;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (!hl || !strcmp(host, "*")) sa->sin_addr.s_addr = htonl(INADDR_ANY);
  else if (!strcmp(host, "localhost")) sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) return -1;
  return 0;
}

static int int_opt(const char *name, const char *v, long min, long max, long *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < min || x > max) {
    fprintf(stderr, "erpq-producer serve: %s must be an integer from %ld to %ld, got '%s'\n", name, min, max, v);
    return -1;
  }
  *out = x;
  return 0;
}

int erpq_http_main(const char *redis_url, const char *prefix, int argc, char **argv) {
  const char *listen = erpq_env("ERPQ_HTTP_ADDR", "127.0.0.1:8080");
  char roles_def[4096], schemas_def[4096];
  erpq_schema_default_path("ERPQ_ROLES_FILE", "roles.json", roles_def, sizeof roles_def);
  erpq_schema_default_path("ERPQ_SCHEMA_DIR", "jobs", schemas_def, sizeof schemas_def);
  const char *roles = roles_def, *schemas = schemas_def;
  const char *rs_key = getenv("ERPQ_JWT_PUBLIC_KEY_FILE");
  long threads = 8, maxconn = 1024, perip = 256, client_to = 10, body_to = 10, header_to = 10, leeway = 30, rto = 1000;
  long rate_sub = 6000, rate_ip = 12000;
  if (getenv("ERPQ_HTTP_THREADS") && int_opt("ERPQ_HTTP_THREADS", getenv("ERPQ_HTTP_THREADS"), 1, 256, &threads)) return 2;
  if (getenv("ERPQ_RATE_SUBJECT") && int_opt("ERPQ_RATE_SUBJECT", getenv("ERPQ_RATE_SUBJECT"), 0, 100000000, &rate_sub)) return 2;
  if (getenv("ERPQ_RATE_IP") && int_opt("ERPQ_RATE_IP", getenv("ERPQ_RATE_IP"), 0, 100000000, &rate_ip)) return 2;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(serve_usage, stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "erpq-producer serve: unknown option or missing value: %s\n", a);
      return 2;
    }
    const char *v = argv[++i];
    int bad = 0;
    if (!strcmp(a, "--listen")) listen = v;
    else if (!strcmp(a, "--roles")) roles = v;
    else if (!strcmp(a, "--schemas")) schemas = v;
    else if (!strcmp(a, "--jwt-rs256-key")) rs_key = v;
    else if (!strcmp(a, "--jwt-leeway")) bad = int_opt(a, v, 0, 300, &leeway);
    else if (!strcmp(a, "--threads")) bad = int_opt(a, v, 1, 256, &threads);
    else if (!strcmp(a, "--max-connections")) bad = int_opt(a, v, 1, 100000, &maxconn);
    else if (!strcmp(a, "--per-ip-connections")) bad = int_opt(a, v, 0, 100000, &perip);
    else if (!strcmp(a, "--client-timeout")) bad = int_opt(a, v, 1, 3600, &client_to);
    else if (!strcmp(a, "--body-timeout")) bad = int_opt(a, v, 1, 3600, &body_to);
    else if (!strcmp(a, "--header-timeout")) bad = int_opt(a, v, 1, 3600, &header_to);
    else if (!strcmp(a, "--rate-subject")) bad = int_opt(a, v, 0, 100000000, &rate_sub);
    else if (!strcmp(a, "--rate-ip")) bad = int_opt(a, v, 0, 100000000, &rate_ip);
    else if (!strcmp(a, "--redis-timeout")) bad = int_opt(a, v, 10, 60000, &rto);
    else {
      fprintf(stderr, "erpq-producer serve: unknown option %s (see serve --help)\n", a);
      return 2;
    }
    if (bad) return 2;
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
  if (erpq_auth_init(&S.auth, rs_key, (int)leeway, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  if (erpq_policy_load(&S.policy, roles, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  if (erpq_schema_set_load(schemas, &S.schemas, err, sizeof err)) {
    fprintf(stderr, "erpq-producer serve: %s\n", err);
    return 2;
  }
  int rc = erpq_scripts_init();
  if (rc) {
    fprintf(stderr, "erpq-producer serve: cannot load the Lua scripts: %s\n", erpq_strerror(rc));
    return 5;
  }
  m_enqueued = json_object();

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  S.d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                         ntohs(sa.sin_port), NULL, NULL, on_request_logged, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)maxconn,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)perip,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)client_to,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
                         MHD_OPTION_END);
  if (!S.d) {
    fprintf(stderr, "erpq-producer serve: cannot listen on %s: %s\n", listen, strerror(errno));
    return 4;
  }
  pthread_t sub, reaper;
  pthread_create(&sub, NULL, subscriber_main, NULL);
  pthread_create(&reaper, NULL, reaper_main, NULL);
  {
    json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:i}", "level", "info", "event", "http.listening", "addr", listen,
                          "threads", (int)threads, "schemas", (int)erpq_schema_set_count(S.schemas));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    printf("%s\n", line);
    fflush(stdout);
    free(line);
  }
  int sig = 0;
  sigwait(&set, &sig);
  atomic_store(&S.stopping, 1);
  pthread_join(sub, NULL); /* Its exit fires every waiter. */
  pthread_join(reaper, NULL);
  for (int i = 0; i < 50; i++) {
    pthread_mutex_lock(&w_mu);
    int left = w_count;
    pthread_mutex_unlock(&w_mu);
    if (!left) break;
    fire_all(0);
    usleep(20000);
  }
  usleep(100000); /* Let resumed long-polls answer. */
  MHD_stop_daemon(S.d);
  printf("{\"level\":\"info\",\"event\":\"http.stopped\"}\n");
  fflush(stdout);
  erpq_schema_set_free(S.schemas);
  erpq_policy_free(&S.policy);
  erpq_auth_free(&S.auth);
  json_decref(m_enqueued);
  return 0;
}
