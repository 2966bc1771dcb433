/*
 * test_s3.c - the S3 client against s3rver (ERPQ_TEST_S3_*, path style,
 * bucket "reports"): single PUT, streaming multipart upload, file upload,
 * HEAD/GET/DELETE, overwrite, one client shared by several threads
 * uploading at once, and presigned GETs fetched with libcurl (file name
 * honoured, expired URL refused: s3rver enforces expiry).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erpq_s3.h"
#include "erpq_sigv4.h"
#include "s3_test_util.h"

#define SMALL_PART (64 * 1024) /* Below S3's minimum: tests only (s3rver allows it). */

/* Streams data in chunks of varying size; returns the result. */
static erpq_s3_result stream(const erpq_s3 *s3, const char *key, const unsigned char *data,
                             size_t n, const char *type, const char *disp) {
  erpq_s3_upload *u = NULL;
  char err[256];
  cr_assert_eq(erpq_s3_upload_begin(s3, key, type, disp, NULL, &u, err, sizeof err), 0, "%s", err);
  size_t off = 0, step = 1;
  while (off < n) {
    size_t k = step < n - off ? step : n - off;
    cr_assert_eq(erpq_s3_upload_write(u, data + off, k, err, sizeof err), 0, "%s", err);
    off += k;
    step = step * 7 % 40009 + 1; /* 1 byte .. ~40 KB */
  }
  erpq_s3_result r;
  cr_assert_eq(erpq_s3_upload_finish(u, &r, err, sizeof err), 0, "%s", err);
  return r;
}

Test(s3, small_object_is_one_put) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *s3 = t_s3_new(&c);
  char key[128], sha[65], err[256];
  t_key(key, sizeof key, "reports/1/2026-01");
  const char *text = "id,amount\n1,1500\n2,2500\n";
  erpq_s3_result r = stream(s3, key, (const unsigned char *)text, strlen(text), "text/csv", NULL);
  cr_assert_eq(r.parts, 0, "a small object must be one PutObject");
  cr_assert_eq(r.bytes, strlen(text));
  t_sha256(text, strlen(text), sha);
  cr_assert_str_eq(r.sha256, sha);
  cr_assert_gt(strlen(r.etag), 0);
  cr_assert_eq(r.etag[0] != '"', 1, "the ETag comes without quotes");

  erpq_s3_info h;
  cr_assert_eq(erpq_s3_head(s3, key, &h, err, sizeof err), 0, "%s", err);
  cr_assert(h.exists);
  cr_assert_eq(h.size, strlen(text));
  cr_assert_str_eq(h.content_type, "text/csv");
  cr_assert_str_eq(h.etag, r.etag);
  size_t n;
  unsigned char *back = t_get(s3, key, &n);
  cr_assert_eq(n, strlen(text));
  cr_assert_eq(memcmp(back, text, n), 0);
  free(back);
  erpq_s3_free(s3);
}

Test(s3, empty_object) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *s3 = t_s3_new(&c);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/empty");
  erpq_s3_result r = stream(s3, key, (const unsigned char *)"", 0, NULL, NULL);
  cr_assert_eq(r.bytes, 0);
  cr_assert_str_eq(r.sha256, ERPQ_SIGV4_EMPTY_SHA256);
  erpq_s3_info h;
  cr_assert_eq(erpq_s3_head(s3, key, &h, err, sizeof err), 0, "%s", err);
  cr_assert(h.exists && h.size == 0);
  cr_assert_str_eq(h.content_type, "application/octet-stream");
  erpq_s3_free(s3);
}

