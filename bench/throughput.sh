#!/usr/bin/env bash
# Audio hours per hour per machine on a mix of 1-minute and 10-minute files:
# diarist one file after another, diarist with the mix decoded as one batch
# (long files cut at silences into pieces), and whisper.cpp's CLI file
# after file (one invocation, every file, so the model loads once), on the
# same synthetic model, machine and thread count.
#
# Random weights decode different numbers of tokens in the two engines
# (whisper.cpp's random models stop after a few; diarist's run on to the
# cap), so whole-run times are not comparable as they stand. diarist
# decodes exactly 100 tokens per window here (--sample-len 100; about what
# speech gives), and its figures are its wall times. whisper.cpp's are
# normalised to the same 100 tokens per window from its own timings:
# 30 s / (encode ms per window + 100 x decode ms per token). A token's
# cost grows with its position, and on the mix whisper.cpp's random model
# runs on to ~190 tokens per window, dearer than 100 would be; so its
# per-token cost is also taken from a run on the first 1-minute file
# alone, where it stops after a few tokens, and the ratio quoted is the
# one with the cheaper of the two (the one least in diarist's favour).
#
# whisper.cpp is not a dependency; see bench/whispercpp.sh for how it was
# built. Without WHISPER_CLI only diarist's figures are printed.
#
# Usage: [WHISPER_CLI=path/to/whisper-cli] bench/throughput.sh [MODEL=base] [THREADS=2]
#        [LANES=7] [CHUNK_S=120] [SHORT=4] [LONG=1]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DIARIST_BIN:-build/diarist}
model=${1:-base}
threads=${2:-2}
lanes=${3:-7}
chunk=${4:-120}
n_short=${5:-4}
n_long=${6:-1}
if [ ! -f "$model" ]; then
  models=$(dirname "$bin")/bench-models
  mkdir -p "$models"
  args=(--preset "$model")
  vocab=../shared/golden/ggml-micro-synthetic.en.bin
  [ -f "$vocab" ] && args+=(--vocab-from "$vocab")
  [ -f "$models/$model.bin" ] || "$bin" gen-model "${args[@]}" "$models/$model.bin" 2>/dev/null
  model=$models/$model.bin
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sample=../shared/samples/jfk.wav
copies=()
for _ in $(seq 56); do copies+=("$sample"); done
files=()
# Each file starts somewhere else in the speech, so no two are the same.
for i in $(seq "$n_short"); do
  sox "${copies[@]:0:7}" -r 16000 -c 1 "$tmp/short$i.wav" trim "$i" 60
  files+=("$tmp/short$i.wav")
done
for i in $(seq "$n_long"); do
  sox "${copies[@]}" -r 16000 -c 1 "$tmp/long$i.wav" trim "$i" 600
  files+=("$tmp/long$i.wav")
done

"$bin" bench -m "$model" -t "$threads" -r 1 -b "$lanes" --chunk "$chunk" --sample-len 100 --json \
  "${files[@]}" >"$tmp/d.json" 2>/dev/null
if [ -n "${WHISPER_CLI:-}" ]; then
  wargs=()
  for f in "${files[@]}"; do wargs+=(-f "$f"); done
  start=$(date +%s.%N)
  "$WHISPER_CLI" -m "$model" -t "$threads" -bs 1 -bo 1 -nf "${wargs[@]}" >/dev/null 2>"$tmp/w.txt"
  end=$(date +%s.%N)
  echo "$start $end" >"$tmp/w.wall"
  "$WHISPER_CLI" -m "$model" -t "$threads" -bs 1 -bo 1 -nf -f "${files[0]}" >/dev/null \
    2>"$tmp/w1.txt"
fi

python3 - "$tmp" "$(basename "$model")" "$threads" "$lanes" "$chunk" <<'PY'
import json, os, re, sys
tmp, name, threads, lanes, chunk = sys.argv[1:6]
d = json.load(open(f"{tmp}/d.json"))
audio = d["audio_seconds"]
print(f"model {name}, {threads} threads, {d['files']} files, {audio / 60:.0f} min of audio")
print("%-34s %10s %12s" % ("", "wall s", "audio h/h"))
print("%-34s %10.1f %12.1f" % ("diarist, one file after another", d["one_by_one_seconds"],
                               d["one_by_one_audio_hours_per_hour"]))
print("%-34s %10.1f %12.1f" % (f"diarist, batch of {lanes}, cut at {chunk} s", d["end_to_end_seconds"],
                               d["audio_hours_per_hour"]))
print(f"  batch speedup {d['batch_speedup']:.2f}x; {d['windows']} windows, {d['tokens']} tokens "
      f"in {d['decoder_steps']} lockstep steps; encoder {d['encoder_ms_per_window']:.0f} ms per "
      f"window, decoder {d['decoder_ms_per_token_amortized']:.2f} ms per token amortised")
def timings(path):
    text = open(path).read()
    enc = re.search(r"encode time =\s*([\d.]+) ms /\s*(\d+) runs", text)
    dec = re.search(r"decode time =\s*([\d.]+) ms /\s*(\d+) runs", text)
    if not enc or not dec or int(dec.group(2)) == 0:
        sys.exit("whisper-cli printed no timings:\n" + text[-2000:])
    return (float(enc.group(1)) / int(enc.group(2)), int(enc.group(2)),
            float(dec.group(1)) / int(dec.group(2)), int(dec.group(2)))
if os.path.exists(f"{tmp}/w.txt"):
    enc_ms, n_win, dec_ms, n_tok = timings(f"{tmp}/w.txt")
    _, _, dec1_ms, n_tok1 = timings(f"{tmp}/w1.txt")
    start, end = map(float, open(f"{tmp}/w.wall").read().split())
    print("%-34s %10.1f %12.1f" % ("whisper.cpp, as it ran", end - start, audio / (end - start)))
    print(f"  {n_win} windows at {enc_ms:.0f} ms, {n_tok} tokens at {dec_ms:.2f} ms; "
          f"on one 1-minute file {n_tok1} tokens at {dec1_ms:.2f} ms")
    cheap = min(dec_ms, dec1_ms)
    for label, d_ms in (("its cost on the mix", dec_ms), ("its cheapest cost", cheap)):
        hph = 30.0 / (enc_ms / 1000 + 100 * d_ms / 1000)
        print("%-34s %10s %12.1f" % (f"whisper.cpp at 100 tok/win, {label}", "", hph))
    hph = 30.0 / (enc_ms / 1000 + 100 * cheap / 1000)
    print(f"diarist / whisper.cpp (cheapest): batched {d['audio_hours_per_hour'] / hph:.2f}x, "
          f"one by one {d['one_by_one_audio_hours_per_hour'] / hph:.2f}x")
PY
