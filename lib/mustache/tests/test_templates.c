/*
 * test_templates.c - the template store: the shipped templates/ (loaded
 * without warnings, rendered like mustache.js renders the same files, the
 * documented variables, English SMS in one GSM-7 segment as Twilio's
 * segment calculator counts it), locale fallback, strict renders naming
 * every missing variable, and the load-time checks on scratch directories.
 */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "erpq_templates.h"
#include "mtest.h"

static char warnings[4096];
static int nwarn;

static void collect(void *ud, const char *msg) {
  (void)ud;
  nwarn++;
  strncat(warnings, msg, sizeof warnings - strlen(warnings) - 2);
  strcat(warnings, "\n");
}

static erpq_templates *load_dir(const char *dir, char *err, size_t errlen) {
  erpq_templates *s = NULL;
  warnings[0] = '\0';
  nwarn = 0;
  erpq_templates_load(dir, collect, NULL, &s, err, errlen);
  return s;
}

static erpq_templates *shipped(void) {
  char dir[4096], err[512];
  snprintf(dir, sizeof dir, "%s/templates", mt_srcdir());
  erpq_templates *s = load_dir(dir, err, sizeof err);
  cr_assert(s, "loading %s: %s", dir, err);
  cr_assert_eq(nwarn, 0, "warnings: %s", warnings);
  return s;
}

static json_t *fee_vars(int hindi, int pay) {
  json_t *v =
      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "schoolName",
                hindi ? "ग्रीन वैली पब्लिक स्कूल" : "Green Valley Public School", "parentName",
                hindi ? "श्रीमती राव" : "Mrs. O'Brien & Mr. Rao", "studentName",
                hindi ? "आरव शर्मा" : "Aarav Sharma", "className", "Class 5 <B>", "outstanding",
                "Rs 12,500.00", "oldestDueDate", "15 Jan 2025", "overdueCount", 2, "unsubscribeUrl",
                "https://erp.example.in/u/abc?x=1&y=\"2\"");
  json_object_set_new(v, "payUrl",
                      pay ? json_string("https://pay.example.in/f/8K2QX7") : json_null());
  return v;
}

static json_t *report_vars(void) {
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s}", "recipientName", "Ms. D'Souza", "reportTitle",
                   "Fee collection <Q1> & dues", "schoolName", "St. Mary's School", "downloadUrl",
                   "https://s3.example.in/r/1.xlsx?X-Amz-Signature=ab&X=1", "expiresAt",
                   "12 Mar 2025, 18:00 IST", "rows", 15230, "format", "XLSX");
}

/* ------------------------------------------- shipped vs mustache.js ---- */

/* Partial texts for a set of locale loc, picked by the test's own reading
 * of the layout: <name>.<loc>, else <name>.en, else <name>. */
static json_t *partials_for(const char *loc) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/templates/partials", mt_srcdir());
  DIR *d = opendir(dir);
  cr_assert(d);
  json_t *best = json_object(), *rank = json_object();
  struct dirent *de;
  while ((de = readdir(d))) {
    char name[256], *dot;
    snprintf(name, sizeof name, "%s", de->d_name);
    size_t l = strlen(name);
    if (l < 10 || strcmp(name + l - 9, ".mustache"))
      continue;
    name[l - 9] = '\0';
    int r = 1;
    if ((dot = strchr(name, '.'))) {
      *dot = '\0';
      r = !strcmp(dot + 1, loc) ? 3 : !strcmp(dot + 1, "en") ? 2 : 0;
    }
    if (r && r > json_integer_value(json_object_get(rank, name))) {
      char path[4352];
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      char *text = mt_read(path, NULL);
      json_object_set_new(best, name, json_string(text));
      json_object_set_new(rank, name, json_integer(r));
      free(text);
    }
  }
  closedir(d);
  json_decref(rank);
  return best;
}

static void add_job(json_t *jobs, const char *rel, const char *loc, json_t *data, const char *esc,
                    const char *tidy) {
  char path[4096];
  snprintf(path, sizeof path, "%s/templates/%s", mt_srcdir(), rel);
  char *text = mt_read(path, NULL);
  cr_assert(text, "cannot read %s", path);
  json_array_append_new(jobs,
                        json_pack("{s:s,s:o,s:O,s:s,s:s?}", "template", text, "partials",
                                  partials_for(loc), "data", data, "escape", esc, "tidy", tidy));
  free(text);
}

