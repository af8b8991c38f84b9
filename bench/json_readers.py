"""Which JSON reader for the core: nlohmann (today), simdjson, RapidJSON.

Takes the model JSON of Cadence QAT programs with N parallel conv+BN chains
(fold_speed.Wide, built once and kept under build/bench-programs/),
and runs build/json_readers once per reader in its own process: parse plus
a walk over every value, median of 9 runs, and the process's peak RSS. The
file itself is held twice (text and a padded copy), which sets the floor.
Usage: .venv/bin/python -m bench.json_readers [--chains 50 400]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READERS = ["nlohmann", "nlohmann-callback", "rapidjson", "simdjson-dom", "simdjson-ondemand"]


def program_archive(chains: int) -> str:
    """The N-chain wide Cadence QAT archive (fold_speed.Wide), built once."""
    folder = os.path.join(REPO, "build", "bench-programs")
    path = os.path.join(folder, f"wide{chains}.pt2")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        code = ("import torch; from bench import fold_speed; from zoo.flows import export_qat_cadence; "
                "torch.manual_seed(0); "
                f"torch.export.save(export_qat_cadence(fold_speed.Wide({chains}), (torch.randn(1, 3, 16, 16),)), "
                f"{path + '.tmp'!r})")
        subprocess.check_call([sys.executable, "-c", code], stderr=subprocess.DEVNULL, cwd=REPO)
        os.replace(path + ".tmp", path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, nargs="+", default=[50])
    args = parser.parse_args()
    tool = os.path.join(REPO, "build", "json_readers")
    for chains in args.chains:
        archive = program_archive(chains)
        with zipfile.ZipFile(archive) as z:
            name = next(n for n in z.namelist() if n.endswith("models/model.json"))
            text = z.read(name)
        json_path = archive + ".model.json"
        with open(json_path, "wb") as f:
            f.write(text)
        print(f"{chains} chains: models/model.json {len(text) / 2**20:.2f} MiB")
        base = None
        for reader in READERS:
            out = subprocess.check_output([tool, reader, json_path, "9"], text=True).split()
            ms, peak = float(out[1]), float(out[-3])
            base = base or ms
            print(f"  {reader:18s} {ms:8.2f} ms  {len(text) / 2**20 / (ms / 1000):7.0f} MiB/s  "
                  f"{base / ms:6.1f}x nlohmann   peak RSS {peak:6.1f} MiB")
        os.remove(json_path)


if __name__ == "__main__":
    main()
