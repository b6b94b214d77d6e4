#!/usr/bin/env bash
# Installs what diarist needs, builds it, and runs the main job: for now,
# transcribing a sample recording. Uses $DIARIST_MODEL when set; otherwise
# generates a synthetic model (real architecture, random weights), because
# real Whisper weights cannot be fetched here: its words are nonsense.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >&2

sample=${1:-}
if [ -z "$sample" ]; then
  if [ -f ../shared/samples/jfk.wav ]; then
    sample=../shared/samples/jfk.wav
  else
    sample=build/sample.wav
    espeak-ng -w "$sample" "Today I walked to the harbour with Anna and we talked about the summer."
  fi
fi
model=${DIARIST_MODEL:-}
extra=()
if [ -z "$model" ]; then
  model=build/ggml-tiny-synthetic.en.bin
  vocab=()
  [ -f ../shared/golden/ggml-micro-synthetic.en.bin ] &&
    vocab=(--vocab-from ../shared/golden/ggml-micro-synthetic.en.bin)
  [ -f "$model" ] || build/diarist gen-model --preset tiny "${vocab[@]}" "$model"
  echo "note: no DIARIST_MODEL set; using a synthetic model with random weights," >&2
  echo "      so the transcript below is nonsense. Point DIARIST_MODEL at a real" >&2
  echo "      whisper.cpp model (e.g. ggml-base.en.bin) for real text." >&2
  # Random weights never stop talking; retrying at higher temperatures
  # would only take longer to print the same kind of nonsense.
  extra=(--no-fallback)
fi
exec build/diarist transcribe -m "$model" "${extra[@]}" -f verbose_json --note "$sample"
