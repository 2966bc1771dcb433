/*
 * erpq_registry.h - the worker's table of handlers and backoff strategies.
 *
 * Filled once at start by the job families (erpq_registry_add() in
 * erpq_job.h) and read-only afterwards, so lookups need no lock. Handlers
 * are found by (queue, name), then (queue, "*"), as bull dispatches by
 * handlers[job.name] || handlers['*'].
 */
#ifndef ERPQ_REGISTRY_H
#define ERPQ_REGISTRY_H

#include "erpq_job.h"

typedef struct erpq_handler {
  char *queue, *name;
  erpq_handler_fn fn;
  void *userdata;
  int pool;           /* The family's thread pool (erpq_registry_family_pool()). */
  const char *family; /* Its family's name ("" for erpq_registry_add()). */
  const void *schema; /* Compiled data schema (erpq_schemas.h), or NULL. */
} erpq_handler;

typedef struct erpq_registry_pool {
  char *family;
  int threads; /* 0: one per concurrency slot of the queues it serves. */
} erpq_registry_pool;

struct erpq_registry {
  erpq_handler *h;
  size_t n, cap;
  struct {
    char *name;
    erpq_backoff_fn fn;
    void *userdata;
  } *b;
  size_t nb, capb;
  erpq_registry_pool *pools; /* pools[0] is erpq_registry_add()'s. */
  int npools;
};

void erpq_registry_init(erpq_registry *r);
/* A thread pool for family (created on first use; same name, same pool).
 * Returns its index (>= 1) or -ENOMEM. */
int erpq_registry_family_pool(erpq_registry *r, const char *family, int threads);
/* erpq_registry_add() for a family's pool, with the job's compiled schema
 * (borrowed; may be NULL). On -EEXIST, *other (may be NULL) is the family
 * already serving queue/name. */
int erpq_registry_add_in(erpq_registry *r, int pool, const char *queue, const char *name,
                         erpq_handler_fn fn, void *userdata, const void *schema,
                         const char **other);
void erpq_registry_free(erpq_registry *r);
/* Returns the handler for a job (borrowed), or NULL when none matches. */
const erpq_handler *erpq_registry_find(const erpq_registry *r, const char *queue,
                                       const char *name);
/* True if the queue has at least one handler. */
int erpq_registry_serves(const erpq_registry *r, const char *queue);

/* The backoff delay for a failed attempt, as bull's backoffs.calculate():
 * custom strategies first, then fixed/exponential. Returns 0 and sets
 * *delay_ms (0 = retry now, -1 = stop), or -ENOENT for an unknown type
 * (message in err). A job without backoff gets 0. */
int erpq_registry_backoff(const erpq_registry *r, const char *type, int64_t delay,
                          const json_t *options, int attempts_made, const char *err_message,
                          int64_t *delay_ms, char *err, size_t errlen);

#endif
