#!/usr/bin/python3
"""A tiny in-memory S3 that checks SigV4 signatures the way S3 does, using
Debian's python3-botocore as the reference signer (lib/s3 integration test).

s3rver checks no signatures, so this is the check of the requests libcurl
signs for our client. For every request it:
  - parses the Authorization header (credential scope, SignedHeaders,
    Signature) and requires host and every x-amz-* header to be signed;
  - rebuilds the request from the wire (method, raw path and query, the
    signed headers, the body) and signs it with botocore's S3SigV4Auth,
    with the configured credentials and the clock pinned to the request's
    x-amz-date. botocore hashes the body itself, so a wrong
    x-amz-content-sha256 also fails;
  - answers 403 SignatureDoesNotMatch on any difference, else serves the
    request: PutObject, CreateMultipartUpload, UploadPart,
    CompleteMultipartUpload, GetObject, HeadObject, DeleteObject.
GET /__stats (unsigned) answers JSON: verified requests by operation and
the failures with their reasons.

Binds the first free port in --port-min..--port-max on 127.0.0.1 and
prints "PORT <n>" once it listens. Run with /usr/bin/python3.
"""
import argparse
import datetime
import hashlib
import http.server
import json
import re
import signal
import sys
import threading
import urllib.parse
import uuid

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")

_clock = threading.local()


class _FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return _clock.now


class _DatetimeModule:
    datetime = _FixedDatetime


botocore.auth.datetime = _DatetimeModule


class Store:
    lock = threading.Lock()
    objects = {}   # key -> (body, content_type)
    uploads = {}   # upload id -> {"key", "type", "parts": {n: body}}
    checked = {}
    failures = []


def operation(method, query):
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "PUT" and "partNumber" in query:
        return "UploadPart"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
            "DELETE": "DeleteObject"}.get(method, method)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
               "<Message>%s</Message></Error>" % (code, message)).encode()
        self.reply(status, xml, [("Content-Type", "application/xml")])

    def verify(self, body):
        o = self.server.opts
        auth = self.headers.get("Authorization", "")
        m = AUTH_RE.match(auth)
        if not m:
            return "no parsable SigV4 Authorization header"
        akid, day, region, signed, signature = m.groups()
        if akid != o.access_key or region != o.region:
            return "credential scope %s/%s is not %s/%s" % (akid, region, o.access_key, o.region)
        signed = signed.split(";")
        present = {k.lower() for k in self.headers.keys()}
        required = {"host"} | {h for h in present if h.startswith("x-amz-")}
        missing = sorted(required - set(signed))
        if missing:
            return "headers present but not signed: %s" % ",".join(missing)
        amz_date = self.headers.get("x-amz-date", "")
        try:
            _clock.now = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
        except ValueError:
            return "bad x-amz-date %r" % amz_date
        if amz_date[:8] != day:
            return "x-amz-date and the credential scope disagree"
        headers = {h: self.headers[h] for h in signed if self.headers.get(h) is not None}
        req = AWSRequest(method=self.command, url="http://%s%s" % (self.headers["host"], self.path),
                         data=body, headers=headers)
        S3SigV4Auth(Credentials(o.access_key, o.secret_key, o.token or None), "s3",
                    o.region).add_auth(req)
        want = AUTH_RE.match(req.headers["Authorization"])
        if want.group(4) != ";".join(signed):
            return "signed headers %s, botocore signs %s" % (";".join(signed), want.group(4))
        if want.group(5) != signature:
            return "signature differs from botocore's (canonical request: %r)" % (
                S3SigV4Auth(Credentials(o.access_key, o.secret_key, o.token or None), "s3",
                            o.region).canonical_request(req))
        return None

    def handle_one(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if self.command == "GET" and url.path == "/__stats":
            with Store.lock:
                s = {"checked": dict(Store.checked), "failures": list(Store.failures)}
            self.reply(200, json.dumps(s).encode(), [("Content-Type", "application/json")])
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        op = operation(self.command, query)
        why = self.verify(body)
        with Store.lock:
            if why:
                Store.failures.append("%s: %s" % (op, why))
            else:
                Store.checked[op] = Store.checked.get(op, 0) + 1
        if why:
            self.error(403, "SignatureDoesNotMatch", "checked by botocore")
            return
        parts = url.path.split("/", 2)  # "", bucket, key (path style)
        if len(parts) < 3 or parts[1] != self.server.opts.bucket:
            self.error(404, "NoSuchBucket", "path style, bucket %s" % self.server.opts.bucket)
            return
        key = urllib.parse.unquote(parts[2])
        self.serve(op, key, query, body)

    def serve(self, op, key, query, body):
        with Store.lock:
            if op == "PutObject":
                Store.objects[key] = (body, self.headers.get("Content-Type", ""))
                self.reply(200, b"", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
            elif op == "CreateMultipartUpload":
                uid = uuid.uuid4().hex
                Store.uploads[uid] = {"key": key, "type": self.headers.get("Content-Type", ""),
                                      "parts": {}}
                xml = ("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                       "<UploadId>%s</UploadId></InitiateMultipartUploadResult>" % uid)
                self.reply(200, xml.encode(), [("Content-Type", "application/xml")])
            elif op == "UploadPart":
                up = Store.uploads.get(query["uploadId"][0])
                if not up:
                    self.error(404, "NoSuchUpload", "unknown upload")
                    return
                up["parts"][int(query["partNumber"][0])] = body
                self.reply(200, b"", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
            elif op == "CompleteMultipartUpload":
                up = Store.uploads.pop(query["uploadId"][0], None)
                if not up:
                    self.error(404, "NoSuchUpload", "unknown upload")
                    return
                data = b"".join(up["parts"][n] for n in sorted(up["parts"]))
                Store.objects[up["key"]] = (data, up["type"])
                xml = ("<CompleteMultipartUploadResult><ETag>&quot;%s-%d&quot;</ETag>"
                       "</CompleteMultipartUploadResult>" % (hashlib.md5(data).hexdigest(),
                                                             len(up["parts"])))
                self.reply(200, xml.encode(), [("Content-Type", "application/xml")])
            elif op == "AbortMultipartUpload":
                Store.uploads.pop(query["uploadId"][0], None)
                self.reply(204)
            elif op in ("GetObject", "HeadObject"):
                if key not in Store.objects:
                    self.error(404, "NoSuchKey", "no such key")
                    return
                data, ctype = Store.objects[key]
                hdrs = [("ETag", '"%s"' % hashlib.md5(data).hexdigest())]
                if ctype:
                    hdrs.append(("Content-Type", ctype))
                if op == "HeadObject":
                    self.send_response(200)
                    for k, v in hdrs:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                else:
                    self.reply(200, data, hdrs)
            elif op == "DeleteObject":
                Store.objects.pop(key, None)
                self.reply(204)
            else:
                self.error(405, "MethodNotAllowed", op)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-min", type=int, required=True)
    ap.add_argument("--port-max", type=int, required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--bucket", default="reports")
    opts = ap.parse_args()
    for port in range(opts.port_min, opts.port_max + 1):
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
            break
        except OSError:
            continue
    else:
        sys.exit("sigcheck: no free port in %d..%d" % (opts.port_min, opts.port_max))
    server.daemon_threads = True
    server.opts = opts
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("PORT %d" % port, flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
