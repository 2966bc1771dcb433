/* erpq_notify_send.c - the life of one send: identity, the cancellation
 * registry, stage changes and the end of its job (erpq_notify_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"
#include "erpq_notify_internal.h"
#include "erpq_util.h"

/* ---- Registry: job context -> send (linear probing, backward-shift delete) ---- */

struct nt_reg_slot {
  const erpq_jobctx *key;
  nt_send *val;
};

static size_t slot_of(const erpq_jobctx *k, size_t cap) {
  uint64_t h = (uint64_t)(uintptr_t)k;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return (size_t)(h & (cap - 1));
}

static int reg_grow(nt_ctx *nc) {
  size_t cap = nc->reg_cap ? nc->reg_cap * 2 : 1024;
  struct nt_reg_slot *t = calloc(cap, sizeof *t);
  if (!t)
    return -ENOMEM;
  for (size_t i = 0; i < nc->reg_cap; i++) {
    if (!nc->reg[i].key)
      continue;
    size_t j = slot_of(nc->reg[i].key, cap);
    while (t[j].key)
      j = (j + 1) & (cap - 1);
    t[j] = nc->reg[i];
  }
  free(nc->reg);
  nc->reg = t;
  nc->reg_cap = cap;
  return 0;
}

/* Under reg_mu. */
static int reg_put(nt_ctx *nc, nt_send *s) {
  if ((nc->reg_n + 1) * 2 > nc->reg_cap && reg_grow(nc))
    return -ENOMEM;
  size_t j = slot_of(s->job, nc->reg_cap);
  while (nc->reg[j].key)
    j = (j + 1) & (nc->reg_cap - 1);
  nc->reg[j].key = s->job;
  nc->reg[j].val = s;
  nc->reg_n++;
  return 0;
}

static size_t reg_find(nt_ctx *nc, const erpq_jobctx *k) {
  if (!nc->reg_cap)
    return SIZE_MAX;
  size_t j = slot_of(k, nc->reg_cap);
  while (nc->reg[j].key) {
    if (nc->reg[j].key == k)
      return j;
    j = (j + 1) & (nc->reg_cap - 1);
  }
  return SIZE_MAX;
}

static void reg_del(nt_ctx *nc, const erpq_jobctx *k) {
  size_t i = reg_find(nc, k);
  if (i == SIZE_MAX)
    return;
  size_t cap = nc->reg_cap;
  nc->reg[i].key = NULL;
  nc->reg[i].val = NULL;
  nc->reg_n--;
  for (size_t j = (i + 1) & (cap - 1); nc->reg[j].key; j = (j + 1) & (cap - 1)) {
    size_t home = slot_of(nc->reg[j].key, cap);
    /* Move j back to i when its home is not in (i, j]. */
    int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      nc->reg[i] = nc->reg[j];
      nc->reg[j].key = NULL;
      nc->reg[j].val = NULL;
      i = j;
    }
  }
}

void nt_registry_free(nt_ctx *nc) {
  free(nc->reg);
  nc->reg = NULL;
  nc->reg_cap = nc->reg_n = 0;
}

/* ---- Sends -------------------------------------------------------------------------- */

nt_send *nt_send_new(nt_ctx *nc, erpq_jobctx *job, nt_channel ch) {
  nt_send *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->nc = nc;
  s->job = job;
  s->ch = ch;
  atomic_init(&s->cancelled, 0);
  return s;
}

void nt_send_free(nt_send *s) {
  if (!s)
    return;
  free(s->msg);
  for (size_t i = 0; i < s->nrcpt; i++)
    free(s->rcpt[i]);
  free(s->rcpt);
  free(s->body);
  free(s);
}

void nt_send_identity(nt_send *s, const char *dedup_key) {
  snprintf(s->queue, sizeof s->queue, "%s", erpq_job_queue(s->job));
  snprintf(s->job_id, sizeof s->job_id, "%s", erpq_job_id(s->job));
  /* The job's own identity: bull ids are unique within a prefix and a
   * queue, and several prefixes may share one database. It is the owner of
   * the claim, and the dedup key when the data gives none. */
  snprintf(s->owner, sizeof s->owner, "%s:%s:%s", erpq_job_prefix(s->job), s->queue, s->job_id);
  snprintf(s->dedup_key, sizeof s->dedup_key, "%s", s->owner);
  if (dedup_key && *dedup_key)
    snprintf(s->dedup_key, sizeof s->dedup_key, "%s", dedup_key);
  nt_sha256_hex(s->dedup_key, strlen(s->dedup_key), s->dedup_hash);
  int attempts = 1;
  const json_t *o = erpq_job_opts(s->job);
  const json_t *a = o ? json_object_get(o, "attempts") : NULL;
  if (json_is_integer(a) && json_integer_value(a) > 1)
    attempts = (int)json_integer_value(a);
  s->final_attempt = erpq_job_attempts_made(s->job) + 1 >= attempts;
}

