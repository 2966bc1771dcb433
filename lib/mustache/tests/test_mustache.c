/*
 * test_mustache.c - the engine's own promises beyond the spec: strict mode
 * and its list of missing names, escaping per mode, how values print (reals
 * against node's String(number)), parse errors with positions, nesting
 * limits, static analysis, and rendering one template from 8 threads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_mustache_internal.h"
#include "mtest.h"

/* Renders tpl with the data given as JSON text. */
static char *run(const char *tpl, const char *data, erpq_mustache_escape esc, int strict,
                 json_t **missing, char *err, size_t errlen) {
  json_error_t je;
  json_t *d = json_loads(data, 0, &je);
  cr_assert(d, "bad test data %s: %s", data, je.text);
  char *r = mt_render(tpl, strlen(tpl), d, NULL, esc, strict, missing, err, errlen);
  json_decref(d);
  return r;
}

static void expect(const char *tpl, const char *data, erpq_mustache_escape esc, const char *want) {
  char err[256] = "";
  char *got = run(tpl, data, esc, 1, NULL, err, sizeof err);
  cr_assert(got, "%s: %s", tpl, err);
  cr_assert_str_eq(got, want, "template %s", tpl);
  free(got);
}

static char *list_text(json_t *a) {
  char *s = json_dumps(a, JSON_COMPACT);
  cr_assert(s);
  return s;
}

Test(mustache, strict_reports_every_missing_name) {
  const char *tpl =
      "Dear {{parent}},\n"
      "{{#student}}{{name}} of {{class.section}}: {{fee.amount}} {{parent}}\n"
      "{{/student}}"
      "{{^paid}}pay by {{due}}{{/paid}} {{nothing}}{{parent}}{{#gone}}{{inner}}{{/gone}}"
      "{{#off}}{{neverReached}}{{/off}}{{^on}}{{alsoNever}}{{/on}}";
  char err[512];
  json_t *missing = NULL;
  char *got = run(tpl,
                  "{\"student\":[{\"name\":\"A\",\"class\":{}},{\"name\":\"B\"}],"
                  "\"off\":false,\"on\":1}",
                  ERPQ_MUSTACHE_TEXT, 1, &missing, err, sizeof err);
  cr_assert_null(got);
  cr_assert(missing, "no list of missing names");
  char *l = list_text(missing);
  /* In order of first appearance, deduplicated, dotted names as written. */
  cr_assert_str_eq(l, "[\"parent\",\"class.section\",\"fee.amount\",\"paid\",\"due\",\"nothing\","
                      "\"gone\"]");
  cr_assert_str_eq(err, "7 missing variables: parent, class.section, fee.amount, paid, due, "
                        "nothing, gone");
  free(l);
  json_decref(missing);
}

Test(mustache, explicit_null_false_and_empty_list_are_not_missing) {
  expect("[{{a}}|{{b}}|{{#c}}x{{/c}}|{{^a}}none{{/a}}|{{d.e}}]",
         "{\"a\":null,\"b\":false,\"c\":[],\"d\":{\"e\":null}}", ERPQ_MUSTACHE_HTML,
         "[|false||none|]");
  char err[256];
  json_t *missing = NULL;
  char *got = run("{{a.b}}{{#x.y}}{{/x.y}}", "{\"a\":null,\"x\":{}}", ERPQ_MUSTACHE_HTML, 1,
                  &missing, err, sizeof err);
  cr_assert_null(got, "a name past a null or a broken chain is missing");
  cr_assert_str_eq(err, "2 missing variables: a.b, x.y");
  json_decref(missing);
}

Test(mustache, not_strict_renders_misses_empty_and_lists_them) {
  char err[256];
  json_t *missing = NULL;
  char *got = run("<{{a}}{{#b}}B{{/b}}{{^c}}C{{/c}}{{a}}>", "{}", ERPQ_MUSTACHE_HTML, 0, &missing,
                  err, sizeof err);
  cr_assert_str_eq(got, "<C>");
  char *l = list_text(missing);
  cr_assert_str_eq(l, "[\"a\",\"b\",\"c\"]");
  free(l), free(got);
  json_decref(missing);
  got = run("{{a}}", "{\"a\":1}", ERPQ_MUSTACHE_HTML, 1, &missing, err, sizeof err);
  cr_assert_str_eq(got, "1");
  cr_assert(json_is_array(missing) && json_array_size(missing) == 0);
  free(got);
  json_decref(missing);
}

