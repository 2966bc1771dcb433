/*
 * test_http_files.c - the download routes' logic (producer/erpq_http_files.h)
 * against real storage: a local directory, and the test s3rver
 * (ERPQ_TEST_S3_*; fails, never skips, without it). Job views are built
 * as the status route shows them (state, data, returnvalue).
 *
 *   GET .../jobs/{id}/download: 302 for the owner and for a token without a
 *   school, 404 for another school's job, a missing job or a job with no
 *   file, 409 while not completed, 410 when the object is gone or kept in
 *   another storage, 503 when the storage cannot be asked; the Location
 *   downloads the object (S3: fetched with libcurl; local: served by the
 *   files route).
 *   GET /v1/files/<key>: 200 with the file and its headers, 403 for a
 *   tampered key, name or signature, 410 for an expired link or a file
 *   that is gone, 404 on an S3 server.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_http_files.h"
#include "erpq_storage.h"
#include "s3_test_util.h"

#define SECRET "http-files-test-secret-0123456789abcdef"
#define BASE "https://erp.example.org/api"
#define NOW ((int64_t)time(NULL))
#define BODY "Paid at,Amount (INR)\r\n2026-04-01 00:00:00,12.50\r\n"

static const char *get(void *ud, const char *name) {
  const char *const *kv = ud;
  for (; *kv; kv += 2)
    if (!strcmp(kv[0], name))
      return kv[1];
  return NULL;
}

static char g_dir[64];
static char g_key[128];

static erpq_storage *local_storage(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/erpq-hf-XXXXXX");
  cr_assert(mkdtemp(g_dir));
  const char *kv[] = {
      "ERPQ_STORAGE_DIR", g_dir, "ERPQ_STORAGE_SECRET", SECRET, "ERPQ_PUBLIC_URL", BASE, NULL};
  erpq_storage_conf c;
  char err[256];
  cr_assert_eq(erpq_storage_conf_read(&c, get, kv, err, sizeof err), 0, "%s", err);
  erpq_storage *st = NULL;
  cr_assert_eq(erpq_storage_new(&st, &c, err, sizeof err), 0, "%s", err);
  erpq_storage_conf_clear(&c);
  return st;
}

static erpq_storage *s3_storage(void) {
  const char *need[] = {"ERPQ_TEST_S3_URL", "ERPQ_TEST_S3_BUCKET", "ERPQ_TEST_S3_ACCESS_KEY",
                        "ERPQ_TEST_S3_SECRET_KEY", "ERPQ_TEST_S3_REGION"};
  for (int i = 0; i < 5; i++)
    cr_assert(getenv(need[i]) && *getenv(need[i]), "%s is not set", need[i]);
  const char *kv[] = {"ERPQ_S3_BUCKET",
                      getenv("ERPQ_TEST_S3_BUCKET"),
                      "ERPQ_S3_ENDPOINT",
                      getenv("ERPQ_TEST_S3_URL"),
                      "ERPQ_S3_ACCESS_KEY_ID",
                      getenv("ERPQ_TEST_S3_ACCESS_KEY"),
                      "ERPQ_S3_SECRET_ACCESS_KEY",
                      getenv("ERPQ_TEST_S3_SECRET_KEY"),
                      "ERPQ_S3_REGION",
                      getenv("ERPQ_TEST_S3_REGION"),
                      NULL};
  erpq_storage_conf c;
  char err[256];
  cr_assert_eq(erpq_storage_conf_read(&c, get, kv, err, sizeof err), 0, "%s", err);
  erpq_storage *st = NULL;
  cr_assert_eq(erpq_storage_new(&st, &c, err, sizeof err), 0, "%s", err);
  erpq_storage_conf_clear(&c);
  return st;
}

static void put(erpq_storage *st) {
  srand((unsigned)(getpid() ^ time(NULL)));
  snprintf(g_key, sizeof g_key, "reports/1/2026-04/hf%d-%06x-fee-collection.csv", (int)getpid(),
           rand() & 0xffffff);
  erpq_storage_upload *u = NULL;
  char err[256];
  cr_assert_eq(
      erpq_storage_begin(st, g_key, NULL, "Fee collection – April.csv", NULL, &u, err, sizeof err),
      0, "%s", err);
  cr_assert_eq(erpq_storage_write(u, BODY, strlen(BODY), err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_storage_finish(u, NULL, err, sizeof err), 0, "%s", err);
}

static void cleanup_dir(void) {
  if (g_dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_assert_eq(system(cmd), 0);
    g_dir[0] = '\0';
  }
}

/* A status-route view of a report job of school 1. */
static json_t *view(const char *state, const char *storage, const char *bucket) {
  return json_pack("{s:s,s:s,s:s,s:{s:i,s:s,s:s,s:s},s:{s:s,s:o,s:s,s:s}}", "id", "7", "name",
                   "fee-collection", "state", state, "data", "schoolId", 1, "from", "2026-04-01",
                   "to", "2026-04-30", "format", "csv", "returnvalue", "storage", storage, "bucket",
                   bucket ? json_string(bucket) : json_null(), "key", g_key, "fileName",
                   "Fee collection – April.csv");
}

