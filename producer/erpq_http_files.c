/* erpq_http_files.c - the download routes' decisions (see
 * erpq_http_files.h). */
#include "erpq_http_files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_sigv4.h"

void erpq_http_answer_init(erpq_http_answer *a) {
  memset(a, 0, sizeof *a);
  a->fd = -1;
}

void erpq_http_answer_clear(erpq_http_answer *a) {
  for (size_t i = 0; i < a->nheaders; i++) {
    free(a->headers[i].name);
    free(a->headers[i].value);
  }
  json_decref(a->body);
  if (a->fd >= 0)
    close(a->fd);
  erpq_http_answer_init(a);
}

const char *erpq_http_answer_header(const erpq_http_answer *a, const char *name) {
  for (size_t i = 0; i < a->nheaders; i++)
    if (!strcasecmp(a->headers[i].name, name))
      return a->headers[i].value;
  return NULL;
}

static void header(erpq_http_answer *a, const char *name, const char *value) {
  if (a->nheaders >= ERPQ_HTTP_MAX_HEADERS)
    return;
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return;
  }
  a->headers[a->nheaders].name = n;
  a->headers[a->nheaders].value = v;
  a->nheaders++;
}

/* Replaces *a with an error answer. state (may be NULL) goes in the error. */
static void error(erpq_http_answer *a, int status, const char *code, const char *msg,
                  const char *state) {
  erpq_http_answer_clear(a);
  a->status = status;
  json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if (e && state)
    json_object_set_new(e, "state", json_string(state));
  a->body = e ? json_pack("{s:o}", "error", e) : NULL;
  header(a, "Content-Type", "application/json");
  header(a, "Cache-Control", "no-store");
}

static void not_found(erpq_http_answer *a) {
  error(a, 404, "job_not_found", "no such job in this queue", NULL);
}

void erpq_http_data_school(const json_t *data, char *out, size_t n) {
  const json_t *s = json_object_get(data, "schoolId");
  out[0] = '\0';
  if (json_is_integer(s))
    snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(s));
  else if (json_is_string(s))
    snprintf(out, n, "%s", json_string_value(s));
}

int erpq_http_download_plan(const json_t *view, const char *school, const erpq_storage *st,
                            const char *bucket, erpq_http_dlplan *plan, erpq_http_answer *ans) {
  erpq_http_answer_clear(ans);
  memset(plan, 0, sizeof *plan);
  if (!json_is_object(view)) {
    not_found(ans);
    return 1;
  }
  if (school) {
    char s[64];
    erpq_http_data_school(json_object_get(view, "data"), s, sizeof s);
    if (strcmp(s, school)) {
      not_found(ans); /* Another school's job looks exactly like a missing one. */
      return 1;
    }
  }
  const char *state = json_string_value(json_object_get(view, "state"));
  if (!state || strcmp(state, "completed")) {
    char msg[160];
    snprintf(msg, sizeof msg, "the report is not ready: the job is %.40s",
             state ? state : "in an unknown state");
    error(ans, 409, "job_not_completed", msg, state);
    return 1;
  }
  const json_t *rv = json_object_get(view, "returnvalue");
  const char *key = json_string_value(json_object_get(rv, "key"));
  const char *kind = json_string_value(json_object_get(rv, "storage"));
  const char *name = json_string_value(json_object_get(rv, "fileName"));
  if (!key || !kind) {
    error(ans, 404, "no_download", "this job has no file to download", NULL);
    return 1;
  }
  char why[160];
  int ours = st && erpq_storage_key_check(key, strlen(key), why, sizeof why) == 0 &&
             strlen(key) < sizeof plan->key;
  if (ours && erpq_storage_kind_of(st) == ERPQ_STORAGE_S3) {
    const char *b = json_string_value(json_object_get(rv, "bucket"));
    ours = !strcmp(kind, "s3") && b && bucket && !strcmp(b, bucket);
  } else if (ours) {
    ours = !strcmp(kind, "local");
  }
  if (!ours) {
    error(ans, 410, "report_gone",
          "the report is kept in a storage this server does not serve; run the report again", NULL);
    return 1;
  }
  snprintf(plan->key, sizeof plan->key, "%s", key);
  snprintf(plan->file_name, sizeof plan->file_name, "%s", name ? name : "");
  return 0;
}

