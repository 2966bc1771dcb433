#include "erpq_sigv4.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "erpq_err.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

void erpq_sigv4_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

void erpq_sigv4_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(data, len, md);
  erpq_sigv4_hex(md, sizeof md, out);
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void erpq_sigv4_uri_encode(erpq_buf *b, const char *s, size_t n, int keep_slash) {
  static const char digits[] = "0123456789ABCDEF";
  size_t run = 0; /* Bytes copied as they are, flushed in one add. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      run++;
      continue;
    }
    if (run)
      erpq_buf_add(b, s + i - run, run);
    run = 0;
    char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
    erpq_buf_add(b, esc, 3);
  }
  if (run)
    erpq_buf_add(b, s + n - run, run);
}

int erpq_sigv4_amz_date(int64_t unix_s, char out[17]) {
  if (unix_s < 0 || unix_s > 253402300799LL)
    return -EINVAL;
  time_t t = (time_t)unix_s;
  struct tm tm;
  if (!gmtime_r(&t, &tm))
    return -EINVAL;
  if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
    return -EINVAL;
  return 0;
}

/* ---- canonical request ---------------------------------------------------- */

typedef struct enc_kv {
  char *name; /* Query: encoded name; header: lower-cased name. */
  char *value;
} enc_kv;

static int kv_cmp(const void *a, const void *b) {
  const enc_kv *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

static void kv_free(enc_kv *v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++) {
    free(v[i].name);
    free(v[i].value);
  }
  free(v);
}

static char *encoded(const char *s, int keep_slash) {
  erpq_buf b = {0};
  erpq_buf_adds(&b, ""); /* "" rather than NULL for an empty string. */
  erpq_sigv4_uri_encode(&b, s, strlen(s), keep_slash);
  return erpq_buf_take(&b);
}

/* The header value with leading and trailing blanks removed and every run
 * of blanks inside collapsed to one space (AWS's Trimall). */
static char *trimall(const char *v) {
  size_t n = strlen(v);
  char *out = malloc(n + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  int pending_space = 0;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    if (c == ' ' || c == '\t') {
      pending_space = o > 0;
      continue;
    }
    if (pending_space)
      out[o++] = ' ';
    pending_space = 0;
    out[o++] = c;
  }
  out[o] = '\0';
  return out;
}

static int token_char(unsigned char c) {
  return c > 32 && c < 127 && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

int erpq_sigv4_canonical_request(const erpq_sigv4_req *r, erpq_buf *out, erpq_buf *signed_headers) {
  int rc = 0;
  enc_kv *q = calloc(r->nquery ? r->nquery : 1, sizeof *q);
  enc_kv *h = calloc(r->nheaders ? r->nheaders : 1, sizeof *h);
  if (!q || !h) {
    rc = -ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < r->nquery; i++) {
    q[i].name = encoded(r->query[i].name, 0);
    q[i].value = encoded(r->query[i].value ? r->query[i].value : "", 0);
    if (!q[i].name || !q[i].value) {
      rc = -ENOMEM;
      goto done;
    }
  }
  for (size_t i = 0; i < r->nheaders; i++) {
    const char *name = r->headers[i].name;
    size_t n = strlen(name);
    if (n == 0) {
      rc = -EINVAL;
      goto done;
    }
    h[i].name = malloc(n + 1);
    h[i].value = trimall(r->headers[i].value ? r->headers[i].value : "");
    if (!h[i].name || !h[i].value) {
      rc = -ENOMEM;
      goto done;
    }
    for (size_t k = 0; k <= n; k++) {
      unsigned char c = (unsigned char)name[k];
      if (k < n && !token_char(c)) {
        rc = -EINVAL;
        goto done;
      }
      h[i].name[k] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
  }
  qsort(q, r->nquery, sizeof *q, kv_cmp);
  qsort(h, r->nheaders, sizeof *h, kv_cmp);
  for (size_t i = 1; i < r->nheaders; i++)
    if (strcmp(h[i - 1].name, h[i].name) == 0) {
      rc = -EINVAL; /* One value per header name: we never send repeats. */
      goto done;
    }

  erpq_buf_adds(out, r->method);
  erpq_buf_adds(out, "\n");
  erpq_buf_adds(out, r->canonical_uri);
  erpq_buf_adds(out, "\n");
  for (size_t i = 0; i < r->nquery; i++) {
    if (i)
      erpq_buf_adds(out, "&");
    erpq_buf_adds(out, q[i].name);
    erpq_buf_adds(out, "=");
    erpq_buf_adds(out, q[i].value);
  }
  erpq_buf_adds(out, "\n");
  for (size_t i = 0; i < r->nheaders; i++) {
    erpq_buf_adds(out, h[i].name);
    erpq_buf_adds(out, ":");
    erpq_buf_adds(out, h[i].value);
    erpq_buf_adds(out, "\n");
  }
  erpq_buf_adds(out, "\n");
  size_t names_at = out->len;
  for (size_t i = 0; i < r->nheaders; i++) {
    if (i)
      erpq_buf_adds(out, ";");
    erpq_buf_adds(out, h[i].name);
  }
  if (signed_headers && !out->oom)
    erpq_buf_add(signed_headers, out->s + names_at, out->len - names_at);
  erpq_buf_adds(out, "\n");
  erpq_buf_adds(out, r->payload_hash);
  if (out->oom || (signed_headers && signed_headers->oom))
    rc = -ENOMEM;
done:
  kv_free(q, r->nquery);
  kv_free(h, r->nheaders);
  return rc;
}

int erpq_sigv4_scope(const char *date8, const char *region, const char *service, char *out,
                     size_t outlen) {
  int n = snprintf(out, outlen, "%.8s/%s/%s/aws4_request", date8, region, service);
  return (n < 0 || (size_t)n >= outlen) ? -EINVAL : 0;
}

void erpq_sigv4_string_to_sign(const char *amz_date, const char *scope,
                               const char *canonical_request, erpq_buf *out) {
  char hash[65];
  erpq_sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash);
  erpq_buf_addf(out, ALGORITHM "\n%s\n%s\n%s", amz_date, scope, hash);
}

static void hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32]) {
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len);
}

