#!/usr/bin/python3
"""Reads a report job's file back with tools that are not ours and prints
a JSON summary for the C tests (test_reports_jobs.c, test_reports_faults.c)
to compare with their own SQL:

  read_report.py FORMAT FILE KIND [--find TEXT]...

FORMAT csv|xlsx|pdf, KIND fee-collection|defaulters|fee-statement.
Output: {"header": [...], "rows": N, "sums": {title: minor}, "totals":
{label: {title: minor}}, "found": {TEXT: {"cells": n, "sample": value,
"type": t}}, "sheets": n, "pages": n}

- CSV: Python's csv module (utf-8-sig: the BOM is checked and removed);
  data rows end at the first empty line, total lines follow.
- XLSX: openpyxl (python3-openpyxl): every sheet's rows under its header;
  numbers as the exact Decimal of the stored double; a cell's data type
  ('s' text, 'n' number, 'd' date, 'f' formula) is reported for --find.
- PDF: poppler's pdftotext -layout: data lines recognised by their first
  column (a date, or an admission number), amounts as shown ("₹1,234.50").
Money columns are those whose title ends with "(XYZ)" (ISO 4217); minor
units use the currency's ISO exponent (Babel, python3-babel).
"""
import csv
import json
import re
import subprocess
import sys
from decimal import Decimal

sys.path.insert(0, __import__("os").path.dirname(__file__))
from report_common import iso_exponent  # noqa: E402

MONEY_TITLE = re.compile(r"\(([A-Z]{3})\)$")
AMOUNT = re.compile(r"-?(?:\u20b9|\$|\u20ac|\u00a3|\u00a5|[A-Z]{3} )[\d,]+(?:\.\d+)?")


def minor(text, exp):
    return int(Decimal(text) * (Decimal(10) ** exp))


def money_cols(header):
    out = {}
    for i, t in enumerate(header):
        m = MONEY_TITLE.search(t or "")
        if m:
            out[i] = iso_exponent(m.group(1))
    return out


INT_TITLES = {"Overdue fees", "Days overdue"}


class Summary:
    def __init__(self, finds):
        self.header = []
        self.rows = 0
        self.sums = {}
        self.totals = {}
        self.found = {f: {"cells": 0, "sample": None, "type": None, "row": None} for f in finds}
        self.row = None  # the data row being read (its cells as text)
        self.sheets = 0
        self.pages = 0
        self.formulas = []

    def see_text(self, value, typ):
        if not isinstance(value, str):
            return
        for f, rec in self.found.items():
            if f in value:
                rec["cells"] += 1
                if rec["sample"] is None:
                    rec["sample"], rec["type"], rec["row"] = value, typ, self.row

    def add(self, title, v):
        self.sums[title] = self.sums.get(title, 0) + v

    def dump(self):
        return json.dumps({"header": self.header, "rows": self.rows, "sums": self.sums,
                           "totals": self.totals, "found": self.found, "sheets": self.sheets,
                           "pages": self.pages, "formulas": self.formulas}, ensure_ascii=False)


def read_csv(path, s):
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(b"\xef\xbb\xbf"):
        raise SystemExit("CSV without a UTF-8 BOM")
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(text.splitlines(keepends=True)))
    s.header = rows[0]
    mc = money_cols(s.header)
    in_totals = False
    for r in rows[1:]:
        if not r or all(c == "" for c in r):
            in_totals = True
            continue
        if in_totals:
            t = {}
            for i, c in enumerate(r):
                if i in mc and c != "":
                    t[s.header[i]] = minor(c, mc[i])
                elif s.header[i] in INT_TITLES and c != "":
                    t[s.header[i]] = int(c)
            s.totals[r[0]] = t
            continue
        s.rows += 1
        s.row = r
        for i, c in enumerate(r):
            if i in mc and c != "":
                s.add(s.header[i], minor(c, mc[i]))
            elif s.header[i] in INT_TITLES and c != "":
                s.add(s.header[i], int(c))
            else:
                s.see_text(c, "csv")


def read_xlsx(path, s):
    import openpyxl
    wb = openpyxl.load_workbook(path, data_only=False)
    cached = openpyxl.load_workbook(path, data_only=True)
    s.sheets = len(wb.worksheets)
    for ws in wb.worksheets:
        wsv = cached[ws.title]
        it = ws.iter_rows()
        head = [c.value for c in next(it)]
        if not s.header:
            s.header = head
        mc = money_cols(head)
        in_totals = False
        for row in it:
            vals = [c.value for c in row]
            if all(v is None for v in vals):
                in_totals = True
                continue
            if in_totals:
                t = {}
                for i, c in enumerate(row):
                    if i in mc or head[i] in INT_TITLES:
                        v = wsv.cell(row=c.row, column=c.column).value
                        if c.data_type == "f":
                            s.formulas.append(head[i])
                        if isinstance(v, (int, float)):
                            t[head[i]] = minor(repr(v), mc.get(i, 0))
                s.totals[vals[0]] = t
                continue
            s.rows += 1
            s.row = ["" if v is None else str(v) for v in vals]
            for i, c in enumerate(row):
                if i in mc and c.value is not None:
                    if not isinstance(c.value, (int, float)):
                        raise SystemExit(f"money cell {c.coordinate} is not a number")
                    s.add(head[i], minor(repr(c.value), mc[i]))
                elif head[i] in INT_TITLES and c.value is not None:
                    s.add(head[i], int(c.value))
                else:
                    s.see_text(c.value, c.data_type)


def pdf_amount(text, exp):
    neg = text.startswith("-")
    digits = re.sub(r"[^\d.]", "", text)
    v = minor(digits, exp)
    return -v if neg else v


def read_pdf(path, kind, s):
    info = subprocess.run(["pdfinfo", path], capture_output=True, text=True, check=True).stdout
    s.pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    text = subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True, text=True,
                          check=True).stdout
    head_line = None
    exp = 2
    first = {"fee-collection": re.compile(r"^\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}"),
             "defaulters": re.compile(r"^\s*A\d{6}\s"),
             "fee-statement": re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s")}[kind]
    labels = re.compile(r"^\s*(Grand total|Total \([^)]*\)|Total|Closing balance)\s{2,}")
    for line in text.splitlines():
        m = re.search(r"\(([A-Z]{3})\)", line)
        if head_line is None and m:
            head_line = line
            exp = iso_exponent(m.group(1))
        amounts = AMOUNT.findall(line)
        lm = labels.match(line)
        if lm:
            s.totals[lm.group(1)] = {"last": pdf_amount(amounts[-1], exp)} if amounts else {}
            continue
        if first.match(line):
            s.rows += 1
            if amounts and kind != "fee-statement":
                s.add("last", pdf_amount(amounts[-1], exp))
        s.row = [line]
        s.see_text(line, "pdf")
    s.header = re.split(r"\s{2,}", head_line.strip()) if head_line else []


def main():
    fmt, path, kind = sys.argv[1:4]
    finds = []
    args = sys.argv[4:]
    while args:
        if args[0] == "--find":
            finds.append(args[1])
            args = args[2:]
        else:
            raise SystemExit(f"unknown argument {args[0]}")
    s = Summary(finds)
    {"csv": lambda: read_csv(path, s), "xlsx": lambda: read_xlsx(path, s),
     "pdf": lambda: read_pdf(path, kind, s)}[fmt]()
    print(s.dump())


if __name__ == "__main__":
    main()
