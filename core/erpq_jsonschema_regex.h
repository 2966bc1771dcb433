/*
 * erpq_jsonschema_regex.h - the "pattern" keyword of erpq_jsonschema: a
 * subset of ECMA-262 regular expressions run by POSIX regcomp/regexec.
 *
 * JSON Schema patterns are ECMA-262 regexes (as `new RegExp(p, "u")`
 * reads them); erpq runs them with glibc's POSIX extended regexes. A
 * pattern is accepted only when every construct in it means the same in
 * both, and is then translated to an ERE and compiled once, when the
 * schema is loaded; validating a value only runs regexec().
 *
 * The accepted subset:
 *   - literal characters (any Unicode character but the metacharacters
 *     ^ $ \ . * + ? ( ) [ ] { } |), matched as code points;
 *   - . (any character but \n, \r, U+2028 and U+2029, as in ECMA-262:
 *     translated to a bracket expression, since POSIX . takes them all);
 *   - ^ and $ (start and end of the whole value: no multiline mode), ^
 *     only where nothing can come before it (at the start of the pattern,
 *     of a top-level alternative, or of a group in such a place) and $
 *     only where nothing comes after it (likewise at the end), and
 *     neither inside a group that repeats (+, *, {2}, ...): glibc would
 *     let a ^ follow, and a $ precede, a newline the pattern consumed;
 *   - alternation |, capturing groups ( ) (captures are never used);
 *   - bracket expressions [abc], [^abc] with ranges a-z whose ends are
 *     ASCII and in order, '-' only first, last or between a range's ends,
 *     and a literal '[' not followed by ':', '.' or '=';
 *   - the quantifiers * + ? {m} {m,} {m,n} (greedy; bounds up to 1000,
 *     m <= n) after an atom;
 *   - a backslash before a metacharacter or '/' (\. \* \( \] \/ ...).
 * Everything else is refused with its name in the message: \d \D \w \W
 * \s \S \b \B and every other backslash-letter or backslash-digit escape
 * (\n, \t, \x41, \u00e9, \p{L}, \k<n>, \1, \0), lookarounds (?= (?! (?<=
 * (?<!, non-capturing and named groups (?: (?<name>, lazy quantifiers *?
 * +? ?? }?, a quantifier with nothing to repeat or after another one, a
 * '{' (or a lone ']' or '}') that is not a valid quantifier, any backslash
 * inside [...] (an escape in ECMA-262, a literal in POSIX) including [\d],
 * POSIX bracket expressions [[:alpha:]] [[.a.]] [[=a=]] (POSIX only), the
 * empty classes [] and [^], ranges with a non-ASCII end, anchors in other
 * places (a^b, a$b, (^a)+), and a NUL.
 * Matching is unanchored, as JSON Schema says; both engines answer "is
 * there a match anywhere", which for this subset is the same question.
 *
 * The regexes run in the C.UTF-8 character type (uselocale() around
 * regcomp and regexec, so the process locale is never changed and threads
 * do not affect one another), so . and [^...] take one code point.
 *
 * erpq_schema_patterns (declared in erpq_jsonschema.h) is a table of
 * compiled patterns keyed by their source text: filled at load, read-only
 * afterwards, and then safe to share between threads (glibc's regexec
 * locks each regex internally).
 */
#ifndef ERPQ_JSONSCHEMA_REGEX_H
#define ERPQ_JSONSCHEMA_REGEX_H

#include <locale.h>
#include <regex.h>
#include <stddef.h>

#include "erpq_buf.h"

typedef struct erpq_schema_pattern {
  char *src; /* the ECMA-262 source, the key */
  regex_t re;
} erpq_schema_pattern;

/* The table: entries sorted by src. {0} is an empty table; the locale is
 * made with the first pattern. Owned by whoever embeds it. */
struct erpq_schema_patterns {
  locale_t loc;
  erpq_schema_pattern *v;
  size_t n, cap;
};

/* Checks that ecma is in the accepted subset and writes its POSIX ERE
 * translation into ere (appended). Returns 0, or ERPQ_E_ARG with err
 * naming the refused construct and its offset, or -ENOMEM. */
int erpq_regex_translate(const char *ecma, erpq_buf *ere, char *err, size_t errlen);

/* Frees every compiled pattern and the locale; the table is empty ({0})
 * afterwards. */
void erpq_schema_patterns_clear(struct erpq_schema_patterns *t);

#endif
