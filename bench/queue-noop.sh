#!/usr/bin/env bash
# queue-noop.sh - noop-job throughput of erpq-worker against a Node bull
# 4.16.5 worker, on one private redis-server. See bench/README.md.
#
#   bench/queue-noop.sh                       # JOBS=50000, CONCURRENCY="1 10 50", REPEAT=1
#   CONCURRENCY="10 50" JOBS=50000 REPEAT=3 bench/queue-noop.sh
#
# Env: JOBS, CONCURRENCY, REPEAT (median of N runs), KINDS ("erpq node"),
#      QUEUE (bench-noop), ERPQ_WORKER (build/bin/erpq-worker),
#      REDIS_SERVER / REDIS_CLI (from PATH), NODE (node), POLL_MS (20),
#      TIMEOUT_S (600 per run), RESULTS (keep the raw JSON lines here).
# Exits 0 when every run succeeded (targets missed or not); non-zero on errors.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

JOBS=${JOBS:-50000}
CONCURRENCY=${CONCURRENCY:-1 10 50}
REPEAT=${REPEAT:-1}
KINDS=${KINDS:-erpq node}
QUEUE=${QUEUE:-bench-noop}
ERPQ_WORKER=${ERPQ_WORKER:-$ROOT/build/bin/erpq-worker}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
NODE=${NODE:-node}
export POLL_MS=${POLL_MS:-20} TIMEOUT_S=${TIMEOUT_S:-600}

die() { echo "queue-noop: error: $*" >&2; exit 1; }
log() { echo "queue-noop: $*" >&2; }

