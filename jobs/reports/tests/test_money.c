/*
 * test_money.c - money formatting: hand-written tables, then a wide
 * cross-check against Babel (CLDR) and Decimal in tests/check_money.py.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erpq_money.h"
#include "report_fixture.h"

static erpq_currency cur(const char *code) {
  erpq_currency c;
  char err[128];
  cr_assert_eq(erpq_currency_lookup(code, &c, err, sizeof err), 0, "%s", err);
  return c;
}

static void plain_is(int64_t minor, const char *code, const char *want) {
  char buf[ERPQ_MONEY_BUF];
  size_t n = erpq_money_plain(minor, cur(code).exponent, buf);
  cr_expect_str_eq(buf, want, "%lld %s", (long long)minor, code);
  cr_expect_eq(n, strlen(want));
}

static void display_is(int64_t minor, const char *code, const char *locale, const char *want) {
  char buf[ERPQ_MONEY_BUF];
  erpq_currency c = cur(code);
  erpq_money_display(minor, &c, erpq_money_indian_grouping(locale), buf);
  cr_expect_str_eq(buf, want, "%lld %s %s", (long long)minor, code, locale);
}

Test(money, plain_form) {
  plain_is(123450, "INR", "1234.50");
  plain_is(-5, "INR", "-0.05");
  plain_is(0, "INR", "0.00");
  plain_is(-100, "USD", "-1.00");
  plain_is(1234567, "KWD", "1234.567");
  plain_is(-1, "BHD", "-0.001");
  plain_is(7, "JPY", "7");
  plain_is(-7, "JPY", "-7");
  plain_is(INT64_MAX, "INR", "92233720368547758.07");
  plain_is(INT64_MIN, "INR", "-92233720368547758.08");
  plain_is(INT64_MIN, "JPY", "-9223372036854775808");
  plain_is(INT64_MIN, "OMR", "-9223372036854775.808");
  plain_is(150, "XYZ", "1.50"); /* unknown: exponent 2 */
}

Test(money, display_indian_grouping) {
  display_is(123456789, "INR", "en-IN",
             "\xe2\x82\xb9"
             "12,34,567.89");
  display_is(123456789, "INR", "hi",
             "\xe2\x82\xb9"
             "12,34,567.89");
  display_is(123456789, "INR", "hi_IN",
             "\xe2\x82\xb9"
             "12,34,567.89");
  display_is(-1250, "INR", "en-IN",
             "-\xe2\x82\xb9"
             "12.50");
  display_is(99999, "INR", "en-IN",
             "\xe2\x82\xb9"
             "999.99");
  display_is(100000, "INR", "en-IN",
             "\xe2\x82\xb9"
             "1,000.00");
  display_is(10000000, "INR", "en-IN",
             "\xe2\x82\xb9"
             "1,00,000.00");
  display_is(1000000000000, "INR", "en-IN",
             "\xe2\x82\xb9"
             "10,00,00,00,000.00");
  display_is(INT64_MAX, "INR", "en-IN",
             "\xe2\x82\xb9"
             "92,23,37,20,36,85,47,758.07");
  display_is(INT64_MIN, "INR", "en-IN",
             "-\xe2\x82\xb9"
             "92,23,37,20,36,85,47,758.08");
  display_is(123456789, "NPR", "ne-NP", "NPR 12,34,567.89");
}

Test(money, display_western_grouping) {
  display_is(123456789, "INR", "en-US",
             "\xe2\x82\xb9"
             "1,234,567.89");
  display_is(123456789, "USD", "en-US", "$1,234,567.89");
  display_is(-123456789, "USD", "en", "-$1,234,567.89");
  display_is(1234567, "KWD", "ar-KW", "KWD 1,234.567");
  display_is(-1, "KWD", "en", "-KWD 0.001");
  display_is(1234567, "JPY", "ja-JP",
             "\xc2\xa5"
             "1,234,567");
  display_is(0, "JPY", "ja",
             "\xc2\xa5"
             "0");
  display_is(100, "EUR", "de-DE",
             "\xe2\x82\xac"
             "1.00");
  display_is(123456, "GBP", "en-GB",
             "\xc2\xa3"
             "1,234.56");
  display_is(123456, "XYZ", "en", "XYZ 1,234.56");
  display_is(INT64_MIN, "USD", "", "-$92,233,720,368,547,758.08");
  display_is(INT64_MIN, "JPY", NULL,
             "-\xc2\xa5"
             "9,223,372,036,854,775,808");
}

Test(money, exponents_and_lookup) {
  cr_expect_eq(cur("INR").exponent, 2);
  cr_expect_eq(cur("kwd").exponent, 3);
  cr_expect_eq(cur("BHD").exponent, 3);
  cr_expect_eq(cur("OMR").exponent, 3);
  cr_expect_eq(cur("JPY").exponent, 0);
  cr_expect_eq(cur("AED").exponent, 2);
  erpq_currency x = cur("XYZ");
  cr_expect_eq(x.exponent, 2);
  cr_expect_eq(x.known, 0);
  cr_expect_str_eq(x.symbol, "XYZ");
  erpq_currency c;
  char err[128];
  cr_expect_eq(erpq_currency_lookup("RS", &c, err, sizeof err), -EINVAL);
  cr_expect_eq(erpq_currency_lookup("IN1", &c, err, sizeof err), -EINVAL);
  cr_expect_eq(erpq_currency_lookup(NULL, &c, err, sizeof err), -EINVAL);
}

