/*
 * erpq_schemas.h - the job data schemas of the families built in, keyed by
 * family and job name (two families may both have a job called "send").
 *
 * By default the schemas are the ones embedded in the catalog
 * (erpq_catalog.h: jobs/<family>/schemas/<job>.json at build time), so a
 * worker or API always has them, wherever it is installed. An override
 * directory (--schemas DIR / ERPQ_SCHEMA_DIR) replaces them: it must hold
 * DIR/<family>/<job>.json for every job of every family, and a missing or
 * unusable file fails the load (never a silent fall-back to no checks).
 * Every schema is checked when loaded (erpq_schema_check(): only keywords
 * the validator implements).
 *
 * The set is read-only after the load and may be shared by threads; it
 * owns the parsed schemas. erpq_schemas_get() returns borrowed pointers
 * valid until erpq_schemas_free().
 */
#ifndef ERPQ_SCHEMAS_H
#define ERPQ_SCHEMAS_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_catalog.h"

typedef struct erpq_schemas erpq_schemas;

/* Loads the schemas of every family of cat (from dir when not NULL or "").
 * Returns 0, or ERPQ_E_JSON / ERPQ_E_ARG / -ENOENT with err naming the
 * file. */
int erpq_schemas_load(erpq_schemas **out, const erpq_family_meta *cat, const char *dir,
                      char *err, size_t errlen);
void erpq_schemas_free(erpq_schemas *s);
/* The schema of family's job, or NULL. */
const json_t *erpq_schemas_get(const erpq_schemas *s, const char *family, const char *job);
/* Checks data against schema: NULL when it matches, else a malloc'ed
 * failedReason "job data does not match its schema: /data/x: ...; ..." (no
 * values quoted). */
char *erpq_schemas_problems(const json_t *schema, const json_t *data);

#endif
