#include "erpq_diag.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "erpq_err.h"

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

int erpq_diag_register(erpq_registry *r, const char *queue, int catch_all) {
  static const struct {
    const char *name;
    erpq_handler_fn fn;
  } t[] = {{"noop", diag_noop}, {"echo", diag_echo},         {"sleep", diag_sleep},
           {"cpu", diag_cpu},   {"fail", diag_fail},         {"progress", diag_progress}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    int rc = erpq_registry_add(r, queue, t[i].name, t[i].fn, NULL);
    if (rc) return rc;
  }
  return catch_all ? erpq_registry_add(r, queue, "*", diag_any, NULL) : 0;
}
