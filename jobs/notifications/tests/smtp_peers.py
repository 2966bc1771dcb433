#!/usr/bin/env python3
"""SMTP test peers for the SMTP sender's tests (stdlib only).

  smtp_peers.py sink --cache DIR [smtp-sink options...]
      postfix's smtp-sink (error injection: -f RCPT -> 500, -Q DATA -> 421,
      -q MAIL -> dropped connection, -w N -> slow DATA reply). The postfix
      .deb is fetched once with `apt-get download` and unpacked with
      `dpkg -x` into DIR/postfix (postfix itself is never installed: it
      conflicts with other mail transport agents).
  smtp_peers.py maildev --user U --password P
      a private maildev (tests/interop/node_modules) with SMTP AUTH required.
  smtp_peers.py tls
      an aiosmtpd server (Debian python3-aiosmtpd, run with /usr/bin/python3)
      that offers STARTTLS with a throwaway self-signed certificate for
      127.0.0.1 and refuses mail before it (require_starttls); READY gives
      ca=<the certificate file>, "stats" the mails taken and how many came
      over TLS.
  smtp_peers.py proxy --target HOST:PORT
      a TCP proxy that counts the SMTP sessions going through it: accepted
      in all, open now, the most open at once, and "MAIL FROM" commands per
      session.

Each prints one line "READY port=N [key=value...]" once it serves, answers
"stats" on stdin with a JSON line, and stops (with its child) when its stdin
closes, so a test that dies leaves nothing behind.

Ports for sink and maildev come from ERPQ_TEST_PORT_BASE..ERPQ_TEST_PORT_MAX
(default 16400..16999), from the top down: a port counts as free when no
TCP socket of any state uses it (/proc/net/tcp{,6}) and a plain bind
succeeds. smtp-sink binds with SO_REUSEPORT, so a second instance on the
same port would start silently and share the connections: after the start
the port must hold exactly one listening socket and greet with this run's
own host name, else the instance is stopped and the next port tried. The
proxy binds port 0 (the kernel picks a free one).
"""
import argparse
import asyncio
import fcntl
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def log(msg):
    print("smtp_peers: " + msg, file=sys.stderr, flush=True)


def sockets_on(port):
    """(any socket, listening sockets) on TCP port, from /proc/net/tcp{,6}."""
    hexport = "%04X" % port
    anyuse = listening = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[1].rsplit(":", 1)[1] == hexport:
                        anyuse += 1
                        listening += parts[3] == "0A"
        except OSError:
            pass
    return anyuse, listening


def port_free(port):
    if sockets_on(port)[0]:
        return False
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def candidate_ports(skip=()):
    base = int(os.environ.get("ERPQ_TEST_PORT_BASE", "16400"))
    top = int(os.environ.get("ERPQ_TEST_PORT_MAX", "16999"))
    for p in range(top, base - 1, -1):
        if p not in skip and port_free(p):
            yield p


