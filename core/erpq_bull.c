#include "erpq_bull.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_cron.h"
#include "erpq_err.h"
#include "erpq_repeat.h"
#include "erpq_util.h"

/* ---- Keys ----------------------------------------------------------------- */

static char *cat2(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (!s)
    return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb + 1);
  return s;
}

int erpq_keys_init(erpq_keys *k, const char *prefix, const char *queue) {
  memset(k, 0, sizeof *k);
  if (!prefix || !*prefix || !queue || !*queue)
    return ERPQ_E_ARG;
  k->queue = strdup(queue);
  k->prefix = strdup(prefix);
  size_t n = strlen(prefix) + strlen(queue) + 3;
  k->base = malloc(n);
  if (!k->queue || !k->prefix || !k->base) {
    erpq_keys_free(k);
    return -ENOMEM;
  }
  snprintf(k->base, n, "%s:%s:", prefix, queue);
  k->base_len = strlen(k->base);
  struct {
    char **dst;
    const char *suffix;
  } t[] = {
      {&k->wait, "wait"},           {&k->active, "active"},
      {&k->paused, "paused"},       {&k->meta_paused, "meta-paused"},
      {&k->meta, "meta"},           {&k->id, "id"},
      {&k->delayed, "delayed"},     {&k->priority, "priority"},
      {&k->completed, "completed"}, {&k->failed, "failed"},
      {&k->stalled, "stalled"},     {&k->stalled_check, "stalled-check"},
      {&k->limiter, "limiter"},     {&k->repeat, "repeat"},
      {&k->progress, "progress"},   {&k->drained, "drained"},
      {&k->waiting, "waiting"},     {&k->resumed, "resumed"},
      {&k->paused_ch, "paused"},    {&k->de, "de"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    *t[i].dst = cat2(k->base, t[i].suffix);
    if (!*t[i].dst) {
      erpq_keys_free(k);
      return -ENOMEM;
    }
  }
  return 0;
}

void erpq_keys_free(erpq_keys *k) {
  char **all[] = {&k->queue,    &k->prefix,      &k->base,     &k->wait,    &k->active,
                  &k->paused,   &k->meta_paused, &k->meta,     &k->id,      &k->delayed,
                  &k->priority, &k->completed,   &k->failed,   &k->stalled, &k->stalled_check,
                  &k->limiter,  &k->repeat,      &k->progress, &k->drained, &k->waiting,
                  &k->resumed,  &k->paused_ch,   &k->de};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    free(*all[i]);
    *all[i] = NULL;
  }
}

char *erpq_keys_job(const erpq_keys *k, const char *id, const char *suffix) {
  size_t li = strlen(id), ls = suffix ? strlen(suffix) : 0;
  char *s = malloc(k->base_len + li + ls + 1);
  if (!s)
    return NULL;
  memcpy(s, k->base, k->base_len);
  memcpy(s + k->base_len, id, li);
  if (ls)
    memcpy(s + k->base_len + li, suffix, ls);
  s[k->base_len + li + ls] = '\0';
  return s;
}

static void push_job_key(erpq_cmd *c, const erpq_keys *k, const char *id, const char *suffix) {
  char stack[256];
  size_t li = strlen(id), ls = suffix ? strlen(suffix) : 0;
  if (k->base_len + li + ls < sizeof stack) {
    memcpy(stack, k->base, k->base_len);
    memcpy(stack + k->base_len, id, li);
    if (ls)
      memcpy(stack + k->base_len + li, suffix, ls);
    erpq_cmd_push(c, stack, k->base_len + li + ls);
    return;
  }
  char *s = erpq_keys_job(k, id, suffix);
  if (!s) {
    c->err = -ENOMEM;
    return;
  }
  erpq_cmd_push_str(c, s);
  free(s);
}

/* ---- Adding ---------------------------------------------------------------- */

void erpq_newjob_free(erpq_newjob *j) {
  free(j->custom_id);
  free(j->name);
  free(j->data);
  free(j->opts);
  free(j->debounce_id);
  free(j->repeat_key);
  memset(j, 0, sizeof *j);
}


/* Fills j from opts that already carry bull's defaults. */
static int newjob_from_opts(erpq_newjob *j, const char *name, const char *data, json_t *o,
                            char *err, size_t errlen) {
  int64_t v;
  j->name = strdup(name && *name ? name : ERPQ_DEFAULT_JOB_NAME);
  j->data = strdup(data);
  j->debounce_ttl = -1;
  if (!j->name || !j->data)
    return -ENOMEM;
  const json_t *jid = json_object_get(o, "jobId");
  if (jid && !json_is_null(jid)) {
    if (json_is_string(jid)) {
      j->custom_id = strdup(json_string_value(jid));
    } else if (json_is_integer(jid)) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(jid));
      j->custom_id = strdup(tmp);
    } else {
      return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.jobId must be a string");
    }
    if (!j->custom_id)
      return -ENOMEM;
    if (!*j->custom_id)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.jobId must not be empty");
  }
  erpq_json_i64(json_object_get(o, "timestamp"), &j->timestamp);
  if (erpq_json_i64(json_object_get(o, "delay"), &v) == 0)
    j->delay = v < 0 ? 0 : v;
  j->due = j->delay ? j->timestamp + j->delay : 0;
  const json_t *p = json_object_get(o, "priority");
  if (p && !json_is_null(p)) {
    if (erpq_json_i64(p, &j->priority) || j->priority < 0)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.priority must be a non-negative integer");
  }
  j->lifo = json_is_true(json_object_get(o, "lifo"));
  const json_t *d = json_object_get(o, "debounce");
  if (d && json_is_object(d)) {
    const json_t *did = json_object_get(d, "id");
    if (!json_is_string(did))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.debounce.id must be a string");
    j->debounce_id = strdup(json_string_value(did));
    if (!j->debounce_id)
      return -ENOMEM;
    const json_t *ttl = json_object_get(d, "ttl");
    if (ttl && !json_is_null(ttl) && erpq_json_i64(ttl, &j->debounce_ttl))
      return erpq_fail(err, errlen, ERPQ_E_ARG, "opts.debounce.ttl must be a number");
  }
  j->opts = erpq_json_dump(o);
  return j->opts ? 0 : -ENOMEM;
}

