#!/usr/bin/env bash
# bench/notifications.sh: e-mail throughput and the fee-reminder fan-out
# (see jobs/notifications/README.md, "Benchmark").
#
# 1. JOBS send-email jobs (template report-ready, one recipient each) to a
#    local SMTP sink (postfix smtp-sink, which takes every message and keeps
#    none), drained by
#      erpq  erpq-worker --queue email:ERPQ_CONCURRENCY (the notifications
#            family: dedup records and outbox rows in MariaDB included)
#      node  the textbook Node setup: a bull 4.16.5 worker rendering the
#            same templates with mustache.js and sending with nodemailer's
#            pooled SMTP transport (bench/notifications-textbook.js)
#    both with SMTP_CONNECTIONS connections. The clock runs from the
#    worker's spawn until bull's completed set holds every job (polled every
#    20 ms); peak RSS (VmHWM), peak anonymous memory (RssAnon, sampled at
#    each poll) and CPU (utime + stime) are the worker process's own. Printed: messages/s, peak RSS, CPU per message, and the
#    ratios against the targets (>= 3x nodemailer's messages/s, <= 1/10 of
#    its memory).
# 2. fee-reminders over STUDENTS students (seeded with SQL in a database of
#    the bench's own, every student owing two fees) for e-mail and SMS: the
#    time to enqueue every send (nothing serves email/sms meanwhile).
#
#   bench/notifications.sh
#   JOBS=20000 KINDS=erpq STUDENTS=0 bench/notifications.sh   (STUDENTS=0: no fan-out)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-10000}
CONNS=${SMTP_CONNECTIONS:-4}
ERPQ_C=${ERPQ_CONCURRENCY:-256}
NODE_C=${NODE_CONCURRENCY:-100}
STUDENTS=${STUDENTS:-50000}
PAGE=${PAGE:-1000}
KINDS=${KINDS:-erpq node}
WORKER=${ERPQ_WORKER:-$ROOT/build/bin/erpq-worker}
PRODUCER=${ERPQ_PRODUCER:-$(dirname "$WORKER")/erpq-producer}
CACHE=${ERPQ_TEST_CACHE:-$(dirname "$WORKER")/../test-cache}
CLK_TCK=$(getconf CLK_TCK)
say() { printf 'bench/notifications: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[[ -x "$WORKER" && -x "$PRODUCER" ]] || die "build erpq-worker and erpq-producer first ($WORKER)"
[[ -f "$ROOT/tests/interop/node_modules/nodemailer/package.json" ]] || die "nodemailer is missing: run scripts/deps"
export NODE_PATH="$ROOT/tests/interop/node_modules"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# shellcheck source=../scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
RUN=$(mktemp -d /tmp/erpq-bench-notify.XXXXXX)
WPID= SINKPID=
cleanup() {
  if [[ -n "$WPID" ]]; then kill -TERM "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; fi
  if [[ -n "$SINKPID" ]]; then exec 7>&- || true; wait "$SINKPID" 2>/dev/null || true; fi
  svc_stop_all "$RUN"
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
svc_start_all "$RUN" redis mariadb >/dev/null || die "could not start redis/mariadb"
RPORT=$SVC_REDIS_PORT
REDIS="redis://127.0.0.1:$RPORT/0"
SOCK=$SVC_MYSQL_SOCKET
MYSQL_BASE="mysql://erpq:erpqpw@127.0.0.1:$SVC_MYSQL_PORT"
rcli() { redis-cli -p "$RPORT" "$@"; }
sqlc() { local db=$1; shift; mariadb --no-defaults -S "$SOCK" -uroot -N -B "$db" "$@"; }

# The SMTP sink: postfix's smtp-sink through the test helper (it fetches
# the postfix package once into $CACHE); it runs while fd 7 is open.
mkfifo "$RUN/sink.in"
/usr/bin/python3 "$ROOT/jobs/notifications/tests/smtp_peers.py" sink --cache "$CACHE" \
  <"$RUN/sink.in" >"$RUN/sink.out" 2>"$RUN/sink.err" &
SINKPID=$!
exec 7>"$RUN/sink.in"
for _ in $(seq 1 1800); do grep -q '^READY' "$RUN/sink.out" 2>/dev/null && break; sleep 0.1; done
SINKPORT=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$RUN/sink.out")
[[ -n "$SINKPORT" ]] || die "smtp-sink did not start: $(cat "$RUN/sink.err")"
SMTP="smtp://127.0.0.1:$SINKPORT"

export ERPQ_MYSQL_URL="$MYSQL_BASE/erp"
"$WORKER" migrate >/dev/null
export ERPQ_MAIL_FROM="School Office <office@school.example>" ERPQ_SMTP_URL=$SMTP \
  ERPQ_SMTP_CONNECTIONS=$CONNS ERPQ_SMTP_MESSAGES_PER_CONNECTION=100 \
  ERPQ_UNSUBSCRIBE_URL=https://erp.example.test/unsubscribe \
  ERPQ_UNSUBSCRIBE_SECRET=bench-unsubscribe-secret-of-more-than-32-bytes

hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu_s() { awk -v t="$CLK_TCK" '{sub(/.*\) /, ""); split($0, f, " "); printf "%.3f", (f[12] + f[13]) / t}' "/proc/$1/stat"; }
declare -A SECS RSS CPU ANON

# One drain: JOBS waiting jobs under prefix $2, worker command "${@:3}".
measure() {
  local kind=$1 prefix=$2
  shift 2
  node "$ROOT/bench/notifications-textbook.js" enqueue "$REDIS" "$prefix" email "$JOBS"
  [[ $(rcli LLEN "$prefix:email:wait") == "$JOBS" ]] || die "$kind: enqueue failed"
  local t0=$EPOCHREALTIME
  "$@" >"$RUN/$kind.log" 2>&1 &
  WPID=$!
  local done=0 t1 anon=0 a
  while :; do
    a=$(awk '/RssAnon/ {print $2}' "/proc/$WPID/status" 2>/dev/null || echo 0)
    ((a > anon)) && anon=$a
    done=$(rcli ZCARD "$prefix:email:completed")
    [[ "$done" == "$JOBS" ]] && break
    kill -0 "$WPID" 2>/dev/null || die "$kind worker died: $(tail -5 "$RUN/$kind.log")"
    [[ $(rcli ZCARD "$prefix:email:failed") == 0 ]] || die "$kind: jobs failed: $(tail -5 "$RUN/$kind.log")"
    sleep 0.02
  done
  t1=$EPOCHREALTIME
  RSS[$kind]=$(hwm "$WPID")
  ANON[$kind]=$(awk -v k="$anon" 'BEGIN{printf "%.1f", k/1024}')
  CPU[$kind]=$(cpu_s "$WPID")
  SECS[$kind]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  kill -TERM "$WPID"; wait "$WPID" || true; WPID=
  say "$kind: $JOBS mails in ${SECS[$kind]} s, peak RSS ${RSS[$kind]} MiB, CPU ${CPU[$kind]} s"
}

for kind in $KINDS; do
  case $kind in
    erpq) measure erpq bq "$WORKER" --redis "$REDIS" --prefix bq --queue "email:$ERPQ_C" --log-level warn ;;
    node) measure node bn node "$ROOT/bench/notifications-textbook.js" worker "$REDIS" bn email "$SMTP" "$CONNS" \
            "$NODE_C" "$ROOT/templates" ;;
    *) die "unknown kind $kind" ;;
  esac
