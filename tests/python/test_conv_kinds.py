"""Every conv kind through real QAT flows: what folds, what is left and why.

ExecuTorch's Cadence quantizer does not quantize transposed convs, but
torchao's QAT fusion still builds the conv -> div -> [add] -> batch_norm
simulation chain around them, with no quantize/dequantize after the conv.
qatfold folds that chain into a float bias (FoldConvBatchNormChain); the
reference pass leaves it. Each test saves the real converted program with
torch.export.save, folds the archive, and checks the folded program
computes what the un-folded one does.
"""

from __future__ import annotations

import typing

import pytest
import torch
from torch import nn

import qatfold
from support.front_door_check import folded_both_ways
from support.verification_check import assert_verified
from zoo.models import randomize_bn

try:  # ExecuTorch 1.4.0's Cadence modules use typing.override (Python 3.12)
    typing.override  # noqa: B018
except AttributeError:
    import typing_extensions

    typing.override = typing_extensions.override


class ConvBN(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


# name: (model factory, example input)
TRANSPOSED = {
    "conv_transpose1d": (lambda: ConvBN(nn.ConvTranspose1d(4, 8, 3), nn.BatchNorm1d(8)), (2, 4, 16)),
    "conv_transpose1d_bias": (lambda: ConvBN(nn.ConvTranspose1d(4, 8, 3, bias=True), nn.BatchNorm1d(8)), (2, 4, 16)),
    "conv_transpose2d": (lambda: ConvBN(nn.ConvTranspose2d(3, 8, 3, bias=False), nn.BatchNorm2d(8)), (2, 3, 8, 8)),
    "conv_transpose2d_bias_strided": (
        lambda: ConvBN(nn.ConvTranspose2d(3, 8, 3, stride=2, padding=1, bias=True), nn.BatchNorm2d(8)), (2, 3, 8, 8)),
}


def cadence_program(name: str, tmp_path) -> tuple[torch.export.ExportedProgram, tuple]:
    from zoo.flows import export_qat_cadence

    factory, shape = TRANSPOSED[name]
    torch.manual_seed(0)
    example = (torch.randn(*shape),)
    program = export_qat_cadence(randomize_bn(factory(), 7), example)
    path = tmp_path / f"{name}.pt2"
    torch.export.save(program, path)
    return torch.export.load(path), example


def ops(program: torch.export.ExportedProgram) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("name", sorted(TRANSPOSED))
def test_transposed_conv_chain_folds_into_float_bias(name, tmp_path):
    program, example = cadence_program(name, tmp_path)
    assert any("batch_norm" in op for op in ops(program)), "the QAT flow no longer leaves the chain"
    assert not any("quantize" in op for op in ops(program)), "Cadence now quantizes transposed convs"

    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)
    folded_both_ways(tmp_path / f"{name}.pt2", tmp_path / "cli.pt2")

    after = ops(result.program)
    assert not any("batch_norm" in op for op in after), after
    # The div undoing the weight scale is gone; the one making it stays (w' = w * scale).
    assert after.count("aten.div.Tensor") == ops(program).count("aten.div.Tensor") - 1
    conv = next(n for n in result.program.graph.nodes if n.op == "call_function" and "conv_transpose" in str(n.target))
    assert conv.args[2].target in result.program.graph_signature.inputs_to_parameters
    assert result.program.graph_signature.inputs_to_parameters[conv.args[2].target] == "conv.folded_bias"
    assert [u.op for u in conv.users] == ["output"]
    (chain,) = result.report.folded
    assert chain.kind == name.split("_bias")[0].split("_strided")[0]
    assert chain.bias_dtype == "float32"
    assert chain.relative_shift is None and chain.output_range is None
    assert chain.module_path == "conv"
    for seed in range(3):
        x = torch.randn(example[0].shape, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(result.program.module()(x), program.module()(x), rtol=1e-5, atol=1e-5)


def test_transposed_conv_fold_survives_save_and_load(tmp_path):
    program, example = cadence_program("conv_transpose2d_bias_strided", tmp_path)
    folded = qatfold.fold(program).program
    torch.export.save(folded, tmp_path / "folded.pt2")
    reloaded = torch.export.load(tmp_path / "folded.pt2")
    torch.testing.assert_close(reloaded.module()(*example), program.module()(*example), rtol=1e-5, atol=1e-5)


def test_reference_leaves_transposed_chain(tmp_path):
    """What the reference does on the same program: the chain stays."""
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN  # noqa: F401

    from support.oracle import oracle_fold

    cadence_program("conv_transpose2d", tmp_path)
    reference = oracle_fold(tmp_path / "conv_transpose2d.pt2")
    assert any("batch_norm" in op for op in ops(reference))


# Kinds for which torchao builds no QAT chain: Cadence leaves the conv in float
# with a plain batch_norm after it (which qatfold folds into the float weights).
PLAIN = {
    "conv3d": (lambda: ConvBN(nn.Conv3d(3, 8, 3), nn.BatchNorm3d(8)), (2, 3, 6, 6, 6)),
    "conv2d_same": (lambda: ConvBN(nn.Conv2d(3, 8, 3, padding="same"), nn.BatchNorm2d(8)), (2, 3, 8, 8)),
    "conv1d_same": (lambda: ConvBN(nn.Conv1d(3, 8, 3, padding="same", bias=False), nn.BatchNorm1d(8)), (2, 3, 16)),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_cadence_float_conv_batch_norm_folds_into_weights(name, tmp_path):
    from zoo.flows import export_qat_cadence

    factory, shape = PLAIN[name]
    torch.manual_seed(0)
    example = (torch.randn(*shape),)
    # A quantized linear after the conv makes it a quantized program, as a real model is.
    model = nn.Sequential(randomize_bn(factory(), 3), nn.Flatten(), nn.LazyLinear(4))
    model(*example)
    program = export_qat_cadence(model, example)
    path = tmp_path / f"{name}.pt2"
    torch.export.save(program, path)
    program = torch.export.load(path)
    assert any("batch_norm" in op for op in ops(program))
    assert any("quantize_per_tensor" in op for op in ops(program))

    result = qatfold.fold(program, explain=True)
    assert_verified(program, result.program, result.report.folded)
    folded_both_ways(path, tmp_path / "cli.pt2")

    assert not any("batch_norm" in op for op in ops(result.program)), result.report.text
    (chain,) = result.report.folded
    assert chain.scaled_weights and chain.bias_dtype == "float32"
    assert chain.module_path == "0.conv"
    for seed in range(3):
        x = torch.randn(example[0].shape, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(result.program.module()(x), program.module()(x), rtol=1e-4, atol=1e-4)


def test_xnnpack_quantized_conv3d_batch_norm_is_left_with_the_reason(tmp_path):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from zoo.flows import qat_convert

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    factory, shape = PLAIN["conv3d"]
    torch.manual_seed(0)
    example = (torch.randn(*shape),)
    program = torch.export.export(qat_convert(randomize_bn(factory(), 3), example, quantizer), example)

    result = qatfold.fold(program, explain=True)
    assert_verified(program, result.program, result.report.folded)

    (skipped,) = result.report.skipped
    assert ("'conv3d' is quantized and has no QAT chain (torchao's QAT patterns cover conv1d and conv2d, "
            "not conv3d)") in skipped.reason
    assert any("batch_norm" in op for op in ops(result.program))
