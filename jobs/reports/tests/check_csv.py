"""Reads a CSV report back with Python's csv module and checks it against
the input the C test recorded.

usage: check_csv.py INPUT.json OUTPUT.csv bom|nobom
"""
import csv
import io
import re
import sys
from decimal import Decimal

from report_common import (check, expected_totals, fail, finish, header_title, iso_exponent,
                           load, money, text_value)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def expected_text(s):
    return "'" + s if s.startswith(FORMULA_START) else s


def main():
    doc = load(sys.argv[1])
    raw = open(sys.argv[2], "rb").read()
    want_bom = sys.argv[3] == "bom"
    cols = doc["columns"]
    cur = doc["currency"]
    exp = iso_exponent(cur)

    bom = raw.startswith(b"\xef\xbb\xbf")
    check(bom == want_bom, f"BOM present={bom}, wanted {want_bom}")
    text = raw.decode("utf-8-sig" if bom else "utf-8")  # strict: must be UTF-8
    # Every record ends in CRLF: no bare LF outside quoted fields. Quoted
    # fields here only hold LF/CRLF inside names; strip them and look.
    outside = re.sub(r'"(?:[^"]|"")*"', '""', text)
    check("\n" not in outside.replace("\r\n", ""), "a line ends in a bare LF")
    check(outside.endswith("\r\n"), "the file does not end in CRLF")

    records = list(csv.reader(io.StringIO(text, newline="")))
    header = records[0]
    check(header == [header_title(c, cur) for c in cols], f"header {header!r}")
    nrows = len(doc["rows"])
    data = records[1:1 + nrows]
    check(len(data) == nrows, f"{len(data)} data records, wanted {nrows}")
    money_re = re.compile(r"^-?\d+\.\d{%d}$" % exp if exp else r"^-?\d+$")
    for i, (row, rec) in enumerate(zip(doc["rows"], data)):
        if not check(len(rec) == len(cols), f"row {i + 1}: {len(rec)} fields"):
            continue
        for c, (col, v, got) in enumerate(zip(cols, row, rec)):
            where = f"row {i + 1} col {col['title']}"
            if v is None:
                check(got == "", f"{where}: {got!r} for an empty cell")
            elif col["type"] == "TEXT":
                check(got == expected_text(text_value(v)), f"{where}: {got!r} != {text_value(v)!r}")
            elif col["type"] == "INT":
                check(got == str(v), f"{where}: {got!r} != {v}")
            elif col["type"] == "MONEY":
                check(bool(money_re.match(got)) and Decimal(got) == money(v, exp),
                      f"{where}: {got!r} is not {money(v, exp)}")
            elif col["type"] == "DATE":
                check(got == "%04d-%02d-%02d" % tuple(v), f"{where}: {got!r}")
            elif col["type"] == "DATETIME":
                check(got == "%04d-%02d-%02d %02d:%02d:%02d" % tuple(v), f"{where}: {got!r}")

    rest = records[1 + nrows:]
    totals = expected_totals(doc)
    if totals:
        check(rest and rest[0] == [], f"no empty record before the totals: {rest[:1]!r}")
        lines = rest[1:]
        check(len(lines) == len(totals), f"{len(lines)} total lines, wanted {len(totals)}")
        for (label, sums), rec in zip(totals, lines):
            check(rec[0] == expected_text(label), f"total label {rec[0]!r} != {label!r}")
            for c, s in sums.items():
                got = rec[c]
                ok = Decimal(got) == s if cols[c]["type"] == "MONEY" else got == str(s)
                check(ok, f"total {label!r} col {cols[c]['title']}: {got!r} != {s}")
    else:
        check(rest == [], f"unexpected records after the data: {rest[:2]!r}")
    finish("check_csv")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure with its reason
        fail(f"{type(e).__name__}: {e}")
        finish("check_csv")
