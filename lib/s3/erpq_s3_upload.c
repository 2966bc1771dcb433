/*
 * erpq_s3_upload.c - streaming upload: one part in flight on a helper
 * thread while the caller fills the next (see erpq_s3.h).
 *
 * Hand-over between the caller and the helper goes through one job slot
 * under mu: the caller puts a full buffer in (IDLE -> QUEUED) only when
 * the slot is IDLE or DONE, the helper uploads it and marks it DONE with
 * its result and the part's ETag. So at most two part buffers exist: the
 * one in the slot and the one being filled. The helper never calls the
 * caller's cancel callback: the caller polls it while it waits and raises
 * the atomic stop flag, which the helper's transfer reads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "erpq_err.h"
#include "erpq_s3_internal.h"
#include "erpq_sigv4.h"
#include "erpq_util.h"

#define CANCEL_POLL_MS 50 /* How often a blocked caller polls its cancel callback. */

enum { JOB_IDLE, JOB_QUEUED, JOB_DONE };

struct erpq_s3_upload {
  const erpq_s3 *s3;
  char *key, *content_type, *content_disposition;
  erpq_s3_cancel cancel;
  int has_cancel;
  int64_t last_poll_ms;
  s3_conn *conn; /* The caller's requests: Create, Complete, Abort, single PUT. */

  unsigned char *fill; /* Being filled: fill_len of conf.part_size bytes. */
  size_t fill_len;
  unsigned char *spare; /* Free buffer for the next swap (or NULL). */
  EVP_MD_CTX *sha;
  uint64_t total;

  char *upload_id;
  char **etags; /* etags[i]: part i+1, set by the helper. */
  int nparts, cap_parts;
  int failed; /* Sticky error code. */
  char failmsg[256];

  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int quit;
  struct {
    int state;
    unsigned char *buf;
    size_t len;
    int partno;
    int rc;
    char err[256];
  } job;
  atomic_int stop;
};

static int stop_flag(void *ud) { return atomic_load(&((erpq_s3_upload *)ud)->stop); }

static int cancelled_now(erpq_s3_upload *u) {
  if (atomic_load(&u->stop))
    return 1;
  if (u->has_cancel && u->cancel.cancelled(u->cancel.ud)) {
    atomic_store(&u->stop, 1);
    return 1;
  }
  return 0;
}

static int cancel_stop(void *ud) { return cancelled_now(ud); }

static int fail(erpq_s3_upload *u, int rc, const char *msg, char *err, size_t errlen) {
  if (!u->failed) {
    u->failed = rc;
    snprintf(u->failmsg, sizeof u->failmsg, "%s", msg);
  }
  return erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
}

/* ---- the helper thread --------------------------------------------------- */

static void upload_part(erpq_s3_upload *u, s3_conn *conn) {
  char sha[65], what[48], err[256] = "";
  erpq_sigv4_sha256_hex(u->job.buf, u->job.len, sha);
  snprintf(what, sizeof what, "UploadPart %d", u->job.partno);
  char *query = s3_part_query(u->job.partno, u->upload_id);
  int rc;
  if (!query) {
    rc = erpq_fail(err, sizeof err, -ENOMEM, "out of memory");
  } else {
    s3_call c = {.method = "PUT",
                 .key = u->key,
                 .query = query,
                 .what = what,
                 .mem = u->job.buf,
                 .len = u->job.len,
                 .fd = -1,
                 .sha256 = sha,
                 .sink_fd = -1,
                 .stop = stop_flag,
                 .stop_ud = u};
    rc = s3_call_run(u->s3, conn, &c, err, sizeof err);
    if (rc == 0 && !c.etag[0])
      rc = erpq_fail(err, sizeof err, -EPROTO, "S3 %s answered no ETag", what);
    if (rc == 0 && !(u->etags[u->job.partno - 1] = strdup(c.etag)))
      rc = erpq_fail(err, sizeof err, -ENOMEM, "out of memory");
    s3_call_free(&c);
    free(query);
  }
  pthread_mutex_lock(&u->mu);
  u->job.rc = rc;
  snprintf(u->job.err, sizeof u->job.err, "%s", err);
  u->job.state = JOB_DONE;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
}

static void *helper(void *arg) {
  erpq_s3_upload *u = arg;
  s3_conn *conn = s3_conn_new();
  for (;;) {
    pthread_mutex_lock(&u->mu);
    while (!u->quit && u->job.state != JOB_QUEUED)
      pthread_cond_wait(&u->cv, &u->mu);
    int quit = u->quit;
    pthread_mutex_unlock(&u->mu);
    if (quit)
      break;
    if (!conn) {
      pthread_mutex_lock(&u->mu);
      u->job.rc = -ENOMEM;
      snprintf(u->job.err, sizeof u->job.err, "out of memory");
      u->job.state = JOB_DONE;
      pthread_cond_broadcast(&u->cv);
      pthread_mutex_unlock(&u->mu);
      continue;
    }
    upload_part(u, conn);
  }
  s3_conn_free(conn);
  return NULL;
}

