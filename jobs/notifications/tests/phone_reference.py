#!/usr/bin/python3
"""Reference side of test_notify_addr (run with Debian's /usr/bin/python3).

argv[1]: e164_cases.tsv (the hand-written table the C test also checks).
stdin:   {"trunk": {"<cc>": "<prefix>"}, "emails": ["accepted address", ...]}
         (what erpq_e164_trunk_prefix() and erpq_email_addr_valid() say).

Checks, with python3-phonenumbers (libphonenumber's metadata):
  - every table row: "valid" rows parse (in the region of the default
    country code) as valid numbers formatting to the expected E.164;
    "invalid" rows are refused or invalid; "policy" rows are valid for
    phonenumbers (so the note that we refuse them on purpose is true);
  - the trunk table: "0" countries have national prefix 0, "" countries
    have none and numbers starting with 0, 1 -> "1", 7 -> "8";
and with the stdlib email package: every address we accept is one
addr-spec that email.headerregistry.Address and email.utils.parseaddr
read back unchanged.
Prints a JSON summary; exit status 1 on any disagreement.
"""
import json
import sys
from email.headerregistry import Address
from email.utils import parseaddr

import phonenumbers
from phonenumbers import PhoneMetadata, NumberParseException


def region_for(cc, text):
    if cc:
        return phonenumbers.region_code_for_country_code(cc)
    # "00" is an international prefix only relative to a region: take one
    # that dials 00 (the UK) when the row has no default country.
    if text.strip().startswith("00"):
        return "GB"
    return None


def main():
    problems = []
    rows = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            text, cc, expected, verdict, note = line.split("\t")
            cc = int(cc)
            rows += 1
            try:
                n = phonenumbers.parse(text, region_for(cc, text))
                ok = phonenumbers.is_valid_number(n)
                e164 = phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
            except NumberParseException:
                ok, e164 = False, None
            if verdict == "valid":
                if not ok or e164 != expected:
                    problems.append(f"row '{note}': phonenumbers says valid={ok} {e164}, table {expected}")
            elif verdict == "invalid":
                if ok:
                    problems.append(f"row '{note}': phonenumbers accepts it as {e164}")
            elif verdict == "policy":
                if not ok:
                    problems.append(f"row '{note}': marked policy but phonenumbers refuses it too")
            else:
                problems.append(f"row '{note}': unknown verdict {verdict}")

    doc = json.load(sys.stdin)
    trunk = doc.get("trunk", {})
    for cc, prefix in sorted(trunk.items(), key=lambda kv: int(kv[0])):
        region = phonenumbers.region_code_for_country_code(int(cc))
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            problems.append(f"+{cc}: no region in libphonenumber")
            continue
        np_ = md.national_prefix
        if prefix == "":
            examples = [d.example_number for d in (md.fixed_line, md.mobile) if d and d.example_number]
            if np_ is not None or not any(e.startswith("0") for e in examples):
                problems.append(f"+{cc} ({region}): we keep a leading 0; libphonenumber has prefix {np_!r}, examples {examples}")
        elif np_ != prefix:
            problems.append(f"+{cc} ({region}): our trunk prefix {prefix!r}, libphonenumber {np_!r}")

    emails = doc.get("emails", [])
    for a in emails:
        try:
            addr = Address(addr_spec=a)
            if addr.addr_spec != a or parseaddr(a) != ("", a):
                problems.append(f"email #{emails.index(a)} does not read back unchanged")
        except Exception as e:  # noqa: BLE001 - any refusal is a disagreement
            problems.append(f"email #{emails.index(a)} refused by the email package: {e}")

    print(json.dumps({"rows": rows, "trunk": len(trunk), "emails": len(emails), "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
