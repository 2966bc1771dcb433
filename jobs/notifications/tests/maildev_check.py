#!/usr/bin/python3
"""Reference side of test_notify_mime_smtp: what maildev (a real SMTP
server, npm maildev 3.0.0, parsing with nodemailer's mailparser) saw of the
messages the test sent with curl.

stdin: {"api": "http://127.0.0.1:PORT/api",
        "messages": [{"message_id", "envelope_to": [...], "bcc": [...],
                      "expect": {... as for mime_check.py ...}}]}
For each message (found by its Message-ID, waiting up to 10 s) it checks
the decoded subject, From/To/Cc names and addresses, the SMTP envelope
(every recipient, Bcc only there), the text and html bodies (mailparser
gives LF line breaks: compared with the inputs' line breaks made LF), extra
headers, List-Unsubscribe (from the stored source) and every attachment:
name, type, and the bytes downloaded by generatedFileName.
Prints {"checked": N, "failures": [...]}; exit 1 on any failure.
"""
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def lf(s):
    return re.sub(r"\r\n|\r|\n", "\n", s)


def trim(s):
    return (s or "").strip(" \t")


def display_name(s):
    return re.sub(r"[ \t]+", " ", trim(s))


def find(api, message_id):
    deadline = time.time() + 10
    while True:
        for m in json.loads(get(api + "/email")):
            if m.get("headers", {}).get("message-id") == message_id:
                return m
        if time.time() > deadline:
            return None
        time.sleep(0.2)


def check(api, spec):
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    exp = spec["expect"]
    m = find(api, spec["message_id"])
    if m is None:
        return [f"maildev has no message {spec['message_id']}"]
    expect(m["subject"] == trim(exp["subject"]), f"subject {m['subject']!r}")

    def pairs(lst):
        return [[x.get("name", ""), x["address"]] for x in (lst or [])]

    def want(lst):
        return [[display_name(n), a] for n, a in lst]

    expect(pairs(m["from"]) == want([exp["from"]]), f"from {pairs(m['from'])}")
    expect(pairs(m["to"]) == want(exp["to"]), f"to {pairs(m['to'])}")
    expect(pairs(m.get("cc")) == want(exp.get("cc") or []), f"cc {pairs(m.get('cc'))}")
    env = sorted(x["address"] for x in m["envelope"]["to"])
    expect(env == sorted(spec["envelope_to"]), f"envelope {env}")
    bcc = sorted(x["address"] for x in m.get("calculatedBcc", []))
    expect(bcc == sorted(spec["bcc"]), f"calculated bcc {bcc}")
    expect("bcc" not in m.get("headers", {}), "a Bcc header reached the server")
    if exp.get("text") is not None:
        expect(m.get("text") == lf(exp["text"]), "text differs")
    if exp.get("html") is not None:
        expect(m.get("html") == lf(exp["html"]), "html differs")
    for name, value in exp.get("headers", []):
        raw = m["headers"].get(name.lower())
        got = str(make_header(decode_header(raw))) if raw is not None else None
        expect(got == trim(value), f"header {name}: {got!r}")

    source = get(f"{api}/email/{m['id']}/source")
    parsed = BytesParser(policy=policy.default).parsebytes(source)
    expect(parsed["list-unsubscribe"] == exp.get("list_unsubscribe"),
           f"list-unsubscribe {parsed['list-unsubscribe']!r}")
    post = "List-Unsubscribe=One-Click" if exp.get("one_click") else None
    expect(parsed["list-unsubscribe-post"] == post, "list-unsubscribe-post")

    atts = m.get("attachments") or []
    expect(len(atts) == len(exp.get("attachments", [])), f"{len(atts)} attachments")
    for got, a in zip(atts, exp.get("attachments", [])):
        expect(got["filename"] == a["filename"], f"attachment name {got['filename']!r}")
        expect(got["contentType"] == a["type"], f"attachment type {got['contentType']}")
        url = f"{api}/email/{m['id']}/attachment/{urllib.parse.quote(got['generatedFileName'])}"
        data = get(url)
        want_bytes = open(a["path"], "rb").read()
        expect(data == want_bytes, f"attachment {a['type']}: {len(data)} bytes, want {len(want_bytes)}")
    return fails


def main():
    doc = json.load(sys.stdin)
    failures = []
    for i, spec in enumerate(doc["messages"]):
        for f in check(doc["api"], spec):
            failures.append(f"message {i}: {f}")
    print(json.dumps({"checked": len(doc["messages"]), "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
