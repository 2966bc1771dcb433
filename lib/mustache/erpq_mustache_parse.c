/*
 * erpq_mustache_parse.c - the Mustache compiler: source text to the flat
 * node array of erpq_mustache_internal.h, with the spec's standalone-line
 * rules applied once here so that rendering never looks at whitespace.
 */
#define _GNU_SOURCE /* memmem, memrchr */
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_mustache_internal.h"

#define MAX_DELIM 32

typedef struct tag {
  char type;   /* 0 for {{x}}, else the sigil: # ^ / ! > & { = */
  size_t name; /* the trimmed name (or set-delimiter body) */
  size_t nlen;
  size_t end; /* just past the closing delimiter */
} tag;

typedef struct parser {
  const char *s;
  size_t len, pos;
  char otag[MAX_DELIM + 1], ctag[MAX_DELIM + 2]; /* ctag may get a '}' in front */
  size_t olen, clen;
  size_t line_start;  /* where the current source line starts */
  int tag_on_line;    /* a tag already began or ended on this line */
  int pending_indent; /* at a line start that has no N_INDENT yet */
  mnode *nodes;
  uint32_t n, cap;
  erpq_buf names;
  struct {
    uint32_t node;
    size_t at;
  } open[ERPQ_MUSTACHE_MAX_NESTING];
  int depth;
  char *err;
  size_t errlen;
} parser;

