"""The report of a fold, as Python reads it: dataclasses made from the
core's JSON report (FoldReport.from_json), and the refusal codes of the
core's table."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from . import _core
from ._verify import Verification

# Every reason a batch_norm can be kept, from the C++ table (passes/refusal.h):
# code -> {"message": template with {0}, {1}, ... for details, "option": the
# keyword that raises the limit, or ""}.
REFUSAL_CODES: dict[str, dict[str, str]] = {row["code"]: row for row in _core.refusal_codes()}


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
    # (the worst channel's, over its own largest; "worst_weight_channel");
    # "looked_through": what sat between the layer's output quantization and
    # the batch_norm that the fold saw past (a line each; both replaced).
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
