#!/usr/bin/env bash
# diarist's engine beside whisper.cpp's CLI on the same synthetic model, the
# same machine and the same thread count, interleaved round by round so both
# see the same load. whisper.cpp is not a dependency of diarist: build its
# CLI yourself and name it in WHISPER_CLI. (Where diarist is developed,
# GitHub is out of reach; whisper.cpp 1.9.1's source comes inside the npm
# package nodejs-whisper@0.3.1: `npm pack nodejs-whisper@0.3.1`, then
# `cmake -S package/cpp/whisper.cpp -B build -DGGML_NATIVE=ON
# -DBUILD_SHARED_LIBS=OFF && cmake --build build --target whisper-cli`.)
#
# Per round: whisper-cli, greedy without fallback (-bs 1 -bo 1 -nf, flash
# attention on, its default), on a 60 s file, reporting its own encode time
# per window and decode time per token; then `diarist bench` on the same
# model. Printed: medians of both, and audio hours per hour per machine at
# 100 tokens per 30 s window (about what real speech gives), for each.
# Random weights make the two engines decode different tokens, so whole-file
# times are not comparable; per-window and per-token costs are.
#
# Usage: WHISPER_CLI=path/to/whisper-cli bench/whispercpp.sh [MODEL=base] [THREADS=2] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DIARIST_BIN:-build/diarist}
cli=${WHISPER_CLI:?set WHISPER_CLI to a whisper.cpp whisper-cli binary}
model=${1:-base}
threads=${2:-2}
rounds=${3:-5}
. bench/models.sh
model=$(bench_model "$model")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sample=../shared/samples/jfk.wav
sox "$sample" "$sample" "$sample" "$sample" "$sample" "$sample" -r 16000 -c 1 "$tmp/60s.wav" trim 0 60

for r in $(seq "$rounds"); do
  "$cli" -m "$model" -f "$tmp/60s.wav" -t "$threads" -bs 1 -bo 1 -nf >/dev/null 2>"$tmp/w$r.txt" || true
  "$bin" bench -m "$model" -t "$threads" -r 1 --json >"$tmp/d$r.json" 2>/dev/null
done

python3 - "$tmp" "$rounds" "$(basename "$model")" "$threads" <<'PY'
import json, re, statistics, sys
tmp, rounds, name, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
w_enc, w_dec, d_enc, d_dec = [], [], [], []
for r in range(1, rounds + 1):
    text = open(f"{tmp}/w{r}.txt").read()
    enc = re.search(r"encode time =\s*([\d.]+) ms /\s*(\d+) runs", text)
    dec = re.search(r"decode time =\s*([\d.]+) ms /\s*(\d+) runs", text)
    if not enc or not dec or int(dec.group(2)) == 0:
        sys.exit("whisper-cli printed no timings:\n" + text[-2000:])
    w_enc.append(float(enc.group(1)) / int(enc.group(2)))
    w_dec.append(float(dec.group(1)) / int(dec.group(2)))
    b = json.load(open(f"{tmp}/d{r}.json"))
    d_enc.append(b["encoder_ms"])
    d_dec.append(b["decoder_ms_per_token"])
med = statistics.median
def hph(enc_ms, dec_ms):  # audio hours per hour at 100 tokens per 30 s window
    return 30.0 / (enc_ms / 1000 + 100 * dec_ms / 1000)
print(f"model {name}, {threads} threads, medians of {rounds} interleaved rounds")
print("%-12s %14s %14s %22s" % ("engine", "encoder ms", "decoder ms/tok", "audio h/h @100 tok/win"))
for label, e, d in (("whisper.cpp", w_enc, w_dec), ("diarist", d_enc, d_dec)):
    print("%-12s %14.1f %14.2f %22.1f" % (label, med(e), med(d), hph(med(e), med(d))))
ratios = [hph(de, dd) / hph(we, wd) for we, wd, de, dd in zip(w_enc, w_dec, d_enc, d_dec)]
print("diarist / whisper.cpp: encoder %.2fx faster, decoder %.2fx faster, throughput %.2fx "
      "(median of per-round ratios; rounds %s)" % (
          med([w / d for w, d in zip(w_enc, d_enc)]), med([w / d for w, d in zip(w_dec, d_dec)]),
          med(ratios), ", ".join("%.2f" % x for x in ratios)))
PY
