#!/usr/bin/env python3
"""A local HTTP/1.1 keep-alive server for the curl runner's tests.

It counts the TCP connections it sees (accepted in all, open now, the most
open at once) so a test can check a client's connection cap from the
server side.

  GET /echo/<token>   200, body "echo:<token>"
  GET /slow/<ms>      200 after <ms> milliseconds
  GET /hang           never answers (until the server exits)

Control over stdin/stdout (one line each way): "stats" prints a JSON
object {"accepted", "open", "max_open", "requests"}; "reset" zeroes the
counters (max_open restarts at the connections open now). The first line
on stdout is "READY port=N". The server exits when its stdin closes.
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"accepted": 0, "open": 0, "max_open": 0, "requests": 0}
STOP = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and the
        # client's delayed ACK add 40 ms to every response.
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

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            STATS["requests"] += 1
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "echo":
            self.reply(200, "echo:" + parts[2])
        elif len(parts) == 3 and parts[1] == "slow":
            time.sleep(int(parts[2]) / 1000.0)
            self.reply(200, "slow")
        elif self.path == "/hang":
            STOP.wait()
            self.close_connection = True
        else:
            self.reply(404, "not found")


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.request_queue_size = 256
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("READY port=%d" % srv.server_address[1], flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        with LOCK:
            if cmd == "reset":
                STATS.update(accepted=0, requests=0, max_open=STATS["open"])
                out = "ok"
            else:
                out = json.dumps(STATS)
        print(out, flush=True)
    STOP.set()
    srv.shutdown()


if __name__ == "__main__":
    main()
