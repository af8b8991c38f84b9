"""python -m qatfold verify ORIGINAL.pt2 FOLDED.pt2 [--inputs FILE] [--labels FILE] [--top1] [--json]
python -m qatfold fold IN.pt2 -o OUT.pt2 --calibrate FILE [fold options] [--json]

verify runs both programs on the inputs (a file torch.save'd as a tuple of
tensors or a list of such tuples; the original program's example inputs when
none are given) and prints, per folded conv, the share of its output
quantization that saturates before and after the fold and its deviation in
steps, and each output's deviation. With --labels (a torch.save'd 1-D
integer tensor of class indices over every batch, or a list, one per batch)
or --top1, it also prints how often the two programs' top-1 (argmax over the
last dimension of the first output) agree and, with labels, each one's
accuracy. The folds it measures are the ones any
option could have made whose batch_norm the folded program no longer has, so
a program folded with calibration or re-quantized weights is measured too.

fold is qatfold.fold(program, calibrate=inputs) from the shell: the command
line's qatfold fold does not run programs, so a batch_norm behind a quantized
conv or linear without a quantize after it (XNNPACK's conv3d, padding="same",
linear + BatchNorm1d) needs this one to fold with a calibrated range. The
output is written as the command line writes it (a symlink's target, a
character device written through, a file replaced atomically with its mode
kept; nothing written on error).

Exit codes, as the command line's: 0 success; 1 an unreadable input, an
unwritable output or inputs that do not fit the program (one line on stderr,
naming the file and the problem); 2 wrong usage; 3 verify flagged a conv
(saturation up by more than 0.5 percentage points); 4 fold --strict: a
batch_norm is left in a quantized program or runs in training mode (the
output is written).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path

EXIT_ERROR = 1
EXIT_FLAGGED = 3
EXIT_STRICT = 4


class _Failure(Exception):
    """A one-line error about `path`."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet_imports():
    """torch, torchao and ExecuTorch announce optional libraries they did not
    find and deprecations on import: none of it is about the user's program,
    and the command's own output is what the user reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            logging.disable(logging.NOTSET)


def _load_program(path: Path):
    import torch

    if not path.is_file():
        raise _Failure(path, "no such file" if not path.exists() else "not a regular file")
    from . import _core

    try:
        _core.inspect_archive(path.read_bytes())  # qatfold's reader: one line for anything malformed
    except _core.QatfoldError as e:
        raise _Failure(path, str(e)) from e
    try:
        with _quiet_imports():
            return torch.export.load(path)
    except Exception as e:  # torch's loader raises what its layers raise
        raise _Failure(path, f"torch.export.load cannot load it: {_first_line(e)}") from e


def _load_inputs(path: Path, option: str, holding: str = "a tuple of tensors or a list of such tuples"):
    import pickle

    import torch

    if not path.is_file():
        raise _Failure(path, f"{option}: no such file" if not path.exists() else f"{option}: not a regular file")
    try:
        return torch.load(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise _Failure(path, f"{option}: torch.load (weights only) cannot read it: expected a file torch.save wrote "
                             f"holding {holding}") from e


def _parser(fold_options: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qatfold", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="measure a fold on real inputs")
    verify.add_argument("original", type=Path)
    verify.add_argument("folded", type=Path)
    verify.add_argument("--inputs", type=Path, help="torch.save'd tuple of tensors, or list of tuples")
    verify.add_argument("--labels", type=Path,
                        help="torch.save'd class indices (a 1-D integer tensor over every input batch, or a list, "
                             "one per batch): adds top-1 agreement and each program's accuracy")
    verify.add_argument("--top1", action="store_true",
                        help="top-1 agreement of the first output (argmax over its last dimension), without labels")
    verify.add_argument("--json", action="store_true", help="print the measurements as JSON")
    fold = commands.add_parser("fold", help="fold with calibration inputs")
    fold.add_argument("input", type=Path)
    fold.add_argument("-o", "--output", type=Path, required=True)
    fold.add_argument("--calibrate", type=Path, required=True,
                      help="torch.save'd tuple of tensors, or list of tuples, to calibrate on")
    for row in fold_options.values():
        if row["kind"] == "flag":
            fold.add_argument(row["cli_flag"], dest=row["python_name"], action="store_true", default=None,
                              help=row["help"])
        elif row["kind"] == "choice":
            fold.add_argument(row["cli_flag"], dest=row["python_name"], choices=row["choices"], help=row["help"])
        else:
            fold.add_argument(row["cli_flag"], dest=row["python_name"], type=float, metavar="FLOAT",
                              help=row["help"])
    fold.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ._arguments import FOLD_OPTIONS

    args = _parser(FOLD_OPTIONS).parse_args(argv)  # exits 2 on wrong usage
    # torch's own deprecation warnings (pytree, weights_only) are not about
    # the user's program: the command's output is what the user reads.
    warnings.simplefilter("ignore")
    with _quiet_imports():
        import torch  # noqa: F401
        import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed ops)
    from ._core import QatfoldError

    try:
        if args.command == "fold":
            return _fold(args, list(FOLD_OPTIONS))
        return _verify(args)
    except _Failure as e:
        print(f"qatfold: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except QatfoldError as e:
        print(f"qatfold: error: {args.input if args.command == 'fold' else args.original}: {e}", file=sys.stderr)
        return EXIT_ERROR


# The options under which the core folds every chain it can: a batch_norm
# behind a quantized layer folds with an estimated range where the folded
# program's came from calibration, and per-tensor weights are re-quantized.
# Only which (conv, batch_norm) pairs fold matters here, not how.
_EVERY_FOLD = {"quantized_batch_norm": "estimate", "per_tensor_weights": "requantize", "eps_tolerance": "1.0"}


def _verify(args) -> int:
    from . import _arguments, _core
    from ._api import FoldReport
    from ._verify import measurable_folds, verify_fold

    original = _load_program(args.original)
    folded = _load_program(args.folded)
    inputs = _load_inputs(args.inputs, "--inputs") if args.inputs else None
    labels = _load_inputs(args.labels, "--labels", "a 1-D integer tensor or a list of them") if args.labels else None
    _check_related(args.original, original, args.folded, folded)
    where = args.inputs if args.inputs else args.original
    try:
        _, batches = _arguments.batches(original, inputs, "--inputs")
    except _core.QatfoldError as e:
        raise _Failure(where, str(e)) from e
    try:
        _arguments.labels(labels, len(batches), "--labels")
    except _core.QatfoldError as e:
        raise _Failure(args.labels, str(e)) from e
    _, report_json, _ = _core.fold_archive(args.original.read_bytes(), _EVERY_FOLD, True, False)
    report = FoldReport.from_json(json.loads(report_json), "", True)
    remaining = {n.name for n in folded.graph.nodes}
    folds = [(conv, batch_norm) for conv, batch_norm in measurable_folds(report) if batch_norm not in remaining]
    try:
        verification = verify_fold(original, folded, folds, inputs, "--inputs", labels, args.top1)
    except _core.QatfoldError as e:
        raise _Failure(args.labels if str(e).startswith("--labels") else where, str(e)) from e
    if args.json:
        print(json.dumps(verification.to_json()))
    else:
        print(verification.text(), end="")
    return EXIT_FLAGGED if verification.flagged_count else 0


def _check_related(original_path: Path, original, folded_path: Path, folded) -> None:
    """The folded program must take the inputs the original takes."""
    def inputs(program):
        user = set(program.graph_signature.user_inputs)
        return [(str(n.meta["val"].dtype), tuple(str(s) for s in n.meta["val"].shape)) if "val" in n.meta else None
                for n in program.graph.nodes if n.op == "placeholder" and n.name in user]

    if inputs(original) != inputs(folded):
        raise _Failure(folded_path, f"takes other inputs than {original_path} (not a fold of it)")
    if len(original.graph_signature.user_outputs) != len(folded.graph_signature.user_outputs):
        raise _Failure(folded_path, f"has another number of outputs than {original_path} (not a fold of it)")


def _fold(args, option_names: list[str]) -> int:
    import dataclasses

    import torch

    from . import _core
    from ._api import fold

    program = _load_program(args.input)
    inputs = _load_inputs(args.calibrate, "--calibrate")
    options = {name: getattr(args, name) for name in option_names if getattr(args, name) is not None}
    strict = options.pop("strict", False)
    try:
        result = fold(program, calibrate=inputs, **options)
    except _core.QatfoldError as e:
        raise _Failure(args.calibrate if str(e).startswith("calibrate") else args.input, str(e)) from e
    buffer = io.BytesIO()
    with _quiet_imports():
        torch.export.save(result.program, buffer)
    try:
        _core.write_output(str(args.output), buffer.getvalue())
    except _core.QatfoldError as e:
        raise _Failure(args.output, str(e)) from e
    report = result.report
    if args.json:
        print(json.dumps({f.name: getattr(report, f.name) for f in dataclasses.fields(report) if f.name != "text"},
                         default=lambda o: dataclasses.asdict(o)
                         if dataclasses.is_dataclass(o) and not isinstance(o, type) else str(o)))
    else:
        print(report.text, end="")
    if strict and report.strict_failed:  # as the command line's --strict: after writing
        print(f"qatfold: strict: {len(report.strict_failures)} batch_norm(s) left" if report.strict_failures
              else "qatfold: strict: the program has batch_norms and no quantization (see the warning)",
              file=sys.stderr)
        for failure in report.strict_failures:
            print(f"  {failure['batch_norm']}: {failure['reason']}", file=sys.stderr)
        return EXIT_STRICT
    return 0


if __name__ == "__main__":
    sys.exit(main())
