"""Per-channel weights: a real QAT flow with per-channel int8 weights and a
per-channel int32 bias (scripts/per_channel_quantizer.py), folded channel by
channel. ExecuTorch's reference pass handles only per-tensor biases.

Each case goes through prepare_qat_pt2e, training steps, convert_pt2e and
torch.export.save; qatfold folds the archive; every folded chain must then
be within one output quantization step of the un-folded chain.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli
from graph_compare import random_inputs
from semantic import check_chain_within_one_step, node_values

CASES = ["conv2d_bias", "conv2d_nobias", "conv1d_bias", "chain3", "depthwise", "grouped", "residual"]


@pytest.fixture(scope="module")
def per_channel_archive(tmp_path_factory):
    from fixture_models import qat_convert
    from per_channel_quantizer import PerChannelConvQuantizer
    from qat_zoo import build

    folder = tmp_path_factory.mktemp("per_channel")
    cache = {}

    def get(name: str):
        if name not in cache:
            model, example = build(name)
            program = torch.export.export(qat_convert(model, example, PerChannelConvQuantizer()), example)
            cache[name] = folder / f"{name}.pt2"
            torch.export.save(program, cache[name])
        return cache[name]

    return get


def ops(program) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("name", CASES)
def test_per_channel_chains_fold_within_one_step(per_channel_archive, name, tmp_path):
    path = per_channel_archive(name)
    unfolded = torch.export.load(path)
    assert any("dequantize_per_channel" in op for op in ops(unfolded))
    assert any("batch_norm" in op for op in ops(unfolded))

    out = tmp_path / "folded.pt2"
    report = json.loads(run_cli("fold", str(path), "-o", str(out), "--json").stdout)
    folded = torch.export.load(out)

    assert not any("batch_norm" in op for op in ops(folded)), ops(folded)
    assert report["folded_count"] == len(report["folded"]) > 0
    assert all(chain["per_channel_bias"] for chain in report["folded"])
    for seed in range(2):
        values = node_values(unfolded, random_inputs(unfolded, seed))
        for chain in report["folded"]:
            check_chain_within_one_step(unfolded, folded, chain, values)


def test_reference_does_not_fold_per_channel_bias(per_channel_archive):
    """What ExecuTorch 1.4.0's pass does with the same program."""
    from oracle import oracle_fold

    reference = oracle_fold(per_channel_archive("conv2d_bias"))
    assert any("batch_norm" in op for op in ops(reference))
