/* The JSON Schema subset validator (core/erpq_jsonschema.c), its pattern
 * subset (core/erpq_jsonschema_regex.c, checked against Node's RegExp by
 * tests/unit/regex_ecma.js) and the job schemas shipped in schemas/jobs/. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_catalog.h"
#include "erpq_jsonschema.h"
#include "erpq_schemas.h"

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  cr_assert(v, "bad test JSON: %s", e.text);
  return v;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Validates and returns the problems' paths, sorted, joined by ','
 * (malloc'ed): object members are visited in hash order. */
static char *paths(const char *schema, const char *value) {
  json_t *s = J(schema), *v = J(value), *p = json_array();
  erpq_schema_patterns *pats = NULL;
  char err[512];
  cr_assert_eq(erpq_schema_patterns_new(&pats), 0);
  cr_assert_eq(erpq_schema_compile(s, pats, err, sizeof err), 0, "%s", err);
  int n = erpq_schema_validate(s, pats, v, "", p);
  erpq_schema_patterns_free(pats);
  cr_assert_eq((size_t)n, json_array_size(p));
  char *out = calloc(1, 4096);
  const char *list[64];
  size_t i, cnt = 0;
  json_t *e;
  json_array_foreach(p, i, e) {
    if (cnt < 64)
      list[cnt++] = json_string_value(json_object_get(e, "path"));
    cr_assert(json_is_string(json_object_get(e, "message")));
  }
  qsort(list, cnt, sizeof list[0], cmp);
  for (i = 0; i < cnt; i++) {
    if (i)
      strcat(out, ",");
    strcat(out, list[i]);
  }
  json_decref(s), json_decref(v), json_decref(p);
  return out;
}

#define EXPECT(schema, value, want)                                                                \
  do {                                                                                             \
    char *got = paths(schema, value);                                                              \
    cr_assert_str_eq(got, want, "%s against %s", value, schema);                                   \
    free(got);                                                                                     \
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
  EXPECT("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":2}", "[1,\"x\",3]",
         "/,/1");
}

Test(jsonschema, objects_list_every_problem) {
  const char *s = "{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"additionalProperties\":false,"
                  "\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9},"
                  "\"c\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}}}";
  EXPECT(s, "{\"a\":5,\"b\":1}", "/b");
  EXPECT(s, "{}", "/a,/b");
  EXPECT(s, "{\"a\":0,\"c\":\"x\",\"d\":1}", "/a,/b,/c,/d");
  EXPECT(s, "{\"a\":10,\"b\":1,\"c\":\"abcd\"}", "/a,/b,/c");       /* b: not in properties */
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
  cr_assert_eq(erpq_schema_validate(s, NULL, v, "/data", p), 1);
  char *t = erpq_schema_problems_text(p);
  cr_assert_str_eq(t, "/data/name: must be at most 2 characters long");
  cr_assert_null(strstr(t, "Secret"));
  free(t);
  json_decref(s), json_decref(v), json_decref(p);
}

Test(jsonschema, check_refuses_bad_schemas) {
  char err[256];
  json_t *bad[] = {J("{\"type\":\"int\"}"), J("{\"pattern\":\"(\"}"),
                   J("{\"properties\":{\"a\":3}}"), J("{\"required\":\"a\"}")};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_neq(erpq_schema_check(bad[i], err, sizeof err), 0, "schema %zu", i);
    json_decref(bad[i]);
  }
}

/* ---- Keywords the validator does not implement are refused ------------------- */

/* erpq_schema_check()'s message for schema (text), "" when accepted. */
static void check_msg(const char *schema, char *err, size_t errlen) {
  json_t *s = J(schema);
  err[0] = '\0';
  int rc = erpq_schema_check(s, err, errlen);
  if (!rc)
    err[0] = '\0';
  else
    cr_assert(err[0], "refused without a message: %s", schema);
  json_decref(s);
}

