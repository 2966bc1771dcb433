/*
 * test_s3_sigcheck.c - are the requests libcurl signs for our client
 * correct SigV4? s3rver checks no signatures, so tests/sigcheck.py plays
 * an S3 that does: it recomputes every request's signature with botocore
 * (same credentials, the request's own x-amz-date, the body it received)
 * and answers 403 SignatureDoesNotMatch on any difference. Covered: PUT
 * with a payload, CreateMultipartUpload, UploadPart (streaming and
 * parallel), CompleteMultipartUpload, GET, HEAD and DELETE, with and
 * without a session token; and a client with the wrong secret is refused,
 * so the checker itself can fail.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_s3.h"
#include "s3_test_util.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN "FQoGZXIvYXdzEJr//////////wEaDAbc+de/fg==" /* Made-up, token-shaped. */

static const char *get(void *ud, const char *name) {
  const char *const *kv = ud;
  for (; *kv; kv += 2)
    if (strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

static erpq_s3 *client(const t_peer *p, const char *secret, const char *token, uint64_t part) {
  const char *kv[] = {"ERPQ_S3_BUCKET",
                      "reports",
                      "ERPQ_S3_ENDPOINT",
                      p->url,
                      "ERPQ_S3_REGION",
                      "eu-west-1",
                      "ERPQ_S3_ACCESS_KEY_ID",
                      AKID,
                      "ERPQ_S3_SECRET_ACCESS_KEY",
                      secret,
                      "ERPQ_S3_SESSION_TOKEN",
                      token,
                      "ERPQ_S3_SSE",
                      "AES256",
                      NULL};
  erpq_s3_conf c;
  char err[256];
  cr_assert_eq(erpq_s3_conf_read(&c, get, kv, err, sizeof err), 0, "%s", err);
  c.part_size = part;
  c.max_tries = 1; /* A refused signature is final anyway. */
  return t_s3_new(&c);
}

/* The checker's counts of verified requests, by operation. */
static json_t *stats(const t_peer *p) {
  char url[128], *body = NULL;
  snprintf(url, sizeof url, "%s/__stats", p->url);
  cr_assert_eq(t_http_get(url, &body, NULL, NULL, 0), 200);
  json_error_t je;
  json_t *s = json_loads(body, 0, &je);
  cr_assert_not_null(s, "%s", je.text);
  free(body);
  return s;
}

static long checked(json_t *s, const char *op) {
  return (long)json_integer_value(json_object_get(json_object_get(s, "checked"), op));
}

static void exercise(const char *token) {
  t_peer p;
  const char *args[] = {"--access-key", AKID,      "--secret-key", SECRET, "--region",
                        "eu-west-1",    "--token", token,          NULL};
  t_peer_start(&p, "sigcheck.py", args);
  erpq_s3 *s3 = client(&p, SECRET, token, 64 * 1024);
  char err[256];

  /* PutObject with a payload (streaming, small). */
  const char *text = "a,b\n1,2\n";
  erpq_s3_upload *u;
  cr_assert_eq(erpq_s3_upload_begin(s3, "reports/1/2026-01/9-small (1).csv", "text/csv",
                                    "attachment; filename=\"small.csv\"", NULL, &u, err,
                                    sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_s3_upload_write(u, text, strlen(text), err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_s3_upload_finish(u, NULL, err, sizeof err), 0, "%s", err);

  /* Streaming multipart: Create, 3 UploadParts, Complete. */
  size_t n = 3 * 64 * 1024 - 5;
  unsigned char *data = t_data(n, 11);
  cr_assert_eq(erpq_s3_upload_begin(s3, "reports/1/2026-01/10-big ü.pdf", "application/pdf", NULL,
                                    NULL, &u, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(erpq_s3_upload_write(u, data, n, err, sizeof err), 0, "%s", err);
  erpq_s3_result r;
  cr_assert_eq(erpq_s3_upload_finish(u, &r, err, sizeof err), 0, "%s", err);
  cr_assert_eq(r.parts, 3);

  /* put_file: parallel parts read from a file. */
  char *path = t_write_temp(data, n);
  cr_assert_eq(
      erpq_s3_put_file(s3, "reports/file+plus.xlsx", path, NULL, NULL, NULL, &r, err, sizeof err),
      0, "%s", err);
  cr_assert_eq(r.parts, 3);

  /* GET, HEAD, DELETE. */
  size_t got;
  unsigned char *back = t_get(s3, "reports/1/2026-01/10-big ü.pdf", &got);
  cr_assert_eq(got, n);
  cr_assert_eq(memcmp(back, data, n), 0);
  erpq_s3_info h;
  cr_assert_eq(erpq_s3_head(s3, "reports/file+plus.xlsx", &h, err, sizeof err), 0, "%s", err);
  cr_assert(h.exists && h.size == n);
  cr_assert_eq(erpq_s3_delete(s3, "reports/file+plus.xlsx", err, sizeof err), 0, "%s", err);

  json_t *s = stats(&p);
  json_t *failures = json_object_get(s, "failures");
  cr_assert_eq(json_array_size(failures), 0, "signature failures: %s",
               json_string_value(json_array_get(failures, 0)));
  cr_assert_eq(checked(s, "PutObject"), 1);
  cr_assert_eq(checked(s, "CreateMultipartUpload"), 2);
  cr_assert_eq(checked(s, "UploadPart"), 6);
  cr_assert_eq(checked(s, "CompleteMultipartUpload"), 2);
  cr_assert_eq(checked(s, "GetObject"), 1);
  cr_assert_eq(checked(s, "HeadObject"), 1);
  cr_assert_eq(checked(s, "DeleteObject"), 1);
  json_decref(s);

  /* The wrong secret must be refused: the checker does check. */
  erpq_s3 *bad = client(&p, "not-the-secret", token, 64 * 1024);
  cr_assert_eq(erpq_s3_delete(bad, "reports/x", err, sizeof err), -EACCES);
  cr_assert(strstr(err, "SignatureDoesNotMatch") != NULL, "%s", err);
  cr_assert(strstr(err, "not-the-secret") == NULL, "the secret never appears in a message");
  s = stats(&p);
  cr_assert_eq(json_array_size(json_object_get(s, "failures")), 1);
  json_decref(s);

  erpq_s3_free(bad);
  unlink(path);
  free(path);
  free(back);
  free(data);
  erpq_s3_free(s3);
  t_peer_stop(&p);
}

Test(s3_sigcheck, long_term_credentials, .timeout = 60) { exercise(""); }

Test(s3_sigcheck, session_token, .timeout = 60) {
  /* STS tokens run past a kilobyte: make a token-shaped one that long. */
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char token[1601];
  size_t n = strlen(TOKEN);
  memcpy(token, TOKEN, n);
  for (size_t i = n; i < sizeof token - 3; i++)
    token[i] = b64[(i * 7) % 64];
  memcpy(token + sizeof token - 3, "==", 3);
  exercise(token);
}
