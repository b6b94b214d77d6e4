#!/usr/bin/env bash
# The whole service as the seed's clients see it: `diarist run` (API and
# worker in one process) on loopback with the synthetic micro model and the
# offline note generator; upload, poll to completed, check every field the
# contract names, fetch transcripts, delete, and stop with SIGTERM.
# DIARIST_TEST_BACKEND=aws runs the same checks on S3, SQS and DynamoDB
# (servers that speak their protocols, on loopback; see harness.sh).
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/clisvc$$
mkdir -p "$tmp"
pid="" api=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    [ -n "$api" ] && kill -9 "$api" 2>/dev/null
    stop_aws_backends
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ "$backend" = aws ]; then
    use_aws_backends "$tmp/aws"
    check "init-aws creates the bucket, both queues and both tables" \
        test "$(grep -cE '^(bucket|queue|table) ' "$tmp/aws/init.out")" -eq 5
    "$bin" init-aws >"$tmp/aws/init2.out" 2>&1
    check "init-aws again changes nothing and succeeds" \
        bash -c "! grep -q created '$tmp/aws/init2.out'"
fi
unset OPENAI_API_KEY OPENAI_BASE_URL
export DIARIST_DATA=$tmp/data API_HOST=127.0.0.1 API_PORT=$(free_port)
url=http://127.0.0.1:$API_PORT

"$bin" run -m "$shared/golden/ggml-micro-synthetic.en.bin" -n 1 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 50); do curl -sf "$url/" >/dev/null && break; sleep 0.2; done
check "GET / answers the seed's JSON" \
    test "$(curl -s "$url/")" = '{"message": "Audio Transcription API is running"}'

curl -s -F "file=@$shared/samples/jfk.wav" "$url/upload-audio/" >"$tmp/up.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' "$tmp/up.json")
check "upload answers queued with a uuid4" python3 - "$tmp/up.json" <<'PY'
import json, re, sys
u = json.load(open(sys.argv[1]))
assert u["status"] == "queued" and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u["job_id"]), u
PY
state=""
for _ in $(seq 1 120); do
    state=$(curl -s "$url/status/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$state" = completed ] || [ "$state" = error ] && break
    sleep 0.5
done
check "job reaches completed" test "$state" = completed
curl -s "$url/metrics" >"$tmp/metrics.txt"
check "metrics count the job's audio and stages" bash -c "grep -qx 'diarist_audio_seconds_total 11' '$tmp/metrics.txt' &&
    grep -qx 'diarist_stage_seconds_count{stage=\"transcribing\"} 1' '$tmp/metrics.txt' && grep -qE '^diarist_realtime_factor ([1-9]|0\.0*[1-9])' '$tmp/metrics.txt'"
check "a callback_url that is not http(s) is refused with 400" test "$(curl -s -o /dev/null -w '%{http_code}' \
    -F "file=@$shared/samples/jfk.wav" -F callback_url=ftp://example.com/x "$url/upload-audio/")" = 400
curl -s "$url/status/$id" >"$tmp/status.json"
check "status has exactly the seed's fields" python3 - "$tmp/status.json" "$id" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s == {"job_id": sys.argv[2], "status": "completed", "file_name": "jfk.wav"}, s
PY
curl -s "$url/result/$id" >"$tmp/result.json"
check "result has transcription and diary note" python3 - "$tmp/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "completed" and r["transcription"].strip(), r.keys()
assert "## Mood" in r["diary_note"] and r["note"]["generator"] == "extractive"
assert r["language"] == "en" and abs(r["duration"] - 11.0) < 1e-6
PY
check "srt transcript" bash -c "curl -s '$url/jobs/$id/transcript?format=srt' | grep -qE '^00:00:[0-9]{2},[0-9]{3} --> '"
check "vtt transcript" bash -c "curl -s '$url/jobs/$id/transcript?format=vtt' | head -1 | grep -q WEBVTT"
check "unknown job is 404 Job not found" \
    test "$(curl -s "$url/status/00000000-0000-4000-8000-000000000000")" = '{"detail": "Job not found"}'
