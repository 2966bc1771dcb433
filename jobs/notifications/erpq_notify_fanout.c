/*
 * erpq_notify_fanout.c - the fee-reminders handler: the defaulters of a
 * school (or class), page by page from MySQL, become one send-email and/or
 * one send-sms job per student and channel, added in bulk with
 * deterministic ids, so that running the same reminder twice, or again
 * after a crash, adds nothing twice.
 *
 * A defaulter is a student with at least one fee that is pending or
 * partially paid, not fully paid, and due on or before asOf minus
 * minOverdueDays (default 1: due before asOf). Per student: the amount
 * outstanding (sum of amount - paid), the number of such fees and the
 * oldest due date. Students are read in id order, ERPQ_NOTIFY_PAGE_SIZE at
 * a time (keyset paging: id > last id), one query per page.
 *
 * For each defaulter and channel: the contact is normalised (e-mail
 * address: trimmed, domain lowercased; phone: E.164 with the school's
 * default country code for national numbers, so "+91 98001 00001" becomes
 * +919800100001); one that is missing or unusable is counted in
 * skipped.noContact, an opted-out one (notification_optouts) in
 * skipped.optedOut. The job id is
 *   reminder:<school>:<asOf>:<student>:<channel>:<school>
 * (the trailing :<school> is the group bull's limiter groupKey reads, as
 * bull's own Queue.add appends it, so per-school caps apply), its dedupKey
 * reminder:<school>:<asOf>:<student>:<channel>. A job with that id that is
 * already in the queue (waiting, delayed, active, completed or failed) is
 * not added again and counts as skipped.alreadyQueued; should it have
 * been removed, the send's dedup record still stops a second message.
 * One bull add script call per page and channel (erpq_job_enqueue); one
 * progress report per page.
 *
 * Result {recipients, enqueued, skipped: {noContact, alreadyQueued,
 * optedOut}, defaulters}: recipients counts student-channel pairs, so
 * recipients = enqueued + noContact + alreadyQueued + optedOut.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_bull.h"
#include "erpq_e164.h"
#include "erpq_email_addr.h"
#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notify_internal.h"
#include "erpq_notify_sql.h"
#include "erpq_util.h"

typedef struct run {
  erpq_jobctx *ctx;
  nt_ctx *nc;
  int64_t school, klass, min_days;
  const char *as_of, *tmpl, *locale;
  int want[NT_NCH];
  char school_name[256], currency[8];
  int64_t recipients, enqueued, no_contact, already, opted_out, defaulters, pages;
  erpq_newjob *jobs[NT_NCH];
  size_t njobs[NT_NCH];
} run;

static int valid_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return y >= 1970 && m >= 1 && m <= 12 && d >= 1 && d <= md[m - 1] + (m == 2 && leap);
}

static int parse(run *r, const json_t *data, char *err, size_t errlen) {
  if (!json_is_object(data))
    return erpq_fail(err, errlen, -EINVAL, "data must be a JSON object");
  const json_t *v = json_object_get(data, "schoolId");
  if (!json_is_integer(v) || json_integer_value(v) < 1)
    return erpq_fail(err, errlen, -EINVAL, "data.schoolId must be a positive integer");
  r->school = json_integer_value(v);
  v = json_object_get(data, "classId");
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 1)
      return erpq_fail(err, errlen, -EINVAL, "data.classId must be a positive integer");
    r->klass = json_integer_value(v);
  }
  v = json_object_get(data, "asOf");
  if (!json_is_string(v) || !valid_date(json_string_value(v)))
    return erpq_fail(err, errlen, -EINVAL, "data.asOf must be a date YYYY-MM-DD");
  r->as_of = json_string_value(v);
  v = json_object_get(data, "minOverdueDays");
  r->min_days = 1;
  if (v && !json_is_null(v)) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3650)
      return erpq_fail(err, errlen, -EINVAL,
                       "data.minOverdueDays must be an integer from 0 to 3650");
    r->min_days = json_integer_value(v);
  }
  v = json_object_get(data, "channels");
  if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 2)
    return erpq_fail(err, errlen, -EINVAL, "data.channels must list \"email\" and/or \"sms\"");
  for (size_t i = 0; i < json_array_size(v); i++) {
    const char *c = json_string_value(json_array_get(v, i));
    int ch = c && !strcmp(c, "email") ? NT_EMAIL : c && !strcmp(c, "sms") ? NT_SMS : -1;
    if (ch < 0 || r->want[ch])
      return erpq_fail(err, errlen, -EINVAL,
                       "data.channels must list \"email\" and/or \"sms\", once each");
    r->want[ch] = 1;
  }
  v = json_object_get(data, "template");
  r->tmpl = json_is_string(v) ? json_string_value(v) : "fee-reminder";
  v = json_object_get(data, "locale");
  r->locale = json_is_string(v) && *json_string_value(v) ? json_string_value(v) : "en";
  if (r->want[NT_EMAIL] && !erpq_templates_email_locale(r->nc->tpl, r->tmpl, r->locale))
    return erpq_fail(err, errlen, -ENOENT, "no e-mail template '%s'", r->tmpl);
  if (r->want[NT_SMS] && !erpq_templates_sms_locale(r->nc->tpl, r->tmpl, r->locale))
    return erpq_fail(err, errlen, -ENOENT, "no SMS template '%s'", r->tmpl);
  if (r->want[NT_EMAIL] && !r->nc->conf.unsub_url[0] && !r->nc->conf.unsub_mailto[0])
    return erpq_fail(err, errlen, -EINVAL,
                     "reminder e-mails need an unsubscribe link: set ERPQ_UNSUBSCRIBE_URL (and "
                     "ERPQ_UNSUBSCRIBE_SECRET) or ERPQ_UNSUBSCRIBE_MAILTO");
  return 0;
}

static void add_str(json_t *o, const char *k, const char *v) {
  json_object_set_new(o, k, v ? json_string(v) : json_null());
}

/* One job for a defaulter and channel into r->jobs[ch]. */
static int add_job(run *r, nt_channel ch, int64_t student, const char *to, json_t *vars, char *err,
                   size_t errlen) {
  const nt_conf *c = &r->nc->conf;
  char dedup[160], id[200];
  snprintf(dedup, sizeof dedup, "reminder:%" PRId64 ":%s:%" PRId64 ":%s", r->school, r->as_of,
           student, nt_channel_name(ch));
  snprintf(id, sizeof id, "%s:%" PRId64, dedup, r->school);
  json_t *d = json_pack("{s:I,s:s,s:s,s:s,s:O,s:s}", "schoolId", (json_int_t)r->school, "to", to,
                        "template", r->tmpl, "locale", r->locale, "vars", vars, "dedupKey", dedup);
  if (!d)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  if (ch == NT_EMAIL) {
    json_t *u = json_object();
    const json_t *url = json_object_get(vars, "unsubscribeUrl");
    if (c->unsub_url[0])
      json_object_set(u, "url", (json_t *)url);
    if (c->unsub_mailto[0]) {
      char m[400];
      snprintf(m, sizeof m, "mailto:%s?subject=unsubscribe%%20%" PRId64 "-%" PRId64,
               c->unsub_mailto, r->school, student);
      json_object_set_new(u, "mailto", json_string(m));
    }
    json_object_set_new(d, "unsubscribe", u);
  }
  char *text = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  json_t *opts = json_pack(
      "{s:s,s:i,s:{s:s,s:I},s:{s:I},s:{s:I}}", "jobId", id, "attempts", c->send_attempts, "backoff",
      "type", "exponential", "delay", (json_int_t)c->send_backoff_ms, "removeOnComplete", "age",
      (json_int_t)c->keep_completed_s, "removeOnFail", "age", (json_int_t)(7 * 86400));
  int rc = text && opts ? 0 : -ENOMEM;
  erpq_newjob *j = &r->jobs[ch][r->njobs[ch]];
  if (!rc) {
    rc = erpq_newjob_prepare(j, ch == NT_EMAIL ? "send-email" : "send-sms", text, opts,
                             erpq_now_ms(), err, errlen);
    if (!rc)
      r->njobs[ch]++;
  }
  free(text);
  json_decref(opts);
  return rc;
}

