#!/usr/bin/env bash
# Installs the Debian packages the C++ build needs, if any are missing.
set -euo pipefail
# clang and its runtime (libFuzzer, sanitizers) build the fuzz targets;
# graphviz checks that the --dot pictures render; time, simdjson and RapidJSON
# serve the benchmarks (bench/).
packages=(g++ make python3-venv nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev zlib1g-dev
          clang libclang-rt-14-dev graphviz time libsimdjson-dev rapidjson-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "qatfold needs these Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
