"""Programs of the other quantizers ExecuTorch ships that import here
(zoo/quantizers.py): Qualcomm's QnnQuantizer (8a8w, QAT, per-tensor and
per-channel weights), Samsung's EnnQuantizer (A8W8, QAT), Arm's Ethos-U55
profile, its VGF quantizer and TOSA with 16-bit activations (a16w8),
Cortex-M's (its PTQ config, the only one, through the QAT flow) and
MediaTek's NeuropilotQuantizer. Each folds to no batch_norm, as a user of
those backends runs it (the 2-D network of zoo/layers.py, conv2d,
depthwise, transposed, padding="same", each + BatchNorm + ReLU, with
calibration and per-tensor re-quantization; the networks each quantizer can
make otherwise), and the folded program computes what the un-folded one
does. (Arm TOSA lowering: test_arm_quantizer.py; Core ML:
test_coreml_quantizer.py; Cadence and XNNPACK: their own files. None of
these backends lowers here: no SDK.)"""

from __future__ import annotations

import pytest
import torch

import qatfold
from zoo import layers, quantizers
from zoo.program_cache import cached_archive

# (Qualcomm with per-channel weights fails on the transposed conv of the
# 2-D network in its own quantizer: its networks are below.)
QUANTIZERS = ("qualcomm-8a8w", "samsung-a8w8", "arm-ethos-u55", "arm-vgf", "arm-tosa-a16w8", "cortex-m")


def batch_norms(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes)


@pytest.fixture(scope="module", params=QUANTIZERS)
def program(request):
    path = cached_archive(f"{request.param}-stack2d",
                          lambda: quantizers.export(request.param, *layers.network("stack2d")))
    return request.param, torch.export.load(path)


def inputs(program, count: int, seed: int) -> list[tuple]:
    generator = torch.Generator().manual_seed(seed)
    example = program.example_inputs[0]
    return [tuple(torch.randn(x.shape, generator=generator) for x in example) for _ in range(count)]


def test_no_batch_norm_is_left(program):
    name, exported = program
    assert batch_norms(exported) > 0
    result = qatfold.fold(exported, calibrate=inputs(exported, 8, 1), per_tensor_weights="requantize",
                          verify=inputs(exported, 4, 2))
    assert batch_norms(result.program) == 0, result.report.text
    assert result.report.skipped_count == 0
    # The program's output against the un-folded one, in its output steps:
    # exact folds round the other way now and then; a fold onto an output
    # quantization calibrated on the conv alone clips where y + C leaves it
    # (flagged in the report), and re-quantized per-tensor weights cost
    # their reported error.
    (output,) = result.verification.outputs
    limit = 1.0 if name == "qualcomm-8a8w" else 0.5  # Qualcomm: per-tensor weights, re-quantized
    assert output.unit == "steps" and output.mean < limit, result.verification.text()


@pytest.mark.parametrize("network", ["conv1d_head", "conv3d_pair"])
def test_qualcomm_per_channel_folds_through_its_second_pair_without_options(network):
    """Qualcomm with per-channel weights leaves two quantize/dequantize pairs
    between a linear or conv3d and its BatchNorm (its output and the
    BatchNorm's input observed apart): the fold sees past both, onto the
    quantize trained after the BatchNorm, with default options, and says
    what it saw past. Within a step on average of the un-folded program: the
    conv1d chain of conv1d_head folds onto an output quantization observed on
    the conv alone (flagged in the report; calibrate= or
    output_range="widen" are the remedies), and the linear's second pair,
    which clipped a tenth of its outputs, is gone."""
    path = cached_archive(f"qualcomm-8a8w-per-channel-{network}",
                          lambda: quantizers.export("qualcomm-8a8w-per-channel", *layers.network(network)))
    exported = torch.export.load(path)
    ops = torch.ops.quantized_decomposed
    requantizes = [n for n in exported.graph.nodes if n.target == ops.quantize_per_tensor.default
                   and n.args[0].target == ops.dequantize_per_tensor.default]
    assert requantizes, "no back-to-back pair in the program: the shape this test is about is gone"
    result = qatfold.fold(exported, verify=inputs(exported, 4, 2))
    assert batch_norms(result.program) == 0, result.report.text
    through = [c for c in result.report.folded if c.requantized and c.requantized["looked_through"]]
    assert len(through) == 1, result.report.text
    assert any(kind in through[0].conv_target for kind in ("linear", "conv3d")), through[0].conv_target
    assert through[0].requantized["source"] == "trained"
    assert "second quantize/dequantize" in through[0].requantized["looked_through"][0]
    assert "looked through: " in result.report.text
    (output,) = result.verification.outputs
    assert output.unit == "steps" and output.mean < 1.0, result.verification.text()


def test_mediatek_folds_what_its_qat_makes():
    """MediaTek's NeuropilotQuantizer (loaded without its package's
    __init__, which imports the SDK): its QAT makes conv3d_pair (its conv1d
    and conv2d QAT fail in torchao's conv-BN fusion, with or without
    qatfold). It quantizes the input and leaves the conv3d layers in float:
    the BatchNorm folds into the float weights, to float32 rounding."""
    path = cached_archive("mediatek-a8w8-conv3d_pair",
                          lambda: quantizers.export("mediatek-a8w8", *layers.network("conv3d_pair")))
    exported = torch.export.load(path)
    assert batch_norms(exported) == 1
    result = qatfold.fold(exported, verify=inputs(exported, 4, 2))
    assert batch_norms(result.program) == 0, result.report.text
    assert [c.folded_by for c in result.report.folded] == ["FoldBatchNormIntoWeights"]
    (output,) = result.verification.outputs
    assert output.unit == "float" and output.max < 1e-5, result.verification.text()
