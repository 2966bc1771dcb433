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
} erpq_handler;

struct erpq_registry {
  erpq_handler *h;
  size_t n, cap;
  struct {
    char *name;
    erpq_backoff_fn fn;
    void *userdata;
  } *b;
  size_t nb, capb;
};

void erpq_registry_init(erpq_registry *r);
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
