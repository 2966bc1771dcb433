/* The transports' pure parts: redaction, outcome classification, the
 * Retry-After parser and configuration errors. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_err.h"
#include "erpq_redact.h"
#include "erpq_sms.h"
#include "erpq_smtp.h"
#include "erpq_transport_conf.h"

static void redacts(const char *in, const char *want) {
  char out[256];
  erpq_redact(in, strlen(in), out, sizeof out);
  cr_expect_str_eq(out, want, "redact(%s)", in);
}

Test(redact, addresses_and_numbers_go) {
  redacts("550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
          "550 5.1.1 [address]: Recipient address rejected: User unknown");
  redacts("mailbox bob.smith+x@example.org unavailable", "mailbox [address] unavailable");
  redacts("553 sender 'a@b.c' denied", "553 sender '[address]' denied");
  redacts("<postmaster> refused", "[address] refused");
  redacts("The 'To' number +15551234567 is not a valid phone number.",
          "The 'To' number [number] is not a valid phone number.");
  redacts("call +1 (555) 123-4567 now", "call [number] now");
  redacts("error 21211, see https://www.twilio.com/docs/errors/21211",
          "error 21211, see https://www.twilio.com/docs/errors/21211");
  redacts("line one\r\nline\ttwo\x01", "line one line two");
  redacts("", "");
}

Test(redact, long_texts_are_cut_with_an_ellipsis_and_stay_utf8) {
  char in[600];
  memset(in, 'x', sizeof in);
  memcpy(in + 5, "\xc3\xa9", 2);
  char out[8];
  erpq_redact(in, sizeof in, out, sizeof out);
  cr_expect_str_eq(out, "xxxx...");
  /* The cut falls inside "é": the half character goes. */
  char out2[10];
  erpq_redact(in, sizeof in, out2, sizeof out2);
  cr_expect_str_eq(out2, "xxxxx...");
}

static erpq_smtp_result smtp(int cc, int code, const char *line, const char *cerr) {
  erpq_smtp_result r;
  memset(&r, 0, sizeof r);
  erpq_smtp_classify(cc, code, line, cerr, &r);
  return r;
}

Test(smtp_classify, the_outcomes) {
  erpq_smtp_result r = smtp(CURLE_OK, 250, "250 2.0.0 Ok: queued as 4Xy", "");
  cr_expect_eq(r.outcome, ERPQ_SMTP_ACCEPTED);
  cr_expect_str_eq(r.enhanced, "2.0.0");
  cr_expect_str_eq(r.message, "accepted (250 2.0.0): Ok: queued as 4Xy");

  r = smtp(CURLE_SEND_ERROR, 550, "550 5.1.1 <kid@school.example>: Recipient address rejected",
           "RCPT failed: 550");
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT);
  cr_expect_str_eq(r.stage, "RCPT");
  cr_expect_eq(r.server_wide, 0);
  cr_expect_str_eq(r.message,
                   "recipient rejected (550 5.1.1): [address]: Recipient address rejected");
  cr_expect_null(strchr(r.message, '@'));

  r = smtp(CURLE_SEND_ERROR, 451, "451 4.3.0 try later", "MAIL failed: 451");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r.stage, "MAIL");

  r = smtp(CURLE_SEND_ERROR, 421, "421 4.3.2 closing", "DATA failed: 421");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r.stage, "DATA");
  cr_expect_eq(r.server_wide, 1);

  r = smtp(CURLE_WEIRD_SERVER_REPLY, 554, "554 5.7.1 spam", "");
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT);
  cr_expect_str_eq(r.stage, "MESSAGE");

  r = smtp(CURLE_LOGIN_DENIED, 535, "535 5.7.8 Authentication credentials invalid",
           "Authentication failed: 535");
  cr_expect_eq(r.outcome, ERPQ_SMTP_PERMANENT);
  cr_expect_str_eq(r.stage, "AUTH");
  cr_expect_eq(r.server_wide, 1);

  /* A dropped connection after successful replies: not a 2xx outcome. */
  r = smtp(CURLE_RECV_ERROR, 250, "250 2.1.0 Ok", "Connection died");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r.stage, "CONNECTION");
  cr_expect_eq(r.reply_code, 250);

  r = smtp(CURLE_COULDNT_CONNECT, 0, NULL,
           "Failed to connect to 127.0.0.1 port 9: Connection refused");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_eq(r.server_wide, 1);

  r = smtp(CURLE_USE_SSL_FAILED, 250, "250 HELP", "STARTTLS not supported.");
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r.stage, "STARTTLS");

  r = smtp(CURLE_ABORTED_BY_CALLBACK, 0, NULL, NULL);
  cr_expect_eq(r.outcome, ERPQ_SMTP_TEMPORARY);
  cr_expect_str_eq(r.stage, "CANCELLED");
}

static erpq_sms_result sms(int cc, int status, const char *ra, const char *body) {
  erpq_sms_result r;
  memset(&r, 0, sizeof r);
  erpq_sms_classify(cc, status, ra, body, "", 1000, 1700000000, &r);
  return r;
}

