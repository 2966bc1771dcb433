/*
 * test_mime_smtp.c - two built messages through a real SMTP server: curl's
 * command line uploads them to maildev ($ERPQ_TEST_SMTP_URL), and
 * tests/maildev_check.py reads them back through maildev's REST API
 * ($ERPQ_TEST_MAILDEV_API) to check subject, recipients (the envelope too,
 * with a Bcc-only recipient), text, html, headers and attachment bytes.
 * Both variables are required: without them the test fails.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_mime.h"
#include "mime_test_msgs.h"
#include "notify_test_util.h"

static void add_rcpt(char *cmd, size_t cap, json_t *env, const char *addr) {
  size_t l = strlen(cmd);
  snprintf(cmd + l, cap - l, " --mail-rcpt '%s'", addr);
  json_array_append_new(env, json_string(addr));
}

Test(mime_smtp, maildev_receives_what_we_built, .timeout = 120) {
  const char *smtp = nt_env("ERPQ_TEST_SMTP_URL");
  const char *api = nt_env("ERPQ_TEST_MAILDEV_API");
  uint64_t rs = nt_seed("mime smtp");
  static const int which[] = {MT_FULL, MT_LONG_QP};
  mt_sample samples[2];
  char ids[2][96];
  json_t *specs = json_array();
  for (int k = 0; k < 2; k++) {
    mt_sample *s = &samples[k];
    mt_sample_make(s, which[k]);
    /* A Message-ID of this run, to find the message among others. */
    snprintf(ids[k], sizeof ids[k], "<smtp-test-%ld-%llx-%d@school.example>", (long)getpid(),
             (unsigned long long)nt_rand(&rs), k);
    s->m.message_id = ids[k];
    char *file = mt_build_to_file(&s->m);

    char cmd[4096];
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 60 '%s' --mail-from '%s' --upload-file '%s'",
             smtp, s->m.from.email, file);
    json_t *env = json_array(), *bcc = json_array();
    for (size_t i = 0; i < s->m.nto; i++)
      add_rcpt(cmd, sizeof cmd, env, s->m.to[i].email);
    for (size_t i = 0; i < s->m.ncc; i++)
      add_rcpt(cmd, sizeof cmd, env, s->m.cc[i].email);
    add_rcpt(cmd, sizeof cmd, env, "hidden-bcc@example.com");
    json_array_append_new(bcc, json_string("hidden-bcc@example.com"));
    int st;
    char *out = nt_run(cmd, NULL, 0, NULL, &st);
    cr_assert_eq(st, 0, "curl could not deliver message %d to %s (exit %d): %s", k, smtp, st, out);
    free(out);
    unlink(file);
    free(file);
    json_array_append_new(specs, json_pack("{s:s,s:o,s:o,s:o}", "message_id", ids[k], "envelope_to",
                                           env, "bcc", bcc, "expect", mt_expect(s)));
  }
  json_t *doc = json_pack("{s:s,s:o}", "api", api, "messages", specs);
  char *in = json_dumps(doc, JSON_COMPACT);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/jobs/notifications/tests/maildev_check.py'",
           nt_source_dir());
  int st;
  char *out = nt_run(cmd, in, strlen(in), NULL, &st);
  fprintf(stderr, "maildev_check: %s", out);
  cr_assert_eq(st, 0, "maildev saw something else (exit %d): %s", st, out);
  json_t *res = json_loads(out, 0, NULL);
  cr_assert(res);
  cr_assert_eq(json_integer_value(json_object_get(res, "checked")), 2);
  json_decref(res);
  /* Remove the expectation files of in-memory attachments. */
  size_t i;
  json_t *spec;
  json_array_foreach(json_object_get(doc, "messages"), i, spec) {
    size_t k;
    json_t *a;
    json_array_foreach(json_object_get(json_object_get(spec, "expect"), "attachments"), k, a) {
      const char *p = json_string_value(json_object_get(a, "path"));
      if (p && strstr(p, ".bin"))
        unlink(p);
    }
  }
  free(out);
  free(in);
  json_decref(doc);
  for (int k = 0; k < 2; k++)
    mt_sample_free(&samples[k]);
}