/* Waits until the slot holds no queued part, polling the cancel callback;
 * returns the finished part's result (0 when the slot was idle). */
static int wait_slot(erpq_s3_upload *u, char *err, size_t errlen) {
  pthread_mutex_lock(&u->mu);
  while (u->job.state == JOB_QUEUED) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += CANCEL_POLL_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
      ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    if (u->job.state == JOB_QUEUED) {
      pthread_mutex_unlock(&u->mu);
      cancelled_now(u); /* Raises stop; the helper's transfer ends soon. */
      pthread_mutex_lock(&u->mu);
    }
  }
  int rc = 0;
  if (u->job.state == JOB_DONE) {
    rc = u->job.rc;
    if (rc)
      fail(u, rc, u->job.err, NULL, 0);
    /* The uploaded buffer becomes the spare. */
    if (!u->spare)
      u->spare = u->job.buf;
    else
      free(u->job.buf);
    u->job.buf = NULL;
    u->job.state = JOB_IDLE;
  }
  pthread_mutex_unlock(&u->mu);
  if (rc)
    return erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
  return 0;
}

static void stop_helper(erpq_s3_upload *u) {
  if (!u->thread_started)
    return;
  pthread_mutex_lock(&u->mu);
  u->quit = 1;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  pthread_join(u->thread, NULL);
  u->thread_started = 0;
  if (u->job.buf && !u->spare)
    u->spare = u->job.buf;
  else
    free(u->job.buf);
  u->job.buf = NULL;
}

/* Hands the full fill buffer to the helper as the next part. */
static int ship(erpq_s3_upload *u, char *err, size_t errlen) {
  const erpq_s3_conf *cf = &u->s3->conf;
  int rc;
  if (!u->upload_id) {
    rc = s3_mpu_create(u->s3, u->conn, u->key, u->content_type, u->content_disposition, cancel_stop,
                       u, &u->upload_id, err, errlen);
    if (rc)
      return fail(u, rc, err, err, errlen);
    if (pthread_create(&u->thread, NULL, helper, u) != 0)
      return fail(u, -EAGAIN, "cannot start the S3 upload thread", err, errlen);
    u->thread_started = 1;
  }
  if (u->nparts >= ERPQ_S3_MAX_PARTS) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "the object needs more than %d parts of %llu bytes; raise ERPQ_S3_PART_SIZE",
             ERPQ_S3_MAX_PARTS, (unsigned long long)cf->part_size);
    return fail(u, -EFBIG, msg, err, errlen);
  }
  if ((rc = wait_slot(u, err, errlen)))
    return rc;
  if (cancelled_now(u))
    return fail(u, -ECANCELED, "S3 upload cancelled", err, errlen);
  if (u->nparts == u->cap_parts) {
    int cap = u->cap_parts ? u->cap_parts * 2 : 16;
    char **p = realloc(u->etags, (size_t)cap * sizeof *p);
    if (!p)
      return fail(u, -ENOMEM, "out of memory", err, errlen);
    memset(p + u->cap_parts, 0, (size_t)(cap - u->cap_parts) * sizeof *p);
    u->etags = p;
    u->cap_parts = cap;
  }
  unsigned char *next = u->spare ? u->spare : malloc(cf->part_size);
  if (!next)
    return fail(u, -ENOMEM, "out of memory for an S3 part buffer", err, errlen);
  u->spare = NULL;
  pthread_mutex_lock(&u->mu);
  u->job.buf = u->fill;
  u->job.len = u->fill_len;
  u->job.partno = ++u->nparts;
  u->job.state = JOB_QUEUED;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  u->fill = next;
  u->fill_len = 0;
  return 0;
}

/* ---- public -------------------------------------------------------------- */

