#!/usr/bin/env bash
# diarist bench on the golden micro model: every figure the engine-speed
# issue asks for is present, finite and positive, the derived ones agree
# with the figures they come from, and the bytes a decoder step reads match
# a count made here, independently, from the model file's own header and
# tensor table. Timings are never asserted: the machines are shared.
set -uo pipefail
. "$(dirname "$0")/harness.sh"
bin=${DIARIST_BIN:?}
shared=${DIARIST_SHARED:?}
model=$shared/golden/ggml-micro-synthetic.en.bin
wav=$shared/samples/jfk.wav
tmp=${DIARIST_TMP:-/tmp}/clibench$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

"$bin" bench -m "$model" -t 2 -r 1 --json "$wav" >"$tmp/b.json" 2>"$tmp/e"
check "bench --json exits 0" test $? -eq 0
check "bench --json prints one JSON object" json_ok "$tmp/b.json"

check_json() { # NAME PYTHON: the script sees b (the JSON) and must not raise
    local name=$1 code=$2
    check "$name" python3 - "$tmp/b.json" "$model" <<PY
import json, math, struct, sys
b = json.load(open(sys.argv[1]))
model = sys.argv[2]
def close(x, y, rel, tol):  # equal within the printed rounding
    assert abs(x - y) <= rel * abs(y) + tol, (x, y)
$code
PY
}

check_json "existing keys are kept" '
for k in ("model", "threads", "repeats", "blas_core", "sgemm_gflops", "encoder_ms",
          "encoder_gflops", "encoder_vs_sgemm", "decoder_ms_per_token",
          "decoder_batch5_ms_per_step", "decoder_batch5_ms_per_token", "peak_rss_mb",
          "audio_seconds", "end_to_end_seconds", "realtime_factor"):
    assert k in b, k'

check_json "new figures are positive and finite" '
for k in ("memcpy_gbps", "decoder_bytes_per_token", "decoder_floor_ms_per_token",
          "decoder_vs_floor", "encoder_vs_sgemm", "batch5_vs_single", "audio_hours_per_hour",
          "encoder_gflop", "decoder_kv_len"):
    v = b[k]
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (k, v)'

check_json "floor is bytes over memcpy bandwidth" '
close(b["decoder_floor_ms_per_token"], b["decoder_bytes_per_token"] / (b["memcpy_gbps"] * 1e6),
      1e-3, 2e-6)'
check_json "with one run, ratios agree with their parts" '
close(b["decoder_vs_floor"], b["decoder_ms_per_token"] / b["decoder_floor_ms_per_token"],
      1e-2, 1e-3)
close(b["batch5_vs_single"], b["decoder_batch5_ms_per_token"] / b["decoder_ms_per_token"],
      1e-2, 1e-3)
close(b["audio_hours_per_hour"], b["audio_seconds"] / b["end_to_end_seconds"], 1e-2, 1e-3)'

# With several runs each ratio is the median of per-run ratios, each run's
# engine time against a ceiling measured just before it.
"$bin" bench -m "$model" -t 1 -r 3 --json >"$tmp/b3.json" 2>"$tmp/e"
check "bench with 3 runs exits 0" test $? -eq 0
check "paired ratios are the medians of their runs" python3 - "$tmp/b3.json" <<'PY'
import json, statistics, sys
b = json.load(open(sys.argv[1]))
assert b["repeats"] == 3
for k in ("encoder_vs_sgemm", "decoder_vs_floor", "batch5_vs_single"):
    runs = b[k + "_runs"]
    assert len(runs) == 3 and all(r > 0 for r in runs), (k, runs)
    assert abs(b[k] - statistics.median(runs)) <= 1e-3 * b[k] + 1e-4, (k, b[k], runs)
PY

# The count from the file: hparams, then past the mel filters and the
# vocabulary, each tensor's name, ggml type and shape.
cat >"$tmp/count.py" <<'PY'
import struct
BLOCK = {2: 18, 6: 22, 7: 24, 8: 34}  # q4_0, q5_0, q5_1, q8_0: bytes per 32 weights
def read_model(path):
    d = open(path, "rb").read()
    i32 = lambda o: struct.unpack_from("<i", d, o)[0]
    assert i32(0) == 0x67676D6C
    keys = ("n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer n_text_ctx "
            "n_text_state n_text_head n_text_layer n_mels ftype").split()
    hp = dict(zip(keys, struct.unpack_from("<11i", d, 4)))
    o = 48
    n_mel, n_fft = struct.unpack_from("<2i", d, o)
    o += 8 + 4 * n_mel * n_fft
    count = i32(o); o += 4
    for _ in range(count):
        o += 4 + i32(o)
    tensors = {}
    while o < len(d):
        n_dims, name_len, ttype = struct.unpack_from("<3i", d, o); o += 12
        ne = list(struct.unpack_from("<%di" % n_dims, d, o)) + [1] * (3 - n_dims); o += 4 * n_dims
        name = d[o:o + name_len].decode(); o += name_len
        n = ne[0] * ne[1] * ne[2]
        size = n * 4 if ttype == 0 else n * 2 if ttype == 1 else n // 32 * BLOCK[ttype]
        tensors[name] = (ttype, ne, size)
        o += size
    return hp, tensors
PY

