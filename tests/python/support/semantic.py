"""Per-chain semantic check: a folded conv against the chain it replaced."""

from __future__ import annotations

import torch

from support.oracle import constant_of


def node_values(program: torch.export.ExportedProgram, inputs: tuple) -> dict:
    """Every node's value when `program` runs on `inputs`, by node name."""
    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            values[node.name] = result
            return result

    Recorder(program.module()).run(*inputs)
    return values


def check_chain_within_one_step(unfolded, folded, chain: dict, values: dict) -> None:
    """On the un-folded program's conv input, dq(q(conv + folded bias)) and the
    un-folded batch_norm output differ by at most one output step, except
    where either side saturates (the clipping risk the report quantifies)."""
    nodes = {n.name: n for n in folded.graph.nodes}
    conv = nodes[chain["conv"]]
    bias_dq = conv.args[2]
    # Per-tensor scales are arguments; per-channel ones are constant tensors too.
    new_bias = bias_dq.target(*[constant_of(folded, a) if isinstance(a, torch.fx.Node) else a for a in bias_dq.args])
    args = [new_bias if i == 2 else values[a.name] if isinstance(a, torch.fx.Node) else a
            for i, a in enumerate(conv.args)]
    quantize = next(iter(conv.users))
    scale, zero_point, qmin, qmax = quantize.args[1:5]
    folded_q = torch.round(conv.target(*args) / scale) + zero_point
    folded_out = (torch.clamp(folded_q, qmin, qmax) - zero_point) * scale
    expected = values[chain["batch_norm"]]
    if isinstance(expected, (tuple, list)):
        expected = expected[0]
    unfolded_q = torch.round(values[chain["conv"]] / scale) + zero_point
    clipped = (folded_q <= qmin) | (folded_q >= qmax) | (unfolded_q <= qmin) | (unfolded_q >= qmax)
    difference = (folded_out - expected).abs()[~clipped]
    assert difference.numel() > 0
    assert difference.max().item() <= float(scale) * 1.001, (chain["conv"], difference.max().item(), scale)