void erpq_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                            const char *service, unsigned char key[32]) {
  size_t n = strlen(secret);
  char *k = malloc(n + 5);
  unsigned char a[32], b[32];
  char day[9];
  snprintf(day, sizeof day, "%.8s", date8);
  if (!k) { /* Out of memory: a key nobody can use. */
    memset(key, 0, 32);
    return;
  }
  memcpy(k, "AWS4", 4);
  memcpy(k + 4, secret, n + 1);
  hmac(k, n + 4, day, a);
  hmac(a, 32, region, b);
  hmac(b, 32, service, a);
  hmac(a, 32, "aws4_request", key);
  OPENSSL_cleanse(k, n + 4);
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  free(k);
}

void erpq_sigv4_signature(const unsigned char key[32], const char *string_to_sign, char out[65]) {
  unsigned char md[32];
  hmac(key, 32, string_to_sign, md);
  erpq_sigv4_hex(md, 32, out);
}

/* Signs a canonical request: the hex signature into sig. */
static int sign(const erpq_sigv4_cred *c, const char *amz_date, const char *canonical, char sig[65],
                char *scope, size_t scopelen) {
  if (erpq_sigv4_scope(amz_date, c->region, c->service, scope, scopelen))
    return -EINVAL;
  erpq_buf sts = {0};
  erpq_sigv4_string_to_sign(amz_date, scope, canonical, &sts);
  if (sts.oom) {
    erpq_buf_free(&sts);
    return -ENOMEM;
  }
  unsigned char key[32];
  erpq_sigv4_signing_key(c->secret_access_key, amz_date, c->region, c->service, key);
  erpq_sigv4_signature(key, sts.s, sig);
  OPENSSL_cleanse(key, sizeof key);
  erpq_buf_free(&sts);
  return 0;
}

int erpq_sigv4_authorization(const erpq_sigv4_cred *c, const erpq_sigv4_req *r,
                             const char *amz_date, erpq_buf *out) {
  erpq_buf canon = {0}, names = {0};
  char sig[65], scope[256];
  int rc = erpq_sigv4_canonical_request(r, &canon, &names);
  if (rc == 0)
    rc = sign(c, amz_date, canon.s, sig, scope, sizeof scope);
  if (rc == 0) {
    erpq_buf_addf(out, ALGORITHM " Credential=%s/%s,SignedHeaders=%s,Signature=%s",
                  c->access_key_id, scope, names.s, sig);
    if (out->oom)
      rc = -ENOMEM;
  }
  erpq_buf_free(&canon);
  erpq_buf_free(&names);
  return rc;
}

/* ---- URLs ---------------------------------------------------------------- */

