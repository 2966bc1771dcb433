#include "mime_test_msgs.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_buf.h"
#include "notify_test_util.h"

static char *own(mt_sample *s, char *p) {
  cr_assert(p);
  cr_assert(s->nowned < sizeof s->owned / sizeof s->owned[0]);
  s->owned[s->nowned++] = p;
  return p;
}

static char *repeat_to(const char *unit, size_t chars_wanted, size_t unit_chars) {
  size_t ul = strlen(unit), n = (chars_wanted + unit_chars - 1) / unit_chars;
  char *o = malloc(ul * n + 1);
  cr_assert(o);
  for (size_t i = 0; i < n; i++)
    memcpy(o + i * ul, unit, ul);
  o[ul * n] = '\0';
  return o;
}

static void types(mt_sample *s, const char *t0, ...) {
  va_list ap;
  va_start(ap, t0);
  for (const char *t = t0; t; t = va_arg(ap, const char *))
    s->types[s->ntypes++] = t;
  va_end(ap);
}

static void base(mt_sample *s) {
  s->m.from = (erpq_mime_addr){"Green Valley School", "office@school.example"};
  s->m.to = s->to;
  s->m.date = 1796000000; /* 2026-11-29 */
  s->m.tz_minutes = 330;
  s->m.message_id = "<3f2a9c1e5b7d4e8fa0c2d6e1b9f7a3c5@school.example>";
}

