/*
 * test_s3_bench.c - a 100 MiB streaming upload to s3rver with the
 * production part size (8 MiB): the object must be complete and its
 * SHA-256 right, and the test process must stay within a few parts of
 * memory (two part buffers plus curl's). Prints the throughput (MiB/s)
 * and the peak RSS (VmHWM) with --verbose.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "erpq_s3.h"
#include "erpq_util.h"
#include "s3_test_util.h"

#define TOTAL (100u * 1024u * 1024u)
#define CHUNK (64u * 1024u) /* What a CSV writer hands over at a time. */

/* Peak resident set of this process, in KiB (VmHWM). */
static long peak_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert_not_null(f);
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

static void sha_file(const char *path, char out[65]) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    EVP_DigestUpdate(ctx, buf, n);
  fclose(f);
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", md[i]);
}

Test(s3_bench, stream_100mib, .timeout = 300) {
  erpq_s3_conf c;
  t_s3_conf(&c, NULL);
  cr_assert_eq(c.part_size, 8 * 1024 * 1024, "the production default part size");
  erpq_s3 *s3 = t_s3_new(&c);
  char key[128], err[256];
  t_key(key, sizeof key, "reports/bench/100mib");
  unsigned char *chunk = t_data(CHUNK, 1);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  long rss_before = peak_rss_kib();

  int64_t t0 = erpq_mono_ms();
  erpq_s3_upload *u = NULL;
  cr_assert_eq(erpq_s3_upload_begin(s3, key, "text/csv", NULL, NULL, &u, err, sizeof err), 0, "%s",
               err);
  for (unsigned off = 0; off < TOTAL; off += CHUNK) {
    chunk[0] = (unsigned char)(off >> 16); /* Not the same chunk over and over. */
    chunk[1] = (unsigned char)(off >> 24);
    EVP_DigestUpdate(ctx, chunk, CHUNK);
    cr_assert_eq(erpq_s3_upload_write(u, chunk, CHUNK, err, sizeof err), 0, "%s", err);
  }
  erpq_s3_result r;
  cr_assert_eq(erpq_s3_upload_finish(u, &r, err, sizeof err), 0, "%s", err);
  int64_t ms = erpq_mono_ms() - t0;
  long rss = peak_rss_kib();

  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  char want[65];
  for (int i = 0; i < 32; i++)
    sprintf(want + 2 * i, "%02x", md[i]);
  cr_assert_eq(r.bytes, TOTAL);
  cr_assert_eq(r.parts, 13, "100 MiB in 8 MiB parts");
  cr_assert_str_eq(r.sha256, want);

  double mibs = (TOTAL / 1048576.0) / (ms / 1000.0);
  cr_log_info("100 MiB streamed in %lld ms: %.1f MiB/s; peak RSS %ld KiB (%ld KiB before)",
              (long long)ms, mibs, rss, rss_before);
  fprintf(stderr, "s3_bench: 100 MiB in %lld ms = %.1f MiB/s, peak RSS %.1f MiB\n", (long long)ms,
          mibs, rss / 1024.0);
  /* Two 8 MiB buffers and curl's; far below the object's 100 MiB. */
  cr_assert_lt(rss - rss_before, 40 * 1024, "peak RSS grew by %ld KiB", rss - rss_before);

  char path[] = "/tmp/erpq-s3-bench-XXXXXX", got[65];
  int fd = mkstemp(path);
  close(fd);
  uint64_t bytes = 0;
  cr_assert_eq(erpq_s3_get_to_file(s3, key, path, NULL, &bytes, err, sizeof err), 0, "%s", err);
  cr_assert_eq(bytes, TOTAL);
  sha_file(path, got);
  cr_assert_str_eq(got, want, "the stored object differs");
  unlink(path);
  cr_assert_eq(erpq_s3_delete(s3, key, err, sizeof err), 0, "%s", err);
  free(chunk);
  erpq_s3_free(s3);
}
