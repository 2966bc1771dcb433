/*
 * erpq_mustache.h - Mustache templates: compiled once, rendered many times.
 *
 * What it is. A Mustache engine of our own (Debian packages none for C)
 * implementing the required modules of the Mustache specification:
 * interpolation ({{x}}, {{{x}}}, {{&x}}), sections ({{#x}}...{{/x}}),
 * inverted sections ({{^x}}...{{/x}}), comments ({{! ...}}), partials
 * ({{>x}}) with the indentation of standalone partial tags, set delimiters
 * ({{=<% %>=}}) and the standalone-line whitespace rules. The optional
 * modules are NOT implemented: lambdas (a JSON context has no functions),
 * template inheritance ({{<parent}}, {{$block}}: a parse error says so)
 * and dynamic names ({{>*x}}: read as a partial named "*x").
 *
 * States. erpq_mustache_compile() parses a template once into an
 * erpq_mustache; afterwards it is immutable until erpq_mustache_free(). A
 * compiled template holds its own copy of the source, so the caller's text
 * may go away. Rendering reads the template and the JSON context and writes
 * only to the caller's erpq_buf and its own stack, so ONE compiled template
 * may be rendered from any number of threads at once (as long as nobody
 * modifies the json_t context meanwhile and the partial callback is itself
 * thread-safe). Compiling, freeing and rendering are re-entrant; there is
 * no global state.
 *
 * Context stack (as the spec defines it). The render context is a stack of
 * JSON values whose bottom is the ctx passed to erpq_mustache_render().
 *  - A name "x" is looked up from the top of the stack down; the first
 *    frame that is an object with a member "x" answers.
 *  - A dotted name "a.b.c" looks up "a" like that, then "b" in that value,
 *    then "c"; if a later part is absent (or its parent is no object) the
 *    whole name resolves to nothing: the stack is NOT searched again for
 *    "a.b.c" below (mustache.js does search lower frames for the full
 *    path; the spec does not).
 *  - "." is the top of the stack (the implicit iterator).
 *  - Falsy values: null, false, 0 (integer or real, also -0), "" and [].
 *    Everything else is truthy, including {} (JavaScript's truthiness on
 *    JSON values, as mustache.js applies it; the spec leaves it to the
 *    language). A section over a non-empty array renders its body once per
 *    element with the element pushed; over any other truthy value it
 *    renders once with the value pushed (true is pushed too, so {{.}} in
 *    {{#flag}} prints "true"; mustache.js would print the parent). A name
 *    that resolves to nothing counts as falsy. An inverted section renders
 *    its body, with nothing pushed, exactly when the section would not.
 *
 * Interpolated values. A string prints as it is (it may contain NUL
 * bytes). An integer prints in decimal ("85", "-3"), all 64 bits exact. A
 * real prints as JavaScript's String(number) prints it: the shortest
 * decimal that reads back as the same double, "1.21", "5" for 5.0, "0" for
 * -0.0, "1e+21" from 1e21 on, "1e-7" below 1e-6, "0.000001" at 1e-6
 * (mustache.js prints JS numbers; a JS number is a double, so the two agree
 * for every real, and for integers up to 2^53). true and false print as
 * "true" and "false", null prints nothing, and an object or array prints
 * as its compact JSON text ({"a":1}, [1,2]), escaped like any other value
 * (mustache.js would print "[object Object]" and "1,2").
 *
 * Escaping is chosen per render, not per template:
 *  - ERPQ_MUSTACHE_HTML escapes exactly five characters in the values of
 *    {{x}} tags: & -> &amp;  < -> &lt;  > -> &gt;  " -> &quot;  ' -> &#39;
 *    (safe in HTML text and in quoted attribute values). The spec's own
 *    tests expect & " < > escaped and never interpolate an apostrophe, so
 *    this mode passes them unchanged.
 *  - ERPQ_MUSTACHE_TEXT escapes nothing (plain-text mail bodies, subjects,
 *    SMS): {{x}} prints exactly what {{{x}}} prints.
 * {{{x}}} and {{&x}} never escape. Template text is never escaped.
 *
 * Missing names. A tag's name "resolves to nothing" when no frame has its
 * first part, or a later part of a dotted name is absent. An explicit null,
 * false or empty list is NOT missing. Rendering in strict mode fails with
 * -EINVAL when any interpolation, section or inverted-section tag that the
 * render reaches resolves to nothing; it keeps rendering to find EVERY such
 * name and reports them all, deduplicated, in order of first appearance and
 * spelt as written in the template ("address.city", not the full path from
 * the root), in the message and as a list. Tags inside a section that is
 * not rendered are not reached. Outside strict mode a missing name renders
 * as empty / falsy, as the spec demands.
 *
 * Whitespace. Spaces and tabs are whitespace; a line ends with "\n",
 * "\r\n" or the end of the template. A section, inverted, closing, comment,
 * partial or set-delimiter tag that is the only tag on its line, with only
 * whitespace around it, is standalone: the whole line, newline included,
 * is dropped from the output. A line with two tags is not standalone (so
 * "{{#a}}{{/a}}\n" keeps its newline; mustache.js would drop it). A
 * standalone partial tag's leading whitespace is prepended to every
 * non-empty line of the partial's source before rendering (lines of
 * interpolated values are not indented); nested standalone partials add up
 * their indentation; an inline partial is not indented.
 *
 * Partials are found at render time through the caller's callback (the
 * template store resolves names per locale). Each partial is parsed on its
 * own with the default delimiters {{ }}; delimiters set inside a partial
 * do not leak out. A partial that is not found renders nothing, or fails a
 * strict render with -ENOENT.
 *
 * Limits. Sections nest at most ERPQ_MUSTACHE_MAX_NESTING deep within one
 * template (a parse error beyond); while rendering, sections entered plus
 * partials entered are at most ERPQ_MUSTACHE_MAX_DEPTH deep, so a partial
 * that includes itself fails with -ELOOP instead of exhausting the stack.
 * Templates are at most ERPQ_MUSTACHE_MAX_SIZE bytes, valid UTF-8.
 *
 * Errors follow core/erpq_err.h: 0 or a negative code, one sentence in err.
 * Parse errors say where: "unclosed section 'x' opened at line 3, column 1"
 * (lines and columns count from 1; columns count characters, not bytes).
 *
 * Ownership. The caller owns the erpq_mustache from compile() and frees it;
 * the erpq_buf passed to render stays the caller's (text is appended; on
 * failure it is cut back to its length on entry); json_t lists returned
 * through out-parameters are new references the caller must json_decref().
 */
