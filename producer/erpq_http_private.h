/*
 * erpq_http_private.h - the inside of `erpq-producer serve` (erpq_http.h is
 * its entry point): the structures every file of the HTTP API shares, their
 * states and invariants, and the functions the files call in one another.
 * Nothing outside producer/erpq_http*.c includes it.
 *
 * Files, one concern each:
 *   erpq_http.c          erpq_http_main(): options to a server, the listening
 *                        sockets, the loops' threads, the signals.
 *   erpq_http_options.c  the options (erpq_http_options.h).
 *   erpq_http_listen.c   --listen to listening sockets (erpq_http_listen.h).
 *   erpq_http_loop.c     a libmicrohttpd daemon in external epoll mode on a
 *                        libuv loop: init, run, sweep, stop, free.
 *   erpq_http_conn.c     libmicrohttpd's callbacks: connections and their
 *                        header deadline, a request's body, its answer.
 *   erpq_http_redis.c    the Redis calls in flight and their deadline.
 *   erpq_http_route.c    routes, dispatch, the queue key cache.
 *   erpq_http_limits.c   the token and the rate limits, in their order.
 *   erpq_http_jobs.c     job views, enqueue, read, delete, retry, counts,
 *                        pause and resume.
 *   erpq_http_wait.c     long-poll waiters and the finish-event subscriber.
 *   erpq_http_download.c the report download routes: their decisions
 *                        (erpq_http_files.h) on the loop, the storage look
 *                        on libuv's thread pool, the answer (a redirect, or
 *                        a file streamed by libmicrohttpd).
 *   erpq_http_answer.c   answers (JSON, errors) and the access log.
 *
 * Loops. --threads N (default 1) event loops (hloop), each a libuv loop on
 * a thread of its own holding: one libmicrohttpd daemon in "external" epoll
 * mode per listening socket (usually one; a host name may give several;
 * the sockets are shared by all loops), whose epoll descriptors the loop
 * watches, with one timer for the earliest of their timeouts, every loop
 * turn running them all; one asynchronous Redis connection for commands
 * and one for PSUBSCRIBE (core/erpq_conn, hiredis on this loop); and a
 * 100 ms sweep timer. Nothing in a loop blocks: a slow
 * client costs a socket and a little memory, and every Redis call is
 * asynchronous. One iteration reads every ready connection, starts all
 * their Redis calls (written together), and answers every reply that came
 * back, without a thread switch.
 *
 * A request (req). libmicrohttpd parses it and calls http_on_request(); the
 * handler answers at once (health, 4xx found without Redis) or starts one
 * Redis call and the connection is suspended. The reply's step (step_fn)
 * either answers (the answer is prepared in r->resp, the connection resumed,
 * and the answer queued when libmicrohttpd calls back) or starts the next
 * call. A request has at most one call in flight; the calls of all requests
 * in hand go out in one write per loop turn and their replies come back
 * together, so a burst of requests costs Redis one read and us one write.
 * Invariants: a suspended request is calling Redis (or, for a download,
 * looking at the object on the thread pool) or registered as a
 * waiter, never neither; a request is freed only by libmicrohttpd's
 * completion callback, or by its reply if the connection ended during the
 * call (r->dead, only at shutdown); a request answers at most once (a
 * second answer is dropped).
 *
 * Redis failures. A call sent while the connection is down answers 503
 * (Retry-After: 1) at once. Calls are listed oldest first (L->calls_head):
 * when the oldest is older than --redis-timeout the sweep drops the
 * connection, which answers every call in flight 503, and erpq_conn
 * reconnects with backoff.
 *
 * Long-poll. GET .../wait registers its request in the loop's waiter list,
 * then reads the job; unfinished, it stays suspended with no call in flight
 * until a finish event of its job arrives on the subscriber, its deadline
 * or the 5 s watchdog passes (as bull's job.finished() does), or the
 * subscriber reconnects; it then reads the job again. Redis is never polled
 * in a loop.
 *
 * Request order: route (404/405), body size (413 over 1 MiB), rate limits
 * (429; counted in Redis per fixed one-minute window, per client address
 * for every request and per token subject once the token is valid, so
 * several API processes share them; an invalid token still counts against
 * its address; behind --trusted-proxies the address comes from
 * X-Forwarded-For, see erpq_http_client.h), token (401), permission (403),
 * queue (404), JSON (400), job permission and school (403), validation
 * (422), then the operation. A plain enqueue counts inside its add script;
 * if it is answered before the add, the answer waits for the count (see
 * http_handle_v1()).
 *
 * Idempotency-Key: the job id becomes "idem-" + SHA-256(sub, queue, key);
 * a key whose job exists answers 200 with it, and bull's own duplicate-id
 * check makes two concurrent first uses add one job (both answer 201 with
 * the same id). Once the job is removed (removeOnComplete, DELETE) the key
 * can add again. Tenant scoping: a token with school_id only reaches jobs
 * whose data.schoolId equals it; another school's job answers 404.
 *
 * Slow clients: a connection idle for --client-timeout seconds is closed;
 * request line and headers must arrive within --header-timeout seconds (the
 * sweep shuts such sockets down), a body within --body-timeout seconds (the
 * connection is cut, logged as 408); connections are capped in total and
 * per client address (per loop and listening socket). With several
 * listening sockets each daemon has the loop's cap, and an accept policy
 * holds the loop's connections over all daemons (L->conns, counted by the
 * connection callback) to it.
 *
 * Stopping: SIGINT/SIGTERM reach the main thread, which wakes every loop:
 * it stops accepting, fires its waiters (they answer with the state they
 * read), waits for calls in flight (at most 2 s, then fails them; a
 * download still waiting for its storage look answers 503, and the loop
 * ends once the look, which cannot be cut off, gives up), stops
 * its daemons, closes its Redis connections and handles; the main thread
 * joins the loops and checks that each closed with no live handle.
 *
 * Ownership. The server (configuration, auth, policy, schemas) is filled
 * by erpq_http_main() before any loop runs and only read afterwards, by
 * every loop thread. Everything in an hloop (its daemons, connections,
 * requests, key cache, log batch) belongs to that loop's thread and is
 * touched by no other, except stop_async, which the main thread signals.
 * A req is owned by its loop from the first callback of its request to
 * http_on_completed() (or its last reply); its body, jobs, responses and
 * own keys are its own. A conn_track is owned by the loop from the
 * connection's start to its close notification. Replies handed to steps
 * are borrowed. No function here is thread-safe beyond this split. Shared
 * by the loops besides the server: the metrics (erpq_http_metrics.h,
 * atomics) and the listening sockets; the verified-token cache
 * (erpq_http_auth.h) is per thread.
 */
