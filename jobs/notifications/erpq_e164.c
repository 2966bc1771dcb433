#include "erpq_e164.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "erpq_err.h"

/* Countries whose national trunk prefix is 0 (see the header). Sorted. */
static const short trunk0[] = {20,  27,  31,  32,  33,  41,  43,  44,  46,  49,  51,  54,  60,
                               61,  62,  63,  64,  66,  81,  82,  84,  86,  90,  91,  92,  93,
                               94,  95,  98,  212, 213, 234, 254, 255, 256, 353, 358, 380, 880,
                               886, 961, 962, 963, 964, 966, 967, 971, 972, 977};
/* Countries where a leading 0 is part of the national number. */
static const short keep0[] = {39, 225, 378};

static int in_list(const short *l, size_t n, int cc) {
  for (size_t i = 0; i < n; i++)
    if (l[i] == cc)
      return 1;
  return 0;
}

const char *erpq_e164_trunk_prefix(int cc) {
  if (in_list(trunk0, sizeof trunk0 / sizeof trunk0[0], cc))
    return "0";
  if (in_list(keep0, sizeof keep0 / sizeof keep0[0], cc))
    return "";
  if (cc == 1)
    return "1";
  if (cc == 7)
    return "8";
  return NULL;
}

int erpq_e164_valid(const char *s) {
  if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
    return 0;
  size_t n = 0;
  for (const char *p = s + 1; *p; p++, n++)
    if (*p < '0' || *p > '9')
      return 0;
  return n >= 8 && n <= 15;
}

/* Space, tab, and the no-break space (C2 A0) that spreadsheets produce. */
static size_t separator_len(const char *p) {
  switch (*p) {
  case ' ':
  case '\t':
  case '-':
  case '.':
  case '/':
  case '(':
  case ')': return 1;
  case '\xc2': return p[1] == '\xa0' ? 2 : 0;
  default: return 0;
  }
}

/* The country calling code at the start of international digits d, when it
 * is one of the table's (assigned codes are prefix-free, so at most one
 * matches); 0 otherwise. */
static int table_cc(const char *d, size_t nd, size_t *cclen) {
  int v = 0;
  for (size_t k = 0; k < 3 && k < nd; k++) {
    v = v * 10 + (d[k] - '0');
    if (erpq_e164_trunk_prefix(v)) {
      *cclen = k + 1;
      return v;
    }
  }
  return 0;
}

/* Drops the trunk prefix of country cc from the national number
 * (*nat, *nn) as the header describes. */
static int drop_trunk(int cc, const char **nat, size_t *nn, char *err, size_t errlen) {
  const char *trunk = erpq_e164_trunk_prefix(cc);
  if (!trunk) {
    if (*nn && (*nat)[0] == '0')
      return erpq_fail(err, errlen, -EINVAL,
                       "the phone number starts with 0 and it is not known whether 0 is a "
                       "trunk prefix for country calling code %d: store it with +%d",
                       cc, cc);
    return 0;
  }
  if (!trunk[0])
    return 0; /* Italy & co: the 0 is part of the number */
  if (trunk[0] == '0' && *nn && (*nat)[0] == '0') {
    (*nat)++, (*nn)--;
  } else if (trunk[0] != '0' && *nn == 11 && (*nat)[0] == trunk[0]) {
    (*nat)++, (*nn)--; /* NANP "1 NPA NXX XXXX", Russia "8 9xx ..." */
  }
  if (*nn && (*nat)[0] == '0')
    return erpq_fail(err, errlen, -EINVAL,
                     "the national phone number starts with a 0 that country calling code %d "
                     "does not use",
                     cc);
  return 0;
}

int erpq_e164_normalize(const char *in, int default_cc, char out[ERPQ_E164_BUFSZ], char *err,
                        size_t errlen) {
  out[0] = '\0';
  if (!in)
    return erpq_fail(err, errlen, -EINVAL, "no phone number given");
  if (default_cc < 0 || default_cc > 999)
    return erpq_fail(err, errlen, -EINVAL, "the default country calling code must be 1..999");
  char d[24];
  size_t nd = 0;
  int plus = 0;
  for (const char *p = in; *p;) {
    size_t sep = separator_len(p);
    if (sep) {
      p += sep;
    } else if (*p == '+') {
      if (plus)
        return erpq_fail(err, errlen, -EINVAL, "the phone number has more than one '+'");
      if (nd)
        return erpq_fail(err, errlen, -EINVAL, "the phone number has a '+' after its first digit");
      plus = 1;
      p++;
    } else if (*p >= '0' && *p <= '9') {
      if (nd >= sizeof d - 1)
        return erpq_fail(err, errlen, -EINVAL, "the phone number has more than 15 digits");
      d[nd++] = *p++;
    } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
      return erpq_fail(err, errlen, -EINVAL,
                       "the phone number contains letters (vanity numbers and extensions are "
                       "not accepted)");
    } else {
      return erpq_fail(err, errlen, -EINVAL,
                       "the phone number contains a character other than digits, '+' and the "
                       "separators space - . / ( )");
    }
  }
  d[nd] = '\0';
  if (!nd)
    return erpq_fail(err, errlen, -EINVAL, "the phone number has no digits");

  int cc;
  const char *nat;
  size_t nn;
  if (plus || (nd >= 2 && d[0] == '0' && d[1] == '0')) {
    const char *intl = plus ? d : d + 2;
    size_t ni = plus ? nd : nd - 2;
    if (ni && intl[0] == '0')
      return erpq_fail(err, errlen, -EINVAL, "the phone number has a 0 right after the '+'");
    size_t cclen = 0;
    cc = table_cc(intl, ni, &cclen);
    if (!cc) {
      /* A country we hold no trunk rule for: digits as given. */
      if (ni < 8)
        return erpq_fail(err, errlen, -EINVAL, "the phone number has fewer than 8 digits");
      if (ni > 15)
        return erpq_fail(err, errlen, -EINVAL, "the phone number has more than 15 digits");
      out[0] = '+';
      memcpy(out + 1, intl, ni);
      out[ni + 1] = '\0';
      return 0;
    }
    /* "+44 (0)20 ..." and "+44 020 ...": the trunk 0 written by habit. */
    nat = intl + cclen, nn = ni - cclen;
  } else {
    if (!default_cc)
      return erpq_fail(err, errlen, -EINVAL,
                       "the phone number has no country code ('+' or 00) and no default "
                       "country calling code is configured");
    cc = default_cc;
    nat = d, nn = nd;
  }
  int rc = drop_trunk(cc, &nat, &nn, err, errlen);
  if (rc)
    return rc;
  char num[32];
  int w = snprintf(num, sizeof num, "%d%.*s", cc, (int)nn, nat);
  if (w < 0 || (size_t)w >= sizeof num || w > 15)
    return erpq_fail(err, errlen, -EINVAL, "the phone number has more than 15 digits");
  if (w < 8)
    return erpq_fail(err, errlen, -EINVAL, "the phone number has fewer than 8 digits");
  out[0] = '+';
  memcpy(out + 1, num, (size_t)w + 1);
  return 0;
}

int erpq_e164_mask(const char *e164, char out[ERPQ_E164_BUFSZ]) {
  if (!erpq_e164_valid(e164)) {
    strcpy(out, "***");
    return -EINVAL;
  }
  size_t n = strlen(e164);
  memcpy(out, e164, 3);
  for (size_t i = 3; i < n - 2; i++)
    out[i] = '*';
  memcpy(out + n - 2, e164 + n - 2, 3);
  return 0;
}
