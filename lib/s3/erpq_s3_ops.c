/* erpq_s3_ops.c - single-request operations and the multipart steps. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_s3_internal.h"
#include "erpq_sigv4.h"

static int cancel_stop(void *ud) {
  const erpq_s3_cancel *c = ud;
  return c && c->cancelled && c->cancelled(c->ud);
}

static int key_ok(const char *key, char *err, size_t errlen) {
  if (!key || !*key)
    return erpq_fail(err, errlen, -EINVAL, "empty S3 object key");
  if (strlen(key) > 1024)
    return erpq_fail(err, errlen, -EINVAL, "S3 object keys are at most 1024 bytes");
  return 0;
}

int erpq_s3_head(const erpq_s3 *s3, const char *key, erpq_s3_info *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  int rc = key_ok(key, err, errlen);
  if (rc)
    return rc;
  s3_conn *conn = s3_conn_new();
  if (!conn)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  s3_call c = {.method = "HEAD", .key = key, .what = "HeadObject", .fd = -1, .sink_fd = -1};
  rc = s3_call_run(s3, conn, &c, err, errlen);
  if (rc == 0) {
    out->exists = 1;
    out->size = c.content_length;
    snprintf(out->content_type, sizeof out->content_type, "%s", c.content_type_out);
    s3_etag_unquote(c.etag, out->etag, sizeof out->etag);
  } else if (rc == -ENOENT) {
    rc = 0;
    if (err && errlen)
      err[0] = '\0';
  }
  s3_call_free(&c);
  s3_conn_free(conn);
  return rc;
}

int erpq_s3_get_to_file(const erpq_s3 *s3, const char *key, const char *path,
                        const erpq_s3_cancel *cancel, uint64_t *bytes, char *err, size_t errlen) {
  if (bytes)
    *bytes = 0;
  int rc = key_ok(key, err, errlen);
  if (rc)
    return rc;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    return erpq_fail(err, errlen, -e, "cannot create %s: %s", path, strerror(e));
  }
  s3_conn *conn = s3_conn_new();
  if (!conn) {
    close(fd);
    unlink(path);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  s3_call c = {.method = "GET",
               .key = key,
               .what = "GetObject",
               .fd = -1,
               .sink_fd = fd,
               .stop = cancel ? cancel_stop : NULL,
               .stop_ud = (void *)cancel};
  rc = s3_call_run(s3, conn, &c, err, errlen);
  if (rc == 0 && fsync(fd) != 0) {
    int e = errno;
    rc = erpq_fail(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
  }
  if (close(fd) != 0 && rc == 0) {
    int e = errno;
    rc = erpq_fail(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
  }
  if (rc == 0 && bytes)
    *bytes = c.received;
  if (rc)
    unlink(path);
  s3_call_free(&c);
  s3_conn_free(conn);
  return rc;
}

int erpq_s3_delete(const erpq_s3 *s3, const char *key, char *err, size_t errlen) {
  int rc = key_ok(key, err, errlen);
  if (rc)
    return rc;
  s3_conn *conn = s3_conn_new();
  if (!conn)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  s3_call c = {.method = "DELETE", .key = key, .what = "DeleteObject", .fd = -1, .sink_fd = -1};
  rc = s3_call_run(s3, conn, &c, err, errlen);
  if (rc == -ENOENT)
    rc = 0;
  s3_call_free(&c);
  s3_conn_free(conn);
  return rc;
}

int erpq_s3_presign_get(const erpq_s3 *s3, const char *key, const char *file_name,
                        int64_t expires_s, int64_t now, char **url, char *err, size_t errlen) {
  *url = NULL;
  int rc = key_ok(key, err, errlen);
  if (rc)
    return rc;
  const erpq_s3_conf *cf = &s3->conf;
  erpq_sigv4_presign p = {
      {cf->endpoint, cf->addressing == ERPQ_S3_VIRTUAL, cf->bucket, key},
      {cf->access_key_id, cf->secret_access_key, cf->session_token, cf->region, "s3"},
      file_name,
      expires_s,
      now};
  return erpq_sigv4_presign_url(&p, url, err, errlen);
}

/* ---- multipart steps ----------------------------------------------------- */

char *s3_part_query(int partno, const char *upload_id) {
  erpq_buf q = {0};
  erpq_buf_addf(&q, "partNumber=%d&uploadId=", partno);
  erpq_sigv4_uri_encode(&q, upload_id, strlen(upload_id), 0);
  return erpq_buf_take(&q);
}

