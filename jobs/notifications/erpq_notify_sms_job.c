/*
 * erpq_notify_sms_job.c - the send-sms handler: checks the number (E.164,
 * normalised: "+91 98001 00001" is accepted as +919800100001), renders
 * the SMS template (TEXT mode), maps typographic characters to GSM-7 when
 * that keeps the message in GSM-7 (erpq_sms_text.h), counts the segments
 * (recorded, and refused above ERPQ_SMS_MAX_SEGMENTS: a runaway template
 * must not cost 30 parts a parent) and starts the send (ERPQ_JOB_ASYNC).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_e164.h"
#include "erpq_err.h"
#include "erpq_notify_internal.h"
#include "erpq_sms_text.h"

int nt_h_send_sms(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err, size_t errlen) {
  (void)result;
  nt_ctx *nc = erpq_job_userdata(ctx);
  int64_t school;
  const char *tmpl, *locale, *dedup;
  int rc = nt_common_fields(data, &school, &tmpl, &locale, &dedup, err, errlen);
  if (rc) {
    erpq_job_discard(ctx);
    return rc;
  }
  if (!nc->sms)
    return erpq_fail(err, errlen, -ENOTSUP, "SMS is off in this worker: %s", nc->sms_off);
  int64_t wait = nt_breaker_wait(nc, NT_SMS);
  if (wait > 0)
    return erpq_job_delay(ctx, wait, "the SMS provider's circuit breaker is open");
  const json_t *to = json_object_get(data, "to");
  char e164[ERPQ_E164_BUFSZ], why[160];
  if (!json_is_string(to) ||
      erpq_e164_normalize(json_string_value(to), nc->conf.sms_default_cc, e164, why, sizeof why)) {
    erpq_job_discard(ctx);
    return erpq_fail(err, errlen, -EINVAL, "data.to is not a usable phone number: %s",
                     json_is_string(to) ? why : "not a string");
  }
  char *text = NULL;
  rc = erpq_templates_render_sms(nc->tpl, tmpl, locale, json_object_get(data, "vars"), &text, err,
                                 errlen);
  if (rc == -ENOENT)
    rc = erpq_fail(err, errlen, -ENOENT, "no SMS template '%s'", tmpl);
  if (rc) {
    if (rc != -ENOMEM)
      erpq_job_discard(ctx);
    return rc;
  }
  erpq_sms_text st;
  rc = erpq_sms_prepare(text, strlen(text), ERPQ_SMS_MAP_IF_GSM, &st, err, errlen);
  free(text);
  if (rc) {
    if (rc != -ENOMEM)
      erpq_job_discard(ctx);
    return rc;
  }
  if ((int)st.segments > nc->conf.sms_max_segments) {
    rc = erpq_fail(err, errlen, -EMSGSIZE,
                   "the rendered SMS takes %zu segments (%s, %zu units); the limit is %d "
                   "(ERPQ_SMS_MAX_SEGMENTS)",
                   st.segments, erpq_sms_encoding_name(st.encoding), st.units,
                   nc->conf.sms_max_segments);
    erpq_sms_text_free(&st);
    erpq_job_discard(ctx);
    return rc;
  }
  nt_send *s = nt_send_new(nc, ctx, NT_SMS);
  if (!s) {
    erpq_sms_text_free(&st);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  s->school = school;
  snprintf(s->tmpl, sizeof s->tmpl, "%s", tmpl);
  const char *used = erpq_templates_sms_locale(nc->tpl, tmpl, locale);
  snprintf(s->locale, sizeof s->locale, "%s", used ? used : locale);
  snprintf(s->to, sizeof s->to, "%s", e164);
  char masked[ERPQ_E164_BUFSZ];
  erpq_e164_mask(e164, masked);
  snprintf(s->masked, sizeof s->masked, "%s", masked);
  s->segments = (int)st.segments;
  snprintf(s->encoding, sizeof s->encoding, "%s", erpq_sms_encoding_name(st.encoding));
  s->body = st.text; /* taken over */
  st.text = NULL;
  erpq_sms_text_free(&st);
  nt_send_identity(s, dedup);
  nt_send_start(s);
  return ERPQ_JOB_ASYNC;
}
