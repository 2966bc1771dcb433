/*
 * erpq_templates.c - loading the template store (see erpq_templates.h):
 * reading and compiling templates/ once at start-up, and the load-time
 * checks. Lookups and renders are in erpq_templates_render.c.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_mustache.h"
#include "erpq_templates_internal.h"

static const char *const part_names[NPARTS] = {"subject", "txt", "html"};
enum { K_EMAIL, K_SMS, K_PARTIAL };

static int valid_name(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_'))
      return 0;
  return 1;
}

static void set_free(tset *e) {
  free(e->name);
  free(e->locale);
  for (int i = 0; i < NPARTS; i++) {
    erpq_mustache_free(e->t[i]);
    free(e->file[i]);
  }
}

/* The set for (name, locale) in t, added when new. */
static tset *get_set(table *t, const char *name, const char *locale) {
  for (size_t i = 0; i < t->n; i++)
    if (!strcmp(t->v[i].name, name) && !strcasecmp(t->v[i].locale, locale))
      return &t->v[i];
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    tset *v = realloc(t->v, cap * sizeof *v);
    if (!v)
      return NULL;
    t->v = v;
    t->cap = cap;
  }
  tset *e = &t->v[t->n];
  memset(e, 0, sizeof *e);
  e->name = strdup(name);
  e->locale = strdup(locale);
  e->usable = 1;
  if (!e->name || !e->locale) {
    set_free(e);
    return NULL;
  }
  t->n++;
  return e;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads and compiles one file into its place in the store. */
static int load_file(erpq_templates *s, int kind, const char *path, const char *fname, char *err,
                     size_t errlen) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", fname);
  char *f[5] = {0};
  int nf = 0;
  for (char *p = buf, *tok; nf < 5 && (tok = strsep(&p, "."));)
    f[nf++] = tok;
  static const char *const want[] = {"<name>.<locale>.(subject|txt|html).mustache",
                                     "<name>.<locale>.txt.mustache",
                                     "<name>.mustache or <name>.<locale>.mustache"};
  const char *name = f[0], *locale = "", *part = NULL;
  int ok;
  if (kind == K_PARTIAL) {
    ok = nf == 2 || nf == 3;
    if (nf == 3)
      locale = f[1];
  } else {
    ok = nf == 4;
    locale = f[1];
    part = f[2];
  }
  int pi = 0;
  if (part) {
    while (pi < NPARTS && strcmp(part_names[pi], part))
      pi++;
    if (pi == NPARTS || (kind == K_SMS && pi != P_TXT))
      ok = 0;
  }
  if (!ok || !valid_name(name) || (*locale && !erpq_tpl_valid_locale(locale, 0)) ||
      strlen(fname) >= sizeof buf)
    return erpq_fail(err, errlen, -EINVAL, "%s: the file name does not fit %s", path, want[kind]);
  table *t = kind == K_EMAIL ? &s->email : kind == K_SMS ? &s->sms : &s->partials;
  tset *e = get_set(t, name, locale);
  if (!e)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory loading templates");
  if (e->t[pi])
    return erpq_fail(err, errlen, -EINVAL, "%s: same template, locale and part as %s", path,
                     e->file[pi]);
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return erpq_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
  size_t len;
  char *src = erpq_buf_read_all(fp, &len);
  fclose(fp);
  if (!src)
    return erpq_fail(err, errlen, -EIO, "%s: cannot read the file", path);
  char msg[512];
  int rc = erpq_mustache_compile(src, len, &e->t[pi], msg, sizeof msg);
  free(src);
  if (rc)
    return erpq_fail(err, errlen, rc, "%s: %s", path, msg);
  if (!(e->file[pi] = strdup(path)))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory loading templates");
  return 0;
}