done
if [[ " $KINDS " == *" erpq "* ]]; then
  sent=$(sqlc erp -e "SELECT COUNT(*) FROM notifications WHERE status = 'sent'")
  [[ "$sent" == "$JOBS" ]] || die "erpq recorded $sent sends, expected $JOBS"
fi

printf '\nsend-email: %s jobs to postfix smtp-sink, %s SMTP connections (erpq concurrency %s, node concurrency %s)\n' \
  "$JOBS" "$CONNS" "$ERPQ_C" "$NODE_C"
printf 'host: %s, %s CPUs, load %s\n\n' "$(uname -r)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %12s %14s %15s %16s\n' kind seconds messages/s "peak RSS MiB" "peak anon MiB" "CPU µs/message"
for kind in $KINDS; do
  printf '%-6s %10s %12s %14s %15s %16s\n' "$kind" "${SECS[$kind]}" \
    "$(awk -v n="$JOBS" -v s="${SECS[$kind]}" 'BEGIN{printf "%.0f", n/s}')" "${RSS[$kind]}" "${ANON[$kind]}" \
    "$(awk -v n="$JOBS" -v c="${CPU[$kind]}" 'BEGIN{printf "%.0f", c*1e6/n}')"
done
if [[ -n "${SECS[erpq]:-}" && -n "${SECS[node]:-}" ]]; then
  r=$(awk -v a="${SECS[node]}" -v b="${SECS[erpq]}" 'BEGIN{printf "%.1f", a/b}')
  m=$(awk -v a="${RSS[node]}" -v b="${RSS[erpq]}" 'BEGIN{printf "%.1f", a/b}')
  c=$(awk -v a="${CPU[node]}" -v b="${CPU[erpq]}" 'BEGIN{printf "%.1f", a/b}')
  echo
  echo "erpq messages/s / nodemailer messages/s: ${r}x (target >= 3x: $(awk -v r="$r" 'BEGIN{print (r >= 3) ? "MET" : "MISSED"}'))"
  echo "nodemailer peak RSS / erpq peak RSS: ${m}x (target >= 10x: $(awk -v r="$m" 'BEGIN{print (r >= 10) ? "MET" : "MISSED"}'))"
  echo "nodemailer CPU per message / erpq CPU per message: ${c}x"
  echo "nodemailer peak anonymous memory / erpq's: $(awk -v a="${ANON[node]}" -v b="${ANON[erpq]}" 'BEGIN{printf "%.1f", a/b}')x" \
       "(peak RSS also counts the shared libraries' pages: about 15 MiB of erpq-worker's)"
