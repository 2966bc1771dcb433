/* erpq_fees_jobs.c - the fee family's descriptor, its context (database
 * settings and connection pool) and the generate-fees and create-fee
 * handlers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_mysql.h"
#include "fees/erpq_fees.h"
#include "fees/erpq_fees_internal.h"

static int h_generate(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                      size_t errlen) {
  fees_ctx *fc = erpq_job_userdata(ctx);
  fees_gen_req q;
  int rc = erpq_fees_parse_gen(data, &q, err, errlen);
  if (rc) {
    free(q.fs);
    erpq_job_discard(ctx);
    return rc;
  }
  q.batch = fc->batch;
  MYSQL *m = erpq_mysql_acquire(fc->pool, err, errlen);
  if (!m) {
    free(q.fs);
    return -ENOTCONN;
  }
  int bad_input = 0, lost = 0;
  rc = erpq_fees_generate(m, ctx, erpq_job_id(ctx), &q, result, &bad_input, &lost, err, errlen);
  erpq_mysql_release(fc->pool, m, lost || (rc && rc != -ENOENT));
  free(q.fs);
  if (rc && bad_input) erpq_job_discard(ctx);
  return rc;
}

static int h_create(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  fees_ctx *fc = erpq_job_userdata(ctx);
  fees_create_req q;
  int rc = erpq_fees_parse_create(data, &q, err, errlen);
  if (rc) {
    erpq_job_discard(ctx);
    return rc;
  }
  MYSQL *m = erpq_mysql_acquire(fc->pool, err, errlen);
  if (!m) return -ENOTCONN;
  int bad_input = 0, lost = 0;
  rc = erpq_fees_create(m, erpq_job_id(ctx), &q, result, &bad_input, &lost, err, errlen);
  erpq_mysql_release(fc->pool, m, lost);
  if (rc && bad_input) erpq_job_discard(ctx);
  return rc;
}

static int fees_init(void **out, const erpq_family_env *env, char *err, size_t errlen) {
  const char *url = erpq_args_env(env->args, "ERPQ_MYSQL_URL");
  if (!url || !*url)
    return erpq_fail(err, errlen, ERPQ_E_ARG,
                     "no database: set ERPQ_MYSQL_URL (or --mysql-url), for example "
                     "mysql://erpq:PASSWORD@127.0.0.1:3306/erp");
  fees_ctx *fc = calloc(1, sizeof *fc);
  if (!fc) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = erpq_mysql_url_parse(url, &fc->db, err, errlen);
  const char *b = erpq_args_env(env->args, "ERPQ_FEES_BATCH");
  fc->batch = b ? atoi(b) : 1000;
  if (!rc && env->concurrency > 0) {
    rc = erpq_mysql_pool_new(&fc->pool, &fc->db, env->concurrency);
    if (rc) erpq_fail(err, errlen, rc, "cannot create the MySQL connection pool");
  }
  if (rc) {
    free(fc);
    return rc;
  }
  *out = fc;
  return 0;
}

static void fees_shutdown(void *ctx) {
  fees_ctx *fc = ctx;
  if (!fc) return;
  erpq_mysql_pool_free(fc->pool);
  memset(&fc->db, 0, sizeof fc->db); /* The password. */
  free(fc);
}

static const erpq_opt fees_settings[] = {
    {"mysql-url", ERPQ_OPT_STRING, "ERPQ_MYSQL_URL", "URL",
     "the ERP's MariaDB/MySQL database: mysql://user:pass@host:port/db\n"
     "(?socket=/path for a unix socket; connect/read/write timeouts)",
     0, 0, NULL, ERPQ_OPT_SECRET},
    {"fees-batch", ERPQ_OPT_INT, "ERPQ_FEES_BATCH", "N", "students per generate-fees transaction",
     1, 100000, "1000", 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static const erpq_opt migrate_opts[] = {
    {"dir", ERPQ_OPT_STRING, "ERPQ_MIGRATIONS_DIR", "DIR",
     "the NNNN_*.sql files (default: migrations/ of the data directory)", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static const erpq_opt seed_opts[] = {
    {"students", ERPQ_OPT_INT, NULL, "N", "students per school", 1, 10000000, "200", 0},
    {"schools", ERPQ_OPT_INT, NULL, "N", "schools DEMO-001...", 1, 1000, "1", 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

static const erpq_family_cmd fees_commands[] = {
    {"migrate", "[--dir DIR]",
     "applies the MySQL migrations in order, once each, checksummed (ERPQ_MYSQL_URL)",
     migrate_opts, erpq_fees_migrate_cmd},
    {"seed-demo", "[--students N] [--schools N]",
     "builds demo schools DEMO-001.. with N students each (idempotent; migrate first)", seed_opts,
     erpq_fees_seed_cmd},
    {NULL, NULL, NULL, NULL, NULL}};

static const erpq_family_job fees_jobs[] = {
    {"generate-fees", h_generate}, {"create-fee", h_create}, {NULL, NULL}};

const erpq_family erpq_family_fees = {
    .name = "fees",
    .settings = fees_settings,
    .jobs = fees_jobs,
    .threads = 0,
    .init = fees_init,
    .shutdown = fees_shutdown,
    .commands = fees_commands,
};
