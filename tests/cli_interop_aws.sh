#!/usr/bin/env bash
# diarist and the seed sharing one bucket, queue and pair of tables (on
# servers that speak the S3, SQS and DynamoDB protocols, on loopback):
# - a job written the way the seed's API writes it (S3 put, then the
#   DynamoDB item with exactly its four attributes, then the SQS body with
#   its exact bytes) is done by diarist's worker, and what the worker writes
#   reads back in the seed's layout;
# - what diarist's API writes is what a seed worker expects: same key, same
#   item attributes, same message bytes;
# - a DynamoDB server killed while a job is transcribed, and started again,
#   costs nothing: the job completes once;
# - throttling answers injected by a proxy (400 ThrottlingException from
#   DynamoDB, 503 SlowDown from S3) are retried and every job completes.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/cliinterop$$
mkdir -p "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    stop_aws_backends
    rm -rf "$tmp"
}
trap cleanup EXIT
unset OPENAI_API_KEY OPENAI_BASE_URL DIARIST_MODEL
backend=aws
use_aws_backends "$tmp/aws"
check "init-aws succeeds" test -s "$tmp/aws/init.out"
model=$shared/golden/ggml-micro-synthetic.en.bin
export API_HOST=127.0.0.1 API_PORT=$(free_port) DIARIST_DATA=$tmp/data
url=http://127.0.0.1:$API_PORT
s3put() { # KEY FILE: a PUT as the seed's boto3 upload_fileobj makes it
    curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" -u test:test \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "Content-Type: binary/octet-stream" \
        --data-binary "@$2" "$S3_ENDPOINT/$AUDIO_BUCKET_NAME/$1" >/dev/null
}
item_of() { # TABLE ID: the raw DynamoDB item, as JSON
    aws_call dynamodb DynamoDB_20120810.GetItem \
        "{\"TableName\": \"$1\", \"Key\": {\"job_id\": {\"S\": \"$2\"}}, \"ConsistentRead\": true}"
}
status() { item_of "$TRANSCRIPTION_TABLE" "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Item", {}).get("job_status", {}).get("S", "missing"))'; }
wait_end() {
    local s=""
    for _ in $(seq 1 ${2:-300}); do
        s=$(status "$1"); [ "$s" = completed ] || [ "$s" = error ] && break; sleep 0.5
    done
    echo "$s"
}

# ---- 1. the seed's API writes, diarist's worker works ----------------------
id=$(python3 -c 'import uuid; print(uuid.uuid4())')
s3put "uploads/$id/jfk.wav" "$shared/samples/jfk.wav"
aws_call dynamodb DynamoDB_20120810.PutItem "{\"TableName\": \"$TRANSCRIPTION_TABLE\", \"Item\": {
  \"job_id\": {\"S\": \"$id\"}, \"file_name\": {\"S\": \"jfk.wav\"},
  \"file_path\": {\"S\": \"uploads/$id/jfk.wav\"}, \"job_status\": {\"S\": \"queued\"}}}" >/dev/null
body="{\"job_id\": \"$id\", \"file_path\": \"uploads/$id/jfk.wav\", \"file_name\": \"jfk.wav\"}"
aws_call sqs AmazonSQS.SendMessage "$(python3 -c 'import json,sys; print(json.dumps({"QueueUrl": sys.argv[1], "MessageBody": sys.argv[2]}))' "$PROCESSING_QUEUE_URL" "$body")" >/dev/null
"$bin" worker -m "$model" -n 1 --no-fallback 2>"$tmp/worker.log" &
worker=$!; pids+=("$worker")
check "diarist's worker completes a job the seed's API wrote" test "$(wait_end "$id")" = completed
item_of "$TRANSCRIPTION_TABLE" "$id" >"$tmp/item.json"
item_of "$NOTES_TABLE" "$id" >"$tmp/note.json"
check "the job item reads back in the seed's layout" python3 - "$tmp/item.json" "$id" <<'PY'
import json, sys
item = json.load(open(sys.argv[1]))["Item"]
assert item["job_id"] == {"S": sys.argv[2]} and item["job_status"] == {"S": "completed"}, item
assert item["file_name"] == {"S": "jfk.wav"} and item["file_path"]["S"].endswith("/jfk.wav")
assert item["transcription"]["S"].strip(), "the seed reads the text from transcription"
assert "error" not in item, item.keys()
PY
check "the note item reads back in the seed's layout" python3 - "$tmp/note.json" "$id" <<'PY'
import json, sys
item = json.load(open(sys.argv[1]))["Item"]
assert item["job_id"] == {"S": sys.argv[2]}
assert "## Mood" in item["diary_note"]["S"], item["diary_note"]
assert float(item["created_at"]["N"]) > 1.7e9, item["created_at"]
PY

# A message that is not JSON goes to the dead-letter queue, not round and round.
aws_call sqs AmazonSQS.SendMessage "{\"QueueUrl\": \"$PROCESSING_QUEUE_URL\", \"MessageBody\": \"not json\"}" >/dev/null
dlq=${PROCESSING_QUEUE_URL}-dlq
dead=0
for _ in $(seq 1 60); do
    dead=$(aws_call sqs AmazonSQS.GetQueueAttributes "{\"QueueUrl\": \"$dlq\", \"AttributeNames\": [\"ApproximateNumberOfMessages\"]}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Attributes"]["ApproximateNumberOfMessages"])')
    [ "$dead" = 1 ] && break; sleep 0.5
done
check "a message that is not JSON ends in the dead-letter queue" test "$dead" = 1
check "and leaves the work queue" test "$(messages_left)" = 0
kill -TERM "$worker"; wait "$worker" 2>/dev/null

