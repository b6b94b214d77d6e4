#!/usr/bin/env bash
# diarist transcribe as a user runs it: formats, output files, stdin, several
# files, progress, JSON logs, and a clear message plus exit status for every
# kind of bad input. Uses a synthetic tiny model (random weights), so the
# words are nonsense but every path of the program is real; the sanitizer
# build generates a micro one (same head width and vocabulary, a fraction of
# the cost under ASan).
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/cli$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

model=$tmp/tiny.bin
wav=$shared/samples/jfk.wav
run() { "$bin" transcribe -m "$model" --no-fallback "$@"; }

# Usage errors: exit 2 with a message.
"$bin" >/dev/null 2>"$tmp/e"; check "no command is a usage error" test $? -eq 2
"$bin" frobnicate 2>"$tmp/e"; check "unknown command exits 2" test $? -eq 2
check "unknown command is named" grep -q "unknown command 'frobnicate'" "$tmp/e"
env -u DIARIST_MODEL "$bin" transcribe "$wav" 2>"$tmp/e"
check "no model exits 2" test $? -eq 2
check "no model names DIARIST_MODEL" grep -q DIARIST_MODEL "$tmp/e"

preset=tiny
[ -n "${DIARIST_TEST_LIGHT:-}" ] && preset=micro
check "gen-model writes a $preset model" "$bin" gen-model --preset $preset --seed 5 \
    --vocab-from "$shared/golden/ggml-micro-synthetic.en.bin" "$model"

run --beam-size abc "$wav" 2>"$tmp/e"; check "bad --beam-size exits 2" test $? -eq 2
run -f xml "$wav" 2>"$tmp/e"; check "bad --format exits 2" test $? -eq 2
run 2>"$tmp/e"; check "no input exits 2" test $? -eq 2

# verbose_json in OpenAI's shape.
run -f verbose_json "$wav" >"$tmp/v.json" 2>"$tmp/log"
check "verbose_json run succeeds" test $? -eq 0
check "verbose_json is JSON" json_ok "$tmp/v.json"
check "verbose_json has OpenAI's fields" python3 - "$tmp/v.json" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
assert v["task"] == "transcribe" and v["language"] == "english", v
assert abs(v["duration"] - 11.0) < 1e-6
assert len(v["segments"]) >= 1 and v["text"].strip()
keys = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob"}
for s in v["segments"]:
    assert keys <= s.keys(), s.keys()
    assert 0 <= s["start"] <= s["end"] <= 30.0
EOF
check "stderr logs are JSON lines" logs_are_json "$tmp/log"
check "log reports the BLAS kernels" grep -q 'BLAS kernels' "$tmp/log"

# Files into a folder, and beside the input.
run -f srt,vtt,json -o "$tmp/out" "$wav" 2>/dev/null
check "-o writes srt" test -s "$tmp/out/jfk.srt"
check "-o writes vtt" grep -q '^WEBVTT' "$tmp/out/jfk.vtt"
check "-o writes json" json_ok "$tmp/out/jfk.json"
check "srt cue timing" grep -qE '^[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} --> ' "$tmp/out/jfk.srt"
cp "$wav" "$tmp/beside.wav"
run -O "$tmp/beside.wav" >/dev/null 2>&1
check "-O writes beside the input" test -s "$tmp/beside.txt"

# Standard input gives the same transcript as the file.
run "$wav" >"$tmp/a.txt" 2>/dev/null
run - <"$wav" >"$tmp/b.txt" 2>/dev/null
check "stdin transcript equals file transcript" cmp -s "$tmp/a.txt" "$tmp/b.txt"
check "transcript is not empty" test -s "$tmp/a.txt"

# Several files: a failure is reported, the others are still done, exit 1.
echo "this is not audio" >"$tmp/notes.mp3"
: >"$tmp/empty.wav"
run "$wav" "$tmp/missing.wav" "$tmp/notes.mp3" "$tmp/empty.wav" >"$tmp/multi.txt" 2>"$tmp/e"
check "a failed file makes exit 1" test $? -eq 1
check "the good file is still transcribed" cmp -s "$tmp/multi.txt" "$tmp/a.txt"
check "missing file is named" grep -q "missing.wav" "$tmp/e"
check "text file named .mp3 is refused clearly" grep -q "notes.mp3: .*not a media file" "$tmp/e"
check "empty file is refused clearly" grep -q "empty.wav: .*empty" "$tmp/e"

# Several files decoded as one batch: the same transcripts, written in the
# order of the files even when a shorter one ends first, and a failure
# among them costs only itself.
sox "$wav" -r 16000 "$tmp/short.wav" trim 0 4
sox "$wav" "$wav" "$wav" "$tmp/three.wav"
run -f verbose_json "$tmp/three.wav" "$tmp/short.wav" "$wav" >"$tmp/seq.json" 2>/dev/null
run -b 3 -f verbose_json "$tmp/three.wav" "$tmp/short.wav" "$wav" >"$tmp/bat.json" 2>"$tmp/log"
check "--batch 3 exits 0" test $? -eq 0
check "--batch 3 gives one-by-one's transcripts, in order, byte for byte" \
    cmp -s "$tmp/seq.json" "$tmp/bat.json"
check "--batch 3 logs each file" test "$(grep -c '"msg":"transcribed ' "$tmp/log")" -eq 3
run -b 2 "$tmp/missing.wav" "$wav" "$tmp/notes.mp3" "$wav" >"$tmp/bm.txt" 2>"$tmp/e"
check "--batch: a failed file makes exit 1" test $? -eq 1
check "--batch: the good files are still transcribed" \
    bash -c "cat '$tmp/a.txt' '$tmp/a.txt' | cmp -s - '$tmp/bm.txt'"
check "--batch: the failed files are named" \
    bash -c "grep -q missing.wav '$tmp/e' && grep -q 'notes.mp3: .*not a media file' '$tmp/e'"
mkdir -p "$tmp/chunked"
run -b 2 --chunk 15 -o "$tmp/chunked" -f json "$tmp/three.wav" "$tmp/short.wav" 2>/dev/null
check "--chunk 15 with -o writes the long file" json_ok "$tmp/chunked/three.json"
check "... and the short one" json_ok "$tmp/chunked/short.json"
run -b 8 "$wav" >/dev/null 2>"$tmp/e"
check "--batch 8 is a usage error" test $? -eq 2
check "... naming the value" grep -q "invalid value '8' for --batch" "$tmp/e"
run --chunk 3 "$wav" >/dev/null 2>&1
check "--chunk 3 is a usage error" test $? -eq 2

# A broken model is a message, not a crash.
head -c 100000 "$model" >"$tmp/broken.bin"
"$bin" transcribe -m "$tmp/broken.bin" "$wav" 2>"$tmp/e"
check "truncated model exits 1" test $? -eq 1
check "truncated model is explained" grep -q "truncated" "$tmp/e"

# Long files report progress on stderr.
sox "$wav" "$wav" "$wav" "$wav" "$wav" "$wav" "$tmp/long.wav"
run --no-timestamps "$tmp/long.wav" >/dev/null 2>"$tmp/log"
check "long file succeeds" test $? -eq 0
check "long file logs progress" grep -q '"msg":"progress' "$tmp/log"
check "progress logs are JSON" logs_are_json "$tmp/log"

finish cli_transcribe
