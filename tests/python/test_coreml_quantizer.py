"""Core ML's QAT programs (CoreMLQuantizer, per-channel int8 weights,
uint8 activations). Core ML's QAT takes one to two minutes a program here,
so these are committed programs (tests/fixtures/coreml_*.pt2, made by
tools/make_coreml_fixtures.py through zoo/quantizers.py as every other
quantizer's are): linear + BatchNorm1d and conv3d, each feeding its
BatchNorm directly and quantized after its ReLU (a conv2d's BatchNorm is
gone after Core ML's QAT convert; padding="same" it leaves unquantized). Each folds with default
options, and computes what the un-folded program does. (Core ML does not
lower here: no coremltools backend on Linux.)"""

from __future__ import annotations

import pytest
import torch

import qatfold
from support.repo import FIXTURES
from tools.make_coreml_fixtures import KINDS


def batch_norms(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes)


@pytest.mark.parametrize("kind", KINDS)
def test_coreml_program_folds_with_default_options(kind):
    exported = torch.export.load(FIXTURES / f"coreml_{kind}.pt2")
    assert batch_norms(exported) == 1
    generator = torch.Generator().manual_seed(2)
    shape = exported.example_inputs[0][0].shape
    result = qatfold.fold(exported, verify=[(torch.randn(shape, generator=generator),) for _ in range(4)])
    assert batch_norms(result.program) == 0, result.report.text
    assert result.report.skipped_count == 0
    (output,) = result.verification.outputs
    assert output.unit == "steps" and output.mean < 0.5, result.verification.text()
