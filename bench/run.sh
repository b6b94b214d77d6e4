#!/usr/bin/env bash
# Engine benchmarks on synthetic tiny-, base- and small-sized models (real
# architecture, random weights), each printed beside the machine's own sgemm
# rate and memcpy bandwidth measured in the same run: each ratio is the
# median of per-run ratios, each against a ceiling taken just before it.
# Quantized variants (base-q8_0, base-q5_0) are included; DIARIST_BENCH_MODELS
# picks others.
# Usage: bench/run.sh [THREADS] [REPEATS]
# Needs a built tree (scripts/run.sh or scripts/test.sh builds one);
# DIARIST_BIN names another build's binary.
#
# floor_ms: the bytes one decoder step reads (weights, KV caches) at memcpy
# speed; dec/floor: how far the decoder is from that floor. b5/single: per
# token cost of a batch-5 step (its time / 5) over a single-sequence step.
# audio_h/h: hours of the sample transcribed per wall hour (greedy, no
# temperature fallback), the inverse of RTF.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
repeats=${2:-5}
bin=${DIARIST_BIN:-build/diarist}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build" >&2; exit 1; }
. bench/models.sh
models=$(dirname "$bin")/bench-models
mkdir -p "$models"
sample=../shared/samples/jfk.wav
[ -f "$sample" ] || { sample=$models/sample.wav; espeak-ng -w "$sample" "Dear diary, today was long but good."; }
printf '%-13s %7s %7s %9s %7s %7s %8s %9s %9s %9s %9s %7s %7s %9s %8s\n' model sgemm memcpy \
  enc_ms enc_GF enc/sg enc_GFLOP dec_ms floor_ms dec/floor b5_ms/tok b5/sgl RTF audio_h/h rss_MB
# NAME or NAME-QTYPE: the quantized variants users download (-q5_0, -q8_0).
for variant in ${DIARIST_BENCH_MODELS:-tiny base small base-q8_0 base-q5_0}; do
  m=$(bench_model "$variant")
  "$bin" bench -m "$m" -t "$threads" -r "$repeats" --json "$sample" 2>/dev/null | python3 -c '
import json, sys
b = json.load(sys.stdin)
print("%-13s %7.1f %7.2f %9.1f %7.1f %7.2f %8.1f %9.2f %9.3f %9.2f %9.2f %7.2f %7.3f %9.1f %8.1f" % (
    sys.argv[1], b["sgemm_gflops"], b["memcpy_gbps"], b["encoder_ms"], b["encoder_gflops"],
    b["encoder_vs_sgemm"], b["encoder_gflop"], b["decoder_ms_per_token"],
    b["decoder_floor_ms_per_token"], b["decoder_vs_floor"], b["decoder_batch5_ms_per_token"],
    b["batch5_vs_single"], b["realtime_factor"], b["audio_hours_per_hour"], b["peak_rss_mb"]))' "$variant"
done
