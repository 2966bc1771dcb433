/* erpq_storage_local.c - report files in a local directory (see erpq_storage.h). */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "erpq_err.h"
#include "erpq_sigv4.h"
#include "erpq_storage_internal.h"
#include "erpq_util.h"

#define WBUF (256 * 1024) /* Bytes gathered before a write(). */
#define CANCEL_POLL_MS 50 /* How often write() asks the cancel callback. */
#define DIR_MODE 0750
#define FILE_MODE 0640

struct st_local_upload {
  char *final_path; /* <dir>/<key> */
  char *tmp_path;   /* <dir>/<key's dir>/.<name>.XXXXXX */
  char *parent;     /* <dir>/<key's dir> */
  int fd;
  unsigned char *buf;
  size_t buf_len;
  EVP_MD_CTX *sha;
  uint64_t total;
  erpq_s3_cancel cancel;
  int64_t last_poll_ms;
  int failed;
  char failmsg[256];
};

static char *join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = malloc(na + nb + 2);
  if (!p)
    return NULL;
  memcpy(p, a, na);
  p[na] = '/';
  memcpy(p + na + 1, b, nb + 1);
  return p;
}

/* mkdir -p path (each missing directory 0750). */
static int mkdirs(const char *path, char *err, size_t errlen) {
  char *p = strdup(path);
  if (!p)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char saved = *s;
    *s = '\0';
    if (mkdir(p, DIR_MODE) != 0 && errno != EEXIST) {
      int e = errno;
      rc = erpq_fail(err, errlen, -e, "cannot create the directory %s: %s", p, strerror(e));
      break;
    }
    *s = saved;
    if (!saved)
      break;
  }
  if (rc == 0) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
      rc = erpq_fail(err, errlen, -ENOTDIR, "%s is not a directory", path);
  }
  free(p);
  return rc;
}

int st_local_init(const erpq_storage *st, char *err, size_t errlen) {
  return mkdirs(st->conf.dir, err, errlen);
}

static void upload_free(st_local_upload *u) {
  if (u->fd >= 0)
    close(u->fd);
  if (u->tmp_path)
    unlink(u->tmp_path);
  EVP_MD_CTX_free(u->sha);
  free(u->buf);
  free(u->final_path);
  free(u->tmp_path);
  free(u->parent);
  free(u);
}

