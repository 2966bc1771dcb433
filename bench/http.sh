#!/usr/bin/env bash
# http.sh - HTTP enqueue benchmark: `erpq-producer serve` against a Node
# Express server doing the same with bull 4.16.5's queue.add(), both posting
# {"name":"noop","data":{...}} with an HS256 bearer token, driven by wrk at
# CONNECTIONS connections for DURATION, on one private redis-server.
# Each server is measured REPEAT times, each run on an emptied Redis; the
# run with the median requests/s is reported with its p50 and p99 latency,
# and the ratio of the medians. The jobs column counts the last run's.
#
# Our server runs as configured by default, with its checks on: token,
# roles, schema (none for noop), and the Redis rate limits, set far above
# what one subject can reach so that the check is paid and never refuses.
#
#   bench/http.sh                               # 64 connections, 10 s, 3 runs each
#   CONNECTIONS=64 DURATION=20s REPEAT=5 bench/http.sh
#
# Env: CONNECTIONS (64), DURATION (10s), REPEAT (3), WRK_THREADS (2),
# HTTP_THREADS (API event loops; default: the server's own, 1),
# RATE_LIMITS (1 = on, far above the load; 0 = off), ERPQ_PRODUCER
# (build/bin/erpq-producer), REDIS_SERVER, NODE. Installs express into
# bench/node_modules when missing.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
WRK_THREADS=${WRK_THREADS:-2}
HTTP_THREADS=${HTTP_THREADS:-}
REPEAT=${REPEAT:-3}
RATE_LIMITS=${RATE_LIMITS:-1}
ERPQ_PRODUCER=${ERPQ_PRODUCER:-$ROOT/build/bin/erpq-producer}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NODE=${NODE:-node}
QUEUE=bench-http
SECRET=bench-secret-0123456789abcdef0123456789abcdef

die() { echo "http-bench: error: $*" >&2; exit 1; }
log() { echo "http-bench: $*" >&2; }
command -v wrk >/dev/null || die "wrk not found (Debian package wrk; scripts/deps installs it)"
[[ -x $ERPQ_PRODUCER ]] || die "$ERPQ_PRODUCER not found; build it first"
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"

export NODE_PATH="$BENCH_DIR/node_modules:$ROOT/tests/interop/node_modules${NODE_PATH:+:$NODE_PATH}"
if [[ ! -f $BENCH_DIR/node_modules/express/package.json ]]; then
  log "installing express into bench/node_modules"
  npm install --prefix "$BENCH_DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error express@4.21.2 >/dev/null
fi
"$NODE" -e 'require("bull"); require("express")' || die "bull (tests/interop) or express missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/http-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() {
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  die "nothing answers at $1"
}

RPORT=$(free_port)
"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS_URL=redis://127.0.0.1:$RPORT/0

