/*
 * erpq_repeat.h - bull's repeatable-job arithmetic, without any I/O.
 *
 * A repeatable job is a chain: each job of the chain carries in its opts the
 * repeat options (opts.repeat: cron or every, tz, startDate, endDate, limit,
 * count, key, jobId) and the instant it was scheduled for (opts.prevMillis).
 * Whoever takes a job of the chain (a worker when it moves the job to
 * active, or Queue.add for the first one) computes the next link the way
 * bull 4.16.5's nextRepeatableJob() does:
 *
 *   1. count = repeat.count + 1 (1 at first); the chain ends when
 *      count > repeat.limit, or when now > repeat.endDate.
 *   2. now = max(now, opts.prevMillis); the next instant is, for "every",
 *      floor(now / every) * every + every (aligned to the epoch), and for
 *      "cron", cron-parser's next() after max(now, startDate) in repeat.tz
 *      (repeat.utc forces UTC; no tz means the process's local zone),
 *      bounded by repeat.endDate.  No next instant ends the chain.
 *   3. The repeat key ("name:jobId:endDate:tz:cron" or
 *      "name:jobId:endDate:every") is the member of the queue's "repeat"
 *      sorted set, and the job id is
 *      "repeat:" + md5hex(name + jobIdPart + md5hex(key)) + ":" + next.
 *   4. The new job's opts are lodash's defaultsDeep({repeat: {count, key},
 *      jobId, delay, timestamp, prevMillis}, opts) followed by bull's Job
 *      defaults (attempts, backoff), in the key order JSON.stringify would
 *      produce, because the opts are stored as JSON text.
 *
 * What this module does not do is the I/O around it: the caller must ZADD
 * the key with the next instant as score and add the job; a worker must
 * first check (ZSCORE) that the key is still in the repeat set, since
 * removeRepeatable() deletes it to stop the chain, while Queue.add skips
 * that check.  Times are milliseconds since the epoch.
 *
 * Dates in repeat options may be numbers (milliseconds) or date strings in
 * the ISO-8601 forms JSON.stringify(new Date()) and people write
 * ("2025-01-31", "2025-01-31T10:00", "2025-01-31 10:00:00.5+02:00", ...);
 * other strings are refused with ERPQ_E_ARG rather than guessed at.
 *
 * Everything here is thread-safe.  Strings and JSON values returned through
 * pointers belong to the caller (see each function); inputs are borrowed.
 */
#ifndef ERPQ_REPEAT_H
#define ERPQ_REPEAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_tz.h"

/* The next link of a chain.  All pointers are owned by the struct and
 * released by erpq_repeat_next_clear(). */
typedef struct erpq_repeat_next {
  char *key;       /* The repeat key, member of the "repeat" sorted set. */
  char *job_id;    /* The new job's id: "repeat:<md5>:<next_ms>". */
  int64_t next_ms; /* When the new job is due (score of the key). */
  int64_t delay_ms;     /* next_ms - now, at least 0. */
  int64_t timestamp_ms; /* The new job's timestamp (now). */
  int64_t count;        /* The new job's repeat.count. */
  json_t *opts;         /* The new job's opts (one reference). */
} erpq_repeat_next;

/* Computes the job that follows a job named name (NULL: "__default__")
 * whose opts (a JSON object, as stored in the job hash or as given to
 * Queue.add) are given, at wall-clock time now_ms.  Returns 1 and fills
 * *out when there is a next job, 0 when the chain ends (limit, endDate, no
 * further cron time), or a negative code with a message where bull would
 * throw (both cron and every, a bad cron expression or zone, ...).  *out is
 * zeroed first, so erpq_repeat_next_clear() is always safe on it.
 * Works for the first add too: without opts.prevMillis, opts.jobId becomes
 * repeat.jobId as Queue.add does. */
int erpq_repeat_compute(const char *name, const json_t *opts, int64_t now_ms,
                        erpq_repeat_next *out, char *err, size_t errlen);

/* Frees what erpq_repeat_compute() stored in next (not next itself). */
void erpq_repeat_next_clear(erpq_repeat_next *next);

/* bull's getNextMillis(millis, repeat): 1 with *next_ms set, 0 for none,
 * negative on error. */
int erpq_repeat_next_millis(const json_t *repeat, int64_t millis, int64_t *next_ms,
                            char *err, size_t errlen);

/* bull's getRepeatKey(name, repeat, jobIdPart) with the jobId part taken
 * from repeat.jobId.  *key_out is a malloc'd string owned by the caller. */
int erpq_repeat_key(const char *name, const json_t *repeat, char **key_out, char *err,
                    size_t errlen);

/* What Queue.removeRepeatable(name, repeat) passes to its script: the
 * repeat key and the job id prefix "repeat:<md5>:" (empty millis) of the
 * delayed job to delete.  Both strings are malloc'd and owned by the caller. */
int erpq_repeat_removal(const char *name, const json_t *repeat, char **key_out,
                        char **job_id_out, char *err, size_t errlen);

/* The same for Queue.removeRepeatableByKey(key): the name and jobId are read
 * back from the key by splitting it on ':'.  *job_id_out is malloc'd and
 * owned by the caller. */
int erpq_repeat_removal_by_key(const char *key, char **job_id_out, char *err, size_t errlen);

/* Serialises a JSON value exactly as JavaScript's JSON.stringify() would
 * (numbers in JavaScript's shortest form, same escapes, no spaces).
 * Returns a malloc'd string owned by the caller, or NULL without memory. */
char *erpq_repeat_json_stringify(const json_t *v);

/* Lowercase hex MD5 of len bytes (Node's createHash('md5')...digest('hex')). */
void erpq_md5_hex(const void *data, size_t len, char out[33]);

/* JavaScript's new Date(v).getTime() for a JSON value (number, string,
 * null, boolean), with date-time strings without an offset read in the
 * zone local (NULL: the process's local zone) and date-only strings in UTC.
 * Returns 0 with *ms set, 1 for an invalid date (NaN), or ERPQ_E_ARG for a
 * string format this module does not read. */
int erpq_js_date_ms(const json_t *v, const erpq_tz *local, int64_t *ms, char *err,
                    size_t errlen);

#endif
