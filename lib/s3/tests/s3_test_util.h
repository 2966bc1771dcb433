/*
 * s3_test_util.h - helpers for lib/s3's integration tests (and
 * lib/storage's): the S3 configuration of the test s3rver, helper servers
 * written in Python (started on a free port of the task's range, stopped
 * by pid), plain HTTP fetches, test data and file comparison.
 *
 * Every helper fails the running Criterion test (cr_assert) instead of
 * returning an error; an integration test whose server address is missing
 * fails, it never skips. Not thread-safe (tests are single-threaded).
 */
#ifndef S3_TEST_UTIL_H
#define S3_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "erpq_s3.h"

/* Reads ERPQ_TEST_S3_{URL,BUCKET,ACCESS_KEY,SECRET_KEY,REGION} into an
 * erpq_s3_conf through erpq_s3_conf_read (path style, fast retries). An
 * endpoint may replace the URL (a proxy in front of s3rver). */
void t_s3_conf(erpq_s3_conf *c, const char *endpoint);
/* A client for the conf; free with erpq_s3_free. */
erpq_s3 *t_s3_new(const erpq_s3_conf *c);

/* A Python helper server: /usr/bin/python3 <source>/lib/s3/tests/<script>
 * --port-min B --port-max M args... (B..M from ERPQ_TEST_PORT_BASE/MAX);
 * waits for its "PORT n" line. The helper dies with the test process
 * (PR_SET_PDEATHSIG), so a failed assertion leaves no server behind. */
typedef struct t_peer {
  pid_t pid;
  int port;
  char url[64]; /* http://127.0.0.1:<port> */
} t_peer;
void t_peer_start(t_peer *p, const char *script, const char *const *args);
void t_peer_stop(t_peer *p);

/* A GET of url with libcurl (no signing). body (malloc'ed, may be NULL),
 * its length, and the Content-Disposition header (may be NULL). Returns
 * the HTTP status. */
long t_http_get(const char *url, char **body, size_t *len, char *disposition, size_t displen);

/* n bytes of deterministic pseudo-random data (malloc'ed). */
unsigned char *t_data(size_t n, unsigned seed);
/* Hex SHA-256 of n bytes (OpenSSL, independent of lib/s3). */
void t_sha256(const void *p, size_t n, char out[65]);
/* The whole file (malloc'ed), its size in *n. */
unsigned char *t_read_file(const char *path, size_t *n);
/* Writes n bytes to a new temp file; returns its path (malloc'ed). */
char *t_write_temp(const void *p, size_t n);
/* A unique object key under prefix. */
void t_key(char *out, size_t outlen, const char *prefix);
/* Downloads key with erpq_s3_get_to_file and returns the bytes. */
unsigned char *t_get(const erpq_s3 *s3, const char *key, size_t *n);

#endif
