#!/usr/bin/env bash
# The deployment files, as far as this machine can check them (it has no
# Docker engine): the compose file validates with docker-compose, the env
# template is the seed's, the image runs as non-root from a slim base, and
# the ECS files are JSON with what ECS needs.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
deploy=$(cd "$(dirname "$0")/../deploy" && pwd)
tmp=${DIARIST_TMP:-/tmp}/clideploy$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

cp -r "$deploy" "$tmp/deploy"
cp "$deploy/.env.template" "$tmp/deploy/.env"
(cd "$tmp/deploy" && docker-compose config >"$tmp/compose.out" 2>"$tmp/compose.err")
check "docker-compose config validates the compose file" test $? -eq 0
check "compose has localstack, init, api and worker" python3 - "$tmp/compose.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
for svc in ("localstack", "init", "api", "worker"):
    assert re.search(r"^  %s:$" % svc, text, re.M), svc
assert re.search(r"replicas: 2", text), "two workers"
assert "init-aws" in text and "service_completed_successfully" in text
PY
check "the env template names exactly the seed's variables" python3 - "$deploy/.env.template" <<'PY'
import sys
names = [l.split("=", 1)[0] for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
seed = ["OPENAI_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
        "AUDIO_BUCKET_NAME", "S3_ENDPOINT", "TRANSCRIPTION_TABLE", "NOTES_TABLE",
        "DYNAMODB_ENDPOINT", "PROCESSING_QUEUE_URL", "SQS_ENDPOINT", "API_HOST", "API_PORT"]
assert sorted(names) == sorted(seed), names
PY
check "the image is multi-stage, Debian 12 slim, non-root" python3 - "$deploy/Dockerfile" <<'PY'
import re, sys
d = open(sys.argv[1]).read()
froms = re.findall(r"^FROM (\S+)", d, re.M)
assert len(froms) == 2 and froms[-1] == "debian:12-slim", froms
users = re.findall(r"^USER (\S+)", d, re.M)
assert users and users[-1] not in ("root", "0"), users
PY
check "ECS task definitions and scaling policy are complete" python3 - "$deploy/ecs" <<'PY'
import json, os, sys
d = sys.argv[1]
for name in ("api-task.json", "worker-task.json"):
    t = json.load(open(os.path.join(d, name)))
    assert t["family"] and t["containerDefinitions"], name
    c = t["containerDefinitions"][0]
    env = {e["name"] for e in c["environment"]}
    assert {"PROCESSING_QUEUE_URL", "AUDIO_BUCKET_NAME", "TRANSCRIPTION_TABLE", "NOTES_TABLE"} <= env
s = json.load(open(os.path.join(d, "worker-scaling.json")))
text = json.dumps(s)
assert "ApproximateNumberOfMessagesVisible" in text and s["ScalableTarget"]["MinCapacity"] == 0
PY
finish cli_deploy
