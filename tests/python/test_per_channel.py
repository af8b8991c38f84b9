"""Per-channel weights: a real QAT flow with per-channel int8 weights and a
per-channel int32 bias (zoo/per_channel_quantizer.py), folded channel by
channel. ExecuTorch's reference pass handles only per-tensor biases.

Each case goes through prepare_qat_pt2e, training steps, convert_pt2e and
torch.export.save; qatfold folds the archive; every folded chain must then
be within one output quantization step of the un-folded chain.
"""

from __future__ import annotations

import json

import pytest
import torch

from support.front_door_check import folded_both_ways
from support.graph_compare import random_inputs
from support.repo import run_cli
from support.semantic import check_chain_within_one_step, node_values
from support.verification_check import assert_verified

CASES = ["conv2d_bias", "conv2d_nobias", "conv1d_bias", "chain3", "depthwise", "grouped", "residual"]


@pytest.fixture(scope="module")
def per_channel_archive(tmp_path_factory):
    from zoo.flows import qat_convert
    from zoo.models import build
    from zoo.per_channel_quantizer import PerChannelConvQuantizer

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
    report = json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)
    folded = folded_both_ways(path, out)

    assert not any("batch_norm" in op for op in ops(folded)), ops(folded)
    assert report["folded_count"] == len(report["folded"]) > 0
    assert all(chain["per_channel_bias"] for chain in report["folded"])
    assert_verified(unfolded, folded, report["folded"])
    for seed in range(2):
        values = node_values(unfolded, random_inputs(unfolded, seed))
        for chain in report["folded"]:
            check_chain_within_one_step(unfolded, folded, chain, values)


def test_reference_does_not_fold_per_channel_bias(per_channel_archive):
    """What ExecuTorch 1.4.0's pass does with the same program."""
    from support.oracle import oracle_fold

    reference = oracle_fold(per_channel_archive("conv2d_bias"))
    assert any("batch_norm" in op for op in ops(reference))


def with_chain_eps(program, eps: float):
    """The program with its scale chain's eps (add(running_var, eps)) replaced,
    as a hand-edited or differently-built chain would have it."""
    for node in program.graph.nodes:
        if node.target == torch.ops.aten.add.Tensor and "running_var" in node.args[0].name:
            node.args = (node.args[0], eps)
    program.graph_module.recompile()
    return program


@pytest.mark.parametrize("name", ["conv2d_bias", "conv1d_bias"])
def test_eps_mismatch_goes_into_per_channel_scales(per_channel_archive, name, tmp_path):
    from support.oracle import constant_of

    unfolded = with_chain_eps(torch.export.load(per_channel_archive(name)), 0.05)
    edited = tmp_path / "edited.pt2"
    torch.export.save(unfolded, edited)
    unfolded = torch.export.load(edited)

    out = tmp_path / "folded.pt2"
    report = json.loads(run_cli("fold", str(edited), "--dry-run", "--json").stdout)
    folded = folded_both_ways(edited, out)
    (chain,) = report["folded"]
    mismatch = chain["eps_mismatch"]
    assert mismatch["chain_eps"] == 0.05 and mismatch["batch_norm_eps"] == 1e-5
    assert mismatch["handling"] == "folded into the per-channel weight and bias scales"
    assert float(mismatch["factor_max"]) > 1.01

    # The weight and bias scales both took r: the bias scale is still s_in * s_w[c].
    convs = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
    conv = next(n for n in folded.graph.nodes if n.target in convs)
    weight_dq, bias_dq = conv.args[1], conv.args[2]
    input_scale = conv.args[0].args[1]
    weight_scales = constant_of(folded, weight_dq.args[1])
    bias_scales = constant_of(folded, bias_dq.args[1])
    torch.testing.assert_close(bias_scales, (input_scale * weight_scales).float(), rtol=1e-6, atol=0)

    # End to end (one chain): the folded output is within about one output step
    # of the un-folded float BatchNorm output, outside clipped elements.
    quantize = next(iter(conv.users))
    scale, zero_point, qmin, qmax = quantize.args[1:5]
    for seed in range(3):
        x = random_inputs(unfolded, seed)
        expected = unfolded.module()(*x)
        got = folded.module()(*x)
        codes = torch.round(got / scale) + zero_point
        inside = (codes > qmin) & (codes < qmax)
        assert inside.float().mean() > 0.5
        assert (got - expected).abs()[inside].max().item() <= 1.5 * scale


def test_eps_mismatch_on_per_tensor_weights_is_refused_beyond_tolerance(tmp_path):
    from zoo.flows import export_qat_cadence
    from zoo.models import build

    model, example = build("conv2d_bias")
    program = with_chain_eps(export_qat_cadence(model, example), 0.05)
    path = tmp_path / "edited.pt2"
    torch.export.save(program, path)
    report = json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)
    assert report["folded_count"] == 0
    (skipped,) = [s for s in report["skipped"] if s["qat_chain"]]
    assert "with per-tensor weights the output would be off by up to" in skipped["reason"]
    assert "more than the eps tolerance 0.001" in skipped["reason"]
    assert skipped["code"] == "eps-mismatch-per-tensor" and skipped["option"] == "eps_tolerance"
    relaxed = json.loads(run_cli("fold", str(path), "--dry-run", "--json", "--eps-tolerance", "0.5").stdout)
    assert relaxed["folded_count"] == 1
    assert relaxed["folded"][0]["eps_mismatch"]["handling"] == "ignored: within the eps tolerance"
    # python -m qatfold verify measures the chain folded under the raised
    # tolerance (it picked its folds at the default tolerance and skipped it).
    folded = tmp_path / "relaxed.pt2"
    run_cli("fold", str(path), "-o", str(folded), "--eps-tolerance", "0.5")
    import subprocess
    import sys

    verified = subprocess.run([sys.executable, "-m", "qatfold", "verify", str(path), str(folded), "--json"],
                              capture_output=True, text=True)
    assert verified.returncode in (0, 3), verified.stderr[-2000:]
    assert [c["conv"] for c in json.loads(verified.stdout)["convs"]] == [relaxed["folded"][0]["conv"]]