/* Resolves opts with a repeat option to the first occurrence, as Queue.add
 * does. Returns 1 with a new reference in *next_opts and a malloc'ed key,
 * 0 when there is no occurrence, or a negative error. */
static int repeat_first(const char *name, const json_t *opts, int64_t now_ms, json_t **next_opts,
                        char **repeat_key, int64_t *next_ms, char *err, size_t errlen) {
  erpq_repeat_next nx;
  int rc = erpq_repeat_compute(name, opts, now_ms, &nx, err, errlen);
  if (rc == 1) {
    *next_opts = json_incref(nx.opts);
    *repeat_key = strdup(nx.key);
    *next_ms = nx.next_ms;
    if (!*repeat_key)
      rc = -ENOMEM;
  }
  erpq_repeat_next_clear(&nx);
  return rc;
}

int erpq_bull_repeat_next(const erpq_job *job, int64_t now_ms, erpq_newjob *out, char *err,
                          size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!job->opts)
    return erpq_fail(err, errlen, ERPQ_E_JSON, "job opts are not valid JSON");
  erpq_repeat_next nx;
  int rc = erpq_repeat_compute(job->name, job->opts, now_ms, &nx, err, errlen);
  if (rc == 1) {
    rc = newjob_from_opts(out, job->name, job->data, nx.opts, err, errlen);
    if (!rc) {
      out->repeat_key = strdup(nx.key);
      out->repeat_ms = nx.next_ms;
      rc = out->repeat_key ? 1 : -ENOMEM;
    }
    if (rc < 0)
      erpq_newjob_free(out);
  }
  erpq_repeat_next_clear(&nx);
  return rc;
}

int erpq_bull_remove_repeatable(erpq_cmd *c, const erpq_keys *k, const char *name,
                                const json_t *repeat) {
  char *key = NULL, *id = NULL;
  int rc =
      erpq_repeat_removal(name && *name ? name : ERPQ_DEFAULT_JOB_NAME, repeat, &key, &id, NULL, 0);
  if (rc)
    return c->err = rc;
  const char *keys[] = {k->repeat, k->delayed};
  erpq_cmd_script_keys(c, ERPQ_LUA_REMOVE_REPEATABLE, keys, 2);
  erpq_cmd_push_str(c, id);
  erpq_cmd_push_str(c, key);
  erpq_cmd_push_str(c, k->base);
  free(key);
  free(id);
  return c->err;
}

int erpq_newjob_prepare(erpq_newjob *j, const char *name, const char *data_json, const json_t *opts,
                        int64_t now_ms, char *err, size_t errlen) {
  memset(j, 0, sizeof *j);
  if (!name || !*name)
    name = ERPQ_DEFAULT_JOB_NAME;
  json_t *data = NULL;
  char *data_txt;
  if (data_json) {
    json_error_t je;
    data = json_loads(data_json, JSON_DECODE_ANY, &je);
    if (!data)
      return erpq_fail(err, errlen, ERPQ_E_JSON, "data is not valid JSON: %s (line %d)", je.text,
                       je.line);
    data_txt = erpq_json_dump(data);
    json_decref(data);
  } else {
    data_txt = strdup("{}");
  }
  if (!data_txt)
    return -ENOMEM;
  int rc;
  json_t *o;
  const json_t *rep = opts ? json_object_get(opts, "repeat") : NULL;
  if (rep && !json_is_null(rep)) {
    json_t *next = NULL;
    char *rkey = NULL;
    int64_t next_ms = 0;
    rc = repeat_first(name, opts, now_ms, &next, &rkey, &next_ms, err, errlen);
    if (rc <= 0) {
      free(data_txt);
      return rc < 0 ? rc : 1;
    }
    o = erpq_opts_defaults(next, now_ms, err, errlen);
    json_decref(next);
    j->repeat_key = rkey;
    j->repeat_ms = next_ms;
  } else {
    o = erpq_opts_defaults(opts, now_ms, err, errlen);
  }
  if (!o) {
    free(data_txt);
    erpq_newjob_free(j);
    return ERPQ_E_ARG;
  }
  rc = newjob_from_opts(j, name, data_txt, o, err, errlen);
  free(data_txt);
  json_decref(o);
  if (rc)
    erpq_newjob_free(j);
  return rc;
}