def wait_listen(port, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_until_eof(stats):
    for line in sys.stdin:
        print(json.dumps(stats() if line.strip() == "stats" else {"error": "unknown"}),
              flush=True)


# ---- smtp-sink ---------------------------------------------------------------------------

def fetch_postfix(cache):
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, "postfix")
    sink = os.path.join(root, "usr", "sbin", "smtp-sink")
    with open(os.path.join(cache, "postfix.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(sink):
            return root, sink
        dl = tempfile.mkdtemp(dir=cache)
        cmd = ["apt-get", "download", "postfix"]
        r = subprocess.run(cmd, cwd=dl, capture_output=True, text=True)
        if r.returncode != 0:
            # No package lists yet on a fresh machine.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            r = subprocess.run(cmd, cwd=dl, capture_output=True, text=True)
        debs = glob.glob(os.path.join(dl, "postfix_*.deb"))
        if r.returncode != 0 or not debs:
            sys.exit("smtp_peers: apt-get download postfix failed: " + r.stderr.strip())
        tmp_root = root + ".tmp"
        shutil.rmtree(tmp_root, ignore_errors=True)
        subprocess.run(["dpkg", "-x", debs[0], tmp_root], check=True)
        os.rename(tmp_root, root)
        shutil.rmtree(dl, ignore_errors=True)
    return root, sink


def greeting_has(port, name):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            banner = s.recv(512).decode("ascii", "replace")
            s.sendall(b"QUIT\r\n")
            return banner.startswith("220 ") and name in banner
    except OSError:
        return False


def run_sink(args, extra):
    root, sink = fetch_postfix(args.cache)
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr", "lib", "postfix"))
    name = "erpq-sink-%d-%s" % (os.getpid(), secrets.token_hex(4))
    user = ["-u", "root"] if os.geteuid() == 0 else []
    for tries, port in enumerate(candidate_ports()):
        if tries >= 10:
            break
        cmd = [sink] + user + ["-h", name] + extra + ["127.0.0.1:%d" % port, "256"]
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        if wait_listen(port, proc, 10) and sockets_on(port)[1] == 1 and greeting_has(port, name):
            print("READY port=%d pid=%d" % (port, proc.pid), flush=True)
            try:
                serve_until_eof(lambda: {"port": port, "alive": proc.poll() is None})
            finally:
                stop(proc)
            return
        log("smtp-sink did not start cleanly on port %d; trying another" % port)
        stop(proc)
    sys.exit("smtp_peers: no port for smtp-sink")


# ---- maildev with AUTH ----------------------------------------------------------------------

def run_maildev(args):
    script = os.path.join(ROOT, "tests", "interop", "node_modules", "maildev", "dist", "bin",
                          "maildev.js")
    if not os.path.exists(script):
        sys.exit("smtp_peers: %s is missing (run scripts/deps)" % script)
    node = shutil.which("node") or sys.exit("smtp_peers: node is not on PATH")
    mail_dir = tempfile.mkdtemp(prefix="erpq-maildev-")
    try:
        ports = candidate_ports()
        for _ in range(5):
            smtp, web = next(ports), next(ports)
            cmd = [node, script, "--smtp", str(smtp), "--ip", "127.0.0.1", "--web", str(web),
                   "--web-ip", "127.0.0.1", "--mail-directory", mail_dir,
                   "--incoming-user", args.user, "--incoming-pass", args.password]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    start_new_session=True)
            if wait_listen(smtp, proc, 30) and wait_listen(web, proc, 30):
                print("READY port=%d api=http://127.0.0.1:%d/api pid=%d" % (smtp, web, proc.pid),
                      flush=True)
                try:
                    serve_until_eof(lambda: {"alive": proc.poll() is None})
                finally:
                    stop(proc)
                return
            log("maildev did not start on %d/%d; trying others" % (smtp, web))
            stop(proc)
        sys.exit("smtp_peers: maildev did not start")
    finally:
        shutil.rmtree(mail_dir, ignore_errors=True)


# ---- STARTTLS server (aiosmtpd) ------------------------------------------------------------

def run_tls(args):
    import logging
    import ssl
    from aiosmtpd.controller import Controller

    # The refused handshake of the unknown-CA case is expected: no tracebacks.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    tmp = tempfile.mkdtemp(prefix="erpq-tls-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    got = {"mails": 0, "tls": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with LOCK:
                got["mails"] += 1
                got["tls"] += session.ssl is not None
            return "250 2.0.0 Ok"

    try:
        for port in candidate_ports():
            ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                             require_starttls=True)
            try:
                ctl.start()
            except Exception as e:  # the port was taken meanwhile
                log("aiosmtpd did not start on %d: %s" % (port, e))
                continue
            print("READY port=%d ca=%s" % (port, cert), flush=True)
            try:
                serve_until_eof(lambda: dict(got))
            finally:
                ctl.stop()
            return
        sys.exit("smtp_peers: no port for the TLS server")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- Counting proxy ------------------------------------------------------------------------

LOCK = threading.Lock()
PSTATS = {"accepted": 0, "open": 0, "max_open": 0}
MAILS = []  # "MAIL FROM" commands per session, in accept order


async def pipe(reader, writer, idx=None):
    tail = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if idx is not None:
                scan = (tail + data).upper()
                n = scan.count(b"MAIL FROM:")
                if n:
                    with LOCK:
                        MAILS[idx] += n
                tail = scan[-9:] if len(scan) >= 9 else scan
                # A command cut at a chunk border is counted once: the tail
                # holds fewer bytes than the whole pattern.
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def proxy_main(target, ready):
    host, port = target.rsplit(":", 1)

    async def handle(cr, cw):
        with LOCK:
            PSTATS["accepted"] += 1
            PSTATS["open"] += 1
            PSTATS["max_open"] = max(PSTATS["max_open"], PSTATS["open"])
            idx = len(MAILS)
            MAILS.append(0)
        closed = [False]

        def client_gone():
            # A session ends for the count when the client closes its side.
            with LOCK:
                if not closed[0]:
                    closed[0] = True
                    PSTATS["open"] -= 1

        async def upstream(sw):
            await pipe(cr, sw, idx)
            client_gone()

        try:
            sr, sw = await asyncio.open_connection(host, int(port))
            await asyncio.gather(upstream(sw), pipe(sr, cw))
        except OSError:
            cw.close()
        finally:
            client_gone()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready(srv.sockets[0].getsockname()[1])
    async with srv:
        await srv.serve_forever()


def run_proxy(args):
    got = threading.Event()
    port = []

    def ready(p):
        port.append(p)
        got.set()

    threading.Thread(target=lambda: asyncio.run(proxy_main(args.target, ready)),
                     daemon=True).start()
    if not got.wait(10):
        sys.exit("smtp_peers: the proxy did not start")
    print("READY port=%d" % port[0], flush=True)

    def stats():
        with LOCK:
            out = dict(PSTATS)
            out["mails"] = list(MAILS)
        return out

    serve_until_eof(stats)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--cache", required=True)
    m = sub.add_parser("maildev")
    m.add_argument("--user", required=True)
    m.add_argument("--password", required=True)
    sub.add_parser("tls")
    x = sub.add_parser("proxy")
    x.add_argument("--target", required=True)
    args, extra = p.parse_known_args()
    if args.cmd == "sink":
        run_sink(args, extra)
    elif args.cmd == "maildev":
        run_maildev(args)
    elif args.cmd == "tls":
        run_tls(args)
    else:
        run_proxy(args)


if __name__ == "__main__":
    main()
