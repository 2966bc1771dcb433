/*
 * erpq_money.h - money amounts as text, with no floating point anywhere.
 *
 * An amount is an int64_t count of the currency's minor units (paise,
 * cents, fils). How many decimal places a currency has is its ISO 4217
 * "minor unit" exponent: 2 for most (INR, USD, EUR, GBP, AED, SAR, NPR, LKR,
 * BDT, PKR, SGD, MYR, KES, NGN, ZAR, AUD, CAD...), 3 for the Gulf dinars and
 * a few others (KWD, BHD, OMR, JOD, TND, LYD, IQD), 0 for JPY, KRW, VND, UGX,
 * RWF, CLP, ISK, XOF, XAF... The table in erpq_money.c follows ISO 4217, not
 * CLDR: where the two differ (CLDR shows IQD, AFN, MMK, LAK and a few more
 * with 0 decimals) the stored minor units follow ISO, so the ISO exponent is
 * the one that turns them back into the right major amount.
 * A code the table does not know (but that is three letters A-Z) gets
 * exponent 2 and is shown by its code: "XYZ 1,234.50".
 *
 * Two text forms:
 *  - plain (machine) form, for CSV and for comparisons: "1234.50", "-0.05",
 *    "7" (JPY), "-1.234" (KWD). No grouping, no symbol, '.' as separator.
 *  - display form, for PDF: symbol + grouped digits. Symbols are used for
 *    INR (₹), USD ($), EUR (€), GBP (£), JPY (¥); every other currency is
 *    shown by its code and a space ("KWD 1,234.567"). Grouping is Indian
 *    (12,34,567.89: the last three digits, then pairs) when the locale is
 *    en-IN or its language is one whose CLDR currency pattern groups that
 *    way (hi, bn, gu, pa, ta, te, ne, as), Western (1,234,567.89) for every
 *    other locale. The separators are always ',' and '.': this is not a full
 *    CLDR implementation (no "1.234,50 €" for de-DE), on purpose: reports
 *    are read by the school's accountants, whose locale is en-IN in
 *    practice. A negative amount puts '-' before the symbol: "-₹12.50".
 *
 * Arithmetic is done on the magnitude as uint64_t, so INT64_MIN
 * (-9223372036854775808) formats correctly ("-92233720368547758.08").
 *
 * erpq_money_to_double() is the ONE place where an amount becomes a double,
 * for libraries whose API only takes doubles (libxlsxwriter's number
 * cells): see its comment for why that is exact below 10^15 minor units.
 *
 * Everything here is stateless and thread-safe; the currency table is
 * static and read-only; an erpq_currency holds no pointers.
 */
#ifndef ERPQ_MONEY_H
#define ERPQ_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Enough for any int64 in any form here: sign, 19 digits, 6 separators
 * (Indian grouping of 17 integer digits uses 8), '.', a symbol of up to
 * 4 bytes or a code and a space, NUL. */
#define ERPQ_MONEY_BUF 48

/* Amounts whose magnitude is below this many minor units convert to double
 * exactly enough to come back unchanged (see erpq_money_to_double). */
#define ERPQ_MONEY_DOUBLE_LIMIT INT64_C(1000000000000000)

typedef struct erpq_currency {
  char code[4];       /* ISO 4217 code, upper case, NUL-terminated */
  int exponent;       /* decimal places of the minor unit: 0..3 */
  char symbol[8];     /* "₹", "$", or the code itself (a copy: the struct
                         may be copied freely) */
  int symbol_is_code; /* 1 when the symbol is the code (then a space follows) */
  int known;          /* 0 when the code is not in the table */
} erpq_currency;

/* Fills *out for an ISO 4217 code (case-insensitive, exactly three letters
 * A-Z). Unknown codes get exponent 2 and the code as symbol (known = 0).
 * Returns 0, or -EINVAL (message in err) when code is not three letters. */
int erpq_currency_lookup(const char *code, erpq_currency *out, char *err, size_t errlen);

/* 1 when the BCP 47 locale tag ("en-IN", "hi", "hi_IN", "ta-LK") groups
 * digits the Indian way, 0 otherwise (NULL or "" included). */
int erpq_money_indian_grouping(const char *locale);

/* Plain form of minor units with the given exponent (0..3) into out
 * (ERPQ_MONEY_BUF bytes). Returns the length written. */
size_t erpq_money_plain(int64_t minor, int exponent, char *out);

/* Display form ("₹12,34,567.89", "-$1,234.00", "KWD 1,234.567") into out
 * (ERPQ_MONEY_BUF bytes). Returns the length written. */
size_t erpq_money_display(int64_t minor, const erpq_currency *cur, int indian, char *out);

/* The amount in major units as a double, for an API that only takes
 * doubles. Exactness: |minor| < 10^15 < 2^53, so (double)minor is exact;
 * 10^exponent (<= 1000) is exact; IEEE 754 division is correctly rounded,
 * so the result is the double nearest to the true decimal value. That
 * decimal has at most 15 significant digits, and every decimal of at most
 * 15 (DBL_DIG) significant digits survives decimal -> double -> decimal
 * unchanged: a reader that prints the double with 15 significant digits, or
 * with the shortest round-trip form, or with 16/17 digits and parses it
 * back into a double, gets the original amount. Past 10^15 that guarantee
 * is gone, so such amounts are refused: returns -ERANGE (with *out
 * untouched), 0 otherwise. */
int erpq_money_to_double(int64_t minor, int exponent, double *out);

/* Excel number format for amounts of this currency: "[$₹-4009] #,##,##0.00"
 * for INR, "\"$\"#,##0.00" for USD, "\"KWD \"#,##0.000", "\"¥\"#,##0" for
 * JPY. Into out (64 bytes). */
void erpq_money_xlsx_format(const erpq_currency *cur, char out[64]);

#endif
