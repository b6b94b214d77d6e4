#!/usr/bin/env bash
# diarist note and transcribe --note as a user runs them, offline (the
# extractive generator: no API key is set here). The OpenAI path is tested
# against a local protocol-compatible server in tests/test_openai.c.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
tmp=${DIARIST_TMP:-/tmp}/clinote$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
unset OPENAI_API_KEY OPENAI_BASE_URL DIARIST_NOTE_GENERATOR

cat >"$tmp/day.txt" <<'EOF'
Today I met Maria Lopez at the office and we finished the budget review. I was really happy
with how it went. After lunch I walked to the river in Lisbon with Tom. I think I should spend
more time outside. I need to call the dentist tomorrow.
EOF

"$bin" note -f json --date 2024-03-05 "$tmp/day.txt" >"$tmp/e.json" 2>"$tmp/log"
check "note succeeds offline" test $? -eq 0
check "note entry is the full schema" python3 - "$tmp/e.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
keys = {"date", "title", "mood", "summary", "key_events", "reflections", "people", "places",
        "action_items", "tags", "language", "generator"}
assert keys <= e.keys(), e.keys()
assert e["date"] == "2024-03-05" and e["generator"] == "extractive" and e["language"] == "en"
assert any("Maria" in p for p in e["people"]), e["people"]
assert any("Lisbon" in p for p in e["places"]), e["places"]
assert e["mood"]["valence"] > 0
assert any(a["due"] == "2024-03-06" for a in e["action_items"]), e["action_items"]
EOF
"$bin" note -f json --date 2024-03-05 "$tmp/day.txt" >"$tmp/e2.json" 2>/dev/null
check "offline entry is byte-identical across runs" cmp -s "$tmp/e.json" "$tmp/e2.json"

"$bin" note --date 2024-03-05 <"$tmp/day.txt" >"$tmp/e.md" 2>/dev/null
check "markdown from stdin" test $? -eq 0
for section in "## Mood" "## Key Events" "## Reflections" "**Date:** 2024-03-05"; do
    check "markdown has '$section'" grep -qF "$section" "$tmp/e.md"
done

printf '{"text": "We went to Porto with Anna. It was wonderful.", "language": "english"}' \
    >"$tmp/t.json"
"$bin" note -f json --date 2024-01-01 "$tmp/t.json" >"$tmp/j.json" 2>/dev/null
check "reads diarist's json output" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert e["language"] == "en" and any("Porto" in p for p in e["places"]), e' "$tmp/j.json"

: >"$tmp/empty.txt"
"$bin" note -f json --date 2024-01-01 "$tmp/empty.txt" >"$tmp/empty.json" 2>/dev/null
check "empty transcript gives an empty but valid entry" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert e["key_events"] == [] and e["people"] == [] and e["summary"] == "", e' "$tmp/empty.json"

"$bin" note --date 2024-02-30 "$tmp/day.txt" 2>"$tmp/e"; check "impossible date exits 2" test $? -eq 2
"$bin" note -f pdf "$tmp/day.txt" 2>"$tmp/e"; check "bad format exits 2" test $? -eq 2
"$bin" note -g magic "$tmp/day.txt" 2>"$tmp/e"; check "unknown generator exits 1" test $? -eq 1
check "unknown generator is explained" grep -q "magic" "$tmp/e"
"$bin" note "$tmp/missing.txt" 2>"$tmp/e"; check "missing file exits 1" test $? -eq 1

# The OpenAI path with nothing listening: a clear error, never a note.
OPENAI_API_KEY=sk-test-secret-123 OPENAI_BASE_URL=http://127.0.0.1:9/v1 DIARIST_NOTE_TIMEOUT=1 DIARIST_NOTE_DEADLINE=3 \
    "$bin" note --date 2024-01-01 "$tmp/day.txt" >"$tmp/unreachable.out" 2>"$tmp/e"
check "unreachable server exits 1" test $? -eq 1
check "unreachable server prints no note" test ! -s "$tmp/unreachable.out"
check "the API key never appears in errors" bash -c "! grep -q sk-test-secret-123 '$tmp/e'"

# transcribe --note dates the entry by the recording's own creation time.
model=$tmp/tiny.bin
"$bin" gen-model --preset tiny --vocab-from "$shared/golden/ggml-micro-synthetic.en.bin" \
    "$model" 2>/dev/null
espeak-ng -w "$tmp/s.wav" "Today I went to Lisbon with Maria." 2>/dev/null
ffmpeg -loglevel error -y -i "$tmp/s.wav" -metadata creation_time=2023-07-14T09:30:00Z \
    "$tmp/memo.m4a"
"$bin" transcribe -m "$model" --no-fallback --note --note-format json -o "$tmp/out" \
    "$tmp/memo.m4a" 2>"$tmp/log"
check "transcribe --note succeeds" test $? -eq 0
check "transcribe --note writes the transcript" test -s "$tmp/out/memo.txt"
check "entry dated by the recording" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert e["date"] == "2023-07-14", e["date"]' "$tmp/out/memo.note.json"

# The entry's day is the diarist's own: 2023-07-14 23:30 UTC is already the
# 15th in Berlin (summer time) and still the 14th in New York.
ffmpeg -loglevel error -y -i "$tmp/s.wav" -metadata creation_time=2023-07-14T23:30:00Z \
    "$tmp/late.m4a"
for zone in Europe/Berlin:2023-07-15 America/New_York:2023-07-14 +05:00:2023-07-15; do
    DIARIST_TIMEZONE=${zone%:*} "$bin" transcribe -m "$model" --no-fallback --note \
        --note-format json -o "$tmp/tz" "$tmp/late.m4a" 2>/dev/null
    check "entry dated in ${zone%:*}" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert e["date"] == sys.argv[2], e["date"]' "$tmp/tz/late.note.json" "${zone##*:}"
done

finish cli_note
