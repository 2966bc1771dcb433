/*
 * erpq_bull.h - the Bull 4.16.5 queue protocol, without I/O.
 *
 * This module knows bull's key names, field encodings and our Lua scripts
 * (core/lua), and turns each queue operation into an erpq_cmd and each reply
 * (a hiredis redisReply, borrowed) back into C values. It never sends
 * anything: the libuv worker sends its commands with hiredis's async API and
 * the CLI with the synchronous one, so both speak exactly the same protocol.
 *
 * Keys. A queue Q under prefix B owns keys "B:Q:<suffix>"; P = "B:Q:" is the
 * base of job hashes ("P<id>"), locks ("P<id>:lock") and logs. A hash-tagged
 * prefix such as "{erp}" keeps all of a queue's keys in one Redis Cluster
 * slot. erpq_keys holds every name once, computed at start.
 *
 * Jobs. A job fetched by a worker is an erpq_job: its id, name, data and
 * options as stored, plus the counters bull keeps in the hash. The worker
 * owns it from fetch until it has sent the job's finish.
 *
 * Finishing. A worker reports each job as one erpq_finish entry (completed,
 * failed for good, retried now or delayed); erpq_bull_step() batches the
 * finishes of many jobs with the fetch of the next ones into one script
 * call, which leaves Redis as the equivalent sequence of bull calls would.
 */
#ifndef ERPQ_BULL_H
#define ERPQ_BULL_H

#include <hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_cmd.h"
#include "erpq_opts.h"

#define ERPQ_DEFAULT_JOB_NAME "__default__"

typedef struct erpq_keys {
  char *queue;   /* The queue name. */
  char *prefix;  /* The key prefix, e.g. "bull". */
  char *base;    /* P = "<prefix>:<queue>:". */
  size_t base_len;
  char *wait, *active, *paused, *meta_paused, *meta, *id, *delayed, *priority,
      *completed, *failed, *stalled, *stalled_check, *limiter, *repeat,
      *progress, *drained, *waiting, *resumed, *paused_ch, *de;
} erpq_keys;

/* Fills k for queue under prefix. Returns 0 or -ENOMEM / ERPQ_E_ARG. */
int erpq_keys_init(erpq_keys *k, const char *prefix, const char *queue);
void erpq_keys_free(erpq_keys *k);
/* Returns "P<id><suffix>" in a malloc'ed string owned by the caller. */
char *erpq_keys_job(const erpq_keys *k, const char *id, const char *suffix);

/* ---- Adding jobs -------------------------------------------------------- */

/* A job ready to be added, after bull's defaults. Strings are owned by the
 * struct and released by erpq_newjob_free(). */
typedef struct erpq_newjob {
  char *custom_id;     /* NULL for an automatic id. */
  char *name;
  char *data;          /* JSON text. */
  char *opts;          /* JSON text, after defaults. */
  int64_t timestamp, delay, due, priority;
  int lifo;
  char *debounce_id;   /* NULL when not debounced. */
  int64_t debounce_ttl; /* -1 when none. */
  /* Repeatable jobs: the repeat key and the millis the repeat zset gets. */
  char *repeat_key;
  int64_t repeat_ms;
} erpq_newjob;

/* Prepares a job as Queue.add(name, data, opts) would. data_json may be
 * NULL ("{}"); opts may be NULL. A repeat option is resolved to its first
 * occurrence. Returns 0, or 1 when a repeatable job has no occurrence left
 * (nothing to add), or a negative error with a message. */
int erpq_newjob_prepare(erpq_newjob *j, const char *name, const char *data_json,
                        const json_t *opts, int64_t now_ms, char *err, size_t errlen);
void erpq_newjob_free(erpq_newjob *j);

/* Builds the add of n prepared jobs (one script call, all-or-nothing as a
 * script is). All jobs of a call that carry a repeat key must share it; the
 * first add of a repeatable registers it unconditionally (check_repeat 0),
 * a worker's next occurrence only if still registered (check_repeat 1).
 * The reply is parsed by erpq_bull_parse_ids(). */
int erpq_bull_add(erpq_cmd *c, const erpq_keys *k, const char *token,
                  const erpq_newjob *jobs, size_t n, int check_repeat);
/* The same add behind the HTTP API's rate limits: guard->n request counters
 * (keys, their limits per window, and the TTL a new counter gets) are
 * counted first, in the same script call; when any is over its limit
 * nothing is added and Redis answers an error whose code (first word) is
 * ERPQ_RATE_LIMITED_CODE: test it with erpq_bull_rate_limited().
 * The counter keys must hash to the queue's slot on a cluster (use a
 * hash-tagged prefix). guard may be NULL (erpq_bull_add). */
#define ERPQ_GUARD_MAX 2
#define ERPQ_RATE_LIMITED_CODE "ERPQ_RATE_LIMITED"
typedef struct erpq_rate_guard {
  int n;
  const char *keys[ERPQ_GUARD_MAX];
  int64_t limits[ERPQ_GUARD_MAX];
  int ttl_s;
} erpq_rate_guard;
int erpq_bull_add_guarded(erpq_cmd *c, const erpq_keys *k, const char *token,
                          const erpq_newjob *jobs, size_t n, int check_repeat,
                          const erpq_rate_guard *guard);
