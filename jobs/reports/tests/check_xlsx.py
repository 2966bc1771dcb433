"""Reads an XLSX report back with openpyxl (Debian python3-openpyxl) and
checks it against the input the C test recorded.

usage: check_xlsx.py INPUT.json OUTPUT.xlsx ROWS_PER_SHEET
       check_xlsx.py --big OUTPUT.xlsx NROWS ROWS_PER_SHEET GRAND_TOTAL_MINOR
The --big form checks the sheet split of a very large file cheaply (read-only
mode: dimensions, the sheets' headers, the totals) without the input.
"""
import datetime
import math
import re
import sys
from decimal import Decimal

import openpyxl
from openpyxl.utils import get_column_letter

from report_common import (check, expected_totals, fail, finish, header_title, iso_exponent,
                           load, money, text_value)

MONEY_FORMATS = {  # the formats the task asks for, per currency
    "INR": "[$\u20b9-4009] #,##,##0.00",
    "USD": '"$"#,##0.00',
    "KWD": '"KWD "#,##0.000',
    "JPY": '"\u00a5"#,##0',
}

RANGE = r"'((?:[^']|'')+)'!\$([A-Z]+)\$(\d+):\$([A-Z]+)\$(\d+)"


def xstring(s):
    """Decodes the _xHHHH_ escapes of OOXML's ST_Xstring (ECMA-376 Part 1,
    22.9.2.19), which Excel decodes and openpyxl 3.0 does not: libxlsxwriter
    writes control characters (CR, TAB...) that way."""
    if not isinstance(s, str):
        return s
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), s)


def num(v):
    """A cell's number as the exact Decimal of its shortest repr."""
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def cells(wb, m):
    sheet, c1, r1, c2, r2 = m
    ws = wb[sheet.replace("''", "'")]
    check(c1 == c2, f"range over several columns: {m}")
    col = openpyxl.utils.column_index_from_string(c1)
    return [r[0] for r in ws.iter_rows(min_row=int(r1), max_row=int(r2), min_col=col,
                                       max_col=col, values_only=True)]


def evaluate(formula, wbv):
    """Evaluates the two formula shapes the writer may produce, over the
    cached workbook values: =SUM(ranges) and sums of
    SUMPRODUCT(--EXACT(range,"text"),range)."""
    if formula.startswith("=SUM("):
        total = Decimal(0)
        for m in re.findall(RANGE, formula):
            total += sum(num(v) for v in cells(wbv, m) if isinstance(v, (int, float)))
        return total
    term = re.compile(r'SUMPRODUCT\(--EXACT\(' + RANGE + r',"((?:[^"]|"")*)"\),' + RANGE + r'\)')
    check(formula.startswith("=SUMPRODUCT("), f"unexpected formula {formula!r}")
    total = Decimal(0)
    rest = formula[1:]
    for m in term.finditer(rest):
        g = m.groups()
        keys = cells(wbv, g[0:5])
        lit = g[5].replace('""', '"')
        vals = cells(wbv, g[6:11])
        for k, v in zip(keys, vals):
            if (k if k is not None else "") == lit and isinstance(v, (int, float)):
                total += num(v)
    check(term.sub("", rest).replace("+", "") == "", f"unparsed formula parts: {formula!r}")
    return total


def check_sheet_frame(ws, cols, cur, data_rows):
    last = get_column_letter(len(cols))
    head = [c.value for c in ws[1]]
    check(head == [header_title(c, cur) for c in cols], f"{ws.title}: header {head!r}")
    check(all(c.font.b for c in ws[1]), f"{ws.title}: header not bold")
    check(ws.freeze_panes == "A2", f"{ws.title}: freeze panes {ws.freeze_panes!r}")
    check(ws.auto_filter.ref == f"A1:{last}{data_rows + 1}",
          f"{ws.title}: autofilter {ws.auto_filter.ref!r}, wanted A1:{last}{data_rows + 1}")


