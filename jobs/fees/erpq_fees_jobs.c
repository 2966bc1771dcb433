/* erpq_fees_jobs.c - the generate-fees and create-fee handlers and the
 * shared connection pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "fees/erpq_fees.h"
#include "fees/erpq_fees_internal.h"
#include "fees/erpq_mysql.h"

static erpq_mysql_pool *g_pool;
static int g_pool_max;

static int no_db(char *err, size_t errlen) {
  return erpq_fail(err, errlen, -ENOTCONN, "ERPQ_MYSQL_URL is not set: the fee jobs need a MySQL/MariaDB database");
}

static int h_generate(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err, size_t errlen) {
  fees_gen_req q;
  int rc = erpq_fees_parse_gen(data, &q, err, errlen);
  if (rc) {
    free(q.fs);
    erpq_job_discard(ctx);
    return rc;
  }
  if (!g_pool) {
    free(q.fs);
    return no_db(err, errlen);
  }
  MYSQL *m = erpq_mysql_acquire(g_pool, err, errlen);
  if (!m) {
    free(q.fs);
    return -ENOTCONN;
  }
  int bad_input = 0, lost = 0;
  rc = erpq_fees_generate(m, ctx, erpq_job_id(ctx), &q, result, &bad_input, &lost, err, errlen);
  erpq_mysql_release(g_pool, m, lost || (rc && rc != -ENOENT));
  free(q.fs);
  if (rc && bad_input) erpq_job_discard(ctx);
  return rc;
}

static int h_create(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err, size_t errlen) {
  fees_create_req q;
  int rc = erpq_fees_parse_create(data, &q, err, errlen);
  if (rc) {
    erpq_job_discard(ctx);
    return rc;
  }
  if (!g_pool) return no_db(err, errlen);
  MYSQL *m = erpq_mysql_acquire(g_pool, err, errlen);
  if (!m) return -ENOTCONN;
  int bad_input = 0, lost = 0;
  rc = erpq_fees_create(m, erpq_job_id(ctx), &q, result, &bad_input, &lost, err, errlen);
  erpq_mysql_release(g_pool, m, lost);
  if (rc && bad_input) erpq_job_discard(ctx);
  return rc;
}

int erpq_fees_register(erpq_registry *r, const char *queue, int concurrency, char *err, size_t errlen) {
  const char *url = getenv("ERPQ_MYSQL_URL");
  if (url && *url && !g_pool) {
    erpq_mysql_conf c;
    int rc = erpq_mysql_url_parse(url, &c, err, errlen);
    if (rc) return rc;
    g_pool_max = concurrency > 0 ? concurrency : 1;
    rc = erpq_mysql_pool_new(&g_pool, &c, g_pool_max);
    if (rc) return erpq_fail(err, errlen, rc, "cannot create the MySQL pool");
  } else if (url && *url && g_pool) {
    /* another queue: nothing to do; the pool is shared */
  } else {
    erpq_log(ERPQ_LOG_WARN, "fees.no_database", "queue", queue, "note",
             "ERPQ_MYSQL_URL is not set: generate-fees and create-fee jobs will fail", NULL);
  }
  int rc = erpq_registry_add(r, queue, "generate-fees", h_generate, NULL);
  if (!rc) rc = erpq_registry_add(r, queue, "create-fee", h_create, NULL);
  if (rc) return erpq_fail(err, errlen, rc, "cannot register the fee jobs: %s", erpq_strerror(rc));
  return 0;
}

void erpq_fees_shutdown(void) {
  erpq_mysql_pool_free(g_pool);
  g_pool = NULL;
}
