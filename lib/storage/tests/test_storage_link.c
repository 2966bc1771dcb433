/*
 * test_storage_link.c - signed local download links: the URL format, the
 * HMAC over the documented string (recomputed here with OpenSSL directly),
 * and verification against tampering, expiry, other secrets and keys that
 * would escape the storage directory. URL components are decoded with
 * libcurl's unescaper, as an HTTP server would decode them.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "erpq_storage.h"
#include "erpq_storage_link.h"

#define SECRET "0123456789abcdef0123456789abcdef-link-secret"
#define NOW 1767225600LL /* 2026-01-01T00:00:00Z */

static erpq_link_signer signer(const char *secret, const char *base) {
  erpq_link_signer s;
  char err[256];
  cr_assert_eq(erpq_link_signer_init(&s, secret, strlen(secret), base, err, sizeof err), 0, "%s",
               err);
  return s;
}

/* The decoded parts of a link. */
typedef struct parts {
  char key[1100], exp[32], name[512], sig[80];
} parts;

static void decode(const char *in, size_t n, char *out, size_t outlen) {
  out[0] = '\0';
  if (n == 0)
    return; /* curl_easy_unescape reads a length of 0 as strlen. */
  int len = 0;
  char *d = curl_easy_unescape(NULL, in, (int)n, &len);
  cr_assert_not_null(d);
  cr_assert_lt((size_t)len, outlen);
  memcpy(out, d, (size_t)len);
  out[len] = '\0';
  curl_free(d);
}

static parts split(const char *url, const char *base) {
  parts p;
  memset(&p, 0, sizeof p);
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s/v1/files/", base);
  cr_assert(strncmp(url, prefix, strlen(prefix)) == 0, "%s", url);
  const char *k = url + strlen(prefix), *q = strchr(k, '?');
  cr_assert_not_null(q);
  decode(k, (size_t)(q - k), p.key, sizeof p.key);
  cr_assert(strncmp(q, "?exp=", 5) == 0, "%s", q);
  const char *e = q + 5, *amp = strchr(e, '&');
  decode(e, (size_t)(amp - e), p.exp, sizeof p.exp);
  cr_assert(strncmp(amp, "&name=", 6) == 0, "%s", amp);
  const char *nm = amp + 6, *amp2 = strchr(nm, '&');
  decode(nm, (size_t)(amp2 - nm), p.name, sizeof p.name);
  cr_assert(strncmp(amp2, "&sig=", 5) == 0, "%s", amp2);
  decode(amp2 + 5, strlen(amp2 + 5), p.sig, sizeof p.sig);
  return p;
}

static int verify(const erpq_link_signer *s, const parts *p, int64_t now) {
  char err[256] = "";
  int rc = erpq_link_verify(s, p->key, p->exp, p->name, p->sig, now, err, sizeof err);
  cr_assert(strstr(err, SECRET) == NULL);
  return rc;
}

Test(link, format_and_documented_hmac) {
  erpq_link_signer s = signer(SECRET, "https://erp.example.test/api/");
  cr_assert_str_eq(s.base_url, "https://erp.example.test/api", "the trailing '/' is dropped");
  char *url = NULL, err[256];
  const char *key = "reports/12/2026-01/42-fees report+ü.csv";
  cr_assert_eq(erpq_link_sign(&s, key, "Fees report – Jan.csv", 3600, NOW, &url, err, sizeof err),
               0, "%s", err);
  const char *want_prefix = "https://erp.example.test/api/v1/files/reports/12/2026-01/"
                            "42-fees%20report%2B%C3%BC.csv?exp=1767229200&name=Fees%20report%20%E2"
                            "%80%93%20Jan.csv&sig=";
  cr_assert(strncmp(url, want_prefix, strlen(want_prefix)) == 0, "%s", url);

  parts p = split(url, s.base_url);
  cr_assert_str_eq(p.key, key);
  cr_assert_str_eq(p.exp, "1767229200");
  cr_assert_str_eq(p.name, "Fees report – Jan.csv");
  /* HMAC-SHA256(secret, "erpq-file-link-v1\n" key "\n" exp "\n" name). */
  char msg[1024];
  int n = snprintf(msg, sizeof msg, "erpq-file-link-v1\n%s\n%s\n%s", key, "1767229200",
                   "Fees report – Jan.csv");
  unsigned char md[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, (size_t)n, md, &len);
  char hex[65];
  for (int i = 0; i < 32; i++)
    sprintf(hex + 2 * i, "%02x", md[i]);
  cr_assert_str_eq(p.sig, hex);
  cr_assert_eq(verify(&s, &p, NOW), 0);
  free(url);
}