/* The add of n jobs whose reply also says which were added now (a custom
 * id already in the queue is not added again): parse it with
 * erpq_bull_parse_added(). */
int erpq_bull_add_report(erpq_cmd *c, const erpq_keys *k, const char *token,
                         const erpq_newjob *jobs, size_t n);
/* ids[i] (malloc'ed) and added[i] (1 new, 0 existed) of such a reply.
 * Returns the number of jobs or a negative error. */
int erpq_bull_parse_added(const redisReply *r, char **ids, int *added, size_t n);
/* 1 if r is a guarded add's refusal. */
int erpq_bull_rate_limited(const redisReply *r);

/* Copies the ids of an add reply into ids[0..n) (each malloc'ed, owned by
 * the caller). Returns the number of ids (0 when a repeatable was removed),
 * or a negative error. */
int erpq_bull_parse_ids(const redisReply *r, char **ids, size_t n);

/* ---- Fetching and finishing -------------------------------------------- */

typedef struct erpq_limiter {
  int64_t max;          /* 0 = no limiter. */
  int64_t duration_ms;
  int bounce_back;
  char group_key[64];   /* "" = no group key. */
} erpq_limiter;

typedef enum erpq_finish_kind {
  ERPQ_FIN_COMPLETED = 'c',
  ERPQ_FIN_FAILED = 'f',
  ERPQ_FIN_RETRY = 'r',
  ERPQ_FIN_DELAYED = 'd',
  ERPQ_FIN_POSTPONED = 'p', /* Back to delayed without using an attempt
                             * (erpq_job_delay): no attemptsMade,
                             * failedReason or stacktrace change. */
} erpq_finish_kind;

/* One finished job. Strings are borrowed: they must stay valid until the
 * command has been built. */
typedef struct erpq_finish {
  erpq_finish_kind kind;
  const char *id;
  const char *value;       /* returnvalue JSON, or the failure message. */
  const char *stacktrace;  /* JSON array, for failures. */
  int attempts_made;       /* For failures: the new count. */
  erpq_keep keep;          /* For completed/failed. */
  int lifo;                /* For retry. */
  int64_t delay_score;     /* For delayed and postponed: due*4096 + (id & 0xfff). */
  int has_deid;            /* The job hash has a debounce id. */
} erpq_finish;

typedef struct erpq_job {
  char *id, *name, *data, *opts_json;
  json_t *opts;            /* Parsed opts, or NULL if they did not parse. */
  erpq_jobopts o;          /* Valid when opts parsed (opts_err empty). */
  char opts_err[160];
  int attempts_made;
  int64_t timestamp, delay, priority, stalled_counter;
  char *deid;
  char *stacktrace;        /* JSON array of earlier failures, or NULL. */
} erpq_job;

void erpq_job_free(erpq_job *j);

/* Builds one step: the finishes, then a fetch of up to nfetch jobs (the
 * first being explicit_id when a blocking pop already moved it; NULL
 * otherwise). lim may be NULL. */
int erpq_bull_step(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t lock_ms,
                   int64_t now_ms, int nfetch, const char *explicit_id,
                   const erpq_limiter *lim, const erpq_finish *fin, size_t nfin);

typedef struct erpq_step_result {
  int *codes;        /* One per finish; malloc'ed. */
  size_t ncodes;
  erpq_job *jobs;    /* Fetched jobs; malloc'ed array. */
  size_t njobs;
  int drained;
} erpq_step_result;

/* Parses a step reply; the result is owned by the caller and released with
 * erpq_step_result_free() (the jobs array elements must be freed or moved
 * out first; free() on the array is done by that call). */
int erpq_bull_parse_step(const redisReply *r, erpq_step_result *out);
void erpq_step_result_free(erpq_step_result *s);

/* Computes a job's finish after a failure, as bull's moveToFailed: the
 * attempt count, whether it retries (now or after a backoff delay) or fails
 * for good. backoff_ms is the delay the job's backoff strategy gives (see
 * erpq_backoff.h) or -1 for "do not retry"; discard forces a final failure. */
void erpq_bull_fail_decision(const erpq_job *j, int64_t backoff_ms, int discard,
                             int64_t now_ms, erpq_finish *f);
/* The finish of a job completed with returnvalue JSON val (borrowed). */
void erpq_bull_complete(const erpq_job *j, const char *val, erpq_finish *f);
/* The finish that puts j back into delayed until due_ms without using an
 * attempt (bull's moveToDelayed alone: attemptsMade, failedReason and
 * stacktrace stay as they are). */
void erpq_bull_postpone(const erpq_job *j, int64_t due_ms, erpq_finish *f);

/* The event JSON of a finish ({"jobId":..,"val":..}); malloc'ed. */
char *erpq_bull_finish_event(const char *id, const char *val);