#ifndef ERPQ_HTTP_PRIVATE_H
#define ERPQ_HTTP_PRIVATE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "erpq_buf.h"
#include "erpq_bull.h"
#include "erpq_config.h"
#include "erpq_conn.h"
#include "erpq_http_auth.h"
#include "erpq_http_client.h"
#include "erpq_http_listen.h"
#include "erpq_jobtypes.h"
#include "erpq_jsonschema.h"
#include "erpq_schemas.h"
#include "erpq_storage.h"

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

/* ---- The server ------------------------------------------------------------------
 * Its configuration, tokens, roles and schemas: filled once by
 * erpq_http_main() before any loop runs, read-only afterwards, shared by
 * every loop (each hloop points at it). */

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
  /* Report files (erpq_http_download.c): NULL when neither ERPQ_S3_BUCKET
   * nor ERPQ_STORAGE_DIR is set, and the download routes answer 503. */
  erpq_storage *storage;
  const char *bucket; /* Its S3 bucket (in storage_conf), NULL for a directory. */
  erpq_storage_conf storage_conf;
  int64_t link_ttl_s;
} server;

static inline int64_t http_mono_us(void) {
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
  char key[1100]; /* R_FILES: the storage key (the path after /v1/files/). */
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
  json_t *idem_body; /* With an Idempotency-Key: the request, to compare with the job it names. */
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

/* One libmicrohttpd daemon of a loop, on one listening socket. */
typedef struct hdaemon {
  struct MHD_Daemon *d;
  uv_poll_t poll; /* Watches the daemon's epoll descriptor. */
} hdaemon;

struct hloop {
  const server *srv; /* The server this loop serves (borrowed, read-only). */
  int index;
  uv_loop_t loop;
  pthread_t thread;
  hdaemon ds[ERPQ_LISTEN_MAX]; /* One per listening socket. */
  int nds;
  int conns;         /* Connections open now, over all its daemons. */
  unsigned max_conn; /* Their cap (each daemon's own cap is the same). */
  uv_timer_t mhd_timer;
  uv_check_t check;
  uv_timer_t sweep;
  uv_async_t stop_async;
  erpq_conn redis;              /* Commands. */
  erpq_conn sub;                /* PSUBSCRIBE to finish events, for long-polls. */
  req *calls_head, *calls_tail; /* Requests with a call in flight, oldest first. */
  req *waiters;
  struct dl_look *looks; /* Download storage looks in flight (erpq_http_download.c). */
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
  erpq_buf log;   /* Access-log lines of this loop turn. */
};

/* Connection limits, per loop. */
typedef struct loop_limits {
  unsigned max_conn, per_ip, idle_s;
} loop_limits;

/* ---- erpq_http_loop.c ---------------------------------------------------------- */

/* Sets up loop L of server srv (borrowed: it must outlive the loop) with
 * one daemon on each of the nfds listening sockets fds (shared by all
 * loops; nothing runs until uv_run). Returns 0, or -1 with err and nothing
 * left to free. */
int http_loop_init(hloop *L, const server *srv, int index, const int *fds, int nfds,
                   const loop_limits *lim, char *err, size_t errlen);
/* The loop thread's body: runs L until http_loop_finish() closed it. */
void *http_loop_main(void *arg);
/* Ends the loop: stops the daemon (every connection is closed), closes both
 * Redis connections gracefully and every handle; uv_run() then returns. */
void http_loop_finish(hloop *L);
/* Frees what the loop kept once it has ended. Returns uv_loop_close()'s
 * result: 0 when no handle was left open. */
int http_loop_free(hloop *L);

/* ---- erpq_http_conn.c: libmicrohttpd's callbacks (cls is the hloop) ------------- */

void http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_size, void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
void http_mhd_log(void *cls, const char *fmt, va_list ap);
/* Frees a request and everything it holds. */
void http_req_free(req *r);

/* ---- erpq_http_answer.c ----------------------------------------------------------- */

/* Writes the loop's batch of access-log lines. */
void http_log_flush(hloop *L);
/* Appends the access-log line of an answered request. */
void http_access_log(req *r, const char *method, const char *path, int status);
/* Resumes r's connection if it was suspended. */
void http_resume(req *r);
/* Prepares the answer (body malloc'ed, ownership taken) and resumes the
 * connection if it was waiting. */
void http_answer_raw(req *r, int status, const char *ctype, char *body, size_t len,
                     int retry_after);
/* Answers JSON o (reference stolen). */
void http_answer_json(req *r, int status, json_t *o, int retry_after);
/* Answers {"error":{code,message[,details]}}; details (stolen) may be NULL. */
void http_answer_error(req *r, int status, const char *code, const char *msg, json_t *details,
                       int retry_after);
/* 503 redis_unavailable with Retry-After: 1. */
void http_redis_unavailable(req *r);
/* Answers a reply that is missing (503) or an error (500). Returns 1 when it
 * answered, 0 when the reply is a usable one. */
int http_reply_failed(req *r, const redisReply *reply);

/* ---- erpq_http_redis.c -------------------------------------------------------------- */

/* Sends cmd (ownership taken) for r; next runs with the reply. Returns 0, or
 * answers 503 itself and returns -1 when Redis is not connected. */
int http_redis_call(req *r, erpq_cmd *cmd, step_fn next);
/* Sends n plain commands as MULTI ... EXEC: next gets EXEC's reply, an array
 * of their n replies. cmds are freed. */
int http_redis_call_tx(req *r, erpq_cmd *cmds, size_t n, step_fn next);

/* ---- erpq_http_route.c ---------------------------------------------------------------- */

/* Matches url and method to a route (m->route R_NONE when none). */
void http_match_route(const char *url, const char *method, route_match *m);
/* Routes and answers (or starts) a request whose body has arrived. */
void http_handle(req *r, const char *url, const char *method);
/* After the rate limits: token, permission, queue, then the route. */
void http_v1_dispatch(req *r);

/* ---- erpq_http_limits.c ----------------------------------------------------------------- */

/* The token and the rate limits of a /v1 request, then http_v1_dispatch(). */
void http_handle_v1(req *r);
/* 429 rate_limited, Retry-After the end of the window. */
void http_rate_limited(req *r);

/* ---- erpq_http_jobs.c ------------------------------------------------------------------- */

/* Starts reading job id's state; next parses the reply with http_parse_view(). */
int http_view_call(req *r, const char *id, step_fn next);
/* A state reply as a job view (NULL: no such job, or another school's when
 * p is scoped to a school). */
json_t *http_parse_view(const redisReply *reply, const char *id, const erpq_principal *p);
/* 1 if a view's state is completed or failed. */
int http_is_finished(const json_t *view);
/* 404 job_not_found. */
void http_not_found(req *r);
/* The handlers and steps the dispatch starts. */
void http_h_add(req *r);
void http_h_bulk(req *r);
void http_h_queue(req *r);
void http_job_viewed(req *r, redisReply *reply);

/* ---- erpq_http_list.c: the jobs of a state, a job's log lines ---------------------- */
void http_h_list(req *r);
void http_h_logs(req *r);
void http_dr_viewed(req *r, redisReply *reply);
void http_paused_done(req *r, redisReply *reply);

/* ---- erpq_http_wait.c -------------------------------------------------------------------- */

/* GET .../wait: registers r as a waiter and reads its job. */
void http_h_wait(req *r);
/* ---- erpq_http_download.c ----------------------------------------------------------- */

/* GET .../jobs/{id}/download: reads the job, then (off the loop) the
 * object; answers 302 to a fresh link, or 404/409/410/503. While the
 * object is looked at, r->calling is set (the request is suspended and
 * freed by the look's end if its connection went away meanwhile). */
void http_h_download(req *r);
/* GET /v1/files/{key}?exp&name&sig: a signed local link; no token. */
void http_h_file(req *r);
/* At the end of a stop: answers 503 to every download still waiting for
 * its storage look (the look finishes on the pool and is then dropped), so
 * that no connection is left suspended when the daemons stop. */
void http_downloads_abandon(hloop *L);

/* Takes r off its loop's waiter list, if it is on it. */
void http_waiter_remove(req *r);
/* Fires every waiter of L, or only those past their deadline. */
void http_fire_all(hloop *L, int only_due);
/* The subscriber's on_ready: PSUBSCRIBE to the finish events. */
void http_sub_ready(erpq_conn *c);

#endif
