#!/usr/bin/env bash
# bench/reports.sh: the reports family (jobs/reports) on this machine, with
# a MariaDB, a Redis and an s3rver of its own, figures side by side:
#   1. a 1,000,000-row fee-collection CSV: erpq's job from enqueue to result
#      against the floor, `mariadb --batch --quick -e "<the job's query>" |
#      curl -T - <the same bucket>` (the same rows as tab-separated text,
#      streamed in one chunked PUT, which s3rver takes; target: erpq within
#      1.3x of the floor's wall time);
#   2. the worker's peak RSS for CSV and XLSX at 100,000 and 1,000,000 rows
#      (target: at most 32 MiB, the same at both sizes);
#   3. the same 1M-row XLSX through exceljs's stream.xlsx.WorkbookWriter
#      (bench/reports-exceljs.js, fed by the same mariadb --batch --quick
#      stream, then curl -T; target: erpq at least 3x faster with a tenth
#      of its memory);
#   4. a 100,000-row PDF: time and peak RSS.
# Each erpq measurement runs on a fresh erpq-worker (peak RSS is the
# process's VmHWM after the job); the best of REPEAT runs is shown.
#
#   bench/reports.sh                       (ROWS=1000000 SMALL=100000 REPEAT=2)
#   ROWS=200000 SMALL=50000 bench/reports.sh
#   PARTS="xlsx" bench/reports.sh          (csv: 1 and the CSV RSS; xlsx: 3 and
#                                           the XLSX RSS; pdf: 4; default all)
#
# The data: seed-demo with 20,000 students, then payments made by one
# INSERT ... SELECT from MariaDB's sequence engine, in paid_at order, so
# that April 2026 (Asia/Kolkata) has exactly ROWS payments and June SMALL.
# The InnoDB buffer pool is raised to 1 GiB (services.sh starts MariaDB
# with 64 MiB, a test setting) so that both sides read from memory.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-1000000}
SMALL=${SMALL:-100000}
REPEAT=${REPEAT:-2}
PARTS=" ${PARTS:-csv xlsx pdf} "
WORKER=${ERPQ_WORKER:-$ROOT/build/bin/erpq-worker}
PRODUCER=${ERPQ_PRODUCER:-$(dirname "$WORKER")/erpq-producer}
say() { printf 'bench/reports: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[[ -x "$WORKER" && -x "$PRODUCER" ]] || die "build erpq-worker and erpq-producer first ($WORKER)"
[[ -f "$ROOT/tests/interop/node_modules/exceljs/package.json" ]] \
  || die "exceljs is missing: npm install in tests/interop"
export NODE_PATH="$ROOT/tests/interop/node_modules"

# shellcheck source=../scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
RUN=$(mktemp -d /tmp/erpq-bench-reports.XXXXXX)
WPID=
cleanup() {
  if [[ -n "$WPID" ]]; then kill -TERM "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; fi
  svc_stop_all "$RUN"
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
svc_start_all "$RUN" redis mariadb s3 >/dev/null || die "could not start redis/mariadb/s3rver"
REDIS="redis://127.0.0.1:$SVC_REDIS_PORT/0"
S3="http://127.0.0.1:$SVC_S3_PORT"
export ERPQ_MYSQL_URL="mysql://erpq:erpqpw@127.0.0.1:$SVC_MYSQL_PORT/erp"
sqlr() { mariadb --no-defaults -S "$SVC_MYSQL_SOCKET" -uroot -N -B erp "$@"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

sqlr -e "SET GLOBAL innodb_buffer_pool_size = 1073741824" || say "could not raise the buffer pool"
say "seeding: migrate, seed-demo 20,000 students, $ROWS payments in April and $SMALL in June"
"$WORKER" migrate >/dev/null
"$WORKER" seed-demo --students 20000 --schools 1 >/dev/null
t0=$EPOCHREALTIME
have=$(sqlr -e "SELECT COUNT(*) FROM payments WHERE paid_at >= '2026-03-31 18:30:00' AND paid_at < '2026-04-30 18:30:00'")
nfees=$(sqlr -e "SELECT COUNT(*) FROM fees WHERE period = '2026-04'")
fee0=$(sqlr -e "SELECT MIN(id) FROM fees WHERE period = '2026-04'")
gen() { # gen N TAG START: N payments from START, in paid_at order over ~29 days
  sqlr -e "INSERT INTO payments (fee_id, student_id, amount_minor, method, external_ref, paid_at)
    SELECT f.id, f.student_id, 100 + MOD(q.seq * 7919, 500000),
      ELT(1 + MOD(q.seq, 6), 'cash', 'card', 'upi', 'bank_transfer', 'cheque', 'online'),
      CONCAT('$2-', q.seq), '$3' + INTERVAL (q.seq * 2500000 DIV $1) SECOND
    FROM seq_1_to_$1 q JOIN fees f ON f.id = $fee0 + MOD(q.seq, $nfees)"
}
gen $((ROWS - have)) B4 '2026-04-01 00:00:00'
gen "$SMALL" B6 '2026-06-01 00:00:00'
sqlr -e "ANALYZE TABLE payments, fees, students" >/dev/null
say "seeded in $(secs "$t0" "$EPOCHREALTIME") s"

# The job's query and variables (jobs/reports/erpq_reports_sql.c, the
# ordered plan it picks when one school has the period's payments).
VARS="SET @erpq_1 = 1, @erpq_2 = '2026-03-31 18:30:00', @erpq_3 = '2026-04-30 18:30:00', @erpq_4 = NULL, @erpq_5 = NULL;"
QUERY="SELECT STRAIGHT_JOIN p.paid_at, p.external_ref, s.admission_no, CONCAT_WS(' ', s.first_name, NULLIF(s.last_name, '')), CONCAT_WS(' ', c.name, NULLIF(c.section, '')), h.name, f.period, p.method, p.amount_minor FROM payments p FORCE INDEX (ix_payments_paid_at) JOIN students s ON s.id = p.student_id JOIN fees f ON f.id = p.fee_id JOIN fee_structures fs ON fs.id = f.fee_structure_id JOIN fee_heads h ON h.id = fs.fee_head_id JOIN classes c ON c.id = s.class_id WHERE p.paid_at >= @erpq_2 AND p.paid_at < @erpq_3 AND s.school_id = @erpq_1 ORDER BY p.paid_at, p.id"
stream() { mariadb --no-defaults -h 127.0.0.1 -P "$SVC_MYSQL_PORT" -uerpq -perpqpw --batch --quick -e "$VARS $QUERY" erp; }
put() { # put KEY: stdin (or a file with -T FILE) into the bucket
  curl -sS --fail -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$SVC_S3_KEY:$SVC_S3_SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "${2:--}" "$S3/$SVC_S3_BUCKET/$1"
}
say "checking the query (and warming the buffer pool)"
n=$(stream | wc -l) || die "the query failed"
[[ $((n - 1)) -eq $ROWS ]] || die "the query gives $((n - 1)) rows, expected $ROWS"

# run_job NAME DATA: one job on a fresh worker; sets T (s), R (MiB), OUT.
run_job() {
  ERPQ_S3_BUCKET=$SVC_S3_BUCKET ERPQ_S3_ENDPOINT=$S3 ERPQ_S3_ACCESS_KEY_ID=$SVC_S3_KEY \
    ERPQ_S3_SECRET_ACCESS_KEY=$SVC_S3_SECRET ERPQ_REPORT_TMPDIR=$RUN \
    "$WORKER" --redis "$REDIS" --queue reports:1 --log-level warn >"$RUN/worker.log" 2>&1 &
  WPID=$!
  local up=
  for _ in $(seq 1 100); do
    if [[ "$(redis-cli -u "$REDIS" CLIENT LIST 2>/dev/null | grep -c 'name=bull:')" -gt 0 ]]; then up=1; break; fi
    sleep 0.05
  done
  [[ -n "$up" ]] || die "erpq-worker did not start: $(cat "$RUN/worker.log")"
  local a b
  a=$EPOCHREALTIME
  OUT=$("$PRODUCER" --redis "$REDIS" add reports "$1" --data "$2" --wait --timeout 3600 | tail -1)
  b=$EPOCHREALTIME
  R=$(hwm "$WPID")
  kill -TERM "$WPID"; wait "$WPID" || true; WPID=
  T=$(secs "$a" "$b")
  [[ "$OUT" == *'"rows"'* ]] || die "the job failed: $OUT"
}
best() { printf '%s\n' "$@" | sort -g | head -1; }
APRIL='{"schoolId":1,"from":"2026-04-01","to":"2026-04-30","format":"FMT"}'
JUNE='{"schoolId":1,"from":"2026-06-01","to":"2026-06-30","format":"FMT"}'

declare -a FLOOR=(0) CSV_T=(0) CSV_R=(0) XLSX_T=(0) XLSX_R=(0) XJS_T=(0) XJS_R=(0)
CSV100_T=0 CSV100_R=0 X100_T=0 X100_R=0 PDF_T=0 PDF_R=0 CSV_BYTES=0 XLSX_BYTES=0 XJS_BYTES=0 PDF_BYTES=0
if [[ $PARTS == *" csv "* ]]; then
  FLOOR=() CSV_T=() CSV_R=()
  for i in $(seq 1 "$REPEAT"); do
    a=$EPOCHREALTIME; stream | put "bench/floor-$i.tsv"; b=$EPOCHREALTIME
    FLOOR+=("$(secs "$a" "$b")")
    run_job fee-collection "${APRIL/FMT/csv}"; CSV_T+=("$T"); CSV_R+=("$R")
    say "round $i: floor ${FLOOR[-1]} s, erpq CSV $T s ($R MiB)"
  done
  CSV_BYTES=$(grep -o '"bytes":[0-9]*' <<<"$OUT" | cut -d: -f2)
  grep -q '"key":"reports/1/2026-04/' <<<"$OUT" || die "unexpected result $OUT"
  run_job fee-collection "${JUNE/FMT/csv}"; CSV100_T=$T; CSV100_R=$R
fi
if [[ $PARTS == *" xlsx "* ]]; then
  XLSX_T=() XLSX_R=() XJS_T=() XJS_R=()
  run_job fee-collection "${JUNE/FMT/xlsx}"; X100_T=$T; X100_R=$R
  for i in $(seq 1 "$REPEAT"); do
    run_job fee-collection "${APRIL/FMT/xlsx}"; XLSX_T+=("$T"); XLSX_R+=("$R")
    XLSX_BYTES=$(grep -o '"bytes":[0-9]*' <<<"$OUT" | cut -d: -f2)
    a=$EPOCHREALTIME
    stream | /usr/bin/time -f '%M' -o "$RUN/node.rss" node "$ROOT/bench/reports-exceljs.js" "$RUN/exceljs.xlsx" 2>"$RUN/node.err"
    put "bench/exceljs-$i.xlsx" "$RUN/exceljs.xlsx"
    b=$EPOCHREALTIME
    XJS_T+=("$(secs "$a" "$b")")
    XJS_R+=("$(awk '{printf "%.1f", $1/1024}' "$RUN/node.rss")")
    say "round $i: erpq XLSX ${XLSX_T[-1]} s (${XLSX_R[-1]} MiB), exceljs ${XJS_T[-1]} s (${XJS_R[-1]} MiB)"
  done
  XJS_BYTES=$(stat -c %s "$RUN/exceljs.xlsx")
fi
if [[ $PARTS == *" pdf "* ]]; then
  run_job fee-collection "${JUNE/FMT/pdf}"; PDF_T=$T; PDF_R=$R
  PDF_BYTES=$(grep -o '"bytes":[0-9]*' <<<"$OUT" | cut -d: -f2)
fi

ft=$(best "${FLOOR[@]}"); ct=$(best "${CSV_T[@]}"); cr=$(best "${CSV_R[@]}")
xt=$(best "${XLSX_T[@]}"); xr=$(best "${XLSX_R[@]}"); jt=$(best "${XJS_T[@]}"); jr=$(best "${XJS_R[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (b == 0) printf "-"; else printf "%.2f", a/b}'; }
ok() { if awk "BEGIN{exit !($1)}"; then echo met; else echo MISSED; fi; }
cat <<EOF

bench/reports.sh: $ROWS / $SMALL rows, best of $REPEAT, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')

| measurement | erpq | reference | ratio | target |
|---|---:|---:|---:|---|
| $ROWS-row CSV, enqueue to result vs floor | $ct s | $ft s | $(ratio "$ct" "$ft")x | <= 1.3x: $(ok "$ct <= 1.3 * $ft") |
| peak worker RSS, CSV $SMALL / $ROWS rows | $CSV100_R / $cr MiB | | | <= 32 MiB, flat: $(ok "$cr <= 32 && $CSV100_R <= 32") |
| peak worker RSS, XLSX $SMALL / $ROWS rows | $X100_R / $xr MiB | | | <= 32 MiB, flat: $(ok "$xr <= 32 && $X100_R <= 32") |
| $ROWS-row XLSX, time vs exceljs | $xt s | $jt s | $(ratio "$jt" "$xt")x faster | >= 3x: $(ok "$jt >= 3 * $xt") |
| $ROWS-row XLSX, peak RSS vs exceljs | $xr MiB | $jr MiB | $(ratio "$xr" "$jr") | <= 0.10: $(ok "$xr <= 0.1 * $jr") |
| $SMALL-row PDF | $PDF_T s, $PDF_R MiB | | | |

files: CSV $CSV_BYTES bytes, XLSX $XLSX_BYTES (exceljs $XJS_BYTES), PDF $PDF_BYTES; smaller runs: CSV $SMALL rows $CSV100_T s, XLSX $SMALL rows $X100_T s
every run: floor ${FLOOR[*]} s; erpq CSV ${CSV_T[*]} s; erpq XLSX ${XLSX_T[*]} s; exceljs ${XJS_T[*]} s
EOF