Test(templates, shipped_render_like_mustache_js) {
  erpq_templates *s = shipped();
  json_t *jobs = json_array(), *ours = json_array();
  size_t en_sms[4], nen = 0;
  const char *locs[] = {"en", "hi"};
  char err[512], rel[256];
  for (int l = 0; l < 2; l++) {
    for (int pay = 0; pay < 2; pay++) {
      json_t *v = fee_vars(l, pay);
      char *sub, *txt, *html;
      int rc = erpq_templates_render_email(s, "fee-reminder", locs[l], v, &sub, &txt, &html, err,
                                           sizeof err);
      cr_assert_eq(rc, 0, "%s", err);
      cr_assert(html, "fee-reminder %s has an html part", locs[l]);
      const char *parts[] = {"subject", "txt", "html"};
      char *outs[] = {sub, txt, html};
      for (int p = 0; p < 3; p++) {
        snprintf(rel, sizeof rel, "email/fee-reminder.%s.%s.mustache", locs[l], parts[p]);
        add_job(jobs, rel, locs[l], v, p == 2 ? "html" : "none", p == 0 ? "subject" : NULL);
        json_array_append_new(ours, json_string(outs[p]));
        free(outs[p]);
      }
      char *sms;
      cr_assert_eq(erpq_templates_render_sms(s, "fee-reminder", locs[l], v, &sms, err, sizeof err),
                   0, "%s", err);
      snprintf(rel, sizeof rel, "sms/fee-reminder.%s.txt.mustache", locs[l]);
      add_job(jobs, rel, locs[l], v, "none", "sms");
      if (l == 0)
        en_sms[nen++] = json_array_size(ours);
      json_array_append_new(ours, json_string(sms));
      free(sms);
      json_decref(v);
    }
    json_t *v = report_vars();
    char *sub, *txt, *html;
    cr_assert_eq(erpq_templates_render_email(s, "report-ready", locs[l], v, &sub, &txt, &html, err,
                                             sizeof err),
                 0, "%s", err);
    const char *parts[] = {"subject", "txt", "html"};
    char *outs[] = {sub, txt, html};
    for (int p = 0; p < 3; p++) {
      snprintf(rel, sizeof rel, "email/report-ready.%s.%s.mustache", locs[l], parts[p]);
      add_job(jobs, rel, locs[l], v, p == 2 ? "html" : "none", p == 0 ? "subject" : NULL);
      json_array_append_new(ours, json_string(outs[p]));
      free(outs[p]);
    }
    json_decref(v);
  }
  char in[] = "/tmp/erpq-tpl-jobs-XXXXXX", out[] = "/tmp/erpq-tpl-out-XXXXXX";
  int fi = mkstemp(in), fo = mkstemp(out);
  cr_assert(fi >= 0 && fo >= 0);
  close(fi), close(fo);
  json_t *doc = json_pack("{s:O}", "jobs", jobs);
  cr_assert_eq(json_dump_file(doc, in, 0), 0);
  const char *args[] = {in, out, NULL};
  cr_assert_eq(mt_node("ref_render.js", args), 0, "node ref_render.js failed");
  json_error_t je;
  json_t *ref = json_load_file(out, 0, &je);
  unlink(in), unlink(out);
  cr_assert(ref, "%s", je.text);
  cr_assert_eq(json_array_size(ref), json_array_size(ours));
  for (size_t i = 0; i < json_array_size(ref); i++) {
    json_t *r = json_array_get(ref, i);
    const char *want = json_string_value(json_object_get(r, "out"));
    const char *got = json_string_value(json_array_get(ours, i));
    cr_assert_str_eq(got, want, "job %zu (%s) differs from mustache.js", i,
                     json_string_value(json_object_get(json_array_get(jobs, i), "template")));
    json_t *enc = json_object_get(r, "encoding");
    /* English SMS: one GSM-7 segment for these typical values. */
    int english = 0;
    for (size_t k = 0; k < nen; k++)
      english |= en_sms[k] == i;
    if (english) {
      cr_assert_str_eq(json_string_value(enc), "GSM-7", "English SMS not GSM-7: %s", got);
      cr_assert_eq(json_integer_value(json_object_get(r, "segments")), 1,
                   "English SMS takes %lld segments (%zu chars): %s",
                   (long long)json_integer_value(json_object_get(r, "segments")), strlen(got), got);
    }
  }
  json_decref(ref), json_decref(doc), json_decref(jobs), json_decref(ours);
  erpq_templates_free(s);
}

