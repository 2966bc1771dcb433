/* erpq_s3_http.c - one S3 request on a curl easy handle, and its retries. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_s3_internal.h"
#include "erpq_sigv4.h"
#include "erpq_util.h"

#define UPLOAD_BUFFER (256 * 1024) /* curl's upload buffer, bytes (default 64 KiB). */

#define STOP_POLL_MS 20 /* Longest wait between two looks at the stop function. */

CURL *s3_easy(void) { return curl_easy_init(); }

s3_conn *s3_conn_new(void) {
  s3_conn *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->easy = curl_easy_init();
  h->multi = curl_multi_init();
  if (!h->easy || !h->multi) {
    s3_conn_free(h);
    return NULL;
  }
  return h;
}

void s3_conn_free(s3_conn *h) {
  if (!h)
    return;
  if (h->multi)
    curl_multi_cleanup(h->multi);
  if (h->easy)
    curl_easy_cleanup(h->easy);
  free(h);
}

CURLcode s3_perform(s3_conn *h, s3_call *c) {
  if (curl_multi_add_handle(h->multi, h->easy) != CURLM_OK)
    return CURLE_FAILED_INIT;
  CURLcode res = CURLE_OK;
  for (;;) {
    int running = 0, left = 0, done = 0;
    if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
      res = CURLE_OUT_OF_MEMORY;
      break;
    }
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &left)))
      if (m->msg == CURLMSG_DONE && m->easy_handle == h->easy) {
        res = m->data.result;
        done = 1;
      }
    if (done)
      break;
    if (c->stop && c->stop(c->stop_ud)) {
      res = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    if (curl_multi_poll(h->multi, NULL, 0, STOP_POLL_MS, NULL) != CURLM_OK) {
      res = CURLE_OUT_OF_MEMORY;
      break;
    }
  }
  curl_multi_remove_handle(h->multi, h->easy);
  return res;
}

void s3_log(const erpq_s3 *s3, const char *fmt, ...) {
  if (!s3->conf.log)
    return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s3->conf.log(s3->conf.log_ud, line);
}

int s3_header_ok(const char *v) { return !v || strcspn(v, "\r\n") == strlen(v); }

/* ---- curl callbacks ------------------------------------------------------ */

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
  s3_call *c = ud;
  uint64_t left = c->len - c->pos;
  size_t n = size * nitems;
  if (n > left)
    n = (size_t)left;
  if (n == 0)
    return 0;
  if (c->fd >= 0) {
    ssize_t got;
    do
      got = pread(c->fd, buf, n, c->off + (off_t)c->pos);
    while (got < 0 && errno == EINTR);
    if (got <= 0) { /* The file shrank or broke. */
      c->read_failed = 1;
      return CURL_READFUNC_ABORT;
    }
    n = (size_t)got;
  } else {
    memcpy(buf, c->mem + c->pos, n);
  }
  c->pos += n;
  return n;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
  s3_call *c = ud;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > c->len)
    return CURL_SEEKFUNC_FAIL;
  c->pos = (uint64_t)offset;
  return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
  s3_call *c = ud;
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
  if (c->sink_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = write(c->sink_fd, data + done, n - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        c->write_failed = w < 0 ? errno : EIO;
        return 0;
      }
      done += (size_t)w;
    }
    c->received += n;
    return n;
  }
  if (c->resp.len + n <= S3_RESP_CAP)
    erpq_buf_add(&c->resp, data, n);
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  s3_call *c = ud;
  return (c->stop && c->stop(c->stop_ud)) ? 1 : 0;
}

/* ---- setup --------------------------------------------------------------- */

/* Appends "name: value" (session tokens run to a few kilobytes). */
static int add_header(s3_call *c, const char *name, const char *value) {
  erpq_buf line = {0};
  erpq_buf_addf(&line, "%s: %s", name, value);
  struct curl_slist *h = line.oom ? NULL : curl_slist_append(c->headers, line.s);
  erpq_buf_free(&line);
  if (!h)
    return -ENOMEM;
  c->headers = h;
  return 0;
}

void s3_call_free(s3_call *c) {
  curl_slist_free_all(c->headers);
  c->headers = NULL;
  erpq_buf_free(&c->url);
  erpq_buf_free(&c->resp);
}

void s3_call_reset_response(s3_call *c) {
  c->status = 0;
  erpq_buf_reset(&c->resp);
  c->etag[0] = c->content_type_out[0] = '\0';
  c->content_length = c->received = 0;
  c->write_failed = 0;
  c->read_failed = 0;
  c->retryable = 0;
  c->pos = 0;
}

