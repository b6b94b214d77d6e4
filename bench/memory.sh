#!/usr/bin/env bash
# Peak memory while serving: `diarist run` (API and one worker in one
# process, embedded backends) transcribes one file, and its VmHWM (peak
# resident set, kB = KiB, the unit /usr/bin/time reports) is printed for
# greedy decoding, greedy with OpenAI's temperature fallback (best-of-5 at
# T > 0, which random weights always reach) and beam search of 5. The note
# step is off: it is not the engine's memory.
#
# Usage: bench/memory.sh [MODEL=base] [FILE=../shared/samples/jfk.wav]
# MODEL is a preset name (a synthetic model is generated once, as
# bench/run.sh does) or a path to a ggml model.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DIARIST_BIN:-build/diarist}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build" >&2; exit 1; }
model=${1:-base}
file=${2:-../shared/samples/jfk.wav}
. bench/models.sh
model=$(bench_model "$model")
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

peak() { # LABEL ARGS...: one job through a fresh `diarist run`, then its VmHWM
  local label=$1 port
  shift
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  DIARIST_DATA=$tmp/$label API_HOST=127.0.0.1 API_PORT=$port \
    "$bin" run -m "$model" -n 1 --no-note "$@" 2>"$tmp/$label.log" &
  pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.1; done
  local idle id status=""
  idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  id=$(curl -sf -F "file=@$file" "localhost:$port/upload-audio/" | json_field job_id)
  for _ in $(seq 1800); do
    status=$(curl -sf "localhost:$port/status/$id" | json_field status)
    [ "$status" = completed ] || [ "$status" = error ] && break
    sleep 0.5
  done
  printf '%-22s %10s %12s  %s\n' "$label" "$idle" "$(awk '/VmHWM/ {print $2}' /proc/$pid/status)" "$status"
  kill $pid
  wait $pid 2>/dev/null || true
}

echo "model $(basename "$model"), file $(basename "$file"), peak RSS of diarist run (kB)"
printf '%-22s %10s %12s  %s\n' decoding idle peak job
peak greedy --no-fallback
peak greedy+fallback
peak beam5 --beam-size 5
