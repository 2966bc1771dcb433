#include "erpq_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

static int copy_part(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) return -1;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

/* Decodes %XX escapes in place (passwords may contain reserved chars). */
static void pct_decode(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
      char hex[3] = {s[1], s[2], 0};
      *o++ = (char)strtol(hex, NULL, 16);
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
}

int erpq_redis_url_parse(const char *url, erpq_redis_addr *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  out->port = 6379;
  snprintf(out->host, sizeof out->host, "127.0.0.1");
  if (!url || !*url) return erpq_fail(err, errlen, ERPQ_E_ARG, "empty Redis URL");
  const char *p;
  if (!strncmp(url, "unix://", 7) || !strncmp(url, "redis+unix://", 13)) {
    p = strchr(url, ':') + 3;
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (!n || copy_part(out->unix_path, sizeof out->unix_path, p, n))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "bad unix socket path in Redis URL '%s'", url);
    if (q) {
      const char *db = strstr(q, "db=");
      if (db) {
        char *end;
        long v = strtol(db + 3, &end, 10);
        if (end == db + 3 || (*end && *end != '&') || v < 0 || v > 100000)
          return erpq_fail(err, errlen, ERPQ_E_ARG, "bad database number in Redis URL '%s'", url);
        out->db = (int)v;
      }
      const char *pw = strstr(q, "password=");
      if (pw) {
        const char *e = strchr(pw, '&');
        size_t m = e ? (size_t)(e - pw - 9) : strlen(pw + 9);
        copy_part(out->password, sizeof out->password, pw + 9, m);
        pct_decode(out->password);
      }
    }
    return 0;
  }
  if (!strncmp(url, "redis://", 8))
    p = url + 8;
  else
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "Redis URL '%s' must start with redis:// or unix://", url);
  const char *at = strrchr(p, '@');
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
      if (copy_part(out->user, sizeof out->user, p, (size_t)(colon - p)) ||
          copy_part(out->password, sizeof out->password, colon + 1, (size_t)(at - colon - 1)))
        return erpq_fail(err, errlen, ERPQ_E_ARG, "credentials in Redis URL are too long");
    } else if (copy_part(out->password, sizeof out->password, p, (size_t)(at - p))) {
      return erpq_fail(err, errlen, ERPQ_E_ARG, "credentials in Redis URL are too long");
    }
    pct_decode(out->user);
    pct_decode(out->password);
    p = at + 1;
  }
  const char *slash = strchr(p, '/');
  size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
  const char *colon = NULL;
  if (*p == '[') { /* [ipv6]:port */
    const char *rb = memchr(p, ']', hostport);
    if (!rb) return erpq_fail(err, errlen, ERPQ_E_ARG, "bad IPv6 host in Redis URL '%s'", url);
    if (copy_part(out->host, sizeof out->host, p + 1, (size_t)(rb - p - 1)))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "host too long in Redis URL");
    if (rb + 1 < p + hostport && rb[1] == ':') colon = rb + 1;
  } else {
    colon = memchr(p, ':', hostport);
    size_t hl = colon ? (size_t)(colon - p) : hostport;
    if (hl && copy_part(out->host, sizeof out->host, p, hl))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "host too long in Redis URL");
  }
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end != p + hostport || port <= 0 || port > 65535)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "bad port in Redis URL '%s'", url);
    out->port = (int)port;
  }
  if (slash && slash[1]) {
    char *end;
    long db = strtol(slash + 1, &end, 10);
    if ((*end && *end != '?') || db < 0 || db > 100000)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "bad database number in Redis URL '%s'", url);
    out->db = (int)db;
  }
  return 0;
}

const char *erpq_env(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

int erpq_parse_int_arg(const char *what, const char *s, int64_t min, int64_t max,
                       int64_t *out, char *err, size_t errlen) {
  if (!s || !*s || !isdigit((unsigned char)*s))
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s must be a number, got '%s'", what, s ? s : "");
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s must be a number, got '%s'", what, s);
  if (v < min || v > max)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s must be between %lld and %lld, got %lld", what,
                     (long long)min, (long long)max, v);
  *out = v;
  return 0;
}
