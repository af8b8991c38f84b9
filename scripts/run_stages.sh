#!/usr/bin/env bash
# Runs `make STAGE` for each stage in turn and prints how long each took:
# `make test` is what every contributor waits for, so it says where the
# minutes go. Stops at the first stage that fails.
set -uo pipefail
summary=""
total_start=$(date +%s)
for stage in "$@"; do
  start=$(date +%s)
  ${MAKE:-make} --no-print-directory "$stage"
  status=$?
  summary+=$(printf '  %-12s %4ds' "$stage" $(( $(date +%s) - start )))$'\n'
  if [ "$status" -ne 0 ]; then
    printf '\nstage times (stopped: %s failed):\n%s' "$stage" "$summary"
    exit "$status"
  fi
done
printf '\nstage times:\n%s  %-12s %4ds\n' "$summary" "total" $(( $(date +%s) - total_start ))
