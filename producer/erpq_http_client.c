#include "erpq_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

/* Reads "ADDR" into family and 16 bytes; 0 or -1. */
static int parse_ip(const char *s, int *family, unsigned char out[16]) {
  memset(out, 0, 16);
  if (inet_pton(AF_INET, s, out) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, s, out) == 1) {
    *family = AF_INET6;
    return 0;
  }
  return -1;
}

static int parse_cidr(const char *s, erpq_cidr *c) {
  char buf[80];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof buf)
    return -1;
  memcpy(buf, s, n + 1);
  char *slash = strchr(buf, '/');
  if (slash)
    *slash = '\0';
  if (parse_ip(buf, &c->family, c->addr))
    return -1;
  int max = c->family == AF_INET ? 32 : 128;
  c->bits = max;
  if (slash) {
    char *end;
    long b = strtol(slash + 1, &end, 10);
    if (!slash[1] || *end || b < 0 || b > max)
      return -1;
    c->bits = (int)b;
  }
  return 0;
}

int erpq_proxies_parse(erpq_proxies *p, const char *list, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (!list || !*list)
    return 0;
  char *copy = strdup(list);
  if (!copy)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "out of memory");
  int rc = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ')
      tok++;
    char *e = tok + strlen(tok);
    while (e > tok && e[-1] == ' ')
      *--e = '\0';
    if (!*tok)
      continue;
    erpq_cidr c;
    erpq_cidr *nv = parse_cidr(tok, &c) ? NULL : realloc(p->v, (p->n + 1) * sizeof *p->v);
    if (!nv) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                     "--trusted-proxies: '%s' is not an IPv4 or IPv6 address or CIDR", tok);
      break;
    }
    p->v = nv;
    p->v[p->n++] = c;
  }
  free(copy);
  if (rc)
    erpq_proxies_free(p);
  return rc;
}

void erpq_proxies_free(erpq_proxies *p) {
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

static int in_cidr(const erpq_cidr *c, int family, const unsigned char *a) {
  if (c->family != family)
    return 0;
  int full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(c->addr, a, (size_t)full))
    return 0;
  if (!rest)
    return 1;
  unsigned char mask = (unsigned char)(0xFF << (8 - rest));
  return (c->addr[full] & mask) == (a[full] & mask);
}

static int trusted(const erpq_proxies *p, int family, const unsigned char *a) {
  for (size_t i = 0; i < p->n; i++)
    if (in_cidr(&p->v[i], family, a))
      return 1;
  return 0;
}

/* The family and bytes of a socket address; -1 for other families. An
 * IPv4-mapped IPv6 address counts as IPv4. */
static int sa_bytes(const struct sockaddr *sa, int *family, unsigned char out[16]) {
  memset(out, 0, 16);
  if (!sa)
    return -1;
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    *family = AF_INET;
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(b, mapped, 12)) {
      memcpy(out, b + 12, 4);
      *family = AF_INET;
    } else {
      memcpy(out, b, 16);
      *family = AF_INET6;
    }
    return 0;
  }
  return -1;
}

int erpq_proxies_trust(const erpq_proxies *p, const struct sockaddr *sa) {
  int family;
  unsigned char a[16];
  return p->n && !sa_bytes(sa, &family, a) && trusted(p, family, a);
}

static void describe(int family, const unsigned char *a, char *addr, size_t alen, char *net,
                     size_t nlen) {
  char buf[INET6_ADDRSTRLEN];
  unsigned char m[16];
  memcpy(m, a, 16);
  snprintf(addr, alen, "unknown");
  snprintf(net, nlen, "unknown");
  if (!inet_ntop(family, a, buf, sizeof buf))
    return;
  snprintf(addr, alen, "%s", buf);
  if (family == AF_INET)
    m[3] = 0;
  else
    memset(m + 6, 0, 10);
  if (inet_ntop(family, m, buf, sizeof buf))
    snprintf(net, nlen, "%s/%d", buf, family == AF_INET ? 24 : 48);
}

void erpq_client_of(const erpq_proxies *p, const struct sockaddr *peer, const char *xff, char *addr,
                    size_t alen, char *net, size_t nlen) {
  int family;
  unsigned char a[16];
  if (sa_bytes(peer, &family, a)) {
    snprintf(addr, alen, "unknown");
    snprintf(net, nlen, "unknown");
    return;
  }
  if (xff && p->n && trusted(p, family, a)) {
    /* Right to left: each entry was appended by the hop after it. */
    const char *end = xff + strlen(xff);
    while (end > xff) {
      const char *start = end;
      while (start > xff && start[-1] != ',')
        start--;
      const char *s = start, *e = end;
      while (s < e && (*s == ' ' || *s == '\t'))
        s++;
      while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
      char buf[64];
      int fam2;
      unsigned char b[16];
      if (e == s || (size_t)(e - s) >= sizeof buf)
        break;
      memcpy(buf, s, (size_t)(e - s));
      buf[e - s] = '\0';
      if (parse_ip(buf, &fam2, b))
        break; /* Malformed: the last trusted hop is the client. */
      family = fam2;
      memcpy(a, b, 16);
      if (!trusted(p, family, a))
        break;
      end = start > xff ? start - 1 : xff;
    }
  }
  describe(family, a, addr, alen, net, nlen);
}
