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
# A TCP port nothing listens on now: the kernel's pick, so tests running
# side by side (ctest -j) never choose the same one.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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

# ---- Backends ---------------------------------------------------------------
# DIARIST_TEST_BACKEND=aws runs a service test against servers that speak the
# S3, SQS and DynamoDB protocols (tests/aws, on loopback), as the fleet runs;
# anything else (the default) uses the embedded backends under DIARIST_DATA.
backend=${DIARIST_TEST_BACKEND:-local}
aws_pids=()

# start_aws_server NAME [PORT]: one emulator in its own node process (so a
# test can stop and restart it), data under $aws_data. Sets aws_port_NAME
# and aws_pid_NAME (in this shell: call it directly, not in $(...)).
start_aws_server() {
    local name=$1 port=${2:-} pf="$aws_data/$1.ports"
    rm -f "$pf"
    # s3rver pages listings with DES tokens, in OpenSSL 3's legacy provider.
    NODE_OPTIONS=--openssl-legacy-provider node "$(dirname "${BASH_SOURCE[0]}")/aws/emulators.js" \
        "$aws_data" "$pf" "$name${port:+:$port}" >>"$aws_data/$name.log" 2>&1 &
    aws_pids+=($!)
    eval "aws_pid_$name=$!"
    for _ in $(seq 1 300); do [ -s "$pf" ] && grep -q ready "$pf" && break; sleep 0.1; done
    eval "aws_port_$name=$(awk -v n="$name" '$1 == n { print $2 }' "$pf")"
}

# use_aws_backends DIR: starts the three servers, exports the seed's AWS
# environment (.env.template's names) pointing at them, runs init-aws.
use_aws_backends() {
    aws_data=$1
    mkdir -p "$aws_data"
    start_aws_server s3; start_aws_server sqs; start_aws_server dynamodb
    local s3=$aws_port_s3 sqs=$aws_port_sqs ddb=$aws_port_dynamodb
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION AWS_ENDPOINT_URL
    export AUDIO_BUCKET_NAME=audio-files TRANSCRIPTION_TABLE=AudioTranscriptions NOTES_TABLE=DiaryNotes
    export S3_ENDPOINT=http://127.0.0.1:$s3 SQS_ENDPOINT=http://127.0.0.1:$sqs
    export DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb
    export PROCESSING_QUEUE_URL=http://127.0.0.1:$sqs/000000000000/audio-processing-queue
    "${DIARIST_BIN:?}" init-aws >"$aws_data/init.out" 2>"$aws_data/init.err"
}

stop_aws_backends() {
    for p in "${aws_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    aws_pids=()
}

# aws_call SERVICE TARGET JSON: one JSON-protocol call to an emulator (they
# check that a signature is present, not what it is). Prints the answer.
aws_call() {
    python3 - "$@" <<'PY'
import json, os, sys, time, urllib.request
service, target, body = sys.argv[1:4]
url = os.environ["SQS_ENDPOINT" if service == "sqs" else "DYNAMODB_ENDPOINT"] + "/"
req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
    "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target,
    "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/%s/aws4_request, "
                     "SignedHeaders=host, Signature=0" % service})
print(urllib.request.urlopen(req).read().decode())
PY
}

# notes_of ID: how many diary notes the job has.
notes_of() {
    if [ "$backend" = aws ]; then
        aws_call dynamodb DynamoDB_20120810.GetItem \
            "{\"TableName\": \"$NOTES_TABLE\", \"Key\": {\"job_id\": {\"S\": \"$1\"}}}" |
            python3 -c 'import json,sys; print(1 if json.load(sys.stdin).get("Item") else 0)'
    else
        python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from notes where job_id=?", (sys.argv[2],)).fetchone()[0])' \
            "$DIARIST_DATA/diarist.db" "$1"
    fi
}

# messages_left: messages still in the work queue (visible or leased).
messages_left() {
    if [ "$backend" = aws ]; then
        aws_call sqs AmazonSQS.GetQueueAttributes \
            "{\"QueueUrl\": \"$PROCESSING_QUEUE_URL\", \"AttributeNames\": [\"ApproximateNumberOfMessages\", \"ApproximateNumberOfMessagesNotVisible\"]}" |
            python3 -c 'import json,sys; a=json.load(sys.stdin)["Attributes"]; print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))'
    else
        python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from queue_messages").fetchone()[0])' \
            "$DIARIST_DATA/diarist.db"
    fi
}

# blobs_of ID: files that still hold the job's audio, wherever blobs live.
blobs_of() {
    if [ "$backend" = aws ]; then find "$aws_data/s3" -path "*$1*" -type f 2>/dev/null
    else find "$DIARIST_DATA/blobs" -path "*$1*" -type f 2>/dev/null; fi
}
