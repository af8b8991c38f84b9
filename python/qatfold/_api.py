"""ExportedProgram in, ExportedProgram out: through the FX front door
(_fx.py), or through an in-memory PT2 archive for programs it cannot describe."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field, fields
from typing import Any

from . import _arguments, _core
from ._arguments import FOLD_OPTIONS as FOLD_OPTIONS  # re-exported: qatfold.FOLD_OPTIONS
from ._signatures import with_fold_options
from ._verify import Verification, measurable_folds, observe_batch_norms, verify_fold


@dataclass(frozen=True)
class PreparedBias:
    """A conv whose bias was created or quantized to int32 before folding."""

    conv: str
    action: str


@dataclass(frozen=True)
class FoldedConv:
    """A conv whose BatchNorm chain was folded into its bias.

    ``bias_dtype`` is "int32" for quantized convs and "float32" for convs the
    quantizer left in float (then ``output_range`` and ``relative_shift``,
    which measure the shift against the output quantization, are None).
    """

    conv: str
    conv_target: str
    kind: str
    module_path: str
    batch_norm: str
    folded_by: str  # the pass whose pattern folded it ("FoldConvBatchNormChain")
    channels: int
    bias_dtype: str
    scaled_weights: bool  # a plain batch_norm folded into float weights and bias
    per_channel_bias: bool
    copied_bias: bool
    clamped_bias_elements: int
    max_abs_shift: float
    output_range: tuple[float, float] | None
    relative_shift: float | None
    flagged: bool
    # When the scale chain's eps differed from batch_norm's: chain_eps,
    # batch_norm_eps, factor_min, factor_max (r) and how r was handled.
    eps_mismatch: dict[str, Any] | None = None
    # output_range="widen": the conv output's new quantization, {"scale",
    # "zero_point", "range": [low, high]} (output_range keeps the calibrated one).
    widened_output: dict[str, Any] | None = None
    # A batch_norm behind a quantized layer, folded into its per-channel
    # weight scales (folded_by "FoldBatchNormIntoWeightScales"): "source" of
    # the output quantization ("trained", "trained after relu", "calibrated",
    # "estimated"), "before" and "after" ({"scale", "zero_point", "range"}),
    # "negated_channels"; with per_tensor_weights="requantize", "weight_error"
    # (max error over the largest folded weight) and "channel_weight_error"
    # (the worst channel's, over its own largest; "worst_weight_channel").
    requantized: dict[str, Any] | None = None


@dataclass(frozen=True)
class SkippedBatchNorm:
    """A batch_norm left in the program, and why."""

    batch_norm: str
    module_path: str
    qat_chain: bool
    # The refusal's stable id ("eps-mismatch-per-tensor"; qatfold.REFUSAL_CODES
    # lists them) and its message.
    code: str
    reason: str
    # The keyword of fold() that acts on this refusal, if any, and for a
    # choice the value to set (None: a number to raise).
    option: str | None = None
    option_value: str | None = None


@dataclass(frozen=True)
class FoldReport:
    """What the fold did: the same content as ``qatfold fold --json``."""

    chains_found: int
    folded_count: int
    skipped_count: int
    clamped_bias_elements: int
    risk_threshold: float
    flagged_count: int
    removed_nodes: int
    removed_constants: int
    # False when no pass changed the program: the result is the input as it was.
    changed: bool
    # Which convs got an int32 bias: {"policy": "all" | "folded",
    # "requested": "auto" | "all" | "folded", "reason": ...}.
    bias_preparation: dict[str, str]
    prepared_biases: list[PreparedBias] = field(default_factory=list)
    folded: list[FoldedConv] = field(default_factory=list)
    skipped: list[SkippedBatchNorm] = field(default_factory=list)
    # Whether the program holds quantize or dequantize ops at all.
    quantized_program: bool = False
    # Likely mistakes the program shows (exported in training mode, never
    # quantized), a line each naming the fix; in ``text`` too.
    warnings: list[str] = field(default_factory=list)
    # The batch_norms strict=True fails on: every one left in a quantized
    # program, and every one in training mode ({"batch_norm", "module_path",
    # "code", "reason"}).
    strict_failures: list[dict[str, str]] = field(default_factory=list)
    # Whether strict=True fails: a strict failure, or batch_norms in a
    # program that was never quantized.
    strict_failed: bool = False
    # What the user should know that is not a fold or a refusal (calibration
    # inputs no fold used, ...), a line each, as in ``text``.
    notes: list[str] = field(default_factory=list)
    text: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any], text: str, explain: bool) -> FoldReport:
        # float() reads torch's "NaN"/"Infinity" strings as well as numbers.
        folded = [
            FoldedConv(**{**c, "max_abs_shift": float(c["max_abs_shift"]),
                          "relative_shift": None if c["relative_shift"] is None else float(c["relative_shift"]),
                          "output_range": None if c["output_range"] is None
                          else tuple(float(v) for v in c["output_range"])})
            for c in data["folded"]
        ]
        listed = ("prepared_biases", "folded", "skipped", "notes", "text")
        counts = {f.name: data[f.name] for f in fields(cls) if f.name not in listed}
        return cls(
            **counts,
            prepared_biases=[PreparedBias(**p) for p in data["prepared_biases"]],
            folded=folded,
            skipped=[SkippedBatchNorm(**s) for s in data["skipped"] if explain or s["qat_chain"]],
            text=text,
        )


@dataclass(frozen=True)
class FoldResult:
    """The folded program and the report."""

    program: Any  # torch.export.ExportedProgram
    report: FoldReport
    # Set when fold() was asked to verify: measured on real inputs.
    verification: Verification | None = None


def _to_archive(program) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _from_archive(data: bytes):
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed ops)

    return torch.export.load(io.BytesIO(data))


# Every reason a batch_norm can be kept, from the C++ table (passes/refusal.h):
# code -> {"message": template with {0}, {1}, ... for details, "option": the
# keyword that raises the limit, or ""}.
REFUSAL_CODES: dict[str, dict[str, str]] = {row["code"]: row for row in _core.refusal_codes()}


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


# ExecuTorch's Cadence compile functions that fold, through
# apply_pre_edge_transform_passes, with the FuseQATConvBN they find in
# executorch.backends.cadence.aot.compiler when they run. export_to_cadence
# and export_to_edge take a program that is already fused: they never fold.
CADENCE_FOLDING_FUNCTIONS = ("apply_pre_edge_transform_passes", "quantize_pt2", "quantize_and_export_to_edge",
                             "quantize_and_export_to_cadence")


def cadence_compiler():
    """ExecuTorch's ``executorch.backends.cadence.aot.compiler``, imported on
    the Python the project pins: ExecuTorch 1.4.0's Cadence modules import
    ``typing.override``, new in Python 3.12, so on 3.11 this first sets
    ``typing.override`` to ``typing_extensions.override`` (the same
    decorator; only where ``typing`` lacks it)."""
    import typing

    if not hasattr(typing, "override"):
        import typing_extensions

        typing.override = typing_extensions.override  # type: ignore[attr-defined]
    from executorch.backends.cadence.aot import compiler

    return compiler


@contextlib.contextmanager
def in_cadence_compile(*, verify: Any = None, calibrate: Any = None, labels: Any = None, top1: bool = False,
                       **options: Any):
    """Within the block, ExecuTorch's Cadence compile folds with qatfold:
    ``apply_pre_edge_transform_passes``, ``quantize_pt2``,
    ``quantize_and_export_to_edge`` and ``quantize_and_export_to_cadence``
    (``CADENCE_FOLDING_FUNCTIONS``) look up ``FuseQATConvBN`` in
    ``executorch.backends.cadence.aot.compiler`` when they run, and find
    qatfold's there, with the keywords given here (every option of ``fold``,
    and ``verify``/``calibrate``/``labels``/``top1``, checked against each program it folds),
    until the block ends. ``export_to_cadence`` and ``export_to_edge`` never
    fold. Yields a list that receives the report of each fold::

        with qatfold.in_cadence_compile() as reports:
            fused = compiler.apply_pre_edge_transform_passes(converted, quantizer)

    On Python 3.11 it installs the ``typing.override`` shim that ExecuTorch
    1.4.0's Cadence modules need (``cadence_compiler``)."""
    _arguments.option_values(options, "in_cadence_compile")
    compiler = cadence_compiler()
    reports: list[FoldReport] = []
    original = compiler.FuseQATConvBN

    class _Reporting(FuseQATConvBN):
        def __init__(self, exported_program) -> None:
            super().__init__(exported_program, verify=verify, calibrate=calibrate, labels=labels, top1=top1,
                             **options)

        def call(self, graph_module):
            result = super().call(graph_module)
            reports.append(self.report)
            return result

    compiler.FuseQATConvBN = _Reporting
    try:
        yield reports
    finally:
        compiler.FuseQATConvBN = original


with_fold_options(in_cadence_compile)
