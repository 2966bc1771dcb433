/* erpq_reports_notify.c - the report-ready e-mail of a job with notify:
 * a send-email job for the notifications family on the notify queue
 * (ERPQ_REPORT_NOTIFY_QUEUE, default "email"), added only after the report
 * is stored. Its job id, report-ready:<queue>:<jobId>, is deterministic:
 * a retried report job (a failure after the add, a crash) finds it there
 * and adds nothing twice. Its data:
 *   {schoolId, to, template: "report-ready", locale,
 *    vars: {recipientName, reportTitle, schoolName, downloadUrl, expiresAt,
 *           rows, format},
 *    dedupKey}
 * (templates/email/report-ready.*; templates/README.md). downloadUrl is a
 * fresh link valid 24 hours, expiresAt its end in the school's time
 * zone. recipientName is notify.name, else the address's local part. The
 * address goes into the job data only, never into a log line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "erpq_bull.h"
#include "erpq_err.h"
#include "reports/erpq_reports_run.h"

#define LINK_TTL_S 86400

static void local_text(const rep_run *r, int64_t utc, char *out, size_t outlen) {
  erpq_cell c = rep_local_cell(r, utc);
  char day[16];
  rep_date_text((rep_date){c.t.y, c.t.m, c.t.d}, day);
  snprintf(out, outlen, "%s %02d:%02d (%s)", day, c.t.hh, c.t.mi, r->s.tzname);
}

int rep_notify(rep_run *r, const char *file_name, uint64_t rows, char *err, size_t errlen) {
  const rep_req *q = r->q;
  int64_t now = (int64_t)time(NULL);
  char *url = NULL;
  int rc = erpq_storage_link(r->rc->st, r->key, file_name, LINK_TTL_S, now, &url, err, errlen);
  if (rc)
    return rc;
  char name[256], expires[128], title[1024], id[1300], fmt[8];
  if (q->notify_name[0]) {
    snprintf(name, sizeof name, "%s", q->notify_name);
  } else {
    snprintf(name, sizeof name, "%s", q->notify_email);
    name[strcspn(name, "@")] = '\0';
  }
  local_text(r, now + LINK_TTL_S, expires, sizeof expires);
  snprintf(title, sizeof title, "%s, %s", r->title, r->period);
  snprintf(id, sizeof id, "report-ready:%s:%s", erpq_job_queue(r->job), erpq_job_id(r->job));
  snprintf(fmt, sizeof fmt, "%s", rep_ext(q->format));
  for (char *p = fmt; *p; p++)
    *p = (char)(*p - 'a' + 'A');
  const char *locale = q->notify_locale[0] ? q->notify_locale : r->s.locale;
  json_t *data = json_pack("{s:I,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:I,s:s},s:s}", "schoolId",
                           (json_int_t)q->school, "to", q->notify_email, "template", "report-ready",
                           "locale", locale, "vars", "recipientName", name, "reportTitle", title,
                           "schoolName", r->s.name, "downloadUrl", url, "expiresAt", expires,
                           "rows", (json_int_t)rows, "format", fmt, "dedupKey", id);
  free(url);
  json_t *opts = json_pack("{s:s,s:i,s:{s:s,s:i}}", "jobId", id, "attempts", 5, "backoff", "type",
                           "exponential", "delay", 30000);
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  if (!text || !opts) {
    free(text);
    json_decref(opts);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  struct timeval tv;
  gettimeofday(&tv, NULL);
  erpq_newjob j;
  memset(&j, 0, sizeof j);
  rc = erpq_newjob_prepare(&j, "send-email", text, opts,
                           (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, err, errlen);
  free(text);
  json_decref(opts);
  if (rc) {
    erpq_newjob_free(&j);
    return rc < 0 ? rc : erpq_fail(err, errlen, -EINVAL, "the e-mail job was not prepared");
  }
  char *ids[1] = {NULL};
  int added[1] = {0};
  rc = erpq_job_enqueue(r->job, r->rc->notify_queue, &j, 1, ids, added, err, errlen);
  erpq_newjob_free(&j);
  free(ids[0]);
  if (rc) {
    char why[400];
    snprintf(why, sizeof why, "%s", err);
    return erpq_fail(err, errlen, rc,
                     "the report is stored but the report-ready e-mail could not "
                     "be queued: %s",
                     why);
  }
  rep_log(r,
          added[0] ? "report-ready e-mail queued on %s"
                   : "report-ready e-mail was already "
                     "queued on %s",
          r->rc->notify_queue);
  return 0;
}