static void on_cancel(erpq_jobctx *job, void *ud) {
  nt_ctx *nc = ud;
  pthread_mutex_lock(&nc->reg_mu);
  size_t i = reg_find(nc, job);
  nt_send *s = i == SIZE_MAX ? NULL : nc->reg[i].val;
  nt_stage st = NT_STAGE_NEW;
  uint64_t tid = 0;
  nt_channel ch = NT_EMAIL;
  if (s) {
    atomic_store(&s->cancelled, 1);
    st = s->stage;
    tid = s->tid;
    ch = s->ch;
  }
  pthread_mutex_unlock(&nc->reg_mu);
  if (!s)
    return;
  /* Only ids and the context are used from here: the send may be gone. */
  if (st == NT_STAGE_FLIGHT && tid) {
    if (ch == NT_EMAIL && nc->smtp)
      erpq_smtp_cancel(nc->smtp, tid);
    if (ch == NT_SMS && nc->sms)
      erpq_sms_cancel(nc->sms, tid);
  }
  if (nc->pipe[ch])
    nt_pipe_wake(nc->pipe[ch]);
  if (nc->ledger)
    nt_ledger_wake(nc->ledger);
}

void nt_send_start(nt_send *s) {
  nt_ctx *nc = s->nc;
  pthread_mutex_lock(&nc->reg_mu);
  s->stage = NT_STAGE_CLAIM;
  int rc = reg_put(nc, s);
  pthread_mutex_unlock(&nc->reg_mu);
  if (rc) {
    /* Out of memory: without the registry a cancellation could not reach
     * this send; end it now (a retry will come). */
    erpq_job_finish(s->job, -ENOMEM, NULL, "out of memory (send registry)");
    nt_send_free(s);
    return;
  }
  erpq_job_on_cancel(s->job, on_cancel, nc);
  nt_ledger_claim(nc->ledger, s);
}

int nt_send_stage(nt_send *s, nt_stage st) {
  pthread_mutex_lock(&s->nc->reg_mu);
  s->stage = st;
  int c = atomic_load(&s->cancelled);
  pthread_mutex_unlock(&s->nc->reg_mu);
  return c;
}

void nt_send_finish(nt_send *s, int rc, json_t *result, const char *err) {
  nt_ctx *nc = s->nc;
  pthread_mutex_lock(&nc->reg_mu);
  reg_del(nc, s->job);
  pthread_mutex_unlock(&nc->reg_mu);
  erpq_job_finish(s->job, rc, result, err);
  nt_send_free(s);
}

void nt_send_delay(nt_send *s, int64_t ms, const char *why) {
  unsigned char r[2] = {0, 0};
  RAND_bytes(r, 2);
  /* Up to a second of jitter, so that delayed jobs do not all come back in
   * the same millisecond. */
  int64_t jitter = ((int64_t)r[0] << 8 | r[1]) % 1000;
  int rc = erpq_job_delay(s->job, (ms > 0 ? ms : 1) + jitter, why);
  nt_send_finish(s, rc, NULL, NULL);
}

/* ---- Shared field checks -------------------------------------------------------------- */

static int name_ok(const char *s, size_t max) {
  size_t n = strlen(s);
  if (!n || n > max)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_'))
      return 0;
  return 1;
}

int nt_common_fields(const json_t *data, int64_t *school, const char **tmpl, const char **locale,
                     const char **dedup, char *err, size_t errlen) {
  if (!json_is_object(data))
    return erpq_fail(err, errlen, -EINVAL, "data must be a JSON object");
  const json_t *v = json_object_get(data, "schoolId");
  if (!json_is_integer(v) || json_integer_value(v) < 1)
    return erpq_fail(err, errlen, -EINVAL, "data.schoolId must be a positive integer");
  *school = json_integer_value(v);
  v = json_object_get(data, "template");
  if (!json_is_string(v) || !name_ok(json_string_value(v), 64))
    return erpq_fail(err, errlen, -EINVAL,
                     "data.template must be a template name (letters, digits, '-', '_')");
  *tmpl = json_string_value(v);
  v = json_object_get(data, "locale");
  *locale = "en";
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || strlen(json_string_value(v)) > 35)
      return erpq_fail(err, errlen, -EINVAL, "data.locale must be a language tag such as hi-IN");
    for (const char *p = json_string_value(v); *p; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_'))
        return erpq_fail(err, errlen, -EINVAL, "data.locale must be a language tag such as hi-IN");
    if (*json_string_value(v))
      *locale = json_string_value(v);
  }
  v = json_object_get(data, "dedupKey");
  *dedup = NULL;
  if (v && !json_is_null(v)) {
    if (!json_is_string(v) || !*json_string_value(v) || strlen(json_string_value(v)) > 512)
      return erpq_fail(err, errlen, -EINVAL, "data.dedupKey must be a string of 1 to 512 bytes");
    *dedup = json_string_value(v);
  }
  v = json_object_get(data, "vars");
  if (!json_is_object(v))
    return erpq_fail(err, errlen, -EINVAL, "data.vars must be an object");
  return 0;
}

int64_t nt_breaker_wait(nt_ctx *nc, nt_channel ch) {
  if (!nc->pipe[ch])
    return 0;
  int64_t until = nt_pipe_open_until(nc->pipe[ch]), now = erpq_now_ms();
  return until > now ? until - now : 0;
}
