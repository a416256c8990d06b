#!/usr/bin/env bash
# Fuzz the real admin API of a patchbay binary with Schemathesis, driven by the server's own
# OpenAPI document (/openapi.json).
#
#   tests/fuzz/schemathesis.sh [PATH/TO/patchbay]
#
# 1. Installs Schemathesis (pinned, with every dependency at the exact version listed in
#    tests/fuzz/requirements.txt) into a venv under ${PATCHBAY_CACHE:-$HOME/.cache/patchbay}/
#    schemathesis-venv with python3; the venv is reused while it was built from the same
#    requirements file and holds schemathesis==4.32.5.
# 2. Starts `patchbay serve` (default binary: ${CARGO_TARGET_DIR:-$HOME/.cache/patchbay/target}/
#    debug/patchbay) on a free loopback port (it binds 127.0.0.1:0 and the script reads the port it
#    prints) with a fresh data dir in a temp dir (SQLite; DATABASE_URL and the other PATCHBAY_*
#    settings of the environment are not passed on), and reads the operator token it prints once.
# 3. As the operator, creates a tenant and a tenant API key holding every scope the document lists
#    (components.schemas.ApiKey.properties.scopes), with curl; then, as the tenant, seeds objects
#    for the fuzzer to find (installations of the reference connectors notify-webhook, csv-source
#    and standard-webhooks, routes, schedules, a sync run, a signed webhook giving an event with a
#    dead delivery). Their ids go into dictionaries appended to a copy of
#    tests/fuzz/schemathesis.toml, so generated ids are real ones often enough to get past 404.
#    Every URL a seeded connector may call is on 127.0.0.1:9, which the host's egress policy
#    refuses (loopback): nothing the fuzzer triggers leaves the host.
# 4. Runs Schemathesis twice against http://127.0.0.1:PORT/openapi.json, once with the operator
#    token and once with the tenant key: every check (`--checks all`; the few per-operation
#    adjustments are in schemathesis.toml, each with its reason), the phases examples, coverage,
#    fuzzing and stateful, reports (JUnit XML, NDJSON events, HAR of every exchange) in the temp
#    dir. tests/fuzz/hooks.py lets it send POST /v1/connectors's `application/wasm` body.
# 5. Fails (exit 1) when either run reports a failure or an error, when the server process died,
#    or when its log contains `panicked`; prints the tail of the server log then. The server is
#    always stopped on exit.
#
# Needs only python3 (with venv and network access to PyPI for the first install), curl and the
# binary. Budget: on this project's 2-core machine, with a debug build, the two runs with the
# default 80 examples take about 5 minutes together (25 examples: 2 minutes); a first venv install
# adds ~30 s and startup plus seeding ~5 s, so the script stays under ~8 minutes.
# Tunables (environment): SCHEMATHESIS_MAX_EXAMPLES (default 80 test cases per operation and
# phase), SCHEMATHESIS_WORKERS (default 2: one per core, the server shares them),
# SCHEMATHESIS_SEED (default 1; fixed so a CI failure reproduces), SCHEMATHESIS_REQUEST_TIMEOUT
# (seconds, default 10), PATCHBAY_FUZZ_DIR (where the temp dir is made, default $TMPDIR or /tmp).
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUIREMENTS="$HERE/requirements.txt"
CACHE_DIR="${PATCHBAY_CACHE:-$HOME/.cache/patchbay}"
VENV="$CACHE_DIR/schemathesis-venv"
BIN="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/patchbay/target}/debug/patchbay}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-80}"
WORKERS="${SCHEMATHESIS_WORKERS:-2}"
SEED="${SCHEMATHESIS_SEED:-1}"
REQUEST_TIMEOUT="${SCHEMATHESIS_REQUEST_TIMEOUT:-10}"

