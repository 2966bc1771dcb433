#!/usr/bin/env bash
# bench/fees.sh: fee generation on a seeded school, three ways (see bench/README.md):
#   erpq      one generate-fees job on erpq-worker (batches in transactions)
#   sql       one INSERT ... SELECT of the same rows through the mariadb client
#   textbook  Node bull addBulk, one job per student, Node bull worker doing
#             one INSERT per job with mysql2 (CONCURRENCY, default 1 = bull's own default)
# Each writes its own period, so every run inserts the full set of rows.
# Prints rows/s, peak RSS and the ratios against the targets (erpq within
# 1.5x of sql's time, at least 20x faster than textbook).
#
#   STUDENTS=100000 bench/fees.sh       (default 100000 students x 2 structures)
#   KINDS="erpq sql" STUDENTS=20000 bench/fees.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STUDENTS=${STUDENTS:-100000}
KINDS=${KINDS:-erpq sql textbook}
CONCURRENCY=${CONCURRENCY:-1}
WORKER=${ERPQ_WORKER:-$ROOT/build/bin/erpq-worker}
PRODUCER=${ERPQ_PRODUCER:-$(dirname "$WORKER")/erpq-producer}
BATCH=${ERPQ_FEES_BATCH:-1000}
say() { printf 'bench/fees: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[[ -x "$WORKER" && -x "$PRODUCER" ]] || die "build erpq-worker and erpq-producer first ($WORKER)"

# mysql2 for the textbook pattern lives under bench/node_modules only, in
# its own prefix (.erpq-fees), so that other benches' npm installs into
# bench/node_modules (which prune what they did not install) leave it alone.
FEES_NM="$ROOT/bench/node_modules/.erpq-fees"
if [[ " $KINDS " == *" textbook "* && ! -f "$FEES_NM/node_modules/mysql2/package.json" ]]; then
  say "installing mysql2 into $FEES_NM (npm)"
  mkdir -p "$FEES_NM"
  npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix "$FEES_NM" mysql2@3 >&2 \
    || die "npm install mysql2 failed"
fi
export NODE_PATH="$FEES_NM/node_modules:$ROOT/tests/interop/node_modules"

# shellcheck source=../scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
RUN=$(mktemp -d /tmp/erpq-bench-fees.XXXXXX)
WPID=
cleanup() {
  [[ -n "$WPID" ]] && kill -TERM "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
  svc_stop_all "$RUN"
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
svc_start_all "$RUN" redis mariadb >/dev/null || die "could not start redis/mariadb"
SOCK=$SVC_MYSQL_SOCKET
REDIS="redis://127.0.0.1:$SVC_REDIS_PORT/0"
export ERPQ_MYSQL_URL="mysql://erpq:erpqpw@127.0.0.1:$SVC_MYSQL_PORT/erp"
sqlc() { mariadb --no-defaults -S "$SOCK" -uroot -N -B erp "$@"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

say "seeding $STUDENTS students (migrate + seed-demo), all active"
"$WORKER" migrate >/dev/null
t0=$EPOCHREALTIME
"$WORKER" seed-demo --students "$STUDENTS" --schools 1 >/dev/null
sqlc -e "UPDATE students SET status = 'active'"
say "seeded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
EXPECT=$(sqlc -e "SELECT COUNT(*) FROM students s JOIN fee_structures fs ON fs.school_id = s.school_id AND fs.active = 1 AND (fs.class_id = s.class_id OR fs.class_id IS NULL) WHERE s.school_id = 1")
FP="SELECT CONCAT_WS('/', COUNT(*), SUM(amount_minor), SUM(concession_minor)) FROM fees WHERE period = "
declare -A SECS RSS ROWS

for kind in $KINDS; do
  case $kind in
    erpq)
      sqlc -e "SET GLOBAL innodb_flush_log_at_trx_commit = 1" || true
      ERPQ_FEES_BATCH=$BATCH "$WORKER" --redis "$REDIS" --queue bulk-operations:1 --log-level warn >/dev/null &
      WPID=$!
      sleep 0.3
      t0=$EPOCHREALTIME
      out=$("$PRODUCER" --redis "$REDIS" add bulk-operations generate-fees \
        --data '{"schoolId":1,"period":"2030-01","dueDate":"2030-01-10"}' --wait --timeout 3600 | tail -1)
      t1=$EPOCHREALTIME
      RSS[erpq]=$(hwm "$WPID")
      kill -TERM "$WPID"; wait "$WPID" || true; WPID=
      ROWS[erpq]=$(sqlc -e "SELECT COUNT(*) FROM fees WHERE period = '2030-01'")
      SECS[erpq]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
      say "erpq: $out"
      FP_ERPQ=$(sqlc -e "$FP '2030-01'") ;;
    sql)
      t0=$EPOCHREALTIME
      sqlc -e "INSERT INTO fees (school_id, student_id, fee_structure_id, period, gross_minor, concession_minor,
                 amount_minor, due_date, created_by_job)
               SELECT school_id, sid, fsid, '2030-02', gross, conc, gross - conc, '2030-02-10', 'sql' FROM (
                 SELECT s.school_id, s.id AS sid, fs.id AS fsid, fs.amount_minor AS gross,
                   LEAST(fs.amount_minor, COALESCE((SELECT SUM(IF(c.kind = 'percent',
                       (fs.amount_minor * c.percent_bp + 5000) DIV 10000, c.amount_minor))
                     FROM student_concessions c WHERE c.student_id = s.id
                       AND (c.fee_head_id IS NULL OR c.fee_head_id = fs.fee_head_id)
                       AND (c.valid_from IS NULL OR c.valid_from <= '2030-02-10')
                       AND (c.valid_to IS NULL OR c.valid_to >= '2030-02-10')), 0)) AS conc
                 FROM students s JOIN fee_structures fs ON fs.school_id = s.school_id AND fs.active = 1
                   AND (fs.class_id = s.class_id OR fs.class_id IS NULL)
                 WHERE s.school_id = 1 AND s.status = 'active' ORDER BY s.id, fs.id) x
               ON DUPLICATE KEY UPDATE id = id"
      t1=$EPOCHREALTIME
      RSS[sql]="-"
      ROWS[sql]=$(sqlc -e "SELECT COUNT(*) FROM fees WHERE period = '2030-02'")
      SECS[sql]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
      FP_SQL=$(sqlc -e "$FP '2030-02'") ;;
    textbook)
      out=$(node "$ROOT/bench/fees-textbook.js" run "$REDIS" "$ERPQ_MYSQL_URL" 1 2030-03 2030-03-10 "$CONCURRENCY")
      say "textbook: $out"
      SECS[textbook]=$(node -e 'console.log(JSON.parse(process.argv[1]).seconds.toFixed(3))' "$out")
      RSS[textbook]=$(node -e 'const o=JSON.parse(process.argv[1]);console.log(o.workerRssMiB.toFixed(1)+"+"+o.producerRssMiB.toFixed(1))' "$out")
      ROWS[textbook]=$(sqlc -e "SELECT COUNT(*) FROM fees WHERE period = '2030-03'")
      FP_TB=$(sqlc -e "$FP '2030-03'") ;;
    *) die "unknown kind $kind" ;;
  esac
