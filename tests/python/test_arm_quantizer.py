"""Programs of Arm's quantizer (TOSAQuantizer, TOSA-1.0+INT, QAT), folded
and lowered with Arm's TOSA partitioner.

Arm annotates a layer and its BatchNorm as one unit and fake-quantizes the
BatchNorm's four parameters, so its programs hold two leftover shapes: the
chains torchao builds (conv1d, conv2d, depthwise, transposed) end in a
batch_norm that reads dequantized copies of the parameters the chain's
divisor was built from (folded with the factor r into the per-channel
scales), and the layers torchao gives no chain (padding="same", conv3d,
linear) feed their batch_norm directly, quantized only after it (folded into
the weight scales, onto the trained quantize). Un-folded, Arm's backend
delegates none of these layers."""

from __future__ import annotations

import json

import pytest
import torch

import qatfold
from support.repo import run_cli
from zoo import layers
from zoo.arm import TwoBlocks, export_arm_qat, lower_to_arm
from zoo.program_cache import cached_archive

NETWORKS = tuple(layers.NETWORKS)


def arm_archive(name: str):
    return cached_archive(f"arm-{name}", lambda: export_arm_qat(*layers.network(name)))


def batch_norms(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes)


@pytest.fixture(scope="module", params=NETWORKS)
def folded(request, tmp_path_factory):
    """(name, source archive, folded archive, the CLI's JSON report)."""
    source = arm_archive(request.param)
    out = tmp_path_factory.mktemp("arm") / f"{request.param}.pt2"
    result = run_cli("fold", "--json", str(source), "-o", str(out))
    return request.param, source, out, json.loads(result.stdout)


def test_every_batch_norm_folds_without_calibration(folded):
    name, source, out, report = folded
    before, after = torch.export.load(source), torch.export.load(out)
    assert batch_norms(before) > 0
    assert batch_norms(after) == 0, report["skipped"]
    assert len(report["folded"]) == batch_norms(before) and report["skipped"] == []
    for conv in report["folded"]:
        assert conv["bias_dtype"] == "int32", conv  # Arm's layers keep int32 biases
        if conv["folded_by"] == "FoldConvBatchNormChain":
            # The batch_norm read dequantized copies; r went into the weight and bias scales.
            assert conv["eps_mismatch"]["cause"] == "dequantized parameters"
            assert conv["eps_mismatch"]["handling"].startswith("folded into the per-channel")
        else:
            assert conv["folded_by"] == "FoldBatchNormIntoWeightScales"
            assert conv["requantized"]["source"].startswith("trained")
    kinds = {conv["kind"] for conv in report["folded"]}
    expected = {"stack2d": {"conv2d", "conv_transpose2d"}, "conv1d_head": {"conv1d", "linear"},
                "conv3d_pair": {"conv3d"}}[name]
    assert expected <= kinds


def test_the_folded_program_computes_what_the_unfolded_one_does(folded):
    """Exact folds: the program's output within a step of the un-folded one
    (and equal almost everywhere), each fold measured by verify= on inputs
    the program was not trained on."""
    name, source, _, _ = folded
    program = torch.export.load(source)
    example = program.example_inputs[0][0]
    generator = torch.Generator().manual_seed(7)
    inputs = [(torch.randn(example.shape, generator=generator),) for _ in range(4)]
    result = qatfold.fold(program, verify=inputs)
    verification = result.verification
    assert len(verification.convs) == result.report.folded_count > 0
    for conv in verification.convs:
        # The folded layer's quantized output against the un-folded float
        # batch_norm: the output's own rounding (half a step), plus a step
        # where an upstream layer's output rounded the other way.
        assert conv.saturation_after <= conv.saturation_before + 0.001, conv
        assert conv.mean_steps < 0.3 and conv.max_steps < 1.6, conv
    for output in verification.outputs:
        assert output.unit == "steps" and output.mean < 0.05 and output.max < 1.001, output


@pytest.mark.slow
def test_arm_delegates_every_layer_once_folded(folded):
    name, source, out, _ = folded
    after = lower_to_arm(torch.export.load(out))
    assert after.count("batch_norm") == 0 and after.count("convolution") == 0 and after.count("linear") == 0
    assert after.count("executorch_call_delegate") >= 1
    if name == "conv1d_head":
        return  # un-folded, Arm's backend fails on it: test_arms_backend_fails_on_linear_batch_norm_1d
    before = lower_to_arm(torch.export.load(source))
    assert before.count("batch_norm") == batch_norms(torch.export.load(source))
    assert before.count("convolution") > 0


@pytest.mark.slow
def test_arms_backend_fails_on_linear_batch_norm_1d():
    """Arm 1.4.0's own lowering of linear + BatchNorm1d (no qatfold involved)
    fails. Folded, it lowers (above). When this starts to pass upstream,
    the pin fails: say so in the docs and drop it."""
    with pytest.raises(ValueError, match="Failed processing buffer placeholder"):
        lower_to_arm(torch.export.load(arm_archive("conv1d_head")))


# ---- nothing folds: nothing changes ---------------------------------------------


class ReluThenBatchNorm(TwoBlocks):
    """TwoBlocks with the second BatchNorm after a ReLU: no layer feeds it, so
    nothing folds; the second conv's int32 bias makes bias preparation apply."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


@pytest.fixture(scope="module")
def unfoldable():
    return cached_archive("arm-relu-then-bn",
                          lambda: export_arm_qat(ReluThenBatchNorm(), (torch.randn(2, 3, 8, 8),)))


def test_a_program_nothing_folds_comes_out_byte_for_byte(unfoldable, tmp_path):
    out = tmp_path / "folded.pt2"
    result = run_cli("fold", "--json", str(unfoldable), "-o", str(out), "--explain")
    assert out.read_bytes() == unfoldable.read_bytes()
    report = qatfold.FoldReport.from_json(json.loads(result.stdout), "", explain=True)
    assert report.folded_count == 0 and report.skipped_count == 1
    assert not report.changed and report.prepared_biases == []
    assert report.bias_preparation["policy"] == "all"  # the rule saw int32 biases...
    assert "nothing folded, so no bias was prepared" in report.bias_preparation["reason"]  # ...and made none


def test_in_memory_the_program_is_returned_as_it_was(unfoldable):
    program = torch.export.load(unfoldable)
    before = [(n.name, str(n.target)) for n in program.graph.nodes]
    result = qatfold.fold(program)
    assert not result.report.changed
    assert [(n.name, str(n.target)) for n in result.program.graph.nodes] == before


def test_asked_for_every_conv_the_bias_is_prepared(unfoldable, tmp_path):
    out = tmp_path / "all.pt2"
    run_cli("fold", str(unfoldable), "-o", str(out), "--bias-prep", "all")
    assert out.read_bytes() != unfoldable.read_bytes()
    program = torch.export.load(out)
    (conv1,) = (n for n in program.graph.nodes if n.name == "conv2d")
    assert "dequantize_per_channel" in str(conv1.args[2].target)
