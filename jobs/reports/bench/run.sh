#!/usr/bin/env bash
# jobs/reports/bench/run.sh: wall time and peak RSS of the report writers.
#
#   jobs/reports/bench/run.sh [BUILD_DIR]        (default: build)
#
# Writes fee-collection-like rows with erpq-report-bench, one process per
# format and size so that each peak RSS is that run's alone:
#   CSV and XLSX at 100,000 and 1,000,000 rows (target: <= 32 MiB, flat),
#   PDF at 10,000, 50,000 and 100,000 rows (libharu holds the document in
#   memory: the figures size ERPQ_RW_PDF_MAX_ROWS).
# The files go to a temporary directory that is removed at the end.
# SIZES_CSV_XLSX / SIZES_PDF override the row counts.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${1:-$ROOT/build}
BIN=$BUILD/bin/erpq-report-bench
[[ -x $BIN ]] || { echo "build erpq-report-bench first: cmake --build $BUILD --target erpq-report-bench" >&2; exit 1; }

OUT=$(mktemp -d "${TMPDIR:-/tmp}/erpq-report-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

for n in ${SIZES_CSV_XLSX:-100000 1000000}; do
  for f in csv xlsx; do
    TMPDIR=$OUT "$BIN" "$f" "$n" "$OUT/report.$f"
    rm -f "$OUT/report.$f"
  done
done
for n in ${SIZES_PDF:-10000 50000 100000}; do
  "$BIN" pdf "$n" "$OUT/report.pdf" "$n"
  rm -f "$OUT/report.pdf"
done
