/*
 * test_mime.c - erpq_mime_build() against Python's stdlib email package
 * (tests/mime_check.py, email.parser with policy=email.policy.default):
 * hand-made samples (Hindi, Greek, emoji, attachments from memory and from
 * a file, a 1,000-character Hindi line, folding), a seeded batch of random
 * messages, and the refusals (header injection first of all).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erpq_buf.h"
#include "erpq_err.h"
#include "erpq_mime.h"
#include "mime_test_msgs.h"
#include "notify_test_util.h"

/* Runs mime_check.py over messages (array of {file, expect}); removes the
 * files afterwards. */
static void python_check(json_t *messages, size_t expect_checked) {
  json_t *doc = json_pack("{s:O}", "messages", messages);
  char *in = json_dumps(doc, JSON_COMPACT);
  cr_assert(in);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/jobs/notifications/tests/mime_check.py'",
           nt_source_dir());
  int st;
  char *out = nt_run(cmd, in, strlen(in), NULL, &st);
  fprintf(stderr, "mime_check: %.2000s", out);
  json_t *res = json_loads(out, 0, NULL);
  cr_assert(res, "mime_check printed no JSON (exit %d)", st);
  cr_assert_eq(st, 0, "Python's email package disagrees: %s", out);
  cr_assert_eq((size_t)json_integer_value(json_object_get(res, "checked")), expect_checked);
  json_decref(res);
  size_t i;
  json_t *m;
  json_array_foreach(messages, i, m) {
    unlink(json_string_value(json_object_get(m, "file")));
    size_t k;
    json_t *a;
    json_array_foreach(json_object_get(json_object_get(m, "expect"), "attachments"), k, a) {
      const char *p = json_string_value(json_object_get(a, "path"));
      if (p && strstr(p, ".bin"))
        unlink(p);
    }
  }
  free(out);
  free(in);
  json_decref(doc);
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f);
  char *s = erpq_buf_read_all(f, len);
  fclose(f);
  cr_assert(s);
  return s;
}

Test(mime, samples_parse_back, .timeout = 120) {
  json_t *messages = json_array();
  static mt_sample samples[MT_COUNT];
  for (int w = 0; w < MT_COUNT; w++) {
    mt_sample *sp = &samples[w];
    mt_sample_make(sp, w);
#define s (*sp)
    char *file = mt_build_to_file(&s.m);
    size_t len;
    char *raw = slurp(file, &len);
    /* The transfer encodings the header promises for these texts. */
    if (w == MT_LONG_HINDI)
      cr_expect(strstr(raw, "Content-Transfer-Encoding: base64"), "Hindi text not base64");
    if (w == MT_LONG_QP)
      cr_expect(strstr(raw, "text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
                            "quoted-printable"),
                "mostly ASCII text not quoted-printable");
    if (w == MT_FULL) {
      cr_expect(strstr(raw, "filename*0*=utf-8''"), "no RFC 2231 continuation");
      cr_expect(strstr(raw, "=?UTF-8?"), "no encoded-word");
      cr_expect_null(strstr(raw, "\r\nBcc:"));
    }
    free(raw);
    json_array_append_new(messages, json_pack("{s:s,s:o}", "file", file, "expect", mt_expect(&s)));
    free(file);
#undef s
  }
  python_check(messages, MT_COUNT);
  for (int w = 0; w < MT_COUNT; w++)
    mt_sample_free(&samples[w]);
  json_decref(messages);
}

/* ---- A seeded batch of random messages ------------------------------------ */

static const char *const words[] = {
    "Fees", "due", "on",    "Monday,", "=?",          "\"quoted\"", "a.b",
    "(x)",  "<y>", "50%",   "x@y",     "back\\slash", "semi;colon", "विद्यालय",
    "सूचना", "कल",  "अवकाश", "Σχολείο", "γιορτή",      "🎉",          "👨‍👩‍👧",
    "学校", "—",   "…",     "₹500",    "Zoë",         "naïve",      "O'Neil",
    "Δ",    "ç",   "x=y",   "?=",      "_under_",     "tab",        "€",
};
#define NWORDS (sizeof words / sizeof words[0])