check_json "bytes per step match the file's own tensor table" "
sys.path.insert(0, '$tmp')
from count import read_model
hp, t = read_model(model)
S, L = hp['n_text_state'], hp['n_text_layer']
per_step = 0
for name, (ttype, ne, size) in t.items():
    if not name.startswith('decoder.'):
        continue
    if '.cross_attn.key.' in name or '.cross_attn.value.' in name:
        continue  # projected once per window by the encoder pass
    if name == 'decoder.positional_embedding':
        size = S * 4  # one row per step
    per_step += size
# bench times 32 steps at n_past 1..32, each attending over n_past + 1 rows.
kv_len = sum(i + 1 for i in range(1, 33)) / 32
assert b['decoder_kv_len'] == kv_len, b['decoder_kv_len']
per_step += 2 * L * kv_len * S * 2 + 2 * L * hp['n_audio_ctx'] * S * 2  # f16 caches
assert b['decoder_bytes_per_token'] == per_step, (b['decoder_bytes_per_token'], per_step)"

check_json "bytes per step match the hparams alone" "
sys.path.insert(0, '$tmp')
from count import read_model
hp, _ = read_model(model)
S, L, V = hp['n_text_state'], hp['n_text_layer'], hp['n_vocab']
w = 2 if hp['ftype'] % 1000 == 1 else 4  # matrices; vectors are f32
layer = (4 + 2 + 8) * S * S * w + (3 * S + 2 * S + 5 * S + 6 * S) * 4
per_step = L * layer + V * S * w + S * 4 + 2 * S * 4
per_step += 2 * L * 17.5 * S * 2 + 2 * L * hp['n_audio_ctx'] * S * 2
assert b['decoder_bytes_per_token'] == per_step, (b['decoder_bytes_per_token'], per_step)"

check_json "encoder GFLOP match the model's shapes" "
sys.path.insert(0, '$tmp')
from count import read_model
hp, _ = read_model(model)
S, T, M = hp['n_audio_state'], hp['n_audio_ctx'], hp['n_mels']
conv = 2 * (2 * T) * 3 * M * S + 2 * T * 3 * S * S
layer = 2 * T * S * S * 4 + 2 * T * T * S * 2 + 2 * T * S * 4 * S * 2
cross = 2 * 2 * T * S * hp['n_text_state'] * hp['n_text_layer']  # decoder's keys and values
assert abs(b['encoder_gflop'] - (conv + layer * hp['n_audio_layer'] + cross) / 1e9) < 1e-3, b"

# Several files, one by one and as one batch: the counts are the engine's
# own, and the figures agree with one another.
sox "$wav" "$wav" "$wav" "$tmp/33s.wav"
"$bin" bench -m "$model" -t 2 -r 1 --json -b 3 --chunk 12 --sample-len 30 "$wav" "$tmp/33s.wav" \
  >"$tmp/b.json" 2>"$tmp/e"
check "bench --batch exits 0" test $? -eq 0
check_json "batched figures agree" '
assert b["files"] == 2 and b["lanes"] == 3, b
close(b["audio_seconds"], 11.0 + 33.0, 0, 0.05)
close(b["audio_hours_per_hour"], b["audio_seconds"] / b["end_to_end_seconds"], 1e-2, 1e-3)
close(b["one_by_one_audio_hours_per_hour"], b["audio_seconds"] / b["one_by_one_seconds"], 1e-2,
      1e-3)
# 11 s is one window; 33 s cut at silences near 12 s into three pieces of one each,
# or fewer when the quietest spot is further: at least two windows, at most 30
# tokens each, and a step feeds one token to each live window.
assert 2 <= b["windows"] <= 8, b["windows"]
assert b["decoder_steps"] <= b["tokens"] <= 30 * b["windows"], b
assert b["decoder_steps"] < b["tokens"], "no step fed two windows"
for k in ("batch_speedup", "encoder_ms_per_window", "decoder_ms_per_token_amortized",
          "audio_hours_per_hour_at_100_tokens", "one_by_one_audio_hours_per_hour_at_100_tokens"):
    assert math.isfinite(b[k]) and b[k] > 0, (k, b[k])'
check "bench --batch 8 is a usage error" test "$("$bin" bench -m "$model" -b 8 "$wav" >/dev/null 2>&1; echo $?)" = 2
check "bench --chunk 2 is a usage error" test "$("$bin" bench -m "$model" --chunk 2 "$wav" >/dev/null 2>&1; echo $?)" = 2
"$bin" bench -m "$model" -t 1 -r 1 "$tmp/missing.wav" >/dev/null 2>"$tmp/e"
check "a missing file fails with its name" test $? -eq 1
check "... named on stderr" grep -q 'missing.wav' "$tmp/e"

"$bin" bench -m "$model" -t 1 -r 1 "$wav" >"$tmp/b.txt" 2>"$tmp/e"
check "bench text exits 0" test $? -eq 0
check "text shows memcpy bandwidth" grep -q '^memcpy .* GB/s' "$tmp/b.txt"
check "text shows the decoder floor" grep -q '^decoder floor .*x the floor' "$tmp/b.txt"
check "text shows audio hours per hour" grep -q 'audio hours per hour' "$tmp/b.txt"
check "text shows encoder GFLOP" grep -q 'GFLOP:' "$tmp/b.txt"

finish cli_bench