#define REFUSED(schema, ...)                                                                       \
  do {                                                                                             \
    char e_[1024];                                                                                 \
    const char *want_[] = {__VA_ARGS__};                                                           \
    check_msg(schema, e_, sizeof e_);                                                              \
    cr_assert(e_[0], "accepted: %s", schema);                                                      \
    for (size_t i_ = 0; i_ < sizeof want_ / sizeof want_[0]; i_++)                                 \
      cr_expect(strstr(e_, want_[i_]), "%s: '%s' not in: %s", schema, want_[i_], e_);              \
  } while (0)

Test(jsonschema, unimplemented_keywords_are_refused_at_any_depth) {
  static const char *const kws[] = {"oneOf",
                                    "anyOf",
                                    "allOf",
                                    "not",
                                    "$ref",
                                    "$defs",
                                    "definitions",
                                    "multipleOf",
                                    "patternProperties",
                                    "propertyNames",
                                    "dependentRequired",
                                    "dependentSchemas",
                                    "dependencies",
                                    "if",
                                    "then",
                                    "else",
                                    "uniqueItems",
                                    "contains",
                                    "minContains",
                                    "maxContains",
                                    "prefixItems",
                                    "additionalItems",
                                    "unevaluatedItems",
                                    "unevaluatedProperties",
                                    "minProperties",
                                    "maxProperties",
                                    "contentEncoding",
                                    "contentMediaType",
                                    "$anchor",
                                    "$dynamicRef",
                                    "maxlength",
                                    "Required",
                                    "nullable"};
  /* Where a subschema can sit: the root, a property, items, additionalProperties. */
  static const char *const where[][3] = {
      {"", "", "/"},
      {"{\"properties\":{\"a/b\":", "}}", "/properties/a~1b/"},
      {"{\"type\":\"array\",\"items\":", "}", "/items/"},
      {"{\"additionalProperties\":", "}", "/additionalProperties/"},
      {"{\"properties\":{\"x\":{\"items\":{\"additionalProperties\":", "}}}}",
       "/properties/x/items/additionalProperties/"}};
  for (size_t w = 0; w < sizeof where / sizeof where[0]; w++)
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++) {
      char schema[512], ptr[256], name[96];
      snprintf(schema, sizeof schema, "%s{\"type\":\"object\",\"%s\":{}}%s", where[w][0], kws[i],
               where[w][1]);
      snprintf(ptr, sizeof ptr, "%s%s: ", where[w][2], strcmp(kws[i], "$ref") ? kws[i] : "$ref");
      snprintf(name, sizeof name, "keyword \"%s\" is not supported", kws[i]);
      REFUSED(schema, ptr, name);
    }
}

Test(jsonschema, annotations_and_implemented_keywords_are_accepted) {
  char e[512];
  check_msg("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$id\":\"x\","
            "\"$comment\":\"c\",\"title\":\"t\",\"description\":\"d\",\"examples\":[1],"
            "\"default\":{},\"deprecated\":false,\"readOnly\":true,\"writeOnly\":false,"
            "\"type\":[\"object\",\"null\"],\"required\":[\"a\"],\"additionalProperties\":false,"
            "\"properties\":{\"a\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":9,"
            "\"pattern\":\"^[a-z]+$\",\"format\":\"date\",\"enum\":[\"x\"],\"const\":\"x\"},"
            "\"b\":{\"type\":\"array\",\"items\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,"
            "\"exclusiveMinimum\":-1,\"exclusiveMaximum\":2.5},\"minItems\":0,\"maxItems\":3},"
            "\"c\":{\"format\":\"date-time\"},\"d\":true,\"e\":false}}",
            e, sizeof e);
  cr_assert_str_eq(e, "");
}

