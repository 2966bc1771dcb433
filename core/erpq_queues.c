#include "erpq_queues.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_config.h"
#include "erpq_err.h"

#define CONCURRENCY_MAX 10000

void erpq_bindings_init(erpq_bindings *b, const erpq_family_meta *cat) {
  memset(b, 0, sizeof *b);
  b->cat = cat;
}

void erpq_bindings_free(erpq_bindings *b) {
  free(b->q);
  b->q = NULL;
  b->n = b->cap = 0;
}

const erpq_binding *erpq_bindings_find(const erpq_bindings *b, const char *queue) {
  for (int i = 0; i < b->n; i++)
    if (!strcmp(b->q[i].name, queue)) return &b->q[i];
  return NULL;
}

static int add_family(erpq_binding *q, const erpq_family_meta *f, char *err, size_t errlen) {
  for (int i = 0; i < q->nfam; i++)
    if (q->fam[i] == f) return 0;
  if (q->nfam == ERPQ_BIND_FAMILIES_MAX)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "queue '%s': more than %d families", q->name,
                     ERPQ_BIND_FAMILIES_MAX);
  q->fam[q->nfam++] = f;
  return 0;
}

static int family_by_name(const erpq_bindings *b, const char *name, size_t len,
                          const erpq_family_meta **out, char *err, size_t errlen) {
  for (const erpq_family_meta *f = b->cat; f && f->name; f++)
    if (strlen(f->name) == len && !strncmp(f->name, name, len)) {
      *out = f;
      return 0;
    }
  char known[512] = "";
  for (const erpq_family_meta *f = b->cat; f && f->name; f++) {
    size_t k = strlen(known);
    snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", f->name);
  }
  return erpq_fail(err, errlen, ERPQ_E_ARG, "unknown job family '%.*s' (built in: %s)",
                   (int)(len > 64 ? 64 : len), name, known[0] ? known : "none");
}

int erpq_bindings_add(erpq_bindings *b, const char *spec, const char *family, char *err,
                      size_t errlen) {
  const char *at = strchr(spec, '@');
  size_t head = at ? (size_t)(at - spec) : strlen(spec);
  /* NAME[:N]: the last colon starts the concurrency when digits follow. */
  size_t namelen = head;
  int conc = 1, explicit_conc = 0;
  const char *colon = NULL;
  for (size_t i = head; i > 0 && !colon; i--)
    if (spec[i - 1] == ':') colon = spec + i - 1;
  if (colon && colon + 1 < spec + head) {
    char num[16];
    size_t nl = (size_t)(spec + head - colon - 1);
    if (nl < sizeof num) {
      memcpy(num, colon + 1, nl);
      num[nl] = '\0';
      if (strspn(num, "0123456789") == nl) {
        int64_t c;
        char what[160];
        snprintf(what, sizeof what, "the concurrency of '%.*s'", (int)(colon - spec), spec);
        if (erpq_parse_int_arg(what, num, 1, CONCURRENCY_MAX, &c, err, errlen)) return ERPQ_E_ARG;
        conc = (int)c;
        explicit_conc = 1;
        namelen = (size_t)(colon - spec);
      }
    }
  }
  if (namelen == 0 || namelen >= ERPQ_QUEUE_NAME_MAX)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "bad queue name in '%s'", spec);
  for (size_t i = 0; i < namelen; i++)
    if (isspace((unsigned char)spec[i]) || spec[i] == ',' || spec[i] == ';')
      return erpq_fail(err, errlen, ERPQ_E_ARG, "bad queue name in '%s'", spec);
  if (at && !at[1]) return erpq_fail(err, errlen, ERPQ_E_ARG, "'%s': no family after '@'", spec);

  /* Resolve every family first: a refused spec leaves the bindings as
   * they were. */
  const erpq_family_meta *fams[ERPQ_BIND_FAMILIES_MAX + 1];
  int nf = 0, rc = 0;
  for (const char *p = at ? at + 1 : NULL; p && *p && !rc;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (!len) return erpq_fail(err, errlen, ERPQ_E_ARG, "'%s': empty family name", spec);
    if (nf == ERPQ_BIND_FAMILIES_MAX)
      return erpq_fail(err, errlen, ERPQ_E_ARG, "'%s': more than %d families", spec,
                       ERPQ_BIND_FAMILIES_MAX);
    rc = family_by_name(b, p, len, &fams[nf++], err, errlen);
    p = comma ? comma + 1 : NULL;
  }
  if (!rc && family) rc = family_by_name(b, family, strlen(family), &fams[nf++], err, errlen);
  if (rc) return rc;

  erpq_binding *q = NULL;
  for (int i = 0; i < b->n && !q; i++)
    if (strlen(b->q[i].name) == namelen && !strncmp(b->q[i].name, spec, namelen)) q = &b->q[i];
  if (q && explicit_conc && q->explicit_conc && q->concurrency != conc)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "queue '%s' given with concurrency %d and %d",
                     q->name, q->concurrency, conc);
  if (!q) {
    if (b->n == b->cap) {
      int nc = b->cap ? b->cap * 2 : 8;
      erpq_binding *n = realloc(b->q, (size_t)nc * sizeof *n);
      if (!n) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
      b->q = n;
      b->cap = nc;
    }
    q = &b->q[b->n++];
    memset(q, 0, sizeof *q);
    memcpy(q->name, spec, namelen);
    q->concurrency = 1;
  }
  if (explicit_conc) {
    q->concurrency = conc;
    q->explicit_conc = 1;
  }
  for (int i = 0; i < nf && !rc; i++) rc = add_family(q, fams[i], err, errlen);
  if (!rc && !at && !family) {
    /* No family named: the families whose default queue this is. */
    for (const erpq_family_meta *f = b->cat; f && f->name && !rc; f++)
      if (erpq_catalog_default_queue(f, q->name)) rc = add_family(q, f, err, errlen);
  }
  return rc;
}

