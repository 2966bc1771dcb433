/* erpq_storage.c - configuration and the backend dispatch (see erpq_storage.h). */
#include "erpq_storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "erpq_err.h"
#include "erpq_sigv4.h"
#include "erpq_storage_internal.h"

#define DEFAULT_PUBLIC_URL "http://127.0.0.1:8080"
#define COPY_CHUNK (1024 * 1024) /* Bytes per read when copying a file in. */

struct erpq_storage_upload {
  erpq_s3_upload *s3;
  st_local_upload *local;
};

static const char *lookup(erpq_s3_getenv_fn get, void *ud, const char *name) {
  const char *v = get ? get(ud, name) : NULL;
  return (v && *v) ? v : NULL;
}

int erpq_storage_conf_read(erpq_storage_conf *c, erpq_s3_getenv_fn get, void *ud, char *err,
                           size_t errlen) {
  memset(c, 0, sizeof *c);
  if (lookup(get, ud, "ERPQ_S3_BUCKET")) {
    c->kind = ERPQ_STORAGE_S3;
    return erpq_s3_conf_read(&c->s3, get, ud, err, errlen);
  }
  c->kind = ERPQ_STORAGE_LOCAL;
  const char *dir = lookup(get, ud, "ERPQ_STORAGE_DIR");
  if (!dir)
    return erpq_fail(err, errlen, -EINVAL,
                     "set ERPQ_S3_BUCKET (S3) or ERPQ_STORAGE_DIR (a local directory) for report "
                     "files");
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  if (dir[0] != '/' || n >= sizeof c->dir)
    return erpq_fail(err, errlen, -EINVAL,
                     "ERPQ_STORAGE_DIR must be an absolute path of at most %zu bytes",
                     sizeof c->dir - 1);
  memcpy(c->dir, dir, n);
  c->dir[n] = '\0';

  char secret[ERPQ_LINK_SECRET_MAX + 1];
  int found, rc = erpq_conf_secret(secret, sizeof secret, get, ud, "ERPQ_STORAGE_SECRET", &found,
                                   err, errlen);
  if (rc == -EINVAL && strstr(err, "too long"))
    rc = erpq_fail(err, errlen, -EINVAL, "ERPQ_STORAGE_SECRET must be %d to %d bytes",
                   ERPQ_LINK_SECRET_MIN, ERPQ_LINK_SECRET_MAX);
  if (rc == 0 && !found)
    rc = erpq_fail(err, errlen, -EINVAL,
                   "ERPQ_STORAGE_SECRET (or ERPQ_STORAGE_SECRET_FILE) is not set: local download "
                   "links are signed with it");
  if (rc == 0 && strlen(secret) < ERPQ_LINK_SECRET_MIN)
    rc = erpq_fail(err, errlen, -EINVAL, "ERPQ_STORAGE_SECRET must be at least %d bytes",
                   ERPQ_LINK_SECRET_MIN);
  if (rc == 0) {
    const char *url = lookup(get, ud, "ERPQ_PUBLIC_URL");
    char why[200];
    if (erpq_link_signer_init(&c->links, secret, strlen(secret), url ? url : DEFAULT_PUBLIC_URL,
                              why, sizeof why))
      rc = erpq_fail(err, errlen, -EINVAL,
                     "ERPQ_PUBLIC_URL must look like http(s)://host[:port][/prefix]");
  }
  OPENSSL_cleanse(secret, sizeof secret);
  return rc;
}

void erpq_storage_conf_clear(erpq_storage_conf *c) { OPENSSL_cleanse(c, sizeof *c); }

int erpq_storage_new(erpq_storage **out, const erpq_storage_conf *c, char *err, size_t errlen) {
  *out = NULL;
  if (c->kind != ERPQ_STORAGE_LOCAL && c->kind != ERPQ_STORAGE_S3)
    return erpq_fail(err, errlen, -EINVAL, "unknown storage kind");
  if (c->kind == ERPQ_STORAGE_LOCAL && (c->dir[0] != '/' || !c->links.secret_len))
    return erpq_fail(err, errlen, -EINVAL, "the local storage needs a directory and a secret");
  erpq_storage *st = calloc(1, sizeof *st);
  if (!st)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  st->conf = *c;
  int rc = c->kind == ERPQ_STORAGE_S3 ? erpq_s3_new(&st->s3, &c->s3, err, errlen)
                                      : st_local_init(st, err, errlen);
  if (rc) {
    erpq_storage_free(st);
    return rc;
  }
  *out = st;
  return 0;
}

void erpq_storage_free(erpq_storage *st) {
  if (!st)
    return;
  erpq_s3_free(st->s3);
  erpq_storage_conf_clear(&st->conf);
  free(st);
}

erpq_storage_kind erpq_storage_kind_of(const erpq_storage *st) { return st->conf.kind; }

const erpq_link_signer *erpq_storage_links(const erpq_storage *st) {
  return st->conf.kind == ERPQ_STORAGE_LOCAL ? &st->conf.links : NULL;
}

const char *erpq_storage_content_type(const char *key) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".csv", "text/csv"},
      {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {".pdf", "application/pdf"},
      {".json", "application/json"},
      {".txt", "text/plain"},
      {".zip", "application/zip"},
  };
  const char *dot = key ? strrchr(key, '.') : NULL;
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

static int check_key(const char *key, char *err, size_t errlen) {
  return erpq_storage_key_check(key, key ? strlen(key) : 0, err, errlen);
}

/* ---- uploads ------------------------------------------------------------- */