Test(mustache, failed_render_leaves_the_buffer_as_it_was) {
  erpq_mustache *t;
  char err[256];
  cr_assert_eq(erpq_mustache_compile("abc {{x}} def", 13, &t, err, sizeof err), 0);
  erpq_buf b = {0};
  erpq_buf_adds(&b, "keep");
  json_t *ctx = json_object();
  erpq_mustache_opts o = {ERPQ_MUSTACHE_TEXT, 1, NULL, NULL};
  cr_assert_eq(erpq_mustache_render(t, ctx, &o, &b, NULL, err, sizeof err), -EINVAL);
  cr_assert_str_eq(b.s, "keep");
  cr_assert_eq(b.len, 4);
  cr_assert_str_eq(err, "missing variable: x");
  json_decref(ctx);
  erpq_buf_free(&b);
  erpq_mustache_free(t);
}

Test(mustache, escaping_per_mode) {
  const char *data = "{\"v\":\"a&b<c>d\\\"e'f/g`h=i \\u0939\\u093f\\u0902 &amp;\"}";
  expect("{{v}}", data, ERPQ_MUSTACHE_HTML, "a&amp;b&lt;c&gt;d&quot;e&#39;f/g`h=i हिं &amp;amp;");
  expect("{{{v}}}|{{&v}}", data, ERPQ_MUSTACHE_HTML,
         "a&b<c>d\"e'f/g`h=i हिं &amp;|a&b<c>d\"e'f/g`h=i हिं &amp;");
  expect("{{v}}|{{{v}}}", data, ERPQ_MUSTACHE_TEXT,
         "a&b<c>d\"e'f/g`h=i हिं &amp;|a&b<c>d\"e'f/g`h=i हिं &amp;");
  /* Template text is never escaped, in either mode. */
  expect("<p class='x'>&</p>", "{}", ERPQ_MUSTACHE_HTML, "<p class='x'>&</p>");
  /* Every other printable ASCII character passes through HTML mode. */
  char all[128], want[512];
  size_t n = 0, w = 0;
  for (int c = 0x20; c < 0x7F; c++) {
    if (c == '"' || c == '\\')
      all[n++] = '\\';
    all[n++] = (char)c;
    const char *e = c == '&'    ? "&amp;"
                    : c == '<'  ? "&lt;"
                    : c == '>'  ? "&gt;"
                    : c == '"'  ? "&quot;"
                    : c == '\'' ? "&#39;"
                                : NULL;
    if (e)
      w += (size_t)sprintf(want + w, "%s", e);
    else
      want[w++] = (char)c;
  }
  all[n] = want[w] = '\0';
  char data2[300];
  snprintf(data2, sizeof data2, "{\"v\":\"%s\"}", all);
  expect("{{v}}", data2, ERPQ_MUSTACHE_HTML, want);
}

Test(mustache, values_print_like_javascript) {
  expect("{{i}} {{n}} {{t}} {{f}} [{{z}}] {{big}} {{r}} {{e}}",
         "{\"i\":85,\"n\":-3,\"t\":true,\"f\":false,\"z\":null,"
         "\"big\":9223372036854775807,\"r\":5.0,\"e\":1e21}",
         ERPQ_MUSTACHE_TEXT, "85 -3 true false [] 9223372036854775807 5 1e+21");
  expect("{{o}} {{a}}", "{\"o\":{\"k\":\"<\"},\"a\":[1,\"x\"]}", ERPQ_MUSTACHE_HTML,
         "{&quot;k&quot;:&quot;&lt;&quot;} [1,&quot;x&quot;]");
}

Test(mustache, truthiness) {
  json_t *d = json_pack("{s:f,s:f,s:f,s:s,s:s,s:{},s:[i],s:i}", "zero", 0.0, "negzero", -0.0,
                        "half", 0.5, "empty", "", "zs", "0", "obj", "list", 0, "i", 0);
  const char *tpl = "{{#zero}}a{{/zero}}{{#negzero}}b{{/negzero}}{{#half}}c{{/half}}"
                    "{{#empty}}d{{/empty}}{{#zs}}e{{/zs}}{{#obj}}f{{/obj}}{{#list}}g{{.}}{{/list}}"
                    "{{#i}}h{{/i}}{{^i}}H{{/i}}{{^empty}}D{{/empty}}";
  char err[256];
  char *got = mt_render(tpl, strlen(tpl), d, NULL, ERPQ_MUSTACHE_TEXT, 1, NULL, err, sizeof err);
  cr_assert_str_eq(got, "cefg0HD", "%s", got ? got : err);
  free(got);
  json_decref(d);
  expect("{{#t}}{{.}}{{/t}}", "{\"t\":true}", ERPQ_MUSTACHE_TEXT, "true");
}

