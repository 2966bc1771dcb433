/* The ECMA-262 pattern subset of erpq_jsonschema and its compiled table
 * (see erpq_jsonschema_regex.h). */
#include "erpq_jsonschema_regex.h"

#include "erpq_err.h"
#include "erpq_jsonschema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOUND 1000
#define MAX_DEPTH 64

/* ---- Translation ---------------------------------------------------------- */

typedef struct {
  const char *src, *p;
  erpq_buf *out;
  char *err;
  size_t errlen;
  int depth;
} rx;

static int rx_fail(rx *r, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rx_fail(rx *r, const char *at, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return erpq_fail(r->err, r->errlen, ERPQ_E_ARG, "pattern \"%s\": %s (at offset %zu)", r->src,
                   what, (size_t)(at - r->src));
}

/* Length of the UTF-8 sequence at p and its code point; 0 when invalid. */
static size_t utf8_char(const char *p, unsigned *cp) {
  const unsigned char *u = (const unsigned char *)p;
  size_t n;
  unsigned c;
  if (u[0] < 0x80) {
    *cp = u[0];
    return 1;
  } else if ((u[0] & 0xE0) == 0xC0) {
    n = 2, c = u[0] & 0x1F;
  } else if ((u[0] & 0xF0) == 0xE0) {
    n = 3, c = u[0] & 0x0F;
  } else if ((u[0] & 0xF8) == 0xF0) {
    n = 4, c = u[0] & 0x07;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((u[i] & 0xC0) != 0x80)
      return 0;
    c = c << 6 | (u[i] & 0x3F);
  }
  static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  *cp = c;
  return n;
}

/* Parses a {m}, {m,} or {m,n} at r->p. Returns 1 and fills m, n (-1: no
 * upper bound) and *end when it is one, 0 when it is not. */
static int brace_quantifier(const char *p, long *m, long *n, const char **end) {
  if (*p != '{' || p[1] < '0' || p[1] > '9')
    return 0;
  char *e;
  errno = 0;
  *m = strtol(p + 1, &e, 10);
  if (errno)
    *m = MAX_BOUND + 1;
  *n = *m;
  if (*e == ',') {
    if (e[1] == '}') {
      *n = -1;
      e++;
    } else if (e[1] >= '0' && e[1] <= '9') {
      errno = 0;
      *n = strtol(e + 1, &e, 10);
      if (errno)
        *n = MAX_BOUND + 1;
    } else {
      return 0;
    }
  }
  if (*e != '}')
    return 0;
  *end = e + 1;
  return 1;
}

static int is_quantifier_start(const char *p) {
  long m, n;
  const char *e;
  return *p == '*' || *p == '+' || *p == '?' || brace_quantifier(p, &m, &n, &e);
}

/* The quantifier (if any) after an atom; *max gets how many times the
 * atom may repeat (-1: no bound; 1 without a quantifier). */
static int quantifier(rx *r, long *max) {
  const char *q = r->p;
  char name[32];
  *max = 1;
  if (*q == '*' || *q == '+' || *q == '?') {
    erpq_buf_add(r->out, q, 1);
    snprintf(name, sizeof name, "%c", *q);
    *max = *q == '?' ? 1 : -1;
    r->p++;
  } else if (*q == '{') {
    long m, n;
    const char *e;
    if (!brace_quantifier(q, &m, &n, &e))
      return rx_fail(r, q, "a '{' that is not a quantifier {m}, {m,} or {m,n} (escape it as \\{)");
    if (m > MAX_BOUND || n > MAX_BOUND)
      return rx_fail(r, q, "a repetition bound above %d", MAX_BOUND);
    if (n >= 0 && n < m)
      return rx_fail(r, q, "the quantifier {%ld,%ld} is out of order", m, n);
    if (n < 0)
      erpq_buf_addf(r->out, "{%ld,}", m);
    else if (n == m)
      erpq_buf_addf(r->out, "{%ld}", m);
    else
      erpq_buf_addf(r->out, "{%ld,%ld}", m, n);
    snprintf(name, sizeof name, "%.*s", (int)(e - q), q);
    *max = n;
    r->p = e;
  } else {
    return 0;
  }
  if (*r->p == '?')
    return rx_fail(r, q, "the lazy quantifier %s? (POSIX has none)", name);
  if (is_quantifier_start(r->p))
    return rx_fail(r, r->p, "a quantifier after the quantifier %s (nothing to repeat)", name);
  return 0;
}

/* A backslash outside brackets. */
static int escape(rx *r) {
  const char *at = r->p;
  char c = at[1];
  if (!c)
    return rx_fail(r, at, "a trailing backslash");
  if (strchr("^$\\.*+?()[{|", c)) {
    erpq_buf_add(r->out, at, 2); /* the same escape in an ERE */
    r->p += 2;
    return 0;
  }
  if (c == ']' || c == '}' || c == '/') {
    erpq_buf_add(r->out, &c, 1); /* ordinary characters in an ERE */
    r->p += 2;
    return 0;
  }
  switch (c) {
  case 'd':
  case 'D':
  case 'w':
  case 'W':
  case 's':
  case 'S':
    return rx_fail(r, at,
                   "the character class escape \\%c (write a bracket expression such as [0-9])", c);
  case 'b':
  case 'B': return rx_fail(r, at, "the word boundary assertion \\%c", c);
  case 'u': return rx_fail(r, at, "the \\u escape (write the character itself)");
  case 'x': return rx_fail(r, at, "the \\x escape (write the character itself)");
  case 'p':
  case 'P': return rx_fail(r, at, "the Unicode property escape \\%c", c);
  case 'k': return rx_fail(r, at, "the named backreference \\k");
  case 'c': return rx_fail(r, at, "the control escape \\c");
  case '0': return rx_fail(r, at, "the \\0 escape");
  default: break;
  }
  if (c >= '1' && c <= '9')
    return rx_fail(r, at, "the backreference \\%c", c);
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return rx_fail(r, at, "the escape \\%c (only metacharacters may be escaped)", c);
  unsigned cp;
  size_t n = utf8_char(at + 1, &cp);
  return rx_fail(r, at, "the escape \\%.*s (only metacharacters may be escaped)", (int)(n ? n : 1),
                 at + 1);
}

/* One character of a bracket expression at p (not '\\', not ']'). */
static int class_char(rx *r, const char *p, unsigned *cp, size_t *len) {
  if (*p == '\\') {
    if (p[1] && strchr("dDwWsSbB", p[1]))
      return rx_fail(r, p, "the escape \\%c inside [...] (a backslash there is a literal in POSIX)",
                     p[1]);
    return rx_fail(r, p, "a backslash inside [...] (an escape in ECMA-262, a literal in POSIX)");
  }
  if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
    const char *e = strchr(p + 2, p[1]);
    int n = e && e[1] == ']' ? (int)(e + 2 - p) : 2;
    return rx_fail(r, p, "the POSIX bracket expression %.*s (not ECMA-262)", n, p);
  }
  if (!*p)
    return rx_fail(r, p, "an unterminated [");
  *len = utf8_char(p, cp);
  if (!*len)
    return rx_fail(r, p, "invalid UTF-8");
  return 0;
}

