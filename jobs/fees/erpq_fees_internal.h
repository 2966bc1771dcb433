/* erpq_fees_internal.h - the fee family's parts, shared by its files and
 * the tests. */
#ifndef ERPQ_FEES_INTERNAL_H
#define ERPQ_FEES_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "erpq_args.h"
#include "erpq_family.h"
#include "erpq_job.h"
#include "erpq_mysql.h"

#define ERPQ_FEES_MAX_AMOUNT 1000000000000LL /* 10^12 minor units: no int64 overflow in bp math */

typedef struct fees_gen_req {
  int64_t school, klass; /* klass 0: whole school */
  char period[8], due[11];
  int64_t *fs; /* feeStructureIds (malloc'ed) or NULL */
  size_t nfs;
  int no_outbox; /* seed-demo only: no fees.generated event */
  int batch;     /* students per transaction; 0: 1000 */
} fees_gen_req;

/* The family's context (erpq_family.h): the database and, in the worker,
 * the connection pool its handlers share. */
typedef struct fees_ctx {
  erpq_mysql_conf db;
  erpq_mysql_pool *pool; /* NULL in a command. */
  int batch;
} fees_ctx;

/* The family's commands (erpq_fees_cli.c). */
int erpq_fees_migrate_cmd(void *ctx, const erpq_family_env *env, const erpq_args *args);
int erpq_fees_seed_cmd(void *ctx, const erpq_family_env *env, const erpq_args *args);

typedef struct fees_create_req {
  int64_t student, structure, amount;
  char period[8], due[11];
} fees_create_req;

int erpq_fees_valid_date(const char *s);
int erpq_fees_valid_period(const char *s);
int erpq_fees_parse_gen(const json_t *data, fees_gen_req *r, char *err, size_t errlen);
int erpq_fees_parse_create(const json_t *data, fees_create_req *r, char *err, size_t errlen);
int64_t erpq_fees_percent_of(int64_t gross, int64_t bp);
int64_t erpq_fees_concession(int64_t gross, const int64_t *pct_bp, size_t npct, const int64_t *fixed,
                             size_t nfixed);

/* The fee run on connection m (ctx may be NULL: no progress). On failure
 * *bad_input says the input can never succeed, *lost that the connection
 * is gone. */
int erpq_fees_generate(MYSQL *m, erpq_jobctx *ctx, const char *job_id, const fees_gen_req *q,
                       json_t **result, int *bad_input, int *lost, char *err, size_t errlen);
int erpq_fees_create(MYSQL *m, const char *job_id, const fees_create_req *q, json_t **result,
                     int *bad_input, int *lost, char *err, size_t errlen);

/* Applies the migrations of dir (NNNN_name.sql) in order, checksummed. */
int erpq_fees_migrate(MYSQL *m, const char *dir, int verbose, char *err, size_t errlen);

#endif
