/*
 * erpq_s3.h - an S3 client on libcurl: streaming and file uploads, HEAD,
 * GET to a file, DELETE and presigned GET URLs.
 *
 * Configuration. erpq_s3_conf holds everything, as fixed arrays (no
 * pointers), so copying it copies it. erpq_s3_conf_read() fills it from a
 * lookup callback (the worker passes getenv; tests pass a table):
 *   ERPQ_S3_BUCKET                   required
 *   ERPQ_S3_REGION                   default us-east-1
 *   ERPQ_S3_ENDPOINT                 default https://s3.<region>.amazonaws.com
 *   ERPQ_S3_ADDRESSING               path|virtual; default path for a custom
 *                                    endpoint, virtual for AWS
 *   ERPQ_S3_ACCESS_KEY_ID            required
 *   ERPQ_S3_SECRET_ACCESS_KEY(_FILE) required, one of the two
 *   ERPQ_S3_SESSION_TOKEN(_FILE)     optional (temporary credentials)
 *   ERPQ_S3_SSE                      AES256|aws:kms (default: none)
 *   ERPQ_S3_SSE_KMS_KEY_ID           optional, only with aws:kms
 *   ERPQ_S3_PART_SIZE                bytes, 5 MiB..5 GiB, default 8 MiB
 *   ERPQ_S3_CONNECT_TIMEOUT          seconds, default 10
 *   ERPQ_S3_STALL_TIMEOUT            seconds, default 30: a transfer
 *                                    slower than 1 byte/s for that long
 *                                    fails (curl averages over ~5 s, so a
 *                                    dead peer is given up after 30-35 s)
 * A bad value fails with a sentence naming the variable, never a secret.
 * The tuning fields below the line in the struct (retries, parallelism,
 * the log hook) are not read from the environment; tests change them, and
 * may set part_size below the 5 MiB that conf_read enforces.
 *
 * Signing. Requests are signed by libcurl (CURLOPT_AWS_SIGV4 with the key
 * pair as user name and password), and every request carries
 * x-amz-content-sha256 with the real SHA-256 of its body: without it,
 * curl 7.88 signs the hash of an empty body, which S3 rejects. A session
 * token goes in x-amz-security-token. Presigned URLs are computed by
 * erpq_sigv4 (curl cannot presign).
 *
 * Retries. A request that fails with HTTP 5xx, 429, an S3 error code
 * meaning "try again" (SlowDown, InternalError, RequestTimeout), a
 * connection error or a timeout is sent again after an exponential,
 * jittered delay (retry_base_ms doubling up to retry_cap_ms, max_tries in
 * all); any other 4xx is final. Every retry is reported through conf.log
 * with the operation and the reason, never a URL, a key or a signature.
 *
 * Cancellation. Operations that move data take an erpq_s3_cancel (may be
 * NULL). Its callback is polled during transfers (curl's progress
 * callback) and between requests, always on the caller's thread; once it
 * answers non-zero the operation stops within a fraction of a second and
 * returns -ECANCELED.
 *
 * Streaming upload (erpq_s3_upload_*). States: BUFFERING (begin; data
 * fills one part in memory) -> MULTIPART (the first part overflowed:
 * CreateMultipartUpload was sent and parts go up one at a time on the
 * upload's own thread while the caller fills the next; memory is two
 * parts) -> finished or aborted. An object no bigger than one part is sent
 * as one PutObject at finish. finish() sends the last part and
 * CompleteMultipartUpload (a 200 answer with an <Error> body counts as a
 * failure). A write that fails leaves the upload failed (sticky): the
 * caller then calls abort() (or finish(), which returns the error). Both
 * finish() and abort() free the upload; abort() sends
 * AbortMultipartUpload and only logs a refusal (s3rver answers 405; the
 * object never exists before Complete anyway). An object that would need
 * more than 10,000 parts fails with -EFBIG.
 *
 * File upload (erpq_s3_put_file): one PutObject up to a part size,
 * otherwise multipart with up to conf.parallel parts in flight (curl multi
 * on the caller's thread); the part size grows if the file would need
 * more than 10,000 parts.
 *
 * Errors: 0 or a negative code with one sentence in err: -ENOENT (no such
 * object), -EACCES (403), -EPROTO (another final S3 error), -EIO (server
 * errors that outlasted the retries), -ECONNREFUSED (cannot connect),
 * ERPQ_E_TIMEOUT (connect or stall timeout), -ECANCELED, -EINVAL (bad
 * argument), -ENOMEM, -EFBIG, or -errno for local files.
 *
 * Ownership and threads. erpq_s3_new() copies the configuration; the
 * client is immutable afterwards and every erpq_s3_* function that takes
 * a const erpq_s3 * may be called from any number of threads at once. An
 * erpq_s3_upload belongs to the thread that began it (it runs one helper
 * thread of its own, which never calls the caller's callbacks). Strings
 * passed in are copied or only read during the call.
 */
#ifndef ERPQ_S3_H
#define ERPQ_S3_H

#include <stddef.h>
#include <stdint.h>

#define ERPQ_S3_MIB (1024ULL * 1024ULL)
#define ERPQ_S3_PART_MIN (5ULL * ERPQ_S3_MIB)           /* S3's smallest non-last part. */
#define ERPQ_S3_PART_MAX (5ULL * 1024ULL * ERPQ_S3_MIB) /* S3's largest part. */
#define ERPQ_S3_PART_DEFAULT (8ULL * ERPQ_S3_MIB)
#define ERPQ_S3_MAX_PARTS 10000

