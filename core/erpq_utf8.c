/* erpq_utf8.c - UTF-8 decoding and encoding (see erpq_utf8.h). */
#include "erpq_utf8.h"

size_t erpq_utf8_decode(const char *s, size_t n, uint32_t *cp, int *bad) {
  const unsigned char *u = (const unsigned char *)s;
  unsigned char c = u[0];
  *bad = 0;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v;
  unsigned char lo = 0x80, hi = 0xBF; /* The allowed range of the second byte. */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F;
    if (c == 0xE0)
      lo = 0xA0; /* No overlong forms. */
    else if (c == 0xED)
      hi = 0x9F; /* No surrogates. */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07;
    if (c == 0xF0)
      lo = 0x90; /* No overlong forms. */
    else if (c == 0xF4)
      hi = 0x8F; /* Nothing above U+10FFFF. */
  } else {
    /* A continuation byte, C0/C1 (always overlong), F5..FF. */
    *cp = ERPQ_UTF8_REPLACEMENT;
    *bad = 1;
    return 1;
  }
  size_t i = 1;
  for (; i < len && i < n; i++) {
    unsigned char b = u[i];
    if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
      break;
    v = (v << 6) | (b & 0x3F);
  }
  if (i == len) {
    *cp = v;
    return len;
  }
  *cp = ERPQ_UTF8_REPLACEMENT;
  *bad = 1;
  return i;
}

int erpq_utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
  int bad;
  size_t k = erpq_utf8_decode((const char *)s, len, cp, &bad);
  return bad ? 0 : (int)k;
}

size_t erpq_utf8_check(const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    int bad;
    size_t k = erpq_utf8_decode(s + i, len - i, &cp, &bad);
    if (bad)
      return i;
    i += k;
  }
  return len;
}

int erpq_utf8_valid(const char *s, size_t n) { return erpq_utf8_check(s, n) == n; }

int erpq_utf8_put(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}