int erpq_bull_add(erpq_cmd *c, const erpq_keys *k, const char *token, const erpq_newjob *jobs,
                  size_t n, int check_repeat) {
  return erpq_bull_add_guarded(c, k, token, jobs, n, check_repeat, NULL);
}

static int add_cmd(erpq_cmd *c, const erpq_keys *k, const char *token, const erpq_newjob *jobs,
                   size_t n, int check_repeat, const erpq_rate_guard *guard, int report);

int erpq_bull_add_guarded(erpq_cmd *c, const erpq_keys *k, const char *token,
                          const erpq_newjob *jobs, size_t n, int check_repeat,
                          const erpq_rate_guard *guard) {
  return add_cmd(c, k, token, jobs, n, check_repeat, guard, 0);
}

int erpq_bull_add_report(erpq_cmd *c, const erpq_keys *k, const char *token,
                         const erpq_newjob *jobs, size_t n) {
  return add_cmd(c, k, token, jobs, n, 0, NULL, 1);
}

int erpq_bull_parse_added(const redisReply *r, char **ids, int *added, size_t n) {
  if (!r)
    return ERPQ_E_CONN;
  if (r->type == REDIS_REPLY_ERROR)
    return ERPQ_E_REDIS;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_ARRAY || r->element[1]->type != REDIS_REPLY_ARRAY ||
      r->element[0]->elements != r->element[1]->elements)
    return ERPQ_E_PROTOCOL;
  int m = erpq_bull_parse_ids(r->element[0], ids, n);
  for (int i = 0; i < m; i++) {
    const redisReply *e = r->element[1]->element[i];
    added[i] = e->type == REDIS_REPLY_INTEGER && e->integer == 1;
  }
  return m;
}

static int add_cmd(erpq_cmd *c, const erpq_keys *k, const char *token, const erpq_newjob *jobs,
                   size_t n, int check_repeat, const erpq_rate_guard *guard, int report) {
  int ng = guard ? guard->n : 0;
  if (ng < 0 || ng > ERPQ_GUARD_MAX) return ERPQ_E_ARG;
  const char *keys[7 + ERPQ_GUARD_MAX] = {k->wait,    k->paused,   k->meta_paused, k->id,
                                          k->delayed, k->priority, k->repeat};
  for (int i = 0; i < ng; i++) keys[7 + i] = guard->keys[i];
  erpq_cmd_script_keys(c, ERPQ_LUA_ADD, keys, 7 + ng);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, token);
  erpq_cmd_push_i64(c, report ? -(int64_t)n : (int64_t)n);
  const char *rkey = NULL;
  int64_t rms = 0;
  for (size_t i = 0; i < n; i++) {
    const erpq_newjob *j = &jobs[i];
    erpq_cmd_push_str(c, j->custom_id);
    erpq_cmd_push_str(c, j->name);
    erpq_cmd_push_str(c, j->data);
    erpq_cmd_push_str(c, j->opts);
    erpq_cmd_push_i64(c, j->timestamp);
    erpq_cmd_push_i64(c, j->delay);
    erpq_cmd_push_i64(c, j->due);
    erpq_cmd_push_i64(c, j->priority);
    erpq_cmd_push_str(c, j->lifo ? "RPUSH" : "LPUSH");
    if (j->debounce_id) {
      erpq_cmd_pushf(c, "%s:%s", k->de, j->debounce_id);
      erpq_cmd_push_str(c, j->debounce_id);
      if (j->debounce_ttl >= 0)
        erpq_cmd_push_i64(c, j->debounce_ttl);
      else
        erpq_cmd_push_str(c, "");
    } else {
      erpq_cmd_push_str(c, "");
      erpq_cmd_push_str(c, "");
      erpq_cmd_push_str(c, "");
    }
    if (j->repeat_key && !rkey) {
      rkey = j->repeat_key;
      rms = j->repeat_ms;
    }
  }
  if (rkey) {
    erpq_cmd_push_str(c, check_repeat ? "next" : "add");
    erpq_cmd_push_str(c, rkey);
    erpq_cmd_push_i64(c, rms);
  }
  if (ng) {
    for (int i = 0; i < ng; i++) erpq_cmd_push_i64(c, guard->limits[i]);
    erpq_cmd_push_i64(c, guard->ttl_s);
  }
  return c->err;
}

int erpq_bull_rate_limited(const redisReply *r) {
  size_t n = sizeof ERPQ_RATE_LIMITED_CODE - 1;
  return r && r->type == REDIS_REPLY_ERROR && r->len > n && !strncmp(r->str, ERPQ_RATE_LIMITED_CODE, n) &&
         r->str[n] == ' ';
}

int erpq_bull_parse_ids(const redisReply *r, char **ids, size_t n) {
  if (!r)
    return ERPQ_E_CONN;
  if (r->type == REDIS_REPLY_ERROR)
    return ERPQ_E_REDIS;
  if (r->type != REDIS_REPLY_ARRAY)
    return ERPQ_E_PROTOCOL;
  size_t m = r->elements < n ? r->elements : n;
  for (size_t i = 0; i < m; i++) {
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_STRING) {
      ids[i] = strndup(e->str, e->len);
    } else if (e->type == REDIS_REPLY_INTEGER) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "%lld", e->integer);
      ids[i] = strdup(tmp);
    } else {
      ids[i] = strdup("");
    }
    if (!ids[i])
      return -ENOMEM;
  }
  return (int)m;
}

