/*
 * erpq_http_files.h - the logic of the HTTP API's two report download
 * routes, as functions that decide an answer (status, headers, body or a
 * file to stream) and leave sending it to the router:
 *
 *   GET /v1/queues/{queue}/jobs/{id}/download
 *       302 to a fresh download link of a completed report job's file
 *       (presigned S3 GET, or a signed local link); 404 when there is no
 *       such job, or it is another school's (tenant-scoped exactly like the
 *       status route: the same answer as a missing job), or it is not a
 *       report; 409 while the job is not completed (its state in the
 *       error); 410 when the object is gone (deleted, expired by a bucket
 *       lifecycle rule, or kept in a storage this API does not serve); 503
 *       when the storage cannot be asked.
 *   GET /v1/files/<key>?exp=&name=&sig=          (local storage only)
 *       200 streaming the file with Content-Disposition; 403 for a link
 *       that is not one we signed (bad signature, tampered key, exp or
 *       name, malformed); 410 for a genuine link that has expired, or
 *       whose file is gone; 404 when the API serves S3 (no such route).
 *
 * Inputs:
 *   - the job view is what the status route shows (erpq_bull_parse_state():
 *     state, data, returnvalue...), NULL for a job that does not exist;
 *     the report's location is read from returnvalue {storage, bucket,
 *     key, fileName} (jobs/reports/erpq_reports.h);
 *   - school is the token's school_id claim as the status route compares
 *     it (decimal text), or NULL for a token without one;
 *   - the storage is built from the same settings as the worker's
 *     (lib/storage/erpq_storage_settings.h: ERPQ_S3_*, ERPQ_STORAGE_DIR,
 *     ERPQ_STORAGE_SECRET, ERPQ_PUBLIC_URL), and bucket is its S3 bucket
 *     (erpq_storage_conf.s3.bucket; NULL for the local backend): a report
 *     the result says is in another bucket is 410;
 *   - the files route takes the key (the path after /v1/files/) and the
 *     query values already percent-decoded, as libmicrohttpd hands them to
 *     the access handler (MHD_lookup_connection_value); NULL when absent.
 *
 * Blocking: deciding a download needs one look at the object: a stat()
 * for the local backend, an S3 HEAD request (up to the connect timeout)
 * for S3. So the route runs in three steps: erpq_http_download_plan()
 * (pure, on the event loop), erpq_storage_head() on a thread
 * (uv_queue_work) when the plan asks for it, erpq_http_download_answer()
 * (pure) with its outcome. erpq_http_download() does all three, blocking,
 * for callers already on a thread (tests, a thread-per-request server).
 * The files route only does local file work (open, fstat): cheap, and it
 * hands back a descriptor for MHD_create_response_from_fd().
 *
 * Answers: an erpq_http_answer owns its header strings, its JSON body and
 * its descriptor (-1 when none) until erpq_http_answer_clear(); a router
 * that hands fd to libmicrohttpd sets it to -1 first (MHD closes it).
 * Error bodies are {"error":{"code","message"[, "state"]}} as the API's
 * other errors, with no personal data and no storage key.
 *
 * Everything here is stateless and thread-safe given a thread-safe
 * storage object (erpq_storage.h: it is).
 */
#ifndef ERPQ_HTTP_FILES_H
#define ERPQ_HTTP_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_storage.h"

#define ERPQ_HTTP_MAX_HEADERS 8

typedef struct erpq_http_header {
  char *name;
  char *value;
} erpq_http_header;

typedef struct erpq_http_answer {
  int status;
  erpq_http_header headers[ERPQ_HTTP_MAX_HEADERS];
  size_t nheaders;
  json_t *body;  /* JSON body, or NULL (with fd >= 0: the file is the body) */
  int fd;        /* A file to stream, or -1 */
  uint64_t size; /* Its length (Content-Length) */
} erpq_http_answer;

/* An empty answer (status 0, fd -1). */
void erpq_http_answer_init(erpq_http_answer *a);
/* Frees headers and body, closes fd if still >= 0; leaves an empty answer. */
void erpq_http_answer_clear(erpq_http_answer *a);
/* The value of header name (case-insensitive), or NULL. */
const char *erpq_http_answer_header(const erpq_http_answer *a, const char *name);

/* The school of a job's data (its schoolId, a number or a string) as the
 * decimal text tenant scoping compares with a token's school_id claim; ""
 * when the data has none. Every route that scopes by school uses it. */
void erpq_http_data_school(const json_t *data, char *out, size_t n);

/* What the download route must look at once the view allows it. */
typedef struct erpq_http_dlplan {
  char key[1100];
  char file_name[256];
} erpq_http_dlplan;

/* Step 1 (pure): returns 1 with *ans final (404, 409, 410), or 0 with
 * *plan filled: look at plan->key with erpq_storage_head() next. */
int erpq_http_download_plan(const json_t *view, const char *school, const erpq_storage *st,
                            const char *bucket, erpq_http_dlplan *plan, erpq_http_answer *ans);
/* Step 3 (pure): the answer for head_rc / info of erpq_storage_head():
 * 302 with Location (a link valid ttl_s seconds from now; <= 0: 15
 * minutes; at most 7 days) and Cache-Control: no-store, 410 when the
 * object does not exist, 503 with Retry-After when the head failed. */
void erpq_http_download_answer(const erpq_storage *st, const erpq_http_dlplan *plan, int head_rc,
                               const erpq_storage_info *info, int64_t ttl_s, int64_t now,
                               erpq_http_answer *ans);
/* Steps 1-3, blocking (see above). */
void erpq_http_download(const json_t *view, const char *school, const erpq_storage *st,
                        const char *bucket, int64_t ttl_s, int64_t now, erpq_http_answer *ans);

/* GET /v1/files/<key>: the answer for a signed local link (see above). */
void erpq_http_file(const erpq_storage *st, const char *key, const char *exp, const char *name,
                    const char *sig, int64_t now, erpq_http_answer *ans);

#endif
