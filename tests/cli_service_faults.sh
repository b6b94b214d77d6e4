#!/usr/bin/env bash
# The service under faults, as an operator meets them: the API killed -9
# in the middle of an upload, the database locked past every retry of a
# worker's write, and bad files from real clients (a truncated mp3, an
# oversized upload, an empty one, a spoken recording that must work).
# Real processes on loopback, the real SQLite file, no mocks.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/clifault$$
mkdir -p "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
unset OPENAI_API_KEY OPENAI_BASE_URL DIARIST_MODEL
model=$shared/golden/ggml-micro-synthetic.en.bin
export API_HOST=127.0.0.1 API_PORT=$(free_port)
url=http://127.0.0.1:$API_PORT
blobs() { echo "$DIARIST_DATA/blobs/audio-files"; }
wait_up() { for _ in $(seq 1 100); do curl -sf "$url/" >/dev/null && return 0; sleep 0.1; done; return 1; }
job_of() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("job_id", ""))'; }
status() { curl -s "$url/status/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status", "missing"))'; }
wait_end() {
    local s=""
    for _ in $(seq 1 ${2:-600}); do
        s=$(status "$1"); [ "$s" = completed ] || [ "$s" = error ] || [ "$s" = missing ] && break
        sleep 0.5
    done
    echo "$s"
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# ---- 1. kill -9 the API while a file streams in ----------------------------
export DIARIST_DATA=$tmp/d1
sox -n -r 16000 -b 16 -c 1 "$tmp/big.wav" synth 600 sine 300 # 19 MB
"$bin" serve 2>>"$tmp/log" &
api=$!; pids+=("$api")
wait_up
curl -s --limit-rate 2M -F "file=@$tmp/big.wav" "$url/upload-audio/" >/dev/null 2>&1 &
up=$!; pids+=("$up")
temp=""
for _ in $(seq 1 100); do
    temp=$(find "$(blobs)" -name '.diarist-tmp.*' -size +100k 2>/dev/null | head -1)
    [ -n "$temp" ] && break; sleep 0.1
done
check "the upload is streaming into a temp blob" test -n "$temp"
kill -9 "$api"; wait "$api" 2>/dev/null
kill "$up" 2>/dev/null; wait "$up" 2>/dev/null
check "no job record points at a missing blob" python3 - "$DIARIST_DATA" <<'PY'
import os, sqlite3, sys
data = sys.argv[1]
db = sqlite3.connect(os.path.join(data, "diarist.db"))
for job_id, path in db.execute("select job_id, file_path from jobs"):
    assert os.path.isfile(os.path.join(data, "blobs/audio-files", path)), (job_id, path)
left = db.execute("select count(*) from queue_messages").fetchone()[0]
jobs = db.execute("select count(*) from jobs").fetchone()[0]
assert left == jobs == 0, (left, jobs)
PY
"$bin" serve 2>>"$tmp/log" &
api=$!; pids+=("$api")
wait_up
check "a restarted API sweeps the dead upload's temp file" \
    test -z "$(find "$(blobs)" -name '.diarist-tmp.*')"
check "and leaves no empty job folder" test -z "$(find "$(blobs)" -mindepth 2 -type d)"
id=$(curl -s -F "file=@$shared/samples/jfk.wav" "$url/upload-audio/" | job_of)
check "the restarted API takes uploads" test -f "$(blobs)/uploads/$id/jfk.wav"
stop "$api"

# ---- 2. the database locked past every retry of a worker's write -----------
export DIARIST_DATA=$tmp/d2
"$bin" run -m "$model" -n 1 --no-fallback --visibility 6 2>"$tmp/log2" &
svc=$!; pids+=("$svc")
wait_up
sox "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$tmp/long.wav"
id=$(curl -s -F "file=@$tmp/long.wav" "$url/upload-audio/" | job_of)
for _ in $(seq 1 200); do [ "$(status "$id")" = transcribing ] && break; sleep 0.1; done
# Another process takes the write lock while the worker transcribes and
# keeps it until the worker has given up on its write (SQLite's busy wait
# and the worker's own retries), then lets go.
check "a write fails while the database is locked" python3 - "$DIARIST_DATA/diarist.db" "$tmp/log2" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("begin exclusive")
deadline = time.time() + 240
while time.time() < deadline:
    if "retry in" in open(sys.argv[2]).read():
        break
    time.sleep(0.2)
db.execute("rollback")
assert "retry in" in open(sys.argv[2]).read(), "the worker never met the lock"
PY
check "the job still completes once the lock is gone" test "$(wait_end "$id")" = completed
check "with exactly one note and no message left" python3 - "$DIARIST_DATA/diarist.db" "$id" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("select count(*) from notes where job_id=?", (sys.argv[2],)).fetchone()[0] == 1
assert db.execute("select count(*) from queue_messages").fetchone()[0] == 0
PY

# ---- 3. what real clients send ---------------------------------------------
espeak-ng -w "$tmp/memo.wav" "Today I walked to the harbour with Anna. Tomorrow I will call Tom." 2>/dev/null
ffmpeg -loglevel error -y -i "$tmp/memo.wav" -c:a libmp3lame -b:a 64k "$tmp/memo.mp3"
ffmpeg -loglevel error -y -i "$tmp/memo.wav" -c:a aac "$tmp/memo.m4a"
for f in memo.mp3 memo.m4a; do
    id=$(curl -s -F "file=@$tmp/$f" "$url/upload-audio/" | job_of)
    check "a spoken $f completes" test "$(wait_end "$id")" = completed
    check "its status names $f" test "$(curl -s "$url/status/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["file_name"])')" = "$f"
