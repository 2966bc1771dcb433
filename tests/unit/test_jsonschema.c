/* The JSON Schema subset validator (core/erpq_jsonschema.c) and the job
 * schemas shipped in schemas/jobs/. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_jsonschema.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
  cr_assert(v, "bad test JSON: %s", e.text);
  return v;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Validates and returns the problems' paths, sorted, joined by ','
 * (malloc'ed): object members are visited in hash order. */
static char *paths(const char *schema, const char *value) {
  json_t *s = J(schema), *v = J(value), *p = json_array();
  int n = erpq_schema_validate(s, v, "", p);
  cr_assert_eq((size_t)n, json_array_size(p));
  char *out = calloc(1, 4096);
  const char *list[64];
  size_t i, cnt = 0;
  json_t *e;
  json_array_foreach(p, i, e) {
    if (cnt < 64) list[cnt++] = json_string_value(json_object_get(e, "path"));
    cr_assert(json_is_string(json_object_get(e, "message")));
  }
  qsort(list, cnt, sizeof list[0], cmp);
  for (i = 0; i < cnt; i++) {
    if (i) strcat(out, ",");
    strcat(out, list[i]);
  }
  json_decref(s), json_decref(v), json_decref(p);
  return out;
}

#define EXPECT(schema, value, want)                                   \
  do {                                                                \
    char *got = paths(schema, value);                                 \
    cr_assert_str_eq(got, want, "%s against %s", value, schema);      \
    free(got);                                                        \
  } while (0)

Test(jsonschema, types) {
  EXPECT("{\"type\":\"integer\"}", "3", "");
  EXPECT("{\"type\":\"integer\"}", "3.0", "");
  EXPECT("{\"type\":\"integer\"}", "3.5", "/");
  EXPECT("{\"type\":\"number\"}", "3.5", "");
  EXPECT("{\"type\":\"string\"}", "1", "/");
  EXPECT("{\"type\":[\"string\",\"null\"]}", "null", "");
  EXPECT("{\"type\":[\"string\",\"null\"]}", "true", "/");
  EXPECT("{\"type\":\"object\"}", "[]", "/");
  EXPECT("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":2}", "[1,\"x\",3]", "/,/1");
}

Test(jsonschema, objects_list_every_problem) {
  const char *s = "{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"additionalProperties\":false,"
                  "\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9},"
                  "\"c\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}}}";
  EXPECT(s, "{\"a\":5,\"b\":1}", "/b");
  EXPECT(s, "{}", "/a,/b");
  EXPECT(s, "{\"a\":0,\"c\":\"x\",\"d\":1}", "/a,/b,/c,/d");
  EXPECT(s, "{\"a\":10,\"b\":1,\"c\":\"abcd\"}", "/a,/b,/c"); /* b: not in properties */
  EXPECT(s, "{\"a\":1,\"b\":1,\"c\":\"\xc3\xa9t\xc3\xa9\"}", "/b"); /* 3 code points */
  EXPECT("{\"properties\":{\"a/b\":{\"type\":\"string\"}}}", "{\"a/b\":1}", "/a~1b");
  EXPECT("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":1,\"y\":\"z\"}", "/y");
}

Test(jsonschema, strings) {
  EXPECT("{\"pattern\":\"^[A-Z]{2}[0-9]+$\"}", "\"AB12\"", "");
  EXPECT("{\"pattern\":\"^[A-Z]{2}[0-9]+$\"}", "\"ab12\"", "/");
  EXPECT("{\"pattern\":\"b\"}", "\"abc\"", ""); /* unanchored */
  EXPECT("{\"enum\":[\"T1\",\"T2\",3]}", "\"T2\"", "");
  EXPECT("{\"enum\":[\"T1\",\"T2\",3]}", "3", "");
  EXPECT("{\"enum\":[\"T1\",\"T2\",3]}", "\"T3\"", "/");
  EXPECT("{\"format\":\"date\"}", "\"2024-02-29\"", "");
  EXPECT("{\"format\":\"date\"}", "\"2023-02-29\"", "/");
  EXPECT("{\"format\":\"date\"}", "\"2024-13-01\"", "/");
  EXPECT("{\"format\":\"date\"}", "\"2024-1-01\"", "/");
  EXPECT("{\"format\":\"date\"}", "\"2024-04-31\"", "/");
  EXPECT("{\"format\":\"date-time\"}", "\"2024-04-30T10:00:00Z\"", "");
  EXPECT("{\"format\":\"date-time\"}", "\"2024-04-30T10:00:00.5+05:30\"", "");
  EXPECT("{\"format\":\"date-time\"}", "\"2024-04-30 10:00\"", "/");
}

Test(jsonschema, messages_never_quote_values) {
  json_t *s = J("{\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":2}}}");
  json_t *v = J("{\"name\":\"Secret Pupil\"}"), *p = json_array();
  cr_assert_eq(erpq_schema_validate(s, v, "/data", p), 1);
  char *t = erpq_schema_problems_text(p);
  cr_assert_str_eq(t, "/data/name: must be at most 2 characters long");
  cr_assert_null(strstr(t, "Secret"));
  free(t);
  json_decref(s), json_decref(v), json_decref(p);
}

Test(jsonschema, check_refuses_bad_schemas) {
  char err[256];
  json_t *bad[] = {J("{\"type\":\"int\"}"), J("{\"pattern\":\"(\"}"), J("{\"properties\":{\"a\":3}}"),
                   J("{\"required\":\"a\"}")};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_neq(erpq_schema_check(bad[i], err, sizeof err), 0, "schema %zu", i);
    json_decref(bad[i]);
  }
}

Test(jsonschema, shipped_job_schemas_load) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  cr_assert(src, "ERPQ_SOURCE_DIR must be set");
  char dir[4096], err[1024];
  snprintf(dir, sizeof dir, "%s/jobs/reports/schemas", src);
  erpq_schema_set *set = NULL;
  cr_assert_eq(erpq_schema_set_load(dir, &set, err, sizeof err), 0, "%s", err);
  const json_t *fs = erpq_schema_set_get(set, "fee-statement");
  cr_assert(fs);
  json_t *ok = J("{\"schoolId\":1,\"studentId\":2,\"from\":\"2026-01-01\",\"to\":\"2026-03-31\",\"locale\":\"en-IN\"}");
  json_t *p = json_array();
  cr_assert_eq(erpq_schema_validate(fs, ok, "/data", p), 0);
  json_decref(ok), json_decref(p);
  erpq_schema_set_free(set);
  cr_assert_eq(erpq_schema_set_load("/nonexistent-dir", &set, err, sizeof err), 0);
  cr_assert_eq(erpq_schema_set_count(set), 0);
  erpq_schema_set_free(set);
}