int erpq_s3_upload_begin(const erpq_s3 *s3, const char *key, const char *content_type,
                         const char *content_disposition, const erpq_s3_cancel *cancel,
                         erpq_s3_upload **out, char *err, size_t errlen) {
  *out = NULL;
  if (!key || !*key || strlen(key) > 1024)
    return erpq_fail(err, errlen, -EINVAL, "the S3 object key must be 1 to 1024 bytes");
  if (!s3_header_ok(content_type) || !s3_header_ok(content_disposition))
    return erpq_fail(err, errlen, -EINVAL, "a content type or disposition contains a line break");
  if (s3->conf.part_size > SIZE_MAX / 2)
    return erpq_fail(err, errlen, -EINVAL, "the S3 part size does not fit in memory");
  erpq_s3_upload *u = calloc(1, sizeof *u);
  if (!u)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  u->s3 = s3;
  u->key = strdup(key);
  u->content_type = content_type ? strdup(content_type) : NULL;
  u->content_disposition = content_disposition ? strdup(content_disposition) : NULL;
  u->fill = malloc(s3->conf.part_size);
  u->conn = s3_conn_new();
  u->sha = EVP_MD_CTX_new();
  if (u->sha && EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(u->sha);
    u->sha = NULL;
  }
  if (cancel && cancel->cancelled) {
    u->cancel = *cancel;
    u->has_cancel = 1;
  }
  atomic_init(&u->stop, 0);
  int mu_ok = pthread_mutex_init(&u->mu, NULL) == 0;
  int cv_ok = mu_ok && pthread_cond_init(&u->cv, NULL) == 0;
  if (!u->key || (content_type && !u->content_type) ||
      (content_disposition && !u->content_disposition) || !u->fill || !u->conn || !u->sha ||
      !cv_ok) {
    if (cv_ok)
      pthread_cond_destroy(&u->cv);
    if (mu_ok)
      pthread_mutex_destroy(&u->mu);
    s3_conn_free(u->conn);
    EVP_MD_CTX_free(u->sha);
    free(u->fill);
    free(u->key);
    free(u->content_type);
    free(u->content_disposition);
    free(u);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  u->last_poll_ms = erpq_mono_ms();
  *out = u;
  return 0;
}

int erpq_s3_upload_write(erpq_s3_upload *u, const void *buf, size_t len, char *err, size_t errlen) {
  if (u->failed)
    return erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
  int64_t now = erpq_mono_ms();
  if (now - u->last_poll_ms >= CANCEL_POLL_MS) {
    u->last_poll_ms = now;
    if (cancelled_now(u))
      return fail(u, -ECANCELED, "S3 upload cancelled", err, errlen);
  }
  const unsigned char *p = buf;
  size_t part = (size_t)u->s3->conf.part_size;
  while (len > 0) {
    if (u->fill_len == part) { /* Full, and more is coming: send it. */
      int rc = ship(u, err, errlen);
      if (rc)
        return rc;
    }
    size_t n = part - u->fill_len;
    if (n > len)
      n = len;
    memcpy(u->fill + u->fill_len, p, n);
    if (EVP_DigestUpdate(u->sha, p, n) != 1)
      return fail(u, -ENOMEM, "SHA-256 failed", err, errlen);
    u->fill_len += n;
    u->total += n;
    p += n;
    len -= n;
  }
  return 0;
}

static void upload_free(erpq_s3_upload *u) {
  stop_helper(u);
  s3_conn_free(u->conn);
  EVP_MD_CTX_free(u->sha);
  for (int i = 0; i < u->cap_parts; i++)
    free(u->etags[i]);
  free(u->etags);
  free(u->upload_id);
  free(u->fill);
  free(u->spare);
  free(u->key);
  free(u->content_type);
  free(u->content_disposition);
  pthread_cond_destroy(&u->cv);
  pthread_mutex_destroy(&u->mu);
  free(u);
}

void erpq_s3_upload_abort(erpq_s3_upload *u) {
  if (!u)
    return;
  atomic_store(&u->stop, 1);
  stop_helper(u); /* The part in flight ends at its next progress check. */
  if (u->upload_id)
    s3_mpu_abort(u->s3, u->conn, u->key, u->upload_id);
  upload_free(u);
}

int erpq_s3_upload_finish(erpq_s3_upload *u, erpq_s3_result *res, char *err, size_t errlen) {
  erpq_s3_result r = {0};
  int rc = 0;
  if (res)
    memset(res, 0, sizeof *res);
  if (u->failed) {
    rc = erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
    goto failed;
  }
  if (cancelled_now(u)) {
    rc = erpq_fail(err, errlen, -ECANCELED, "S3 upload cancelled");
    goto failed;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_DigestFinal_ex(u->sha, md, &mdlen) != 1 || mdlen != 32) {
    rc = erpq_fail(err, errlen, -ENOMEM, "SHA-256 failed");
    goto failed;
  }
  erpq_sigv4_hex(md, mdlen, r.sha256);
  if (!u->upload_id) { /* Fits in one part: one PutObject. */
    s3_call c = {.method = "PUT",
                 .key = u->key,
                 .what = "PutObject",
                 .mem = u->fill,
                 .len = u->fill_len,
                 .fd = -1,
                 .sink_fd = -1,
                 .content_type = u->content_type,
                 .content_disposition = u->content_disposition,
                 .object_headers = 1,
                 .stop = cancel_stop,
                 .stop_ud = u};
    rc = s3_call_run(u->s3, u->conn, &c, err, errlen);
    if (rc == 0)
      s3_etag_unquote(c.etag, r.etag, sizeof r.etag);
    s3_call_free(&c);
    if (rc)
      goto failed;
  } else {
    if (u->fill_len > 0 && (rc = ship(u, err, errlen)))
      goto failed;
    if ((rc = wait_slot(u, err, errlen)))
      goto failed;
    stop_helper(u);
    rc = s3_mpu_complete(u->s3, u->conn, u->key, u->upload_id, u->etags, u->nparts, cancel_stop, u,
                         r.etag, sizeof r.etag, err, errlen);
    if (rc)
      goto failed;
    r.parts = u->nparts;
  }
  r.bytes = u->total;
  if (res)
    *res = r;
  upload_free(u);
  return 0;
failed:
  erpq_s3_upload_abort(u);
  return rc;
}