static int flush(run *r, char *err, size_t errlen) {
  for (int ch = 0; ch < NT_NCH; ch++) {
    size_t n = r->njobs[ch];
    if (!n)
      continue;
    char **ids = calloc(n, sizeof *ids);
    int *added = calloc(n, sizeof *added);
    int rc = ids && added ? 0 : -ENOMEM;
    const char *q = ch == NT_EMAIL ? r->nc->conf.email_queue : r->nc->conf.sms_queue;
    if (!rc)
      rc = erpq_job_enqueue(r->ctx, q, r->jobs[ch], n, ids, added, err, errlen);
    for (size_t i = 0; !rc && i < n; i++) {
      if (added[i])
        r->enqueued++;
      else
        r->already++;
      free(ids[i]);
    }
    free(ids);
    free(added);
    for (size_t i = 0; i < n; i++)
      erpq_newjob_free(&r->jobs[ch][i]);
    r->njobs[ch] = 0;
    if (rc)
      return rc;
  }
  return 0;
}

/* Students first, in primary-key order (STRAIGHT_JOIN): the GROUP BY then
 * streams and LIMIT stops the scan after one page. Left to itself the
 * optimizer may start from classes and sort every remaining student of
 * the school for each page (a 50,000-student school: ~0.3 s a page). */