int erpq_storage_begin(const erpq_storage *st, const char *key, const char *content_type,
                       const char *file_name, const erpq_s3_cancel *cancel,
                       erpq_storage_upload **out, char *err, size_t errlen) {
  *out = NULL;
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  erpq_storage_upload *u = calloc(1, sizeof *u);
  if (!u)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  if (st->conf.kind == ERPQ_STORAGE_S3) {
    erpq_buf disp = {0};
    if (file_name)
      erpq_sigv4_content_disposition(file_name, &disp);
    if (disp.oom) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    } else {
      rc = erpq_s3_upload_begin(st->s3, key,
                                content_type ? content_type : erpq_storage_content_type(key),
                                disp.s, cancel, &u->s3, err, errlen);
    }
    erpq_buf_free(&disp);
  } else {
    rc = st_local_begin(st, key, cancel, &u->local, err, errlen);
  }
  if (rc) {
    free(u);
    return rc;
  }
  *out = u;
  return 0;
}

int erpq_storage_write(erpq_storage_upload *u, const void *buf, size_t len, char *err,
                       size_t errlen) {
  return u->s3 ? erpq_s3_upload_write(u->s3, buf, len, err, errlen)
               : st_local_write(u->local, buf, len, err, errlen);
}

int erpq_storage_finish(erpq_storage_upload *u, erpq_storage_result *res, char *err,
                        size_t errlen) {
  int rc = u->s3 ? erpq_s3_upload_finish(u->s3, res, err, errlen)
                 : st_local_finish(u->local, res, err, errlen);
  free(u);
  return rc;
}

void erpq_storage_abort(erpq_storage_upload *u) {
  if (!u)
    return;
  if (u->s3)
    erpq_s3_upload_abort(u->s3);
  if (u->local)
    st_local_abort(u->local);
  free(u);
}

int erpq_storage_put_file(const erpq_storage *st, const char *key, const char *path,
                          const char *content_type, const char *file_name,
                          const erpq_s3_cancel *cancel, erpq_storage_result *res, char *err,
                          size_t errlen) {
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  if (st->conf.kind == ERPQ_STORAGE_S3) {
    erpq_buf disp = {0};
    if (file_name)
      erpq_sigv4_content_disposition(file_name, &disp);
    if (disp.oom) {
      erpq_buf_free(&disp);
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    }
    rc = erpq_s3_put_file(st->s3, key, path,
                          content_type ? content_type : erpq_storage_content_type(key), disp.s,
                          cancel, res, err, errlen);
    erpq_buf_free(&disp);
    return rc;
  }
  /* Local: copy through a temporary file in the key's directory. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return erpq_fail(err, errlen, -e, "cannot open %s: %s", path, strerror(e));
  }
  char *buf = malloc(COPY_CHUNK);
  st_local_upload *u = NULL;
  if (!buf) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  } else if ((rc = st_local_begin(st, key, cancel, &u, err, errlen)) == 0) {
    for (;;) {
      ssize_t n = read(fd, buf, COPY_CHUNK);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        int e = errno;
        rc = erpq_fail(err, errlen, -e, "cannot read %s: %s", path, strerror(e));
        break;
      }
      if (n == 0)
        break;
      if ((rc = st_local_write(u, buf, (size_t)n, err, errlen)))
        break;
    }
    if (rc)
      st_local_abort(u);
    else
      rc = st_local_finish(u, res, err, errlen);
  }
  free(buf);
  close(fd);
  return rc;
}

/* ---- objects ------------------------------------------------------------- */

int erpq_storage_head(const erpq_storage *st, const char *key, erpq_storage_info *out, char *err,
                      size_t errlen) {
  memset(out, 0, sizeof *out);
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  if (st->conf.kind == ERPQ_STORAGE_LOCAL)
    return st_local_head(st, key, out, err, errlen);
  erpq_s3_info h;
  rc = erpq_s3_head(st->s3, key, &h, err, errlen);
  if (rc == 0) {
    out->exists = h.exists;
    out->size = h.size;
    snprintf(out->content_type, sizeof out->content_type, "%s", h.content_type);
  }
  return rc;
}

int erpq_storage_delete(const erpq_storage *st, const char *key, char *err, size_t errlen) {
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  return st->conf.kind == ERPQ_STORAGE_LOCAL ? st_local_delete(st, key, err, errlen)
                                             : erpq_s3_delete(st->s3, key, err, errlen);
}

int erpq_storage_open(const erpq_storage *st, const char *key, int *fd, uint64_t *size, char *err,
                      size_t errlen) {
  *fd = -1;
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  if (st->conf.kind != ERPQ_STORAGE_LOCAL)
    return erpq_fail(err, errlen, -ENOTSUP, "S3 objects are read through their links");
  return st_local_open(st, key, fd, size, err, errlen);
}

int erpq_storage_link(const erpq_storage *st, const char *key, const char *file_name, int64_t ttl_s,
                      int64_t now, char **url, char *err, size_t errlen) {
  *url = NULL;
  int rc = check_key(key, err, errlen);
  if (rc)
    return rc;
  if (ttl_s <= 0)
    ttl_s = ERPQ_LINK_TTL_DEFAULT;
  if (ttl_s > ERPQ_LINK_TTL_MAX)
    ttl_s = ERPQ_LINK_TTL_MAX;
  if (st->conf.kind == ERPQ_STORAGE_LOCAL)
    return erpq_link_sign(&st->conf.links, key, file_name, ttl_s, now, url, err, errlen);
  return erpq_s3_presign_get(st->s3, key, file_name, ttl_s, now, url, err, errlen);
}
