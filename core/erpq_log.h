/*
 * erpq_log.h - one JSON object per line on stdout, never blocking the caller.
 *
 * Every event the worker or producer reports is a single line such as
 * {"ts":"2026-11-23T10:00:00.123Z","level":"info","event":"job.completed",
 *  "queue":"reports","jobId":"42","name":"monthly","ms":12}. Job data is
 * never logged.
 *
 * Callers (event loops, handler threads) never write to stdout themselves:
 * a line is formatted by the caller, then copied whole into one bounded,
 * process-wide buffer (4 MiB unless erpq_log_set_buffer_size() says
 * otherwise) under a mutex that is only ever held for that copy, and a
 * dedicated writer thread takes complete lines out of the buffer and writes
 * them to file descriptor 1 with blocking write() calls. So a stalled
 * journald pipe or a full terminal stops the writer thread, never a lock
 * renewal. When a line does not fit into the buffer it is dropped and
 * counted; once there is room again, the first thing written is one line
 * {"ts":...,"level":"warn","event":"log.dropped","count":N} (N lines were
 * lost at that point of the stream), whatever the level setting, and then
 * the lines accepted after it. erpq_log_dropped_total() counts every line
 * ever dropped (the HTTP metrics export it).
 *
 * Lines are copied into the buffer whole and the writer only cuts the
 * stream between lines, so lines from many threads never interleave, and a
 * batch given to erpq_log_write_lines() stays together (it is accepted or
 * dropped as one). Lines of one thread keep their order.
 *
 * The writer thread starts with the first line a process logs (lazily, so
 * nothing has to start it), with every signal blocked. A process that
 * forks (the tests do, through Criterion) is safe: the buffer mutex is
 * taken around fork(), and the child starts with an empty buffer (what the
 * parent had buffered is the parent's to write) and writes its own lines
 * directly, blocking, with no writer thread: a child of a threaded process
 * should start no threads (another thread may have held a lock of the C
 * library or of a sanitizer's allocator at fork() time). Lines still buffered at exit() are written by an
 * atexit() handler that waits up to 2 s (erpq_log_flush()); a program that
 * leaves through _exit() calls erpq_log_flush() itself first.
 *
 * All functions are thread-safe. The level and the buffer size are
 * process-wide settings, as stdout is.
 */
#ifndef ERPQ_LOG_H
#define ERPQ_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_buf.h"

typedef enum { ERPQ_LOG_DEBUG, ERPQ_LOG_INFO, ERPQ_LOG_WARN, ERPQ_LOG_ERROR } erpq_log_level;

/* Lines below this level are dropped (default INFO; ERPQ_LOG_LEVEL). */
void erpq_log_set_level(erpq_log_level level);
int erpq_log_parse_level(const char *s, erpq_log_level *out);

/* Writes {"ts","level","event", then each key: value}. The variadic part is
 * pairs of (const char *key, const char *value), ended by NULL; a NULL
 * value is skipped. Values are JSON strings (invalid UTF-8 becomes '?'),
 * except for keys written with a leading '#' ("#ms"), whose value is copied
 * as raw JSON (a number). Returns at once: the line is buffered (or
 * dropped and counted when the buffer is full). */
void erpq_log(erpq_log_level level, const char *event, ...);

/* Formats the same line and appends it to b instead of writing it, for a
 * caller that writes a batch of lines at once (the HTTP access log) with
 * erpq_log_write_lines(). Dropped below the level like erpq_log(). */
void erpq_log_append(erpq_buf *b, erpq_log_level level, const char *event, ...);

/* Buffers len bytes of complete lines (each ending in '\n', already JSON)
 * as one unit: written together, never interleaved with other lines, or
 * dropped together (each of its lines counted). buf is borrowed. */
void erpq_log_write_lines(const char *buf, size_t len);

/* Sets the capacity of the buffer in bytes (4096 to 1 GiB; default
 * 4 MiB). Returns 0, ERPQ_E_ARG for a size out of range, -EBUSY when more
 * than bytes are buffered right now, or -ENOMEM. */
int erpq_log_set_buffer_size(size_t bytes);

/* Waits until every buffered line has been written (and a pending
 * log.dropped line too), at most timeout_ms milliseconds. Returns 0 when
 * the buffer is empty, or ERPQ_E_TIMEOUT (stdout is stuck). Never call it
 * from an event loop: it blocks by design. */
int erpq_log_flush(int timeout_ms);

/* Lines dropped since the process started because the buffer was full. */
uint64_t erpq_log_dropped_total(void);

#endif