/* ---- Step ------------------------------------------------------------------ */

void erpq_job_free(erpq_job *j) {
  if (!j)
    return;
  free(j->id);
  free(j->name);
  free(j->data);
  free(j->opts_json);
  free(j->deid);
  free(j->stacktrace);
  json_decref(j->opts);
  memset(j, 0, sizeof *j);
}

static void push_keep(erpq_cmd *c, const erpq_keep *kp) {
  if (kp->has_count)
    erpq_cmd_push_i64(c, kp->count);
  else
    erpq_cmd_push_str(c, "");
  if (kp->has_age)
    erpq_cmd_push_i64(c, kp->age_s);
  else
    erpq_cmd_push_str(c, "");
}

char *erpq_bull_finish_event(const char *id, const char *val) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "jobId", json_string(id));
  if (val) {
    json_t *v = json_string(val);
    if (!v) {
      /* Not UTF-8: publish a repaired copy rather than drop "val", which
       * would make job.finished() reject with Error(undefined). */
      char *fixed = strdup(val);
      v = fixed ? json_string(erpq_utf8_fix(fixed)) : NULL;
      free(fixed);
    }
    json_object_set_new(o, "val", v);
  }
  char *s = erpq_json_dump(o);
  json_decref(o);
  return s;
}

int erpq_bull_step(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t lock_ms,
                   int64_t now_ms, int nfetch, const char *explicit_id, const erpq_limiter *lim,
                   const erpq_finish *fin, size_t nfin) {
  const char *keys[] = {k->active, k->wait,        k->priority,  k->stalled, k->delayed,
                        k->paused, k->meta_paused, k->completed, k->failed,  k->limiter};
  erpq_cmd_script_keys(c, ERPQ_LUA_STEP, keys, 10);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, token);
  erpq_cmd_push_i64(c, lock_ms);
  erpq_cmd_push_i64(c, now_ms);
  erpq_cmd_push_i64(c, nfetch);
  erpq_cmd_push_str(c, explicit_id);
  if (lim && lim->max > 0) {
    erpq_cmd_push_i64(c, lim->max);
    erpq_cmd_push_i64(c, lim->duration_ms);
    erpq_cmd_push_str(c, lim->bounce_back ? "true" : "false");
    erpq_cmd_push_str(c, lim->group_key[0] ? "true" : "");
  } else {
    erpq_cmd_push_str(c, "");
    erpq_cmd_push_str(c, "0");
    erpq_cmd_push_str(c, "false");
    erpq_cmd_push_str(c, "");
  }
  erpq_cmd_push_i64(c, (int64_t)nfin);
  for (size_t i = 0; i < nfin; i++) {
    const erpq_finish *f = &fin[i];
    char kind = (char)f->kind;
    if (f->has_deid)
      kind = (char)(kind - 'a' + 'A');
    erpq_cmd_push(c, &kind, 1);
    erpq_cmd_push_str(c, f->id);
    erpq_cmd_push_str(c, f->value);
    if (f->kind == ERPQ_FIN_COMPLETED || f->kind == ERPQ_FIN_FAILED) {
      push_keep(c, &f->keep);
      char *ev = erpq_bull_finish_event(f->id, f->value);
      if (!ev)
        return c->err = -ENOMEM;
      erpq_cmd_push_str(c, ev);
      free(ev);
    } else {
      erpq_cmd_push_str(c, "");
      erpq_cmd_push_str(c, "");
      erpq_cmd_push_str(c, "");
    }
    erpq_cmd_push_str(c, f->kind == ERPQ_FIN_COMPLETED ? "" : f->stacktrace);
    erpq_cmd_push_i64(c, f->attempts_made);
    if (f->kind == ERPQ_FIN_RETRY)
      erpq_cmd_push_str(c, f->lifo ? "RPUSH" : "LPUSH");
    else if (f->kind == ERPQ_FIN_DELAYED || f->kind == ERPQ_FIN_POSTPONED)
      erpq_cmd_push_i64(c, f->delay_score);
    else
      erpq_cmd_push_str(c, "");
  }
  return c->err;
}

static char *reply_str(const redisReply *r) {
  if (!r)
    return NULL;
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
    return strndup(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", r->integer);
    return strdup(tmp);
  }
  return NULL;
}

static int64_t reply_i64(const redisReply *r, int64_t dflt) {
  if (!r)
    return dflt;
  if (r->type == REDIS_REPLY_INTEGER)
    return r->integer;
  if (r->type == REDIS_REPLY_STRING) {
    char tmp[32];
    size_t n = r->len < sizeof tmp - 1 ? r->len : sizeof tmp - 1;
    memcpy(tmp, r->str, n);
    tmp[n] = '\0';
    char *end;
    long long v = strtoll(tmp, &end, 10);
    return end == tmp ? dflt : v;
  }
  return dflt;
}

