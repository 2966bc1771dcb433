/*
 * erpq_http_metrics.h - the HTTP API's routes and its Prometheus metrics.
 *
 * The route table (names as the OpenAPI file writes them, and their
 * methods) lives here because the metrics are keyed by route: a request is
 * counted under the route it matched, never under its raw path, so job ids
 * cannot blow up the label set. Counters are lock-free atomics that any
 * event-loop thread updates; the per-queue enqueue counter takes a short
 * mutex and caps the number of queues it tracks at 256.
 *
 * erpq_metrics_text() renders the Prometheus text format (version 0.0.4):
 *   erpq_http_requests_total{route,method,status}
 *   erpq_http_request_duration_seconds{route,method} (histogram)
 *   erpq_jobs_enqueued_total{queue}
 *   erpq_log_dropped_total (log lines lost to a full log buffer, erpq_log.h)
 * and the route adds the outbox backlog gauge read from Redis
 * (erpq_http_route.c, erpq_notify_relay.c).
 */
#ifndef ERPQ_HTTP_METRICS_H
#define ERPQ_HTTP_METRICS_H

#include <stddef.h>

typedef enum erpq_route {
  R_NONE,
  R_HEALTHZ,
  R_READYZ,
  R_METRICS,
  R_QUEUE,
  R_PAUSE,
  R_RESUME,
  R_ADD,
  R_BULK,
  R_JOB,
  R_DELETE,
  R_WAIT,
  R_RETRY,
  R_LIST,
  R_LOGS,
  R_DOWNLOAD,
  R_FILES,
  R_COUNT
} erpq_route;

/* The route's path template, and its method ("" for R_NONE). */
const char *erpq_route_name(int route);
const char *erpq_route_method(int route);

/* Sets up the counters; call once before any other function. */
void erpq_metrics_init(void);
void erpq_metrics_free(void);
/* Counts one answered request of route with status, taking secs. */
void erpq_metrics_request(int route, int status, double secs);
/* Counts n jobs enqueued on queue. */
void erpq_metrics_enqueued(const char *queue, size_t n);
/* The metrics page, malloc'ed (owned by the caller), its length in *len;
 * NULL when out of memory. */
char *erpq_metrics_text(size_t *len);

#endif
