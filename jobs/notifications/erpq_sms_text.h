/*
 * erpq_sms_text.h - what an SMS costs: encoding, units and segments.
 *
 * An SMS carries 140 octets. In the GSM 03.38 (3GPP TS 23.038) 7-bit
 * default alphabet that is 160 septets; any character outside that
 * alphabet and its extension table switches the WHOLE message to UCS-2
 * (in practice UTF-16), 70 units. A message longer than one SMS is sent as
 * concatenated parts, each losing 6 octets to the user data header: 153
 * septets or 67 UTF-16 units per part. A provider bills per part, so one
 * curly apostrophe pasted from a word processor (mozilla/fxa#5207) turns a
 * 150-character reminder from 1 part into 3.
 *
 * erpq_sms_prepare() takes UTF-8 text and:
 *
 *   1. Maps typographic characters to GSM equivalents with the table
 *      below (ERPQ_SMS_MAP_IF_GSM, the default, keeps the mapped text only
 *      when it is all GSM; otherwise the message is UCS-2 anyway, every
 *      original character fits, and the author's text is sent untouched,
 *      since mapping would only lose typography and "…" -> "..." would
 *      cost two more units. ERPQ_SMS_MAP_ALWAYS / _NEVER force it.)
 *   2. Decides the encoding: GSM-7 when every character is in the default
 *      alphabet or its extension table, else UCS-2.
 *   3. Counts units: septets for GSM-7 (the extension characters
 *      ^ { } \ [ ~ ] | EURO SIGN and form feed take 2: escape + character),
 *      UTF-16 code units for UCS-2 (a character above U+FFFF takes 2).
 *   4. Splits into segments: 1 when the units fit 160 / 70, else parts of
 *      at most 153 / 67 units, filled greedily. A part never ends between
 *      an escape and its extension character, nor inside a surrogate pair.
 *      In UCS-2 a part also does not end inside a user-perceived character
 *      (a letter and its combining marks, a Devanagari consonant and its
 *      vowel signs / virama / nukta, an emoji and its skin-tone modifier or
 *      variation selector, a ZWJ emoji sequence, a flag's two regional
 *      indicators), as Android's SMS fragmenter and Twilio's segment
 *      calculator do, so a phone never shows a part that starts with a
 *      detached vowel sign. This is an approximation of UAX #29 grapheme
 *      clusters, rules GB3..GB13 of Unicode 10 over the combining marks of
 *      Latin, Greek, Cyrillic, Arabic and the ten Indic scripts; it does
 *      not implement the Unicode 15.1 conjunct rule (GB9c), so a part may
 *      end after a virama, as with Twilio's calculator. A cluster longer
 *      than a whole part (pathological) is cut at code point boundaries.
 *      CR LF is two characters that may be split, as both references do.
 *
 * The mapping table (erpq_sms_map_table() returns it, sorted by code point):
 *
 *   ' <- U+2018 U+2019 U+201A U+201B (single quotation marks),
 *        U+2032 (prime), U+02B9 U+02BC (modifier prime / apostrophe),
 *        U+00B4 (acute accent)
 *   " <- U+201C U+201D U+201E U+201F (double quotation marks),
 *        U+2033 (double prime), U+02BA, U+00AB U+00BB (guillemets)
 *   - <- U+2010 U+2011 (hyphens), U+2012 (figure dash), U+2013 (en dash),
 *        U+2014 (em dash), U+2015 (horizontal bar), U+2212 (minus sign),
 *        U+2022 (bullet), U+2023 (triangular bullet), U+2043 (hyphen
 *        bullet), U+25E6 (white bullet)
 *   . <- U+2024 (one dot leader);  ... <- U+2026 (horizontal ellipsis)
 *   / <- U+2044 (fraction slash), U+2215 (division slash)
 *   space <- U+0009 (tab), U+00A0 (no-break space), U+1680, U+2000..U+200A
 *        (en/em/thin/hair... spaces), U+202F (narrow no-break), U+205F,
 *        U+3000 (ideographic space)
 *   LF <- U+2028 (line separator), U+2029 (paragraph separator)
 *   removed: U+00AD (soft hyphen), U+200B (zero width space), U+2060 (word
 *        joiner), U+FEFF (byte order mark / zero width no-break space)
 *
 * Deliberately NOT mapped: letters with diacritics outside GSM (a name
 * like "Françoise" or "Łukasz" must not be spelt wrongly to save money;
 * U+00E7 small c cedilla is not GSM: TS 23.038 draws 0x09 as capital
 * C cedilla and so do Twilio and most handsets), ZWJ/ZWNJ (U+200D/U+200C
 * shape Indic conjuncts and join emoji), and everything else. Twilio's
 * "smart encoding" table (sms-segments-calculator 1.3.0) differs on
 * purpose: it maps U+201A to ',' (we: ' since it serves as an opening
 * quote), the no-break and typographic spaces to two spaces and tab to
 * seven (we: one space each: two would cost a septet and change the
 * layout), and U+2028/U+2029 to a space (we: LF, what they mean). It
 * leaves U+00AD U+1680 U+2011 U+2012 U+2023 U+2024 U+2032 U+2033 U+2212
 * U+25E6 unmapped (so a calculator fed our input, not our output, would
 * say UCS-2 for them).
 *
 * Errors: text that is not UTF-8 or holds U+0000 is refused (-EILSEQ, the
 * message gives the byte offset, never the text); out of memory -ENOMEM.
 * An empty text is 0 units in 1 segment (an empty SMS is still one SMS).
 * There is no upper limit here: a transport refuses what its provider
 * refuses (Twilio: 1,600 characters; concatenation: 255 parts).
 *
 * Ownership: erpq_sms_prepare() fills a caller-provided erpq_sms_text whose
 * text and part_start arrays it allocates; erpq_sms_text_free() releases
 * them (safe on a zeroed or already freed struct). No global state; all
 * functions are thread-safe.
 */