static const char *const PAGE_SQL_SCHOOL =
    "SELECT s.id, s.first_name, s.last_name, s.parent_name, s.parent_email, s.parent_phone,"
    " c.name, c.section, SUM(f.amount_minor - f.paid_minor), COUNT(*), MIN(f.due_date),"
    " MAX(o1.student_id IS NOT NULL), MAX(o2.student_id IS NOT NULL)"
    " FROM students s"
    " STRAIGHT_JOIN fees f ON f.student_id = s.id AND f.status IN ('pending', 'partially_paid')"
    " AND f.amount_minor > f.paid_minor AND f.due_date <= DATE_SUB(?, INTERVAL ? DAY)"
    " STRAIGHT_JOIN classes c ON c.id = s.class_id"
    " LEFT JOIN notification_optouts o1 ON o1.school_id = s.school_id AND o1.student_id = s.id"
    " AND o1.channel = 'email'"
    " LEFT JOIN notification_optouts o2 ON o2.school_id = s.school_id AND o2.student_id = s.id"
    " AND o2.channel = 'sms'"
    " WHERE s.school_id = ? AND s.id > ? %s GROUP BY s.id ORDER BY s.id LIMIT ?";

static void pay_url(const char *tmpl, int64_t school, int64_t student, char *out, size_t n) {
  size_t o = 0;
  for (const char *p = tmpl; *p && o + 1 < n;) {
    if (!strncmp(p, "{schoolId}", 10)) {
      o += (size_t)snprintf(out + o, n - o, "%" PRId64, school);
      p += 10;
    } else if (!strncmp(p, "{studentId}", 11)) {
      o += (size_t)snprintf(out + o, n - o, "%" PRId64, student);
      p += 11;
    } else {
      out[o++] = *p++;
    }
    if (o >= n)
      o = n - 1;
  }
  out[o] = '\0';
}

/* The jobs of one page of defaulters. */
static int page_jobs(run *r, const nt_rows *rows, char *err, size_t errlen) {
  const nt_conf *c = &r->nc->conf;
  for (size_t i = 0; i < rows->nrows; i++) {
    int64_t sid = strtoll(nt_cell(rows, i, 0), NULL, 10);
    char student[256], klass[160], money[64], unsub[900] = "", pay[600] = "";
    snprintf(student, sizeof student, "%s%s%s", nt_cell(rows, i, 1) ? nt_cell(rows, i, 1) : "",
             nt_cell(rows, i, 2) && *nt_cell(rows, i, 2) ? " " : "",
             nt_cell(rows, i, 2) ? nt_cell(rows, i, 2) : "");
    const char *sec = nt_cell(rows, i, 7);
    snprintf(klass, sizeof klass, "%s%s%s", nt_cell(rows, i, 6), sec && *sec ? " " : "",
             sec ? sec : "");
    nt_money_text(strtoll(nt_cell(rows, i, 8), NULL, 10), r->currency, money);
    r->defaulters++;
    json_t *vars = json_object();
    add_str(vars, "schoolName", r->school_name);
    add_str(vars, "parentName",
            nt_cell(rows, i, 3) && *nt_cell(rows, i, 3) ? nt_cell(rows, i, 3) : "Parent/Guardian");
    add_str(vars, "studentName", student);
    add_str(vars, "className", klass);
    add_str(vars, "outstanding", money);
    add_str(vars, "oldestDueDate", nt_cell(rows, i, 10));
    json_object_set_new(vars, "overdueCount", json_integer(strtoll(nt_cell(rows, i, 9), NULL, 10)));
    if (c->pay_url[0])
      pay_url(c->pay_url, r->school, sid, pay, sizeof pay);
    add_str(vars, "payUrl", pay[0] ? pay : NULL);
    int rc = 0;
    for (int ch = 0; ch < NT_NCH && !rc; ch++) {
      if (!r->want[ch])
        continue;
      r->recipients++;
      const char *opt = nt_cell(rows, i, ch == NT_EMAIL ? 11 : 12);
      if (opt && !strcmp(opt, "1")) {
        r->opted_out++;
        continue;
      }
      const char *raw = nt_cell(rows, i, ch == NT_EMAIL ? 4 : 5);
      char to[ERPQ_EMAIL_MAX + 1], why[160];
      int bad = !raw || !*raw;
      if (!bad && ch == NT_EMAIL)
        bad = erpq_email_addr_normalize(raw, to, sizeof to, why, sizeof why) != 0;
      if (!bad && ch == NT_SMS) {
        char e[ERPQ_E164_BUFSZ];
        bad = erpq_e164_normalize(raw, c->sms_default_cc, e, why, sizeof why) != 0;
        snprintf(to, sizeof to, "%s", e);
      }
      if (bad) {
        r->no_contact++;
        continue;
      }
      json_t *cv = json_deep_copy(vars);
      if (!cv) {
        rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
        break;
      }
      if (ch == NT_EMAIL) {
        char tok[32];
        if (c->unsub_url[0] && !nt_unsub_token(c->unsub_secret, r->school, sid, "email", tok))
          snprintf(unsub, sizeof unsub, "%s?s=%" PRId64 "&u=%" PRId64 "&c=email&t=%s", c->unsub_url,
                   r->school, sid, tok);
        else
          snprintf(unsub, sizeof unsub, "mailto:%s?subject=unsubscribe%%20%" PRId64 "-%" PRId64,
                   c->unsub_mailto, r->school, sid);
        add_str(cv, "unsubscribeUrl", unsub);
      }
      rc = add_job(r, (nt_channel)ch, sid, to, cv, err, errlen);
      json_decref(cv);
    }
    json_decref(vars);
    if (rc)
      return rc;
  }
  return 0;
}