/* 1-based line and column (in characters) of byte offset off. */
static void where(const char *s, size_t off, unsigned *line, unsigned *col) {
  unsigned l = 1, c = 1;
  for (size_t i = 0; i < off; i++) {
    if (s[i] == '\n') {
      l++;
      c = 1;
    } else if (((unsigned char)s[i] & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

/* Fails with "<what> at line L, column C" for the byte offset at. */
static int fail_at(parser *p, size_t at, const char *what) {
  unsigned l, c;
  where(p->s, at, &l, &c);
  return erpq_fail(p->err, p->errlen, -EINVAL, "%s at line %u, column %u", what, l, c);
}

/* Offset of the first byte that is not part of valid UTF-8, or len. */
static size_t utf8_bad(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    unsigned min, cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (len - i < n)
      return i;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += n;
  }
  return len;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static mnode *add_node(parser *p, int kind) {
  if (p->n == p->cap) {
    uint32_t cap = p->cap ? p->cap * 2 : 16;
    mnode *nn = realloc(p->nodes, cap * sizeof *nn);
    if (!nn)
      return NULL;
    p->nodes = nn;
    p->cap = cap;
  }
  mnode *nd = &p->nodes[p->n++];
  memset(nd, 0, sizeof *nd);
  nd->kind = (uint8_t)kind;
  return nd;
}

static int add_text(parser *p, size_t a, size_t b) {
  if (a >= b)
    return 0;
  if (p->n && p->nodes[p->n - 1].kind == N_TEXT &&
      p->nodes[p->n - 1].off + p->nodes[p->n - 1].len == a) {
    p->nodes[p->n - 1].len += (uint32_t)(b - a);
    return 0;
  }
  mnode *nd = add_node(p, N_TEXT);
  if (!nd)
    return -ENOMEM;
  nd->off = (uint32_t)a;
  nd->len = (uint32_t)(b - a);
  return 0;
}

/* Source text [a, b) into text nodes, with an N_INDENT at the start of
 * every non-empty line. */
static int emit_text(parser *p, size_t a, size_t b) {
  while (a < b) {
    if (p->pending_indent) {
      if (p->s[a] != '\n' && !add_node(p, N_INDENT))
        return -ENOMEM;
      p->pending_indent = 0;
    }
    const char *nl = memchr(p->s + a, '\n', b - a);
    size_t stop = nl ? (size_t)(nl - p->s) + 1 : b;
    if (add_text(p, a, stop))
      return -ENOMEM;
    a = stop;
    if (nl) {
      p->line_start = a;
      p->tag_on_line = 0;
      p->pending_indent = 1;
    }
  }
  return 0;
}

/* Reads the tag whose opening delimiter starts at t. */
static int parse_tag(parser *p, size_t t, tag *tg) {
  const char *s = p->s;
  size_t i = t + p->olen;
  while (i < p->len && is_ws(s[i]))
    i++;
  tg->type = 0;
  if (i < p->len && strchr("#^/!>&{=<$", s[i]) && s[i] != '\0')
    tg->type = s[i++];
  if (tg->type == '<' || tg->type == '$')
    return fail_at(p, t, "unsupported template inheritance tag ('<' or '$')");
  if (tg->type != '!')
    while (i < p->len && is_ws(s[i]))
      i++;
  const char *close = p->ctag;
  size_t clen = p->clen;
  char curly[MAX_DELIM + 2];
  if (tg->type == '{') {
    curly[0] = '}';
    memcpy(curly + 1, p->ctag, p->clen + 1);
    close = curly;
    clen = p->clen + 1;
  }
  const char *c;
  if (tg->type == '=') {
    /* The body ends at the first '=', which only whitespace may separate
     * from the closing delimiter: "{{={{ }}=}}" sets {{ }} again. */
    const char *q = memchr(s + i, '=', p->len - i), *r = q;
    while (r && r + 1 < s + p->len && is_ws(r[1]))
      r++;
    c = r && (size_t)(s + p->len - r - 1) >= clen && !memcmp(r + 1, close, clen) ? r + 1 : NULL;
    if (!c)
      return fail_at(p, t, "set-delimiter tag without a closing '=' before its delimiter");
  } else {
    c = memmem(s + i, p->len - i, close, clen);
  }
  if (!c) {
    char msg[96];
    snprintf(msg, sizeof msg, "unclosed tag '%s'", p->otag);
    return fail_at(p, t, msg);
  }
  size_t e = (size_t)(c - s);
  tg->name = i;
  while (e > i && is_ws(s[e - 1]))
    e--;
  tg->nlen = e - i;
  tg->end = (size_t)(c - s) + clen;
  return 0;
}

/* Whether the tag [t, end) is alone on its line; if so *ls is where the
 * line starts and *after where the next one starts. */
static int standalone(parser *p, size_t t, size_t end, size_t *ls, size_t *after) {
  const char *s = p->s;
  const char *nl = t > p->pos ? memrchr(s + p->pos, '\n', t - p->pos) : NULL;
  int on_line;
  if (nl) {
    *ls = (size_t)(nl - s) + 1;
    on_line = 0;
  } else {
    *ls = p->line_start;
    on_line = p->tag_on_line;
  }
  if (on_line || *ls < p->pos)
    return 0;
  for (size_t i = *ls; i < t; i++)
    if (s[i] != ' ' && s[i] != '\t')
      return 0;
  size_t j = end;
  while (j < p->len && (s[j] == ' ' || s[j] == '\t'))
    j++;
  if (j == p->len)
    *after = j;
  else if (s[j] == '\n')
    *after = j + 1;
  else if (s[j] == '\r' && j + 1 < p->len && s[j + 1] == '\n')
    *after = j + 2;
  else
    return 0;
  return 1;
}

/* Checks a name and appends it to the arena: as written, then its parts
 * (partial names are kept whole). */
static int add_name(parser *p, size_t t, const tag *tg, int partial, mnode *nd) {
  const char *s = p->s + tg->name;
  size_t n = tg->nlen;
  char what[160];
  if (n == 0) {
    snprintf(what, sizeof what, "empty tag '%.*s'", (int)(tg->end - t > 60 ? 60 : tg->end - t),
             p->s + t);
    return fail_at(p, t, what);
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7F) {
      snprintf(what, sizeof what, "tag name '%.*s' contains whitespace or a control character",
               (int)(n > 60 ? 60 : n), s);
      return fail_at(p, t, what);
    }
  }
  unsigned parts = 0;
  if (!partial && !(n == 1 && s[0] == '.')) {
    parts = 1;
    for (size_t i = 0; i < n; i++) {
      if (s[i] != '.')
        continue;
      if (i == 0 || i == n - 1 || s[i + 1] == '.') {
        snprintf(what, sizeof what, "malformed dotted name '%.*s'", (int)(n > 60 ? 60 : n), s);
        return fail_at(p, t, what);
      }
      parts++;
    }
    if (parts > 64)
      return fail_at(p, t, "dotted name with more than 64 parts");
  }
  if (p->names.len > UINT32_MAX / 2)
    return -EFBIG;
  nd->name = (uint32_t)p->names.len;
  nd->nparts = (uint16_t)parts;
  erpq_buf_add(&p->names, s, n);
  erpq_buf_add(&p->names, "", 1);
  if (parts) {
    for (size_t i = 0; i < n; i++)
      erpq_buf_add(&p->names, s[i] == '.' ? "" : s + i, 1);
    erpq_buf_add(&p->names, "", 1);
  }
  return p->names.oom ? -ENOMEM : 0;
}

/* {{=<% %>=}}: the body between '=' and the closing delimiter. */
static int set_delims(parser *p, size_t t, const tag *tg) {
  const char *s = p->s + tg->name;
  size_t n = tg->nlen;
  n--; /* the '=' parse_tag found */
  while (n && is_ws(s[n - 1]))
    n--;
  size_t a = 0;
  while (a < n && !is_ws(s[a]))
    a++;
  size_t b = a;
  while (b < n && is_ws(s[b]))
    b++;
  size_t c = b;
  while (c < n && !is_ws(s[c]))
    c++;
  if (a == 0 || b == a || c == b || c != n || a > MAX_DELIM || c - b > MAX_DELIM ||
      memchr(s, '=', a) || memchr(s + b, '=', c - b))
    return fail_at(p, t,
                   "invalid set-delimiter tag (two delimiters without whitespace or '=' expected)");
  memcpy(p->otag, s, a);
  p->otag[a] = '\0';
  p->olen = a;
  memcpy(p->ctag, s + b, c - b);
  p->ctag[c - b] = '\0';
  p->clen = c - b;
  return 0;
}

static int handle_tag(parser *p, size_t t, const tag *tg, int sa, size_t ls) {
  mnode *nd;
  int rc;
  switch (tg->type) {
  case '!': return 0;
  case '=': return set_delims(p, t, tg);
  case '#':
  case '^':
    if (p->depth == ERPQ_MUSTACHE_MAX_NESTING) {
      char what[80];
      snprintf(what, sizeof what, "sections nested deeper than %d", ERPQ_MUSTACHE_MAX_NESTING);
      return fail_at(p, t, what);
    }
    if (!(nd = add_node(p, tg->type == '#' ? N_SECTION : N_INVERTED)))
      return -ENOMEM;
    if ((rc = add_name(p, t, tg, 0, nd)))
      return rc;
    p->open[p->depth].node = p->n - 1;
    p->open[p->depth].at = t;
    p->depth++;
    return 0;
  case '/': {
    char what[128];
    int nl = (int)(tg->nlen > 60 ? 60 : tg->nlen);
    if (!p->depth) {
      snprintf(what, sizeof what, "closing tag '%.*s' without an open section", nl,
               p->s + tg->name);
      return fail_at(p, t, what);
    }
    mnode *open = &p->nodes[p->open[p->depth - 1].node];
    const char *oname = p->names.s + open->name;
    if (strlen(oname) != tg->nlen || memcmp(oname, p->s + tg->name, tg->nlen)) {
      unsigned l, c, ol, oc;
      where(p->s, t, &l, &c);
      where(p->s, p->open[p->depth - 1].at, &ol, &oc);
      return erpq_fail(p->err, p->errlen, -EINVAL,
                       "closing tag '%.*s' at line %u, column %u does not match section '%.60s' "
                       "opened at line %u, column %u",
                       nl, p->s + tg->name, l, c, oname, ol, oc);
    }
    open->end = p->n;
    p->depth--;
    return 0;
  }
  case '>':
    if (!(nd = add_node(p, N_PARTIAL)))
      return -ENOMEM;
    nd->standalone = (uint8_t)sa;
    if (sa) {
      nd->off = (uint32_t)ls;
      nd->len = (uint32_t)(t - ls);
    }
    return add_name(p, t, tg, 1, nd);
  default:
    if (!(nd = add_node(p, tg->type ? N_RAW : N_VAR)))
      return -ENOMEM;
    return add_name(p, t, tg, 0, nd);
  }
}

static int parse(parser *p) {
  int rc;
  while (p->pos < p->len) {
    const char *o = memmem(p->s + p->pos, p->len - p->pos, p->otag, p->olen);
    if (!o)
      return emit_text(p, p->pos, p->len);
    size_t t = (size_t)(o - p->s), ls = 0, after = 0;
    tag tg;
    if ((rc = parse_tag(p, t, &tg)))
      return rc;
    int sa = tg.type && strchr("#^/!>=", tg.type) && standalone(p, t, tg.end, &ls, &after);
    if ((rc = emit_text(p, p->pos, sa ? ls : t)))
      return rc;
    if (!sa && p->pending_indent) {
      if (!add_node(p, N_INDENT))
        return -ENOMEM;
      p->pending_indent = 0;
    }
    if ((rc = handle_tag(p, t, &tg, sa, ls)))
      return rc;
    if (sa) {
      p->pos = p->line_start = after;
      p->tag_on_line = 0;
      p->pending_indent = 1;
    } else {
      const char *nl = memrchr(p->s + t, '\n', tg.end - t);
      if (nl) {
        p->line_start = (size_t)(nl - p->s) + 1;
        p->pending_indent = 0; /* that line starts inside the tag */
      }
      p->tag_on_line = 1;
      p->pos = tg.end;
    }
  }
  return 0;
}

int erpq_mustache_compile(const char *src, size_t len, erpq_mustache **out, char *err,
                          size_t errlen) {
  *out = NULL;
  if (len > ERPQ_MUSTACHE_MAX_SIZE)
    return erpq_fail(err, errlen, -EFBIG, "template of %zu bytes is larger than the %u allowed",
                     len, ERPQ_MUSTACHE_MAX_SIZE);
  parser p = {.s = src,
              .len = len,
              .olen = 2,
              .clen = 2,
              .pending_indent = 1,
              .err = err,
              .errlen = errlen};
  memcpy(p.otag, "{{", 3);
  memcpy(p.ctag, "}}", 3);
  size_t bad = utf8_bad((const unsigned char *)src, len);
  if (bad < len)
    return fail_at(&p, bad, "invalid UTF-8");
  int rc = parse(&p);
  if (!rc && p.depth) {
    unsigned l, c;
    where(src, p.open[p.depth - 1].at, &l, &c);
    rc = erpq_fail(err, errlen, -EINVAL, "unclosed section '%.60s' opened at line %u, column %u",
                   p.names.s + p.nodes[p.open[p.depth - 1].node].name, l, c);
  }
  erpq_mustache *t = NULL;
  if (!rc && !(t = calloc(1, sizeof *t)))
    rc = -ENOMEM;
  if (!rc && !(t->src = malloc(len + 1)))
    rc = -ENOMEM;
  if (!rc && !p.names.s)
    erpq_buf_add(&p.names, "", 1);
  if (!rc && p.names.oom)
    rc = -ENOMEM;
  if (rc) {
    if (rc == -ENOMEM)
      erpq_fail(err, errlen, rc, "out of memory compiling a template");
    if (rc == -EFBIG)
      erpq_fail(err, errlen, rc, "template too large");
    if (t)
      free(t->src);
    free(t);
    free(p.nodes);
    erpq_buf_free(&p.names);
    return rc;
  }
  memcpy(t->src, src, len);
  t->src[len] = '\0';
  t->srclen = len;
  t->names = erpq_buf_take(&p.names);
  t->nodes = p.nodes;
  t->n = p.n;
  *out = t;
  return 0;
}

void erpq_mustache_free(erpq_mustache *t) {
  if (!t)
    return;
  free(t->src);
  free(t->names);
  free(t->nodes);
  free(t);
}
