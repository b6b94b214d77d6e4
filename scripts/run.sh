#!/usr/bin/env bash
# Installs what diarist needs, builds it, and starts the main job: the whole
# service (`diarist run`: the seed's HTTP API on API_HOST:API_PORT, default
# 0.0.0.0:8000, and its workers) on embedded backends under $DIARIST_DATA
# (default ./diarist-data). Stop it with Ctrl-C.
#
# The model is $DIARIST_MODEL when set; otherwise diarist pulls base.en on
# its first start. Where that host cannot be reached (the machines diarist
# is built on have no such network), this script falls back to a synthetic
# model with the real architecture and random weights, so the service runs
# end to end but its transcripts are nonsense.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >&2

if [ -z "${DIARIST_MODEL:-}" ] && ! build/diarist model path base.en >/dev/null 2>&1 &&
   ! build/diarist model pull base.en >/dev/null; then
  # The golden test model is small and fast; without ../shared, make one.
  export DIARIST_MODEL=../shared/golden/ggml-micro-synthetic.en.bin
  if [ ! -f "$DIARIST_MODEL" ]; then
    DIARIST_MODEL=build/ggml-tiny-synthetic.en.bin
    [ -f "$DIARIST_MODEL" ] || build/diarist gen-model --preset tiny "$DIARIST_MODEL"
  fi
  echo "note: base.en could not be downloaded; serving a synthetic model with random" >&2
  echo "      weights, so transcripts are nonsense. Set DIARIST_MODEL to a real" >&2
  echo "      whisper.cpp model (e.g. ggml-base.en.bin) for real text." >&2
fi
echo "diarist: try  curl -F file=@memo.m4a localhost:${API_PORT:-8000}/upload-audio/" >&2
exec build/diarist run "$@"