Test(s3, multipart_stream_equals_single_put) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *single = t_s3_new(&c);
  c.part_size = SMALL_PART;
  erpq_s3 *multi = t_s3_new(&c);
  size_t n = 5 * SMALL_PART + 12345;
  unsigned char *data = t_data(n, 7);
  char sha[65], k1[128], k2[128];
  t_sha256(data, n, sha);
  t_key(k1, sizeof k1, "reports/single");
  t_key(k2, sizeof k2, "reports/multi");

  erpq_s3_result a = stream(single, k1, data, n, "application/pdf", NULL);
  erpq_s3_result b =
      stream(multi, k2, data, n, "application/pdf", "attachment; filename=\"x.pdf\"");
  cr_assert_eq(a.parts, 0);
  cr_assert_eq(b.parts, 6);
  cr_assert_eq(a.bytes, n);
  cr_assert_eq(b.bytes, n);
  cr_assert_str_eq(a.sha256, sha);
  cr_assert_str_eq(b.sha256, sha);

  size_t n1, n2;
  unsigned char *d1 = t_get(single, k1, &n1), *d2 = t_get(single, k2, &n2);
  cr_assert_eq(n1, n);
  cr_assert_eq(n2, n);
  cr_assert_eq(memcmp(d1, data, n), 0, "single PUT differs");
  cr_assert_eq(memcmp(d2, d1, n), 0, "multipart object differs from the single PUT");
  char got[65];
  t_sha256(d2, n2, got);
  cr_assert_str_eq(got, b.sha256);
  char err[256];
  erpq_s3_info h;
  cr_assert_eq(erpq_s3_head(single, k2, &h, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(h.content_type, "application/pdf");
  free(d1);
  free(d2);
  free(data);
  erpq_s3_free(single);
  erpq_s3_free(multi);
}

Test(s3, exact_part_size_is_one_put) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  c.part_size = SMALL_PART;
  erpq_s3 *s3 = t_s3_new(&c);
  unsigned char *data = t_data(SMALL_PART, 3);
  char key[128];
  t_key(key, sizeof key, "reports/exact");
  erpq_s3_result r = stream(s3, key, data, SMALL_PART, NULL, NULL);
  cr_assert_eq(r.parts, 0, "exactly one part's worth is still one PutObject");
  r = stream(s3, key, data, SMALL_PART - 1, NULL, NULL); /* Overwrite, shorter. */
  size_t n;
  unsigned char *back = t_get(s3, key, &n);
  cr_assert_eq(n, SMALL_PART - 1, "the second write replaced the first");
  cr_assert_eq(memcmp(back, data, n), 0);
  free(back);
  free(data);
  erpq_s3_free(s3);
}

Test(s3, put_file_single_and_multipart) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  c.part_size = SMALL_PART;
  erpq_s3 *s3 = t_s3_new(&c);
  size_t sizes[] = {0, 1000, SMALL_PART, 9 * SMALL_PART + 1};
  int want_parts[] = {0, 0, 0, 10};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *data = t_data(sizes[i], (unsigned)i);
    char *path = t_write_temp(data, sizes[i]);
    char key[128], err[256], sha[65];
    t_key(key, sizeof key, "reports/file");
    erpq_s3_result r;
    cr_assert_eq(erpq_s3_put_file(s3, key, path, "application/vnd.ms-excel", NULL, NULL, &r, err,
                                  sizeof err),
                 0, "%s", err);
    cr_assert_eq(r.parts, want_parts[i], "size %zu", sizes[i]);
    cr_assert_eq(r.bytes, sizes[i]);
    t_sha256(data, sizes[i], sha);
    cr_assert_str_eq(r.sha256, sha);
    size_t n;
    unsigned char *back = t_get(s3, key, &n);
    cr_assert_eq(n, sizes[i]);
    cr_assert_eq(memcmp(back, data, n), 0, "size %zu", sizes[i]);
    free(back);
    free(data);
    unlink(path);
    free(path);
  }
  char err[256];
  cr_assert_eq(erpq_s3_put_file(s3, "reports/x", "/nonexistent/file", NULL, NULL, NULL, NULL, err,
                                sizeof err),
               -ENOENT);
  erpq_s3_free(s3);
}

Test(s3, head_get_delete_missing) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *s3 = t_s3_new(&c);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/missing");
  erpq_s3_info h;
  cr_assert_eq(erpq_s3_head(s3, key, &h, err, sizeof err), 0, "%s", err);
  cr_assert_eq(h.exists, 0);
  char path[] = "/tmp/erpq-s3-missing-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  cr_assert_eq(erpq_s3_get_to_file(s3, key, path, NULL, NULL, err, sizeof err), -ENOENT);
  cr_assert(strstr(err, "404") != NULL, "%s", err);
  cr_assert_eq(access(path, F_OK), -1, "a failed download leaves no file");
  cr_assert_eq(erpq_s3_delete(s3, key, err, sizeof err), 0, "%s", err);

  stream(s3, key, (const unsigned char *)"x", 1, NULL, NULL);
  cr_assert_eq(erpq_s3_head(s3, key, &h, err, sizeof err), 0);
  cr_assert(h.exists);
  cr_assert_eq(erpq_s3_delete(s3, key, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_s3_head(s3, key, &h, err, sizeof err), 0);
  cr_assert_eq(h.exists, 0, "deleted");
  erpq_s3_free(s3);
}