static int bracket(rx *r) {
  const char *open = r->p;
  const char *p = r->p + 1;
  erpq_buf_add(r->out, "[", 1);
  if (*p == '^') {
    erpq_buf_add(r->out, "^", 1);
    p++;
  }
  if (*p == ']')
    return rx_fail(r, open, "the empty class %.*s (POSIX reads ']' there as a literal)",
                   (int)(p + 1 - open), open);
  int first = 1;
  while (*p != ']') {
    unsigned a, b;
    size_t la, lb;
    if (!*p)
      return rx_fail(r, open, "an unterminated [");
    if (*p == '-') {
      if (!p[1])
        return rx_fail(r, open, "an unterminated [");
      if (!first && p[1] != ']')
        return rx_fail(r, p,
                       "a '-' inside [...] that is neither first, last nor between a range's ends");
      erpq_buf_add(r->out, "-", 1);
      p++;
      first = 0;
      continue;
    }
    if (class_char(r, p, &a, &la))
      return ERPQ_E_ARG;
    if (p[la] == '-' && p[la + 1] != ']' && p[la + 1]) {
      const char *q = p + la + 1;
      if (*q == '-')
        return rx_fail(r, q, "a '-' as the end of a range");
      if (class_char(r, q, &b, &lb))
        return ERPQ_E_ARG;
      if (a >= 0x80 || b >= 0x80)
        return rx_fail(r, p, "the range %.*s with a non-ASCII end (POSIX regcomp cannot order it)",
                       (int)(q + lb - p), p);
      if (b < a)
        return rx_fail(r, p, "the range %.*s is out of order", (int)(q + lb - p), p);
      erpq_buf_add(r->out, p, (size_t)(q + lb - p));
      p = q + lb;
    } else {
      erpq_buf_add(r->out, p, la);
      p += la;
    }
    first = 0;
  }
  erpq_buf_add(r->out, "]", 1);
  r->p = p + 1;
  return 0;
}