/* Reals print as node's String(number) prints the same double. */
Test(mustache, reals_match_node) {
  char in[] = "/tmp/erpq-mustache-num-XXXXXX", out[] = "/tmp/erpq-mustache-str-XXXXXX";
  int fi = mkstemp(in), fo = mkstemp(out);
  cr_assert(fi >= 0 && fo >= 0);
  close(fo);
  FILE *f = fdopen(fi, "w");
  static const double edge[] = {1e21,
                                1e20,
                                123456789012345680000.0,
                                1e-6,
                                1e-7,
                                0.1 + 0.2,
                                5e-324,
                                2.2250738585072014e-308,
                                1.7976931348623157e308,
                                -1.5,
                                100.25,
                                9007199254740993.0,
                                1e15,
                                1e16,
                                1e17,
                                0.5,
                                1.0 / 3,
                                999999999999999999999.0,
                                4.35,
                                0.000123};
  enum { N = 20000 };
  static double vals[N];
  unsigned s = 12345;
  for (int i = 0; i < N; i++) {
    if (i < (int)(sizeof edge / sizeof *edge)) {
      vals[i] = edge[i];
    } else {
      uint64_t bits = 0;
      for (int k = 0; k < 4; k++) {
        s = s * 1103515245u + 12345u;
        bits = (bits << 16) | ((s >> 8) & 0xFFFF);
      }
      double d;
      if (i % 3 == 0) {
        memcpy(&d, &bits, sizeof d); /* any bit pattern */
      } else {
        d = (double)(bits >> 11) / 9007199254740992.0 * pow(10, (int)(bits % 50) - 25);
      }
      if (!isfinite(d) || d == 0)
        d = 1.25;
      vals[i] = d;
    }
    fprintf(f, "%.17g\n", vals[i]);
  }
  fclose(f);
  const char *args[] = {in, out, NULL};
  cr_assert_eq(mt_node("js_numbers.js", args), 0, "node js_numbers.js failed");
  FILE *r = fopen(out, "r");
  cr_assert(r);
  char line[128], mine[48];
  int bad = 0;
  for (int i = 0; i < N; i++) {
    cr_assert(fgets(line, sizeof line, r), "node printed too few lines");
    line[strcspn(line, "\n")] = '\0';
    erpq_mustache_js_number(vals[i], mine);
    if (strcmp(line, mine) && bad++ < 5)
      printf("%.17g: node %s, ours %s\n", vals[i], line, mine);
  }
  fclose(r);
  unlink(in), unlink(out);
  cr_assert_eq(bad, 0, "%d of %d reals print differently from node", bad, N);
}

static void parse_error(const char *tpl, const char *want) {
  erpq_mustache *t = NULL;
  char err[256] = "";
  int rc = erpq_mustache_compile(tpl, strlen(tpl), &t, err, sizeof err);
  cr_assert_eq(rc, -EINVAL, "%s compiled (rc %d)", tpl, rc);
  cr_assert_null(t);
  cr_assert_str_eq(err, want, "template %s", tpl);
}

Test(mustache, parse_errors_say_where) {
  parse_error("a\nb\n{{#x}}\n{{y}}\n", "unclosed section 'x' opened at line 3, column 1");
  parse_error("{{#a}}\n  {{#b}}\n  {{/a}}",
              "closing tag 'a' at line 3, column 3 does not match section 'b' opened at line 2, "
              "column 3");
  parse_error("ok\n  {{/a}}", "closing tag 'a' without an open section at line 2, column 3");
  parse_error("x {{name", "unclosed tag '{{' at line 1, column 3");
  parse_error("{{=<% %>=}}\n<%name", "unclosed tag '<%' at line 2, column 1");
  parse_error("{{{x}}", "unclosed tag '{{' at line 1, column 1");
  parse_error("{{=<%=}}", "invalid set-delimiter tag (two delimiters without whitespace or '=' "
                          "expected) at line 1, column 1");
  parse_error("{{= a b c =}}",
              "invalid set-delimiter tag (two delimiters without whitespace or '=' "
              "expected) at line 1, column 1");
  parse_error("{{=<% %>}}", "set-delimiter tag without a closing '=' before its delimiter at line "
                            "1, column 1");
  parse_error("{{<parent}}{{/parent}}",
              "unsupported template inheritance tag ('<' or '$') at line 1, column 1");
  parse_error("{{$block}}{{/block}}",
              "unsupported template inheritance tag ('<' or '$') at line 1, column 1");
  parse_error("  {{ }}", "empty tag '{{ }}' at line 1, column 3");
  parse_error("{{#}}{{/}}", "empty tag '{{#}}' at line 1, column 1");
  parse_error("{{a b}}", "tag name 'a b' contains whitespace or a control character at line 1, "
                         "column 1");
  parse_error("{{a..b}}", "malformed dotted name 'a..b' at line 1, column 1");
  parse_error("{{.a}}", "malformed dotted name '.a' at line 1, column 1");
  /* Columns count characters: the tag is the 6th character of line 2. */
  parse_error("x\nहिंदी{{#a}}", "unclosed section 'a' opened at line 2, column 6");
  parse_error("ok\nab\xC3(", "invalid UTF-8 at line 2, column 3");
  parse_error("ok\xED\xA0\x80", "invalid UTF-8 at line 1, column 3");
}

