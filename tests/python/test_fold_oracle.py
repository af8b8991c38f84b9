"""Differential tests: qatfold fold vs ExecuTorch 1.4.0's FuseQATConvBN.

Every model of zoo/models.py goes through the real Cadence QAT flow
(prepare_qat_pt2e, training steps, convert_pt2e, torch.export) and is saved
with torch.export.save. Both folders then work on the same archive. Where
the reference folds, qatfold must write the same int32 biases bit for bit,
leave the same multiset of ops, and compute the same outputs exactly.
"""

from __future__ import annotations

import pytest
import torch

from support.graph_compare import random_inputs
from support.oracle import conv_int32_biases, op_multiset, oracle_fold, qatfold_fold

ZOO_NAMES = [
    "conv2d_nobias", "conv2d_bias", "conv1d_nobias", "conv1d_bias", "chain3", "residual", "depthwise",
    "grouped", "strided", "dilated", "eps_1e-3", "two_branches",
]
# The same programs after run_decompositions(): convolution + _native_batch_norm_legit_no_training.
DECOMPOSED = ["conv2d_bias", "chain3", "residual"]
CASES = ZOO_NAMES + [f"{name}:decomposed" for name in DECOMPOSED]


@pytest.fixture(scope="session")
def qat_archive():
    """The QAT archive of a case, built once (program_cache)."""
    from zoo.program_cache import cadence_zoo_archive

    return cadence_zoo_archive


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


@pytest.mark.parametrize("case", CASES)
def test_each_folded_chain_is_within_one_step_of_the_unfolded_chain(folded, qat_archive, case):
    """Per chain, on the same conv input: dq(q(conv + folded bias)) vs. the
    un-folded batch_norm output, within one output step outside clipping."""
    import json

    from support.repo import run_cli
    from support.semantic import check_chain_within_one_step, node_values

    unfolded, _, ours = folded(case)
    report = json.loads(run_cli("fold", str(qat_archive(case)), "--dry-run", "--json").stdout)
    assert report["folded_count"] == len(report["folded"]) > 0
    for seed in range(2):
        values = node_values(unfolded, random_inputs(unfolded, seed))
        for chain in report["folded"]:
            check_chain_within_one_step(unfolded, ours, chain, values)


@pytest.mark.parametrize("case", CASES)
def test_verification_agrees_with_an_independent_computation(folded, qat_archive, case):
    """qatfold's verification of each fold, on the program's example inputs
    and two random batches, recomputed without it (verification_check.py)."""
    import json

    from support.repo import run_cli
    from support.verification_check import assert_verified
    from zoo.measure import example_batches

    unfolded, _, ours = folded(case)
    report = json.loads(run_cli("fold", str(qat_archive(case)), "--dry-run", "--json").stdout)
    batches = example_batches(unfolded) + [tuple(random_inputs(unfolded, seed)) for seed in range(2)]
    verification = assert_verified(unfolded, ours, report["folded"], batches)
    assert len(verification.convs) == report["folded_count"]

