/*
 * erpq_s3_putfile.c - uploading a finished file: one PutObject up to a
 * part size, else multipart with up to conf.parallel parts in flight on a
 * curl multi handle driven by the caller's thread.
 *
 * The file is read twice: once in order to hash it (the whole object's
 * SHA-256 and each part's, which its x-amz-content-sha256 header needs
 * before the part is sent) and once by the transfers, with pread(), so
 * parts in flight never share a file position. A part that fails in a way
 * worth retrying waits its backoff while the other slots keep going.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "erpq_err.h"
#include "erpq_s3_internal.h"
#include "erpq_sigv4.h"
#include "erpq_util.h"

#define HASH_CHUNK (1024 * 1024) /* Bytes read at a time while hashing. */
#define POLL_MS 50               /* Longest wait in curl_multi_poll. */

enum { PART_PENDING, PART_RUNNING, PART_DONE };

typedef struct part {
  int no;
  off_t off;
  uint64_t len;
  char sha[65];
  char what[40];
  char *query;
  s3_call call;
  int state;
  int attempts;
  int64_t not_before; /* Monotonic ms before which a retry waits. */
  char err[256];
} part;

static int cancel_stop(void *ud) {
  const erpq_s3_cancel *c = ud;
  return c && c->cancelled && c->cancelled(c->ud);
}

/* Hashes the file: the whole object into whole, part i into parts[i].sha. */
static int hash_file(int fd, uint64_t size, part *parts, int nparts, char whole[65],
                     const erpq_s3_cancel *cancel, char *err, size_t errlen) {
  EVP_MD_CTX *all = EVP_MD_CTX_new(), *one = EVP_MD_CTX_new();
  unsigned char *buf = malloc(HASH_CHUNK);
  int rc = 0;
  if (!all || !one || !buf || EVP_DigestInit_ex(all, EVP_sha256(), NULL) != 1) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto done;
  }
  uint64_t pos = 0;
  int nranges = nparts ? nparts : 1; /* No parts: the whole file in one go. */
  for (int i = 0; i < nranges; i++) {
    uint64_t end = nparts ? (uint64_t)parts[i].off + parts[i].len : size;
    if (nparts && EVP_DigestInit_ex(one, EVP_sha256(), NULL) != 1) {
      rc = erpq_fail(err, errlen, -ENOMEM, "SHA-256 failed");
      goto done;
    }
    while (pos < end) {
      if (cancel_stop((void *)cancel)) {
        rc = erpq_fail(err, errlen, -ECANCELED, "S3 upload cancelled");
        goto done;
      }
      size_t want = end - pos > HASH_CHUNK ? HASH_CHUNK : (size_t)(end - pos);
      ssize_t got = pread(fd, buf, want, (off_t)pos);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        rc = erpq_fail(err, errlen, got < 0 ? -errno : -EIO, "cannot read the file to upload: %s",
                       got < 0 ? strerror(errno) : "it is shorter than its size");
        goto done;
      }
      if (EVP_DigestUpdate(all, buf, (size_t)got) != 1 ||
          (nparts && EVP_DigestUpdate(one, buf, (size_t)got) != 1)) {
        rc = erpq_fail(err, errlen, -ENOMEM, "SHA-256 failed");
        goto done;
      }
      pos += (uint64_t)got;
    }
    if (nparts) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int n = 0;
      EVP_DigestFinal_ex(one, md, &n);
      erpq_sigv4_hex(md, n, parts[i].sha);
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(all, md, &n);
  erpq_sigv4_hex(md, n, whole);
done:
  EVP_MD_CTX_free(all);
  EVP_MD_CTX_free(one);
  free(buf);
  return rc;
}

static void slots_free(CURLM *multi, CURL **easy, part **busy, int n) {
  for (int i = 0; i < n; i++) {
    if (busy[i])
      curl_multi_remove_handle(multi, easy[i]);
    if (easy[i])
      curl_easy_cleanup(easy[i]);
  }
}