Test(jsonschema, wrong_values_of_implemented_keywords_are_refused) {
  REFUSED("{\"format\":\"email\"}", "/format: ", "format \"email\" is not supported");
  REFUSED("{\"properties\":{\"d\":{\"format\":\"uuid\"}}}", "/properties/d/format: ", "\"uuid\"");
  REFUSED("{\"items\":{\"format\":\"date-time-ish\"}}", "/items/format: ", "date-time-ish");
  REFUSED("{\"format\":3}", "/format: ", "format must be a string");
  REFUSED("{\"minimum\":\"1\"}", "/minimum: ", "minimum must be a number");
  REFUSED("{\"exclusiveMinimum\":true}", "/exclusiveMinimum: ", "must be a number");
  REFUSED("{\"maxLength\":-1}", "/maxLength: ", "non-negative integer");
  REFUSED("{\"minItems\":1.5}", "/minItems: ", "non-negative integer");
  REFUSED("{\"items\":[{\"type\":\"string\"}]}", "/items: ", "tuple form");
  REFUSED("{\"type\":\"int\"}", "/type: ", "unknown type 'int'");
  REFUSED("{\"type\":[\"string\",\"int\"]}", "/type/1: ");
  REFUSED("{\"type\":[]}", "/type: ");
  REFUSED("{\"required\":\"a\"}", "/required: ");
  REFUSED("{\"required\":[\"a\",1]}", "/required/1: ");
  REFUSED("{\"enum\":\"a\"}", "/enum: ");
  REFUSED("{\"properties\":{\"a\":3}}", "/properties/a: ", "object or a boolean");
  REFUSED("{\"pattern\":1}", "/pattern: ", "must be a string");
  REFUSED("{\"properties\":{\"a~b\":{\"pattern\":\"\\\\d\"}}}",
          "/properties/a~0b/pattern: ", "\\d");
}

/* ---- The pattern subset ------------------------------------------------------------ */

