"""qatfold's verification figures computed independently.

qatfold's verification (python/qatfold/_verify.py) runs both programs under
an fx.Interpreter and records the nodes it needs. The check here computes the
same figures another way, in plain torch: each program is rerun as a module
whose outputs are the quantize, dequantize and batch_norm nodes of interest,
and its own outputs are compared as `module()(x)` gives them. Every figure is
checked: per folded conv the saturated share of its output quantization
before and after and its deviation in output steps, for a fold that removed
the layer's own output quantization the split of that deviation (rerun with
every such quantize/dequantize pair cut out of the graph) and the deviation in
steps of the coarser quantization per channel (the BatchNorm's factor read
from the un-folded module's own attributes), and per program output the mean
and max deviation.
"""

from __future__ import annotations

import functools

import torch
from torch.utils._pytree import tree_flatten

QUANTIZE = ("quantize_per_tensor", "quantize_per_channel")


def _is_quantize(node) -> bool:
    return node.op == "call_function" and any(t in str(node.target) and "dequantize" not in str(node.target)
                                              for t in QUANTIZE)


def _value_of(value):
    """A node's tensor (the first output of a multi-output batch_norm)."""
    return value[0] if isinstance(value, (tuple, list)) else value


def node_values(program, names: list[str], batch: tuple, cut: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Runs `program` with the nodes `names` as its outputs (no Interpreter).
    `cut` names dequantizes whose users read their quantize's input instead."""
    module = program.module()
    nodes = {n.name: n for n in module.graph.nodes}
    for name in cut:
        nodes[name].replace_all_uses_with(nodes[name].args[0].args[0])
    output = next(n for n in module.graph.nodes if n.op == "output")
    output.args = (tuple(nodes[name] for name in names),)
    module.graph._codegen = torch.fx.graph.CodeGen()  # plain outputs, no pytree spec
    module.recompile()
    with torch.no_grad():
        return {name: _value_of(value) for name, value in zip(names, module(*batch))}


def conv_quantize(program, conv: str, through_relu: bool = False):
    """The quantize of `conv`'s output; with `through_relu`, also one behind a
    single ReLU (what a fold with the quantization trained after BN -> ReLU
    leaves)."""
    node = next(n for n in program.graph.nodes if n.name == conv)
    direct = next((u for u in node.users if _is_quantize(u)), None)
    users = list(node.users)
    if direct is None and through_relu and len(users) == 1 and users[0].target == torch.ops.aten.relu.default:
        return next((u for u in users[0].users if _is_quantize(u)), None)
    return direct


def removed_dequantize(original, conv: str, batch_norm: str) -> str | None:
    """The dequantize of `conv`'s output quantization when it fed the
    batch_norm (the fold removes the pair), else None."""
    dequantize = next(iter(conv_quantize(original, conv).users))
    return dequantize.name if any(u.name == batch_norm for u in dequantize.users) else None


def attribute(module, target: str) -> torch.Tensor:
    """What a get_attr node of `module` reads (parameter, buffer or constant)."""
    return functools.reduce(getattr, target.split("."), module)


def step_through_batch_norm(original, conv: str, batch_norm: str) -> torch.Tensor:
    """|gamma_c| / sqrt(var_c + eps) * s_y, from the un-folded module's
    attributes: the step of `conv`'s output quantization after the batch_norm."""
    module = original.module()
    node = next(n for n in module.graph.nodes if n.name == batch_norm)
    legit = node.target == torch.ops.aten._native_batch_norm_legit_no_training.default
    weight, variance = node.args[1], node.args[4]
    eps = node.args[6] if legit else node.args[7]
    gamma = attribute(module, weight.target) if weight is not None else torch.tensor(1.0)
    variance = attribute(module, variance.target)
    scale = conv_quantize(original, conv).args[1]
    return (gamma.detach().double() / (variance.double() + eps).sqrt()).abs() * scale


def output_steps(original, folded, folded_convs) -> tuple[float, torch.Tensor]:
    """The folded program's output step, and per channel the coarser of it
    and the step of the quantization the fold removed, seen through the
    BatchNorm (as the verification measures the fold)."""
    (output,) = (n for n in folded.graph.nodes if n.op == "output")
    (node,) = output.args[0]
    assert "dequantize_per_tensor" in str(node.target)
    step = float(node.args[1])
    layer = node.args[0].args[0].name
    (conv,) = (c for c in folded_convs if c.conv == layer)
    return step, step_through_batch_norm(original, conv.conv, conv.batch_norm).clamp_min(step)


def independent(original, folded, conv: str, batch_norm: str, batches: list[tuple],
                cut: tuple[str, ...] = ()) -> dict[str, float]:
    q_before, q_after = conv_quantize(original, conv), conv_quantize(folded, conv, through_relu=True)
    relu = q_after.args[0].target == torch.ops.aten.relu.default
    dq_after = next(iter(q_after.users))
    removed = removed_dequantize(original, conv, batch_norm) is not None
    saturated_before = saturated_after = count = 0
    steps, removed_steps, unquantized_steps, coarser_steps = [], [], [], []
    scale = q_after.args[1]
    if removed:
        through_batch_norm = step_through_batch_norm(original, conv, batch_norm)
    for batch in batches:
        before = node_values(original, [q_before.name, batch_norm], batch)
        after = node_values(folded, [q_after.name, dq_after.name], batch)
        low, high = q_before.args[3], q_before.args[4]
        saturated_before += int(((before[q_before.name] == low) | (before[q_before.name] == high)).sum())
        at_high = after[q_after.name] == q_after.args[4]
        saturated_after += int((at_high if relu else at_high | (after[q_after.name] == q_after.args[3])).sum())
        count += before[q_before.name].numel()
        reference = torch.relu(before[batch_norm].float()) if relu else before[batch_norm].float()
        folded_out = after[dq_after.name].float()
        steps.append(((folded_out - reference).abs() / scale).flatten())
        if removed:
            unquantized = node_values(original, [batch_norm], batch, cut=cut)[batch_norm].float()
            unquantized = torch.relu(unquantized) if relu else unquantized
            removed_steps.append(((reference - unquantized).abs() / scale).flatten())
            unquantized_steps.append(((folded_out - unquantized).abs() / scale).flatten())
            # One step per channel (axis 1): whichever of the two is coarser.
            shape = [1, -1] + [1] * (reference.dim() - 2)
            coarser = through_batch_norm.clamp_min(scale).reshape(shape)
            coarser_steps.append(((folded_out - reference).abs() / coarser).flatten())
    steps = torch.cat(steps)
    figures = {"before": saturated_before / count, "after": saturated_after / count,
               "mean": float(steps.mean()), "max": float(steps.max()), "removed": removed}
    if removed:
        removed_steps, unquantized_steps = torch.cat(removed_steps), torch.cat(unquantized_steps)
        coarser_steps = torch.cat(coarser_steps)
        figures.update(removed_mean=float(removed_steps.mean()), removed_max=float(removed_steps.max()),
                       unquantized_mean=float(unquantized_steps.mean()),
                       unquantized_max=float(unquantized_steps.max()),
                       coarser_mean=float(coarser_steps.mean()), coarser_max=float(coarser_steps.max()))
    return figures


def example_batches(program) -> list[tuple]:
    args, kwargs = program.example_inputs
    return [tuple(tree_flatten((args, kwargs))[0])]
