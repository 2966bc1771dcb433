"""Reads a PDF report back with poppler-utils (pdftotext -layout, pdfinfo)
and checks it against the input the C test recorded.

usage: check_pdf.py INPUT.json OUTPUT.pdf UNDRAWABLE portrait|landscape

UNDRAWABLE is the writer's stats.undrawable; this script counts on its own
(fontTools reads DejaVu Sans's cmap; Unicode character names tell the
scripts libharu cannot shape) how many characters cannot be drawn, and
checks that they come out as '?'.
"""
import re
import subprocess
import sys
import unicodedata

from babel import Locale
from fontTools.ttLib import TTFont

from report_common import (check, expected_totals, fail, finish, grouped, header_title,
                           iso_exponent, load, text_value)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SHAPED = ("ARABIC", "HEBREW", "SYRIAC", "THAANA", "NKO", "DEVANAGARI", "BENGALI", "GURMUKHI",
          "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "THAI",
          "LAO", "TIBETAN", "MYANMAR", "KHMER", "MONGOLIAN", "SAMARITAN", "MANDAIC")
SYMBOLS = {"INR": "\u20b9", "USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5"}


class Drawable:
    def __init__(self, path):
        self.cmap = TTFont(path).getBestCmap()

    def ok(self, ch):
        cp = ord(ch)
        if cp > 0xFFFF or cp == 0xFFFD or cp not in self.cmap:
            return False
        name = unicodedata.name(ch, "")
        if name.startswith(SHAPED) or unicodedata.bidirectional(ch) in ("R", "AL"):
            return False
        return True

    def render(self, s):
        """The text as it must be drawn, and how many characters became '?'."""
        out, bad = [], 0
        for ch in s:
            if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
                out.append(" ")
            elif self.ok(ch):
                out.append(ch)
            else:
                out.append("?")
                bad += 1
        return "".join(out), bad


def squash(s):
    return re.sub(r"\s+", " ", s).strip()


def display(minor, cur, indian):
    exp = iso_exponent(cur)
    sym = SYMBOLS.get(cur, cur + " ")
    return ("-" if minor < 0 else "") + sym + grouped(minor, exp, indian)


def main():
    doc = load(sys.argv[1])
    pdf, undrawable, orient = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cols, cur, rows = doc["columns"], doc["currency"], doc["rows"]
    loc = doc.get("locale") or "en"
    indian = "#,##,##0" in Locale.parse(loc.replace("-", "_")).currency_formats["standard"].pattern
    reg, bold = Drawable(FONT), Drawable(BOLD)

    info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True, check=True).stdout
    npages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    w, h = map(float, re.search(r"^Page size:\s+([\d.]+) x ([\d.]+)", info, re.M).groups())
    check((w > h) == (orient == "landscape"), f"page size {w} x {h}, wanted {orient}")
    text = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", pdf, "-"],
                          capture_output=True, text=True, check=True).stdout
    pages = text.split("\f")
    if pages and pages[-1].strip() == "":
        pages.pop()
    check(len(pages) == npages, f"pdftotext found {len(pages)} pages, pdfinfo {npages}")

    for i, page in enumerate(pages, 1):
        flat = squash(page)
        check(f"Page {i} of {npages}" in page, f"page {i}: no 'Page {i} of {npages}'")
        for what in ("school", "title", "period", "generated"):
            check(squash(doc[what]) in flat, f"page {i}: {what} {doc[what]!r} missing")
        head = squash(" ".join(header_title(c, cur) for c in cols))
        check(head in flat, f"page {i}: column header row missing")

    # Data rows: each on one line, identified by its first TEXT cell (unique).
    lines = [squash(l) for p in pages for l in p.splitlines()]
    key = next(c for c, col in enumerate(cols) if col["type"] == "TEXT")
    expected_bad = 0
    for n, row in enumerate(rows, 1):
        found = [l for l in lines if row[key] is not None and f" {row[key]} " in f" {l} "]
        if not check(len(found) == 1, f"row {n}: {len(found)} lines hold {row[key]!r}"):
            continue
        line = found[0]
        for c, (col, v) in enumerate(zip(cols, row)):
            if v is None:
                continue
            if col["type"] == "TEXT":
                drawn, bad = reg.render(text_value(v))
                expected_bad += bad
                drawn = squash(drawn)
                # A long cell ends in an ellipsis: its start must be there.
                check(drawn in line or (drawn[:12] in line and "\u2026" in line),
                      f"row {n} col {col['title']}: {drawn!r} not in {line!r}")
            elif col["type"] == "MONEY":
                d = display(v, cur, indian)
                check(d in line, f"row {n}: amount {d!r} not in {line!r}")
            elif col["type"] == "INT":
                check(f" {v} " in f" {line} ", f"row {n}: {v} not in {line!r}")
            elif col["type"] == "DATE":
                check("%04d-%02d-%02d" % tuple(v) in line, f"row {n}: date not in {line!r}")
            else:
                check("%04d-%02d-%02d %02d:%02d:%02d" % tuple(v) in line,
                      f"row {n}: date-time not in {line!r}")

    # Totals: label and value on one line, on the last page.
    last = [squash(l) for l in pages[-1].splitlines()]
    for label, sums in expected_totals(doc):
        drawn, bad = bold.render(label)
        expected_bad += bad
        found = [l for l in last if l.startswith(squash(drawn))]
        if not check(found, f"total line {label!r} missing on the last page"):
            continue
        for c, s in sums.items():
            want = display(int(s.scaleb(iso_exponent(cur))), cur, indian) \
                if cols[c]["type"] == "MONEY" else str(s)
            check(want in found[0], f"total {label!r}: {want!r} not in {found[0]!r}")

    check(undrawable == expected_bad,
          f"writer counted {undrawable} undrawable characters, fontTools says {expected_bad}")
    finish("check_pdf")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        fail(f"{type(e).__name__}: {e}")
        finish("check_pdf")
