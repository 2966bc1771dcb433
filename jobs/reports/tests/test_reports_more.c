/*
 * test_reports_more.c - the reports family's other paths, end to end with
 * the real worker: the local-directory storage (signed link checked with
 * lib/storage's verifier), `erpq-producer download` for both backends and
 * its refusals, the report-ready e-mail job (enqueued once, also when the
 * report job runs again), progress and the job log.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_storage_link.h"
#include "reports_test_util.h"
#include "s3_test_util.h"

#define SECRET "reports-test-secret-0123456789abcdef" /* as reports_test_util.c */
#define APRIL "\"schoolId\":1,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\""

static rt_env E;

static void setup(void) { rt_setup(&E, 80, 1); }
static void teardown(void) { rt_teardown(&E); }

TestSuite(reports_more, .init = setup, .fini = teardown, .timeout = 300);

static const char *str(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* erpq-producer download with the worker's storage settings. */
static int download(const char *id, const char *args, int local, char **out) {
  char env[1024];
  if (local)
    snprintf(env, sizeof env, "ERPQ_STORAGE_DIR='%s' ERPQ_STORAGE_SECRET='%s'", E.storedir, SECRET);
  else
    snprintf(env, sizeof env,
             "ERPQ_S3_BUCKET='%s' ERPQ_S3_ENDPOINT='%s' ERPQ_S3_REGION='%s' "
             "ERPQ_S3_ACCESS_KEY_ID='%s' ERPQ_S3_SECRET_ACCESS_KEY='%s'",
             getenv("ERPQ_TEST_S3_BUCKET"), getenv("ERPQ_TEST_S3_URL"),
             getenv("ERPQ_TEST_S3_REGION"), getenv("ERPQ_TEST_S3_ACCESS_KEY"),
             getenv("ERPQ_TEST_S3_SECRET_KEY"));
  return rt_sh(out,
               "cd '%s' && env -u ERPQ_S3_BUCKET -u ERPQ_STORAGE_DIR %s %s/erpq-producer"
               " --redis '%s' --prefix %s download reports %s %s 2>&1",
               E.dir, env, E.bin, getenv("ERPQ_TEST_REDIS_URL"), E.prefix, id, args);
}

Test(reports_more, local_storage_link_and_download) {
  rt_worker_start(&E, "local", NULL);
  json_t *v = rt_job(&E, "fee-collection", "{" APRIL ",\"format\":\"csv\"}", NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", str(v, "failedReason"));
  const json_t *rv = rt_rv(v);
  const char *id = str(v, "id");
  cr_assert_str_eq(str(rv, "storage"), "local");
  cr_assert(json_is_null(json_object_get(rv, "bucket")));
  char key[256];
  snprintf(key, sizeof key, "reports/1/2026-04/%s-fee-collection.csv", id);
  cr_assert_str_eq(str(rv, "key"), key);
  /* The link: under ERPQ_PUBLIC_URL, signed for this key, name and expiry. */
  const char *url = str(rv, "url");
  char prefix[400];
  snprintf(prefix, sizeof prefix, "http://127.0.0.1:1/v1/files/%s?exp=", key);
  cr_assert(!strncmp(url, prefix, strlen(prefix)), "%s", url);
  long long exp = atoll(url + strlen(prefix));
  const char *sig = strstr(url, "&sig=");
  cr_assert(sig);
  erpq_link_signer s;
  char err[256];
  cr_assert_eq(
      erpq_link_signer_init(&s, SECRET, strlen(SECRET), "http://127.0.0.1:1", err, sizeof err), 0);
  char exps[32];
  snprintf(exps, sizeof exps, "%lld", exp);
  cr_assert_eq(
      erpq_link_verify(&s, key, exps, str(rv, "fileName"), sig + 5, time(NULL), err, sizeof err), 0,
      "%s", err);
  cr_assert_eq(
      erpq_link_verify(&s, key, exps, str(rv, "fileName"), sig + 5, exp + 1, err, sizeof err),
      -EKEYEXPIRED);
  /* download -o FILE: the same bytes (SHA-256 checked by the command too). */
  char *out;
  char args[512];
  snprintf(args, sizeof args, "-o '%s/got.csv'", E.dir);
  cr_assert_eq(download(id, args, 1, &out), 0, "%s", out);
  json_t *o = json_loads(out, 0, NULL);
  cr_assert(o, "%s", out);
  cr_assert_str_eq(str(o, "sha256"), str(rv, "sha256"));
  free(out);
  json_decref(o);
  char path[400], sha[65];
  snprintf(path, sizeof path, "%s/got.csv", E.dir);
  rt_sha256_file(path, sha);
  cr_assert_str_eq(sha, str(rv, "sha256"));
  /* Configured for S3 while the report is local: refused (exit 1). */
  cr_assert_eq(download(id, "", 0, &out), 1, "%s", out);
  cr_assert(strstr(out, "not in the one configured here"), "%s", out);
  free(out);
  /* No such job; no storage settings at all. */
  cr_assert_eq(download("999", "", 1, &out), 1, "%s", out);
  free(out);
  cr_assert_eq(rt_sh(&out,
                     "env -u ERPQ_S3_BUCKET -u ERPQ_STORAGE_DIR %s/erpq-producer --redis"
                     " '%s' --prefix %s download reports %s 2>&1",
                     E.bin, getenv("ERPQ_TEST_REDIS_URL"), E.prefix, id),
               2, "%s", out);
  cr_assert(strstr(out, "ERPQ_STORAGE_DIR"), "%s", out);
  free(out);
  json_decref(v);
}

Test(reports_more, s3_download_cli_and_refusals) {
  rt_worker_start(&E, NULL, NULL);
  json_t *v = rt_job(&E, "fee-collection", "{" APRIL ",\"format\":\"xlsx\"}", NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", str(v, "failedReason"));
  const json_t *rv = rt_rv(v);
  char *out;
  /* No -o: the result's file name in the current directory. */
  cr_assert_eq(download(str(v, "id"), "", 0, &out), 0, "%s", out);
  free(out);
  char path[600], sha[65];
  snprintf(path, sizeof path, "%s/%s", E.dir, str(rv, "fileName"));
  rt_sha256_file(path, sha);
  cr_assert_str_eq(sha, str(rv, "sha256"));
  /* -o -: to stdout. */
  cr_assert_eq(rt_sh(&out,
                     "cd '%s' && ERPQ_S3_BUCKET='%s' ERPQ_S3_ENDPOINT='%s' "
                     "ERPQ_S3_ACCESS_KEY_ID='%s' ERPQ_S3_SECRET_ACCESS_KEY='%s' "
                     "%s/erpq-producer --redis '%s' --prefix %s download reports %s -o - "
                     "2>/dev/null | sha256sum",
                     E.dir, getenv("ERPQ_TEST_S3_BUCKET"), getenv("ERPQ_TEST_S3_URL"),
                     getenv("ERPQ_TEST_S3_ACCESS_KEY"), getenv("ERPQ_TEST_S3_SECRET_KEY"), E.bin,
                     getenv("ERPQ_TEST_REDIS_URL"), E.prefix, str(v, "id")),
               0);
  cr_assert(!strncmp(out, sha, 64), "%s", out);
  free(out);
  /* A failed job has nothing to download. */
  json_t *f = rt_job(&E, "fee-collection",
                     "{\"schoolId\":77,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\","
                     "\"format\":\"csv\"}",
                     NULL, 60);
  cr_assert_str_eq(rt_state(f), "failed");
  cr_assert_eq(download(str(f, "id"), "", 0, &out), 1, "%s", out);
  cr_assert(strstr(out, "not completed"), "%s", out);
  free(out);
  /* The object gone: a clear refusal. */
  char err[256];
  cr_assert_eq(erpq_s3_delete(E.s3, str(rv, "key"), err, sizeof err), 0, "%s", err);
  cr_assert_eq(download(str(v, "id"), "-o x.xlsx", 0, &out), 1, "%s", out);
  cr_assert(strstr(out, "no longer exists"), "%s", out);
  free(out);
  json_decref(v);
  json_decref(f);
}

Test(reports_more, notify_enqueues_the_email_once) {
  rt_worker_start(&E, NULL, NULL);
  json_t *v = rt_job(&E, "defaulters",
                     "{\"schoolId\":1,\"asOf\":\"2026-04-30\",\"format\":\"pdf\","
                     "\"notify\":{\"email\":\"accounts@school.example\",\"name\":\"Asha\"}}",
                     NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", str(v, "failedReason"));
  const char *id = str(v, "id");
  char *out;
  char eid[128];
  snprintf(eid, sizeof eid, "report-ready:reports:%s", id);
  int rc = rt_sh(&out, "%s/erpq-producer --redis '%s' --prefix %s status email '%s'", E.bin,
                 getenv("ERPQ_TEST_REDIS_URL"), E.prefix, eid);
  cr_assert_eq(rc, 0, "%s", out);
  json_t *mail = json_loads(out, 0, NULL);
  free(out);
  cr_assert(mail);
  cr_assert_str_eq(str(mail, "name"), "send-email");
  cr_assert_str_eq(str(mail, "state"), "waiting");
  const json_t *d = json_object_get(mail, "data");
  cr_assert_eq(rt_int(d, "schoolId"), 1);
  cr_assert_str_eq(str(d, "to"), "accounts@school.example");
  cr_assert_str_eq(str(d, "template"), "report-ready");
  cr_assert_str_eq(str(d, "locale"), "en-IN");
  cr_assert_str_eq(str(d, "dedupKey"), eid);
  const json_t *vars = json_object_get(d, "vars");
  cr_assert_str_eq(str(vars, "recipientName"), "Asha");
  cr_assert_str_eq(str(vars, "schoolName"), "Sunrise Public School, Pune");
  cr_assert_str_eq(str(vars, "format"), "PDF");
  cr_assert_eq(rt_int(vars, "rows"), rt_int(rt_rv(v), "rows"));
  cr_assert(strstr(str(vars, "reportTitle"), "Defaulters"), "%s", str(vars, "reportTitle"));
  cr_assert(strstr(str(vars, "expiresAt"), "(Asia/Kolkata)"), "%s", str(vars, "expiresAt"));
  const char *url = str(vars, "downloadUrl");
  cr_assert(url && strstr(url, "X-Amz-Expires=86400"), "a 24-hour link: %s", url ? url : "");
  char *body = NULL;
  size_t len = 0;
  cr_assert_eq(t_http_get(url, &body, &len, NULL, 0), 200);
  cr_assert_eq((int64_t)len, rt_int(rt_rv(v), "bytes"));
  free(body);
  /* The report job runs again: no second e-mail. */
  cr_assert_eq(rt_sh(&out,
                     "%s/erpq-producer --redis '%s' --prefix %s retry reports %s --state"
                     " completed",
                     E.bin, getenv("ERPQ_TEST_REDIS_URL"), E.prefix, id),
               0);
  free(out);
  usleep(200000);
  json_t *again = rt_wait(&E, id, 60);
  cr_assert_str_eq(rt_state(again), "completed");
  char *logs = rt_logs(&E, id);
  cr_assert(strstr(logs, "report-ready e-mail was already queued"), "%s", logs);
  free(logs);
  cr_assert_eq(rt_sh(&out, "%s/erpq-producer --redis '%s' --prefix %s counts email", E.bin,
                     getenv("ERPQ_TEST_REDIS_URL"), E.prefix),
               0);
  json_t *c = json_loads(out, 0, NULL);
  free(out);
  cr_assert_eq(rt_int(c, "waiting"), 1, "one e-mail, not two");
  json_decref(c);
  json_decref(again);
  json_decref(mail);
  json_decref(v);
}

Test(reports_more, progress_and_job_log) {
  rt_worker_start(&E, NULL, NULL);
  json_t *v = rt_job(&E, "fee-collection", "{" APRIL ",\"format\":\"pdf\"}", NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", str(v, "failedReason"));
  cr_assert_eq(rt_int(v, "progress"), 100);
  char *logs = rt_logs(&E, str(v, "id"));
  char want[64];
  snprintf(want, sizeof want, "fee-collection: %lld rows as pdf",
           (long long)rt_int(rt_rv(v), "rows"));
  cr_assert(strstr(logs, want), "%s", logs);
  cr_assert(strstr(logs, "uploaded in one request"), "%s", logs);
  /* No personal data in the log: no student name of the report. */
  cr_assert_null(strstr(logs, "Дмитрий"), "%s", logs);
  free(logs);
  json_decref(v);
}

Test(reports_more, statement_format_defaults_to_pdf) {
  rt_worker_start(&E, NULL, NULL);
  int64_t st = rt_q64(&E, "SELECT MIN(student_id) FROM payments");
  char data[200];
  snprintf(data, sizeof data,
           "{\"schoolId\":1,\"studentId\":%lld,\"from\":\"2026-04-01\",\"to\":\"2026-04-30\"}",
           (long long)st);
  json_t *v = rt_job(&E, "fee-statement", data, NULL, 60);
  cr_assert_str_eq(rt_state(v), "completed", "%s", str(v, "failedReason"));
  cr_assert_str_eq(str(rt_rv(v), "format"), "pdf");
  cr_assert_str_eq(str(rt_rv(v), "contentType"), "application/pdf");
  json_decref(v);
}
