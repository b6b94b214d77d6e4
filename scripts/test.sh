#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build with
# warnings as errors and run every test, then the same under AddressSanitizer
# and UndefinedBehaviorSanitizer, then a short libFuzzer run on the model
# loader. Golden data is read from ../shared (DIARIST_SHARED overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
shared=${DIARIST_SHARED:-$(cd .. && pwd)/shared}

echo "== release build (-Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIARIST_WERROR=ON -DDIARIST_SHARED="$shared" >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== ASan + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIARIST_WERROR=ON \
      -DDIARIST_SANITIZE=ON -DDIARIST_SHARED="$shared" >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== libFuzzer on the model loader (60 s)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIARIST_FUZZ=ON \
      -DDIARIST_SANITIZE=ON -DDIARIST_SHARED="$shared" >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_model
mkdir -p build-fuzz/corpus
cp "$shared/golden/ggml-micro-synthetic.en.bin" build-fuzz/corpus/micro.bin
build-fuzz/fuzz/fuzz_model -max_total_time=60 -max_len=2000000 -rss_limit_mb=4096 \
  build-fuzz/corpus 2>&1 | tail -n 3
echo "all tests passed"
