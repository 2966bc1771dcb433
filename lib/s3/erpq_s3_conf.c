/* erpq_s3_conf.c - the S3 client's configuration and its life cycle. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "erpq_err.h"
#include "erpq_s3_internal.h"
#include "erpq_sigv4.h"
#include "erpq_util.h"

void erpq_s3_conf_defaults(erpq_s3_conf *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->region, sizeof c->region, "us-east-1");
  c->addressing = ERPQ_S3_VIRTUAL;
  c->sse = ERPQ_S3_SSE_NONE;
  c->part_size = ERPQ_S3_PART_DEFAULT;
  c->connect_timeout_s = 10;
  c->stall_timeout_s = 30;
  c->max_tries = 5;
  c->retry_base_ms = 200;
  c->retry_cap_ms = 5000;
  c->parallel = 4;
}

static const char *lookup(erpq_s3_getenv_fn get, void *ud, const char *name) {
  const char *v = get ? get(ud, name) : NULL;
  return (v && *v) ? v : NULL;
}

/* Copies v into out or fails naming the variable (never echoing v, which
 * may be a secret). */
static int put(char *out, size_t outlen, const char *v, const char *name, char *err,
               size_t errlen) {
  size_t n = strlen(v);
  if (n >= outlen)
    return erpq_fail(err, errlen, -EINVAL, "%s is too long (at most %zu bytes)", name, outlen - 1);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)v[i] < 32 || v[i] == 127)
      return erpq_fail(err, errlen, -EINVAL, "%s contains a control character", name);
  memcpy(out, v, n + 1);
  return 0;
}

/* A secret from NAME or from the file named by NAME_FILE (trailing
 * newlines dropped). Returns 0 with *found set, or an error. */
int erpq_conf_secret(char *out, size_t outlen, erpq_s3_getenv_fn get, void *ud, const char *name,
                     int *found, char *err, size_t errlen) {
  char fname[96];
  snprintf(fname, sizeof fname, "%s_FILE", name);
  const char *direct = lookup(get, ud, name), *file = lookup(get, ud, fname);
  *found = 0;
  if (direct && file)
    return erpq_fail(err, errlen, -EINVAL, "set %s or %s, not both", name, fname);
  if (direct) {
    *found = 1;
    return put(out, outlen, direct, name, err, errlen);
  }
  if (!file)
    return 0;
  FILE *f = fopen(file, "r");
  if (!f) {
    int e = errno;
    return erpq_fail(err, errlen, -e, "cannot read %s (%s): %s", fname, file, strerror(e));
  }
  size_t len = 0;
  char *text = erpq_buf_read_all(f, &len);
  fclose(f);
  if (!text)
    return erpq_fail(err, errlen, -EIO, "cannot read %s (%s)", fname, file);
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    text[--len] = '\0';
  int rc = 0;
  if (len == 0 || strlen(text) != len)
    rc = erpq_fail(err, errlen, -EINVAL, "%s (%s) is empty or not text", fname, file);
  else
    rc = put(out, outlen, text, fname, err, errlen);
  OPENSSL_cleanse(text, len);
  free(text);
  *found = rc == 0;
  return rc;
}

static int bucket_ok(const char *b) {
  size_t n = strlen(b);
  if (n < 3 || n > 63)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!islower((unsigned char)b[i]) && !isdigit((unsigned char)b[i]) && b[i] != '.' &&
        b[i] != '-')
      return 0;
  return isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);
}

/* A whole number in lo..hi, or fail naming the variable. */
static int number(const char *v, const char *name, int64_t lo, int64_t hi, int64_t *out, char *err,
                  size_t errlen) {
  int64_t x;
  if (erpq_parse_i64(v, &x) || x < lo || x > hi)
    return erpq_fail(err, errlen, -EINVAL, "%s must be a whole number from %lld to %lld", name,
                     (long long)lo, (long long)hi);
  *out = x;
  return 0;
}

