/* erpq_http_answer.c - answers (JSON bodies, errors, the 503 and 500 of a
 * failed Redis call) and the access log. See erpq_http_private.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_http_metrics.h"
#include "erpq_http_private.h"
#include "erpq_log.h"
#include "erpq_opts.h"

/* ---- Access log ------------------------------------------------------------------
 * One JSON line per answered request: time, method, route template, path
 * (queue and job id; never the query string), status, duration and the
 * client's network. Never the token, the body or the full address. Lines
 * collect in the loop's buffer and are written once per loop iteration. */

void http_log_flush(hloop *L) {
  if (L->log.len && !L->log.oom) /* Out of memory: a line may be cut; drop the batch. */
    erpq_log_write_lines(L->log.s, L->log.len);
  erpq_buf_reset(&L->log);
}

void http_access_log(req *r, const char *method, const char *path, int status) {
  hloop *L = r->L;
  char st[16], ms[32];
  long long cs = (long long)(http_mono_us() - r->start_us) / 10; /* Hundredths of a millisecond. */
  snprintf(st, sizeof st, "%d", status);
  snprintf(ms, sizeof ms, "%lld.%02lld", cs / 100, cs % 100);
  erpq_log_append(&L->log, ERPQ_LOG_INFO, "http.request", "method", method, "route",
                  erpq_route_name(r->m.route), "#status", st, "#ms", ms, "client", r->net, "path",
                  path, NULL);
  if (L->log.len >= LOG_FLUSH_AT || L->log.oom)
    http_log_flush(L);
}

/* ---- Answers --------------------------------------------------------------------
 * A handler prepares its answer in r->resp; http_on_request() queues it, at once
 * when the handler answered without waiting, or when libmicrohttpd calls it
 * again after a resume. */

void http_resume(req *r) {
  if (!r->suspended)
    return;
  r->suspended = 0;
  r->L->suspended--;
  r->L->need_run = 1;
  MHD_resume_connection(r->conn);
}

/* Prepares the answer (body malloc'ed, ownership taken) and resumes the
 * connection if it was waiting. */
void http_answer_raw(req *r, int status, const char *ctype, char *body, size_t len,
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
  if (status == 401) {
    /* RFC 6750: how to authenticate, and whether the token given was bad. */
    const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    MHD_add_response_header(resp, "WWW-Authenticate",
                            authz && *authz ? "Bearer realm=\"erpq\", error=\"invalid_token\""
                                            : "Bearer realm=\"erpq\"");
  }
  if (status == 405 && r->m.route) {
    /* Paths that take more than one method name them all. */
    const char *allow = erpq_route_method(r->m.route);
    if (r->m.route == R_ADD || r->m.route == R_LIST) allow = "GET, POST";
    else if (r->m.route == R_JOB || r->m.route == R_DELETE) allow = "GET, DELETE";
    MHD_add_response_header(resp, "Allow", allow);
  }
  r->resp = resp;
  r->resp_status = status;
  http_resume(r);
}

/* Answers JSON o (reference stolen). */
void http_answer_json(req *r, int status, json_t *o, int retry_after) {
  char *s = o ? erpq_json_dump(o) : NULL;
  json_decref(o);
  if (!s) {
    static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
    char *b = strdup(oom);
    http_answer_raw(r, 500, "application/json", b, b ? sizeof oom - 1 : 0, 0);
    return;
  }
  size_t n = strlen(s);
  char *b = realloc(s, n + 2);
  if (b) {
    b[n++] = '\n';
    b[n] = '\0';
    s = b;
  }
  http_answer_raw(r, status, "application/json", s, n, retry_after);
}

/* Answers {"error":{code,message[,details]}}; details (stolen) may be NULL. */
void http_answer_error(req *r, int status, const char *code, const char *msg, json_t *details,
                       int retry_after) {
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if (e && details)
    json_object_set_new(e, "details", details);
  else
    json_decref(details);
  http_answer_json(r, status, e ? json_pack("{s:o}", "error", e) : NULL, retry_after);
}

void http_redis_unavailable(req *r) {
  http_answer_error(r, 503, "redis_unavailable", "the job store is unreachable; retry later", NULL,
                    1);
}

/* Answers a reply that is missing (503) or an error (500). Returns 1 when it
 * answered, 0 when the reply is a usable one. */
int http_reply_failed(req *r, const redisReply *reply) {
  if (!reply) {
    http_redis_unavailable(r);
    return 1;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    erpq_log(ERPQ_LOG_ERROR, "http.redis_error", "route", erpq_route_name(r->m.route), "error",
             reply->str, NULL);
    http_answer_error(r, 500, "internal", "the job store answered an error", NULL, 0);
    return 1;
  }
  return 0;
}