int s3_mpu_create(const erpq_s3 *s3, s3_conn *conn, const char *key, const char *content_type,
                  const char *content_disposition, s3_stop_fn stop, void *stop_ud, char **upload_id,
                  char *err, size_t errlen) {
  *upload_id = NULL;
  s3_call c = {.method = "POST",
               .key = key,
               .query = "uploads=",
               .what = "CreateMultipartUpload",
               .fd = -1,
               .sink_fd = -1,
               .content_type = content_type,
               .content_disposition = content_disposition,
               .object_headers = 1,
               .stop = stop,
               .stop_ud = stop_ud};
  int rc = s3_call_run(s3, conn, &c, err, errlen);
  if (rc == 0) {
    char id[1024];
    if (!c.resp.s || s3_xml_text(c.resp.s, "UploadId", id, sizeof id) || !id[0])
      rc = erpq_fail(err, errlen, -EPROTO, "S3 CreateMultipartUpload answered no UploadId");
    else if (!(*upload_id = strdup(id)))
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  s3_call_free(&c);
  return rc;
}

static void xml_escape(erpq_buf *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': erpq_buf_adds(b, "&amp;"); break;
    case '<': erpq_buf_adds(b, "&lt;"); break;
    case '>': erpq_buf_adds(b, "&gt;"); break;
    default: erpq_buf_add(b, s, 1);
    }
  }
}

int s3_mpu_complete(const erpq_s3 *s3, s3_conn *conn, const char *key, const char *upload_id,
                    char *const *etags, int nparts, s3_stop_fn stop, void *stop_ud, char *etag,
                    size_t etaglen, char *err, size_t errlen) {
  erpq_buf body = {0}, query = {0};
  erpq_buf_adds(&body, "<CompleteMultipartUpload>");
  for (int i = 0; i < nparts; i++) {
    erpq_buf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
    xml_escape(&body, etags[i] ? etags[i] : "");
    erpq_buf_adds(&body, "</ETag></Part>");
  }
  erpq_buf_adds(&body, "</CompleteMultipartUpload>");
  erpq_buf_adds(&query, "uploadId=");
  erpq_sigv4_uri_encode(&query, upload_id, strlen(upload_id), 0);
  int rc = 0;
  if (body.oom || query.oom) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto done;
  }
  s3_call c = {.method = "POST",
               .key = key,
               .query = query.s,
               .what = "CompleteMultipartUpload",
               .mem = (const unsigned char *)body.s,
               .len = body.len,
               .fd = -1,
               .sink_fd = -1,
               .content_type = "application/xml",
               .stop = stop,
               .stop_ud = stop_ud};
  rc = s3_call_run(s3, conn, &c, err, errlen);
  if (rc == 0) {
    char raw[256] = "";
    if (c.resp.s)
      s3_xml_text(c.resp.s, "ETag", raw, sizeof raw);
    s3_etag_unquote(raw, etag, etaglen);
  }
  s3_call_free(&c);
done:
  erpq_buf_free(&body);
  erpq_buf_free(&query);
  return rc;
}

void s3_mpu_abort(const erpq_s3 *s3, s3_conn *conn, const char *key, const char *upload_id) {
  erpq_buf query = {0};
  erpq_buf_adds(&query, "uploadId=");
  erpq_sigv4_uri_encode(&query, upload_id, strlen(upload_id), 0);
  if (query.oom) {
    erpq_buf_free(&query);
    return;
  }
  s3_call c = {.method = "DELETE",
               .key = key,
               .query = query.s,
               .what = "AbortMultipartUpload",
               .fd = -1,
               .sink_fd = -1};
  char err[256];
  int rc = s3_call_setup(s3, conn->easy, &c, err, sizeof err);
  if (rc == 0) {
    /* One try, bounded: abort runs after a cancel or a failure. */
    curl_easy_setopt(conn->easy, CURLOPT_TIMEOUT, s3->conf.stall_timeout_s);
    rc = s3_call_done(s3, conn->easy, &c, s3_perform(conn, &c), err, sizeof err);
  }
  if (rc)
    s3_log(s3,
           "S3 AbortMultipartUpload refused (%s); the parts stay until the bucket's "
           "lifecycle rule removes incomplete uploads",
           err);
  s3_call_free(&c);
  erpq_buf_free(&query);
}
