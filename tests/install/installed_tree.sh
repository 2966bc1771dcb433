#!/usr/bin/env bash
# tests/install/installed_tree.sh BUILD_DIR SOURCE_DIR: an installed erpq
# works with no source tree.
#
#   1. `cmake --install BUILD_DIR --prefix P` into a fresh temporary prefix;
#   2. in a private mount namespace, empty tmpfs mounts hide SOURCE_DIR,
#      BUILD_DIR and the compiled-in data directory, so nothing but P can
#      be read;
#   3. from P: `erpq-worker families` lists the built-in families; the
#      HTTP API starts with the installed roles.json and answers 422 to
#      invalid job data; the worker fails a job whose data breaks its schema
#      (added with the CLI, past the API) with the schema problems as its
#      failedReason; the systemd units name P's paths;
#   4. with P/share/erpq taken away, the API refuses to start and names
#      every place it looked for roles.json (no silent start without
#      policy), and a roles override that does not exist is refused by name.
# Needs root (unshare --mount) and ERPQ_TEST_REDIS_URL; fails, never skips.
set -euo pipefail
BUILD=$(cd "${1:?BUILD_DIR}" && pwd)
SRC=$(cd "${2:?SOURCE_DIR}" && pwd)
: "${ERPQ_TEST_REDIS_URL:?ERPQ_TEST_REDIS_URL is not set (scripts/test starts the test Redis)}"
command -v unshare >/dev/null || { echo "unshare (util-linux) is missing" >&2; exit 1; }

P=$(mktemp -d "${TMPDIR:-/tmp}/erpq-prefix.XXXXXX")
trap 'rm -rf "$P"' EXIT
cmake --install "$BUILD" --prefix "$P" >"$P.install.log" 2>&1 || { cat "$P.install.log" >&2; exit 1; }
rm -f "$P.install.log"

fail() { printf 'installed_tree: FAIL: %s\n' "$*" >&2; exit 1; }
for f in bin/erpq-worker bin/erpq-producer share/erpq/roles.json share/erpq/openapi.yaml \
         share/erpq/migrations/0001_core.sql share/erpq/schemas/jobs/fees/generate-fees.json \
         share/erpq/templates/email/fee-reminder.en.subject.mustache \
         lib/systemd/system/erpq-worker.service lib/systemd/system/erpq-api.service \
         etc/erpq/erpq.env.example; do
  [[ -e "$P/$f" ]] || fail "cmake --install did not install $f"
done
grep -q "^ExecStart=$P/bin/erpq-worker\$" "$P/lib/systemd/system/erpq-worker.service" ||
  fail "erpq-worker.service does not run $P/bin/erpq-worker"
grep -q "^EnvironmentFile=$P/etc/erpq/erpq.env\$" "$P/lib/systemd/system/erpq-api.service" ||
  fail "erpq-api.service does not read $P/etc/erpq/erpq.env"

