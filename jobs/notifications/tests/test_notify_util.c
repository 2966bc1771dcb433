/*
 * test_notify_util.c - the family's pure helpers against references that
 * are not ours: money texts against Babel (python3-babel: en_IN lakh
 * grouping, ISO 4217 decimals), unsubscribe tokens against Python's hmac
 * and base64 (tests/notify_refs.py), and the records a send leaves
 * (_id forms, no address in clear, canonical extended JSON dates).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_notify_internal.h"
#include "notify_test_util.h"

static json_t *reference(json_t *req) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/jobs/notifications/tests/notify_refs.py",
           nt_source_dir());
  char *in = json_dumps(req, JSON_COMPACT);
  int status = -1;
  char *out = nt_run(cmd, in, strlen(in), NULL, &status);
  free(in);
  cr_assert_eq(status, 0, "notify_refs.py failed");
  json_error_t je;
  json_t *r = json_loads(out, 0, &je);
  cr_assert(r, "bad reference output: %s", out);
  free(out);
  return r;
}

Test(money, matches_babel) {
  uint64_t st = nt_seed("money");
  static const char *const curs[] = {"INR", "USD", "EUR", "JPY", "KWD", "BHD", "GBP", "KRW"};
  json_t *req = json_pack("{s:[]}", "money");
  json_t *arr = json_object_get(req, "money");
  int64_t fixed[] = {0,       1,        99,           100,     105,
                     1250050, 12345678, 123456789012, -250075, 100000000000000LL};
  size_t n = 0;
  int64_t vals[400];
  const char *cs[400];
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
    for (size_t c = 0; c < sizeof curs / sizeof *curs; c++) {
      vals[n] = fixed[i];
      cs[n++] = curs[c];
    }
  while (n < 400) {
    uint64_t r = nt_rand(&st);
    int digits = (int)nt_below(&st, 16) + 1;
    int64_t v = (int64_t)(r % 1000000000000000ULL);
    for (int d = digits; d < 16; d++)
      v /= 10;
    if (nt_below(&st, 7) == 0)
      v = -v;
    vals[n] = v;
    cs[n++] = curs[nt_below(&st, sizeof curs / sizeof *curs)];
  }
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, json_pack("[I,s]", (json_int_t)vals[i], cs[i]));
  json_t *ref = reference(req);
  json_t *want = json_object_get(ref, "money");
  cr_assert_eq(json_array_size(want), n);
  for (size_t i = 0; i < n; i++) {
    char got[64];
    nt_money_text(vals[i], cs[i], got);
    cr_expect_str_eq(got, json_string_value(json_array_get(want, i)), "%" PRId64 " %s", vals[i],
                     cs[i]);
  }
  json_decref(req);
  json_decref(ref);
}

Test(unsubscribe, tokens_match_python_hmac_and_verify) {
  const char *secret = "an-unsubscribe-secret-of-more-than-32-bytes";
  json_t *req = json_pack("{s:[[s,i,i,s],[s,i,i,s],[s,i,i,s]]}", "token", secret, 1, 17, "email",
                          secret, 12, 123456, "sms", "x", 1, 1, "email");
  json_t *ref = reference(req);
  json_t *want = json_object_get(ref, "token");
  char tok[32];
  cr_assert_eq(nt_unsub_token(secret, 1, 17, "email", tok), 0);
  cr_expect_str_eq(tok, json_string_value(json_array_get(want, 0)));
  cr_expect_eq(strlen(tok), 22);
  cr_assert_eq(nt_unsub_token(secret, 12, 123456, "sms", tok), 0);
  cr_expect_str_eq(tok, json_string_value(json_array_get(want, 1)));
  cr_assert_eq(nt_unsub_token("x", 1, 1, "email", tok), 0);
  cr_expect_str_eq(tok, json_string_value(json_array_get(want, 2)));
  /* Verification: the right token, and nothing else. */
  nt_unsub_token(secret, 1, 17, "email", tok);
  cr_expect(nt_unsub_verify(secret, 1, 17, "email", tok));
  cr_expect(!nt_unsub_verify(secret, 1, 18, "email", tok));
  cr_expect(!nt_unsub_verify(secret, 1, 17, "sms", tok));
  cr_expect(!nt_unsub_verify("another-secret-of-more-than-32-bytes!", 1, 17, "email", tok));
  tok[3] ^= 1;
  cr_expect(!nt_unsub_verify(secret, 1, 17, "email", tok));
  cr_expect(!nt_unsub_verify(secret, 1, 17, "email", ""));
  cr_expect(!nt_unsub_verify(secret, 1, 17, "email", NULL));
  cr_expect_neq(nt_unsub_token("", 1, 1, "email", tok), 0);
  json_decref(req);
  json_decref(ref);
}