static void iso_utc(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void erpq_http_download_answer(const erpq_storage *st, const erpq_http_dlplan *plan, int head_rc,
                               const erpq_storage_info *info, int64_t ttl_s, int64_t now,
                               erpq_http_answer *ans) {
  erpq_http_answer_clear(ans);
  if (head_rc) {
    error(ans, 503, "storage_unavailable", "the report storage cannot be reached; retry later",
          NULL);
    header(ans, "Retry-After", "5");
    return;
  }
  if (!info || !info->exists) {
    error(ans, 410, "report_gone", "the report file no longer exists; run the report again", NULL);
    return;
  }
  if (ttl_s <= 0)
    ttl_s = ERPQ_LINK_TTL_DEFAULT;
  if (ttl_s > ERPQ_LINK_TTL_MAX)
    ttl_s = ERPQ_LINK_TTL_MAX;
  char *url = NULL, err[256];
  if (erpq_storage_link(st, plan->key, plan->file_name[0] ? plan->file_name : NULL, ttl_s, now,
                        &url, err, sizeof err)) {
    error(ans, 500, "internal", "could not sign a download link", NULL);
    return;
  }
  char exp[32];
  iso_utc(now + ttl_s, exp);
  ans->status = 302;
  header(ans, "Location", url);
  header(ans, "Cache-Control", "no-store");
  header(ans, "Content-Type", "application/json");
  ans->body = json_pack("{s:s,s:s}", "url", url, "expiresAt", exp);
  free(url);
}

void erpq_http_download(const json_t *view, const char *school, const erpq_storage *st,
                        const char *bucket, int64_t ttl_s, int64_t now, erpq_http_answer *ans) {
  erpq_http_dlplan plan;
  if (erpq_http_download_plan(view, school, st, bucket, &plan, ans))
    return;
  erpq_storage_info info;
  memset(&info, 0, sizeof info);
  char err[256];
  int rc = erpq_storage_head(st, plan.key, &info, err, sizeof err);
  erpq_http_download_answer(st, &plan, rc, &info, ttl_s, now, ans);
}

/* A content type for the file: the storage's guess, with the charset of
 * our CSV files. */
static const char *file_type(const char *key) {
  const char *t = erpq_storage_content_type(key);
  return strcmp(t, "text/csv") ? t : "text/csv; charset=utf-8";
}

void erpq_http_file(const erpq_storage *st, const char *key, const char *exp, const char *name,
                    const char *sig, int64_t now, erpq_http_answer *ans) {
  erpq_http_answer_clear(ans);
  const erpq_link_signer *links = st ? erpq_storage_links(st) : NULL;
  if (!links) {
    error(ans, 404, "not_found", "no such route", NULL);
    return;
  }
  char err[256];
  int rc = erpq_link_verify(links, key ? key : "", exp ? exp : "", name, sig ? sig : "", now, err,
                            sizeof err);
  if (rc == -EKEYEXPIRED) {
    error(ans, 410, "link_expired", "this download link has expired; ask for a new one", NULL);
    return;
  }
  if (rc) {
    error(ans, 403, "invalid_link", "this download link is not valid", NULL);
    return;
  }
  int fd = -1;
  uint64_t size = 0;
  rc = erpq_storage_open(st, key, &fd, &size, err, sizeof err);
  if (rc == -ENOENT) {
    error(ans, 410, "report_gone", "the report file no longer exists; run the report again", NULL);
    return;
  }
  if (rc) {
    error(ans, 500, "internal", "the report file cannot be read", NULL);
    return;
  }
  ans->status = 200;
  ans->fd = fd;
  ans->size = size;
  char len[32];
  snprintf(len, sizeof len, "%" PRIu64, size);
  header(ans, "Content-Type", file_type(key));
  header(ans, "Content-Length", len);
  erpq_buf disp = {0};
  const char *slash = strrchr(key, '/');
  erpq_sigv4_content_disposition(name && *name ? name : slash ? slash + 1 : key, &disp);
  header(ans, "Content-Disposition", disp.s && !disp.oom ? disp.s : "attachment");
  erpq_buf_free(&disp);
  header(ans, "Cache-Control", "private, no-store");
  header(ans, "X-Content-Type-Options", "nosniff");
}
