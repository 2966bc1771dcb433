"""Checks erpq's money text against Babel (CLDR) and Decimal.

usage: check_money.py CASES.json
CASES.json: {"currencies": [{code, exponent}], "cases": [{minor, code,
locale, plain, display, symbol}]} as produced by test_money.c.
"""
import sys

from babel import Locale
from babel.numbers import get_currency_symbol

from report_common import check, fail, finish, grouped, iso_exponent, load, plain_money


def indian(locale):
    """Whether CLDR groups this locale's currency amounts the Indian way."""
    if not locale:
        return False
    loc = Locale.parse(locale.replace("-", "_"))
    return "#,##,##0" in loc.currency_formats["standard"].pattern


def symbol(code):
    """A one-character, non-letter English symbol (₹ $ € £ ¥), else the code."""
    s = get_currency_symbol(code, "en")
    return s if len(s) == 1 and not s.isalpha() else code


def main():
    doc = load(sys.argv[1])
    for c in doc["currencies"]:
        want = iso_exponent(c["code"])
        check(c["exponent"] == want, f"{c['code']}: exponent {c['exponent']}, ISO 4217 says {want}")
    # Locales whose rule differs from CLDR would show up here.
    for case in doc["cases"]:
        code, minor = case["code"], case["minor"]
        exp = iso_exponent(code)
        where = f"{minor} {code} {case['locale']!r}"
        check(case["plain"] == plain_money(minor, exp), f"{where}: plain {case['plain']!r}")
        sym = symbol(code)
        check(case["symbol"] == sym, f"{where}: symbol {case['symbol']!r}, wanted {sym!r}")
        want = ("-" if minor < 0 else "") + sym + (" " if sym == code else "") + \
            grouped(minor, exp, indian(case["locale"]))
        check(case["display"] == want, f"{where}: display {case['display']!r}, wanted {want!r}")
    finish("check_money")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        fail(f"{type(e).__name__}: {e}")
        finish("check_money")