# The part that runs with the trees hidden.
cat >"$P/check.sh" <<'CHECK'
set -euo pipefail
P=$1
fail() { printf 'installed_tree: FAIL: %s\n' "$*" >&2; exit 1; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
SECRET=install-test-secret-0123456789abcdef0123
now=$(date +%s)
head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
body=$(printf '{"sub":"svc","role":"backend","exp":%d}' $((now + 600)) | b64url)
sig=$(printf '%s.%s' "$head" "$body" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)
TOKEN="$head.$body.$sig"
R=$ERPQ_TEST_REDIS_URL
PFX="inst$$"

"$P/bin/erpq-worker" families | grep -q '^fees:' || fail "erpq-worker families does not list fees"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ERPQ_JWT_SECRET=$SECRET "$P/bin/erpq-producer" --redis "$R" --prefix "$PFX" serve \
  --listen "127.0.0.1:$port" >"$P/api.log" 2>&1 &
api=$!
worker=
cleanup() {
  kill "$api" 2>/dev/null || true
  [[ -z "$worker" ]] || kill "$worker" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$api" 2>/dev/null || { cat "$P/api.log" >&2; fail "the installed API did not start"; }
  sleep 0.1
done
code=$(curl -s -o "$P/422.json" -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/queues/bulk-operations/jobs" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"generate-fees","data":{"schoolId":"x","period":"2026-13"}}')
[[ "$code" == 422 ]] || { cat "$P/422.json" >&2; fail "invalid fee job data answered $code, not 422"; }
grep -q '/data/schoolId' "$P/422.json" && grep -q '/data/period' "$P/422.json" && grep -q '/data/dueDate' "$P/422.json" ||
  { cat "$P/422.json" >&2; fail "the 422 does not list every problem"; }

# The worker: a diag job with bad data, added by the CLI past the API.
Q="inst-q-$$"
"$P/bin/erpq-worker" --redis "$R" --prefix "$PFX" --queue "$Q@diag" --log-level warn >"$P/worker.log" 2>&1 &
worker=$!
id=$("$P/bin/erpq-producer" --redis "$R" --prefix "$PFX" add "$Q" sleep --no-validate --data '{"ms":"soon"}' 2>"$P/add.err") ||
  id=$("$P/bin/erpq-producer" --redis "$R" --prefix "$PFX" add "$Q" sleep --data '{"ms":"soon"}')
reason=
for _ in $(seq 1 100); do
  reason=$("$P/bin/erpq-producer" --redis "$R" --prefix "$PFX" status "$Q" "$id" 2>/dev/null | jq -r '.failedReason // empty' || true)
  [[ -n "$reason" ]] && break
  kill -0 "$worker" 2>/dev/null || { cat "$P/worker.log" >&2; fail "the installed worker exited"; }
  sleep 0.1
done
[[ "$reason" == *"job data does not match its schema"*"/data/ms"* ]] ||
  { cat "$P/worker.log" >&2; fail "failedReason is '$reason', not the schema problems"; }
kill "$api" "$worker"
wait "$api" "$worker" || true
worker=
redis-cli -u "$R" --scan --pattern "$PFX:*" | xargs -r redis-cli -u "$R" del >/dev/null

# No data directory at all: refuse to start, naming what was looked for.
mv "$P/share/erpq" "$P/share/erpq.away"
if ERPQ_JWT_SECRET=$SECRET "$P/bin/erpq-producer" --redis "$R" serve --listen "127.0.0.1:$port" >"$P/nodata.log" 2>&1; then
  fail "the API started without roles.json"
fi
grep -q "roles.json not found" "$P/nodata.log" && grep -q "$P/share/erpq/roles.json" "$P/nodata.log" ||
  { cat "$P/nodata.log" >&2; fail "the refusal does not name where it looked"; }
mv "$P/share/erpq.away" "$P/share/erpq"
if ERPQ_ROLES_FILE=/nonexistent/roles.json ERPQ_JWT_SECRET=$SECRET "$P/bin/erpq-producer" --redis "$R" serve \
     --listen "127.0.0.1:$port" >"$P/override.log" 2>&1; then
  fail "the API started with a roles override that does not exist"
fi
grep -q "ERPQ_ROLES_FILE: /nonexistent/roles.json does not exist" "$P/override.log" ||
  { cat "$P/override.log" >&2; fail "the override refusal does not name it"; }
echo "installed_tree: OK"
CHECK

# Hide the trees: the source (and so a build under it), the build, and the
# compiled-in data directory if this machine has one.
hide=("$SRC" "$BUILD")
for d in /usr/local/share/erpq /usr/share/erpq; do [[ -d "$d" ]] && hide+=("$d"); done
# Deeper paths first: once the source is covered, a build inside it can no
# longer be mounted over.
mounts=""
while read -r d; do mounts+="mount -t tmpfs none '$d'; "; done < <(printf '%s\n' "${hide[@]}" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
unshare --mount --fork bash -c "set -e; cd /; mount --make-rprivate /; $mounts
  [ -z \"\$(ls -A '$SRC')\" ] || { echo 'installed_tree: the source tree is still visible' >&2; exit 1; }
  exec bash '$P/check.sh' '$P'"
