#!/usr/bin/env python3
"""A recording stand-in for a Twilio-compatible Messages API (stdlib only).

  sms_gateway.py --sid AC123 --token secret [--port N] [--no-stdin]

  POST /2010-04-01/Accounts/<sid>/Messages.json
      Basic auth <sid>:<token> (else 401, code 20003); form fields To, From,
      Body (missing To: 400, code 21604). Answers 201 with a Twilio-shaped
      message resource ("sid": "SM" + 32 hex digits), unless an injected
      answer is queued. Every request to this path is recorded.
  GET    /__requests   the records, oldest first: [{"auth_user", "auth_ok",
                       "content_type", "form": {name: value}, "raw",
                       "status", "t": arrival time, Unix seconds}]
  DELETE /__requests   clears them
  DELETE /__next       drops the answers queued by /__next
  POST   /__next       JSON {"mode": "429"|"500"|"400"|"hang", "count": N,
                       "retry_after": "<header value>"}: the next N message
                       requests get that answer (429 with Retry-After when
                       given, Twilio-shaped error JSON; "hang" never answers
                       until the server exits)
  GET    /__stats      {"accepted", "open", "max_open", "requests"}: TCP
                       connections seen, open now, most open at once

The first line on stdout is "READY port=N"; stdin takes "stats" (prints the
/__stats JSON) and "reset"; the server exits when its stdin closes (with
--no-stdin, on SIGTERM or SIGINT instead: scripts/run). --port picks the
port (default: any free one).
"""
import argparse
import base64
import email.utils
import json
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

LOCK = threading.Lock()
STATS = {"accepted": 0, "open": 0, "max_open": 0, "requests": 0}
RECORDS = []
INJECT = []  # [mode, retry_after] per upcoming request
STOP = threading.Event()
ARGS = None


def error_body(code, message, status):
    return {
        "code": code,
        "message": message,
        "more_info": "https://www.twilio.com/docs/errors/%d" % code,
        "status": status,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            STATS["accepted"] += 1
            STATS["open"] += 1
            STATS["max_open"] = max(STATS["max_open"], STATS["open"])

    def finish(self):
        try:
            super().finish()
        finally:
            with LOCK:
                STATS["open"] -= 1

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                out = list(RECORDS)
            self.send_json(200, out)
        elif self.path == "/__stats":
            with LOCK:
                out = dict(STATS)
            self.send_json(200, out)
        else:
            self.send_json(404, error_body(20404, "Not found", 404))

    def do_DELETE(self):
        if self.path == "/__next":
            with LOCK:
                n = len(INJECT)
                INJECT.clear()
            self.send_json(200, {"dropped": n})
        elif self.path == "/__requests":
            with LOCK:
                n = len(RECORDS)
                RECORDS.clear()
            self.send_json(200, {"cleared": n})
        else:
            self.send_json(404, error_body(20404, "Not found", 404))

    def do_POST(self):
        raw = self.body()
        if self.path == "/__next":
            cmd = json.loads(raw or b"{}")
            with LOCK:
                for _ in range(int(cmd.get("count", 1))):
                    INJECT.append((str(cmd["mode"]), cmd.get("retry_after")))
            self.send_json(200, {"queued": len(INJECT)})
            return
        if self.path != "/2010-04-01/Accounts/%s/Messages.json" % ARGS.sid:
            self.send_json(404, error_body(20404, "Not found", 404))
            return
        user, ok = None, False
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                ok = user == ARGS.sid and pw == ARGS.token
            except Exception:
                pass
        text = raw.decode("utf-8", "replace")
        form = {k: v[0] if len(v) == 1 else v
                for k, v in parse_qs(text, keep_blank_values=True).items()}
        rec = {"t": time.time(), "auth_user": user, "auth_ok": ok,
               "content_type": self.headers.get("Content-Type"),
               "form": form, "raw": text, "status": None}
        with LOCK:
            STATS["requests"] += 1
            RECORDS.append(rec)
            inject = INJECT.pop(0) if INJECT else None
        if inject:
            mode, retry_after = inject
            rec["status"] = mode
            if mode == "hang":
                STOP.wait()
                self.close_connection = True
            elif mode == "429":
                hdrs = [("Retry-After", retry_after)] if retry_after else []
                self.send_json(429, error_body(20429, "Too Many Requests", 429), hdrs)
            elif mode == "500":
                self.send_json(500, error_body(20500, "Internal Server Error", 500))
            else:
                self.send_json(400, error_body(
                    21211, "The 'To' number %s is not a valid phone number." % form.get("To"), 400))
            return
        if not ok:
            rec["status"] = 401
            self.send_json(401, error_body(20003, "Authenticate", 401))
            return
        if not form.get("To"):
            rec["status"] = 400
            self.send_json(400, error_body(21604, "A 'To' phone number is required.", 400))
            return
        sid = "SM" + secrets.token_hex(16)
        now = email.utils.formatdate(usegmt=True)
        rec["status"] = 201
        rec["sid"] = sid
        self.send_json(201, {
            "sid": sid, "account_sid": ARGS.sid, "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "status": "queued", "num_segments": "1",
            "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "date_created": now, "date_updated": now, "date_sent": None,
            "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (ARGS.sid, sid),
        })


class Server(ThreadingHTTPServer):
    # listen() runs in the constructor: the backlog must be set on the
    # class (with the default of 5 a burst of new connections loses SYNs,
    # and their requests arrive a second late, after the retransmit).
    request_queue_size = 256
    daemon_threads = True


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--sid", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-stdin", action="store_true")
    ARGS = p.parse_args()
    srv = Server(("127.0.0.1", ARGS.port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("READY port=%d" % srv.server_address[1], flush=True)
    if ARGS.no_stdin:
        signal.signal(signal.SIGTERM, lambda *a: STOP.set())
        signal.signal(signal.SIGINT, lambda *a: STOP.set())
        while not STOP.wait(0.5):
            pass
        srv.shutdown()
        return
    for line in sys.stdin:
        with LOCK:
            if line.strip() == "reset":
                STATS.update(accepted=0, requests=0, max_open=STATS["open"])
                out = "ok"
            else:
                out = json.dumps(STATS)
        print(out, flush=True)
    STOP.set()
    srv.shutdown()


if __name__ == "__main__":
    main()
