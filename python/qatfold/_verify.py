"""Verify a fold on real inputs: run the un-folded and the folded program and
measure, per folded conv, how much of its output quantization saturates
before and after, and how far the folded result is from the un-folded one.

Measured, not estimated: the report's "may clip" flag (|C| against the
calibrated output range) cannot know which way the data leans; this runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

# A conv is flagged when the share of its outputs at the ends of their
# quantization range rises by more than this (half a percentage point).
SATURATION_RISE_LIMIT = 0.005

_QUANTIZE_TARGETS = ("quantize_per_tensor", "quantize_per_channel")


@dataclass(frozen=True)
class ConvVerification:
    """One folded conv, measured on the inputs.

    ``saturation_before`` / ``saturation_after``: the share of the conv's
    output quantization (the quantize right after it) at quant_min or
    quant_max, un-folded and folded. ``mean_steps`` / ``max_steps``: the
    folded conv's dequantized output against the un-folded batch_norm's
    output, in steps of that quantization."""

    conv: str
    batch_norm: str
    saturation_before: float
    saturation_after: float
    mean_steps: float
    max_steps: float
    flagged: bool


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
class Verification:
    """What verifying a fold measured, and on which inputs."""

    inputs: str  # "given" or "example_inputs"
    batches: int
    convs: list[ConvVerification] = field(default_factory=list)
    outputs: list[OutputDeviation] = field(default_factory=list)

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
        for o in self.outputs:
            lines.append(f"  output {o.index} ({o.name}): mean {o.mean:.4g}, max {o.max:.4g} {o.unit}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "batches": self.batches, "flagged_count": self.flagged_count,
                "convs": [c.__dict__ for c in self.convs], "outputs": [o.__dict__ for o in self.outputs]}


def _is_quantize(node) -> bool:
    return node.op == "call_function" and any(t in str(node.target) for t in _QUANTIZE_TARGETS)


def _is_dequantize(node) -> bool:
    return node.op == "call_function" and "dequantize_per_tensor" in str(node.target)


def _argument(node, index: int, name: str):
    return node.args[index] if len(node.args) > index else node.kwargs[name]


def _output_quantize(graph, conv: str):
    """The quantize reading conv `conv`'s output directly, or None."""
    for node in graph.nodes:
        if node.name == conv:
            return next((u for u in node.users if _is_quantize(u)), None)
    return None