int erpq_s3_conf_read(erpq_s3_conf *c, erpq_s3_getenv_fn get, void *ud, char *err, size_t errlen) {
  erpq_s3_conf_defaults(c);
  int rc, found;
  const char *v;

  if (!(v = lookup(get, ud, "ERPQ_S3_BUCKET")))
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_BUCKET is not set");
  if (!bucket_ok(v))
    return erpq_fail(err, errlen, -EINVAL,
                     "ERPQ_S3_BUCKET must be 3 to 63 lower-case letters, digits, dots or "
                     "hyphens, starting and ending with a letter or digit");
  snprintf(c->bucket, sizeof c->bucket, "%s", v);

  if ((v = lookup(get, ud, "ERPQ_S3_REGION"))) {
    if (strlen(v) >= 32 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
      return erpq_fail(err, errlen, -EINVAL,
                       "ERPQ_S3_REGION must be a region name such as eu-west-1");
    snprintf(c->region, sizeof c->region, "%s", v);
  }

  const char *endpoint = lookup(get, ud, "ERPQ_S3_ENDPOINT");
  if (endpoint) {
    if ((rc = put(c->endpoint, sizeof c->endpoint, endpoint, "ERPQ_S3_ENDPOINT", err, errlen)))
      return rc;
  } else {
    snprintf(c->endpoint, sizeof c->endpoint, "https://s3.%s.amazonaws.com", c->region);
  }
  erpq_buf url = {0};
  char why[200];
  erpq_sigv4_target t = {c->endpoint, 0, c->bucket, "k"};
  rc = erpq_sigv4_object_url(&t, &url, NULL, NULL, why, sizeof why);
  erpq_buf_free(&url);
  if (rc)
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_ENDPOINT must look like https://host[:port]");

  c->addressing = endpoint ? ERPQ_S3_PATH : ERPQ_S3_VIRTUAL;
  if ((v = lookup(get, ud, "ERPQ_S3_ADDRESSING"))) {
    if (strcmp(v, "path") == 0)
      c->addressing = ERPQ_S3_PATH;
    else if (strcmp(v, "virtual") == 0)
      c->addressing = ERPQ_S3_VIRTUAL;
    else
      return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_ADDRESSING must be path or virtual");
  }

  if (!(v = lookup(get, ud, "ERPQ_S3_ACCESS_KEY_ID")))
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_ACCESS_KEY_ID is not set");
  if ((rc =
           put(c->access_key_id, sizeof c->access_key_id, v, "ERPQ_S3_ACCESS_KEY_ID", err, errlen)))
    return rc;
  if (strchr(c->access_key_id, ':') || strchr(c->access_key_id, ' '))
    return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_ACCESS_KEY_ID contains ':' or a space");
  if ((rc = erpq_conf_secret(c->secret_access_key, sizeof c->secret_access_key, get, ud,
                             "ERPQ_S3_SECRET_ACCESS_KEY", &found, err, errlen)))
    return rc;
  if (!found)
    return erpq_fail(err, errlen, -EINVAL,
                     "ERPQ_S3_SECRET_ACCESS_KEY (or ERPQ_S3_SECRET_ACCESS_KEY_FILE) is not set");
  if ((rc = erpq_conf_secret(c->session_token, sizeof c->session_token, get, ud,
                             "ERPQ_S3_SESSION_TOKEN", &found, err, errlen)))
    return rc;

  if ((v = lookup(get, ud, "ERPQ_S3_SSE"))) {
    if (strcmp(v, "AES256") == 0)
      c->sse = ERPQ_S3_SSE_AES256;
    else if (strcmp(v, "aws:kms") == 0)
      c->sse = ERPQ_S3_SSE_KMS;
    else
      return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_SSE must be AES256 or aws:kms");
  }
  if ((v = lookup(get, ud, "ERPQ_S3_SSE_KMS_KEY_ID"))) {
    if (c->sse != ERPQ_S3_SSE_KMS)
      return erpq_fail(err, errlen, -EINVAL, "ERPQ_S3_SSE_KMS_KEY_ID needs ERPQ_S3_SSE=aws:kms");
    if ((rc = put(c->sse_kms_key_id, sizeof c->sse_kms_key_id, v, "ERPQ_S3_SSE_KMS_KEY_ID", err,
                  errlen)))
      return rc;
  }

  int64_t x;
  if ((v = lookup(get, ud, "ERPQ_S3_PART_SIZE"))) {
    if ((rc = number(v, "ERPQ_S3_PART_SIZE", (int64_t)ERPQ_S3_PART_MIN, (int64_t)ERPQ_S3_PART_MAX,
                     &x, err, errlen)))
      return rc;
    c->part_size = (uint64_t)x;
  }
  if ((v = lookup(get, ud, "ERPQ_S3_CONNECT_TIMEOUT"))) {
    if ((rc = number(v, "ERPQ_S3_CONNECT_TIMEOUT", 1, 3600, &x, err, errlen)))
      return rc;
    c->connect_timeout_s = (long)x;
  }
  if ((v = lookup(get, ud, "ERPQ_S3_STALL_TIMEOUT"))) {
    if ((rc = number(v, "ERPQ_S3_STALL_TIMEOUT", 1, 3600, &x, err, errlen)))
      return rc;
    c->stall_timeout_s = (long)x;
  }
  return 0;
}

/* ---- the client ---------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int erpq_s3_new(erpq_s3 **out, const erpq_s3_conf *conf, char *err, size_t errlen) {
  *out = NULL;
  if (pthread_once(&curl_once, curl_init) != 0 || curl_init_rc != CURLE_OK)
    return erpq_fail(err, errlen, -ENOMEM, "libcurl failed to initialise");
  if (!conf->bucket[0] || !conf->access_key_id[0] || !conf->secret_access_key[0])
    return erpq_fail(err, errlen, -EINVAL, "the S3 configuration lacks a bucket or credentials");
  if (conf->part_size == 0 || conf->part_size > ERPQ_S3_PART_MAX || conf->max_tries < 1 ||
      conf->parallel < 1 || conf->retry_base_ms < 0 || conf->retry_cap_ms < conf->retry_base_ms)
    return erpq_fail(err, errlen, -EINVAL, "the S3 tuning values are out of range");
  erpq_buf url = {0};
  erpq_sigv4_target t = {conf->endpoint, conf->addressing == ERPQ_S3_VIRTUAL, conf->bucket, "k"};
  int rc = erpq_sigv4_object_url(&t, &url, NULL, NULL, err, errlen);
  erpq_buf_free(&url);
  if (rc)
    return rc;
  erpq_s3 *s3 = calloc(1, sizeof *s3);
  if (!s3)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  s3->conf = *conf;
  snprintf(s3->sigv4, sizeof s3->sigv4, "aws:amz:%s:s3", conf->region);
  *out = s3;
  return 0;
}

void erpq_s3_free(erpq_s3 *s3) {
  if (!s3)
    return;
  OPENSSL_cleanse(s3->conf.secret_access_key, sizeof s3->conf.secret_access_key);
  OPENSSL_cleanse(s3->conf.session_token, sizeof s3->conf.session_token);
  free(s3);
}

const erpq_s3_conf *erpq_s3_conf_of(const erpq_s3 *s3) { return &s3->conf; }
