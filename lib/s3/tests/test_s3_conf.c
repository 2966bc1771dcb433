/*
 * test_s3_conf.c - reading the S3 configuration (erpq_s3_conf_read):
 * defaults, addressing, secrets from files, and errors that name the
 * variable and never the secret.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_s3.h"

#define SECRET "s3cr3t/Value+With=Chars"

/* NULL-terminated name/value pairs. */
static const char *get(void *ud, const char *name) {
  const char *const *kv = ud;
  for (; *kv; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

#define BASE "ERPQ_S3_BUCKET", "reports", "ERPQ_S3_ACCESS_KEY_ID", "AKID"

static int read_conf(erpq_s3_conf *c, const char *const *kv, char *err, size_t errlen) {
  int rc = erpq_s3_conf_read(c, get, (void *)kv, err, errlen);
  cr_assert(strstr(err, SECRET) == NULL, "a message shows the secret: %s", err);
  return rc;
}

Test(s3_conf, aws_defaults) {
  const char *kv[] = {BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_REGION", "eu-west-1",
                      NULL};
  erpq_s3_conf c;
  char err[256] = "";
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(c.bucket, "reports");
  cr_assert_str_eq(c.region, "eu-west-1");
  cr_assert_str_eq(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
  cr_assert_eq(c.addressing, ERPQ_S3_VIRTUAL, "AWS defaults to virtual-host style");
  cr_assert_str_eq(c.secret_access_key, SECRET);
  cr_assert_str_eq(c.session_token, "");
  cr_assert_eq(c.sse, ERPQ_S3_SSE_NONE);
  cr_assert_eq(c.part_size, 8 * 1024 * 1024);
  cr_assert_eq(c.connect_timeout_s, 10);
  cr_assert_eq(c.stall_timeout_s, 30);
  cr_assert_eq(c.max_tries, 5);

  erpq_s3 *s3 = NULL;
  cr_assert_eq(erpq_s3_new(&s3, &c, err, sizeof err), 0, "%s", err);
  char *url = NULL;
  cr_assert_eq(
      erpq_s3_presign_get(s3, "reports/a b.csv", NULL, 900, 1700000000, &url, err, sizeof err), 0,
      "%s", err);
  cr_assert(strncmp(url, "https://reports.s3.eu-west-1.amazonaws.com/reports/a%20b.csv?", 61) == 0,
            "%s", url);
  cr_assert(strstr(url, SECRET) == NULL);
  free(url);
  erpq_s3_free(s3);

  const char *none[] = {BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, NULL};
  cr_assert_eq(read_conf(&c, none, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(c.region, "us-east-1");
  cr_assert_str_eq(c.endpoint, "https://s3.us-east-1.amazonaws.com");
}

Test(s3_conf, custom_endpoint_is_path_style) {
  const char *kv[] = {
      BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_ENDPOINT", "http://127.0.0.1:9000", NULL};
  erpq_s3_conf c;
  char err[256] = "";
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.addressing, ERPQ_S3_PATH);
  const char *virt[] = {BASE,
                        "ERPQ_S3_SECRET_ACCESS_KEY",
                        SECRET,
                        "ERPQ_S3_ENDPOINT",
                        "https://minio.example.test",
                        "ERPQ_S3_ADDRESSING",
                        "virtual",
                        NULL};
  cr_assert_eq(read_conf(&c, virt, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.addressing, ERPQ_S3_VIRTUAL);
  const char *path[] = {BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_ADDRESSING", "path",
                        NULL};
  cr_assert_eq(read_conf(&c, path, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.addressing, ERPQ_S3_PATH);
}

Test(s3_conf, secrets_from_files) {
  char path[] = "/tmp/erpq-s3-secret-XXXXXX", tpath[] = "/tmp/erpq-s3-token-XXXXXX";
  int fd = mkstemp(path), tfd = mkstemp(tpath);
  cr_assert(fd >= 0 && tfd >= 0);
  cr_assert_eq(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
  cr_assert_eq(write(tfd, "tok/en==\r\n", 10), 10);
  close(fd);
  close(tfd);
  const char *kv[] = {
      BASE, "ERPQ_S3_SECRET_ACCESS_KEY_FILE", path, "ERPQ_S3_SESSION_TOKEN_FILE", tpath, NULL};
  erpq_s3_conf c;
  char err[256] = "";
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(c.secret_access_key, SECRET, "the trailing newline is dropped");
  cr_assert_str_eq(c.session_token, "tok/en==");
  unlink(path);
  unlink(tpath);
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), -ENOENT);
  cr_assert(strstr(err, "ERPQ_S3_SECRET_ACCESS_KEY_FILE") != NULL, "%s", err);
}

Test(s3_conf, errors_name_the_variable) {
  struct {
    const char *kv[12];
    const char *names;
  } cases[] = {
      {{"ERPQ_S3_ACCESS_KEY_ID", "AKID", "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, NULL},
       "ERPQ_S3_BUCKET"},
      {{"ERPQ_S3_BUCKET", "My_Bucket", "ERPQ_S3_ACCESS_KEY_ID", "AKID", NULL}, "ERPQ_S3_BUCKET"},
      {{"ERPQ_S3_BUCKET", "reports", "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, NULL},
       "ERPQ_S3_ACCESS_KEY_ID"},
      {{BASE, NULL}, "ERPQ_S3_SECRET_ACCESS_KEY"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_SECRET_ACCESS_KEY_FILE", "/x", NULL},
       "ERPQ_S3_SECRET_ACCESS_KEY_FILE"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_REGION", "EU West", NULL},
       "ERPQ_S3_REGION"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_ENDPOINT", "127.0.0.1:9000", NULL},
       "ERPQ_S3_ENDPOINT"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_ENDPOINT", "http://h/path", NULL},
       "ERPQ_S3_ENDPOINT"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_ADDRESSING", "vhost", NULL},
       "ERPQ_S3_ADDRESSING"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_SSE", "aes256", NULL}, "ERPQ_S3_SSE"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_SSE", "AES256",
        "ERPQ_S3_SSE_KMS_KEY_ID", "k", NULL},
       "ERPQ_S3_SSE_KMS_KEY_ID"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_PART_SIZE", "5242879", NULL},
       "ERPQ_S3_PART_SIZE"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_PART_SIZE", "5368709121", NULL},
       "ERPQ_S3_PART_SIZE"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_PART_SIZE", "8MiB", NULL},
       "ERPQ_S3_PART_SIZE"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_CONNECT_TIMEOUT", "0", NULL},
       "ERPQ_S3_CONNECT_TIMEOUT"},
      {{BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, "ERPQ_S3_STALL_TIMEOUT", "-1", NULL},
       "ERPQ_S3_STALL_TIMEOUT"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    erpq_s3_conf c;
    char err[256] = "";
    int rc = read_conf(&c, cases[i].kv, err, sizeof err);
    cr_expect_lt(rc, 0, "case %zu accepted", i);
    cr_expect(strstr(err, cases[i].names) != NULL, "case %zu: '%s' does not name %s", i, err,
              cases[i].names);
  }
}

Test(s3_conf, accepted_values) {
  const char *kv[] = {BASE,
                      "ERPQ_S3_SECRET_ACCESS_KEY",
                      SECRET,
                      "ERPQ_S3_SSE",
                      "aws:kms",
                      "ERPQ_S3_SSE_KMS_KEY_ID",
                      "arn:aws:kms:eu-west-1:1:key/abc",
                      "ERPQ_S3_PART_SIZE",
                      "5242880",
                      "ERPQ_S3_STALL_TIMEOUT",
                      "5",
                      NULL};
  erpq_s3_conf c;
  char err[256] = "";
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.sse, ERPQ_S3_SSE_KMS);
  cr_assert_str_eq(c.sse_kms_key_id, "arn:aws:kms:eu-west-1:1:key/abc");
  cr_assert_eq(c.part_size, 5242880);
  cr_assert_eq(c.stall_timeout_s, 5);
}

Test(s3_conf, client_checks_tuning) {
  const char *kv[] = {BASE, "ERPQ_S3_SECRET_ACCESS_KEY", SECRET, NULL};
  erpq_s3_conf c;
  char err[256] = "";
  cr_assert_eq(read_conf(&c, kv, err, sizeof err), 0, "%s", err);
  erpq_s3 *s3 = NULL;
  c.max_tries = 0;
  cr_assert_eq(erpq_s3_new(&s3, &c, err, sizeof err), -EINVAL);
  cr_assert_null(s3);
  c.max_tries = 5;
  c.part_size = 1; /* Below S3's minimum is allowed here (tests use it). */
  cr_assert_eq(erpq_s3_new(&s3, &c, err, sizeof err), 0, "%s", err);
  erpq_s3_free(s3);
}