/* Splits endpoint into scheme ("http"/"https"), authority (host[:port]) and
 * the host header value (authority minus a default port). */
static int parse_endpoint(const char *endpoint, char *scheme, size_t slen, char *auth, size_t alen,
                          char *hosthdr, size_t hlen, char *err, size_t errlen) {
  const char *p = strstr(endpoint ? endpoint : "", "://");
  if (!p)
    goto bad;
  size_t sl = (size_t)(p - endpoint);
  if (sl >= slen)
    goto bad;
  memcpy(scheme, endpoint, sl);
  scheme[sl] = '\0';
  for (char *s = scheme; *s; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s + 32);
  int https = strcmp(scheme, "https") == 0;
  if (!https && strcmp(scheme, "http") != 0)
    goto bad;
  const char *a = p + 3;
  size_t al = strcspn(a, "/?#");
  /* Only an optional trailing '/' may follow the authority. */
  if (a[al] && strcmp(a + al, "/") != 0)
    goto bad;
  if (al == 0 || al >= alen || al >= hlen || memchr(a, '@', al))
    goto bad;
  memcpy(auth, a, al);
  auth[al] = '\0';
  for (size_t i = 0; i < al; i++) {
    unsigned char c = (unsigned char)auth[i];
    if (c <= 32 || c >= 127)
      goto bad;
    if (c >= 'A' && c <= 'Z')
      auth[i] = (char)(c + 32); /* Host names are case-insensitive. */
  }
  memcpy(hosthdr, auth, al + 1);
  char *colon = strrchr(hosthdr, ':');
  if (colon && !strchr(colon, ']')) {
    const char *port = colon + 1;
    if (!*port || strspn(port, "0123456789") != strlen(port))
      goto bad;
    if ((https && strcmp(port, "443") == 0) || (!https && strcmp(port, "80") == 0))
      *colon = '\0';
  }
  return 0;
bad:
  return erpq_fail(err, errlen, -EINVAL,
                   "the S3 endpoint must look like https://host[:port] (no path)");
}

int erpq_sigv4_object_url(const erpq_sigv4_target *t, erpq_buf *url, erpq_buf *host, erpq_buf *uri,
                          char *err, size_t errlen) {
  char scheme[8], auth[256], hosthdr[256];
  int rc = parse_endpoint(t->endpoint, scheme, sizeof scheme, auth, sizeof auth, hosthdr,
                          sizeof hosthdr, err, errlen);
  if (rc)
    return rc;
  if (!t->bucket || !*t->bucket)
    return erpq_fail(err, errlen, -EINVAL, "no S3 bucket");
  if (!t->key || !*t->key)
    return erpq_fail(err, errlen, -EINVAL, "empty S3 object key");
  erpq_buf path = {0};
  erpq_buf_adds(&path, "/");
  if (!t->virtual_host) {
    erpq_sigv4_uri_encode(&path, t->bucket, strlen(t->bucket), 0);
    erpq_buf_adds(&path, "/");
  }
  erpq_sigv4_uri_encode(&path, t->key, strlen(t->key), 1);
  const char *dot = t->virtual_host ? "." : "";
  const char *bucket = t->virtual_host ? t->bucket : "";
  erpq_buf_addf(url, "%s://%s%s%s%s", scheme, bucket, dot, auth, path.oom ? "" : path.s);
  if (host)
    erpq_buf_addf(host, "%s%s%s", bucket, dot, hosthdr);
  if (uri && !path.oom)
    erpq_buf_add(uri, path.s, path.len);
  rc = (path.oom || url->oom || (host && host->oom) || (uri && uri->oom)) ? -ENOMEM : 0;
  erpq_buf_free(&path);
  return rc;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  size_t len;
  unsigned cp;
  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2, cp = s[0] & 0x1F;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3, cp = s[0] & 0x0F;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

void erpq_sigv4_content_disposition(const char *file_name, erpq_buf *out) {
  static const char digits[] = "0123456789ABCDEF";
  const unsigned char *s = (const unsigned char *)file_name;
  size_t n = strlen(file_name);
  erpq_buf_adds(out, "attachment; filename=\"");
  for (size_t i = 0; i < n;) {
    size_t len = utf8_len(s + i, n - i);
    unsigned char c = s[i];
    if (len == 1 && c >= 0x20 && c < 0x7F && c != '"' && c != '\\' && c != '%')
      erpq_buf_add(out, (const char *)&s[i], 1);
    else
      erpq_buf_adds(out, "_");
    i += len ? len : 1;
  }
  erpq_buf_adds(out, "\"; filename*=UTF-8''");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c < 0x20 || c == 0x7F)
      c = '_';
    if (unreserved(c) || strchr("!#$&+^`|", c)) {
      erpq_buf_add(out, (const char *)&c, 1);
    } else {
      char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
      erpq_buf_add(out, esc, 3);
    }
  }
}

