"""output_range="widen" (--output-range widen): a folded conv's output
quantization stretched to cover the BatchNorm shift it took in.

The program is the one verification flags (test_verify.clipping_program: a
running_mean far from the data, so y + C leaves the calibrated range). Kept,
the first conv saturates; widened, it does not, and the program computes
what the un-folded one does to within the coarser steps. Every figure comes
from qatfold's verification, itself checked against plain torch
(verification_check.independent), and the widened program goes through the
CLI, the in-memory path and ExecuTorch's Cadence lowering.
"""

from __future__ import annotations

import pytest
import torch

import qatfold
from support.repo import clipping_program
from zoo.measure import independent

pytestmark = pytest.mark.slow


def batches() -> list[tuple]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randn(2, 3, 16, 16, generator=generator),) for _ in range(4)]


def conv_quantization(program, conv: str):
    """(quantize, dequantize) right after `conv`."""
    node = next(n for n in program.graph.nodes if n.name == conv)
    quantize = next(iter(node.users))
    return quantize, next(iter(quantize.users))


def test_widening_removes_the_saturation_the_fold_caused():
    program = clipping_program()
    kept = qatfold.fold(program, verify=batches())
    widened = qatfold.fold(program, output_range="widen", verify=batches())
    first = widened.report.folded[0]
    kept_first = {c.conv: c for c in kept.verification.convs}[first.conv]
    measured = {c.conv: c for c in widened.verification.convs}[first.conv]

    # Kept, the shift saturates the first conv's output; widened, it saturates no more than before.
    assert kept_first.flagged and kept_first.saturation_after - kept_first.saturation_before > 0.5
    assert not measured.flagged and measured.saturation_after - measured.saturation_before <= 0.005
    assert widened.report.flagged_count == 0 and widened.verification.flagged_count == 0
    # Within a step of the (coarser) widened quantization of the un-folded batch_norm on average.
    assert measured.mean_steps < 1.0
    # End to end, closer to the un-folded program than keeping the range (29.2 -> 14.0 steps mean
    # when written: the widened range is 13x coarser, which the next layer sees).
    (kept_output,), (widened_output,) = kept.verification.outputs, widened.verification.outputs
    assert widened_output.mean < kept_output.mean / 2 and widened_output.max < kept_output.max
    # Each figure, recomputed in plain torch.
    expected = independent(program, widened.program, first.conv, first.batch_norm, batches())
    assert measured.saturation_after == pytest.approx(expected["after"])
    assert measured.mean_steps == pytest.approx(expected["mean"], rel=1e-5)


def test_the_pair_after_the_conv_takes_the_reported_range_and_nothing_else_changes():
    program = clipping_program()
    kept = qatfold.fold(program).program
    result = qatfold.fold(program, output_range="widen")
    for chain in result.report.folded:
        assert chain.widened_output is not None and not chain.flagged
        quantize, dequantize = conv_quantization(result.program, chain.conv)
        old_quantize, _ = conv_quantization(program, chain.conv)
        for node in (quantize, dequantize):
            assert node.args[1] == chain.widened_output["scale"]
            assert node.args[2] == chain.widened_output["zero_point"]
            assert node.args[3:] == old_quantize.args[3:]  # same integers and dtype
        low, high = chain.widened_output["range"]
        qmin, qmax = old_quantize.args[3], old_quantize.args[4]
        assert low == pytest.approx((qmin - node.args[2]) * node.args[1])
        assert high == pytest.approx((qmax - node.args[2]) * node.args[1])
        # It holds the calibrated range, and more.
        assert low <= chain.output_range[0] and high >= chain.output_range[1]
        assert high - low > chain.output_range[1] - chain.output_range[0]
        assert "widened output range: " + chain.conv in result.report.text
    # The biases are those of the kept fold: widening changes only the output quantization.
    for name, tensor in kept.state_dict.items():
        assert torch.equal(tensor, result.program.state_dict[name]), name
    for name, tensor in kept.constants.items():
        assert torch.equal(tensor, result.program.constants[name]), name


def test_widened_fold_is_the_same_both_ways_and_lowers_to_cadence(tmp_path):
    from support.front_door_check import folded_both_ways
    from zoo.cadence_lowering import lower_to_cadence

    source = tmp_path / "clipping.pt2"
    torch.export.save(clipping_program(), source)
    folded = folded_both_ways(source, tmp_path / "widened.pt2", "--output-range", "widen")
    widened = qatfold.fold(clipping_program(), output_range="widen").report.folded
    expected_zero_points = sorted(chain.widened_output["zero_point"] for chain in widened)

    lowered = lower_to_cadence(folded)
    convs = [n for n in lowered.graph_module.graph.nodes
             if n.op == "call_function" and "quantized_conv" in str(n.target)]
    assert len(convs) == len(widened)
    assert not any("batch_norm" in str(n.target) for n in lowered.graph_module.graph.nodes)
    # Cadence's quantized conv takes the widened output zero point (its scale becomes a multiplier and shift).
    assert sorted(int(conv.args[-3]) for conv in convs) == expected_zero_points, [c.args for c in convs]