Test(templates, shipped_variables_are_the_documented_ones) {
  erpq_templates *s = shipped();
  static const struct {
    int sms;
    const char *name, *vars;
  } want[] = {
      {0, "fee-reminder",
       " schoolName parentName studentName className outstanding oldestDueDate "
       "overdueCount payUrl unsubscribeUrl "},
      {1, "fee-reminder", " schoolName outstanding studentName oldestDueDate payUrl "},
      {0, "report-ready",
       " recipientName reportTitle schoolName downloadUrl expiresAt rows format "},
  };
  const char *locs[] = {"en", "hi"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    for (int l = 0; l < 2; l++) {
      json_t *names;
      int rc = want[i].sms ? erpq_templates_sms_vars(s, want[i].name, locs[l], &names)
                           : erpq_templates_email_vars(s, want[i].name, locs[l], &names);
      cr_assert_eq(rc, 0);
      size_t k, count = 0;
      json_t *v;
      json_array_foreach(names, k, v) {
        char w[80];
        snprintf(w, sizeof w, " %s ", json_string_value(v));
        cr_assert(strstr(want[i].vars, w), "%s %s uses undocumented %s", want[i].name, locs[l], w);
        count++;
      }
      for (const char *p = want[i].vars; *p; p++)
        count -= (p[0] == ' ' && p[1]);
      cr_assert_eq(count, 0, "%s %s does not use every documented variable", want[i].name, locs[l]);
      json_decref(names);
    }
  }
  /* English SMS templates are plain ASCII (no curly quotes: one non-GSM
   * character turns the whole message into UCS-2). */
  char path[4096];
  snprintf(path, sizeof path, "%s/templates/sms/fee-reminder.en.txt.mustache", mt_srcdir());
  char *text = mt_read(path, NULL);
  cr_assert(text);
  for (unsigned char *p = (unsigned char *)text; *p; p++)
    cr_assert(*p < 0x80, "non-ASCII byte in %s", path);
  free(text);
  erpq_templates_free(s);
}

static char *subject_of(erpq_templates *s, const char *name, const char *loc) {
  json_t *v = strcmp(name, "report-ready") ? fee_vars(0, 1) : report_vars();
  char *sub = NULL, *txt = NULL, err[512];
  int rc = erpq_templates_render_email(s, name, loc, v, &sub, &txt, NULL, err, sizeof err);
  json_decref(v);
  free(txt);
  return rc ? NULL : sub;
}

Test(templates, locale_fallback) {
  erpq_templates *s = shipped();
  char *en = subject_of(s, "fee-reminder", "en"), *hi = subject_of(s, "fee-reminder", "hi");
  cr_assert(en && hi && strcmp(en, hi));
  cr_assert_str_eq(en, "Fee reminder: Rs 12,500.00 due for Aarav Sharma");
  const char *to_hi[] = {"hi-IN", "HI_in", "hi-Deva-IN", "Hi"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_str_eq(erpq_templates_email_locale(s, "fee-reminder", to_hi[i]), "hi", "%s",
                     to_hi[i]);
    char *sub = subject_of(s, "fee-reminder", to_hi[i]);
    cr_assert_str_eq(sub, hi);
    free(sub);
  }
  const char *to_en[] = {"fr", "fr-FR", "", "../../etc", "x-very-long-locale-tag-beyond-limits"};
  for (size_t i = 0; i < 5; i++) {
    cr_assert_str_eq(erpq_templates_email_locale(s, "fee-reminder", to_en[i]), "en", "%s",
                     to_en[i]);
    char *sub = subject_of(s, "fee-reminder", to_en[i]);
    cr_assert_str_eq(sub, en);
    free(sub);
  }
  cr_assert_str_eq(erpq_templates_email_locale(s, "fee-reminder", NULL), "en");
  cr_assert_str_eq(erpq_templates_sms_locale(s, "fee-reminder", "hi-IN"), "hi");
  cr_assert_null(erpq_templates_email_locale(s, "no-such", "en"));
  cr_assert_null(erpq_templates_sms_locale(s, "report-ready", "en"));
  char *sub, *txt, err[256];
  json_t *v = fee_vars(0, 1);
  cr_assert_eq(erpq_templates_render_email(s, "nope", "en", v, &sub, &txt, NULL, err, sizeof err),
               -ENOENT);
  cr_assert_str_eq(err, "no email template 'nope'");
  json_decref(v);
  free(en), free(hi);
  erpq_templates_free(s);
}

