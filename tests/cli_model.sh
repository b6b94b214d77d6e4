#!/usr/bin/env bash
# diarist model as a user runs it: the table, resolving names, and pulls that
# fail for each reason a user may meet (no network, a wrong file, a missing
# file), each with a clear message, the right exit status and no file left
# behind. The real host cannot be reached here, so a small local HTTP server
# stands in for it; a pull that succeeds end to end is covered by
# tests/test_models.c with a checksum the test supplies.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/climodel$$
mkdir -p "$tmp"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
empty_dir() { [ -z "$(ls -A "$1" 2>/dev/null)" ]; }

export DIARIST_MODEL_DIR=$tmp/models
unset DIARIST_MODEL_BASE_URL

# The table.
"$bin" model list >"$tmp/list" 2>"$tmp/e"
check "list exits 0" test $? -eq 0
check "list shows base.en with its SHA-1" \
    grep -qE '^base\.en +142 MiB +137c40403d78fd54d454da0f9bd998f78703390c' "$tmp/list"
check "list shows all 13 models" \
    test "$(grep -cE '^[a-z0-9._-]+ +[0-9.]+ [MG]iB +[0-9a-f]{40}' "$tmp/list")" -eq 13
check "list names the model directory" grep -q "$DIARIST_MODEL_DIR" "$tmp/list"
check "nothing is downloaded yet" bash -c "! grep -q downloaded '$tmp/list'"

# Usage errors.
"$bin" model 2>"$tmp/e"; check "no subcommand exits 2" test $? -eq 2
"$bin" model frob 2>"$tmp/e"; check "unknown subcommand exits 2" test $? -eq 2
check "unknown subcommand is named" grep -q "unknown subcommand 'frob'" "$tmp/e"
"$bin" model pull 2>"$tmp/e"; check "pull without a name exits 2" test $? -eq 2
"$bin" model --help >"$tmp/help"; check "help exits 0" test $? -eq 0
check "help names DIARIST_MODEL_BASE_URL" grep -q DIARIST_MODEL_BASE_URL "$tmp/help"

# Resolving.
"$bin" model path nosuch >"$tmp/out" 2>"$tmp/e"
rc=$?
check "unknown name exits 2" test $rc -eq 2
check "unknown name is named, known ones listed" grep -q "unknown model 'nosuch'.*base.en" "$tmp/e"
"$bin" model path base.en >"$tmp/out" 2>"$tmp/e"
check "name not downloaded exits 1" test $? -eq 1
check "name not downloaded says how to get it" grep -q "diarist model pull base.en" "$tmp/e"
"$bin" model path "$shared/golden/ggml-micro-synthetic.en.bin" >"$tmp/out"
check "a path resolves to itself" grep -qx "$shared/golden/ggml-micro-synthetic.en.bin" "$tmp/out"
mkdir -p "$DIARIST_MODEL_DIR"
cp "$shared/golden/ggml-micro-synthetic.en.bin" "$DIARIST_MODEL_DIR/ggml-tiny.en.bin"
"$bin" model path tiny.en >"$tmp/out"
check "a present name resolves into the model dir" \
    grep -qx "$DIARIST_MODEL_DIR/ggml-tiny.en.bin" "$tmp/out"
"$bin" model list >"$tmp/list"
check "list marks the present model" grep -qE '^tiny\.en .*downloaded$' "$tmp/list"
"$bin" model path --dir "$tmp/elsewhere" tiny.en >/dev/null 2>&1
check "--dir changes where names resolve" test $? -eq 1
rm -f "$DIARIST_MODEL_DIR/ggml-tiny.en.bin"

# No network: nothing listens on loopback port 9.
DIARIST_MODEL_BASE_URL=http://127.0.0.1:9 "$bin" model pull base.en >"$tmp/out" 2>"$tmp/e"
check "unreachable host exits 1" test $? -eq 1
check "unreachable host is explained" grep -q "could not reach 127.0.0.1" "$tmp/e"
check "unreachable host names DIARIST_MODEL" grep -q "DIARIST_MODEL to its path" "$tmp/e"
check "unreachable host leaves no file" empty_dir "$DIARIST_MODEL_DIR"
"$bin" model pull base.fr 2>"$tmp/e"; check "pull of an unknown name exits 2" test $? -eq 2

# A local server with a wrong file under a real name, and nothing else.
mkdir -p "$tmp/www"
head -c 3000000 "$shared/golden/ggml-micro-synthetic.en.bin" >"$tmp/www/ggml-base.en.bin"
python3 - "$tmp/www" "$tmp/port" <<'EOF' 2>/dev/null &
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
open(sys.argv[2], "w").write(str(srv.server_address[1]))
srv.serve_forever()
EOF
server_pid=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
base=http://127.0.0.1:$(cat "$tmp/port")

DIARIST_MODEL_BASE_URL=$base "$bin" model pull base.en >"$tmp/out" 2>"$tmp/e"
check "wrong file exits 1" test $? -eq 1
check "wrong file is a checksum mismatch" \
    grep -q "checksum mismatch: expected 137c40403d78fd54d454da0f9bd998f78703390c, got $(sha1sum "$tmp/www/ggml-base.en.bin" | cut -c1-40)" "$tmp/e"
check "wrong file leaves no file" empty_dir "$DIARIST_MODEL_DIR"
check "progress is logged as JSON lines" grep -q '"msg":"progress: base.en 100%' "$tmp/e"
check "stderr logs are JSON" logs_are_json "$tmp/e"

DIARIST_MODEL_BASE_URL=$base "$bin" model pull --dir "$tmp/other" tiny >"$tmp/out" 2>"$tmp/e"
check "missing file exits 1" test $? -eq 1
check "missing file names the URL and status" grep -q "$base/ggml-tiny.bin answered HTTP 404" "$tmp/e"
check "missing file leaves no file" empty_dir "$tmp/other"

# The service's first start with no model configured pulls base.en, with
# progress, and refuses to start on a file that is not it.
unset DIARIST_MODEL
svc_env=(env DIARIST_DATA="$tmp/data" API_HOST=127.0.0.1 API_PORT=0)
DIARIST_MODEL_BASE_URL=$base "${svc_env[@]}" "$bin" run >"$tmp/out" 2>"$tmp/e"
check "first start with a wrong file exits 1" test $? -eq 1
check "first start pulls base.en with progress" grep -q '"msg":"progress: base.en 100%' "$tmp/e"
check "first start explains the checksum mismatch" grep -q "checksum mismatch" "$tmp/e"
check "first start leaves no model file" empty_dir "$DIARIST_MODEL_DIR"
DIARIST_MODEL_BASE_URL=http://127.0.0.1:9 "${svc_env[@]}" "$bin" worker >"$tmp/out" 2>"$tmp/e"
check "offline first start exits 1" test $? -eq 1
check "offline first start names DIARIST_MODEL and model pull" \
    grep -q "set DIARIST_MODEL (or -m) .*'diarist model pull base.en'" "$tmp/e"
# Pulled once, the default is used as it is, without the network.
cp "$shared/golden/ggml-micro-synthetic.en.bin" "$DIARIST_MODEL_DIR/ggml-base.en.bin"
DIARIST_MODEL_BASE_URL=http://127.0.0.1:9 "${svc_env[@]}" timeout --preserve-status -s TERM 5 "$bin" worker \
    >"$tmp/out" 2>"$tmp/e"
check "a pulled default starts the worker offline (stopped by SIGTERM, exit 0)" test $? -eq 0
check "the worker loaded the pulled default" grep -q "ggml-base.en.bin" "$tmp/e"

finish cli_model
