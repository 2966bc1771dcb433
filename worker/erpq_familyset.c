#include "erpq_familyset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_log.h"

struct erpq_binder {
  erpq_registry *reg;
  int pool;
  const erpq_family_meta *meta;
  const erpq_schemas *schemas;
  const char *queue;
  char *err;
  size_t errlen;
};

typedef struct member {
  const erpq_family *f;
  const erpq_family_meta *meta;
  void *ctx;
  erpq_family_env env;
} member;

struct erpq_familyset {
  member *m;
  int n;
};

const erpq_family *erpq_family_find(const erpq_family *const *fams, const char *name) {
  for (int i = 0; fams && fams[i]; i++)
    if (!strcmp(fams[i]->name, name)) return fams[i];
  return NULL;
}

const char *erpq_binder_queue(const erpq_binder *b) { return b->queue; }

int erpq_binder_handle(erpq_binder *b, const char *name, erpq_handler_fn fn, void *userdata) {
  if (strcmp(name, "*") && !erpq_catalog_job(b->meta, name))
    return erpq_fail(b->err, b->errlen, ERPQ_E_ARG,
                     "family '%s' registers job '%s', which has no schema "
                     "(jobs/%s/schemas/%s.json): its handlers and its job list disagree",
                     b->meta->name, name, b->meta->name, name);
  const char *other = NULL;
  int rc = erpq_registry_add_in(b->reg, b->pool, b->queue, name, fn, userdata,
                                erpq_schemas_get(b->schemas, b->meta->name, name), &other);
  if (rc == -EEXIST)
    return erpq_fail(b->err, b->errlen, ERPQ_E_ARG,
                     "queue '%s': job '%s' is served by both family '%s' and family '%s'", b->queue,
                     name, other && *other ? other : "?", b->meta->name);
  if (rc) return erpq_fail(b->err, b->errlen, rc, "cannot register handlers: %s", erpq_strerror(rc));
  return 0;
}

/* Every catalog job of the family has its handler on the queue. */
static int check_complete(const erpq_registry *reg, int pool, const erpq_family_meta *meta,
                          const char *queue, char *err, size_t errlen) {
  for (size_t j = 0; j < meta->njobs; j++) {
    int found = 0;
    for (size_t h = 0; h < reg->n && !found; h++)
      found = reg->h[h].pool == pool && !strcmp(reg->h[h].queue, queue) &&
              !strcmp(reg->h[h].name, meta->jobs[j].name);
    if (!found)
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "family '%s' has no handler for its job '%s' (%s) on queue '%s'",
                       meta->name, meta->jobs[j].name, meta->jobs[j].source, queue);
  }
  return 0;
}

static int bind_queue(member *mb, erpq_registry *reg, int pool, const erpq_schemas *schemas,
                      const char *queue, char *err, size_t errlen) {
  erpq_binder b = {reg, pool, mb->meta, schemas, queue, err, errlen};
  int rc = 0;
  if (mb->f->bind) {
    rc = mb->f->bind(mb->ctx, &b, err, errlen);
  } else {
    for (const erpq_family_job *j = mb->f->jobs; j && j->name && !rc; j++)
      rc = erpq_binder_handle(&b, j->name, j->fn, mb->ctx);
  }
  if (!rc) rc = check_complete(reg, pool, mb->meta, queue, err, errlen);
  return rc;
}

int erpq_familyset_start(erpq_familyset **out, const erpq_family *const *fams,
                         const erpq_bindings *b, const erpq_args *args,
                         const erpq_schemas *schemas, const char *datadir, erpq_registry *reg,
                         char *err, size_t errlen) {
  *out = NULL;
  erpq_familyset *s = calloc(1, sizeof *s);
  int nmeta = 0;
  for (const erpq_family_meta *f = b->cat; f && f->name; f++) nmeta++;
  if (!s || !(s->m = calloc((size_t)nmeta + 1, sizeof *s->m))) {
    free(s);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  int rc = 0;
  for (const erpq_family_meta *meta = b->cat; meta && meta->name && !rc; meta++) {
    int slots = 0;
    for (int q = 0; q < b->n; q++)
      for (int k = 0; k < b->q[q].nfam; k++)
        if (b->q[q].fam[k] == meta) slots += b->q[q].concurrency;
    if (!slots) continue;
    const erpq_family *f = erpq_family_find(fams, meta->name);
    if (!f) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "family '%s' is in the catalog but not linked in",
                     meta->name);
      break;
    }
    member *mb = &s->m[s->n];
    mb->f = f;
    mb->meta = meta;
    mb->env.meta = meta;
    mb->env.args = args;
    mb->env.datadir = datadir ? datadir : "";
    mb->env.concurrency = slots;
    if (f->init) {
      char why[768] = "";
      rc = f->init(&mb->ctx, &mb->env, why, sizeof why);
      if (rc) {
        rc = erpq_fail(err, errlen, rc, "family %s: %s", meta->name, why[0] ? why : erpq_strerror(rc));
        break;
      }
    }
    s->n++;
    int pool = erpq_registry_family_pool(reg, meta->name, f->threads);
    if (pool < 0) {
      rc = erpq_fail(err, errlen, pool, "out of memory");
      break;
    }
    for (int q = 0; q < b->n && !rc; q++)
      for (int k = 0; k < b->q[q].nfam && !rc; k++)
        if (b->q[q].fam[k] == meta) rc = bind_queue(mb, reg, pool, schemas, b->q[q].name, err, errlen);
  }
  if (rc) {
    erpq_familyset_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void erpq_familyset_quiesce(erpq_familyset *s) {
  for (int i = 0; s && i < s->n; i++)
    if (s->m[i].f->quiesce) s->m[i].f->quiesce(s->m[i].ctx);
}

void erpq_familyset_free(erpq_familyset *s) {
  if (!s) return;
  for (int i = s->n - 1; i >= 0; i--)
    if (s->m[i].f->shutdown) s->m[i].f->shutdown(s->m[i].ctx);
  free(s->m);
  free(s);
}

int erpq_family_command(const erpq_family *f, const erpq_family_meta *meta,
                        const erpq_family_cmd *cmd, const erpq_args *args, const char *datadir) {
  erpq_family_env env = {meta, args, datadir ? datadir : "", 0};
  void *ctx = NULL;
  if (f->init) {
    char why[768] = "";
    int rc = f->init(&ctx, &env, why, sizeof why);
    if (rc) {
      fprintf(stderr, "erpq-worker %s: %s\n", cmd->name, why[0] ? why : erpq_strerror(rc));
      return 1;
    }
  }
  int status = cmd->main(ctx, &env, args);
  if (f->shutdown) f->shutdown(ctx);
  return status;
}
