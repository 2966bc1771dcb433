/*
 * erpq_familyset.h - the job families of one worker process, brought up
 * for the queues bound to them.
 *
 * erpq_familyset_start() takes the family table, the catalog, the queue
 * bindings (erpq_queues.h) and the parsed settings, and for every family
 * that at least one queue is bound to, in catalog order:
 *   1. init(): its context from its settings (a family nobody uses is not
 *      initialised, so it needs no configuration);
 *   2. a thread pool in the registry sized by its `threads`;
 *   3. bind() on each of its queues (default: every job of its table),
 *      each handler registered with the job's compiled schema;
 *   4. the drift check: on each queue the family handles exactly its
 *      catalog jobs (plus "*" if it wants), and each handler's name is a
 *      catalog job; a name two families register on one queue is an error
 *      naming both.
 * Any failure stops the start with one sentence in err (the families
 * already initialised are shut down again).
 *
 * At the end: erpq_familyset_quiesce() after the event loop has returned
 * (async families end what they hold), erpq_familyset_free() once no
 * handler runs (shutdown() of each, in reverse order).
 *
 * Ownership: the set borrows fams, cat, bindings, args and schemas (they
 * must outlive it) and owns the family contexts. Main thread only.
 */
#ifndef ERPQ_FAMILYSET_H
#define ERPQ_FAMILYSET_H

#include <stddef.h>

#include "erpq_args.h"
#include "erpq_family.h"
#include "erpq_queues.h"
#include "erpq_registry.h"
#include "erpq_schemas.h"

typedef struct erpq_familyset erpq_familyset;

/* The descriptor for a catalog family, or NULL (a family whose C code is
 * missing from fams). */
const erpq_family *erpq_family_find(const erpq_family *const *fams, const char *name);

int erpq_familyset_start(erpq_familyset **out, const erpq_family *const *fams,
                         const erpq_bindings *b, const erpq_args *args,
                         const erpq_schemas *schemas, const char *datadir, erpq_registry *reg,
                         char *err, size_t errlen);
void erpq_familyset_quiesce(erpq_familyset *s);
void erpq_familyset_free(erpq_familyset *s);

/* Runs a family's subcommand: init (env.concurrency 0), cmd->main, shutdown.
 * Returns the exit status (1 when init fails, with the reason on stderr). */
int erpq_family_command(const erpq_family *f, const erpq_family_meta *meta,
                        const erpq_family_cmd *cmd, const erpq_args *args, const char *datadir);

#endif