done

printf '\nfee generation: %s students, %s fee rows expected per run (batch %s, textbook concurrency %s)\n' \
  "$STUDENTS" "$EXPECT" "$BATCH" "$CONCURRENCY"
printf 'host: %s, %s CPUs, load %s\n\n' "$(uname -r)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %10s %10s %12s %16s\n' kind rows seconds rows/s "peak RSS MiB"
for kind in $KINDS; do
  printf '%-10s %10s %10s %12s %16s\n' "$kind" "${ROWS[$kind]}" "${SECS[$kind]}" \
    "$(awk -v r="${ROWS[$kind]}" -v s="${SECS[$kind]}" 'BEGIN{printf "%.0f", r/s}')" "${RSS[$kind]}"
  [[ "${ROWS[$kind]}" == "$EXPECT" ]] || die "$kind wrote ${ROWS[$kind]} rows, expected $EXPECT"
done
echo
if [[ -n "${FP_ERPQ:-}" && -n "${FP_SQL:-}" ]]; then
  [[ "$FP_ERPQ" == "$FP_SQL" ]] || die "erpq and sql rows differ: $FP_ERPQ vs $FP_SQL"
  r=$(awk -v a="${SECS[erpq]}" -v b="${SECS[sql]}" 'BEGIN{printf "%.2f", a/b}')
  m=$(awk -v r="$r" 'BEGIN{print (r <= 1.5) ? "MET" : "MISSED"}')
  echo "erpq time / INSERT...SELECT time: ${r}x (target <= 1.5x: $m); same rows and amounts ($FP_ERPQ)"
fi
if [[ -n "${FP_ERPQ:-}" && -n "${FP_TB:-}" ]]; then
  [[ "$FP_ERPQ" == "$FP_TB" ]] || die "erpq and textbook rows differ: $FP_ERPQ vs $FP_TB"
  r=$(awk -v a="${SECS[textbook]}" -v b="${SECS[erpq]}" 'BEGIN{printf "%.1f", a/b}')
  m=$(awk -v r="$r" 'BEGIN{print (r >= 20) ? "MET" : "MISSED"}')
  echo "textbook time / erpq time: ${r}x (target >= 20x: $m)"
fi
