#!/usr/bin/python3
"""Reference side of test_notify_util: what Debian's python3-babel and the
Python stdlib say, for the money texts and unsubscribe tokens our C code
makes. Reads JSON on stdin, prints JSON.

  money:  {"money": [[minor, "INR"], ...]} -> {"money": ["Rs 12,34,567.50", ...]}
          INR uses en_IN digit grouping (lakh, crore) and the "Rs" symbol;
          any other currency en_US grouping and its ISO code; the number of
          decimals is Babel's currency precision (ISO 4217 minor units).
  token:  {"token": [[secret, school, student, channel], ...]} ->
          {"token": [base64url(HMAC-SHA256(secret, "v1:s:u:c")[:16]), ...]}
"""
import base64
import hashlib
import hmac
import json
import sys
from decimal import Decimal

from babel.numbers import format_decimal, get_currency_precision


def money(minor, cur):
    digits = get_currency_precision(cur)
    value = Decimal(minor).scaleb(-digits)
    pattern = ("#,##,##0" if cur == "INR" else "#,##0") + ("." + "0" * digits if digits else "")
    text = format_decimal(abs(value), format=pattern, locale="en_IN" if cur == "INR" else "en_US",
                          decimal_quantization=True)
    sym = "Rs" if cur == "INR" else cur
    return ("-" if value < 0 else "") + sym + " " + text


def token(secret, school, student, channel):
    msg = "v1:%d:%d:%s" % (school, student, channel)
    mac = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def main():
    req = json.load(sys.stdin)
    out = {}
    if "money" in req:
        out["money"] = [money(m, c) for m, c in req["money"]]
    if "token" in req:
        out["token"] = [token(*t) for t in req["token"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
