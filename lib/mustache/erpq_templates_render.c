/*
 * erpq_templates_render.c - lookups in the loaded store (locale chains,
 * partial resolution) and the strict email and SMS renders. Everything
 * here only reads the store, so it runs on any thread without a lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_templates_internal.h"

int erpq_tpl_valid_locale(const char *s, int lax) {
  size_t len = strlen(s), sub = 0;
  if (!len || len > ERPQ_TPL_MAX_LOCALE)
    return 0;
  for (; *s; s++) {
    if (*s == '-' || (lax && *s == '_')) {
      if (!sub)
        return 0;
      sub = 0;
    } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
      if (++sub > 8)
        return 0;
    } else {
      return 0;
    }
  }
  return sub > 0;
}

void erpq_tpl_make_chain(const char *locale, erpq_tpl_chain *c) {
  c->n = 0;
  if (locale && erpq_tpl_valid_locale(locale, 1)) {
    char cur[ERPQ_TPL_MAX_LOCALE + 1];
    snprintf(cur, sizeof cur, "%s", locale);
    for (char *p = cur; *p; p++)
      if (*p == '_')
        *p = '-';
    for (;;) {
      if (strcasecmp(cur, "en") && c->n < ERPQ_TPL_MAX_CHAIN - 1)
        memcpy(c->loc[c->n++], cur, sizeof cur);
      char *dash = strrchr(cur, '-');
      if (!dash)
        break;
      *dash = '\0';
    }
  }
  memcpy(c->loc[c->n++], "en", 3);
}

int erpq_tpl_cmp(const void *a, const void *b) {
  const tset *x = a, *y = b;
  int r = strcmp(x->name, y->name);
  return r ? r : strcasecmp(x->locale, y->locale);
}

tset *erpq_tpl_find(const table *t, const char *name, const char *locale) {
  tset key = {.name = (char *)name, .locale = (char *)locale};
  return t->n ? bsearch(&key, t->v, t->n, sizeof *t->v, erpq_tpl_cmp) : NULL;
}

const tset *erpq_tpl_partial(const erpq_tpl_resolver *r, const char *name) {
  for (int i = 0; i <= r->c.n; i++) {
    const tset *p = erpq_tpl_find(&r->s->partials, name, i < r->c.n ? r->c.loc[i] : "");
    if (p)
      return p;
  }
  return NULL;
}

const erpq_mustache *erpq_tpl_resolve(void *resolver, const char *name) {
  const tset *p = erpq_tpl_partial(resolver, name);
  return p ? p->t[0] : NULL;
}

/* The set a request uses: the first complete one along the chain. */
static const tset *choose(const table *t, const char *name, const char *locale) {
  erpq_tpl_chain c;
  erpq_tpl_make_chain(locale, &c);
  for (int i = 0; i < c.n; i++) {
    const tset *e = erpq_tpl_find(t, name, c.loc[i]);
    if (e && e->usable)
      return e;
  }
  return NULL;
}

const char *erpq_templates_email_locale(const erpq_templates *s, const char *name,
                                        const char *locale) {
  const tset *e = choose(&s->email, name, locale);
  return e ? e->locale : NULL;
}

const char *erpq_templates_sms_locale(const erpq_templates *s, const char *name,
                                      const char *locale) {
  const tset *e = choose(&s->sms, name, locale);
  return e ? e->locale : NULL;
}

static int vars_of(const erpq_templates *s, const table *t, const char *name, const char *locale,
                   json_t **names) {
  *names = NULL;
  const tset *e = choose(t, name, locale);
  if (!e)
    return -ENOENT;
  erpq_tpl_resolver r = {.s = s};
  erpq_tpl_make_chain(e->locale, &r.c);
  json_t *all = json_array();
  for (int p = 0; all && p < NPARTS; p++) {
    json_t *part;
    if (!e->t[p])
      continue;
    if (erpq_mustache_names(e->t[p], erpq_tpl_resolve, &r, &part)) {
      json_decref(all);
      return -ENOMEM;
    }
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(part, i, v) {
      int have = 0;
      json_array_foreach(all, k, w) have |= json_equal(v, w);
      if (!have)
        json_array_append(all, v);
    }
    json_decref(part);
  }
  *names = all;
  return all ? 0 : -ENOMEM;
}

int erpq_templates_email_vars(const erpq_templates *s, const char *name, const char *locale,
                              json_t **names) {
  return vars_of(s, &s->email, name, locale, names);
}

int erpq_templates_sms_vars(const erpq_templates *s, const char *name, const char *locale,
                            json_t **names) {
  return vars_of(s, &s->sms, name, locale, names);
}

/* --------------------------------------------------------------- render -- */

/* Trims whitespace at both ends in place; with flatten, every CR or LF
 * inside becomes a space (a subject is one header line). */
