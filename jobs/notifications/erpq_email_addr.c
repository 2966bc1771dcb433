#include "erpq_email_addr.h"

#include <errno.h>
#include <string.h>

#include "erpq_err.h"

static int is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c) {
  return is_alnum(c) || (c && strchr("!#$%&'*+/=?^_`{|}~-", c));
}

int erpq_email_addr_valid(const char *addr, char *err, size_t errlen) {
  if (!addr || !*addr)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address is empty");
  size_t len = strlen(addr);
  if (strpbrk(addr, "\r\n"))
    return erpq_fail(err, errlen, -EINVAL,
                     "the e-mail address contains a line break (CR/LF: header injection)");
  for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
    if (*p < 0x20 || *p == 0x7f)
      return erpq_fail(err, errlen, -EINVAL, "the e-mail address contains a control character");
    if (*p == ' ')
      return erpq_fail(err, errlen, -EINVAL, "the e-mail address contains a space");
  }
  if (len > ERPQ_EMAIL_MAX)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address is longer than %d octets",
                     ERPQ_EMAIL_MAX);
  const char *at = strchr(addr, '@');
  if (!at)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address has no '@'");
  if (strchr(at + 1, '@'))
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address has more than one '@'");
  size_t ll = (size_t)(at - addr);
  const char *dom = at + 1;
  if (ll == 0)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address has no local part");
  if (ll > ERPQ_EMAIL_LOCAL_MAX)
    return erpq_fail(err, errlen, -EINVAL,
                     "the local part of the e-mail address is longer than %d octets",
                     ERPQ_EMAIL_LOCAL_MAX);
  /* Local part: dot-atom. */
  for (size_t i = 0; i < ll; i++) {
    unsigned char c = (unsigned char)addr[i];
    if (c >= 0x80)
      return erpq_fail(err, errlen, -EINVAL,
                       "the local part of the e-mail address is not ASCII (SMTPUTF8 addresses "
                       "are not supported)");
    if (c == '.') {
      if (i == 0 || i == ll - 1 || addr[i + 1] == '.')
        return erpq_fail(err, errlen, -EINVAL,
                         "the local part of the e-mail address has a leading, trailing or "
                         "doubled dot");
    } else if (!is_atext(c)) {
      return erpq_fail(err, errlen, -EINVAL,
                       "the local part of the e-mail address contains a character that needs "
                       "quoting (quoted local parts are not accepted)");
    }
  }
  /* Domain: LDH labels. */
  if (!*dom)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address has no domain");
  if (*dom == '[')
    return erpq_fail(err, errlen, -EINVAL, "address literals ([...]) are not accepted");
  size_t labels = 0;
  const char *p = dom;
  const char *last = dom;
  for (;;) {
    const char *s = p;
    while (*p && *p != '.') {
      unsigned char c = (unsigned char)*p;
      if (c >= 0x80)
        return erpq_fail(err, errlen, -EINVAL,
                         "the domain of the e-mail address is not ASCII (give an "
                         "internationalised domain in its xn-- form)");
      if (!is_alnum(c) && c != '-')
        return erpq_fail(err, errlen, -EINVAL,
                         "the domain of the e-mail address contains a character other than "
                         "letters, digits, '-' and '.'");
      p++;
    }
    size_t n = (size_t)(p - s);
    if (n == 0)
      return erpq_fail(err, errlen, -EINVAL,
                       "the domain of the e-mail address has an empty label (a leading, "
                       "trailing or doubled dot)");
    if (n > 63)
      return erpq_fail(err, errlen, -EINVAL,
                       "a label of the e-mail address's domain is longer than 63 octets");
    if (s[0] == '-' || s[n - 1] == '-')
      return erpq_fail(err, errlen, -EINVAL,
                       "a label of the e-mail address's domain starts or ends with '-'");
    labels++;
    last = s;
    if (!*p)
      break;
    p++;
  }
  if (labels < 2)
    return erpq_fail(err, errlen, -EINVAL, "the domain of the e-mail address has no dot");
  int alldigit = 1;
  for (const char *q = last; *q; q++)
    if (*q < '0' || *q > '9')
      alldigit = 0;
  if (alldigit)
    return erpq_fail(err, errlen, -EINVAL,
                     "the top-level domain of the e-mail address is all digits");
  return 0;
}

int erpq_email_addr_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen) {
  if (outlen)
    out[0] = '\0';
  if (!in)
    return erpq_fail(err, errlen, -EINVAL, "the e-mail address is empty");
  const char *s = in, *e = in + strlen(in);
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  size_t n = (size_t)(e - s);
  if (n + 1 > outlen)
    return erpq_fail(err, errlen, -ENOSPC, "the e-mail address does not fit the buffer");
  memcpy(out, s, n);
  out[n] = '\0';
  char *at = memchr(out, '@', n);
  if (at)
    for (char *q = at + 1; *q; q++)
      if (*q >= 'A' && *q <= 'Z')
        *q = (char)(*q - 'A' + 'a');
  int rc = erpq_email_addr_valid(out, err, errlen);
  if (rc)
    out[0] = '\0';
  return rc;
}

int erpq_email_mask(const char *addr, char *out, size_t outlen) {
  const char *at = addr ? strrchr(addr, '@') : NULL;
  if (!at || at == addr) {
    if (outlen >= 4) {
      strcpy(out, "***");
      return -EINVAL;
    }
    if (outlen)
      out[0] = '\0';
    return -ENOSPC;
  }
  /* The first character, whole even when it is a multi-byte UTF-8 one. */
  size_t first = 1;
  while (addr + first < at && ((unsigned char)addr[first] & 0xc0) == 0x80)
    first++;
  size_t need = first + 3 + strlen(at) + 1;
  if (need > outlen) {
    if (outlen)
      out[0] = '\0';
    return -ENOSPC;
  }
  memcpy(out, addr, first);
  memcpy(out + first, "***", 3);
  strcpy(out + first + 3, at);
  return 0;
}
