/*
 * erpq_mustache_internal.h - the compiled form shared by the parser
 * (erpq_mustache_parse.c) and the renderer (erpq_mustache_render.c).
 *
 * A compiled template is a flat array of nodes in source order. A section
 * or inverted section node is followed by the nodes of its body; its `end`
 * is the index of the first node after the body, so the body of node i is
 * [i + 1, end) and a renderer skips a body by jumping to end. Text lives in
 * the template's copy of the source (off, len); names live in the `names`
 * arena, NUL-terminated: first the name as written ("a.b.c"), then its
 * parts one after the other ("a", "b", "c"); "." has zero parts.
 *
 * N_INDENT marks the start of a non-empty source line (one that a
 * standalone tag did not remove); it prints the indentation of the
 * standalone partial tag being rendered, if any, and nothing otherwise.
 * That is how "prepend the indentation to every line of the partial" is
 * done without compiling a partial once per indentation.
 *
 * Nothing here is modified after erpq_mustache_compile() returns.
 */
#ifndef ERPQ_MUSTACHE_INTERNAL_H
#define ERPQ_MUSTACHE_INTERNAL_H

#include <stdint.h>

#include "erpq_mustache.h"

enum {
  N_TEXT,     /* off, len: source bytes */
  N_VAR,      /* {{x}}: name, nparts */
  N_RAW,      /* {{{x}}}, {{&x}}: name, nparts */
  N_SECTION,  /* {{#x}}: name, nparts, end */
  N_INVERTED, /* {{^x}}: name, nparts, end */
  N_PARTIAL,  /* {{>x}}: name; off, len: indentation when standalone */
  N_INDENT,   /* start of a source line */
};

typedef struct mnode {
  uint8_t kind;
  uint8_t standalone; /* N_PARTIAL: the tag was alone on its line */
  uint16_t nparts;    /* parts of a dotted name; 0 for "." */
  uint32_t off, len;  /* N_TEXT, N_PARTIAL: a range of the source */
  uint32_t name;      /* offset in names: as written, then the parts */
  uint32_t end;       /* N_SECTION, N_INVERTED: first node after the body */
} mnode;

struct erpq_mustache {
  char *src; /* copy of the source, NUL-terminated */
  size_t srclen;
  char *names; /* arena of NUL-terminated names */
  mnode *nodes;
  uint32_t n;
};

/* JavaScript's String(d) for a finite double, into out (>= 40 bytes);
 * returns the length (erpq_mustache_render.c). */
size_t erpq_mustache_js_number(double d, char *out);

/* The name as written, and its first part (NULL for "."). */
static inline const char *mnode_name(const erpq_mustache *t, const mnode *nd) {
  return t->names + nd->name;
}
static inline const char *mnode_part0(const erpq_mustache *t, const mnode *nd) {
  const char *s = t->names + nd->name;
  if (!nd->nparts)
    return NULL;
  while (*s)
    s++;
  return s + 1;
}

#endif
