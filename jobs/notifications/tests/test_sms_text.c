/*
 * test_sms_text.c - erpq_sms_text against hand-derived cases and, over
 * thousands of seeded random strings, against Twilio's
 * sms-segments-calculator (tests/sms_reference.js).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_sms_text.h"
#include "erpq_utf8.h"
#include "notify_test_util.h"

static char *repeat(const char *s, size_t n) {
  size_t l = strlen(s);
  char *o = malloc(l * n + 1);
  cr_assert(o);
  for (size_t i = 0; i < n; i++)
    memcpy(o + i * l, s, l);
  o[l * n] = '\0';
  return o;
}

static char *cat(const char *a, const char *b) {
  char *o = malloc(strlen(a) + strlen(b) + 1);
  cr_assert(o);
  strcpy(o, a);
  strcat(o, b);
  return o;
}

static void prep(const char *s, erpq_sms_map_mode mode, erpq_sms_text *t) {
  char err[256];
  int rc = erpq_sms_prepare(s, strlen(s), mode, t, err, sizeof err);
  cr_assert_eq(rc, 0, "prepare failed: %s", err);
}

/* ---- Hand cases: expected values derived from TS 23.038 by hand --------- */

Test(sms, gsm_160_161_307) {
  erpq_sms_text t;
  char *s = repeat("a", 160);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  cr_assert_eq(t.units, 160);
  cr_assert_eq(t.segments, 1);
  erpq_sms_text_free(&t);
  free(s);

  s = repeat("a", 161);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.segments, 2);
  cr_assert_eq(t.part_units[0], 153);
  cr_assert_eq(t.part_units[1], 8);
  cr_assert_eq(t.part_start[1], 153);
  erpq_sms_text_free(&t);
  free(s);

  s = repeat("a", 306);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.segments, 2);
  erpq_sms_text_free(&t);
  free(s);

  s = repeat("a", 153 * 2 + 1);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.segments, 3);
  cr_assert_eq(t.part_units[2], 1);
  erpq_sms_text_free(&t);
  free(s);
}

Test(sms, extension_characters_count_two_and_stay_whole) {
  erpq_sms_text t;
  /* 152 + EURO (2) = 154 septets: still one SMS. */
  char *a152 = repeat("a", 152);
  char *s = cat(a152, "\xe2\x82\xac");
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  cr_assert_eq(t.units, 154);
  cr_assert_eq(t.segments, 1);
  erpq_sms_text_free(&t);
  free(s);
  /* 152 + EURO + 10: the escape pair would straddle 153, so it opens part 2. */
  char *tail = repeat("b", 10);
  char *s2 = cat(a152, "\xe2\x82\xac");
  s = cat(s2, tail);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.units, 164);
  cr_assert_eq(t.segments, 2);
  cr_assert_eq(t.part_units[0], 152);
  cr_assert_eq(t.part_units[1], 12);
  cr_assert_eq(t.part_start[1], 152);
  erpq_sms_text_free(&t);
  free(s);
  free(s2);
  free(tail);
  free(a152);
  /* Each of ^ { } \ [ ~ ] | and form feed is two septets. */
  const char *ext = "^{}\\[~]|\f";
  prep(ext, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  cr_assert_eq(t.units, 18);
  erpq_sms_text_free(&t);
  /* 159 + '[' = 161 septets: 2 parts, 153 + 8. */
  char *a159 = repeat("a", 159);
  s = cat(a159, "[");
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.segments, 2);
  cr_assert_eq(t.part_units[0], 153);
  cr_assert_eq(t.part_units[1], 8);
  erpq_sms_text_free(&t);
  free(s);
  free(a159);
}

#define HA "\xe0\xa4\xb9"             /* U+0939 DEVANAGARI LETTER HA */
#define KI "\xe0\xa4\x95\xe0\xa4\xbf" /* KA + VOWEL SIGN I */
#define GRIN "\xf0\x9f\x98\x80"       /* U+1F600 */