/* Sends every part; etags[i] gets part i+1's ETag. */
static int send_parts(const erpq_s3 *s3, const char *key, const char *upload_id, int fd,
                      part *parts, int nparts, char **etags, const erpq_s3_cancel *cancel,
                      char *err, size_t errlen) {
  const erpq_s3_conf *cf = &s3->conf;
  int nslots = cf->parallel < nparts ? cf->parallel : nparts;
  CURLM *multi = curl_multi_init();
  CURL **easy = calloc((size_t)nslots, sizeof *easy);
  part **busy = calloc((size_t)nslots, sizeof *busy);
  unsigned seed = (unsigned)erpq_mono_ms();
  int rc = 0, done = 0, next = 0;
  if (!multi || !easy || !busy) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nslots; i++)
    if (!(easy[i] = s3_easy())) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
  for (int i = 0; i < nparts; i++) {
    snprintf(parts[i].what, sizeof parts[i].what, "UploadPart %d", parts[i].no);
    if (!(parts[i].query = s3_part_query(parts[i].no, upload_id))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      goto out;
    }
  }
  while (done < nparts) {
    if (cancel_stop((void *)cancel)) {
      rc = erpq_fail(err, errlen, -ECANCELED, "S3 upload cancelled");
      goto out;
    }
    /* Fill free slots: parts in order, a waiting retry once its time came. */
    int64_t now = erpq_mono_ms();
    for (int s = 0; s < nslots; s++) {
      if (busy[s])
        continue;
      part *p = NULL;
      for (int i = 0; i < next && !p; i++)
        if (parts[i].state == PART_PENDING && parts[i].not_before <= now)
          p = &parts[i];
      if (!p && next < nparts)
        p = &parts[next++];
      if (!p)
        break;
      s3_call_free(&p->call); /* A retry: what the last attempt allocated. */
      p->call = (s3_call){.method = "PUT",
                          .key = key,
                          .query = p->query,
                          .what = p->what,
                          .fd = fd,
                          .off = p->off,
                          .len = p->len,
                          .sha256 = p->sha,
                          .sink_fd = -1,
                          .stop = cancel ? cancel_stop : NULL,
                          .stop_ud = (void *)cancel};
      if ((rc = s3_call_setup(s3, easy[s], &p->call, err, errlen)))
        goto out;
      curl_easy_setopt(easy[s], CURLOPT_PRIVATE, p);
      if (curl_multi_add_handle(multi, easy[s]) != CURLM_OK) {
        rc = erpq_fail(err, errlen, -ENOMEM, "curl refused a transfer");
        goto out;
      }
      p->state = PART_RUNNING;
      p->attempts++;
      busy[s] = p;
    }
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      rc = erpq_fail(err, errlen, -EIO, "curl multi failed");
      goto out;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
      if (m->msg != CURLMSG_DONE)
        continue;
      int s = 0;
      while (s < nslots && easy[s] != m->easy_handle)
        s++;
      if (s == nslots)
        continue;
      part *p = busy[s];
      CURLcode cr = m->data.result; /* Read before the handle is removed. */
      curl_multi_remove_handle(multi, easy[s]);
      busy[s] = NULL;
      int prc = s3_call_done(s3, easy[s], &p->call, cr, p->err, sizeof p->err);
      if (prc == 0 && !p->call.etag[0])
        prc = erpq_fail(p->err, sizeof p->err, -EPROTO, "S3 %s answered no ETag", p->what);
      if (prc == 0 && !(etags[p->no - 1] = strdup(p->call.etag)))
        prc = erpq_fail(p->err, sizeof p->err, -ENOMEM, "out of memory");
      if (prc == 0) {
        p->state = PART_DONE;
        s3_call_free(&p->call);
        done++;
      } else if (p->call.retryable && p->attempts < cf->max_tries) {
        long wait = s3_backoff_ms(s3, p->attempts + 1, &seed);
        s3_log(s3, "S3 %s: attempt %d of %d failed (%s); trying again in %ld ms", p->what,
               p->attempts, cf->max_tries, p->err, wait);
        p->state = PART_PENDING;
        p->not_before = erpq_mono_ms() + wait;
      } else {
        rc = erpq_fail(err, errlen, prc, "%s", p->err);
        goto out;
      }
    }
    if (done < nparts && curl_multi_poll(multi, NULL, 0, POLL_MS, NULL) != CURLM_OK) {
      rc = erpq_fail(err, errlen, -EIO, "curl multi poll failed");
      goto out;
    }
  }
