/*
 * erpq_notify_attach.c - a send-email job's attachments: stored report
 * files, read into memory for the MIME builder.
 *
 * data.attachments[i] is either
 *   {"reportJobId": "42", "queue"?: "reports", "filename"?: "..."}
 *       the file of a finished report job: its bull hash
 *       <prefix>:<queue>:<id> must exist, belong to the same school
 *       (data.schoolId) and hold a returnvalue naming the stored object
 *       ("key", or "storageKey"), optionally "fileName" and "contentType";
 *       a report that has not finished yet is a temporary failure (the
 *       job retries), a missing or foreign one a permanent one;
 *   {"key": "reports/<schoolId>/...", "filename"?, "contentType"?}
 *       a storage key, which must lie under reports/<schoolId>/ (a school
 *       never mails another school's files).
 * The object is read from the report storage (lib/storage: the local
 * directory, or S3 through a temporary file that is removed at once),
 * at most ERPQ_MAIL_MAX_ATTACHMENT_BYTES in all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_notify_attach.h"
#include "erpq_s3.h"
#include "erpq_storage.h"

static int read_fd(int fd, uint64_t size, int64_t budget, char **out, char *err, size_t errlen) {
  if ((int64_t)size > budget)
    return erpq_fail(err, errlen, -EFBIG, "the attachments are larger than the mail limit");
  char *buf = malloc(size ? size : 1);
  if (!buf)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      free(buf);
      return erpq_fail(err, errlen, -EIO, "cannot read a stored report file");
    }
    got += (size_t)n;
  }
  *out = buf;
  return 0;
}

static int load_key(nt_ctx *nc, const char *key, int64_t budget, char **data, size_t *len,
                    char *err, size_t errlen) {
  erpq_storage *st = nc->storage;
  if (!st)
    return erpq_fail(err, errlen, -ENOTSUP, "attachments are off in this worker: %s",
                     nc->storage_off);
  int fd = -1;
  uint64_t size = 0;
  char tmp[] = "/tmp/erpq-attach-XXXXXX";
  int rc;
  if (erpq_storage_kind_of(st) == ERPQ_STORAGE_S3) {
    fd = mkstemp(tmp);
    if (fd < 0)
      return erpq_fail(err, errlen, -errno, "cannot make a temporary file");
    close(fd);
    fd = -1;
    rc = erpq_s3_get_to_file(nc->s3, key, tmp, NULL, &size, err, errlen);
    if (!rc) {
      fd = open(tmp, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        rc = erpq_fail(err, errlen, -errno, "cannot open the downloaded report file");
    }
    unlink(tmp);
  } else {
    rc = erpq_storage_open(st, key, &fd, &size, err, errlen);
  }
  if (!rc)
    rc = read_fd(fd, size, budget, data, err, errlen);
  if (fd >= 0)
    close(fd);
  if (!rc)
    *len = (size_t)size;
  return rc;
}

static const char *json_str(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  return json_is_string(v) && *json_string_value(v) ? json_string_value(v) : NULL;
}

/* The stored object of a report job. *rv is the parsed returnvalue. */
static int report_key(erpq_jobctx *ctx, nt_ctx *nc, int64_t school, const json_t *item, json_t **rv,
                      const char **key, int *permanent, char *err, size_t errlen) {
  const json_t *idv = json_object_get(item, "reportJobId");
  char id[64];
  if (json_is_integer(idv))
    snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value(idv));
  else
    snprintf(id, sizeof id, "%s", json_string_value(idv));
  const char *queue = json_str(item, "queue") ? json_str(item, "queue") : nc->conf.reports_queue;
  erpq_cmd c;
  erpq_cmd_init(&c);
  erpq_cmd_push_str(&c, "HMGET");
  erpq_cmd_pushf(&c, "%s:%s:%s", erpq_job_prefix(ctx), queue, id);
  erpq_cmd_push_str(&c, "returnvalue");
  erpq_cmd_push_str(&c, "data");
  erpq_cmd_push_str(&c, "finishedOn");
  redisReply *r = NULL;
  int rc = erpq_job_redis(ctx, &c, &r, 5000, err, errlen);
  if (rc)
    return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
    freeReplyObject(r);
    return erpq_fail(err, errlen, ERPQ_E_PROTOCOL, "unexpected answer reading report job %s", id);
  }
  const redisReply *rvr = r->element[0], *dr = r->element[1], *fin = r->element[2];
  if (dr->type != REDIS_REPLY_STRING) {
    freeReplyObject(r);
    *permanent = 1;
    return erpq_fail(err, errlen, -ENOENT, "report job %s of queue %s does not exist", id, queue);
  }
  json_t *data = json_loads(dr->str, 0, NULL);
  const json_t *sv = data ? json_object_get(data, "schoolId") : NULL;
  int same = json_is_integer(sv) && json_integer_value(sv) == school;
  json_decref(data);
  if (!same) {
    freeReplyObject(r);
    *permanent = 1;
    return erpq_fail(err, errlen, -EPERM, "report job %s belongs to another school", id);
  }
  if (rvr->type != REDIS_REPLY_STRING || fin->type != REDIS_REPLY_STRING) {
    freeReplyObject(r);
    return erpq_fail(err, errlen, -EAGAIN, "report job %s has not finished yet", id);
  }
  *rv = json_loads(rvr->str, 0, NULL);
  freeReplyObject(r);
  *key = *rv ? json_str(*rv, "key") : NULL;
  if (!*key && *rv)
    *key = json_str(*rv, "storageKey");
  if (!*key) {
    *permanent = 1;
    return erpq_fail(err, errlen, -ENOENT,
                     "report job %s has no stored file (no key in its result)", id);
  }
  return 0;
}

