/*
 * erpq_mustache_render.c - rendering a compiled template against a JSON
 * context, and the static analysis of names (see erpq_mustache.h).
 *
 * The context stack and the indentation of partials live on the C stack
 * as linked frames; the only heap memory a render takes is the list of
 * missing names (pointers into the templates' name arenas, which outlive
 * the render) and, for an interpolated object or array, its JSON text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_mustache_internal.h"

typedef struct frame {
  const json_t *v;
  const struct frame *up;
} frame;

typedef struct indent {
  const char *s;
  size_t n;
  const struct indent *up;
} indent;

typedef struct rstate {
  const erpq_mustache_opts *o;
  erpq_buf *out;
  int html, collect, depth, oom;
  const char **miss; /* names that resolved to nothing, first seen first */
  size_t nmiss, capmiss;
  char *err;
  size_t errlen;
} rstate;

/* JavaScript's String(d) (erpq_mustache_internal.h): the shortest digits that read back as d,
 * placed as ECMAScript's Number::toString places them. */
size_t erpq_mustache_js_number(double d, char *out) {
  if (d == 0)
    return (size_t)sprintf(out, "0");
  if (isnan(d))
    return (size_t)sprintf(out, "NaN");
  if (isinf(d))
    return (size_t)sprintf(out, d < 0 ? "-Infinity" : "Infinity");
  char tmp[48];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
    if (strtod(tmp, NULL) == d)
      break;
  }
  /* tmp is [-]d[.ddd]e(+|-)xx; the decimal point may be a locale's. */
  char digits[24];
  int k = 0, neg = 0;
  const char *q = tmp;
  if (*q == '-')
    neg = 1, q++;
  for (; *q && *q != 'e' && *q != 'E'; q++)
    if (*q >= '0' && *q <= '9' && k < 20)
      digits[k++] = *q;
  int n = (*q ? atoi(q + 1) : 0) + 1; /* d = 0.digits * 10^n */
  while (k > 1 && digits[k - 1] == '0')
    k--;
  char *w = out;
  if (neg)
    *w++ = '-';
  if (k <= n && n <= 21) {
    memcpy(w, digits, (size_t)k), w += k;
    for (int i = 0; i < n - k; i++)
      *w++ = '0';
  } else if (0 < n && n <= 21) {
    memcpy(w, digits, (size_t)n), w += n;
    *w++ = '.';
    memcpy(w, digits + n, (size_t)(k - n)), w += k - n;
  } else if (-6 < n && n <= 0) {
    *w++ = '0', *w++ = '.';
    for (int i = 0; i < -n; i++)
      *w++ = '0';
    memcpy(w, digits, (size_t)k), w += k;
  } else {
    *w++ = digits[0];
    if (k > 1) {
      *w++ = '.';
      memcpy(w, digits + 1, (size_t)(k - 1)), w += k - 1;
    }
    w += sprintf(w, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  *w = '\0';
  return (size_t)(w - out);
}

/* HTML mode: & < > " ' become entities; every other byte is copied. */
static void put_escaped(erpq_buf *b, const char *s, size_t n) {
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    const char *ent;
    switch (s[i]) {
    case '&': ent = "&amp;"; break;
    case '<': ent = "&lt;"; break;
    case '>': ent = "&gt;"; break;
    case '"': ent = "&quot;"; break;
    case '\'': ent = "&#39;"; break;
    default: continue;
    }
    erpq_buf_add(b, s + run, i - run);
    erpq_buf_adds(b, ent);
    run = i + 1;
  }
  erpq_buf_add(b, s + run, n - run);
}

static void put_value(rstate *st, const json_t *v, int escape) {
  char num[48];
  const char *s;
  size_t n;
  char *dump = NULL;
  switch (json_typeof(v)) {
  case JSON_STRING:
    s = json_string_value(v);
    n = json_string_length(v);
    break;
  case JSON_INTEGER:
    n = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    s = num;
    break;
  case JSON_REAL:
    n = erpq_mustache_js_number(json_real_value(v), num);
    s = num;
    break;
  case JSON_TRUE: s = "true", n = 4; break;
  case JSON_FALSE: s = "false", n = 5; break;
  case JSON_NULL: return;
  default:
    if (!(dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY))) {
      st->oom = 1;
      return;
    }
    s = dump;
    n = strlen(dump);
    break;
  }
  if (escape)
    put_escaped(st->out, s, n);
  else
    erpq_buf_add(st->out, s, n);
  free(dump);
}

static void put_indent(erpq_buf *b, const indent *ind) {
  if (!ind)
    return;
  put_indent(b, ind->up);
  erpq_buf_add(b, ind->s, ind->n);
}

