/* erpq_notify_util.c - money text for templates, unsubscribe tokens,
 * hashes and redaction (erpq_notify_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "erpq_notify_internal.h"
#include "erpq_redact.h"

/* Digits after the decimal point (ISO 4217 minor units) for the currencies
 * that do not have 2. */
static int minor_digits(const char *cur) {
  static const char *const zero[] = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF",
                                     "PYG", "RWF", "KMF", "GNF", "DJF", "VUV", "XPF", NULL};
  static const char *const three[] = {"BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD", NULL};
  for (int i = 0; zero[i]; i++)
    if (!strcmp(cur, zero[i]))
      return 0;
  for (int i = 0; three[i]; i++)
    if (!strcmp(cur, three[i]))
      return 3;
  return 2;
}

void nt_money_text(int64_t minor, const char *currency, char out[64]) {
  const char *cur = currency && *currency ? currency : "INR";
  int nd = minor_digits(cur);
  int64_t div = nd == 0 ? 1 : nd == 2 ? 100 : 1000;
  int neg = minor < 0;
  /* |INT64_MIN| does not fit: work on the unsigned magnitude. */
  uint64_t mag = neg ? (uint64_t)(-(minor + 1)) + 1 : (uint64_t)minor;
  uint64_t whole = mag / (uint64_t)div, frac = mag % (uint64_t)div;
  char digits[32];
  int nd_whole = snprintf(digits, sizeof digits, "%" PRIu64, whole);
  int indian = !strcmp(cur, "INR");
  char grouped[48];
  int g = 0;
  for (int i = 0; i < nd_whole; i++) {
    int left = nd_whole - i; /* digits from here to the end */
    if (i > 0) {
      int comma = indian ? (left == 3 || (left > 3 && (left - 3) % 2 == 0)) : left % 3 == 0;
      if (comma)
        grouped[g++] = ',';
    }
    grouped[g++] = digits[i];
  }
  grouped[g] = '\0';
  const char *sym = indian ? "Rs" : cur;
  if (nd)
    snprintf(out, 64, "%s%s %s.%0*" PRIu64, neg ? "-" : "", sym, grouped, nd, frac);
  else
    snprintf(out, 64, "%s%s %s", neg ? "-" : "", sym, grouped);
}

void nt_sha256_hex(const void *s, size_t len, char out[65]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

int nt_unsub_token(const char *secret, int64_t school, int64_t student, const char *channel,
                   char out[32]) {
  out[0] = '\0';
  if (!secret || !*secret)
    return -EINVAL;
  char msg[128];
  int n = snprintf(msg, sizeof msg, "v1:%" PRId64 ":%" PRId64 ":%s", school, student, channel);
  unsigned char md[32];
  unsigned int mdlen = 0;
  if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)n, md,
            &mdlen))
    return -EIO;
  static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  /* 16 bytes -> 22 base64url characters, no padding. */
  int o = 0;
  for (int i = 0; i < 16; i += 3) {
    uint32_t v = (uint32_t)md[i] << 16;
    if (i + 1 < 16)
      v |= (uint32_t)md[i + 1] << 8;
    if (i + 2 < 16)
      v |= md[i + 2];
    int chars = i + 2 < 16 ? 4 : 2;
    for (int k = 0; k < chars; k++)
      out[o++] = b64u[(v >> (18 - 6 * k)) & 63];
  }
  out[o] = '\0';
  return 0;
}

int nt_unsub_verify(const char *secret, int64_t school, int64_t student, const char *channel,
                    const char *token) {
  char want[32];
  if (!token || nt_unsub_token(secret, school, student, channel, want))
    return 0;
  size_t n = strlen(want);
  if (strlen(token) != n)
    return 0;
  return CRYPTO_memcmp(want, token, n) == 0;
}

void nt_redact(const char *in, char *out, size_t outlen) {
  erpq_redact(in ? in : "", in ? strlen(in) : 0, out, outlen);
}
