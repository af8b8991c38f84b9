"""python -m qatfold verify ORIGINAL.pt2 FOLDED.pt2 [--inputs FILE] [--json]
python -m qatfold fold IN.pt2 -o OUT.pt2 --calibrate FILE [fold options] [--json]

verify runs both programs on the inputs (a file torch.save'd as a tuple of
tensors or a list of such tuples; the original program's example inputs when
none are given) and prints, per folded conv, the share of its output
quantization that saturates before and after the fold and its deviation in
steps, and each output's deviation. The folds it measures are the ones any
option could have made whose batch_norm the folded program no longer has, so
a program folded with calibration or re-quantized weights is measured too.
Exit code 3 when a conv is flagged (saturation up by more than 0.5
percentage points), 1 for unreadable input.

fold is qatfold.fold(program, calibrate=inputs) from the shell: the command
line's qatfold fold does not run programs, so a batch_norm behind a quantized
conv or linear without a quantize after it (XNNPACK's conv3d, padding="same",
linear + BatchNorm1d) needs this one to fold with a calibrated range. Exit
code 1 for unreadable input, with no output written.
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
    from ._api import FOLD_OPTIONS

    fold = commands.add_parser("fold", help="fold with calibration inputs")
    fold.add_argument("input", type=Path)
    fold.add_argument("-o", "--output", type=Path, required=True)
    fold.add_argument("--calibrate", type=Path, required=True,
                      help="torch.save'd tuple of tensors, or list of tuples, to calibrate on")
    for row in FOLD_OPTIONS.values():
        fold.add_argument(row["cli_flag"], dest=row["python_name"], help=row["help"])
    fold.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.command == "fold":
        return _fold(args, [row["python_name"] for row in FOLD_OPTIONS.values()])

    import torch
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401 (registers quantized_decomposed ops)

    from . import _core
    from ._api import FoldReport, _measurable
    from ._verify import verify_fold

    try:
        original = torch.export.load(args.original)
        folded = torch.export.load(args.folded)
        _, report_json, _ = _core.fold_archive(args.original.read_bytes(), _EVERY_FOLD, True, False)
        inputs = torch.load(args.inputs) if args.inputs else None
    except (OSError, RuntimeError, ValueError) as e:
        print(f"qatfold: error: {e}", file=sys.stderr)
        return 1
    report = FoldReport.from_json(json.loads(report_json), "", True)
    remaining = {n.name for n in folded.graph.nodes}
    folds = [(conv, batch_norm) for conv, batch_norm in _measurable(report) if batch_norm not in remaining]
    verification = verify_fold(original, folded, folds, inputs)
    if args.json:
        print(json.dumps(verification.to_json()))
    else:
        print(verification.text(), end="")
    return 3 if verification.flagged_count else 0


# The options under which the core folds every chain it can: a batch_norm
# behind a quantized layer folds with an estimated range where the folded
# program's came from calibration, and per-tensor weights are re-quantized.
# Only which (conv, batch_norm) pairs fold matters here, not how.
_EVERY_FOLD = {"quantized_batch_norm": "estimate", "per_tensor_weights": "requantize"}


def _fold(args, option_names: list[str]) -> int:
    import dataclasses
    import os

    import torch
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401 (registers quantized_decomposed ops)

    from ._api import fold

    options = {name: getattr(args, name) for name in option_names if getattr(args, name) is not None}
    temporary = args.output.with_name(f".{args.output.name}.{os.getpid()}.tmp")
    try:
        program = torch.export.load(args.input)
        inputs = torch.load(args.calibrate)
        result = fold(program, calibrate=inputs, **options)
        torch.export.save(result.program, temporary)
        os.replace(temporary, args.output)
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        temporary.unlink(missing_ok=True)
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"qatfold: error: {args.input}: {message}", file=sys.stderr)
        return 1
    report = result.report
    if args.json:
        print(json.dumps({f.name: getattr(report, f.name) for f in dataclasses.fields(report) if f.name != "text"},
                         default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o)))
    else:
        print(report.text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
