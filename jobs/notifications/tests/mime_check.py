#!/usr/bin/python3
"""Reference side of test_notify_mime: Python's stdlib email package reads
the messages erpq_mime_build() made and compares them with what the test
asked for.

stdin: {"messages": [{"file": path, "expect": {...}}, ...]} where expect has
the builder's INPUTS, not its output: subject, from/reply_to ([name, addr]),
to/cc (lists of [name, addr]), message_id, date (Unix seconds), tz
(minutes), list_unsubscribe (the expected header text or null), one_click,
headers ([name, value] pairs), text, html (null when absent), attachments
([{filename, type, path | b64}]), types (content types in walk() order),
long_lines_ok (header lines may pass 78 for long single tokens).

Per message it checks: the raw bytes are 7-bit, CRLF-only, no line over 998
octets and no line over 78 (unless long_lines_ok); email.parser with
policy=email.policy.default reports no defect; the decoded headers equal the
inputs (blanks at both ends dropped, as the builder documents); Date parses
to the same instant and offset; the text and html bodies decode to the
inputs with line breaks canonicalised to CRLF, byte for byte; attachments
have the same file name (Content-Disposition and Content-Type name), type
and bytes.
Prints {"checked": N, "failures": [...]}; exit 1 on any failure.
"""
import base64
import json
import re
import sys
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import getaddresses


GH128110 = [0]  # names read with email.header because of CPython gh-128110

ALLOWED_NAME_DEFECTS = {
    "encoded word inside quoted string",
    "missing trailing whitespace after encoded-word",
}


def display_name(s):
    """A display name as the builder documents it: trimmed, blank runs
    made one space."""
    return re.sub(r"[ \t]+", " ", trim(s or ""))


def crlf(s):
    return re.sub(r"\r\n|\r|\n", "\r\n", s)


def trim(s):
    return s.strip(" \t")


def check(path, exp):
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    raw = open(path, "rb").read()
    expect(all(b < 0x80 for b in raw), "the message is not 7-bit")
    expect(re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None, "a bare CR or LF")
    expect(raw.endswith(b"\r\n"), "the message does not end with CRLF")
    lines = raw.split(b"\r\n")
    longest = max(len(l) for l in lines)
    expect(longest <= 998, f"a line of {longest} octets")
    if not exp.get("long_lines_ok"):
        over = [l[:60] for l in lines if len(l) > 78]
        expect(not over, f"lines over 78: {over[:3]}")

    msg = BytesParser(policy=policy.default).parsebytes(raw)
    for part in msg.walk():
        expect(not part.defects, f"defects in {part.get_content_type()}: {part.defects}")
        for name, value in part.items():
            d = getattr(value, "defects", ())
            if name.lower() == "content-type" and part.get_content_disposition() == "attachment":
                # name="=?UTF-8?B?...?=": the non-standard form mail clients
                # read (erpq_mime.h explains); Python notes it and decodes it.
                d = [x for x in d if str(x) not in ALLOWED_NAME_DEFECTS]
            expect(not d, f"defects in header {name}: {d}")
    types = [p.get_content_type() for p in msg.walk()]
    expect(types == exp["types"], f"structure {types} != {exp['types']}")

    expect(msg["subject"] == trim(exp["subject"]), f"subject {msg['subject']!r}")

    legacy = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)

    def addrs(header):
        """Display names and addresses as policy.default reads them; a name
        that spans several adjacent encoded-words is read instead with the
        RFC 2047-correct email.header decoder when policy.default shows
        the spaces of CPython gh-128110 between them (counted)."""
        h = msg[header]
        if h is None:
            return None
        out = [[a.display_name, a.addr_spec] for a in h.addresses]
        raw_pairs = getaddresses(legacy.get_all(header, []))
        for pair, (raw_name, raw_addr) in zip(out, raw_pairs):
            if len(re.findall(r"=\?[^?]+\?[BbQq]\?[^?]*\?=", raw_name)) < 2:
                continue
            rfc = str(make_header(decode_header(raw_name)))
            if pair[0] != rfc and pair[0].replace(" ", "") == rfc.replace(" ", ""):
                GH128110[0] += 1
                pair[0] = rfc
        return out

    def want(pairs):
        return [[display_name(n), a] for n, a in pairs]

    expect(addrs("from") == want([exp["from"]]), f"from {addrs('from')}")
    if exp.get("reply_to"):
        expect(addrs("reply-to") == want([exp["reply_to"]]), f"reply-to {addrs('reply-to')}")
    else:
        expect(msg["reply-to"] is None, "unexpected Reply-To")
    expect(addrs("to") == want(exp["to"]), f"to {addrs('to')} != {want(exp['to'])}")
    if exp.get("cc"):
        expect(addrs("cc") == want(exp["cc"]), f"cc {addrs('cc')}")
    else:
        expect(msg["cc"] is None, "unexpected Cc")
    expect(msg["bcc"] is None, "a Bcc header")
    mid = exp["message_id"]
    mid = mid if mid.startswith("<") else "<" + mid + ">"
    expect(msg["message-id"] == mid, f"message-id {msg['message-id']!r}")
    expect(msg["mime-version"] == "1.0", "MIME-Version")
    dt = msg["date"].datetime
    expect(dt is not None and int(dt.timestamp()) == exp["date"], f"date {msg['date']!r}")
    expect(dt is not None and dt.utcoffset().total_seconds() == exp["tz"] * 60, "date offset")

    lu = exp.get("list_unsubscribe")
    expect(msg["list-unsubscribe"] == lu, f"list-unsubscribe {msg['list-unsubscribe']!r} != {lu!r}")
    post = "List-Unsubscribe=One-Click" if exp.get("one_click") else None
    expect(msg["list-unsubscribe-post"] == post, f"list-unsubscribe-post {msg['list-unsubscribe-post']!r}")
    for name, value in exp.get("headers", []):
        expect(msg[name] == trim(value), f"header {name}: {msg[name]!r}")

    if exp.get("text") is not None:
        body = msg.get_body(preferencelist=("plain",))
        got = body.get_content() if body is not None else None
        expect(got == crlf(exp["text"]), "text body differs after decoding")
    if exp.get("html") is not None:
        body = msg.get_body(preferencelist=("html",))
        got = body.get_content() if body is not None else None
        expect(got == crlf(exp["html"]), "html body differs after decoding")

    atts = list(msg.iter_attachments()) if msg.is_multipart() else []
    expect(len(atts) == len(exp.get("attachments", [])), f"{len(atts)} attachments")
    for part, a in zip(atts, exp.get("attachments", [])):
        expect(part.get_filename() == a["filename"], f"filename {part.get_filename()!r}")
        expect(part["content-type"].params.get("name") == a["filename"],
               f"name parameter {part['content-type'].params.get('name')!r}")
        expect(part.get_content_type() == a["type"], f"type {part.get_content_type()}")
        expect(part.get_content_disposition() == "attachment", "disposition")
        data = open(a["path"], "rb").read() if a.get("path") else base64.b64decode(a["b64"])
        expect(part.get_payload(decode=True) == data, f"bytes of {a['type']} differ")
    return fails


def main():
    doc = json.load(sys.stdin)
    failures = []
    for i, m in enumerate(doc["messages"]):
        for f in check(m["file"], m["expect"]):
            failures.append(f"message {i} ({m['expect'].get('label', '')}): {f}")
    print(json.dumps({"checked": len(doc["messages"]), "gh128110_names": GH128110[0],
                      "failures": failures[:40]}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
