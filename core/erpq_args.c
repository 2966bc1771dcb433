#include "erpq_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "erpq_buf.h"
#include "erpq_config.h"
#include "erpq_err.h"
#include "erpq_util.h"

#define MAX_OPTS 256 /* Options across all tables of one program. */

typedef struct slot {
  const erpq_opt *o;
  erpq_src src;
  char *val;         /* Resolved value (STRING, INT, FLAG "1"), owned. */
  char origin[160];  /* "--name", "ERPQ_X" or "ERPQ_X_FILE". */
  char **list;       /* LIST values, owned. */
  size_t nlist;
  int given;         /* Times the flag appeared. */
} slot;

struct erpq_args {
  slot s[MAX_OPTS];
  int n;
  char **pos;
  int npos;
};

static slot *find(erpq_args *a, const char *name, size_t len) {
  for (int i = 0; i < a->n; i++)
    if (strlen(a->s[i].o->name) == len && !strncmp(a->s[i].o->name, name, len)) return &a->s[i];
  return NULL;
}

static const slot *cfind(const erpq_args *a, const char *name) {
  return find((erpq_args *)a, name, strlen(name));
}

static int push_list(slot *s, const char *v) {
  char **l = realloc(s->list, (s->nlist + 1) * sizeof *l);
  if (!l) return -ENOMEM;
  s->list = l;
  if (!(l[s->nlist] = strdup(v))) return -ENOMEM;
  s->nlist++;
  return 0;
}

static int set_val(slot *s, const char *v, erpq_src src, const char *origin) {
  char *c = strdup(v);
  if (!c) return -ENOMEM;
  free(s->val);
  s->val = c;
  s->src = src;
  snprintf(s->origin, sizeof s->origin, "%s", origin);
  return 0;
}

/* Reads a secret file: its content without one trailing newline. */
static int read_secret(const char *path, char **out, char *err, size_t errlen, const char *var) {
  FILE *f = fopen(path, "rb");
  if (!f) return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: cannot open %s: %s", var, path, strerror(errno));
  size_t len = 0;
  char *s = erpq_buf_read_all(f, &len);
  fclose(f);
  if (!s) return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: cannot read %s", var, path);
  if (len && s[len - 1] == '\n') s[--len] = '\0';
  if (len && s[len - 1] == '\r') s[--len] = '\0';
  if (strlen(s) != len) {
    free(s);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "%s: %s holds a NUL byte", var, path);
  }
  *out = s;
  return 0;
}

static int truthy(const char *v) {
  return !strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
         !strcasecmp(v, "on");
}

/* Fills what the flags left unset from the environment, _FILE and the
 * default, then checks INT ranges. */
static int resolve(slot *s, char *err, size_t errlen) {
  const erpq_opt *o = s->o;
  int rc = 0;
  if (s->src == ERPQ_SRC_NONE && o->env) {
    const char *v = getenv(o->env);
    if (v && *v) {
      if (o->kind == ERPQ_OPT_LIST) {
        if ((rc = push_list(s, v))) return rc;
        s->src = ERPQ_SRC_ENV;
        snprintf(s->origin, sizeof s->origin, "%s", o->env);
      } else if (o->kind == ERPQ_OPT_FLAG) {
        if (truthy(v) && (rc = set_val(s, "1", ERPQ_SRC_ENV, o->env))) return rc;
      } else if ((rc = set_val(s, v, ERPQ_SRC_ENV, o->env))) {
        return rc;
      }
    } else if (o->flags & ERPQ_OPT_SECRET) {
      char var[160];
      snprintf(var, sizeof var, "%s_FILE", o->env);
      const char *path = getenv(var);
      if (path && *path) {
        char *content = NULL;
        if ((rc = read_secret(path, &content, err, errlen, var))) return rc;
        free(s->val);
        s->val = content;
        s->src = ERPQ_SRC_FILE;
        snprintf(s->origin, sizeof s->origin, "%s", var);
      }
    }
  }
  if (s->src == ERPQ_SRC_NONE && o->dflt && o->kind != ERPQ_OPT_LIST && o->kind != ERPQ_OPT_FLAG) {
    if ((rc = set_val(s, o->dflt, ERPQ_SRC_DEFAULT, "default"))) return rc;
  }
  if (o->kind == ERPQ_OPT_INT && s->val && s->src != ERPQ_SRC_DEFAULT) {
    int64_t v;
    if (erpq_parse_int_arg(s->origin, s->val, o->min, o->max, &v, err, errlen)) return ERPQ_E_ARG;
  }
  return 0;
}

