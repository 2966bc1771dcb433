#include "erpq_catalog.h"

#include <string.h>

const erpq_family_meta *erpq_catalog_family(const erpq_family_meta *cat, const char *name) {
  for (const erpq_family_meta *f = cat; f && name && f->name; f++)
    if (!strcmp(f->name, name)) return f;
  return NULL;
}

const erpq_job_meta *erpq_catalog_job(const erpq_family_meta *f, const char *name) {
  for (size_t i = 0; f && name && i < f->njobs; i++)
    if (!strcmp(f->jobs[i].name, name)) return &f->jobs[i];
  return NULL;
}

int erpq_catalog_default_queue(const erpq_family_meta *f, const char *queue) {
  for (const char *const *q = f ? f->queues : NULL; q && *q; q++)
    if (!strcmp(*q, queue)) return 1;
  return 0;
}
