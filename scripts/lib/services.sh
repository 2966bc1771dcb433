# shellcheck shell=bash
# scripts/lib/services.sh: start and stop throwaway servers for tests and
# local runs. Source it; it defines functions only.
#
#   svc_redis_start   DIR [PORT] [redis-server args...]   data in DIR/redis
#   svc_mariadb_start DIR [PORT]                          data in DIR/mariadb
#   svc_s3_start      DIR [PORT]                          data in DIR/s3
#   svc_maildev_start DIR [SMTP_PORT] [WEB_PORT]          data in DIR/maildev
#   svc_redis_stop DIR / svc_mariadb_stop DIR / svc_s3_stop DIR / svc_maildev_stop DIR
#
#   svc_start_all DIR [redis] [mariadb] [s3] [maildev]    (default: all four)
#       starts them and exports the ERPQ_TEST_* variables (also written to
#       DIR/env for `source DIR/env` in another shell)
#   svc_stop_all [DIR]      stops every server recorded under DIR (default:
#                           the last svc_start_all DIR); never fails, so it
#                           is safe in an EXIT trap
#   svc_reset               empties the test Redis and the maildev inbox
#
# Rules kept here:
#   - every server listens on 127.0.0.1 only, on a port that was free when
#     it started: an empty or "auto" PORT probes from $ERPQ_TEST_PORT_BASE
#     (default 16400) up to $ERPQ_TEST_PORT_MAX (default 16999); if another
#     process takes the port first, the start is retried on the next one;
#   - readiness is probed (protocol ping + "our PID listens on the port"),
#     never slept for;
#   - each server's PID is recorded in DIR/<svc>/<svc>.pid, and stop kills
#     only that PID, after checking its command line is still that server.
#
# The file sets no shell options (it may be sourced into an interactive
# shell); its functions return non-zero on failure and print why, with the
# tail of the server's log.

SVC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SVC_NODE_MODULES="$SVC_ROOT/tests/interop/node_modules"
SVC_RUN_DIR=${SVC_RUN_DIR:-}
SVC__NEXT_PORT=
SVC_MYSQL_USER=erpq
SVC_MYSQL_PASSWORD=erpqpw
SVC_MYSQL_DATABASE=erp
SVC_S3_BUCKET=reports
SVC_S3_KEY=S3RVER        # s3rver's built-in access key id and secret
SVC_S3_SECRET=S3RVER

# ------------------------------------------------------------ helpers ----

svc__err() { printf 'services: ERROR: %s\n' "$*" >&2; }

