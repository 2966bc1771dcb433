#include "erpq_schemas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_jsonschema.h"

struct erpq_schema {
  json_t *doc;
  const erpq_schema_patterns *pats; /* The set's table. */
};

typedef struct entry {
  const char *family, *job; /* Borrowed from the catalog. */
  erpq_schema sc;
} entry;

struct erpq_schemas {
  entry *e;
  size_t n;
  erpq_schema_patterns *pats;
};

void erpq_schemas_free(erpq_schemas *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) json_decref(s->e[i].sc.doc);
  erpq_schema_patterns_free(s->pats);
  free(s->e);
  free(s);
}

int erpq_schemas_load(erpq_schemas **out, const erpq_family_meta *cat, const char *dir,
                      char *err, size_t errlen) {
  *out = NULL;
  erpq_schemas *s = calloc(1, sizeof *s);
  size_t total = 0;
  for (const erpq_family_meta *f = cat; f && f->name; f++) total += f->njobs;
  if (!s || (total && !(s->e = calloc(total, sizeof *s->e))) || erpq_schema_patterns_new(&s->pats)) {
    if (s) free(s->e);
    free(s);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  int rc = 0;
  for (const erpq_family_meta *f = cat; f && f->name && !rc; f++)
    for (size_t j = 0; j < f->njobs && !rc; j++) {
      const erpq_job_meta *m = &f->jobs[j];
      json_error_t je;
      json_t *v;
      char where[4096];
      if (dir && *dir) {
        snprintf(where, sizeof where, "%s/%s/%s.json", dir, f->name, m->name);
        v = json_load_file(where, 0, &je);
        if (!v) {
          FILE *probe = fopen(where, "r");
          if (!probe) {
            rc = erpq_fail(err, errlen, -ENOENT, "schema %s is missing (job %s of family %s)", where,
                           m->name, f->name);
            break;
          }
          fclose(probe);
        }
      } else {
        snprintf(where, sizeof where, "%s", m->source);
        v = json_loads(m->schema, 0, &je);
      }
      if (!v) {
        rc = erpq_fail(err, errlen, ERPQ_E_JSON, "schema %s: line %d: %s", where, je.line, je.text);
        break;
      }
      char why[512];
      if (erpq_schema_compile(v, s->pats, why, sizeof why)) {
        json_decref(v);
        rc = erpq_fail(err, errlen, ERPQ_E_ARG, "schema %s: %s", where, why);
        break;
      }
      s->e[s->n].family = f->name;
      s->e[s->n].job = m->name;
      s->e[s->n].sc.doc = v;
      s->e[s->n].sc.pats = s->pats;
      s->n++;
    }
  if (rc) {
    erpq_schemas_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

const erpq_schema *erpq_schemas_get(const erpq_schemas *s, const char *family, const char *job) {
  for (size_t i = 0; s && family && job && i < s->n; i++)
    if (!strcmp(s->e[i].family, family) && !strcmp(s->e[i].job, job)) return &s->e[i].sc;
  return NULL;
}

const json_t *erpq_schema_doc(const erpq_schema *sc) { return sc ? sc->doc : NULL; }

int erpq_schemas_validate(const erpq_schema *sc, const json_t *data, const char *base,
                          json_t *problems) {
  return erpq_schema_validate(sc->doc, sc->pats, data ? data : json_null(), base, problems);
}

char *erpq_schemas_problems(const erpq_schema *sc, const json_t *data) {
  if (!sc) return NULL;
  json_t *problems = json_array();
  char *out = NULL;
  if (problems && erpq_schemas_validate(sc, data, "/data", problems) > 0) {
    char *text = erpq_schema_problems_text(problems);
    size_t n = (text ? strlen(text) : 0) + 64;
    out = malloc(n);
    if (out) snprintf(out, n, "job data does not match its schema: %s", text ? text : "");
    free(text);
  }
  json_decref(problems);
  return out;
}
