/* mtest.c - see mtest.h. */
#include "mtest.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_err.h"

const char *mt_srcdir(void) {
  const char *d = getenv("ERPQ_SOURCE_DIR");
  cr_assert(d && *d, "ERPQ_SOURCE_DIR is not set (run the test through ctest)");
  return d;
}

char *mt_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *s = erpq_buf_read_all(f, len);
  fclose(f);
  return s;
}

int mt_partials_compile(mt_partials *p, const json_t *obj, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  if (!obj)
    return 0;
  size_t n = json_object_size(obj);
  p->names = calloc(n + 1, sizeof *p->names);
  p->t = calloc(n + 1, sizeof *p->t);
  if (!p->names || !p->t)
    return -ENOMEM;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    int rc = erpq_mustache_compile(json_string_value(v), json_string_length(v), &p->t[p->n], err,
                                   errlen);
    if (rc)
      return rc;
    p->names[p->n++] = k;
  }
  return 0;
}

const erpq_mustache *mt_partial(void *ud, const char *name) {
  const mt_partials *p = ud;
  for (size_t i = 0; i < p->n; i++)
    if (!strcmp(p->names[i], name))
      return p->t[i];
  return NULL;
}

void mt_partials_free(mt_partials *p) {
  for (size_t i = 0; i < p->n; i++)
    erpq_mustache_free(p->t[i]);
  free(p->t);
  free(p->names);
  memset(p, 0, sizeof *p);
}

char *mt_render(const char *tpl, size_t len, const json_t *data, const json_t *partials,
                erpq_mustache_escape esc, int strict, json_t **missing, char *err, size_t errlen) {
  erpq_mustache *t = NULL;
  mt_partials ps;
  char *res = NULL;
  if (missing)
    *missing = NULL;
  if (mt_partials_compile(&ps, partials, err, errlen) == 0 &&
      erpq_mustache_compile(tpl, len, &t, err, errlen) == 0) {
    erpq_mustache_opts o = {esc, strict, mt_partial, &ps};
    erpq_buf b = {0};
    if (erpq_mustache_render(t, data, &o, &b, missing, err, errlen) == 0)
      res = erpq_buf_take(&b);
    erpq_buf_free(&b);
  }
  erpq_mustache_free(t);
  mt_partials_free(&ps);
  return res;
}

int mt_node(const char *script, const char *const *args) {
  char path[4096];
  snprintf(path, sizeof path, "%s/lib/mustache/tests/%s", mt_srcdir(), script);
  const char *argv[32] = {"node", path};
  int n = 2;
  for (; args && *args && n < 31; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    execvp("node", (char *const *)argv);
    _exit(127);
  }
  int st;
  if (waitpid(pid, &st, 0) < 0)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
