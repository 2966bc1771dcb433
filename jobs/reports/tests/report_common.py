"""Shared helpers of the report checkers (check_*.py).

The checkers compute what an output must contain from the INPUT the C
test recorded (columns, currency, cells) with Python's own tools: Decimal
for money, Babel (CLDR) for currency precision and digit grouping, the
csv module, openpyxl, poppler. Nothing here imports or mirrors erpq code.
"""
import base64
import json
import sys
from decimal import Decimal

from babel.numbers import format_decimal, get_currency_precision

# ISO 4217 minor units where CLDR (Babel) shows other digits: CLDR's
# "digits" are what is shown, ISO's "minor unit" is what amounts are
# stored in. Values from the ISO 4217 list.
ISO_DIFFERS_FROM_CLDR = {
    "AFN": 2, "ALL": 2, "IQD": 3, "IRR": 2, "LAK": 2, "LBP": 2, "MGA": 2,
    "MMK": 2, "RSD": 2, "SOS": 2, "SYP": 2, "YER": 2,
}

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    if len(FAILURES) <= 30:
        print("FAIL:", msg, file=sys.stderr)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def finish(name):
    if FAILURES:
        print(f"{name}: {len(FAILURES)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: ok", file=sys.stderr)
    sys.exit(0)


def iso_exponent(code):
    if code in ISO_DIFFERS_FROM_CLDR:
        return ISO_DIFFERS_FROM_CLDR[code]
    return get_currency_precision(code)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def text_value(v):
    """The text a TEXT cell must come back as: ill-formed UTF-8 repaired the
    standard way (one U+FFFD per maximal subpart)."""
    if isinstance(v, dict):
        return base64.b64decode(v["b64"]).decode("utf-8", errors="replace")
    return v


def money(minor, exp):
    return Decimal(minor).scaleb(-exp)


def plain_money(minor, exp):
    """1234.50 / -0.05 / 7 : Decimal's own fixed-point text."""
    return format(money(minor, exp), "f") if exp else str(minor)


def grouped(minor, exp, indian):
    """Digits grouped the CLDR way (Babel), magnitude only."""
    pattern = ("#,##,##0" if indian else "#,##0") + ("." + "0" * exp if exp else "")
    return format_decimal(abs(money(minor, exp)), format=pattern, locale="en_IN" if indian else "en_US")


def header_title(col, currency):
    return f"{col['title']} ({currency})" if col["type"] == "MONEY" else col["title"]


def expected_totals(doc):
    """[(label, {col: Decimal or int})] for the doc's total lines, summed
    here from the recorded rows."""
    cols = doc["columns"]
    exp = iso_exponent(doc["currency"])
    out = []
    for t in doc["totals"]:
        sums = {}
        for c, col in enumerate(cols):
            if not col["sum"]:
                continue
            s = 0
            for row in doc["rows"]:
                if t["group_col"] >= 0:
                    g = row[t["group_col"]]
                    g = "" if g is None else text_value(g)
                    if g != t["group_value"]:
                        continue
                if row[c] is not None:
                    s += row[c]
            sums[c] = money(s, exp) if col["type"] == "MONEY" else s
        for c, v in t.get("values", {}).items():  # given by the caller (not summed)
            c = int(c)
            sums[c] = money(v, exp) if cols[c]["type"] == "MONEY" else v
        out.append((t["label"], sums))
    return out