/* Every *.mustache file of dir/sub, in name order. A missing sub is fine. */
static int load_kind(erpq_templates *s, const char *dir, const char *sub, int kind, char *err,
                     size_t errlen) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, sub) >= sizeof path)
    return erpq_fail(err, errlen, -ENAMETOOLONG, "template directory path too long");
  DIR *d = opendir(path);
  if (!d) {
    if (errno == ENOENT)
      return 0;
    return erpq_fail(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while (!rc && (de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 10 || strcmp(de->d_name + l - 9, ".mustache") || de->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) {
        rc = -ENOMEM;
        break;
      }
      names = nn;
    }
    if (!(names[n] = strdup(de->d_name)))
      rc = -ENOMEM;
    else
      n++;
  }
  closedir(d);
  if (rc)
    erpq_fail(err, errlen, rc, "out of memory listing %s", path);
  if (n)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; !rc && i < n; i++) {
    char file[4096];
    struct stat st;
    if ((size_t)snprintf(file, sizeof file, "%s/%s", path, names[i]) >= sizeof file) {
      rc = erpq_fail(err, errlen, -ENAMETOOLONG, "%s/%s: path too long", path, names[i]);
      break;
    }
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
      continue;
    rc = load_file(s, kind, file, names[i], err, errlen);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

/* "hi-IN, hi, en" */
static void chain_text(const erpq_tpl_chain *c, char *out, size_t n) {
  size_t w = 0;
  out[0] = '\0';
  for (int i = 0; i < c->n && w < n; i++)
    w += (size_t)snprintf(out + w, n - w, "%s%s", i ? ", " : "", c->loc[i]);
}

/* The partials t reaches (directly or through others) must resolve. */
static int check_partials(const erpq_tpl_resolver *r, const erpq_mustache *t, const char *file,
                          const erpq_mustache **seen, int *nseen, char *err, size_t errlen) {
  json_t *names;
  if (erpq_mustache_partials(t, &names))
    return erpq_fail(err, errlen, -ENOMEM, "out of memory checking partials");
  size_t i;
  json_t *v;
  int rc = 0;
  json_array_foreach(names, i, v) {
    const char *name = json_string_value(v);
    const tset *p = erpq_tpl_partial(r, name);
    if (!p) {
      char locs[128];
      chain_text(&r->c, locs, sizeof locs);
      rc = erpq_fail(err, errlen, -EINVAL,
                     "%s: partial '%s' not found (looked for partials/%s.<locale>.mustache for "
                     "%s, then partials/%s.mustache)",
                     file, name, name, locs, name);
      break;
    }
    int k = 0;
    while (k < *nseen && seen[k] != p->t[0])
      k++;
    if (k < *nseen || *nseen == 64)
      continue;
    seen[(*nseen)++] = p->t[0];
    if ((rc = check_partials(r, p->t[0], p->file[0], seen, nseen, err, errlen)))
      break;
  }
  json_decref(names);
  return rc;
}

/* Appends the top-level names of t (through its partials) to all. */
static int add_names(const erpq_tpl_resolver *r, const erpq_mustache *t, json_t *all) {
  json_t *names;
  if (erpq_mustache_names(t, erpq_tpl_resolve, (void *)r, &names))
    return -ENOMEM;
  size_t i, k;
  json_t *v, *w;
  int rc = 0;
  json_array_foreach(names, i, v) {
    int have = 0;
    json_array_foreach(all, k, w) have |= json_equal(v, w);
    if (!have && json_array_append(all, v))
      rc = -ENOMEM;
  }
  json_decref(names);
  return rc;
}

/* Names of every part of set e, resolving partials along its chain. */
static json_t *set_names(const erpq_templates *s, const tset *e) {
  erpq_tpl_resolver r = {.s = s};
  erpq_tpl_make_chain(e->locale, &r.c);
  json_t *all = json_array();
  for (int p = 0; all && p < NPARTS; p++) {
    if (e->t[p] && add_names(&r, e->t[p], all)) {
      json_decref(all);
      return NULL;
    }
  }
  return all;
}

/* One set against the rules of erpq_templates.h. */
static int check_set(const erpq_templates *s, const tset *e, const tset *en, const char *kind,
                     char *err, size_t errlen) {
  erpq_tpl_resolver r = {.s = s};
  erpq_tpl_make_chain(e->locale, &r.c);
  json_t *en_names = set_names(s, en);
  if (!en_names)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory checking templates");
  int rc = 0;
  for (int p = 0; !rc && p < NPARTS; p++) {
    if (!e->t[p])
      continue;
    const erpq_mustache *seen[64];
    int nseen = 0;
    if ((rc = check_partials(&r, e->t[p], e->file[p], seen, &nseen, err, errlen)))
      break;
    json_t *mine = json_array();
    if (!mine || add_names(&r, e->t[p], mine)) {
      json_decref(mine);
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory checking templates");
      break;
    }
    size_t k, j;
    json_t *v, *w;
    json_array_foreach(mine, k, v) {
      int known = 0;
      json_array_foreach(en_names, j, w) known |= json_equal(v, w);
      if (!known) {
        rc = erpq_fail(err, errlen, -EINVAL,
                       "%s uses the variable '%s', which the 'en' set of %s template '%s' does "
                       "not use (a typo? every locale gets the same variables)",
                       e->file[p], json_string_value(v), kind, e->name);
        break;
      }
    }
    json_decref(mine);
  }
  json_decref(en_names);
  return rc;
}

/* Marks complete sets usable, warns about the others, checks the rest.
 * need_subject: email sets need subject and txt, SMS sets txt only. */
static int check_table(const erpq_templates *s, const char *dir, table *t, const char *kind,
                       int need_subject, erpq_templates_warn_fn warn, void *wud, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < t->n; i++)
    t->v[i].usable = t->v[i].t[P_TXT] && (!need_subject || t->v[i].t[P_SUBJECT]);
  for (size_t i = 0; i < t->n; i++) {
    const tset *e = &t->v[i];
    const tset *en = erpq_tpl_find(t, e->name, "en");
    if (!en || !en->usable)
      return erpq_fail(err, errlen, -EINVAL,
                       "%s template '%s' has no complete 'en' set (%s/%s/%s.en.%s.mustache), "
                       "the set every locale falls back to",
                       kind, e->name, dir, kind, e->name, need_subject ? "{subject,txt}" : "txt");
    if (!e->usable) {
      char msg[512];
      snprintf(msg, sizeof msg,
               "%s template '%s', locale %s: the set has no %s file, so it is ignored and "
               "requests for %s fall back to the next locale as a whole",
               kind, e->name, e->locale,
               e->t[P_TXT]                        ? "subject"
               : need_subject && !e->t[P_SUBJECT] ? "subject and no txt"
                                                  : "txt",
               e->locale);
      if (warn)
        warn(wud, msg);
      continue;
    }
    int rc = check_set(s, e, en, kind, err, errlen);
    if (rc)
      return rc;
  }
  return 0;
}