int nt_attachments_load(erpq_jobctx *ctx, nt_ctx *nc, int64_t school, const json_t *arr,
                        nt_attachment **out, size_t *n, int *permanent, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  *permanent = 0;
  if (!arr || json_is_null(arr))
    return 0;
  size_t cnt = json_array_size(arr);
  nt_attachment *a = calloc(cnt ? cnt : 1, sizeof *a);
  if (!a)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int64_t budget = nc->conf.max_attachment_bytes;
  int rc = 0;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "reports/%" PRId64 "/", school);
  for (size_t i = 0; i < cnt && !rc; i++) {
    const json_t *item = json_array_get(arr, i);
    json_t *rv = NULL;
    const char *key = json_str(item, "key");
    int by_report = json_object_get(item, "reportJobId") != NULL;
    if (by_report == (key != NULL)) {
      *permanent = 1;
      rc = erpq_fail(err, errlen, -EINVAL,
                     "data.attachments[%zu] must name exactly one of reportJobId and key", i);
      break;
    }
    if (by_report) {
      rc = report_key(ctx, nc, school, item, &rv, &key, permanent, err, errlen);
    } else if (strncmp(key, prefix, strlen(prefix))) {
      *permanent = 1;
      rc = erpq_fail(err, errlen, -EPERM,
                     "data.attachments[%zu].key must lie under reports/%" PRId64 "/", i, school);
    }
    if (!rc) {
      const char *fname = json_str(item, "filename");
      if (!fname && rv)
        fname = json_str(rv, "fileName");
      if (!fname)
        fname = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
      const char *ctype = json_str(item, "contentType");
      if (!ctype && rv)
        ctype = json_str(rv, "contentType");
      if (!ctype)
        ctype = erpq_storage_content_type(key);
      snprintf(a[i].filename, sizeof a[i].filename, "%s", fname);
      snprintf(a[i].content_type, sizeof a[i].content_type, "%s", ctype);
      rc = load_key(nc, key, budget, &a[i].data, &a[i].len, err, errlen);
      if (rc == -ENOENT || rc == -EFBIG || rc == -ENOTSUP || rc == -EINVAL)
        *permanent = 1;
      if (!rc)
        budget -= (int64_t)a[i].len;
      *n = i + 1;
    }
    json_decref(rv);
  }
  if (rc) {
    nt_attachments_free(a, cnt);
    *n = 0;
    return rc;
  }
  *out = a;
  return 0;
}

void nt_attachments_free(nt_attachment *a, size_t n) {
  if (!a)
    return;
  for (size_t i = 0; i < n; i++)
    free(a[i].data);
  free(a);
}