Test(money, to_double_limit) {
  double d;
  cr_expect_eq(erpq_money_to_double(999999999999999, 2, &d), 0);
  cr_expect_eq(d, 9999999999999.99);
  cr_expect_eq(erpq_money_to_double(-999999999999999, 3, &d), 0);
  cr_expect_eq(d, -999999999999.999);
  cr_expect_eq(erpq_money_to_double(1000000000000000, 2, &d), -ERANGE);
  cr_expect_eq(erpq_money_to_double(-1000000000000000, 2, &d), -ERANGE);
  cr_expect_eq(erpq_money_to_double(INT64_MIN, 2, &d), -ERANGE);
}

Test(money, xlsx_formats) {
  char f[64];
  erpq_currency c = cur("INR");
  erpq_money_xlsx_format(&c, f);
  cr_expect_str_eq(f, "[$\xe2\x82\xb9-4009] #,##,##0.00");
  c = cur("USD");
  erpq_money_xlsx_format(&c, f);
  cr_expect_str_eq(f, "\"$\"#,##0.00");
  c = cur("KWD");
  erpq_money_xlsx_format(&c, f);
  cr_expect_str_eq(f, "\"KWD \"#,##0.000");
  c = cur("JPY");
  erpq_money_xlsx_format(&c, f);
  cr_expect_str_eq(f, "\"\xc2\xa5\"#,##0");
}

/* Every code of the table and many amounts, checked by Babel and Decimal. */
static const char *const CODES[] = {
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AZN", "BAM", "BDT", "BGN", "BHD",
    "BIF", "BND", "BOB", "BRL", "BTN", "BWP", "BYN", "CAD", "CDF", "CHF", "CLP", "CNY",
    "COP", "CRC", "CZK", "DJF", "DKK", "DZD", "EGP", "ETB", "EUR", "FJD", "GBP", "GEL",
    "GHS", "GNF", "HKD", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KRW", "KWD", "KZT", "LAK", "LBP", "LKR", "LYD", "MAD",
    "MGA", "MMK", "MNT", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NOK",
    "NPR", "NZD", "OMR", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SEK", "SGD", "SOS", "SYP", "THB", "TND", "TRY", "TWD", "TZS",
    "UAH", "UGX", "USD", "UZS", "VND", "VUV", "XAF", "XOF", "XPF", "YER", "ZAR", "ZMW"};

Test(money, cross_check_with_babel) {
  char *dir = rf_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/money.json", dir);
  json_t *doc = json_object(), *cur_a = json_array(), *cases = json_array();
  for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++) {
    erpq_currency c = cur(CODES[i]);
    cr_assert(c.known, "%s is in the table", CODES[i]);
    json_array_append_new(cur_a, json_pack("{s:s,s:i}", "code", CODES[i], "exponent", c.exponent));
  }
  static const char *const LOCALES[] = {"en-IN", "hi",    "ta-IN", "bn-BD", "ne-NP", "en-US",
                                        "en-GB", "ar-AE", "mr-IN", "fr-FR", "",      "en"};
  static const char *const CASE_CODES[] = {"INR", "USD", "KWD", "JPY", "AED", "NPR", "OMR", "EUR"};
  uint64_t x = 88172645463325252ull; /* xorshift: many magnitudes */
  for (int k = 0; k < 3000; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t minor = (int64_t)(x >> (x % 60));
    if (k % 3 == 0)
      minor = -minor;
    if (k == 0)
      minor = INT64_MIN;
    if (k == 1)
      minor = INT64_MAX;
    if (k == 2)
      minor = 0;
    const char *code = CASE_CODES[k % 8];
    const char *loc = LOCALES[(k / 8) % 12];
    erpq_currency c = cur(code);
    char plain[ERPQ_MONEY_BUF], disp[ERPQ_MONEY_BUF];
    erpq_money_plain(minor, c.exponent, plain);
    erpq_money_display(minor, &c, erpq_money_indian_grouping(loc), disp);
    json_array_append_new(cases, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "minor", (json_int_t)minor,
                                           "code", code, "locale", loc, "plain", plain, "display",
                                           disp, "symbol", c.symbol));
  }
  json_object_set_new(doc, "currencies", cur_a);
  json_object_set_new(doc, "cases", cases);
  rf_write_json(path, doc);
  json_decref(doc);
  int rc = rf_python("check_money.py", path, NULL);
  rf_rmdir(dir);
  free(dir);
  cr_assert_eq(rc, 0, "check_money.py found problems (see above)");
}
