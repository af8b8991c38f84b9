"""Verify a fold on real inputs: run the un-folded and the folded program and
measure, per folded conv, how much of its output quantization saturates
before and after, and how far the folded result is from the un-folded one.
Where the fold takes layers' own output quantizations away (a batch_norm
folded behind a quantized layer), it also runs the un-folded program without
them, so the deviation is split: what the removed quantizations did in the
un-folded program, and how far the fold is from the program without them.
Such a fold also trades one quantization for another: the un-folded layer
rounds y to its own steps, which the BatchNorm scales by |f_c| per channel,
and the folded layer rounds BN(y) to the new output steps. Two roundings of
one value differ by up to half a step of each, so the deviation is given in
steps of the coarser of the two as well, per channel: within one such step
wherever neither program clips.

Measured, not estimated: the report's "may clip" flag (|C| against the
calibrated output range) cannot know which way the data leans; this runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _arguments, _core

# A conv is flagged when the share of its outputs at the ends of their
# quantization range rises by more than this (half a percentage point).
SATURATION_RISE_LIMIT = 0.005

# The dialect's ops by name ("quantize_per_tensor"), from the core (quant/dialect.h).
_QUANTIZATION_OPS = _core.quantization_ops()
_QUANTIZE_TARGETS = tuple(row["name"] for row in _QUANTIZATION_OPS if row["role"] == "quantize")
(_DEQUANTIZE_PER_TENSOR,) = (row["name"] for row in _QUANTIZATION_OPS
                             if row["role"] == "dequantize" and row["granularity"] == "per_tensor")


@dataclass(frozen=True)
class ConvVerification:
    """One folded conv, measured on the inputs.

    ``saturation_before`` / ``saturation_after``: the share of the conv's
    output quantization (the quantize right after it) at quant_min or
    quant_max, un-folded and folded (after a ReLU the fold moved next to the
    layer, only quant_max: its quant_min holds the ReLU's zeros). ``mean_steps``
    / ``max_steps``: the folded conv's dequantized output against the
    un-folded batch_norm's output (through its ReLU), in steps of the folded
    output quantization.

    For a fold that removes the layer's output quantization, the un-folded
    program is run once more with every quantize/dequantize pair the folds
    removed bypassed (each such batch_norm reads its layer's float output,
    as the folded program has no such pair either): ``removed_mean_steps`` /
    ``removed_max_steps`` are how far that moves the un-folded batch_norm's
    output, ``unquantized_mean_steps`` / ``unquantized_max_steps`` the folded
    output against the bypassed run. ``coarser_mean_steps`` /
    ``coarser_max_steps``: the deviation from the un-folded program in steps
    of the coarser quantization per channel, ``max(s_out, |f_c| * s_y)``
    (the folded output's step, or the removed quantization's step seen
    through the BatchNorm), when that quantization is per tensor. None for
    the other folds."""

    conv: str
    batch_norm: str
    saturation_before: float
    saturation_after: float
    mean_steps: float
    max_steps: float
    flagged: bool
    removed_mean_steps: float | None = None
    removed_max_steps: float | None = None
    unquantized_mean_steps: float | None = None
    unquantized_max_steps: float | None = None
    coarser_mean_steps: float | None = None
    coarser_max_steps: float | None = None


@dataclass(frozen=True)
class OutputDeviation:
    """One program output: folded against un-folded. ``unit`` is "steps" when
    the output is dequantized (per tensor), else "float" (absolute)."""

    index: int
    name: str
    unit: str
    mean: float
    max: float


@dataclass(frozen=True)
class Top1:
    """Top-1 on the program's first output: the class with the highest score
    (argmax over the output's last dimension; each row of the other
    dimensions is one sample), un-folded against folded. ``agreeing``: the
    samples whose top-1 is the same in both programs; with labels,
    ``correct_before`` / ``correct_after``: the samples each program
    classifies as labelled (None without labels)."""

    output: str
    samples: int
    agreeing: int
    correct_before: int | None = None
    correct_after: int | None = None

    @property
    def agreement(self) -> float:
        return self.agreeing / max(self.samples, 1)

    @property
    def accuracy_before(self) -> float | None:
        return None if self.correct_before is None else self.correct_before / max(self.samples, 1)

    @property
    def accuracy_after(self) -> float | None:
        return None if self.correct_after is None else self.correct_after / max(self.samples, 1)

    def text(self) -> str:
        line = (f"  top-1 of output 0 ({self.output}) over {self.samples} samples: folded agrees with un-folded on "
                f"{100 * self.agreement:.2f}% ({self.agreeing}/{self.samples})")
        if self.correct_before is not None and self.correct_after is not None:
            before, after = self.correct_before / max(self.samples, 1), self.correct_after / max(self.samples, 1)
            line += (f"; accuracy un-folded {100 * before:.2f}% ({self.correct_before}), "
                     f"folded {100 * after:.2f}% ({self.correct_after})")
        return line

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "agreement": self.agreement, "accuracy_before": self.accuracy_before,
                "accuracy_after": self.accuracy_after}


@dataclass(frozen=True)
class Verification:
    """What verifying a fold measured, and on which inputs. ``top1`` is set
    when labels were given or top-1 was asked for."""

    inputs: str  # "given" or "example_inputs"
    batches: int
    convs: list[ConvVerification] = field(default_factory=list)
    outputs: list[OutputDeviation] = field(default_factory=list)
    top1: Top1 | None = None

    @property
    def flagged_count(self) -> int:
        return sum(c.flagged for c in self.convs)

    def text(self) -> str:
        which = "the given" if self.inputs == "given" else "the program's example"
        lines = [f"verified on {self.batches} batch(es) of {which} inputs"]
        for c in self.convs:
            mark = "  FLAGGED" if c.flagged else ""
            lines.append(f"  {c.conv}: saturated {100 * c.saturation_before:.2f}% -> {100 * c.saturation_after:.2f}% "
                         f"of outputs; vs un-folded mean {c.mean_steps:.2f}, max {c.max_steps:.2f} steps{mark}")
            if c.removed_mean_steps is not None:
                lines.append(f"    the output quantizations the folds removed move the un-folded output "
                             f"mean {c.removed_mean_steps:.2f}, max {c.removed_max_steps:.2f} steps; "
                             f"vs un-folded without them mean {c.unquantized_mean_steps:.2f}, "
                             f"max {c.unquantized_max_steps:.2f} steps")
            if c.coarser_mean_steps is not None:
                lines.append(f"    in steps of the coarser quantization per channel (folded, or the removed one "
                             f"through the BatchNorm): mean {c.coarser_mean_steps:.2f}, "
                             f"max {c.coarser_max_steps:.2f}")
        for o in self.outputs:
            lines.append(f"  output {o.index} ({o.name}): mean {o.mean:.4g}, max {o.max:.4g} {o.unit}")
        if self.top1 is not None:
            lines.append(self.top1.text())
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "batches": self.batches, "flagged_count": self.flagged_count,
                "convs": [c.__dict__ for c in self.convs], "outputs": [o.__dict__ for o in self.outputs],
                "top1": None if self.top1 is None else self.top1.to_json()}


def _op_name(node) -> str:
    """"quantize_per_tensor" of quantized_decomposed.quantize_per_tensor.default."""
    parts = str(node.target).split(".")
    return parts[-2] if len(parts) >= 2 else ""


def _is_quantize(node) -> bool:
    return node.op == "call_function" and _op_name(node) in _QUANTIZE_TARGETS


def _is_dequantize(node) -> bool:
    return node.op == "call_function" and _op_name(node) == _DEQUANTIZE_PER_TENSOR


def _argument(node, index: int, name: str):
    return node.args[index] if len(node.args) > index else node.kwargs[name]


def _is_relu(node) -> bool:
    return node.op == "call_function" and str(node.target) == "aten.relu.default"


def _output_quantize(graph, conv: str):
    """The quantize reading conv `conv`'s output directly, or None."""
    for node in graph.nodes:
        if node.name == conv:
            return next((u for u in node.users if _is_quantize(u)), None)
    return None


def _quantize_after(graph, name: str):
    """(quantize, through_relu) after node `name`: the quantize reading its
    output directly, or through its one ReLU (a folded conv onto the
    quantization trained after BN -> ReLU; a batch_norm followed by its
    ReLU); (None, False) if neither."""
    direct = _output_quantize(graph, name)
    if direct is not None:
        return direct, False
    node = next(n for n in graph.nodes if n.name == name)
    if len(node.users) == 1 and _is_relu(relu := next(iter(node.users))):
        return next((u for u in relu.users if _is_quantize(u)), None), True
    return None, False


def _record(graph_module, names: set[str], inputs: tuple,
            bypass: dict[str, str] | None = None) -> tuple[dict[str, Any], list]:
    """Runs `graph_module` on flattened `inputs`; the values of `names` and
    the outputs. `bypass` maps dequantize to quantize names: each such
    dequantize returns its quantize's float input instead."""
    import torch
    import torch.fx

    values: dict[str, Any] = {}
    bypassed = set((bypass or {}).values())
    floats: dict[str, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            if bypass and n.name in bypass:
                return floats[bypass[n.name]]
            if n.name in bypassed:
                floats[n.name] = self.env[n.args[0]]
            out = super().run_node(n)
            if n.name in names:
                # A batch_norm in its core ATen form returns (out, mean, invstd).
                value = out[0] if isinstance(out, (tuple, list)) else out
                values[n.name] = value.detach().clone()
            return out

    with torch.no_grad():
        outputs = Recorder(graph_module).run(*inputs)
    return values, list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _private_module(program):
    """``program.module()`` with buffers of its own: a QAT program updates
    its BatchNorms' num_batches_tracked in place when it runs, and running
    it must leave the caller's program as it was."""
    module = program.module()
    for name, buffer in list(module.named_buffers()):
        owner_path, _, attribute = name.rpartition(".")
        owner = module.get_submodule(owner_path) if owner_path else module
        setattr(owner, attribute, buffer.clone())
    return module


_BATCH_NORM_TARGETS = ("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default")


def observe_batch_norms(program, inputs, argument: str = "calibrate") -> dict[str, tuple[float, float]]:
    """Calibration for the fold of a batch_norm behind a quantized layer:
    runs ``program`` on ``inputs`` (as ``verify`` takes them) and returns,
    per batch_norm, the (min, max) of its output over every batch: what the
    layer computes once the batch_norm is folded into it, as a MinMaxObserver
    there would see it (the core turns it into a scale and zero point)."""
    _, batches = _arguments.batches(program, inputs, argument)
    names = {n.name for n in program.graph.nodes
             if n.op == "call_function" and str(n.target) in _BATCH_NORM_TARGETS}
    if not names:
        return {}
    module = _private_module(program)
    observed: dict[str, tuple[float, float]] = {}
    for index, batch in enumerate(batches):
        values, _ = _arguments.run_batch(lambda b=batch: _record(module, names, b), f"{argument}: batch {index}")
        for name, value in values.items():
            low, high = float(value.min()), float(value.max())
            if name in observed:
                low, high = min(low, observed[name][0]), max(high, observed[name][1])
            observed[name] = (low, high)
    return observed


@dataclass
class _Steps:
    """Deviations in steps, summed over the batches."""

    total: float = 0.0
    count: int = 0
    max: float = 0.0

    def add(self, steps) -> None:
        self.total += float(steps.sum())
        self.count += steps.numel()
        self.max = max(self.max, float(steps.max()) if steps.numel() else 0.0)

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


@dataclass
class _Measured:
    """One folded conv's nodes and running totals over the batches."""

    conv: str
    batch_norm: str
    q_before: Any
    q_after: Any
    dq_after: Any
    through_relu: bool
    removed: tuple[str, str] | None  # the (dequantize, quantize) the fold removed
    # Per channel, |f_c| * s_y of the removed quantization: its step through the batch_norm.
    removed_step: Any = None
    saturated_before: int = 0
    saturated_after: int = 0
    count: int = 0
    steps: _Steps = field(default_factory=_Steps)
    removed_steps: _Steps = field(default_factory=_Steps)
    unquantized_steps: _Steps = field(default_factory=_Steps)
    coarser_steps: _Steps = field(default_factory=_Steps)


def _constant(program, node):
    """The tensor a placeholder of `program` stands for (parameter, buffer or
    constant), or None."""
    signature = program.graph_signature
    for table in (signature.inputs_to_parameters, signature.inputs_to_buffers,
                  signature.inputs_to_lifted_tensor_constants):
        if node.name in table:
            name = table[node.name]
            return program.state_dict[name] if name in program.state_dict else program.constants[name]
    return None


def _step_through_batch_norm(program, quantize, batch_norm):
    """Per channel, the step of the per-tensor `quantize` seen through the
    eval `batch_norm` it feeds: |gamma_c / sqrt(var_c + eps)| * scale. None
    for a per-channel quantize or parameters that are not constants."""
    import torch

    if "quantize_per_tensor" not in str(quantize.target):
        return None
    legit = "no_training" in str(batch_norm.target)
    weight, variance = _argument(batch_norm, 1, "weight"), _argument(batch_norm, 4, "running_var")
    eps = _argument(batch_norm, 6 if legit else 7, "eps")
    variance = _constant(program, variance) if variance is not None else None
    gamma = _constant(program, weight) if weight is not None else torch.tensor(1.0)
    if variance is None or gamma is None:
        return None
    factor = gamma.detach().double() / torch.sqrt(variance.double() + eps)
    return factor.abs() * float(_argument(quantize, 1, "scale"))


def _measured_convs(original, folded, folded_convs: Iterable[tuple[str, str]]) -> list[_Measured]:
    measured = []
    nodes = {n.name: n for n in original.graph.nodes}
    for conv, batch_norm in folded_convs:
        q_after, through_relu = _quantize_after(folded.graph, conv)
        # The layer's own output quantization; or, where the quantizer
        # quantized only after the batch_norm (Arm: layer -> [chain] ->
        # batch_norm -> [relu] -> q), that trained quantize, which the fold kept.
        q_before = _output_quantize(original.graph, conv) or _quantize_after(original.graph, batch_norm)[0]
        dq_after = next((u for u in q_after.users if _is_dequantize(u)), None) if q_after is not None else None
        if q_before is None or dq_after is None:
            continue
        # The fold removed the layer's own output quantization when its
        # dequantize fed the batch_norm (a conv -> q -> dq -> batch_norm fold).
        dq_before = next((u for u in q_before.users if _is_dequantize(u)), None)
        removed, removed_step = None, None
        if dq_before is not None and any(u.name == batch_norm for u in dq_before.users):
            removed = (dq_before.name, q_before.name)
            removed_step = _step_through_batch_norm(original, q_before, nodes[batch_norm])
        measured.append(_Measured(conv, batch_norm, q_before, q_after, dq_after, through_relu, removed, removed_step))
    return measured


def _saturated(node, q, high_only: bool) -> int:
    low, high = _argument(node, 3, "quant_min"), _argument(node, 4, "quant_max")
    return int((q == high).sum()) if high_only else int(((q == low) | (q == high)).sum())


class _Top1Count:
    """Top-1 over the batches: the scores of the first output, un-folded and
    folded, against the labels (a list from _arguments.labels, or None)."""

    def __init__(self, labels: list | None, batch_count: int, argument: str) -> None:
        self.labels = labels
        self.split = labels is not None and len(labels) == 1 and batch_count > 1  # one tensor for all batches
        self.argument = argument
        self.samples = self.agreeing = self.correct_before = self.correct_after = 0

    def _scores(self, output) -> Any:
        import torch

        if not isinstance(output, torch.Tensor) or output.dim() < 1 or not output.is_floating_point():
            shown = "not a tensor" if not isinstance(output, torch.Tensor) else \
                f"of dtype {output.dtype} and shape {list(output.shape)}"
            raise _arguments.QatfoldError(f"{self.argument}: top-1 takes the program's first output as scores "
                                          f"(a floating tensor, classes on its last dimension); it is {shown}")
        return output.detach().float().reshape(-1, output.shape[-1])

    def add(self, index: int, before, after) -> None:
        scores_before, scores_after = self._scores(before), self._scores(after)
        top_before, top_after = scores_before.argmax(-1), scores_after.argmax(-1)
        rows = top_before.numel()
        self.agreeing += int((top_before == top_after).sum())
        if self.labels is not None:
            if self.split:
                labels = self.labels[0][self.samples:self.samples + rows]
            else:
                labels = self.labels[index]
            where = self.argument if self.split else f"{self.argument}[{index}]"
            if labels.numel() != rows:
                if self.split:  # too few for every batch: said with the totals, once every batch has run
                    self.samples += rows
                    return
                raise _arguments.QatfoldError(f"{where}: {labels.numel()} label(s) for the {rows} samples of "
                                              f"batch {index} (the rows of output 0)")
            classes = scores_before.shape[-1]
            outside = (labels < 0) | (labels >= classes)
            if bool(outside.any()):
                position = int(outside.nonzero()[0, 0])
                raise _arguments.QatfoldError(
                    f"{where}: label {int(labels[position])} (sample {self.samples + position}) is not a class of "
                    f"output 0, which scores {classes} classes (0..{classes - 1})")
            self.correct_before += int((top_before == labels).sum())
            self.correct_after += int((top_after == labels).sum())
        self.samples += rows

    def result(self, output: str, batch_count: int) -> Top1:
        if self.split and self.labels is not None and self.samples != self.labels[0].numel():
            raise _arguments.QatfoldError(f"{self.argument}: {self.labels[0].numel()} label(s) for the "
                                          f"{self.samples} samples of {batch_count} batch(es) (the rows of output 0)")
        if self.labels is None:
            return Top1(output, self.samples, self.agreeing)
        return Top1(output, self.samples, self.agreeing, self.correct_before, self.correct_after)


def measurable_folds(report) -> list[tuple[str, str]]:
    """(conv, batch_norm) of the folds of a FoldReport whose layer output
    stays quantized: int32-bias folds and batch_norms folded behind a
    quantized layer. The ones verify_fold measures."""
    return [(c.conv, c.batch_norm) for c in report.folded if c.bias_dtype == "int32" or c.requantized is not None]


def verify_fold(original, folded, folded_convs: Iterable[tuple[str, str]], inputs=None,
                argument: str = "verify", labels: Any = None, top1: bool = False) -> Verification:
    """Measures the fold of `original` into `folded` on `inputs` (a tuple of
    tensors, a list of such tuples, or None/True for the program's example
    inputs). `folded_convs` lists (conv, batch_norm) node names of the folds
    to measure, as the fold report names them. With `labels` (class indices,
    see _arguments.labels) or `top1`, also the top-1 agreement of the first
    output and, with labels, each program's accuracy."""
    import torch

    source, batches = _arguments.batches(original, inputs, argument)
    labels_argument = "--labels" if argument == "--inputs" else "labels"
    checked_labels = _arguments.labels(labels, len(batches), labels_argument)
    counting = _Top1Count(checked_labels, len(batches), labels_argument) \
        if checked_labels is not None or top1 else None
    before_module, after_module = _private_module(original), _private_module(folded)
    convs = _measured_convs(original, folded, folded_convs)
    names_before = {n for c in convs for n in (c.batch_norm, c.q_before.name)}
    names_after = {n for c in convs for n in (c.q_after.name, c.dq_after.name)}
    bypass = dict(c.removed for c in convs if c.removed is not None)
    by_name = {n.name: n for n in folded.graph.nodes}
    output_nodes = [by_name.get(name) for name in folded.graph_signature.user_outputs]
    output_totals: dict[int, tuple[str, str, _Steps]] = {}  # index: (name, unit, steps)
    for index, batch in enumerate(batches):
        where = f"{argument}: batch {index}"
        values_before, outputs_before = _arguments.run_batch(lambda b=batch: _record(before_module, names_before, b),
                                                                where)
        values_after, outputs_after = _record(after_module, names_after, batch)
        unquantized_values = _record(before_module, names_before, batch, bypass)[0] if bypass else {}
        for c in convs:
            kept = c.q_before.name == c.q_after.name  # the trained quantize after the batch_norm (and its ReLU)
            c.saturated_before += _saturated(c.q_before, values_before[c.q_before.name], kept and c.through_relu)
            c.saturated_after += _saturated(c.q_after, values_after[c.q_after.name], c.through_relu)
            c.count += values_before[c.q_before.name].numel()
            scale = float(_argument(c.q_after, 1, "scale"))
            after = values_after[c.dq_after.name].float()
            reference = values_before[c.batch_norm].float()
            reference = reference.clamp_min(0) if c.through_relu else reference
            c.steps.add((after - reference).abs() / scale)
            if c.removed is not None:
                unquantized = unquantized_values[c.batch_norm].float()
                unquantized = unquantized.clamp_min(0) if c.through_relu else unquantized
                c.removed_steps.add((reference - unquantized).abs() / scale)
                c.unquantized_steps.add((after - unquantized).abs() / scale)
            if c.removed_step is not None:
                # Channels on axis 1 (conv and linear outputs alike).
                coarser = c.removed_step.clamp_min(scale).reshape([1, -1] + [1] * (reference.dim() - 2))
                c.coarser_steps.add((after - reference).abs() / coarser)
        if counting is not None:
            counting.add(index, outputs_before[0] if outputs_before else None,
                         outputs_after[0] if outputs_after else None)
        for i, (a, b) in enumerate(zip(outputs_before, outputs_after)):
            if not isinstance(a, torch.Tensor):
                continue
            node = output_nodes[i] if i < len(output_nodes) else None
            step = float(_argument(node, 1, "scale")) if node is not None and _is_dequantize(node) else None
            if i not in output_totals:
                output_totals[i] = (node.name if node is not None else str(i), "steps" if step else "float", _Steps())
            output_totals[i][2].add((b.float() - a.float()).abs() / (step if step else 1.0))
    measured = []
    for c in convs:
        before, after = c.saturated_before / max(c.count, 1), c.saturated_after / max(c.count, 1)
        split = {}
        if c.removed is not None:
            split = {"removed_mean_steps": c.removed_steps.mean, "removed_max_steps": c.removed_steps.max,
                     "unquantized_mean_steps": c.unquantized_steps.mean,
                     "unquantized_max_steps": c.unquantized_steps.max}
        if c.removed_step is not None:
            split.update(coarser_mean_steps=c.coarser_steps.mean, coarser_max_steps=c.coarser_steps.max)
        measured.append(ConvVerification(c.conv, c.batch_norm, before, after, c.steps.mean, c.steps.max,
                                         after - before > SATURATION_RISE_LIMIT, **split))
    outputs = [OutputDeviation(i, name, unit, steps.mean, steps.max)
               for i, (name, unit, steps) in sorted(output_totals.items())]
    first_output = output_nodes[0].name if output_nodes and output_nodes[0] is not None else "0"
    return Verification(source, len(batches), measured, outputs,
                        counting.result(first_output, len(batches)) if counting is not None else None)