#ifndef ERPQ_MUSTACHE_H
#define ERPQ_MUSTACHE_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_buf.h"

#define ERPQ_MUSTACHE_MAX_NESTING 100
#define ERPQ_MUSTACHE_MAX_DEPTH 128
#define ERPQ_MUSTACHE_MAX_SIZE (16u << 20)

typedef struct erpq_mustache erpq_mustache;

typedef enum {
  ERPQ_MUSTACHE_HTML = 0, /* {{x}} escapes & < > " ' */
  ERPQ_MUSTACHE_TEXT = 1, /* nothing is escaped */
} erpq_mustache_escape;

/* Finds the compiled partial called name, or answers NULL when there is
 * none. Called from the rendering thread; the result must stay valid for the
 * whole render. */
typedef const erpq_mustache *(*erpq_mustache_partial_fn)(void *ud, const char *name);

typedef struct erpq_mustache_opts {
  erpq_mustache_escape escape;
  int strict;                       /* fail on names that resolve to nothing */
  erpq_mustache_partial_fn partial; /* NULL: no partials exist */
  void *partial_ud;
} erpq_mustache_opts;

/* Parses len bytes of src (NUL bytes allowed) into *out. -EINVAL with the
 * position in err for a template that does not parse, -EFBIG for one larger
 * than ERPQ_MUSTACHE_MAX_SIZE, -ENOMEM. */
int erpq_mustache_compile(const char *src, size_t len, erpq_mustache **out, char *err,
                          size_t errlen);
void erpq_mustache_free(erpq_mustache *t);

/* Renders t against ctx (any JSON value; normally an object) and appends
 * the text to out. opts NULL means HTML escaping, not strict, no partials.
 * missing (may be NULL) receives a new array of the names that resolved to
 * nothing (empty when none) when the render succeeds or fails for missing
 * names (then -EINVAL), and NULL otherwise. Other failures: -ENOENT (strict
 * render, partial not found), -ELOOP (ERPQ_MUSTACHE_MAX_DEPTH exceeded),
 * -ENOMEM. Thread-safe as described above. */
int erpq_mustache_render(const erpq_mustache *t, const json_t *ctx, const erpq_mustache_opts *opts,
                         erpq_buf *out, json_t **missing, char *err, size_t errlen);

/* Static analysis: the top-level names t uses, as an array of strings in
 * order of first appearance. A top-level name is the first part of a name
 * in an interpolation, section or inverted tag that is not inside a
 * (non-inverted) section, because only those are looked up in the root
 * context for sure ("a" for {{a.b}}; inside {{#person}}, {{name}} normally
 * names a member of person and is not listed; "." is never listed).
 * Partials included at top level are followed through partial (may be NULL:
 * partials are then not followed); one that includes itself is followed
 * once. Returns 0 or -ENOMEM. */
int erpq_mustache_names(const erpq_mustache *t, erpq_mustache_partial_fn partial, void *ud,
                        json_t **names);

/* The partial names t refers to directly ({{>x}} anywhere in t), in order
 * of first appearance, as a new array of strings. 0 or -ENOMEM. */
int erpq_mustache_partials(const erpq_mustache *t, json_t **names);

#endif
