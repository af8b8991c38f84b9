#!/usr/bin/env bash
# Line coverage of src/qatfold reached by the fuzz corpora (clang source-based
# coverage): builds the targets with coverage mapping in BUILD_DIR (default
# build-fuzz-coverage), replays each corpus of CORPUS_DIR (default
# build-asan/corpus, as `make fuzz` left it) once, and prints llvm-cov's report.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-fuzz-coverage}
corpus=${CORPUS_DIR:-build-asan/corpus}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQATFOLD_FUZZ=ON \
  -DQATFOLD_BUILD_TESTS=OFF -DQATFOLD_BUILD_CLI=OFF \
  -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping" >/dev/null
cmake --build "$build" >/dev/null
rm -f "$build"/*.profraw
objects=()
for target in zip_reader model_json payload pipeline; do
  [ -d "$corpus/$target" ] || continue
  LLVM_PROFILE_FILE="$build/$target-%p.profraw" ASAN_OPTIONS=detect_leaks=0 \
    "$build/${target}_fuzz" -runs=0 "$corpus/$target" >/dev/null 2>&1
  objects+=(-object "$build/${target}_fuzz")
done
llvm-profdata merge -sparse "$build"/*.profraw -o "$build/fuzz.profdata"
llvm-cov report "${objects[@]:1}" -instr-profile="$build/fuzz.profdata" src/qatfold
