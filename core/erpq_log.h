/*
 * erpq_log.h - one JSON object per line on stdout.
 *
 * Every event the worker or producer reports is a single line such as
 * {"ts":"2026-11-23T10:00:00.123Z","level":"info","event":"job.completed",
 *  "queue":"reports","jobId":"42","name":"monthly","ms":12}. Job data is
 * never logged. Lines are written with one write() call under a mutex, so
 * threads never interleave.
 */
#ifndef ERPQ_LOG_H
#define ERPQ_LOG_H

#include <stddef.h>

#include "erpq_buf.h"

typedef enum { ERPQ_LOG_DEBUG, ERPQ_LOG_INFO, ERPQ_LOG_WARN, ERPQ_LOG_ERROR } erpq_log_level;

/* Lines below this level are dropped (default INFO; ERPQ_LOG_LEVEL). */
void erpq_log_set_level(erpq_log_level level);
int erpq_log_parse_level(const char *s, erpq_log_level *out);

/* Writes {"ts","level","event", then each key: value}. The variadic part is
 * pairs of (const char *key, const char *value), ended by NULL; a NULL
 * value is skipped. Values are JSON strings (invalid UTF-8 becomes '?'),
 * except for keys written with a leading '#' ("#ms"), whose value is copied
 * as raw JSON (a number). */
void erpq_log(erpq_log_level level, const char *event, ...);

/* Formats the same line and appends it to b instead of writing it, for a
 * caller that writes a batch of lines at once (the HTTP access log) with
 * erpq_log_write_lines(). Dropped below the level like erpq_log(). */
void erpq_log_append(erpq_buf *b, erpq_log_level level, const char *event, ...);

/* Writes len bytes of complete lines (each ending in '\n', already JSON)
 * to stdout under the same lock as erpq_log(), so that a batch of lines
 * built elsewhere (the HTTP access log) never interleaves with other
 * lines. buf is borrowed. */
void erpq_log_write_lines(const char *buf, size_t len);

#endif