static const char *code(const erpq_http_answer *a) {
  return json_string_value(json_object_get(json_object_get(a->body, "error"), "code"));
}

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* Percent-decodes [s, s+n) into out (as the HTTP server does for the route). */
static void pct(const char *s, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < outlen; i++) {
    if (s[i] == '%' && i + 2 < n) {
      out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
}

typedef struct signed_link {
  char key[512], exp[32], name[256], sig[80];
} signed_link;

static void parse_link(const char *url, signed_link *l) {
  const char *pfx = BASE "/v1/files/";
  cr_assert(!strncmp(url, pfx, strlen(pfx)), "%s", url);
  const char *k = url + strlen(pfx), *q = strchr(k, '?');
  cr_assert(q);
  pct(k, (size_t)(q - k), l->key, sizeof l->key);
  memset(l->exp, 0, sizeof l->exp);
  memset(l->name, 0, sizeof l->name);
  memset(l->sig, 0, sizeof l->sig);
  for (const char *p = q + 1; *p;) {
    const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p), *eq = strchr(p, '=');
    cr_assert(eq && eq < end);
    size_t vn = (size_t)(end - eq - 1);
    if (!strncmp(p, "exp=", 4))
      pct(eq + 1, vn, l->exp, sizeof l->exp);
    else if (!strncmp(p, "name=", 5))
      pct(eq + 1, vn, l->name, sizeof l->name);
    else if (!strncmp(p, "sig=", 4))
      pct(eq + 1, vn, l->sig, sizeof l->sig);
    p = amp ? amp + 1 : end;
  }
}

Test(http_files, download_local, .fini = cleanup_dir) {
  erpq_storage *st = local_storage();
  put(st);
  erpq_http_answer a;
  erpq_http_answer_init(&a);
  /* No job, another school's: the same 404. */
  erpq_http_download(NULL, NULL, st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 404);
  cr_assert_str_eq(code(&a), "job_not_found");
  json_t *v = view("completed", "local", NULL);
  erpq_http_download(v, "2", st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 404);
  cr_assert_str_eq(code(&a), "job_not_found");
  /* Not completed: 409 with the state. */
  json_t *run = view("active", "local", NULL);
  erpq_http_download(run, "1", st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 409);
  cr_assert_str_eq(code(&a), "job_not_completed");
  cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a.body, "error"), "state")),
                   "active");
  json_t *failed = view("failed", "local", NULL);
  erpq_http_download(failed, NULL, st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 409);
  /* A completed job that is not a report. */
  json_t *other = json_pack("{s:s,s:{s:i},s:{s:i}}", "state", "completed", "data", "schoolId", 1,
                            "returnvalue", "students", 3);
  erpq_http_download(other, NULL, st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 404);
  cr_assert_str_eq(code(&a), "no_download");
  /* Kept in S3 while this server serves a directory: gone from here. */
  json_t *s3v = view("completed", "s3", "reports");
  erpq_http_download(s3v, NULL, st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 410);
  /* The owner: 302 to a signed link valid 600 s. */
  int64_t now = NOW;
  erpq_http_download(v, "1", st, NULL, 600, now, &a);
  cr_assert_eq(a.status, 302);
  const char *loc = erpq_http_answer_header(&a, "Location");
  cr_assert(loc);
  cr_assert_str_eq(erpq_http_answer_header(&a, "Cache-Control"), "no-store");
  signed_link l;
  parse_link(loc, &l);
  cr_assert_str_eq(l.key, g_key);
  cr_assert_eq(atoll(l.exp), now + 600);
  cr_assert_str_eq(l.name, "Fee collection – April.csv");
  /* The files route serves it. */
  erpq_http_answer f;
  erpq_http_answer_init(&f);
  erpq_http_file(st, l.key, l.exp, l.name, l.sig, now + 1, &f);
  cr_assert_eq(f.status, 200);
  cr_assert_geq(f.fd, 0);
  cr_assert_eq(f.size, strlen(BODY));
  char buf[256] = "";
  cr_assert_eq(read(f.fd, buf, sizeof buf - 1), (ssize_t)strlen(BODY));
  cr_assert_str_eq(buf, BODY);
  cr_assert_str_eq(erpq_http_answer_header(&f, "Content-Type"), "text/csv; charset=utf-8");
  char clen[16];
  snprintf(clen, sizeof clen, "%zu", strlen(BODY));
  cr_assert_str_eq(erpq_http_answer_header(&f, "Content-Length"), clen);
  const char *disp = erpq_http_answer_header(&f, "Content-Disposition");
  cr_assert(disp && strstr(disp, "attachment;") &&
                strstr(disp, "filename*=UTF-8''Fee%20collection%20%E2%80%93%20April.csv"),
            "%s", disp);
  /* Expired; tampered signature, key or name. */
  erpq_http_file(st, l.key, l.exp, l.name, l.sig, now + 601, &f);
  cr_assert_eq(f.status, 410);
  cr_assert_str_eq(code(&f), "link_expired");
  cr_assert_eq(f.fd, -1);
  char bad[80];
  snprintf(bad, sizeof bad, "%s", l.sig);
  bad[5] = bad[5] == 'a' ? 'b' : 'a';
  erpq_http_file(st, l.key, l.exp, l.name, bad, now, &f);
  cr_assert_eq(f.status, 403);
  erpq_http_file(st, "reports/1/2026-04/other.csv", l.exp, l.name, l.sig, now, &f);
  cr_assert_eq(f.status, 403);
  erpq_http_file(st, l.key, l.exp, "evil.exe", l.sig, now, &f);
  cr_assert_eq(f.status, 403);
  erpq_http_file(st, "../etc/passwd", l.exp, l.name, l.sig, now, &f);
  cr_assert_eq(f.status, 403);
  erpq_http_file(st, l.key, NULL, NULL, NULL, now, &f);
  cr_assert_eq(f.status, 403);
  /* The object removed: both routes say gone. */
  char err[256];
  cr_assert_eq(erpq_storage_delete(st, g_key, err, sizeof err), 0, "%s", err);
  erpq_http_file(st, l.key, l.exp, l.name, l.sig, now, &f);
  cr_assert_eq(f.status, 410);
  cr_assert_str_eq(code(&f), "report_gone");
  erpq_http_download(v, "1", st, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 410);
  cr_assert_str_eq(code(&a), "report_gone");
  /* The split form: the storage could not be asked. */
  erpq_http_dlplan plan;
  cr_assert_eq(erpq_http_download_plan(v, NULL, st, NULL, &plan, &a), 0);
  cr_assert_str_eq(plan.key, g_key);
  erpq_http_download_answer(st, &plan, -ECONNREFUSED, NULL, 0, NOW, &a);
  cr_assert_eq(a.status, 503);
  cr_assert_str_eq(erpq_http_answer_header(&a, "Retry-After"), "5");
  erpq_http_answer_clear(&a);
  erpq_http_answer_clear(&f);
  json_decref(v);
  json_decref(run);
  json_decref(failed);
  json_decref(other);
  json_decref(s3v);
  erpq_storage_free(st);
}