def _record(graph_module, names: set[str], inputs: tuple) -> tuple[dict[str, Any], list]:
    """Runs `graph_module` on flattened `inputs`; the values of `names` and the outputs."""
    import torch
    import torch.fx

    values: dict[str, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
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


def _batches(program, inputs) -> tuple[str, list[tuple]]:
    import torch
    from torch.utils._pytree import tree_flatten

    if inputs is None or inputs is True:
        if program.example_inputs is None:
            raise ValueError("the program carries no example inputs; pass verify=[(tensor, ...), ...]")
        args, kwargs = program.example_inputs
        return "example_inputs", [tuple(tree_flatten((args, kwargs))[0])]
    if isinstance(inputs, torch.Tensor):
        inputs = [(inputs,)]
    elif isinstance(inputs, tuple):
        inputs = [inputs]
    batches = [tuple(tree_flatten(batch)[0]) for batch in inputs]
    if not batches:
        raise ValueError("verify: no inputs given")
    return "given", batches


_BATCH_NORM_TARGETS = ("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default")


def observe_batch_norms(program, inputs) -> dict[str, tuple[float, float]]:
    """Calibration for the fold of a batch_norm behind a quantized layer:
    runs ``program`` on ``inputs`` (as ``verify`` takes them) and returns,
    per batch_norm, the (min, max) of its output over every batch: what the
    layer computes once the batch_norm is folded into it, as a MinMaxObserver
    there would see it (the core turns it into a scale and zero point)."""
    _, batches = _batches(program, inputs)
    names = {n.name for n in program.graph.nodes
             if n.op == "call_function" and any(t == str(n.target) for t in _BATCH_NORM_TARGETS)}
    if not names:
        return {}
    module = _private_module(program)
    observed: dict[str, tuple[float, float]] = {}
    for batch in batches:
        values, _ = _record(module, names, batch)
        for name, value in values.items():
            low, high = float(value.min()), float(value.max())
            if name in observed:
                low, high = min(low, observed[name][0]), max(high, observed[name][1])
            observed[name] = (low, high)
    return observed


def verify_fold(original, folded, folded_convs: Iterable[tuple[str, str]], inputs=None) -> Verification:
    """Measures the fold of `original` into `folded` on `inputs` (a tuple of
    tensors, a list of such tuples, or None/True for the program's example
    inputs). `folded_convs` lists (conv, batch_norm) node names of the int32
    folds to measure, as the fold report names them."""
    import torch

    source, batches = _batches(original, inputs)
    before_module, after_module = _private_module(original), _private_module(folded)
    convs = []
    for conv, batch_norm in folded_convs:
        q_before, q_after = _output_quantize(original.graph, conv), _output_quantize(folded.graph, conv)
        dq_after = next((u for u in q_after.users if _is_dequantize(u)), None) if q_after is not None else None
        if q_before is None or dq_after is None:
            continue
        convs.append((conv, batch_norm, q_before, q_after, dq_after))
    names_before = {n for c in convs for n in (c[1], c[2].name)}
    names_after = {n for c in convs for n in (c[3].name, c[4].name)}
    totals = {c[0]: {"sat_before": 0, "sat_after": 0, "count": 0, "sum": 0.0, "max": 0.0, "n": 0} for c in convs}
    by_name = {n.name: n for n in folded.graph.nodes}
    output_nodes = [by_name.get(name) for name in folded.graph_signature.user_outputs]
    output_totals: list[dict[str, float]] = []
    for batch in batches:
        values_before, outputs_before = _record(before_module, names_before, batch)
        values_after, outputs_after = _record(after_module, names_after, batch)
        for conv, batch_norm, q_before, q_after, dq_after in convs:
            t = totals[conv]
            for key, node, values in (("sat_before", q_before, values_before), ("sat_after", q_after, values_after)):
                q = values[node.name]
                low, high = _argument(node, 3, "quant_min"), _argument(node, 4, "quant_max")
                t[key] += int(((q == low) | (q == high)).sum())
            t["count"] += values_before[q_before.name].numel()
            scale = float(_argument(q_after, 1, "scale"))
            steps = (values_after[dq_after.name].float() - values_before[batch_norm].float()).abs() / scale
            t["sum"] += float(steps.sum())
            t["n"] += steps.numel()
            t["max"] = max(t["max"], float(steps.max()))
        for i, (a, b) in enumerate(zip(outputs_before, outputs_after)):
            if not isinstance(a, torch.Tensor):
                continue
            node = output_nodes[i] if i < len(output_nodes) else None
            scale = float(_argument(node, 1, "scale")) if node is not None and _is_dequantize(node) else None
            diff = (b.float() - a.float()).abs() / (scale if scale else 1.0)
            if len(output_totals) <= i:
                output_totals.append({"sum": 0.0, "n": 0, "max": 0.0, "unit": "steps" if scale else "float",
                                      "name": node.name if node is not None else str(i)})
            o = output_totals[i]
            o["sum"] += float(diff.sum())
            o["n"] += diff.numel()
            o["max"] = max(o["max"], float(diff.max()) if diff.numel() else 0.0)
    measured = []
    for conv, batch_norm, *_ in convs:
        t = totals[conv]
        before, after = t["sat_before"] / max(t["count"], 1), t["sat_after"] / max(t["count"], 1)
        measured.append(ConvVerification(conv, batch_norm, before, after, t["sum"] / max(t["n"], 1), t["max"],
                                         after - before > SATURATION_RISE_LIMIT))
    outputs = [OutputDeviation(i, o["name"], o["unit"], o["sum"] / max(o["n"], 1), o["max"])
               for i, o in enumerate(output_totals)]
    return Verification(source, len(batches), measured, outputs)
