# Sourced by the tests/cli_*.sh scripts: a tiny TAP-like harness and the
# checks they share. Each script ends with `finish NAME`.
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "not ok - $1"; }
# check NAME COMMAND...: passes when the command succeeds.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}
json_ok() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }
# Every stderr line is one JSON log object, except the usage text and
# one-line CLI errors that start with "diarist".
logs_are_json() {
    python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line or line.startswith("diarist") or not line.startswith("{"):
        continue
    obj = json.loads(line)
    assert {"ts", "level", "msg"} <= obj.keys(), line
PY
}
finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
