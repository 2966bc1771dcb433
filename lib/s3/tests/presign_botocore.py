#!/usr/bin/python3
"""Presigned GET URLs from Debian's python3-botocore, the reference for
lib/s3/tests/test_sigv4.c.

Reads JSON cases, one per line, on stdin:
  {"endpoint", "style": "path"|"virtual", "bucket", "key", "region",
   "access_key", "secret_key", "token" (or null), "file_name" (or null),
   "expires", "now" (unix seconds)}
and writes one JSON line {"url": ...} per case. The clock botocore signs
with is pinned to "now". The response-content-disposition value is built
here from the file name with the standard library (RFC 6266 fallback plus
RFC 8187 filename*), independently of the C code.

Run with /usr/bin/python3 (Debian's modules are not on pyenv's path).
"""
import datetime
import json
import re
import sys
import urllib.parse

import botocore.auth
import botocore.session
from botocore.config import Config


class _Clock:
    now = 0


class _FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return datetime.datetime.utcfromtimestamp(_Clock.now)


class _DatetimeModule:
    datetime = _FixedDatetime


botocore.auth.datetime = _DatetimeModule


def disposition(name):
    name = re.sub(r"[\x00-\x1f\x7f]", "_", name)
    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%' else "_" for ch in name
    )
    # RFC 8187 attr-char: ALPHA DIGIT ! # $ & + - . ^ _ ` | ~
    ext = urllib.parse.quote(name.encode("utf-8"), safe="!#$&+^`|")
    return "attachment; filename=\"%s\"; filename*=UTF-8''%s" % (fallback, ext)


def main():
    session = botocore.session.get_session()
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        _Clock.now = c["now"]
        client = session.create_client(
            "s3",
            region_name=c["region"],
            endpoint_url=c["endpoint"],
            aws_access_key_id=c["access_key"],
            aws_secret_access_key=c["secret_key"],
            aws_session_token=c.get("token"),
            config=Config(
                signature_version="s3v4", s3={"addressing_style": c["style"]}
            ),
        )
        params = {"Bucket": c["bucket"], "Key": c["key"]}
        if c.get("file_name") is not None:
            params["ResponseContentDisposition"] = disposition(c["file_name"])
        url = client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=c["expires"]
        )
        sys.stdout.write(json.dumps({"url": url}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
