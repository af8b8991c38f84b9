"""Backend safety: qatfold never makes an XNNPACK program worse.

XNNPACK wants float conv biases: it quantizes them itself, and a conv whose
bias is dequantized from int32 per channel falls out of its delegate. Every
program of zoo/xnnpack_models.py (XNNPACKQuantizer, QAT and PTQ, per channel
and per tensor; conv1d/2d/3d, padding="same", linear + BatchNorm1d) goes
through qatfold, then through ExecuTorch's XNNPACK lowering, and must
delegate exactly what it delegates without qatfold and compute the same on
ExecuTorch's runtime.
"""

from __future__ import annotations

import json

import pytest
import torch

import qatfold
import zoo.xnnpack_models as xnnpack_zoo
from support.front_door_check import assert_equivalent
from support.graph_compare import random_inputs
from support.repo import run_cli
from support.verification_check import assert_verified
from zoo.program_cache import cached_archive
from zoo.xnnpack_lowering import lower_to_xnnpack

pytestmark = pytest.mark.slow

# Cases ExecuTorch 1.4.0 cannot turn into a .pte here, with or without
# qatfold (see xnnpack.py), and the message it fails with.
KNOWN_BACKEND_FAILURES = {
    "net1d:qat_per_channel": "Weight and Input should both be quantized",
    "net1d:qat_per_tensor": "Weight and Input should both be quantized",
    "net3d:qat_per_channel": "Missing out variants",
    "net3d:ptq_per_channel": "Missing out variants",
}


def archive(case: str):
    return cached_archive(f"xnnpack-{case}", lambda: xnnpack_zoo.export_xnnpack(case)[0])


@pytest.fixture(scope="module")
def lowered_plain():
    """The lowering of each case without qatfold, once per case."""
    cache = {}

    def get(case: str):
        if case not in cache:
            cache[case] = lower_to_xnnpack(torch.export.load(archive(case)))
        return cache[case]

    return get


# Cases where a quantize QAT trained follows a batch_norm behind a quantized
# conv (conv3d + BN + ReLU -> the next conv's input): it folds by default
# (FoldBatchNormIntoWeightScales; test_xnnpack_bn_fold.py checks it through
# XNNPACK). Everything else comes out byte-identical.
FOLDS_BY_DEFAULT = {"net3d:qat_per_channel"}


@pytest.mark.parametrize("case", xnnpack_zoo.CASES)
def test_fold_leaves_the_archive_byte_identical(case, tmp_path):
    path = archive(case)
    out = tmp_path / "folded.pt2"
    if case in FOLDS_BY_DEFAULT:
        report = json.loads(run_cli("fold", str(path), "-o", str(out), "--json").stdout)
        assert [c["requantized"]["source"] for c in report["folded"]] == ["trained after relu"]
        assert_equivalent(qatfold.fold(torch.export.load(path)).program, torch.export.load(out))
        path_kept = tmp_path / "kept.pt2"
        run_cli("fold", str(path), "-o", str(path_kept), "--quantized-bn", "keep")
        assert path_kept.read_bytes() == path.read_bytes()
        return
    report = json.loads(run_cli("fold", str(path), "-o", str(out), "--json").stdout)
    assert out.read_bytes() == path.read_bytes()
    assert_equivalent(qatfold.fold(torch.export.load(path)).program, torch.export.load(out))
    assert report["changed"] is False
    assert report["prepared_biases"] == [] and report["folded_count"] == 0
    assert report["bias_preparation"]["policy"] == "folded"
    assert report["bias_preparation"]["requested"] == "auto"


@pytest.mark.parametrize("case", xnnpack_zoo.CASES)
def test_lowering_delegates_and_computes_the_same(case, lowered_plain):
    program = torch.export.load(archive(case))
    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)
    plain = lowered_plain(case)
    ours = lower_to_xnnpack(result.program)
    if case in FOLDS_BY_DEFAULT:
        # One batch_norm fewer (the one a trained quantize follows); the
        # other waits for calibration (qatfold.fold(calibrate=...)).
        def batch_norms(lowered):
            return sum(sum(counts) for op, counts in lowered.by_operator.items() if "batch_norm" in op)

        assert batch_norms(ours) == batch_norms(plain) - 1
        assert ours.non_delegated_nodes < plain.non_delegated_nodes and ours.error == plain.error
        return
    assert not result.report.changed
    assert ours.partitions() == plain.partitions()
    assert ours.error == plain.error
    if plain.buffer is None:
        # ExecuTorch's own limits, see xnnpack.py: qatfold must fail nothing new.
        assert case in KNOWN_BACKEND_FAILURES, plain.error
        assert KNOWN_BACKEND_FAILURES[case] in plain.error
        return
    for seed in range(2):
        x = random_inputs(program, seed)
        expected, actual = plain.run(x), ours.run(x)
        if isinstance(expected, str):
            # Quantized conv3d stays outside XNNPACK, and the portable runtime
            # here has no quantized kernels for what is left: it fails the
            # same way with and without qatfold.
            assert case.startswith("net3d:") and actual == expected
            continue
        assert len(actual) == len(expected)
        for a, b in zip(actual, expected):
            assert torch.equal(a, b)


def test_forcing_int32_biases_takes_convs_out_of_the_delegate(lowered_plain):
    """What --bias-prep all (ExecuTorch's pass's behaviour) does to an XNNPACK
    program, and so what the automatic rule prevents."""
    case = "net2d:qat_per_channel"
    result = qatfold.fold(torch.export.load(archive(case)), bias_preparation="all")
    assert result.report.bias_preparation["policy"] == "all"
    assert [p.conv for p in result.report.prepared_biases] == ["conv2d", "conv2d_1"]
    plain = lowered_plain(case)
    forced = lower_to_xnnpack(result.program)
    assert forced.subgraphs > plain.subgraphs
    assert forced.by_operator["aten_convolution_default"][1] == 2  # both convs run outside XNNPACK
    assert plain.by_operator["aten_convolution_default"] == (2, 0)
