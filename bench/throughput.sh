#!/usr/bin/env bash
# Audio hours per hour per machine on a mix of 1-minute and 10-minute files:
# diarist one file after another, diarist with the mix decoded as one batch
# (long files cut at silences into pieces), and whisper.cpp's CLI file
# after file (one invocation, every file, so the model loads once), on the
# same synthetic model, machine and thread count.
#
# Random weights never stop on their own, or hardly: both engines decode
# on until their caps (diarist 224 tokens per window, whisper.cpp about 190
# on these models), so "as it ran" compares two runs in which diarist
# decodes a little more. Real speech gives about 100 tokens per window;
# the figures "at 100 tokens per window" are each engine's own
# 30 s / (encode ms per window + 100 x decode ms per token), both measured
# at the same long positions, which cost more per token than speech's.
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
. bench/models.sh
model=$(bench_model "$model")
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

"$bin" bench -m "$model" -t "$threads" -r 1 -b "$lanes" --chunk "$chunk" --json \
  "${files[@]}" >"$tmp/d.json" 2>/dev/null
if [ -n "${WHISPER_CLI:-}" ]; then
  wargs=()
  for f in "${files[@]}"; do wargs+=(-f "$f"); done
  start=$(date +%s.%N)
  "$WHISPER_CLI" -m "$model" -t "$threads" -bs 1 -bo 1 -nf "${wargs[@]}" >/dev/null 2>"$tmp/w.txt"
  end=$(date +%s.%N)
  echo "$start $end" >"$tmp/w.wall"
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
tok_win = d["tokens"] / d["windows"]
print(f"  {tok_win:.0f} tokens per window; peak RSS {d['peak_rss_mb']:.0f} MB (every file's audio "
      f"decoded and held, {lanes} lanes)")
print("%-34s %12.1f" % ("diarist at 100 tokens/window, batched", d["audio_hours_per_hour_at_100_tokens"]))
print("%-34s %12.1f" % ("diarist at 100 tokens/window, one by one",
                        d["one_by_one_audio_hours_per_hour_at_100_tokens"]))
if os.path.exists(f"{tmp}/w.txt"):
    enc_ms, n_win, dec_ms, n_tok = timings(f"{tmp}/w.txt")
    start, end = map(float, open(f"{tmp}/w.wall").read().split())
    wall = end - start
    print("%-34s %10.1f %12.1f" % ("whisper.cpp, as it ran", wall, audio / 3600 / (wall / 3600)))
    print(f"  {n_win} windows at {enc_ms:.0f} ms, {n_tok} tokens ({n_tok / n_win:.0f} per window) "
          f"at {dec_ms:.2f} ms")
    hph = 30.0 / (enc_ms / 1000 + 100 * dec_ms / 1000)
    print("%-34s %12.1f" % ("whisper.cpp at 100 tokens/window", hph))
    print(f"diarist / whisper.cpp as they ran: batched {d['audio_hours_per_hour'] * wall / audio:.2f}x, "
          f"one by one {d['one_by_one_audio_hours_per_hour'] * wall / audio:.2f}x")
    print(f"diarist / whisper.cpp at 100 tokens/window: batched "
          f"{d['audio_hours_per_hour_at_100_tokens'] / hph:.2f}x, one by one "
          f"{d['one_by_one_audio_hours_per_hour_at_100_tokens'] / hph:.2f}x")
PY
