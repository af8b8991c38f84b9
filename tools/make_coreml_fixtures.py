"""Writes tests/fixtures/coreml_*.pt2: Core ML's QAT programs of the layer
kinds whose BatchNorm it leaves in a quantized program (zoo/layers.py:
linear + BatchNorm1d and conv3d, each feeding its BatchNorm directly,
quantized after its ReLU. Measured here too: a conv2d + BatchNorm comes out
of Core ML's QAT convert with no batch_norm, and a conv2d with
padding="same" not quantized at all), made as zoo/quantizers.py makes every
quantizer's. Core ML's QAT takes one to two minutes a program here, so the
tests read these committed programs instead of making them.

Usage: .venv/bin/python -m tools.make_coreml_fixtures [OUTPUT_DIR]   (from the repository root)
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import torch

from zoo import layers, quantizers

KINDS = ("linear", "conv3d")


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    for kind in KINDS:
        path = os.path.join(out_dir, f"coreml_{kind}.pt2")
        torch.export.save(quantizers.export("coreml", *layers.build(kind, followed=False)), path)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