Test(mustache, section_nesting_is_bounded) {
  char tpl[4096];
  size_t n = 0;
  for (int i = 0; i < ERPQ_MUSTACHE_MAX_NESTING; i++)
    n += (size_t)sprintf(tpl + n, "{{#a}}");
  n += (size_t)sprintf(tpl + n, "{{b}}");
  for (int i = 0; i < ERPQ_MUSTACHE_MAX_NESTING; i++)
    n += (size_t)sprintf(tpl + n, "{{/a}}");
  expect(tpl, "{\"a\":true,\"b\":\"deep\"}", ERPQ_MUSTACHE_TEXT, "deep");
  n = 0;
  for (int i = 0; i <= ERPQ_MUSTACHE_MAX_NESTING; i++)
    n += (size_t)sprintf(tpl + n, "{{#a}}");
  erpq_mustache *t;
  char err[256];
  cr_assert_eq(erpq_mustache_compile(tpl, n, &t, err, sizeof err), -EINVAL);
  cr_assert_str_eq(err, "sections nested deeper than 100 at line 1, column 601");
}

Test(mustache, a_partial_including_itself_fails_instead_of_overflowing) {
  json_t *partials = json_pack("{s:s,s:s}", "me", "x{{>me}}", "a", "{{#t}}{{>b}}{{/t}}");
  json_object_set_new(partials, "b", json_string("{{>a}}"));
  json_t *d = json_pack("{s:b}", "t", 1);
  char err[256];
  char *got = mt_render("{{>me}}", 7, d, partials, ERPQ_MUSTACHE_TEXT, 0, NULL, err, sizeof err);
  cr_assert_null(got);
  cr_assert_str_eq(err, "sections and partials nested deeper than 128 levels at 'me' (does a "
                        "partial include itself?)");
  got = mt_render("{{>a}}", 6, d, partials, ERPQ_MUSTACHE_TEXT, 0, NULL, err, sizeof err);
  cr_assert_null(got);
  cr_assert(strstr(err, "nested deeper than 128 levels"), "%s", err);
  /* A missing partial renders nothing, or fails a strict render. */
  got = mt_render("[{{>nope}}]", 11, d, partials, ERPQ_MUSTACHE_TEXT, 0, NULL, err, sizeof err);
  cr_assert_str_eq(got, "[]");
  free(got);
  got = mt_render("[{{>nope}}]", 11, d, partials, ERPQ_MUSTACHE_TEXT, 1, NULL, err, sizeof err);
  cr_assert_null(got);
  cr_assert_str_eq(err, "partial 'nope' not found");
  json_decref(d);
  json_decref(partials);
}

Test(mustache, standalone_lines_and_indentation) {
  /* Two tags on one line: not standalone, the newline stays. */
  expect("a\n{{#t}}{{/t}}\nb", "{\"t\":true}", ERPQ_MUSTACHE_TEXT, "a\n\nb");
  json_t *p = json_pack("{s:s,s:s}", "outer", "<\n  {{>inner}}\n>\n", "inner", "i1\n\ni2\n");
  json_t *d = json_object();
  char err[256];
  const char *tpl = "  {{>outer}}\nx {{>inner}}";
  char *got = mt_render(tpl, strlen(tpl), d, p, ERPQ_MUSTACHE_TEXT, 1, NULL, err, sizeof err);
  /* Indentation adds up and skips empty lines; an inline partial gets none. */
  cr_assert_str_eq(got, "  <\n    i1\n\n    i2\n  >\nx i1\n\ni2\n", "%s", got ? got : err);
  free(got);
  json_decref(p);
  json_decref(d);
}