static void rand_words(uint64_t *rs, erpq_buf *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (i)
      erpq_buf_adds(b, nt_below(rs, 10) ? " " : nt_below(rs, 2) ? "  " : "\t");
    erpq_buf_adds(b, words[nt_below(rs, NWORDS)]);
  }
}

static char *rand_phrase(uint64_t *rs, size_t maxw) {
  erpq_buf b = {0};
  rand_words(rs, &b, 1 + nt_below(rs, maxw));
  return erpq_buf_take(&b);
}

static char *rand_body(uint64_t *rs) {
  erpq_buf b = {0};
  size_t lines = nt_below(rs, 12);
  static const char *const breaks[] = {"\n", "\r\n", "\r"};
  for (size_t l = 0; l < lines; l++) {
    size_t n = nt_below(rs, 4) == 0 ? 100 + nt_below(rs, 250) : nt_below(rs, 15);
    if (nt_below(rs, 6) == 0)
      erpq_buf_adds(&b, nt_below(rs, 2) ? "From " : ".");
    rand_words(rs, &b, n);
    if (nt_below(rs, 5) == 0)
      erpq_buf_adds(&b, "  ");
    if (l + 1 < lines || nt_below(rs, 2))
      erpq_buf_adds(&b, breaks[nt_below(rs, 3)]);
  }
  return erpq_buf_take(&b);
}

static char *keep(mt_sample *s, char *p) {
  cr_assert(p);
  cr_assert(s->nowned < sizeof s->owned / sizeof s->owned[0]);
  s->owned[s->nowned++] = p;
  return p;
}

static char *fmt(const char *f, size_t a, size_t b) {
  char *o = malloc(96);
  cr_assert(o);
  snprintf(o, 96, f, a, b);
  return o;
}

static void random_sample(uint64_t *rs, mt_sample *s, size_t k) {
  static const char *const att_types[] = {"application/pdf", "image/png", "text/csv",
                                          "application/octet-stream"};
  memset(s, 0, sizeof *s);
  s->label = "random";
  erpq_mime_msg *m = &s->m;
  m->from = (erpq_mime_addr){nt_below(rs, 3) ? keep(s, rand_phrase(rs, 3)) : NULL,
                             "office@school.example"};
  m->nto = 1 + nt_below(rs, 5);
  for (size_t i = 0; i < m->nto; i++)
    s->to[i] = (erpq_mime_addr){nt_below(rs, 4) ? keep(s, rand_phrase(rs, 4)) : NULL,
                                keep(s, fmt("p%zu.%zu@example.com", k, i))};
  m->to = s->to;
  m->ncc = nt_below(rs, 3);
  for (size_t i = 0; i < m->ncc; i++)
    s->cc[i] =
        (erpq_mime_addr){keep(s, rand_phrase(rs, 3)), keep(s, fmt("c%zu.%zu@example.org", k, i))};
  m->cc = s->cc;
  m->subject = keep(s, rand_phrase(rs, 30));
  m->text = nt_below(rs, 5) ? keep(s, rand_body(rs)) : NULL;
  m->html = (!m->text || nt_below(rs, 3) == 0) ? keep(s, rand_body(rs)) : NULL;
  m->nheaders = nt_below(rs, 3);
  static const char *const hnames[] = {"X-Erpq-Campaign", "X-Erpq-Note"};
  for (size_t i = 0; i < m->nheaders; i++)
    s->headers[i] = (erpq_mime_header){hnames[i], keep(s, rand_phrase(rs, 12))};
  m->headers = s->headers;
  m->nattachments = nt_below(rs, 3);
  for (size_t i = 0; i < m->nattachments; i++) {
    erpq_buf n = {0};
    rand_words(rs, &n, 1 + nt_below(rs, 5));
    erpq_buf_adds(&n, ".pdf");
    size_t len = nt_below(rs, 3000);
    unsigned char *d = malloc(len + 1);
    cr_assert(d);
    for (size_t j = 0; j < len; j++)
      d[j] = (unsigned char)nt_rand(rs);
    s->att[i] = (erpq_mime_attachment){keep(s, erpq_buf_take(&n)), att_types[nt_below(rs, 4)],
                                       keep(s, (char *)d), len, NULL};
  }
  m->attachments = s->att;
  m->message_id = keep(s, fmt("<%zx.%zu@school.example>", (size_t)nt_rand(rs), k));
  m->date = 946684800 + (int64_t)nt_below(rs, 3000000000u);
  m->tz_minutes = ((int)nt_below(rs, 97) - 48) * 15;
  if (nt_below(rs, 3) == 0)
    m->unsubscribe_url = "https://school.example/unsubscribe?t=abc123";
  if (nt_below(rs, 3) == 0)
    m->unsubscribe_mailto = "mailto:unsub@school.example";
  if (m->nattachments)
    s->types[s->ntypes++] = "multipart/mixed";
  if (m->text && m->html)
    s->types[s->ntypes++] = "multipart/alternative";
  if (m->text)
    s->types[s->ntypes++] = "text/plain";
  if (m->html)
    s->types[s->ntypes++] = "text/html";
  for (size_t i = 0; i < m->nattachments; i++)
    s->types[s->ntypes++] = s->att[i].content_type;
}