/* The delayed-set score of a job due at due_ms. */
int64_t erpq_bull_delay_score(const char *id, int64_t due_ms);

/* ---- Worker housekeeping ----------------------------------------------- */

int erpq_bull_extend(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t lock_ms,
                     const char *const *ids, size_t n);
int erpq_bull_stalled(erpq_cmd *c, const erpq_keys *k, int max_stalled, int64_t now_ms,
                      int64_t interval_ms);
int erpq_bull_delayed(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t now_ms);
int erpq_bull_handback(erpq_cmd *c, const erpq_keys *k, const char *token,
                       const char *const *ids, size_t n);
int erpq_bull_unclaimed(erpq_cmd *c, const erpq_keys *k, const char *id);
int erpq_bull_progress(erpq_cmd *c, const erpq_keys *k, const char *id, const char *progress_json);
int erpq_bull_log(erpq_cmd *c, const erpq_keys *k, const char *id, const char *row);
/* CLIENT SETNAME "<prefix>:<base64(queue)>", as bull names its workers. */
int erpq_bull_setname(erpq_cmd *c, const erpq_keys *k);
/* BRPOPLPUSH wait active timeout_s. */
int erpq_bull_brpoplpush(erpq_cmd *c, const erpq_keys *k, double timeout_s);

/* ---- Administration ------------------------------------------------------ */

int erpq_bull_pause(erpq_cmd *c, const erpq_keys *k, int pause);
int erpq_bull_promote(erpq_cmd *c, const erpq_keys *k, const char *token, const char *id);
int erpq_bull_remove(erpq_cmd *c, const erpq_keys *k, const char *id);
/* state is "completed" or "failed". */
int erpq_bull_reprocess(erpq_cmd *c, const erpq_keys *k, const char *token, const char *id,
                        const char *state, int lifo, int64_t now_ms);
/* state: completed, failed, wait, active, delayed, paused. */
int erpq_bull_clean(erpq_cmd *c, const erpq_keys *k, const char *state, int64_t grace_ms,
                    int64_t limit, int64_t now_ms);
int erpq_bull_remove_repeatable(erpq_cmd *c, const erpq_keys *k, const char *name,
                                const json_t *repeat);
int erpq_bull_state(erpq_cmd *c, const erpq_keys *k, const char *id);
/* getJobCounts(): six plain commands (LLEN/ZCARD), one per state in the
 * order of erpq_bull_count_names, for the caller to pipeline. */
int erpq_bull_counts(erpq_cmd cmds[6], const erpq_keys *k);
extern const char *const erpq_bull_count_names[6];

/* Parses a state reply into a JSON object bull's getters would show (state,
 * progress, attemptsMade, returnvalue, failedReason, timestamps, data,
 * opts, name, id, stacktrace). Returns a new reference, or NULL when the job
 * does not exist (a nil reply). */
json_t *erpq_bull_parse_state(const redisReply *r, const char *id);

/* Lists up to limit jobs in state ("waiting", "paused", "active",
 * "delayed", "completed", "failed"), newest first, each with its hash;
 * school (may be NULL) keeps only jobs whose data.schoolId equals it,
 * looking at no more than scan_max entries. Returns 0 or ERPQ_E_ARG for an
 * unknown state. */
int erpq_bull_list(erpq_cmd *c, const erpq_keys *k, const char *state, int64_t limit,
                   const char *school, int64_t scan_max);
/* The jobs of a list reply as a JSON array of erpq_bull_parse_state()
 * views (owned by the caller), or NULL for a malformed reply. */
json_t *erpq_bull_parse_list(const redisReply *r);
/* 1 if state is one erpq_bull_list() takes. */
int erpq_bull_list_state_ok(const char *state);

/* The next occurrence of a repeatable job a worker has just picked up, as
 * bull's nextRepeatableJob: returns 1 and fills out (owned by the caller;
 * add it with erpq_bull_add(..., check_repeat 1)), 0 when the chain ends
 * (limit, endDate), or a negative error with a message. */
int erpq_bull_repeat_next(const erpq_job *job, int64_t now_ms, erpq_newjob *out, char *err,
                          size_t errlen);

/* Maps a script's negative code to an erpq error. */
int erpq_bull_code(long long code);

/* The value of field name in a flat HGETALL reply h (field, value, field,
 * value...), compared as whole strings: borrowed from h, or NULL when h is
 * NULL or not an array or has no such field. */
const redisReply *erpq_reply_hash_field(const redisReply *h, const char *name);
/* The same value as a NUL-terminated string (borrowed), or NULL when there
 * is none or it is not a string reply. */
const char *erpq_reply_hash_str(const redisReply *h, const char *name);

/* True if an error reply means "retry later" (LOADING, READONLY, UNBLOCKED,
 * BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN). */
int erpq_reply_transient(const redisReply *r);
/* True for a NOSCRIPT error reply. */
int erpq_reply_noscript(const redisReply *r);

#endif
