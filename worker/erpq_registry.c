#include "erpq_registry.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

void erpq_registry_init(erpq_registry *r) { memset(r, 0, sizeof *r); }

void erpq_registry_free(erpq_registry *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->h[i].queue);
    free(r->h[i].name);
  }
  for (size_t i = 0; i < r->nb; i++) free(r->b[i].name);
  for (int i = 0; i < r->npools; i++) free(r->pools[i].family);
  free(r->h);
  free(r->b);
  free(r->pools);
  memset(r, 0, sizeof *r);
}

/* pools[0], the pool of handlers added without a family. */
static int ensure_default_pool(erpq_registry *r) {
  if (r->npools) return 0;
  r->pools = calloc(1, sizeof *r->pools);
  if (!r->pools || !(r->pools[0].family = strdup(""))) return -ENOMEM;
  r->npools = 1;
  return 0;
}

int erpq_registry_family_pool(erpq_registry *r, const char *family, int threads) {
  if (ensure_default_pool(r)) return -ENOMEM;
  for (int i = 1; i < r->npools; i++)
    if (!strcmp(r->pools[i].family, family)) return i;
  erpq_registry_pool *p = realloc(r->pools, (size_t)(r->npools + 1) * sizeof *p);
  if (!p) return -ENOMEM;
  r->pools = p;
  if (!(p[r->npools].family = strdup(family))) return -ENOMEM;
  p[r->npools].threads = threads;
  return r->npools++;
}

int erpq_registry_add(erpq_registry *r, const char *queue, const char *name,
                      erpq_handler_fn fn, void *userdata) {
  if (ensure_default_pool(r)) return -ENOMEM;
  return erpq_registry_add_in(r, 0, queue, name, fn, userdata, NULL, NULL);
}

int erpq_registry_add_in(erpq_registry *r, int pool, const char *queue, const char *name,
                         erpq_handler_fn fn, void *userdata, const void *schema,
                         const char **other) {
  if (pool < 0 || pool >= r->npools) return -EINVAL;
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->h[i].queue, queue) && !strcmp(r->h[i].name, name)) {
      if (other) *other = r->h[i].family;
      return -EEXIST;
    }
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 16;
    erpq_handler *h = realloc(r->h, nc * sizeof *h);
    if (!h) return -ENOMEM;
    r->h = h;
    r->cap = nc;
  }
  erpq_handler *h = &r->h[r->n];
  h->queue = strdup(queue);
  h->name = strdup(name);
  if (!h->queue || !h->name) {
    free(h->queue);
    free(h->name);
    return -ENOMEM;
  }
  h->fn = fn;
  h->userdata = userdata;
  h->pool = pool;
  h->family = r->pools[pool].family;
  h->schema = schema;
  r->n++;
  return 0;
}

int erpq_registry_add_backoff(erpq_registry *r, const char *name, erpq_backoff_fn fn,
                              void *userdata) {
  for (size_t i = 0; i < r->nb; i++)
    if (!strcmp(r->b[i].name, name)) return -EEXIST;
  if (r->nb == r->capb) {
    size_t nc = r->capb ? r->capb * 2 : 8;
    void *b = realloc(r->b, nc * sizeof *r->b);
    if (!b) return -ENOMEM;
    r->b = b;
    r->capb = nc;
  }
  r->b[r->nb].name = strdup(name);
  if (!r->b[r->nb].name) return -ENOMEM;
  r->b[r->nb].fn = fn;
  r->b[r->nb].userdata = userdata;
  r->nb++;
  return 0;
}

const erpq_handler *erpq_registry_find(const erpq_registry *r, const char *queue,
                                       const char *name) {
  const erpq_handler *star = NULL;
  for (size_t i = 0; i < r->n; i++) {
    if (strcmp(r->h[i].queue, queue)) continue;
    if (!strcmp(r->h[i].name, name)) return &r->h[i];
    if (!strcmp(r->h[i].name, "*")) star = &r->h[i];
  }
  return star;
}

int erpq_registry_serves(const erpq_registry *r, const char *queue) {
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->h[i].queue, queue)) return 1;
  return 0;
}

int erpq_registry_backoff(const erpq_registry *r, const char *type, int64_t delay,
                          const json_t *options, int attempts_made, const char *err_message,
                          int64_t *delay_ms, char *err, size_t errlen) {
  *delay_ms = 0;
  if (!type || !*type) return 0;
  for (size_t i = 0; i < r->nb; i++)
    if (!strcmp(r->b[i].name, type)) {
      *delay_ms = r->b[i].fn(attempts_made, err_message, options, r->b[i].userdata);
      return 0;
    }
  if (!strcmp(type, "fixed")) {
    *delay_ms = delay;
    return 0;
  }
  if (!strcmp(type, "exponential")) {
    *delay_ms = (int64_t)llround((pow(2, attempts_made) - 1) * (double)delay);
    return 0;
  }
  return erpq_fail(err, errlen, -ENOENT,
                   "Unknown backoff strategy %s. If a custom backoff strategy is used, specify "
                   "it when the queue is created.",
                   type);
}
