#include "erpq_jobtypes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"

typedef struct jt_job {
  char *name;
  const erpq_schema *schema; /* Borrowed from the schemas, or NULL. */
  const char *family;   /* Borrowed from the catalog, or NULL. */
} jt_job;

typedef struct jt_queue {
  char *name;
  int family_served;
  jt_job *jobs;
  size_t n;
} jt_queue;

struct erpq_jobtypes {
  jt_queue *q;
  size_t n;
};

void erpq_jobtypes_free(erpq_jobtypes *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    for (size_t j = 0; j < t->q[i].n; j++) free(t->q[i].jobs[j].name);
    free(t->q[i].jobs);
    free(t->q[i].name);
  }
  free(t->q);
  free(t);
}

static jt_queue *find_queue(const erpq_jobtypes *t, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->q[i].name, name)) return &t->q[i];
  return NULL;
}

static jt_queue *add_queue(erpq_jobtypes *t, const char *name) {
  jt_queue *q = find_queue(t, name);
  if (q) return q;
  jt_queue *n = realloc(t->q, (t->n + 1) * sizeof *n);
  if (!n) return NULL;
  t->q = n;
  q = &t->q[t->n];
  memset(q, 0, sizeof *q);
  if (!(q->name = strdup(name))) return NULL;
  t->n++;
  return q;
}

static int add_job(jt_queue *q, const char *name, const erpq_schema *schema, const char *family) {
  for (size_t i = 0; i < q->n; i++)
    if (!strcmp(q->jobs[i].name, name)) return 0;
  jt_job *n = realloc(q->jobs, (q->n + 1) * sizeof *n);
  if (!n) return -ENOMEM;
  q->jobs = n;
  if (!(n[q->n].name = strdup(name))) return -ENOMEM;
  n[q->n].schema = schema;
  n[q->n].family = family;
  q->n++;
  return 0;
}

static int add_family_queue(erpq_jobtypes *t, const char *queue, const erpq_family_meta *f,
                            const erpq_schemas *s) {
  jt_queue *q = add_queue(t, queue);
  if (!q) return -ENOMEM;
  q->family_served = 1;
  for (size_t j = 0; j < f->njobs; j++) {
    int rc = add_job(q, f->jobs[j].name, erpq_schemas_get(s, f->name, f->jobs[j].name), f->name);
    if (rc) return rc;
  }
  return 0;
}

/* The only family with a job called name, or NULL. */
static const erpq_family_meta *sole_family(const erpq_family_meta *cat, const char *name) {
  const erpq_family_meta *found = NULL;
  for (const erpq_family_meta *f = cat; f && f->name; f++)
    if (erpq_catalog_job(f, name)) {
      if (found) return NULL;
      found = f;
    }
  return found;
}

int erpq_jobtypes_build(erpq_jobtypes **out, const erpq_bindings *b, const erpq_schemas *schemas,
                        const json_t *policy_queues, char *err, size_t errlen) {
  *out = NULL;
  erpq_jobtypes *t = calloc(1, sizeof *t);
  if (!t) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  int rc = 0;
  for (const erpq_family_meta *f = b->cat; f && f->name && !rc; f++)
    for (const char *const *q = f->queues; q && *q && !rc; q++)
      rc = add_family_queue(t, *q, f, schemas);
  for (int i = 0; i < b->n && !rc; i++)
    for (int k = 0; k < b->q[i].nfam && !rc; k++)
      rc = add_family_queue(t, b->q[i].name, b->q[i].fam[k], schemas);
  if (rc) {
    erpq_jobtypes_free(t);
    return erpq_fail(err, errlen, rc, "out of memory");
  }
  const char *qname;
  json_t *names;
  json_object_foreach((json_t *)policy_queues, qname, names) {
    if (!json_is_array(names)) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "roles file: queues.%s must be an array of job names",
                     qname);
      break;
    }
    jt_queue *q = find_queue(t, qname);
    if (q && q->family_served) {
      /* Drift check: the same names, no more, no fewer. */
      size_t k;
      json_t *v;
      int same = json_array_size(names) == q->n;
      json_array_foreach(names, k, v) {
        int found = 0;
        for (size_t j = 0; j < q->n && json_is_string(v) && !found; j++)
          found = !strcmp(q->jobs[j].name, json_string_value(v));
        same = same && found;
      }
      if (!same) {
        char have[1024];
        erpq_jobtypes_names(t, qname, have, sizeof have);
        rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                       "roles file: queue '%s' is served by built-in job families whose jobs are "
                       "%s; its \"queues\" entry lists other names (remove the entry, or make it "
                       "match)",
                       qname, have);
        break;
      }
      continue;
    }
    if (!(q = add_queue(t, qname))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
      break;
    }
    size_t k;
    json_t *v;
    json_array_foreach(names, k, v) {
      if (!json_is_string(v) || !json_string_length(v)) {
        rc = erpq_fail(err, errlen, ERPQ_E_ARG,
                       "roles file: queues.%s[%zu] must be a non-empty string", qname, k);
        break;
      }
      const erpq_family_meta *f = sole_family(b->cat, json_string_value(v));
      rc = add_job(q, json_string_value(v),
                   f ? erpq_schemas_get(schemas, f->name, json_string_value(v)) : NULL,
                   f ? f->name : NULL);
      if (rc) {
        erpq_fail(err, errlen, rc, "out of memory");
        break;
      }
    }
    if (rc) break;
  }
  if (rc) {
    erpq_jobtypes_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int erpq_jobtypes_queue_known(const erpq_jobtypes *t, const char *queue) {
  return t && queue && find_queue(t, queue) != NULL;
}

int erpq_jobtypes_lookup(const erpq_jobtypes *t, const char *queue, const char *name,
                         const erpq_schema **schema, const char **family) {
  if (schema) *schema = NULL;
  if (family) *family = NULL;
  const jt_queue *q = t && queue ? find_queue(t, queue) : NULL;
  for (size_t i = 0; q && name && i < q->n; i++)
    if (!strcmp(q->jobs[i].name, name)) {
      if (schema) *schema = q->jobs[i].schema;
      if (family) *family = q->jobs[i].family;
      return 1;
    }
  return 0;
}

void erpq_jobtypes_names(const erpq_jobtypes *t, const char *queue, char *out, size_t outlen) {
  if (outlen) out[0] = '\0';
  const jt_queue *q = t && queue ? find_queue(t, queue) : NULL;
  size_t len = 0;
  for (size_t i = 0; q && i < q->n && len + 1 < outlen; i++) {
    int n = snprintf(out + len, outlen - len, "%s%s", i ? ", " : "", q->jobs[i].name);
    if (n < 0) break;
    len += (size_t)n;
  }
}

const char *erpq_jobtypes_queue(const erpq_jobtypes *t, size_t i) {
  return t && i < t->n ? t->q[i].name : NULL;
}