int erpq_args_parse(erpq_args **out, const erpq_opt *const *tables, int argc, char **argv,
                    unsigned mode, int *used, char *err, size_t errlen) {
  *out = NULL;
  erpq_args *a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  int rc = 0;
  for (int t = 0; tables && tables[t]; t++)
    for (const erpq_opt *o = tables[t]; o->name; o++) {
      if (cfind(a, o->name)) continue; /* The first table to name an option wins. */
      if (a->n == MAX_OPTS) {
        erpq_args_free(a);
        return erpq_fail(err, errlen, ERPQ_E_ARG, "too many options");
      }
      a->s[a->n++].o = o;
    }
  int i = 0, only_pos = 0;
  for (; i < argc && !rc; i++) {
    const char *arg = argv[i];
    if (!only_pos && !strcmp(arg, "--")) {
      only_pos = 1;
      continue;
    }
    if (only_pos || arg[0] != '-' || !arg[1]) {
      if (mode & ERPQ_ARGS_STOP) break;
      char **p = realloc(a->pos, (size_t)(a->npos + 1) * sizeof *p);
      if (!p || !(p[a->npos] = strdup(arg))) {
        if (p) a->pos = p;
        rc = -ENOMEM;
        break;
      }
      a->pos = p;
      a->npos++;
      continue;
    }
    if (arg[1] != '-') {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "unknown option '%s'", arg);
      break;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    slot *s = find(a, name, nl);
    if (!s) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "unknown option '%.*s'", (int)(nl + 2), arg);
      break;
    }
    const char *v = NULL;
    if (s->o->kind == ERPQ_OPT_FLAG) {
      if (eq) {
        rc = erpq_fail(err, errlen, ERPQ_E_ARG, "option '--%s' takes no value", s->o->name);
        break;
      }
      v = "1";
    } else if (eq) {
      v = eq + 1;
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "option '--%s' needs a value (%s)", s->o->name,
                     s->o->metavar ? s->o->metavar : "VALUE");
      break;
    }
    char origin[160];
    snprintf(origin, sizeof origin, "--%s", s->o->name);
    if (s->o->kind == ERPQ_OPT_LIST) {
      rc = push_list(s, v);
      s->src = ERPQ_SRC_FLAG;
      snprintf(s->origin, sizeof s->origin, "%s", origin);
    } else if (s->given) {
      rc = erpq_fail(err, errlen, ERPQ_E_ARG, "option '--%s' given twice", s->o->name);
    } else {
      rc = set_val(s, v, ERPQ_SRC_FLAG, origin);
    }
    s->given++;
  }
  if (used) *used = i;
  for (int k = 0; k < a->n && !rc; k++) rc = resolve(&a->s[k], err, errlen);
  if (rc) {
    if (rc == -ENOMEM) erpq_fail(err, errlen, rc, "out of memory");
    erpq_args_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

void erpq_args_free(erpq_args *a) {
  if (!a) return;
  for (int i = 0; i < a->n; i++) {
    slot *s = &a->s[i];
    if (s->val && (s->o->flags & ERPQ_OPT_SECRET)) memset(s->val, 0, strlen(s->val));
    free(s->val);
    for (size_t k = 0; k < s->nlist; k++) free(s->list[k]);
    free(s->list);
  }
  for (int i = 0; i < a->npos; i++) free(a->pos[i]);
  free(a->pos);
  free(a);
}

const char *erpq_args_str(const erpq_args *a, const char *name) {
  const slot *s = a ? cfind(a, name) : NULL;
  return s ? s->val : NULL;
}

int64_t erpq_args_int(const erpq_args *a, const char *name, int64_t dflt) {
  const char *v = erpq_args_str(a, name);
  int64_t x;
  return v && erpq_parse_i64(v, &x) == 0 ? x : dflt;
}

int erpq_args_flag(const erpq_args *a, const char *name) { return erpq_args_str(a, name) != NULL; }

size_t erpq_args_list(const erpq_args *a, const char *name, const char *const **vals) {
  const slot *s = a ? cfind(a, name) : NULL;
  *vals = s ? (const char *const *)s->list : NULL;
  return s ? s->nlist : 0;
}

const char *erpq_args_origin(const erpq_args *a, const char *name) {
  const slot *s = a ? cfind(a, name) : NULL;
  return s && s->src != ERPQ_SRC_NONE ? s->origin : "";
}

erpq_src erpq_args_source(const erpq_args *a, const char *name) {
  const slot *s = a ? cfind(a, name) : NULL;
  return s ? s->src : ERPQ_SRC_NONE;
}

int erpq_args_npos(const erpq_args *a) { return a ? a->npos : 0; }
const char *erpq_args_pos(const erpq_args *a, int i) {
  return a && i >= 0 && i < a->npos ? a->pos[i] : NULL;
}

const char *erpq_args_env(const erpq_args *a, const char *env) {
  for (int i = 0; a && env && i < a->n; i++)
    if (a->s[i].o->env && !strcmp(a->s[i].o->env, env)) return a->s[i].val;
  return NULL;
}

const char *erpq_args_lookup(void *ud, const char *name) { return erpq_args_env(ud, name); }

void erpq_args_help(FILE *f, const erpq_opt *table) {
  for (const erpq_opt *o = table; o && o->name; o++) {
    if (o->flags & ERPQ_OPT_HIDDEN) continue;
    char head[96];
    if (o->kind == ERPQ_OPT_FLAG)
      snprintf(head, sizeof head, "  --%s", o->name);
    else
      snprintf(head, sizeof head, "  --%s %s", o->name, o->metavar ? o->metavar : "VALUE");
    fprintf(f, "%-30s", head);
    if (strlen(head) >= 30) fprintf(f, "\n%-30s", "");
    /* Help lines after the first are indented under the first. */
    for (const char *p = o->help ? o->help : ""; *p; p++) {
      fputc(*p, f);
      if (*p == '\n') fprintf(f, "%-30s", "");
    }
    int open = 0;
    if (o->env) {
      fprintf(f, " (%s%s", o->env, (o->flags & ERPQ_OPT_SECRET) ? " or " : "");
      if (o->flags & ERPQ_OPT_SECRET) fprintf(f, "%s_FILE", o->env);
      open = 1;
    }
    if (o->dflt) fprintf(f, "%sdefault %s", open ? "; " : " (", o->dflt), open = 1;
    if (o->kind == ERPQ_OPT_LIST) fprintf(f, "%srepeatable", open ? "; " : " ("), open = 1;
    fputs(open ? ")\n" : "\n", f);
  }
}
