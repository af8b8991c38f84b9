"""The entry points: fold, inspect and FuseQATConvBN. ExportedProgram in,
ExportedProgram out: through the FX front door (_fx.py), or through an
in-memory PT2 archive for programs it cannot describe. The report's
dataclasses live in _report.py, the ExecuTorch Cadence integration in
_executorch.py; both are re-exported here, where the typing stub describes
them."""

from __future__ import annotations

import io
import json
from typing import Any

from . import _arguments, _core
from ._arguments import FOLD_OPTIONS as FOLD_OPTIONS  # re-exported: qatfold.FOLD_OPTIONS
from ._executorch import CADENCE_FOLDING_FUNCTIONS as CADENCE_FOLDING_FUNCTIONS
from ._executorch import cadence_compiler as cadence_compiler
from ._executorch import in_cadence_compile as in_cadence_compile
from ._report import REFUSAL_CODES as REFUSAL_CODES
from ._report import FoldedConv as FoldedConv
from ._report import FoldReport, FoldResult
from ._report import PreparedBias as PreparedBias
from ._report import SkippedBatchNorm as SkippedBatchNorm
from ._signatures import with_fold_options
from ._verify import Verification, measurable_folds, observe_batch_norms, verify_fold


def _to_archive(program) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _from_archive(data: bytes):
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed ops)

    return torch.export.load(io.BytesIO(data))




def fold(program: Any, *, explain: bool = False, verify: Any = None, calibrate: Any = None, labels: Any = None,
         top1: bool = False, **options: Any) -> FoldResult:
    """Folds every QAT Conv+BatchNorm chain of ``program`` into its conv's
    bias; returns a new ExportedProgram and the report. ``explain`` lists
    every batch_norm left in the report, not only QAT chains.

    ``verify``: inputs to measure the fold on (a tuple of tensors, a list of
    such tuples, or True for the program's example inputs). Both programs
    run on them; ``result.verification`` gives, per folded conv, the share
    of its output quantization that saturates before and after and its
    deviation in steps, and the flags then come from that measurement
    (saturation up by more than 0.5 percentage points), not from the
    estimate. Representative data gives a representative answer.

    ``labels``: with ``verify``, the class of each sample: a 1-D integer
    tensor over every batch in order, or a list of such tensors, one per
    batch. ``result.verification.top1`` then gives how often the folded
    program's top-1 (argmax over the last dimension of the first output)
    agrees with the un-folded one's, and each one's accuracy. ``top1=True``
    gives the agreement without labels.

    ``calibrate``: inputs as ``verify`` takes them, for a batch_norm that
    follows a quantized conv or linear without a QAT chain (XNNPACK's conv3d,
    padding="same", linear + BatchNorm1d): its output range on these inputs
    gives the folded layer's output quantization, as a MinMaxObserver would
    (the report says "calibrated"). Without it such a batch_norm folds only
    where a quantize trained after it tells the range.

    Raises QatfoldError for programs qatfold cannot read and for arguments
    of the wrong type or value (the message names the argument and what it
    expects), TypeError for unknown keywords."""
    values = _checked_call(program, "fold", explain, verify, options, labels, top1)
    observed = _calibrated(program, calibrate)
    folded, report = _fold_copy(program, values, explain, observed)
    report = _with_calibration_note(report, calibrate)
    if verify is None or verify is False:
        result = FoldResult(folded, report)
    else:
        verification = verify_fold(program, folded, measurable_folds(report), verify, labels=labels, top1=top1)
        result = FoldResult(folded, _with_measured_flags(report, verification), verification)
    _check_strict(result, options.get("strict", False), "fold")
    return result


def _check_strict(result: Any, strict: bool, caller: str) -> None:
    """strict=True: QatfoldError when a batch_norm is left that an integer
    backend cannot take, with the report (and the result) attached."""
    report = result.report
    if not strict or not report.strict_failed:
        return
    if report.strict_failures:
        listed = "; ".join(f"{f['batch_norm']}: {f['reason']}" for f in report.strict_failures)
        message = f"{caller}: strict: {len(report.strict_failures)} batch_norm(s) left: {listed}"
    else:
        message = f"{caller}: strict: {report.warnings[0]}"
    error = _core.QatfoldError(message)
    error.report = report  # type: ignore[attr-defined]
    error.result = result  # type: ignore[attr-defined]
    raise error


def _checked_call(program, caller: str, explain: Any, verify: Any, options: dict[str, Any],
                  labels: Any = None, top1: Any = False) -> dict[str, str]:
    """The option values of a fold call, once every argument is checked."""
    _arguments.check_program(program, caller)
    _arguments.check_flag(explain, "explain", caller)
    _arguments.check_flag(top1, "top1", caller)
    values = _arguments.option_values(options, caller)
    verifying = verify is not None and verify is not False
    if verifying:
        _, batches = _arguments.batches(program, verify, "verify")
        _arguments.labels(labels, len(batches))
    elif labels is not None or top1:
        raise _core.QatfoldError(f"{caller}: {'labels' if labels is not None else 'top1'} needs verify= "
                           "(the inputs the labels belong to)")
    return values


def _calibrated(program, calibrate: Any) -> dict[str, tuple[float, float]]:
    return {} if calibrate is None else observe_batch_norms(program, calibrate, "calibrate")


