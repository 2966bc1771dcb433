/* erpq_reports_out.c - where a report's bytes go (see erpq_reports_run.h).
 *
 * CSV: the writer's sink feeds a streaming storage upload directly, so
 * the file goes up while it is produced (S3: parts of ERPQ_S3_PART_SIZE
 * on the upload's own thread, one PUT when the file is smaller than a
 * part). The job log gets one line per part: part k is known to be up
 * when part k+1 is handed over (the upload holds at most one part in
 * flight and waits for it before queueing the next), the rest at finish.
 *
 * XLSX and PDF: their libraries assemble the file at close, so it is
 * written into a private directory made with mkdtemp() under
 * ERPQ_REPORT_TMPDIR (libxlsxwriter's own temporary files go there too)
 * and uploaded with erpq_storage_put_file() (parallel parts). The
 * directory and everything in it are removed in every outcome. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "reports/erpq_reports_run.h"

static int cancelled(void *ud) {
  rep_run *r = ud;
  return r->job && erpq_job_cancelled(r->job);
}

erpq_s3_cancel rep_out_cancel(rep_run *r) { return (erpq_s3_cancel){cancelled, r}; }

static uint64_t part_size(const rep_run *r) {
  return r->rc->sconf.kind == ERPQ_STORAGE_S3 ? r->rc->sconf.s3.part_size : 0;
}

static void mib(uint64_t bytes, char out[32]) {
  /* One decimal, rounded, without floating point. */
  uint64_t tenths = (bytes * 10 + ERPQ_S3_MIB / 2) / ERPQ_S3_MIB;
  snprintf(out, 32, "%" PRIu64 ".%" PRIu64 " MiB", tenths / 10, tenths % 10);
}

/* Logs the parts known to be uploaded up to part `upto`. */
static void log_parts(rep_run *r, int upto, int total, uint64_t bytes) {
  uint64_t ps = part_size(r);
  for (int k = r->out.parts_logged + 1; k <= upto; k++) {
    uint64_t len = ps;
    if (total && k == total)
      len = bytes - (uint64_t)(total - 1) * ps;
    char m[32];
    mib(len, m);
    rep_log(r, "uploaded part %d (%s)", k, m);
  }
  if (upto > r->out.parts_logged)
    r->out.parts_logged = upto;
}

static int csv_sink(void *ud, const void *buf, size_t len) {
  rep_run *r = ud;
  char err[256];
  int rc = erpq_storage_write(r->out.up, buf, len, err, sizeof err);
  if (rc) {
    snprintf(r->out_err, sizeof r->out_err, "%s", err);
    return rc;
  }
  r->out.written += len;
  uint64_t ps = part_size(r);
  if (ps && r->out.written > ps) {
    int shipped = (int)((r->out.written - 1) / ps);
    if (shipped - 1 > r->out.parts_logged)
      log_parts(r, shipped - 1, 0, 0);
  }
  return 0;
}

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

int rep_out_open(rep_run *r, erpq_rdest *dest, erpq_ropts *opts, char *err, size_t errlen) {
  memset(dest, 0, sizeof *dest);
  const rep_req *q = r->q;
  if (q->format == ERPQ_RFORMAT_CSV) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", r->file_base, rep_ext(q->format));
    erpq_s3_cancel c = rep_out_cancel(r);
    int rc = erpq_storage_begin(r->rc->st, r->key, rep_content_type(q->format), name, &c,
                                &r->out.up, err, errlen);
    if (rc)
      return rc;
    dest->write = csv_sink;
    dest->ud = r;
    return 0;
  }
  int n = snprintf(r->out.dir, sizeof r->out.dir, "%s/erpq-report-XXXXXX", r->rc->tmpdir);
  if (n < 0 || (size_t)n >= sizeof r->out.dir) {
    r->out.dir[0] = '\0';
    return erpq_fail(err, errlen, -ENAMETOOLONG, "ERPQ_REPORT_TMPDIR is too long");
  }
  if (!mkdtemp(r->out.dir)) {
    int e = errno;
    r->out.dir[0] = '\0';
    return erpq_fail(err, errlen, -e,
                     "cannot create a temporary directory in ERPQ_REPORT_TMPDIR "
                     "(%s): %s",
                     r->rc->tmpdir, strerror(e));
  }
  snprintf(r->out.path, sizeof r->out.path, "%s/report.%s", r->out.dir, rep_ext(q->format));
  dest->path = r->out.path;
  opts->tmpdir = r->out.dir;
  return 0;
}

int rep_out_store(rep_run *r, char *err, size_t errlen) {
  const rep_req *q = r->q;
  char name[256];
  snprintf(name, sizeof name, "%s.%s", r->file_base, rep_ext(q->format));
  int rc;
  int s3 = r->rc->sconf.kind == ERPQ_STORAGE_S3;
  if (q->format == ERPQ_RFORMAT_CSV) {
    erpq_storage_upload *u = r->out.up;
    r->out.up = NULL; /* finish() frees it in every case */
    rc = erpq_storage_finish(u, &r->out.res, err, errlen);
    if (rc)
      return rc;
    if (s3 && r->out.res.parts)
      log_parts(r, r->out.res.parts, r->out.res.parts, r->out.res.bytes);
  } else {
    erpq_s3_cancel c = rep_out_cancel(r);
    rc = erpq_storage_put_file(r->rc->st, r->key, r->out.path, rep_content_type(q->format), name,
                               &c, &r->out.res, err, errlen);
    if (rc)
      return rc;
    for (int k = 1; s3 && k <= r->out.res.parts; k++)
      rep_log(r, "uploaded part %d of %d", k, r->out.res.parts);
  }
  char m[32];
  mib(r->out.res.bytes, m);
  if (!s3)
    rep_log(r, "stored in the local directory (%" PRIu64 " bytes, %s)", r->out.res.bytes, m);
  else if (!r->out.res.parts)
    rep_log(r, "uploaded in one request (%" PRIu64 " bytes, %s)", r->out.res.bytes, m);
  else
    rep_log(r, "uploaded %" PRIu64 " bytes (%s) in %d parts", r->out.res.bytes, m,
            r->out.res.parts);
  return 0;
}

void rep_out_cleanup(rep_run *r) {
  if (r->out.up) {
    erpq_storage_abort(r->out.up);
    r->out.up = NULL;
  }
  if (r->out.dir[0]) {
    rm_tree(r->out.dir);
    r->out.dir[0] = '\0';
  }
}