void mt_sample_make(mt_sample *s, int which) {
  memset(s, 0, sizeof *s);
  base(s);
  switch (which) {
  case MT_FULL: {
    s->label = "full";
    s->m.from = (erpq_mime_addr){"Σχολείο Αγίου Νικολάου", "office@school.example"};
    s->reply_to = (erpq_mime_addr){"Class Teacher", "teacher@school.example"};
    s->m.reply_to = &s->reply_to;
    s->to[0] = (erpq_mime_addr){"प्रिया शर्मा", "priya@example.com"};
    s->to[1] = (erpq_mime_addr){"Ravi 😀 Kumar", "ravi@example.org"};
    s->m.nto = 2;
    s->cc[0] = (erpq_mime_addr){"Sharma, Priya", "p2@example.net"};
    s->m.cc = s->cc;
    s->m.ncc = 1;
    s->m.subject = "विद्यालय सूचना: कल अवकाश रहेगा 🎉 — कृपया ध्यान दें (Σημαντικό)";
    s->m.unsubscribe_url = "https://school.example/u/3f2a9c1e5b7d4e8f";
    s->m.unsubscribe_mailto = "mailto:unsub@school.example?subject=3f2a9c1e";
    s->headers[0] = (erpq_mime_header){"X-Erpq-Job", "notifications:42"};
    s->headers[1] = (erpq_mime_header){"X-Campaign", "वार्षिक उत्सव 2026"};
    s->m.headers = s->headers;
    s->m.nheaders = 2;
    s->m.text = "प्रिय अभिभावक,\n\nकल विद्यालय बंद रहेगा। Fees: ₹12,500 due on 10 Dec.\n"
                "Ευχαριστούμε! 🙏\n";
    s->m.html = "<html><body><p>प्रिय अभिभावक,</p>\r\n<p>कल विद्यालय <b>बंद</b> रहेगा।</p>"
                "<p>Ευχαριστούμε! 🙏</p></body></html>\r\n";
    /* Every byte value, in memory, under a Hindi name. */
    unsigned char *bytes = malloc(256);
    cr_assert(bytes);
    for (int i = 0; i < 256; i++)
      bytes[i] = (unsigned char)i;
    own(s, (char *)bytes);
    s->att[0] =
        (erpq_mime_attachment){"रिपोर्ट कार्ड — प्रिया.pdf", "application/pdf", bytes, 256, NULL};
    /* 200 KB streamed from a file. */
    size_t big = 200 * 1024 + 17;
    unsigned char *rnd = malloc(big);
    cr_assert(rnd);
    uint64_t rs = 42;
    for (size_t i = 0; i < big; i++)
      rnd[i] = (unsigned char)nt_rand(&rs);
    char *path = own(s, nt_temp_file(rnd, big, ".csv"));
    free(rnd);
    s->att[1] = (erpq_mime_attachment){"fees-2026.csv", "text/csv", NULL, 0, path};
    /* A long Greek name: RFC 2231 continuations, folded name parameter. */
    unsigned char *png = malloc(1000);
    cr_assert(png);
    for (int i = 0; i < 1000; i++)
      png[i] = (unsigned char)(i * 7 + 3);
    own(s, (char *)png);
    s->att[2] = (erpq_mime_attachment){
        "Φωτογραφία από την ετήσια γιορτή του σχολείου — τάξη Γ΄ (τελική έκδοση).png", "image/png",
        png, 1000, NULL};
    s->m.attachments = s->att;
    s->m.nattachments = 3;
    types(s, "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
          "application/pdf", "text/csv", "image/png", NULL);
    break;
  }
  case MT_TEXT_ASCII:
    s->label = "text-ascii";
    s->to[0] = (erpq_mime_addr){NULL, "parent@example.com"};
    s->m.nto = 1;
    s->m.subject = "Fee reminder";
    s->m.text = "Dear parent,\nThe fees for December are due on 10 Dec.\nThank you.\n";
    s->m.tz_minutes = 0;
    types(s, "text/plain", NULL);
    break;
  case MT_LONG_HINDI: {
    s->label = "hindi-1000-char-line";
    s->to[0] = (erpq_mime_addr){"अभिभावक", "parent@example.com"};
    s->m.nto = 1;
    s->m.subject = "लंबी पंक्ति";
    /* "नमस्ते दुनिया " is 14 characters: 72 of them make 1,008. */
    char *line = own(s, repeat_to("नमस्ते दुनिया ", 1000, 14));
    s->m.text = line;
    types(s, "text/plain", NULL);
    break;
  }
  case MT_LONG_QP: {
    s->label = "qp-long-lines";
    s->to[0] = (erpq_mime_addr){"Parent", "parent@example.com"};
    s->m.nto = 1;
    s->m.subject = "Long lines, From lines and dots";
    char *ascii = repeat_to("The annual day is on Friday. ", 1500, 29);
    erpq_buf t = {0};
    erpq_buf_adds(&t, ascii);
    erpq_buf_adds(&t, "\nFrom the principal's desk\n.\n..\nFrom\nline with trailing spaces   \r\n"
                      "tab at end\t\rCR alone\r\nequals = sign and caf\xc3\xa9 na\xc3\xafve\n"
                      "x=3D?=\n");
    erpq_buf_adds(&t, "last line without a break ");
    free(ascii);
    s->m.text = own(s, erpq_buf_take(&t));
    char *h = repeat_to("<td>cell</td>", 2000, 13);
    erpq_buf hb = {0};
    erpq_buf_adds(&hb, "<table><tr>");
    erpq_buf_adds(&hb, h);
    erpq_buf_adds(&hb, "</tr></table>\n");
    free(h);
    s->m.html = own(s, erpq_buf_take(&hb));
    types(s, "multipart/alternative", "text/plain", "text/html", NULL);
    break;
  }
  case MT_HTML_ONLY:
    s->label = "html-only";
    s->to[0] = (erpq_mime_addr){"Parent", "parent@example.com"};
    s->m.nto = 1;
    s->m.subject = "  Results published  ";
    s->m.html = "<p>Results are <a href=\"https://school.example/r\">online</a>.</p>";
    s->m.unsubscribe_mailto = "mailto:unsub@school.example";
    s->m.tz_minutes = -300;
    types(s, "text/html", NULL);
    break;
  case MT_FOLDING: {
    s->label = "folding";
    static const char *const names[] = {
        "O\"Brien \\ Co",
        "Dr. A. K. Singh",
        "Ms Anjali Verma",
        "Ελένη Παπαδοπούλου",
        "Mr =?x?= Literal",
        "Zoë",
        "李小龙",
        "Élodie",
        "Jean-Paul Sartre-Beauvoir de la Tour d'Auvergne du Chateau Tres Tres Long",
        "A",
        "محمد علي",
        NULL};
    for (size_t i = 0; i < 12; i++) {
      char *addr = malloc(40);
      cr_assert(addr);
      snprintf(addr, 40, "parent%zu@example%zu.com", i, i);
      s->to[i] = (erpq_mime_addr){names[i], own(s, addr)};
    }
    s->m.nto = 12;
    s->m.subject = "Term  dates for 2026-27: the school reopens on Monday, 5 January, and the "
                   "annual sports day moves to =?not-encoded?= Saturday, 21 February; please "
                   "read the attached circular carefully before the parent-teacher meeting";
    s->headers[0] = (erpq_mime_header){"X-Long", "a b c d e f g h i j k l m n o p q r s t u v w "
                                                 "x y z a b c d e f g h i j k l m n o p q r s t"};
    s->headers[1] = (erpq_mime_header){"X-Emoji", "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉"};
    s->m.headers = s->headers;
    s->m.nheaders = 2;
    s->m.text = "";
    types(s, "text/plain", NULL);
    break;
  }
  default: cr_assert_fail("no sample %d", which);
  }
}