Test(mustache, names_lists_top_level_names) {
  const char *tpl = "{{a}} {{b.c}} {{#sec}}{{inner}}{{x}}{{/sec}}{{^inv}}{{d}}{{/inv}}{{.}}"
                    "{{>p}}{{>p}}{{>nope}}{{{a}}}{{&e}}";
  json_t *ps = json_pack("{s:s}", "p", "{{pv}}{{>p}}{{#s2}}{{hidden}}{{/s2}}");
  mt_partials parts;
  char err[256];
  cr_assert_eq(mt_partials_compile(&parts, ps, err, sizeof err), 0);
  erpq_mustache *t;
  cr_assert_eq(erpq_mustache_compile(tpl, strlen(tpl), &t, err, sizeof err), 0);
  json_t *names;
  cr_assert_eq(erpq_mustache_names(t, mt_partial, &parts, &names), 0);
  char *l = list_text(names);
  cr_assert_str_eq(l, "[\"a\",\"b\",\"sec\",\"inv\",\"d\",\"pv\",\"s2\",\"e\"]");
  free(l);
  json_decref(names);
  cr_assert_eq(erpq_mustache_names(t, NULL, NULL, &names), 0);
  l = list_text(names);
  cr_assert_str_eq(l, "[\"a\",\"b\",\"sec\",\"inv\",\"d\",\"e\"]");
  free(l);
  json_decref(names);
  cr_assert_eq(erpq_mustache_partials(t, &names), 0);
  l = list_text(names);
  cr_assert_str_eq(l, "[\"p\",\"nope\"]");
  free(l);
  json_decref(names);
  erpq_mustache_free(t);
  mt_partials_free(&parts);
  json_decref(ps);
}

/* ---------------------------------------------------------- threads ---- */
typedef struct job {
  const erpq_mustache *t;
  const json_t *ctx;
  mt_partials *parts;
  const char *want;
  int bad;
} job;

static void *worker(void *arg) {
  job *j = arg;
  erpq_buf b = {0};
  char err[256];
  for (int i = 0; i < 3000; i++) {
    erpq_buf_reset(&b);
    erpq_mustache_opts o = {i % 2 ? ERPQ_MUSTACHE_TEXT : ERPQ_MUSTACHE_HTML, 1, mt_partial,
                            j->parts};
    if (erpq_mustache_render(j->t, j->ctx, &o, &b, NULL, err, sizeof err) ||
        strcmp(b.s, j->want + (i % 2 ? 4096 : 0)))
      j->bad++;
  }
  erpq_buf_free(&b);
  return NULL;
}

Test(mustache, one_template_from_eight_threads) {
  const char *tpl = "Dear {{parent}},\n{{#kids}}\n  - {{name}} ({{class.name}}): {{due}}\n"
                    "{{/kids}}\n{{^paid}}{{>footer}}{{/paid}}\n";
  json_t *ps = json_pack("{s:s}", "footer", "  {{school}} & co <{{url}}>\n");
  json_t *ctx = json_loads("{\"parent\":\"Mrs O'Hara\",\"paid\":false,\"school\":\"St. Ann's\","
                           "\"url\":\"https://x/?a=1&b=2\",\"kids\":[{\"name\":\"Ann\",\"class\":"
                           "{\"name\":\"5<B>\"},\"due\":1250.5},{\"name\":\"Bo\",\"class\":"
                           "{\"name\":\"2A\"},\"due\":0}]}",
                           0, NULL);
  mt_partials parts;
  char err[256];
  cr_assert_eq(mt_partials_compile(&parts, ps, err, sizeof err), 0);
  erpq_mustache *t;
  cr_assert_eq(erpq_mustache_compile(tpl, strlen(tpl), &t, err, sizeof err), 0);
  static char want[8192];
  const char *html = "Dear Mrs O&#39;Hara,\n  - Ann (5&lt;B&gt;): 1250.5\n  - Bo (2A): 0\n"
                     "  St. Ann&#39;s & co <https://x/?a=1&amp;b=2>\n\n";
  const char *text = "Dear Mrs O'Hara,\n  - Ann (5<B>): 1250.5\n  - Bo (2A): 0\n"
                     "  St. Ann's & co <https://x/?a=1&b=2>\n\n";
  strcpy(want, html);
  strcpy(want + 4096, text);
  job jobs[8];
  pthread_t th[8];
  for (int i = 0; i < 8; i++) {
    jobs[i] = (job){t, ctx, &parts, want, 0};
    cr_assert_eq(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    bad += jobs[i].bad;
  }
  cr_assert_eq(bad, 0, "%d of 24000 concurrent renders differed", bad);
  erpq_mustache_free(t);
  mt_partials_free(&parts);
  json_decref(ps);
  json_decref(ctx);
}