cat >"$WORK/roles.json" <<JSON
{"queues": {"$QUEUE": ["noop"]}, "roles": {"backend": [{"action": "enqueue", "queue": "*", "job": "*"}]}}
JSON
TOKEN=$("$NODE" -e '
const c=require("crypto"),b=o=>Buffer.from(JSON.stringify(o)).toString("base64url");
const d=b({alg:"HS256",typ:"JWT"})+"."+b({sub:"bench",role:"backend",exp:Math.floor(Date.now()/1000)+3600});
console.log(d+"."+c.createHmac("sha256",process.argv[1]).update(d).digest("base64url"))' "$SECRET")
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"name":"noop","data":{"schoolId":12,"term":"T1"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA

probe() { curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" -d '{"name":"noop","data":{}}' "$1"; }

# run NAME URL: measures REPEAT times; prints "NAME rps p50 p99 non2xx" of
# the run with the median requests/s.
run() {
  local name=$1 url=$2 out i rps p50 p99 bad
  wrk -t2 -c16 -d2s -s "$WORK/post.lua" "$url" >/dev/null 2>&1 || true   # warm-up
  : >"$WORK/runs-$name.txt"
  for ((i = 1; i <= REPEAT; i++)); do
    # Each run starts on an empty Redis, so that no run pays for the jobs
    # earlier runs left (a keyspace of a million jobs resizes its tables).
    redis-cli -p "$RPORT" flushall >/dev/null
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "$url")
    echo "$out" >"$WORK/wrk-$name-$i.txt"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    log "$name run $i: ${rps:-0} req/s, p50 ${p50:-?}, p99 ${p99:-?}, non-2xx ${bad:-0}"
    echo "$name ${rps:-0} ${p50:-?} ${p99:-?} ${bad:-0}" >>"$WORK/runs-$name.txt"
  done
  sort -k2,2 -g "$WORK/runs-$name.txt" | awk -v n="$REPEAT" 'NR == int((n + 1) / 2)'
}

APORT=$(free_port)
SERVE_ARGS=(--roles "$WORK/roles.json" --schemas "$WORK/none" --per-ip-connections 0)
[[ -n $HTTP_THREADS ]] && SERVE_ARGS+=(--threads "$HTTP_THREADS")
if [[ $RATE_LIMITS == 1 ]]; then SERVE_ARGS+=(--rate-subject 100000000 --rate-ip 100000000)
else SERVE_ARGS+=(--rate-subject 0 --rate-ip 0); fi
ERPQ_JWT_SECRET=$SECRET "$ERPQ_PRODUCER" --redis "$REDIS_URL" serve --listen "127.0.0.1:$APORT" \
  "${SERVE_ARGS[@]}" >/dev/null 2>"$WORK/erpq.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$APORT/healthz"
[[ $(probe "http://127.0.0.1:$APORT/v1/queues/$QUEUE/jobs") == 201 ]] || die "erpq-producer serve does not enqueue"
ERPQ=$(run erpq "http://127.0.0.1:$APORT/v1/queues/$QUEUE/jobs")
enq=$(redis-cli -p "$RPORT" llen "bull:$QUEUE:wait")
kill "${PIDS[-1]}"

NPORT=$(free_port)
"$NODE" "$BENCH_DIR/http-express.js" "$NPORT" "$REDIS_URL" "$QUEUE-node" "$SECRET" >"$WORK/node.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q ready "$WORK/node.log" 2>/dev/null && break; sleep 0.05; done
[[ $(probe "http://127.0.0.1:$NPORT/v1/queues/$QUEUE-node/jobs") == 201 ]] || die "the Express peer does not enqueue"
NODEJS=$(run node "http://127.0.0.1:$NPORT/v1/queues/$QUEUE-node/jobs")

enq_node=$(redis-cli -p "$RPORT" llen "bull:$QUEUE-node:wait")
printf '\nHTTP enqueue, %s connections, %s x %s runs per server (median shown), wrk %s threads,\n' \
  "$CONNECTIONS" "$DURATION" "$REPEAT" "$WRK_THREADS"
printf 'API event loops %s, rate limits %s, %s CPUs\n' "${HTTP_THREADS:-default}" \
  "$([[ $RATE_LIMITS == 1 ]] && echo 'on (far above the load)' || echo off)" "$(nproc)"
printf '%-22s %12s %10s %10s %8s %10s\n' server requests/s p50 p99 non-2xx jobs
read -r _ r1 a1 b1 c1 <<<"$ERPQ"
read -r _ r2 a2 b2 c2 <<<"$NODEJS"
printf '%-22s %12s %10s %10s %8s %10s\n' "erpq-producer serve" "$r1" "$a1" "$b1" "$c1" "$enq"
printf '%-22s %12s %10s %10s %8s %10s\n' "express + bull" "$r2" "$a2" "$b2" "$c2" "$enq_node"
awk -v a="$r1" -v b="$r2" 'BEGIN { if (b > 0) printf "ratio erpq/express: %.2fx requests/s (target >= 3x, p99 < 5 ms)\n", a / b }'