Test(sms_classify, the_outcomes) {
  erpq_sms_result r = sms(CURLE_OK, 201, NULL, "{\"sid\":\"SM0123\",\"status\":\"queued\"}");
  cr_expect_eq(r.outcome, ERPQ_SMS_ACCEPTED);
  cr_expect_str_eq(r.sid, "SM0123");
  r = sms(CURLE_OK, 429, "7", "{\"code\":20429,\"message\":\"Too Many Requests\"}");
  cr_expect_eq(r.outcome, ERPQ_SMS_THROTTLED);
  cr_expect_eq(r.retry_after_ms, 7000);
  cr_expect_eq(r.error_code, 20429);
  r = sms(CURLE_OK, 429, NULL, NULL);
  cr_expect_eq(r.retry_after_ms, 1000);
  r = sms(CURLE_OK, 503, NULL, "oops");
  cr_expect_eq(r.outcome, ERPQ_SMS_TEMPORARY);
  r = sms(CURLE_OK, 400, NULL,
          "{\"code\":21211,\"message\":\"The 'To' number +15551234567 is not a valid phone "
          "number.\",\"status\":400}");
  cr_expect_eq(r.outcome, ERPQ_SMS_PERMANENT);
  cr_expect_eq(r.error_code, 21211);
  cr_expect_str_eq(r.message, "message refused (HTTP 400, code 21211): The 'To' number [number] "
                              "is not a valid phone number.");
  r = sms(CURLE_OK, 401, NULL, "{\"code\":20003,\"message\":\"Authenticate\"}");
  cr_expect_eq(r.outcome, ERPQ_SMS_PERMANENT);
  cr_expect_eq(r.server_wide, 1);
  r = sms(CURLE_OPERATION_TIMEDOUT, 0, NULL, NULL);
  cr_expect_eq(r.outcome, ERPQ_SMS_TEMPORARY);
  cr_expect_eq(r.http_status, 0);
}