[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive integer (got '$JOBS')"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive integer (got '$REPEAT')"
for c in $CONCURRENCY; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "bad concurrency '$c'"; done
[[ -n ${CONCURRENCY// /} ]] || die "CONCURRENCY is empty"
for k in $KINDS; do [[ $k == erpq || $k == node ]] || die "bad kind '$k' (erpq, node)"; done
[[ $QUEUE =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad QUEUE '$QUEUE'"
if [[ " $KINDS " == *" erpq "* ]]; then
  [[ -x $ERPQ_WORKER ]] || die "$ERPQ_WORKER not found; build it (see bench/README.md) or set ERPQ_WORKER"
fi
command -v "$REDIS_SERVER" >/dev/null || die "$REDIS_SERVER not found"
command -v "$REDIS_CLI" >/dev/null || die "$REDIS_CLI not found"
command -v "$NODE" >/dev/null || die "$NODE not found"

# bull 4.16.5 (and its ioredis) for the helpers.
for dir in "$ROOT/tests/interop/node_modules" /tmp/bullsrc/node_modules; do
  if [[ -f $dir/bull/package.json && -f $dir/ioredis/package.json ]]; then
    export NODE_PATH="$dir${NODE_PATH:+:$NODE_PATH}"
    break
  fi
done
BULL_VERSION=$("$NODE" -p 'require("bull/package.json").version' 2>/dev/null) ||
  die "bull not found: npm install in tests/interop (or set NODE_PATH)"
[[ $BULL_VERSION == 4.16.5 ]] || log "warning: bull is $BULL_VERSION, not 4.16.5"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export CLK_TCK ERPQ_WORKER

WORK=$(mktemp -d "${TMPDIR:-/tmp}/queue-noop.XXXXXX")
REDIS_PID=
HELPER_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # A helper still running (interrupted): measure.js kills its worker on SIGTERM.
  if [[ -n $HELPER_PID ]] && kill -0 "$HELPER_PID" 2>/dev/null; then
    kill -TERM "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
  fi
  if [[ -n $REDIS_PID ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
    kill "$REDIS_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Runs a node helper in the background and waits for it, so that a signal
# reaches the trap at once; stdout goes to file $1.
helper() {
  local out=$1 rc=0
  shift
  "$NODE" "$@" >"$out" &
  HELPER_PID=$!
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=
  return "$rc"
}

free_port() {
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# A private redis-server on a free loopback port (retried if the port is taken).
for attempt in 1 2 3 4 5; do
  PORT=$(free_port)
  "$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" --daemonize no &
  REDIS_PID=$!
  for _ in $(seq 100); do
    if "$REDIS_CLI" -p "$PORT" ping 2>/dev/null | grep -q PONG; then break; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$REDIS_PID" 2>/dev/null && "$REDIS_CLI" -p "$PORT" ping 2>/dev/null | grep -q PONG; then
    break
  fi
  log "redis-server on port $PORT did not start (attempt $attempt)"
  kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
done
[[ -n $REDIS_PID ]] || { tail -5 "$WORK/redis.log" >&2 2>/dev/null; die "cannot start redis-server"; }
URL="redis://127.0.0.1:$PORT/0"
rcli() { "$REDIS_CLI" -p "$PORT" "$@"; }

REDIS_VERSION=$(rcli info server | tr -d '\r' | sed -n 's/^redis_version://p')
# Where the worker binary came from: its CMake build dir, when there is one.
BUILD_INFO="build dir unknown"
CACHE="$(dirname "$ERPQ_WORKER")/../CMakeCache.txt"
if [[ " $KINDS " == *" erpq "* && -f $CACHE ]]; then
  BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$CACHE")
  SRC_DIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:[A-Z]*=//p' "$CACHE")
  SRC_REV=${ERPQ_REV:-$(git -C "$SRC_DIR" describe --always --dirty 2>/dev/null || echo "not a git tree")}
  BUILD_INFO="CMAKE_BUILD_TYPE=${BUILD_TYPE:-none}, source $SRC_DIR ($SRC_REV)"
  case $BUILD_TYPE in
    Release | RelWithDebInfo) ;;
    *) log "warning: $ERPQ_WORKER is a '${BUILD_TYPE:-none}' build; measure Release or RelWithDebInfo" ;;
  esac
fi
echo "queue-noop: JOBS=$JOBS CONCURRENCY=\"$CONCURRENCY\" REPEAT=$REPEAT queue=$QUEUE"
echo "  erpq-worker: $ERPQ_WORKER ($BUILD_INFO)"
echo "  node $("$NODE" --version), bull $BULL_VERSION; redis $REDIS_VERSION on 127.0.0.1:$PORT (pid $REDIS_PID)"
echo "  $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo

RESULTS_FILE="$WORK/results.jsonl"
: >"$RESULTS_FILE"
for c in $CONCURRENCY; do
  for rep in $(seq "$REPEAT"); do
    for kind in $KINDS; do
      [[ $(rcli flushall) == OK ]] || die "FLUSHALL failed"
      [[ $(rcli script flush) == OK ]] || die "SCRIPT FLUSH failed"
      helper /dev/null "$BENCH_DIR/lib/enqueue.js" "$URL" "$QUEUE" "$JOBS" 1000 ||
        die "enqueue failed ($kind c=$c run $rep)"
      helper "$WORK/run.json" "$BENCH_DIR/lib/measure.js" "$URL" "$QUEUE" "$JOBS" "$kind" "$c" ||
        die "measurement failed ($kind c=$c run $rep)"
      line=$(<"$WORK/run.json")
      echo "$line" >>"$RESULTS_FILE"
      log "$kind c=$c run $rep/$REPEAT: $("$NODE" -e '
        const r = JSON.parse(process.argv[1]);
        console.log(`${r.jobs_per_s.toFixed(0)} jobs/s, ${r.seconds.toFixed(2)} s, RSS ${r.rss_mib.toFixed(1)} MiB`);
      ' "$line")"
    done
  done
done

[[ -n ${RESULTS:-} ]] && cp "$RESULTS_FILE" "$RESULTS"
echo
"$NODE" "$BENCH_DIR/lib/report.js" "$RESULTS_FILE" "$CONCURRENCY" "$KINDS" || die "report failed"