#ifndef ERPQ_SMS_TEXT_H
#define ERPQ_SMS_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ERPQ_SMS_GSM7 = 1, ERPQ_SMS_UCS2 = 2 } erpq_sms_encoding;

typedef enum {
  ERPQ_SMS_MAP_IF_GSM = 0, /* map, keep the result only if it is all GSM */
  ERPQ_SMS_MAP_ALWAYS,     /* always send the mapped text */
  ERPQ_SMS_MAP_NEVER       /* send the text as given */
} erpq_sms_map_mode;

/* Single-message and per-part capacities. */
#define ERPQ_SMS_GSM7_SINGLE 160
#define ERPQ_SMS_GSM7_PART 153
#define ERPQ_SMS_UCS2_SINGLE 70
#define ERPQ_SMS_UCS2_PART 67

typedef struct erpq_sms_text {
  char *text;      /* UTF-8 to send (after mapping), NUL-terminated */
  size_t text_len; /* bytes, without the NUL */
  erpq_sms_encoding encoding;
  size_t units;       /* septets (GSM-7) or UTF-16 code units (UCS-2) */
  size_t chars;       /* Unicode code points in text */
  size_t segments;    /* >= 1 */
  size_t *part_start; /* segments byte offsets into text, [0] == 0 */
  size_t *part_units; /* units of each part */
  size_t mapped;      /* characters the table replaced (0 if the
                         mapped text was not used) */
} erpq_sms_text;

typedef struct erpq_sms_map_entry {
  uint32_t from;  /* code point */
  const char *to; /* UTF-8 (all GSM), possibly "" */
  const char *name;
} erpq_sms_map_entry;

/* Prepares len bytes of UTF-8 text (need not be NUL-terminated). On
 * success out owns its arrays; on failure out is zeroed. */
int erpq_sms_prepare(const char *utf8, size_t len, erpq_sms_map_mode mode, erpq_sms_text *out,
                     char *err, size_t errlen);
void erpq_sms_text_free(erpq_sms_text *t);

/* Septets a code point takes in GSM-7: 1 (default alphabet), 2 (extension
 * table) or 0 (not representable). */
int erpq_sms_gsm_septets(uint32_t cp);

/* The mapping table, sorted by code point; *n receives its length. */
const erpq_sms_map_entry *erpq_sms_map_table(size_t *n);

const char *erpq_sms_encoding_name(erpq_sms_encoding e); /* "GSM-7" / "UCS-2" */

#endif