fi

# ---- fee-reminders over STUDENTS students ---------------------------------------------
if ((STUDENTS > 0)); then
  mariadb --no-defaults -S "$SOCK" -uroot -e "CREATE DATABASE erp_fanout CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    GRANT ALL ON erp_fanout.* TO 'erpq'@'127.0.0.1'; GRANT ALL ON erp_fanout.* TO 'erpq'@'localhost'"
  export ERPQ_MYSQL_URL="$MYSQL_BASE/erp_fanout"
  "$WORKER" migrate >/dev/null
  "$WORKER" seed-demo --students 1 >/dev/null
  t0=$EPOCHREALTIME
  sqlc erp_fanout -e "
    INSERT INTO students (school_id, class_id, admission_no, first_name, last_name, status, parent_name,
                          parent_email, parent_phone)
    SELECT 1, c.id, CONCAT('B', LPAD(q.seq, 7, '0')), 'Student', CONCAT('No ', q.seq), 'active',
           CONCAT('Parent ', q.seq), CONCAT('parent', q.seq, '@example.org'),
           CONCAT('+91 97', LPAD(q.seq DIV 100000, 3, '0'), ' ', LPAD(q.seq MOD 100000, 5, '0'))
    FROM seq_1_to_$STUDENTS q
    JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM classes WHERE school_id = 1) c
      ON c.k = q.seq MOD 20;
    INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor, amount_minor, due_date, created_by_job)
    SELECT 1, s.id, fs.id, '2026-04', fs.amount_minor, fs.amount_minor, '2026-04-10', 'bench'
    FROM students s JOIN fee_structures fs ON fs.class_id = s.class_id
    WHERE s.school_id = 1 AND s.admission_no LIKE 'B%';"
  say "seeded $STUDENTS students and $((2 * STUDENTS)) fees in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
  DEFAULTERS=$(sqlc erp_fanout -e "SELECT COUNT(DISTINCT student_id) FROM fees WHERE status IN ('pending','partially_paid')
                                   AND amount_minor > paid_minor AND due_date <= '2026-04-30'")
  ERPQ_NOTIFY_PAGE_SIZE=$PAGE "$WORKER" --redis "$REDIS" --prefix fo --queue notifications:1 --log-level warn \
    >"$RUN/fanout.log" 2>&1 &
  WPID=$!
  sleep 0.5
  t0=$EPOCHREALTIME
  out=$("$PRODUCER" --redis "$REDIS" --prefix fo add notifications fee-reminders \
    --data '{"schoolId":1,"asOf":"2026-05-01","channels":["email","sms"]}' --wait --timeout 3600 | tail -1)
  t1=$EPOCHREALTIME
  frss=$(hwm "$WPID")
  kill -TERM "$WPID"; wait "$WPID" || true; WPID=
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  ne=$(rcli LLEN fo:email:wait); ns=$(rcli LLEN fo:sms:wait)
  [[ "$ne" == "$DEFAULTERS" && "$ns" == "$DEFAULTERS" ]] || die "fan-out enqueued $ne e-mails and $ns SMS for $DEFAULTERS defaulters"
  printf '\nfee-reminders: %s students, %s defaulters, e-mail + SMS, %s per page\n' "$STUDENTS" "$DEFAULTERS" "$PAGE"
  printf 'result: %s\n' "$out"
  printf 'every send enqueued in %s s (%s jobs/s); the worker peak RSS %s MiB\n' "$secs" \
    "$(awk -v n=$((ne + ns)) -v s="$secs" 'BEGIN{printf "%.0f", n/s}')" "$frss"
fi