log() { printf '== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ -x "$BIN" ]] || die "no patchbay binary at $BIN (build it first, or pass its path as \$1)"
command -v python3 >/dev/null || die "python3 is not on PATH"
command -v curl >/dev/null || die "curl is not on PATH"

# ---------------------------------------------------------------------------------------------
# 1. Schemathesis in its own venv.
# ---------------------------------------------------------------------------------------------
venv_start=$SECONDS
req_sum="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
venv_ok() {
    [[ -x "$VENV/bin/schemathesis" ]] &&
        [[ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" == "$req_sum" ]] &&
        "$VENV/bin/python" - "$SCHEMATHESIS_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata, sys
sys.exit(importlib.metadata.version("schemathesis") != sys.argv[1])
EOF
}
if venv_ok; then
    log "schemathesis $SCHEMATHESIS_VERSION: reusing $VENV"
else
    log "schemathesis $SCHEMATHESIS_VERSION: installing into $VENV"
    grep -qx "schemathesis==$SCHEMATHESIS_VERSION" "$REQUIREMENTS" ||
        die "$REQUIREMENTS does not pin schemathesis==$SCHEMATHESIS_VERSION"
    rm -rf "$VENV"
    mkdir -p "$CACHE_DIR"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQUIREMENTS"
    "$VENV/bin/python" -m pip check --disable-pip-version-check
    echo "$req_sum" >"$VENV/.requirements.sha256"
fi
"$VENV/bin/schemathesis" --version
venv_secs=$((SECONDS - venv_start))

# ---------------------------------------------------------------------------------------------
# 2. The server, on a free port with a fresh data dir.
# ---------------------------------------------------------------------------------------------
WORK="$(mktemp -d "${PATCHBAY_FUZZ_DIR:-${TMPDIR:-/tmp}}/patchbay-fuzz.XXXXXX")"
SERVER_LOG="$WORK/server.log"
SERVER_PID=""

server_alive() { [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; }
show_server_log() {
    echo "---- last 80 lines of the server log ($SERVER_LOG) ----" >&2
    tail -n 80 "$SERVER_LOG" | sed -E 's/pb[ok]_[A-Za-z0-9_-]+/pb?_<redacted>/g' >&2 || true
    echo "----" >&2
}
cleanup() {
    local rc=$?
    if server_alive; then
        kill -INT "$SERVER_PID" 2>/dev/null || true # graceful shutdown (it handles Ctrl-C)
        for _ in $(seq 50); do server_alive || break; sleep 0.2; done
        server_alive && kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    echo "fuzz artifacts (server log, data dir, reports): $WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting $BIN serve (data dir $WORK/data)"
(
    cd "$WORK" # no ./patchbay.toml or ./patchbay-data of the caller is picked up
    exec env -u DATABASE_URL -u PATCHBAY_CONFIG -u PATCHBAY_ADMIN_TOKEN -u PATCHBAY_MASTER_KEY \
        -u PATCHBAY_LISTEN -u PATCHBAY_DATA_DIR -u PATCHBAY_EGRESS_ALLOW_NETWORKS \
        RUST_BACKTRACE=1 "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data"
) >"$SERVER_LOG" 2>&1 </dev/null &
SERVER_PID=$!

# The address line and the operator token come before "ready"; a debug build may take a while.
deadline=$((SECONDS + 180))
until grep -q '^ready' "$SERVER_LOG"; do
    server_alive || { show_server_log; die "the server exited during startup"; }
    ((SECONDS < deadline)) || { show_server_log; die "the server was not ready after 180 s"; }
    sleep 0.5
done
BASE="$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$SERVER_LOG" | head -n1 | sed 's/^listening on //')"
OPERATOR_TOKEN="$(grep -oE 'operator token \(shown once, stored hashed\): pbo_[A-Za-z0-9_-]+' "$SERVER_LOG" |
    head -n1 | sed 's/.*: //')"
[[ -n "$BASE" ]] || { show_server_log; die "no 'listening on http://127.0.0.1:PORT' line in the server log"; }
[[ -n "$OPERATOR_TOKEN" ]] || { show_server_log; die "no operator token in the server log"; }
for _ in $(seq 60); do
    curl -fsS -o /dev/null "$BASE/healthz" && break
    sleep 0.5
done
curl -fsS -o /dev/null "$BASE/healthz" || { show_server_log; die "$BASE/healthz does not answer 200"; }
log "server up at $BASE (pid $SERVER_PID)"

# ---------------------------------------------------------------------------------------------
# 3. A tenant, an all-scope tenant key, and objects for the fuzzer to find.
# ---------------------------------------------------------------------------------------------
api() { # TOKEN METHOD PATH [JSON]: prints the body; fails, showing the answer, unless it is a 2xx
    local args=(-sS --fail-with-body -X "$2" "$BASE$3" -H "authorization: Bearer $1") out
    if [[ $# -ge 4 ]]; then args+=(-H 'content-type: application/json' --data "$4"); fi
    if ! out="$(curl "${args[@]}")"; then
        printf 'error: %s %s answered: %s\n' "$2" "$3" "$out" >&2
        return 1
    fi
    printf '%s\n' "$out"
}
op() { api "$OPERATOR_TOKEN" "$@"; }
tn() { api "$TENANT_KEY" "$@"; }
json_get() { # PYTHON-EXPRESSION over `d`, the JSON document on stdin
    "$VENV/bin/python" -c "import json, sys; d = json.load(sys.stdin); print($1)"
}
id_of() { json_get 'd["id"]'; } # the "id" of the JSON answer on stdin

curl -fsS "$BASE/openapi.json" >"$WORK/openapi.json"
SCOPES_JSON="$(json_get 'json.dumps(d["components"]["schemas"]["ApiKey"]["properties"]["scopes"]["items"]["enum"])' \
    <"$WORK/openapi.json")"
TENANT=fuzz-tenant
op POST /v1/tenants "{\"id\": \"$TENANT\", \"name\": \"schemathesis\"}" >/dev/null
TENANT_KEY="$(op POST "/v1/tenants/$TENANT/keys" "{\"name\": \"schemathesis\", \"scopes\": $SCOPES_JSON}" |
    json_get 'd["token"]')"
[[ "$TENANT_KEY" == pbk_* ]] || die "the key creation answered no pbk_ token"
# A second key, the only one the operator run may revoke (DELETE /v1/tenants/{tenant}/keys/{key}).
SPARE_KEY_ID="$(op POST "/v1/tenants/$TENANT/keys" '{"name": "spare", "scopes": ["view"]}' | id_of)"
log "tenant $TENANT with a key holding scopes $SCOPES_JSON"

# Every URL a seeded connector may call is on 127.0.0.1:9, which the host's default egress policy
# refuses (loopback): invoking, health-checking or syncing them never sends a request anywhere.
install() { # CONNECTOR NAME CONFIG-JSON
    tn POST /v1/installations "{\"connector\": \"$1\", \"name\": \"$2\", \"config\": $3}"
}
INS_NOTIFY="$(install notify-webhook fuzz-notify '{"webhook_url": "http://127.0.0.1:9/notify"}' | id_of)"
INS_NOTIFY_VICTIM="$(install notify-webhook fuzz-notify-victim '{"webhook_url": "http://127.0.0.1:9/notify"}' | id_of)"
INS_CSV="$(install csv-source fuzz-csv '{"url": "http://127.0.0.1:9/rows.csv"}' | id_of)"
install standard-webhooks fuzz-inbound '{"url": "http://127.0.0.1:9/subscriber"}' >"$WORK/inbound.json"
INS_INBOUND="$(id_of <"$WORK/inbound.json")"
HOOK_ID="$(json_get 'd["webhook_url"].rsplit("/", 1)[1]' <"$WORK/inbound.json")"
WEBHOOK_SECRET="whsec_$("$VENV/bin/python" -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
tn PUT "/v1/installations/$INS_INBOUND/credentials" "{\"webhook_secret\": \"$WEBHOOK_SECRET\"}" >/dev/null
route() { # NAME
    tn POST /v1/routes "{\"name\": \"$1\", \"event_types\": [\"*\"], \"source_installation\": \"$INS_INBOUND\",
        \"destination_installation\": \"$INS_NOTIFY\", \"operation\": \"send\"}" | id_of
}
ROUTE="$(route fuzz-route)"
ROUTE_VICTIM="$(route fuzz-route-victim)"
schedule() { # INSTALLATION: a disabled schedule that would fire once a year (one per stream)
    tn POST /v1/schedules "{\"installation\": \"$1\", \"entity\": \"rows\", \"interval_secs\": 31622400,
        \"enabled\": false}" | id_of
}
SCHEDULE="$(schedule "$INS_CSV")"
SCHEDULE_VICTIM="$(schedule "$(install csv-source fuzz-csv-2 '{"url": "http://127.0.0.1:9/rows.csv"}' | id_of)")"
RUN="$(tn POST /v1/syncs "{\"installation\": \"$INS_CSV\", \"entity\": \"rows\"}" | id_of)"
# One signed Standard Webhook into the inbound installation: an event, routed to notify-webhook
# whose `send` rejects its payload, so the delivery is dead at once (something to redrive).
read -r WH_ID WH_TS WH_SIG WH_BODY < <("$VENV/bin/python" - "$WEBHOOK_SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
secret = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
msg_id, ts = "msg_schemathesis_seed", str(int(time.time()))
body = json.dumps({"type": "fuzz.seeded", "timestamp": "2026-01-01T00:00:00Z", "data": {"n": 1}}, separators=(",", ":"))
sig = base64.b64encode(hmac.new(secret, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
print(msg_id, ts, "v1," + sig, body)
EOF
)
EVENT="$(curl -sS --fail-with-body -X POST "$BASE/hooks/$HOOK_ID" -H "webhook-id: $WH_ID" -H "webhook-timestamp: $WH_TS" \
    -H "webhook-signature: $WH_SIG" -H 'content-type: application/json' --data "$WH_BODY" | json_get 'd["events"][0]')"
DELIVERY=""
for _ in $(seq 40); do
    DELIVERY="$(tn GET "/v1/events/$EVENT" | json_get '",".join(x["id"] for x in d.get("deliveries", []))')"
    [[ -n "$DELIVERY" ]] && break
    sleep 0.5
done
[[ -n "$DELIVERY" ]] || die "event $EVENT got no delivery"
# Operation names and versions of the seeded connectors, connector ids of the catalog.
OPERATIONS=""
VERSIONS=""
for ins in "$INS_NOTIFY" "$INS_CSV" "$INS_INBOUND"; do
    tn GET "/v1/installations/$ins" >"$WORK/ins.json"
    version="$(json_get 'd["version"]' <"$WORK/ins.json")"
    VERSIONS+="$version,"
    OPERATIONS+="$(tn GET "/v1/connectors/$(json_get 'd["connector"]' <"$WORK/ins.json")/versions/$version" |
        json_get '",".join(o["name"] for o in d["operations"])'),"
done
CONNECTORS="$(tn GET /v1/connectors | json_get '",".join(c["id"] for c in d["connectors"])')"
log "seeded: installations $INS_NOTIFY $INS_CSV $INS_INBOUND (+ $INS_NOTIFY_VICTIM), routes $ROUTE (+ $ROUTE_VICTIM),"
log "        schedules $SCHEDULE (+ $SCHEDULE_VICTIM), run $RUN, event $EVENT, delivery $DELIVERY, hook $HOOK_ID"

# The config: tests/fuzz/schemathesis.toml plus a dictionary of real ids per kind.
CONFIG="$WORK/schemathesis.toml"
cp "$HERE/schemathesis.toml" "$CONFIG"
dictionary() { # NAME COMMA-SEPARATED-VALUES
    "$VENV/bin/python" - "$1" "$2" >>"$CONFIG" <<'EOF'
import json, sys
values = list(dict.fromkeys(v for v in sys.argv[2].split(",") if v))
assert values, f"no values for dictionary {sys.argv[1]}"
print(f"\n[dictionaries.{sys.argv[1]}]\nvalues = {json.dumps(values)}")
EOF
}
dictionary tenants "$TENANT"
dictionary keys_spare "$SPARE_KEY_ID"
dictionary installations "$INS_NOTIFY,$INS_CSV,$INS_INBOUND"
dictionary installations_victim "$INS_NOTIFY_VICTIM"
dictionary sync_installations "$INS_CSV"
dictionary routes "$ROUTE"
dictionary routes_victim "$ROUTE_VICTIM"
dictionary schedules "$SCHEDULE"
dictionary schedules_victim "$SCHEDULE_VICTIM"
dictionary runs "$RUN"
dictionary events "$EVENT"
dictionary deliveries "$DELIVERY"
dictionary hooks "$HOOK_ID"
dictionary entities rows
dictionary operations "$OPERATIONS"
dictionary versions "$VERSIONS"
dictionary connectors "$CONNECTORS"

# ---------------------------------------------------------------------------------------------
# 4. Schemathesis, as the operator and as the tenant.
# ---------------------------------------------------------------------------------------------
fuzz_start=$SECONDS
failed=()
run_schemathesis() { # NAME TOKEN
    local name="$1" token="$2" report="$WORK/report-$1"
    local cmd=(
        "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$BASE/openapi.json"
        --checks all
        --phases examples,coverage,fuzzing,stateful
        --max-examples "$MAX_EXAMPLES"
        --workers "$WORKERS"
        --seed "$SEED"
        --request-timeout "$REQUEST_TIMEOUT"
        --continue-on-failure
        --generation-database none
        --header "Authorization: Bearer $token"
        --report junit,ndjson,har
        --report-dir "$report"
        --no-color
    )
    log "schemathesis as $name: ${cmd[*]/$token/<token>}"
    local t0=$SECONDS
    # cwd = the temp dir, so nothing Schemathesis writes lands in the work tree.
    if (cd "$WORK" && SCHEMATHESIS_HOOKS="$HERE/hooks.py" "${cmd[@]}") 2>&1 | tee "$WORK/schemathesis-$name.log"; then
        log "schemathesis as $name: passed in $((SECONDS - t0)) s"
    else
        log "schemathesis as $name: FAILED in $((SECONDS - t0)) s (reports in $report)"
        failed+=("schemathesis as $name")
    fi
}
run_schemathesis operator "$OPERATOR_TOKEN"
run_schemathesis tenant "$TENANT_KEY"
fuzz_secs=$((SECONDS - fuzz_start))

# ---------------------------------------------------------------------------------------------
# 5. Verdict.
# ---------------------------------------------------------------------------------------------
server_alive || failed+=("the server process died during the fuzzing")
if grep -q 'panicked' "$SERVER_LOG"; then
    failed+=("the server log contains 'panicked'")
    grep -n -A3 'panicked' "$SERVER_LOG" | head -n 40 >&2
fi
log "timing: venv ${venv_secs} s, server + fuzzing $((SECONDS - venv_start - venv_secs)) s (schemathesis runs ${fuzz_secs} s)"
if ((${#failed[@]})); then
    show_server_log
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
log "schemathesis found nothing"