Test(templates, strict_render_names_every_missing_variable) {
  erpq_templates *s = shipped();
  json_t *v = fee_vars(0, 1);
  json_object_del(v, "payUrl");
  json_object_del(v, "unsubscribeUrl");
  json_object_del(v, "className");
  char *sub = (char *)1, *txt = (char *)1, *html = (char *)1, err[512];
  int rc = erpq_templates_render_email(s, "fee-reminder", "hi-IN", v, &sub, &txt, &html, err,
                                       sizeof err);
  cr_assert_eq(rc, -EINVAL);
  cr_assert(!sub && !txt && !html);
  cr_assert_str_eq(err, "email template 'fee-reminder' (hi): 3 missing variables: className, "
                        "payUrl, unsubscribeUrl");
  char *sms;
  cr_assert_eq(erpq_templates_render_sms(s, "fee-reminder", "en", v, &sms, err, sizeof err),
               -EINVAL);
  cr_assert_str_eq(err, "sms template 'fee-reminder' (en): 1 missing variable: payUrl");
  json_decref(v);
  cr_assert_eq(erpq_templates_render_sms(s, "fee-reminder", "en", NULL, &sms, err, sizeof err),
               -EINVAL);
  /* A line break in a value cannot break the subject into two lines. */
  v = fee_vars(0, 0);
  json_object_set_new(v, "studentName", json_string("Aarav\r\nBcc: x@example.com"));
  cr_assert_eq(
      erpq_templates_render_email(s, "fee-reminder", "en", v, &sub, &txt, NULL, err, sizeof err), 0,
      "%s", err);
  cr_assert_str_eq(sub, "Fee reminder: Rs 12,500.00 due for Aarav  Bcc: x@example.com");
  cr_assert(!strstr(txt, "Pay online"), "payUrl null renders no pay section");
  free(sub), free(txt);
  json_decref(v);
  erpq_templates_free(s);
}

/* ------------------------------------------------ scratch directories ---- */

static char scratch[64];

static void put(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", scratch, rel);
  for (char *p = path + strlen(scratch) + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    mkdir(path, 0755);
    *p = '/';
  }
  FILE *f = fopen(path, "w");
  cr_assert(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p);
}

static void scratch_init(void) {
  snprintf(scratch, sizeof scratch, "/tmp/erpq-tpl-XXXXXX");
  cr_assert(mkdtemp(scratch));
  put("email/m.en.subject.mustache", "Hi {{who}}\n");
  put("email/m.en.txt.mustache", "Text {{who}}\n{{>foot}}\n");
  put("email/m.en.html.mustache", "<p>{{who}}</p>\n");
  put("partials/foot.mustache", "-- generic {{who}}\n");
  put("partials/foot.hi.mustache", "-- hindi {{who}}\n");
  put("README.md", "not a template\n");
}

