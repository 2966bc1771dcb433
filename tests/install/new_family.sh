#!/usr/bin/env bash
# tests/install/new_family.sh SOURCE_DIR: a new job family needs nothing but
# its own folder.
#
# Copies the committed tree (git ls-files) to a temporary directory, adds
# jobs/greetings/ exactly as the README's "Writing a job family" shows it
# (CMakeLists.txt, schemas/hello.json, greetings.c) and touches nothing
# else; builds erpq-worker and erpq-producer there; then checks that
#   - `erpq-worker families` lists greetings with its queue and job;
#   - the producer CLI knows the new queue and job name and checks the job
#     against its schema (a bad one is refused before sending);
#   - a worker started with `--queue greetings` runs the job, whose result
#     is what the handler returned;
#   - a build with -DERPQ_FAMILIES=diag,greetings leaves the fee family out
#     without any other change, and its worker no longer knows `fees`.
# Needs ERPQ_TEST_REDIS_URL; fails, never skips.
set -euo pipefail
SRC=$(cd "${1:?SOURCE_DIR}" && pwd)
: "${ERPQ_TEST_REDIS_URL:?ERPQ_TEST_REDIS_URL is not set (scripts/test starts the test Redis)}"
T=$(mktemp -d "${TMPDIR:-/tmp}/erpq-newfam.XXXXXX")
W=
cleanup() {
  [[ -z "$W" ]] || kill "$W" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { printf 'new_family: FAIL: %s\n' "$*" >&2; exit 1; }

(cd "$SRC" && git ls-files -z | xargs -0 -I{} cp --parents {} "$T/") || fail "cannot copy the tree"
mkdir -p "$T/jobs/greetings/schemas"
cat >"$T/jobs/greetings/CMakeLists.txt" <<'EOF'
erpq_family(greetings QUEUES greetings SUMMARY "says hello" SOURCES greetings.c)
EOF
cat >"$T/jobs/greetings/schemas/hello.json" <<'EOF'
{"type": "object", "required": ["who"], "additionalProperties": false,
 "properties": {"who": {"type": "string", "minLength": 1}}}
EOF
cat >"$T/jobs/greetings/greetings.c" <<'EOF'
#include <errno.h>
#include <string.h>

#include "erpq_err.h"
#include "erpq_family.h"

static int hello(erpq_jobctx *ctx, const json_t *data, json_t **result,
                 char *err, size_t errlen) {
  /* data already matches schemas/hello.json; this runs on a pool thread. */
  const char *who = json_string_value(json_object_get(data, "who"));
  if (!strcmp(who, "nobody")) {
    erpq_job_discard(ctx);           /* bad input: fail for good, no retry */
    return erpq_fail(err, errlen, -EINVAL, "nobody to greet");
  }
  erpq_job_log(ctx, "greeting");
  *result = json_pack("{s:s}", "greeting", who);
  return 0;
}

static const erpq_family_job jobs[] = {{"hello", hello}, {NULL, NULL}};
const erpq_family erpq_family_greetings = {.name = "greetings", .jobs = jobs};
EOF


build() { # DIR [cmake args...]
  local b=$1; shift
  cmake -S "$T" -B "$b" -DCMAKE_BUILD_TYPE=Release -DERPQ_TESTS=OFF "$@" >"$b.log" 2>&1 &&
    cmake --build "$b" -j "${ERPQ_BUILD_JOBS:-2}" --target erpq-worker erpq-producer >>"$b.log" 2>&1 ||
    { tail -n 40 "$b.log" >&2; fail "the tree with jobs/greetings does not build"; }
}
build "$T/build"
B="$T/build/bin"
"$B/erpq-worker" families | grep -A2 '^greetings: says hello' | grep -q 'default queues: greetings' ||
  { "$B/erpq-worker" families >&2; fail "erpq-worker families does not list greetings"; }
"$B/erpq-worker" families | grep -A2 '^greetings:' | grep -q 'jobs: hello' || fail "greetings' job is not listed"

R=$ERPQ_TEST_REDIS_URL
PFX="newfam$$"
set +e
out=$("$B/erpq-producer" --redis "$R" --prefix "$PFX" add greetings hello --data '{"who":5}' 2>&1)
rc=$?
set -e
[[ $rc == 2 && "$out" == *"/data/who"* ]] || fail "the CLI did not check the new job's schema (exit $rc): $out"
"$B/erpq-worker" --redis "$R" --prefix "$PFX" --queue greetings --log-level warn >"$T/worker.log" 2>&1 &
W=$!
res=$(timeout 30 "$B/erpq-producer" --redis "$R" --prefix "$PFX" add greetings hello --data '{"who":"world"}' --wait 2>"$T/add.err" | tail -n 1) ||
  { cat "$T/add.err" "$T/worker.log" >&2; fail "the greetings job did not complete"; }
[[ "$res" == '{"greeting":"world"}' ]] || fail "result '$res'"
kill "$W"; wait "$W" || true; W=
redis-cli -u "$R" --scan --pattern "$PFX:*" | xargs -r redis-cli -u "$R" del >/dev/null

# Leaving a family out takes one flag and no other change.
build "$T/build-some" -DERPQ_FAMILIES=diag,greetings
"$T/build-some/bin/erpq-worker" families | grep -q '^fees:' && fail "fees is still built in"
set +e
out=$("$T/build-some/bin/erpq-worker" --redis "$R" --queue bulk-operations 2>&1)
rc=$?
set -e
[[ $rc == 2 && "$out" == *"no job family serves it"* ]] || fail "a worker without fees accepted bulk-operations ($rc): $out"
echo "new_family: OK"
