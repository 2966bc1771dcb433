/*
 * erpq_money.c - money amounts as text (see erpq_money.h).
 */
#include "erpq_money.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "erpq_err.h"

/* ISO 4217 codes and their minor-unit exponents. Sorted by code (binary
 * search). Symbols only for the five currencies whose symbol nobody
 * misreads; the rest are shown by code. */
typedef struct {
  const char code[4];
  signed char exponent;
  const char *symbol;
} cur_entry;

static const cur_entry CURRENCIES[] = {
    {"AED", 2, NULL},           {"AFN", 2, NULL},       {"ALL", 2, NULL},
    {"AMD", 2, NULL},           {"AOA", 2, NULL},       {"ARS", 2, NULL},
    {"AUD", 2, NULL},           {"AZN", 2, NULL},       {"BAM", 2, NULL},
    {"BDT", 2, NULL},           {"BGN", 2, NULL},       {"BHD", 3, NULL},
    {"BIF", 0, NULL},           {"BND", 2, NULL},       {"BOB", 2, NULL},
    {"BRL", 2, NULL},           {"BTN", 2, NULL},       {"BWP", 2, NULL},
    {"BYN", 2, NULL},           {"CAD", 2, NULL},       {"CDF", 2, NULL},
    {"CHF", 2, NULL},           {"CLP", 0, NULL},       {"CNY", 2, NULL},
    {"COP", 2, NULL},           {"CRC", 2, NULL},       {"CZK", 2, NULL},
    {"DJF", 0, NULL},           {"DKK", 2, NULL},       {"DZD", 2, NULL},
    {"EGP", 2, NULL},           {"ETB", 2, NULL},       {"EUR", 2, "\xe2\x82\xac"},
    {"FJD", 2, NULL},           {"GBP", 2, "\xc2\xa3"}, {"GEL", 2, NULL},
    {"GHS", 2, NULL},           {"GNF", 0, NULL},       {"HKD", 2, NULL},
    {"HUF", 2, NULL},           {"IDR", 2, NULL},       {"ILS", 2, NULL},
    {"INR", 2, "\xe2\x82\xb9"}, {"IQD", 3, NULL},       {"IRR", 2, NULL},
    {"ISK", 0, NULL},           {"JOD", 3, NULL},       {"JPY", 0, "\xc2\xa5"},
    {"KES", 2, NULL},           {"KGS", 2, NULL},       {"KHR", 2, NULL},
    {"KMF", 0, NULL},           {"KRW", 0, NULL},       {"KWD", 3, NULL},
    {"KZT", 2, NULL},           {"LAK", 2, NULL},       {"LBP", 2, NULL},
    {"LKR", 2, NULL},           {"LYD", 3, NULL},       {"MAD", 2, NULL},
    {"MGA", 2, NULL},           {"MMK", 2, NULL},       {"MNT", 2, NULL},
    {"MUR", 2, NULL},           {"MVR", 2, NULL},       {"MWK", 2, NULL},
    {"MXN", 2, NULL},           {"MYR", 2, NULL},       {"MZN", 2, NULL},
    {"NAD", 2, NULL},           {"NGN", 2, NULL},       {"NOK", 2, NULL},
    {"NPR", 2, NULL},           {"NZD", 2, NULL},       {"OMR", 3, NULL},
    {"PEN", 2, NULL},           {"PGK", 2, NULL},       {"PHP", 2, NULL},
    {"PKR", 2, NULL},           {"PLN", 2, NULL},       {"PYG", 0, NULL},
    {"QAR", 2, NULL},           {"RON", 2, NULL},       {"RSD", 2, NULL},
    {"RUB", 2, NULL},           {"RWF", 0, NULL},       {"SAR", 2, NULL},
    {"SEK", 2, NULL},           {"SGD", 2, NULL},       {"SOS", 2, NULL},
    {"SYP", 2, NULL},           {"THB", 2, NULL},       {"TND", 3, NULL},
    {"TRY", 2, NULL},           {"TWD", 2, NULL},       {"TZS", 2, NULL},
    {"UAH", 2, NULL},           {"UGX", 0, NULL},       {"USD", 2, "$"},
    {"UZS", 2, NULL},           {"VND", 0, NULL},       {"VUV", 0, NULL},
    {"XAF", 0, NULL},           {"XOF", 0, NULL},       {"XPF", 0, NULL},
    {"YER", 2, NULL},           {"ZAR", 2, NULL},       {"ZMW", 2, NULL},
};

int erpq_currency_lookup(const char *code, erpq_currency *out, char *err, size_t errlen) {
  if (!code || strlen(code) != 3 || !isalpha((unsigned char)code[0]) ||
      !isalpha((unsigned char)code[1]) || !isalpha((unsigned char)code[2]))
    return erpq_fail(err, errlen, -EINVAL, "currency must be a three-letter ISO 4217 code");
  memset(out, 0, sizeof *out);
  for (int i = 0; i < 3; i++)
    out->code[i] = (char)toupper((unsigned char)code[i]);
  out->exponent = 2;
  const char *sym = NULL;
  size_t lo = 0, hi = sizeof CURRENCIES / sizeof CURRENCIES[0];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(out->code, CURRENCIES[mid].code);
    if (c == 0) {
      out->exponent = CURRENCIES[mid].exponent;
      sym = CURRENCIES[mid].symbol;
      out->known = 1;
      break;
    }
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (sym) {
    snprintf(out->symbol, sizeof out->symbol, "%s", sym);
  } else {
    memcpy(out->symbol, out->code, sizeof out->code);
    out->symbol_is_code = 1;
  }
  return 0;
}