def _with_calibration_note(report: FoldReport, calibrate: Any) -> FoldReport:
    """Says so when calibration inputs were given and no fold used them."""
    import dataclasses

    if calibrate is None or any(c.requantized and c.requantized.get("source") == "calibrated" for c in report.folded):
        return report
    note = ("calibrate: no fold used the calibration inputs (no batch_norm behind a quantized layer needed an "
            "output range)")
    return dataclasses.replace(report, notes=[*report.notes, note], text=report.text + note + "\n")


def _fold_copy(program, values: dict[str, str], explain: bool, observed: dict[str, tuple[float, float]] | None = None):
    """(folded copy of ``program``, report), through the FX front door, or
    through an in-memory archive for a program it cannot describe."""
    from . import _fx

    try:
        with _fx.collector_paused():  # one pause over both: no collection in between
            folded = _fx.copy_program(program, compile=False)
            report_json, text = _fx.fold_in_place(folded, values, explain, compiled=False, observed=observed)
    except _fx.Unsupported:
        data, report_json, text = _core.fold_archive(_to_archive(program), values, False, explain, observed or {})
        folded = _from_archive(data)
    return folded, FoldReport.from_json(json.loads(report_json), text, explain)


def _with_measured_flags(report: FoldReport, verification: Verification) -> FoldReport:
    """The report with each measured conv's flag from the measurement."""
    import dataclasses

    measured = {c.conv: c.flagged for c in verification.convs}
    folded = [dataclasses.replace(c, flagged=measured.get(c.conv, c.flagged)) for c in report.folded]
    estimate = "; the 'may clip' marks above are the estimate" if report.flagged_count else ""
    text = (report.text + verification.text() +
            f"flagged by measurement (saturation up by more than 0.5 percentage points): "
            f"{sum(c.flagged for c in folded)}{estimate}\n")
    return dataclasses.replace(report, folded=folded, flagged_count=sum(c.flagged for c in folded), text=text)


with_fold_options(fold)


def inspect(program: Any) -> dict[str, Any]:
    """The ``qatfold inspect --json`` summary of ``program``."""
    _arguments.check_program(program, "inspect")
    return json.loads(_core.inspect_archive(_to_archive(program)))


def _replace_in_place(program, folded) -> None:
    """Makes ``program`` hold ``folded``: graph (in the same GraphModule),
    signature, state_dict and constants."""
    graph_module = program.graph_module
    graph_module.graph = folded.graph_module.graph
    graph_module.recompile()
    program._graph_signature = folded.graph_signature
    program._state_dict = folded.state_dict
    program._constants = folded.constants


try:
    from torch.fx.passes.infra.pass_base import PassBase, PassResult
except ImportError:  # torch is optional for the command-line-only install
    PassBase = object  # type: ignore[misc,assignment]
    PassResult = None  # type: ignore[assignment]


class FuseQATConvBN(PassBase):  # type: ignore[misc,valid-type]
    """Drop-in replacement for ExecuTorch's ``FuseQATConvBN``: a PassBase
    that, called on ``exported_program.graph_module``, folds the program in
    place (graph, signature, state_dict, constants) with qatfold's C++ core.
    The last run's report is kept in ``self.report``. Takes the same
    keyword options as ``qatfold.fold``."""

    def __init__(self, exported_program: Any, *, verify: Any = None, calibrate: Any = None, labels: Any = None,
                 top1: bool = False, **options: Any) -> None:
        super().__init__()
        # Wrong arguments fail here, not at the first call.
        _checked_call(exported_program, "FuseQATConvBN", False, verify, options, labels, top1)
        if calibrate is not None:
            _arguments.batches(exported_program, calibrate, "calibrate")
        self.exported_program = exported_program
        self.options = dict(options)
        self.verify = verify
        self.calibrate = calibrate
        self.labels, self.top1 = labels, top1
        self.report: FoldReport | None = None
        self.verification: Verification | None = None

    def call(self, graph_module):
        program = self.exported_program
        if graph_module is not program.graph_module:
            raise ValueError("FuseQATConvBN must be called on its exported program's graph_module")
        from . import _fx

        values = _arguments.option_values(self.options, "FuseQATConvBN")
        # Verification compares with the program as it was: keep a copy.
        original = _fx.copy_program(program) if self.verify not in (None, False) else None
        observed = _calibrated(program, self.calibrate)
        try:
            report_json, text = _fx.fold_in_place(program, values, False, observed=observed)
            report = FoldReport.from_json(json.loads(report_json), text, False)
        except _fx.Unsupported:
            folded, report = _fold_copy(program, values, False, observed)
            if report.changed:
                _replace_in_place(program, folded)
        report = _with_calibration_note(report, self.calibrate)
        self.report, self.verification = report, None
        if original is not None:
            self.verification = verify_fold(original, program, measurable_folds(report), self.verify,
                                            labels=self.labels, top1=self.top1)
            self.report = _with_measured_flags(report, self.verification)
        _check_strict(self, self.options.get("strict", False), "FuseQATConvBN")
        return PassResult(program.graph_module, report.changed)


with_fold_options(FuseQATConvBN.__init__)