/* Fields in the order step.lua's HMGET returns them. */
enum {
  F_NAME,
  F_DATA,
  F_OPTS,
  F_ATTEMPTS,
  F_TS,
  F_DELAY,
  F_PRIO,
  F_PROGRESS,
  F_STALLED,
  F_DEID,
  F_STACK,
  F__N
};

static int parse_job(const redisReply *idr, const redisReply *fr, erpq_job *j) {
  memset(j, 0, sizeof *j);
  if (fr->type != REDIS_REPLY_ARRAY || fr->elements < F__N)
    return ERPQ_E_PROTOCOL;
  j->id = reply_str(idr);
  j->name = reply_str(fr->element[F_NAME]);
  if (!j->name)
    j->name = strdup(ERPQ_DEFAULT_JOB_NAME);
  j->data = reply_str(fr->element[F_DATA]);
  if (!j->data)
    j->data = strdup("{}");
  j->opts_json = reply_str(fr->element[F_OPTS]);
  if (!j->opts_json)
    j->opts_json = strdup("{}");
  j->deid = reply_str(fr->element[F_DEID]);
  j->stacktrace = reply_str(fr->element[F_STACK]);
  if (!j->id || !j->name || !j->data || !j->opts_json) {
    erpq_job_free(j);
    return -ENOMEM;
  }
  j->attempts_made = (int)reply_i64(fr->element[F_ATTEMPTS], 0);
  j->timestamp = reply_i64(fr->element[F_TS], 0);
  j->delay = reply_i64(fr->element[F_DELAY], 0);
  j->priority = reply_i64(fr->element[F_PRIO], 0);
  j->stalled_counter = reply_i64(fr->element[F_STALLED], 0);
  json_error_t je;
  j->opts = json_loads(j->opts_json, 0, &je);
  if (!j->opts) {
    snprintf(j->opts_err, sizeof j->opts_err, "job opts are not valid JSON: %.100s", je.text);
    erpq_jobopts_parse(NULL, &j->o, NULL, 0);
  } else if (erpq_jobopts_parse(j->opts, &j->o, j->opts_err, sizeof j->opts_err)) {
    erpq_jobopts_parse(NULL, &j->o, NULL, 0);
  }
  return 0;
}

int erpq_bull_parse_step(const redisReply *r, erpq_step_result *out) {
  memset(out, 0, sizeof *out);
  if (!r)
    return ERPQ_E_CONN;
  if (r->type == REDIS_REPLY_ERROR)
    return ERPQ_E_REDIS;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
    return ERPQ_E_PROTOCOL;
  const redisReply *codes = r->element[0], *fetched = r->element[1];
  if (codes->type != REDIS_REPLY_ARRAY || fetched->type != REDIS_REPLY_ARRAY ||
      fetched->elements % 2)
    return ERPQ_E_PROTOCOL;
  if (codes->elements) {
    out->codes = calloc(codes->elements, sizeof *out->codes);
    if (!out->codes)
      return -ENOMEM;
    for (size_t i = 0; i < codes->elements; i++)
      out->codes[i] = (int)reply_i64(codes->element[i], ERPQ_E_PROTOCOL);
    out->ncodes = codes->elements;
  }
  size_t nj = fetched->elements / 2;
  if (nj) {
    out->jobs = calloc(nj, sizeof *out->jobs);
    if (!out->jobs) {
      erpq_step_result_free(out);
      return -ENOMEM;
    }
    for (size_t i = 0; i < nj; i++) {
      int rc = parse_job(fetched->element[2 * i], fetched->element[2 * i + 1], &out->jobs[i]);
      if (rc) {
        erpq_step_result_free(out);
        return rc;
      }
      out->njobs++;
    }
  }
  out->drained = (int)reply_i64(r->element[2], 0);
  return 0;
}

void erpq_step_result_free(erpq_step_result *s) {
  for (size_t i = 0; i < s->njobs; i++)
    erpq_job_free(&s->jobs[i]);
  free(s->jobs);
  free(s->codes);
  memset(s, 0, sizeof *s);
}

int64_t erpq_bull_delay_score(const char *id, int64_t due_ms) {
  /* bull: jobId & 0xfff with JavaScript's rules: Number(id) (so "1e3",
   * "0x1f" and " 42 " are numbers, anything else NaN), then ToInt32, where
   * NaN and infinities count as 0. */
  if (due_ms <= 0) return 0;
  double d = erpq_js_string_to_number(id, strlen(id));
  int64_t n = 0;
  if (isfinite(d)) {
    double t = fmod(trunc(d), 4294967296.0);
    if (t < 0) t += 4294967296.0;
    n = (int64_t)t;
  }
  return due_ms * 4096 + (n & 0xfff);
}

void erpq_bull_complete(const erpq_job *j, const char *val, erpq_finish *f) {
  memset(f, 0, sizeof *f);
  f->kind = ERPQ_FIN_COMPLETED;
  f->id = j->id;
  f->value = val;
  f->keep = j->o.on_complete;
  f->has_deid = j->deid != NULL;
}

void erpq_bull_postpone(const erpq_job *j, int64_t due_ms, erpq_finish *f) {
  memset(f, 0, sizeof *f);
  f->kind = ERPQ_FIN_POSTPONED;
  f->id = j->id;
  f->value = "";
  f->attempts_made = j->attempts_made;
  f->has_deid = j->deid != NULL;
  f->delay_score = erpq_bull_delay_score(j->id, due_ms);
}

