/*
 * erpq_notify_email.c - the send-email handler: checks the data, renders
 * the template (subject and text in TEXT mode, html in HTML mode), reads
 * the attachments, builds the RFC 5322 / MIME message with a Message-ID
 * derived from the dedup key, and starts the send (ERPQ_JOB_ASYNC): the
 * ledger claims it, the dispatcher sends it, the ledger records it.
 *
 * Input that can never work (a bad address, an unknown template, a
 * variable the template uses and vars lacks, a bad attachment) fails the
 * job at once with erpq_job_discard(); the failedReason names the field or
 * the missing variables, never an address.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_email_addr.h"
#include "erpq_err.h"
#include "erpq_mime.h"
#include "erpq_notify_attach.h"
#include "erpq_notify_internal.h"
#include "erpq_util.h"

#define MAX_RCPT 50

typedef struct addrs {
  char (*v)[ERPQ_EMAIL_MAX + 1];
  size_t n;
} addrs;

/* data[field]: one address or an array of them, normalised into a. */
static int read_addrs(const json_t *data, const char *field, int required, addrs *a, char *err,
                      size_t errlen) {
  const json_t *v = json_object_get(data, field);
  a->v = NULL;
  a->n = 0;
  if (!v || json_is_null(v)) {
    if (required)
      return erpq_fail(err, errlen, -EINVAL, "data.%s is required", field);
    return 0;
  }
  size_t n = json_is_array(v) ? json_array_size(v) : 1;
  if ((!json_is_array(v) && !json_is_string(v)) || (required && n == 0) || n > MAX_RCPT)
    return erpq_fail(err, errlen, -EINVAL,
                     "data.%s must be an address or an array of 1 to %d addresses", field,
                     MAX_RCPT);
  a->v = calloc(n ? n : 1, sizeof *a->v);
  if (!a->v)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
    char why[160];
    if (!json_is_string(e) ||
        erpq_email_addr_normalize(json_string_value(e), a->v[i], sizeof a->v[i], why, sizeof why)) {
      if (json_is_array(v))
        return erpq_fail(err, errlen, -EINVAL, "data.%s[%zu] is not a usable e-mail address: %s",
                         field, i, json_is_string(e) ? why : "not a string");
      return erpq_fail(err, errlen, -EINVAL, "data.%s is not a usable e-mail address: %s", field,
                       json_is_string(e) ? why : "not a string");
    }
    a->n++;
  }
  return 0;
}

/* data.unsubscribe {url?, mailto?} (set by fee-reminders). */
static int read_unsub(const json_t *data, const char **url, const char **mailto, char *err,
                      size_t errlen) {
  *url = *mailto = NULL;
  const json_t *u = json_object_get(data, "unsubscribe");
  if (!u || json_is_null(u))
    return 0;
  const json_t *a = json_object_get(u, "url"), *b = json_object_get(u, "mailto");
  if (json_is_string(a))
    *url = json_string_value(a);
  if (json_is_string(b))
    *mailto = json_string_value(b);
  if (*url && strncmp(*url, "https://", 8))
    return erpq_fail(err, errlen, -EINVAL, "data.unsubscribe.url must be an https:// URL");
  if (*mailto && strncmp(*mailto, "mailto:", 7))
    return erpq_fail(err, errlen, -EINVAL, "data.unsubscribe.mailto must be a mailto: URI");
  return 0;
}

static int fail_discard(erpq_jobctx *ctx, int rc) {
  erpq_job_discard(ctx);
  return rc;
}