static void progress(run *r, int64_t students) {
  json_t *p =
      json_pack("{s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I}}", "pages", (json_int_t)r->pages, "defaulters",
                (json_int_t)students, "recipients", (json_int_t)r->recipients, "enqueued",
                (json_int_t)r->enqueued, "skipped", "noContact", (json_int_t)r->no_contact,
                "alreadyQueued", (json_int_t)r->already, "optedOut", (json_int_t)r->opted_out);
  if (p)
    erpq_job_progress(r->ctx, p);
  json_decref(p);
}

static int school_info(run *r, MYSQL *m, char *err, size_t errlen) {
  nt_rows rows;
  erpq_param p[] = {ERPQ_PI(r->school)};
  int rc =
      nt_sql_rows(m, "SELECT name, currency FROM schools WHERE id = ?", p, 1, &rows, err, errlen);
  if (rc)
    return rc;
  if (!rows.nrows) {
    nt_rows_free(&rows);
    return erpq_fail(err, errlen, -ENOENT, "data.schoolId: school %" PRId64 " does not exist",
                     r->school);
  }
  snprintf(r->school_name, sizeof r->school_name, "%s", nt_cell(&rows, 0, 0));
  snprintf(r->currency, sizeof r->currency, "%s",
           nt_cell(&rows, 0, 1) ? nt_cell(&rows, 0, 1) : "INR");
  nt_rows_free(&rows);
  if (!r->klass)
    return 0;
  erpq_param pc[] = {ERPQ_PI(r->klass), ERPQ_PI(r->school)};
  rc = nt_sql_rows(m, "SELECT id FROM classes WHERE id = ? AND school_id = ?", pc, 2, &rows, err,
                   errlen);
  if (rc)
    return rc;
  size_t n = rows.nrows;
  nt_rows_free(&rows);
  if (!n)
    return erpq_fail(err, errlen, -ENOENT,
                     "data.classId: class %" PRId64 " does not exist in school %" PRId64, r->klass,
                     r->school);
  return 0;
}

