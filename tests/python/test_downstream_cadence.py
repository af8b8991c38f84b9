"""The folded program goes on through ExecuTorch's Cadence flow.

After qatfold fold, the program runs through what ExecuTorch's own QAT
end-to-end test runs after its FuseQATConvBN: QuantFusionPass with the
quantizer's patterns, the torch-ops passes, and lowering to the Cadence
edge program. The result must hold quantized convolutions and no
batch_norm, and, run in Python on Cadence's reference kernels, compute what
the folded program computes.
"""

from __future__ import annotations

import pytest
import torch

from support.graph_compare import random_inputs
from support.oracle import qatfold_fold
from zoo.cadence_lowering import lower_to_cadence

pytestmark = pytest.mark.slow

CASES = ["conv2d_nobias", "conv2d_bias", "conv1d_bias", "strided", "residual", "depthwise"]


@pytest.mark.parametrize("case", CASES)
def test_folded_program_lowers_to_quantized_convs(case, tmp_path):
    from support.oracle import oracle_fold
    from support.semantic import node_values
    from zoo.program_cache import cadence_zoo_archive

    path = cadence_zoo_archive(case)
    unfolded = torch.export.load(path)
    conv_nodes = [n for n in unfolded.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    folded = qatfold_fold(path, tmp_path / "folded.pt2")
    lowered = lower_to_cadence(torch.export.load(tmp_path / "folded.pt2"))
    reference_lowered = lower_to_cadence(oracle_fold(path))

    targets = [str(n.target) for n in lowered.graph_module.graph.nodes if n.op == "call_function"]
    assert sum("quantized_conv" in t for t in targets) == len(conv_nodes), targets
    assert not any("batch_norm" in t for t in targets), targets

    output = next(n for n in folded.graph.nodes if n.op == "output").args[0][0]
    scale, zero_point, qmin, qmax = output.args[1:5]
    for seed in range(3):
        x = random_inputs(unfolded, seed)
        on_device = lowered.module()(*x)
        # The same lowered numbers as ExecuTorch's own pipeline (its fold, then this flow).
        assert torch.equal(on_device, reference_lowered.module()(*x))
        if len(conv_nodes) == 1:
            # One chain: within a step of the un-folded program, except where
            # either side saturates (the clipping the report quantifies).
            y = node_values(unfolded, x)[conv_nodes[0].name]
            shifted_q = torch.round(on_device / scale) + zero_point
            unshifted_q = torch.round(y / scale) + zero_point
            clipped = (shifted_q <= qmin) | (shifted_q >= qmax) | (unshifted_q <= qmin) | (unshifted_q >= qmax)
            difference = (on_device - unfolded.module()(*x)).abs()[~clipped]
            assert difference.max().item() <= scale * 1.001