def main_small():
    doc = load(sys.argv[1])
    path, rps = sys.argv[2], int(sys.argv[3])
    cols, cur = doc["columns"], doc["currency"]
    exp = iso_exponent(cur)
    rows = doc["rows"]
    wb = openpyxl.load_workbook(path)
    wbv = openpyxl.load_workbook(path, data_only=True)
    nsheets = max(1, math.ceil(len(rows) / rps))
    names = ["Report"] + [f"Report ({i})" for i in range(2, nsheets + 1)]
    check(wb.sheetnames == names, f"sheets {wb.sheetnames}, wanted {names}")
    check(wb.properties.title == doc["title"], f"title property {wb.properties.title!r}")

    longest = [len(header_title(c, cur)) for c in cols]
    for s, name in enumerate(names):
        ws = wb[name]
        chunk = rows[s * rps:(s + 1) * rps]
        check_sheet_frame(ws, cols, cur, len(chunk))
        for i, row in enumerate(chunk):
            r = i + 2
            for c, (col, v) in enumerate(zip(cols, row)):
                cell = ws.cell(row=r, column=c + 1)
                got, where = cell.value, f"{name}!{cell.coordinate}"
                if v is None:
                    check(got is None, f"{where}: {got!r} for an empty cell")
                elif col["type"] == "TEXT":
                    want = text_value(v)
                    got = xstring(got)
                    check(got == want, f"{where}: {got!r} != {want!r}")
                    longest[c] = max(longest[c], len(want))
                elif col["type"] == "INT":
                    check(type(got) is int and got == v, f"{where}: {got!r} != {v}")
                elif col["type"] == "MONEY":
                    ok = isinstance(got, (int, float)) and num(got) == money(v, exp)
                    check(ok, f"{where}: {got!r} is not {money(v, exp)}")
                    check(cell.number_format == MONEY_FORMATS.get(cur, cell.number_format),
                          f"{where}: number format {cell.number_format!r}")
                else:
                    want = datetime.datetime(*v)
                    ok = isinstance(got, datetime.datetime) and abs(got - want) < datetime.timedelta(milliseconds=1)
                    check(ok, f"{where}: {got!r} != {want}")
                    fmt = "yyyy-mm-dd" if col["type"] == "DATE" else "yyyy-mm-dd hh:mm:ss"
                    check(cell.number_format == fmt, f"{where}: number format {cell.number_format!r}")
        # Widths: set on every column and wide enough for the longest text.
        for c in range(len(cols)):
            letter = get_column_letter(c + 1)
            dim = ws.column_dimensions.get(letter)
            width = dim.width if dim is not None else None
            check(width is not None and width >= min(longest[c], 78),
                  f"{name}: column {letter} width {width}, longest text {longest[c]}")

    # Totals: on the last sheet, after one empty row.
    totals = expected_totals(doc)
    ws, wsv = wb[names[-1]], wbv[names[-1]]
    r = len(rows) - (nsheets - 1) * rps + 2
    check(all(c.value is None for c in ws[r]), f"row {r} before the totals is not empty")
    for k, (label, sums) in enumerate(totals):
        rr = r + 1 + k
        check(ws.cell(rr, 1).value == label, f"total label {ws.cell(rr, 1).value!r} != {label!r}")
        check(ws.cell(rr, 1).font.b, f"total label {label!r} not bold")
        for c, want in sums.items():
            f = ws.cell(rr, c + 1).value
            cached = wsv.cell(rr, c + 1).value
            where = f"total {label!r} col {cols[c]['title']}"
            if not rows:  # nothing to sum over: a plain 0
                check(f == 0 and cached == 0, f"{where}: {f!r} with no rows")
                continue
            if not check(isinstance(f, str) and f.startswith("="), f"{where}: not a formula: {f!r}"):
                continue
            check(cached is not None and num(cached) == want,
                  f"{where}: cached value {cached!r}, exact sum {want}")
            got = evaluate(f, wbv)
            check(got == want, f"{where}: formula {f[:120]!r} sums to {got}, not {want}")
    finish("check_xlsx")


def main_big():
    path, nrows, rps, grand = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    wb = openpyxl.load_workbook(path, read_only=True)
    nsheets = max(1, math.ceil(nrows / rps))
    names = ["Report"] + [f"Report ({i})" for i in range(2, nsheets + 1)]
    check(wb.sheetnames == names, f"sheets {wb.sheetnames}, wanted {names}")
    for s, name in enumerate(names):
        ws = wb[name]
        data = min(rps, nrows - s * rps)
        extra = 7 if s == nsheets - 1 else 0  # empty row + 6 total lines
        check(ws.max_row == data + 1 + extra, f"{name}: {ws.max_row} rows, wanted {data + 1 + extra}")
    last = wb[names[-1]]
    rows = list(last.iter_rows(values_only=True))
    check(rows[0][0] == "Paid at", f"{names[-1]}: header {rows[0]!r}")
    grand_row = rows[-1]
    check(grand_row[0] == "Grand total", f"last line {grand_row!r}")
    wbv = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cached = list(wbv[names[-1]].iter_rows(values_only=True))[-1][8]
    check(num(cached) == money(grand, 2), f"grand total cached {cached!r}, wanted {money(grand, 2)}")
    f = grand_row[8]
    want = "=SUM(" + ",".join(
        f"'{n}'!$I$2:$I${min(rps, nrows - i * rps) + 1}" for i, n in enumerate(names)) + ")"
    check(f == want, f"grand total formula {f!r}, wanted {want!r}")
    finish("check_xlsx --big")


if __name__ == "__main__":
    try:
        main_big() if sys.argv[1] == "--big" else main_small()
    except Exception as e:
        fail(f"{type(e).__name__}: {e}")
        finish("check_xlsx")