Test(mime, random_messages, .timeout = 300) {
  uint64_t rs = nt_seed("mime random");
  json_t *messages = json_array();
  const size_t N = 150;
  for (size_t k = 0; k < N; k++) {
    mt_sample s;
    random_sample(&rs, &s, k);
    char *file = mt_build_to_file(&s.m);
    json_array_append_new(messages, json_pack("{s:s,s:o}", "file", file, "expect", mt_expect(&s)));
    free(file);
    mt_sample_free(&s);
  }
  python_check(messages, N);
  json_decref(messages);
}

/* ---- Refusals ----------------------------------------------------------------- */

static erpq_mime_addr good_to[1] = {{"Parent", "parent@example.com"}};

static erpq_mime_msg minimal(void) {
  erpq_mime_msg m = {0};
  m.from = (erpq_mime_addr){"School", "office@school.example"};
  m.to = good_to;
  m.nto = 1;
  m.subject = "Hello";
  m.message_id = "<1@school.example>";
  m.date = 1796000000;
  m.text = "Hi\n";
  return m;
}

/* Builds m into a buffer that already holds "KEEP": the call must fail
 * with code, name `word` in the message, and leave the buffer as it was. */
static void refused(const erpq_mime_msg *m, int code, const char *word) {
  erpq_buf b = {0};
  erpq_buf_adds(&b, "KEEP");
  char err[256] = "";
  int rc = erpq_mime_build(m, &b, err, sizeof err);
  cr_expect_eq(rc, code, "expected %d, got %d (%s)", code, rc, err);
  cr_expect(strstr(err, word), "'%s' does not mention '%s'", err, word);
  cr_expect_eq(b.len, 4);
  cr_expect_str_eq(b.s, "KEEP");
  erpq_buf_free(&b);
}

Test(mime, header_injection_refused) {
  erpq_mime_msg m = minimal();
  m.subject = "Fees due\r\nBcc: everyone@example.com";
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  m.subject = "Fees due\nX-Evil: 1";
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  m.from.name = "School\r\nBcc: a@example.com";
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  erpq_mime_addr to_bad[1] = {{"Parent", "parent@example.com\r\nBcc: x@example.com"}};
  m.to = to_bad;
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  erpq_mime_addr cc_bad[1] = {{"A\rB", "cc@example.com"}};
  m.cc = cc_bad;
  m.ncc = 1;
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  m.message_id = "<1@school.example>\r\nBcc: x@example.com";
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  m.unsubscribe_url = "https://school.example/u\r\nBcc: x@example.com";
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  erpq_mime_header h1[1] = {{"X-Note", "ok\r\nBcc: x@example.com"}};
  m.headers = h1;
  m.nheaders = 1;
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  erpq_mime_header h2[1] = {{"X-Note\r\nBcc", "x@example.com"}};
  m.headers = h2;
  m.nheaders = 1;
  refused(&m, -EINVAL, "CR/LF");
  m = minimal();
  erpq_mime_attachment a1[1] = {
      {"report.pdf\r\nContent-Type: text/html", "application/pdf", "x", 1, NULL}};
  m.attachments = a1;
  m.nattachments = 1;
  refused(&m, -EINVAL, "header injection");
  m = minimal();
  erpq_mime_attachment a2[1] = {{"report.pdf", "application/pdf\r\nX: y", "x", 1, NULL}};
  m.attachments = a2;
  m.nattachments = 1;
  refused(&m, -EINVAL, "content type");
}

