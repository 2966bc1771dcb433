#include "erpq_cli_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_catalog.h"
#include "erpq_datapath.h"
#include "erpq_err.h"
#include "erpq_jobtypes.h"
#include "erpq_opts.h"
#include "erpq_queues.h"
#include "erpq_schemas.h"

struct erpq_cli_checker {
  erpq_schemas *schemas;
  erpq_jobtypes *types;
};

void erpq_cli_checker_free(erpq_cli_checker *c) {
  if (!c) return;
  erpq_jobtypes_free(c->types);
  erpq_schemas_free(c->schemas);
  free(c);
}

int erpq_cli_checker_load(erpq_cli_checker **out, char *err, size_t errlen) {
  *out = NULL;
  erpq_cli_checker *c = calloc(1, sizeof *c);
  if (!c) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  char roles[4096];
  const char *ro = getenv("ERPQ_ROLES_FILE");
  json_error_t je;
  json_t *doc = NULL;
  int rc = erpq_datapath("roles.json", ro, ro ? "ERPQ_ROLES_FILE" : NULL, roles, sizeof roles, err,
                         errlen);
  if (!rc && !(doc = json_load_file(roles, 0, &je)))
    rc = erpq_fail(err, errlen, ERPQ_E_JSON, "roles file %s: %s (line %d)", roles, je.text, je.line);
  if (!rc) {
    const char *sd = getenv("ERPQ_SCHEMA_DIR");
    rc = erpq_schemas_load(&c->schemas, erpq_catalog, sd && *sd ? sd : NULL, err, errlen);
  }
  erpq_bindings b;
  erpq_bindings_init(&b, erpq_catalog);
  const char *qs = getenv("ERPQ_QUEUES");
  if (!rc && qs && *qs) rc = erpq_bindings_add_list(&b, qs, NULL, err, errlen);
  if (!rc && qs && *qs) rc = erpq_bindings_check(&b, err, errlen);
  if (!rc)
    rc = erpq_jobtypes_build(&c->types, &b, c->schemas, json_object_get(doc, "queues"), err,
                             errlen);
  erpq_bindings_free(&b);
  json_decref(doc);
  if (rc) {
    erpq_cli_checker_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

static void problem(json_t *problems, const char *base, const char *path, const char *msg) {
  char p[512];
  snprintf(p, sizeof p, "%s%s", base, path);
  json_array_append_new(problems, json_pack("{s:s,s:s}", "path", p, "message", msg));
}

int erpq_cli_check_job(const erpq_cli_checker *c, const char *queue, const char *name,
                       const json_t *data, const json_t *opts, const char *base,
                       json_t *problems) {
  size_t before = json_array_size(problems);
  char msg[1400];
  if (!erpq_jobtypes_queue_known(c->types, queue)) {
    char known[1024] = "";
    for (size_t i = 0; erpq_jobtypes_queue(c->types, i); i++) {
      size_t k = strlen(known);
      snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", erpq_jobtypes_queue(c->types, i));
    }
    snprintf(msg, sizeof msg,
             "queue '%.128s' is not served by a built-in job family nor listed in roles.json "
             "(known: %s)",
             queue, known);
    problem(problems, base, "/queue", msg);
    return (int)(json_array_size(problems) - before);
  }
  const erpq_schema *schema = NULL;
  if (!erpq_jobtypes_lookup(c->types, queue, name, &schema, NULL)) {
    char names[1024];
    erpq_jobtypes_names(c->types, queue, names, sizeof names);
    snprintf(msg, sizeof msg, "'%.128s' is not a job queue %.128s takes (it takes: %s)", name,
             queue, names);
    problem(problems, base, "/name", msg);
  } else if (schema) {
    char path[600];
    snprintf(path, sizeof path, "%s/data", base);
    erpq_schemas_validate(schema, data, path, problems);
  }
  if (json_is_object(opts)) {
    char path[600];
    snprintf(path, sizeof path, "%s/opts", base);
    erpq_opts_check_keys(opts, path, problems);
  }
  return (int)(json_array_size(problems) - before);
}
