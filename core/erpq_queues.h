/*
 * erpq_queues.h - which job families serve which queue, and how many jobs
 * at a time.
 *
 * A queue binding is written NAME[:N][@family[,family...]]:
 *   reports:2                the families whose default queue is reports,
 *                            2 jobs at a time
 *   acc:4@fees,diag          fees and diag together on queue acc
 *   erpq-diag                concurrency 1
 * in --queue flags (one binding each) and in ERPQ_QUEUES (several, separated
 * by spaces, ';' or ','; after an @, a comma followed by the name of a
 * built-in family continues the family list, so "a@fees,diag,b:2" is two
 * queues: a with fees and diag, and b).
 *
 * The same queue named twice is one queue: the families are merged and the
 * concurrency is the one given explicitly (two different explicit values
 * are an error). After all bindings are in, erpq_bindings_check() refuses
 * a queue that no family serves (a queue is never served silently by
 * nobody) and a job name that two families on one queue both have (the
 * error names both families); two families on one queue are fine when
 * their job names differ.
 *
 * An erpq_bindings holds borrowed pointers into the catalog it was given
 * (which must outlive it) and owns its array; one thread at a time.
 */
#ifndef ERPQ_QUEUES_H
#define ERPQ_QUEUES_H

#include <stddef.h>

#include "erpq_catalog.h"

#define ERPQ_QUEUE_NAME_MAX 128
#define ERPQ_BIND_FAMILIES_MAX 8 /* Families on one queue. */

typedef struct erpq_binding {
  char name[ERPQ_QUEUE_NAME_MAX];
  int concurrency;   /* 1 unless given. */
  int explicit_conc; /* Concurrency was given (":N"). */
  const erpq_family_meta *fam[ERPQ_BIND_FAMILIES_MAX];
  int nfam;
} erpq_binding;

typedef struct erpq_bindings {
  const erpq_family_meta *cat;
  erpq_binding *q;
  int n, cap;
} erpq_bindings;

void erpq_bindings_init(erpq_bindings *b, const erpq_family_meta *cat);
void erpq_bindings_free(erpq_bindings *b);

/* Adds one binding spec. family, when not NULL, is added to the spec's own
 * @ list (--diag-queue NAME[:N] is NAME[:N]@diag). Returns 0 or ERPQ_E_ARG
 * with err (bad name or number, unknown family, conflicting concurrency). */
int erpq_bindings_add(erpq_bindings *b, const char *spec, const char *family, char *err,
                      size_t errlen);
/* Adds every binding of a list as ERPQ_QUEUES holds it. */
int erpq_bindings_add_list(erpq_bindings *b, const char *list, const char *family, char *err,
                           size_t errlen);
/* The final check described above. Returns 0 or ERPQ_E_ARG with err. */
int erpq_bindings_check(const erpq_bindings *b, char *err, size_t errlen);

/* The binding of queue, or NULL. */
const erpq_binding *erpq_bindings_find(const erpq_bindings *b, const char *queue);
/* The family of binding q serving job name, or NULL. */
const erpq_family_meta *erpq_binding_family_of(const erpq_binding *q, const char *job);

#endif
