#include "erpq_sms_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_utf8.h"

/* ---- The GSM 03.38 default alphabet and its extension table ------------- */

/* Non-ASCII characters of the default alphabet (TS 23.038 6.2.1), sorted.
 * With the 88 ASCII ones below they fill the 127 positions besides ESC. */
static const uint16_t gsm_basic_latin1_greek[] = {
    0x00a1, 0x00a3, 0x00a4, 0x00a5, 0x00a7, 0x00bf, 0x00c4, 0x00c5, 0x00c6, 0x00c7,
    0x00c9, 0x00d1, 0x00d6, 0x00d8, 0x00dc, 0x00df, 0x00e0, 0x00e4, 0x00e5, 0x00e6,
    0x00e8, 0x00e9, 0x00ec, 0x00f1, 0x00f2, 0x00f6, 0x00f8, 0x00f9, 0x00fc, 0x0393,
    0x0394, 0x0398, 0x039b, 0x039e, 0x03a0, 0x03a3, 0x03a6, 0x03a8, 0x03a9,
};

int erpq_sms_gsm_septets(uint32_t cp) {
  if (cp < 0x80) {
    switch (cp) {
    case '\n':
    case '\r': return 1;
    case '\f':
    case '^':
    case '{':
    case '}':
    case '\\':
    case '[':
    case '~':
    case ']':
    case '|': return 2;
    case '`': return 0;
    default: return cp >= 0x20 && cp < 0x7f ? 1 : 0;
    }
  }
  if (cp == 0x20ac)
    return 2; /* EURO SIGN, extension 0x65 */
  size_t lo = 0, hi = sizeof gsm_basic_latin1_greek / sizeof gsm_basic_latin1_greek[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (gsm_basic_latin1_greek[mid] == cp)
      return 1;
    if (gsm_basic_latin1_greek[mid] < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return 0;
}

/* ---- The typographic mapping (documented in the header) ------------------ */

static const erpq_sms_map_entry map_table[] = {
    {0x0009, " ", "CHARACTER TABULATION"},
    {0x00a0, " ", "NO-BREAK SPACE"},
    {0x00ab, "\"", "LEFT-POINTING DOUBLE ANGLE QUOTATION MARK"},
    {0x00ad, "", "SOFT HYPHEN"},
    {0x00b4, "'", "ACUTE ACCENT"},
    {0x00bb, "\"", "RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK"},
    {0x02b9, "'", "MODIFIER LETTER PRIME"},
    {0x02ba, "\"", "MODIFIER LETTER DOUBLE PRIME"},
    {0x02bc, "'", "MODIFIER LETTER APOSTROPHE"},
    {0x1680, " ", "OGHAM SPACE MARK"},
    {0x2000, " ", "EN QUAD"},
    {0x2001, " ", "EM QUAD"},
    {0x2002, " ", "EN SPACE"},
    {0x2003, " ", "EM SPACE"},
    {0x2004, " ", "THREE-PER-EM SPACE"},
    {0x2005, " ", "FOUR-PER-EM SPACE"},
    {0x2006, " ", "SIX-PER-EM SPACE"},
    {0x2007, " ", "FIGURE SPACE"},
    {0x2008, " ", "PUNCTUATION SPACE"},
    {0x2009, " ", "THIN SPACE"},
    {0x200a, " ", "HAIR SPACE"},
    {0x200b, "", "ZERO WIDTH SPACE"},
    {0x2010, "-", "HYPHEN"},
    {0x2011, "-", "NON-BREAKING HYPHEN"},
    {0x2012, "-", "FIGURE DASH"},
    {0x2013, "-", "EN DASH"},
    {0x2014, "-", "EM DASH"},
    {0x2015, "-", "HORIZONTAL BAR"},
    {0x2018, "'", "LEFT SINGLE QUOTATION MARK"},
    {0x2019, "'", "RIGHT SINGLE QUOTATION MARK"},
    {0x201a, "'", "SINGLE LOW-9 QUOTATION MARK"},
    {0x201b, "'", "SINGLE HIGH-REVERSED-9 QUOTATION MARK"},
    {0x201c, "\"", "LEFT DOUBLE QUOTATION MARK"},
    {0x201d, "\"", "RIGHT DOUBLE QUOTATION MARK"},
    {0x201e, "\"", "DOUBLE LOW-9 QUOTATION MARK"},
    {0x201f, "\"", "DOUBLE HIGH-REVERSED-9 QUOTATION MARK"},
    {0x2022, "-", "BULLET"},
    {0x2023, "-", "TRIANGULAR BULLET"},
    {0x2024, ".", "ONE DOT LEADER"},
    {0x2026, "...", "HORIZONTAL ELLIPSIS"},
    {0x2028, "\n", "LINE SEPARATOR"},
    {0x2029, "\n", "PARAGRAPH SEPARATOR"},
    {0x202f, " ", "NARROW NO-BREAK SPACE"},
    {0x2032, "'", "PRIME"},
    {0x2033, "\"", "DOUBLE PRIME"},
    {0x2043, "-", "HYPHEN BULLET"},
    {0x2044, "/", "FRACTION SLASH"},
    {0x205f, " ", "MEDIUM MATHEMATICAL SPACE"},
    {0x2060, "", "WORD JOINER"},
    {0x2212, "-", "MINUS SIGN"},
    {0x2215, "/", "DIVISION SLASH"},
    {0x25e6, "-", "WHITE BULLET"},
    {0x3000, " ", "IDEOGRAPHIC SPACE"},
    {0xfeff, "", "ZERO WIDTH NO-BREAK SPACE"},
};

const erpq_sms_map_entry *erpq_sms_map_table(size_t *n) {
  *n = sizeof map_table / sizeof map_table[0];
  return map_table;
}

static const char *map_lookup(uint32_t cp) {
  size_t lo = 0, hi = sizeof map_table / sizeof map_table[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (map_table[mid].from == cp)
      return map_table[mid].to;
    if (map_table[mid].from < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const char *erpq_sms_encoding_name(erpq_sms_encoding e) {
  return e == ERPQ_SMS_GSM7 ? "GSM-7" : "UCS-2";
}

/* ---- User-perceived characters (see the header) --------------------------- */

/* Marks that attach to the preceding character (Grapheme_Extend or
 * SpacingMark), for the scripts a school's parents write in. */
static int is_mark(uint32_t cp) {
  if (cp >= 0x0300 && cp <= 0x036f)
    return 1; /* combining diacritics */
  if (cp >= 0x0483 && cp <= 0x0489)
    return 1; /* Cyrillic */
  if ((cp >= 0x0591 && cp <= 0x05bd) || cp == 0x05bf || cp == 0x05c1 || cp == 0x05c2 ||
      cp == 0x05c4 || cp == 0x05c5 || cp == 0x05c7)
    return 1; /* Hebrew points */
  if ((cp >= 0x0610 && cp <= 0x061a) || (cp >= 0x064b && cp <= 0x065f) || cp == 0x0670 ||
      (cp >= 0x06d6 && cp <= 0x06dc) || (cp >= 0x06df && cp <= 0x06e4) || cp == 0x06e7 ||
      cp == 0x06e8 || (cp >= 0x06ea && cp <= 0x06ed))
    return 1; /* Arabic (Urdu) */
  if (cp >= 0x0900 && cp <= 0x0d7f) {
    /* Devanagari, Bengali, Gurmukhi, Gujarati, Oriya, Tamil, Telugu,
     * Kannada, Malayalam: 128-code-point blocks laid out alike (ISCII):
     * signs at 01..03, nukta 3C, vowel signs and virama 3E..4D, length
     * marks 55..57, vocalic vowel signs 62..63. */
    uint32_t o = cp & 0x7f;
    if (cp >= 0x0900 && cp <= 0x097f) {
      /* Devanagari exactly: 0900..0903, 093A..093C, 093E..094F,
       * 0951..0957, 0962..0963. */
      return o <= 0x03 || (o >= 0x3a && o <= 0x3c) || (o >= 0x3e && o <= 0x4f) ||
             (o >= 0x51 && o <= 0x57) || o == 0x62 || o == 0x63;
    }
    return (o >= 0x01 && o <= 0x03) || o == 0x3c || (o >= 0x3e && o <= 0x4d) ||
           (o >= 0x55 && o <= 0x57) || o == 0x62 || o == 0x63 || (cp >= 0x0c00 && cp <= 0x0c04) ||
           (cp >= 0x0d00 && cp <= 0x0d03);
  }
  if ((cp >= 0x1ab0 && cp <= 0x1aff) || (cp >= 0x1dc0 && cp <= 0x1dff))
    return 1;
  if (cp == 0x200c || cp == 0x200d)
    return 1; /* ZWNJ, ZWJ (GB9) */
  if (cp >= 0x20d0 && cp <= 0x20ff)
    return 1; /* combining for symbols */
  if (cp >= 0xfe00 && cp <= 0xfe0f)
    return 1; /* variation selectors */
  if (cp >= 0xfe20 && cp <= 0xfe2f)
    return 1; /* combining half marks */
  if (cp >= 0x1f3fb && cp <= 0x1f3ff)
    return 1; /* emoji skin tones */
  if (cp >= 0xe0020 && cp <= 0xe007f)
    return 1; /* tag characters */
  if (cp >= 0xe0100 && cp <= 0xe01ef)
    return 1; /* variation selectors */
  return 0;
}

static int is_pictographic(uint32_t cp) {
  return cp == 0x00a9 || cp == 0x00ae || (cp >= 0x2190 && cp <= 0x2bff) ||
         (cp >= 0x1f000 && cp <= 0x1faff);
}

/* Grapheme_Cluster_Break=Control: a part may always end before or after. */
static int is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x00ad || cp == 0x061c || cp == 0x180e ||
         cp == 0x200b || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff || (cp >= 0xfff0 && cp <= 0xfffb);
}

static int is_regional(uint32_t cp) { return cp >= 0x1f1e6 && cp <= 0x1f1ff; }

/* ---- Preparation ----------------------------------------------------------- */

typedef struct {
  size_t off; /* byte offset of the code point */
  uint32_t cp;
  unsigned units;
  unsigned joins; /* no part boundary before it */
} cpinfo;

/* Builds the mapped text of s[0..len) into *out (malloc'ed); counts the
 * replacements; reports whether all of it is GSM. */
static int map_text(const char *s, size_t len, char **out, size_t *outlen, size_t *replaced,
                    int *all_gsm) {
  /* The longest replacement is 3 bytes ("...") for a 3-byte character. */
  char *o = malloc(len + 1);
  if (!o)
    return -ENOMEM;
  size_t n = 0, i = 0, rep = 0;
  int gsm = 1;
  while (i < len) {
    uint32_t cp;
    int k = erpq_utf8_next((const unsigned char *)s + i, len - i, &cp);
    const char *to = map_lookup(cp);
    if (to) {
      size_t tl = strlen(to);
      memcpy(o + n, to, tl);
      n += tl;
      rep++;
    } else {
      memcpy(o + n, s + i, (size_t)k);
      n += (size_t)k;
      if (!erpq_sms_gsm_septets(cp))
        gsm = 0;
    }
    i += (size_t)k;
  }
  o[n] = '\0';
  *out = o;
  *outlen = n;
  *replaced = rep;
  *all_gsm = gsm;
  return 0;
}

static void segment(erpq_sms_text *t, const cpinfo *cps, size_t ncp, size_t part) {
  size_t seg = 0, cur = 0;
  t->part_start[0] = 0;
  size_t i = 0;
  while (i < ncp) {
    /* The cluster [i, j): a code point and those joined to it. */
    size_t j = i + 1, units = cps[i].units;
    while (j < ncp && cps[j].joins)
      units += cps[j].units, j++;
    if (units > part) {
      /* Longer than a part: cut at code points. */
      for (size_t k = i; k < j; k++) {
        if (cur + cps[k].units > part) {
          t->part_units[seg++] = cur;
          t->part_start[seg] = cps[k].off;
          cur = 0;
        }
        cur += cps[k].units;
      }
    } else {
      if (cur + units > part) {
        t->part_units[seg++] = cur;
        t->part_start[seg] = cps[i].off;
        cur = 0;
      }
      cur += units;
    }
    i = j;
  }
  t->part_units[seg++] = cur;
  t->segments = seg;
}

int erpq_sms_prepare(const char *utf8, size_t len, erpq_sms_map_mode mode, erpq_sms_text *out,
                     char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!utf8 && len)
    return erpq_fail(err, errlen, ERPQ_E_ARG, "no SMS text given");
  size_t bad = erpq_utf8_check(utf8 ? utf8 : "", len);
  if (bad < len)
    return erpq_fail(err, errlen, -EILSEQ, "the SMS text is not valid UTF-8 (byte %zu)", bad);
  if (len && memchr(utf8, '\0', len))
    return erpq_fail(err, errlen, -EILSEQ, "the SMS text contains a NUL character (byte %zu)",
                     (size_t)((const char *)memchr(utf8, '\0', len) - utf8));

  char *mapped = NULL;
  size_t mlen = 0, replaced = 0;
  int mapped_gsm = 0;
  if (mode != ERPQ_SMS_MAP_NEVER) {
    if (map_text(utf8 ? utf8 : "", len, &mapped, &mlen, &replaced, &mapped_gsm))
      return erpq_fail(err, errlen, -ENOMEM, "out of memory preparing an SMS");
  }
  if (mapped && (mode == ERPQ_SMS_MAP_ALWAYS || mapped_gsm)) {
    out->text = mapped;
    out->text_len = mlen;
    out->mapped = replaced;
  } else {
    free(mapped);
    out->text = malloc(len + 1);
    if (!out->text)
      return erpq_fail(err, errlen, -ENOMEM, "out of memory preparing an SMS");
    if (len)
      memcpy(out->text, utf8, len);
    out->text[len] = '\0';
    out->text_len = len;
  }

  /* Decode once; decide the encoding. */
  const unsigned char *p = (const unsigned char *)out->text;
  size_t n = out->text_len;
  cpinfo *cps = malloc((n ? n : 1) * sizeof *cps);
  if (!cps) {
    erpq_sms_text_free(out);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory preparing an SMS");
  }
  size_t ncp = 0;
  int gsm = 1;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int k = erpq_utf8_next(p + i, n - i, &cp);
    cps[ncp].off = i;
    cps[ncp].cp = cp;
    if (gsm && !erpq_sms_gsm_septets(cp))
      gsm = 0;
    ncp++;
    i += (size_t)k;
  }
  out->encoding = gsm ? ERPQ_SMS_GSM7 : ERPQ_SMS_UCS2;
  out->chars = ncp;

  size_t units = 0, ri_run = 0;
  for (size_t i = 0; i < ncp; i++) {
    uint32_t cp = cps[i].cp;
    if (gsm) {
      cps[i].units = (unsigned)erpq_sms_gsm_septets(cp);
      cps[i].joins = 0;
    } else {
      cps[i].units = cp > 0xffff ? 2 : 1;
      int joins = 0;
      if (i > 0 && !is_control(cps[i - 1].cp)) {
        uint32_t prev = cps[i - 1].cp;
        if (is_mark(cp))
          joins = 1; /* GB9, GB9a (and GB10: modifiers are marks here) */
        else if (prev == 0x200d && is_pictographic(cp))
          joins = 1; /* GB11 */
        else if (is_regional(cp) && is_regional(prev) && ri_run % 2 == 1)
          joins = 1; /* GB12/13: the second of a pair */
      }
      ri_run = is_regional(cp) ? ri_run + 1 : 0;
      cps[i].joins = (unsigned)joins;
    }
    units += cps[i].units;
  }
  out->units = units;

  size_t single = gsm ? ERPQ_SMS_GSM7_SINGLE : ERPQ_SMS_UCS2_SINGLE;
  size_t part = gsm ? ERPQ_SMS_GSM7_PART : ERPQ_SMS_UCS2_PART;
  /* At most one part per unit, plus one for the empty text. */
  size_t maxseg = units <= single ? 1 : units + 1;
  out->part_start = malloc(maxseg * sizeof *out->part_start);
  out->part_units = malloc(maxseg * sizeof *out->part_units);
  if (!out->part_start || !out->part_units) {
    free(cps);
    erpq_sms_text_free(out);
    return erpq_fail(err, errlen, -ENOMEM, "out of memory preparing an SMS");
  }
  if (units <= single) {
    out->segments = 1;
    out->part_start[0] = 0;
    out->part_units[0] = units;
  } else {
    segment(out, cps, ncp, part);
  }
  free(cps);
  return 0;
}

void erpq_sms_text_free(erpq_sms_text *t) {
  if (!t)
    return;
  free(t->text);
  free(t->part_start);
  free(t->part_units);
  memset(t, 0, sizeof *t);
}
