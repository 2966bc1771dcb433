#!/usr/bin/python3
"""A MongoDB peer for the outbox relay tests, on Debian's python3-mockupdb
(a MongoDB wire-protocol server that hands us every command as it came;
there is no MongoDB server in Debian). Run it with /usr/bin/python3.

  mongo_peer.py [--port N] [--hangup-first]

It answers hello/isMaster as a standalone server (wire version 13), ping
and endSessions with ok, and keeps the _ids of what it stored per
collection, so that it answers inserts as a real server with a unique _id
index would: a new _id is stored, a known one gets a writeErrors entry
with code 11000 (duplicate key). With --hangup-first the first insert is
stored and then the connection is dropped without an answer: a server
that took the write and went away before saying so.

stdout: "READY port=N", then one JSON line per insert command:
  {"coll", "db", "ordered", "writeConcern", "docs": [...], "stored": [ids],
   "dups": [ids], "hangup": bool}
BSON dates are written as {"$date": <ms since the epoch>}, so a reader can
tell a date from a string. The peer exits when its stdin closes.
"""
import argparse
import datetime
import json
import sys
import threading

from mockupdb import MockupDB


def plain(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return {"$date": int(round(v.timestamp() * 1000))}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return {"$type": type(v).__name__, "value": str(v)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--hangup-first", action="store_true")
    args = p.parse_args()
    server = MockupDB(port=args.port, request_timeout=3600,
                      auto_ismaster={"ismaster": True, "minWireVersion": 0, "maxWireVersion": 13})
    server.autoresponds("hello", {"isWritablePrimary": True, "ismaster": True, "minWireVersion": 0,
                                  "maxWireVersion": 13})
    server.autoresponds("ping")
    server.autoresponds("endSessions")
    port = server.run()
    print("READY port=%d" % port, flush=True)
    stop = threading.Event()

    def watch_stdin():
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stored = {}
    hangup_left = 1 if args.hangup_first else 0
    while not stop.is_set():
        try:
            req = server.receives(timeout=0.2)
        except AssertionError:
            continue
        if req is None:
            break
        if req.command_name != "insert":
            req.ok()
            continue
        doc = req.doc
        coll = doc["insert"]
        ids = stored.setdefault(coll, set())
        new, dups, errors = [], [], []
        for i, d in enumerate(doc.get("documents", [])):
            if d["_id"] in ids:
                dups.append(d["_id"])
                errors.append({"index": i, "code": 11000,
                               "errmsg": "E11000 duplicate key error collection: %s index: _id_" % coll})
            else:
                ids.add(d["_id"])
                new.append(d["_id"])
        hang = hangup_left > 0
        print(json.dumps({"coll": coll, "db": doc.get("$db"), "ordered": doc.get("ordered"),
                          "writeConcern": plain(doc.get("writeConcern")),
                          "docs": plain(doc.get("documents", [])), "stored": new, "dups": dups,
                          "hangup": hang}), flush=True)
        if hang:
            hangup_left -= 1
            req.hangup()
        elif errors:
            req.ok(n=len(new), writeErrors=errors)
        else:
            req.ok(n=len(new))
    server.stop()


if __name__ == "__main__":
    main()
