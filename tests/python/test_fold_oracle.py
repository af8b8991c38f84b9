"""Differential tests: qatfold fold vs ExecuTorch 1.4.0's FuseQATConvBN.

Every model of scripts/qat_zoo.py goes through the real Cadence QAT flow
(prepare_qat_pt2e, training steps, convert_pt2e, torch.export) and is saved
with torch.export.save. Both folders then work on the same archive. Where
the reference folds, qatfold must write the same int32 biases bit for bit,
leave the same multiset of ops, and compute the same outputs exactly.
"""

from __future__ import annotations

import pytest
import torch

from graph_compare import random_inputs
from oracle import conv_int32_biases, op_multiset, oracle_fold, output_step, qatfold_fold

ZOO_NAMES = [
    "conv2d_nobias", "conv2d_bias", "conv1d_nobias", "conv1d_bias", "chain3", "residual", "depthwise",
    "grouped", "strided", "dilated", "eps_1e-3", "two_branches",
]
# The same programs after run_decompositions(): convolution + _native_batch_norm_legit_no_training.
DECOMPOSED = ["conv2d_bias", "chain3", "residual"]
CASES = ZOO_NAMES + [f"{name}:decomposed" for name in DECOMPOSED]


@pytest.fixture(scope="session")
def qat_archive(tmp_path_factory):
    """Builds (once) the QAT archive of a case; returns its path."""
    from fixture_models import export_qat_cadence
    from qat_zoo import build

    folder = tmp_path_factory.mktemp("qat")
    cache = {}

    def get(case: str):
        if case not in cache:
            name, _, variant = case.partition(":")
            model, example = build(name)
            program = export_qat_cadence(model, example)
            if variant == "decomposed":
                program = program.run_decompositions()
            path = folder / f"{name}{'_' + variant if variant else ''}.pt2"
            torch.export.save(program, path)
            cache[case] = path
        return cache[case]

    return get


@pytest.fixture(scope="session")
def folded(qat_archive, tmp_path_factory):
    """(unfolded, oracle-folded, qatfold-folded) programs of a case."""
    folder = tmp_path_factory.mktemp("folded")
    cache = {}

    def get(case: str):
        if case not in cache:
            path = qat_archive(case)
            out = folder / path.name
            cache[case] = (torch.export.load(path), oracle_fold(path), qatfold_fold(path, out))
        return cache[case]

    return get


def bn_count(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes if n.op == "call_function")


@pytest.mark.parametrize("case", CASES)
def test_every_chain_folds(folded, case):
    unfolded, reference, ours = folded(case)
    assert bn_count(unfolded) > 0, "the QAT flow must leave the chain for this test to mean anything"
    assert bn_count(reference) == 0
    assert bn_count(ours) == 0


@pytest.mark.parametrize("case", CASES)
def test_int32_biases_are_bit_identical_to_the_reference(folded, case):
    _, reference, ours = folded(case)
    expected = conv_int32_biases(reference)
    actual = conv_int32_biases(ours)
    assert expected.keys() == actual.keys()
    for conv, bias in expected.items():
        assert actual[conv].dtype == torch.int32
        assert torch.equal(actual[conv], bias), conv


@pytest.mark.parametrize("case", CASES)
def test_op_multiset_matches_the_reference(folded, case):
    _, reference, ours = folded(case)
    assert op_multiset(ours) == op_multiset(reference)


@pytest.mark.parametrize("case", CASES)
def test_outputs_are_identical_to_the_reference(folded, case):
    _, reference, ours = folded(case)
    for seed in range(3):
        x = random_inputs(reference, seed)
        assert torch.equal(ours.module()(*x), reference.module()(*x))


def _node_values(program: torch.export.ExportedProgram, inputs: tuple) -> dict:
    """Every node's value when `program` runs on `inputs`, by node name."""
    module = program.module()
    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            values[node.name] = result
            return result

    Recorder(module).run(*inputs)
    return values


@pytest.mark.parametrize("case", CASES)
def test_each_folded_chain_is_within_one_step_of_the_unfolded_chain(folded, qat_archive, case):
    """Per chain, on the same conv input: dq(q(conv + folded bias)) vs. the
    un-folded batch_norm output. Outside clipped elements (the output range
    risk the report quantifies) they differ by at most one output step."""
    import json

    from conftest import run_cli

    unfolded, _, ours = folded(case)
    report = json.loads(run_cli("fold", str(qat_archive(case)), "--dry-run", "--json").stdout)
    assert report["folded_count"] == len(report["folded"]) > 0
    ours_nodes = {n.name: n for n in ours.graph.nodes}
    from oracle import constant_of

    for seed in range(2):
        x = random_inputs(unfolded, seed)
        values = _node_values(unfolded, x)
        for chain in report["folded"]:
            conv = ours_nodes[chain["conv"]]
            bias_dq = conv.args[2]
            bias = constant_of(ours, bias_dq.args[0])
            new_bias = bias_dq.target(bias, *bias_dq.args[1:])
            args = [new_bias if i == 2 else values[a.name] if isinstance(a, torch.fx.Node) else a
                    for i, a in enumerate(conv.args)]
            quantize = next(iter(conv.users))
            scale, zero_point, qmin, qmax = quantize.args[1:5]
            y = conv.target(*args)
            folded_q = torch.round(y / scale) + zero_point
            folded_out = (torch.clamp(folded_q, qmin, qmax) - zero_point) * scale
            expected = values[chain["batch_norm"]]
            if isinstance(expected, (tuple, list)):
                expected = expected[0]
            unfolded_q = torch.round(values[chain["conv"]] / scale) + zero_point
            # Saturation on either side changes values by design: that is the
            # clipping risk the report quantifies, not a fold error.
            clipped = (folded_q <= qmin) | (folded_q >= qmax) | (unfolded_q <= qmin) | (unfolded_q >= qmax)
            difference = (folded_out - expected).abs()[~clipped]
            step = float(scale)
            assert difference.max().item() <= step * 1.001, (chain["conv"], difference.max().item(), step)
            if clipped.any():
                assert chain["relative_shift"] > 0