#define SETOPT(opt, val)                                                                           \
  do {                                                                                             \
    if (curl_easy_setopt(easy, opt, val) != CURLE_OK)                                              \
      goto curl_failed;                                                                            \
  } while (0)

int s3_call_setup(const erpq_s3 *s3, CURL *easy, s3_call *c, char *err, size_t errlen) {
  const erpq_s3_conf *cf = &s3->conf;
  curl_slist_free_all(c->headers);
  c->headers = NULL;
  erpq_buf_free(&c->url);
  s3_call_reset_response(c);
  c->easy = easy;
  c->curl_err[0] = '\0';
  if (!s3_header_ok(c->content_type) || !s3_header_ok(c->content_disposition))
    return erpq_fail(err, errlen, -EINVAL, "S3 %s: a header value contains a line break", c->what);

  erpq_sigv4_target t = {cf->endpoint, cf->addressing == ERPQ_S3_VIRTUAL, cf->bucket, c->key};
  int rc = erpq_sigv4_object_url(&t, &c->url, NULL, NULL, err, errlen);
  if (rc)
    return rc;
  if (c->query) {
    erpq_buf_adds(&c->url, "?");
    erpq_buf_adds(&c->url, c->query);
  }
  if (c->url.oom)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");

  const char *sha = c->sha256;
  if (!sha) {
    if (c->len && c->fd >= 0)
      return erpq_fail(err, errlen, -EINVAL, "S3 %s: no hash for a file body", c->what);
    erpq_sigv4_sha256_hex(c->mem ? (const void *)c->mem : "", c->mem ? (size_t)c->len : 0,
                          c->sha_buf);
    sha = c->sha_buf;
  }
  /* Every request carries its payload hash: curl signs it instead of the
   * hash of an empty body. */
  rc = add_header(c, "x-amz-content-sha256", sha);
  if (!rc && cf->session_token[0])
    rc = add_header(c, "x-amz-security-token", cf->session_token);
  if (!rc && c->object_headers) {
    rc = add_header(c, "Content-Type",
                    c->content_type && *c->content_type ? c->content_type
                                                        : "application/octet-stream");
    if (!rc && c->content_disposition && *c->content_disposition)
      rc = add_header(c, "Content-Disposition", c->content_disposition);
    if (!rc && cf->sse == ERPQ_S3_SSE_AES256)
      rc = add_header(c, "x-amz-server-side-encryption", "AES256");
    if (!rc && cf->sse == ERPQ_S3_SSE_KMS)
      rc = add_header(c, "x-amz-server-side-encryption", "aws:kms");
    if (!rc && cf->sse == ERPQ_S3_SSE_KMS && cf->sse_kms_key_id[0])
      rc = add_header(c, "x-amz-server-side-encryption-aws-kms-key-id", cf->sse_kms_key_id);
  } else if (!rc && c->content_type) {
    rc = add_header(c, "Content-Type", c->content_type);
  }
  if (rc)
    return erpq_fail(err, errlen, rc, "out of memory");

  curl_easy_reset(easy);
  SETOPT(CURLOPT_URL, c->url.s);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_PATH_AS_IS, 1L); /* Keys are data: no "/../" squashing. */
  SETOPT(CURLOPT_AWS_SIGV4, s3->sigv4);
  SETOPT(CURLOPT_USERNAME, cf->access_key_id);
  SETOPT(CURLOPT_PASSWORD, cf->secret_access_key);
  SETOPT(CURLOPT_HTTPHEADER, c->headers);
  SETOPT(CURLOPT_ERRORBUFFER, c->curl_err);
  SETOPT(CURLOPT_CONNECTTIMEOUT, cf->connect_timeout_s);
  SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
  SETOPT(CURLOPT_LOW_SPEED_TIME, cf->stall_timeout_s);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, c);
  SETOPT(CURLOPT_NOPROGRESS, 0L);
  SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
  SETOPT(CURLOPT_XFERINFODATA, c);
  if (strcmp(c->method, "HEAD") == 0) {
    SETOPT(CURLOPT_NOBODY, 1L);
  } else if (strcmp(c->method, "DELETE") == 0) {
    SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
  } else if (strcmp(c->method, "PUT") == 0) {
    SETOPT(CURLOPT_UPLOAD, 1L);
    SETOPT(CURLOPT_READFUNCTION, on_read);
    SETOPT(CURLOPT_READDATA, c);
    SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
    SETOPT(CURLOPT_SEEKDATA, c);
    SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->len);
    SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
  } else if (strcmp(c->method, "POST") == 0) {
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_POSTFIELDS, c->mem ? (const char *)c->mem : "");
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(c->mem ? c->len : 0));
  } else if (strcmp(c->method, "GET") != 0) {
    return erpq_fail(err, errlen, -EINVAL, "S3: unknown method %s", c->method);
  }
  return 0;
