"""Programs of Arm's quantizer (TOSAQuantizer, QAT), which qatfold does not
fold yet (their chains read dequantized BatchNorm parameters): nothing
folds, so nothing changes, not even the int32 biases bias preparation gives
convs where a program encodes its conv biases as int32 (Cadence-style)."""

from __future__ import annotations

import pytest
import torch

import qatfold
from support.repo import run_cli
from zoo.arm import TwoBlocks, export_arm_qat
from zoo.program_cache import cached_archive


@pytest.fixture(scope="module")
def two_blocks():
    return cached_archive("arm-two-blocks", lambda: export_arm_qat(TwoBlocks(), (torch.randn(2, 3, 8, 8),)))


def test_a_program_nothing_folds_comes_out_byte_for_byte(two_blocks, tmp_path):
    out = tmp_path / "folded.pt2"
    result = run_cli("fold", "--json", str(two_blocks), "-o", str(out))
    assert out.read_bytes() == two_blocks.read_bytes()
    report = qatfold.FoldReport.from_json(__import__("json").loads(result.stdout), "", explain=True)
    assert report.folded_count == 0 and report.skipped_count == 1
    assert not report.changed and report.prepared_biases == []
    assert report.bias_preparation["policy"] == "all"  # the rule saw int32 biases...
    assert "nothing folded, so no bias was kept" in report.bias_preparation["reason"]  # ...and kept none


def test_in_memory_the_program_is_returned_as_it_was(two_blocks):
    program = torch.export.load(two_blocks)
    before = [(n.name, str(n.target)) for n in program.graph.nodes]
    result = qatfold.fold(program)
    assert not result.report.changed
    assert [(n.name, str(n.target)) for n in result.program.graph.nodes] == before


def test_asked_for_every_conv_the_bias_is_prepared(two_blocks, tmp_path):
    out = tmp_path / "all.pt2"
    run_cli("fold", str(two_blocks), "-o", str(out), "--bias-prep", "all")
    assert out.read_bytes() != two_blocks.read_bytes()
    program = torch.export.load(out)
    (conv1,) = (n for n in program.graph.nodes if n.name == "conv2d")
    assert "dequantize_per_channel" in str(conv1.args[2].target)
