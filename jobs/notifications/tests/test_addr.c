/*
 * test_addr.c - phone numbers (erpq_e164) and e-mail addresses
 * (erpq_email_addr): a hand-written table of each, and the same tables
 * judged by python3-phonenumbers and the stdlib email package
 * (tests/phone_reference.py).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_e164.h"
#include "erpq_email_addr.h"
#include "erpq_err.h"
#include "notify_test_util.h"

static char *cases_path(void) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/jobs/notifications/tests/e164_cases.tsv", nt_source_dir());
  return path;
}

Test(e164, table) {
  FILE *f = fopen(cases_path(), "r");
  cr_assert(f, "cannot open %s", cases_path());
  char line[512];
  int rows = 0, good = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    if (!line[0] || line[0] == '#')
      continue;
    char *fields[5];
    char *p = line;
    for (int i = 0; i < 5; i++) {
      fields[i] = p;
      p = strchr(p, '\t');
      cr_assert(p || i == 4, "bad row: %s", line);
      if (p)
        *p++ = '\0';
    }
    char out[ERPQ_E164_BUFSZ], err[256];
    int rc = erpq_e164_normalize(fields[0], atoi(fields[1]), out, err, sizeof err);
    if (strcmp(fields[2], "-") == 0) {
      cr_expect_eq(rc, -EINVAL, "row '%s' accepted as %s", fields[4], out);
      cr_expect_str_eq(out, "");
      /* The reason never quotes the number. */
      cr_expect_null(strstr(err, "98001"), "message leaks the number: %s", err);
    } else {
      cr_expect_eq(rc, 0, "row '%s' refused: %s", fields[4], err);
      cr_expect_str_eq(out, fields[2], "row '%s'", fields[4]);
      cr_expect(erpq_e164_valid(out));
      good++;
    }
    rows++;
  }
  fclose(f);
  cr_assert_geq(rows, 40);
  cr_assert_geq(good, 25);
}

Test(e164, refusals_name_the_reason) {
  char out[ERPQ_E164_BUFSZ], err[256];
  cr_assert_eq(erpq_e164_normalize("+91 98001 0000I", 0, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "letters"), "%s", err);
  cr_assert_eq(erpq_e164_normalize("98001 00001", 0, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "no country code"), "%s", err);
  cr_assert_eq(erpq_e164_normalize("+0919800100001", 0, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "0 right after"), "%s", err);
  cr_assert_eq(erpq_e164_normalize("+91 98", 0, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "fewer than 8"), "%s", err);
  cr_assert_eq(erpq_e164_normalize("+91 98001 00001 00001", 0, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "more than 15"), "%s", err);
  /* Brazil: not in the trunk table, a leading 0 is ambiguous. */
  cr_assert_eq(erpq_e164_normalize("011 91234 5678", 55, out, err, sizeof err), -EINVAL);
  cr_assert(strstr(err, "not known"), "%s", err);
  cr_assert_eq(erpq_e164_normalize("98001 00001", 1000, out, err, sizeof err), -EINVAL);
  cr_assert_eq(erpq_e164_normalize("+91 98001\n00001", 0, out, err, sizeof err), -EINVAL);
  cr_assert_eq(erpq_e164_normalize("12345678901234567890123456789", 0, out, err, sizeof err),
               -EINVAL);
}

Test(e164, mask) {
  char out[ERPQ_E164_BUFSZ];
  cr_assert_eq(erpq_e164_mask("+919800100001", out), 0);
  cr_assert_str_eq(out, "+91********01");
  cr_assert_eq(erpq_e164_mask("+4741234567", out), 0);
  cr_assert_str_eq(out, "+47******67");
  cr_assert_eq(erpq_e164_mask("+49301234", out), 0);
  cr_assert_str_eq(out, "+49****34");
  cr_assert_eq(erpq_e164_mask("+123456789012345", out), 0);
  cr_assert_str_eq(out, "+12***********45");
  cr_assert_eq(erpq_e164_mask("98001 00001", out), -EINVAL);
  cr_assert_str_eq(out, "***");
  cr_assert_eq(erpq_e164_mask("+1234567", out), -EINVAL);
}

/* ---- E-mail addresses ------------------------------------------------------ */

static const char *const good_emails[] = {
    "priya.sharma@example.com",
    "p@example.in",
    "first+tag@mail.example.co.uk",
    "o'neil@example.ie",
    "a!#$%&'*+/=?^_`{|}~-z@example.org",
    "user@xn--80ak6aa92e.com",
    "x@a-b.example",
    "1234@example.com",
};

