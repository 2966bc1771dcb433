/*
 * test_storage.c - both storage backends through the same interface: the
 * local directory (a fresh temporary one) and S3 (the test s3rver,
 * ERPQ_TEST_S3_*). Streaming uploads are invisible until finish, the same
 * key written twice is replaced, abort leaves nothing, put_file, delete,
 * download links (local: verified with erpq_link_verify; S3: fetched with
 * libcurl), unsafe keys, and the configuration rules.
 */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "erpq_storage.h"
#include "s3_test_util.h"

#define SECRET "storage-test-secret-0123456789abcdef"
#define NOW_S ((int64_t)time(NULL))

static const char *get(void *ud, const char *name) {
  const char *const *kv = ud;
  for (; *kv; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

static char tmpdir[64];

static erpq_storage *local_storage(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/erpq-storage-XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
  char dir[128];
  snprintf(dir, sizeof dir, "%s/files/", tmpdir); /* Missing: created, trailing '/' dropped. */
  const char *kv[] = {
      "ERPQ_STORAGE_DIR",      dir, "ERPQ_STORAGE_SECRET", SECRET, "ERPQ_PUBLIC_URL",
      "http://127.0.0.1:8080", NULL};
  erpq_storage_conf c;
  char err[256];
  cr_assert_eq(erpq_storage_conf_read(&c, get, kv, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.kind, ERPQ_STORAGE_LOCAL);
  erpq_storage *st = NULL;
  cr_assert_eq(erpq_storage_new(&st, &c, err, sizeof err), 0, "%s", err);
  erpq_storage_conf_clear(&c);
  return st;
}

static erpq_storage *s3_storage(void) {
  const char *env[] = {"ERPQ_TEST_S3_URL", "ERPQ_TEST_S3_BUCKET", "ERPQ_TEST_S3_ACCESS_KEY",
                       "ERPQ_TEST_S3_SECRET_KEY", "ERPQ_TEST_S3_REGION"};
  for (size_t i = 0; i < 5; i++)
    cr_assert(getenv(env[i]) && *getenv(env[i]), "%s is not set", env[i]);
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
                      "ERPQ_STORAGE_DIR",
                      "/ignored/when/s3",
                      NULL};
  erpq_storage_conf c;
  char err[256];
  cr_assert_eq(erpq_storage_conf_read(&c, get, kv, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.kind, ERPQ_STORAGE_S3, "a bucket means S3");
  c.s3.part_size = 64 * 1024; /* Multipart in tests. */
  erpq_storage *st = NULL;
  cr_assert_eq(erpq_storage_new(&st, &c, err, sizeof err), 0, "%s", err);
  erpq_storage_conf_clear(&c);
  return st;
}

/* The object's bytes, read the way each backend serves them: local through
 * a verified link and erpq_storage_open, S3 through its presigned link. */
static unsigned char *read_back(const erpq_storage *st, const char *key, const char *name,
                                size_t *n, char *disp, size_t displen) {
  char *url = NULL, err[256];
  cr_assert_eq(erpq_storage_link(st, key, name, 0, NOW_S, &url, err, sizeof err), 0, "%s", err);
  unsigned char *data = NULL;
  if (erpq_storage_kind_of(st) == ERPQ_STORAGE_S3) {
    long status = t_http_get(url, (char **)&data, n, disp, displen);
    cr_assert_eq(status, 200, "presigned GET: %ld", status);
  } else {
    const char *prefix = "http://127.0.0.1:8080/v1/files/";
    cr_assert(strncmp(url, prefix, strlen(prefix)) == 0, "%s", url);
    const char *k = url + strlen(prefix), *q = strchr(k, '?');
    int klen = 0;
    char *dkey = curl_easy_unescape(NULL, k, (int)(q - k), &klen);
    char exp[32], sig[65];
    cr_assert_eq(sscanf(q, "?exp=%31[0-9]&", exp), 1, "%s", q);
    const char *s = strstr(q, "&sig=");
    cr_assert_not_null(s);
    snprintf(sig, sizeof sig, "%s", s + 5);
    const char *nm = strstr(q, "&name=") + 6;
    int nlen = 0;
    char *dname = nm == s ? strdup("") : curl_easy_unescape(NULL, nm, (int)(s - nm), &nlen);
    cr_assert_str_eq(dkey, key);
    cr_assert_eq(
        erpq_link_verify(erpq_storage_links(st), dkey, exp, dname, sig, NOW_S, err, sizeof err), 0,
        "%s", err);
    if (disp)
      snprintf(disp, displen, "%s", dname);
    curl_free(dkey);
    if (nm == s)
      free(dname);
    else
      curl_free(dname);
    int fd;
    uint64_t size;
    cr_assert_eq(erpq_storage_open(st, key, &fd, &size, err, sizeof err), 0, "%s", err);
    data = malloc(size + 1);
    cr_assert_eq(read(fd, data, size), (ssize_t)size);
    close(fd);
    *n = size;
  }
  free(url);
  return data;
}

static void assert_absent(const erpq_storage *st, const char *key) {
  erpq_storage_info info;
  char err[256];
  cr_assert_eq(erpq_storage_head(st, key, &info, err, sizeof err), 0, "%s", err);
  cr_assert_eq(info.exists, 0, "%s exists", key);
}

/* No temporary files left anywhere under the local directory. */
static void assert_no_temp(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    cr_assert_neq(e->d_name[0], '.', "temporary file %s/%s left behind", dir, e->d_name);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    struct stat s;
    if (lstat(sub, &s) == 0 && S_ISDIR(s.st_mode))
      assert_no_temp(sub);
  }
  closedir(d);
}

static void suite(erpq_storage *st) {
  char key[160], id[128], err[256];
  t_key(id, sizeof id, "reports/12/2026-01");
  snprintf(key, sizeof key, "%s-fees.csv", id);
  size_t n = 200 * 1024 + 3;
  unsigned char *data = t_data(n, 21);
  char sha[65];
  t_sha256(data, n, sha);

  /* Streaming: nothing is visible before finish. */
  erpq_storage_upload *u = NULL;
  cr_assert_eq(erpq_storage_begin(st, key, NULL, "Fees – January.csv", NULL, &u, err, sizeof err),
               0, "%s", err);
  for (size_t off = 0; off < n; off += 7000)
    cr_assert_eq(
        erpq_storage_write(u, data + off, n - off < 7000 ? n - off : 7000, err, sizeof err), 0,
        "%s", err);
  assert_absent(st, key);
  erpq_storage_result r;
  cr_assert_eq(erpq_storage_finish(u, &r, err, sizeof err), 0, "%s", err);
  cr_assert_eq(r.bytes, n);
  cr_assert_str_eq(r.sha256, sha);
  erpq_storage_info info;
  cr_assert_eq(erpq_storage_head(st, key, &info, err, sizeof err), 0, "%s", err);
  cr_assert(info.exists);
  cr_assert_eq(info.size, n);
  cr_assert_str_eq(info.content_type, "text/csv", "guessed from the extension");
  size_t got;
  char disp[512];
  unsigned char *back = read_back(st, key, "Fees – January.csv", &got, disp, sizeof disp);
  cr_assert_eq(got, n);
  cr_assert_eq(memcmp(back, data, n), 0);
  cr_assert(strstr(disp, "January.csv") != NULL, "%s", disp);
  free(back);

  /* The same key again replaces the object. */
  cr_assert_eq(erpq_storage_begin(st, key, "text/csv", NULL, NULL, &u, err, sizeof err), 0);
  cr_assert_eq(erpq_storage_write(u, "v2\n", 3, err, sizeof err), 0);
  cr_assert_eq(erpq_storage_finish(u, NULL, err, sizeof err), 0, "%s", err);
  back = read_back(st, key, NULL, &got, NULL, 0);
  cr_assert_eq(got, 3);
  cr_assert_eq(memcmp(back, "v2\n", 3), 0);
  free(back);

  /* Abort leaves nothing; a started-then-aborted key stays absent. */
  char key2[200];
  snprintf(key2, sizeof key2, "%s-aborted.pdf", id);
  cr_assert_eq(erpq_storage_begin(st, key2, NULL, NULL, NULL, &u, err, sizeof err), 0);
  cr_assert_eq(erpq_storage_write(u, data, n, err, sizeof err), 0, "%s", err);
  erpq_storage_abort(u);
  assert_absent(st, key2);

  /* put_file. */
  char key3[200];
  snprintf(key3, sizeof key3, "%s-grades.xlsx", id);
  char *path = t_write_temp(data, n);
  cr_assert_eq(
      erpq_storage_put_file(st, key3, path, NULL, "grades.xlsx", NULL, &r, err, sizeof err), 0,
      "%s", err);
  cr_assert_str_eq(r.sha256, sha);
  cr_assert_eq(erpq_storage_head(st, key3, &info, err, sizeof err), 0);
  cr_assert_str_eq(info.content_type,
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  back = read_back(st, key3, "grades.xlsx", &got, NULL, 0);
  cr_assert_eq(got, n);
  cr_assert_eq(memcmp(back, data, n), 0);
  free(back);
  unlink(path);
  free(path);

  /* Delete, twice. */
  cr_assert_eq(erpq_storage_delete(st, key3, err, sizeof err), 0, "%s", err);
  assert_absent(st, key3);
  cr_assert_eq(erpq_storage_delete(st, key3, err, sizeof err), 0, "%s", err);

  /* Unsafe keys never reach the backend. */
  const char *bad[] = {"../outside.csv", "/etc/passwd", "reports/..\\x", "reports/../x",
                       "reports/.tmp"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *url = NULL;
    cr_expect_eq(erpq_storage_begin(st, bad[i], NULL, NULL, NULL, &u, err, sizeof err), -EINVAL);
    cr_expect_eq(erpq_storage_head(st, bad[i], &info, err, sizeof err), -EINVAL);
    cr_expect_eq(erpq_storage_delete(st, bad[i], err, sizeof err), -EINVAL);
    cr_expect_eq(erpq_storage_link(st, bad[i], NULL, 60, NOW_S, &url, err, sizeof err), -EINVAL);
    cr_expect_eq(
        erpq_storage_put_file(st, bad[i], "/dev/null", NULL, NULL, NULL, NULL, err, sizeof err),
        -EINVAL);
  }
  free(data);
}

Test(storage, local_backend) {
  erpq_storage *st = local_storage();
  cr_assert_eq(erpq_storage_kind_of(st), ERPQ_STORAGE_LOCAL);
  cr_assert_not_null(erpq_storage_links(st));
  suite(st);
  char dir[128];
  snprintf(dir, sizeof dir, "%s/files", tmpdir);
  assert_no_temp(dir);
  /* Files and directories are not world-readable. */
  struct stat s;
  cr_assert_eq(stat(dir, &s), 0);
  cr_assert_eq(s.st_mode & 07, 0);
  erpq_storage_free(st);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

Test(storage, s3_backend, .timeout = 60) {
  erpq_storage *st = s3_storage();
  cr_assert_eq(erpq_storage_kind_of(st), ERPQ_STORAGE_S3);
  cr_assert_null(erpq_storage_links(st));
  suite(st);
  int fd;
  char err[256];
  cr_assert_eq(erpq_storage_open(st, "reports/x.csv", &fd, NULL, err, sizeof err), -ENOTSUP);
  erpq_storage_free(st);
}

static int always(void *ud) {
  (void)ud;
  return 1;
}

Test(storage, local_cancel_leaves_nothing) {
  erpq_storage *st = local_storage();
  erpq_s3_cancel cancel = {always, NULL};
  erpq_storage_upload *u = NULL;
  char err[256];
  cr_assert_eq(erpq_storage_begin(st, "reports/1/c.csv", NULL, NULL, &cancel, &u, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_storage_write(u, "abc", 3, err, sizeof err), 0, "polled every 50 ms only");
  cr_assert_eq(erpq_storage_finish(u, NULL, err, sizeof err), -ECANCELED);
  assert_absent(st, "reports/1/c.csv");
  char dir[128];
  snprintf(dir, sizeof dir, "%s/files", tmpdir);
  assert_no_temp(dir);
  erpq_storage_free(st);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

Test(storage, configuration) {
  erpq_storage_conf c;
  char err[256];
  const char *none[] = {NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, none, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_S3_BUCKET") && strstr(err, "ERPQ_STORAGE_DIR"), "%s", err);
  const char *nosecret[] = {"ERPQ_STORAGE_DIR", "/tmp/x", NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, nosecret, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_STORAGE_SECRET") != NULL, "%s", err);
  const char *shortsecret[] = {"ERPQ_STORAGE_DIR", "/tmp/x", "ERPQ_STORAGE_SECRET", "too-short",
                               NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, shortsecret, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_STORAGE_SECRET") && strstr(err, "32"), "%s", err);
  cr_assert(strstr(err, "too-short") == NULL, "the secret is not echoed");
  const char *relative[] = {"ERPQ_STORAGE_DIR", "files", "ERPQ_STORAGE_SECRET", SECRET, NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, relative, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_STORAGE_DIR") != NULL, "%s", err);
  const char *badurl[] = {
      "ERPQ_STORAGE_DIR", "/tmp/x", "ERPQ_STORAGE_SECRET", SECRET, "ERPQ_PUBLIC_URL",
      "erp.example.test", NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, badurl, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_PUBLIC_URL") != NULL, "%s", err);
  const char *dflt[] = {"ERPQ_STORAGE_DIR", "/tmp/x", "ERPQ_STORAGE_SECRET", SECRET, NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, dflt, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(c.links.base_url, "http://127.0.0.1:8080");
  cr_assert_str_eq(c.dir, "/tmp/x");
  erpq_storage_conf_clear(&c);
  const char *s3bad[] = {"ERPQ_S3_BUCKET", "reports", NULL};
  cr_assert_eq(erpq_storage_conf_read(&c, get, s3bad, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "ERPQ_S3_ACCESS_KEY_ID") != NULL, "%s", err);
  cr_assert_str_eq(erpq_storage_content_type("reports/a.PDF"), "application/pdf");
  cr_assert_str_eq(erpq_storage_content_type("reports/a.tar.gz"), "application/octet-stream");
  cr_assert_str_eq(erpq_storage_content_type("reports.v2/noext"), "application/octet-stream");
}
