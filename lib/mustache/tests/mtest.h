/*
 * mtest.h - helpers shared by the lib/mustache tests: paths in the source
 * tree, whole-file reads, compiling a set of partials from a JSON object,
 * one-call rendering, and running a Node helper script.
 *
 * Everything here is for tests only; functions that fail return NULL or a
 * negative code with a message in err, and leave asserting to the test.
 */
#ifndef MTEST_H
#define MTEST_H

#include <jansson.h>
#include <stddef.h>

#include "erpq_mustache.h"

/* ERPQ_SOURCE_DIR (set by ctest; the test fails without it). */
const char *mt_srcdir(void);
/* A whole file as a NUL-terminated string (its length in *len, may be
 * NULL), or NULL when it cannot be read. */
char *mt_read(const char *path, size_t *len);

/* Compiled partials by name, from a JSON object {name: source}. */
typedef struct mt_partials {
  size_t n;
  const char **names;
  erpq_mustache **t;
} mt_partials;
int mt_partials_compile(mt_partials *p, const json_t *obj, char *err, size_t errlen);
const erpq_mustache *mt_partial(void *ud, const char *name);
void mt_partials_free(mt_partials *p);

/* Compiles tpl and renders it with data; the text (caller frees) or NULL
 * with err set. partials may be NULL; missing as in erpq_mustache_render. */
char *mt_render(const char *tpl, size_t len, const json_t *data, const json_t *partials,
                erpq_mustache_escape esc, int strict, json_t **missing, char *err, size_t errlen);

/* Runs `node <script> args...` from lib/mustache/tests with node from PATH
 * and returns its exit status (-1 if it could not run). */
int mt_node(const char *script, const char *const *args);

#endif