static void scratch_fini(void) { nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(store, .init = scratch_init, .fini = scratch_fini);

static void render_m(erpq_templates *s, const char *loc, const char *want_txt, int want_html) {
  json_t *v = json_pack("{s:s}", "who", "<Ann>");
  char *sub, *txt, *html, err[512];
  cr_assert_eq(erpq_templates_render_email(s, "m", loc, v, &sub, &txt, &html, err, sizeof err), 0,
               "%s", err);
  cr_assert_str_eq(txt, want_txt, "locale %s", loc);
  cr_assert_eq(html != NULL, want_html, "locale %s html", loc);
  free(sub), free(txt), free(html);
  json_decref(v);
}

Test(store, sets_fall_back_whole_and_partials_follow_the_set_locale) {
  put("email/m.hi.subject.mustache", "HI {{who}}");
  put("email/m.hi.txt.mustache", "HTEXT {{who}}\n{{>foot}}\n");
  put("email/m.hi-IN.html.mustache", "<p>only html {{who}}</p>");
  put("email/m.fr.txt.mustache", "no subject {{who}}");
  char err[512];
  erpq_templates *s = load_dir(scratch, err, sizeof err);
  cr_assert(s, "%s", err);
  cr_assert_eq(nwarn, 2, "%s", warnings);
  cr_assert(strstr(warnings, "email template 'm', locale fr: the set has no subject file, so it "
                             "is ignored and requests for fr fall back to the next locale as a "
                             "whole"),
            "%s", warnings);
  cr_assert(strstr(warnings, "locale hi-IN: the set has no subject and no txt file"), "%s",
            warnings);
  /* hi-IN has only html: the hi set is used whole, without html (never
   * hi-IN's html with hi's text, nor en's html). */
  render_m(s, "hi-IN", "HTEXT <Ann>\n-- hindi <Ann>\n", 0);
  render_m(s, "hi", "HTEXT <Ann>\n-- hindi <Ann>\n", 0);
  render_m(s, "fr", "Text <Ann>\n-- generic <Ann>\n", 1);
  render_m(s, "en", "Text <Ann>\n-- generic <Ann>\n", 1);
  cr_assert_str_eq(erpq_templates_email_locale(s, "m", "hi-IN"), "hi");
  cr_assert_str_eq(erpq_templates_email_locale(s, "m", "fr"), "en");
  erpq_templates_free(s);
}

static void load_fails(const char *want) {
  char err[512] = "";
  erpq_templates *s = load_dir(scratch, err, sizeof err);
  cr_assert_null(s, "the load should fail with: %s", want);
  char full[600];
  snprintf(full, sizeof full, want, scratch);
  cr_assert_str_eq(err, full);
}

Test(store, missing_en_fails_the_load) {
  put("email/x.hi.subject.mustache", "s");
  put("email/x.hi.txt.mustache", "t");
  load_fails("email template 'x' has no complete 'en' set (%s/email/x.en.{subject,txt}.mustache), "
             "the set every locale falls back to");
}

Test(store, en_without_txt_fails_the_load) {
  put("sms/y.en.txt.mustache", "ok");
  put("email/x.en.subject.mustache", "s");
  load_fails("email template 'x' has no complete 'en' set (%s/email/x.en.{subject,txt}.mustache), "
             "the set every locale falls back to");
}

Test(store, parse_errors_name_the_file_and_position) {
  put("email/m.hi.subject.mustache", "s");
  put("email/m.hi.txt.mustache", "Dear {{who}},\n{{#payUrl}}\nPay: {{payUrl}}\n");
  load_fails("%s/email/m.hi.txt.mustache: unclosed section 'payUrl' opened at line 2, column 1");
}

Test(store, a_partial_that_does_not_resolve_fails_the_load) {
  put("sms/m.en.txt.mustache", "{{who}} {{>sig}}");
  load_fails("%s/sms/m.en.txt.mustache: partial 'sig' not found (looked for "
             "partials/sig.<locale>.mustache for en, then partials/sig.mustache)");
}

Test(store, a_partial_for_one_locale_only_fails_the_others) {
  put("partials/sig.hi.mustache", "sig");
  put("sms/m.en.txt.mustache", "{{who}}");
  put("sms/m.hi-IN.txt.mustache", "{{who}} {{>sig}}");
  char err[512];
  erpq_templates *s = load_dir(scratch, err, sizeof err);
  cr_assert(s, "%s", err);
  erpq_templates_free(s);
  put("sms/m.en.txt.mustache", "{{who}} {{>sig}}");
  load_fails("%s/sms/m.en.txt.mustache: partial 'sig' not found (looked for "
             "partials/sig.<locale>.mustache for en, then partials/sig.mustache)");
}

Test(store, a_variable_the_en_set_does_not_use_fails_the_load) {
  put("email/m.hi.subject.mustache", "{{who}}");
  put("email/m.hi.txt.mustache", "{{#wh0}}{{/wh0}}");
  load_fails("%s/email/m.hi.txt.mustache uses the variable 'wh0', which the 'en' set of email "
             "template 'm' does not use (a typo? every locale gets the same variables)");
}

Test(store, file_names_must_fit_the_layout) {
  put("email/m.en.text.mustache", "x");
  load_fails("%s/email/m.en.text.mustache: the file name does not fit "
             "<name>.<locale>.(subject|txt|html).mustache");
}

Test(store, sms_parts_other_than_txt_are_refused) {
  put("sms/m.en.subject.mustache", "x");
  load_fails("%s/sms/m.en.subject.mustache: the file name does not fit "
             "<name>.<locale>.txt.mustache");
}

Test(store, a_missing_directory_fails) {
  char err[256];
  erpq_templates *s = load_dir("/nonexistent/templates", err, sizeof err);
  cr_assert_null(s);
  cr_assert_str_eq(err, "template directory /nonexistent/templates cannot be read");
}
