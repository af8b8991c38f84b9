"""python -m qatfold verify ORIGINAL.pt2 FOLDED.pt2 [--inputs FILE] [--json]

Runs both programs on the inputs (a file torch.save'd as a tuple of tensors
or a list of such tuples; the original program's example inputs when none
are given) and prints, per folded conv, the share of its output quantization
that saturates before and after the fold and its deviation in steps, and
each output's deviation. Exit code 3 when a conv is flagged (saturation up
by more than 0.5 percentage points), 1 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qatfold", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="measure a fold on real inputs")
    verify.add_argument("original", type=Path)
    verify.add_argument("folded", type=Path)
    verify.add_argument("--inputs", type=Path, help="torch.save'd tuple of tensors, or list of tuples")
    verify.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args(argv)

    import torch
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401 (registers quantized_decomposed ops)

    from . import _core
    from ._verify import verify_fold

    try:
        original = torch.export.load(args.original)
        folded = torch.export.load(args.folded)
        _, report_json, _ = _core.fold_archive(args.original.read_bytes(), {}, True, False)
        inputs = torch.load(args.inputs) if args.inputs else None
    except (OSError, RuntimeError, ValueError) as e:
        print(f"qatfold: error: {e}", file=sys.stderr)
        return 1
    report = json.loads(report_json)
    convs = [(c["conv"], c["batch_norm"]) for c in report["folded"] if c["bias_dtype"] == "int32"]
    verification = verify_fold(original, folded, convs, inputs)
    if args.json:
        print(json.dumps(verification.to_json()))
    else:
        print(verification.text(), end="")
    return 3 if verification.flagged_count else 0


if __name__ == "__main__":
    sys.exit(main())