Test(jsonschema, refused_pattern_constructs_name_themselves) {
  static const char *const cases[][2] = {{"\\\\d", "\\d"},
                                         {"\\\\D", "\\D"},
                                         {"\\\\w", "\\w"},
                                         {"\\\\W", "\\W"},
                                         {"\\\\s", "\\s"},
                                         {"\\\\S", "\\S"},
                                         {"a\\\\b", "\\b"},
                                         {"\\\\Ba", "\\B"},
                                         {"\\\\n", "\\n"},
                                         {"\\\\t", "\\t"},
                                         {"\\\\r", "\\r"},
                                         {"\\\\f", "\\f"},
                                         {"\\\\v", "\\v"},
                                         {"\\\\x41", "\\x"},
                                         {"\\\\u00e9", "\\u"},
                                         {"\\\\p{L}", "\\p"},
                                         {"\\\\P{L}", "\\P"},
                                         {"(?<n>a)\\\\k<n>", "(?<name>"},
                                         {"\\\\k<n>", "\\k"},
                                         {"(a)\\\\1", "backreference \\1"},
                                         {"\\\\0", "\\0"},
                                         {"\\\\cA", "\\c"},
                                         {"\\\\-", "\\-"},
                                         {"\\\\ ", "\\ "},
                                         {"\\\\é", "\\é"},
                                         {"(?=a)", "lookahead (?="},
                                         {"(?!a)", "negative lookahead (?!"},
                                         {"(?<=a)b", "lookbehind (?<="},
                                         {"(?<!a)b", "negative lookbehind (?<!"},
                                         {"(?:ab)+", "non-capturing group (?:"},
                                         {"(?i)a", "group modifier (?"},
                                         {"a*?", "lazy quantifier *?"},
                                         {"a+?", "lazy quantifier +?"},
                                         {"a??", "lazy quantifier ??"},
                                         {"a{2}?", "lazy quantifier {2}?"},
                                         {"a{2,}?", "lazy quantifier {2,}?"},
                                         {"a{1,3}?", "lazy quantifier {1,3}?"},
                                         {"a{", "'{' that is not a quantifier"},
                                         {"a{,3}", "'{' that is not a quantifier"},
                                         {"a{x}", "'{' that is not a quantifier"},
                                         {"{", "'{' that is not a quantifier"},
                                         {"a{1,2", "'{' that is not a quantifier"},
                                         {"{2}", "quantifier {2} with nothing to repeat"},
                                         {"*a", "quantifier * with nothing to repeat"},
                                         {"a|+", "quantifier + with nothing to repeat"},
                                         {"(?)", "group modifier"},
                                         {"a**", "after the quantifier *"},
                                         {"a{2}{3}", "after the quantifier {2}"},
                                         {"^*", "after the assertion ^"},
                                         {"a$+", "after the assertion $"},
                                         {"[\\\\d]", "\\d inside [...]"},
                                         {"[\\\\w-]", "\\w inside [...]"},
                                         {"[a\\\\]]", "backslash inside [...]"},
                                         {"[\\\\-a]", "backslash inside [...]"},
                                         {"[[:alpha:]]", "[:alpha:]"},
                                         {"[a[.b.]]", "[.b.]"},
                                         {"[[=e=]]", "[=e=]"},
                                         {"[]", "empty class []"},
                                         {"[^]", "empty class [^]"},
                                         {"[]a]", "empty class []"},
                                         {"[z-a]", "range z-a is out of order"},
                                         {"[à-ü]", "range à-ü with a non-ASCII end"},
                                         {"[a-😀]", "non-ASCII end"},
                                         {"[a-c-e]", "'-' inside [...]"},
                                         {"[--/]", "'-' inside [...]"},
                                         {"[a--]", "'-' as the end of a range"},
                                         {"[a", "unterminated ["},
                                         {"[a-", "unterminated ["},
                                         {"(a", "unclosed ("},
                                         {"a)", "unmatched )"},
                                         {"]", "lone ']'"},
                                         {"a}", "lone '}'"},
                                         {"a\\\\", "trailing backslash"},
                                         {"a{1001}", "above 1000"},
                                         {"a{2,99999999999}", "above 1000"},
                                         {"a{3,2}", "{3,2} is out of order"},
                                         {"a\\u0000b", "NUL"},
                                         {"a^b", "anchor ^ where something may come before it"},
                                         {"b(^a)", "anchor ^ where"},
                                         {"(|a)^b", "anchor ^ where"},
                                         {"$^", "anchor ^ where"},
                                         {"a$b", "after the anchor $ at offset 1"},
                                         {"(a$|b)c", "after the anchor $ at offset 2"},
                                         {"$(a)", "after the anchor $"},
                                         {"(^a)+", "anchor (^ or $) inside a group that repeats"},
                                         {"(a$){2}", "inside a group that repeats"},
                                         {"((^a)){1,}", "inside a group that repeats"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char schema[256];
    snprintf(schema, sizeof schema, "{\"properties\":{\"p\":{\"pattern\":\"%s\"}}}", cases[i][0]);
    REFUSED(schema, "/properties/p/pattern: ", cases[i][1]);
  }
}

/* Node's RegExp (ECMA-262, 'u' flag) against our translation, pattern by
 * pattern and string by string: the listed patterns of
 * tests/unit/regex_cases.json and 400 drawn from the accepted grammar. */
Test(jsonschema, patterns_match_like_ecma262, .timeout = 120) {
  const char *src = getenv("ERPQ_SOURCE_DIR");
  cr_assert(src, "ERPQ_SOURCE_DIR must be set");
  char out[] = "/tmp/erpq-regex-XXXXXX";
  int fd = mkstemp(out);
  cr_assert(fd >= 0);
  close(fd);
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "node %s/tests/unit/regex_ecma.js %s/tests/unit/regex_cases.json %s 400 20260101", src,
           src, out);
  cr_assert_eq(system(cmd), 0, "%s failed (is node on PATH?)", cmd);
  json_error_t je;
  json_t *exp = json_load_file(out, 0, &je);
  unlink(out);
  cr_assert(exp, "bad node output: %s", je.text);
  const json_t *strings = json_object_get(exp, "strings"), *pats = json_object_get(exp, "patterns");
  cr_assert_gt(json_array_size(pats), 400);
  cr_assert_gt(json_array_size(strings), 50);
  erpq_schema_patterns *t = NULL;
  cr_assert_eq(erpq_schema_patterns_new(&t), 0);
  size_t i, checked = 0, bad = 0;
  const json_t *p;
  json_array_foreach(pats, i, p) {
    const char *pat = json_string_value(json_object_get(p, "pattern"));
    cr_assert(json_is_true(json_object_get(p, "valid")), "ECMA-262 refuses test pattern '%s': %s",
              pat, json_string_value(json_object_get(p, "error")));
    char err[512];
    int rc = erpq_schema_patterns_add(t, pat, err, sizeof err);
    cr_assert_eq(rc, 0, "pattern %zu '%s' refused: %s", i, pat, err);
    size_t k;
    const json_t *s;
    json_array_foreach(strings, k, s) {
      int want = json_is_true(json_array_get(json_object_get(p, "results"), k));
      int got = erpq_schema_patterns_match(t, pat, json_string_value(s));
      cr_assert(got == 0 || got == 1, "pattern '%s' not found after add", pat);
      if (got != want) {
        cr_log_error("pattern '%s' on '%s': ECMA-262 %d, erpq %d", pat, json_string_value(s), want,
                     got);
        bad++;
      }
      checked++;
    }
  }
  cr_log_info("%zu (pattern, string) pairs compared with Node's RegExp", checked);
  cr_assert_eq(bad, 0, "%zu of %zu pairs differ", bad, checked);
  erpq_schema_patterns_free(t);
  json_decref(exp);
}

