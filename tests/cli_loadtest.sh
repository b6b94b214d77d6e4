#!/usr/bin/env bash
# The seed's load test against a live `diarist run` (API and four workers
# sharing one batched engine on loopback, synthetic micro model, offline
# notes): `diarist loadtest` and
# tests/load_test.py with the seed's command line, then 50 uploads from 10
# clients that must all complete exactly once, checked in the database.
# Also: usage errors exit 2, and a service that is not there fails fast
# with exit 1 and a clear reason.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${DIARIST_TMP:-/tmp}/cliload$$
mkdir -p "$tmp"
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
unset OPENAI_API_KEY OPENAI_BASE_URL API_URL
export DIARIST_DATA=$tmp/data API_HOST=127.0.0.1 API_PORT=$(free_port)
url=http://127.0.0.1:$API_PORT
jfk=$shared/samples/jfk.wav

status_of() { "$@" >/dev/null 2>&1; echo $?; }
check "no --file is a usage error" test "$(status_of "$bin" loadtest --requests 1)" = 2
check "--requests 0 is a usage error" test "$(status_of "$bin" loadtest --requests 0 --file "$jfk")" = 2
check "--workers x is a usage error" test "$(status_of "$bin" loadtest --workers x --file "$jfk")" = 2
check "a non-http URL is a usage error" \
    test "$(status_of "$bin" loadtest --url ftp://x --file "$jfk")" = 2
check "an unreadable file is a usage error" \
    test "$(status_of "$bin" loadtest --file "$tmp/missing.wav")" = 2
check "--help exits 0" test "$(status_of "$bin" loadtest --help)" = 0

# Nothing listens on port 1: every upload fails at once, each with a reason.
t0=$(date +%s)
"$bin" loadtest --requests 3 --workers 2 --monitor --file "$jfk" --url http://127.0.0.1:1 \
    >"$tmp/refused.out" 2>"$tmp/refused.err"
rc=$?
check "no service: exit 1" test "$rc" -eq 1
check "no service: fails fast" test $(($(date +%s) - t0)) -lt 15
check "no service: each failure says why" \
    test "$(grep -c 'upload failed: .*onnect' "$tmp/refused.err")" -eq 3
check "no service: the report counts 3 failed" grep -q '^Failed requests: 3$' "$tmp/refused.out"
check "no service: logs are JSON lines" logs_are_json "$tmp/refused.err"

# Random weights never stop talking, so every window would fall back
# through all temperatures; without fallback a job takes about a second,
# and 70 of them stay within CI's time. The load, not the engine, is under
# test here, on the fleet's set-up: four jobs at a time on one batched engine.
"$bin" run -m "$shared/golden/ggml-micro-synthetic.en.bin" -n 2 --batch 4 --no-fallback \
    2>>"$tmp/log" &
pid=$!
for _ in $(seq 1 50); do curl -sf "$url/" >/dev/null && break; sleep 0.2; done

"$bin" loadtest --requests 10 --workers 5 --monitor --poll-interval 0.5 --file "$jfk" --json \
    --url "$url" >"$tmp/lt.json" 2>"$tmp/lt.err"
check "diarist loadtest: exit 0" test $? -eq 0
check "diarist loadtest: report" python3 - "$tmp/lt.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["successful"] == 10 and r["failed"] == 0 and r["completed"] == 10, r
assert r["errored"] == 0 and r["timed_out"] == 0, r
for key in ("upload_latency_s", "completion_latency_s"):
    p = r[key]
    assert 0 < p["p50"] <= p["p95"] <= p["p99"], (key, p)
assert r["completion_latency_s"]["p50"] >= r["upload_latency_s"]["p50"], r
assert abs(r["audio_seconds"] - 110.0) < 1e-6 and r["audio_hours_per_hour"] > 0, r
assert r["requests_per_s"] > 0 and r["total_time_s"] > 0 and r["mean_upload_s"] > 0, r
assert len(set(r["job_ids"])) == 10, r["job_ids"]
PY
check "diarist loadtest: logs are JSON lines" logs_are_json "$tmp/lt.err"

# The seed's exact command line; the sample comes from $DIARIST_SHARED.
API_URL=$url python3 "$here/load_test.py" --requests 10 --workers 5 --monitor \
    --poll-interval 0.5 >"$tmp/py.out" 2>"$tmp/py.err"
check "load_test.py: exit 0" test $? -eq 0
check "load_test.py: 10 successful" grep -q '^Successful Requests: 10$' "$tmp/py.out"
check "load_test.py: 10 completed" grep -q '^Completed: 10$' "$tmp/py.out"

# Concurrency: 50 uploads from 10 clients against the 4 workers (20 under
# the sanitizers, where each job costs several times as much: still twice
# as many clients as workers, and every upload checked).
n=50
[ -n "${DIARIST_TEST_LIGHT:-}" ] && n=20
t0=$(date +%s)
"$bin" loadtest --requests $n --workers 10 --monitor --poll-interval 0.5 --timeout 840 --file "$jfk" --json \
    --url "$url" >"$tmp/conc.json" 2>"$tmp/conc.err"
check "$n uploads from 10 clients: exit 0" test $? -eq 0
echo "# $n jobs took $(($(date +%s) - t0)) s"
check "$n uploads from 10 clients: all completed" python3 - "$tmp/conc.json" $n <<'PY'
import json, sys
r, n = json.load(open(sys.argv[1])), int(sys.argv[2])
assert r["successful"] == n and r["completed"] == n and len(set(r["job_ids"])) == n, r
PY

kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"
check "SIGTERM stops the service with status 0" test $? -eq 0
pid=""

# Nothing lost, nothing done twice: the 20 + n acknowledged uploads are
# the jobs, each completed with one note and transcribed once, no message
# left.
check "every job completed exactly once" python3 - "$DIARIST_DATA/diarist.db" "$tmp/log" $n \
    "$tmp/lt.json" "$tmp/conc.json" <<'PY'
import collections, json, re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
total = 20 + int(sys.argv[3])
jobs = dict(db.execute("select job_id, job_status from jobs"))
assert len(jobs) == total, len(jobs)
assert set(jobs.values()) == {"completed"}, collections.Counter(jobs.values())
notes = [r[0] for r in db.execute("select job_id from notes")]
assert len(notes) == total and set(notes) == set(jobs), len(notes)
left = db.execute("select count(*) from queue_messages").fetchone()[0]
assert left == 0, left
ids = [i for f in sys.argv[4:] for i in json.load(open(f))["job_ids"]]
assert len(ids) == total - 10 and set(ids) <= set(jobs), ids
done = collections.Counter()
for line in open(sys.argv[2]):
    m = re.search(r"job=([0-9a-f-]{36}) transcribed ", line)
    if m:
        done[m.group(1)] += 1
assert set(done) == set(jobs) and set(done.values()) == {1}, done
PY
check "service logs are JSON lines" logs_are_json "$tmp/log"
finish cli_loadtest
