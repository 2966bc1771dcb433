/*
 * erpq_jsonschema.h - a small JSON Schema subset validator.
 *
 * The HTTP API (before enqueueing) and the worker (before running a
 * handler) check job data against schemas/jobs/<name>.json with this one
 * module, so a job refused by one is refused by the other for the same
 * reasons.
 *
 * Supported keywords (draft 2020-12 meaning): type (a string or an array of
 * strings: object, array, string, integer, number, boolean, null), required,
 * properties, additionalProperties (false or a schema), items (one schema),
 * minItems/maxItems, minimum/maximum, exclusiveMinimum/exclusiveMaximum,
 * minLength/maxLength (in Unicode code points), pattern (POSIX extended
 * regex, unanchored as JSON Schema says), enum, const, format "date"
 * (YYYY-MM-DD, a real calendar day) and "date-time" (RFC 3339). Other
 * keywords ($schema, $id, title, description, examples, ...) are ignored.
 *
 * Validation never stops at the first problem: every problem is appended to
 * a JSON array of {"path": "/data/schoolId", "message": "..."} objects, so
 * that a 422 answer or a failedReason lists them all. Messages never quote
 * the offending value (job data may be personal data): they name the path
 * and the rule.
 *
 * A set (erpq_schema_set) holds the schemas of a directory, one per job
 * name (file name without ".json"), loaded once; it is read-only afterwards
 * and may be shared by threads.
 */
#ifndef ERPQ_JSONSCHEMA_H
#define ERPQ_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Validates v against schema (both borrowed). Appends problems to
 * problems (a JSON array, borrowed) with paths under base ("" for the
 * root). Returns the number of problems found (0 = valid). */
int erpq_schema_validate(const json_t *schema, const json_t *v, const char *base,
                         json_t *problems);

/* Checks that a schema only uses what this module understands correctly
 * (types are known, pattern compiles). Returns 0 or ERPQ_E_ARG with err. */
int erpq_schema_check(const json_t *schema, char *err, size_t errlen);

typedef struct erpq_schema_set erpq_schema_set;

/* Loads every *.json file of dir. A missing directory gives an empty set
 * (0); a file that is not valid JSON or not a usable schema fails the load
 * (ERPQ_E_JSON / ERPQ_E_ARG with err naming the file). *out is owned by the
 * caller. */
int erpq_schema_set_load(const char *dir, erpq_schema_set **out, char *err, size_t errlen);
void erpq_schema_set_free(erpq_schema_set *s);
/* The schema for job name, borrowed, or NULL. */
const json_t *erpq_schema_set_get(const erpq_schema_set *s, const char *name);
size_t erpq_schema_set_count(const erpq_schema_set *s);

/* Joins problems into one line "path: message; path: message" (malloc'ed,
 * owned by the caller), for failedReason. */
char *erpq_schema_problems_text(const json_t *problems);

/* Finds the project's schemas folder for a program run from the build
 * tree: env (if set and non-empty) wins; else "<exe>/../../schemas/<sub>"
 * when that exists (build/bin/erpq-worker in a checkout); else
 * "/usr/share/erpq/schemas/<sub>". Writes the path into buf. */
void erpq_schema_default_path(const char *env, const char *sub, char *buf, size_t buflen);

#endif