void mt_sample_free(mt_sample *s) {
  for (size_t i = 0; i < s->nowned; i++) {
    /* Temporary attachment files are owned paths: remove them too. */
    for (size_t k = 0; k < s->m.nattachments; k++)
      if (s->att[k].path == s->owned[i])
        remove(s->owned[i]);
    free(s->owned[i]);
  }
  s->nowned = 0;
}

static json_t *addr_json(const erpq_mime_addr *a) {
  return json_pack("[s,s]", a->name ? a->name : "", a->email);
}

json_t *mt_expect(const mt_sample *s) {
  const erpq_mime_msg *m = &s->m;
  json_t *to = json_array(), *cc = json_array(), *hdr = json_array(), *att = json_array(),
         *ty = json_array();
  for (size_t i = 0; i < m->nto; i++)
    json_array_append_new(to, addr_json(&m->to[i]));
  for (size_t i = 0; i < m->ncc; i++)
    json_array_append_new(cc, addr_json(&m->cc[i]));
  for (size_t i = 0; i < m->nheaders; i++)
    json_array_append_new(hdr, json_pack("[s,s]", m->headers[i].name, m->headers[i].value));
  for (size_t i = 0; i < s->ntypes; i++)
    json_array_append_new(ty, json_string(s->types[i]));
  for (size_t i = 0; i < m->nattachments; i++) {
    const erpq_mime_attachment *a = &m->attachments[i];
    json_t *o = json_pack("{s:s,s:s}", "filename", a->filename, "type",
                          a->content_type ? a->content_type : "application/octet-stream");
    if (a->path) {
      json_object_set_new(o, "path", json_string(a->path));
    } else {
      /* Hand the bytes over in a file, not through our own encoder. */
      char *p = nt_temp_file(a->data, a->len, ".bin");
      json_object_set_new(o, "path", json_string(p));
      free(p);
    }
    json_array_append_new(att, o);
  }
  char lu[1200] = "";
  if (m->unsubscribe_url && m->unsubscribe_mailto)
    snprintf(lu, sizeof lu, "<%s>, <%s>", m->unsubscribe_url, m->unsubscribe_mailto);
  else if (m->unsubscribe_url)
    snprintf(lu, sizeof lu, "<%s>", m->unsubscribe_url);
  else if (m->unsubscribe_mailto)
    snprintf(lu, sizeof lu, "<%s>", m->unsubscribe_mailto);
  json_t *e =
      json_pack("{s:s,s:s,s:o,s:o,s:o,s:s,s:I,s:i,s:o,s:b,s:o,s:o,s:o}", "label", s->label,
                "subject", m->subject, "from", addr_json(&m->from), "to", to, "cc", cc,
                "message_id", m->message_id, "date", (json_int_t)m->date, "tz", m->tz_minutes,
                "list_unsubscribe", lu[0] ? json_string(lu) : json_null(), "one_click",
                m->unsubscribe_url != NULL, "headers", hdr, "attachments", att, "types", ty);
  cr_assert(e);
  json_object_set_new(e, "reply_to", m->reply_to ? addr_json(m->reply_to) : json_null());
  json_object_set_new(e, "text", m->text ? json_string(m->text) : json_null());
  json_object_set_new(e, "html", m->html ? json_string(m->html) : json_null());
  return e;
}

char *mt_build_to_file(const erpq_mime_msg *m) {
  erpq_buf b = {0};
  char err[256];
  int rc = erpq_mime_build(m, &b, err, sizeof err);
  cr_assert_eq(rc, 0, "build failed: %s", err);
  char *p = nt_temp_file(b.s, b.len, ".eml");
  erpq_buf_free(&b);
  return p;
}
