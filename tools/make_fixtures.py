"""Writes tests/fixtures/*.pt2 with real torch.export.save.

Usage: .venv/bin/python -m tools.make_fixtures [OUTPUT_DIR]   (from the repository root)
"""

from __future__ import annotations

import os
import sys
import zipfile

import torch

from zoo.fixtures import fixture_programs


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    for name, program in fixture_programs().items():
        path = os.path.join(out_dir, f"{name}.pt2")
        torch.export.save(program, path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    # The same program as a generic zip tool writes it: deflated, unaligned.
    source = os.path.join(out_dir, "tied_weights.pt2")
    deflated = os.path.join(out_dir, "tied_weights_deflated.pt2")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, src.read(info.filename))
    print(f"wrote {deflated} ({os.path.getsize(deflated)} bytes)")


if __name__ == "__main__":
    main()
