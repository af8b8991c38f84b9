"""Every Cadence quantizer with a QAT config (Default, FusedConvRelu,
WakeWord) holds qatfold to bit-exact parity with ExecuTorch's FuseQATConvBN:
the same int32 bias for every conv, the same ops, the same outputs, and the
same program after Cadence's QuantFusionPass and lowering.

FusedConvRelu annotates conv+BN+ReLU as one unit, so torchao folds those
blocks itself (float biases) and leaves the others in QAT chains; in a
program of bias-less convs no conv reads an int32 bias, and the surviving
chain is what says the quantizer wants them (passes/bias_preparation.h).
"""

from __future__ import annotations

import json

import pytest
import torch

from support.graph_compare import random_inputs
from support.oracle import conv_int32_biases, op_multiset, oracle_fold, qatfold_fold
from support.repo import run_cli
from zoo.cadence_lowering import lower_to_cadence
from zoo.program_cache import cached_archive

QUANTIZERS = ("CadenceDefaultQuantizer", "CadenceFusedConvReluQuantizer", "CadenceWakeWordQuantizer")
CASES = ("basic_block", "residual", "chain3", "conv2d_bias", "conv1d_nobias")


def quantizer(name: str):
    from executorch.backends.cadence.aot.quantizer import quantizer as cadence

    return getattr(cadence, name)(is_qat=True)


def archive(quantizer_name: str, case: str):
    def build():
        from zoo.flows import qat_convert
        from zoo.models import build as build_model

        model, example = build_model(case)
        return torch.export.export(qat_convert(model, example, quantizer(quantizer_name)), example)

    return cached_archive(f"cadence-{quantizer_name}-{case}", build)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("quantizer_name", QUANTIZERS)
def test_fold_matches_executorch_bit_for_bit(quantizer_name, case, tmp_path):
    path = archive(quantizer_name, case)
    ours = qatfold_fold(path, tmp_path / "folded.pt2")
    theirs = oracle_fold(path)
    assert op_multiset(ours) == op_multiset(theirs)
    ours_biases, theirs_biases = conv_int32_biases(ours), conv_int32_biases(theirs)
    assert ours_biases.keys() == theirs_biases.keys() and ours_biases
    for conv, bias in theirs_biases.items():
        assert torch.equal(ours_biases[conv], bias), conv
    for seed in range(2):
        x = random_inputs(ours, seed)
        assert torch.equal(ours.module()(*x), theirs.module()(*x))


def test_fused_conv_relu_block_gets_an_int32_bias_from_the_surviving_chain():
    """The issue's program: no conv of the bias-less basic block reads an
    int32 bias, torchao folded the conv+ReLU blocks into float biases, and
    the chain of the conv without a ReLU says the quantizer wants int32."""
    path = archive("CadenceFusedConvReluQuantizer", "basic_block")
    program = torch.export.load(path)
    assert not conv_int32_biases(program)
    assert sum("batch_norm" in str(t) for t in op_multiset(program)) >= 1
    report = json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)
    assert report["bias_preparation"]["policy"] == "all", report["bias_preparation"]
    assert "a QAT chain survives" in report["bias_preparation"]["reason"]
    assert {p["action"] for p in report["prepared_biases"]} >= {"quantized the float bias to int32"}


@pytest.mark.slow
@pytest.mark.parametrize("quantizer_name", QUANTIZERS)
def test_lowered_programs_are_the_same(quantizer_name, tmp_path):
    """Through QuantFusionPass (the quantizer's own patterns) and lowering to
    Cadence: the same lowered ops and the same outputs."""
    path = archive(quantizer_name, "basic_block")
    run_cli("fold", str(path), "-o", str(tmp_path / "folded.pt2"))
    ours = lower_to_cadence(torch.export.load(tmp_path / "folded.pt2"), quantizer=quantizer(quantizer_name))
    theirs = lower_to_cadence(oracle_fold(path), quantizer=quantizer(quantizer_name))
    assert op_multiset(ours) == op_multiset(theirs)
    assert not any("batch_norm" in str(t) for t in op_multiset(ours))
    for seed in range(2):
        x = random_inputs(torch.export.load(path), seed)
        assert torch.equal(ours.module()(*x), theirs.module()(*x))
