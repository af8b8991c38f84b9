#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60), or until FUZZ_RUNS
# executions if that is set and comes first, on its corpus in BUILD_DIR
# (default build-asan, where `make build-asan` builds them), then prints executions and coverage per target.
#   fuzz/run.sh [SECONDS] [TARGET...]
# A crash leaves crash-* in BUILD_DIR/findings/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}; shift || true
build=${BUILD_DIR:-build-asan}
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(zip_reader model_json payload pipeline)
python3 fuzz/prepare.py "$build" >/dev/null
mkdir -p "$build/findings" "$build/logs"
status=0
for target in "${targets[@]}"; do
  log="$build/logs/$target-${seconds}s.log"
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       "$build/${target}_fuzz" "$build/corpus/$target" -dict="$build/pt2.dict" \
       -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" -rss_limit_mb=2048 -max_len=262144 -timeout=20 \
       -artifact_prefix="$build/findings/$target-" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz: $target FAILED, see $log"; grep -a -m3 -E "ERROR|SUMMARY|Test unit written" "$log" || true
    status=1
  fi
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -ao '[0-9]*$' || echo 0)
  cov=$(grep -aE '^#[0-9]+' "$log" | tail -1 | grep -ao 'cov: [0-9]*' || echo 'cov: ?')
  ft=$(grep -aE '^#[0-9]+' "$log" | tail -1 | grep -ao 'ft: [0-9]*' || echo 'ft: ?')
  echo "fuzz: $target  ${seconds}s  execs=$execs  $cov  $ft  corpus=$(ls "$build/corpus/$target" | wc -l)"
done
exit $status
