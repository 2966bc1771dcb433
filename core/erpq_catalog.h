/*
 * erpq_catalog.h - what the job families built into this erpq are: their
 * names, the queues they serve by default and their jobs, each job with its
 * data schema.
 *
 * The catalog is data, generated at build time from the family folders
 * (jobs/<family>/CMakeLists.txt declares the family with erpq_family();
 * every jobs/<family>/schemas/<job>.json is one job, its file name the job's
 * name, its content embedded here). So a family's job names live in one
 * place, its schema files, and both binaries know them without reading the
 * disk: the worker checks at start that each family registers handlers for
 * exactly its catalog jobs, and the HTTP API refuses any other name on a
 * family's queue. Families left out of the build (-DERPQ_FAMILIES=...) are
 * not in the catalog.
 *
 * The catalog is immutable static data; every function here is thread-safe
 * and returns borrowed pointers into it (or into the table given).
 */
#ifndef ERPQ_CATALOG_H
#define ERPQ_CATALOG_H

#include <stddef.h>

typedef struct erpq_job_meta {
  const char *name;   /* "generate-fees" */
  const char *schema; /* The schema's JSON text. */
  const char *source; /* Where it came from, for messages: "jobs/fees/schemas/generate-fees.json". */
} erpq_job_meta;

typedef struct erpq_family_meta {
  const char *name;    /* "fees" */
  const char *summary; /* One line for --help and `erpq-worker families`. */
  const char *const *queues; /* Default queues, NULL-terminated. */
  const erpq_job_meta *jobs;
  size_t njobs;
} erpq_family_meta;

/* The families built in, ending with an entry whose name is NULL
 * (generated; linked from the erpqcatalog library). */
extern const erpq_family_meta erpq_catalog[];

/* The family called name in cat (a table like erpq_catalog: tests pass
 * their own), or NULL. */
const erpq_family_meta *erpq_catalog_family(const erpq_family_meta *cat, const char *name);
/* The job called name of family f, or NULL. */
const erpq_job_meta *erpq_catalog_job(const erpq_family_meta *f, const char *name);
/* Whether queue is one of f's default queues. */
int erpq_catalog_default_queue(const erpq_family_meta *f, const char *queue);

#endif
