/*
 * erpq_jobtypes.h - which job names each queue takes, and the schema that
 * checks each job's data: what the HTTP API and the CLI check before they
 * enqueue anything.
 *
 * Built from three sources:
 *   1. the built-in families on their queues: their default queues, plus
 *      any bindings given (the same --queue NAME[:N]@family / ERPQ_QUEUES
 *      the worker reads, erpq_queues.h); such a queue takes exactly its
 *      families' jobs, each checked by its family's schema;
 *   2. the "queues" object of the roles file (roles.json): queues served by
 *      other workers (Node bull, ...), with their job names. A name that is
 *      the job of exactly one built-in family is checked with that family's
 *      schema; other names are taken as they are;
 *   3. drift check: roles.json may also list a family's queue, but then its
 *      names must be exactly the families' jobs; otherwise building fails,
 *      naming the queue and the names that differ.
 *
 * Immutable once built, shared by threads; borrows the bindings' catalog
 * and the schemas (they must outlive it).
 */
#ifndef ERPQ_JOBTYPES_H
#define ERPQ_JOBTYPES_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_queues.h"
#include "erpq_schemas.h"

typedef struct erpq_jobtypes erpq_jobtypes;

/* b: the bindings (their catalog's default queues are added here, so an
 * empty erpq_bindings is fine); schemas may be NULL (no checks: only with
 * --no-schemas); policy_queues: roles.json's "queues" object or NULL.
 * Returns 0 or ERPQ_E_ARG with err. */
int erpq_jobtypes_build(erpq_jobtypes **out, const erpq_bindings *b, const erpq_schemas *schemas,
                        const json_t *policy_queues, char *err, size_t errlen);
void erpq_jobtypes_free(erpq_jobtypes *t);

/* 1 if queue is known (served by a family or listed in the roles file). */
int erpq_jobtypes_queue_known(const erpq_jobtypes *t, const char *queue);
/* 1 if queue takes job name; *schema (may be NULL) gets its schema or NULL,
 * *family (may be NULL) the family serving it or NULL. */
int erpq_jobtypes_lookup(const erpq_jobtypes *t, const char *queue, const char *name,
                         const erpq_schema **schema, const char **family);
/* The job names queue takes, comma-separated, for messages ("" if none). */
void erpq_jobtypes_names(const erpq_jobtypes *t, const char *queue, char *out, size_t outlen);
/* Every queue known, in no particular order: the i-th or NULL past the end. */
const char *erpq_jobtypes_queue(const erpq_jobtypes *t, size_t i);

#endif
