/*
 * erpq_templates_internal.h - the store's tables, shared by the loader
 * (erpq_templates.c) and the lookups and renders (erpq_templates_render.c).
 *
 * Three tables (email, sms, partials) of sets, each sorted by (name,
 * locale without regard to case) once loading is done and never modified
 * afterwards, so lookups are binary searches without a lock.
 */
#ifndef ERPQ_TEMPLATES_INTERNAL_H
#define ERPQ_TEMPLATES_INTERNAL_H

#include "erpq_mustache.h"
#include "erpq_templates.h"

enum { P_SUBJECT, P_TXT, P_HTML, NPARTS };

/* One template in one locale: an email set, an SMS (t[P_TXT]) or a
 * partial (t[0]; locale "" when it serves every locale). The store owns
 * every pointer. */
typedef struct tset {
  char *name, *locale;
  erpq_mustache *t[NPARTS];
  char *file[NPARTS]; /* the paths loaded, for messages */
  int usable;         /* a complete set (email: subject and txt) */
} tset;

typedef struct table {
  tset *v;
  size_t n, cap;
} table;

struct erpq_templates {
  table email, sms, partials;
};

#define ERPQ_TPL_MAX_CHAIN 8
#define ERPQ_TPL_MAX_LOCALE 35

/* The locales a request tries, most specific first, ending with "en". */
typedef struct erpq_tpl_chain {
  char loc[ERPQ_TPL_MAX_CHAIN][ERPQ_TPL_MAX_LOCALE + 1];
  int n;
} erpq_tpl_chain;

/* Partial resolution along a chain (ud of erpq_mustache_partial_fn). */
typedef struct erpq_tpl_resolver {
  const erpq_templates *s;
  erpq_tpl_chain c;
} erpq_tpl_resolver;

/* [A-Za-z0-9]{1,8} subtags joined by '-' (or '_' when lax). */
int erpq_tpl_valid_locale(const char *s, int lax);
void erpq_tpl_make_chain(const char *locale, erpq_tpl_chain *c);
int erpq_tpl_cmp(const void *a, const void *b);
tset *erpq_tpl_find(const table *t, const char *name, const char *locale);
/* The partial set a resolver picks for name, or NULL. */
const tset *erpq_tpl_partial(const erpq_tpl_resolver *r, const char *name);
const erpq_mustache *erpq_tpl_resolve(void *resolver, const char *name);

#endif
