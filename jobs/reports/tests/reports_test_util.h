/*
 * reports_test_util.h - helpers of the reports family's integration tests
 * (test_reports_jobs.c, test_reports_faults.c): a database of the test's
 * own with the demo data (erpq-worker migrate + seed-demo), the real
 * erpq-worker serving `reports` with S3 (the test s3rver, or a fault
 * proxy in front of it) or a local directory, jobs added and waited for
 * with the real erpq-producer, objects fetched back, and the files read
 * by read_report.py (Python csv, openpyxl, pdftotext).
 *
 * Needs ERPQ_TEST_MYSQL_URL, ERPQ_TEST_REDIS_URL and ERPQ_TEST_S3_*; fails,
 * never skips, without them. Every helper fails the running test on
 * error (cr_assert). Single-threaded; one rt_env per test process.
 */
#ifndef REPORTS_TEST_UTIL_H
#define REPORTS_TEST_UTIL_H

#include <jansson.h>
#include <mysql.h>
#include <stdint.h>
#include <sys/types.h>

#include "erpq_s3.h"

typedef struct rt_env {
  char db[64], url[1024], prefix[64];
  char bin[1024], src[1024];
  char dir[256];       /* the test's scratch directory */
  char tmpdir[300];    /* the worker's ERPQ_REPORT_TMPDIR (empty after every job) */
  char storedir[300];  /* local storage */
  char key_prefix[80]; /* ERPQ_REPORT_KEY_PREFIX of the worker ("": the default, reports) */
  MYSQL *m;
  pid_t worker;
  int local;   /* the running worker stores locally */
  erpq_s3 *s3; /* straight to s3rver, for checks */
} rt_env;

/* Makes the database (migrated, seed-demo with students per school) and
 * the scratch directories. */
void rt_setup(rt_env *e, int students, int schools);
void rt_teardown(rt_env *e);

/* Starts erpq-worker --queue reports:2 with S3 at endpoint (NULL: the test
 * s3rver; "local": the local directory e->storedir) and the extra
 * "NAME=VALUE" settings of env (NULL-terminated, may be NULL). */
void rt_worker_start(rt_env *e, const char *endpoint, const char *const *env);
void rt_worker_stop(rt_env *e);

/* Adds job name with data (JSON text) and opts (JSON text or NULL), waits
 * up to timeout_s for it to finish, and returns its status view. */
json_t *rt_job(rt_env *e, const char *name, const char *data, const char *opts, int timeout_s);
/* Adds a job without waiting; returns its id (malloc'ed). */
char *rt_add(rt_env *e, const char *name, const char *data, const char *opts);
/* The job's status view now. */
json_t *rt_status(rt_env *e, const char *id);
/* Waits for job id to finish; returns its status view. */
json_t *rt_wait(rt_env *e, const char *id, int timeout_s);
/* The job's log lines (bull's <prefix>:reports:<id>:logs) as one string. */
char *rt_logs(rt_env *e, const char *id);
/* Runs a shell command line; its exit status; stdout into *out (may be NULL). */
int rt_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SQL on the test's own database. */
int64_t rt_q64(rt_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_exec(rt_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n more payments for school's April fees, spread over April (UTC), made
 * by one INSERT ... SELECT from MariaDB's sequence engine. */
void rt_add_payments(rt_env *e, int64_t school, int n);

/* The object of a completed job's result into a new temporary file;
 * returns its path (malloc'ed). */
char *rt_fetch(rt_env *e, const json_t *result);
/* Whether key exists in the test bucket (or the local directory). */
int rt_exists(rt_env *e, const char *key);
/* Files left in e->tmpdir and temporary ('.'-prefixed) files in the
 * local storage directory. */
int rt_tmp_left(rt_env *e);
/* Hex SHA-256 of a file. */
void rt_sha256_file(const char *path, char out[65]);
/* read_report.py's summary of a file (finds: NULL-terminated). */
json_t *rt_read(const char *format, const char *path, const char *kind, const char *const *finds);

/* Shorthands on a status view / summary. */
const char *rt_state(const json_t *view);
const json_t *rt_rv(const json_t *view);
int64_t rt_int(const json_t *o, const char *path); /* "a.b.c" */

#endif