out:
  if (multi) {
    if (easy && busy)
      slots_free(multi, easy, busy, nslots);
    curl_multi_cleanup(multi);
  } else if (easy) {
    for (int i = 0; i < nslots; i++)
      if (easy[i])
        curl_easy_cleanup(easy[i]);
  }
  for (int i = 0; i < nparts; i++)
    s3_call_free(&parts[i].call);
  free(easy);
  free(busy);
  return rc;
}

int erpq_s3_put_file(const erpq_s3 *s3, const char *key, const char *path, const char *content_type,
                     const char *content_disposition, const erpq_s3_cancel *cancel,
                     erpq_s3_result *res, char *err, size_t errlen) {
  const erpq_s3_conf *cf = &s3->conf;
  erpq_s3_result r = {0};
  if (res)
    memset(res, 0, sizeof *res);
  if (!key || !*key || strlen(key) > 1024)
    return erpq_fail(err, errlen, -EINVAL, "the S3 object key must be 1 to 1024 bytes");
  if (!s3_header_ok(content_type) || !s3_header_ok(content_disposition))
    return erpq_fail(err, errlen, -EINVAL, "a content type or disposition contains a line break");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return erpq_fail(err, errlen, -e, "cannot open %s: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return erpq_fail(err, errlen, -EINVAL, "%s is not a regular file", path);
  }
  uint64_t size = (uint64_t)st.st_size, ps = cf->part_size;
  if (size > ps && (size + ps - 1) / ps > ERPQ_S3_MAX_PARTS) {
    ps = (size + ERPQ_S3_MAX_PARTS - 1) / ERPQ_S3_MAX_PARTS;
    ps = (ps + ERPQ_S3_MIB - 1) / ERPQ_S3_MIB * ERPQ_S3_MIB;
    if (ps > ERPQ_S3_PART_MAX) {
      close(fd);
      return erpq_fail(err, errlen, -EFBIG, "%s is too big for one S3 object", path);
    }
  }
  int nparts = size > ps ? (int)((size + ps - 1) / ps) : 0;
  part *parts = nparts ? calloc((size_t)nparts, sizeof *parts) : NULL;
  char **etags = nparts ? calloc((size_t)nparts, sizeof *etags) : NULL;
  s3_conn *conn = s3_conn_new();
  char *upload_id = NULL;
  int rc = 0;
  if ((nparts && (!parts || !etags)) || !conn) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < nparts; i++) {
    parts[i].no = i + 1;
    parts[i].off = (off_t)((uint64_t)i * ps);
    parts[i].len = (uint64_t)i + 1 < (uint64_t)nparts ? ps : size - (uint64_t)i * ps;
  }
  if ((rc = hash_file(fd, size, parts, nparts, r.sha256, cancel, err, errlen)))
    goto done;
  r.bytes = size;

  if (nparts == 0) {
    s3_call c = {.method = "PUT",
                 .key = key,
                 .what = "PutObject",
                 .fd = fd,
                 .len = size,
                 .sha256 = r.sha256,
                 .sink_fd = -1,
                 .content_type = content_type,
                 .content_disposition = content_disposition,
                 .object_headers = 1,
                 .stop = cancel ? cancel_stop : NULL,
                 .stop_ud = (void *)cancel};
    rc = s3_call_run(s3, conn, &c, err, errlen);
    if (rc == 0)
      s3_etag_unquote(c.etag, r.etag, sizeof r.etag);
    s3_call_free(&c);
    goto done;
  }
  rc = s3_mpu_create(s3, conn, key, content_type, content_disposition, cancel ? cancel_stop : NULL,
                     (void *)cancel, &upload_id, err, errlen);
  if (rc)
    goto done;
  rc = send_parts(s3, key, upload_id, fd, parts, nparts, etags, cancel, err, errlen);
  if (rc == 0)
    rc = s3_mpu_complete(s3, conn, key, upload_id, etags, nparts, cancel ? cancel_stop : NULL,
                         (void *)cancel, r.etag, sizeof r.etag, err, errlen);
  if (rc)
    s3_mpu_abort(s3, conn, key, upload_id);
  else
    r.parts = nparts;
done:
  if (rc == 0 && res)
    *res = r;
  for (int i = 0; etags && i < nparts; i++)
    free(etags[i]);
  for (int i = 0; parts && i < nparts; i++)
    free(parts[i].query);
  free(etags);
  free(parts);
  free(upload_id);
  s3_conn_free(conn);
  close(fd);
  return rc;
}
