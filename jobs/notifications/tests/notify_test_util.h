/*
 * notify_test_util.h - helpers for the notifications tests.
 *
 * The tests check our builders against reference implementations that run
 * as separate processes: Node (sms-segments-calculator from
 * tests/interop/node_modules) and Debian's /usr/bin/python3 (email,
 * phonenumbers). nt_run() feeds a command its input through a temporary
 * file and collects its standard output; the command's standard error goes
 * to the test's, so a failing reference explains itself. Every helper fails
 * the test (cr_assert) instead of returning an error. Test code only: it
 * reads the environment directly.
 */
#ifndef NOTIFY_TEST_UTIL_H
#define NOTIFY_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* $ERPQ_SOURCE_DIR (set by ctest); the test fails when it is missing. */
const char *nt_source_dir(void);
/* A required environment variable (the test fails when it is unset). */
const char *nt_env(const char *name);

/* Runs `cmd` through /bin/sh with input (inlen bytes, may be NULL) on its
 * standard input. Returns its standard output (malloc'ed, NUL-terminated,
 * length in *outlen if non-NULL) and its exit status in *status. */
char *nt_run(const char *cmd, const void *input, size_t inlen, size_t *outlen, int *status);

/* Writes data to a new temporary file and returns its path (malloc'ed). */
char *nt_temp_file(const void *data, size_t len, const char *suffix);

/* The seed of a seeded test: $ERPQ_TEST_SEED or one drawn now; printed so
 * a failure can be replayed. */
uint64_t nt_seed(const char *test);
/* splitmix64 */
uint64_t nt_rand(uint64_t *state);
/* A uniform number in [0, n). */
size_t nt_below(uint64_t *state, size_t n);

#endif
