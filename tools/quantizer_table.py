"""The README's quantizer x layer table: for every quantizer of
zoo/quantizers.py and every layer kind of zoo/layers.py (alone, and followed
by a quantized layer), the batch_norms of the program before and after
qatfold, folded with default options and with `calibrate=` and
`per_tensor_weights="requantize"`; and the refusals of what stays.

Programs are built as the tests build them and cached (zoo/program_cache.py).
Core ML's QAT takes minutes a program: without --slow its row is the
committed programs (tests/fixtures/coreml_*.pt2, tools/make_coreml_fixtures.py).

Run: .venv/bin/python -m tools.quantizer_table [--slow] [quantizer ...]   (prints Markdown)
"""

from __future__ import annotations

import argparse
import collections
import logging
import pathlib
import warnings

import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import torchao.quantization.pt2e.quantize_pt2e  # noqa: E402,F401  (registers the quantized ops)

import qatfold  # noqa: E402
from tools import make_coreml_fixtures  # noqa: E402
from zoo import layers, quantizers  # noqa: E402
from zoo.program_cache import cached_archive  # noqa: E402


def batch_norms(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes)


FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def program_of(quantizer: str, kind: str, followed: bool, slow: bool):
    """The program, or None for a slow quantizer's program that is not committed."""
    if quantizers.QUANTIZERS[quantizer].slow and not slow:
        if quantizer != "coreml" or followed or kind not in make_coreml_fixtures.KINDS:
            return None
        return torch.export.load(FIXTURES / f"coreml_{kind}.pt2")
    path = cached_archive(f"table-{quantizer}-{layers.name(kind, followed)}",
                          lambda: quantizers.export(quantizer, *layers.build(kind, followed)))
    return torch.export.load(path)


def row(quantizer: str, kinds, slow: bool) -> list[str]:
    before = default = full = programs = 0
    refusals: collections.Counter = collections.Counter()
    failed = []
    for kind in kinds:
        for followed in (False, True):
            try:
                program = program_of(quantizer, kind, followed, slow)
            except Exception as error:  # a quantizer that cannot take the layer: said in the table
                failed.append(f"{layers.name(kind, followed)}: {type(error).__name__}")
                continue
            if program is None:
                continue
            programs += 1
            example = program.example_inputs[0]
            generator = torch.Generator().manual_seed(3)
            calibration = [tuple(torch.randn(x.shape, generator=generator) for x in example) for _ in range(4)]
            before += batch_norms(program)
            default += batch_norms(qatfold.fold(program).program)
            result = qatfold.fold(program, calibrate=calibration, per_tensor_weights="requantize")
            full += batch_norms(result.program)
            for skipped in result.report.skipped:
                refusals[skipped.code] += 1
    cells = [quantizer, str(programs), f"{before} -> {default}", f"{before} -> {full}",
             ", ".join(f"{code} x{n}" for code, n in refusals.most_common()) or "-",
             "; ".join(failed) or "-"]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quantizers", nargs="*", help="names from zoo/quantizers.py (default: all)")
    parser.add_argument("--slow", action="store_true", help="make Core ML's programs too (minutes each)")
    parser.add_argument("--kinds", default=",".join(layers.KINDS))
    args = parser.parse_args()
    names = args.quantizers or list(quantizers.QUANTIZERS)
    kinds = args.kinds.split(",")
    print("| quantizer | programs | batch_norm: default | with calibrate= and requantize | left, why | not made |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        cells = row(name, kinds, args.slow)
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
