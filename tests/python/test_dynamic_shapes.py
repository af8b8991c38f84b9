"""Programs exported with dynamic shapes fold like static ones.

A Cadence QAT keyword spotter (1-D) exported with a dynamic batch, a dynamic
length, both, and a batch Dim with a min and a max; an XNNPACK QAT CNN with a
dynamic batch. Each folds every chain on the command line and in memory (the
two checked against each other), matches ExecuTorch's FuseQATConvBN bit for
bit at two input sizes, keeps its symbolic sizes and range constraints, and
round-trips byte for byte.
"""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

import qatfold
from support.oracle import conv_int32_biases, op_multiset, oracle_fold, qatfold_fold
from support.repo import run_cli
from zoo.program_cache import cached_archive

KINDS = ("batch", "length", "both", "bounded")


def cadence_archive(kind: str):
    def build():
        from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

        from zoo.flows import export_qat_dynamic
        from zoo.models import build as build_model
        from zoo.models import dynamic_shapes

        model, example = build_model("keyword_spotter")
        return export_qat_dynamic(model, example, CadenceDefaultQuantizer(is_qat=True), dynamic_shapes(kind))

    return cached_archive(f"cadence-keyword_spotter-dynamic-{kind}", build)


def sizes_for(kind: str) -> list[tuple[int, int]]:
    """(batch, length) pairs the program takes, two per kind."""
    return {"batch": [(1, 64), (5, 64)], "length": [(4, 16), (4, 200)], "both": [(1, 32), (5, 100)],
            "bounded": [(1, 64), (5, 64)]}[kind]


def model_json(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("models/model.json"))))


@pytest.mark.parametrize("kind", KINDS)
def test_dynamic_cadence_program_folds_every_chain_like_executorch(kind, tmp_path):
    path = cadence_archive(kind)
    report = json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)
    assert (report["chains_found"], report["folded_count"], report["skipped_count"]) == (3, 3, 0), report
    assert len(report["prepared_biases"]) == 1  # the bias-less first conv, as ExecuTorch's pass does

    ours = qatfold_fold(path, tmp_path / "folded.pt2")  # CLI, checked against the in-memory fold
    theirs = oracle_fold(path)
    assert not any("batch_norm" in str(t) for t in op_multiset(ours))
    assert op_multiset(ours) == op_multiset(theirs)
    ours_biases, theirs_biases = conv_int32_biases(ours), conv_int32_biases(theirs)
    assert ours_biases.keys() == theirs_biases.keys() and len(ours_biases) == 3
    for conv, bias in theirs_biases.items():
        assert torch.equal(ours_biases[conv], bias), conv
    unfolded = torch.export.load(path)
    for seed, (batch, length) in enumerate(sizes_for(kind)):
        x = torch.randn(batch, 8, length, generator=torch.Generator().manual_seed(seed))
        folded_out = ours.module()(x)
        assert folded_out.shape == (batch, 8, length)
        assert torch.equal(folded_out, theirs.module()(x)), (batch, length)
        step = float(next(n for n in ours.graph.nodes if n.op == "output").args[0][0].args[1])
        assert ((folded_out - unfolded.module()(x)).abs() / step).mean() < 3  # the fold's own deviation, small


@pytest.mark.parametrize("kind", KINDS)
def test_symbolic_sizes_and_ranges_survive(kind, tmp_path):
    path = cadence_archive(kind)
    original = model_json(path)
    assert original["range_constraints"]  # the program really is dynamic
    run_cli("fold", str(path), "-o", str(tmp_path / "folded.pt2"))
    folded = model_json(tmp_path / "folded.pt2")
    assert folded["range_constraints"] == original["range_constraints"]
    x = lambda m: m["graph_module"]["graph"]["tensor_values"]["x"]["sizes"]  # noqa: E731
    assert x(folded) == x(original)
    # roundtrip writes every record back byte for byte (the zip headers are qatfold's own)
    run_cli("roundtrip", str(path), "-o", str(tmp_path / "rt.pt2"))
    with zipfile.ZipFile(path) as before, zipfile.ZipFile(tmp_path / "rt.pt2") as after:
        assert before.namelist() == after.namelist()
        for name in before.namelist():
            assert before.read(name) == after.read(name), name
    # a fold with nothing to do copies the archive whole
    run_cli("fold", str(tmp_path / "folded.pt2"), "-o", str(tmp_path / "again.pt2"))
    assert (tmp_path / "again.pt2").read_bytes() == (tmp_path / "folded.pt2").read_bytes()
    # the text graph names each symbolic size, static ones as numbers
    text = run_cli("inspect", "--text", str(path)).stdout
    line = next(line for line in text.splitlines() if line.startswith("input %x"))
    expected = {"batch": r"\[s\d+, 8, 64\]", "length": r"\[4, 8, s\d+\]", "both": r"\[s\d+, 8, s\d+\]",
                "bounded": r"\[s\d+, 8, 64\]"}[kind]
    import re

    assert re.search(expected, line), line
    assert "[?]" not in text
    summary = json.loads(run_cli("inspect", "--json", str(path)).stdout)
    shape = summary["inputs"][0]["shape"]
    assert len(shape) == 3 and 8 in shape and any(isinstance(s, str) for s in shape)


def test_calibrate_and_verify_take_any_size_the_program_allows():
    program = torch.export.load(cadence_archive("both"))
    batches = [(torch.randn(b, 8, n),) for b, n in ((1, 32), (3, 100), (2, 512))]
    result = qatfold.fold(program, calibrate=batches, verify=batches)
    assert result.report.folded_count == 3
    assert result.verification.batches == 3 and len(result.verification.convs) == 3
    with pytest.raises(qatfold.QatfoldError, match=r"the program takes \[0?\.*.*, 8, 16\.\.512\]"):
        qatfold.fold(program, verify=(torch.randn(2, 8, 600),))


def test_dynamic_xnnpack_program_folds_behind_the_quantized_layers():
    """XNNPACK's per-channel QAT net (a padding='same' conv and a linear,
    each followed by a BatchNorm) with a dynamic batch: calibrated, both fold
    into the weight scales, and the result runs at other batch sizes."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    def build():
        from zoo.flows import export_qat_dynamic
        from zoo.xnnpack_models import MODELS

        torch.manual_seed(0)
        model, example = MODELS["net2d"](2)
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
        return export_qat_dynamic(model, example, quantizer, ({0: torch.export.Dim("batch", min=1, max=16)},))

    program = torch.export.load(cached_archive("xnnpack-net2d-dynamic-batch", build))
    batches = [(torch.randn(b, 3, 12, 12),) for b in (1, 4, 7)]
    result = qatfold.fold(program, calibrate=batches, verify=batches)
    assert not any("batch_norm" in str(n.target) for n in result.program.graph.nodes)
    assert {c.requantized["source"] for c in result.report.folded} == {"calibrated"}
    assert len(result.verification.convs) == 2
    for batch in (1, 5):
        assert result.program.module()(torch.randn(batch, 3, 12, 12)).shape[0] == batch