/* Where the parser is within one alternative, for the anchors. ECMA-262
 * has no multiline mode here, so ^ only matches at the start of the value
 * and $ only at its end; glibc's regexec, though, lets a ^ follow a
 * consumed newline and a $ precede one. So ^ is accepted only where
 * nothing can have been consumed before it (the start of the pattern or of
 * a top-level alternative, or of a group in such a place), $ only where
 * nothing is consumed after it, and neither inside a group that repeats. */
typedef struct {
  int at_start;       /* nothing but ^ so far, and the same for the enclosing groups */
  const char *dollar; /* a $ (or a group ending in one) seen in this alternative */
  int anchors;        /* anchors seen, nested groups included */
} pos;

static int alternation(rx *r, int at_start, int *anchors, const char **dollar);

static int group(rx *r, pos *ps) {
  const char *at = r->p;
  if (at[1] == '?') {
    const char *what = "the group modifier (?";
    if (at[2] == '=')
      what = "the lookahead (?=";
    else if (at[2] == '!')
      what = "the negative lookahead (?!";
    else if (at[2] == '<' && at[3] == '=')
      what = "the lookbehind (?<=";
    else if (at[2] == '<' && at[3] == '!')
      what = "the negative lookbehind (?<!";
    else if (at[2] == '<')
      what = "the named group (?<name>";
    else if (at[2] == ':')
      what = "the non-capturing group (?:";
    return rx_fail(r, at, "%s", what);
  }
  if (++r->depth > MAX_DEPTH)
    return rx_fail(r, at, "groups nested deeper than %d", MAX_DEPTH);
  erpq_buf_add(r->out, "(", 1);
  r->p++;
  int anchors = 0;
  const char *dollar = NULL;
  int rc = alternation(r, ps->at_start, &anchors, &dollar);
  if (rc)
    return rc;
  if (*r->p != ')')
    return rx_fail(r, at, "an unclosed (");
  erpq_buf_add(r->out, ")", 1);
  r->p++;
  r->depth--;
  long max;
  const char *q = r->p;
  if ((rc = quantifier(r, &max)))
    return rc;
  if (anchors && max != 1 && max != 0)
    return rx_fail(r, q, "an anchor (^ or $) inside a group that repeats");
  ps->anchors += anchors;
  if (dollar)
    ps->dollar = dollar;
  ps->at_start = 0;
  return 0;
}

/* ECMA-262's . : any code point but the line terminators. */
static const char any_but_newline[] = "[^\n\r\xE2\x80\xA8\xE2\x80\xA9]";

static int term(rx *r, pos *ps) {
  const char *at = r->p;
  int rc = 0;
  switch (*at) {
  case '^':
    if (!ps->at_start)
      return rx_fail(r, at,
                     "the anchor ^ where something may come before it (only at the start of the "
                     "pattern, of a top-level alternative or of a group there)");
    erpq_buf_add(r->out, at, 1);
    ps->anchors++;
    r->p++;
    if (is_quantifier_start(r->p))
      return rx_fail(r, r->p, "a quantifier after the assertion ^ (nothing to repeat)");
    return 0;
  case '$':
    erpq_buf_add(r->out, at, 1);
    ps->anchors++;
    ps->at_start = 0;
    ps->dollar = at;
    r->p++;
    if (is_quantifier_start(r->p))
      return rx_fail(r, r->p, "a quantifier after the assertion $ (nothing to repeat)");
    return 0;
  case '*':
  case '+':
  case '?': return rx_fail(r, at, "the quantifier %c with nothing to repeat", *at);
  case '{': {
    long m, n;
    const char *e;
    if (brace_quantifier(at, &m, &n, &e))
      return rx_fail(r, at, "the quantifier %.*s with nothing to repeat", (int)(e - at), at);
    return rx_fail(r, at, "a '{' that is not a quantifier {m}, {m,} or {m,n} (escape it as \\{)");
  }
  case ']': return rx_fail(r, at, "a lone ']' (escape it as \\])");
  case '}': return rx_fail(r, at, "a lone '}' (escape it as \\})");
  default: break;
  }
  if (ps->dollar)
    return rx_fail(r, at,
                   "something after the anchor $ at offset %zu (only at the end of the pattern, of "
                   "a top-level alternative or of a group there)",
                   (size_t)(ps->dollar - r->src));
  switch (*at) {
  case '(': return group(r, ps);
  case '[': rc = bracket(r); break;
  case '\\': rc = escape(r); break;
  case '.':
    erpq_buf_adds(r->out, any_but_newline);
    r->p++;
    break;
  default: {
    unsigned cp;
    size_t n = utf8_char(at, &cp);
    if (!n)
      return rx_fail(r, at, "invalid UTF-8");
    erpq_buf_add(r->out, at, n);
    r->p += n;
  }
  }
  ps->at_start = 0;
  long max;
  return rc ? rc : quantifier(r, &max);
}

