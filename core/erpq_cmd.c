#include "erpq_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void erpq_cmd_init(erpq_cmd *c) { memset(c, 0, sizeof *c); }

void erpq_cmd_free(erpq_cmd *c) {
  free(c->buf);
  free(c->offs);
  free(c->lens);
  free(c->ptrs);
  memset(c, 0, sizeof *c);
}

void erpq_cmd_reset(erpq_cmd *c) {
  c->used = 0;
  c->argc = 0;
  c->err = 0;
  c->is_script = 0;
}

static int grow_args(erpq_cmd *c) {
  if (c->argc < c->argcap) return 0;
  int ncap = c->argcap ? c->argcap * 2 : 16;
  size_t *o = realloc(c->offs, sizeof *o * (size_t)ncap);
  if (!o) return -ENOMEM;
  c->offs = o;
  size_t *l = realloc(c->lens, sizeof *l * (size_t)ncap);
  if (!l) return -ENOMEM;
  c->lens = l;
  const char **p = realloc(c->ptrs, sizeof *p * (size_t)ncap);
  if (!p) return -ENOMEM;
  c->ptrs = p;
  c->argcap = ncap;
  return 0;
}

static int reserve(erpq_cmd *c, size_t extra) {
  if (c->used + extra <= c->cap) return 0;
  size_t ncap = c->cap ? c->cap : 256;
  while (ncap < c->used + extra) ncap *= 2;
  char *b = realloc(c->buf, ncap);
  if (!b) return -ENOMEM;
  c->buf = b;
  c->cap = ncap;
  return 0;
}

void erpq_cmd_push(erpq_cmd *c, const char *s, size_t len) {
  if (c->err) return;
  if (grow_args(c) || reserve(c, len)) {
    c->err = -ENOMEM;
    return;
  }
  if (len) memcpy(c->buf + c->used, s, len);
  c->offs[c->argc] = c->used;
  c->lens[c->argc] = len;
  c->used += len;
  c->argc++;
}

void erpq_cmd_push_str(erpq_cmd *c, const char *s) {
  erpq_cmd_push(c, s ? s : "", s ? strlen(s) : 0);
}

void erpq_cmd_push_i64(erpq_cmd *c, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
  erpq_cmd_push(c, tmp, (size_t)n);
}

void erpq_cmd_pushf(erpq_cmd *c, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) {
    c->err = -EINVAL;
    return;
  }
  if ((size_t)n < sizeof tmp) {
    erpq_cmd_push(c, tmp, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    c->err = -ENOMEM;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  erpq_cmd_push(c, big, (size_t)n);
  free(big);
}

void erpq_cmd_script(erpq_cmd *c, erpq_lua_id id, int nkeys) {
  erpq_cmd_push(c, "EVALSHA", 7);
  erpq_cmd_push(c, erpq_script_sha(id), 40);
  c->nkeys_at = c->argc;
  erpq_cmd_push_i64(c, nkeys);
  c->script = id;
  c->is_script = 1;
}

void erpq_cmd_script_keys(erpq_cmd *c, erpq_lua_id id, const char *const *keys, int n) {
  erpq_cmd_script(c, id, n);
  for (int i = 0; i < n; i++) erpq_cmd_push_str(c, keys[i]);
}

void erpq_cmd_use_eval(erpq_cmd *c) {
  if (!c->is_script || c->err || c->argc < 2) return;
  /* Rebuild with EVAL and the source in place of the first two args. */
  erpq_cmd n;
  erpq_cmd_init(&n);
  erpq_cmd_push(&n, "EVAL", 4);
  erpq_cmd_push_str(&n, erpq_script_src(c->script));
  for (int i = 2; i < c->argc; i++) erpq_cmd_push(&n, c->buf + c->offs[i], c->lens[i]);
  n.script = c->script;
  n.nkeys_at = c->nkeys_at;
  n.is_script = 0;
  int err = n.err;
  erpq_cmd_free(c);
  *c = n;
  if (err) c->err = err;
}

int erpq_cmd_argv(erpq_cmd *c, const char ***argv, const size_t **lens) {
  if (c->err) return c->err;
  for (int i = 0; i < c->argc; i++) c->ptrs[i] = c->buf + c->offs[i];
  *argv = c->ptrs;
  *lens = c->lens;
  return c->argc;
}