static int audit(run *r, MYSQL *m, char *err, size_t errlen) {
  json_t *d =
      json_pack("{s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "jobId", erpq_job_id(r->ctx),
                "schoolId", (json_int_t)r->school, "asOf", r->as_of, "template", r->tmpl,
                "defaulters", (json_int_t)r->defaulters, "recipients", (json_int_t)r->recipients,
                "enqueued", (json_int_t)r->enqueued, "noContact", (json_int_t)r->no_contact,
                "alreadyQueued", (json_int_t)r->already, "optedOut", (json_int_t)r->opted_out);
  if (r->klass && d)
    json_object_set_new(d, "classId", json_integer(r->klass));
  char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(d);
  if (!text)
    return -ENOMEM;
  char agg[64];
  snprintf(agg, sizeof agg, "%" PRId64 ":%s", r->school, r->as_of);
  erpq_param p[] = {ERPQ_PS(agg), ERPQ_PS(text)};
  int rc = erpq_mysql_run(m,
                          "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)"
                          " VALUES ('fee_reminder_run', ?, 'notifications.fee_reminders', ?)",
                          p, 2, NULL, NULL, err, errlen);
  free(text);
  return rc;
}

int nt_h_fee_reminders(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                       size_t errlen) {
  nt_ctx *nc = erpq_job_userdata(ctx);
  run r = {.ctx = ctx, .nc = nc};
  int rc = parse(&r, data, err, errlen);
  if (rc) {
    erpq_job_discard(ctx);
    return rc;
  }
  int page = nc->conf.page_size > 0 ? nc->conf.page_size : 500;
  for (int ch = 0; ch < NT_NCH; ch++)
    if (r.want[ch] && !(r.jobs[ch] = calloc((size_t)page, sizeof *r.jobs[ch])))
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  MYSQL *m = rc ? NULL : erpq_mysql_acquire(nc->pool, err, errlen);
  if (!rc && !m)
    rc = -ENOTCONN;
  nt_stmt *st = NULL;
  char sql[2048];
  snprintf(sql, sizeof sql, PAGE_SQL_SCHOOL, r.klass ? "AND s.class_id = ?" : "");
  if (!rc) {
    rc = school_info(&r, m, err, errlen);
    if (rc == -ENOENT)
      erpq_job_discard(ctx);
  }
  if (!rc)
    rc = nt_stmt_prepare(m, sql, &st, err, errlen);
  int64_t last = 0, students = 0;
  while (!rc) {
    if (erpq_job_cancelled(ctx)) {
      rc = erpq_fail(err, errlen, -ECANCELED, "cancelled after %" PRId64 " pages", r.pages);
      break;
    }
    nt_rows rows;
    erpq_param p[6];
    int np = 0;
    p[np++] = ERPQ_PS(r.as_of);
    p[np++] = ERPQ_PI(r.min_days);
    p[np++] = ERPQ_PI(r.school);
    p[np++] = ERPQ_PI(last);
    if (r.klass)
      p[np++] = ERPQ_PI(r.klass);
    p[np++] = ERPQ_PI(page);
    rc = nt_stmt_rows(st, p, np, &rows, err, errlen);
    if (rc)
      break;
    r.pages++;
    rc = page_jobs(&r, &rows, err, errlen);
    if (!rc)
      rc = flush(&r, err, errlen);
    students += (int64_t)rows.nrows;
    if (rows.nrows)
      last = strtoll(nt_cell(&rows, rows.nrows - 1, 0), NULL, 10);
    size_t got = rows.nrows;
    nt_rows_free(&rows);
    if (rc)
      break;
    progress(&r, students);
    if (got < (size_t)page)
      break;
  }
  for (int ch = 0; ch < NT_NCH; ch++) {
    for (size_t i = 0; i < r.njobs[ch]; i++)
      erpq_newjob_free(&r.jobs[ch][i]);
    free(r.jobs[ch]);
  }
  if (!rc) {
    char e2[256];
    if (audit(&r, m, e2, sizeof e2)) {
      char red[256];
      nt_redact(e2, red, sizeof red);
      erpq_log(ERPQ_LOG_WARN, "notify.audit_failed", "jobId", erpq_job_id(ctx), "error", red, NULL);
    }
  }
  nt_stmt_close(st);
  if (m)
    erpq_mysql_release(nc->pool, m, rc && rc != -ENOENT && rc != -ECANCELED);
  if (rc) {
    char red[512];
    nt_redact(err, red, sizeof red);
    snprintf(err, errlen, "%s", red);
    return rc;
  }
  *result = json_pack("{s:I,s:I,s:{s:I,s:I,s:I},s:I}", "recipients", (json_int_t)r.recipients,
                      "enqueued", (json_int_t)r.enqueued, "skipped", "noContact",
                      (json_int_t)r.no_contact, "alreadyQueued", (json_int_t)r.already, "optedOut",
                      (json_int_t)r.opted_out, "defaulters", (json_int_t)r.defaulters);
  return 0;
}