echo "not audio" >"$tmp/notes.mp3"
check "text upload is refused with 415" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$tmp/notes.mp3" "$url/upload-audio/")" = 415
check "missing file field is 422" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -F "other=1" "$url/upload-audio/")" = 422
check "delete answers 200" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$url/jobs/$id")" = 200
check "deleted job is gone" test "$(curl -s -o /dev/null -w '%{http_code}' "$url/status/$id")" = 404
check "deleted job's audio is gone" test -z "$(blobs_of "$id")"
check "logs are JSON lines" logs_are_json "$tmp/log"

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"
check "SIGTERM stops the service with status 0" test $? -eq 0
pid=""

# Crash safety: kill -9 a worker while it transcribes; a new worker picks
# the job up once its lease runs out and completes it exactly once.
export DIARIST_DATA=$tmp/data2 API_PORT=$(free_port)
metrics_port=$(free_port)
url=http://127.0.0.1:$API_PORT
sox "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$tmp/long.wav"
"$bin" serve 2>>"$tmp/log" &
api=$!
for _ in $(seq 1 50); do curl -sf "$url/" >/dev/null && break; sleep 0.2; done
model=$shared/golden/ggml-micro-synthetic.en.bin
"$bin" worker -m "$model" -n 1 --visibility 3 2>>"$tmp/log" &
pid=$!
id=$(curl -s -F "file=@$tmp/long.wav" "$url/upload-audio/" |
     python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
status() { curl -s "$url/status/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
for _ in $(seq 1 100); do [ "$(status)" = transcribing ] && break; sleep 0.1; done
check "job is transcribing before the crash" test "$(status)" = transcribing
kill -9 "$pid"; wait "$pid" 2>/dev/null
# The new worker decodes on a shared batched engine, the 33 s cut in two
# pieces. Without fallback: random weights would send every window through
# all six temperatures, as the first job above already does, and
# recovery is what is under test here.
"$bin" worker -m "$model" -n 1 --batch 3 --chunk 15 --no-fallback --visibility 3 \
    --metrics-port $metrics_port \
    2>>"$tmp/log" &
pid=$!
state=""
for _ in $(seq 1 480); do
    state=$(status); [ "$state" = completed ] || [ "$state" = error ] && break; sleep 0.5
done
check "a new worker completes the job after the crash" test "$state" = completed ||
    tail -n 20 "$tmp/log"
check "... on a batched engine" grep -q '"sharing one batched engine"\|sharing one batched engine' "$tmp/log"
check "a lone worker serves its own /metrics" bash -c "sleep 0.5; curl -s http://127.0.0.1:$metrics_port/metrics |
    grep -qx 'diarist_jobs_finished_total{state=\"completed\"} 1'"
check "exactly one note and no message left" test "$(notes_of "$id")/$(messages_left)" = "1/0"
kill -TERM "$pid" "$api"; wait "$pid" "$api" 2>/dev/null
pid="" api=""

code_of() { "$@" >/dev/null 2>"$tmp/err"; echo $?; }
check "worker --batch 8 is a usage error" test "$(code_of "$bin" worker -m "$model" --batch 8)" = 2
check "... saying which value" grep -q "invalid value '8' for --batch" "$tmp/err"
check "DIARIST_BATCH=x is a usage error" test "$(DIARIST_BATCH=x code_of "$bin" worker -m "$model")" = 2
check "worker --chunk 3 is a usage error" test "$(code_of "$bin" worker -m "$model" --chunk 3)" = 2
check "DIARIST_CHUNK_SECONDS=-1 is a usage error" \
    test "$(DIARIST_CHUNK_SECONDS=-1 code_of "$bin" worker -m "$model")" = 2
finish cli_service