static const struct {
  const char *addr;
  const char *why; /* a word of the expected message */
} bad_emails[] = {
    {"", "empty"},
    {"priya.example.com", "no '@'"},
    {"a@b@example.com", "more than one"},
    {"@example.com", "no local part"},
    {"priya@", "no domain"},
    {"priya@localhost", "no dot"},
    {"priya@example.com\r\nBcc: all@example.com", "header injection"},
    {"priya@example.com\n", "header injection"},
    {"pri ya@example.com", "space"},
    {"priya\t@example.com", "control"},
    {".priya@example.com", "dot"},
    {"priya.@example.com", "dot"},
    {"pri..ya@example.com", "dot"},
    {"\"priya\"@example.com", "quoting"},
    {"priya,ravi@example.com", "quoting"},
    {"<priya@example.com>", "quoting"},
    {"priya@example..com", "empty label"},
    {"priya@.example.com", "empty label"},
    {"priya@example.com.", "empty label"},
    {"priya@-example.com", "'-'"},
    {"priya@example-.com", "'-'"},
    {"priya@exa_mple.com", "letters, digits"},
    {"priya@[192.0.2.1]", "literals"},
    {"priya@192.0.2.1", "all digits"},
    {"pr\xc3\xafya@example.com", "SMTPUTF8"},
    {"priya@b\xc3\xbc"
     "cher.example",
     "xn--"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com", "64"},
    {"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com", "63"},
};

/* 64 a's @ 63 b's . 63 c's . nd d's .com */
static void long_address(char *out, int nd) {
  int n = 0;
  for (int i = 0; i < 64; i++)
    out[n++] = 'a';
  out[n++] = '@';
  for (int i = 0; i < 63; i++)
    out[n++] = 'b';
  out[n++] = '.';
  for (int i = 0; i < 63; i++)
    out[n++] = 'c';
  out[n++] = '.';
  for (int i = 0; i < nd; i++)
    out[n++] = 'd';
  strcpy(out + n, ".com");
}

Test(email, valid_and_invalid) {
  char err[256];
  for (size_t i = 0; i < sizeof good_emails / sizeof good_emails[0]; i++)
    cr_expect_eq(erpq_email_addr_valid(good_emails[i], err, sizeof err), 0, "#%zu: %s", i, err);
  /* 64-octet local part and 254 octets in all: accepted; one more: not. */
  char longest[300];
  long_address(longest, 57);
  cr_assert_eq(strlen(longest), 254);
  cr_expect_eq(erpq_email_addr_valid(longest, err, sizeof err), 0, "%s", err);
  long_address(longest, 58);
  cr_expect_eq(erpq_email_addr_valid(longest, err, sizeof err), -EINVAL);
  cr_expect(strstr(err, "254"), "%s", err);
  for (size_t i = 0; i < sizeof bad_emails / sizeof bad_emails[0]; i++) {
    err[0] = '\0';
    cr_expect_eq(erpq_email_addr_valid(bad_emails[i].addr, err, sizeof err), -EINVAL,
                 "#%zu accepted", i);
    cr_expect(strstr(err, bad_emails[i].why), "#%zu: '%s' lacks '%s'", i, err, bad_emails[i].why);
    cr_expect_null(strstr(err, "priya"), "message leaks the address: %s", err);
  }
}

Test(email, normalize) {
  char out[ERPQ_EMAIL_MAX + 1], err[256];
  cr_assert_eq(
      erpq_email_addr_normalize("  Priya.Sharma@Example.COM\t", out, sizeof out, err, sizeof err),
      0, "%s", err);
  cr_assert_str_eq(out, "Priya.Sharma@example.com");
  cr_assert_eq(erpq_email_addr_normalize(" a@b.c\r\n", out, sizeof out, err, sizeof err), -EINVAL);
  cr_assert_str_eq(out, "");
  char small[8];
  cr_assert_eq(erpq_email_addr_normalize("priya@example.com", small, sizeof small, err, sizeof err),
               -ENOSPC);
}

Test(email, mask) {
  char out[64];
  cr_assert_eq(erpq_email_mask("priya.sharma@example.com", out, sizeof out), 0);
  cr_assert_str_eq(out, "p***@example.com");
  cr_assert_eq(erpq_email_mask("p@example.com", out, sizeof out), 0);
  cr_assert_str_eq(out, "p***@example.com");
  /* A multi-byte first character stays whole. */
  cr_assert_eq(erpq_email_mask("\xc3\xa9lise@example.fr", out, sizeof out), 0);
  cr_assert_str_eq(out, "\xc3\xa9***@example.fr");
  cr_assert_eq(erpq_email_mask("no-at-sign", out, sizeof out), -EINVAL);
  cr_assert_str_eq(out, "***");
  cr_assert_eq(erpq_email_mask("@example.com", out, sizeof out), -EINVAL);
  char small[10];
  cr_assert_eq(erpq_email_mask("priya@example.com", small, sizeof small), -ENOSPC);
  cr_assert_str_eq(small, "");
}

/* ---- The references -------------------------------------------------------- */

Test(addr, reference_phonenumbers_and_email_package, .timeout = 120) {
  json_t *trunk = json_object();
  int n0 = 0, keep = 0;
  for (int cc = 1; cc <= 999; cc++) {
    const char *t = erpq_e164_trunk_prefix(cc);
    if (!t)
      continue;
    char key[8];
    snprintf(key, sizeof key, "%d", cc);
    json_object_set_new(trunk, key, json_string(t));
    n0 += strcmp(t, "0") == 0;
    keep += t[0] == '\0';
  }
  cr_assert_geq(n0, 40);
  cr_assert_eq(keep, 3);
  json_t *emails = json_array();
  for (size_t i = 0; i < sizeof good_emails / sizeof good_emails[0]; i++)
    json_array_append_new(emails, json_string(good_emails[i]));
  json_t *doc = json_pack("{s:o,s:o}", "trunk", trunk, "emails", emails);
  char *in = json_dumps(doc, JSON_COMPACT);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 '%s/jobs/notifications/tests/phone_reference.py' '%s'",
           nt_source_dir(), cases_path());
  int st;
  char *out = nt_run(cmd, in, strlen(in), NULL, &st);
  fprintf(stderr, "phone reference: %s", out);
  cr_assert_eq(st, 0, "the reference disagrees (exit %d): %s", st, out);
  json_t *res = json_loads(out, 0, NULL);
  cr_assert(res);
  cr_assert_geq(json_integer_value(json_object_get(res, "rows")), 40);
  cr_assert_eq((size_t)json_integer_value(json_object_get(res, "emails")),
               sizeof good_emails / sizeof good_emails[0]);
  json_decref(res);
  free(out);
  free(in);
  json_decref(doc);
}