int st_local_begin(const erpq_storage *st, const char *key, const erpq_s3_cancel *cancel,
                   st_local_upload **out, char *err, size_t errlen) {
  *out = NULL;
  st_local_upload *u = calloc(1, sizeof *u);
  if (!u)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  u->fd = -1;
  if (cancel)
    u->cancel = *cancel;
  u->final_path = join(st->conf.dir, key);
  u->buf = malloc(WBUF);
  u->sha = EVP_MD_CTX_new();
  if (!u->final_path || !u->buf || !u->sha || EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
    upload_free(u);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  const char *slash = strrchr(u->final_path, '/'); /* There is one: dir + '/' + key. */
  size_t plen = (size_t)(slash - u->final_path);
  u->parent = strndup(u->final_path, plen);
  u->tmp_path = u->parent ? malloc(plen + strlen(slash) + 16) : NULL;
  if (!u->tmp_path) {
    upload_free(u);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  /* Temporary names start with '.', which keys never do. */
  sprintf(u->tmp_path, "%s/.%s.XXXXXX", u->parent, slash + 1);
  int rc = mkdirs(u->parent, err, errlen);
  if (rc) {
    free(u->tmp_path);
    u->tmp_path = NULL;
    upload_free(u);
    return rc;
  }
  u->fd = mkostemp(u->tmp_path, O_CLOEXEC);
  if (u->fd < 0) {
    int e = errno;
    free(u->tmp_path);
    u->tmp_path = NULL;
    upload_free(u);
    return erpq_fail(err, errlen, -e, "cannot create a file in %s: %s", st->conf.dir, strerror(e));
  }
  if (fchmod(u->fd, FILE_MODE) != 0) { /* mkostemp makes 0600. */
    int e = errno;
    upload_free(u);
    return erpq_fail(err, errlen, -e, "cannot chmod a file in %s: %s", st->conf.dir, strerror(e));
  }
  u->last_poll_ms = erpq_mono_ms();
  *out = u;
  return 0;
}

static int fail(st_local_upload *u, int rc, const char *msg, char *err, size_t errlen) {
  if (!u->failed) {
    u->failed = rc;
    snprintf(u->failmsg, sizeof u->failmsg, "%s", msg);
  }
  return erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
}

static int flush(st_local_upload *u, char *err, size_t errlen) {
  size_t done = 0;
  while (done < u->buf_len) {
    ssize_t w = write(u->fd, u->buf + done, u->buf_len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int e = errno;
      char msg[200];
      snprintf(msg, sizeof msg, "cannot write the report file: %s", strerror(e));
      return fail(u, -e, msg, err, errlen);
    }
    done += (size_t)w;
  }
  u->buf_len = 0;
  return 0;
}

static int cancelled(st_local_upload *u) {
  return u->cancel.cancelled && u->cancel.cancelled(u->cancel.ud);
}

int st_local_write(st_local_upload *u, const void *buf, size_t len, char *err, size_t errlen) {
  if (u->failed)
    return erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
  int64_t now = erpq_mono_ms();
  if (now - u->last_poll_ms >= CANCEL_POLL_MS) {
    u->last_poll_ms = now;
    if (cancelled(u))
      return fail(u, -ECANCELED, "upload cancelled", err, errlen);
  }
  if (EVP_DigestUpdate(u->sha, buf, len) != 1)
    return fail(u, -ENOMEM, "SHA-256 failed", err, errlen);
  const unsigned char *p = buf;
  while (len > 0) {
    size_t n = WBUF - u->buf_len < len ? WBUF - u->buf_len : len;
    memcpy(u->buf + u->buf_len, p, n);
    u->buf_len += n;
    u->total += n;
    p += n;
    len -= n;
    if (u->buf_len == WBUF) {
      int rc = flush(u, err, errlen);
      if (rc)
        return rc;
    }
  }
  return 0;
}

void st_local_abort(st_local_upload *u) {
  if (u)
    upload_free(u);
}

int st_local_finish(st_local_upload *u, erpq_storage_result *res, char *err, size_t errlen) {
  erpq_storage_result r = {0};
  int rc;
  if (u->failed) {
    rc = erpq_fail(err, errlen, u->failed, "%s", u->failmsg);
    goto out;
  }
  if (cancelled(u)) {
    rc = erpq_fail(err, errlen, -ECANCELED, "upload cancelled");
    goto out;
  }
  if ((rc = flush(u, err, errlen)))
    goto out;
  if (fsync(u->fd) != 0 || close(u->fd) != 0) {
    int e = errno;
    u->fd = -1;
    rc = erpq_fail(err, errlen, -e, "cannot write the report file: %s", strerror(e));
    goto out;
  }
  u->fd = -1;
  if (rename(u->tmp_path, u->final_path) != 0) {
    int e = errno;
    rc = erpq_fail(err, errlen, -e, "cannot move the report file into place: %s", strerror(e));
    goto out;
  }
  free(u->tmp_path);
  u->tmp_path = NULL; /* Renamed: nothing to remove any more. */
  /* The rename is durable once the directory is. */
  int dfd = open(u->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    int e = errno;
    if (dfd >= 0)
      close(dfd);
    rc = erpq_fail(err, errlen, -e, "cannot sync the report directory: %s", strerror(e));
    goto out;
  }
  close(dfd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(u->sha, md, &n);
  erpq_sigv4_hex(md, n, r.sha256);
  snprintf(r.etag, sizeof r.etag, "%s", r.sha256);
  r.bytes = u->total;
  if (res)
    *res = r;
out:
  upload_free(u);
  return rc;
}

int st_local_head(const erpq_storage *st, const char *key, erpq_storage_info *out, char *err,
                  size_t errlen) {
  memset(out, 0, sizeof *out);
  char *path = join(st->conf.dir, key);
  if (!path)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  struct stat s;
  int rc = 0;
  if (lstat(path, &s) != 0) {
    int e = errno;
    if (e != ENOENT && e != ENOTDIR)
      rc = erpq_fail(err, errlen, -e, "cannot look at a report file: %s", strerror(e));
  } else if (S_ISREG(s.st_mode)) {
    out->exists = 1;
    out->size = (uint64_t)s.st_size;
    snprintf(out->content_type, sizeof out->content_type, "%s", erpq_storage_content_type(key));
  }
  free(path);
  return rc;
}

int st_local_delete(const erpq_storage *st, const char *key, char *err, size_t errlen) {
  char *path = join(st->conf.dir, key);
  if (!path)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = 0;
  if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR) {
    int e = errno;
    rc = erpq_fail(err, errlen, -e, "cannot delete a report file: %s", strerror(e));
  }
  free(path);
  return rc;
}

int st_local_open(const erpq_storage *st, const char *key, int *fd, uint64_t *size, char *err,
                  size_t errlen) {
  *fd = -1;
  char *path = join(st->conf.dir, key);
  if (!path)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  int e = errno;
  free(path);
  if (f < 0) {
    if (e == ENOTDIR || e == ELOOP)
      e = ENOENT;
    return erpq_fail(err, errlen, -e, "cannot open the report file: %s", strerror(e));
  }
  struct stat s;
  if (fstat(f, &s) != 0 || !S_ISREG(s.st_mode)) {
    close(f);
    return erpq_fail(err, errlen, -ENOENT, "no such report file");
  }
  if (size)
    *size = (uint64_t)s.st_size;
  *fd = f;
  return 0;
}
