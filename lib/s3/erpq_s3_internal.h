/*
 * erpq_s3_internal.h - what the files of the S3 client share; not for
 * users of lib/s3.
 *
 * The client is split by concern: erpq_s3_conf.c (configuration),
 * erpq_s3_http.c (one request: URL, headers, body, response, outcome and
 * the retry loop), erpq_s3_upload.c (streaming upload), erpq_s3_putfile.c
 * (file upload with parallel parts) and erpq_s3_ops.c (head, get, delete,
 * presign, multipart create/complete/abort).
 *
 * An s3_call describes one request and collects its answer. Life cycle:
 * the caller fills the request fields (zero the rest), then either
 * s3_call_run() does setup, perform, outcome and retries on a blocking
 * easy handle, or the caller drives s3_call_setup() / curl / s3_call_done()
 * itself (put_file's curl multi). s3_call_free() releases what setup
 * allocated; the call may be set up again after s3_call_reset_response().
 * The call borrows every pointer in it (key, body, strings); they must
 * outlive the request. The easy handle is the caller's: it is reset by
 * setup, so one handle can serve many calls and keep its connection.
 *
 * Stopping: stop(stop_ud) is polled by curl's progress callback on the
 * thread running the transfer and between retries; when it returns
 * non-zero the request ends with -ECANCELED. The streaming upload's helper
 * thread passes a function reading an atomic flag; everything else passes
 * the caller's cancel callback.
 */
#ifndef ERPQ_S3_INTERNAL_H
#define ERPQ_S3_INTERNAL_H

#include <curl/curl.h>
#include <stdint.h>
#include <sys/types.h>

#include "erpq_buf.h"
#include "erpq_s3.h"

#define S3_RESP_CAP (1024 * 1024) /* Largest XML answer kept, in bytes. */

struct erpq_s3 {
  erpq_s3_conf conf;
  char sigv4[160]; /* CURLOPT_AWS_SIGV4 value, "aws:amz:<region>:s3". */
};

typedef int (*s3_stop_fn)(void *ud);

/* An easy handle and the multi handle it runs on, so that a blocking
 * request can poll its stop function every few milliseconds (curl's own
 * progress callback may wait a second) and still keep its connection
 * between requests (the multi holds the connection cache). One thread
 * at a time. */
typedef struct s3_conn {
  CURL *easy;
  CURLM *multi;
} s3_conn;
s3_conn *s3_conn_new(void);
void s3_conn_free(s3_conn *h);

typedef struct s3_call {
  /* Request (filled by the caller). */
  const char *method; /* GET, PUT, POST, HEAD, DELETE. */
  const char *key;
  const char *query;        /* Encoded, sorted query ("partNumber=1&uploadId=..."), or NULL. */
  const char *what;         /* For messages: "PutObject", "UploadPart 3", ... */
  const unsigned char *mem; /* Body in memory (len bytes), or ... */
  int fd;                   /* ... from a file at off (when fd >= 0); */
  off_t off;
  uint64_t len;
  const char *sha256; /* Hex SHA-256 of the body; NULL: computed for memory bodies. */
  const char *content_type;
  const char *content_disposition;
  int object_headers; /* Send content type/disposition and SSE headers. */
  int sink_fd;        /* GET: body into this file (>= 0), else kept in resp. */
  s3_stop_fn stop;
  void *stop_ud;

  /* Response. */
  long status;
  erpq_buf resp;
  char etag[128];
  char content_type_out[128];
  uint64_t content_length;
  uint64_t received; /* Body bytes written to sink_fd. */
  int write_failed;  /* errno of a failed write to sink_fd. */
  int read_failed;   /* The file body could not be read. */
  int retryable;     /* Set by s3_call_done() on failure. */

  /* Internal. */
  CURL *easy;
  uint64_t pos;
  char sha_buf[65];
  erpq_buf url;
  struct curl_slist *headers;
  char curl_err[CURL_ERROR_SIZE];
} s3_call;

/* Prepares easy for c (resets it first). Returns 0 or -EINVAL/-ENOMEM. */
int s3_call_setup(const erpq_s3 *s3, CURL *easy, s3_call *c, char *err, size_t errlen);
/* Classifies a finished transfer: 0 (2xx and no <Error> body), or a
 * negative code with a sentence in err and c->retryable set when trying
 * again may help. */
int s3_call_done(const erpq_s3 *s3, CURL *easy, s3_call *c, CURLcode rc, char *err, size_t errlen);
/* Forgets the previous answer before the call is sent again. */
void s3_call_reset_response(s3_call *c);
void s3_call_free(s3_call *c);
/* setup + perform + done, retried as the header describes. */
int s3_call_run(const erpq_s3 *s3, s3_conn *h, s3_call *c, char *err, size_t errlen);
/* One transfer of the set-up easy handle on h; polls c->stop. */
CURLcode s3_perform(s3_conn *h, s3_call *c);

/* The delay before attempt (2, 3, ...), jittered; seed is the caller's. */
long s3_backoff_ms(const erpq_s3 *s3, int attempt, unsigned *seed);
/* Sleeps ms, waking every 20 ms to poll stop: 0, or -ECANCELED. */
int s3_sleep(long ms, s3_stop_fn stop, void *stop_ud);
/* One line through conf.log (when set). */
void s3_log(const erpq_s3 *s3, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A fresh easy handle or NULL (put_file's slots). */
CURL *s3_easy(void);

/* The text of the first <tag> element of xml, entities decoded, into out.
 * Returns 0, or -ENOENT when absent, -ENOSPC when it does not fit. */
int s3_xml_text(const char *xml, const char *tag, char *out, size_t outlen);
/* Copies an ETag without its surrounding quotes. */
void s3_etag_unquote(const char *in, char *out, size_t outlen);
/* Header values must not carry CR, LF or NUL. */
int s3_header_ok(const char *v);

/* Multipart steps (erpq_s3_ops.c), run on easy with retries. */
int s3_mpu_create(const erpq_s3 *s3, s3_conn *h, const char *key, const char *content_type,
                  const char *content_disposition, s3_stop_fn stop, void *stop_ud, char **upload_id,
                  char *err, size_t errlen);
/* etags[i] is part i+1's ETag as S3 gave it. The object's ETag into etag. */
int s3_mpu_complete(const erpq_s3 *s3, s3_conn *h, const char *key, const char *upload_id,
                    char *const *etags, int nparts, s3_stop_fn stop, void *stop_ud, char *etag,
                    size_t etaglen, char *err, size_t errlen);
/* Best effort, one try, never cancelled; a refusal is only logged. */
void s3_mpu_abort(const erpq_s3 *s3, s3_conn *h, const char *key, const char *upload_id);
/* "partNumber=N&uploadId=<encoded>" (malloc'ed) or NULL. */
char *s3_part_query(int partno, const char *upload_id);

#endif