int nt_h_send_email(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  (void)result;
  nt_ctx *nc = erpq_job_userdata(ctx);
  int64_t school;
  const char *tmpl, *locale, *dedup;
  int rc = nt_common_fields(data, &school, &tmpl, &locale, &dedup, err, errlen);
  if (rc)
    return fail_discard(ctx, rc);
  if (!nc->smtp)
    return erpq_fail(err, errlen, -ENOTSUP, "e-mail is off in this worker: %s", nc->smtp_off);
  int64_t wait = nt_breaker_wait(nc, NT_EMAIL);
  if (wait > 0)
    return erpq_job_delay(ctx, wait, "the e-mail provider's circuit breaker is open");

  addrs to = {0}, cc = {0};
  char *subject = NULL, *text = NULL, *html = NULL;
  nt_attachment *att = NULL;
  size_t natt = 0;
  erpq_buf msg = {0};
  nt_send *s = NULL;
  const char *unsub_url, *unsub_mailto;
  rc = read_addrs(data, "to", 1, &to, err, errlen);
  if (!rc)
    rc = read_addrs(data, "cc", 0, &cc, err, errlen);
  if (!rc)
    rc = read_unsub(data, &unsub_url, &unsub_mailto, err, errlen);
  if (!rc) {
    rc = erpq_templates_render_email(nc->tpl, tmpl, locale, json_object_get(data, "vars"), &subject,
                                     &text, &html, err, errlen);
    if (rc == -ENOENT)
      rc = erpq_fail(err, errlen, -ENOENT, "no e-mail template '%s'", tmpl);
  }
  if (rc)
    goto bad_input;
  int permanent = 0;
  rc = nt_attachments_load(ctx, nc, school, json_object_get(data, "attachments"), &att, &natt,
                           &permanent, err, errlen);
  if (rc) {
    if (permanent)
      goto bad_input;
    goto out;
  }
  s = nt_send_new(nc, ctx, NT_EMAIL);
  if (!s) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  s->school = school;
  snprintf(s->tmpl, sizeof s->tmpl, "%s", tmpl);
  const char *used = erpq_templates_email_locale(nc->tpl, tmpl, locale);
  snprintf(s->locale, sizeof s->locale, "%s", used ? used : locale);
  nt_send_identity(s, dedup);
  /* The Message-ID comes from the dedup key: a retry re-sends the same
   * message, which a receiver can recognise. */
  rc = erpq_mime_message_id(s->dedup_key, strlen(s->dedup_key), nc->conf.msgid_domain,
                            s->message_id, sizeof s->message_id, err, errlen);
  if (rc)
    goto out;
  erpq_mime_addr *mto = calloc(to.n + cc.n + 1, sizeof *mto);
  erpq_mime_attachment *ma = calloc(natt + 1, sizeof *ma);
  s->rcpt = calloc(to.n + cc.n + 1, sizeof *s->rcpt);
  if (!mto || !ma || !s->rcpt) {
    free(mto);
    free(ma);
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  size_t mlen = 0;
  for (size_t i = 0; i < to.n + cc.n; i++) {
    const char *addr = i < to.n ? to.v[i] : cc.v[i - to.n];
    mto[i].email = addr;
    if (!(s->rcpt[s->nrcpt] = strdup(addr)))
      rc = -ENOMEM;
    else
      s->nrcpt++;
    char m[ERPQ_EMAIL_MAX + 8];
    erpq_email_mask(addr, m, sizeof m);
    mlen +=
        (size_t)snprintf(s->masked + mlen, mlen < sizeof s->masked ? sizeof s->masked - mlen : 0,
                         "%s%s", i ? "," : "", m);
    if (mlen >= sizeof s->masked)
      mlen = sizeof s->masked - 1;
  }
  for (size_t i = 0; i < natt; i++) {
    ma[i].filename = att[i].filename;
    ma[i].content_type = att[i].content_type;
    ma[i].data = att[i].data;
    ma[i].len = att[i].len;
  }
  erpq_mime_msg m = {
      .from = {nc->conf.mail_from_name, nc->conf.mail_from_addr},
      .to = mto,
      .nto = to.n,
      .cc = cc.n ? mto + to.n : NULL,
      .ncc = cc.n,
      .subject = subject,
      .date = erpq_now_ms() / 1000,
      .tz_minutes = 0,
      .message_id = s->message_id,
      .unsubscribe_url = unsub_url,
      .unsubscribe_mailto = unsub_mailto,
      .text = text,
      .html = html,
      .attachments = ma,
      .nattachments = natt,
  };
  if (!rc)
    rc = erpq_mime_build(&m, &msg, err, errlen);
  free(mto);
  free(ma);
  if (rc == -EINVAL)
    goto bad_input;
  if (rc)
    goto out;
  s->msg_len = msg.len;
  s->msg = erpq_buf_take(&msg);
  if (!s->msg) {
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
    goto out;
  }
  nt_send_start(s);
  s = NULL;
  rc = ERPQ_JOB_ASYNC;
  goto out;
bad_input:
  erpq_job_discard(ctx);
out:
  nt_send_free(s);
  erpq_buf_free(&msg);
  nt_attachments_free(att, natt);
  free(subject);
  free(text);
  free(html);
  free(to.v);
  free(cc.v);
  return rc;
}