int erpq_sigv4_presign_url(const erpq_sigv4_presign *p, char **url, char *err, size_t errlen) {
  *url = NULL;
  const erpq_sigv4_cred *c = &p->cred;
  if (!c->access_key_id || !*c->access_key_id || !c->secret_access_key || !c->region ||
      !*c->region || !c->service)
    return erpq_fail(err, errlen, -EINVAL, "presigning needs an access key, a secret and a region");
  int64_t expires = p->expires_s < 1 ? 1 : p->expires_s;
  if (expires > ERPQ_SIGV4_EXPIRES_MAX)
    expires = ERPQ_SIGV4_EXPIRES_MAX;
  char amz_date[17], scope[256], exp[24], sig[65];
  if (erpq_sigv4_amz_date(p->now, amz_date))
    return erpq_fail(err, errlen, -EINVAL, "presigning: the clock is out of range");
  if (erpq_sigv4_scope(amz_date, c->region, c->service, scope, sizeof scope))
    return erpq_fail(err, errlen, -EINVAL, "presigning: the region name is too long");
  snprintf(exp, sizeof exp, "%lld", (long long)expires);

  erpq_buf base = {0}, host = {0}, uri = {0}, cred = {0}, disp = {0}, canon = {0}, out = {0};
  int rc = erpq_sigv4_object_url(&p->target, &base, &host, &uri, err, errlen);
  if (rc)
    goto done;
  erpq_buf_addf(&cred, "%s/%s", c->access_key_id, scope);
  if (p->file_name)
    erpq_sigv4_content_disposition(p->file_name, &disp);
  if (cred.oom || disp.oom) {
    rc = -ENOMEM;
    goto done;
  }
  int token = c->session_token && *c->session_token;
  /* In the URL's order (operation parameters first, as botocore writes). */
  erpq_sigv4_kv q[7];
  size_t nq = 0;
  if (p->file_name)
    q[nq++] = (erpq_sigv4_kv){"response-content-disposition", disp.s};
  q[nq++] = (erpq_sigv4_kv){"X-Amz-Algorithm", ALGORITHM};
  q[nq++] = (erpq_sigv4_kv){"X-Amz-Credential", cred.s};
  q[nq++] = (erpq_sigv4_kv){"X-Amz-Date", amz_date};
  q[nq++] = (erpq_sigv4_kv){"X-Amz-Expires", exp};
  q[nq++] = (erpq_sigv4_kv){"X-Amz-SignedHeaders", "host"};
  if (token)
    q[nq++] = (erpq_sigv4_kv){"X-Amz-Security-Token", c->session_token};
  erpq_sigv4_kv h[1] = {{"host", host.s}};
  erpq_sigv4_req r = {"GET", uri.s, q, nq, h, 1, ERPQ_SIGV4_UNSIGNED};
  rc = erpq_sigv4_canonical_request(&r, &canon, NULL);
  if (rc == 0)
    rc = sign(c, amz_date, canon.s, sig, scope, sizeof scope);
  if (rc)
    goto done;
  erpq_buf_add(&out, base.s, base.len);
  for (size_t i = 0; i < nq; i++) {
    erpq_buf_adds(&out, i ? "&" : "?");
    erpq_buf_adds(&out, q[i].name);
    erpq_buf_adds(&out, "=");
    erpq_sigv4_uri_encode(&out, q[i].value, strlen(q[i].value), 0);
  }
  erpq_buf_addf(&out, "&X-Amz-Signature=%s", sig);
  if (out.oom) {
    rc = -ENOMEM;
    goto done;
  }
  *url = erpq_buf_take(&out);
done:
  if (rc == -ENOMEM)
    erpq_fail(err, errlen, rc, "out of memory while presigning");
  erpq_buf_free(&base);
  erpq_buf_free(&host);
  erpq_buf_free(&uri);
  erpq_buf_free(&cred);
  erpq_buf_free(&disp);
  erpq_buf_free(&canon);
  erpq_buf_free(&out);
  return rc;
}