Test(sms, ucs2_70_71_and_emoji_at_the_boundary) {
  erpq_sms_text t;
  char *s = repeat(HA, 70);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_UCS2);
  cr_assert_eq(t.units, 70);
  cr_assert_eq(t.segments, 1);
  erpq_sms_text_free(&t);
  free(s);

  s = repeat(HA, 71);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.segments, 2);
  cr_assert_eq(t.part_units[0], 67);
  cr_assert_eq(t.part_units[1], 4);
  erpq_sms_text_free(&t);
  free(s);

  /* 68 + emoji (2 units) = 70: one SMS. */
  char *h = repeat(HA, 68);
  s = cat(h, GRIN);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.units, 70);
  cr_assert_eq(t.segments, 1);
  erpq_sms_text_free(&t);
  free(s);
  free(h);

  /* 66 + emoji + 5: the surrogate pair would straddle unit 67, so it moves. */
  h = repeat(HA, 66);
  char *h5 = repeat(HA, 5);
  char *s1 = cat(h, GRIN);
  s = cat(s1, h5);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.units, 73);
  cr_assert_eq(t.segments, 2);
  cr_assert_eq(t.part_units[0], 66);
  cr_assert_eq(t.part_units[1], 7);
  cr_assert_eq(t.part_start[1], 66 * 3);
  erpq_sms_text_free(&t);
  free(s);
  free(s1);

  /* The same with KA + VOWEL SIGN I: the sign stays with its consonant. */
  s1 = cat(h, KI);
  s = cat(s1, h5);
  prep(s, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.units, 73);
  cr_assert_eq(t.part_units[0], 66);
  cr_assert_eq(t.part_units[1], 7);
  erpq_sms_text_free(&t);
  free(s);
  free(s1);
  free(h);
  free(h5);
}

