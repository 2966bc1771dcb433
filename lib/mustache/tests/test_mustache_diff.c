/*
 * test_mustache_diff.c - differential test against mustache.js 4.2.0.
 *
 * gen_cases.js (node from PATH, mustache.js from tests/interop) generates
 * seeded random templates, partials and data and renders each case with
 * mustache.js twice: escaping exactly what our HTML mode escapes, and with
 * no escaping (our TEXT mode). This test renders every case with our engine
 * in both modes and compares byte for byte; on failure it prints the first
 * differing cases. ERPQ_MUSTACHE_SEED and ERPQ_MUSTACHE_CASES override the
 * seed and the number of cases (to explore; the default seed is fixed so a
 * failure reproduces).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtest.h"

#define SHOW 5

static void show(int *shown, const json_t *c, const char *mode, const char *exp, const char *got) {
  if ((*shown)++ >= SHOW)
    return;
  json_t *e = json_string(exp), *g = got ? json_string(got) : NULL;
  char *cs = json_dumps(c, JSON_COMPACT), *es = json_dumps(e, JSON_ENCODE_ANY),
       *gs = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
  printf("DIFF case %s (%s):\n  case:     %s\n  expected: %s\n  got:      %s\n", cs ? cs : "?",
         mode, cs ? "" : "", es ? es : "?", gs ? gs : "(render failed)");
  free(cs), free(es), free(gs);
  json_decref(e), json_decref(g);
}

Test(mustache_diff, against_mustache_js, .timeout = 600) {
  const char *seed = getenv("ERPQ_MUSTACHE_SEED");
  const char *count = getenv("ERPQ_MUSTACHE_CASES");
  if (!seed || !*seed)
    seed = "20240611";
  if (!count || !*count)
    count = "3000";
  char path[] = "/tmp/erpq-mustache-cases-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0, "mkstemp failed");
  close(fd);
  const char *args[] = {"--seed", seed, "--count", count, "--out", path, NULL};
  int rc = mt_node("gen_cases.js", args);
  cr_assert_eq(rc, 0, "node gen_cases.js exited with %d (node on PATH? tests/interop installed?)",
               rc);
  json_error_t je;
  json_t *all = json_load_file(path, 0, &je);
  unlink(path);
  cr_assert(all, "cannot read the cases: %s (line %d)", je.text, je.line);
  json_t *cases = json_object_get(all, "cases");
  size_t n = json_array_size(cases), i;
  cr_assert(n >= 1000, "only %zu cases generated", n);
  json_t *c;
  int diffs = 0, shown = 0, errors = 0, renders = 0;
  json_array_foreach(cases, i, c) {
    const char *tpl = json_string_value(json_object_get(c, "template"));
    size_t tlen = json_string_length(json_object_get(c, "template"));
    json_t *data = json_object_get(c, "data"), *partials = json_object_get(c, "partials");
    char err[512];
    if (json_object_get(c, "error")) {
      /* mustache.js refused the template: ours must refuse it too. */
      char *got =
          mt_render(tpl, tlen, data, partials, ERPQ_MUSTACHE_HTML, 0, NULL, err, sizeof err);
      errors++;
      if (got) {
        diffs++;
        show(&shown, c, "mustache.js threw, we rendered", "(error)", got);
      }
      free(got);
      continue;
    }
    static const struct {
      const char *key;
      erpq_mustache_escape esc;
    } modes[] = {{"html", ERPQ_MUSTACHE_HTML}, {"text", ERPQ_MUSTACHE_TEXT}};
    for (int m = 0; m < 2; m++) {
      json_t *exp = json_object_get(c, modes[m].key);
      char *got = mt_render(tpl, tlen, data, partials, modes[m].esc, 0, NULL, err, sizeof err);
      renders++;
      if (!got || json_string_length(exp) != strlen(got) ||
          memcmp(got, json_string_value(exp), strlen(got))) {
        diffs++;
        show(&shown, c, modes[m].key, json_string_value(exp), got ? got : err);
      }
      free(got);
    }
  }
  char *disc = json_dumps(json_object_get(all, "discarded"), JSON_COMPACT);
  printf("mustache.js differential: seed %s, %zu cases, %d renders compared, %d refused by both "
         "sides, %d differ; discarded before comparing (mustache.js departs from the spec): %s\n",
         seed, n, renders, errors, diffs, disc ? disc : "?");
  free(disc);
  json_decref(all);
  cr_assert_eq(diffs, 0, "%d of %d renders differ from mustache.js (seed %s)", diffs, renders,
               seed);
}