Test(s3, keys_with_odd_characters) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *s3 = t_s3_new(&c);
  const char *keys[] = {"reports/1/2026-01/42-Fee report (final).csv", "reports/ünï/日本.pdf",
                        "reports/plus+sign~tilde", "reports/semi;colon=eq&amp"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char body[64];
    snprintf(body, sizeof body, "object %zu", i);
    stream(s3, keys[i], (const unsigned char *)body, strlen(body), "text/plain", NULL);
    size_t n;
    unsigned char *back = t_get(s3, keys[i], &n);
    cr_assert_eq(n, strlen(body), "%s", keys[i]);
    cr_assert_eq(memcmp(back, body, n), 0, "%s", keys[i]);
    free(back);
  }
  erpq_s3_free(s3);
}

Test(s3, presigned_get) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  erpq_s3 *s3 = t_s3_new(&c);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/7/2026-02/presigned report");
  const char *text = "name,total\nA,1\n";
  stream(s3, key, (const unsigned char *)text, strlen(text), "text/csv", NULL);

  const char *name = "Relevé de frais 2026.csv";
  char *url = NULL;
  cr_assert_eq(erpq_s3_presign_get(s3, key, name, 900, (int64_t)time(NULL), &url, err, sizeof err),
               0, "%s", err);
  cr_assert(strncmp(url, c.endpoint, strlen(c.endpoint)) == 0, "%s", url);
  char *body = NULL, disp[512];
  size_t n;
  long st = t_http_get(url, &body, &n, disp, sizeof disp);
  cr_assert_eq(st, 200, "presigned GET: HTTP %ld %s", st, body ? body : "");
  cr_assert_eq(n, strlen(text));
  cr_assert_eq(memcmp(body, text, n), 0);
  erpq_buf want = {0};
  erpq_sigv4_content_disposition(name, &want);
  cr_assert_str_eq(disp, want.s, "the download carries the file name asked for");
  cr_assert(strstr(disp, "filename*=UTF-8''Relev%C3%A9%20de%20frais%202026.csv") != NULL);
  erpq_buf_free(&want);
  free(body);
  free(url);

  /* Signed two minutes ago for one minute: expired. */
  cr_assert_eq(
      erpq_s3_presign_get(s3, key, name, 60, (int64_t)time(NULL) - 120, &url, err, sizeof err), 0,
      "%s", err);
  st = t_http_get(url, &body, &n, NULL, 0);
  cr_assert_eq(st, 403, "an expired URL must be refused, got HTTP %ld", st);
  cr_assert(body && strstr(body, "expired"), "%s", body ? body : "");
  free(body);
  free(url);
  erpq_s3_free(s3);
}

/* One client, four threads, each streaming its own multipart object. */
struct worker {
  const erpq_s3 *s3;
  char key[128];
  unsigned char *data;
  size_t n;
  int rc;
  erpq_s3_result r;
  char err[256];
};

static void *upload_thread(void *arg) {
  struct worker *w = arg;
  erpq_s3_upload *u = NULL;
  w->rc = erpq_s3_upload_begin(w->s3, w->key, NULL, NULL, NULL, &u, w->err, sizeof w->err);
  for (size_t off = 0; w->rc == 0 && off < w->n; off += 4096)
    w->rc = erpq_s3_upload_write(u, w->data + off, w->n - off < 4096 ? w->n - off : 4096, w->err,
                                 sizeof w->err);
  if (w->rc == 0)
    w->rc = erpq_s3_upload_finish(u, &w->r, w->err, sizeof w->err);
  else if (u)
    erpq_s3_upload_abort(u);
  return NULL;
}

Test(s3, one_client_many_threads, .timeout = 60) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  c.part_size = SMALL_PART;
  erpq_s3 *s3 = t_s3_new(&c);
  struct worker w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].s3 = s3;
    t_key(w[i].key, sizeof w[i].key, "reports/threads");
    w[i].n = (size_t)(3 + i) * SMALL_PART + (size_t)i * 1000;
    w[i].data = t_data(w[i].n, 100 + (unsigned)i);
    cr_assert_eq(pthread_create(&th[i], NULL, upload_thread, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(w[i].rc, 0, "thread %d: %s", i, w[i].err);
    cr_assert_eq(w[i].r.parts, (int)((w[i].n + SMALL_PART - 1) / SMALL_PART));
    size_t n;
    unsigned char *back = t_get(s3, w[i].key, &n);
    cr_assert_eq(n, w[i].n);
    cr_assert_eq(memcmp(back, w[i].data, n), 0, "thread %d's object differs", i);
    free(back);
    free(w[i].data);
  }
  erpq_s3_free(s3);
}
