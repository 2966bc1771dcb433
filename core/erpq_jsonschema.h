/*
 * erpq_jsonschema.h - a small JSON Schema subset validator.
 *
 * The HTTP API (before enqueueing) and the worker (before running a
 * handler) check job data against schemas/jobs/<name>.json with this one
 * module, so a job refused by one is refused by the other for the same
 * reasons.
 *
 * Keywords (draft 2020-12 meaning). Implemented: type (a string or an
 * array of strings: object, array, string, integer, number, boolean,
 * null), required, properties, additionalProperties (false or a schema),
 * items (one schema), minItems/maxItems, minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum (numbers), minLength/maxLength (in
 * Unicode code points), pattern (a subset of ECMA-262 regexes, unanchored
 * as JSON Schema says: erpq_jsonschema_regex.h lists it), enum, const,
 * format "date" (YYYY-MM-DD, a real calendar day) and "date-time" (RFC
 * 3339). Annotations, accepted and not checked: $schema, $id, $comment,
 * title, description, examples, default, deprecated, readOnly, writeOnly.
 * Any other keyword (oneOf, anyOf, allOf, not, $ref, $defs, multipleOf,
 * patternProperties, if/then/else, uniqueItems, contains, prefixItems,
 * minProperties, ...), at any depth, and any other format make
 * erpq_schema_check() refuse the schema, naming the keyword and its JSON
 * pointer in the schema, so that no rule an author wrote is silently
 * left unenforced. So does a keyword whose value has the wrong type
 * ("minimum": "1", "exclusiveMinimum": true, "items": [...]).
 *
 * Patterns are compiled once, when a schema is compiled (loaded), into an
 * erpq_schema_patterns table (a set owns one for all its schemas);
 * validating a value never compiles a regex. A pattern missing from the
 * table given to erpq_schema_validate() fails the value (never compiled
 * on the fly, never skipped).
 *
 * Validation never stops at the first problem: every problem is appended to
 * a JSON array of {"path": "/data/schoolId", "message": "..."} objects, so
 * that a 422 answer or a failedReason lists them all. Messages never quote
 * the offending value (job data may be personal data): they name the path
 * and the rule.
 *
 * The job families' schemas are loaded, keyed and compiled by
 * erpq_schemas.h. A patterns table is read-only, and thread-safe, once
 * filled.
 */
#ifndef ERPQ_JSONSCHEMA_H
#define ERPQ_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Compiled patterns, keyed by their ECMA-262 source (see above). */
typedef struct erpq_schema_patterns erpq_schema_patterns;

/* A new empty table (*out owned by the caller; 0 or -ENOMEM). */
int erpq_schema_patterns_new(erpq_schema_patterns **out);
void erpq_schema_patterns_free(erpq_schema_patterns *t);
/* Checks ecma against the accepted subset and compiles it into t (once:
 * a source already there is not compiled again). 0, or ERPQ_E_ARG with
 * err naming the refused construct, or -ENOMEM. Not thread-safe. */
int erpq_schema_patterns_add(erpq_schema_patterns *t, const char *ecma, char *err, size_t errlen);
/* Whether s (NUL-terminated UTF-8) matches the compiled ecma anywhere: 1
 * or 0; -ENOENT when t does not hold ecma. Thread-safe. */
int erpq_schema_patterns_match(const erpq_schema_patterns *t, const char *ecma, const char *s);

/* Validates v against schema (all borrowed), running its patterns from
 * pats (NULL when the schema has none). Appends problems to problems (a
 * JSON array, borrowed) with paths under base ("" for the root). Returns
 * the number of problems found (0 = valid). */
int erpq_schema_validate(const json_t *schema, const erpq_schema_patterns *pats, const json_t *v,
                         const char *base, json_t *problems);

/* Checks that a schema only uses what this module enforces (see above):
 * keywords, their value types, known types and formats, and patterns in
 * the accepted subset. Returns 0 or ERPQ_E_ARG with err naming the
 * JSON pointer in the schema ("/properties/period/pattern: ..."). */
int erpq_schema_check(const json_t *schema, char *err, size_t errlen);

/* erpq_schema_check(), then compiles every pattern of schema into pats.
 * The same answers; -ENOMEM too. */
int erpq_schema_compile(const json_t *schema, erpq_schema_patterns *pats, char *err, size_t errlen);

/* Joins problems into one line "path: message; path: message" (malloc'ed,
 * owned by the caller), for failedReason. */
char *erpq_schema_problems_text(const json_t *problems);

#endif
