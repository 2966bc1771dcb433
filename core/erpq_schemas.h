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
 * Each schema is compiled once (erpq_schema_compile(): its patterns go into
 * the set's pattern table), so checking a value never compiles anything.
 *
 * The set is read-only after the load and may be shared by threads; it
 * owns the parsed schemas and their patterns. erpq_schemas_get() returns
 * borrowed pointers valid until erpq_schemas_free().
 */
#ifndef ERPQ_SCHEMAS_H
#define ERPQ_SCHEMAS_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_catalog.h"

typedef struct erpq_schemas erpq_schemas;

/* One compiled schema: the document and the patterns it runs with. */
typedef struct erpq_schema erpq_schema;

/* Loads the schemas of every family of cat (from dir when not NULL or "").
 * Returns 0, or ERPQ_E_JSON / ERPQ_E_ARG / -ENOENT with err naming the
 * file. */
int erpq_schemas_load(erpq_schemas **out, const erpq_family_meta *cat, const char *dir,
                      char *err, size_t errlen);
void erpq_schemas_free(erpq_schemas *s);
/* The schema of family's job, or NULL. */
const erpq_schema *erpq_schemas_get(const erpq_schemas *s, const char *family, const char *job);
/* The schema's JSON document (borrowed). */
const json_t *erpq_schema_doc(const erpq_schema *sc);
/* Appends every problem of data to problems (paths under base); returns
 * their number (0 = valid). */
int erpq_schemas_validate(const erpq_schema *sc, const json_t *data, const char *base,
                          json_t *problems);
/* Checks data against sc: NULL when it matches, else a malloc'ed
 * failedReason "job data does not match its schema: /data/x: ...; ..." (no
 * values quoted). */
char *erpq_schemas_problems(const erpq_schema *sc, const json_t *data);

#endif
