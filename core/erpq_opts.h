/*
 * erpq_opts.h - bull job options: defaults on add, and the parsed view a
 * worker needs.
 *
 * A job's options travel as JSON in the job hash's `opts` field. A producer
 * stores them "after defaults", exactly as bull's Job constructor does:
 * the caller's keys in their order, then `attempts` (1), `delay` (0) and
 * `timestamp` (now) where missing, `attempts` turned into an integer and a
 * numeric `backoff` n turned into {"type":"fixed","delay":n}.
 * erpq_opts_defaults() produces that object. A worker reads the stored JSON
 * back with erpq_jobopts_parse(), which tolerates anything bull tolerates
 * and reports what it cannot use.
 */
#ifndef ERPQ_OPTS_H
#define ERPQ_OPTS_H

#include <jansson.h>
#include <stdint.h>

/* A removeOnComplete / removeOnFail policy, as bull's keepJobs map:
 * count -1 keeps everything, 0 removes the job at once, n keeps the newest
 * n; age (seconds) removes older jobs when has_age is set. */
typedef struct erpq_keep {
  int64_t count;
  int has_count;
  int64_t age_s;
  int has_age;
} erpq_keep;

typedef struct erpq_jobopts {
  int attempts;              /* >= 1 in practice; bull's default is 1. */
  char backoff_type[64];     /* "" when there is no backoff. */
  int64_t backoff_delay;     /* backoff.delay in ms, 0 if absent. */
  const json_t *backoff_options; /* backoff.options, borrowed from the opts. */
  int64_t timeout_ms;        /* 0 = none. */
  int lifo;
  int64_t priority;
  erpq_keep on_complete, on_fail;
  int stacktrace_limit;      /* 0 = unlimited. */
  int has_repeat;
} erpq_jobopts;

/* Parses stored opts (a JSON object, borrowed; backoff_options points into
 * it). Returns 0 or ERPQ_E_JSON with a message naming the bad option. */
int erpq_jobopts_parse(const json_t *opts, erpq_jobopts *out, char *err, size_t errlen);

/* Reads a JSON number (integer or finite real, truncated) into *out.
 * Returns 0, or -1 for anything else. */
int erpq_json_i64(const json_t *v, int64_t *out);

/* Parses a removeOnX value (NULL, boolean, number or {age,count}). */
int erpq_keep_parse(const json_t *v, erpq_keep *out);

/* Returns a new object (owned by the caller) holding user opts after bull's
 * defaults, with timestamp now_ms when missing. user may be NULL. Returns
 * NULL on a type error (message in err). */
json_t *erpq_opts_defaults(const json_t *user, int64_t now_ms, char *err, size_t errlen);

/* Checks that every key of user opts (a JSON object, borrowed) is one of
 * bull's job options (priority, delay, attempts, repeat, backoff, lifo,
 * timeout, jobId, removeOnComplete, removeOnFail, stackTraceLimit,
 * preventParsingData, debounce, timestamp), so that a typo such as
 * "atempts" is refused instead of ignored. Appends {"path","message"} per
 * unknown key to problems (paths under base, e.g. "/opts"), with the
 * nearest known name when one is close. Returns the number appended. */
int erpq_opts_check_keys(const json_t *user, const char *base, json_t *problems);

/* Serializes JSON as JSON.stringify does (compact, UTF-8 kept, no escaping
 * of '/', numbers printed as JavaScript prints them). The string is
 * malloc'ed and owned by the caller; NULL only when out of memory. */
char *erpq_json_dump(const json_t *v);

#endif