typedef enum { ERPQ_S3_PATH = 0, ERPQ_S3_VIRTUAL = 1 } erpq_s3_addressing;
typedef enum { ERPQ_S3_SSE_NONE = 0, ERPQ_S3_SSE_AES256, ERPQ_S3_SSE_KMS } erpq_s3_sse;

/* The lookup callback configuration is read through (getenv-like: NULL or
 * "" when unset; the string is only read during the call). */
typedef const char *(*erpq_s3_getenv_fn)(void *ud, const char *name);
/* Receives one line per retry or refused abort; may run on any thread. */
typedef void (*erpq_s3_log_fn)(void *ud, const char *msg);

typedef struct erpq_s3_conf {
  char bucket[64];
  char endpoint[256];
  char region[64];
  char access_key_id[128];
  char secret_access_key[256];
  char session_token[4096];
  erpq_s3_addressing addressing;
  erpq_s3_sse sse;
  char sse_kms_key_id[512];
  uint64_t part_size;
  long connect_timeout_s;
  long stall_timeout_s;
  /* Not read from the environment: */
  int max_tries;      /* Attempts per request in all; default 5. */
  long retry_base_ms; /* First delay; default 200. */
  long retry_cap_ms;  /* Longest delay; default 5000. */
  int parallel;       /* Parts in flight in put_file; default 4. */
  erpq_s3_log_fn log;
  void *log_ud;
} erpq_s3_conf;

/* Defaults for everything; bucket and credentials empty. */
void erpq_s3_conf_defaults(erpq_s3_conf *c);
/* Defaults, then the ERPQ_S3_* variables. Returns 0 or -EINVAL (err names
 * the variable), or -errno when a _FILE cannot be read. */
int erpq_s3_conf_read(erpq_s3_conf *c, erpq_s3_getenv_fn get, void *ud, char *err, size_t errlen);

/* Reads a secret from NAME or from the file named by NAME_FILE (setting
 * both is an error; trailing CR/LF of a file are dropped; the secret must
 * be text). *found says whether either was set. Returns 0, -EINVAL or
 * -errno; err names the variable, never the value. For lib/storage too. */
int erpq_conf_secret(char *out, size_t outlen, erpq_s3_getenv_fn get, void *ud, const char *name,
                     int *found, char *err, size_t errlen);

typedef struct erpq_s3 erpq_s3;

/* A client for conf (copied). Returns 0 or -EINVAL/-ENOMEM. */
int erpq_s3_new(erpq_s3 **out, const erpq_s3_conf *conf, char *err, size_t errlen);
void erpq_s3_free(erpq_s3 *s3);
/* The client's configuration (read-only, lives as long as the client). */
const erpq_s3_conf *erpq_s3_conf_of(const erpq_s3 *s3);

typedef struct erpq_s3_cancel {
  int (*cancelled)(void *ud); /* Non-zero: stop. */
  void *ud;
} erpq_s3_cancel;

typedef struct erpq_s3_result {
  uint64_t bytes;
  char sha256[65]; /* Hex SHA-256 of the whole object. */
  char etag[128];  /* Without the surrounding quotes. */
  int parts;       /* 0: one PutObject. */
} erpq_s3_result;

/* ---- streaming upload ---------------------------------------------------- */

typedef struct erpq_s3_upload erpq_s3_upload;

/* Starts an upload of key (nothing is sent yet). content_type and
 * content_disposition (may be NULL) become the object's headers; cancel
 * (may be NULL) is copied. */
int erpq_s3_upload_begin(const erpq_s3 *s3, const char *key, const char *content_type,
                         const char *content_disposition, const erpq_s3_cancel *cancel,
                         erpq_s3_upload **out, char *err, size_t errlen);
/* Appends len bytes. May block while the previous part is still going up. */
int erpq_s3_upload_write(erpq_s3_upload *u, const void *buf, size_t len, char *err, size_t errlen);
/* Sends what is left and completes the object; frees u in every case.
 * res may be NULL. */
int erpq_s3_upload_finish(erpq_s3_upload *u, erpq_s3_result *res, char *err, size_t errlen);
/* Stops, aborts the multipart upload if one was started, frees u. NULL is
 * allowed. */
void erpq_s3_upload_abort(erpq_s3_upload *u);

/* ---- whole objects ------------------------------------------------------- */

/* Uploads the file at path as key. res may be NULL. */
int erpq_s3_put_file(const erpq_s3 *s3, const char *key, const char *path, const char *content_type,
                     const char *content_disposition, const erpq_s3_cancel *cancel,
                     erpq_s3_result *res, char *err, size_t errlen);

typedef struct erpq_s3_info {
  int exists;
  uint64_t size;
  char content_type[128];
  char etag[128];
} erpq_s3_info;

/* What S3 knows of key; a missing key is exists = 0 and returns 0. */
int erpq_s3_head(const erpq_s3 *s3, const char *key, erpq_s3_info *out, char *err, size_t errlen);
/* Downloads key into path (created or truncated; removed again on
 * failure). *bytes (may be NULL) gets the size. -ENOENT when missing. */
int erpq_s3_get_to_file(const erpq_s3 *s3, const char *key, const char *path,
                        const erpq_s3_cancel *cancel, uint64_t *bytes, char *err, size_t errlen);
/* Deletes key; deleting a missing key succeeds. */
int erpq_s3_delete(const erpq_s3 *s3, const char *key, char *err, size_t errlen);
/* A presigned GET URL of key valid for expires_s (clamped to 1 s..7 days)
 * from now (unix seconds), whose download is named file_name (may be
 * NULL). *url is malloc'ed; the caller frees it. No I/O. */
int erpq_s3_presign_get(const erpq_s3 *s3, const char *key, const char *file_name,
                        int64_t expires_s, int64_t now, char **url, char *err, size_t errlen);

#endif