Test(sms_classify, retry_after_in_seconds_or_as_a_date) {
  int64_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
  cr_expect_eq(erpq_sms_retry_after_ms("120", now), 120000);
  cr_expect_eq(erpq_sms_retry_after_ms(" 0 ", now), 0);
  cr_expect_eq(erpq_sms_retry_after_ms("Tue, 14 Nov 2023 22:13:50 GMT", now), 30000);
  cr_expect_eq(erpq_sms_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
  cr_expect_eq(erpq_sms_retry_after_ms("99999999999", now), 86400 * 1000);
  cr_expect_eq(erpq_sms_retry_after_ms("soon", now), -1);
  cr_expect_eq(erpq_sms_retry_after_ms("12abc", now), -1);
  cr_expect_eq(erpq_sms_retry_after_ms("", now), -1);
}

/* ---- Configuration errors ------------------------------------------------------------ */

typedef struct kv {
  const char *k, *v;
} kv;

static const char *lookup(void *ud, const char *name) {
  for (const kv *p = ud; p->k; p++)
    if (!strcmp(p->k, name))
      return p->v;
  return NULL;
}

static int smtp_conf(kv *t, char *err, size_t errlen) {
  erpq_curl_async *a;
  cr_assert_eq(erpq_curl_async_start(&a, NULL, err, errlen), 0);
  erpq_conf_src c = {lookup, t};
  erpq_smtp *s = NULL;
  int rc = erpq_smtp_new(&s, a, &c, err, errlen);
  if (s)
    erpq_smtp_free(s);
  erpq_curl_async_stop(a, 0);
  return rc;
}

Test(smtp_conf, errors_name_the_variable_and_never_the_password) {
  char err[256];
  kv none[] = {{NULL, NULL}};
  cr_expect_eq(smtp_conf(none, err, sizeof err), ERPQ_E_ARG);
  cr_expect_str_eq(err, "ERPQ_SMTP_URL is not set");
  kv bad_scheme[] = {{"ERPQ_SMTP_URL", "http://u:hunter2@host"}, {NULL, NULL}};
  cr_expect_eq(smtp_conf(bad_scheme, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMTP_URL") && !strstr(err, "hunter2"), "%s", err);
  kv bad_query[] = {{"ERPQ_SMTP_URL", "smtp://u:hunter2@host?tls=1"}, {NULL, NULL}};
  cr_expect_eq(smtp_conf(bad_query, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMTP_URL") && !strstr(err, "hunter2"), "%s", err);
  kv both[] = {{"ERPQ_SMTP_URL", "smtp://u:hunter2@host"},
               {"ERPQ_SMTP_USER", "v"},
               {"ERPQ_SMTP_PASSWORD", "other"},
               {NULL, NULL}};
  cr_expect_eq(smtp_conf(both, err, sizeof err), ERPQ_E_ARG);
  cr_expect(!strstr(err, "hunter2") && !strstr(err, "other"), "%s", err);
  kv nouser[] = {{"ERPQ_SMTP_URL", "smtp://host"}, {"ERPQ_SMTP_PASSWORD", "pw"}, {NULL, NULL}};
  cr_expect_eq(smtp_conf(nouser, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMTP_USER"), "%s", err);
  kv twice[] = {{"ERPQ_SMTP_URL", "smtp://host"},
                {"ERPQ_SMTP_USER", "u"},
                {"ERPQ_SMTP_PASSWORD", "pw"},
                {"ERPQ_SMTP_PASSWORD_FILE", "/nonexistent"},
                {NULL, NULL}};
  cr_expect_eq(smtp_conf(twice, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMTP_PASSWORD_FILE"), "%s", err);
  kv nofile[] = {{"ERPQ_SMTP_URL", "smtp://host"},
                 {"ERPQ_SMTP_USER", "u"},
                 {"ERPQ_SMTP_PASSWORD_FILE", "/nonexistent/pw"},
                 {NULL, NULL}};
  cr_expect_eq(smtp_conf(nofile, err, sizeof err), -ENOENT);
  cr_expect(strstr(err, "ERPQ_SMTP_PASSWORD_FILE"), "%s", err);
  kv conns[] = {{"ERPQ_SMTP_URL", "smtp://host"}, {"ERPQ_SMTP_CONNECTIONS", "four"}, {NULL, NULL}};
  cr_expect_eq(smtp_conf(conns, err, sizeof err), ERPQ_E_ARG);
  cr_expect_str_eq(err, "ERPQ_SMTP_CONNECTIONS must be an integer from 1 to 256");
  kv per[] = {
      {"ERPQ_SMTP_URL", "smtp://host"}, {"ERPQ_SMTP_MESSAGES_PER_CONNECTION", "0"}, {NULL, NULL}};
  cr_expect_eq(smtp_conf(per, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMTP_MESSAGES_PER_CONNECTION"), "%s", err);
  kv good[] = {{"ERPQ_SMTP_URL", "smtps://u%40x:p%3Aw@host:465/ehlo.example?starttls=required"},
               {NULL, NULL}};
  cr_expect_eq(smtp_conf(good, err, sizeof err), 0, "%s", err);
}

static int sms_conf(kv *t, char *err, size_t errlen) {
  erpq_curl_async *a;
  cr_assert_eq(erpq_curl_async_start(&a, NULL, err, errlen), 0);
  erpq_conf_src c = {lookup, t};
  erpq_sms *s = NULL;
  int rc = erpq_sms_new(&s, a, &c, err, errlen);
  if (s)
    erpq_sms_free(s);
  erpq_curl_async_stop(a, 0);
  return rc;
}

Test(sms_conf, errors_name_the_variable_and_never_the_token) {
  char err[256];
  kv nourl[] = {{NULL, NULL}};
  cr_expect_eq(sms_conf(nourl, err, sizeof err), ERPQ_E_ARG);
  cr_expect_str_eq(err, "ERPQ_SMS_URL is not set");
  kv badsid[] = {{"ERPQ_SMS_URL", "https://api.example"},
                 {"ERPQ_SMS_ACCOUNT_SID", "AC/../x"},
                 {"ERPQ_SMS_AUTH_TOKEN", "t0ken"},
                 {"ERPQ_SMS_FROM", "+15550000000"},
                 {NULL, NULL}};
  cr_expect_eq(sms_conf(badsid, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMS_ACCOUNT_SID") && !strstr(err, "t0ken"), "%s", err);
  kv notoken[] = {{"ERPQ_SMS_URL", "https://api.example"},
                  {"ERPQ_SMS_ACCOUNT_SID", "AC1"},
                  {"ERPQ_SMS_FROM", "+15550000000"},
                  {NULL, NULL}};
  cr_expect_eq(sms_conf(notoken, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMS_AUTH_TOKEN"), "%s", err);
  kv creds[] = {{"ERPQ_SMS_URL", "https://AC1:t0ken@api.example"},
                {"ERPQ_SMS_ACCOUNT_SID", "AC1"},
                {"ERPQ_SMS_AUTH_TOKEN", "t0ken"},
                {"ERPQ_SMS_FROM", "+15550000000"},
                {NULL, NULL}};
  cr_expect_eq(sms_conf(creds, err, sizeof err), ERPQ_E_ARG);
  cr_expect(strstr(err, "ERPQ_SMS_URL") && !strstr(err, "t0ken"), "%s", err);
  char path[] = "/tmp/erpq-sms-token-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert_eq(write(fd, "t0ken\n", 6), 6);
  close(fd);
  kv file[] = {{"ERPQ_SMS_URL", "https://api.example/"}, {"ERPQ_SMS_ACCOUNT_SID", "AC1"},
               {"ERPQ_SMS_AUTH_TOKEN_FILE", path},       {"ERPQ_SMS_FROM", "+15550000000"},
               {"ERPQ_SMS_CONNECTIONS", "300"},          {NULL, NULL}};
  cr_expect_eq(sms_conf(file, err, sizeof err), ERPQ_E_ARG);
  cr_expect_str_eq(err, "ERPQ_SMS_CONNECTIONS must be an integer from 1 to 256");
  file[4].v = "8";
  cr_expect_eq(sms_conf(file, err, sizeof err), 0, "%s", err);
  unlink(path);
}
