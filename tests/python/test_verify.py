"""Verification measures a fold on real inputs; these tests recompute every
figure independently (zoo/measure.py: the programs rerun with the
nodes of interest as graph outputs, no Interpreter) and check the flags
follow the measurement."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import qatfold
from support.repo import QAT, REPO, clipping_program, run_cli
from zoo.measure import independent


@pytest.mark.parametrize("inputs", ["example", "given"])
def test_figures_match_an_independent_computation(inputs):
    original = torch.export.load(QAT)
    torch.manual_seed(1)
    batches = [(torch.randn(2, 3, 16, 16),) for _ in range(3)] if inputs == "given" else [original.example_inputs[0]]
    result = qatfold.fold(original, verify=batches if inputs == "given" else True)
    verification = result.verification
    assert verification.inputs == ("given" if inputs == "given" else "example_inputs")
    assert verification.batches == len(batches)
    assert [c.conv for c in verification.convs] == [c.conv for c in result.report.folded]
    for measured in verification.convs:
        expected = independent(original, result.program, measured.conv, measured.batch_norm, batches)
        assert measured.saturation_before == pytest.approx(expected["before"])
        assert measured.saturation_after == pytest.approx(expected["after"])
        assert measured.mean_steps == pytest.approx(expected["mean"], rel=1e-5)
        assert measured.max_steps == pytest.approx(expected["max"], rel=1e-5)
    # End to end: the program's one output, in steps of its dequantize.
    (output,) = verification.outputs
    assert output.unit == "steps"
    a = torch.cat([original.module()(*b).flatten() for b in batches])
    b = torch.cat([result.program.module()(*b).flatten() for b in batches])
    scale = next(n for n in result.program.graph.nodes if n.name == output.name).args[1]
    assert output.max == pytest.approx(float(((a - b).abs() / scale).max()), rel=1e-5)
    assert output.mean == pytest.approx(float(((a - b).abs() / scale).mean()), rel=1e-5)


def test_flags_come_from_the_measurement_when_verified():
    program = torch.export.load(QAT)
    # The estimate flags every conv at threshold 0; measured, neither saturates more.
    assert qatfold.fold(program, risk_threshold=0.0).report.flagged_count == 2
    verified = qatfold.fold(program, risk_threshold=0.0, verify=True)
    assert verified.report.flagged_count == 0 and not any(c.flagged for c in verified.report.folded)
    assert "verified on 1 batch(es) of the program's example inputs" in verified.report.text


def test_a_conv_that_clips_is_flagged_by_measurement():
    program = clipping_program()
    result = qatfold.fold(program, verify=True)
    measured = {c.conv: c for c in result.verification.convs}
    first = result.report.folded[0].conv
    assert measured[first].saturation_after - measured[first].saturation_before > 0.5
    assert measured[first].flagged and result.report.folded[0].flagged
    expected = independent(program, result.program, first, measured[first].batch_norm, [program.example_inputs[0]])
    assert measured[first].saturation_after == pytest.approx(expected["after"])


def test_fuse_pass_verifies_before_it_replaces_the_program():
    program = clipping_program()
    fuse = qatfold.FuseQATConvBN(program, verify=True)
    fuse(program.graph_module)
    assert fuse.verification is not None and fuse.verification.flagged_count == 1
    assert fuse.report.flagged_count == 1


def test_python_m_qatfold_verify(tmp_path):
    clipping = tmp_path / "clipping.pt2"
    torch.export.save(clipping_program(), clipping)
    for source, code in [(QAT, 0), (clipping, 3)]:
        folded = tmp_path / f"{source.stem}-folded.pt2"
        run_cli("fold", str(source), "-o", str(folded))
        run = subprocess.run([sys.executable, "-m", "qatfold", "verify", str(source), str(folded), "--json"],
                             capture_output=True, text=True, cwd=REPO)
        assert run.returncode == code, run.stderr
        data = json.loads(run.stdout)
        api = qatfold.fold(torch.export.load(source), verify=True).verification
        assert data["flagged_count"] == api.flagged_count
        assert [c["saturation_after"] for c in data["convs"]] == pytest.approx([c.saturation_after for c in api.convs])