int erpq_bindings_add_list(erpq_bindings *b, const char *list, const char *family, char *err,
                           size_t errlen) {
  char *copy = strdup(list);
  if (!copy) return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  /* Split into specs: spaces and ';' always separate; ',' separates unless
   * it continues an @ family list with a built-in family's name. */
  int rc = 0;
  char *p = copy;
  while (*p && !rc) {
    while (*p && (isspace((unsigned char)*p) || *p == ';' || *p == ',')) p++;
    if (!*p) break;
    char *start = p;
    int in_fams = 0;
    while (*p && !isspace((unsigned char)*p) && *p != ';') {
      if (*p == '@') in_fams = 1;
      if (*p == ',') {
        const char *next = p + 1;
        size_t len = strcspn(next, ",; \t\r\n");
        const erpq_family_meta *f = NULL;
        if (!in_fams || !len || memchr(next, ':', len) || memchr(next, '@', len) ||
            family_by_name(b, next, len, &f, NULL, 0))
          break;
      }
      p++;
    }
    char save = *p;
    *p = '\0';
    rc = erpq_bindings_add(b, start, family, err, errlen);
    *p = save;
  }
  free(copy);
  return rc;
}

const erpq_family_meta *erpq_binding_family_of(const erpq_binding *q, const char *job) {
  for (int i = 0; q && i < q->nfam; i++)
    if (erpq_catalog_job(q->fam[i], job)) return q->fam[i];
  return NULL;
}

int erpq_bindings_check(const erpq_bindings *b, char *err, size_t errlen) {
  for (int i = 0; i < b->n; i++) {
    const erpq_binding *q = &b->q[i];
    if (!q->nfam) {
      char known[512] = "";
      for (const erpq_family_meta *f = b->cat; f && f->name; f++) {
        size_t k = strlen(known);
        snprintf(known + k, sizeof known - k, "%s%s", k ? ", " : "", f->name);
      }
      return erpq_fail(err, errlen, ERPQ_E_ARG,
                       "queue '%s': no job family serves it by default; name one with "
                       "'%s@FAMILY' (built in: %s)",
                       q->name, q->name, known[0] ? known : "none");
    }
    for (int a = 0; a < q->nfam; a++)
      for (int c = a + 1; c < q->nfam; c++)
        for (size_t j = 0; j < q->fam[a]->njobs; j++)
          if (erpq_catalog_job(q->fam[c], q->fam[a]->jobs[j].name))
            return erpq_fail(err, errlen, ERPQ_E_ARG,
                             "queue '%s': job '%s' is served by both family '%s' and family '%s'",
                             q->name, q->fam[a]->jobs[j].name, q->fam[a]->name, q->fam[c]->name);
  }
  return 0;
}
