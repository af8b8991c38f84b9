"""Writes tests/fixtures/*.pt2 with real torch.export.save.

Usage: .venv/bin/python scripts/make_fixtures.py [OUTPUT_DIR]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from fixture_models import fixture_programs  # noqa: E402


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    for name, program in fixture_programs().items():
        path = os.path.join(out_dir, f"{name}.pt2")
        torch.export.save(program, path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