Test(link, tampering_is_refused) {
  erpq_link_signer s = signer(SECRET, "http://127.0.0.1:8080");
  char *url = NULL, err[256];
  cr_assert_eq(erpq_link_sign(&s, "reports/12/2026-01/42-fees.csv", "fees.csv", 900, NOW, &url, err,
                              sizeof err),
               0, "%s", err);
  parts good = split(url, s.base_url);
  free(url);
  cr_assert_eq(verify(&s, &good, NOW), 0);

  parts p = good;
  snprintf(p.key, sizeof p.key, "reports/13/2026-01/42-fees.csv"); /* Another school. */
  cr_assert_eq(verify(&s, &p, NOW), -EACCES);
  p = good;
  snprintf(p.exp, sizeof p.exp, "%lld", atoll(good.exp) + 86400); /* Longer life. */
  cr_assert_eq(verify(&s, &p, NOW), -EACCES);
  p = good;
  snprintf(p.name, sizeof p.name, "other.csv");
  cr_assert_eq(verify(&s, &p, NOW), -EACCES);
  p = good;
  p.sig[10] = p.sig[10] == '0' ? '1' : '0';
  cr_assert_eq(verify(&s, &p, NOW), -EACCES);
  p = good;
  for (char *c = p.sig; *c; c++)
    if (*c >= 'a')
      *c = (char)(*c - 32); /* Upper-case hex is not our form. */
  cr_assert_eq(verify(&s, &p, NOW), -EINVAL);
  p = good;
  p.sig[63] = '\0';
  cr_assert_eq(verify(&s, &p, NOW), -EINVAL);
  p = good;
  p.exp[0] = '+'; /* "+767229200": a sign is not a plain number. */
  cr_assert_eq(verify(&s, &p, NOW), -EINVAL);
  p = good;
  p.exp[0] = '\0';
  cr_assert_eq(verify(&s, &p, NOW), -EINVAL);

  erpq_link_signer other = signer(SECRET "-rotated", "http://127.0.0.1:8080");
  cr_assert_eq(verify(&other, &good, NOW), -EACCES, "another secret does not verify");
  char verr[256];
  cr_assert_eq(erpq_link_verify(&s, good.key, good.exp, good.name, NULL, NOW, verr, sizeof verr),
               -EINVAL);
}

Test(link, expiry_is_a_distinct_error) {
  erpq_link_signer s = signer(SECRET, "http://127.0.0.1:8080");
  char *url = NULL, err[256];
  cr_assert_eq(erpq_link_sign(&s, "reports/1/x.pdf", NULL, 60, NOW, &url, err, sizeof err), 0);
  parts p = split(url, s.base_url);
  free(url);
  cr_assert_str_eq(p.name, "");
  cr_assert_eq(verify(&s, &p, NOW + 60), 0, "valid up to and including exp");
  cr_assert_eq(verify(&s, &p, NOW + 61), -EKEYEXPIRED);
  char verr[256];
  cr_assert_eq(erpq_link_verify(&s, p.key, p.exp, NULL, p.sig, NOW, verr, sizeof verr), 0,
               "a NULL name is the empty name");
  /* A tampered and expired link is a forgery first. */
  p.sig[0] = p.sig[0] == 'a' ? 'b' : 'a';
  cr_assert_eq(verify(&s, &p, NOW + 3600), -EACCES);
}

Test(link, lifetimes_are_clamped) {
  erpq_link_signer s = signer(SECRET, "http://127.0.0.1:8080");
  int64_t ttl[] = {0, -5, 1, 900, 604800, 604801, 100000000};
  int64_t want[] = {900, 900, 1, 900, 604800, 604800, 604800};
  for (size_t i = 0; i < sizeof ttl / sizeof ttl[0]; i++) {
    char *url = NULL, err[256];
    cr_assert_eq(erpq_link_sign(&s, "reports/a.csv", "a.csv", ttl[i], NOW, &url, err, sizeof err),
                 0);
    parts p = split(url, s.base_url);
    cr_expect_eq(atoll(p.exp), NOW + want[i], "ttl %lld", (long long)ttl[i]);
    free(url);
  }
}

Test(link, keys_that_escape_are_refused) {
  erpq_link_signer s = signer(SECRET, "http://127.0.0.1:8080");
  const char *bad[] = {"",
                       "../etc/passwd",
                       "reports/../../etc/passwd",
                       "reports/..",
                       "/etc/passwd",
                       "reports\\..\\x",
                       "reports//x",
                       "reports/./x",
                       "./x",
                       "reports/.hidden",
                       "reports/x/",
                       "reports/\x01x",
                       "reports/x\ny"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *url = NULL, err[256];
    cr_expect_eq(erpq_link_sign(&s, bad[i], NULL, 60, NOW, &url, err, sizeof err), -EINVAL,
                 "signed %s", bad[i]);
    cr_expect_null(url);
    char sig[65];
    erpq_link_signature(&s, bad[i], "1767229200", "", sig);
    cr_expect_eq(erpq_link_verify(&s, bad[i], "1767229200", "", sig, NOW, err, sizeof err), -EINVAL,
                 "verified %s", bad[i]);
  }
  char err[256];
  const char nul[] = "reports/a\0b";
  cr_assert_eq(erpq_storage_key_check(nul, sizeof nul - 1, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "NUL") != NULL, "%s", err);
  const char *good[] = {"reports/12/2026-01/42-fees.csv", "a", "reports/x..y/z.pdf",
                        "reports/ü/日本.pdf"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect_eq(erpq_storage_key_check(good[i], strlen(good[i]), err, sizeof err), 0, "%s: %s",
                 good[i], err);
}

Test(link, signer_setup_checked) {
  erpq_link_signer s;
  char err[256];
  cr_assert_eq(erpq_link_signer_init(&s, "short", 5, "http://h", err, sizeof err), -EINVAL);
  char longer[300];
  memset(longer, 'x', sizeof longer);
  cr_assert_eq(erpq_link_signer_init(&s, longer, sizeof longer, "http://h", err, sizeof err),
               -EINVAL);
  const char *bad_urls[] = {"127.0.0.1:8080", "ftp://h",      "http://",
                            "http://h/a b",   "http://h?x=1", NULL};
  for (size_t i = 0; bad_urls[i]; i++)
    cr_expect_eq(erpq_link_signer_init(&s, SECRET, strlen(SECRET), bad_urls[i], err, sizeof err),
                 -EINVAL, "%s", bad_urls[i]);
  cr_assert_eq(erpq_link_signer_init(&s, SECRET, strlen(SECRET), "http://h:1/", err, sizeof err),
               0);
  erpq_link_signer_clear(&s);
  cr_assert_eq(s.secret_len, 0);
}
