/*
 * erpq_storage.h - where report files go: one interface, two backends.
 *
 * Backend choice (erpq_storage_conf_read): S3 when ERPQ_S3_BUCKET is set
 * (the ERPQ_S3_* variables of erpq_s3.h), else the local directory
 * ERPQ_STORAGE_DIR, which is what scripts/run uses. The local backend also
 * needs ERPQ_STORAGE_SECRET (or ERPQ_STORAGE_SECRET_FILE), at least 32
 * bytes of text shared with the HTTP API, and ERPQ_PUBLIC_URL (default
 * http://127.0.0.1:8080), the base of its download links.
 *
 * Keys look like reports/<schoolId>/<yyyy-mm>/<jobId>-<name>.<ext>. Both
 * backends accept the same keys (erpq_storage_key_check: a relative path,
 * no "..", no backslash, no control character, no segment starting with
 * '.'), and writing a key again replaces the object, so a retried job
 * never leaves a second file.
 *
 * Uploads: begin -> write... -> finish, or abort. S3 streams as erpq_s3
 * does (one PutObject or multipart). Local writes to a temporary file
 * ".<name>.XXXXXX" in the key's directory, fsyncs it at finish and renames
 * it over the key, then fsyncs the directory: a reader sees the old object
 * or the whole new one, never a part. abort() (or a failed finish) deletes
 * the temporary file. finish() and abort() free the upload. put_file()
 * uploads a finished file (XLSX/PDF are assembled by their libraries into
 * a temporary file) the same way.
 *
 * Content types: the caller's, else one guessed from the key's extension
 * (erpq_storage_content_type). The local backend stores none and guesses
 * again in head(). file_name, when given, names the download: S3 stores
 * it as the object's Content-Disposition.
 *
 * Download links (erpq_storage_link) are signed when asked for, never
 * stored: S3 gives a presigned GET; local gives an HMAC-signed URL under
 * ERPQ_PUBLIC_URL (erpq_storage_link.h) that the API checks with
 * erpq_link_verify() and serves through erpq_storage_open(). Lifetimes
 * default to 15 minutes and never exceed 7 days.
 *
 * Results: bytes, SHA-256 of the object, ETag (S3's; the SHA-256 for
 * local files) and the number of parts (0 for one request or a local
 * file).
 *
 * Errors are those of erpq_s3.h, plus -errno from the file system, and
 * -ENOTSUP for erpq_storage_open() on S3.
 *
 * Threads: the storage object is immutable after erpq_storage_new() and
 * may be used from any number of threads; an upload belongs to the thread
 * that began it. The configuration struct holds secrets: clear it with
 * erpq_storage_conf_clear() when done.
 */
#ifndef ERPQ_STORAGE_H
#define ERPQ_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "erpq_s3.h"
#include "erpq_storage_link.h"

typedef enum { ERPQ_STORAGE_LOCAL = 1, ERPQ_STORAGE_S3 = 2 } erpq_storage_kind;

typedef struct erpq_storage_conf {
  erpq_storage_kind kind;
  char dir[512];          /* Local: the directory (created if missing). */
  erpq_link_signer links; /* Local: secret and public URL. */
  erpq_s3_conf s3;        /* S3. */
} erpq_storage_conf;

/* Reads the variables above. Returns 0 or -EINVAL/-errno, err naming the
 * variable. */
int erpq_storage_conf_read(erpq_storage_conf *c, erpq_s3_getenv_fn get, void *ud, char *err,
                           size_t errlen);
/* Wipes the secrets in c. */
void erpq_storage_conf_clear(erpq_storage_conf *c);

typedef struct erpq_storage erpq_storage;

/* A storage for c (copied). The local directory is created (0750) when
 * missing. Returns 0 or a negative code. */
int erpq_storage_new(erpq_storage **out, const erpq_storage_conf *c, char *err, size_t errlen);
void erpq_storage_free(erpq_storage *st);
erpq_storage_kind erpq_storage_kind_of(const erpq_storage *st);
/* The link signer of a local storage (for the API's erpq_link_verify), or
 * NULL for S3. Lives as long as st. */
const erpq_link_signer *erpq_storage_links(const erpq_storage *st);

/* A content type for key's extension (.csv, .xlsx, .pdf, .json, .txt,
 * .zip), else application/octet-stream. Static string. */
const char *erpq_storage_content_type(const char *key);

typedef erpq_s3_result erpq_storage_result;
typedef struct erpq_storage_upload erpq_storage_upload;

/* content_type and file_name may be NULL; cancel may be NULL (copied). */
int erpq_storage_begin(const erpq_storage *st, const char *key, const char *content_type,
                       const char *file_name, const erpq_s3_cancel *cancel,
                       erpq_storage_upload **out, char *err, size_t errlen);
int erpq_storage_write(erpq_storage_upload *u, const void *buf, size_t len, char *err,
                       size_t errlen);
/* Frees u in every case; res may be NULL. */
int erpq_storage_finish(erpq_storage_upload *u, erpq_storage_result *res, char *err, size_t errlen);
/* Frees u; NULL is allowed. */
void erpq_storage_abort(erpq_storage_upload *u);

int erpq_storage_put_file(const erpq_storage *st, const char *key, const char *path,
                          const char *content_type, const char *file_name,
                          const erpq_s3_cancel *cancel, erpq_storage_result *res, char *err,
                          size_t errlen);

typedef struct erpq_storage_info {
  int exists;
  uint64_t size;
  char content_type[128];
} erpq_storage_info;

/* A missing key is exists = 0 and returns 0. */
int erpq_storage_head(const erpq_storage *st, const char *key, erpq_storage_info *out, char *err,
                      size_t errlen);
/* Deleting a missing key succeeds. */
int erpq_storage_delete(const erpq_storage *st, const char *key, char *err, size_t errlen);
/* Local only: opens the object for reading; *fd is the caller's to close,
 * *size (may be NULL) its length. -ENOENT when missing. */
int erpq_storage_open(const erpq_storage *st, const char *key, int *fd, uint64_t *size, char *err,
                      size_t errlen);
/* A download link for key valid ttl_s seconds from now (ttl_s <= 0: 15
 * minutes; at most 7 days), named file_name (may be NULL). *url is
 * malloc'ed. No I/O; the key is not checked for existence. */
int erpq_storage_link(const erpq_storage *st, const char *key, const char *file_name, int64_t ttl_s,
                      int64_t now, char **url, char *err, size_t errlen);

#endif