/* 1 with *v set when the node's name resolves, 0 when it resolves to
 * nothing (an explicit null resolves: to null). */
static int lookup(const erpq_mustache *t, const mnode *nd, const frame *f, const json_t **v) {
  if (!nd->nparts) {
    *v = f->v;
    return 1;
  }
  const char *part = mnode_part0(t, nd);
  const json_t *x = NULL;
  for (; f; f = f->up)
    if (json_is_object(f->v) && (x = json_object_get(f->v, part)))
      break;
  if (!x)
    return 0;
  for (unsigned i = 1; i < nd->nparts; i++) {
    part += strlen(part) + 1;
    if (!json_is_object(x) || !(x = json_object_get(x, part)))
      return 0;
  }
  *v = x;
  return 1;
}

/* null, false, 0, "" and [] are falsy (JavaScript's truthiness). */
static int falsy(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_NULL:
  case JSON_FALSE: return 1;
  case JSON_INTEGER: return json_integer_value(v) == 0;
  case JSON_REAL: return json_real_value(v) == 0.0;
  case JSON_STRING: return json_string_length(v) == 0;
  case JSON_ARRAY: return json_array_size(v) == 0;
  default: return 0;
  }
}

static void note_missing(rstate *st, const char *name) {
  if (!st->collect)
    return;
  for (size_t i = 0; i < st->nmiss; i++)
    if (!strcmp(st->miss[i], name))
      return;
  if (st->nmiss == st->capmiss) {
    size_t cap = st->capmiss ? st->capmiss * 2 : 8;
    const char **m = realloc(st->miss, cap * sizeof *m);
    if (!m) {
      st->oom = 1;
      return;
    }
    st->miss = m;
    st->capmiss = cap;
  }
  st->miss[st->nmiss++] = name;
}

static int too_deep(rstate *st, const char *name) {
  return erpq_fail(st->err, st->errlen, -ELOOP,
                   "sections and partials nested deeper than %d levels at '%.80s' (does a "
                   "partial include itself?)",
                   ERPQ_MUSTACHE_MAX_DEPTH, name);
}

static int render(rstate *st, const erpq_mustache *t, uint32_t i, uint32_t end, const frame *f,
                  const indent *ind) {
  int rc;
  while (i < end) {
    const mnode *nd = &t->nodes[i];
    const json_t *v = NULL;
    switch (nd->kind) {
    case N_TEXT: erpq_buf_add(st->out, t->src + nd->off, nd->len); break;
    case N_INDENT: put_indent(st->out, ind); break;
    case N_VAR:
    case N_RAW:
      if (lookup(t, nd, f, &v))
        put_value(st, v, st->html && nd->kind == N_VAR);
      else
        note_missing(st, mnode_name(t, nd));
      break;
    case N_SECTION:
    case N_INVERTED: {
      int found = lookup(t, nd, f, &v);
      if (!found)
        note_missing(st, mnode_name(t, nd));
      int on = found && !falsy(v);
      if (on == (nd->kind == N_SECTION)) {
        if (++st->depth > ERPQ_MUSTACHE_MAX_DEPTH)
          return too_deep(st, mnode_name(t, nd));
        if (nd->kind == N_INVERTED) {
          rc = render(st, t, i + 1, nd->end, f, ind);
        } else if (json_is_array(v)) {
          rc = 0;
          for (size_t k = 0; !rc && k < json_array_size(v); k++) {
            frame fr = {json_array_get(v, k), f};
            rc = render(st, t, i + 1, nd->end, &fr, ind);
          }
        } else {
          frame fr = {v, f};
          rc = render(st, t, i + 1, nd->end, &fr, ind);
        }
        if (rc)
          return rc;
        st->depth--;
      }
      i = nd->end;
      continue;
    }
    case N_PARTIAL: {
      const char *name = mnode_name(t, nd);
      const erpq_mustache *pt = st->o->partial ? st->o->partial(st->o->partial_ud, name) : NULL;
      if (!pt) {
        if (st->o->strict)
          return erpq_fail(st->err, st->errlen, -ENOENT, "partial '%.80s' not found", name);
        break;
      }
      if (++st->depth > ERPQ_MUSTACHE_MAX_DEPTH)
        return too_deep(st, name);
      indent in = {t->src + nd->off, nd->len, ind};
      if ((rc = render(st, pt, 0, pt->n, f, nd->standalone ? &in : NULL)))
        return rc;
      st->depth--;
      break;
    }
    }
    i++;
  }
  return 0;
}