void erpq_bull_fail_decision(const erpq_job *j, int64_t backoff_ms, int discard, int64_t now_ms,
                             erpq_finish *f) {
  f->id = j->id;
  f->has_deid = j->deid != NULL;
  f->attempts_made = j->attempts_made + 1;
  f->keep = j->o.on_fail;
  f->lifo = j->o.lifo;
  if (f->attempts_made < j->o.attempts && !discard && backoff_ms != -1) {
    if (backoff_ms > 0) {
      f->kind = ERPQ_FIN_DELAYED;
      f->delay_score = erpq_bull_delay_score(j->id, now_ms + backoff_ms);
    } else {
      f->kind = ERPQ_FIN_RETRY;
    }
  } else {
    f->kind = ERPQ_FIN_FAILED;
  }
}

/* ---- Housekeeping ---------------------------------------------------------- */

int erpq_bull_extend(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t lock_ms,
                     const char *const *ids, size_t n) {
  const char *keys[] = {k->stalled};
  erpq_cmd_script_keys(c, ERPQ_LUA_EXTEND, keys, 1);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, token);
  erpq_cmd_push_i64(c, lock_ms);
  for (size_t i = 0; i < n; i++)
    erpq_cmd_push_str(c, ids[i]);
  return c->err;
}

int erpq_bull_stalled(erpq_cmd *c, const erpq_keys *k, int max_stalled, int64_t now_ms,
                      int64_t interval_ms) {
  const char *keys[] = {k->stalled,       k->wait,        k->active, k->failed,
                        k->stalled_check, k->meta_paused, k->paused};
  erpq_cmd_script_keys(c, ERPQ_LUA_STALLED, keys, 7);
  erpq_cmd_push_i64(c, max_stalled);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_i64(c, now_ms);
  erpq_cmd_push_i64(c, interval_ms);
  return c->err;
}

int erpq_bull_delayed(erpq_cmd *c, const erpq_keys *k, const char *token, int64_t now_ms) {
  const char *keys[] = {k->delayed, k->active, k->wait, k->priority, k->paused, k->meta_paused};
  erpq_cmd_script_keys(c, ERPQ_LUA_DELAYED, keys, 6);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_i64(c, now_ms);
  erpq_cmd_push_str(c, token);
  return c->err;
}

int erpq_bull_handback(erpq_cmd *c, const erpq_keys *k, const char *token, const char *const *ids,
                       size_t n) {
  const char *keys[] = {k->active, k->wait, k->paused, k->meta_paused, k->stalled, k->priority};
  erpq_cmd_script_keys(c, ERPQ_LUA_HANDBACK, keys, 6);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, token);
  for (size_t i = 0; i < n; i++)
    erpq_cmd_push_str(c, ids[i]);
  return c->err;
}

int erpq_bull_unclaimed(erpq_cmd *c, const erpq_keys *k, const char *id) {
  const char *keys[] = {k->active, k->wait, k->paused, k->meta_paused};
  erpq_cmd_script_keys(c, ERPQ_LUA_UNCLAIMED, keys, 4);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, id);
  return c->err;
}

int erpq_bull_progress(erpq_cmd *c, const erpq_keys *k, const char *id, const char *progress_json) {
  erpq_cmd_script(c, ERPQ_LUA_PROGRESS, 2);
  push_job_key(c, k, id, NULL);
  erpq_cmd_push_str(c, k->progress);
  erpq_cmd_push_str(c, progress_json);
  /* {"jobId":"<id>","progress":<json>} with the progress JSON verbatim. */
  json_t *jid = json_string(id);
  char *sid = jid ? json_dumps(jid, JSON_ENCODE_ANY) : NULL;
  json_decref(jid);
  if (!sid)
    return c->err = -ENOMEM;
  erpq_cmd_pushf(c, "{\"jobId\":%s,\"progress\":%s}", sid, progress_json);
  free(sid);
  return c->err;
}

int erpq_bull_log(erpq_cmd *c, const erpq_keys *k, const char *id, const char *row) {
  erpq_cmd_script(c, ERPQ_LUA_LOG, 2);
  push_job_key(c, k, id, NULL);
  push_job_key(c, k, id, ":logs");
  erpq_cmd_push_str(c, id);
  erpq_cmd_push_str(c, row);
  erpq_cmd_push_str(c, "");
  return c->err;
}

int erpq_bull_setname(erpq_cmd *c, const erpq_keys *k) {
  size_t ql = strlen(k->queue);
  char *b64 = malloc(4 * ((ql + 2) / 3) + 1);
  if (!b64)
    return c->err = -ENOMEM;
  erpq_base64(k->queue, ql, b64);
  erpq_cmd_push_str(c, "CLIENT");
  erpq_cmd_push_str(c, "SETNAME");
  erpq_cmd_pushf(c, "%s:%s", k->prefix, b64);
  free(b64);
  return c->err;
}

int erpq_bull_brpoplpush(erpq_cmd *c, const erpq_keys *k, double timeout_s) {
  erpq_cmd_push_str(c, "BRPOPLPUSH");
  erpq_cmd_push_str(c, k->wait);
  erpq_cmd_push_str(c, k->active);
  erpq_cmd_pushf(c, "%g", timeout_s);
  return c->err;
}

