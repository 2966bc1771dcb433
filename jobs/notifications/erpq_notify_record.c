/* erpq_notify_record.c - the documents a send leaves behind: its
 * notifications record, its audit events and its job result. None of them
 * holds an address or number in clear (only nt_send.masked). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "erpq_notify_internal.h"

const char *nt_channel_name(nt_channel ch) { return ch == NT_SMS ? "sms" : "email"; }

json_t *nt_json_date(int64_t ms) {
  char v[32];
  snprintf(v, sizeof v, "%" PRId64, ms);
  return json_pack("{s:{s:s}}", "$date", "$numberLong", v);
}

static void record_id(const nt_send *s, int version, char out[80]) {
  if (version <= 1)
    snprintf(out, 80, "%s", s->dedup_hash);
  else
    snprintf(out, 80, "%s.v%d", s->dedup_hash, version);
}

json_t *nt_record_doc(const nt_send *s, const char *status, int version, int attempts,
                      int64_t now_ms) {
  char id[80];
  record_id(s, version, id);
  json_t *d = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:{s:s,s:s},s:o,s:o}", "_id", id,
                        "schoolId", (json_int_t)s->school, "channel", nt_channel_name(s->ch),
                        "template", s->tmpl, "locale", s->locale, "status", status, "to", s->masked,
                        "attempts", attempts, "job", "queue", s->queue, "id", s->job_id,
                        "createdAt", nt_json_date(s->created_ms ? s->created_ms : now_ms),
                        "updatedAt", nt_json_date(now_ms));
  if (!d)
    return NULL;
  json_object_set_new(d, "providerMessageId",
                      s->provider_id[0] ? json_string(s->provider_id) : json_null());
  if (s->ch == NT_SMS) {
    json_object_set_new(d, "segments", json_integer(s->segments));
    json_object_set_new(d, "encoding", json_string(s->encoding));
  }
  if (!strcmp(status, "sent"))
    json_object_set_new(d, "sentAt", nt_json_date(s->sent_ms ? s->sent_ms : now_ms));
  if (s->error[0] && strcmp(status, "sent"))
    json_object_set_new(d, "error", json_string(s->error));
  if (version > 1)
    json_object_set_new(d, "version", json_integer(version));
  return d;
}

json_t *nt_audit_data(const nt_send *s, const char *event, int attempts) {
  json_t *d =
      json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:i}", "event", event, "notificationId",
                s->dedup_hash, "schoolId", (json_int_t)s->school, "channel", nt_channel_name(s->ch),
                "template", s->tmpl, "locale", s->locale, "to", s->masked, "queue", s->queue,
                "jobId", s->job_id, "attempt", attempts);
  if (!d)
    return NULL;
  if (s->provider_id[0])
    json_object_set_new(d, "providerMessageId", json_string(s->provider_id));
  if (s->error[0] && strcmp(event, "notification.sent"))
    json_object_set_new(d, "error", json_string(s->error));
  if (s->ch == NT_SMS && s->segments)
    json_object_set_new(d, "segments", json_integer(s->segments));
  return d;
}

json_t *nt_result(const nt_send *s, const char *status, int attempts) {
  const char *pid = s->provider_id[0] ? s->provider_id : s->prev_provider_id;
  json_t *r =
      json_pack("{s:s,s:s,s:s,s:s,s:i}", "status", status, "channel", nt_channel_name(s->ch), "to",
                s->masked, "notificationId", s->dedup_hash, "attempts", attempts);
  if (!r)
    return NULL;
  json_object_set_new(r, "providerMessageId", pid[0] ? json_string(pid) : json_null());
  if (s->ch == NT_SMS) {
    json_object_set_new(r, "segments", json_integer(s->segments));
    json_object_set_new(r, "encoding", json_string(s->encoding));
  }
  return r;
}