static json_t *string_list(const char *const *s, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) {
    if (json_array_append_new(a, json_string(s[i]))) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

int erpq_mustache_render(const erpq_mustache *t, const json_t *ctx, const erpq_mustache_opts *opts,
                         erpq_buf *out, json_t **missing, char *err, size_t errlen) {
  static const erpq_mustache_opts defaults = {ERPQ_MUSTACHE_HTML, 0, NULL, NULL};
  if (missing)
    *missing = NULL;
  if (!t || !ctx || !out)
    return erpq_fail(err, errlen, -EINVAL, "template, context and output needed");
  if (!opts)
    opts = &defaults;
  size_t start = out->len;
  rstate st = {.o = opts,
               .out = out,
               .html = opts->escape == ERPQ_MUSTACHE_HTML,
               .collect = opts->strict || missing,
               .err = err,
               .errlen = errlen};
  frame root = {ctx, NULL};
  int rc = render(&st, t, 0, t->n, &root, NULL);
  if (!rc && (out->oom || st.oom))
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory rendering a template");
  if (!rc && st.nmiss && opts->strict) {
    erpq_buf m = {0};
    if (st.nmiss == 1)
      erpq_buf_adds(&m, "missing variable: ");
    else
      erpq_buf_addf(&m, "%zu missing variables: ", st.nmiss);
    for (size_t i = 0; i < st.nmiss; i++) {
      if (i)
        erpq_buf_adds(&m, ", ");
      erpq_buf_adds(&m, st.miss[i]);
    }
    rc = erpq_fail(err, errlen, -EINVAL, "%s", m.s ? m.s : "missing variables");
    erpq_buf_free(&m);
  }
  if (missing && (!rc || (rc == -EINVAL && st.nmiss))) {
    if (!(*missing = string_list(st.miss, st.nmiss)))
      rc = erpq_fail(err, errlen, -ENOMEM, "out of memory listing missing variables");
  }
  if (rc && out->s && !out->oom) {
    out->len = start;
    out->s[start] = '\0';
  }
  free(st.miss);
  return rc;
}

/* Appends s to the array a unless it is there already; -ENOMEM. */
static int add_unique(json_t *a, const char *s) {
  size_t i;
  json_t *x;
  json_array_foreach(a, i, x) if (!strcmp(json_string_value(x), s)) return 0;
  return json_array_append_new(a, json_string(s)) ? -ENOMEM : 0;
}

typedef struct seen {
  const erpq_mustache **t;
  size_t n, cap;
} seen;

static int names_walk(const erpq_mustache *t, erpq_mustache_partial_fn fn, void *ud, json_t *a,
                      seen *sn) {
  int rc;
  for (uint32_t i = 0; i < t->n;) {
    const mnode *nd = &t->nodes[i];
    const char *p0;
    switch (nd->kind) {
    case N_VAR:
    case N_RAW:
    case N_INVERTED:
    case N_SECTION:
      if ((p0 = mnode_part0(t, nd)) && (rc = add_unique(a, p0)))
        return rc;
      i = nd->kind == N_SECTION ? nd->end : i + 1;
      continue;
    case N_PARTIAL: {
      const erpq_mustache *pt = fn ? fn(ud, mnode_name(t, nd)) : NULL;
      size_t k = 0;
      while (pt && k < sn->n && sn->t[k] != pt)
        k++;
      if (pt && k == sn->n) {
        if (sn->n == sn->cap) {
          size_t cap = sn->cap ? sn->cap * 2 : 8;
          const erpq_mustache **m = realloc(sn->t, cap * sizeof *m);
          if (!m)
            return -ENOMEM;
          sn->t = m;
          sn->cap = cap;
        }
        sn->t[sn->n++] = pt;
        if ((rc = names_walk(pt, fn, ud, a, sn)))
          return rc;
      }
      break;
    }
    }
    i++;
  }
  return 0;
}

int erpq_mustache_names(const erpq_mustache *t, erpq_mustache_partial_fn partial, void *ud,
                        json_t **names) {
  seen sn = {0};
  json_t *a = json_array();
  int rc = a ? 0 : -ENOMEM;
  if (!rc && (sn.t = malloc(sizeof *sn.t))) {
    sn.t[0] = t;
    sn.n = sn.cap = 1;
  } else {
    rc = -ENOMEM;
  }
  if (!rc)
    rc = names_walk(t, partial, ud, a, &sn);
  free(sn.t);
  if (rc) {
    json_decref(a);
    a = NULL;
  }
  *names = a;
  return rc;
}

int erpq_mustache_partials(const erpq_mustache *t, json_t **names) {
  json_t *a = json_array();
  int rc = a ? 0 : -ENOMEM;
  for (uint32_t i = 0; !rc && i < t->n; i++)
    if (t->nodes[i].kind == N_PARTIAL)
      rc = add_unique(a, mnode_name(t, &t->nodes[i]));
  if (rc) {
    json_decref(a);
    a = NULL;
  }
  *names = a;
  return rc;
}
