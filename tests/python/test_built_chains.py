"""Chains no QAT flow builds today, built here by torchao's own rules.

torchao's QAT fusion only rewrites conv1d/conv2d (and transposed) +
BatchNorm; for conv3d, padding="same" convs, grouped transposed convs and
linear + BatchNorm1d it leaves a plain conv/linear followed by batch_norm.
These tests build the simulation chain torchao would build,

    y = op(x, w, b0);  y = y / reshape(bn_w / sqrt(var + eps));  [y = y + reshape(orig_bias)]
    out = batch_norm(y, bn_w, bn_b, mean, var, eval, eps)

export it with torch.export, fold it with qatfold, and check against torch
that the folded program computes the same outputs with no batch_norm left.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qatfold
from support.verification_check import assert_verified


class BuiltChain(nn.Module):
    def __init__(self, op: Callable, weight_shape, channels: int, rank: int, conv_bias: bool, orig_bias: bool,
                 eps: float = 1e-5, chain_eps: float | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(channels + rank)
        self.op = op
        self.rank = rank
        self.eps = eps
        self.chain_eps = eps if chain_eps is None else chain_eps  # added to running_var in the scale chain
        self.weight = nn.Parameter(torch.randn(*weight_shape, generator=generator) * 0.3)
        self.bias = nn.Parameter(torch.randn(channels, generator=generator) * 0.1) if conv_bias else None
        self.orig_bias = nn.Parameter(torch.randn(channels, generator=generator) * 0.2) if orig_bias else None
        self.bn_weight = nn.Parameter(torch.randn(channels, generator=generator) * 0.5 + 1)
        self.bn_bias = nn.Parameter(torch.randn(channels, generator=generator) * 0.3)
        self.register_buffer("running_mean", torch.randn(channels, generator=generator) * 0.5)
        self.register_buffer("running_var", torch.rand(channels, generator=generator) * 2 + 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (self.rank - 2)
        y = self.op(x, self.weight, self.bias)
        y = y / (self.bn_weight / torch.sqrt(self.running_var + self.chain_eps)).reshape(shape)
        if self.orig_bias is not None:
            y = y + self.orig_bias.reshape(shape)
        return F.batch_norm(y, self.running_mean, self.running_var, self.bn_weight, self.bn_bias, False, 0.1, self.eps)


# name: (op, weight shape, input shape, kind qatfold reports)
KINDS = {
    "conv3d": (F.conv3d, (8, 3, 3, 3, 3), (2, 3, 6, 6, 6), "conv3d"),
    "conv1d_same": (lambda x, w, b: F.conv1d(x, w, b, padding="same"), (8, 4, 3), (2, 4, 16), "conv1d"),
    "conv2d_same": (lambda x, w, b: F.conv2d(x, w, b, padding="same"), (8, 3, 3, 3), (2, 3, 8, 8), "conv2d"),
    "conv3d_same": (lambda x, w, b: F.conv3d(x, w, b, padding="same"), (8, 3, 3, 3, 3), (2, 3, 5, 5, 5), "conv3d"),
    "conv_transpose1d_groups": (lambda x, w, b: F.conv_transpose1d(x, w, b, groups=2), (4, 4, 3), (2, 4, 10),
                                "conv_transpose1d"),
    "conv_transpose2d_groups": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, groups=2), (4, 4, 3, 3),
                                (2, 4, 5, 5), "conv_transpose2d"),
    "conv_transpose3d": (F.conv_transpose3d, (3, 8, 2, 2, 2), (2, 3, 4, 4, 4), "conv_transpose3d"),
    "linear": (F.linear, (8, 6), (4, 6), "linear"),
}


def ops(program) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]


def build(name: str, conv_bias: bool, orig_bias: bool, decompose: bool = False):
    op, weight_shape, input_shape, _ = KINDS[name]
    model = BuiltChain(op, weight_shape, 8, len(input_shape), conv_bias, orig_bias).eval()
    example = (torch.randn(*input_shape, generator=torch.Generator().manual_seed(3)),)
    program = torch.export.export(model, example)
    if decompose:
        program = program.run_decompositions()
    return program, example


@pytest.mark.parametrize("conv_bias,orig_bias", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("name", sorted(KINDS))
def test_built_chain_folds_and_matches_torch(name, conv_bias, orig_bias):
    program, example = build(name, conv_bias, orig_bias)
    assert any("batch_norm" in op for op in ops(program))

    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)

    assert not any("batch_norm" in op for op in ops(result.program)), ops(result.program)
    (chain,) = result.report.folded
    assert chain.kind == KINDS[name][3]
    assert chain.bias_dtype == "float32"
    for seed in range(2):
        x = torch.randn(example[0].shape, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(result.program.module()(x), program.module()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["conv_transpose2d_groups", "conv3d"])
def test_core_aten_form_folds(name):
    """After run_decompositions: aten.convolution (transposed=True for the
    transposed kinds) and _native_batch_norm_legit_no_training."""
    program, example = build(name, conv_bias=True, orig_bias=True, decompose=True)
    assert "aten.convolution.default" in ops(program)
    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)
    assert not any("batch_norm" in op for op in ops(result.program)), ops(result.program)
    assert result.report.folded[0].kind == "convolution"
    torch.testing.assert_close(result.program.module()(*example), program.module()(*example), rtol=1e-5, atol=1e-5)


class QuantizedBuiltChain(BuiltChain):
    """The same chain after a quantized conv/linear, as convert_pt2e leaves it
    with an INT32 bias annotation: dq(q(x)), int8 weight, int32 bias with
    scale s_x * s_w, and q/dq on the output before the div."""

    X_SCALE, W_SCALE, Y_SCALE = 0.02, 0.01, 0.05

    def __init__(self, *args, output_qdq: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.output_qdq = output_qdq
        with torch.no_grad():
            weight_q = torch.clamp(torch.round(self.weight / self.W_SCALE), -127, 127).to(torch.int8)
            self.register_buffer("weight_q", weight_q)
            bias = self.bias if self.bias is not None else torch.zeros_like(self.bn_bias)
            self.register_buffer("bias_q", torch.round(bias / (self.X_SCALE * self.W_SCALE)).to(torch.int32))
        self.weight = None
        self.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qd = torch.ops.quantized_decomposed
        x = qd.dequantize_per_tensor(qd.quantize_per_tensor(x, self.X_SCALE, 0, -128, 127, torch.int8),
                                     self.X_SCALE, 0, -128, 127, torch.int8)
        w = qd.dequantize_per_tensor(self.weight_q, self.W_SCALE, 0, -127, 127, torch.int8)
        b = qd.dequantize_per_tensor(self.bias_q, self.X_SCALE * self.W_SCALE, 0, -(2**31), 2**31 - 1, torch.int32)
        y = self.op(x, w, b)
        if self.output_qdq:
            y = qd.dequantize_per_tensor(qd.quantize_per_tensor(y, self.Y_SCALE, 0, -128, 127, torch.int8),
                                         self.Y_SCALE, 0, -128, 127, torch.int8)
        shape = [1, -1] + [1] * (self.rank - 2)
        y = y / (self.bn_weight / torch.sqrt(self.running_var + self.chain_eps)).reshape(shape)
        if self.orig_bias is not None:
            y = y + self.orig_bias.reshape(shape)
        return F.batch_norm(y, self.running_mean, self.running_var, self.bn_weight, self.bn_bias, False, 0.1, self.eps)


@pytest.mark.parametrize("name", ["conv3d", "conv2d_same", "conv_transpose2d_groups", "linear"])
def test_quantized_built_chain_folds_into_int32_bias_within_one_step(name):
    from support.graph_compare import random_inputs
    from support.semantic import check_chain_within_one_step, node_values

    op, weight_shape, input_shape, kind = KINDS[name]
    model = QuantizedBuiltChain(op, weight_shape, 8, len(input_shape), True, True).eval()
    program = torch.export.export(model, (torch.randn(*input_shape),))

    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)

    assert not any("batch_norm" in op for op in ops(result.program)), ops(result.program)
    (chain,) = result.report.folded
    assert chain.kind == kind and chain.bias_dtype == "int32"
    chain_json = {"conv": chain.conv, "batch_norm": chain.batch_norm}
    for seed in range(2):
        values = node_values(program, random_inputs(program, seed))
        check_chain_within_one_step(program, result.program, chain_json, values)


@pytest.mark.parametrize("name", ["conv3d", "conv_transpose1d_groups", "linear"])
def test_quantized_chain_without_output_qdq_folds_into_int32_bias(name):
    """A quantizer annotating conv + BN as one unit leaves no q/dq between
    them; the chain still folds into the int32 bias (no range risk to report)."""
    op, weight_shape, input_shape, kind = KINDS[name]
    model = QuantizedBuiltChain(op, weight_shape, 8, len(input_shape), True, True, output_qdq=False).eval()
    program = torch.export.export(model, (torch.randn(*input_shape),))

    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)

    assert not any("batch_norm" in op for op in ops(result.program)), ops(result.program)
    (chain,) = result.report.folded
    assert chain.kind == kind and chain.bias_dtype == "int32"
    assert chain.output_range is None and chain.relative_shift is None
    bias_step = QuantizedBuiltChain.X_SCALE * QuantizedBuiltChain.W_SCALE
    for seed in range(2):
        x = torch.randn(input_shape, generator=torch.Generator().manual_seed(seed))
        # The folded bias is C rounded to the bias step: off by at most half a step.
        torch.testing.assert_close(result.program.module()(x), program.module()(x), rtol=0, atol=bias_step * 0.5 + 1e-5)


def test_float_chain_with_eps_mismatch_is_kept_with_its_own_reason():
    """The float fold refuses a chain whose scale-chain eps differs from the
    BatchNorm's; that, not the int32 fold's "no int32 bias" (a float conv is
    not its kind), is the reason the report gives."""
    op, weight_shape, input_shape, _ = KINDS["conv2d_same"]
    model = BuiltChain(op, weight_shape, 8, len(input_shape), True, True, eps=1e-5, chain_eps=1e-2).eval()
    program = torch.export.export(model, (torch.randn(*input_shape),))

    result = qatfold.fold(program, explain=True)
    assert_verified(program, result.program, result.report.folded)

    assert result.report.folded == []
    (skipped,) = result.report.skipped
    assert skipped.qat_chain
    assert "eps" in skipped.reason and "differs from batch_norm's eps" in skipped.reason, skipped.reason
    assert "int32" not in skipped.reason
    assert skipped.code == "eps-mismatch-float" and skipped.option is None
    assert skipped.reason in result.report.text
    template = qatfold.REFUSAL_CODES[skipped.code]["message"]
    assert skipped.reason.startswith(template.split("{0}")[0])