/* ---- Administration ------------------------------------------------------- */

int erpq_bull_pause(erpq_cmd *c, const erpq_keys *k, int pause) {
  const char *keys[] = {pause ? k->wait : k->paused, pause ? k->paused : k->wait, k->meta_paused,
                        pause ? k->paused_ch : k->resumed, k->meta};
  erpq_cmd_script_keys(c, ERPQ_LUA_PAUSE, keys, 5);
  erpq_cmd_push_str(c, pause ? "paused" : "resumed");
  return c->err;
}

int erpq_bull_promote(erpq_cmd *c, const erpq_keys *k, const char *token, const char *id) {
  const char *keys[] = {k->delayed, k->wait, k->paused, k->meta_paused, k->priority};
  erpq_cmd_script_keys(c, ERPQ_LUA_PROMOTE, keys, 5);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, id);
  erpq_cmd_push_str(c, token);
  return c->err;
}

int erpq_bull_remove(erpq_cmd *c, const erpq_keys *k, const char *id) {
  erpq_cmd_script(c, ERPQ_LUA_REMOVE, 10);
  erpq_cmd_push_str(c, k->active);
  erpq_cmd_push_str(c, k->wait);
  erpq_cmd_push_str(c, k->delayed);
  erpq_cmd_push_str(c, k->paused);
  erpq_cmd_push_str(c, k->completed);
  erpq_cmd_push_str(c, k->failed);
  erpq_cmd_push_str(c, k->priority);
  push_job_key(c, k, id, NULL);
  push_job_key(c, k, id, ":logs");
  erpq_cmd_push_str(c, k->limiter);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, id);
  return c->err;
}

int erpq_bull_reprocess(erpq_cmd *c, const erpq_keys *k, const char *token, const char *id,
                        const char *state, int lifo, int64_t now_ms) {
  erpq_cmd_script(c, ERPQ_LUA_REPROCESS, 6);
  push_job_key(c, k, id, NULL);
  push_job_key(c, k, id, ":lock");
  erpq_cmd_push_str(c, strcmp(state, "completed") == 0 ? k->completed : k->failed);
  erpq_cmd_push_str(c, k->wait);
  erpq_cmd_push_str(c, k->meta_paused);
  erpq_cmd_push_str(c, k->paused);
  erpq_cmd_push_str(c, id);
  erpq_cmd_push_str(c, lifo ? "RPUSH" : "LPUSH");
  erpq_cmd_push_str(c, token);
  erpq_cmd_push_i64(c, now_ms);
  return c->err;
}

int erpq_bull_clean(erpq_cmd *c, const erpq_keys *k, const char *state, int64_t grace_ms,
                    int64_t limit, int64_t now_ms) {
  const char *set;
  if (strcmp(state, "completed") == 0)
    set = k->completed;
  else if (strcmp(state, "failed") == 0)
    set = k->failed;
  else if (strcmp(state, "wait") == 0)
    set = k->wait;
  else if (strcmp(state, "active") == 0)
    set = k->active;
  else if (strcmp(state, "delayed") == 0)
    set = k->delayed;
  else if (strcmp(state, "paused") == 0)
    set = k->paused;
  else
    return c->err = ERPQ_E_ARG;
  const char *keys[] = {set, k->priority, k->limiter};
  erpq_cmd_script_keys(c, ERPQ_LUA_CLEAN, keys, 3);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_i64(c, now_ms - grace_ms);
  erpq_cmd_push_i64(c, limit);
  erpq_cmd_push_str(c, state);
  return c->err;
}

int erpq_bull_state(erpq_cmd *c, const erpq_keys *k, const char *id) {
  erpq_cmd_script(c, ERPQ_LUA_STATE, 7);
  push_job_key(c, k, id, NULL);
  erpq_cmd_push_str(c, k->completed);
  erpq_cmd_push_str(c, k->failed);
  erpq_cmd_push_str(c, k->delayed);
  erpq_cmd_push_str(c, k->active);
  erpq_cmd_push_str(c, k->wait);
  erpq_cmd_push_str(c, k->paused);
  erpq_cmd_push_str(c, id);
  return c->err;
}

const char *const erpq_bull_count_names[6] = {"waiting", "active",  "completed",
                                              "failed",  "delayed", "paused"};

int erpq_bull_counts(erpq_cmd cmds[6], const erpq_keys *k) {
  const char *ops[6] = {"LLEN", "LLEN", "ZCARD", "ZCARD", "ZCARD", "LLEN"};
  const char *keys[6] = {k->wait, k->active, k->completed, k->failed, k->delayed, k->paused};
  for (int i = 0; i < 6; i++) {
    erpq_cmd_push_str(&cmds[i], ops[i]);
    erpq_cmd_push_str(&cmds[i], keys[i]);
    if (cmds[i].err)
      return cmds[i].err;
  }
  return 0;
}

/* Parses s (malloc'ed, taken) as JSON; text that is not JSON becomes a
 * string, NULL becomes null. */
static json_t *json_field_take(char *s) {
  if (!s) return json_null();
  json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
  if (!v) v = json_string(erpq_utf8_fix(s));
  free(s);
  return v ? v : json_null();
}

