#include "erpq_http_metrics.h"

#include "erpq_buf.h"
#include "erpq_log.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const route_names[R_COUNT] = {"unmatched",
                                                 "/healthz",
                                                 "/readyz",
                                                 "/metrics",
                                                 "/v1/queues/{queue}",
                                                 "/v1/queues/{queue}/pause",
                                                 "/v1/queues/{queue}/resume",
                                                 "/v1/queues/{queue}/jobs",
                                                 "/v1/queues/{queue}/jobs/bulk",
                                                 "/v1/queues/{queue}/jobs/{id}",
                                                 "/v1/queues/{queue}/jobs/{id}",
                                                 "/v1/queues/{queue}/jobs/{id}/wait",
                                                 "/v1/queues/{queue}/jobs/{id}/retry",
                                                 "/v1/queues/{queue}/jobs",
                                                 "/v1/queues/{queue}/jobs/{id}/logs",
                                                 "/v1/queues/{queue}/jobs/{id}/download",
                                                 "/v1/files/{key}"};
static const char *const route_methods[R_COUNT] = {
    "", "GET", "GET", "GET", "GET", "POST", "POST", "POST", "POST", "GET", "DELETE", "GET", "POST",
    "GET", "GET", "GET", "GET"};

const char *erpq_route_name(int route) {
  return route >= 0 && route < R_COUNT ? route_names[route] : "unmatched";
}
const char *erpq_route_method(int route) {
  return route >= 0 && route < R_COUNT ? route_methods[route] : "";
}

static const int statuses[] = {200, 201, 302, 400, 401, 403, 404, 405,
                               408, 409, 410, 413, 422, 429, 500, 503};
#define NSTATUS (sizeof statuses / sizeof statuses[0])
static atomic_ulong m_requests[R_COUNT][NSTATUS + 1];
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
static atomic_ulong m_bucket[R_COUNT][NBUCKETS + 1];
static atomic_ulong m_dur_us[R_COUNT], m_dur_count[R_COUNT];
static pthread_mutex_t m_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *m_enqueued; /* queue -> count, under m_mu. */

void erpq_metrics_init(void) {
  pthread_mutex_lock(&m_mu);
  if (!m_enqueued)
    m_enqueued = json_object();
  pthread_mutex_unlock(&m_mu);
}

void erpq_metrics_free(void) {
  pthread_mutex_lock(&m_mu);
  json_decref(m_enqueued);
  m_enqueued = NULL;
  pthread_mutex_unlock(&m_mu);
}

void erpq_metrics_request(int route, int status, double secs) {
  if (route < 0 || route >= R_COUNT)
    route = R_NONE;
  size_t si = NSTATUS;
  for (size_t i = 0; i < NSTATUS; i++)
    if (statuses[i] == status)
      si = i;
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

void erpq_metrics_enqueued(const char *queue, size_t n) {
  pthread_mutex_lock(&m_mu);
  json_t *v = m_enqueued ? json_object_get(m_enqueued, queue) : NULL;
  json_int_t cur = v ? json_integer_value(v) : 0;
  if (m_enqueued && (v || json_object_size(m_enqueued) < 256))
    json_object_set_new(m_enqueued, queue, json_integer(cur + (json_int_t)n));
  pthread_mutex_unlock(&m_mu);
}

static void prom_label(erpq_buf *s, const char *v) {
  for (; *v; v++) {
    if (*v == '"' || *v == '\\')
      erpq_buf_add(s, "\\", 1);
    if (*v == '\n')
      erpq_buf_add(s, "\\n", 2);
    else
      erpq_buf_add(s, v, 1);
  }
}

char *erpq_metrics_text(size_t *len) {
  erpq_buf s = {0};
  erpq_buf_addf(&s, "# HELP erpq_http_requests_total HTTP requests by route and status.\n"
                "# TYPE erpq_http_requests_total counter\n");
  for (int r = 0; r < R_COUNT; r++)
    for (size_t i = 0; i <= NSTATUS; i++) {
      unsigned long v = atomic_load(&m_requests[r][i]);
      if (!v)
        continue;
      erpq_buf_addf(&s, "erpq_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s%d\"} %lu\n",
                route_names[r], r ? route_methods[r] : "any", i < NSTATUS ? "" : "other",
                i < NSTATUS ? statuses[i] : 0, v);
    }
  erpq_buf_addf(&s, "# HELP erpq_http_request_duration_seconds Time from request start to response.\n"
                "# TYPE erpq_http_request_duration_seconds histogram\n");
  for (int r = 0; r < R_COUNT; r++) {
    if (!atomic_load(&m_dur_count[r]))
      continue;
    const char *m = r ? route_methods[r] : "any";
    unsigned long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
      cum += atomic_load(&m_bucket[r][i]);
      erpq_buf_addf(
          &s,
          "erpq_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %lu\n",
          route_names[r], m, buckets[i], cum);
    }
    cum += atomic_load(&m_bucket[r][NBUCKETS]);
    erpq_buf_addf(
        &s,
        "erpq_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %lu\n",
        route_names[r], m, cum);
    erpq_buf_addf(&s, "erpq_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n",
              route_names[r], m, (double)atomic_load(&m_dur_us[r]) / 1e6);
    erpq_buf_addf(&s, "erpq_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %lu\n",
              route_names[r], m, atomic_load(&m_dur_count[r]));
  }
  erpq_buf_addf(&s, "# HELP erpq_jobs_enqueued_total Jobs enqueued over HTTP by queue.\n"
                "# TYPE erpq_jobs_enqueued_total counter\n");
  pthread_mutex_lock(&m_mu);
  const char *k;
  json_t *v;
  json_object_foreach(m_enqueued, k, v) {
    erpq_buf_addf(&s, "erpq_jobs_enqueued_total{queue=\"");
    prom_label(&s, k);
    erpq_buf_addf(&s, "\"} %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
  }
  pthread_mutex_unlock(&m_mu);
  erpq_buf_addf(&s, "# HELP erpq_log_dropped_total Log lines dropped because stdout did not keep up.\n"
                    "# TYPE erpq_log_dropped_total counter\n"
                    "erpq_log_dropped_total %" PRIu64 "\n",
                erpq_log_dropped_total());
  *len = s.len;
  return erpq_buf_take(&s);
}
