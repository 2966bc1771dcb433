/*
 * erpq_e164.h - phone numbers as SMS providers want them: E.164.
 *
 * A school's records hold numbers as people typed them: "+91 98001 00001",
 * "+91-98001-00001", "(+91) 98001.00001", "0091 9800100001", or, far too
 * often, "098001 00001" with the country left implicit. An SMS API wants
 * "+919800100001": a plus, the country calling code, the national
 * significant number, 8 to 15 digits in all (ITU-T E.164 allows at most
 * 15; nothing shorter than 8 is a real subscriber number anywhere we
 * send to).
 *
 * erpq_e164_normalize() accepts:
 *   - separators anywhere: space, tab, no-break space, '-', '.', '/',
 *     '(' and ')';
 *   - one '+' before the first digit ("(+91)" is fine), or the
 *     international prefix "00" in its place ("0091..." -> "+91...");
 *     "00" is the ITU-recommended prefix used across Europe, Africa, the
 *     Middle East and South Asia; 011 (North America), 0011 (Australia)
 *     and 010 (Japan) are not recognised, and a number written with them
 *     is read as a national one;
 *   - a national number (no '+', no "00") only when the caller gives a
 *     default country calling code. Then the national trunk prefix is
 *     dropped as the country dials it:
 *       "0" for 20 27 31 32 33 41 43 44 46 49 51 54 60 61 62 63 64 66 81 82
 *           84 86 90 91 92 93 94 95 98 212 213 234 254 255 256 353 358 380
 *           880 886 961 962 963 964 966 967 971 972 977 (Egypt ... Nepal;
 *           India 91, UK 44, Germany 49, Australia 61, France 33 among
 *           them): "098001 00001" with 91 -> "+919800100001";
 *       none, and a leading 0 belongs to the number, for 39 (Italy),
 *           378 (San Marino), 225 (Côte d'Ivoire): "06 6988 1234" with 39
 *           -> "+390669881234";
 *       "1" for 1 (North America: no 0 trunk; an 11-digit "1 201 555
 *           0123" loses its 1);
 *       "8" for 7 (Russia, Kazakhstan: an 11-digit "8 912 ..." loses its 8).
 *     For any other country a national number starting with 0 is refused
 *     (we do not know whether the 0 is a trunk prefix); one that does not
 *     is taken as it is. erpq_e164_trunk_prefix() exposes the table; the
 *     tests check it against libphonenumber's metadata.
 *   - the same trunk rule inside international numbers of the table's
 *     countries, because people write the trunk 0 after the country code
 *     out of habit: "+44 (0)20 7946 0018" and "+44 020 7946 0018" ->
 *     "+442079460018", "+1 1 201 555 0123" -> "+12015550123"; but
 *     "+39 06 ..." keeps its 0. International numbers of other countries
 *     are taken digit for digit.
 * and refuses: letters (no vanity numbers, no "ext."), any other
 * character, a second '+', a '+' after digits, no country code and no
 * default, a 0 right after the '+', fewer than 8 or more than 15 digits.
 * It checks the shape only, not whether a country code is assigned or a
 * number range is in service: the provider is the judge of that.
 *
 * erpq_e164_mask() turns "+919800100001" into "+91********01": the first 3
 * characters (the '+' and what is usually the country code) and the last
 * 2 digits stay, the rest become '*', so records and support screens can
 * tell numbers apart without holding them.
 *
 * Error messages never quote the number (personal data): they name the
 * problem only. No allocation, no global state; thread-safe.
 */
#ifndef ERPQ_E164_H
#define ERPQ_E164_H

#include <stddef.h>

/* '+', up to 15 digits and the NUL. */
#define ERPQ_E164_BUFSZ 17

/* Normalises in (NUL-terminated) into out. default_cc is the country
 * calling code for national numbers (1..999), or 0 for none. Returns 0, or
 * -EINVAL with the reason in err. out is "" on failure. */
int erpq_e164_normalize(const char *in, int default_cc, char out[ERPQ_E164_BUFSZ], char *err,
                        size_t errlen);

/* Whether s is already normalised E.164 ('+', 8..15 digits, no leading 0). */
int erpq_e164_valid(const char *s);

/* Masks a normalised number into out: 0, or -EINVAL (out "***") when e164
 * is not one. */
int erpq_e164_mask(const char *e164, char out[ERPQ_E164_BUFSZ]);

/* The national trunk prefix this module drops for country calling code cc:
 * "0", "1" (cc 1), "8" (cc 7), "" (none: a leading 0 is part of the
 * number), or NULL when the country is not in the table. */
const char *erpq_e164_trunk_prefix(int cc);

#endif
