#include "erpq_diag.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"
#include "erpq_util.h"

/* Reads an optional non-negative integer field; returns -1 if it is there
 * but not such a number. */
static int opt_int(const json_t *data, const char *key, int64_t dflt, int64_t *out) {
  const json_t *v = json_is_object(data) ? json_object_get(data, key) : NULL;
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
  *out = json_integer_value(v);
  return 0;
}

static int bad_field(erpq_jobctx *ctx, char *err, size_t errlen, const char *field) {
  erpq_job_discard(ctx);
  return erpq_fail(err, errlen, -EINVAL, "data.%s must be a non-negative integer", field);
}

static int diag_noop(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                     size_t errlen) {
  (void)ctx, (void)data, (void)err, (void)errlen;
  *result = json_pack("{s:b}", "ok", 1);
  return 0;
}

static int diag_echo(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                     size_t errlen) {
  (void)ctx, (void)err, (void)errlen;
  *result = json_deep_copy(data);
  return 0;
}

static int diag_sleep(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                      size_t errlen) {
  int64_t ms;
  if (opt_int(data, "ms", 0, &ms)) return bad_field(ctx, err, errlen, "ms");
  int rc = erpq_job_sleep(ctx, ms);
  if (rc) return erpq_fail(err, errlen, rc, "sleep cancelled");
  *result = json_pack("{s:I}", "slept", (json_int_t)ms);
  return 0;
}

static int64_t cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int diag_cpu(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  int64_t ms;
  if (opt_int(data, "ms", 0, &ms)) return bad_field(ctx, err, errlen, "ms");
  int64_t end = cpu_ms() + ms;
  volatile uint64_t x = 0;
  uint64_t spins = 0;
  while (cpu_ms() < end) {
    for (int i = 0; i < 100000; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    spins++;
    if (erpq_job_cancelled(ctx)) return erpq_fail(err, errlen, -ECANCELED, "cpu job cancelled");
  }
  *result = json_pack("{s:I,s:I}", "ms", (json_int_t)ms, "spins", (json_int_t)spins);
  return 0;
}

static int diag_fail(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                     size_t errlen) {
  (void)result;
  const json_t *m = json_is_object(data) ? json_object_get(data, "message") : NULL;
  if (m && !json_is_string(m)) {
    erpq_job_discard(ctx);
    return erpq_fail(err, errlen, -EINVAL, "data.message must be a string");
  }
  const char *msg = m ? json_string_value(m) : "diag failure";
  const json_t *t = json_is_object(data) ? json_object_get(data, "times") : NULL;
  if (t) {
    if (!json_is_integer(t) || json_integer_value(t) < 0) return bad_field(ctx, err, errlen, "times");
    if (erpq_job_attempts_made(ctx) >= json_integer_value(t)) {
      *result = json_pack("{s:b,s:i}", "ok", 1, "attempts", erpq_job_attempts_made(ctx) + 1);
      return 0;
    }
  }
  return erpq_fail(err, errlen, -EIO, "%s", msg);
}

static int diag_progress(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                         size_t errlen) {
  int64_t steps;
  if (opt_int(data, "steps", 1, &steps)) return bad_field(ctx, err, errlen, "steps");
  for (int64_t i = 1; i <= steps; i++) {
    json_t *p = json_integer(i);
    erpq_job_progress(ctx, p);
    json_decref(p);
    char line[64];
    snprintf(line, sizeof line, "step %lld of %lld", (long long)i, (long long)steps);
    erpq_job_log(ctx, line);
  }
  *result = json_pack("{s:I}", "steps", (json_int_t)steps);
  return 0;
}

static int diag_any(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                    size_t errlen) {
  (void)err, (void)errlen;
  *result = json_pack("{s:s,s:O}", "name", erpq_job_name(ctx), "data", data);
  return 0;
}

/* throttle {"until": ms}: before `until` (epoch ms) the job goes back to
 * delayed until then WITHOUT using an attempt (erpq_job_delay), as a
 * handler does when a provider throttles; afterwards it completes with the
 * attempts made so far, which stay 0. */
static int diag_throttle(erpq_jobctx *ctx, const json_t *data, json_t **result, char *err,
                         size_t errlen) {
  int64_t until;
  if (opt_int(data, "until", 0, &until)) return bad_field(ctx, err, errlen, "until");
  int64_t now = erpq_now_ms();
  if (now < until) return erpq_job_delay(ctx, until - now, "diag throttle");
  *result = json_pack("{s:b,s:i}", "ok", 1, "attemptsMade", erpq_job_attempts_made(ctx));
  return 0;
}

static const erpq_family_job diag_jobs[] = {
    {"noop", diag_noop}, {"echo", diag_echo},         {"sleep", diag_sleep},       {"cpu", diag_cpu},
    {"fail", diag_fail}, {"progress", diag_progress}, {"throttle", diag_throttle}, {NULL, NULL}};

int erpq_diag_register(erpq_registry *r, const char *queue, int catch_all) {
  for (const erpq_family_job *j = diag_jobs; j->name; j++) {
    int rc = erpq_registry_add(r, queue, j->name, j->fn, NULL);
    if (rc) return rc;
  }
  return catch_all ? erpq_registry_add(r, queue, "*", diag_any, NULL) : 0;
}

/* The context is just the --diag-catch-all setting. */
typedef struct diag_ctx {
  int catch_all;
} diag_ctx;

static int diag_init(void **out, const erpq_family_env *env, char *err, size_t errlen) {
  diag_ctx *d = calloc(1, sizeof *d);
  if (!d) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  d->catch_all = erpq_args_env(env->args, "ERPQ_DIAG_CATCH_ALL") != NULL;
  *out = d;
  return 0;
}

static int diag_bind(void *ctx, erpq_binder *b, char *err, size_t errlen) {
  (void)err, (void)errlen;
  const diag_ctx *d = ctx;
  int rc = 0;
  for (const erpq_family_job *j = diag_jobs; j->name && !rc; j++)
    rc = erpq_binder_handle(b, j->name, j->fn, ctx);
  if (!rc && d->catch_all) rc = erpq_binder_handle(b, "*", diag_any, ctx);
  return rc;
}

static void diag_shutdown(void *ctx) { free(ctx); }

static const erpq_opt diag_settings[] = {
    {"diag-catch-all", ERPQ_OPT_FLAG, "ERPQ_DIAG_CATCH_ALL", NULL,
     "diag queues also take any other job name ('*': returns {name, data})", 0, 0, NULL, 0},
    {NULL, 0, NULL, NULL, NULL, 0, 0, NULL, 0}};

const erpq_family erpq_family_diag = {
    .name = "diag",
    .settings = diag_settings,
    .jobs = diag_jobs,
    .init = diag_init,
    .bind = diag_bind,
    .shutdown = diag_shutdown,
};