int erpq_templates_load(const char *dir, erpq_templates_warn_fn warn, void *warn_ud,
                        erpq_templates **out, char *err, size_t errlen) {
  *out = NULL;
  struct stat st;
  if (!dir || stat(dir, &st) || !S_ISDIR(st.st_mode))
    return erpq_fail(err, errlen, -ENOENT, "template directory %s cannot be read",
                     dir ? dir : "(none)");
  erpq_templates *s = calloc(1, sizeof *s);
  if (!s)
    return erpq_fail(err, errlen, -ENOMEM, "out of memory loading templates");
  int rc = load_kind(s, dir, "email", K_EMAIL, err, errlen);
  if (!rc)
    rc = load_kind(s, dir, "sms", K_SMS, err, errlen);
  if (!rc)
    rc = load_kind(s, dir, "partials", K_PARTIAL, err, errlen);
  if (!rc) {
    table *ts[] = {&s->email, &s->sms, &s->partials};
    for (int i = 0; i < 3; i++)
      if (ts[i]->n)
        qsort(ts[i]->v, ts[i]->n, sizeof *ts[i]->v, erpq_tpl_cmp);
  }
  if (!rc)
    rc = check_table(s, dir, &s->email, "email", 1, warn, warn_ud, err, errlen);
  if (!rc)
    rc = check_table(s, dir, &s->sms, "sms", 0, warn, warn_ud, err, errlen);
  if (rc) {
    erpq_templates_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void erpq_templates_free(erpq_templates *s) {
  if (!s)
    return;
  table *ts[] = {&s->email, &s->sms, &s->partials};
  for (int i = 0; i < 3; i++) {
    for (size_t k = 0; k < ts[i]->n; k++)
      set_free(&ts[i]->v[k]);
    free(ts[i]->v);
  }
  free(s);
}
