#!/usr/bin/python3
"""A fault-injecting HTTP proxy for lib/s3's integration tests (stdlib only).

Sits in front of s3rver and forwards every request unchanged, except:
  --fail-part N      the Nth UploadPart request (counting every attempt)
                     is answered --fail-status (default 500) with an S3
                     InternalError body instead of being forwarded;
  --stall-part N     the Nth UploadPart is read and then never answered
                     (a stalled server, for the stall timeout);
  --part-delay-ms D  each UploadPart waits D ms before it is forwarded
                     (so parallel parts overlap visibly);
  --slow-bps B       request bodies are read at about B bytes per second
                     (a slow network, for cancellation tests);
  --complete-error C the first CompleteMultipartUpload is answered
                     "200 OK" with an <Error> body of code C (S3 may do
                     that), instead of being forwarded.
GET /__stats answers JSON: UploadPart attempts, the most UploadParts seen
in flight at once, failures injected, and requests by method.

Binds the first free port in --port-min..--port-max on 127.0.0.1 and
prints "PORT <n>" on stdout once it listens. Stops on SIGTERM.
"""
import argparse
import http.client
import http.server
import json
import signal
import sys
import threading
import time
import urllib.parse
from socket import timeout as socket_timeout

HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
       "transfer-encoding", "upgrade", "expect"}


class State:
    lock = threading.Lock()
    parts = 0
    in_flight = 0
    max_parallel = 0
    injected = 0
    completes = 0
    methods = {}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        chunks, got = [], 0
        bps = self.server.opts.slow_bps
        while got < n:
            want = min(16384, n - got)
            if bps:
                want = min(want, max(1, bps // 20))
            data = self.rfile.read(want)
            if not data:
                raise ConnectionError("client went away")
            chunks.append(data)
            got += len(data)
            if bps:
                time.sleep(len(data) / bps)
        return b"".join(chunks)

    def _reply(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        opts = self.server.opts
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if self.command == "GET" and url.path == "/__stats":
            with State.lock:
                stats = {"parts": State.parts, "max_parallel": State.max_parallel,
                         "completes": State.completes,
                         "injected": State.injected, "methods": dict(State.methods)}
            self._reply(200, json.dumps(stats).encode(), [("Content-Type", "application/json")])
            return
        is_part = self.command == "PUT" and "partNumber" in query
        is_complete = self.command == "POST" and "uploadId" in query
        with State.lock:
            State.methods[self.command] = State.methods.get(self.command, 0) + 1
            if is_complete:
                State.completes += 1
                first_complete = State.completes == 1
            if is_part:
                State.parts += 1
                nth = State.parts
                State.in_flight += 1
                State.max_parallel = max(State.max_parallel, State.in_flight)
        try:
            body = self._read_body()
            if is_part and opts.part_delay_ms:
                time.sleep(opts.part_delay_ms / 1000)
            if is_complete and first_complete and opts.complete_error:
                with State.lock:
                    State.injected += 1
                xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>%s</Code>"
                       "<Message>injected by faultproxy</Message></Error>"
                       % opts.complete_error).encode()
                self._reply(200, xml, [("Content-Type", "application/xml")])
                return
            if is_part and nth == opts.stall_part:
                with State.lock:
                    State.injected += 1
                time.sleep(3600)
            if is_part and nth == opts.fail_part:
                with State.lock:
                    State.injected += 1
                xml = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError"
                       b"</Code><Message>injected by faultproxy</Message></Error>")
                self._reply(opts.fail_status, xml, [("Content-Type", "application/xml")])
                return
            self._forward(body)
        finally:
            if is_part:
                with State.lock:
                    State.in_flight -= 1

    def _forward(self, body):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP and k.lower() != "content-length"]
            self.send_response(resp.status)
            for k, v in out:
                self.send_header(k, v)
            length = resp.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length if length is not None else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    def _safe(self):
        try:
            self._handle()
        except (ConnectionError, BrokenPipeError, socket_timeout):
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _safe


def bind(opts):
    for port in range(opts.port_min, opts.port_max + 1):
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Proxy)
            return server, port
        except OSError:
            continue
    sys.exit("faultproxy: no free port in %d..%d" % (opts.port_min, opts.port_max))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-min", type=int, required=True)
    ap.add_argument("--port-max", type=int, required=True)
    ap.add_argument("--fail-part", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    ap.add_argument("--stall-part", type=int, default=0)
    ap.add_argument("--part-delay-ms", type=int, default=0)
    ap.add_argument("--slow-bps", type=int, default=0)
    ap.add_argument("--complete-error", default="")
    opts = ap.parse_args()
    server, port = bind(opts)
    server.daemon_threads = True
    server.opts = opts
    server.upstream = urllib.parse.urlsplit(opts.upstream)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("PORT %d" % port, flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
