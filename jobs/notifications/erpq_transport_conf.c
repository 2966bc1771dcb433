/* erpq_transport_conf.c - see erpq_transport_conf.h. */
#include "erpq_transport_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_buf.h"
#include "erpq_err.h"

const char *erpq_conf_str(const erpq_conf_src *c, const char *name) {
  const char *v = c && c->get ? c->get(c->ud, name) : NULL;
  return v && *v ? v : NULL;
}

int erpq_conf_int(const erpq_conf_src *c, const char *name, int64_t dflt, int64_t min, int64_t max,
                  int64_t *out, char *err, size_t errlen) {
  const char *v = erpq_conf_str(c, name);
  if (!v) {
    *out = dflt;
    return 0;
  }
  int64_t n = 0;
  const char *p = v;
  if (!*p)
    goto bad;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10)
      goto bad;
    n = n * 10 + (*p - '0');
  }
  if (n < min || n > max)
    goto bad;
  *out = n;
  return 0;
bad:
  return erpq_fail(err, errlen, ERPQ_E_ARG, "%s must be an integer from %lld to %lld", name,
                   (long long)min, (long long)max);
}

int erpq_conf_secret_dup(const erpq_conf_src *c, const char *name, char **out, char *err,
                         size_t errlen) {
  *out = NULL;
  char fname[128];
  snprintf(fname, sizeof fname, "%s_FILE", name);
  const char *v = erpq_conf_str(c, name), *path = erpq_conf_str(c, fname);
  if (v && path)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "set %s or %s, not both", name, fname);
  if (v) {
    *out = strdup(v);
    return *out ? 0 : erpq_fail(err, errlen, -ENOMEM, "%s: out of memory", name);
  }
  if (!path)
    return 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return erpq_fail(err, errlen, -e, "%s: cannot open %s: %s", fname, path, strerror(e));
  }
  size_t len = 0;
  char *s = erpq_buf_read_all(f, &len);
  fclose(f);
  if (!s)
    return erpq_fail(err, errlen, -EIO, "%s: cannot read %s", fname, path);
  if (len && s[len - 1] == '\n')
    s[--len] = 0;
  if (len && s[len - 1] == '\r')
    s[--len] = 0;
  if (!len || strlen(s) != len) {
    erpq_conf_secret_free(s);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: %s is empty or holds a NUL byte", fname, path);
  }
  *out = s;
  return 0;
}

void erpq_conf_secret_free(char *s) {
  if (!s)
    return;
  explicit_bzero(s, strlen(s));
  free(s);
}