curl_failed:
  return erpq_fail(err, errlen, -EINVAL, "S3 %s: libcurl refused an option", c->what);
}

/* ---- outcome ------------------------------------------------------------- */

static int transient_code(const char *code) {
  static const char *const codes[] = {"InternalError", "SlowDown", "ServiceUnavailable",
                                      "RequestTimeout", "RequestTimeTooSkewed"};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (strcmp(code, codes[i]) == 0)
      return 1;
  return 0;
}

int s3_call_done(const erpq_s3 *s3, CURL *easy, s3_call *c, CURLcode rc, char *err, size_t errlen) {
  c->retryable = 0;
  c->status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &c->status);
  if (rc != CURLE_OK) {
    const char *detail = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_ABORTED_BY_CALLBACK:
      if (c->read_failed)
        return erpq_fail(err, errlen, -EIO, "S3 %s: cannot read the data to upload", c->what);
      return erpq_fail(err, errlen, -ECANCELED, "S3 %s: cancelled", c->what);
    case CURLE_WRITE_ERROR:
      if (c->write_failed)
        return erpq_fail(err, errlen, -c->write_failed, "S3 %s: cannot write the download: %s",
                         c->what, strerror(c->write_failed));
      break;
    case CURLE_READ_ERROR:
      return erpq_fail(err, errlen, -EIO, "S3 %s: cannot read the data to upload", c->what);
    case CURLE_COULDNT_CONNECT:
      c->retryable = 1;
      return erpq_fail(err, errlen, -ECONNREFUSED, "S3 %s: cannot connect to %s: %s", c->what,
                       s3->conf.endpoint, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
      c->retryable = 1;
      return erpq_fail(err, errlen, -EHOSTUNREACH, "S3 %s: cannot resolve %s: %s", c->what,
                       s3->conf.endpoint, detail);
    case CURLE_OPERATION_TIMEDOUT:
      c->retryable = 1;
      return erpq_fail(err, errlen, ERPQ_E_TIMEOUT,
                       "S3 %s: timed out (connect %lds, or no progress for %lds): %s", c->what,
                       s3->conf.connect_timeout_s, s3->conf.stall_timeout_s, detail);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: c->retryable = 1; break;
    default: break;
    }
    return erpq_fail(err, errlen, -EIO, "S3 %s: %s", c->what, detail);
  }

  struct curl_header *h = NULL;
  if (curl_easy_header(easy, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h->value)
    snprintf(c->etag, sizeof c->etag, "%s", h->value);
  curl_off_t cl = -1;
  if (curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
    c->content_length = (uint64_t)cl;
  char *ct = NULL;
  if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
    snprintf(c->content_type_out, sizeof c->content_type_out, "%s", ct);

  char code[64] = "", msg[200] = "";
  long st = c->status;
  /* An error document: any answer but 2xx, and a 2xx to a POST
   * (CompleteMultipartUpload may fail after "200 OK"). Object bodies
   * never land in resp (downloads go to sink_fd). */
  int may_err = st < 200 || st >= 300 || strcmp(c->method, "POST") == 0;
  int error_doc = may_err && c->resp.s && strstr(c->resp.s, "<Error>");
  if (error_doc) {
    s3_xml_text(c->resp.s, "Code", code, sizeof code);
    s3_xml_text(c->resp.s, "Message", msg, sizeof msg);
  }
  if (st >= 200 && st < 300 && !error_doc)
    return 0;
  /* A 200 with an <Error> body (CompleteMultipartUpload) is a failure. */
  int e;
  if (st == 404)
    e = -ENOENT;
  else if (st == 403)
    e = -EACCES;
  else if (st >= 500 || st == 429 || transient_code(code) || (st >= 200 && st < 300))
    e = -EIO, c->retryable = (st >= 500 || st == 429 || transient_code(code));
  else
    e = -EPROTO;
  return erpq_fail(err, errlen, e, "S3 %s failed: HTTP %ld%s%s%s%s", c->what, st,
                   code[0] ? " " : "", code, msg[0] ? ": " : "", msg);
}

/* ---- retries ------------------------------------------------------------- */

long s3_backoff_ms(const erpq_s3 *s3, int attempt, unsigned *seed) {
  long d = s3->conf.retry_base_ms;
  for (int i = 2; i < attempt && d < s3->conf.retry_cap_ms; i++)
    d *= 2;
  if (d > s3->conf.retry_cap_ms)
    d = s3->conf.retry_cap_ms;
  if (d <= 1)
    return d;
  return d / 2 + (long)(rand_r(seed) % (unsigned)(d / 2 + 1)); /* Jitter: [d/2, d]. */
}

int s3_sleep(long ms, s3_stop_fn stop, void *stop_ud) {
  int64_t end = erpq_mono_ms() + ms;
  for (;;) {
    if (stop && stop(stop_ud))
      return -ECANCELED;
    int64_t left = end - erpq_mono_ms();
    if (left <= 0)
      return 0;
    if (left > 20)
      left = 20;
    struct timespec ts = {0, (long)left * 1000000L};
    nanosleep(&ts, NULL);
  }
}

int s3_call_run(const erpq_s3 *s3, s3_conn *h, s3_call *c, char *err, size_t errlen) {
  CURL *easy = h->easy;
  unsigned seed = (unsigned)erpq_mono_ms() ^ (unsigned)(uintptr_t)c;
  int rc = 0;
  for (int attempt = 1; attempt <= s3->conf.max_tries; attempt++) {
    if (attempt > 1) {
      long wait = s3_backoff_ms(s3, attempt, &seed);
      s3_log(s3, "S3 %s: attempt %d of %d failed (%s); trying again in %ld ms", c->what,
             attempt - 1, s3->conf.max_tries, err, wait);
      if (s3_sleep(wait, c->stop, c->stop_ud))
        return erpq_fail(err, errlen, -ECANCELED, "S3 %s: cancelled", c->what);
      if (c->sink_fd >= 0 && (ftruncate(c->sink_fd, 0) != 0 || lseek(c->sink_fd, 0, SEEK_SET) != 0))
        return erpq_fail(err, errlen, -errno, "S3 %s: cannot rewind the download: %s", c->what,
                         strerror(errno));
    }
    if ((rc = s3_call_setup(s3, easy, c, err, errlen)))
      return rc;
    if (c->stop && c->stop(c->stop_ud))
      return erpq_fail(err, errlen, -ECANCELED, "S3 %s: cancelled", c->what);
    CURLcode cr = s3_perform(h, c);
    rc = s3_call_done(s3, easy, c, cr, err, errlen);
    if (rc == 0 || !c->retryable)
      return rc;
  }
  return rc;
}

/* ---- XML ----------------------------------------------------------------- */

int s3_xml_text(const char *xml, const char *tag, char *out, size_t outlen) {
  char open[80], close[80];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *a = strstr(xml, open);
  if (!a)
    return -ENOENT;
  a += strlen(open);
  const char *b = strstr(a, close);
  if (!b)
    return -ENOENT;
  size_t o = 0;
  for (const char *p = a; p < b; p++) {
    char ch = *p;
    if (ch == '&') {
      static const struct {
        const char *ent;
        char ch;
      } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
      size_t k;
      for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
        size_t n = strlen(ents[k].ent);
        if ((size_t)(b - p) >= n && strncmp(p, ents[k].ent, n) == 0) {
          ch = ents[k].ch;
          p += n - 1;
          break;
        }
      }
      if (k == sizeof ents / sizeof ents[0] && p[1] == '#') { /* &#34; or &#x22; */
        char *end = NULL;
        long v = p[2] == 'x' ? strtol(p + 3, &end, 16) : strtol(p + 2, &end, 10);
        if (end && *end == ';' && end < b && v > 0 && v < 128) {
          ch = (char)v;
          p = end;
        }
      }
    }
    if (o + 1 >= outlen)
      return -ENOSPC;
    out[o++] = ch;
  }
  out[o] = '\0';
  return 0;
}

void s3_etag_unquote(const char *in, char *out, size_t outlen) {
  size_t n = strlen(in);
  if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
    in++;
    n -= 2;
  }
  if (n >= outlen)
    n = outlen - 1;
  memcpy(out, in, n);
  out[n] = '\0';
}