Test(jsonschema, patterns_are_compiled_once_at_load) {
  json_t *s = J("{\"properties\":{\"a\":{\"pattern\":\"^x+$\"},\"b\":{\"pattern\":\"^x+$\"},"
                "\"c\":{\"items\":{\"pattern\":\"^[0-9]$\"}}}}");
  erpq_schema_patterns *t = NULL;
  char err[256];
  cr_assert_eq(erpq_schema_patterns_new(&t), 0);
  cr_assert_eq(erpq_schema_compile(s, t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(erpq_schema_patterns_match(t, "^x+$", "xx"), 1);
  cr_assert_eq(erpq_schema_patterns_match(t, "^[0-9]$", "7"), 1);
  cr_assert_eq(erpq_schema_patterns_match(t, "^[0-9]$", "77"), 0);
  cr_assert_eq(erpq_schema_patterns_match(t, "^y$", "y"), -ENOENT, "only the schema's patterns");
  json_t *v = J("{\"a\":\"xx\",\"b\":\"xy\",\"c\":[\"1\",\"22\"]}"), *p = json_array();
  cr_assert_eq(erpq_schema_validate(s, t, v, "", p), 2);
  json_decref(p);
  /* Without the table a pattern cannot be checked: the value fails, and
   * nothing is compiled on the fly. */
  p = json_array();
  v = (json_decref(v), J("{\"a\":\"xx\"}"));
  cr_assert_eq(erpq_schema_validate(s, NULL, v, "", p), 1);
  char *txt = erpq_schema_problems_text(p);
  cr_assert(strstr(txt, "not compiled"), "%s", txt);
  free(txt);
  json_decref(p), json_decref(v), json_decref(s);
  erpq_schema_patterns_free(t);
}

/* The schemas of the families built into this tree (the catalog, embedded
 * from jobs/<family>/schemas/) all load and compile, and enforce their
 * patterns. */
Test(jsonschema, shipped_job_schemas_enforce_their_patterns) {
  erpq_schemas *set = NULL;
  char err[1024];
  cr_assert_eq(erpq_schemas_load(&set, erpq_catalog, NULL, err, sizeof err), 0, "%s", err);
  const erpq_schema *gf = erpq_schemas_get(set, "fees", "generate-fees");
  cr_assert(gf);
  json_t *good = J("{\"schoolId\":1,\"period\":\"2026-04\",\"dueDate\":\"2026-04-10\"}");
  json_t *bad = J("{\"schoolId\":1,\"period\":\"2026-13\",\"dueDate\":\"2026-4-10\"}");
  json_t *p = json_array();
  cr_assert_eq(erpq_schemas_validate(gf, good, "/data", p), 0);
  cr_assert_eq(erpq_schemas_validate(gf, bad, "/data", p), 3,
               "period pattern, dueDate format and dueDate pattern");
  json_decref(good), json_decref(bad), json_decref(p);
  erpq_schemas_free(set);
}