static void tidy(char *s, int flatten) {
  size_t n = strlen(s), a = 0;
  while (n && strchr(" \t\r\n", s[n - 1]))
    n--;
  while (a < n && strchr(" \t\r\n", s[a]))
    a++;
  memmove(s, s + a, n - a);
  s[n - a] = '\0';
  if (flatten)
    for (char *p = s; *p; p++)
      if (*p == '\r' || *p == '\n')
        *p = ' ';
}

/* Renders the parts of set e that want[] asks for, strictly. Missing
 * variables of all parts are gathered into one message. */
static int render_set(const erpq_templates *s, const char *kind, const tset *e, const json_t *vars,
                      const int want[NPARTS], char *out[NPARTS], char *err, size_t errlen) {
  erpq_tpl_resolver r = {.s = s};
  erpq_tpl_make_chain(e->locale, &r.c);
  json_t *missing_all = json_array();
  if (!missing_all)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory rendering");
  int rc = 0;
  for (int p = 0; p < NPARTS && (!rc || rc == -EINVAL); p++) {
    if (!want[p] || !e->t[p])
      continue;
    erpq_mustache_opts o = {p == P_HTML ? ERPQ_MUSTACHE_HTML : ERPQ_MUSTACHE_TEXT, 1,
                            erpq_tpl_resolve, &r};
    erpq_buf b = {0};
    json_t *missing = NULL;
    char msg[512];
    int prc = erpq_mustache_render(e->t[p], vars, &o, &b, NULL, msg, sizeof msg);
    /* The list of missing names only when there are some (a second pass
     * on the failure path keeps the common path free of allocations). */
    if (prc == -EINVAL)
      prc = erpq_mustache_render(e->t[p], vars, &o, &b, &missing, msg, sizeof msg);
    if (prc == -EINVAL && missing) {
      size_t i, k;
      json_t *v, *w;
      json_array_foreach(missing, i, v) {
        int have = 0;
        json_array_foreach(missing_all, k, w) have |= json_equal(v, w);
        if (!have)
          json_array_append(missing_all, v);
      }
      rc = -EINVAL;
    } else if (prc) {
      rc = erpq_fail(err, errlen, prc, "%s: %s", e->file[p], msg);
    } else if (!(out[p] = erpq_buf_take(&b))) {
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory rendering");
    }
    json_decref(missing);
    erpq_buf_free(&b);
  }
  if (rc == -EINVAL && json_array_size(missing_all)) {
    erpq_buf m = {0};
    size_t i;
    json_t *v;
    json_array_foreach(missing_all, i, v) {
      erpq_buf_adds(&m, i ? ", " : "");
      erpq_buf_adds(&m, json_string_value(v));
    }
    size_t n = json_array_size(missing_all);
    rc = erpq_fail(err, errlen, -EINVAL, "%s template '%s' (%s): %zu missing variable%s: %s", kind,
                   e->name, e->locale, n, n == 1 ? "" : "s", m.s ? m.s : "?");
    erpq_buf_free(&m);
  }
  json_decref(missing_all);
  if (rc)
    for (int p = 0; p < NPARTS; p++) {
      free(out[p]);
      out[p] = NULL;
    }
  return rc;
}

int erpq_templates_render_email(const erpq_templates *s, const char *name, const char *locale,
                                const json_t *vars, char **subject, char **text, char **html,
                                char *err, size_t errlen) {
  *subject = *text = NULL;
  if (html)
    *html = NULL;
  if (!json_is_object(vars))
    return erpq_fail(err, errlen, -EINVAL, "email variables must be a JSON object");
  const tset *e = choose(&s->email, name, locale);
  if (!e)
    return erpq_fail(err, errlen, -ENOENT, "no email template '%.80s'", name);
  int want[NPARTS] = {1, 1, html != NULL};
  char *out[NPARTS] = {0};
  int rc = render_set(s, "email", e, vars, want, out, err, errlen);
  if (rc)
    return rc;
  tidy(out[P_SUBJECT], 1);
  *subject = out[P_SUBJECT];
  *text = out[P_TXT];
  if (html)
    *html = out[P_HTML];
  return 0;
}

int erpq_templates_render_sms(const erpq_templates *s, const char *name, const char *locale,
                              const json_t *vars, char **text, char *err, size_t errlen) {
  *text = NULL;
  if (!json_is_object(vars))
    return erpq_fail(err, errlen, -EINVAL, "SMS variables must be a JSON object");
  const tset *e = choose(&s->sms, name, locale);
  if (!e)
    return erpq_fail(err, errlen, -ENOENT, "no SMS template '%.80s'", name);
  int want[NPARTS] = {0, 1, 0};
  char *out[NPARTS] = {0};
  int rc = render_set(s, "sms", e, vars, want, out, err, errlen);
  if (rc)
    return rc;
  tidy(out[P_TXT], 0);
  *text = out[P_TXT];
  return 0;
}