Test(http_files, download_s3) {
  erpq_storage *st = s3_storage();
  put(st);
  const char *bucket = getenv("ERPQ_TEST_S3_BUCKET");
  erpq_http_answer a;
  erpq_http_answer_init(&a);
  json_t *v = view("completed", "s3", bucket);
  erpq_http_download(v, "1", st, bucket, 0, NOW, &a);
  cr_assert_eq(a.status, 302, "%d %s", a.status, code(&a) ? code(&a) : "");
  const char *loc = erpq_http_answer_header(&a, "Location");
  cr_assert(loc && strstr(loc, "X-Amz-Signature="), "%s", loc ? loc : "");
  cr_assert(strstr(loc, "X-Amz-Expires=900"), "15 minutes by default: %s", loc);
  char *body = NULL, disp[512] = "";
  size_t len = 0;
  cr_assert_eq(t_http_get(loc, &body, &len, disp, sizeof disp), 200);
  cr_assert_eq(len, strlen(BODY));
  cr_assert_eq(memcmp(body, BODY, len), 0);
  free(body);
  cr_assert(strstr(disp, "April.csv"), "%s", disp);
  /* Another school; another bucket; the local files route on S3. */
  erpq_http_download(v, "5", st, bucket, 0, NOW, &a);
  cr_assert_eq(a.status, 404);
  json_t *elsewhere = view("completed", "s3", "some-other-bucket");
  erpq_http_download(elsewhere, NULL, st, bucket, 0, NOW, &a);
  cr_assert_eq(a.status, 410);
  erpq_http_file(st, g_key, "1", NULL, "00", NOW, &a);
  cr_assert_eq(a.status, 404);
  /* Gone. */
  char err[256];
  cr_assert_eq(erpq_storage_delete(st, g_key, err, sizeof err), 0, "%s", err);
  erpq_http_download(v, NULL, st, bucket, 0, NOW, &a);
  cr_assert_eq(a.status, 410);
  erpq_http_answer_clear(&a);
  json_decref(v);
  json_decref(elsewhere);
  erpq_storage_free(st);
}