# svc__now_ms: wall clock in milliseconds.
svc__now_ms() {
  local t=${EPOCHREALTIME//[.,]/}
  printf '%s' "${t:0:${#t}-3}"
}

# svc__alive PID: the process exists and is not a zombie.
svc__alive() {
  local pid=$1 line
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  { read -r line </proc/"$pid"/stat; } 2>/dev/null || return 1
  line=${line##*) }
  [[ -n "$line" && "${line:0:1}" != Z && "${line:0:1}" != X ]]
}

# svc__launch CMD... &: execs CMD, so it must be called in the background
# (with &: the background subshell becomes CMD and $! is CMD's PID). With
# SVC_SETSID set, CMD gets a session of its own: a terminal's Ctrl-C (sent
# to the caller's process group) then does not reach the server, and
# whoever started it stops it in order (scripts/run). setsid execs CMD in
# place (the subshell is no group leader), so $! stays the server's PID.
svc__launch() {
  if [[ -n "${SVC_SETSID:-}" ]]; then exec setsid "$@"; else exec "$@"; fi
}

# svc__port_listening PORT: a process listens on PORT (connections left in
# TIME_WAIT by an earlier run do not count).
svc__port_listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h="$hex" 'FNR > 1 && $4 == "0A" { n = split($2, a, ":"); if (a[n] == h) { found = 1; exit } }
                   END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# svc__port_in_use PORT: any TCP socket (any address, any state) on PORT
# (for picking a free port: a port with sockets in TIME_WAIT is skipped).
svc__port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h="$hex" 'FNR > 1 { n = split($2, a, ":"); if (a[n] == h) { found = 1; exit } }
                   END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# svc__pick_port: set SVC__PORT to the first free port at or after the last
# one handed out (so the servers of one run do not race each other for the
# same port). Not for $(...): the subshell would lose SVC__NEXT_PORT.
svc__pick_port() {
  local base=${ERPQ_TEST_PORT_BASE:-16400} max=${ERPQ_TEST_PORT_MAX:-16999} p
  if ((base > max)); then
    svc__err "ERPQ_TEST_PORT_BASE ($base) is above ERPQ_TEST_PORT_MAX ($max): set both"
    return 1
  fi
  p=${SVC__NEXT_PORT:-$base}
  ((p < base)) && p=$base
  while ((p <= max)); do
    if ! svc__port_in_use "$p"; then
      SVC__NEXT_PORT=$((p + 1))
      SVC__PORT=$p
      return 0
    fi
    p=$((p + 1))
  done
  svc__err "no free TCP port in $base..$max"
  return 1
}

# svc__pid_listens PID PORT: PID holds a listening TCP socket on PORT.
svc__pid_listens() {
  local pid=$1 hex ino
  hex=$(printf '%04X' "$2")
  # shellcheck disable=SC2013  # one inode number per line
  for ino in $(awk -v h="$hex" 'FNR > 1 && $4 == "0A" { n = split($2, a, ":"); if (a[n] == h) print $10 }' \
                 /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    if find /proc/"$pid"/fd -maxdepth 1 -lname "socket:\[$ino\]" 2>/dev/null | grep -q .; then
      return 0
    fi
  done
  return 1
}

# svc__wait_ready NAME PID TIMEOUT_S PROBE...: poll PROBE until it succeeds
# (0), PID dies (2) or TIMEOUT_S passes (1). Each probe must first check
# that PID owns the port (svc__pid_listens), so it never talks to a foreign
# server that won the port, and must bound its own time (timeout/--max-time).
svc__wait_ready() {
  local name=$1 pid=$2 timeout=$3 deadline
  shift 3
  deadline=$(($(svc__now_ms) + timeout * 1000))
  while :; do
    if ! svc__alive "$pid"; then return 2; fi
    if "$@" >/dev/null 2>&1; then return 0; fi
    if (($(svc__now_ms) > deadline)); then
      svc__err "$name (pid $pid) not ready after ${timeout}s"
      return 1
    fi
    sleep 0.05
  done
}

# svc__log_tail FILE...: show the end of the logs of a server that failed.
svc__log_tail() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# svc__running PIDFILE PATTERN: the recorded process is alive and its
# command line still matches PATTERN (guards against a reused PID).
svc__running() {
  local pid
  [[ -s "$1" ]] || return 1
  pid=$(<"$1")
  svc__alive "$pid" || return 1
  tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q -- "$2"
}

# svc__signal PIDFILE PATTERN: SIGTERM the recorded process if it is ours.
svc__signal() {
  if svc__running "$1" "$2"; then
    kill -TERM "$(<"$1")" 2>/dev/null || true
  fi
}

# svc__reap PIDFILE PATTERN [TIMEOUT_S]: wait for the recorded process to
# exit after svc__signal, SIGKILL it after TIMEOUT_S, remove the PID file.
svc__reap() {
  local pidfile=$1 pattern=$2 timeout=${3:-30} pid deadline
  [[ -e "$pidfile" ]] || return 0
  pid=$(<"$pidfile")
  deadline=$(($(svc__now_ms) + timeout * 1000))
  while svc__running "$pidfile" "$pattern"; do
    if (($(svc__now_ms) > deadline)); then
      printf 'services: %s (pid %s) ignored SIGTERM for %ss; sending SIGKILL\n' "$pattern" "$pid" "$timeout" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.05
  done
  rm -f "$pidfile"
}

svc__stop() {
  svc__signal "$1" "$2"
  svc__reap "$@"
}

# svc__check_sock PATH: unix socket paths are limited to 107 bytes.
svc__check_sock() {
  if ((${#1} > 100)); then
    svc__err "socket path too long (${#1} > 100 bytes): $1; use a shorter run dir"
    return 1
  fi
}

svc__need_node_module() {
  if [[ ! -f "$SVC_NODE_MODULES/$1" ]]; then
    svc__err "$SVC_NODE_MODULES/$1 is missing: run scripts/deps"
    return 1
  fi
}

# ------------------------------------------------------------- Redis ----

svc__redis_probe() { # PORT PID: PID listens on PORT and answers as process_id PID
  svc__pid_listens "$2" "$1" &&
    [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' |
          sed -n 's/^process_id://p')" == "$2" ]]
}

# svc_redis_start DIR [PORT] [extra redis-server args...]
# Sets SVC_REDIS_PORT and SVC_REDIS_SOCKET. Without extra args nothing is
# persisted (--save '' --appendonly no).
svc_redis_start() {
  local dir=${1:?svc_redis_start DIR [PORT] [args...]} want=${2:-auto} d port pid try rc
  shift; (($#)) && shift
  d="$dir/redis"
  mkdir -p "$d/data" || return 1
  d=$(cd "$d" && pwd)
  svc__check_sock "$d/redis.sock" || return 1
  if svc__running "$d/redis.pid" redis-server; then
    SVC_REDIS_PORT=$(<"$d/port"); SVC_REDIS_SOCKET="$d/redis.sock"
    return 0
  fi
  for try in 1 2 3 4 5; do
    if [[ "$want" == auto ]]; then svc__pick_port || return 1; port=$SVC__PORT; else port=$want; fi
    svc__launch redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$d/redis.sock" --unixsocketperm 700 \
      --dir "$d/data" --save '' --appendonly no --daemonize no --protected-mode yes \
      --logfile "$d/redis.log" --loglevel notice "$@" </dev/null >>"$d/redis.out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$d/redis.pid"
    rc=0
    svc__wait_ready redis "$pid" 20 svc__redis_probe "$port" "$pid" || rc=$?
    if ((rc == 0)); then
      printf '%s\n' "$port" >"$d/port"
      SVC_REDIS_PORT=$port SVC_REDIS_SOCKET="$d/redis.sock"
      return 0
    fi
    svc__stop "$d/redis.pid" redis-server 5
    if ((rc == 2)) && [[ "$want" == auto ]] && grep -qi 'already in use' "$d/redis.log" "$d/redis.out" 2>/dev/null; then
      : >"$d/redis.log"
      continue # someone took the port between probe and bind
    fi
    break
  done
  svc__err "redis-server did not start on 127.0.0.1:$port (try $try)"
  svc__log_tail "$d/redis.log" "$d/redis.out"
  return 1
}

svc_redis_stop() { svc__stop "${1:?svc_redis_stop DIR}/redis/redis.pid" redis-server 20; }

# ----------------------------------------------------------- MariaDB ----

svc__mariadb_probe() { # SOCK PORT PID
  svc__pid_listens "$3" "$2" &&
    timeout 5 mariadb-admin --no-defaults --socket="$1" -uroot --connect-timeout=2 ping
}

# svc_mariadb_start DIR [PORT]
# A private mariadbd (utf8mb4) with database `erp` and user erpq/erpqpw
# (all rights on `erp` and on any database named erp_*, so tests can make
# their own). Root: no password, over the socket only. Sets SVC_MYSQL_PORT,
# SVC_MYSQL_SOCKET.
svc_mariadb_start() {
  local dir=${1:?svc_mariadb_start DIR [PORT]} want=${2:-auto} d port pid try rc userarg=()
  d="$dir/mariadb"
  mkdir -p "$d" || return 1
  d=$(cd "$d" && pwd)
  svc__check_sock "$d/mysqld.sock" || return 1
  [[ $(id -u) -eq 0 ]] && userarg=(--user=root)
  if svc__running "$d/mariadb.pid" mariadbd; then
    SVC_MYSQL_PORT=$(<"$d/port"); SVC_MYSQL_SOCKET="$d/mysqld.sock"
    return 0
  fi
  if [[ ! -d "$d/data/mysql" ]]; then
    if ! mariadb-install-db --no-defaults "${userarg[@]}" --datadir="$d/data" \
         --auth-root-authentication-method=normal --skip-test-db \
         --innodb-log-file-size=16M </dev/null >"$d/install.log" 2>&1; then
      svc__err "mariadb-install-db failed"
      svc__log_tail "$d/install.log"
      return 1
    fi
  fi
  for try in 1 2 3 4 5; do
    if [[ "$want" == auto ]]; then svc__pick_port || return 1; port=$SVC__PORT; else port=$want; fi
    : >"$d/error.log"
    svc__launch mariadbd --no-defaults "${userarg[@]}" --datadir="$d/data" --port="$port" \
      --bind-address=127.0.0.1 --socket="$d/mysqld.sock" --pid-file="$d/mariadbd.pid" \
      --log-error="$d/error.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
      --skip-log-bin --skip-name-resolve --max-connections=300 \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      </dev/null >>"$d/mariadbd.out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$d/mariadb.pid"
    rc=0
    svc__wait_ready mariadbd "$pid" 60 svc__mariadb_probe "$d/mysqld.sock" "$port" "$pid" || rc=$?
    if ((rc == 0)); then break; fi
    svc__stop "$d/mariadb.pid" mariadbd 30
    if ((rc == 2)) && [[ "$want" == auto ]] && grep -qiE 'already in use|bind on tcp' "$d/error.log" 2>/dev/null; then
      continue
    fi
    svc__err "mariadbd did not start on 127.0.0.1:$port (try $try)"
    svc__log_tail "$d/error.log" "$d/mariadbd.out"
    return 1
  done
  if ((rc != 0)); then
    svc__err "mariadbd: no usable port after $try tries"
    return 1
  fi
  local u=$SVC_MYSQL_USER pw=$SVC_MYSQL_PASSWORD db=$SVC_MYSQL_DATABASE
  if ! mariadb --no-defaults --socket="$d/mysqld.sock" -uroot >"$d/setup.log" 2>&1 <<SQL
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`$db\`.* TO '$u'@'localhost';
GRANT ALL PRIVILEGES ON \`$db\`.* TO '$u'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`${db}\\_%\`.* TO '$u'@'localhost';
GRANT ALL PRIVILEGES ON \`${db}\\_%\`.* TO '$u'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
  then
    svc__err "mariadb: creating database $db and user $u failed"
    svc__log_tail "$d/setup.log"
    svc__stop "$d/mariadb.pid" mariadbd 30
    return 1
  fi
  printf '%s\n' "$port" >"$d/port"
  SVC_MYSQL_PORT=$port SVC_MYSQL_SOCKET="$d/mysqld.sock"
}

svc_mariadb_stop() { svc__stop "${1:?svc_mariadb_stop DIR}/mariadb/mariadb.pid" mariadbd 60; }

# ------------------------------------------------------------ s3rver ----

svc__s3_probe() { # PORT PID
  svc__pid_listens "$2" "$1" &&
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/$SVC_S3_BUCKET"
}

# svc_s3_start DIR [PORT]: s3rver with bucket `reports` (path-style URLs,
# access key/secret S3RVER/S3RVER; signatures are not checked). Sets
# SVC_S3_PORT.
svc_s3_start() {
  local dir=${1:?svc_s3_start DIR [PORT]} want=${2:-auto} d port pid try rc
  svc__need_node_module s3rver/bin/s3rver.js || return 1
  d="$dir/s3"
  mkdir -p "$d/data" || return 1
  d=$(cd "$d" && pwd)
  if svc__running "$d/s3rver.pid" s3rver; then SVC_S3_PORT=$(<"$d/port"); return 0; fi
  for try in 1 2 3 4 5; do
    if [[ "$want" == auto ]]; then svc__pick_port || return 1; port=$SVC__PORT; else port=$want; fi
    : >"$d/s3rver.log"
    svc__launch node "$SVC_NODE_MODULES/s3rver/bin/s3rver.js" --directory "$d/data" --address 127.0.0.1 \
      --port "$port" --configure-bucket "$SVC_S3_BUCKET" </dev/null >>"$d/s3rver.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$d/s3rver.pid"
    rc=0
    svc__wait_ready s3rver "$pid" 30 svc__s3_probe "$port" "$pid" || rc=$?
    if ((rc == 0)); then
      printf '%s\n' "$port" >"$d/port"
      SVC_S3_PORT=$port
      return 0
    fi
    svc__stop "$d/s3rver.pid" s3rver 10
    if ((rc == 2)) && [[ "$want" == auto ]] && grep -q EADDRINUSE "$d/s3rver.log" 2>/dev/null; then continue; fi
    break
  done
  svc__err "s3rver did not start on 127.0.0.1:$port (try $try)"
  svc__log_tail "$d/s3rver.log"
  return 1
}

svc_s3_stop() { svc__stop "${1:?svc_s3_stop DIR}/s3/s3rver.pid" s3rver 20; }

# ----------------------------------------------------------- maildev ----

svc__maildev_probe() { # SMTP WEB PID
  svc__pid_listens "$3" "$1" && svc__pid_listens "$3" "$2" &&
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$2/api/email"
}

# svc_maildev_start DIR [SMTP_PORT] [WEB_PORT]: maildev 3 with its own mail
# directory; REST API under http://127.0.0.1:WEB/api/ (GET /api/email,
# DELETE /api/email/all, ...). Sets SVC_SMTP_PORT and SVC_MAILDEV_WEB_PORT.
svc_maildev_start() {
  local dir=${1:?svc_maildev_start DIR [SMTP_PORT] [WEB_PORT]} want_s=${2:-auto} want_w=${3:-auto}
  local d sport wport pid try rc
  svc__need_node_module maildev/dist/bin/maildev.js || return 1
  d="$dir/maildev"
  mkdir -p "$d/mail" || return 1
  d=$(cd "$d" && pwd)
  if svc__running "$d/maildev.pid" maildev; then
    read -r SVC_SMTP_PORT SVC_MAILDEV_WEB_PORT <"$d/port"
    return 0
  fi
  for try in 1 2 3 4 5; do
    if [[ "$want_s" == auto ]]; then svc__pick_port || return 1; sport=$SVC__PORT; else sport=$want_s; fi
    if [[ "$want_w" == auto ]]; then svc__pick_port || return 1; wport=$SVC__PORT; else wport=$want_w; fi
    : >"$d/maildev.log"
    svc__launch node "$SVC_NODE_MODULES/maildev/dist/bin/maildev.js" --smtp "$sport" --ip 127.0.0.1 \
      --web "$wport" --web-ip 127.0.0.1 --mail-directory "$d/mail" \
      </dev/null >>"$d/maildev.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$d/maildev.pid"
    rc=0
    svc__wait_ready maildev "$pid" 30 svc__maildev_probe "$sport" "$wport" "$pid" || rc=$?
    if ((rc == 0)); then
      printf '%s %s\n' "$sport" "$wport" >"$d/port"
      SVC_SMTP_PORT=$sport SVC_MAILDEV_WEB_PORT=$wport
      return 0
    fi
    svc__stop "$d/maildev.pid" maildev 10
    if ((rc == 2)) && [[ "$want_s$want_w" == autoauto ]] && grep -q EADDRINUSE "$d/maildev.log" 2>/dev/null; then continue; fi
    break
  done
  svc__err "maildev did not start on 127.0.0.1:$sport/$wport (try $try)"
  svc__log_tail "$d/maildev.log"
  return 1
}

svc_maildev_stop() { svc__stop "${1:?svc_maildev_stop DIR}/maildev/maildev.pid" maildev 20; }

# ------------------------------------------------------------ bundle ----

# svc_start_all DIR [redis] [mariadb] [s3] [maildev]
# Starts the named servers (default: all) under DIR and exports:
#   ERPQ_TEST_RUN_DIR
#   ERPQ_TEST_REDIS_URL    redis://127.0.0.1:PORT/0
#   ERPQ_TEST_REDIS_PORT, ERPQ_TEST_REDIS_SOCKET
#   ERPQ_TEST_MYSQL_URL    mysql://erpq:erpqpw@127.0.0.1:PORT/erp
#   ERPQ_TEST_MYSQL_PORT, ERPQ_TEST_MYSQL_SOCKET (root without password here)
#   ERPQ_TEST_S3_URL       http://127.0.0.1:PORT (path-style; bucket below)
#   ERPQ_TEST_S3_BUCKET, ERPQ_TEST_S3_ACCESS_KEY, ERPQ_TEST_S3_SECRET_KEY,
#   ERPQ_TEST_S3_REGION
#   ERPQ_TEST_SMTP_URL     smtp://127.0.0.1:PORT
#   ERPQ_TEST_SMTP_PORT
#   ERPQ_TEST_MAILDEV_API  http://127.0.0.1:PORT/api  (GET $API/email, ...)
# and writes the same as `export` lines to DIR/env. On failure, stops what
# it started and returns non-zero.
svc_start_all() {
  local dir=${1:?svc_start_all DIR [services...]} s t0 vars=()
  shift
  local want=("$@")
  ((${#want[@]})) || want=(redis mariadb s3 maildev)
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd)
  SVC_RUN_DIR=$dir
  export ERPQ_TEST_RUN_DIR=$dir
  vars+=(ERPQ_TEST_RUN_DIR)
  t0=$(svc__now_ms)
  for s in "${want[@]}"; do
    case $s in
      redis)
        svc_redis_start "$dir" || { svc_stop_all "$dir"; return 1; }
        export ERPQ_TEST_REDIS_PORT=$SVC_REDIS_PORT
        export ERPQ_TEST_REDIS_URL="redis://127.0.0.1:$SVC_REDIS_PORT/0"
        export ERPQ_TEST_REDIS_SOCKET=$SVC_REDIS_SOCKET
        vars+=(ERPQ_TEST_REDIS_URL ERPQ_TEST_REDIS_PORT ERPQ_TEST_REDIS_SOCKET) ;;
      mariadb|mysql)
        svc_mariadb_start "$dir" || { svc_stop_all "$dir"; return 1; }
        export ERPQ_TEST_MYSQL_PORT=$SVC_MYSQL_PORT
        export ERPQ_TEST_MYSQL_URL="mysql://$SVC_MYSQL_USER:$SVC_MYSQL_PASSWORD@127.0.0.1:$SVC_MYSQL_PORT/$SVC_MYSQL_DATABASE"
        export ERPQ_TEST_MYSQL_SOCKET=$SVC_MYSQL_SOCKET
        vars+=(ERPQ_TEST_MYSQL_URL ERPQ_TEST_MYSQL_PORT ERPQ_TEST_MYSQL_SOCKET) ;;
      s3)
        svc_s3_start "$dir" || { svc_stop_all "$dir"; return 1; }
        export ERPQ_TEST_S3_URL="http://127.0.0.1:$SVC_S3_PORT"
        export ERPQ_TEST_S3_BUCKET=$SVC_S3_BUCKET ERPQ_TEST_S3_REGION=us-east-1
        export ERPQ_TEST_S3_ACCESS_KEY=$SVC_S3_KEY ERPQ_TEST_S3_SECRET_KEY=$SVC_S3_SECRET
        vars+=(ERPQ_TEST_S3_URL ERPQ_TEST_S3_BUCKET ERPQ_TEST_S3_REGION
               ERPQ_TEST_S3_ACCESS_KEY ERPQ_TEST_S3_SECRET_KEY) ;;
      maildev|smtp)
        svc_maildev_start "$dir" || { svc_stop_all "$dir"; return 1; }
        export ERPQ_TEST_SMTP_PORT=$SVC_SMTP_PORT
        export ERPQ_TEST_SMTP_URL="smtp://127.0.0.1:$SVC_SMTP_PORT"
        export ERPQ_TEST_MAILDEV_API="http://127.0.0.1:$SVC_MAILDEV_WEB_PORT/api"
        vars+=(ERPQ_TEST_SMTP_URL ERPQ_TEST_SMTP_PORT ERPQ_TEST_MAILDEV_API) ;;
      *)
        svc__err "svc_start_all: unknown service '$s' (redis, mariadb, s3, maildev)"
        svc_stop_all "$dir"
        return 1 ;;
    esac
  done
  local v
  for v in "${vars[@]}"; do printf 'export %s=%q\n' "$v" "${!v}"; done >"$dir/env"
  # shellcheck disable=SC2034  # read by the callers (scripts/test)
  SVC_START_MS=$(($(svc__now_ms) - t0))
}

# svc_stop_all [DIR]: SIGTERM every recorded server at once, then wait for
# each (SIGKILL after its grace). Idempotent; always returns 0.
svc_stop_all() {
  local dir=${1:-$SVC_RUN_DIR}
  [[ -n "$dir" && -d "$dir" ]] || return 0
  svc__signal "$dir/maildev/maildev.pid" maildev
  svc__signal "$dir/s3/s3rver.pid" s3rver
  svc__signal "$dir/mariadb/mariadb.pid" mariadbd
  svc__signal "$dir/redis/redis.pid" redis-server
  svc__reap "$dir/maildev/maildev.pid" maildev 20
  svc__reap "$dir/s3/s3rver.pid" s3rver 20
  svc__reap "$dir/mariadb/mariadb.pid" mariadbd 60
  svc__reap "$dir/redis/redis.pid" redis-server 20
  return 0
}

# svc_reset: empty the test Redis and the maildev inbox between suites.
svc_reset() {
  if [[ -n "${ERPQ_TEST_REDIS_PORT:-}" ]]; then
    redis-cli -h 127.0.0.1 -p "$ERPQ_TEST_REDIS_PORT" flushall >/dev/null || return 1
  fi
  if [[ -n "${ERPQ_TEST_MAILDEV_API:-}" ]]; then
    curl -fsS -o /dev/null -X DELETE "$ERPQ_TEST_MAILDEV_API/email/all" || return 1
  fi
}
