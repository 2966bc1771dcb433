#include "erpq_storage_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_sigv4.h"
#include "erpq_util.h"

#define DOMAIN "erpq-file-link-v1\n"

int erpq_link_signer_init(erpq_link_signer *s, const void *secret, size_t secret_len,
                          const char *base_url, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  if (!secret || secret_len < ERPQ_LINK_SECRET_MIN || secret_len > ERPQ_LINK_SECRET_MAX)
    return erpq_fail(err, errlen, -EINVAL, "the link secret must be %d to %d bytes",
                     ERPQ_LINK_SECRET_MIN, ERPQ_LINK_SECRET_MAX);
  size_t n = base_url ? strlen(base_url) : 0;
  while (n && base_url[n - 1] == '/')
    n--;
  int scheme_ok = (n > 7 && strncmp(base_url, "http://", 7) == 0) ||
                  (n > 8 && strncmp(base_url, "https://", 8) == 0);
  if (!scheme_ok || n >= sizeof s->base_url || strcspn(base_url, " \t\r\n?#") < n)
    return erpq_fail(err, errlen, -EINVAL,
                     "the public URL must look like http(s)://host[:port][/prefix]");
  memcpy(s->secret, secret, secret_len);
  s->secret_len = secret_len;
  memcpy(s->base_url, base_url, n);
  s->base_url[n] = '\0';
  return 0;
}

void erpq_link_signer_clear(erpq_link_signer *s) { OPENSSL_cleanse(s, sizeof *s); }

int erpq_storage_key_check(const char *key, size_t len, char *err, size_t errlen) {
  if (!key || len == 0)
    return erpq_fail(err, errlen, -EINVAL, "empty storage key");
  if (len > 1024)
    return erpq_fail(err, errlen, -EINVAL, "storage keys are at most 1024 bytes");
  if (strnlen(key, len) != len)
    return erpq_fail(err, errlen, -EINVAL, "a storage key must not contain NUL");
  if (key[0] == '/')
    return erpq_fail(err, errlen, -EINVAL, "a storage key must be relative");
  size_t seg = 0; /* Start of the current segment. */
  for (size_t i = 0; i <= len; i++) {
    unsigned char c = i < len ? (unsigned char)key[i] : '/';
    if (c == '\\')
      return erpq_fail(err, errlen, -EINVAL, "a storage key must not contain a backslash");
    if (c < 32 || c == 127)
      return erpq_fail(err, errlen, -EINVAL, "a storage key must not contain control characters");
    if (c != '/')
      continue;
    if (i == seg)
      return erpq_fail(err, errlen, -EINVAL, "a storage key must not have empty segments");
    if (key[seg] == '.')
      return erpq_fail(err, errlen, -EINVAL,
                       "storage key segments must not start with '.' (no \".\" or \"..\")");
    seg = i + 1;
  }
  return 0;
}

static int hmac_hex(const erpq_link_signer *s, const char *key, const char *exp, const char *name,
                    char out[65]) {
  erpq_buf msg = {0};
  erpq_buf_adds(&msg, DOMAIN);
  erpq_buf_adds(&msg, key);
  erpq_buf_adds(&msg, "\n");
  erpq_buf_adds(&msg, exp);
  erpq_buf_adds(&msg, "\n");
  erpq_buf_adds(&msg, name ? name : "");
  if (msg.oom) {
    erpq_buf_free(&msg);
    out[0] = '\0';
    return -ENOMEM;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), s->secret, (int)s->secret_len, (const unsigned char *)msg.s, msg.len, md,
       &len);
  erpq_sigv4_hex(md, len, out);
  erpq_buf_free(&msg);
  return 0;
}

void erpq_link_signature(const erpq_link_signer *s, const char *key, const char *exp,
                         const char *name, char out[65]) {
  hmac_hex(s, key, exp, name, out);
}

int erpq_link_sign(const erpq_link_signer *s, const char *key, const char *file_name, int64_t ttl_s,
                   int64_t now, char **url, char *err, size_t errlen) {
  *url = NULL;
  int rc = erpq_storage_key_check(key, key ? strlen(key) : 0, err, errlen);
  if (rc)
    return rc;
  if (ttl_s <= 0)
    ttl_s = ERPQ_LINK_TTL_DEFAULT;
  if (ttl_s > ERPQ_LINK_TTL_MAX)
    ttl_s = ERPQ_LINK_TTL_MAX;
  char exp[24], sig[65];
  snprintf(exp, sizeof exp, "%lld", (long long)(now + ttl_s));
  const char *name = file_name ? file_name : "";
  if (hmac_hex(s, key, exp, name, sig))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  erpq_buf b = {0};
  erpq_buf_adds(&b, s->base_url);
  erpq_buf_adds(&b, ERPQ_LINK_PATH);
  erpq_sigv4_uri_encode(&b, key, strlen(key), 1);
  erpq_buf_addf(&b, "?exp=%s&name=", exp);
  erpq_sigv4_uri_encode(&b, name, strlen(name), 0);
  erpq_buf_addf(&b, "&sig=%s", sig);
  if (b.oom) {
    erpq_buf_free(&b);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  *url = erpq_buf_take(&b);
  return 0;
}

int erpq_link_verify(const erpq_link_signer *s, const char *key, const char *exp, const char *name,
                     const char *sig, int64_t now, char *err, size_t errlen) {
  int rc = erpq_storage_key_check(key, key ? strlen(key) : 0, err, errlen);
  if (rc)
    return rc;
  int64_t until;
  if (!exp || !*exp || strspn(exp, "0123456789") != strlen(exp) || strlen(exp) > 18 ||
      erpq_parse_i64(exp, &until))
    return erpq_fail(err, errlen, -EINVAL, "the link's exp is not a unix time");
  if (!sig || strlen(sig) != 64 || strspn(sig, "0123456789abcdef") != 64)
    return erpq_fail(err, errlen, -EINVAL, "the link's sig is not 64 lower-case hex digits");
  char want[65];
  if (hmac_hex(s, key, exp, name, want))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int same = CRYPTO_memcmp(want, sig, 64) == 0;
  OPENSSL_cleanse(want, sizeof want);
  if (!same)
    return erpq_fail(err, errlen, -EACCES, "the link's signature does not match");
  if (now > until)
    return erpq_fail(err, errlen, -EKEYEXPIRED, "the link has expired");
  return 0;
}