done
# Cut before its first whole frame, the bytes no longer look like audio.
head -c 417 "$tmp/memo.mp3" >"$tmp/cut.mp3"
code=$(curl -s -o "$tmp/cut.json" -w '%{http_code}' -F "file=@$tmp/cut.mp3" "$url/upload-audio/")
check "an mp3 cut before its first frame is refused with 415" test "$code" = 415
# A WAV header with no samples looks like audio but holds no sound.
head -c 44 "$tmp/memo.wav" >"$tmp/hollow.wav"
id=$(curl -s -F "file=@$tmp/hollow.wav" "$url/upload-audio/" | job_of)
check "a WAV header without samples is accepted" test -n "$id"
check "and ends in error" test "$(wait_end "$id")" = error
check "with a readable reason in /result" python3 - "$url/result/$id" <<'PY'
import json, sys, urllib.request
r = json.load(urllib.request.urlopen(sys.argv[1]))
assert r["status"] == "error" and r["error"].startswith("cannot read the audio: hollow.wav: "), r
assert "no samples" in r["error"] and "/tmp" not in r["error"], r
PY
# Cut in the middle: what was recorded up to the cut is transcribed.
head -c 20000 "$tmp/memo.mp3" >"$tmp/half.mp3"
id=$(curl -s -F "file=@$tmp/half.mp3" "$url/upload-audio/" | job_of)
check "an mp3 cut in the middle completes" test "$(wait_end "$id")" = completed
check "with the audio up to the cut" python3 - "$url/result/$id" "$tmp/memo.mp3" <<'PY'
import json, subprocess, sys, urllib.request
r = json.load(urllib.request.urlopen(sys.argv[1]))
full = float(subprocess.check_output(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                      "-of", "csv=p=0", sys.argv[2]]))
assert 1.0 < r["duration"] < full - 1.0, (r["duration"], full)
PY
code=$(curl -s -o "$tmp/empty.json" -w '%{http_code}' -F "file=@/dev/null;filename=empty.wav" "$url/upload-audio/")
check "an empty file is 400 with a detail" test "$code" = 400 -a -n "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["detail"])' "$tmp/empty.json")"
stop "$svc"
before=$(find "$DIARIST_DATA" -type f | grep -v diarist.db | sort)
DIARIST_MAX_UPLOAD_MB=1 "$bin" serve 2>>"$tmp/log" &
api=$!; pids+=("$api")
wait_up
jobs_before=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from jobs").fetchone()[0])' "$DIARIST_DATA/diarist.db")
code=$(curl -s -o "$tmp/big.json" -w '%{http_code}' -F "file=@$tmp/big.wav" "$url/upload-audio/")
check "an upload over DIARIST_MAX_UPLOAD_MB is 413" test "$code" = 413
check "the 413 says why" grep -q "detail" "$tmp/big.json"
check "and leaves no blob and no record" test "$(find "$DIARIST_DATA" -type f | grep -v diarist.db | sort)" = "$before" -a \
    "$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from jobs").fetchone()[0])' "$DIARIST_DATA/diarist.db")" = "$jobs_before"
stop "$api"
check "logs are JSON lines" logs_are_json "$tmp/log"
finish cli_service_faults