int erpq_money_indian_grouping(const char *locale) {
  if (!locale || !*locale)
    return 0;
  char lang[4] = {0}, region[4] = {0};
  size_t i = 0;
  while (locale[i] && locale[i] != '-' && locale[i] != '_') {
    if (i >= 3)
      return 0;
    lang[i] = (char)tolower((unsigned char)locale[i]);
    i++;
  }
  if (locale[i]) {
    const char *r = locale + i + 1;
    size_t n = 0;
    while (r[n] && r[n] != '-' && r[n] != '_' && n < 3) {
      region[n] = (char)toupper((unsigned char)r[n]);
      n++;
    }
  }
  static const char *const INDIAN_LANGS[] = {"hi", "bn", "gu", "pa", "ta", "te", "ne", "as"};
  for (size_t k = 0; k < sizeof INDIAN_LANGS / sizeof INDIAN_LANGS[0]; k++)
    if (strcmp(lang, INDIAN_LANGS[k]) == 0)
      return 1;
  return strcmp(lang, "en") == 0 && strcmp(region, "IN") == 0;
}

static const uint64_t POW10[] = {1, 10, 100, 1000};

/* Magnitude of v as uint64 (INT64_MIN included). */
static uint64_t magnitude(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* Writes the decimal digits of u (at least one) into out; returns count. */
static size_t digits(uint64_t u, char *out) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

static int clamp_exp(int exponent) { return exponent < 0 ? 0 : exponent > 3 ? 3 : exponent; }

/* Writes the fractional part ('.' and exactly exp digits) of frac. */
static size_t fraction(uint64_t frac, int exp, char *out) {
  if (exp == 0)
    return 0;
  out[0] = '.';
  for (int i = exp; i >= 1; i--) {
    out[i] = (char)('0' + frac % 10);
    frac /= 10;
  }
  return (size_t)exp + 1;
}

size_t erpq_money_plain(int64_t minor, int exponent, char *out) {
  int exp = clamp_exp(exponent);
  uint64_t mag = magnitude(minor);
  size_t n = 0;
  if (minor < 0)
    out[n++] = '-';
  n += digits(mag / POW10[exp], out + n);
  n += fraction(mag % POW10[exp], exp, out + n);
  out[n] = '\0';
  return n;
}

size_t erpq_money_display(int64_t minor, const erpq_currency *cur, int indian, char *out) {
  int exp = clamp_exp(cur->exponent);
  uint64_t mag = magnitude(minor);
  char d[24];
  size_t nd = digits(mag / POW10[exp], d);
  size_t n = 0;
  if (minor < 0)
    out[n++] = '-';
  size_t sl = strlen(cur->symbol);
  if (sl > 8)
    sl = 8;
  memcpy(out + n, cur->symbol, sl);
  n += sl;
  if (cur->symbol_is_code)
    out[n++] = ' ';
  /* Position of each separator, counted from the right end of the integer
   * digits: Western every 3; Indian after 3, then every 2. */
  for (size_t i = 0; i < nd; i++) {
    size_t left = nd - i; /* digits from here to the end, this one included */
    if (i > 0) {
      int sep = indian ? (left == 3 || (left > 3 && (left - 3) % 2 == 0)) : (left % 3 == 0);
      if (sep)
        out[n++] = ',';
    }
    out[n++] = d[i];
  }
  n += fraction(mag % POW10[exp], exp, out + n);
  out[n] = '\0';
  return n;
}

int erpq_money_to_double(int64_t minor, int exponent, double *out) {
  if (minor <= -ERPQ_MONEY_DOUBLE_LIMIT || minor >= ERPQ_MONEY_DOUBLE_LIMIT)
    return -ERANGE;
  int exp = clamp_exp(exponent);
  /* The only floating-point operation on money in erpq: see the header. */
  *out = (double)minor / (double)POW10[exp];
  return 0;
}

void erpq_money_xlsx_format(const erpq_currency *cur, char out[64]) {
  static const char *const DEC[] = {"", ".0", ".00", ".000"};
  const char *dec = DEC[clamp_exp(cur->exponent)];
  if (strcmp(cur->code, "INR") == 0) {
    /* LCID 0x4009 is en-IN: the format is tied to that locale. */
    snprintf(out, 64, "[$\xe2\x82\xb9-4009] #,##,##0%s", dec);
  } else if (cur->symbol_is_code) {
    snprintf(out, 64, "\"%s \"#,##0%s", cur->code, dec);
  } else {
    snprintf(out, 64, "\"%s\"#,##0%s", cur->symbol, dec);
  }
}