static nt_send sample(nt_channel ch) {
  nt_send s;
  memset(&s, 0, sizeof s);
  s.ch = ch;
  s.school = 7;
  nt_sha256_hex("reminder:7:2026-05-01:42:email", 30, s.dedup_hash);
  snprintf(s.queue, sizeof s.queue, "email");
  snprintf(s.job_id, sizeof s.job_id, "reminder:7:2026-05-01:42:email:7");
  snprintf(s.tmpl, sizeof s.tmpl, "fee-reminder");
  snprintf(s.locale, sizeof s.locale, "hi");
  snprintf(s.masked, sizeof s.masked, ch == NT_SMS ? "+91********01" : "p***@example.org");
  snprintf(s.provider_id, sizeof s.provider_id, "<abc@school.example>");
  s.created_ms = 1796190282131;
  s.sent_ms = 1796190282154;
  if (ch == NT_SMS) {
    s.segments = 3;
    snprintf(s.encoding, sizeof s.encoding, "UCS-2");
  }
  return s;
}

Test(records, notification_document) {
  /* The SHA-256 of the dedup key, as sha256sum prints it. */
  int status;
  char *out = nt_run("printf %s 'reminder:7:2026-05-01:42:email' | sha256sum | cut -c1-64", NULL, 0,
                     NULL, &status);
  out[strcspn(out, "\n")] = '\0';
  nt_send s = sample(NT_SMS);
  cr_assert_str_eq(s.dedup_hash, out);
  json_t *d = nt_record_doc(&s, "sent", 1, 2, 1796190283000);
  cr_assert(d);
  cr_expect_str_eq(json_string_value(json_object_get(d, "_id")), out);
  cr_expect_str_eq(json_string_value(json_object_get(d, "status")), "sent");
  cr_expect_str_eq(json_string_value(json_object_get(d, "channel")), "sms");
  cr_expect_str_eq(json_string_value(json_object_get(d, "to")), "+91********01");
  cr_expect_eq(json_integer_value(json_object_get(d, "segments")), 3);
  cr_expect_eq(json_integer_value(json_object_get(d, "attempts")), 2);
  cr_expect_eq(json_integer_value(json_object_get(d, "schoolId")), 7);
  const json_t *sent = json_object_get(json_object_get(d, "sentAt"), "$date");
  cr_expect_str_eq(json_string_value(json_object_get(sent, "$numberLong")), "1796190282154");
  cr_expect_null(json_object_get(d, "error"));
  json_decref(d);
  /* A later version has its own _id. */
  d = nt_record_doc(&s, "failed", 2, 3, 1796190283000);
  char want[80];
  snprintf(want, sizeof want, "%s.v2", out);
  cr_expect_str_eq(json_string_value(json_object_get(d, "_id")), want);
  cr_expect_null(json_object_get(d, "sentAt"));
  json_decref(d);
  free(out);
}

Test(records, audit_and_result) {
  nt_send s = sample(NT_EMAIL);
  snprintf(s.error, sizeof s.error, "SMTP RCPT 550 5.1.1: [address]: Recipient address rejected");
  json_t *a = nt_audit_data(&s, "notification.failed", 1);
  cr_expect_str_eq(json_string_value(json_object_get(a, "event")), "notification.failed");
  cr_expect_str_eq(json_string_value(json_object_get(a, "notificationId")), s.dedup_hash);
  cr_expect_str_eq(json_string_value(json_object_get(a, "error")), s.error);
  cr_expect_str_eq(json_string_value(json_object_get(a, "to")), "p***@example.org");
  json_decref(a);
  a = nt_audit_data(&s, "notification.sent", 1);
  cr_expect_null(json_object_get(a, "error"), "a sent event carries no error");
  json_decref(a);
  json_t *r = nt_result(&s, "already-sent", 2);
  cr_expect_str_eq(json_string_value(json_object_get(r, "status")), "already-sent");
  cr_expect_str_eq(json_string_value(json_object_get(r, "providerMessageId")),
                   "<abc@school.example>");
  cr_expect_null(json_object_get(r, "segments"), "no SMS fields on an e-mail");
  json_decref(r);
}