const redisReply *erpq_reply_hash_field(const redisReply *h, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
    const redisReply *f = h->element[i];
    if (f->type == REDIS_REPLY_STRING && f->len == n && !memcmp(f->str, name, n))
      return h->element[i + 1];
  }
  return NULL;
}

const char *erpq_reply_hash_str(const redisReply *h, const char *name) {
  const redisReply *v = erpq_reply_hash_field(h, name);
  return v && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

/* A field holding JSON as its value, else as a string, else null. */
static json_t *hget_json(const redisReply *h, const char *name) {
  char *s = reply_str(erpq_reply_hash_field(h, name));
  return json_field_take(s);
}

json_t *erpq_bull_parse_state(const redisReply *r, const char *id) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) return NULL;
  const redisReply *st = r->element[0], *h = r->element[1];
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "state", json_stringn(st->str, st->len));
  char *name = reply_str(erpq_reply_hash_field(h, "name"));
  json_object_set_new(o, "name", json_string(name ? name : ERPQ_DEFAULT_JOB_NAME));
  free(name);
  json_object_set_new(o, "data", hget_json(h, "data"));
  json_object_set_new(o, "opts", hget_json(h, "opts"));
  json_t *progress = hget_json(h, "progress");
  json_object_set_new(o, "progress", json_is_null(progress) ? json_integer(0) : progress);
  if (json_is_null(progress)) json_decref(progress);
  json_object_set_new(o, "attemptsMade",
                      json_integer(reply_i64(erpq_reply_hash_field(h, "attemptsMade"), 0)));
  json_object_set_new(o, "returnvalue", hget_json(h, "returnvalue"));
  char *reason = reply_str(erpq_reply_hash_field(h, "failedReason"));
  json_object_set_new(o, "failedReason", reason ? json_string(erpq_utf8_fix(reason)) : json_null());
  free(reason);
  json_t *stack = hget_json(h, "stacktrace");
  json_object_set_new(o, "stacktrace", json_is_array(stack) ? stack : json_array());
  if (!json_is_array(stack)) json_decref(stack);
  static const char *const times[] = {"timestamp", "processedOn", "finishedOn", "retriedOn",
                                      "delay"};
  for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
    const redisReply *v = erpq_reply_hash_field(h, times[i]);
    json_object_set_new(o, times[i], v ? json_integer(reply_i64(v, 0)) : json_null());
  }
  return o;
}

int erpq_bull_code(long long code) {
  switch (code) {
  case -1: return ERPQ_E_JOB_MISSING;
  case -2: return ERPQ_E_LOCK_MISSING;
  case -3: return ERPQ_E_NOT_ACTIVE;
  case -6: return ERPQ_E_LOCK_MISMATCH;
  default: return code < 0 ? ERPQ_E_PROTOCOL : 0;
  }
}

int erpq_reply_transient(const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_ERROR)
    return 0;
  static const char *const words[] = {"LOADING",  "READONLY",   "UNBLOCKED",  "BUSY",
                                      "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    size_t n = strlen(words[i]);
    if (r->len >= n && strncmp(r->str, words[i], n) == 0)
      return 1;
  }
  return 0;
}

int erpq_reply_noscript(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ---- Listing ------------------------------------------------------------------ */

static const char *list_key(const erpq_keys *k, const char *state, int *zset) {
  *zset = 0;
  if (!strcmp(state, "waiting")) return k->wait;
  if (!strcmp(state, "paused")) return k->paused;
  if (!strcmp(state, "active")) return k->active;
  *zset = 1;
  if (!strcmp(state, "delayed")) return k->delayed;
  if (!strcmp(state, "completed")) return k->completed;
  if (!strcmp(state, "failed")) return k->failed;
  return NULL;
}

int erpq_bull_list_state_ok(const char *state) {
  int z;
  erpq_keys k;
  memset(&k, 0, sizeof k);
  k.wait = k.paused = k.active = k.delayed = k.completed = k.failed = (char *)"";
  return state && list_key(&k, state, &z) != NULL;
}

int erpq_bull_list(erpq_cmd *c, const erpq_keys *k, const char *state, int64_t limit,
                   const char *school, int64_t scan_max) {
  int zset;
  const char *key = list_key(k, state, &zset);
  if (!key)
    return c->err = ERPQ_E_ARG;
  const char *keys[] = {key};
  erpq_cmd_script_keys(c, ERPQ_LUA_LIST, keys, 1);
  erpq_cmd_push_str(c, k->base);
  erpq_cmd_push_str(c, zset ? "zset" : "list");
  erpq_cmd_push_str(c, state);
  erpq_cmd_push_i64(c, limit);
  erpq_cmd_push_str(c, school ? school : "");
  erpq_cmd_push_i64(c, scan_max);
  return c->err;
}

json_t *erpq_bull_parse_list(const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2)
    return NULL;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i + 1 < r->elements; i += 2) {
    const redisReply *id = r->element[i];
    if (id->type != REDIS_REPLY_STRING)
      continue;
    char *ids = strndup(id->str, id->len);
    json_t *v = ids ? erpq_bull_parse_state(r->element[i + 1], ids) : NULL;
    free(ids);
    if (v)
      json_array_append_new(arr, v);
  }
  return arr;
}