# ---- 2. diarist's API writes what a seed worker reads ----------------------
"$bin" serve 2>"$tmp/api.log" &
api=$!; pids+=("$api")
for _ in $(seq 1 100); do curl -sf "$url/" >/dev/null && break; sleep 0.1; done
name="Café memo ☕ 🎙.wav"
cp "$shared/samples/jfk.wav" "$tmp/$name"
id=$(curl -s -F "file=@$tmp/$name" "$url/upload-audio/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
aws_call sqs AmazonSQS.ReceiveMessage "{\"QueueUrl\": \"$PROCESSING_QUEUE_URL\", \"MaxNumberOfMessages\": 1, \"WaitTimeSeconds\": 5, \"VisibilityTimeout\": 1}" >"$tmp/msg.json"
item_of "$TRANSCRIPTION_TABLE" "$id" >"$tmp/item2.json"
check "the message body has the bytes the seed's json.dumps writes" python3 - "$tmp/msg.json" "$tmp/item2.json" "$id" "$name" <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))["Messages"][0]["Body"]
item = json.load(open(sys.argv[2]))["Item"]
want = json.dumps({"job_id": sys.argv[3], "file_path": item["file_path"]["S"], "file_name": sys.argv[4]})
assert body == want, (body, want)
assert "\\u2615" in body and "\\ud83c\\udf99" in body, body
PY
check "the item has the seed's four attributes, as strings" python3 - "$tmp/item2.json" "$id" "$name" <<'PY'
import json, sys
item = json.load(open(sys.argv[1]))["Item"]
i = sys.argv[2]
assert item["job_id"] == {"S": i} and item["job_status"] == {"S": "queued"}
assert item["file_name"] == {"S": sys.argv[3]}, item["file_name"]
assert item["file_path"]["S"].startswith("uploads/%s/" % i), item["file_path"]
PY
key=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(open(sys.argv[1]))["Item"]["file_path"]["S"]))' "$tmp/item2.json")
check "the object is where the seed's worker fetches it" \
    curl -sf -o "$tmp/got.wav" --aws-sigv4 "aws:amz:us-east-1:s3" -u test:test \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$S3_ENDPOINT/$AUDIO_BUCKET_NAME/$key"
check "with the uploaded bytes" cmp -s "$tmp/got.wav" "$tmp/$name"

# ---- 3. DynamoDB dies mid-job and comes back -------------------------------
sox "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$shared/samples/jfk.wav" "$tmp/long.wav"
"$bin" worker -m "$model" -n 1 --no-fallback --visibility 10 2>"$tmp/worker2.log" &
worker=$!; pids+=("$worker")
check "the job uploaded above completes" test "$(wait_end "$id")" = completed
id=$(curl -s -F "file=@$tmp/long.wav" "$url/upload-audio/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 200); do [ "$(status "$id")" = transcribing ] && break; sleep 0.1; done
check "the long job is transcribing" test "$(status "$id")" = transcribing
ddb_port=${DYNAMODB_ENDPOINT##*:}
kill -9 "$aws_pid_dynamodb"; wait "$aws_pid_dynamodb" 2>/dev/null
sleep 3
start_aws_server dynamodb "$ddb_port"
check "the job still completes" test "$(wait_end "$id" 400)" = completed
check "exactly once: one note, nothing left in the queue" test "$(notes_of "$id")/$(messages_left)" = "1/0"
kill -TERM "$worker"; wait "$worker" 2>/dev/null

# ---- 4. throttling injected between diarist and the servers ---------------
# Every third DynamoDB request answers 400 ThrottlingException and every
# third S3 request 503 SlowDown, from a proxy in front of each server.
proxy() { # NAME TARGET KIND: starts a fault proxy, sets proxy_port
    python3 "$(dirname "$0")/aws/fault_proxy.py" "$2" "$tmp/$1.port" 3 "$3" &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$tmp/$1.port" ] && break; sleep 0.1; done
    proxy_port=$(cat "$tmp/$1.port")
}
proxy ddb "$DYNAMODB_ENDPOINT" throttling; ddb_proxy=$proxy_port
proxy s3 "$S3_ENDPOINT" slowdown; s3_proxy=$proxy_port
DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_proxy S3_ENDPOINT=http://127.0.0.1:$s3_proxy \
    "$bin" worker -m "$model" -n 1 --no-fallback 2>"$tmp/worker3.log" &
worker=$!; pids+=("$worker")
kill -TERM "$api"; wait "$api" 2>/dev/null
DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_proxy S3_ENDPOINT=http://127.0.0.1:$s3_proxy \
    "$bin" serve 2>"$tmp/api2.log" &
api=$!; pids+=("$api")
for _ in $(seq 1 100); do curl -sf "$url/" >/dev/null && break; sleep 0.1; done
ids=()
for i in 1 2 3; do
    ids+=($(curl -s -F "file=@$shared/samples/jfk.wav" "$url/upload-audio/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])'))
done
check "three uploads through throttling proxies are accepted" test ${#ids[@]} -eq 3
done_ok=1
for id in "${ids[@]}"; do [ "$(wait_end "$id")" = completed ] || done_ok=0; done
check "and all three complete" test "$done_ok" -eq 1
check "throttling was injected into DynamoDB requests" test "$(cat "$tmp/ddb.port.injected" 2>/dev/null || echo 0)" -gt 2
check "and SlowDown into S3 requests" test "$(cat "$tmp/s3.port.injected" 2>/dev/null || echo 0)" -gt 0
check "each job has exactly one note" test "$(for id in "${ids[@]}"; do notes_of "$id"; done | sort -u)" = 1
kill -TERM "$worker" "$api"; wait "$worker" "$api" 2>/dev/null
check "logs are JSON lines" logs_are_json "$tmp/worker2.log"
finish cli_interop_aws
