/*
 * erpq_cli_check.h - the CLI checks what the HTTP API checks, before
 * anything is sent.
 *
 * The same sources as the API (erpq_jobtypes.h): the built-in families'
 * queues and job names, the bindings in ERPQ_QUEUES, the roles file's
 * other queues (roles.json by the data-path rule, or ERPQ_ROLES_FILE), and
 * the job schemas (built in, or ERPQ_SCHEMA_DIR). A job is refused when its
 * queue is unknown, its name is not one the queue takes, its data breaks
 * its schema, or its opts has a key that is not a bull job option; every
 * problem is listed. `add --no-validate` skips all of it.
 *
 * Loaded once per command; read-only afterwards. Owns what it loads.
 */
#ifndef ERPQ_CLI_CHECK_H
#define ERPQ_CLI_CHECK_H

#include <jansson.h>
#include <stddef.h>

typedef struct erpq_cli_checker erpq_cli_checker;

/* Returns 0 or an error (a data file or schema that cannot be loaded, a
 * bad ERPQ_QUEUES) with err. */
int erpq_cli_checker_load(erpq_cli_checker **out, char *err, size_t errlen);
void erpq_cli_checker_free(erpq_cli_checker *c);

/* Appends every problem of the job to problems ({"path","message"}, paths
 * under base: "" for add, "/line 3" for add-bulk); returns their number.
 * data and opts may be NULL. */
int erpq_cli_check_job(const erpq_cli_checker *c, const char *queue, const char *name,
                       const json_t *data, const json_t *opts, const char *base,
                       json_t *problems);

#endif