Test(sms, typographic_mapping) {
  erpq_sms_text t;
  /* Don’t forget – it’s “Sports Day” on 5 Dec… */
  prep("Don\xe2\x80\x99t forget \xe2\x80\x93 it\xe2\x80\x99s \xe2\x80\x9cSports Day\xe2\x80\x9d"
       "\xc2\xa0on 5 Dec\xe2\x80\xa6",
       ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_str_eq(t.text, "Don't forget - it's \"Sports Day\" on 5 Dec...");
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  cr_assert_eq(t.units, strlen(t.text));
  cr_assert_eq(t.mapped, 7);
  erpq_sms_text_free(&t);

  /* ‘a’ ‚b‛ ′ ″ „c‟ ‒ — − • */
  prep("\xe2\x80\x98"
       "a\xe2\x80\x99 \xe2\x80\x9a"
       "b\xe2\x80\x9b \xe2\x80\xb2 \xe2\x80\xb3 "
       "\xe2\x80\x9e"
       "c\xe2\x80\x9f \xe2\x80\x92 \xe2\x80\x94 \xe2\x88\x92 \xe2\x80\xa2",
       ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_str_eq(t.text, "'a' 'b' ' \" \"c\" - - - -");
  erpq_sms_text_free(&t);

  /* Hindi is UCS-2 anyway: the author's quotes are kept (IF_GSM) ... */
  const char *hi = "\xe2\x80\x9c" HA HA "\xe2\x80\x9d\xe2\x80\xa6";
  prep(hi, ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_str_eq(t.text, hi);
  cr_assert_eq(t.encoding, ERPQ_SMS_UCS2);
  cr_assert_eq(t.units, 5);
  cr_assert_eq(t.mapped, 0);
  erpq_sms_text_free(&t);
  /* ... replaced on request (ALWAYS) ... */
  prep(hi, ERPQ_SMS_MAP_ALWAYS, &t);
  cr_assert_str_eq(t.text, "\"" HA HA "\"...");
  cr_assert_eq(t.units, 7);
  erpq_sms_text_free(&t);
  /* ... and one curly apostrophe costs UCS-2 when mapping is off. */
  prep("It\xe2\x80\x99s", ERPQ_SMS_MAP_NEVER, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_UCS2);
  erpq_sms_text_free(&t);
  /* Zero-width characters and the soft hyphen disappear. */
  prep("\xef\xbb\xbf"
       "a\xe2\x80\x8b"
       "b\xc2\xad"
       "c",
       ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_str_eq(t.text, "abc");
  erpq_sms_text_free(&t);
}

Test(sms, alphabet_edges) {
  erpq_sms_text t;
  /* Capital C cedilla is GSM 0x09; small c cedilla is not. */
  prep("\xc3\x87", ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  erpq_sms_text_free(&t);
  prep("\xc3\xa7", ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_UCS2);
  erpq_sms_text_free(&t);
  /* Backtick is not GSM, @ $ _ are; Greek capitals of the alphabet are. */
  prep("`", ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_UCS2);
  erpq_sms_text_free(&t);
  prep("@$_\xce\x94\xce\xa9\xc2\xa1\xc2\xbf", ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.encoding, ERPQ_SMS_GSM7);
  cr_assert_eq(t.units, 7);
  erpq_sms_text_free(&t);
  /* Empty text: one (empty) SMS. */
  prep("", ERPQ_SMS_MAP_IF_GSM, &t);
  cr_assert_eq(t.units, 0);
  cr_assert_eq(t.segments, 1);
  erpq_sms_text_free(&t);
  /* Count of the whole default alphabet: 127 characters besides ESC. */
  int basic = 0, ext = 0;
  for (uint32_t cp = 0; cp < 0x10000; cp++) {
    int n = erpq_sms_gsm_septets(cp);
    basic += n == 1;
    ext += n == 2;
  }
  cr_assert_eq(basic, 127);
  cr_assert_eq(ext, 10);
}

Test(sms, invalid_utf8_is_refused) {
  static const struct {
    const char *s;
    size_t len;
  } bad[] = {
      {"ok\xc3\x28", 4},       /* bad continuation */
      {"\xc0\xaf", 2},         /* overlong */
      {"\xe0\x80\xaf", 3},     /* overlong, 3 bytes */
      {"\xed\xa0\x80", 3},     /* UTF-16 surrogate */
      {"\xe2\x82", 2},         /* truncated */
      {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
      {"\xff", 1},             /* never valid */
      {"a\0b", 3},             /* NUL */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    erpq_sms_text t;
    char err[256];
    int rc = erpq_sms_prepare(bad[i].s, bad[i].len, ERPQ_SMS_MAP_IF_GSM, &t, err, sizeof err);
    cr_assert_eq(rc, -EILSEQ, "case %zu accepted", i);
    cr_assert(strstr(err, "byte"), "%s", err);
    cr_assert_null(t.text);
    erpq_sms_text_free(&t);
  }
}

/* ---- Differential test against Twilio's calculator ----------------------- */

static void add_cp(char *buf, size_t *n, uint32_t cp) { *n += (size_t)erpq_utf8_put(cp, buf + *n); }

/* Atoms: whole user-perceived characters the generator strings together. */
static const char *const emoji_atoms[] = {
    "\xf0\x9f\x98\x80",                 /* grinning face */
    "\xf0\x9f\x8e\x89",                 /* party popper */
    "\xf0\x9f\x93\x9a",                 /* books */
    "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", /* thumbs up, medium skin */
    "\xf0\x9f\x91\x8b\xf0\x9f\x8f\xbe", /* waving hand, dark skin */
    "\xe2\x9d\xa4\xef\xb8\x8f",         /* red heart + VS16 */
    "\xf0\x9f\x87\xae\xf0\x9f\x87\xb3", /* flag: India */
    "\xf0\x9f\x87\xac\xf0\x9f\x87\xa7", /* flag: UK */
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7", /* family */
    "\xf0\x9f\x8f\x83\xe2\x80\x8d\xe2\x99\x80\xef\xb8\x8f",                     /* woman running */
    "\xe2\x9c\x85", /* check mark (BMP) */
};

static const uint32_t latin1_atoms[] = {0xe7, 0xe2, 0xea, 0xee, 0xf4, 0xfb, 0xe1, 0xed, 0xf3,
                                        0xfa, 0xe3, 0xf5, 0xeb, 0xef, 0xa2, 0xa9, 0xae, 0xb0,
                                        0xb1, 0xb5, 0xb6, 0xb7, 0xbd, 0xd7, 0xf7, 0xc0, 0xd3};

static void gen_atom(uint64_t *rs, int cls, char *buf, size_t *n) {
  size_t tn;
  const erpq_sms_map_entry *tab = erpq_sms_map_table(&tn);
  switch (cls) {
  case 0: { /* GSM default alphabet (all 127) */
    uint32_t cp;
    do
      cp = (uint32_t)nt_below(rs, 0x400);
    while (erpq_sms_gsm_septets(cp) != 1);
    add_cp(buf, n, cp);
    break;
  }
  case 1: { /* extension table */
    static const uint32_t ext[] = {'^', '{', '}', '\\', '[', '~', ']', '|', 0x20ac, '\f'};
    add_cp(buf, n, ext[nt_below(rs, 10)]);
    break;
  }
  case 2: /* typographic (our table) */ add_cp(buf, n, tab[nt_below(rs, tn)].from); break;
  case 3: /* Latin-1 outside GSM */
    add_cp(buf, n, latin1_atoms[nt_below(rs, sizeof latin1_atoms / sizeof latin1_atoms[0])]);
    break;
  case 4: { /* Devanagari: a consonant or vowel, maybe with signs */
    size_t k = nt_below(rs, 10);
    if (k < 6) {
      add_cp(buf, n, 0x0915 + (uint32_t)nt_below(rs, 0x0939 - 0x0915 + 1));
      size_t m = nt_below(rs, 4);
      if (m == 1)
        add_cp(buf, n, 0x093e + (uint32_t)nt_below(rs, 0x094c - 0x093e + 1));
      if (m == 2)
        add_cp(buf, n, 0x094d); /* virama */
      if (m == 3)
        add_cp(buf, n, 0x093c), add_cp(buf, n, 0x0902);
    } else if (k < 8) {
      add_cp(buf, n, 0x0905 + (uint32_t)nt_below(rs, 0x0914 - 0x0905 + 1));
    } else if (k < 9) {
      add_cp(buf, n, 0x0966 + (uint32_t)nt_below(rs, 10)); /* digits */
    } else {
      add_cp(buf, n, 0x0964); /* danda */
    }
    break;
  }
  default: { /* emoji */
    const char *e = emoji_atoms[nt_below(rs, sizeof emoji_atoms / sizeof emoji_atoms[0])];
    memcpy(buf + *n, e, strlen(e));
    *n += strlen(e);
    break;
  }
  }
}

/* One random string. Profiles: 0 GSM only, lengths near the part
 * boundaries; 1 GSM + typographic (maps back to GSM); 2 mostly GSM with a
 * few foreign characters; 3 mostly Devanagari / emoji; 4 anything. */
static size_t gen_string(uint64_t *rs, char *buf) {
  static const size_t lens[] = {150, 158, 165, 300, 310, 455, 465, 60, 72, 130, 140, 200, 400};
  int profile = (int)nt_below(rs, 5);
  size_t target = lens[nt_below(rs, sizeof lens / sizeof lens[0])] + nt_below(rs, 8);
  if (profile >= 2 && nt_below(rs, 2))
    target = target / 2;
  size_t n = 0;
  for (size_t i = 0; i < target; i++) {
    size_t r = nt_below(rs, 100);
    int cls;
    switch (profile) {
    case 0: cls = r < 85 ? 0 : 1; break;
    case 1: cls = r < 75 ? 0 : r < 85 ? 1 : 2; break;
    case 2: cls = r < 90 ? 0 : r < 93 ? 1 : r < 95 ? 3 : r < 98 ? 4 : 5; break;
    case 3: cls = r < 15 ? 0 : r < 70 ? 4 : r < 90 ? 5 : 2; break;
    default: cls = (int)nt_below(rs, 6); break;
    }
    gen_atom(rs, cls, buf, &n);
  }
  buf[n] = '\0';
  return n;
}

static json_t *case_json(size_t id, const erpq_sms_text *t) {
  json_t *parts = json_array();
  for (size_t k = 0; k < t->segments; k++) {
    size_t a = t->part_start[k], b = k + 1 < t->segments ? t->part_start[k + 1] : t->text_len;
    json_array_append_new(parts, json_stringn(t->text + a, b - a));
  }
  return json_pack("{s:I,s:s%,s:s,s:I,s:I,s:o}", "id", (json_int_t)id, "text", t->text, t->text_len,
                   "enc", erpq_sms_encoding_name(t->encoding), "units", (json_int_t)t->units,
                   "segments", (json_int_t)t->segments, "parts", parts);
}

static void run_reference(json_t *doc, size_t expect_checked) {
  char *in = json_dumps(doc, JSON_COMPACT);
  cr_assert(in);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "node '%s/jobs/notifications/tests/sms_reference.js'", nt_source_dir());
  int st;
  char *out = nt_run(cmd, in, strlen(in), NULL, &st);
  json_error_t je;
  json_t *res = json_loads(out, 0, &je);
  cr_assert(res, "reference printed no JSON (exit %d): %s", st, out);
  cr_assert_eq(st, 0, "the reference disagrees: %s", out);
  cr_assert_eq((size_t)json_integer_value(json_object_get(res, "checked")), expect_checked);
  fprintf(stderr, "sms reference: %s\n", out);
  json_decref(res);
  free(out);
  free(in);
}

Test(sms, differential_against_twilio_calculator, .timeout = 300) {
  uint64_t rs = nt_seed("sms differential");
  json_t *cases = json_array();
  char *buf = malloc(65536);
  cr_assert(buf);
  const size_t N = 5000;
  size_t gsm = 0, ucs = 0, multi = 0, mapped = 0;
  for (size_t i = 0; i < N; i++) {
    size_t len = gen_string(&rs, buf);
    erpq_sms_text t;
    char err[256];
    cr_assert_eq(erpq_sms_prepare(buf, len, ERPQ_SMS_MAP_IF_GSM, &t, err, sizeof err), 0, "%s",
                 err);
    gsm += t.encoding == ERPQ_SMS_GSM7;
    ucs += t.encoding == ERPQ_SMS_UCS2;
    multi += t.segments > 1;
    mapped += t.mapped > 0;
    json_array_append_new(cases, case_json(i, &t));
    erpq_sms_text_free(&t);
  }
  fprintf(stderr, "sms differential: %zu GSM-7, %zu UCS-2, %zu multi-part, %zu mapped\n", gsm, ucs,
          multi, mapped);
  cr_assert(gsm > N / 5 && ucs > N / 5 && multi > N / 3 && mapped > N / 10);
  /* The mapping table against Twilio's smart encoding. We differ on
   * purpose (see erpq_sms_text.h) for U+201A (', Twilio ','), tab (one
   * space, Twilio 7), the no-break and typographic spaces (one space,
   * Twilio two) and the line / paragraph separators (LF, Twilio a space). */
  size_t tn;
  const erpq_sms_map_entry *tab = erpq_sms_map_table(&tn);
  json_t *table = json_array();
  for (size_t i = 0; i < tn; i++)
    json_array_append_new(table,
                          json_pack("{s:I,s:s}", "cp", (json_int_t)tab[i].from, "to", tab[i].to));
  static const int accepted[] = {0x0009, 0x00a0, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x201a,
                                 0x2028, 0x2029, 0x202f, 0x205f, 0x3000};
  json_t *acc = json_array();
  for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
    json_array_append_new(acc, json_integer(accepted[i]));
  json_t *doc =
      json_pack("{s:o,s:o,s:o}", "cases", cases, "table", table, "accepted_table_differences", acc);
  run_reference(doc, N);
  json_decref(doc);
  free(buf);
}
