/*
 * erpq_testkit.h - test helpers for the network transports: child-process
 * test peers and a blocking HTTP request.
 *
 * Peers: a test starts a server script (Python stand-ins, the wrappers that
 * start maildev or postfix's smtp-sink) as a child with its stdin and
 * stdout on pipes. The child prints one line "READY key=value ..." when it
 * listens (port=N at least), answers one line per command line written to
 * its stdin, and exits when its stdin closes: so a test that dies (crash,
 * timeout kill) never leaves a server behind. test_peer_stop() closes
 * stdin, waits up to 10 s, then kills the child by its pid.
 *
 * Scripts are found under $ERPQ_SOURCE_DIR (set by erpq_test()); a missing
 * variable or a peer that does not get ready fails the test (cr_assert),
 * it never skips.
 *
 * Not thread-safe; for tests only. Every string returned is malloc'ed and
 * owned by the caller.
 */
#ifndef ERPQ_TESTKIT_H
#define ERPQ_TESTKIT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct test_peer {
  pid_t pid;
  int in_fd, out_fd; /* The child's stdin (we write), stdout (we read). */
  char ready[1024];  /* The READY line. */
  char buf[65536];   /* Unread bytes of the child's stdout. */
  size_t buflen;
} test_peer;

/* $ERPQ_SOURCE_DIR/rel (asserts the variable is set). */
char *test_source_path(const char *rel);
/* Starts argv[0] (a path) with argv; asserts it prints READY within
 * timeout_ms. */
void test_peer_start(test_peer *p, char *const argv[], int timeout_ms);
/* The value of key in the READY line (malloc'ed), or NULL. */
char *test_peer_field(const test_peer *p, const char *key);
int test_peer_port(const test_peer *p);
/* Writes line (a newline is added) and returns the reply line (asserts one
 * comes within timeout_ms). */
char *test_peer_ask(test_peer *p, const char *line, int timeout_ms);
void test_peer_stop(test_peer *p);

/* A blocking HTTP request with libcurl: method, url, optional body
 * (Content-Type given by ctype, may be NULL). Returns the response body;
 * *status gets the HTTP status (0 when no answer). */
char *test_http(const char *method, const char *url, const char *ctype, const char *body,
                long *status);

/* Peak resident set size of this process, in KiB (VmHWM). */
long test_peak_rss_kib(void);
/* CPU time (user + system) of this process so far, in milliseconds. */
double test_cpu_ms(void);

#endif
