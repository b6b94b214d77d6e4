#!/usr/bin/env bash
# Engine benchmarks on synthetic tiny-, base- and small-sized models (real
# architecture, random weights), each printed beside the machine's own sgemm
# rate measured in the same run. Usage: bench/run.sh [THREADS] [REPEATS]
# Needs a built tree (scripts/run.sh or scripts/test.sh builds one).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
repeats=${2:-5}
bin=build/diarist
[ -x "$bin" ] || { echo "build first: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build" >&2; exit 1; }
models=build/bench-models
mkdir -p "$models"
vocab=../shared/golden/ggml-micro-synthetic.en.bin
sample=../shared/samples/jfk.wav
[ -f "$sample" ] || { sample=$models/sample.wav; espeak-ng -w "$sample" "Dear diary, today was long but good."; }
printf '%-8s %7s %9s %9s %8s %9s %9s %8s %7s %8s\n' model sgemm enc_ms enc_GF enc/sg dec_ms b5_ms/tok b5/dec RTF rss_MB
for size in tiny base small; do
  m=$models/$size.bin
  if [ ! -f "$m" ]; then
    args=(--preset "$size")
    [ -f "$vocab" ] && args+=(--vocab-from "$vocab")
    "$bin" gen-model "${args[@]}" "$m" 2>/dev/null
  fi
  "$bin" bench -m "$m" -t "$threads" -r "$repeats" --json "$sample" 2>/dev/null | python3 -c '
import json, sys
b = json.load(sys.stdin)
print("%-8s %7.1f %9.1f %9.1f %8.2f %9.2f %9.2f %8.2f %7.3f %8.1f" % (
    b["model"], b["sgemm_gflops"], b["encoder_ms"], b["encoder_gflops"], b["encoder_vs_sgemm"],
    b["decoder_ms_per_token"], b["decoder_batch5_ms_per_token"],
    b["decoder_batch5_ms_per_token"] / b["decoder_ms_per_token"], b["realtime_factor"],
    b["peak_rss_mb"]))'
done
