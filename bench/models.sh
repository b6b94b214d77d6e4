# Sourced by the bench scripts: bench_model NAME prints the path of a
# model file. NAME is a path (used as it is), a size (tiny, base, small,
# ...) or SIZE-QTYPE (base-q5_0), generated once into build/bench-models
# with the real architecture, seeded random weights and, where ../shared
# has it, the golden micro model's vocabulary. Needs $bin.
bench_model() {
  local name=$1
  if [ -f "$name" ]; then
    echo "$name"
    return
  fi
  local models size m vocab=../shared/golden/ggml-micro-synthetic.en.bin
  models=$(dirname "$bin")/bench-models
  size=${name%%-*}
  m=$models/$name.bin
  mkdir -p "$models"
  if [ ! -f "$m" ]; then
    local args=(--preset "$size")
    [ "$name" != "$size" ] && args+=(--quantize "${name#*-}")
    [ -f "$vocab" ] && args+=(--vocab-from "$vocab")
    "$bin" gen-model "${args[@]}" "$m" >/dev/null 2>&1
  fi
  echo "$m"
}