Test(mime, other_refusals) {
  erpq_mime_msg m = minimal();
  m.nto = 0;
  refused(&m, -EINVAL, "no To");
  m = minimal();
  m.text = NULL;
  refused(&m, -EINVAL, "neither text nor html");
  m = minimal();
  m.subject = "bad \xc3\x28 utf-8";
  refused(&m, -EINVAL, "UTF-8");
  m = minimal();
  m.text = "bad \xed\xa0\x80 surrogate";
  refused(&m, -EINVAL, "UTF-8");
  m = minimal();
  m.subject = "a\x01"
              "b";
  refused(&m, -EINVAL, "control");
  m = minimal();
  m.from.email = "not an address";
  refused(&m, -EINVAL, "From");
  m = minimal();
  m.message_id = "no-at-sign";
  refused(&m, -EINVAL, "Message-ID");
  m = minimal();
  m.unsubscribe_url = "http://school.example/u";
  refused(&m, -EINVAL, "https");
  m = minimal();
  m.unsubscribe_mailto = "unsub@school.example";
  refused(&m, -EINVAL, "mailto");
  static const char *const reserved[] = {
      "Bcc", "from", "Content-Type", "MIME-Version", "List-Unsubscribe-Post", "Message-Id"};
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    m = minimal();
    erpq_mime_header h[1] = {{reserved[i], "x"}};
    m.headers = h;
    m.nheaders = 1;
    refused(&m, -EINVAL, "written by the builder");
  }
  m = minimal();
  erpq_mime_attachment a[1] = {
      {"missing.pdf", "application/pdf", NULL, 0, "/nonexistent/erpq/missing.pdf"}};
  m.attachments = a;
  m.nattachments = 1;
  refused(&m, -ENOENT, "attachment #1");
  m = minimal();
  m.tz_minutes = 1440;
  refused(&m, -EINVAL, "time zone");
  m = minimal();
  m.date = 400000000000; /* year 14645 */
  refused(&m, -EINVAL, "date");
}

Test(mime, message_id_from_dedup_key) {
  const char *key = "notifications:school-12:fee-reminder:2026-12:student-4711";
  char id[128], err[128];
  cr_assert_eq(
      erpq_mime_message_id(key, strlen(key), "school.example", id, sizeof id, err, sizeof err), 0,
      "%s", err);
  /* The reference: coreutils sha256sum over the same key. */
  char cmd[256];
  snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | sha256sum", key);
  int st;
  char *out = nt_run(cmd, NULL, 0, NULL, &st);
  cr_assert_eq(st, 0);
  char want[128];
  snprintf(want, sizeof want, "<%.32s@school.example>", out);
  cr_assert_str_eq(id, want);
  free(out);
  /* Same key, same id; another key, another id. */
  char id2[128];
  cr_assert_eq(
      erpq_mime_message_id(key, strlen(key), "school.example", id2, sizeof id2, err, sizeof err),
      0);
  cr_assert_str_eq(id, id2);
  cr_assert_eq(erpq_mime_message_id("other", 5, "school.example", id2, sizeof id2, err, sizeof err),
               0);
  cr_assert_str_neq(id, id2);
  cr_assert_eq(
      erpq_mime_message_id(key, strlen(key), "bad domain>", id2, sizeof id2, err, sizeof err),
      -EINVAL);
  cr_assert_eq(erpq_mime_message_id(key, strlen(key), "school.example", id2, 20, err, sizeof err),
               -ENOSPC);
}

Test(mime, date_format) {
  char d[32];
  cr_assert_eq(erpq_mime_date(0, 0, d), 0);
  cr_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
  /* 2026-11-30 00:53:20 UTC is a Monday, 06:23:20 in India. */
  cr_assert_eq(erpq_mime_date(1796000000, 330, d), 0);
  cr_assert_str_eq(d, "Mon, 30 Nov 2026 06:23:20 +0530");
  cr_assert_eq(erpq_mime_date(1796000000, -300, d), 0);
  cr_assert_str_eq(d, "Sun, 29 Nov 2026 19:53:20 -0500");
}