static int alternation(rx *r, int at_start, int *anchors, const char **dollar) {
  for (;;) {
    pos ps = {.at_start = at_start};
    while (*r->p && *r->p != '|' && *r->p != ')') {
      int rc = term(r, &ps);
      if (rc)
        return rc;
    }
    *anchors += ps.anchors;
    if (ps.dollar && !*dollar)
      *dollar = ps.dollar;
    if (*r->p != '|')
      return 0;
    erpq_buf_add(r->out, "|", 1);
    r->p++;
  }
}

int erpq_regex_translate(const char *ecma, erpq_buf *ere, char *err, size_t errlen) {
  rx r = {.src = ecma, .p = ecma, .out = ere, .err = err, .errlen = errlen};
  int anchors = 0;
  const char *dollar = NULL;
  int rc = alternation(&r, 1, &anchors, &dollar);
  if (!rc && *r.p == ')')
    rc = rx_fail(&r, r.p, "an unmatched )");
  if (!rc && ere->oom)
    rc = erpq_fail(err, errlen, -ENOMEM, "out of memory");
  return rc;
}

/* ---- The table ------------------------------------------------------------ */

static size_t find(const erpq_schema_patterns *t, const char *src, int *found) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(t->v[mid].src, src);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

static locale_t utf8_locale(void) {
  locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (!c)
    return (locale_t)0;
  locale_t u = newlocale(LC_CTYPE_MASK, "C.UTF-8", c);
  if (!u)
    u = newlocale(LC_CTYPE_MASK, "C.utf8", c);
  if (!u)
    freelocale(c);
  return u;
}

int erpq_schema_patterns_add(erpq_schema_patterns *t, const char *ecma, char *err, size_t errlen) {
  int found;
  size_t at = find(t, ecma, &found);
  if (found)
    return 0;
  erpq_buf ere = {0};
  int rc = erpq_regex_translate(ecma, &ere, err, errlen);
  if (rc) {
    erpq_buf_free(&ere);
    return rc;
  }
  if (!t->loc && !(t->loc = utf8_locale())) {
    erpq_buf_free(&ere);
    return erpq_fail(err, errlen, ERPQ_E_ARG, "the C.UTF-8 locale is missing: patterns cannot run");
  }
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    erpq_schema_pattern *n = realloc(t->v, ncap * sizeof *n);
    if (!n) {
      erpq_buf_free(&ere);
      return erpq_fail(err, errlen, -ENOMEM, "out of memory");
    }
    t->v = n;
    t->cap = ncap;
  }
  erpq_schema_pattern e = {.src = strdup(ecma)};
  if (!e.src) {
    erpq_buf_free(&ere);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory");
  }
  locale_t old = uselocale(t->loc);
  int cr = regcomp(&e.re, ere.s ? ere.s : "", REG_EXTENDED | REG_NOSUB);
  uselocale(old);
  if (cr) {
    char why[128];
    regerror(cr, &e.re, why, sizeof why);
    rc = erpq_fail(err, errlen, ERPQ_E_ARG, "pattern \"%s\" does not compile: %s", ecma, why);
    free(e.src);
    erpq_buf_free(&ere);
    return rc;
  }
  erpq_buf_free(&ere);
  memmove(t->v + at + 1, t->v + at, (t->n - at) * sizeof *t->v);
  t->v[at] = e;
  t->n++;
  return 0;
}

int erpq_schema_patterns_match(const erpq_schema_patterns *t, const char *ecma, const char *s) {
  int found;
  size_t at = t ? find(t, ecma, &found) : 0;
  if (!t || !found)
    return -ENOENT;
  locale_t old = uselocale(t->loc);
  int rc = regexec(&t->v[at].re, s, 0, NULL, 0);
  uselocale(old);
  return rc == 0;
}

void erpq_schema_patterns_clear(erpq_schema_patterns *t) {
  for (size_t i = 0; i < t->n; i++) {
    regfree(&t->v[i].re);
    free(t->v[i].src);
  }
  free(t->v);
  if (t->loc)
    freelocale(t->loc);
  memset(t, 0, sizeof *t);
}

int erpq_schema_patterns_new(erpq_schema_patterns **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : -ENOMEM;
}

void erpq_schema_patterns_free(erpq_schema_patterns *t) {
  if (!t)
    return;
  erpq_schema_patterns_clear(t);
  free(t);
}
